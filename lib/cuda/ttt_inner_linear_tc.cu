/* ttt_inner_linear_tc.cu - the TTT-Linear inner-loop forward on tensor cores
 * (bf16 mode): the same dual form per mini-batch of 16 as inner_fwd in
 * ttt_inner_linear.cu, with every product on mma.sync m16n8k16 (bf16
 * operands, fp32 accumulation) and the fast weight state fp32 throughout.
 *
 * One block of D/16 warps per (sequence, head); warp w owns the columns
 * j0 = 16w .. j0+15 of W and b. The state is held transposed, W^T[j][i], as
 * mma accumulator tiles (m16 = the warp's j, n8 = 8 i's): that accumulator
 * layout is exactly the B-operand layout of the product K W, so the state
 * never leaves the registers: Z = K W + b reads it as bf16 pairs, and
 * W^T -= (e G)^T K accumulates into it in fp32. Per mini-batch:
 *   S = Q K^T (every warp, 16x16), C = -eta * (tril(S) + 1)
 *   Z = K W + b, Y = Q W + b                      (warp's 16 columns)
 *   G = LNl2grad(Z, V - K)                        (row stats across warps)
 *   zbar = Y + C G;  out = q + LN(zbar)           (row stats across warps)
 *   W^T += -(diag(e) G)^T K, b -= e^T G,  e = eta of the last row
 * Only the LayerNorm row statistics cross warps (shared memory, 5 barriers
 * per mini-batch, plus one to publish the tile); the tiles are double-buffered so one barrier publishes
 * the next tile. The start state of every mini-batch (and the final state)
 * goes to a.states as fp32 W [D][D], b [D], the layout the fp32 backward in
 * ttt_inner_linear.cu recomputes from.
 *
 * bf16 operands bound the agreement with the fp32 kernel to ~1e-2 relative;
 * the fp32 mode (and the reference checks) keep using inner_fwd.
 */
#include <cuda_bf16.h>
#include <stdint.h>

#include "ttt_cuda_internal.cuh"
#include "ttt_inner_rows.cuh"

#define KB TTT_CUDA_K
#define EPS TTT_INNER_EPS

namespace {

__device__ __forceinline__ uint32_t pack2(float lo, float hi)
{
    __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);   /* lo -> low half: the lower index */
    return *(uint32_t *)&v;
}

/* d += a b, m16n8k16, bf16 in, fp32 accumulate */
__device__ __forceinline__ void mma(float *d, uint32_t a0, uint32_t a1, uint32_t a2, uint32_t a3, uint32_t b0,
                                    uint32_t b1)
{
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
                 "{%0,%1,%2,%3};\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                 : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
}

__device__ __forceinline__ uint32_t ld32(const __nv_bfloat16 *p) { return *(const uint32_t *)p; }

/* Sum over the 4 lanes of a quad (the t index: one row's columns). */
__device__ __forceinline__ float quad_sum(float v)
{
    v += __shfl_xor_sync(0xffffffffu, v, 1);
    return v + __shfl_xor_sync(0xffffffffu, v, 2);
}

/* Sum over the 8 quads (the g index: one column's rows). */
__device__ __forceinline__ float col_sum(float v)
{
    v += __shfl_xor_sync(0xffffffffu, v, 4);
    v += __shfl_xor_sync(0xffffffffu, v, 8);
    return v + __shfl_xor_sync(0xffffffffu, v, 16);
}

/* Row sums of the whole D-row for the thread's rows g and g+8: quad sums,
 * then the NW warps' partials through red[NW][16] and one barrier. */
template <int NW>
__device__ __forceinline__ void rows_sum(float *red, int warp, int g, int t, float s0, float s1, float *r0, float *r1)
{
    s0 = quad_sum(s0);
    s1 = quad_sum(s1);
    if (t == 0) { red[warp * KB + g] = s0; red[warp * KB + g + 8] = s1; }
    __syncthreads();
    float a = 0.f, c = 0.f;
#pragma unroll
    for (int w = 0; w < NW; w++) { a += red[w * KB + g]; c += red[w * KB + g + 8]; }
    *r0 = a;
    *r1 = c;
}

