/* eval.h - held-out evaluation of a model on a token dataset: mean loss,
 * perplexity, bits per byte, and loss by token position (the paper's
 * "loss vs token index" figure).
 *
 * The evaluated stream is the dataset's tokens in order (shards in sorted
 * name order, document boundaries included as eot tokens). It is cut into
 * consecutive non-overlapping windows: window w reads tokens
 * [w*T, w*T + T] (T+1 tokens), feeds the first T from the model's initial
 * state (fresh fast weights) and scores the next-token targets, i.e.
 * tokens w*T+1 .. w*T+T. Every target after the first token is scored
 * exactly once. The last window is shorter when fewer than T targets
 * remain; it is evaluated, not dropped. --max-tokens caps the number of
 * targets, cutting the last window the same way.
 *
 * Results do not depend on the batch size: windows are independent, and
 * losses are summed in double in window order whatever B is. (The forward
 * pass's matrix products may round a float32 ulp differently for another
 * batch shape; the means agree to ~1e-9 relative, far below the printed
 * digits.)
 */
#ifndef TTT_EVAL_H
#define TTT_EVAL_H

#include <stdint.h>

#include "model.h"   /* ttt_model */
#include "shard.h"   /* ttt_dataset */

typedef struct {
    int ctx;                 /* T: window length, > 0 */
    int batch;               /* B: windows per forward, > 0 */
    uint64_t max_targets;    /* 0 = all */
    /* called after each forward (may be NULL) */
    void (*progress)(void *ud, uint64_t done, uint64_t total);
    void *ud;
    /* Optional (NULL: the CPU model m): a forward elsewhere, e.g. the GPU
     * model of ttt-eval --device cuda, giving the per-token losses [B,T]
     * of ids/targets (valid until its next call). 0 or -1 with ttt_errmsg. */
    int (*forward)(void *fud, const int32_t *ids, const int32_t *targets, int B, int T, const float **losses);
    void *fud;
} ttt_eval_opts;

/* Octave buckets of the target index i (1-based inside its window):
 * bucket b holds i in [2^b, 2^(b+1) - 1], capped at T. */
typedef struct {
    int lo, hi;              /* target index range, inclusive */
    uint64_t count;          /* targets scored in this bucket */
    double loss;             /* their mean loss, nats */
} ttt_eval_bucket;

typedef struct {
    uint64_t targets;        /* tokens evaluated (scored targets) */
    uint64_t windows;
    double loss_sum;         /* nats */
    double loss;             /* mean, nats */
    double ppl;              /* exp(loss) */
    double bytes;            /* text bytes the targets stand for */
    int bytes_scaled;        /* 1: part of the data, bytes scaled by targets/(tokens-1) */
    double bpb;              /* loss_sum / ln 2 / bytes */
    int nbuckets;
    ttt_eval_bucket *buckets;
} ttt_eval_result;

/* Runs the evaluation. Tokens must be below the model's vocabulary.
 * 0, or -1 with ttt_errmsg. r is valid (and owns memory) on success. */
int ttt_eval_run(ttt_model *m, ttt_dataset *d, const ttt_eval_opts *o, ttt_eval_result *r);
void ttt_eval_result_free(ttt_eval_result *r);

/* Number of octave buckets for a window length T (floor(log2 T) + 1). */
int ttt_eval_nbuckets(int T);

#endif
