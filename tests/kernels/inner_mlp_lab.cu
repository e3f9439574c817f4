/* inner_mlp_lab.cu - kernel lab for the tensor-core TTT-MLP inner loop
 * (lib/cuda/ttt_inner_mlp_tc.cu) against the fp32 CUDA-core kernel
 * (lib/cuda/ttt_inner_mlp.cu): random inputs, head dims 16/32/64, a partial
 * last mini-batch; prints max|diff|/max|ref| of the output, the final state
 * and every gradient, tc vs fp32 (tolerance 3e-2, FAIL/ok per line), for
 *   fwd:  tc forward vs fp32 forward (Z, final state)
 *   bwd:  tc forward + tc backward vs fp32 forward + fp32 backward
 *   mix:  tc backward from the fp32 forward's states, and the fp32 backward
 *         from the tc forward's states (the layouts differ only in the
 *         precision of W1, W2: bf16 for the tc kernels; states_tc converts)
 * then times the fp32 and tc forward and backward at B*H = 96, T = 2048.
 *
 * Build and run (not part of `make`; needs a GPU):
 *   nvcc -O3 -arch=sm_90 -std=c++17 -Ilib tests/kernels/inner_mlp_lab.cu \
 *        lib/cuda/ttt_inner_mlp.cu lib/cuda/ttt_inner_mlp_tc.cu -o build/inner_mlp_lab
 *   ./build/inner_mlp_lab [B*H] [T]          (default 96 blocks, T = 2048)
 * Exit 1 on any failure; without a GPU it prints "skipped: no GPU" and exits 0.
 */
#include <cuda_runtime.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <vector>

#include "cuda/ttt_cuda_internal.cuh"

#define LAB_NAME "inner_mlp_lab"
#include "lab_util.cuh"
#include "../bf16_bits.h"

#define TOL 3e-2

/* max|x - ref| / max|ref| over the elements of `ref`, optionally a strided
 * subset (the final state of every block: nblk blocks of len floats at stride) */
static double rel(const std::vector<float> &x, const std::vector<float> &ref, size_t nblk = 1, size_t len = 0,
                  size_t stride = 0, size_t off = 0)
{
    if (!len) len = ref.size();
    double m = 0, r = 1e-30;
    for (size_t k = 0; k < nblk; k++)
        for (size_t i = 0; i < len; i++) {
            size_t j = off + k * stride + i;
            const double d = fabs((double)x[j] - ref[j]);
            if (d != d) return NAN;   /* fmax would drop it */
            m = fmax(m, d);
            r = fmax(r, fabs((double)ref[j]));
        }
    return m / r;
}

/* The tensor-core kernels keep W1 [D][F] and W2 [F][D] of every state in
 * bf16 at the fp32 offsets 0 and D*F+F (ttt_inner_mlp_tc.cu, store_state):
 * to that layout (rounding to nearest even) and back. */
static std::vector<float> states_tc(const std::vector<float> &st, size_t P, int D, int F, bool to_tc)
{
    std::vector<float> o(st);
    const size_t n = (size_t)D * F;
    for (size_t b = 0; b + P <= st.size(); b += P)
        for (size_t off : {b, b + n + F}) {
            if (to_tc)
                for (size_t i = 0; i < n; i++) ((uint16_t *)&o[off])[i] = bf16_bits(st[off + i]);
            else
                for (size_t i = 0; i < n; i++) o[off + i] = bf16_value(((const uint16_t *)&st[off])[i]);
        }
    return o;
}

static int report(const char *what, int D, const char *name, double v)
{
    int ok = v < TOL;   /* also false for NaN */
    printf("D=%-3d %-28s %-7s %.2e  %s\n", D, what, name, v, ok ? "ok" : "FAIL");
    return !ok;
}

