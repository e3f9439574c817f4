/* ttt_inner_linear_tc.cu - the TTT-Linear inner loop on tensor cores
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
 * Only the LayerNorm row statistics cross warps (shared memory, 3 barriers
 * per mini-batch: sum and sum of squares travel together, plus one to
 * publish the tile; the tiles are double-buffered so one barrier publishes
 * the next tile). The start state of every mini-batch (and the final state)
 * goes to a.states as W in bf16 and b [D] in fp32 (store_state), which
 * the tensor-core backward below recomputes from.
 *
 * bf16 operands bound the agreement with the fp32 kernel to ~1e-2 relative;
 * the fp32 mode (and the reference checks) keep using inner_fwd.
 */
#include "ttt_cuda_internal.cuh"
#include "ttt_inner_rows.cuh"
#include "mma_bf16.cuh"

#define KB TTT_CUDA_K
#define EPS TTT_INNER_EPS

namespace {

/* Row sums of the whole D-row for the thread's rows g and g+8, two at once:
 * quad sums, then the NW warps' partials through slots red[0..NW*16) and
 * the next, and one barrier. */
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

/* LayerNorm statistics of the thread's rows g, g+8 of a 16 x D tile held as
 * the warps' accumulators X[2][4] (16 columns a warp): centers X in place and
 * returns 1/sigma per row. Sum and sum of squares travel together (slots 0
 * and 1 of red, one barrier); var = E[x^2] - mean^2 in fp32, floored at 0,
 * is exact enough for these O(1) rows (the products feeding them are bf16). */
template <int NW, int D>
__device__ __forceinline__ void row_center(float (*X)[4], float *red, int warp, int g, int t, float *rs0, float *rs1)
{
    float s0 = 0.f, s1 = 0.f, q0 = 0.f, q1 = 0.f;
#pragma unroll
    for (int u = 0; u < 2; u++) {
        s0 += X[u][0] + X[u][1];
        s1 += X[u][2] + X[u][3];
        q0 += X[u][0] * X[u][0] + X[u][1] * X[u][1];
        q1 += X[u][2] * X[u][2] + X[u][3] * X[u][3];
    }
    float m0, m1, v0, v1;
    rows_sum2<NW>(red, warp, g, t, s0, s1, q0, q1, &m0, &m1, &v0, &v1);
    m0 *= 1.f / D;
    m1 *= 1.f / D;
    *rs0 = rsqrtf(fmaxf(v0 / D - m0 * m0, 0.f) + EPS);
    *rs1 = rsqrtf(fmaxf(v1 / D - m1 * m1, 0.f) + EPS);
#pragma unroll
    for (int u = 0; u < 2; u++) {
        X[u][0] -= m0; X[u][1] -= m0; X[u][2] -= m1; X[u][3] -= m1;
    }
}

/* A state checkpoint: W as D*D bf16 from float offset 0, b [D] fp32 at
 * float offset D*D. W goes in the order the forward's W^T accumulator tiles
 * hold it (ttt_tc_state_w_index): piece p of a lane is the bf16 pairs
 * (Wt[2p][0..1], Wt[2p][2..3], Wt[2p+1][0..1], Wt[2p+1][2..3]), which are
 * exactly the B operands the product K W packs at its k-step p, so the
 * forward stores them from there: one 16-byte store a k-step, a warp's 32
 * lanes 512 contiguous bytes. (Row-major W, a shuffle and a 4-byte store
 * per pair before the tile's barrier, took 27 us of a 0.21 ms inner forward
 * at 2k.) Rounded as the backward would round the fp32 state, so its
 * products see the same operands. */
template <int D>
__device__ __forceinline__ void state_piece(float *sn, int warp, int lane, int p, uint32_t w00, uint32_t w10,
                                            uint32_t w01, uint32_t w11)
{
    ((uint4 *)sn)[(warp * (D / 16) + p) * 32 + lane] = make_uint4(w00, w10, w01, w11);
}

/* The warp's 4 bias columns of a checkpoint (quad g = 0 holds them). */
template <int D>
__device__ __forceinline__ void state_bias(float *sn, const float *bias, int j0, int g, int t)
{
    if (g == 0) {
#pragma unroll
        for (int x = 0; x < 4; x++) sn[D * D + j0 + 8 * (x >> 1) + 2 * t + (x & 1)] = bias[x];
    }
}

/* The final state, outside the product loop. */
template <int D>
__device__ __forceinline__ void store_state(float *sn, const float (*Wt)[4], const float *bias, int warp, int lane,
                                            int j0, int g, int t)
{
#pragma unroll
    for (int p = 0; p < D / 16; p++)
        state_piece<D>(sn, warp, lane, p, pack2(Wt[2 * p][0], Wt[2 * p][1]), pack2(Wt[2 * p][2], Wt[2 * p][3]),
                       pack2(Wt[2 * p + 1][0], Wt[2 * p + 1][1]), pack2(Wt[2 * p + 1][2], Wt[2 * p + 1][3]));
    state_bias<D>(sn, bias, j0, g, t);
}

/* Piece x (16 bytes, v) of a checkpoint's W (store_state's order) into
 * row-major bf16 w [D][ld]: 8 two-byte stores. */
template <int D>
__device__ __forceinline__ void load_state_w(bf16 *w, int ld, int x, uint4 v)
{
    constexpr int NP = D / 16;
    const int lane = x % 32, p = (x / 32) % NP, j = 16 * (x / 32 / NP) + (lane >> 2), i = 16 * p + 2 * (lane & 3);
    const uint32_t c[4] = {v.x, v.y, v.z, v.w};
    uint16_t *w16 = (uint16_t *)w;
#pragma unroll
    for (int q = 0; q < 4; q++) {
        const int ii = i + 8 * (q >> 1), jj = j + 8 * (q & 1);
        w16[ii * ld + jj] = (uint16_t)(c[q] & 0xffffu);
        w16[(ii + 1) * ld + jj] = (uint16_t)(c[q] >> 16);
    }
}

/* Z16: Z in bf16 (a.z16); ST: state checkpoints (a.states), compile-time so
 * that their stores join the product loop's code */
template <int D, bool Z16, bool ST>
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
    float *red = lrs + 2 * KB;                           /* [4][NW][16] row partials */
    __nv_bfloat16 *Qb = (__nv_bfloat16 *)(red + 4 * NW * KB);   /* [2][16][BLD] */
    __nv_bfloat16 *Kb = Qb + 2 * KB * BLD;               /* [2][16][BLD] */
    __nv_bfloat16 *Gt = Kb + 2 * KB * BLD;               /* [NW][16][TLD] G^T of the warp's columns */
    __nv_bfloat16 *eGt = Gt + NW * KB * TLD;             /* [NW][16][TLD] -(diag(e) G)^T */

    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5, g = lane >> 2, t = lane & 3;
    const int bh = blockIdx.x, b = bh / a.H, h = bh % a.H;
    const int C = a.H * D, T = a.T, nmb = ttt_inner_nmb(T), j0 = 16 * warp;
    /* no states: a forward no backward follows (evaluation) skips the checkpoints */
    float *st = ST ? a.states + (size_t)bh * (nmb + 1) * (D * D + D) : NULL;

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
    float4 rc[V4];   /* the rotations of the thread's tile elements, the same every mini-batch */
#pragma unroll
    for (int u = 0; u < V4; u++) {
        const int x = (tid + u * NT) * 4;
        rc[u] = rope4_coef<D>(a.rope, x / D, x % D);
    }
    const float tau_g = tau_of(a.token_idx, g), tau_g8 = tau_of(a.token_idx, g + 8);

