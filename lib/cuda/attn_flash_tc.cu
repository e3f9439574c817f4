/* attn_flash_tc.cu - FlashAttention-2 on tensor cores for the Transformer
 * baseline in TTT_CUDA_BF16 mode (attn_gpu.cu keeps its exact fp32 kernels
 * for TTT_CUDA_F32 and for head dims other than 64, 128).
 *
 * Every product runs on mma.sync m16n8k16 (bf16 operands, fp32
 * accumulation). The fp32 Q, K, V, dO the layer keeps are rounded to bf16
 * as 64-row tiles are staged in shared memory (row-major [64][D+8]: the pad
 * makes the 32-bit fragment loads and ldmatrix conflict-free). Operands
 * whose k index runs along the tile rows (V in P V, dO in P^T dO, Q in
 * dS^T Q, K in dS K) are read with ldmatrix.trans; the others with plain
 * 32-bit loads. Softmax statistics, O, dQ, dK, dV stay fp32; P and dS are
 * rounded to bf16 only as mma operands. One block of 4 warps per
 * (64-row tile, b*H+h); each warp owns 16 rows of the tile.
 *
 * Fragment layouts (g = lane>>2, t = lane&3): A 16x16 row-major a0 (g,
 * 2t..2t+1), a1 (g+8, ..), a2 (g, 2t+8..), a3 (g+8, 2t+8..); B 16x8 "col"
 * b0 (k = 2t..2t+1, n = g), b1 (k = 2t+8.., n = g); C 16x8 c0,c1 (g,
 * 2t..2t+1), c2,c3 (g+8, ..). The accumulators of the n-tiles 2j and 2j+1
 * are the A fragment of the k-step j, which is how P and dS feed the
 * second product without leaving the registers.
 *
 * Scores run in base 2 (scale*log2e folded in, ex2.approx); lse is stored
 * in natural log like the fp32 kernels'. Deterministic: no atomics; the
 * backward is the FA2 split in a key-tile kernel (dK, dV) and a query-tile
 * kernel (dQ).
 *
 * -DTTT_ATTN_NO_LDMATRIX replaces ldmatrix.trans by scalar shared loads
 * (same values; for isolating a fault). -DTTT_ATTN_TC_EMU leaves out the
 * inline-PTX primitives and the launchers, so that a host emulator (threads
 * for lanes, per-warp barriers for mma/ldmatrix/shuffles) can include this
 * file and run the kernels themselves on the CPU.
 */
#ifndef TTT_ATTN_TC_EMU
#include <cuda_bf16.h>
#include <math.h>
#include <stdint.h>

#include "attn_flash_tc.cuh"
#endif

#define TB 64            /* rows per tile: queries and keys */
#define NW 4             /* warps per block, 16 rows each */
#define NT (NW * 32)
#define LOG2E 1.4426950408889634f
#define LN2 0.6931471805599453f

namespace {

typedef __nv_bfloat16 bf16;

#ifndef TTT_ATTN_TC_EMU
__device__ __forceinline__ uint32_t pack2(float lo, float hi)
{
    __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);   /* lo -> low half: the lower index */
    return *(uint32_t *)&v;
}

__device__ __forceinline__ uint32_t ld32(const bf16 *p) { return *(const uint32_t *)p; }

/* d += a b, m16n8k16, bf16 in, fp32 accumulate */
__device__ __forceinline__ void mma(float *d, const uint32_t *a, uint32_t b0, uint32_t b1)
{
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
                 "{%0,%1,%2,%3};\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

/* 2^x; -inf gives +0 */
__device__ __forceinline__ float ex2(float x)
{
    float y;
    asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
    return y;
}

/* ldmatrix.x4.trans: lane l gives the address of row l&7 of the 8x8
 * matrix l>>3; r[i] gets matrix i transposed, i.e. lane (g, t) holds the
 * stored elements (2t, g), (2t+1, g) of matrix i. */
__device__ __forceinline__ void ldsm_x4_trans(uint32_t r[4], const bf16 *a)
{
    const uint32_t s = (uint32_t)__cvta_generic_to_shared(a);
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(s));
}
#endif /* !TTT_ATTN_TC_EMU */