static int run(int D, int BH, int T, int timing)
{
    const int F = 4 * D;
    const int H = D == 16 ? 4 : 12 > BH ? BH : 12;
    const int B = (BH + H - 1) / H, C = H * D, nmb = ttt_inner_nmb(T);
    const size_t btc = (size_t)B * T * C, P = 2 * (size_t)D * F + F + D;
    auto XQ = rnd(btc, -1, 1), XK = rnd(btc, -1, 1), XV = rnd(btc, -1, 1), dZ = rnd(btc, -1, 1);
    auto lr = rnd((size_t)B * T * H, 0.3f / D, 3.f / D), tok = rnd(16, -0.03f, 0.03f);
    auto gam = rnd((size_t)H * D, 0.8f, 1.2f), bet = rnd((size_t)H * D, -0.1f, 0.1f);
    const float w1s = 1.f / sqrtf((float)D), w2s = 1.f / sqrtf((float)F);
    auto W1 = rnd((size_t)H * D * F, -w1s, w1s), b1 = rnd((size_t)H * F, -0.1f, 0.1f);
    auto W2 = rnd((size_t)H * F * D, -w2s, w2s), b2 = rnd((size_t)H * D, -0.1f, 0.1f);
    ttt_inner_args a;
    memset(&a, 0, sizeof a);
    a.B = B; a.T = T; a.H = H; a.D = D; a.F = F;
    a.XQ = dev(XQ); a.XK = dev(XK); a.XV = dev(XV); a.lr = dev(lr); a.token_idx = dev(tok);
    a.gamma = dev(gam); a.beta = dev(bet);
    a.W0 = dev(W1); a.b0 = dev(b1); a.W20 = dev(W2); a.b20 = dev(b2);
    a.Z = dzero(btc);
    const size_t nst = ttt_inner_mlp_states_size(B, H, D, T);
    a.states = dzero(nst);
    a.dZ = dev(dZ); a.dXQ = dzero(btc); a.dXK = dzero(btc); a.dXV = dzero(btc);
    a.dlr = dzero((size_t)B * T * H); a.dtau = dzero(16);
    a.dgamma = dzero((size_t)H * D); a.dbeta = dzero((size_t)H * D);
    a.dW0 = dzero((size_t)H * D * F); a.db0 = dzero((size_t)H * F);
    a.dW20 = dzero((size_t)H * F * D); a.db20 = dzero((size_t)H * D);
    a.dS = dzero(ttt_inner_mlp_dS_size(B, H, D));

    const int NG = 11;
    float *gout[NG] = {a.dXQ, a.dXK, a.dXV, a.dlr, a.dtau, a.dgamma, a.dbeta, a.dW0, a.db0, a.dW20, a.db20};
    const size_t gn[NG] = {btc, btc, btc, (size_t)B * T * H, 16, (size_t)H * D, (size_t)H * D,
                           (size_t)H * D * F, (size_t)H * F, (size_t)H * F * D, (size_t)H * D};
    const char *gname[NG] = {"dXQ", "dXK", "dXV", "dlr", "dtau", "dgamma", "dbeta", "dW1", "db1", "dW2", "db2"};
    typedef std::vector<std::vector<float>> grads_t;
    auto forward = [&](int tc, std::vector<float> &Z, std::vector<float> &st) {
        a.tc = tc;
        CKE(cudaMemset(a.Z, 0, btc * 4));
        CKE(cudaMemset(a.states, 0, nst * 4));
        CKE(ttt_inner_mlp_forward(&a, 0));
        CKE(cudaDeviceSynchronize());
        Z = host(a.Z, btc);
        st = host(a.states, nst);
    };
    /* the backward from the states in a.states (restored from `st` first) */
    auto backward = [&](int tc, const std::vector<float> &st, grads_t &out) {
        a.tc = tc;
        CKE(cudaMemcpy(a.states, st.data(), nst * 4, cudaMemcpyHostToDevice));
        for (int k = 0; k < NG; k++) CKE(cudaMemset(gout[k], 0, gn[k] * 4));
        CKE(ttt_inner_mlp_backward(&a, 0));
        CKE(cudaDeviceSynchronize());
        out.resize(NG);
        for (int k = 0; k < NG; k++) out[k] = host(gout[k], gn[k]);
    };

    std::vector<float> Zr, str, Zt, stt;
    grads_t gr, gt, gmix1, gmix2;
    forward(0, Zr, str);
    forward(1, Zt, stt);
    backward(0, str, gr);
    backward(1, stt, gt);
    backward(1, states_tc(str, P, D, F, true), gmix1);    /* tc backward from the fp32 forward's states */
    stt = states_tc(stt, P, D, F, false);                  /* the tc forward's states in fp32 */
    backward(0, stt, gmix2);                               /* fp32 backward from them */

    char what[64];
    int fails = 0;
    snprintf(what, sizeof what, "fwd B*H=%d T=%d", B * H, T);
    fails += report(what, D, "out", rel(Zt, Zr));
    fails += report(what, D, "state", rel(stt, str, (size_t)B * H, P, (nmb + 1) * P, nmb * P));
    snprintf(what, sizeof what, "bwd B*H=%d T=%d", B * H, T);
    for (int k = 0; k < NG; k++) fails += report(what, D, gname[k], rel(gt[k], gr[k]));
    double w1 = 0, w2 = 0;
    for (int k = 0; k < NG; k++) {
        const double r1 = rel(gmix1[k], gr[k]), r2 = rel(gmix2[k], gr[k]);
        w1 = r1 != r1 || w1 != w1 ? NAN : fmax(w1, r1);
        w2 = r2 != r2 || w2 != w2 ? NAN : fmax(w2, r2);
    }
    fails += report("mix: fp32 fwd + tc bwd", D, "worst", w1);
    fails += report("mix: tc fwd + fp32 bwd", D, "worst", w2);

    /* fused RoPE (a.rope): unrotated Q, K in, gradients rotated back out, vs
     * the tc kernels on Q, K rotated here (position t mod 16, theta 1e4) */
    {
        std::vector<float> tab(16 * D);
        for (int i = 0; i < 16; i++)
            for (int j = 0; j < D / 2; j++) {
                const double ang = i * pow(10000.0, -2.0 * j / D);
                tab[(i * (D / 2) + j) * 2] = (float)cos(ang);
                tab[(i * (D / 2) + j) * 2 + 1] = (float)sin(ang);
            }
        /* rotate the pairs of x by sign * angle */
        auto rot = [&](std::vector<float> &x, float sign) {
            for (size_t row = 0; row < (size_t)B * T; row++) {
                const int i = (int)(row % T) % 16;
                for (int c = 0; c < C; c += 2) {
                    const int j = (c % D) / 2;
                    const float cs = tab[(i * (D / 2) + j) * 2], sn = sign * tab[(i * (D / 2) + j) * 2 + 1];
                    const float u = x[row * C + c], v = x[row * C + c + 1];
                    x[row * C + c] = u * cs - v * sn;
                    x[row * C + c + 1] = u * sn + v * cs;
                }
            }
        };
        std::vector<float> XQu = XQ, XKu = XK;
        rot(XQu, -1.f);
        rot(XKu, -1.f);
        const float *XQr = a.XQ, *XKr = a.XK;
        float *dtab = dev(tab), *dXQu = dev(XQu), *dXKu = dev(XKu);
        a.XQ = dXQu; a.XK = dXKu; a.rope = dtab;
        std::vector<float> Zp, stp;
        grads_t gp;
        forward(1, Zp, stp);
        backward(1, stp, gp);
        a.XQ = XQr; a.XK = XKr; a.rope = NULL;
        rot(gp[0], 1.f);   /* back to the rotated coordinates of gt */
        rot(gp[1], 1.f);
        double wr = rel(Zp, Zt);
        for (int k = 0; k < NG; k++) {
            const double rk = rel(gp[k], gt[k]);
            wr = rk != rk || wr != wr ? NAN : fmax(wr, rk);
        }
        fails += report("rope: fused vs pre-rotated", D, "worst", wr);
        cudaFree(dtab); cudaFree(dXQu); cudaFree(dXKu);
    }

    if (timing) {
        cudaEvent_t e0, e1;
        cudaEventCreate(&e0);
        cudaEventCreate(&e1);
        const int it = 5;
        for (int tc = 0; tc < 2; tc++) {
            a.tc = tc;
            float msf, msb;
            CKE(ttt_inner_mlp_forward(&a, 0));
            cudaEventRecord(e0);
            for (int i = 0; i < it; i++) CKE(ttt_inner_mlp_forward(&a, 0));
            cudaEventRecord(e1);
            CKE(cudaEventSynchronize(e1));
            cudaEventElapsedTime(&msf, e0, e1);
            msf /= it;
            CKE(ttt_inner_mlp_backward(&a, 0));
            cudaEventRecord(e0);
            for (int i = 0; i < it; i++) CKE(ttt_inner_mlp_backward(&a, 0));
            cudaEventRecord(e1);
            CKE(cudaEventSynchronize(e1));
            cudaEventElapsedTime(&msb, e0, e1);
            msb /= it;
            const double tok_ = (double)B * T;
            printf("D=%-3d %-5s B*H=%d T=%d: fwd %8.3f ms %8.2f Mtok/s | bwd %8.3f ms %8.2f Mtok/s\n", D,
                   tc ? "tc" : "fp32", B * H, T, msf, tok_ / msf / 1e3, msb, tok_ / msb / 1e3);
        }
        cudaEventDestroy(e0);
        cudaEventDestroy(e1);
    }
    const float *ptrs[] = {a.XQ, a.XK, a.XV, a.lr, a.token_idx, a.gamma, a.beta, a.W0, a.b0, a.W20, a.b20, a.Z,
                           a.states, a.dZ, a.dS};
    for (auto p : ptrs) cudaFree((void *)p);
    for (int k = 0; k < NG; k++) cudaFree(gout[k]);
    return fails;
}

int main(int argc, char **argv)
{
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess || n == 0) { printf("inner_mlp_lab: skipped: no GPU\n"); return 0; }
    int BH = argc > 1 ? atoi(argv[1]) : 96, T = argc > 2 ? atoi(argv[2]) : 2048;
    if (BH < 1 || T < 1) { fprintf(stderr, "usage: inner_mlp_lab [B*H] [T]\n"); return 2; }
    int fails = 0;
    fails += run(16, 8, 45, 0);      /* refvector-like: partial last mini-batch */
    fails += run(32, 24, 200, 0);    /* partial last mini-batch (200 = 12*16 + 8) */
    fails += run(64, 24, 333, 0);    /* partial last mini-batch */
    fails += run(64, BH, T, 1);      /* benchmark width */
    printf("inner_mlp_lab: %s\n", fails ? "FAIL" : "all checks ok");
    return fails ? 1 : 0;
}
