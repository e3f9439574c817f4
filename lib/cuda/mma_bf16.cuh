/* mma_bf16.cuh - the tensor-core plumbing of the TTT inner kernels in bf16
 * mode (ttt_inner_linear_tc.cu, ttt_inner_mlp_tc.cu): bf16 packing, the
 * mma.sync m16n8k16 wrapper, operand fragments by ldmatrix, the quad/column shuffles of the
 * accumulator layout, and RoPE of a channel pair at a mini-batch row.
 *
 * Fragment layouts of m16n8k16 (g = lane >> 2, t = lane & 3): A row-major
 * 16x16: a0 (g, 2t..2t+1), a1 (g+8, ..), a2 (g, 2t+8..), a3 (g+8, 2t+8..);
 * B "col" 16x8: b0 (k = 2t..2t+1, n = g), b1 (k = 2t+8.., n = g); C/D 16x8:
 * c0,c1 (g, 2t..2t+1), c2,c3 (g+8, ..). An accumulator tile of X is
 * therefore the A operand of X and the B operand of X^T, no data movement. */
#ifndef TTT_MMA_BF16_CUH
#define TTT_MMA_BF16_CUH

#ifndef TTT_CUDA_EMU
#include <cuda_bf16.h>
#endif
#include <stdint.h>

namespace {

typedef __nv_bfloat16 bf16;

__device__ __forceinline__ uint32_t pack2(float lo, float hi)
{
    __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);   /* lo -> low half: the lower index */
    return *(uint32_t *)&v;
}

__device__ __forceinline__ uint32_t ld32(const bf16 *p) { return *(const uint32_t *)p; }

#ifndef TTT_CUDA_EMU   /* the emulators define mma and ldsm_* from the PTX fragment layouts */
/* d += a b, m16n8k16, bf16 in, fp32 accumulate */
__device__ __forceinline__ void mma(float *d, uint32_t a0, uint32_t a1, uint32_t a2, uint32_t a3, uint32_t b0,
                                    uint32_t b1)
{
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
                 "{%0,%1,%2,%3};\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                 : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
}
#endif
__device__ __forceinline__ void mma(float *d, const uint32_t *a, const uint32_t *b)
{
    mma(d, a[0], a[1], a[2], a[3], b[0], b[1]);
}

#ifndef TTT_CUDA_EMU
/* ldmatrix: matrix j's 8 row addresses come from lanes 8j..8j+7 (16-byte
 * aligned rows of 8 bf16). Plain: the thread receives (row g, cols 2t, 2t+1)
 * of each matrix; .trans: (rows 2t, 2t+1, col g), low half first. */
#define TTT_LDSM4(name, suffix)                                                                             \
    __device__ __forceinline__ void name(uint32_t *r, const bf16 *p)                                       \
    {                                                                                                      \
        asm volatile("ldmatrix.sync.aligned.m8n8.x4" suffix ".shared.b16 {%0,%1,%2,%3}, [%4];\n"          \
                     : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])                                      \
                     : "r"((unsigned)__cvta_generic_to_shared(p))                                          \
                     : "memory");                                                                          \
    }
#define TTT_LDSM2(name, suffix)                                                                             \
    __device__ __forceinline__ void name(uint32_t *r, const bf16 *p)                                       \
    {                                                                                                      \
        asm volatile("ldmatrix.sync.aligned.m8n8.x2" suffix ".shared.b16 {%0,%1}, [%2];\n"                \
                     : "=r"(r[0]), "=r"(r[1])                                                              \
                     : "r"((unsigned)__cvta_generic_to_shared(p))                                          \
                     : "memory");                                                                          \
    }
/* stmatrix .x4, the inverse of ldsm_x4 (plain): matrix j's 8 row
 * addresses from lanes 8j..8j+7, the thread's r[j] is (row g, cols 2t,
 * 2t+1) of matrix j */
__device__ __forceinline__ void stsm_x4(bf16 *p, uint32_t r0, uint32_t r1, uint32_t r2, uint32_t r3)
{
    asm volatile("stmatrix.sync.aligned.m8n8.x4.shared.b16 [%0], {%1,%2,%3,%4};\n" ::"r"(
                     (unsigned)__cvta_generic_to_shared(p)),
                 "r"(r0), "r"(r1), "r"(r2), "r"(r3)
                 : "memory");
}
TTT_LDSM4(ldsm_x4, "")
TTT_LDSM2(ldsm_x2, "")
TTT_LDSM4(ldsm_x4_t, ".trans")
TTT_LDSM2(ldsm_x2_t, ".trans")
#undef TTT_LDSM4
#undef TTT_LDSM2
#endif

