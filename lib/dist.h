/* dist.h - the thin layer over MPI for data-parallel training: start-up,
 * rank and size, the gradient all-reduce, broadcasts, a barrier.
 *
 * When MPI is initialised: only when the process was started by an MPI
 * launcher (mpirun/mpiexec of Open MPI, MPICH or Intel MPI, or srun with a
 * PMI/PMIx plugin), detected from the environment the launcher sets. A
 * plain `ttt-train` of an MPI build therefore never touches MPI (no
 * singleton start-up, no orted, no network probing) and behaves exactly like
 * a build without it. Builds without TTT_HAVE_MPI have size 1 and every
 * collective is a no-op.
 *
 * Errors: once initialised, a process that exits without
 * ttt_dist_finalize() (cli_die after a data error on any rank) aborts the
 * whole job with MPI_Abort from an atexit handler, so the other ranks never
 * hang in a collective waiting for it.
 *
 * Threads: MPI is initialised with MPI_THREAD_FUNNELED; only the thread
 * that called ttt_dist_init may call the functions below (OpenMP regions
 * inside the model never do).
 *
 * libttt style: 0 or -1 with ttt_seterr; nothing here prints or exits
 * except the abort described above.
 */
#ifndef TTT_DIST_H
#define TTT_DIST_H

#include <stddef.h>
#include <stdint.h>

#include "real.h"

#ifdef __cplusplus
extern "C" {   /* lib/cuda/dist_nccl.cu */
#endif

/* 1 if this build has MPI support (TTT_HAVE_MPI). */
int ttt_dist_built(void);

/* 1 if the environment says an MPI launcher started this process. */
int ttt_dist_launched(void);

/* Initialises MPI if ttt_dist_launched() (and the build has MPI); otherwise
 * sets rank 0 of 1. Call once, after option parsing (MPI is given no argv).
 * Fails if a launcher started several tasks but this build cannot join
 * them (no MPI support, or srun without an MPI plugin). 0 or -1. */
int ttt_dist_init(void);

/* Finalises MPI (after a barrier-free exit path: MPI_Finalize itself waits
 * for the other ranks). Safe to call when not initialised, and twice. */
void ttt_dist_finalize(void);

int ttt_dist_rank(void);
int ttt_dist_size(void);

/* In-place average over the ranks of buf[n] (the gradient arena): an
 * MPI_SUM all-reduce in the arena's precision (float in libttt, double in
 * libttt64) in chunks of at most 2^24 elements, each chunk scaled by 1/size
 * right after its reduction. Every rank ends with the same bits. */
int ttt_dist_allreduce_mean(real *buf, size_t n);

/* The same average, overlapped with the backward: begin() before the
 * backward, chunk() (the signature of ttt_model_set_grad_hook's callback,
 * ctx = the handle) for each range of buf as soon as it is final, which
 * starts an in-place MPI_Iallreduce(MPI_SUM) on it (split at 2^24
 * elements), end() waits for all of them and scales buf by 1/size. Every
 * rank must give the same ranges in the same order (they are collectives);
 * together they must cover buf[0..n) exactly once, which end() checks.
 * end() frees the handle and returns 0, or -1 with a message (an MPI
 * failure or a bad cover, also one chunk() met). With size 1 (or no MPI)
 * nothing is sent and only the cover is checked. begin: NULL + message. */
typedef struct ttt_dist_overlap ttt_dist_overlap;
ttt_dist_overlap *ttt_dist_overlap_begin(real *buf, size_t n);
void ttt_dist_overlap_chunk(size_t offset, size_t n, void *ctx);
int ttt_dist_overlap_end(ttt_dist_overlap *ov);

/* In-place sum over the ranks of v[n] doubles (losses, counters, flags). */
int ttt_dist_allreduce_sum(double *v, int n);

/* Broadcasts n bytes from root to every rank (chunked, any size). */
int ttt_dist_bcast(void *buf, size_t n, int root);

int ttt_dist_barrier(void);

/* 1 if x is the same on every rank, else 0 (a collective: every rank gets
 * the same answer); -1 on an MPI failure. For consistency checks such as a
 * hash of the parameters. */
int ttt_dist_same_u64(uint64_t x);

/* This process's rank among the ranks on its node (for choosing a GPU):
 * the launcher's OMPI_COMM_WORLD_LOCAL_RANK or MPI_LOCALRANKID, else (MPI
 * running) the rank in MPI_Comm_split_type(MPI_COMM_TYPE_SHARED), else
 * SLURM_LOCALID, else 0. A collective when it asks MPI; call it on every
 * rank. SLURM_LOCALID comes last: mpirun inside an sbatch script passes
 * the batch step's 0 on to every rank. */
int ttt_dist_local_rank(void);

/* ---- GPUs (lib/cuda/dist_nccl.cu; builds with CUDA only) ----
 * The same average over NCCL for a float gradient arena in device memory.
 * NCCL is loaded at run time: open fails with a message where it is not
 * installed. The ranks' communicator is built from MPI (call ttt_dist_init
 * first): rank 0's ncclUniqueId is broadcast. Each rank names its own
 * device (ttt_dist_gpu_device). Every step of open that can fail on one
 * rank is agreed on by all of them (an all-reduce of the failures), so
 * either every rank gets a communicator or every rank gets NULL and none
 * waits in a collective for another. A 1-rank communicator is allowed and
 * really runs ncclAllReduce (an identity: ncclAvg over one rank). */
typedef struct ttt_dist_gpu ttt_dist_gpu;
/* 1 if every rank can load libnccl, else 0 + message (a collective). */
int ttt_dist_nccl_loadable(void);
ttt_dist_gpu *ttt_dist_gpu_open(int device);                                       /* NULL + message */
/* ncclAllReduce(ncclAvg, float) in place over dev[n] on stream (a
 * cudaStream_t; NULL: the legacy default stream), asynchronously: what runs
 * on that stream afterwards sees the average. */
int ttt_dist_gpu_allreduce_mean(ttt_dist_gpu *g, float *dev, size_t n, void *stream);
void ttt_dist_gpu_close(ttt_dist_gpu *g);

/* ---- choosing the gradient all-reduce of a GPU run (lib/dist_gpu.c) ---- */

/* The device this rank trains on: ttt_dist_local_rank() % ndev (0 if
 * ndev < 1). A collective (see ttt_dist_local_rank). */
int ttt_dist_gpu_device(int ndev);

enum { TTT_ALLREDUCE_AUTO, TTT_ALLREDUCE_NCCL, TTT_ALLREDUCE_MPI };

/* For a GPU run on `device` (already chosen), the NCCL communicator that
 * averages the gradient arena, or NULL for the host path (download, MPI
 * all-reduce, upload). Every rank calls it and every rank gets the same
 * kind of answer.
 *   TTT_ALLREDUCE_AUTO: NCCL when there are several ranks and NCCL works on
 *     all of them; otherwise NULL, and where NCCL was wanted but failed
 *     (not installed, refused) `note` gets the one-line reason to warn with.
 *   TTT_ALLREDUCE_NCCL: NCCL, also for a single rank; failing is an error.
 *   TTT_ALLREDUCE_MPI: NULL.
 * 0, or -1 with a message (only TTT_ALLREDUCE_NCCL fails). note[0] = 0
 * when there is nothing to say. */
int ttt_dist_gpu_choose(int mode, int device, ttt_dist_gpu **out, char *note, size_t note_size);

#ifdef __cplusplus
}
#endif

#endif
