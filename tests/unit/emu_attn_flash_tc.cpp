/* emu_attn_flash_tc.cpp - host emulator of the tensor-core flash attention
 * kernels (lib/cuda/attn_flash_tc.cu, included with -DTTT_ATTN_TC_EMU): one
 * std::thread per CUDA thread, __syncthreads a block barrier, and the warp
 * collectives (mma m16n8k16, ldmatrix.x4.trans, shfl_xor) exchanged through
 * per-warp slots and barriers, computed from the PTX fragment definitions
 * (tests/unit/emu_cuda.h; ldmatrix rows must be 16-byte aligned).
 * Runs the real kernel code (fragment indices, masks, online softmax, both
 * backward kernels) without a GPU and checks O, lse, dQ, dK, dV against a
 * float64 causal attention: relative errors <= 2e-2 (bf16 operands give
 * ~5e-3; an index error gives order 1). Run by `make check-emu` (part of `make test`), or by hand:
 *   g++ -O1 -std=c++20 -pthread -Wno-unknown-pragmas -Ilib \
 *       tests/unit/emu_attn_flash_tc.cpp -o /tmp/emu_attn && /tmp/emu_attn
 * (a few seconds; exit 0 when every case passes). */
#define __shared__
#include "emu_cuda.h"

namespace {
typedef __nv_bfloat16 bf16;
/* the kernel file's primitives, left out with TTT_ATTN_TC_EMU */
__device__ __forceinline__ uint32_t pack2(float lo, float hi) { return bf16_bits(lo) | ((uint32_t)bf16_bits(hi) << 16); }
__device__ __forceinline__ uint32_t ld32(const bf16 *p) { return *(const uint32_t *)p; }
__device__ __forceinline__ float ex2(float x) { return exp2f(x); }
__device__ __forceinline__ void mma(float *d, const uint32_t *a, uint32_t b0, uint32_t b1) { emu_mma(d, a, b0, b1); }
__device__ __forceinline__ void ldsm_x4_trans(uint32_t r[4], const bf16 *a) { emu_ldsm(r, a, 4, true); }
alignas(16) unsigned char smraw[1 << 18];
}

#define TTT_ATTN_TC_EMU
#include "cuda/attn_flash_tc.cu"

template <class F>
static void launch(int gx, int gy, F f)
{
    emu_launch(gx, gy, 1, NT, f, smraw, sizeof smraw);
}