/* Operand fragments by ldmatrix (every row 16-byte aligned: leading
 * dimensions, m0, n0 and k0 multiples of 8 elements).
 * A fragment of the m16k16 block at (m0, k0) of A(m, k):
 * AT = false: stored row-major, A(m, k) = A[m*lda + k];
 * AT = true:  stored transposed, A(m, k) = A[k*lda + m] (.trans: matrices
 * (m-half, k-half) = (0,0), (1,0), (0,1), (1,1) = a0..a3). */
template <bool AT>
__device__ __forceinline__ void load_a(uint32_t *a, const bf16 *A, int lda, int m0, int k0, int lane)
{
    const int j = lane >> 3, rr = lane & 7;
    if (AT) ldsm_x4_t(a, A + (k0 + 8 * (j >> 1) + rr) * lda + m0 + 8 * (j & 1));
    else ldsm_x4(a, A + (m0 + 8 * (j & 1) + rr) * lda + k0 + 8 * (j >> 1));
}

/* B fragment of the k16n8 block at (k0, n0) of B(k, n):
 * BT = false: stored as B^T row-major, B(k, n) = B[n*ldb + k];
 * BT = true:  stored row-major, B(k, n) = B[k*ldb + n] (.trans).
 * Lanes 0-7 address the first matrix (k0..), lanes 8-15 the second (k0+8..). */
template <bool BT>
__device__ __forceinline__ void load_b(uint32_t *b, const bf16 *B, int ldb, int n0, int k0, int lane)
{
    const int j = (lane >> 3) & 1, rr = lane & 7;
    if (BT) ldsm_x2_t(b, B + (k0 + 8 * j + rr) * ldb + n0);
    else ldsm_x2(b, B + (n0 + rr) * ldb + k0 + 8 * j);
}

/* Two B fragments by one ldmatrix.x4: b[0..1] and b[2..3] of the k16n8
 * blocks at (k0, n0) and (k0, n0 + 8), half the ldmatrix instructions of
 * load_b (mma_row). The same along k (two k-steps of one tile) made the
 * TTT-MLP backward slower: its registers spilled. */
template <bool BT>
__device__ __forceinline__ void load_b_n2(uint32_t *b, const bf16 *B, int ldb, int n0, int k0, int lane)
{
    const int j = lane >> 3, rr = lane & 7;
    if (BT) ldsm_x4_t(b, B + (k0 + 8 * (j & 1) + rr) * ldb + n0 + 8 * (j >> 1));
    else ldsm_x4(b, B + (n0 + 8 * (j >> 1) + rr) * ldb + k0 + 8 * (j & 1));
}

/* acc (the m16n8 tile at (m0, n0)) += sum_{k < K} A(m, k) B(k, n) */
template <int K, bool AT, bool BT>
__device__ __forceinline__ void mma_tile(float *acc, const bf16 *A, int lda, int m0, const bf16 *B, int ldb, int n0,
                                         int lane)
{
#pragma unroll
    for (int k0 = 0; k0 < K; k0 += 16) {
        uint32_t fa[4], fb[2];
        load_a<AT>(fa, A, lda, m0, k0, lane);
        load_b<BT>(fb, B, ldb, n0, k0, lane);
        mma(acc, fa, fb);
    }
}

/* mma_tile for a long K, its k-steps dealt round-robin to S accumulators:
 * S independent chains of K / 16 / S mma, summed at the end. One chain of
 * K = F = 256 is 16 mma each waiting for the one before, and a phase whose
 * warps own one such tile each (two warps a scheduler) waits out that
 * latency with nothing else to issue. */
#ifndef TTT_MMA_SPLIT
#define TTT_MMA_SPLIT 4
#endif
template <int K, bool AT, bool BT, int S = TTT_MMA_SPLIT>
__device__ __forceinline__ void mma_tile_split(float *acc, const bf16 *A, int lda, int m0, const bf16 *B, int ldb,
                                               int n0, int lane)
{
    static_assert(K % (16 * S) == 0, "every chain the same length");
    float part[S > 1 ? S - 1 : 1][4] = {};   /* chain 0 is acc itself */
#pragma unroll
    for (int k0 = 0; k0 < K; k0 += 16) {
        uint32_t fa[4], fb[2];
        load_a<AT>(fa, A, lda, m0, k0, lane);
        load_b<BT>(fb, B, ldb, n0, k0, lane);
        const int c = (k0 / 16) % S;
        mma(c ? part[c - 1] : acc, fa, fb);
    }
#pragma unroll
    for (int j = 0; j + 1 < S; j++)
#pragma unroll
        for (int x = 0; x < 4; x++) acc[x] += part[j][x];
}