    for (int n = 0; n < nmb; n++) {
        const int t0 = n * KB, r = min(KB, T - t0), buf = n & 1;
        float *qf = Qf + buf * KB * FLD, *tf = Tf + buf * KB * FLD, *lr = lrs + buf * KB;
        __nv_bfloat16 *qb = Qb + buf * KB * BLD, *kb = Kb + buf * KB * BLD;
        /* publish the prefetched tile (rotating q, k when the layer left RoPE to us) */
#pragma unroll
        for (int u = 0; u < V4; u++) {
            int x = (tid + u * NT) * 4, i = x / D, c = x % D;
            pq[u] = rope4(rc[u], pq[u]);
            pk[u] = rope4(rc[u], pk[u]);
            *(float4 *)&qf[i * FLD + c] = pq[u];
            *(float4 *)&tf[i * FLD + c] = make_float4(pv[u].x - pk[u].x, pv[u].y - pk[u].y, pv[u].z - pk[u].z,
                                                      pv[u].w - pk[u].w);
            *(uint2 *)&qb[i * BLD + c] = make_uint2(pack2(pq[u].x, pq[u].y), pack2(pq[u].z, pq[u].w));
            *(uint2 *)&kb[i * BLD + c] = make_uint2(pack2(pk[u].x, pk[u].y), pack2(pk[u].z, pk[u].w));
        }
        if (tid < KB) lr[tid] = plr;
        /* the start state of this mini-batch, for the backward (W in the product loop) */
        float *sn = ST ? st + (size_t)n * (D * D + D) : NULL;
        if (ST) state_bias<D>(sn, bias, j0, g, t);
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
            if (ST) state_piece<D>(sn, warp, lane, ks, w00, w10, w01, w11);
        }

