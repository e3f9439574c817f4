/* ttt_mlp.c - TTT-MLP inner loop: dual-form forward of one mini-batch, its
 * backward (spec 8.3, second-order terms included), and the primal one-token
 * form for decoding. See ttt_mlp.h for layouts.
 *
 * As in ttt_linear.c the two dual-form correction terms of each layer are
 * one r x r matrix: M1 = eta (.) (tril(Q K^T) + 1), M2 = eta (.) (tril(Xb2 X2^T) + 1).
 * The inner gradient uses the truncated gelu' of spec 3 (gelu_trunc_grad);
 * the outer backward differentiates that expression (gelu_trunc_grad2) and
 * the forward gelu exactly (gelu_tanh_grad).
 */
#include <stdlib.h>
#include <string.h>

#include "ttt_mlp.h"
#include "gelu.h"
#include "layernorm.h"
#include "ttt_inner.h"
#include "ttt_linear.h"
#include "ttt_mm.h"

/* AVX-512: in x86-64 GCC builds whose -march lacks it (the default
 * x86-64-v3), ttt_mlp_avx512.c compiles this file a second time with 64-byte
 * vectors in ttt_mm.h, and only the dual-form pair, as *_avx512. The public
 * functions below take that pair where the CPU has AVX-512 (the products run
 * ~1.7x faster); TTT_NO_AVX512=1 in the environment keeps the 32-byte kernels
 * (to test them on such a CPU). */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(__AVX512F__)
#define MLP_HAVE_AVX512 1
#endif
#ifdef TTT_MLP_AVX512_TU
#define MLP_DUAL(name) ttt_mlp_##name##_avx512
#define MLP_DUAL_SCOPE
#else
#define MLP_DUAL(name) mlp_##name##_v3
#define MLP_DUAL_SCOPE static
#endif
void ttt_mlp_forward_avx512(real *out, int ldo, real *S, const real *Q, const real *K, const real *V,
                            const real *tau, const real *lr, const real *gamma, const real *beta,
                            int r, int D, int F, real *scr);
void ttt_mlp_backward_avx512(real *dQ, real *dK, real *dV, real *dtau, real *dlr, real *dgamma,
                             real *dbeta, real *dS, const real *dout, int lddo, const real *S,
                             const real *Q, const real *K, const real *V, const real *tau,
                             const real *lr, const real *gamma, const real *beta, int r, int D,
                             int F, real *scr);

#ifndef TTT_MLP_AVX512_TU
size_t ttt_mlp_state_size(int D, int F) { return (size_t)2 * D * F + F + D; }

size_t ttt_mlp_scratch_size(int r, int D, int F)
{
    return (size_t)16 * r * F + (size_t)12 * r * D + (size_t)8 * r * r + 4 * (size_t)F + 4 * (size_t)D;
}
#endif

typedef struct { real *W1, *b1, *W2, *b2; } mlp_view;

static mlp_view view(const real *S, int D, int F)
{
    mlp_view v;
    v.W1 = (real *)S;
    v.b1 = v.W1 + (size_t)D * F;
    v.W2 = v.b1 + F;
    v.b2 = v.W2 + (size_t)F * D;
    return v;
}

/* Forward intermediates of one mini-batch (recomputed in the backward). */
typedef struct {
    real *Z1, *X2, *Hd, *GW, *G1, *Zb1, *Xb2;    /* [r,F] */
    real *Z2, *G2, *Tg, *Zb2;                    /* [r,D] */
    real *A1, *M1, *A2, *M2;                     /* [r,r] */
} mlp_fwd;

static real *take(real **p, size_t n) { real *q = *p; *p += n; return q; }