static int run(int B, int H, int D, int T)
{
    const int C = H * D;
    const size_t n = (size_t)B * T * C;
    std::mt19937 rng(1234 + T + D);
    std::normal_distribution<float> nd(0.f, 1.f);
    std::vector<float> Q(n), K(n), V(n), dO(n), O(n, NAN), lse((size_t)B * H * T, NAN), dQ(n, NAN), dK(n, NAN),
        dV(n, NAN), delta((size_t)B * H * T);
    for (size_t i = 0; i < n; i++) { Q[i] = nd(rng) * 1.2f; K[i] = nd(rng) * 1.2f; V[i] = nd(rng); dO[i] = nd(rng); }
    const float scale = 1.f / sqrtf((float)D), sl2 = scale * LOG2E;
    const int nt = (T + TB - 1) / TB;
    if (D == 64) launch(nt, B * H, [&] { k_fwd_tc<64>(O.data(), lse.data(), Q.data(), K.data(), V.data(), T, H, sl2); });
    else launch(nt, B * H, [&] { k_fwd_tc<128>(O.data(), lse.data(), Q.data(), K.data(), V.data(), T, H, sl2); });
    // reference in double
    double eo = 0, so = 0, el = 0, eq = 0, sq = 0, ek = 0, sk = 0, ev = 0, sv = 0;
    std::vector<double> rdQ(n, 0), rdK(n, 0), rdV(n, 0), rO(n, 0);
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++) {
            auto at = [&](std::vector<float> &X, int t, int d) -> float & { return X[((size_t)b * T + t) * C + h * D + d]; };
            std::vector<double> P(T), dP(T);
            for (int i = 0; i < T; i++) {
                double m = -1e300;
                for (int j = 0; j <= i; j++) {
                    double s = 0;
                    for (int d = 0; d < D; d++) s += (double)at(Q, i, d) * at(K, j, d);
                    P[j] = s * scale;
                    m = std::max(m, P[j]);
                }
                double l = 0;
                for (int j = 0; j <= i; j++) { P[j] = exp(P[j] - m); l += P[j]; }
                for (int j = 0; j <= i; j++) P[j] /= l;
                double L = m + log(l);
                el = std::max(el, fabs(L - lse[((size_t)b * H + h) * T + i]));
                double dlt = 0;
                for (int d = 0; d < D; d++) {
                    double o = 0;
                    for (int j = 0; j <= i; j++) o += P[j] * at(V, j, d);
                    rO[((size_t)b * T + i) * C + h * D + d] = o;
                    eo += (o - at(O, i, d)) * (o - at(O, i, d));
                    so += o * o;
                    dlt += o * at(dO, i, d);
                }
                delta[((size_t)b * H + h) * T + i] = (float)dlt;   // as k_delta (fp32 of exact O . dO)
                for (int j = 0; j <= i; j++) {
                    double s = 0;
                    for (int d = 0; d < D; d++) s += (double)at(dO, i, d) * at(V, j, d);
                    dP[j] = P[j] * (s - dlt);
                }
                for (int j = 0; j <= i; j++)
                    for (int d = 0; d < D; d++) {
                        rdV[((size_t)b * T + j) * C + h * D + d] += P[j] * at(dO, i, d);
                        rdQ[((size_t)b * T + i) * C + h * D + d] += dP[j] * at(K, j, d) * scale;
                        rdK[((size_t)b * T + j) * C + h * D + d] += dP[j] * at(Q, i, d) * scale;
                    }
            }
        }
    // delta as attn_gpu.cu's k_delta<true>: the kernel's O, dO rounded to bf16
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++)
            for (int i = 0; i < T; i++) {
                double s = 0;
                for (int d = 0; d < D; d++) s += (double)O[((size_t)b * T + i) * C + h * D + d] * bf16_value(bf16_bits(dO[((size_t)b * T + i) * C + h * D + d]));
                delta[((size_t)b * H + h) * T + i] = (float)s;
            }
    if (D == 64) {
        launch(nt, B * H, [&] { k_bwd_kv_tc<64>(dK.data(), dV.data(), Q.data(), K.data(), V.data(), dO.data(), lse.data(), delta.data(), T, H, scale, sl2); });
        launch(nt, B * H, [&] { k_bwd_q_tc<64>(dQ.data(), Q.data(), K.data(), V.data(), dO.data(), lse.data(), delta.data(), T, H, scale, sl2); });
    } else {
        launch(nt, B * H, [&] { k_bwd_kv_tc<128>(dK.data(), dV.data(), Q.data(), K.data(), V.data(), dO.data(), lse.data(), delta.data(), T, H, scale, sl2); });
        launch(nt, B * H, [&] { k_bwd_q_tc<128>(dQ.data(), Q.data(), K.data(), V.data(), dO.data(), lse.data(), delta.data(), T, H, scale, sl2); });
    }
    for (size_t i = 0; i < n; i++) {
        eq += (rdQ[i] - dQ[i]) * (rdQ[i] - dQ[i]); sq += rdQ[i] * rdQ[i];
        ek += (rdK[i] - dK[i]) * (rdK[i] - dK[i]); sk += rdK[i] * rdK[i];
        ev += (rdV[i] - dV[i]) * (rdV[i] - dV[i]); sv += rdV[i] * rdV[i];
    }
    /* at T = 1 dQ and dK are exactly 0: measure against 1% of the largest gradient */
    const double fl = 1e-4 * std::max(sq, std::max(sk, sv));
    double r[4] = {sqrt(eo / so), sqrt(eq / std::max(sq, fl)), sqrt(ek / std::max(sk, fl)), sqrt(ev / sv)};
    bool bad = false;
    for (double x : r) bad |= !(x < 2e-2);
    bad |= !(el < 2e-2) || emu_misaligned;
    printf("B=%d H=%d D=%d T=%d: O %.3g lse(maxabs) %.3g dQ %.3g dK %.3g dV %.3g %s\n", B, H, D, T, r[0], el, r[1], r[2],
           r[3], bad ? "FAIL" : "ok");
    return bad;
}

int main(void)
{
    int bad = 0;
    bad |= run(1, 1, 64, 1);
    bad |= run(1, 1, 64, 2);
    bad |= run(2, 2, 64, 70);
    bad |= run(1, 1, 64, 130);
    bad |= run(1, 2, 128, 77);
    bad |= run(1, 1, 128, 150);
    bad |= run(2, 1, 128, 1);
    printf("emu_attn_flash_tc: %s\n", bad ? "FAILED" : "all cases ok");
    return bad;
}
