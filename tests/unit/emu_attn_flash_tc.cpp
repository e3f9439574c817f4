/* emu_attn_flash_tc.cpp - host emulator of the tensor-core flash attention
 * kernels (lib/cuda/attn_flash_tc.cu, included with -DTTT_ATTN_TC_EMU): one
 * std::thread per CUDA thread, __syncthreads a block barrier, and the warp
 * collectives (mma m16n8k16, ldmatrix.x4.trans, shfl_xor) exchanged through
 * per-warp slots and barriers, computed from the PTX fragment definitions.
 * Runs the real kernel code (fragment indices, masks, online softmax, both
 * backward kernels) without a GPU and checks O, lse, dQ, dK, dV against a
 * float64 causal attention: relative errors <= 2e-2 (bf16 operands give
 * ~5e-3; an index error gives order 1). Run by `make check-emu` (part of `make test`), or by hand:
 *   g++ -O1 -std=c++20 -pthread -Wno-unknown-pragmas -Ilib \
 *       tests/unit/emu_attn_flash_tc.cpp -o /tmp/emu_attn && /tmp/emu_attn
 * (a few seconds; exit 0 when every case passes). */
#include <barrier>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>
#include <vector>
#include <random>
#include <algorithm>

#define __device__
#define __global__
#define __forceinline__ inline
#define __launch_bounds__(x)
#define __shared__
#define __align__(n)
#define __syncthreads() emu_sync()
#ifndef INFINITY
#define INFINITY (__builtin_inff())
#endif

struct dim3e { unsigned x, y, z; };
static thread_local dim3e threadIdx;
static dim3e blockIdx, gridDim;
struct float4 { float x, y, z, w; };
struct float2 { float x, y; };
struct uint2 { uint32_t x, y; };
static inline float4 make_float4(float a, float b, float c, float d) { return {a, b, c, d}; }
static inline float2 make_float2(float a, float b) { return {a, b}; }
template <class T> static inline T __ldg(const T *p) { return *p; }
using std::min;
struct __nv_bfloat16 { uint16_t x; };

static std::barrier<> *blk_bar;
static std::barrier<> *warp_bar[4];
static void emu_sync() { blk_bar->arrive_and_wait(); }
static void wsync() { warp_bar[threadIdx.x >> 5]->arrive_and_wait(); }