static void fwd_alloc(mlp_fwd *f, real **p, int r, int D, int F)
{
    f->Z1 = take(p, (size_t)r * F); f->X2 = take(p, (size_t)r * F); f->Hd = take(p, (size_t)r * F);
    f->GW = take(p, (size_t)r * F); f->G1 = take(p, (size_t)r * F); f->Zb1 = take(p, (size_t)r * F);
    f->Xb2 = take(p, (size_t)r * F);
    f->Z2 = take(p, (size_t)r * D); f->G2 = take(p, (size_t)r * D); f->Tg = take(p, (size_t)r * D);
    f->Zb2 = take(p, (size_t)r * D);
    f->A1 = take(p, (size_t)r * r); f->M1 = take(p, (size_t)r * r);
    f->A2 = take(p, (size_t)r * r); f->M2 = take(p, (size_t)r * r);
}

/* ttt_inner_grad:
 *   Z1 = K W1 + 1b1;  X2 = gelu(Z1);  Z2 = X2 W2 + 1b2;  G2 = LNl2grad(Z2, V - K)
 *   G1 = (G2 W2^T) (.) gelu'(Z1)          (GW = G2 W2^T, Hd = gelu'(Z1) kept) */
static void ttt_inner_grad(mlp_fwd *f, const real *S, const real *K, const real *V,
                           const real *gamma, const real *beta, int r, int D, int F)
{
    mlp_view s = view(S, D, F);
    mm_nn(f->Z1, F, K, D, s.W1, F, r, F, D, 1, 0);
    for (int i = 0; i < r; i++)
        _Pragma("omp simd")
        for (int c = 0; c < F; c++) {
            real z = f->Z1[(size_t)i * F + c] += s.b1[c];
            gelu_and_trunc_grad(z, &f->X2[(size_t)i * F + c], &f->Hd[(size_t)i * F + c]);
        }
    mm_nn(f->Z2, D, f->X2, F, s.W2, D, r, D, F, 1, 0);
    for (int i = 0; i < r; i++) {
        real *z = f->Z2 + (size_t)i * D, *t = f->Tg + (size_t)i * D;
        for (int c = 0; c < D; c++) { z[c] += s.b2[c]; t[c] = V[(size_t)i * D + c] - K[(size_t)i * D + c]; }
        ln_l2grad_row(f->G2 + (size_t)i * D, z, t, gamma, beta, D, TTT_INNER_LN_EPS);
    }
    mm_nt(f->GW, F, f->G2, D, s.W2, D, r, F, D, 1, 0);
    _Pragma("omp simd")
    for (size_t i = 0; i < (size_t)r * F; i++) f->G1[i] = f->GW[i] * f->Hd[i];
}

/* ttt_inner_forward (pre-LN part):
 *   Zb1 = Q W1 + 1b1 - M1 G1;  Xb2 = gelu(Zb1);  Zb2 = Xb2 W2 + 1b2 - M2 G2 */
static void ttt_inner_forward(mlp_fwd *f, const real *S, const real *Q, const real *K,
                              const real *tau, const real *lr, int r, int D, int F)
{
    mlp_view s = view(S, D, F);
    ttt_attn_matrix(f->A1, f->M1, Q, K, D, tau, lr, r);
    mm_nn(f->Zb1, F, Q, D, s.W1, F, r, F, D, 1, 0);
    mm_nn(f->Zb1, F, f->M1, r, f->G1, F, r, F, r, -1, 1);
    for (int i = 0; i < r; i++)
        _Pragma("omp simd")
        for (int c = 0; c < F; c++) {
            real z = f->Zb1[(size_t)i * F + c] += s.b1[c];
            f->Xb2[(size_t)i * F + c] = gelu_tanh(z);
        }
    ttt_attn_matrix(f->A2, f->M2, f->Xb2, f->X2, F, tau, lr, r);
    mm_nn(f->Zb2, D, f->Xb2, F, s.W2, D, r, D, F, 1, 0);
    mm_nn(f->Zb2, D, f->M2, r, f->G2, D, r, D, r, -1, 1);
    for (int i = 0; i < r; i++)
        for (int c = 0; c < D; c++) f->Zb2[(size_t)i * D + c] += s.b2[c];
}

