/* dist_nccl.cu - the GPU gradient all-reduce of lib/dist.h over NCCL.
 *
 * NCCL is loaded at run time (dlopen of libnccl.so.2) rather than linked,
 * so the library and every program build and run where NCCL is absent; only
 * ttt_dist_gpu_open fails there, naming the missing library. The header is
 * used for the types alone, and when it is missing too the functions are
 * stubs that fail with a message. The communicator spans the MPI ranks:
 * rank 0's ncclUniqueId reaches the others through ttt_dist_bcast.
 */
#include "dist.h"
extern "C" {
#include "err.h"
}

#include <cuda_runtime.h>
#include <stdlib.h>

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

extern "C" ttt_dist_gpu *ttt_dist_gpu_open(int device)
{
    ttt_dist_gpu *g = (ttt_dist_gpu *)calloc(1, sizeof *g);
    if (!g) { ttt_seterr("out of memory"); return NULL; }
    g->device = device;
    g->lib = dlopen("libnccl.so.2", RTLD_NOW | RTLD_LOCAL);
    if (!g->lib) g->lib = dlopen("libnccl.so", RTLD_NOW | RTLD_LOCAL);
    if (!g->lib) {
        ttt_seterr("cannot load NCCL (libnccl.so.2): %s", dlerror());
        free(g);
        return NULL;
    }
    *(void **)&g->get_id = dlsym(g->lib, "ncclGetUniqueId");
    *(void **)&g->init_rank = dlsym(g->lib, "ncclCommInitRank");
    *(void **)&g->all_reduce = dlsym(g->lib, "ncclAllReduce");
    *(void **)&g->destroy = dlsym(g->lib, "ncclCommDestroy");
    *(void **)&g->errstr = dlsym(g->lib, "ncclGetErrorString");
    if (!g->get_id || !g->init_rank || !g->all_reduce || !g->destroy || !g->errstr) {
        ttt_seterr("libnccl.so.2 lacks a needed function (NCCL 2.10 or newer is needed)");
        dlclose(g->lib);
        free(g);
        return NULL;
    }
    cudaError_t ce = cudaSetDevice(device);
    if (ce != cudaSuccess) {
        ttt_seterr("rank %d: cudaSetDevice(%d): %s", ttt_dist_rank(), device, cudaGetErrorString(ce));
        dlclose(g->lib);
        free(g);
        return NULL;
    }
    ncclUniqueId id;
    ncclResult_t r = ncclSuccess;
    if (ttt_dist_rank() == 0) r = g->get_id(&id);
    /* every rank joins the broadcast, also when rank 0 failed (it then
     * sends garbage and fails below itself, so nobody waits) */
    if (ttt_dist_bcast(&id, sizeof id, 0) < 0 || r != ncclSuccess ||
        (r = g->init_rank(&g->comm, ttt_dist_size(), id, ttt_dist_rank())) != ncclSuccess) {
        if (r != ncclSuccess) nccl_fail(g, "NCCL communicator", r);
        dlclose(g->lib);
        free(g);
        return NULL;
    }
    return g;
}

extern "C" int ttt_dist_gpu_allreduce_mean(ttt_dist_gpu *g, float *dev, size_t n, void *stream)
{
    if (ttt_dist_size() == 1 || n == 0) return 0;
    /* ncclAvg: the sum scaled by 1/size, in float, in place */
    ncclResult_t r = g->all_reduce(dev, dev, n, ncclFloat32, ncclAvg, g->comm, (cudaStream_t)stream);
    return r == ncclSuccess ? 0 : nccl_fail(g, "gradient all-reduce", r);
}

extern "C" void ttt_dist_gpu_close(ttt_dist_gpu *g)
{
    if (!g) return;
    g->destroy(g->comm);
    dlclose(g->lib);
    free(g);
}

#else   /* no nccl.h at build time */

extern "C" ttt_dist_gpu *ttt_dist_gpu_open(int device)
{
    ttt_seterr("this build has no NCCL support (nccl.h was not found)");
    return NULL;
}
extern "C" int ttt_dist_gpu_allreduce_mean(ttt_dist_gpu *g, float *dev, size_t n, void *stream)
{
    return ttt_dist_size() == 1 ? 0 : ttt_seterr("this build has no NCCL support");
}
extern "C" void ttt_dist_gpu_close(ttt_dist_gpu *g) {}

#endif