/* B fragments of two n-tiles whose k index runs along the rows of a
 * row-major bf16 tile: p = &tile[k0][n0], row stride ld; b[0], b[1] for
 * columns n0..n0+7, b[2], b[3] for n0+8..n0+15 (k = k0..k0+15).
 * ldmatrix.x4.trans: lanes 0-7 address the rows k0..k0+7 at n0 (matrix 0 ->
 * b[0]), lanes 8-15 the rows k0+8.. at n0 (b[1]), lanes 16-23 and 24-31 the
 * same rows at n0+8 (b[2], b[3]); .trans hands lane (g, t) the stored
 * elements (2t, g), (2t+1, g) of each 8x8 matrix: exactly b0 / b1. */
__device__ __forceinline__ void ldb_trans2(uint32_t b[4], const bf16 *p, int ld, int lane)
{
#ifndef TTT_ATTN_NO_LDMATRIX
    ldsm_x4_trans(b, p + (lane & 15) * ld + (lane >> 4) * 8);
#else
    const int g = lane >> 2, t = lane & 3;
    #pragma unroll
    for (int i = 0; i < 4; i++) {
        const bf16 *q = p + ((i & 1) * 8 + 2 * t) * ld + (i >> 1) * 8 + g;
        __nv_bfloat162 v;
        v.x = q[0];
        v.y = q[ld];
        b[i] = *(uint32_t *)&v;
    }
#endif
}

/* A fragment (16 rows r0.., k = k0..k0+15) of a row-major bf16 tile. */
__device__ __forceinline__ void lda(uint32_t a[4], const bf16 *tile, int ld, int r0, int k0, int g, int t)
{
    const bf16 *p = tile + (r0 + g) * ld + k0 + 2 * t;
    a[0] = ld32(p);
    a[1] = ld32(p + 8 * ld);
    a[2] = ld32(p + 8);
    a[3] = ld32(p + 8 * ld + 8);
}

/* acc[nt] (+)= A (16 x DM, row-major tile rows r0..) times the rows
 * n = nt*8.. of the tile Bt (B[k][n] = Bt[n][k]): the 16 x 64 products
 * S = Q K^T, dP = dO V^T and their transposes. */
template <int DM>
__device__ __forceinline__ void mma_abt(float acc[8][4], const bf16 *A, int r0, const bf16 *Bt, int g, int t)
{
    constexpr int LD = DM + 8;
    #pragma unroll
    for (int nt = 0; nt < 8; nt++)
        #pragma unroll
        for (int e = 0; e < 4; e++) acc[nt][e] = 0.f;
    #pragma unroll
    for (int kk = 0; kk < DM / 16; kk++) {
        uint32_t a[4];
        lda(a, A, LD, r0, 16 * kk, g, t);
        #pragma unroll
        for (int nt = 0; nt < 8; nt++) {
            const bf16 *p = Bt + (nt * 8 + g) * LD + 16 * kk + 2 * t;
            mma(acc[nt], a, ld32(p), ld32(p + 8));
        }
    }
}

/* out[nd] += X Y with X 16 x 64 given as accumulators x[8][4] (rounded to
 * bf16 here) and Y the row-major tile [64][DM] (k = its rows). */
template <int DM>
__device__ __forceinline__ void mma_xy(float out[DM / 8][4], const float x[8][4], const bf16 *Y, int lane)
{
    constexpr int LD = DM + 8;
    #pragma unroll
    for (int kk = 0; kk < TB / 16; kk++) {
        uint32_t a[4];
        a[0] = pack2(x[2 * kk][0], x[2 * kk][1]);
        a[1] = pack2(x[2 * kk][2], x[2 * kk][3]);
        a[2] = pack2(x[2 * kk + 1][0], x[2 * kk + 1][1]);
        a[3] = pack2(x[2 * kk + 1][2], x[2 * kk + 1][3]);
        #pragma unroll
        for (int nd = 0; nd < DM / 8; nd += 2) {
            uint32_t b[4];
            ldb_trans2(b, Y + (16 * kk) * LD + nd * 8, LD, lane);
            mma(out[nd], a, b[0], b[1]);
            mma(out[nd + 1], a, b[2], b[3]);
        }
    }
}

/* Rows r0..r0+63 of one head (element (r, d) at src[base + r*C + d]) into
 * the bf16 tile dst [64][DM+8]; zeros past T. */
template <int DM>
__device__ __forceinline__ void stage(bf16 *dst, const float *src, size_t base, int r0, int T, int C)
{
    constexpr int NV = DM / 4, LD = DM + 8;
    #pragma unroll 4
    for (int i = threadIdx.x; i < TB * NV; i += NT) {
        const int r = i / NV, c = (i % NV) * 4;
        float4 v = make_float4(0.f, 0.f, 0.f, 0.f);
        if (r0 + r < T) v = __ldg((const float4 *)(src + base + (size_t)(r0 + r) * C + c));
        uint2 u;
        u.x = pack2(v.x, v.y);
        u.y = pack2(v.z, v.w);
        *(uint2 *)(dst + r * LD + c) = u;
    }
}