/* ttt_inner_update, e_j = tau_{r-1} lr_j:
 *   W1' = W1 - K^T diag(e) G1,  b1' = b1 - e^T G1,  W2' = W2 - X2^T diag(e) G2,  b2' = b2 - e^T G2
 * as two rank-r products (diag(e) folded into the [r,D] factors eK, eG2 in
 * scratch), one pass over each weight instead of r rank-1 passes. */
static void ttt_inner_update(real *S, const mlp_fwd *f, const real *K, const real *tau,
                             const real *lr, int r, int D, int F, real *scr)
{
    mlp_view s = view(S, D, F);
    real *eK = scr, *eG2 = scr + (size_t)r * D;
    for (int j = 0; j < r; j++) {
        real e = tau[r - 1] * lr[j];
        const real *g1 = f->G1 + (size_t)j * F;
        _Pragma("omp simd")
        for (int c = 0; c < D; c++) {
            eK[(size_t)j * D + c] = e * K[(size_t)j * D + c];
            eG2[(size_t)j * D + c] = e * f->G2[(size_t)j * D + c];
        }
        _Pragma("omp simd")
        for (int c = 0; c < F; c++) s.b1[c] -= e * g1[c];
    }
    mm_tn(s.W1, F, eK, D, f->G1, F, D, F, r, -1, 1);
    mm_tn(s.W2, D, f->X2, F, eG2, D, F, D, r, -1, 1);
    mm_colsum(s.b2, eG2, D, r, D, -1, 1);
}

MLP_DUAL_SCOPE void MLP_DUAL(forward)(real *out, int ldo, real *S, const real *Q, const real *K,
                                      const real *V, const real *tau, const real *lr,
                                      const real *gamma, const real *beta, int r, int D, int F,
                                      real *scr)
{
    mlp_fwd f;
    real *p = scr;
    fwd_alloc(&f, &p, r, D, F);
    ttt_inner_grad(&f, S, K, V, gamma, beta, r, D, F);
    ttt_inner_forward(&f, S, Q, K, tau, lr, r, D, F);
    ttt_out_forward(out, ldo, f.Zb2, Q, gamma, beta, r, D);   /* out = Q + LN(Zb2) */
    ttt_inner_update(S, &f, K, tau, lr, r, D, F, p);   /* p: 2rD reals past the intermediates */
}

