/* ttt_mlp.h - the inner loop of TTT-MLP for one (batch element, head):
 * f(x) = x + LN_{gamma,beta}(gelu(x W1 + b1) W2 + b2) (spec 3), dual form over
 * one mini-batch (spec 5), its hand-derived backward (spec 8.3) and the
 * primal one-token form used for decoding (spec 7.1).
 *
 * Fast-weight state S (and dS, and the running sum A of decoding) is one
 * block of ttt_mlp_state_size(D, F) reals: W1 [D,F], b1 [F], W2 [F,D], b2 [D].
 * Q, K, V [r,D] contiguous; tau [r], lr [r] (eta_ij = tau_i lr_j).
 * scr: ttt_mlp_scratch_size(r, D, F) reals, owned by the caller (4F + 4D
 * suffice for the primal functions).
 */
#ifndef TTT_MLP_H
#define TTT_MLP_H

#include <stddef.h>
#include "../real.h"
#include "ttt_linear.h"

size_t ttt_mlp_state_size(int D, int F);
size_t ttt_mlp_scratch_size(int r, int D, int F);

/* out rows [r] with stride ldo = Q + LN(Zbar2); S: S_n in, S_{n+1} out. */
void ttt_mlp_forward(real *out, int ldo, real *S, const real *Q, const real *K, const real *V,
                     const real *tau, const real *lr, const real *gamma, const real *beta,
                     int r, int D, int F, real *scr);

/* dQ, dK, dV [r,D] and dlr [r] (=); dtau [r], dgamma, dbeta [D] (+=);
 * dS: dS_{n+1} in, dS_n out. dout rows with stride lddo; S = S_n. */
void ttt_mlp_backward(real *dQ, real *dK, real *dV, real *dtau, real *dlr, real *dgamma,
                      real *dbeta, real *dS, const real *dout, int lddo, const real *S,
                      const real *Q, const real *K, const real *V, const real *tau,
                      const real *lr, const real *gamma, const real *beta, int r, int D, int F,
                      real *scr);

/* Primal form, one token: A += lr * grad l(S; k, v) (gradient at S = S_n). */
void ttt_mlp_grad_acc(const ttt_fast_weights *A, const ttt_fast_weights *S, const real *k,
                      const real *v, real lr, const real *gamma, const real *beta, int D, int F,
                      real *scr);
/* out[D] = q + LN(f_res(q; S - tau*A)). */
void ttt_mlp_apply(real *out, const ttt_fast_weights *S, const ttt_fast_weights *A, real tau,
                   const real *q, const real *gamma, const real *beta, int D, int F, real *scr);

#endif