/* lse * log2e and delta of the query rows i0.. (0 past T) into l2[64], dl[64]. */
__device__ __forceinline__ void stage_rowstats(float *l2, float *dl, const float *lse, const float *delta,
                                               size_t off, int i0, int T)
{
    if (threadIdx.x < TB) {
        const int i = i0 + threadIdx.x;
        l2[threadIdx.x] = i < T ? lse[off + i] * LOG2E : 0.f;
        dl[threadIdx.x] = i < T ? delta[off + i] : 0.f;
    }
}

__device__ __forceinline__ float quad_max(float v)
{
    v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, 1));
    return fmaxf(v, __shfl_xor_sync(0xffffffffu, v, 2));
}
__device__ __forceinline__ float quad_sum(float v)
{
    v += __shfl_xor_sync(0xffffffffu, v, 1);
    return v + __shfl_xor_sync(0xffffffffu, v, 2);
}

template <int DM> constexpr size_t tile_bytes() { return (size_t)TB * (DM + 8) * sizeof(bf16); }

/* Forward: block (query tile, b*H+h), warp w owns the queries i0+16w..;
 * thread (g, t) the rows g, g+8 of them. Online softmax in base 2: running
 * max m (of score*scale*log2e) and the thread's partial row sum l (its
 * columns only; the quad's partials are added at the end: they share m). */
template <int DM>
__global__ void __launch_bounds__(NT) k_fwd_tc(float *O, float *lse, const float *Q, const float *K,
                                               const float *V, int T, int H, float sl2)
{
    constexpr int LD = DM + 8, NKD = DM / 16, NND = DM / 8;
    extern __shared__ __align__(16) unsigned char smraw[];
    bf16 *Qs = (bf16 *)smraw, *Ks = Qs + TB * LD, *Vs = Ks + TB * LD;
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, g = lane >> 2, t = lane & 3;
    const int C = H * DM, bh = blockIdx.y, b = bh / H, h = bh % H;
    const int i0 = (gridDim.x - 1 - blockIdx.x) * TB;   /* longest tiles first */
    const size_t base = (size_t)b * T * C + (size_t)h * DM;
    const int q0 = i0 + warp * 16 + g, q1 = q0 + 8;

    stage<DM>(Qs, Q, base, i0, T, C);
    __syncthreads();
    uint32_t qa[NKD][4];
    #pragma unroll
    for (int kk = 0; kk < NKD; kk++) lda(qa[kk], Qs, LD, warp * 16, 16 * kk, g, t);

    float o[NND][4], m0 = -INFINITY, m1 = -INFINITY, l0 = 0.f, l1 = 0.f;
    #pragma unroll
    for (int nd = 0; nd < NND; nd++)
        #pragma unroll
        for (int e = 0; e < 4; e++) o[nd][e] = 0.f;

    const int kend = min(i0 + TB, T);
    for (int j0 = 0; j0 < kend; j0 += TB) {
        __syncthreads();                  /* the previous K, V tiles are consumed */
        stage<DM>(Ks, K, base, j0, T, C);
        stage<DM>(Vs, V, base, j0, T, C);
        __syncthreads();
        float s[8][4];
        #pragma unroll
        for (int nt = 0; nt < 8; nt++)
            #pragma unroll
            for (int e = 0; e < 4; e++) s[nt][e] = 0.f;
        #pragma unroll
        for (int kk = 0; kk < NKD; kk++)
            #pragma unroll
            for (int nt = 0; nt < 8; nt++) {
                const bf16 *p = Ks + (nt * 8 + g) * LD + 16 * kk + 2 * t;
                mma(s[nt], qa[kk], ld32(p), ld32(p + 8));
            }
        /* causal mask only on the diagonal tile (j0 == i0), T on the last */
        const bool edge = j0 + TB > i0 || j0 + TB > T;
        float mx0 = -INFINITY, mx1 = -INFINITY;
        #pragma unroll
        for (int nt = 0; nt < 8; nt++)
            #pragma unroll
            for (int e = 0; e < 4; e++) {
                const int kj = j0 + nt * 8 + 2 * t + (e & 1), qi = e < 2 ? q0 : q1;
                float v = s[nt][e] * sl2;
                if (edge && (kj > qi || kj >= T)) v = -INFINITY;
                s[nt][e] = v;
                if (e < 2) mx0 = fmaxf(mx0, v); else mx1 = fmaxf(mx1, v);
            }
        /* key j0 <= i0 <= every query of the tile is visible: the new max is
         * finite; the guard keeps a fully masked row at p = 0, not NaN */
        const float n0 = fmaxf(m0, quad_max(mx0)), n1 = fmaxf(m1, quad_max(mx1));
        const float z0 = n0 == -INFINITY ? 0.f : n0, z1 = n1 == -INFINITY ? 0.f : n1;
        const float c0 = ex2(m0 - z0), c1 = ex2(m1 - z1);   /* 0 on the first tile */
        m0 = n0;
        m1 = n1;
        float ps0 = 0.f, ps1 = 0.f;
        #pragma unroll
        for (int nt = 0; nt < 8; nt++) {
            s[nt][0] = ex2(s[nt][0] - z0);
            s[nt][1] = ex2(s[nt][1] - z0);
            s[nt][2] = ex2(s[nt][2] - z1);
            s[nt][3] = ex2(s[nt][3] - z1);
            ps0 += s[nt][0] + s[nt][1];
            ps1 += s[nt][2] + s[nt][3];
        }
        l0 = l0 * c0 + ps0;
        l1 = l1 * c1 + ps1;
        #pragma unroll
        for (int nd = 0; nd < NND; nd++) {
            o[nd][0] *= c0; o[nd][1] *= c0;
            o[nd][2] *= c1; o[nd][3] *= c1;
        }
        mma_xy<DM>(o, s, Vs, lane);
    }
    l0 = quad_sum(l0);
    l1 = quad_sum(l1);
    const float i0f = 1.f / l0, i1f = 1.f / l1;
    #pragma unroll
    for (int nd = 0; nd < NND; nd++) {
        const int d = nd * 8 + 2 * t;
        if (q0 < T) *(float2 *)&O[base + (size_t)q0 * C + d] = make_float2(o[nd][0] * i0f, o[nd][1] * i0f);
        if (q1 < T) *(float2 *)&O[base + (size_t)q1 * C + d] = make_float2(o[nd][2] * i1f, o[nd][3] * i1f);
    }
    if (t == 0) {
        if (q0 < T) lse[(size_t)bh * T + q0] = (m0 + log2f(l0)) * LN2;
        if (q1 < T) lse[(size_t)bh * T + q1] = (m1 + log2f(l1)) * LN2;
    }
}

