/* model_check.h - helpers the whole-model tests share (test_model.c,
 * test_model_arch.c): a random batch, the loss, the analytic gradient, a
 * central finite difference of one parameter against it, and the logits of
 * decoding against the full forward's. Float64 build (real = double). */
#ifndef TTT_MODEL_CHECK_H
#define TTT_MODEL_CHECK_H

#include "check.h"
#include "../../lib/model.h"
#include "../../lib/rng.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ids [B,T] uniform over V tokens; tg (unless NULL) the next token of each
 * row, -1 at its end. */
static inline void random_batch(ttt_rng *rng, int32_t *ids, int32_t *tg, int B, int T, int V)
{
    for (int i = 0; i < B * T; i++) ids[i] = (int32_t)ttt_rng_below(rng, V);
    if (!tg) return;
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) tg[b * T + t] = t + 1 < T ? ids[b * T + t + 1] : -1;
}

static inline double model_loss(ttt_model *m, const int32_t *ids, const int32_t *tg, int B, int T)
{
    double loss = NAN;
    CHECK(ttt_model_forward(m, ids, tg, B, T, &loss) == 0);
    return loss;
}

/* A malloc'ed copy of the gradient of one forward + backward from zero. */
static inline real *model_grad(ttt_model *m, const int32_t *ids, const int32_t *tg, int B, int T)
{
    size_t n = ttt_model_num_params(m);
    model_loss(m, ids, tg, B, T);
    ttt_model_zero_grad(m);
    CHECK(ttt_model_backward(m) == 0);
    real *grad = malloc(n * sizeof *grad);
    memcpy(grad, ttt_model_grads(m), n * sizeof *grad);
    return grad;
}

/* The parameter index of tensor t's entry with the largest |grad|. */
static inline size_t largest_grad(const real *grad, const ttt_tensor *t)
{
    size_t best = t->offset;
    for (size_t k = t->offset; k < t->offset + t->numel; k++)
        if (fabs(grad[k]) > fabs(grad[best])) best = k;
    return best;
}

/* 1 when the central difference (step h) of the loss at parameter k, an
 * entry of tensor t, is grad[k] within 1e-9 + 1e-6 |fd|; else 0 and a line
 * naming the entry. The parameter is restored. */
static inline int fd_agrees(ttt_model *m, const int32_t *ids, const int32_t *tg, int B, int T,
                            const ttt_tensor *t, size_t k, const real *grad, double h)
{
    real *p = ttt_model_params(m), s = p[k];
    p[k] = s + h; double lp = model_loss(m, ids, tg, B, T);
    p[k] = s - h; double lm = model_loss(m, ids, tg, B, T);
    p[k] = s;
    double fd = (lp - lm) / (2 * h);
    if (fabs(fd - grad[k]) <= 1e-9 + 1e-6 * fabs(fd)) return 1;
    fprintf(stderr, "  fd mismatch %s[%zu]: analytic %.10g fd %.10g\n", t->name, k - t->offset,
            grad[k], fd);
    return 0;
}

/* A malloc'ed copy of the full forward's logits [B,T,V] for ids. */
static inline real *full_logits(ttt_model *m, const int32_t *ids, int B, int T, int V)
{
    CHECK(ttt_model_forward(m, ids, NULL, B, T, NULL) == 0);
    real *full = malloc((size_t)B * T * V * sizeof *full);
    memcpy(full, ttt_model_logits(m), (size_t)B * T * V * sizeof *full);
    return full;
}

/* max |lg - full| where lg [B,P,V] are decoded logits of positions
 * pos..pos+P-1 and full [B,T,V] the full forward's. */
static inline double logits_diff(const real *lg, const real *full, int B, int P, int T, long pos,
                                 int V)
{
    double worst = 0;
    for (int b = 0; b < B; b++)
        for (int t = 0; t < P; t++)
            for (int v = 0; v < V; v++)
                worst = fmax(worst, fabs(lg[((size_t)b * P + t) * V + v] -
                                         full[((size_t)b * T + pos + t) * V + v]));
    return worst;
}

#endif
