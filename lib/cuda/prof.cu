/* prof.cu - named-region GPU timing (prof.cuh says how to use it). Events
 * come from a fixed pool; records are drained (synchronised and summed)
 * whenever the pool runs low between top-level regions, and at exit. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "prof.cuh"

#define PROF_RECS 8192
#define PROF_NAMES 256
#define PROF_DEPTH 16

struct prof_rec { const char *name; int depth, parent; cudaEvent_t a, b; };   /* parent: record index, -1 */
struct prof_agg { const char *name; int depth, parent; double ms; long calls; };   /* parent: agg index */

static int prof_on = -1;
static prof_rec recs[PROF_RECS];
static int nrec, nmade, depth, stack_[PROF_DEPTH], dropped, rec_agg[PROF_RECS];
static prof_agg aggs[PROF_NAMES];
static int nagg;
static double span_ms, top_ms;

/* The row of a region: same name under the same parent row (-1 if no
 * row is left). */
static int agg_of(const char *name, int d, int parent)
{
    for (int i = 0; i < nagg; i++)
        if (aggs[i].parent == parent && !strcmp(aggs[i].name, name)) return i;
    if (nagg == PROF_NAMES) return -1;
    aggs[nagg] = prof_agg{name, d, parent, 0.0, 0};
    return nagg++;
}

/* Sum the finished records; all are closed (called at depth 0). */
static void drain(void)
{
    if (nrec == 0) return;
    cudaEventSynchronize(recs[nrec - 1].b);
    float ms;
    if (cudaEventElapsedTime(&ms, recs[0].a, recs[nrec - 1].b) == cudaSuccess) span_ms += ms;
    for (int i = 0; i < nrec; i++) {   /* parents come before their children */
        int up = recs[i].parent >= 0 ? rec_agg[recs[i].parent] : -1;
        rec_agg[i] = recs[i].parent >= 0 && up < 0 ? -1 : agg_of(recs[i].name, recs[i].depth, up);
        if (cudaEventElapsedTime(&ms, recs[i].a, recs[i].b) != cudaSuccess || rec_agg[i] < 0) continue;
        aggs[rec_agg[i]].ms += ms;
        aggs[rec_agg[i]].calls++;
        if (recs[i].depth == 0) top_ms += ms;
    }
    nrec = 0;
    cudaGetLastError();
}

/* Rows under `parent` in order of first appearance, each followed by its own. */
static void print_rows(int parent)
{
    for (int i = 0; i < nagg; i++) {
        if (aggs[i].parent != parent) continue;
        char label[64];
        snprintf(label, sizeof label, "%*s%s", 2 * aggs[i].depth, "", aggs[i].name);
        fprintf(stderr, "%-36s %8ld %12.3f %10.4f %7.2f\n", label, aggs[i].calls, aggs[i].ms,
                aggs[i].ms / aggs[i].calls, span_ms > 0 ? 100.0 * aggs[i].ms / span_ms : 0.0);
        print_rows(i);
    }
}

static void report(void)
{
    drain();
    if (nagg == 0) return;
    fprintf(stderr, "\nGPU time by region (TTT_CUDA_PROFILE; a region includes its children)\n");
    fprintf(stderr, "%-36s %8s %12s %10s %7s\n", "region", "calls", "total ms", "ms/call", "%");
    print_rows(-1);
    fprintf(stderr, "%-36s %8s %12.3f %10s %7.2f\n", "untracked", "", span_ms - top_ms, "",
            span_ms > 0 ? 100.0 * (span_ms - top_ms) / span_ms : 0.0);
    if (dropped) fprintf(stderr, "(%d regions not timed: too deep or too many open)\n", dropped);
}

static int enabled(void)
{
    if (prof_on < 0) {
        const char *e = getenv("TTT_CUDA_PROFILE");
        prof_on = e && *e && strcmp(e, "0") != 0;
        if (prof_on) atexit(report);
    }
    return prof_on;
}

void ttt_prof_push(cudaStream_t s, const char *name)
{
    if (!enabled()) return;
    if (depth == 0 && nrec > PROF_RECS - 512) drain();
    if (depth >= PROF_DEPTH || nrec == PROF_RECS) {
        if (depth < PROF_DEPTH) stack_[depth] = -1;
        dropped++;
        depth++;
        return;
    }
    prof_rec *r = &recs[nrec];
    if (nrec == nmade) {   /* events made once, reused after each drain */
        cudaEventCreate(&r->a);
        cudaEventCreate(&r->b);
        nmade++;
    }
    r->name = name;
    r->depth = depth;
    r->parent = depth ? stack_[depth - 1] : -1;
    cudaEventRecord(r->a, s);
    stack_[depth++] = nrec++;
}

void ttt_prof_pop(cudaStream_t s)
{
    if (!enabled() || depth == 0) return;
    depth--;
    if (depth >= PROF_DEPTH || stack_[depth] < 0) return;
    cudaEventRecord(recs[stack_[depth]].b, s);
}
