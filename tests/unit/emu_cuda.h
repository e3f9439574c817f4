/* emu_cuda.h - the host side of the threaded CUDA kernel emulators
 * (tests/unit/emu_attn_decode.cpp, emu_attn_flash_tc.cpp,
 * emu_ttt_linear_tc.cpp): the CUDA keywords and vector types, bf16, one
 * std::thread per CUDA thread with __syncthreads a block barrier, and the
 * warp collectives (shuffles, mma m16n8k16, ldmatrix) exchanged through
 * per-warp slots and barriers, computed from the PTX definitions. Blocks run
 * one after another. The includer defines __shared__ first: `static` for
 * kernels with static shared arrays, empty for the extern dynamic one (then
 * it also declares smraw in an anonymous namespace, which the kernels'
 * `extern __shared__ smraw[]` names). */
#ifndef TTT_EMU_CUDA_H
#define TTT_EMU_CUDA_H

#include <algorithm>
#include <barrier>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <random>
#include <thread>
#include <vector>

#include "../bf16_bits.h"

#define __device__
#define __global__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __restrict__
#define __align__(n)
#define __syncthreads() emu_sync()
#ifndef INFINITY
#define INFINITY (__builtin_inff())
#endif
using std::min;

struct dim3e { unsigned x, y, z; };
static thread_local dim3e threadIdx;
static dim3e blockIdx, gridDim, blockDim;
struct float4 { float x, y, z, w; };
struct float2 { float x, y; };
struct uint2 { uint32_t x, y; };
struct uint4 { uint32_t x, y, z, w; };
static inline float4 make_float4(float a, float b, float c, float d) { return {a, b, c, d}; }
static inline float2 make_float2(float a, float b) { return {a, b}; }
static inline uint2 make_uint2(uint32_t a, uint32_t b) { return {a, b}; }
static inline uint4 make_uint4(uint32_t a, uint32_t b, uint32_t c, uint32_t d) { return {a, b, c, d}; }
template <class T> static inline T __ldg(const T *p) { return *p; }
static inline float rsqrtf(float x) { return 1.f / sqrtf(x); }

/* bf16: 16 bits of storage, round to nearest even */
struct __nv_bfloat16 { uint16_t x; };
struct __nv_bfloat162 { __nv_bfloat16 x, y; };
static inline __nv_bfloat16 __float2bfloat16_rn(float f) { return {bf16_bits(f)}; }
static inline __nv_bfloat16 __float2bfloat16(float f) { return {bf16_bits(f)}; }
static inline float __bfloat162float(__nv_bfloat16 b) { return bf16_value(b.x); }
static inline __nv_bfloat162 __floats2bfloat162_rn(float lo, float hi) { return {{bf16_bits(lo)}, {bf16_bits(hi)}}; }
static inline float2 __bfloat1622float2(__nv_bfloat162 v) { return {bf16_value(v.x.x), bf16_value(v.y.x)}; }

static std::mutex emu_atomic_mu;
static inline float atomicAdd(float *p, float v)
{
    std::lock_guard<std::mutex> l(emu_atomic_mu);
    const float o = *p;
    *p = o + v;
    return o;
}

/* the block barrier, and a barrier and exchange slots per warp */
#define EMU_MAXW 32
static std::barrier<> *emu_blk_bar;
static std::barrier<> *emu_warp_bar[EMU_MAXW];
static void emu_sync() { emu_blk_bar->arrive_and_wait(); }
static void emu_wsync() { emu_warp_bar[threadIdx.x >> 5]->arrive_and_wait(); }
static inline void __syncwarp() { emu_wsync(); }
struct emu_warp_slots {
    uint32_t a[32][4], b[32][2];
    float d[32][4], f[32];
    const void *ptr[32];
};
static emu_warp_slots emu_slots[EMU_MAXW];

/* the value lane src (or lane ^ m) passed in */
static float emu_shfl(float v, int src, bool is_xor)
{
    const int w = threadIdx.x >> 5, l = threadIdx.x & 31;
    emu_slots[w].f[l] = v;
    emu_wsync();
    const float r = emu_slots[w].f[is_xor ? l ^ src : src];
    emu_wsync();
    return r;
}
static inline float __shfl_xor_sync(unsigned, float v, int m) { return emu_shfl(v, m, true); }
static inline float __shfl_sync(unsigned, float v, int src) { return emu_shfl(v, src, false); }

/* d += a b, m16n8k16, bf16 in, fp32 accumulate (g = lane >> 2, t = lane &
 * 3): a0 (g, 2t..), a1 (g+8, 2t..), a2 (g, 2t+8..), a3 (g+8, 2t+8..); b0 (k =
 * 2t.., n = g), b1 (k = 2t+8.., n = g); d: (g, 2t..), (g+8, 2t..) */