MLP_DUAL_SCOPE void MLP_DUAL(backward)(real *dQ, real *dK, real *dV, real *dtau, real *dlr,
                                       real *dgamma, real *dbeta, real *dS, const real *dout,
                                       int lddo, const real *S, const real *Q, const real *K,
                                       const real *V, const real *tau, const real *lr,
                                       const real *gamma, const real *beta, int r, int D, int F,
                                       real *scr)
{
    mlp_fwd f;
    real *p = scr;
    fwd_alloc(&f, &p, r, D, F);
    mlp_view s = view(S, D, F), d = view(dS, D, F);
    real *tF = take(&p, (size_t)r * F), *dG1 = take(&p, (size_t)r * F), *dX2 = take(&p, (size_t)r * F);
    real *dXb2 = take(&p, (size_t)r * F), *dZb1 = take(&p, (size_t)r * F), *dZ1 = take(&p, (size_t)r * F);
    real *tD = take(&p, (size_t)r * D), *dG2 = take(&p, (size_t)r * D), *dZb2 = take(&p, (size_t)r * D);
    real *dZ2 = take(&p, (size_t)r * D);
    real *dM = take(&p, (size_t)r * r), *deta = take(&p, (size_t)r * r);
    ttt_inner_grad(&f, S, K, V, gamma, beta, r, D, F);
    ttt_inner_forward(&f, S, Q, K, tau, lr, r, D, F);
    for (int i = 0; i < r * r; i++) deta[i] = 0;

    /* Updates (read dW1', db1', dW2', db2' before they are accumulated into):
     *   W1' = W1 - K^T diag(e) G1:   dK = -diag(e) G1 dW1'^T;   dG1 = -diag(e)(K dW1' + 1 db1')
     *   W2' = W2 - X2^T diag(e) G2:  dX2 = -diag(e) G2 dW2'^T;  dG2 = -diag(e)(X2 dW2' + 1 db2')
     *   de_j = -(k_j dW1' + db1').g1_j - (x2_j dW2' + db2').g2_j */
    mm_nn(tF, F, K, D, d.W1, F, r, F, D, 1, 0);
    mm_nn(tD, D, f.X2, F, d.W2, D, r, D, F, 1, 0);
    mm_nt(dK, D, f.G1, F, d.W1, F, r, D, F, 1, 0);
    mm_nt(dX2, F, f.G2, D, d.W2, D, r, F, D, 1, 0);
    for (int j = 0; j < r; j++) {
        real e = tau[r - 1] * lr[j], de = 0;
        for (int c = 0; c < F; c++) {
            real t = tF[(size_t)j * F + c] + d.b1[c];
            de -= t * f.G1[(size_t)j * F + c];
            dG1[(size_t)j * F + c] = -e * t;
            dX2[(size_t)j * F + c] *= -e;
        }
        for (int c = 0; c < D; c++) {
            real t = tD[(size_t)j * D + c] + d.b2[c];
            de -= t * f.G2[(size_t)j * D + c];
            dG2[(size_t)j * D + c] = -e * t;
            dK[(size_t)j * D + c] *= -e;
        }
        deta[(r - 1) * r + j] += de;
    }

    /* out = Q + LN(Zb2) */
    ttt_out_backward(dZb2, dQ, dgamma, dbeta, dout, lddo, f.Zb2, gamma, beta, r, D);
    /* Zb2 = Xb2 W2 + 1b2 - M2 G2,  M2 = eta (.) (tril(Xb2 X2^T) + 1) */
    mm_nt(dXb2, F, dZb2, D, s.W2, D, r, F, D, 1, 0);
    mm_tn(d.W2, D, f.Xb2, F, dZb2, D, F, D, r, 1, 1);
    mm_colsum(d.b2, dZb2, D, r, D, 1, 1);
    mm_nt(dM, r, dZb2, D, f.G2, D, r, r, D, -1, 0);
    mm_tn(dG2, D, f.M2, r, dZb2, D, r, D, r, -1, 1);
    ttt_attn_backward(deta, dM, f.A2, tau, lr, r);
    mm_nn(dXb2, F, dM, r, f.X2, F, r, F, r, 1, 1);
    mm_tn(dX2, F, dM, r, f.Xb2, F, r, F, r, 1, 1);
    /* Xb2 = gelu(Zb1) */
    _Pragma("omp simd")
    for (size_t i = 0; i < (size_t)r * F; i++) dZb1[i] = dXb2[i] * gelu_tanh_grad(f.Zb1[i]);
    /* Zb1 = Q W1 + 1b1 - M1 G1,  M1 = eta (.) (tril(Q K^T) + 1) */
    mm_nt(dQ, D, dZb1, F, s.W1, F, r, D, F, 1, 1);
    mm_tn(d.W1, F, Q, D, dZb1, F, D, F, r, 1, 1);
    mm_colsum(d.b1, dZb1, F, r, F, 1, 1);
    mm_nt(dM, r, dZb1, F, f.G1, F, r, r, F, -1, 0);
    mm_tn(dG1, F, f.M1, r, dZb1, F, r, F, r, -1, 1);
    ttt_attn_backward(deta, dM, f.A1, tau, lr, r);
    mm_nn(dQ, D, dM, r, K, D, r, D, r, 1, 1);
    mm_tn(dK, D, dM, r, Q, D, r, D, r, 1, 1);

    /* G1 = GW (.) Hd, GW = G2 W2^T, Hd = gelu'(Z1):
     *   dG2 += (dG1 Hd) W2;  dW2 += (dG1 Hd)^T G2;  dZ1 = dG1 GW H'(Z1)
     * Hd is dead after this loop: it takes the exact gelu_tanh_grad(Z1) used below */
    _Pragma("omp simd")
    for (size_t i = 0; i < (size_t)r * F; i++) {
        real d, h2;
        gelu_grad_and_trunc_grad2(f.Z1[i], &d, &h2);
        tF[i] = dG1[i] * f.Hd[i];
        dZ1[i] = dG1[i] * f.GW[i] * h2;
        f.Hd[i] = d;
    }
    mm_nn(dG2, D, tF, F, s.W2, D, r, D, F, 1, 1);
    mm_tn(d.W2, D, tF, F, f.G2, D, F, D, r, 1, 1);
    /* G2 = LNl2grad(Z2, V - K):  dV = dT, dK -= dT */
    for (int i = 0; i < r; i++) {
        ln_l2grad_row_backward(dZ2 + (size_t)i * D, dV + (size_t)i * D, dgamma, dbeta,
                               dG2 + (size_t)i * D, f.Z2 + (size_t)i * D, f.Tg + (size_t)i * D,
                               gamma, beta, D, TTT_INNER_LN_EPS);
        for (int c = 0; c < D; c++) dK[(size_t)i * D + c] -= dV[(size_t)i * D + c];
    }
    /* Z2 = X2 W2 + 1b2 */
    mm_nt(dX2, F, dZ2, D, s.W2, D, r, F, D, 1, 1);
    mm_tn(d.W2, D, f.X2, F, dZ2, D, F, D, r, 1, 1);
    mm_colsum(d.b2, dZ2, D, r, D, 1, 1);
    /* X2 = gelu(Z1) */
    _Pragma("omp simd")
    for (size_t i = 0; i < (size_t)r * F; i++) dZ1[i] += dX2[i] * f.Hd[i];
    /* Z1 = K W1 + 1b1 */
    mm_nt(dK, D, dZ1, F, s.W1, F, r, D, F, 1, 1);
    mm_tn(d.W1, F, K, D, dZ1, F, D, F, r, 1, 1);
    mm_colsum(d.b1, dZ1, F, r, F, 1, 1);

    /* eta_ij = tau_i lr_j */
    ttt_eta_backward(dtau, dlr, deta, tau, lr, r);
}

