/* dist_gpu.c - which GPU a rank trains on and how its gradients are
 * averaged (dist.h): NCCL over the device arena, or the host round trip
 * through MPI when NCCL is absent, refused or not asked for. The NCCL
 * calls themselves are in lib/cuda/dist_nccl.cu; builds without CUDA get
 * the host path only. */
#include "dist.h"
#include "err.h"   /* ttt_seterr, ttt_errmsg */

#include <stdio.h>

int ttt_dist_gpu_device(int ndev)
{
    int local = ttt_dist_local_rank();
    return ndev > 0 ? local % ndev : 0;
}

int ttt_dist_gpu_choose(int mode, int device, ttt_dist_gpu **out, char *note, size_t note_size)
{
    *out = NULL;
    if (note_size) note[0] = 0;
    if (mode == TTT_ALLREDUCE_MPI || (mode == TTT_ALLREDUCE_AUTO && ttt_dist_size() == 1)) return 0;
#ifdef TTT_HAVE_CUDA
    /* loading first, on its own: "not installed" is the common, expected
     * reason to fall back, and every rank must know it before any rank
     * starts the communicator's broadcast */
    int ok = ttt_dist_nccl_loadable();
    if (ok < 0) return -1;
    if (ok) *out = ttt_dist_gpu_open(device);
    if (*out) return 0;
#else
    (void)device;
    ttt_seterr("this build has no CUDA support");
#endif
    if (mode == TTT_ALLREDUCE_NCCL) return ttt_preferr("--allreduce nccl");
    if (note_size)
        snprintf(note, note_size, "%s; averaging the gradients through host memory with MPI instead", ttt_errmsg());
    return 0;
}

#ifndef TTT_HAVE_CUDA
/* Builds without CUDA: ttt_dist_gpu_choose never gives a communicator, so
 * these are never reached with one; they only let ttt-train link. */
int ttt_dist_gpu_allreduce_mean(ttt_dist_gpu *g, float *dev, size_t n, void *stream)
{
    (void)g; (void)dev; (void)n; (void)stream;
    return ttt_seterr("this build has no CUDA support");
}

void ttt_dist_gpu_close(ttt_dist_gpu *g) { (void)g; }
#endif
