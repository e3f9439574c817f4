/* dist_nccl.cu - the GPU gradient all-reduce of lib/dist.h over NCCL.
 *
 * NCCL is loaded at run time (dlopen of libnccl.so.2, or of the file named
 * by $TTT_NCCL_LIBRARY) rather than linked,
 * so the library and every program build and run where NCCL is absent; only
 * ttt_dist_gpu_open fails there, naming the missing library. The header is
 * used for the types alone, and when it is missing too the functions are
 * stubs that fail with a message. The communicator spans the MPI ranks:
 * rank 0's ncclUniqueId reaches the others through ttt_dist_bcast.
 *
 * Failures on one rank are made everyone's (agree() below) before the next
 * collective, so a rank without NCCL or with a bad device never leaves the
 * others waiting in a broadcast or in ncclCommInitRank.
 */
#include "dist.h"
extern "C" {
#include "err.h"
}

#include <cuda_runtime.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Number of ranks for which failed is set (an all-reduce; 0 on MPI
 * failure too is impossible: that returns -1). */
static int agree(int failed)
{
    double f = failed ? 1 : 0;
    if (ttt_dist_allreduce_sum(&f, 1) < 0) return -1;
    return (int)(f + 0.5);
}

#if __has_include(<nccl.h>)
#include <dlfcn.h>
#include <nccl.h>

struct ttt_dist_gpu {
    void *lib;
    ncclComm_t comm;
    int device;
    ncclResult_t (*get_id)(ncclUniqueId *);
    ncclResult_t (*init_rank)(ncclComm_t *, int, ncclUniqueId, int);
    ncclResult_t (*all_reduce)(const void *, void *, size_t, ncclDataType_t, ncclRedOp_t, ncclComm_t, cudaStream_t);
    ncclResult_t (*destroy)(ncclComm_t);
    const char *(*errstr)(ncclResult_t);
};

static int nccl_fail(ttt_dist_gpu *g, const char *what, ncclResult_t r)
{
    return ttt_seterr("rank %d: %s: %s", ttt_dist_rank(), what, g->errstr ? g->errstr(r) : "NCCL error");
}

/* The library and its functions into g; 0 or -1 + message (local). */
static int load(ttt_dist_gpu *g)
{
    /* TTT_NCCL_LIBRARY: one NCCL among several, or none (tests) */
    const char *path = getenv("TTT_NCCL_LIBRARY");
    if (path && *path) {
        if (!(g->lib = dlopen(path, RTLD_NOW | RTLD_LOCAL)))
            return ttt_seterr("cannot load NCCL (TTT_NCCL_LIBRARY=%s): %s", path, dlerror());
    } else {
        g->lib = dlopen("libnccl.so.2", RTLD_NOW | RTLD_LOCAL);
        if (!g->lib) g->lib = dlopen("libnccl.so", RTLD_NOW | RTLD_LOCAL);
        if (!g->lib) return ttt_seterr("cannot load NCCL (libnccl.so.2): %s", dlerror());
    }
    *(void **)&g->get_id = dlsym(g->lib, "ncclGetUniqueId");
    *(void **)&g->init_rank = dlsym(g->lib, "ncclCommInitRank");
    *(void **)&g->all_reduce = dlsym(g->lib, "ncclAllReduce");
    *(void **)&g->destroy = dlsym(g->lib, "ncclCommDestroy");
    *(void **)&g->errstr = dlsym(g->lib, "ncclGetErrorString");
    if (!g->get_id || !g->init_rank || !g->all_reduce || !g->destroy || !g->errstr) {
        dlclose(g->lib);
        g->lib = NULL;
        return ttt_seterr("cannot load NCCL: libnccl.so.2 lacks a needed function (NCCL 2.10 or newer is needed)");
    }
    return 0;
}

extern "C" int ttt_dist_nccl_loadable(void)
{
    ttt_dist_gpu g;
    memset(&g, 0, sizeof g);
    int bad = load(&g) < 0;
    if (g.lib) dlclose(g.lib);
    int n = agree(bad);
    if (n < 0) return -1;
    if (n && !bad) ttt_seterr("cannot load NCCL on %d of %d ranks", n, ttt_dist_size());
    return n == 0;
}