#ifndef TTT_MLP_AVX512_TU
#ifdef MLP_HAVE_AVX512
/* whether to take the *_avx512 pair: decided once (racing first callers
 * store the same value) */
static int mlp_use_avx512(void)
{
    static int use = -1;
    int u = __atomic_load_n(&use, __ATOMIC_RELAXED);
    if (u < 0) {
        const char *e = getenv("TTT_NO_AVX512");
        __builtin_cpu_init();
        u = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
            __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512bw") &&
            !(e && *e && strcmp(e, "0"));
        __atomic_store_n(&use, u, __ATOMIC_RELAXED);
    }
    return u;
}
#endif

void ttt_mlp_forward(real *out, int ldo, real *S, const real *Q, const real *K, const real *V,
                     const real *tau, const real *lr, const real *gamma, const real *beta,
                     int r, int D, int F, real *scr)
{
#ifdef MLP_HAVE_AVX512
    if (mlp_use_avx512()) {
        ttt_mlp_forward_avx512(out, ldo, S, Q, K, V, tau, lr, gamma, beta, r, D, F, scr);
        return;
    }
#endif
    mlp_forward_v3(out, ldo, S, Q, K, V, tau, lr, gamma, beta, r, D, F, scr);
}

void ttt_mlp_backward(real *dQ, real *dK, real *dV, real *dtau, real *dlr, real *dgamma,
                      real *dbeta, real *dS, const real *dout, int lddo, const real *S,
                      const real *Q, const real *K, const real *V, const real *tau,
                      const real *lr, const real *gamma, const real *beta, int r, int D, int F,
                      real *scr)
{
#ifdef MLP_HAVE_AVX512
    if (mlp_use_avx512()) {
        ttt_mlp_backward_avx512(dQ, dK, dV, dtau, dlr, dgamma, dbeta, dS, dout, lddo, S, Q, K, V,
                                tau, lr, gamma, beta, r, D, F, scr);
        return;
    }
#endif
    mlp_backward_v3(dQ, dK, dV, dtau, dlr, dgamma, dbeta, dS, dout, lddo, S, Q, K, V, tau, lr,
                    gamma, beta, r, D, F, scr);
}

