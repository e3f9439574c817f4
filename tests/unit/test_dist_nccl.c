/* test_dist_nccl.c - the NCCL gradient all-reduce (lib/cuda/dist_nccl.cu)
 * and the choice between it and the host path (lib/dist_gpu.c): each rank
 * fills a device buffer with (rank+1)*(i%1000+1), averages it over the
 * ranks and checks (N+1)/2*(i%1000+1) everywhere (on one rank: the values
 * come back bit for bit, through a real ncclAllReduce). Run plainly (1
 * rank) or under `mpirun -np N` with N GPUs. Skips (exit 0) without CUDA or
 * a GPU; without NCCL it checks the fallback and refusal instead. */
#include "check.h"
#include "dist.h"
#include "err.h"

#include <stdlib.h>
#include <string.h>

#ifdef TTT_HAVE_CUDA
#include "ttt_cuda.h"

/* mode auto/mpi/nccl decisions, with NCCL present (loadable) or not */
static void check_choice(int loadable, int dev)
{
    int N = ttt_dist_size();
    ttt_dist_gpu *g = (ttt_dist_gpu *)1;
    char note[512] = "x";
    CHECK(ttt_dist_gpu_choose(TTT_ALLREDUCE_MPI, dev, &g, note, sizeof note) == 0 && !g && !note[0]);
    int rc = ttt_dist_gpu_choose(TTT_ALLREDUCE_AUTO, dev, &g, note, sizeof note);
    CHECK(rc == 0);
    if (N == 1 || !loadable) CHECK(!g);
    else CHECK(g != NULL);
    /* the one warning line: only when NCCL was wanted (several ranks) */
    if (N > 1 && !loadable) CHECK(strstr(note, "cannot load NCCL") && strstr(note, "with MPI instead"));
    else CHECK(!note[0]);
    ttt_dist_gpu_close(g);
    rc = ttt_dist_gpu_choose(TTT_ALLREDUCE_NCCL, dev, &g, note, sizeof note);
    if (loadable) CHECK(rc == 0 && g != NULL && !note[0]);
    else CHECK(rc == -1 && !g && !strncmp(ttt_errmsg(), "--allreduce nccl: cannot load NCCL", 34));
    ttt_dist_gpu_close(g);
}

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
    int dev = ttt_dist_gpu_device(ttt_cuda_device_count());
    CHECK(dev >= 0 && dev < ttt_cuda_device_count());
    CHECK(ttt_dist_gpu_device(0) == 0);
    int loadable = ttt_dist_nccl_loadable();
    CHECK(loadable >= 0);
    check_choice(loadable == 1, dev);
    if (loadable != 1) {
        printf("test_dist_nccl: %s: fallback checked, all-reduce skipped\n", ttt_errmsg());
        int rc = check_exit("test_dist_nccl");
        ttt_dist_finalize();
        return rc;
    }
    ttt_dist_gpu *g = ttt_dist_gpu_open(dev);
    CHECK(g != NULL);
    if (!g) fprintf(stderr, "test_dist_nccl: %s\n", ttt_errmsg());
    size_t n = ((size_t)1 << 22) + 3;   /* not a multiple of anything */
    float *h = malloc(n * sizeof *h), *d = g ? ttt_cuda_alloc(n) : NULL;
    CHECK(h && (!g || d));
    if (g && h && d) {
        for (size_t i = 0; i < n; i++) h[i] = (float)((r + 1) * (double)(i % 1000 + 1));
        CHECK(ttt_cuda_upload(d, h, n) == 0);
        CHECK(ttt_dist_gpu_allreduce_mean(g, d, n, NULL) == 0);
        CHECK(ttt_dist_gpu_allreduce_mean(g, d, 0, NULL) == 0);   /* nothing to do */
        CHECK(ttt_cuda_download(h, d, n) == 0);   /* synchronous: after the reduction on stream 0 */
        int ok = 1;
        for (size_t i = 0; i < n; i++) {
            double want = (N + 1) / 2.0 * (double)(i % 1000 + 1);
            ok &= N == 1 ? h[i] == (float)want : fabs(h[i] - want) <= 1e-6 * want;
        }
        CHECK(ok);
        printf("test_dist_nccl: rank %d of %d (device %d): %zu floats averaged\n", r, N, dev, n);
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
