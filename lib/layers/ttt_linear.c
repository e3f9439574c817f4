/* ttt_linear.c - TTT-Linear inner loop: dual-form forward of one mini-batch,
 * its backward (spec 8.3, second-order terms included), and the primal
 * one-token form for decoding. See ttt_linear.h for layouts.
 *
 * With eta_ij = tau_i lr_j (j <= i) and A = tril(Q K^T), the dual form's
 * two correction terms are folded into one r x r matrix
 *   M = eta (.) (A + 1),   Zbar = Q W + 1b - M G.
 */
#include "ttt_linear.h"
#include "layernorm.h"
#include "ttt_inner.h"
#include "ttt_mm.h"

size_t ttt_linear_state_size(int D) { return (size_t)D * D + D; }

size_t ttt_linear_scratch_size(int r, int D) { return (size_t)12 * r * D + (size_t)6 * r * r + 4 * (size_t)D; }

/* ttt_inner_grad: Z = K W + 1b; G = LNl2grad(Z, V - K) row-wise; Tg = V - K */
static void ttt_inner_grad(real *Z, real *G, real *Tg, const real *S, const real *K, const real *V,
                           const real *gamma, const real *beta, int r, int D)
{
    const real *W = S, *b = S + (size_t)D * D;
    mm_nn(Z, D, K, D, W, D, r, D, D, 1, 0);
    for (int i = 0; i < r; i++) {
        real *z = Z + (size_t)i * D, *t = Tg + (size_t)i * D;
        for (int c = 0; c < D; c++) { z[c] += b[c]; t[c] = V[(size_t)i * D + c] - K[(size_t)i * D + c]; }
        ln_l2grad_row(G + (size_t)i * D, z, t, gamma, beta, D, TTT_INNER_LN_EPS);
    }
}

/* ttt_inner_forward (pre-LN part): Zbar = Q W + 1b - M G */
static void ttt_inner_forward(real *Zb, const real *S, const real *Q, const real *M, const real *G,
                              int r, int D)
{
    const real *W = S, *b = S + (size_t)D * D;
    mm_nn(Zb, D, Q, D, W, D, r, D, D, 1, 0);
    mm_nn(Zb, D, M, r, G, D, r, D, r, -1, 1);
    for (int i = 0; i < r; i++)
        for (int c = 0; c < D; c++) Zb[(size_t)i * D + c] += b[c];
}

/* ttt_inner_update: W' = W - K^T diag(e) G, b' = b - e^T G, e_j = tau_{r-1} lr_j.
 * Ge [r,D] is scratch for diag(e) G. */
static void ttt_inner_update(real *S, const real *K, const real *G, real *restrict Ge,
                             const real *tau, const real *lr, int r, int D)
{
    real *W = S, *b = S + (size_t)D * D;
    for (int j = 0; j < r; j++) {
        real e = tau[r - 1] * lr[j];
        for (int c = 0; c < D; c++) Ge[(size_t)j * D + c] = e * G[(size_t)j * D + c];
    }
    mm_tn(W, D, K, D, Ge, D, D, D, r, -1, 1);
    mm_colsum(b, Ge, D, r, D, -1, 1);
}

void ttt_linear_forward(real *out, int ldo, real *S, const real *Q, const real *K, const real *V,
                        const real *tau, const real *lr, const real *gamma, const real *beta,
                        int r, int D, real *scr)
{
    real *Z = scr, *G = Z + r * D, *Tg = G + r * D, *Zb = Tg + r * D;
    real *A = Zb + r * D, *M = A + r * r;
    ttt_inner_grad(Z, G, Tg, S, K, V, gamma, beta, r, D);
    ttt_attn_matrix(A, M, Q, K, D, tau, lr, r);
    ttt_inner_forward(Zb, S, Q, M, G, r, D);
    ttt_out_forward(out, ldo, Zb, Q, gamma, beta, r, D);   /* out = Q + LN(Zbar) */
    ttt_inner_update(S, K, G, M + r * r, tau, lr, r, D);
}

