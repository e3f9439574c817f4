/* test_dist_nccl.c - the NCCL gradient all-reduce (lib/cuda/dist_nccl.cu):
 * each rank fills a device buffer with (rank+1)*(i+1), averages it over the
 * ranks and checks (N+1)/2*(i+1) everywhere. Run plainly (1 rank) or under
 * `mpirun -np N` with N GPUs. Skips (exit 0) without CUDA, a GPU or NCCL. */
#include "check.h"
#include "dist.h"
#include "err.h"

#include <stdlib.h>
#include <string.h>

#ifdef TTT_HAVE_CUDA
#include "ttt_cuda.h"

int main(void)
{
    if (ttt_cuda_device_count() == 0) {
        printf("test_dist_nccl: no CUDA device, skipped\n");
        return 0;
    }
    if (ttt_dist_init() < 0) {
        fprintf(stderr, "test_dist_nccl: %s\n", ttt_errmsg());
        return 1;
    }
    int r = ttt_dist_rank(), N = ttt_dist_size();
    ttt_dist_gpu *g = ttt_dist_gpu_open(r % ttt_cuda_device_count());
    if (!g && strstr(ttt_errmsg(), "cannot load NCCL")) {
        printf("test_dist_nccl: %s, skipped\n", ttt_errmsg());
        ttt_dist_finalize();
        return 0;
    }
    CHECK(g != NULL);
    if (!g) fprintf(stderr, "test_dist_nccl: %s\n", ttt_errmsg());
    size_t n = ((size_t)1 << 22) + 3;   /* not a multiple of anything */
    float *h = malloc(n * sizeof *h), *d = g ? ttt_cuda_alloc(n) : NULL;
    CHECK(h && (!g || d));
    if (g && h && d) {
        for (size_t i = 0; i < n; i++) h[i] = (float)((r + 1) * (double)(i % 1000 + 1));
        CHECK(ttt_cuda_upload(d, h, n) == 0);
        CHECK(ttt_dist_gpu_allreduce_mean(g, d, n, NULL) == 0);
        CHECK(ttt_cuda_download(h, d, n) == 0);   /* synchronous: after the reduction on stream 0 */
        int ok = 1;
        for (size_t i = 0; i < n; i++) ok &= fabs(h[i] - (N + 1) / 2.0 * (double)(i % 1000 + 1)) <= 1e-6 * (i % 1000 + 1);
        CHECK(ok);
        printf("test_dist_nccl: rank %d of %d: %zu floats averaged\n", r, N, n);
    }
    ttt_cuda_free(d);
    free(h);
    ttt_dist_gpu_close(g);
    double f = check_failures;
    ttt_dist_allreduce_sum(&f, 1);
    if (f > 0) check_failures += check_failures == 0;
    int rc = check_exit("test_dist_nccl");
    ttt_dist_finalize();
    return rc;
}
#else
int main(void)
{
    printf("test_dist_nccl: built without CUDA, skipped\n");
    return 0;
}
#endif