/* NQ adjacent tiles of one 16-row band: acc[q] at (0, n0 + 8q), A fragments shared */
template <int K, bool AT, bool BT, int NQ>
__device__ __forceinline__ void mma_row(float (*acc)[4], const bf16 *A, int lda, const bf16 *B, int ldb, int n0,
                                        int lane)
{
#pragma unroll
    for (int k0 = 0; k0 < K; k0 += 16) {
        uint32_t fa[4];
        load_a<AT>(fa, A, lda, 0, k0, lane);
#pragma unroll
        for (int q = 0; q + 1 < NQ; q += 2) {
            uint32_t fb[4];
            load_b_n2<BT>(fb, B, ldb, n0 + 8 * q, k0, lane);
            mma(acc[q], fa, fb);
            mma(acc[q + 1], fa, fb + 2);
        }
        if constexpr (NQ % 2) {
            uint32_t fb[2];
            load_b<BT>(fb, B, ldb, n0 + 8 * (NQ - 1), k0, lane);
            mma(acc[NQ - 1], fa, fb);
        }
    }
}

/* N adjacent m16n8 tiles of one 16-row band, at (m0, n0 + 8q), in bf16
 * (p[q][0]: the pair at row g, p[q][1]: row g + 8, columns 2t, 2t+1: an
 * accumulator tile packed) into C row-major: one stmatrix.x4 each two
 * tiles where they took four 4-byte stores. */
template <int N>
__device__ __forceinline__ void store_tiles(bf16 *C, int ldc, int m0, int n0, const uint32_t (*p)[2], int lane)
{
    const int j = lane >> 3, rr = lane & 7;
#pragma unroll
    for (int q = 0; q + 1 < N; q += 2)
        stsm_x4(C + (m0 + rr + 8 * (j & 1)) * ldc + n0 + 8 * (q + (j >> 1)), p[q][0], p[q][1], p[q + 1][0],
                p[q + 1][1]);
    if constexpr (N % 2) {
        const int g = lane >> 2, t = lane & 3;
        *(uint32_t *)&C[(m0 + g) * ldc + n0 + 8 * (N - 1) + 2 * t] = p[N - 1][0];
        *(uint32_t *)&C[(m0 + g + 8) * ldc + n0 + 8 * (N - 1) + 2 * t] = p[N - 1][1];
    }
}

/* Sum over the 4 lanes of a quad (t: one accumulator row's columns). */
__device__ __forceinline__ float quad_sum(float v)
{
    v += __shfl_xor_sync(0xffffffffu, v, 1);
    return v + __shfl_xor_sync(0xffffffffu, v, 2);
}

/* Sum over the 8 quads (g: one accumulator column's rows). */
__device__ __forceinline__ float col_sum(float v)
{
    v += __shfl_xor_sync(0xffffffffu, v, 4);
    v += __shfl_xor_sync(0xffffffffu, v, 8);
    return v + __shfl_xor_sync(0xffffffffu, v, 16);
}

/* RoPE of the channel pair (c, c+1) (c even) at mini-batch row i (position
 * t mod 16 = i: mini-batches start at multiples of 16); sign -1 rotates back
 * (gradients). tab [16][D/2][2] cos, sin; NULL: no rotation. */
template <int D>
__device__ __forceinline__ float2 rope_pair(const float *tab, int i, int c, float2 v, float sign)
{
    if (!tab) return v;
    const float2 cs = *(const float2 *)&tab[(i * (D / 2) + c / 2) * 2];
    const float sn = sign * cs.y;
    return make_float2(v.x * cs.x - v.y * sn, v.x * sn + v.y * cs.x);
}

/* The rotations of the two channel pairs c, c+2 at mini-batch row i (c a
 * multiple of 4): cos, sin of each, one 16-byte load; the identity without a
 * table. Fixed for a thread that always loads the same (i, c) of its tiles,
 * so loaded once, before the loop: no table read on a mini-batch's path. */
template <int D>
__device__ __forceinline__ float4 rope4_coef(const float *tab, int i, int c)
{
    return tab ? *(const float4 *)&tab[(i * (D / 2) + c / 2) * 2] : make_float4(1.f, 0.f, 1.f, 0.f);
}

/* RoPE of the channels c..c+3 of a float4 by rope4_coef's rotations. */
__device__ __forceinline__ float4 rope4(float4 cs, float4 v)
{
    return make_float4(v.x * cs.x - v.y * cs.y, v.x * cs.y + v.y * cs.x, v.z * cs.z - v.w * cs.w,
                       v.z * cs.w + v.w * cs.z);
}

}  /* namespace */

#endif