void ttt_linear_backward(real *dQ, real *dK, real *dV, real *dtau, real *dlr, real *dgamma,
                         real *dbeta, real *dS, const real *dout, int lddo, const real *S,
                         const real *Q, const real *K, const real *V, const real *tau,
                         const real *lr, const real *gamma, const real *beta, int r, int D,
                         real *scr)
{
    const real *W = S;
    real *dW = dS, *db = dS + (size_t)D * D;
    real *Z = scr, *G = Z + r * D, *Tg = G + r * D, *Zb = Tg + r * D;
    real *A = Zb + r * D, *M = A + r * r;
    real *dZb = M + r * r, *dG = dZb + r * D, *tmp = dG + r * D, *dZ = tmp + r * D;
    real *dM = dZ + r * D, *deta = dM + r * r;
    ttt_inner_grad(Z, G, Tg, S, K, V, gamma, beta, r, D);
    ttt_attn_matrix(A, M, Q, K, D, tau, lr, r);
    ttt_inner_forward(Zb, S, Q, M, G, r, D);
    for (int i = 0; i < r * r; i++) deta[i] = 0;

    /* W' = W - K^T diag(e) G, b' = b - e^T G  (reads dW', db' before they are accumulated into)
     *   dG = -diag(e)(K dW' + 1 db');  dK = -diag(e) G dW'^T;  de_j = -(k_j dW' + db').g_j */
    mm_nn(tmp, D, K, D, dW, D, r, D, D, 1, 0);
    mm_nt(dK, D, G, D, dW, D, r, D, D, 1, 0);
    for (int j = 0; j < r; j++) {
        real e = tau[r - 1] * lr[j], de = 0;
        for (int c = 0; c < D; c++) {
            real t = tmp[j * D + c] + db[c];
            de -= t * G[j * D + c];
            dG[j * D + c] = -e * t;
            dK[j * D + c] *= -e;
        }
        deta[(r - 1) * r + j] += de;
    }

    /* out = Q + LN(Zbar) */
    ttt_out_backward(dZb, dQ, dgamma, dbeta, dout, lddo, Zb, gamma, beta, r, D);
    /* Zbar = Q W + 1b - M G,  M = eta (.) (A + 1) */
    mm_nt(dQ, D, dZb, D, W, D, r, D, D, 1, 1);
    mm_tn(dW, D, Q, D, dZb, D, D, D, r, 1, 1);
    mm_colsum(db, dZb, D, r, D, 1, 1);
    mm_nt(dM, r, dZb, D, G, D, r, r, D, -1, 0);
    mm_tn(dG, D, M, r, dZb, D, r, D, r, -1, 1);
    /* deta = dM (.) (A+1); dA = dM (.) eta (kept in dM) */
    ttt_attn_backward(deta, dM, A, tau, lr, r);
    /* A = tril(Q K^T) */
    mm_nn(dQ, D, dM, r, K, D, r, D, r, 1, 1);
    mm_tn(dK, D, dM, r, Q, D, r, D, r, 1, 1);

    /* G = LNl2grad(Z, V - K):  dV = dT, dK -= dT */
    for (int i = 0; i < r; i++) {
        ln_l2grad_row_backward(dZ + (size_t)i * D, dV + (size_t)i * D, dgamma, dbeta, dG + (size_t)i * D,
                               Z + (size_t)i * D, Tg + (size_t)i * D, gamma, beta, D, TTT_INNER_LN_EPS);
        for (int c = 0; c < D; c++) dK[(size_t)i * D + c] -= dV[(size_t)i * D + c];
    }
    /* Z = K W + 1b */
    mm_nt(dK, D, dZ, D, W, D, r, D, D, 1, 1);
    mm_tn(dW, D, K, D, dZ, D, D, D, r, 1, 1);
    mm_colsum(db, dZ, D, r, D, 1, 1);

    /* eta_ij = tau_i lr_j */
    ttt_eta_backward(dtau, dlr, deta, tau, lr, r);
}

/* g = LNl2grad(k W + b, v - k);  A_W += lr k^T g,  A_b += lr g */
void ttt_linear_grad_acc(const ttt_fast_weights *A, const ttt_fast_weights *S, const real *k,
                         const real *v, real lr, const real *gamma, const real *beta, int D,
                         real *scr)
{
    real *z = scr, *t = z + D, *g = t + D;
    mm_nn(z, D, k, D, S->W1, D, 1, D, D, 1, 0);
    for (int c = 0; c < D; c++) { z[c] += S->b1[c]; t[c] = v[c] - k[c]; }
    ln_l2grad_row(g, z, t, gamma, beta, D, TTT_INNER_LN_EPS);
    for (int a = 0; a < D; a++) {
        real lk = lr * k[a];
        real *row = A->W1 + (size_t)a * D;
        for (int c = 0; c < D; c++) row[c] += lk * g[c];
    }
    for (int c = 0; c < D; c++) A->b1[c] += lr * g[c];
}

/* zbar = q (W - tau A_W) + (b - tau A_b);  out = q + LN(zbar) */
void ttt_linear_apply(real *out, const ttt_fast_weights *S, const ttt_fast_weights *A, real tau,
                      const real *q, const real *gamma, const real *beta, int D, real *scr)
{
    real *z = scr, *za = z + D;
    mm_nn(z, D, q, D, S->W1, D, 1, D, D, 1, 0);
    mm_nn(za, D, q, D, A->W1, D, 1, D, D, 1, 0);
    for (int c = 0; c < D; c++) z[c] += S->b1[c] - tau * (za[c] + A->b1[c]);
    ttt_out_forward(out, D, z, q, gamma, beta, 1, D);
}