/* z1 = k W1 + b1; x2 = gelu(z1); z2 = x2 W2 + b2; g2 = LNl2grad(z2, v - k);
 * g1 = (g2 W2^T) gelu'(z1);  A += lr * (k^T g1, g1, x2^T g2, g2) */
void ttt_mlp_grad_acc(const ttt_fast_weights *A, const ttt_fast_weights *S, const real *k,
                      const real *v, real lr, const real *gamma, const real *beta, int D, int F,
                      real *scr)
{
    const ttt_fast_weights s = *S, a = *A;
    real *z1 = scr, *x2 = z1 + F, *g1 = x2 + F, *z2 = g1 + F, *t = z2 + D, *g2 = t + D;
    mm_nn(z1, F, k, D, s.W1, F, 1, F, D, 1, 0);
    for (int c = 0; c < F; c++) { z1[c] += s.b1[c]; x2[c] = gelu_tanh(z1[c]); }
    mm_nn(z2, D, x2, F, s.W2, D, 1, D, F, 1, 0);
    for (int c = 0; c < D; c++) { z2[c] += s.b2[c]; t[c] = v[c] - k[c]; }
    ln_l2grad_row(g2, z2, t, gamma, beta, D, TTT_INNER_LN_EPS);
    mm_nt(g1, F, g2, D, s.W2, D, 1, F, D, 1, 0);
    for (int c = 0; c < F; c++) g1[c] *= gelu_trunc_grad(z1[c]);
    for (int i = 0; i < D; i++) {
        real lk = lr * k[i];
        for (int c = 0; c < F; c++) a.W1[(size_t)i * F + c] += lk * g1[c];
    }
    for (int c = 0; c < F; c++) a.b1[c] += lr * g1[c];
    for (int i = 0; i < F; i++) {
        real lx = lr * x2[i];
        for (int c = 0; c < D; c++) a.W2[(size_t)i * D + c] += lx * g2[c];
    }
    for (int c = 0; c < D; c++) a.b2[c] += lr * g2[c];
}

/* zb1 = q (W1 - tau A_W1) + b1 - tau A_b1; xb2 = gelu(zb1);
 * zb2 = xb2 (W2 - tau A_W2) + b2 - tau A_b2;  out = q + LN(zb2) */
void ttt_mlp_apply(real *out, const ttt_fast_weights *S, const ttt_fast_weights *A, real tau,
                   const real *q, const real *gamma, const real *beta, int D, int F, real *scr)
{
    const ttt_fast_weights s = *S, a = *A;
    real *z1 = scr, *za = z1 + F, *z2 = za + F, *zc = z2 + D;
    mm_nn(z1, F, q, D, s.W1, F, 1, F, D, 1, 0);
    mm_nn(za, F, q, D, a.W1, F, 1, F, D, 1, 0);
    for (int c = 0; c < F; c++) z1[c] = gelu_tanh(z1[c] + s.b1[c] - tau * (za[c] + a.b1[c]));
    mm_nn(z2, D, z1, F, s.W2, D, 1, D, F, 1, 0);
    mm_nn(zc, D, z1, F, a.W2, D, 1, D, F, 1, 0);
    for (int c = 0; c < D; c++) z2[c] += s.b2[c] - tau * (zc[c] + a.b2[c]);
    ttt_out_forward(out, D, z2, q, gamma, beta, 1, D);
}
#endif /* !TTT_MLP_AVX512_TU */
