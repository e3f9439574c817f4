/* adamw.h - the outer optimizer of the reference recipe (spec section 10):
 * optax.adamw (scale_by_adam, add_decayed_weights, scale_by_learning_rate)
 * with global-norm gradient clipping in front of it.
 *
 * Per element, with t = the 1-based update count:
 *   g  = grad * grad_scale                 (clip factor, 1/accum)
 *   m  = b1 m + (1-b1) g
 *   v  = b2 v + (1-b2) g^2
 *   p -= lr * ( (m/(1-b1^t)) / (sqrt(v/(1-b2^t)) + eps) + wd p )
 * Weight decay applies to every parameter (the recipe excludes none).
 * params, m, v are updated in place (=); grads are only read.
 * Results do not depend on the thread count.
 */
#ifndef TTT_ADAMW_H
#define TTT_ADAMW_H

#include <stddef.h>

#include "../real.h"

typedef struct {
    double beta1, beta2, eps, weight_decay;
} ttt_adamw_params;

/* The recipe's values: 0.9, 0.95, 1e-8, 0.1. */
ttt_adamw_params ttt_adamw_defaults(void);

/* params, grads, m, v: [n]; t >= 1. */
void ttt_adamw_update(real *params, const real *grads, real *m, real *v, size_t n,
                      const ttt_adamw_params *hp, double lr, double grad_scale, long long t);

/* L2 norm of g [n], accumulated in double over fixed chunks so the value is
 * the same for any number of threads. */
double ttt_grad_norm(const real *g, size_t n);

/* The factor that global-norm clipping applies: 1 when norm <= max_norm
 * (or max_norm <= 0: clipping off), else max_norm / norm (optax
 * clip_by_global_norm). */
double ttt_clip_factor(double norm, double max_norm);

#endif