static void emu_mma(float *d, const uint32_t *a, uint32_t b0, uint32_t b1)
{
    const int w = threadIdx.x >> 5, l = threadIdx.x & 31;
    emu_warp_slots &S = emu_slots[w];
    for (int i = 0; i < 4; i++) { S.a[l][i] = a[i]; S.d[l][i] = d[i]; }
    S.b[l][0] = b0; S.b[l][1] = b1;
    emu_wsync();
    auto lo = [](uint32_t v) { return (double)bf16_value(v & 0xffff); };
    auto hi = [](uint32_t v) { return (double)bf16_value(v >> 16); };
    double A[16][16], B[16][8];
    for (int L = 0; L < 32; L++) {
        const int g = L >> 2, t = L & 3;
        A[g][2 * t] = lo(S.a[L][0]); A[g][2 * t + 1] = hi(S.a[L][0]);
        A[g + 8][2 * t] = lo(S.a[L][1]); A[g + 8][2 * t + 1] = hi(S.a[L][1]);
        A[g][2 * t + 8] = lo(S.a[L][2]); A[g][2 * t + 9] = hi(S.a[L][2]);
        A[g + 8][2 * t + 8] = lo(S.a[L][3]); A[g + 8][2 * t + 9] = hi(S.a[L][3]);
        B[2 * t][g] = lo(S.b[L][0]); B[2 * t + 1][g] = hi(S.b[L][0]);
        B[2 * t + 8][g] = lo(S.b[L][1]); B[2 * t + 9][g] = hi(S.b[L][1]);
    }
    const int g = l >> 2, t = l & 3;
    float out[4];
    for (int e = 0; e < 4; e++) {
        const int row = g + 8 * (e >> 1), col = 2 * t + (e & 1);
        double s = S.d[l][e];
        for (int k = 0; k < 16; k++) s += A[row][k] * B[k][col];
        out[e] = (float)s;
    }
    emu_wsync();
    for (int e = 0; e < 4; e++) d[e] = out[e];
}

/* ldmatrix .xN (.trans): matrix i's 8 rows from lanes 8i..8i+7, each 16-byte
 * aligned (else emu_misaligned is set: a fault on the GPU); plain: lane (g,
 * t) gets (row g, cols 2t, 2t+1), .trans: (rows 2t, 2t+1, col g) */
static int emu_misaligned;
static void emu_ldsm(uint32_t *r, const __nv_bfloat16 *p, int n, bool trans)
{
    const int w = threadIdx.x >> 5, l = threadIdx.x & 31;
    emu_warp_slots &S = emu_slots[w];
    S.ptr[l] = p;
    emu_wsync();
    const int g = l >> 2, t = l & 3;
    for (int i = 0; i < n; i++) {
        for (int k = 0; k < 8; k++)
            if ((uintptr_t)S.ptr[8 * i + k] % 16) emu_misaligned = 1;
        if (trans) {
            const auto *r0 = (const __nv_bfloat16 *)S.ptr[8 * i + 2 * t];
            const auto *r1 = (const __nv_bfloat16 *)S.ptr[8 * i + 2 * t + 1];
            r[i] = (uint32_t)r0[g].x | ((uint32_t)r1[g].x << 16);
        } else {
            const auto *row = (const __nv_bfloat16 *)S.ptr[8 * i + g];
            r[i] = (uint32_t)row[2 * t].x | ((uint32_t)row[2 * t + 1].x << 16);
        }
    }
    emu_wsync();
}

/* stmatrix .x4: matrix i's 8 rows from lanes 8i..8i+7 (16-byte aligned),
 * lane (g, t) gives (row g, cols 2t, 2t+1) of matrix i */
static void emu_stsm(__nv_bfloat16 *p, const uint32_t *r)
{
    const int w = threadIdx.x >> 5, l = threadIdx.x & 31;
    emu_warp_slots &S = emu_slots[w];
    S.ptr[l] = p;
    emu_wsync();
    const int g = l >> 2, t = l & 3;
    for (int i = 0; i < 4; i++) {
        if ((uintptr_t)S.ptr[8 * i + g] % 16) emu_misaligned = 1;
        auto *row = (__nv_bfloat16 *)S.ptr[8 * i + g];
        row[2 * t].x = (uint16_t)(r[i] & 0xffff);
        row[2 * t + 1].x = (uint16_t)(r[i] >> 16);
    }
    emu_wsync();
}

/* gx x gy x gz blocks of nt threads, one block after another, each thread
 * running f(); smem (n bytes) filled with garbage before each block, so
 * that a kernel reading shared memory it did not stage shows */
template <class F>
static void emu_launch(unsigned gx, unsigned gy, unsigned gz, unsigned nt, F f, void *smem = NULL, size_t n = 0)
{
    gridDim = {gx, gy, gz};
    blockDim = {nt, 1, 1};
    for (unsigned bz = 0; bz < gz; bz++)
        for (unsigned by = 0; by < gy; by++)
            for (unsigned bx = 0; bx < gx; bx++) {
                blockIdx = {bx, by, bz};
                std::barrier<> bb(nt);
                std::vector<std::unique_ptr<std::barrier<>>> wb;
                for (unsigned w = 0; w < (nt + 31) / 32; w++) {
                    wb.emplace_back(new std::barrier<>(32));
                    emu_warp_bar[w] = wb.back().get();
                }
                emu_blk_bar = &bb;
                if (smem) memset(smem, 0xcd, n);
                std::vector<std::thread> th;
                for (unsigned i = 0; i < nt; i++) th.emplace_back([&, i] { threadIdx = {i, 0, 0}; f(); });
                for (auto &x : th) x.join();
            }
}

#endif
