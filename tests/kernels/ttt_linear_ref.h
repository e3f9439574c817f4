/* ttt_linear_ref.h - float64 reference of the TTT-Linear inner loop for
 * one (sequence, head), written in the *primal* form (spec section 4: per
 * token W_i = S_n - tau_i sum_{j<=i} lr_j k_j^T g_j, not the dual form the
 * kernels use), a partial last mini-batch included. Shared by the kernel
 * lab (tests/kernels/inner_linear_lab.cu) and the host emulator of the
 * tensor-core kernels (tests/unit/emu_ttt_linear_tc.cpp). Inputs of type R
 * (float, or double for finite differences); Q, K already rotated. */
#ifndef TTT_LINEAR_REF_H
#define TTT_LINEAR_REF_H

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

/* out [T,D] (Z = q + LN(zbar) of head h of sequence b), final W [D,D], b [D];
 * tensors [B,T,H*D] (lr [B,T,H]), parameters [H,...] as ttt_inner_args */
template <class R>
static void ref_primal(int T, int H, int D, int b, int h, const R *XQ, const R *XK, const R *XV, const R *lr,
                       const R *tok, const R *gam, const R *bet, const R *W0, const R *b0, double *out, double *Wf,
                       double *bf)
{
    const int C = H * D;
    std::vector<double> W(D * D), bb(D), G(16 * D), Wi(D * D), bi(D), z(D);
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
            }
            double mu, sig;
            ln_stats(z.data(), D, &mu, &sig);
            std::vector<double> zh(D), gy(D);
            double mg = 0, mgz = 0;
            for (int c = 0; c < D; c++) {
                zh[c] = (z[c] - mu) / sig;
                double y = gam[h * D + c] * zh[c] + bet[h * D + c];
                gy[c] = gam[h * D + c] * (y - (row(XV, t0 + j, c) - row(XK, t0 + j, c)));
                mg += gy[c]; mgz += gy[c] * zh[c];
            }
            mg /= D; mgz /= D;
            for (int c = 0; c < D; c++) G[j * D + c] = (gy[c] - mg - zh[c] * mgz) / sig;
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
            }
            double mu, sig;
            ln_stats(z.data(), D, &mu, &sig);
            for (int c = 0; c < D; c++)
                out[(size_t)(t0 + i) * D + c] = row(XQ, t0 + i, c) + gam[h * D + c] * (z[c] - mu) / sig + bet[h * D + c];
            if (i == r - 1) { W = Wi; bb = bi; }
        }
    }
    for (int x = 0; x < D * D; x++) Wf[x] = W[x];
    for (int x = 0; x < D; x++) bf[x] = bb[x];
}

#endif