/* Two row sums at once (one barrier): slots red[0..NW*16) and the next. */
template <int NW>
__device__ __forceinline__ void rows_sum2(float *red, int warp, int g, int t, float s0, float s1, float u0, float u1,
                                          float *r0, float *r1, float *q0, float *q1)
{
    s0 = quad_sum(s0); s1 = quad_sum(s1); u0 = quad_sum(u0); u1 = quad_sum(u1);
    float *red2 = red + NW * KB;
    if (t == 0) {
        red[warp * KB + g] = s0; red[warp * KB + g + 8] = s1;
        red2[warp * KB + g] = u0; red2[warp * KB + g + 8] = u1;
    }
    __syncthreads();
    float a = 0.f, c = 0.f, d = 0.f, e = 0.f;
#pragma unroll
    for (int w = 0; w < NW; w++) {
        a += red[w * KB + g]; c += red[w * KB + g + 8];
        d += red2[w * KB + g]; e += red2[w * KB + g + 8];
    }
    *r0 = a; *r1 = c; *q0 = d; *q1 = e;
}

template <int D>
__global__ void __launch_bounds__(D * 2) inner_fwd_tc(ttt_inner_args a)
{
    constexpr int NW = D / 16, NT = 32 * NW, NI = D / 8, NK = D / 16;
    constexpr int FLD = D + 4;          /* fp32 tile row stride */
    constexpr int BLD = D + 8;          /* bf16 tile row stride (conflict-free 32-bit fragment loads) */
    constexpr int TLD = KB + 8;         /* bf16 transposed tiles [.][16] */
    extern __shared__ __align__(16) unsigned char smraw[];
    float *Qf = (float *)smraw;                          /* [2][16][FLD] fp32 q (residual) */
    float *Tf = Qf + 2 * KB * FLD;                       /* [2][16][FLD] fp32 v - k (target) */
    float *lrs = Tf + 2 * KB * FLD;                      /* [2][16] */
    float *red = lrs + 2 * KB;                           /* [5][NW][16] row partials */
    __nv_bfloat16 *Qb = (__nv_bfloat16 *)(red + 5 * NW * KB);   /* [2][16][BLD] */
    __nv_bfloat16 *Kb = Qb + 2 * KB * BLD;               /* [2][16][BLD] */
    __nv_bfloat16 *Ktb = Kb + 2 * KB * BLD;              /* [2][D][TLD] K transposed */
    __nv_bfloat16 *Gt = Ktb + 2 * D * TLD;               /* [NW][16][TLD] G^T of the warp's columns */
    __nv_bfloat16 *eGt = Gt + NW * KB * TLD;             /* [NW][16][TLD] -(diag(e) G)^T */

    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5, g = lane >> 2, t = lane & 3;
    const int bh = blockIdx.x, b = bh / a.H, h = bh % a.H;
    const int C = a.H * D, T = a.T, nmb = ttt_inner_nmb(T), j0 = 16 * warp;
    float *st = a.states + (size_t)bh * (nmb + 1) * (D * D + D);

    /* the thread's 4 columns: j0 + 8u + 2t + v, u,v in {0,1}; index 2u+v */
    float gam[4], bet[4], bias[4];
#pragma unroll
    for (int u = 0; u < 2; u++)
#pragma unroll
        for (int v = 0; v < 2; v++) {
            int j = j0 + 8 * u + 2 * t + v;
            gam[2 * u + v] = a.gamma[h * D + j];
            bet[2 * u + v] = a.beta[h * D + j];
            bias[2 * u + v] = a.b0[h * D + j];
        }
    /* W^T accumulators: Wt[it][0..1] = W[8it+2t+{0,1}][j0+g], [2..3] = W[..][j0+8+g] */
    float Wt[NI][4];
    {
        const float *W0 = a.W0 + (size_t)h * D * D;
#pragma unroll
        for (int it = 0; it < NI; it++) {
            int i = 8 * it + 2 * t;
            Wt[it][0] = W0[i * D + j0 + g];
            Wt[it][1] = W0[(i + 1) * D + j0 + g];
            Wt[it][2] = W0[i * D + j0 + 8 + g];
            Wt[it][3] = W0[(i + 1) * D + j0 + 8 + g];
        }
    }

    /* register prefetch of one tile: 16 x D of q, k, v as float4, and lr */
    constexpr int V4 = KB * D / 4 / NT;   /* float4s per thread per tensor (= 2) */
    float4 pq[V4], pk[V4], pv[V4];
    float plr = 0.f;
    auto prefetch = [&](int n) {
        const int t0 = n * KB, r = min(KB, T - t0);
#pragma unroll
        for (int u = 0; u < V4; u++) {
            int x = (tid + u * NT) * 4, i = x / D, c = x % D;
            size_t gi = ((size_t)b * T + t0 + i) * C + h * D + c;
            const float4 z = make_float4(0.f, 0.f, 0.f, 0.f);
            pq[u] = i < r ? *(const float4 *)&a.XQ[gi] : z;
            pk[u] = i < r ? *(const float4 *)&a.XK[gi] : z;
            pv[u] = i < r ? *(const float4 *)&a.XV[gi] : z;
        }
        if (tid < KB) plr = tid < r ? a.lr[((size_t)b * T + t0 + tid) * a.H + h] : 0.f;
    };
    prefetch(0);
    const float tau_g = tau_of(a.token_idx, g), tau_g8 = tau_of(a.token_idx, g + 8);

    for (int n = 0; n < nmb; n++) {
        const int t0 = n * KB, r = min(KB, T - t0), buf = n & 1;
        float *qf = Qf + buf * KB * FLD, *tf = Tf + buf * KB * FLD, *lr = lrs + buf * KB;
        __nv_bfloat16 *qb = Qb + buf * KB * BLD, *kb = Kb + buf * KB * BLD, *ktb = Ktb + buf * D * TLD;
        /* publish the prefetched tile */
#pragma unroll
        for (int u = 0; u < V4; u++) {
            int x = (tid + u * NT) * 4, i = x / D, c = x % D;
            *(float4 *)&qf[i * FLD + c] = pq[u];
            *(float4 *)&tf[i * FLD + c] = make_float4(pv[u].x - pk[u].x, pv[u].y - pk[u].y, pv[u].z - pk[u].z,
                                                      pv[u].w - pk[u].w);
            *(uint32_t *)&qb[i * BLD + c] = pack2(pq[u].x, pq[u].y);
            *(uint32_t *)&qb[i * BLD + c + 2] = pack2(pq[u].z, pq[u].w);
            *(uint32_t *)&kb[i * BLD + c] = pack2(pk[u].x, pk[u].y);
            *(uint32_t *)&kb[i * BLD + c + 2] = pack2(pk[u].z, pk[u].w);
            ktb[c * TLD + i] = __float2bfloat16_rn(pk[u].x);
            ktb[(c + 1) * TLD + i] = __float2bfloat16_rn(pk[u].y);
            ktb[(c + 2) * TLD + i] = __float2bfloat16_rn(pk[u].z);
            ktb[(c + 3) * TLD + i] = __float2bfloat16_rn(pk[u].w);
        }
        if (tid < KB) lr[tid] = plr;
        /* the start state of this mini-batch, for the backward */
        {
            float *sn = st + (size_t)n * (D * D + D);
#pragma unroll
            for (int it = 0; it < NI; it++) {
                int i = 8 * it + 2 * t;
                sn[i * D + j0 + g] = Wt[it][0];
                sn[(i + 1) * D + j0 + g] = Wt[it][1];
                sn[i * D + j0 + 8 + g] = Wt[it][2];
                sn[(i + 1) * D + j0 + 8 + g] = Wt[it][3];
            }
            if (g == 0) {
#pragma unroll
                for (int x = 0; x < 4; x++) sn[D * D + j0 + 8 * (x >> 1) + 2 * t + (x & 1)] = bias[x];
            }
        }
        __syncthreads();
        if (n + 1 < nmb) prefetch(n + 1);

        /* S = Q K^T, Z = K W + b, Y = Q W + b */
        float S[2][4] = {}, Z[2][4], Y[2][4];
#pragma unroll
        for (int u = 0; u < 2; u++) {
            Z[u][0] = Y[u][0] = Z[u][2] = Y[u][2] = bias[2 * u];
            Z[u][1] = Y[u][1] = Z[u][3] = Y[u][3] = bias[2 * u + 1];
        }
#pragma unroll
        for (int ks = 0; ks < NK; ks++) {
            const int k0 = 16 * ks + 2 * t;
            uint32_t q0 = ld32(&qb[g * BLD + k0]), q1 = ld32(&qb[(g + 8) * BLD + k0]);
            uint32_t q2 = ld32(&qb[g * BLD + k0 + 8]), q3 = ld32(&qb[(g + 8) * BLD + k0 + 8]);
            uint32_t c0 = ld32(&kb[g * BLD + k0]), c1 = ld32(&kb[(g + 8) * BLD + k0]);
            uint32_t c2 = ld32(&kb[g * BLD + k0 + 8]), c3 = ld32(&kb[(g + 8) * BLD + k0 + 8]);
            /* K^T as B: token m = 8u + g, features k0.., k0+8.. */
            mma(S[0], q0, q1, q2, q3, c0, c2);
            mma(S[1], q0, q1, q2, q3, c1, c3);
            /* W as B: rows i = 16ks + 2t.. from Wt[2ks], i + 8 from Wt[2ks+1] */
            uint32_t w00 = pack2(Wt[2 * ks][0], Wt[2 * ks][1]), w01 = pack2(Wt[2 * ks + 1][0], Wt[2 * ks + 1][1]);
            uint32_t w10 = pack2(Wt[2 * ks][2], Wt[2 * ks][3]), w11 = pack2(Wt[2 * ks + 1][2], Wt[2 * ks + 1][3]);
            mma(Z[0], c0, c1, c2, c3, w00, w01);
            mma(Z[1], c0, c1, c2, c3, w10, w11);
            mma(Y[0], q0, q1, q2, q3, w00, w01);
            mma(Y[1], q0, q1, q2, q3, w10, w11);
        }

        /* G = LNl2grad(Z, v - k); the thread's values: rows g (x = 0,1), g+8 (x = 2,3) */
        float Gv[2][4];
        {
            float s0 = Z[0][0] + Z[0][1] + Z[1][0] + Z[1][1], s1 = Z[0][2] + Z[0][3] + Z[1][2] + Z[1][3], m0, m1;
            rows_sum<NW>(red, warp, g, t, s0, s1, &m0, &m1);
            m0 *= 1.f / D;
            m1 *= 1.f / D;
            float d0 = 0.f, d1 = 0.f;
#pragma unroll
            for (int u = 0; u < 2; u++) {
                Z[u][0] -= m0; Z[u][1] -= m0; Z[u][2] -= m1; Z[u][3] -= m1;
                d0 += Z[u][0] * Z[u][0] + Z[u][1] * Z[u][1];
                d1 += Z[u][2] * Z[u][2] + Z[u][3] * Z[u][3];
            }
            float v0, v1;
            rows_sum<NW>(red + NW * KB, warp, g, t, d0, d1, &v0, &v1);
            const float rs0 = rsqrtf(v0 / D + EPS), rs1 = rsqrtf(v1 / D + EPS);
            float gs0 = 0.f, gs1 = 0.f, gz0 = 0.f, gz1 = 0.f;
#pragma unroll
            for (int u = 0; u < 2; u++)
#pragma unroll
                for (int x = 0; x < 4; x++) {
                    const int row = g + 8 * (x >> 1), col = j0 + 8 * u + 2 * t + (x & 1), cc = 2 * u + (x & 1);
                    const float zh = Z[u][x] * (x < 2 ? rs0 : rs1);
                    const float gy = gam[cc] * (gam[cc] * zh + bet[cc] - tf[row * FLD + col]);
                    Z[u][x] = zh;
                    Gv[u][x] = gy;
                    if (x < 2) { gs0 += gy; gz0 += gy * zh; } else { gs1 += gy; gz1 += gy * zh; }
                }
            float S0, S1, Z0, Z1;
            rows_sum2<NW>(red + 2 * NW * KB, warp, g, t, gs0, gs1, gz0, gz1, &S0, &S1, &Z0, &Z1);
            S0 *= 1.f / D; S1 *= 1.f / D; Z0 *= 1.f / D; Z1 *= 1.f / D;
#pragma unroll
            for (int u = 0; u < 2; u++) {
                Gv[u][0] = (Gv[u][0] - S0 - Z[u][0] * Z0) * rs0;
                Gv[u][1] = (Gv[u][1] - S0 - Z[u][1] * Z0) * rs0;
                Gv[u][2] = (Gv[u][2] - S1 - Z[u][2] * Z1) * rs1;
                Gv[u][3] = (Gv[u][3] - S1 - Z[u][3] * Z1) * rs1;
            }
        }

        /* e_m = tau_last lr_m; G^T and -(e G)^T of the warp's columns (warp-local) */
        const float tl = tau_of(a.token_idx, r - 1), e0 = tl * lr[g], e1 = tl * lr[g + 8];
        __nv_bfloat16 *gt = Gt + warp * KB * TLD, *egt = eGt + warp * KB * TLD;
        float db[4];
#pragma unroll
        for (int u = 0; u < 2; u++)
#pragma unroll
            for (int v = 0; v < 2; v++) {
                const int jj = 8 * u + 2 * t + v;
                gt[jj * TLD + g] = __float2bfloat16_rn(Gv[u][v]);
                gt[jj * TLD + g + 8] = __float2bfloat16_rn(Gv[u][v + 2]);
                egt[jj * TLD + g] = __float2bfloat16_rn(-e0 * Gv[u][v]);
                egt[jj * TLD + g + 8] = __float2bfloat16_rn(-e1 * Gv[u][v + 2]);
                db[2 * u + v] = col_sum(e0 * Gv[u][v] + e1 * Gv[u][v + 2]);
            }
        __syncwarp();

        /* C = -eta (tril(S) + 1), eta_im = tau_i lr_m, as the A operand of zbar = Y + C G */
        uint32_t ca[4];
        {
            float cv[2][4];
#pragma unroll
            for (int u = 0; u < 2; u++)
#pragma unroll
                for (int x = 0; x < 4; x++) {
                    const int i = g + 8 * (x >> 1), m = 8 * u + 2 * t + (x & 1);
                    cv[u][x] = m <= i ? -(x < 2 ? tau_g : tau_g8) * lr[m] * (S[u][x] + 1.f) : 0.f;
                }
            ca[0] = pack2(cv[0][0], cv[0][1]);
            ca[1] = pack2(cv[0][2], cv[0][3]);
            ca[2] = pack2(cv[1][0], cv[1][1]);
            ca[3] = pack2(cv[1][2], cv[1][3]);
        }
#pragma unroll
        for (int u = 0; u < 2; u++) mma(Y[u], ca[0], ca[1], ca[2], ca[3], ld32(&gt[(8 * u + g) * TLD + 2 * t]),
                                        ld32(&gt[(8 * u + g) * TLD + 2 * t + 8]));

        /* W^T += -(e G)^T K, b -= e^T G */
        {
            const uint32_t a0 = ld32(&egt[g * TLD + 2 * t]), a1 = ld32(&egt[(g + 8) * TLD + 2 * t]);
            const uint32_t a2 = ld32(&egt[g * TLD + 2 * t + 8]), a3 = ld32(&egt[(g + 8) * TLD + 2 * t + 8]);
#pragma unroll
            for (int it = 0; it < NI; it++)
                mma(Wt[it], a0, a1, a2, a3, ld32(&ktb[(8 * it + g) * TLD + 2 * t]),
                    ld32(&ktb[(8 * it + g) * TLD + 2 * t + 8]));
#pragma unroll
            for (int x = 0; x < 4; x++) bias[x] -= db[x];
        }

        /* out = q + LN(zbar) */
        {
            float s0 = Y[0][0] + Y[0][1] + Y[1][0] + Y[1][1], s1 = Y[0][2] + Y[0][3] + Y[1][2] + Y[1][3], m0, m1;
            rows_sum<NW>(red + 4 * NW * KB, warp, g, t, s0, s1, &m0, &m1);
            m0 *= 1.f / D;
            m1 *= 1.f / D;
            float d0 = 0.f, d1 = 0.f;
#pragma unroll
            for (int u = 0; u < 2; u++) {
                Y[u][0] -= m0; Y[u][1] -= m0; Y[u][2] -= m1; Y[u][3] -= m1;
                d0 += Y[u][0] * Y[u][0] + Y[u][1] * Y[u][1];
                d1 += Y[u][2] * Y[u][2] + Y[u][3] * Y[u][3];
            }
            float v0, v1;
            /* slot 0 is free again: every warp passed its last read of it two barriers ago */
            rows_sum<NW>(red, warp, g, t, d0, d1, &v0, &v1);
            const float rs0 = rsqrtf(v0 / D + EPS), rs1 = rsqrtf(v1 / D + EPS);
#pragma unroll
            for (int u = 0; u < 2; u++)
#pragma unroll
                for (int hr = 0; hr < 2; hr++) {
                    const int row = g + 8 * hr, col = j0 + 8 * u + 2 * t;
                    if (row >= r) continue;
                    const float rs = hr ? rs1 : rs0;
                    float2 o;
                    o.x = qf[row * FLD + col] + gam[2 * u] * Y[u][2 * hr] * rs + bet[2 * u];
                    o.y = qf[row * FLD + col + 1] + gam[2 * u + 1] * Y[u][2 * hr + 1] * rs + bet[2 * u + 1];
                    *(float2 *)&a.Z[((size_t)b * T + t0 + row) * C + h * D + col] = o;
                }
        }
    }
    /* the final state */
    float *sn = st + (size_t)nmb * (D * D + D);
#pragma unroll
    for (int it = 0; it < NI; it++) {
        int i = 8 * it + 2 * t;
        sn[i * D + j0 + g] = Wt[it][0];
        sn[(i + 1) * D + j0 + g] = Wt[it][1];
        sn[i * D + j0 + 8 + g] = Wt[it][2];
        sn[(i + 1) * D + j0 + 8 + g] = Wt[it][3];
    }
    if (g == 0) {
#pragma unroll
        for (int x = 0; x < 4; x++) sn[D * D + j0 + 8 * (x >> 1) + 2 * t + (x & 1)] = bias[x];
    }
}

template <int D> constexpr size_t tc_smem()
{
    return sizeof(float) * (2 * 2 * KB * (D + 4) + 2 * KB + 5 * (D / 16) * KB) +
           2 * (2 * 2 * KB * (D + 8) + 2 * D * (KB + 8) + 2 * (D / 16) * KB * (KB + 8));
}

template <int D> cudaError_t launch(const ttt_inner_args *a, cudaStream_t s)
{
    const size_t sm = tc_smem<D>();
    cudaError_t e = cudaFuncSetAttribute(inner_fwd_tc<D>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)sm);
    if (e != cudaSuccess) return e;
    inner_fwd_tc<D><<<a->B * a->H, 2 * D, sm, s>>>(*a);
    return cudaGetLastError();
}

}  /* namespace */

cudaError_t ttt_inner_linear_forward_tc(const ttt_inner_args *a, cudaStream_t s)
{
    switch (a->D) {
    case 16: return launch<16>(a, s);
    case 32: return launch<32>(a, s);
    case 64: return launch<64>(a, s);
    case 96: return launch<96>(a, s);
    }
    return cudaErrorInvalidValue;
}