/* Backward, key side: block (key tile j0, b*H+h), warp w owns the keys
 * j0+16w.. (thread rows g, g+8) and sweeps the query tiles i0 >= j0:
 *   P^T = exp2(K Q^T * sl2 - lse2), dV += P^T dO,
 *   dP^T = V dO^T, dS^T = P^T (dP^T - delta), dK += dS^T Q (* scale at the end). */
template <int DM>
__global__ void __launch_bounds__(NT) k_bwd_kv_tc(float *dK, float *dV, const float *Q, const float *K,
                                                  const float *V, const float *dO, const float *lse,
                                                  const float *delta, int T, int H, float scale, float sl2)
{
    constexpr int LD = DM + 8, NND = DM / 8;
    extern __shared__ __align__(16) unsigned char smraw[];
    bf16 *Ks = (bf16 *)smraw, *Vs = Ks + TB * LD, *Qs = Vs + TB * LD, *dOs = Qs + TB * LD;
    float *l2 = (float *)(dOs + TB * LD), *dl = l2 + TB;
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, g = lane >> 2, t = lane & 3;
    const int C = H * DM, bh = blockIdx.y, b = bh / H, h = bh % H;
    const int j0 = blockIdx.x * TB;       /* the first key tiles see the most queries: launched first */
    const size_t base = (size_t)b * T * C + (size_t)h * DM, off = (size_t)bh * T;
    const int k0 = j0 + warp * 16 + g, k1 = k0 + 8;

    stage<DM>(Ks, K, base, j0, T, C);
    stage<DM>(Vs, V, base, j0, T, C);
    float dk[NND][4], dv[NND][4];
    #pragma unroll
    for (int nd = 0; nd < NND; nd++)
        #pragma unroll
        for (int e = 0; e < 4; e++) dk[nd][e] = dv[nd][e] = 0.f;

    for (int i0 = j0; i0 < T; i0 += TB) {
        __syncthreads();                  /* the previous query tile is consumed */
        stage<DM>(Qs, Q, base, i0, T, C);
        stage<DM>(dOs, dO, base, i0, T, C);
        stage_rowstats(l2, dl, lse, delta, off, i0, T);
        __syncthreads();
        float s[8][4], dp[8][4];
        mma_abt<DM>(s, Ks, warp * 16, Qs, g, t);
        /* s[nt][e]: key k0 (e < 2) or k1, query i0 + nt*8 + 2t + (e&1) */
        #pragma unroll
        for (int nt = 0; nt < 8; nt++)
            #pragma unroll
            for (int e = 0; e < 4; e++) {
                const int qr = nt * 8 + 2 * t + (e & 1), qi = i0 + qr, kj = e < 2 ? k0 : k1;
                s[nt][e] = (kj <= qi && qi < T) ? ex2(s[nt][e] * sl2 - l2[qr]) : 0.f;
            }
        mma_xy<DM>(dv, s, dOs, lane);
        mma_abt<DM>(dp, Vs, warp * 16, dOs, g, t);
        #pragma unroll
        for (int nt = 0; nt < 8; nt++)
            #pragma unroll
            for (int e = 0; e < 4; e++) dp[nt][e] = s[nt][e] * (dp[nt][e] - dl[nt * 8 + 2 * t + (e & 1)]);
        mma_xy<DM>(dk, dp, Qs, lane);
    }
    #pragma unroll
    for (int nd = 0; nd < NND; nd++) {
        const int d = nd * 8 + 2 * t;
        if (k0 < T) {
            *(float2 *)&dK[base + (size_t)k0 * C + d] = make_float2(dk[nd][0] * scale, dk[nd][1] * scale);
            *(float2 *)&dV[base + (size_t)k0 * C + d] = make_float2(dv[nd][0], dv[nd][1]);
        }
        if (k1 < T) {
            *(float2 *)&dK[base + (size_t)k1 * C + d] = make_float2(dk[nd][2] * scale, dk[nd][3] * scale);
            *(float2 *)&dV[base + (size_t)k1 * C + d] = make_float2(dv[nd][2], dv[nd][3]);
        }
    }
}

