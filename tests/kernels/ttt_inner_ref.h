/* ttt_inner_ref.h - float64 references of the TTT-Linear and TTT-MLP
 * inner loops for one (sequence, head), written in the *primal* form (spec
 * section 4: per token W_i = S_n - tau_i sum_{j<=i} lr_j grad_j, the
 * gradients at S_n; not the dual form the kernels use), a partial last
 * mini-batch included. Shared by the kernel lab
 * (tests/kernels/inner_linear_lab.cu) and the host emulators of the
 * tensor-core kernels (tests/unit/emu_ttt_*_tc.cpp). Inputs of type R
 * (float, or double for finite differences); Q, K already rotated. */
#ifndef TTT_INNER_REF_H
#define TTT_INNER_REF_H

#include <math.h>
#include <stddef.h>
#include <vector>

/* row LN pieces in double */
static void ln_stats(const double *z, int D, double *mu, double *sig)
{
    double m = 0, v = 0;
    for (int c = 0; c < D; c++) m += z[c];
    m /= D;
    for (int c = 0; c < D; c++) v += (z[c] - m) * (z[c] - m);
    *mu = m;
    *sig = sqrt(v / D + 1e-6);
}

/* G = LNl2grad(z, tgt) of one row (spec 3): the gradient at z of
 * 0.5 |gamma LN(z) + beta - tgt|^2 */
template <class R>
static void ref_l2grad(const double *z, const double *tgt, const R *gam, const R *bet, int D, double *G)
{
    double mu, sig, mg = 0, mgz = 0;
    std::vector<double> zh(D), gy(D);
    ln_stats(z, D, &mu, &sig);
    for (int c = 0; c < D; c++) {
        zh[c] = (z[c] - mu) / sig;
        gy[c] = gam[c] * (gam[c] * zh[c] + bet[c] - tgt[c]);
        mg += gy[c]; mgz += gy[c] * zh[c];
    }
    mg /= D; mgz /= D;
    for (int c = 0; c < D; c++) G[c] = (gy[c] - mg - zh[c] * mgz) / sig;
}

/* out = q + gamma LN(z) + beta of one row */
template <class R>
static void ref_ln_out(double *out, const double *q, const double *z, const R *gam, const R *bet, int D)
{
    double mu, sig;
    ln_stats(z, D, &mu, &sig);
    for (int c = 0; c < D; c++) out[c] = q[c] + gam[c] * (z[c] - mu) / sig + bet[c];
}

/* out [T,D] (Z = q + LN(zbar) of head h of sequence b), final W [D,D], b [D];
 * tensors [B,T,H*D] (lr [B,T,H]), parameters [H,...] as ttt_inner_args */
template <class R>
static void ref_primal(int T, int H, int D, int b, int h, const R *XQ, const R *XK, const R *XV, const R *lr,
                       const R *tok, const R *gam, const R *bet, const R *W0, const R *b0, double *out, double *Wf,
                       double *bf)
{
    const int C = H * D;
    std::vector<double> W(D * D), bb(D), G(16 * D), Wi(D * D), bi(D), z(D), tgt(D), q(D);
    for (int x = 0; x < D * D; x++) W[x] = W0[(size_t)h * D * D + x];
    for (int x = 0; x < D; x++) bb[x] = b0[h * D + x];
    auto row = [&](const R *X, int t, int c) { return (double)X[((size_t)b * T + t) * C + h * D + c]; };
    for (int t0 = 0; t0 < T; t0 += 16) {
        int r = T - t0 < 16 ? T - t0 : 16;
        /* gradients at S_n */
        for (int j = 0; j < r; j++) {
            for (int c = 0; c < D; c++) {
                double s = bb[c];
                for (int k = 0; k < D; k++) s += row(XK, t0 + j, k) * W[k * D + c];
                z[c] = s;
                tgt[c] = row(XV, t0 + j, c) - row(XK, t0 + j, c);
            }
            ref_l2grad(z.data(), tgt.data(), gam + h * D, bet + h * D, D, &G[j * D]);
        }
        for (int i = 0; i < r; i++) {
            double tau = fmax(1.0 / (i + 1) + tok[i], 0.0);
            Wi = W; bi = bb;
            for (int j = 0; j <= i; j++) {
                double l = tau * lr[((size_t)b * T + t0 + j) * H + h];
                for (int k = 0; k < D; k++) {
                    double kk = row(XK, t0 + j, k) * l;
                    for (int c = 0; c < D; c++) Wi[k * D + c] -= kk * G[j * D + c];
                }
                for (int c = 0; c < D; c++) bi[c] -= l * G[j * D + c];
            }
            for (int c = 0; c < D; c++) {
                double s = bi[c];
                for (int k = 0; k < D; k++) s += row(XQ, t0 + i, k) * Wi[k * D + c];
                z[c] = s;
                q[c] = row(XQ, t0 + i, c);
            }
            ref_ln_out(&out[(size_t)(t0 + i) * D], q.data(), z.data(), gam + h * D, bet + h * D, D);
            if (i == r - 1) { W = Wi; bb = bi; }
        }
    }
    for (int x = 0; x < D * D; x++) Wf[x] = W[x];
    for (int x = 0; x < D; x++) bf[x] = bb[x];
}

