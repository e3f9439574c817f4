/* rmsnorm.h - RMSNorm over the last dimension (seq_norm, ffn_norm, conv.norm,
 * model.norm):  out = w * x / sqrt(mean(x^2) + eps)   (spec section 0).
 * Backward: dx is overwritten (=), dw accumulates (+=). */
#ifndef TTT_RMSNORM_H
#define TTT_RMSNORM_H

#include "../real.h"

/* out [N,C], rstd [N] = 1/sqrt(mean(x^2)+eps) (kept for the backward; may be
 * NULL when no backward follows); x [N,C], w [C]. */
void rmsnorm_forward(real *out, real *rstd, const real *x, const real *w, int N, int C, double eps);
/* dx [N,C] (=), dw [C] (+=) from dout [N,C]; x, w, rstd as in the forward. */
void rmsnorm_backward(real *dx, real *dw, const real *dout, const real *x, const real *w,
                      const real *rstd, int N, int C);

#endif
