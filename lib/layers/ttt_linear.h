/* ttt_linear.h - the inner loop of TTT-Linear for one (batch element, head):
 * f(x) = x + LN_{gamma,beta}(x W + b) (spec 3), dual form over one
 * mini-batch (spec 5), its hand-derived backward (spec 8.3) and the primal
 * one-token form used for decoding (spec 7.1).
 *
 * Fast-weight state S (and its gradient dS, and the running sum A of
 * decoding) is one block of ttt_linear_state_size(D) reals: W [D,D], b [D].
 * Q, K, V are the r rows of the mini-batch, [r,D] contiguous; tau [r] the
 * token factors, lr [r] the per-token learning rates (eta_ij = tau_i lr_j).
 * scr: ttt_linear_scratch_size(r, D) reals, owned by the caller (4D suffice
 * for the primal functions).
 */
#ifndef TTT_LINEAR_H
#define TTT_LINEAR_H

#include <stddef.h>
#include "../real.h"

#define TTT_INNER_LN_EPS 1e-6

/* Fast weights addressed piecewise (decoding keeps them as separate
 * [B,H,...] tensors): W1 b1 (W2 b2 for the MLP; unused by TTT-Linear). */
typedef struct { real *W1, *b1, *W2, *b2; } ttt_fast_weights;

size_t ttt_linear_state_size(int D);
size_t ttt_linear_scratch_size(int r, int D);

/* out rows [r] with stride ldo = Q + LN(Zbar); S: S_n in, S_{n+1} out. */
void ttt_linear_forward(real *out, int ldo, real *S, const real *Q, const real *K, const real *V,
                        const real *tau, const real *lr, const real *gamma, const real *beta,
                        int r, int D, real *scr);

/* dQ, dK, dV [r,D] and dlr [r] (=); dtau [r], dgamma, dbeta [D] (+=);
 * dS: dS_{n+1} in, dS_n out. dout rows with stride lddo; S = S_n. */
void ttt_linear_backward(real *dQ, real *dK, real *dV, real *dtau, real *dlr, real *dgamma,
                         real *dbeta, real *dS, const real *dout, int lddo, const real *S,
                         const real *Q, const real *K, const real *V, const real *tau,
                         const real *lr, const real *gamma, const real *beta, int r, int D,
                         real *scr);

/* Primal form, one token: A += lr * grad l(S; k, v) (gradient at S = S_n). */
void ttt_linear_grad_acc(const ttt_fast_weights *A, const ttt_fast_weights *S, const real *k,
                         const real *v, real lr, const real *gamma, const real *beta, int D,
                         real *scr);
/* out[D] = q + LN(f_res(q; S - tau*A)). */
void ttt_linear_apply(real *out, const ttt_fast_weights *S, const ttt_fast_weights *A, real tau,
                      const real *q, const real *gamma, const real *beta, int D, real *scr);

#endif