/* Backward, query side: block (query tile i0, b*H+h), warp w owns the
 * queries i0+16w.. and sweeps the key tiles j0 <= i0:
 *   P = exp2(Q K^T * sl2 - lse2), dP = dO V^T, dS = P (dP - delta),
 *   dQ += dS K (* scale at the end). */
template <int DM>
__global__ void __launch_bounds__(NT) k_bwd_q_tc(float *dQ, const float *Q, const float *K, const float *V,
                                                 const float *dO, const float *lse, const float *delta, int T,
                                                 int H, float scale, float sl2)
{
    constexpr int LD = DM + 8, NND = DM / 8;
    extern __shared__ __align__(16) unsigned char smraw[];
    bf16 *Qs = (bf16 *)smraw, *dOs = Qs + TB * LD, *Ks = dOs + TB * LD, *Vs = Ks + TB * LD;
    float *l2 = (float *)(Vs + TB * LD), *dl = l2 + TB;
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, g = lane >> 2, t = lane & 3;
    const int C = H * DM, bh = blockIdx.y, b = bh / H, h = bh % H;
    const int i0 = (gridDim.x - 1 - blockIdx.x) * TB;   /* longest tiles first */
    const size_t base = (size_t)b * T * C + (size_t)h * DM, off = (size_t)bh * T;
    const int q0 = i0 + warp * 16 + g, q1 = q0 + 8;

    stage<DM>(Qs, Q, base, i0, T, C);
    stage<DM>(dOs, dO, base, i0, T, C);
    stage_rowstats(l2, dl, lse, delta, off, i0, T);
    __syncthreads();
    const float ls0 = l2[warp * 16 + g], ls1 = l2[warp * 16 + g + 8];
    const float dl0 = dl[warp * 16 + g], dl1 = dl[warp * 16 + g + 8];
    float dq[NND][4];
    #pragma unroll
    for (int nd = 0; nd < NND; nd++)
        #pragma unroll
        for (int e = 0; e < 4; e++) dq[nd][e] = 0.f;

    const int kend = min(i0 + TB, T);
    for (int j0 = 0; j0 < kend; j0 += TB) {
        __syncthreads();                  /* the previous key tile is consumed */
        stage<DM>(Ks, K, base, j0, T, C);
        stage<DM>(Vs, V, base, j0, T, C);
        __syncthreads();
        float s[8][4], dp[8][4];
        mma_abt<DM>(s, Qs, warp * 16, Ks, g, t);
        mma_abt<DM>(dp, dOs, warp * 16, Vs, g, t);
        /* s[nt][e]: query q0 (e < 2) or q1, key j0 + nt*8 + 2t + (e&1) */
        #pragma unroll
        for (int nt = 0; nt < 8; nt++)
            #pragma unroll
            for (int e = 0; e < 4; e++) {
                const int kj = j0 + nt * 8 + 2 * t + (e & 1), qi = e < 2 ? q0 : q1;
                const float p = (kj <= qi && qi < T) ? ex2(s[nt][e] * sl2 - (e < 2 ? ls0 : ls1)) : 0.f;
                dp[nt][e] = p * (dp[nt][e] - (e < 2 ? dl0 : dl1));
            }
        mma_xy<DM>(dq, dp, Ks, lane);
    }
    #pragma unroll
    for (int nd = 0; nd < NND; nd++) {
        const int d = nd * 8 + 2 * t;
        if (q0 < T) *(float2 *)&dQ[base + (size_t)q0 * C + d] = make_float2(dq[nd][0] * scale, dq[nd][1] * scale);
        if (q1 < T) *(float2 *)&dQ[base + (size_t)q1 * C + d] = make_float2(dq[nd][2] * scale, dq[nd][3] * scale);
    }
}