static uint16_t f2bf(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffff) > 0x7f800000) return 0x7fc0;
    u += 0x7fff + ((u >> 16) & 1);
    return (uint16_t)(u >> 16);
}
static float bf2f(uint16_t b)
{
    uint32_t u = (uint32_t)b << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

// per-warp exchange slots
struct WarpSlots {
    uint32_t a[32][4], b[32][4];
    float d[32][4];
    const void *ptr[32];
    float f[32];
};
static WarpSlots slots[4];

static float __shfl_xor_sync(unsigned, float v, int m)
{
    const int w = threadIdx.x >> 5, l = threadIdx.x & 31;
    slots[w].f[l] = v;
    wsync();
    float r = slots[w].f[l ^ m];
    wsync();
    return r;
}

namespace {
typedef __nv_bfloat16 bf16;
__device__ __forceinline__ uint32_t pack2(float lo, float hi) { return f2bf(lo) | ((uint32_t)f2bf(hi) << 16); }
__device__ __forceinline__ uint32_t ld32(const bf16 *p) { return *(const uint32_t *)p; }
__device__ __forceinline__ float ex2(float x) { return exp2f(x); }
static float lo(uint32_t v) { return bf2f(v & 0xffff); }
static float hi(uint32_t v) { return bf2f(v >> 16); }

// m16n8k16 with the PTX fragment layouts
__device__ __forceinline__ void mma(float *d, const uint32_t *a, uint32_t b0, uint32_t b1)
{
    const int w = threadIdx.x >> 5, l = threadIdx.x & 31;
    WarpSlots &S = slots[w];
    for (int i = 0; i < 4; i++) { S.a[l][i] = a[i]; S.d[l][i] = d[i]; }
    S.b[l][0] = b0; S.b[l][1] = b1;
    wsync();
    float A[16][16], B[16][8], Cm[16][8];
    for (int L = 0; L < 32; L++) {
        int g = L >> 2, t = L & 3;
        A[g][2 * t] = lo(S.a[L][0]); A[g][2 * t + 1] = hi(S.a[L][0]);
        A[g + 8][2 * t] = lo(S.a[L][1]); A[g + 8][2 * t + 1] = hi(S.a[L][1]);
        A[g][2 * t + 8] = lo(S.a[L][2]); A[g][2 * t + 9] = hi(S.a[L][2]);
        A[g + 8][2 * t + 8] = lo(S.a[L][3]); A[g + 8][2 * t + 9] = hi(S.a[L][3]);
        B[2 * t][g] = lo(S.b[L][0]); B[2 * t + 1][g] = hi(S.b[L][0]);
        B[2 * t + 8][g] = lo(S.b[L][1]); B[2 * t + 9][g] = hi(S.b[L][1]);
        Cm[g][2 * t] = S.d[L][0]; Cm[g][2 * t + 1] = S.d[L][1];
        Cm[g + 8][2 * t] = S.d[L][2]; Cm[g + 8][2 * t + 1] = S.d[L][3];
    }
    const int g = l >> 2, t = l & 3;
    int rows[4] = {g, g, g + 8, g + 8}, cols[4] = {2 * t, 2 * t + 1, 2 * t, 2 * t + 1};
    float out[4];
    for (int e = 0; e < 4; e++) {
        double s = Cm[rows[e]][cols[e]];
        for (int k = 0; k < 16; k++) s += (double)A[rows[e]][k] * B[k][cols[e]];
        out[e] = (float)s;
    }
    wsync();
    for (int e = 0; e < 4; e++) d[e] = out[e];
}

// ldmatrix.x4.trans
__device__ __forceinline__ void ldsm_x4_trans(uint32_t r[4], const bf16 *a)
{
    const int w = threadIdx.x >> 5, l = threadIdx.x & 31;
    WarpSlots &S = slots[w];
    S.ptr[l] = a;
    wsync();
    const int g = l >> 2, t = l & 3;
    for (int i = 0; i < 4; i++) {
        // matrix i: rows from lanes 8i..8i+7; stored element (row, col) = ptr[8i+row][col]
        const bf16 *r0 = (const bf16 *)S.ptr[8 * i + 2 * t], *r1 = (const bf16 *)S.ptr[8 * i + 2 * t + 1];
        r[i] = (uint32_t)r0[g].x | ((uint32_t)r1[g].x << 16);
    }
    wsync();
}
alignas(16) unsigned char smraw[1 << 18];
}

#define TTT_ATTN_TC_EMU
#include "cuda/attn_flash_tc.cu"

template <class F>
static void launch(int gx, int gy, F f)
{
    gridDim = {(unsigned)gx, (unsigned)gy, 1};
    for (int by = 0; by < gy; by++)
        for (int bx = 0; bx < gx; bx++) {
            blockIdx = {(unsigned)bx, (unsigned)by, 0};
            std::barrier<> bb(NT);
            std::barrier<> w0(32), w1(32), w2(32), w3(32);
            blk_bar = &bb;
            warp_bar[0] = &w0; warp_bar[1] = &w1; warp_bar[2] = &w2; warp_bar[3] = &w3;
            memset(smraw, 0xcd, sizeof smraw);   // garbage: the kernels must not read unstaged memory
            std::vector<std::thread> th;
            for (int i = 0; i < NT; i++)
                th.emplace_back([&, i] { threadIdx = {(unsigned)i, 0, 0}; f(); });
            for (auto &x : th) x.join();
        }
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
                for (int d = 0; d < D; d++) s += (double)O[((size_t)b * T + i) * C + h * D + d] * bf2f(f2bf(dO[((size_t)b * T + i) * C + h * D + d]));
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
    bad |= !(el < 2e-2);
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
