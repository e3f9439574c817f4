/* inner_linear_lab.cu - kernel lab for the fused TTT-Linear inner loop
 * (lib/cuda/ttt_inner_linear.cu): checks the forward against an independent
 * float64 CPU reference written in the *primal* form (spec section 4: per
 * token W_i = S_n - tau_i sum_{j<=i} lr_j k_j^T g_j, not the dual form the
 * kernel uses), including a partial last mini-batch, for head dims 16/32/64/96
 * both block sizes (rows per thread 4 and 2, i.e. 4*D or 8*D threads) and the
 * bf16 tensor-core forward (ttt_inner_linear_tc.cu, looser tolerance),
 * then times forward and backward and reports Mtok/s, GFLOP/s and GB/s.
 *
 * Build and run (not part of `make`; needs a GPU):
 *   nvcc -O3 -arch=sm_90 -std=c++17 -Ilib tests/kernels/inner_linear_lab.cu \
 *        lib/cuda/ttt_inner_linear.cu lib/cuda/ttt_inner_linear_tc.cu -o build/inner_linear_lab
 *   ./build/inner_linear_lab [B*H] [T] [bench]  (default 96 blocks, T = 2048;
 *                                                bench: only the timed D=64 run) 
 */
#include <cuda_runtime.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <vector>

#include "cuda/ttt_cuda_internal.cuh"

#define LAB_NAME "inner_linear_lab"
#include "lab_util.cuh"
#include "ttt_inner_ref.h"
#include "../bf16_bits.h"

