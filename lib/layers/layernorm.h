/* layernorm.h - row-wise LayerNorm pieces of the TTT layer (spec 0, 3, 8.3):
 * the plain LN (post_norm and the inner output LN) and the fused
 * "LN + l2 loss" inner gradient LNl2grad with its second-order backward.
 * Biased variance, sigma = sqrt(var + eps). One row of n values per call.
 * Backward: activation gradients overwrite (=), dgamma/dbeta accumulate (+=).
 */
#ifndef TTT_LAYERNORM_H
#define TTT_LAYERNORM_H

#include "../real.h"

/* y[n] = gamma * (x - mean)/sigma + beta; *mean and *rstd = 1/sigma if non-NULL. */
void ln_row_forward(real *y, real *mean, real *rstd, const real *x, const real *gamma,
                    const real *beta, int n, double eps);
/* dx[n] (=), dgamma/dbeta[n] (+=, may be NULL) from dy[n]; x, mean, rstd from the forward. */
void ln_row_backward(real *dx, real *dgamma, real *dbeta, const real *dy, const real *x,
                     real mean, real rstd, const real *gamma, int n);

/* G[n] = gradient w.r.t. z of 0.5*|LN(z) - target|^2 (the reference ln_fused_l2_bwd). */
void ln_l2grad_row(real *G, const real *z, const real *target, const real *gamma,
                   const real *beta, int n, double eps);
/* Backward of ln_l2grad_row: dz, dtarget (=), dgamma, dbeta (+=) from dG. */
void ln_l2grad_row_backward(real *dz, real *dtarget, real *dgamma, real *dbeta, const real *dG,
                            const real *z, const real *target, const real *gamma,
                            const real *beta, int n, double eps);

#endif