/* tanh GELU, and spec 3's gelu' with the truncated constants (what the
 * inner gradient uses; lib/layers/gelu.h, lib/cuda/gelu.cuh) */
static double ref_gelu(double x) { return 0.5 * x * (1 + tanh(0.7978845608028654 * (x + 0.044715 * x * x * x))); }
static double ref_gelu_tr_grad(double x)
{
    const double t = tanh(0.79788456 * x * (1 + 0.044715 * x * x));
    return 0.5 * x * ((1 - t * t) * (0.79788456 + 0.1070322243 * x * x)) + 0.5 * (1 + t);
}

/* TTT-MLP (F = 4D): out [T,D]; W1 [H,D,F], b1 [H,F], W2 [H,F,D], b2 [H,D] */
template <class R>
static void ref_primal_mlp(int T, int H, int D, int b, int h, const R *XQ, const R *XK, const R *XV, const R *lr,
                           const R *tok, const R *gam, const R *bet, const R *W10, const R *b10, const R *W20,
                           const R *b20, double *out)
{
    const int C = H * D, F = 4 * D;
    std::vector<double> W1((size_t)D * F), b1(F), W2((size_t)F * D), b2(D), W1i, b1i, W2i, b2i;
    std::vector<double> X1(16 * (size_t)D), X2(16 * (size_t)F), G1(16 * (size_t)F), G2(16 * (size_t)D);
    std::vector<double> z1(F), z2(D), tgt(D);
    for (size_t x = 0; x < W1.size(); x++) W1[x] = W10[(size_t)h * D * F + x];
    for (size_t x = 0; x < W2.size(); x++) W2[x] = W20[(size_t)h * F * D + x];
    for (int x = 0; x < F; x++) b1[x] = b10[h * F + x];
    for (int x = 0; x < D; x++) b2[x] = b20[h * D + x];
    auto row = [&](const R *X, int t, int c) { return (double)X[((size_t)b * T + t) * C + h * D + c]; };
    /* z2 = gelu(x W1 + b1) W2 + b2 for the weights given; x2 [F] keeps gelu(z1), z1 [F] */
    auto mlp = [&](const double *x, const std::vector<double> &w1, const std::vector<double> &c1,
                   const std::vector<double> &w2, const std::vector<double> &c2, double *x2) {
        for (int f = 0; f < F; f++) {
            double s = c1[f];
            for (int k = 0; k < D; k++) s += x[k] * w1[(size_t)k * F + f];
            z1[f] = s;
            x2[f] = ref_gelu(s);
        }
        for (int c = 0; c < D; c++) {
            double s = c2[c];
            for (int f = 0; f < F; f++) s += x2[f] * w2[(size_t)f * D + c];
            z2[c] = s;
        }
    };
    for (int t0 = 0; t0 < T; t0 += 16) {
        const int r = T - t0 < 16 ? T - t0 : 16;
        /* gradients at S_n: G2 = LNl2grad(Z2, v - k), G1 = (G2 W2^T) gelu'(Z1) */
        for (int j = 0; j < r; j++) {
            for (int k = 0; k < D; k++) X1[j * D + k] = row(XK, t0 + j, k);
            mlp(&X1[j * D], W1, b1, W2, b2, &X2[(size_t)j * F]);
            for (int c = 0; c < D; c++) tgt[c] = row(XV, t0 + j, c) - row(XK, t0 + j, c);
            ref_l2grad(z2.data(), tgt.data(), gam + h * D, bet + h * D, D, &G2[j * D]);
            for (int f = 0; f < F; f++) {
                double s = 0;
                for (int c = 0; c < D; c++) s += G2[j * D + c] * W2[(size_t)f * D + c];
                G1[(size_t)j * F + f] = s * ref_gelu_tr_grad(z1[f]);
            }
        }
        for (int i = 0; i < r; i++) {
            const double tau = fmax(1.0 / (i + 1) + tok[i], 0.0);
            W1i = W1; b1i = b1; W2i = W2; b2i = b2;
            for (int j = 0; j <= i; j++) {
                const double l = tau * lr[((size_t)b * T + t0 + j) * H + h];
                for (int k = 0; k < D; k++)
                    for (int f = 0; f < F; f++) W1i[(size_t)k * F + f] -= l * X1[j * D + k] * G1[(size_t)j * F + f];
                for (int f = 0; f < F; f++) {
                    b1i[f] -= l * G1[(size_t)j * F + f];
                    for (int c = 0; c < D; c++) W2i[(size_t)f * D + c] -= l * X2[(size_t)j * F + f] * G2[j * D + c];
                }
                for (int c = 0; c < D; c++) b2i[c] -= l * G2[j * D + c];
            }
            std::vector<double> q(D), x2(F);
            for (int k = 0; k < D; k++) q[k] = row(XQ, t0 + i, k);
            mlp(q.data(), W1i, b1i, W2i, b2i, x2.data());
            ref_ln_out(&out[(size_t)(t0 + i) * D], q.data(), z2.data(), gam + h * D, bet + h * D, D);
            if (i == r - 1) { W1 = W1i; b1 = b1i; W2 = W2i; b2 = b2i; }
        }
    }
}

#endif
