/* sampler.h - choosing the next token from logits: greedy (argmax),
 * temperature, top-k and top-p (nucleus), in that order, with an explicit
 * ttt_rng state so that a run can be saved and resumed bit-exactly.
 *
 * Deterministic by construction: probabilities are computed in double from
 * the logits, candidates are ordered by probability then by id, and one
 * uniform draw is consumed per sampled token (none when greedy). The same
 * logits, parameters and RNG state always give the same token.
 *
 * Does not own the logits and never allocates per token (scratch is sized
 * at init).
 */
#ifndef TTT_SAMPLER_H
#define TTT_SAMPLER_H

#include <stdint.h>

#include "real.h"   /* real */
#include "rng.h"    /* ttt_rng */

typedef struct {
    double temperature;   /* > 0; ignored when greedy */
    int top_k;            /* keep the k most likely tokens; 0 = all */
    double top_p;         /* keep the smallest set with mass >= p; 1 = all; (0, 1] */
    int greedy;           /* argmax (lowest id on ties); also when temperature == 0 */
} ttt_sampler_params;

typedef struct {
    ttt_sampler_params p;
    ttt_rng rng;
    int vocab;
    double *prob;     /* [V] scratch */
    int *idx;         /* [V] scratch */
} ttt_sampler;

/* Defaults: temperature 1, top_k 0, top_p 1, not greedy. */
void ttt_sampler_defaults(ttt_sampler_params *p);
/* Checks the ranges above; -1 with a message (usage class) if out of range. */
int ttt_sampler_check(const ttt_sampler_params *p);
/* 0 or -1 (bad parameters, out of memory). */
int ttt_sampler_init(ttt_sampler *s, int vocab, const ttt_sampler_params *p, uint64_t seed);
void ttt_sampler_free(ttt_sampler *s);

/* The next token from logits [V]. Non-finite logits count as -inf; if every
 * logit is -inf/NaN the lowest id is returned. */
int ttt_sampler_sample(ttt_sampler *s, const real *logits);
/* argmax, lowest id on ties. */
int ttt_sampler_argmax(const real *logits, int n);

#endif