        /* G = LNl2grad(Z, v - k); the thread's values: rows g (x = 0,1), g+8 (x = 2,3) */
        float Gv[2][4];
        {
            float rs0, rs1;
            row_center<NW, D>(Z, red, warp, g, t, &rs0, &rs1);
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

        /* W^T += -(e G)^T K (K row-major: ldmatrix .trans), b -= e^T G */
        {
            const uint32_t a0 = ld32(&egt[g * TLD + 2 * t]), a1 = ld32(&egt[(g + 8) * TLD + 2 * t]);
            const uint32_t a2 = ld32(&egt[g * TLD + 2 * t + 8]), a3 = ld32(&egt[(g + 8) * TLD + 2 * t + 8]);
#pragma unroll
            for (int it = 0; it < NI; it++) {
                uint32_t kf[2];
                load_b<true>(kf, kb, BLD, 8 * it, 0, lane);
                mma(Wt[it], a0, a1, a2, a3, kf[0], kf[1]);
            }
#pragma unroll
            for (int x = 0; x < 4; x++) bias[x] -= db[x];
        }

        /* out = q + LN(zbar) */
        {
            /* slots 0, 1 are free again: every warp passed its last read of them a barrier ago */
            float rs0, rs1;
            row_center<NW, D>(Y, red, warp, g, t, &rs0, &rs1);
#pragma unroll
            for (int hr = 0; hr < 2; hr++) {
                const int row = g + 8 * hr;
                const float rs = hr ? rs1 : rs0;
                float2 o[2];
#pragma unroll
                for (int u = 0; u < 2; u++) {
                    const int col = j0 + 8 * u + 2 * t;
                    o[u].x = qf[row * FLD + col] + gam[2 * u] * Y[u][2 * hr] * rs + bet[2 * u];
                    o[u].y = qf[row * FLD + col + 1] + gam[2 * u + 1] * Y[u][2 * hr + 1] * rs + bet[2 * u + 1];
                }
                const size_t z0 = ((size_t)b * T + t0 + row) * C + h * D;
                if (Z16) {
                    /* 4 bf16 a thread (lanes t, t^1 trade a pair): a quad writes its row's 16
                     * columns, 32 bytes, in one store; two 4-byte stores a thread cost 8 us of
                     * 192 at 2k */
                    const bool odd = t & 1;
                    const float2 snd = odd ? o[0] : o[1];
                    const float rx = __shfl_xor_sync(0xffffffffu, snd.x, 1), ry = __shfl_xor_sync(0xffffffffu, snd.y, 1);
                    const uint2 v = odd ? make_uint2(pack2(rx, ry), pack2(o[1].x, o[1].y))
                                        : make_uint2(pack2(o[0].x, o[0].y), pack2(rx, ry));
                    if (row < r) *(uint2 *)((bf16 *)a.Z + z0 + j0 + (odd ? 8 + 2 * (t - 1) : 2 * t)) = v;
                } else if (row < r) {
#pragma unroll
                    for (int u = 0; u < 2; u++) *(float2 *)&a.Z[z0 + j0 + 8 * u + 2 * t] = o[u];
                }
            }
        }
    }
    /* the final state */
    if (ST) store_state<D>(st + (size_t)nmb * (D * D + D), Wt, bias, warp, lane, j0, g, t);
}

/* ------------------------------------------------------------------------ */
/* backward (spec 8.3) on tensor cores                                        */
/* ------------------------------------------------------------------------ */

/* The backward walks the mini-batches in reverse like inner_bwd (same
 * phases, same shared fp32 tiles for the LayerNorm-type row phases, which
 * are the helpers of ttt_inner_rows.cuh), but every product runs on mma
 * from row-major bf16 tiles (ldmatrix, .trans where a product needs the
 * transpose: no transposed copies), each warp owning 8 output columns; the
 * carried dS' = dW' lives in fp32 accumulator tiles (D/16 per warp). */