static ttt_dist_gpu *give_up(ttt_dist_gpu *g)
{
    if (g->comm) g->destroy(g->comm);
    if (g->lib) dlclose(g->lib);
    free(g);
    return NULL;
}

extern "C" ttt_dist_gpu *ttt_dist_gpu_open(int device)
{
    ttt_dist_gpu *g = (ttt_dist_gpu *)calloc(1, sizeof *g);
    int bad = !g;
    if (!g) ttt_seterr("out of memory");
    else {
        g->device = device;
        bad = load(g) < 0;
        cudaError_t ce;
        if (!bad && (ce = cudaSetDevice(device)) != cudaSuccess)
            bad = ttt_seterr("rank %d: cudaSetDevice(%d): %s", ttt_dist_rank(), device, cudaGetErrorString(ce)) < 0;
    }
    int n = agree(bad);
    if (n != 0) {
        if (n > 0 && !bad) ttt_seterr("NCCL could not be set up on %d of %d ranks", n, ttt_dist_size());
        return g ? give_up(g) : NULL;
    }
    /* rank 0's id and whether it got one travel together: on failure the
     * others stop here instead of joining a communicator that never forms */
    struct { ncclUniqueId id; int ok; } msg;
    memset(&msg, 0, sizeof msg);
    ncclResult_t r = ncclSuccess;
    if (ttt_dist_rank() == 0) {
        r = g->get_id(&msg.id);
        msg.ok = r == ncclSuccess;
        if (!msg.ok) nccl_fail(g, "ncclGetUniqueId", r);
    }
    if (ttt_dist_bcast(&msg, sizeof msg, 0) < 0) return give_up(g);
    if (!msg.ok) {
        if (ttt_dist_rank() != 0) ttt_seterr("rank 0 could not create an NCCL id");
        return give_up(g);
    }
    r = g->init_rank(&g->comm, ttt_dist_size(), msg.id, ttt_dist_rank());
    if (r != ncclSuccess) {
        g->comm = NULL;
        nccl_fail(g, "ncclCommInitRank", r);
    }
    n = agree(r != ncclSuccess);
    if (n != 0) {
        if (n > 0 && r == ncclSuccess) ttt_seterr("NCCL communicator failed on %d of %d ranks", n, ttt_dist_size());
        return give_up(g);
    }
    return g;
}

extern "C" int ttt_dist_gpu_allreduce_mean(ttt_dist_gpu *g, float *dev, size_t n, void *stream)
{
    if (n == 0) return 0;
    /* ncclAvg: the sum scaled by 1/size, in float, in place (an identity
     * on one rank, which still runs: the forced 1-rank path is tested) */
    ncclResult_t r = g->all_reduce(dev, dev, n, ncclFloat32, ncclAvg, g->comm, (cudaStream_t)stream);
    return r == ncclSuccess ? 0 : nccl_fail(g, "gradient all-reduce (ncclAllReduce)", r);
}

extern "C" void ttt_dist_gpu_close(ttt_dist_gpu *g)
{
    if (g) give_up(g);
}

#else   /* no nccl.h at build time */

extern "C" int ttt_dist_nccl_loadable(void)
{
    int n = agree(1);
    return n < 0 ? -1 : (ttt_seterr("cannot load NCCL: this build has no NCCL support (nccl.h was not found)"), 0);
}
extern "C" ttt_dist_gpu *ttt_dist_gpu_open(int device)
{
    ttt_seterr("this build has no NCCL support (nccl.h was not found)");
    return NULL;
}
extern "C" int ttt_dist_gpu_allreduce_mean(ttt_dist_gpu *g, float *dev, size_t n, void *stream)
{
    return ttt_seterr("this build has no NCCL support");
}
extern "C" void ttt_dist_gpu_close(ttt_dist_gpu *g) {}

#endif
