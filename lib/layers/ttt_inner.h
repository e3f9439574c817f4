/* ttt_inner.h - the steps TTT-Linear and TTT-MLP inner loops share
 * (ttt_linear.c, ttt_mlp.c): the dual form's r x r attention matrix and its
 * backward, the output out = q + LN(zbar) and its backward, and the
 * backward of eta_ij = tau_i lr_j. Rows are r tokens of one mini-batch.
 */
#ifndef TTT_INNER_H
#define TTT_INNER_H

#include "../real.h"
#include "layernorm.h"
#include "ttt_linear.h"   /* TTT_INNER_LN_EPS */
#include "ttt_mm.h"

/* A_ij = x_i.y_j, M_ij = tau_i lr_j (A_ij + 1) for j <= i, 0 above the
 * diagonal; X and Y are [r,n]. */
static inline void ttt_attn_matrix(real *A, real *M, const real *X, const real *Y, int n,
                                   const real *tau, const real *lr, int r)
{
    mm_nt(A, r, X, n, Y, n, r, r, n, 1, 0);     /* vectorised dot products; the upper half is dropped */
    for (int i = 0; i < r; i++)
        for (int j = 0; j < r; j++) {
            if (j > i) { A[i * r + j] = 0; M[i * r + j] = 0; continue; }
            M[i * r + j] = tau[i] * lr[j] * (A[i * r + j] + 1);
        }
}

/* Backward of ttt_attn_matrix's M: deta += dM (.) (A + 1) and
 * dM <- dA = dM (.) eta, lower triangle only. */
static inline void ttt_attn_backward(real *deta, real *dM, const real *A, const real *tau,
                                     const real *lr, int r)
{
    for (int i = 0; i < r; i++)
        for (int j = 0; j < r; j++) {
            if (j > i) { dM[i * r + j] = 0; continue; }
            real dm = dM[i * r + j];
            deta[i * r + j] += dm * (A[i * r + j] + 1);
            dM[i * r + j] = dm * tau[i] * lr[j];
        }
}

/* out = Q + LN(Zb), rows of out ldo apart */
static inline void ttt_out_forward(real *out, int ldo, const real *Zb, const real *Q,
                                   const real *gamma, const real *beta, int r, int D)
{
    for (int i = 0; i < r; i++) {
        real *o = out + (size_t)i * ldo;
        ln_row_forward(o, NULL, NULL, Zb + (size_t)i * D, gamma, beta, D, TTT_INNER_LN_EPS);
        for (int c = 0; c < D; c++) o[c] += Q[(size_t)i * D + c];
    }
}

/* Backward of ttt_out_forward: dZb and dQ are set, dgamma and dbeta
 * accumulate; rows of dout lddo apart. */
static inline void ttt_out_backward(real *dZb, real *dQ, real *dgamma, real *dbeta,
                                    const real *dout, int lddo, const real *Zb,
                                    const real *gamma, const real *beta, int r, int D)
{
    for (int i = 0; i < r; i++) {
        real mean, rstd, y[D];
        ln_row_forward(y, &mean, &rstd, Zb + (size_t)i * D, gamma, beta, D, TTT_INNER_LN_EPS);
        ln_row_backward(dZb + (size_t)i * D, dgamma, dbeta, dout + (size_t)i * lddo,
                        Zb + (size_t)i * D, mean, rstd, gamma, D);
        for (int c = 0; c < D; c++) dQ[(size_t)i * D + c] = dout[(size_t)i * lddo + c];
    }
}

/* Backward of eta_ij = tau_i lr_j (j <= i): dtau accumulates, dlr is set. */
static inline void ttt_eta_backward(real *dtau, real *dlr, const real *deta, const real *tau,
                                    const real *lr, int r)
{
    for (int j = 0; j < r; j++) dlr[j] = 0;
    for (int i = 0; i < r; i++)
        for (int j = 0; j <= i; j++) {
            dtau[i] += deta[i * r + j] * lr[j];
            dlr[j] += deta[i * r + j] * tau[i];
        }
}

#endif