static int run(int D, int BH, int T, int timing)
{
    const int H = D == 16 ? 4 : 12 > BH ? BH : 12;
    const int B = (BH + H - 1) / H, C = H * D, nmb = ttt_inner_nmb(T);
    const size_t btc = (size_t)B * T * C;
    auto XQ = rnd(btc, -1, 1), XK = rnd(btc, -1, 1), XV = rnd(btc, -1, 1), dZ = rnd(btc, -1, 1);
    auto lr = rnd((size_t)B * T * H, 0.3f / D, 3.f / D), tok = rnd(16, -0.03f, 0.03f);
    auto gam = rnd((size_t)H * D, 0.8f, 1.2f), bet = rnd((size_t)H * D, -0.1f, 0.1f);
    float ws = 0.8f / sqrtf((float)D);
    auto W0 = rnd((size_t)H * D * D, -ws, ws), b0 = rnd((size_t)H * D, -0.1f, 0.1f);
    ttt_inner_args a;
    memset(&a, 0, sizeof a);
    a.B = B; a.T = T; a.H = H; a.D = D;
    a.XQ = dev(XQ); a.XK = dev(XK); a.XV = dev(XV); a.lr = dev(lr); a.token_idx = dev(tok);
    a.gamma = dev(gam); a.beta = dev(bet); a.W0 = dev(W0); a.b0 = dev(b0);
    a.Z = dzero(btc);
    size_t nst = ttt_inner_states_size(B, H, D, T);
    a.states = dzero(nst);
    a.dZ = dev(dZ); a.dXQ = dzero(btc); a.dXK = dzero(btc); a.dXV = dzero(btc);
    a.dlr = dzero((size_t)B * T * H); a.dtau = dzero(16);
    a.dgamma = dzero((size_t)H * D); a.dbeta = dzero((size_t)H * D);
    a.dW0 = dzero((size_t)H * D * D); a.db0 = dzero((size_t)H * D);

    /* the fp32 backward's gradients (from the fp32 forward's states): the
     * reference the tensor-core backward is compared with */
    const float *gout[] = {a.dXQ, a.dXK, a.dXV, a.dlr, a.dtau, a.dgamma, a.dbeta, a.dW0, a.db0};
    const size_t gn[] = {btc, btc, btc, (size_t)B * T * H, 16, (size_t)H * D, (size_t)H * D, (size_t)H * D * D,
                         (size_t)H * D};
    const char *gname[] = {"dXQ", "dXK", "dXV", "dlr", "dtau", "dgamma", "dbeta", "dW0", "db0"};
    std::vector<std::vector<float>> gref(9);
    auto grads = [&](std::vector<std::vector<float>> &out) {
        for (int k = 0; k < 9; k++) CKE(cudaMemset((void *)gout[k], 0, gn[k] * 4));
        CKE(ttt_inner_linear_backward(&a, 0));
        CKE(cudaDeviceSynchronize());
        for (int k = 0; k < 9; k++) {
            out[k].resize(gn[k]);
            CKE(cudaMemcpy(out[k].data(), gout[k], gn[k] * 4, cudaMemcpyDeviceToHost));
        }
    };
    a.rpt = 4; a.tc = 0;
    CKE(ttt_inner_linear_forward(&a, 0));
    grads(gref);

    int fails = 0;
    /* variants: fp32 with 4 and 2 rows per thread, then the bf16 tensor-core forward */
    for (int rpt = 4; rpt >= 0; rpt -= 2) {
        if (rpt == 2 && D > 64) continue;
        a.rpt = rpt ? rpt : 4;
        a.tc = rpt == 0;
        const double tol = a.tc ? 3e-2 : 1e-4;
        CKE(ttt_inner_linear_forward(&a, 0));
        CKE(cudaDeviceSynchronize());
        /* check two (b,h) pairs: the first and the last */
        std::vector<float> Z(btc), st(nst);
        CKE(cudaMemcpy(Z.data(), a.Z, btc * 4, cudaMemcpyDeviceToHost));
        CKE(cudaMemcpy(st.data(), a.states, nst * 4, cudaMemcpyDeviceToHost));
        double worst = 0, worstW = 0;
        int pairs[2] = {0, B * H - 1};
        for (int pi = 0; pi < 2; pi++) {
            int b = pairs[pi] / H, h = pairs[pi] % H;
            std::vector<double> out((size_t)T * D), Wf(D * D), bf(D);
            ref_primal(T, H, D, b, h, XQ.data(), XK.data(), XV.data(), lr.data(), tok.data(), gam.data(),
                       bet.data(), W0.data(), b0.data(), out.data(), Wf.data(), bf.data());
            double m = 0, r = 1e-30;
            for (int t = 0; t < T; t++)
                for (int c = 0; c < D; c++) {
                    double g = Z[((size_t)b * T + t) * C + h * D + c], o = out[(size_t)t * D + c];
                    m = fmax(m, fabs(g - o)); r = fmax(r, fabs(o));
                }
            worst = fmax(worst, m / r);
            const float *sf = st.data() + ((size_t)pairs[pi] * (nmb + 1) + nmb) * (D * D + D);
            m = 0; r = 1e-30;
            /* the tensor-core forward keeps W in bf16, in its register order (ttt_inner_args.states) */
            for (int x = 0; x < D * D; x++) {
                double w = sf[x];
                if (a.tc) w = bf16_value(((const uint16_t *)sf)[ttt_tc_state_w_index(D, x / D, x % D)]);
                m = fmax(m, fabs(w - Wf[x]));
                r = fmax(r, fabs(Wf[x]));
            }
            worstW = fmax(worstW, m / r);
        }
        int ok = worst < tol && worstW < tol;
        if (a.tc) {
            /* tensor-core backward (from the tensor-core forward's states) vs the fp32 one */
            std::vector<std::vector<float>> gtc(9);
            grads(gtc);
            printf("   tensor-core backward vs fp32 backward (max |diff| / max |ref|):");
            for (int k = 0; k < 9; k++) {
                double m = 0, rr = 1e-30;
                for (size_t x = 0; x < gn[k]; x++) {
                    m = fmax(m, fabs((double)gtc[k][x] - gref[k][x]));
                    rr = fmax(rr, fabs((double)gref[k][x]));
                }
                printf(" %s %.1e", gname[k], m / rr);
                if (!(m / rr < 5e-2)) ok = 0;
            }
            printf("\n");
        }
        fails += !ok;
        printf("D=%-3d %-14s B*H=%-4d T=%-6d check vs fp64 primal: out %.2e  final W %.2e  (tol %.0e) %s\n", D,
               a.tc ? "tensor-core" : rpt == 4 ? "fp32 rpt=4" : "fp32 rpt=2", B * H, T, worst, worstW, tol,
               ok ? "ok" : "FAIL");
        if (!timing) continue;
        cudaEvent_t e0, e1;
        cudaEventCreate(&e0); cudaEventCreate(&e1);
        const int it = 5;
        float msf, msb;
        cudaEventRecord(e0);
        for (int i = 0; i < it; i++) CKE(ttt_inner_linear_forward(&a, 0));
        cudaEventRecord(e1);
        CKE(cudaEventSynchronize(e1));
        cudaEventElapsedTime(&msf, e0, e1);
        msf /= it;
        CKE(ttt_inner_linear_backward(&a, 0));
        cudaEventRecord(e0);
        for (int i = 0; i < it; i++) CKE(ttt_inner_linear_backward(&a, 0));
        cudaEventRecord(e1);
        CKE(cudaEventSynchronize(e1));
        cudaEventElapsedTime(&msb, e0, e1);
        msb /= it;
        double tok_ = (double)B * T, r = 16, d = D, per_mb = (double)B * H * nmb;
        double ff = per_mb * (6 * r * d * d + 6 * r * r * d), fb = per_mb * (16 * r * d * d + 12 * r * r * d);
        double bytes_f = 4.0 * (4 * btc + (double)B * H * (nmb + 1) * (d * d + d));
        double bytes_b = 4.0 * (8 * btc + (double)B * H * (nmb + 1) * (d * d + d));
        printf("   fwd %8.3f ms %8.2f Mtok/s %7.1f GFLOP/s %7.1f GB/s | bwd %8.3f ms %8.2f Mtok/s %7.1f GFLOP/s %7.1f GB/s\n",
               msf, tok_ / msf / 1e3, ff / msf / 1e6, bytes_f / msf / 1e6, msb, tok_ / msb / 1e3, fb / msb / 1e6,
               bytes_b / msb / 1e6);
    }
    const float *ptrs[] = {a.XQ, a.XK, a.XV, a.lr, a.token_idx, a.gamma, a.beta, a.W0, a.b0, a.Z, a.states, a.dZ,
                           a.dXQ, a.dXK, a.dXV, a.dlr, a.dtau, a.dgamma, a.dbeta, a.dW0, a.db0};
    for (auto p : ptrs) cudaFree((void *)p);
    return fails;
}

int main(int argc, char **argv)
{
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess || n == 0) { printf("inner_linear_lab: skipped: no GPU\n"); return 0; }
    int BH = argc > 1 ? atoi(argv[1]) : 96, T = argc > 2 ? atoi(argv[2]) : 2048;
    if (BH < 1 || T < 1) { fprintf(stderr, "usage: inner_linear_lab [B*H] [T] [bench]\n"); return 2; }
    int fails = 0;
    if (argc > 3 && !strcmp(argv[3], "bench")) {
        fails = run(64, BH, T, 1);
        return fails ? 1 : 0;
    }
    fails += run(16, 8, 45, 0);      /* refvector-like: partial last mini-batch */
    fails += run(32, 24, 200, 0);
    fails += run(96, 32, 1000, 0);
    fails += run(64, BH, T - 7, 0);  /* benchmark width, partial last mini-batch */
    fails += run(64, BH, T, 1);
    fails += run(96, BH, T, 1);
    printf("inner_linear_lab: %s\n", fails ? "FAIL" : "all checks ok");
    return fails ? 1 : 0;
}