#ifndef TTT_ATTN_TC_EMU
template <int DM>
cudaError_t fwd_dm(cudaStream_t st, float *O, float *lse, const float *Q, const float *K, const float *V, int B,
                   int T, int H, float scale)
{
    const size_t smem = 3 * tile_bytes<DM>();
    cudaError_t e = cudaFuncSetAttribute(k_fwd_tc<DM>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem);
    if (e != cudaSuccess) return e;
    k_fwd_tc<DM><<<dim3((T + TB - 1) / TB, B * H), NT, smem, st>>>(O, lse, Q, K, V, T, H, scale * LOG2E);
    return cudaGetLastError();
}

template <int DM>
cudaError_t bwd_dm(cudaStream_t st, float *dQ, float *dK, float *dV, const float *Q, const float *K, const float *V,
                   const float *dO, const float *lse, const float *delta, int B, int T, int H, float scale)
{
    const size_t smem = 4 * tile_bytes<DM>() + 2 * TB * sizeof(float);
    cudaError_t e = cudaFuncSetAttribute(k_bwd_kv_tc<DM>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem);
    if (e == cudaSuccess)
        e = cudaFuncSetAttribute(k_bwd_q_tc<DM>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem);
    if (e != cudaSuccess) return e;
    const dim3 grid((T + TB - 1) / TB, B * H);
    k_bwd_kv_tc<DM><<<grid, NT, smem, st>>>(dK, dV, Q, K, V, dO, lse, delta, T, H, scale, scale * LOG2E);
    if ((e = cudaGetLastError()) != cudaSuccess) return e;
    k_bwd_q_tc<DM><<<grid, NT, smem, st>>>(dQ, Q, K, V, dO, lse, delta, T, H, scale, scale * LOG2E);
    return cudaGetLastError();
}

#endif /* !TTT_ATTN_TC_EMU */
} /* namespace */

#ifndef TTT_ATTN_TC_EMU

int ttt_attn_tc_supported(int D, const void *const *ptrs, int n)
{
    if (D != 64 && D != 128) return 0;
    for (int i = 0; i < n; i++)
        if ((uintptr_t)ptrs[i] % 16) return 0;
    return 1;
}

cudaError_t ttt_attn_tc_forward(cudaStream_t st, float *O, float *lse, const float *Q, const float *K,
                                const float *V, int B, int T, int H, int D, float scale)
{
    return D == 64 ? fwd_dm<64>(st, O, lse, Q, K, V, B, T, H, scale)
                   : fwd_dm<128>(st, O, lse, Q, K, V, B, T, H, scale);
}

cudaError_t ttt_attn_tc_backward(cudaStream_t st, float *dQ, float *dK, float *dV, const float *Q,
                                 const float *K, const float *V, const float *dO, const float *lse,
                                 const float *delta, int B, int T, int H, int D, float scale)
{
    return D == 64 ? bwd_dm<64>(st, dQ, dK, dV, Q, K, V, dO, lse, delta, B, T, H, scale)
                   : bwd_dm<128>(st, dQ, dK, dV, Q, K, V, dO, lse, delta, B, T, H, scale);
}
#endif /* !TTT_ATTN_TC_EMU */