template <int D, int SPLIT>
__global__ void __launch_bounds__(D * 4 * SPLIT) inner_bwd_tc(ttt_inner_args a)
{
    /* SPLIT = 2: two warps per 8 output columns (2 x D/8 warps), each half doing a
     * different product of a phase, and one row per warp in the row phases */
    constexpr int NH = D / 8, NW = NH * SPLIT, NT = 32 * NW, TLD = D + 4, CPL = (D + 31) / 32;
    constexpr int TS = KB * TLD, SS = KB * 17;
    constexpr int RB = D + 8;           /* bf16 row stride of [16][D] and [D][D] */
    constexpr int TB = KB + 8;          /* bf16 row stride of [16][16] */
    constexpr int NTL = D / 8;          /* n8 tiles across D */
    constexpr int NTILE = (D / 16) * NTL, TPW = (NTILE + NW - 1) / NW;   /* dW' tiles, per warp */
    extern __shared__ __align__(16) unsigned char smraw[];
    float *bs = (float *)smraw, *dbs = bs + D;
    float *Ks = dbs + D, *Vs = Ks + TS, *dOs = Vs + TS;
    float *Zh = dOs + TS;               /* Z, then zhat */
    float *Gs = Zh + TS, *GYs = Gs + TS;
    float *Ys = GYs + TS;               /* QW+b, then zbar */
    float *dZb = Ys + TS;               /* d zbar */
    float *Ms = dZb + TS;               /* K dW' + db' */
    float *dGs = Ms + TS, *dZs = dGs + TS, *dTs = dZs + TS, *dQs = dTs + TS, *dKs = dQs + TS;
    float *As = dKs + TS;               /* [16][17] tril(QK^T) */
    float *Es = As + SS;
    float *dlrp = Es + SS, *dtaup = dlrp + KB;   /* [16], [2][16] d lr / d tau partials */
    float *lrs = dtaup + 2 * KB, *taus = lrs + KB, *sigs = taus + KB, *mrow = sigs + KB, *detaL = mrow + KB;
    float *red = detaL + KB;            /* [2*D] */
    bf16 *Wb = (bf16 *)(red + 2 * D);   /* [D][RB] W (i, j) */
    bf16 *dWb = Wb + D * RB;            /* [D][RB] dW' */
    bf16 *Qb = dWb + D * RB, *Kb = Qb + KB * RB;   /* [16][RB] */
    bf16 *Gb = Kb + KB * RB, *dZbb = Gb + KB * RB, *dZrb = dZbb + KB * RB;
    bf16 *Cb = dZrb + KB * RB, *dAb = Cb + KB * TB;   /* [16][TB] */

    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5, g = lane >> 2, t = lane & 3;
    const int bh = blockIdx.x, b = bh / a.H, h = bh % a.H;
    const int C = a.H * D, T = a.T, nmb = ttt_inner_nmb(T), n0 = 8 * (warp % NH);
    /* which products a warp runs: half 0 (or everything when SPLIT = 1), half 1;
     * aw: the two warps of the 16x16 products (0, 1; else < 0 or > 1) */
    const bool h0 = SPLIT == 1 || warp < NH, h1 = SPLIT == 1 || warp >= NH;
    const int aw = warp - (SPLIT - 1) * NH;
    const float *gam = a.gamma + h * D, *bet = a.beta + h * D;
    const float *st = a.states + (size_t)bh * (nmb + 1) * (D * D + D);

    float dW[TPW][4];                   /* dW' tiles x = warp + NW q (< NTILE): rows 16(x / NTL), cols 8(x % NTL) */
#pragma unroll
    for (int q = 0; q < TPW; q++) dW[q][0] = dW[q][1] = dW[q][2] = dW[q][3] = 0.f;
    for (int x = tid; x < D * RB; x += NT) dWb[x] = __float2bfloat16_rn(0.f);
    for (int x = tid; x < D; x += NT) dbs[x] = 0.f;
    float g_r[CPL], be_r[CPL], dg_acc[CPL], db_acc[CPL];
#pragma unroll
    for (int u = 0; u < CPL; u++) {
        int c = lane + 32 * u;
        g_r[u] = c < D ? gam[c] : 0.f;
        be_r[u] = c < D ? bet[c] : 0.f;
        dg_acc[u] = db_acc[u] = 0.f;
    }
    float dtau_acc = 0.f;

    /* register prefetch: one float4 of q, k, v, dO per thread of the first 4D, the bf16 state W
     * (8 values a thread) over all, b by the first D */
    constexpr int WV = (D * D / 8 + NT - 1) / NT;
    const bool tl_thread = tid < 4 * D;
    float4 pq, pk, pv, pd;
    uint4 pw[WV];
    float plr = 0.f, pb = 0.f;
    auto prefetch = [&](int n) {
        const int t0 = n * KB, r = min(KB, T - t0), x = tid * 4, i = x / D, c = x % D;
        const size_t gi = ((size_t)b * T + t0 + i) * C + h * D + c;
        const float4 z = make_float4(0.f, 0.f, 0.f, 0.f);
        const bool in = tl_thread && i < r;
        pq = in ? *(const float4 *)&a.XQ[gi] : z;
        pk = in ? *(const float4 *)&a.XK[gi] : z;
        pv = in ? *(const float4 *)&a.XV[gi] : z;
        pd = in ? *(const float4 *)&a.dZ[gi] : z;
        if (tid < KB) plr = tid < r ? a.lr[((size_t)b * T + t0 + tid) * a.H + h] : 0.f;
        const float *stn = st + (size_t)n * (D * D + D);
        if (tid < D) pb = stn[D * D + tid];
#pragma unroll
        for (int u = 0; u < WV; u++)
            if (tid + u * NT < D * D / 8) pw[u] = *(const uint4 *)((const bf16 *)stn + (tid + u * NT) * 8);
    };
    prefetch(nmb - 1);
    const float4 rc = rope4_coef<D>(tl_thread ? a.rope : NULL, tid * 4 / D, tid * 4 % D);   /* tl_thread's rows */

    for (int n = nmb - 1; n >= 0; n--) {
        const int t0 = n * KB, r = min(KB, T - t0);
        __syncthreads();
        /* P0: publish S_n and the tiles (fp32 where the row phases read them, bf16 for the products) */
        if (tl_thread) {
            const int x = tid * 4, i = x / D, c = x % D;
            pq = rope4(rc, pq);
            pk = rope4(rc, pk);
            *(float4 *)&Ks[i * TLD + c] = pk;
            *(float4 *)&Vs[i * TLD + c] = pv;
            *(float4 *)&dOs[i * TLD + c] = pd;
            *(uint2 *)&Qb[i * RB + c] = make_uint2(pack2(pq.x, pq.y), pack2(pq.z, pq.w));
            *(uint2 *)&Kb[i * RB + c] = make_uint2(pack2(pk.x, pk.y), pack2(pk.z, pk.w));
        }
#pragma unroll
        for (int u = 0; u < WV; u++) {
            if (tid + u * NT >= D * D / 8) break;
            load_state_w<D>(Wb, RB, tid + u * NT, pw[u]);
        }
        if (tid < D) bs[tid] = pb;
        if (tid < KB) {
            lrs[tid] = plr;
            taus[tid] = tau_of(a.token_idx, tid);
        }
        __syncthreads();
        if (n > 0) prefetch(n - 1);
        const float tl = taus[r - 1];

        /* P1: Z = K W + b, Y = Q W + b, M = K dW' + db' (columns n0..n0+7); A = Q K^T */
        if (h0) {
            float z[4] = {}, y[4] = {};
            mma_tile<D, false, true>(z, Kb, RB, 0, Wb, RB, n0, lane);
            mma_tile<D, false, true>(y, Qb, RB, 0, Wb, RB, n0, lane);
#pragma unroll
            for (int x = 0; x < 4; x++) {
                const int i = g + 8 * (x >> 1), j = n0 + 2 * t + (x & 1);
                Zh[i * TLD + j] = z[x] + bs[j];
                Ys[i * TLD + j] = y[x] + bs[j];
            }
        }
        if (h1) {
            float m[4] = {};
            mma_tile<D, false, true>(m, Kb, RB, 0, dWb, RB, n0, lane);
#pragma unroll
            for (int x = 0; x < 4; x++) {
                const int i = g + 8 * (x >> 1), j = n0 + 2 * t + (x & 1);
                Ms[i * TLD + j] = m[x] + dbs[j];
            }
        }
        if (aw == 0 || aw == 1) {
            float s[4] = {};
            mma_tile<D, false, false>(s, Qb, RB, 0, Kb, RB, 8 * aw, lane);
            float c[4];
#pragma unroll
            for (int x = 0; x < 4; x++) {
                const int i = g + 8 * (x >> 1), m = 8 * aw + 2 * t + (x & 1);
                const float A = m <= i ? s[x] : 0.f, e = m <= i ? taus[i] * lrs[m] : 0.f;
                c[x] = e * (A + 1.f);
                As[i * 17 + m] = A;
                Es[i * 17 + m] = e;
            }
            *(uint32_t *)&Cb[g * TB + 8 * aw + 2 * t] = pack2(c[0], c[1]);
            *(uint32_t *)&Cb[(g + 8) * TB + 8 * aw + 2 * t] = pack2(c[2], c[3]);
        }
        __syncthreads();

        /* P2: LNl2grad forward pieces per row: zhat, g_y, G, sigma, m */
#pragma unroll
        for (int q = 0; q < (KB + NW - 1) / NW; q++) {
            const int i = warp + NW * q;
            if (i >= KB) break;
            float zv[CPL], zh[CPL], gy[CPL], G[CPL], sig, mgz;
            row_load<D, CPL>(zv, Zh + i * TLD, lane);
            ln_l2grad_row<D, CPL>(zv, Vs + i * TLD, Ks + i * TLD, g_r, be_r, lane, zh, gy, G, &sig, &mgz);
#pragma unroll
            for (int u = 0; u < CPL; u++) {
                int c = lane + 32 * u;
                if (c < D) {
                    Zh[i * TLD + c] = zh[u];
                    GYs[i * TLD + c] = gy[u];
                    Gs[i * TLD + c] = G[u];
                    Gb[i * RB + c] = __float2bfloat16_rn(G[u]);
                }
            }
            if (lane == 0) { sigs[i] = sig; mrow[i] = mgz; }
        }
        __syncthreads();

        /* P3: zbar = Y - C G */
        if (h0) {
            float cg[4] = {};
            mma_tile<KB, false, true>(cg, Cb, TB, 0, Gb, RB, n0, lane);
#pragma unroll
            for (int x = 0; x < 4; x++) Ys[(g + 8 * (x >> 1)) * TLD + n0 + 2 * t + (x & 1)] -= cg[x];
        }
        __syncthreads();

        /* P4: output LN backward: dzbar (+ its bf16 copies), dgamma, dbeta */
#pragma unroll
        for (int q = 0; q < (KB + NW - 1) / NW; q++) {
            const int i = warp + NW * q;
            if (i >= KB) break;
            float zv[CPL], mu, var;
            row_load<D, CPL>(zv, Ys + i * TLD, lane);
            row_moments<D, CPL>(zv, lane, &mu, &var);
            ln_bwd_row<D, CPL>(zv, mu, rsqrtf(var + EPS), dOs + i * TLD, g_r, dg_acc, db_acc, dZb + i * TLD, lane);
            __syncwarp();
#pragma unroll
            for (int u = 0; u < CPL; u++) {
                int c = lane + 32 * u;
                if (c < D) dZbb[i * RB + c] = __float2bfloat16_rn(dZb[i * TLD + c]);
            }
        }
        __syncthreads();

        /* P5: dP = dzbar G^T -> d eta, dA; dK_upd = -diag(e) G dW'^T; dG = -C^T dzbar - diag(e) M */
        if (aw == 0 || aw == 1) {
            float p[4] = {};
            mma_tile<D, false, false>(p, dZbb, RB, 0, Gb, RB, 8 * aw, lane);
            float da[4];
#pragma unroll
            for (int x = 0; x < 4; x++) {
                const int i = g + 8 * (x >> 1), m = 8 * aw + 2 * t + (x & 1);
                const float pp = -p[x];
                p[x] = m <= i ? pp * (As[i * 17 + m] + 1.f) : 0.f;
                da[x] = m <= i ? pp * Es[i * 17 + m] : 0.f;
            }
            *(uint32_t *)&dAb[g * TB + 8 * aw + 2 * t] = pack2(da[0], da[1]);
            *(uint32_t *)&dAb[(g + 8) * TB + 8 * aw + 2 * t] = pack2(da[2], da[3]);
            /* d lr_m = sum_i deta_im tau_i (column sums), d tau_i = sum_m deta_im lr_m (row sums;
             * this warp's 8 columns): shuffles instead of a serial loop at the end */
            const float ta = taus[g], tb = taus[g + 8];
            const float c0 = col_sum(p[0] * ta + p[2] * tb), c1 = col_sum(p[1] * ta + p[3] * tb);
            const float l0 = lrs[8 * aw + 2 * t], l1 = lrs[8 * aw + 2 * t + 1];
            const float r0 = quad_sum(p[0] * l0 + p[1] * l1), r1 = quad_sum(p[2] * l0 + p[3] * l1);
            if (g == 0) { dlrp[8 * aw + 2 * t] = c0; dlrp[8 * aw + 2 * t + 1] = c1; }
            if (t == 0) { dtaup[aw * KB + g] = r0; dtaup[aw * KB + g + 8] = r1; }
        }
        if (h0) {
            float dk[4] = {};
            mma_tile<D, false, false>(dk, Gb, RB, 0, dWb, RB, n0, lane);
#pragma unroll
            for (int x = 0; x < 4; x++) {
                const int i = g + 8 * (x >> 1), j = n0 + 2 * t + (x & 1);
                dKs[i * TLD + j] = -tl * lrs[i] * dk[x];
            }
        }
        if (h1) {
            float dg[4] = {};
            mma_tile<KB, true, true>(dg, Cb, TB, 0, dZbb, RB, n0, lane);
#pragma unroll
            for (int x = 0; x < 4; x++) {
                const int i = g + 8 * (x >> 1), j = n0 + 2 * t + (x & 1);
                dGs[i * TLD + j] = -tl * lrs[i] * Ms[i * TLD + j] - dg[x];
            }
        }
        __syncthreads();

        /* P6: dQ = dOut + dzbar W^T + dA K; dK += dA^T Q (products), then the
         * LNl2grad backward rows -> dZ, dT, d eta of the last row */
        if (h0) {
            float dq[4] = {};
            mma_tile<D, false, false>(dq, dZbb, RB, 0, Wb, RB, n0, lane);
            mma_tile<KB, false, true>(dq, dAb, TB, 0, Kb, RB, n0, lane);
#pragma unroll
            for (int x = 0; x < 4; x++) {
                const int i = g + 8 * (x >> 1), j = n0 + 2 * t + (x & 1);
                dQs[i * TLD + j] = dOs[i * TLD + j] + dq[x];
            }
        }
        if (h1) {
            /* dKs's columns n0.. were written in P5 by the other half's warp of the same
             * columns: the barrier after P5 orders that write before this update */
            float dk[4] = {};
            mma_tile<KB, true, true>(dk, dAb, TB, 0, Qb, RB, n0, lane);
#pragma unroll
            for (int x = 0; x < 4; x++) {
                const int i = g + 8 * (x >> 1), j = n0 + 2 * t + (x & 1);
                dKs[i * TLD + j] += dk[x];
            }
        }
#pragma unroll
        for (int q = 0; q < (KB + NW - 1) / NW; q++) {
            const int i = warp + NW * q;
            if (i >= KB) break;
            float dz[CPL], dt[CPL];
            ln_l2grad_bwd_row<D, CPL>(dGs + i * TLD, Zh + i * TLD, Gs + i * TLD, Ms + i * TLD, GYs + i * TLD,
                                      Vs + i * TLD, Ks + i * TLD, sigs[i], mrow[i], g_r, be_r, dg_acc, db_acc,
                                      &detaL[i], dz, dt, lane);
#pragma unroll
            for (int u = 0; u < CPL; u++) {
                int c = lane + 32 * u;
                if (c < D) {
                    dZs[i * TLD + c] = dz[u];
                    dTs[i * TLD + c] = dt[u];
                    dZrb[i * RB + c] = __float2bfloat16_rn(dz[u]);
                }
            }
        }
        __syncthreads();

        /* P7: dK += -dT + dZ W^T and the outputs; dW' += Q^T dzbar + K^T dZ; db'; dlr, dtau */
        if (h0) {
            float dk[4] = {};
            mma_tile<D, false, false>(dk, dZrb, RB, 0, Wb, RB, n0, lane);
#pragma unroll
            for (int hr = 0; hr < 2; hr++) {
                const int i = g + 8 * hr, j = n0 + 2 * t;
                if (i >= r) continue;
                const size_t gi = ((size_t)b * T + t0 + i) * C + h * D + j;
                float2 k2, q2, v2;
                k2.x = dKs[i * TLD + j] - dTs[i * TLD + j] + dk[2 * hr];
                k2.y = dKs[i * TLD + j + 1] - dTs[i * TLD + j + 1] + dk[2 * hr + 1];
                q2.x = dQs[i * TLD + j]; q2.y = dQs[i * TLD + j + 1];
                v2.x = dTs[i * TLD + j]; v2.y = dTs[i * TLD + j + 1];
                if (a.rope) {
                    k2 = rope_pair<D>(a.rope, i, j, k2, -1.f);
                    q2 = rope_pair<D>(a.rope, i, j, q2, -1.f);
                }
                store_grad2(a.dXK, a.dqk16, gi, k2);
                store_grad2(a.dXQ, a.dqk16, gi, q2);
                store_grad2(a.dXV, a.dv16, gi, v2);
            }
        }
#pragma unroll
        for (int q = 0; q < TPW; q++) {
            const int x = warp + NW * q, m0 = 16 * (x / NTL), c0 = 8 * (x % NTL);
            if (x >= NTILE) break;
            mma_tile<KB, true, true>(dW[q], Qb, RB, m0, dZbb, RB, c0, lane);
            mma_tile<KB, true, true>(dW[q], Kb, RB, m0, dZrb, RB, c0, lane);
#pragma unroll
            for (int hr = 0; hr < 2; hr++)
                *(uint32_t *)&dWb[(m0 + g + 8 * hr) * RB + c0 + 2 * t] = pack2(dW[q][2 * hr], dW[q][2 * hr + 1]);
        }
        for (int j = tid; j < D; j += NT) {
            float sb = 0.f;
#pragma unroll
            for (int i = 0; i < KB; i++) sb += dZb[i * TLD + j] + dZs[i * TLD + j];
            dbs[j] += sb;
        }
        if (warp == 0) {
            /* d lr_j (+ the last row's update term) and d tau_i (+ the update's, for i = r-1) */
            const int j = lane & 15;
            const float lu = warp_sum(lane < KB ? detaL[lane] * lrs[lane] : 0.f);
            if (lane < KB) {
                if (j < r) a.dlr[((size_t)b * T + t0 + j) * a.H + h] = dlrp[j] + detaL[j] * tl;
                float dt = dtaup[j] + dtaup[KB + j] + (j == r - 1 ? lu : 0.f);
                if (j < r) dtau_acc += dt;
            }
        }
    }
    __syncthreads();
    /* dW0, db0, dgamma, dbeta, dtau: one atomic per element per block */
#pragma unroll
    for (int q = 0; q < TPW; q++) {
        const int x = warp + NW * q, m0 = 16 * (x / NTL), c0 = 8 * (x % NTL);
        if (x >= NTILE) break;
#pragma unroll
        for (int y = 0; y < 4; y++)
            atomicAdd(&a.dW0[(size_t)h * D * D + (m0 + g + 8 * (y >> 1)) * D + c0 + 2 * t + (y & 1)], dW[q][y]);
    }
    for (int x = tid; x < D; x += NT) { atomicAdd(&a.db0[h * D + x], dbs[x]); red[x] = 0.f; red[D + x] = 0.f; }
    flush_norm_grads<D, CPL>(red, dg_acc, db_acc, dtau_acc, a.dgamma + h * D, a.dbeta + h * D, a.dtau, tid, NT, lane);
}

