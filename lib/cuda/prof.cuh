/* prof.cuh - named-region timing of the GPU work, for finding where a step
 * goes. Off unless TTT_CUDA_PROFILE is set (non-empty, not "0"); then each
 * region records two CUDA events on its stream (no synchronisation inside a
 * step) and a table of GPU time per region goes to stderr at exit:
 *
 *     TTT_CUDA_PROFILE=1 ttt-train ... --device cuda
 *
 * Regions nest; a region's time includes its children's. "untracked" is
 * the GPU timeline between the first and last event not covered by a
 * top-level region: host latency, synchronisations, copies. A region on a
 * second stream (the TTT layer backward's ttt.out-grads) overlaps the main
 * stream's, so the regions can add up to more than the timeline. */
#ifndef TTT_CUDA_PROF_CUH
#define TTT_CUDA_PROF_CUH

#include <cuda_runtime.h>

void ttt_prof_push(cudaStream_t s, const char *name);   /* name: a string literal */
void ttt_prof_pop(cudaStream_t s);
/* Ends the innermost region and starts `name` at its level: sections in a row. */
static inline void ttt_prof_next(cudaStream_t s, const char *name) { ttt_prof_pop(s); ttt_prof_push(s, name); }

struct ttt_prof_scope {
    cudaStream_t s;
    ttt_prof_scope(cudaStream_t s_, const char *name) : s(s_) { ttt_prof_push(s, name); }
    ~ttt_prof_scope() { ttt_prof_pop(s); }
};
#define TTT_PROF_CAT2(a, b) a##b
#define TTT_PROF_CAT(a, b) TTT_PROF_CAT2(a, b)
/* Times the rest of the enclosing C++ scope. */
#define TTT_PROF(stream, name) ttt_prof_scope TTT_PROF_CAT(prof_scope_, __LINE__)(stream, name)

#endif