template <int D> constexpr size_t tc_bwd_smem()
{
    return sizeof(float) * (2 * D + 14 * KB * (D + 4) + 2 * KB * 17 + 3 * KB + 5 * KB + 2 * D) +
           2 * (2 * D * (D + 8) + 5 * KB * (D + 8) + 2 * KB * (KB + 8));
}

template <int D> constexpr size_t tc_smem()
{
    return sizeof(float) * (2 * 2 * KB * (D + 4) + 2 * KB + 4 * (D / 16) * KB) +
           2 * (2 * 2 * KB * (D + 8) + 2 * (D / 16) * KB * (KB + 8));
}

#ifndef TTT_CUDA_EMU
template <int D> cudaError_t launch(const ttt_inner_args *a, cudaStream_t s)
{
    auto k = a->z16 ? (a->states ? inner_fwd_tc<D, true, true> : inner_fwd_tc<D, true, false>)
                    : (a->states ? inner_fwd_tc<D, false, true> : inner_fwd_tc<D, false, false>);
    return ttt_inner_launch(k, 2 * D, tc_smem<D>(), a, s);
}

/* Two warps per 8 columns where the registers allow it (D <= 64: 8D threads). */
template <int D> cudaError_t launch_bwd(const ttt_inner_args *a, cudaStream_t s)
{
    constexpr int SPLIT = D <= 64 ? 2 : 1;
    return ttt_inner_launch(inner_bwd_tc<D, SPLIT>, 4 * D * SPLIT, tc_bwd_smem<D>(), a, s);
}

#endif
}  /* namespace */

#ifndef TTT_CUDA_EMU
cudaError_t ttt_inner_linear_backward_tc(const ttt_inner_args *a, cudaStream_t s)
{
    switch (a->D) {
    case 16: return launch_bwd<16>(a, s);
    case 32: return launch_bwd<32>(a, s);
    case 64: return launch_bwd<64>(a, s);
    case 96: return launch_bwd<96>(a, s);
    }
    return cudaErrorInvalidValue;
}

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
#endif
