/* ttt_inner_mlp_tc.cu - the TTT-MLP inner loop (forward and spec 8.3
 * backward) on tensor cores for the bf16 mode: the same dual form per
 * mini-batch of 16 as ttt_inner_mlp.cu, with every product on mma.sync
 * m16n8k16 (bf16 operands, fp32 accumulation) and the fast weights fp32.
 *
 * One block of 256 threads (8 warps) per (sequence, head); F = 4D.
 *  - The fp32 state (forward: W1, W2; backward: dW1', dW2') lives in mma
 *    accumulator tiles spread over the 8 warps (D*F/1024 tiles per warp and
 *    matrix: 64 floats per thread each at D=64); after each update its bf16
 *    copy is refreshed in shared memory, one orientation per matrix
 *    (W1 [D][F], W2 [F][D]): every product reads its operands from shared
 *    bf16 tiles, and an operand stored in the other orientation than the
 *    fragment wants is loaded with ldmatrix.trans, so no matrix needs two
 *    copies (at D=64 four bf16 copies are 135 KiB; two per matrix would not
 *    fit next to the backward's tiles).
 *  - The backward recomputes the forward of each mini-batch from the stored
 *    S_n (the states layout of ttt_inner_mlp.cu with W1, W2 in bf16:
 *    store_state). It keeps gelu'(Z1) and gelu'(Zbar1) as fp32 [16][F]
 *    tiles from where it computes Z1, Zbar1 to where it needs the
 *    derivative again (bwd_layout says in which slots), and recomputes Z1
 *    and G2 W2^T once more in B4, where no slot is free; the bf16 copies of
 *    dW1', dW2' are only read by the update terms of spec 8.3, which run
 *    first, and their shared memory is then reused for tiles.
 *  - With a.rope the kernels rotate Q, K as they load them and rotate
 *    dXQ, dXK back as they store them (XQ, XK not yet rotated).
 *  - LayerNorm-type row phases stay fp32 (half a warp per token row:
 *    half_row, half_stats); F-wide products give warp w the
 *    columns [8 NQ w, 8 NQ (w+1)), D-wide products one n8 tile per warp;
 *    a product with K = F runs as four independent mma chains
 *    (mma_tile_split), and the forward writes its bf16 tiles from the
 *    accumulators with stmatrix (store_tiles, store_state_tiles).
 *
 * Accumulator tile element x of an m16n8 tile at (m0, n0): row m0 + g +
 * 8 (x >> 1), column n0 + 2t + (x & 1); g = lane >> 2, t = lane & 3.
 *
 * bf16 operands bound the agreement with the fp32 kernel to ~1e-2
 * relative; the fp32 mode keeps using ttt_inner_mlp.cu.
 */
#ifndef TTT_CUDA_EMU   /* host emulators (tests/unit/emu_*.cpp) bring their own types */
#include <cuda_bf16.h>
#endif
#include <stdint.h>

#include "ttt_cuda_internal.cuh"
#include "ttt_inner_rows.cuh"
#include "mma_bf16.cuh"
#include "gelu.cuh"

#define KB TTT_CUDA_K
#define EPS TTT_INNER_EPS
#define NT 256           /* threads per block */
#define NW 8             /* warps per block */
#define LS (KB + 8)      /* row stride of the bf16 [16][16] tiles */
static_assert(KB % NW == 0, "every warp the same number of token rows");

namespace {


/* ---- activation functions: gelu.cuh; mma plumbing (pack2, mma, load_a/load_b, mma_tile, mma_tile_split,
 * mma_row, store_tiles): mma_bf16.cuh ---- */

/* The mini-batch's -M = -eta (tril(P R^T) + 1), eta_im = tau_i lr_m, as bf16
 * [16][LS] from P, R [16][K] row-major bf16; warps 0 and 1 make 8 columns
 * each. S, when given, keeps P R^T (fp32 [16][16]) for the backward. */
template <int K>
__device__ __forceinline__ void neg_eta_tile(bf16 *nM, float *S, const bf16 *P, const bf16 *R, int ld,
                                             const float *taus, const float *lrs, int warp, int lane)
{
    const int g = lane >> 2, t = lane & 3;
    float s[4] = {};
    if constexpr (K >= 128) mma_tile_split<K, false, false>(s, P, ld, 0, R, ld, 8 * warp, lane);
    else mma_tile<K, false, false>(s, P, ld, 0, R, ld, 8 * warp, lane);
#pragma unroll
    for (int x = 0; x < 4; x++) {
        const int i = g + 8 * (x >> 1), m = 8 * warp + 2 * t + (x & 1);
        if (S) S[i * KB + m] = s[x];
        nM[i * LS + m] = __float2bfloat16_rn(m <= i ? -taus[i] * lrs[m] * (s[x] + 1.f) : 0.f);
    }
}

/* sum_{i < KB} f(i) in four interleaved partial sums: one chain of 16
 * dependent adds, on the few threads that own such sums, was the tail of
 * its phase */
template <class Fn>
__device__ __forceinline__ float sum_kb(Fn f)
{
    float s[4] = {};
#pragma unroll
    for (int i = 0; i < KB; i++) s[i % 4] += f(i);
    return (s[0] + s[1]) + (s[2] + s[3]);
}

/* gelu of a pair, packed as bf16 */
__device__ __forceinline__ uint32_t gelu_pack2(float z0, float z1)
{
    return pack2(gelu_fast(z0).value(), gelu_fast(z1).value());
}

/* The row phases with half a warp a token row (the half_* helpers of
 * ttt_inner_rows.cuh): the 16 rows are the 16 half-warps (rows w & 3 +
 * 8 (w >> 2) and 4 more, so that the two halves of a warp read different
 * banks), a lane E = D / 16 consecutive columns. */
static_assert(KB == 2 * NW, "a half-warp a token row");
__device__ __forceinline__ int half_row(int warp, int lane) { return (warp & 3) + 8 * (warp >> 2) + 4 * (lane >> 4); }
/* G = LNl2grad(z, tgt) of the lane's row, from its rows z and tgt = v - k */
template <int D, int E>
__device__ __forceinline__ void half_l2grad(const float *zrow, const float *trow, const float *gm, const float *bt,
                                            int lane, float (&G)[E])
{
    float zv[E], tg[E], zh[E], gy[E], rs, mg, mgz;
    ldv<E>(zv, zrow);
    ldv<E>(tg, trow);
    half_l2grad_y<D, E>(zv, tg, gm, bt, lane, zh, gy, &rs, &mg, &mgz);
#pragma unroll
    for (int e = 0; e < E; e++) G[e] = (gy[e] - mg - zh[e] * mgz) * rs;
}

/* ---- sizes and shared memory layouts ---- */

template <int D>
struct tcd {
    static constexpr int F = 4 * D;
    static constexpr int LD = D + 8, LF = F + 8;   /* bf16 row strides ([.][D], [.][F]) */
    static constexpr int FD = D + 4, FF = F + 4;   /* fp32 row strides */
    static constexpr int P = 2 * D * F + F + D;    /* floats per state */
    static constexpr int NQ = F / 64;              /* F-wide n8 tiles per warp */
    static constexpr int NTD = D / 8;              /* D-wide n8 tiles */
    static constexpr int NS = D * F / 1024;        /* state tiles per warp and matrix */
};

/* State tile q of warp w (tiles x = w NS + q in row-major tile order).
 * W1 (d, f): 16-row bands of D, 8 columns of F; W2 (f, d): 16-row bands
 * of F, 8 columns of D. Written so that the tile offsets are affine in q
 * (compile-time after unrolling): no per-tile address registers. */
template <int D>
__device__ __forceinline__ void w1_tile(int w, int q, int *m0, int *n0)
{
    constexpr int F = 4 * D, NS = tcd<D>::NS, NC = F / 8;
    static_assert(NC % NS == 0, "a warp's W1 tiles lie in one band");
    *m0 = 16 * (w * NS / NC);
    *n0 = 8 * (w * NS % NC + q);
}
template <int D>
__device__ __forceinline__ void w2_tile(int w, int q, int *m0, int *n0)
{
    constexpr int NS = tcd<D>::NS, NC = D / 8;
    if constexpr (NS >= NC) {
        static_assert(NS % NC == 0, "a warp's W2 tiles are whole bands");
        *m0 = 16 * (w * (NS / NC) + q / NC);
        *n0 = 8 * (q % NC);
    } else {
        static_assert(NC % NS == 0, "a warp's W2 tiles lie in one band");
        *m0 = 16 * (w * NS / NC);
        *n0 = 8 * (w * NS % NC + q);
    }
}

/* The bf16 copy of a warp's state tiles (W1 tiles into [D][LF], W2 tiles
 * into [F][LD]): tiles q, q + 1 (q even) are adjacent in one band, so
 * store_tiles takes them in one stmatrix. */
template <int D, bool W2M>
__device__ __forceinline__ void store_state_tiles(bf16 *Wb, const float (*W)[4], int warp, int lane)
{
    constexpr int NS = tcd<D>::NS, ld = W2M ? tcd<D>::LD : tcd<D>::LF;
    static_assert(NS == 1 || (NS % 2 == 0 && (D / 8) % 2 == 0), "pairs of adjacent tiles");
#pragma unroll
    for (int q = 0; q < NS; q += 2) {
        int m0, n0;
        if (W2M) w2_tile<D>(warp, q, &m0, &n0);
        else w1_tile<D>(warp, q, &m0, &n0);
        if constexpr (NS == 1) {
            const uint32_t p[1][2] = {{pack2(W[0][0], W[0][1]), pack2(W[0][2], W[0][3])}};
            store_tiles<1>(Wb, ld, m0, n0, p, lane);
        } else {
            const uint32_t p[2][2] = {{pack2(W[q][0], W[q][1]), pack2(W[q][2], W[q][3])},
                                      {pack2(W[q + 1][0], W[q + 1][1]), pack2(W[q + 1][2], W[q + 1][3])}};
            store_tiles<2>(Wb, ld, m0, n0, p, lane);
        }
    }
}

/* A thread's share of a mini-batch's rows, loaded into registers one
 * mini-batch ahead (the loads overlap the mini-batch before): 4 channels
 * (c = 4 tid mod D) of row i = 4 tid / D of q, k, v (and dO), the row's lr,
 * and for tid < 16 the lr of row tid; zeros past the sequence's end. */
struct tile4 {
    float4 q, k, v, d;
    float lr, lrt;
};

template <int D>
__device__ __forceinline__ void tile4_load(tile4 *p, const ttt_inner_args &a, int b, int h, int n, int tid, bool dout)
{
    const int t0 = n * KB, r = min(KB, a.T - t0), x = 4 * tid, i = x / D, c = x % D;
    const bool in = x < KB * D && i < r;
    const size_t row = (size_t)b * a.T + t0 + i, gi = row * a.H * D + h * D + c;
    const float4 z = make_float4(0.f, 0.f, 0.f, 0.f);
    p->q = in ? *(const float4 *)&a.XQ[gi] : z;
    p->k = in ? *(const float4 *)&a.XK[gi] : z;
    p->v = in ? *(const float4 *)&a.XV[gi] : z;
    p->d = in && dout ? *(const float4 *)&a.dZ[gi] : z;
    p->lr = in ? a.lr[row * a.H + h] : 0.f;
    p->lrt = tid < r ? a.lr[((size_t)b * a.T + t0 + tid) * a.H + h] : 0.f;
}

/* Copy a bf16 [ROWS][COLS] matrix from row stride LS_ to row stride LD_
 * in 16-byte pieces, NT threads: thread tid takes the same 8 columns in
 * rows tid / (COLS / 8) + j NT / (COLS / 8) (pass j), so every offset
 * after the first is a compile-time constant; all loads are issued before
 * the first store (the compiler cannot tell the two pointers apart).
 * Passes [J0, J1) only, when a copy is spread over several phases. */
template <int ROWS, int COLS, int LD_, int LS_, int J0 = 0, int J1 = ROWS>
__device__ __forceinline__ void copy_bf16(bf16 *dst, const bf16 *src, int tid)
{
    constexpr int CPR = COLS / 8, RS = NT / CPR, PASSES = (ROWS + RS - 1) / RS;
    constexpr int N = (J1 < PASSES ? J1 : PASSES) - J0;
    static_assert(COLS % 8 == 0 && NT % CPR == 0, "whole rows a pass");
    if constexpr (N > 0) {
        const int r0 = tid / CPR + J0 * RS, c = 8 * (tid % CPR);
        const bool all = ROWS % RS == 0;
        uint4 v[N];
#pragma unroll
        for (int j = 0; j < N; j++)
            if (all || r0 + j * RS < ROWS) v[j] = *(const uint4 *)&src[(r0 + j * RS) * LS_ + c];
#pragma unroll
        for (int j = 0; j < N; j++)
            if (all || r0 + j * RS < ROWS) *(uint4 *)&dst[(r0 + j * RS) * LD_ + c] = v[j];
    }
}

/* A state checkpoint: W1 [D][F] and W2 [F][D] in bf16 (at float offsets 0
 * and D*F+F; the tensor-core backward reads them only as bf16 operands),
 * copied from their bf16 copies in shared memory (W1b [D][LF], W2b [F][LD]:
 * the accumulator tiles rounded, as the products read them) in 16-byte
 * pieces, whole rows a warp: four times fewer stores than from the
 * accumulator tiles, each a full sector (the checkpoints were a third of
 * the forward's time when stored from the tiles); b1 [F] and b2 [D] in fp32
 * at D*F and 2DF+F. Passes [J0, J1) of copy_bf16 (J0 = 0: the biases too):
 * the forward spreads a checkpoint over the phases that leave W1b, W2b
 * unchanged, so that its stores drain while the products run (in one
 * phase they kept the SM's store path busy for 14% of the forward). */
template <int D, int J0 = 0, int J1 = 4 * D>
__device__ __forceinline__ void store_state(float *sn, const bf16 *W1b, const bf16 *W2b, const float *b1s,
                                            const float *b2s, int tid)
{
    constexpr int F = 4 * D, LD = tcd<D>::LD, LF = tcd<D>::LF;   /* NT threads */
    copy_bf16<D, F, F, LF, J0, J1>((bf16 *)sn, W1b, tid);
    copy_bf16<F, D, D, LD, J0, J1>((bf16 *)(sn + D * F + F), W2b, tid);
    if (J0 == 0) {
        for (int x = tid; x < F; x += NT) sn[D * F + x] = b1s[x];
        for (int x = tid; x < D; x += NT) sn[2 * D * F + F + x] = b2s[x];
    }
}

/* The backward's next checkpoint (mini-batch n - 1) into L2 while mini-batch
 * n runs (bulk prefetches, one thread): its P0 loads then wait for L2, not
 * HBM (they were 12% of the backward's stall samples). */
template <int D>
__device__ __forceinline__ void prefetch_state_l2(const float *sn)
{
#ifndef TTT_CUDA_EMU
    constexpr unsigned F = 4 * D;
    const float *part[3] = {sn, sn + D * F, sn + 2 * D * F + F};   /* W1; b1 and W2; b2 */
    const unsigned bytes[3] = {2 * D * F, 4 * F + 2 * F * D, 4 * D};
#pragma unroll
    for (int i = 0; i < 3; i++)
        asm volatile("cp.async.bulk.prefetch.L2.global [%0], %1;" ::"l"(part[i]), "r"(bytes[i]) : "memory");
#endif
}

struct carve {
    size_t off;
    __host__ __device__ size_t take(size_t bytes)
    {
        size_t o = off;
        off += (bytes + 15) & ~(size_t)15;
        return o;
    }
};

template <int D>
struct fwd_layout {
    size_t W1b, W2b, X2b, Xb2b, G1b, Qb, Kb, nKb, G2b, nG2b, nM1b, nM2b, Hs, Qs, Ts, Z2s, b1s, db1s, b2s, db2s, gms,
        bts, lrs, taus, total;
    __host__ __device__ fwd_layout()
    {
        using Dm = tcd<D>;
        constexpr size_t F = Dm::F, LD = Dm::LD, LF = Dm::LF, FD = Dm::FD, FF = Dm::FF;
        carve c{0};
        W1b = c.take(2 * D * LF);
        W2b = c.take(2 * F * LD);
        X2b = c.take(2 * KB * LF);
        Xb2b = c.take(2 * KB * LF);
        G1b = c.take(2 * KB * LF);
        Qb = c.take(2 * KB * LD);
        Kb = c.take(2 * KB * LD);
        nKb = c.take(2 * KB * LD);
        G2b = c.take(2 * KB * LD);
        nG2b = c.take(2 * KB * LD);
        nM1b = c.take(2 * KB * LS);
        nM2b = c.take(2 * KB * LS);
        Hs = c.take(4 * KB * FF);
        Qs = c.take(4 * KB * FD);
        Ts = c.take(4 * KB * FD);
        Z2s = c.take(4 * KB * FD);
        b1s = c.take(4 * F);
        db1s = c.take(4 * F);
        b2s = c.take(4 * D);
        db2s = c.take(4 * D);
        gms = c.take(4 * D);
        bts = c.take(4 * D);
        lrs = c.take(4 * KB);
        taus = c.take(4 * KB);
        total = c.off;
    }
};

/* Backward: region R holds the bf16 dW1' [D][LF] and dW2' [F][LD] until the
 * update terms have read them, then (phase 2) dX2acc (fp32 [16][FF]), Xb2,
 * dZb1, tF (bf16 [16][LF]) and Hx (fp32 [16][FF]: gelu'(Zb1) from F5 for B3,
 * then gelu'(Z1) from B4 for B8, so that neither recomputes its product and
 * tanh). dG1init (fp32) and dX2init (bf16: the fp32 copy would not fit at
 * D=64), made while R still holds dW', lie outside R; dG1init's slot holds
 * H = gelu'(Z1) from F1 until F4 reads it; dZ1 (bf16) reuses it last. */
template <int D>
struct bwd_layout {
    size_t W1b, W2b, X2b, G1b, dG1is, dX2ib, Qb, Kb, G2b, dZb2b, nM1b, nM2b, dA1b, dA2b, Ts, dOs, Z2s, S3, dG2s, dKs, A1s, A2s, dEs,
        b1s, db1acc, ddb1, b2s, db2acc, ddb2, gms, bts, lrs, taus, detaL, red, R, total;
    static constexpr size_t R1 = 2 * (size_t)D * tcd<D>::LF + 2 * (size_t)tcd<D>::F * tcd<D>::LD;
    static constexpr size_t R2 = 2 * 4 * (size_t)KB * tcd<D>::FF + 3 * 2 * (size_t)KB * tcd<D>::LF;
    __host__ __device__ bwd_layout()
    {
        using Dm = tcd<D>;
        constexpr size_t F = Dm::F, LD = Dm::LD, LF = Dm::LF, FD = Dm::FD;
        carve c{0};
        W1b = c.take(2 * D * LF);
        W2b = c.take(2 * F * LD);
        X2b = c.take(2 * KB * LF);
        G1b = c.take(2 * KB * LF);
        dG1is = c.take(4 * KB * tcd<D>::FF);
        dX2ib = c.take(2 * KB * LF);
        Qb = c.take(2 * KB * LD);
        Kb = c.take(2 * KB * LD);
        G2b = c.take(2 * KB * LD);
        dZb2b = c.take(2 * KB * LD);
        nM1b = c.take(2 * KB * LS);
        nM2b = c.take(2 * KB * LS);
        dA1b = c.take(2 * KB * LS);
        dA2b = c.take(2 * KB * LS);
        Ts = c.take(4 * KB * FD);
        dOs = c.take(4 * KB * FD);
        Z2s = c.take(4 * KB * FD);
        S3 = c.take(4 * KB * FD);
        dG2s = c.take(4 * KB * FD);
        dKs = c.take(4 * KB * FD);
        A1s = c.take(4 * KB * KB);
        A2s = c.take(4 * KB * KB);
        dEs = c.take(4 * KB * KB);
        b1s = c.take(4 * F);
        db1acc = c.take(4 * F);
        ddb1 = c.take(4 * F);
        b2s = c.take(4 * D);
        db2acc = c.take(4 * D);
        ddb2 = c.take(4 * D);
        gms = c.take(4 * D);
        bts = c.take(4 * D);
        lrs = c.take(4 * KB);
        taus = c.take(4 * KB);
        detaL = c.take(4 * KB);
        red = c.take(4 * 2 * D);
        R = c.take(R1 > R2 ? R1 : R2);
        total = c.off;
    }
};

/* ------------------------------------------------------------------------ */
/* forward                                                                   */
/* ------------------------------------------------------------------------ */

/* Per mini-batch (barriers between phases):
 *  P0 store S_n; tiles q, v - k (fp32), Q, K, -e K (bf16)
 *  F1 Z1 = K W1 + b1 -> X2 = gelu(Z1), H = gelu'(Z1);  -M1 = -eta (tril(Q K^T) + 1)
 *  F2 Z2 = X2 W2 + b2
 *  F3 G2 = LNl2grad(Z2, v - k) (rows), -e G2
 *  F4 G1 = (G2 W2^T) H; e^T G1, e^T G2
 *  F5 Zb1 = Q W1 + b1 - M1 G1 -> Xb2 = gelu(Zb1); W1 += (-eK)^T G1, W2 += X2^T (-e G2)
 *  F6 -M2 = -eta (tril(Xb2 X2^T) + 1); bf16 W1 refreshed
 *  F7 Zb2 = Xb2 W2 + b2 - M2 G2
 *  F8 out = q + LN(Zb2) (rows); bf16 W2 refreshed; b1, b2 updated */
template <int D>
__global__ void __launch_bounds__(NT, 1) mlp_fwd_tc(ttt_inner_args a)
{
    using Dm = tcd<D>;
    constexpr int F = Dm::F, LD = Dm::LD, LF = Dm::LF, FD = Dm::FD, FF = Dm::FF, P = Dm::P;
    constexpr int NQ = Dm::NQ, NTD = Dm::NTD, NS = Dm::NS;
    extern __shared__ __align__(16) unsigned char smraw[];
    const fwd_layout<D> L;
    bf16 *W1b = (bf16 *)(smraw + L.W1b), *W2b = (bf16 *)(smraw + L.W2b);
    bf16 *X2b = (bf16 *)(smraw + L.X2b), *Xb2b = (bf16 *)(smraw + L.Xb2b), *G1b = (bf16 *)(smraw + L.G1b);
    bf16 *Qb = (bf16 *)(smraw + L.Qb), *Kb = (bf16 *)(smraw + L.Kb), *nKb = (bf16 *)(smraw + L.nKb);
    bf16 *G2b = (bf16 *)(smraw + L.G2b), *nG2b = (bf16 *)(smraw + L.nG2b);
    bf16 *nM1b = (bf16 *)(smraw + L.nM1b), *nM2b = (bf16 *)(smraw + L.nM2b);
    float *Hs = (float *)(smraw + L.Hs), *Qs = (float *)(smraw + L.Qs), *Ts = (float *)(smraw + L.Ts);
    float *Z2s = (float *)(smraw + L.Z2s);   /* Z2, then G2, then Zb2 */
    float *b1s = (float *)(smraw + L.b1s), *db1s = (float *)(smraw + L.db1s);
    float *b2s = (float *)(smraw + L.b2s), *db2s = (float *)(smraw + L.db2s);
    float *lrs = (float *)(smraw + L.lrs), *taus = (float *)(smraw + L.taus);
    float *gms = (float *)(smraw + L.gms), *bts = (float *)(smraw + L.bts);   /* ttt_norm gamma, beta */

    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5, g = lane >> 2, t = lane & 3;
    const int bh = blockIdx.x, b = bh / a.H, h = bh % a.H;
    const int C = a.H * D, T = a.T, nmb = ttt_inner_nmb(T);
    const int c0 = warp * 8 * NQ;            /* the warp's F-wide columns */
    constexpr int E = D / 16;                /* the row phases: half_row, columns hc .. hc + E - 1 */
    const int hrow = half_row(warp, lane), hc = E * (lane & 15);
    /* no states: a forward no backward follows (evaluation) skips the checkpoints */
    float *st = a.states ? a.states + (size_t)bh * (nmb + 1) * P : NULL;

    /* the state: W1 tiles (d, f), W2 tiles (f, d) */
    float W1[NS][4], W2[NS][4];
    {
        const float *W10 = a.W0 + (size_t)h * D * F, *W20 = a.W20 + (size_t)h * F * D;
#pragma unroll
        for (int q = 0; q < NS; q++) {
            int m0, n0;
            w1_tile<D>(warp, q, &m0, &n0);
#pragma unroll
            for (int x = 0; x < 4; x++)
                W1[q][x] = W10[(m0 + g + 8 * (x >> 1)) * F + n0 + 2 * t + (x & 1)];
            w2_tile<D>(warp, q, &m0, &n0);
#pragma unroll
            for (int x = 0; x < 4; x++)
                W2[q][x] = W20[(m0 + g + 8 * (x >> 1)) * D + n0 + 2 * t + (x & 1)];
        }
    }
    for (int x = tid; x < F; x += NT) b1s[x] = a.b0[h * F + x];
    for (int x = tid; x < D; x += NT) b2s[x] = a.b20[h * D + x];
    if (tid < KB) taus[tid] = tau_of(a.token_idx, tid);
    for (int x = tid; x < D; x += NT) {
        gms[x] = a.gamma[h * D + x];
        bts[x] = a.beta[h * D + x];
    }
    /* the bf16 copies of S_0 */
    store_state_tiles<D, false>(W1b, W1, warp, lane);
    store_state_tiles<D, true>(W2b, W2, warp, lane);
    __syncthreads();

    tile4 pf;
    tile4_load<D>(&pf, a, b, h, 0, tid, false);
    /* the rotations of the thread's tile elements (4 tid < 16 D), the same every mini-batch */
    const float4 rc = rope4_coef<D>(4 * tid < KB * D ? a.rope : NULL, 4 * tid / D, 4 * tid % D);
    for (int n = 0; n < nmb; n++) {
        const int t0 = n * KB, r = min(KB, T - t0);
        const float tl = tau_of(a.token_idx, r - 1);
        float *sn = st ? st + (size_t)n * P : NULL;

        /* P0: S_n to the states (store_state, spread over P0..F5); the tiles from the prefetched rows */
        if (sn) store_state<D, 0, 2>(sn, W1b, W2b, b1s, b2s, tid);
        if (4 * tid < KB * D) {
            const int i = 4 * tid / D, c = 4 * tid % D;
            const float4 q = rope4(rc, pf.q), k = rope4(rc, pf.k), v = pf.v;
            const float e = tl * pf.lr;
            *(float4 *)&Qs[i * FD + c] = q;
            *(float4 *)&Ts[i * FD + c] = make_float4(v.x - k.x, v.y - k.y, v.z - k.z, v.w - k.w);
            *(uint2 *)&Qb[i * LD + c] = make_uint2(pack2(q.x, q.y), pack2(q.z, q.w));
            *(uint2 *)&Kb[i * LD + c] = make_uint2(pack2(k.x, k.y), pack2(k.z, k.w));
            *(uint2 *)&nKb[i * LD + c] = make_uint2(pack2(-e * k.x, -e * k.y), pack2(-e * k.z, -e * k.w));
        }
        if (tid < KB) lrs[tid] = pf.lrt;
        __syncthreads();
        if (n + 1 < nmb) tile4_load<D>(&pf, a, b, h, n + 1, tid, false);
        const float e0 = tl * lrs[g], e8 = tl * lrs[g + 8];

        /* F1: Z1 = K W1 + b1 -> X2, H;  -M1 */
        if (sn) store_state<D, 2, 3>(sn, W1b, W2b, b1s, b2s, tid);
        {
            float acc[NQ][4] = {};
            mma_row<D, false, true, NQ>(acc, Kb, LD, W1b, LF, c0, lane);
            uint32_t xp[NQ][2];
#pragma unroll
            for (int q = 0; q < NQ; q++)
#pragma unroll
                for (int hr = 0; hr < 2; hr++) {
                    const int row = g + 8 * hr, col = c0 + 8 * q + 2 * t;
                    const gelu_fast z0(acc[q][2 * hr] + b1s[col]), z1(acc[q][2 * hr + 1] + b1s[col + 1]);
                    xp[q][hr] = pack2(z0.value(), z1.value());
                    *(float2 *)&Hs[row * FF + col] = make_float2(z0.grad(), z1.grad());
                }
            store_tiles<NQ>(X2b, LF, 0, c0, xp, lane);
        }
        if (warp < 2) neg_eta_tile<D>(nM1b, NULL, Qb, Kb, LD, taus, lrs, warp, lane);
        __syncthreads();

        /* F2: Z2 = X2 W2 + b2 */
        if (sn) store_state<D, 3, 4>(sn, W1b, W2b, b1s, b2s, tid);
        if (warp < NTD) {
            float acc[4] = {};
            mma_tile_split<F, false, true>(acc, X2b, LF, 0, W2b, LD, 8 * warp, lane);
#pragma unroll
            for (int x = 0; x < 4; x++) {
                const int row = g + 8 * (x >> 1), col = 8 * warp + 2 * t + (x & 1);
                Z2s[row * FD + col] = acc[x] + b2s[col];
            }
        }
        __syncthreads();

        /* F3: G2 = LNl2grad(Z2, v - k) (fp32 in place of Z2), G2 and -e G2 in bf16 */
        if (sn) store_state<D, 4, 5>(sn, W1b, W2b, b1s, b2s, tid);
        {
            const int i = hrow;
            float gm[E], bt[E], G[E], nG[E];
            ldv<E>(gm, gms + hc);
            ldv<E>(bt, bts + hc);
            half_l2grad<D, E>(Z2s + i * FD + hc, Ts + i * FD + hc, gm, bt, lane, G);
            const float ne = -tl * lrs[i];
#pragma unroll
            for (int e = 0; e < E; e++) nG[e] = ne * G[e];
            stv<E>(Z2s + i * FD + hc, G);
            stv<E>(G2b + i * LD + hc, G);
            stv<E>(nG2b + i * LD + hc, nG);
        }
        __syncthreads();

        /* F4: G1 = (G2 W2^T) H; db1 = e^T G1, db2 = e^T G2 */
        if (sn) store_state<D, 5, 6>(sn, W1b, W2b, b1s, b2s, tid);
        {
            float acc[NQ][4] = {};
            mma_row<D, false, false, NQ>(acc, G2b, LD, W2b, LD, c0, lane);
            uint32_t gp[NQ][2];
#pragma unroll
            for (int q = 0; q < NQ; q++) {
                const int col = c0 + 8 * q + 2 * t;
                float G1[4];
#pragma unroll
                for (int x = 0; x < 4; x++) G1[x] = acc[q][x] * Hs[(g + 8 * (x >> 1)) * FF + col + (x & 1)];
                gp[q][0] = pack2(G1[0], G1[1]);
                gp[q][1] = pack2(G1[2], G1[3]);
                const float s0 = col_sum(e0 * G1[0] + e8 * G1[2]), s1 = col_sum(e0 * G1[1] + e8 * G1[3]);
                if (g == 0) { db1s[col] = s0; db1s[col + 1] = s1; }
            }
            store_tiles<NQ>(G1b, LF, 0, c0, gp, lane);
        }
        for (int c = tid; c < D; c += NT) db2s[c] = tl * sum_kb([&](int i) { return lrs[i] * Z2s[i * FD + c]; });
        __syncthreads();

        /* F5: Zb1 = Q W1 + b1 - M1 G1 -> Xb2 = gelu(Zb1); the state update; the rest of S_n */
        if (sn) store_state<D, 6>(sn, W1b, W2b, b1s, b2s, tid);
        {
            float acc[NQ][4] = {};
            mma_row<D, false, true, NQ>(acc, Qb, LD, W1b, LF, c0, lane);
            mma_row<KB, false, true, NQ>(acc, nM1b, LS, G1b, LF, c0, lane);
            uint32_t xp[NQ][2];
#pragma unroll
            for (int q = 0; q < NQ; q++)
#pragma unroll
                for (int hr = 0; hr < 2; hr++) {
                    const int col = c0 + 8 * q + 2 * t;
                    xp[q][hr] = gelu_pack2(acc[q][2 * hr] + b1s[col], acc[q][2 * hr + 1] + b1s[col + 1]);
                }
            store_tiles<NQ>(Xb2b, LF, 0, c0, xp, lane);
        }
#pragma unroll
        for (int q = 0; q < NS; q++) {
            int m0, n0;
            w1_tile<D>(warp, q, &m0, &n0);     /* W1 (d, f) += sum_k (-e_k K[k, d]) G1[k, f] */
            mma_tile<KB, true, true>(W1[q], nKb, LD, m0, G1b, LF, n0, lane);
            w2_tile<D>(warp, q, &m0, &n0);     /* W2 (f, d) += sum_k X2[k, f] (-e_k G2[k, d]) */
            mma_tile<KB, true, true>(W2[q], X2b, LF, m0, nG2b, LD, n0, lane);
        }
        __syncthreads();

        /* F6: -M2 = -eta (tril(Xb2 X2^T) + 1); the new W1 in bf16 (its last reader was F5) */
        if (warp < 2) neg_eta_tile<F>(nM2b, NULL, Xb2b, X2b, LF, taus, lrs, warp, lane);
        store_state_tiles<D, false>(W1b, W1, warp, lane);
        __syncthreads();

        /* F7: Zb2 = Xb2 W2 + b2 - M2 G2 (into Z2s) */
        if (warp < NTD) {
            float acc[4] = {};
            mma_tile<KB, false, true>(acc, nM2b, LS, 0, G2b, LD, 8 * warp, lane);
            mma_tile_split<F, false, true>(acc, Xb2b, LF, 0, W2b, LD, 8 * warp, lane);
#pragma unroll
            for (int x = 0; x < 4; x++) {
                const int row = g + 8 * (x >> 1), col = 8 * warp + 2 * t + (x & 1);
                Z2s[row * FD + col] = acc[x] + b2s[col];
            }
        }
        __syncthreads();

        /* F8: out = q + LN(Zb2); the new W2 in bf16 (last reader F7); b1, b2 */
        {
            const int i = hrow;   /* rows past the sequence's end too: the shuffles need every lane */
            float zv[E], qv[E], gm[E], bt[E], mu, rs;
            ldv<E>(zv, Z2s + i * FD + hc);
            ldv<E>(qv, Qs + i * FD + hc);
            ldv<E>(gm, gms + hc);
            ldv<E>(bt, bts + hc);
            half_stats<D, E>(zv, lane, &mu, &rs);
#pragma unroll
            for (int e = 0; e < E; e++) zv[e] = qv[e] + gm[e] * ((zv[e] - mu) * rs) + bt[e];
            const size_t gi = ((size_t)b * T + t0 + i) * C + h * D + hc;
            if (i < r) {
                if (a.z16) stv<E>((bf16 *)a.Z + gi, zv);
                else stv<E>(a.Z + gi, zv);
            }
        }
        store_state_tiles<D, true>(W2b, W2, warp, lane);
        for (int x = tid; x < F; x += NT) b1s[x] -= db1s[x];
        for (int x = tid; x < D; x += NT) b2s[x] -= db2s[x];
        __syncthreads();
    }

    /* the final state (the bf16 copies refreshed, a barrier ago) */
    if (st) store_state<D>(st + (size_t)nmb * P, W1b, W2b, b1s, b2s, tid);
}

/* ------------------------------------------------------------------------ */
/* backward (spec 8.3)                                                       */
/* ------------------------------------------------------------------------ */

/* Per mini-batch, in reverse (barriers between phases; dS' = (dW1', db1',
 * dW2', db2') in accumulator tiles and fp32 shared bias accumulators):
 *  P0 bf16 dW1', dW2' (from the accumulators) and W1, W2 (from S_n); tiles
 *  F1 Z1 -> X2;  A1, -M1      F2 Z2      F3 G2 (rows)
 *  F4 G1 = (G2 W2^T) H(Z1); update terms M1u = K dW1' + db1' (-> d eta_last,
 *     dG1init = -e M1u), dX2init = -e G2 dW2'^T
 *  U1 dK = -e G1 dW1'^T; M2u = X2 dW2' + db2' (-> d eta_last, dG2 = -e M2u)
 *     (then dW1', dW2' are dead: region R is reused)
 *  F5 Zb1 -> Xb2              F6 A2, -M2        F7 Zb2
 *  B1 LN backward of out -> dZb2 (rows)
 *  B2 dP2 = -dZb2 G2^T -> d eta, dA2; dW2 += Xb2^T dZb2
 *  B3 dZb1 = (dZb2 W2^T + dA2 X2) gelu'(Zb1)
 *  B4 dG1 = dG1init - M1^T dZb1 -> tF = dG1 H, dX2acc = dG1 GW H'(Z1) + dX2init gelu'(Z1);
 *     dP1 = -dZb1 G1^T -> d eta, dA1; dW1 += Q^T dZb1
 *  B5 dG2 += -M2^T dZb2 + tF W2; dQ = dOut + dZb1 W1^T + dA1 K; dW2 += tF^T G2
 *  B7 LNl2grad backward (rows) -> dZ2, dV, dK -= dT
 *  B8 dZ1 = dX2acc + (dA2^T Xb2 + dZ2 W2^T) gelu'(Z1); dW2 += X2^T dZ2
 *  B9 dK += dA1^T Q + dZ1 W1^T; dW1 += K^T dZ1; biases, dlr, dtau */
template <int D>
__global__ void __launch_bounds__(NT, 1) mlp_bwd_tc(ttt_inner_args a)
{
    using Dm = tcd<D>;
    constexpr int F = Dm::F, LD = Dm::LD, LF = Dm::LF, FD = Dm::FD, FF = Dm::FF, P = Dm::P;
    constexpr int NQ = Dm::NQ, NTD = Dm::NTD, NS = Dm::NS;
    extern __shared__ __align__(16) unsigned char smraw[];
    const bwd_layout<D> L;
    bf16 *W1b = (bf16 *)(smraw + L.W1b), *W2b = (bf16 *)(smraw + L.W2b);
    bf16 *X2b = (bf16 *)(smraw + L.X2b), *G1b = (bf16 *)(smraw + L.G1b);
    bf16 *Qb = (bf16 *)(smraw + L.Qb), *Kb = (bf16 *)(smraw + L.Kb), *G2b = (bf16 *)(smraw + L.G2b);
    bf16 *dZb2b = (bf16 *)(smraw + L.dZb2b);   /* dZb2, then dZ2 */
    bf16 *nM1b = (bf16 *)(smraw + L.nM1b), *nM2b = (bf16 *)(smraw + L.nM2b);
    bf16 *dA1b = (bf16 *)(smraw + L.dA1b), *dA2b = (bf16 *)(smraw + L.dA2b);
    float *Ts = (float *)(smraw + L.Ts), *dOs = (float *)(smraw + L.dOs), *Z2s = (float *)(smraw + L.Z2s);
    float *S3 = (float *)(smraw + L.S3);       /* G2, then Zb2 -> dZb2, then dZ2 */
    float *dG2s = (float *)(smraw + L.dG2s), *dKs = (float *)(smraw + L.dKs);
    float *A1s = (float *)(smraw + L.A1s), *A2s = (float *)(smraw + L.A2s), *dEs = (float *)(smraw + L.dEs);
    float *b1s = (float *)(smraw + L.b1s), *db1acc = (float *)(smraw + L.db1acc), *ddb1 = (float *)(smraw + L.ddb1);
    float *b2s = (float *)(smraw + L.b2s), *db2acc = (float *)(smraw + L.db2acc), *ddb2 = (float *)(smraw + L.ddb2);
    float *lrs = (float *)(smraw + L.lrs), *taus = (float *)(smraw + L.taus), *detaL = (float *)(smraw + L.detaL);
    float *red = (float *)(smraw + L.red);
    float *gms = (float *)(smraw + L.gms), *bts = (float *)(smraw + L.bts);   /* ttt_norm gamma, beta */
    unsigned char *R = smraw + L.R;
    bf16 *dW1b = (bf16 *)R, *dW2b = dW1b + D * LF;             /* R, phase 1 */
    float *dX2as = (float *)R;                                 /* R, phase 2 */
    bf16 *Xb2b = (bf16 *)(dX2as + KB * FF), *dZb1b = Xb2b + KB * LF, *tFb = dZb1b + KB * LF;
    float *Hx = (float *)(tFb + KB * LF);                      /* R, phase 2 */
    float *dG1is = (float *)(smraw + L.dG1is);
    bf16 *dX2ib = (bf16 *)(smraw + L.dX2ib);
    bf16 *dZ1b = (bf16 *)dG1is;

    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5, g = lane >> 2, t = lane & 3;
    const int bh = blockIdx.x, b = bh / a.H, h = bh % a.H;
    const int C = a.H * D, T = a.T, nmb = ttt_inner_nmb(T);
    const int c0 = warp * 8 * NQ;
    const float *st = a.states + (size_t)bh * (nmb + 1) * P;

    float dW1[NS][4], dW2[NS][4];   /* dW1 tiles (d, f), dW2 tiles (f, d) */
#pragma unroll
    for (int q = 0; q < NS; q++)
#pragma unroll
        for (int x = 0; x < 4; x++) dW1[q][x] = dW2[q][x] = 0.f;
    for (int x = tid; x < F; x += NT) db1acc[x] = 0.f;
    for (int x = tid; x < D; x += NT) {
        db2acc[x] = 0.f;
        gms[x] = a.gamma[h * D + x];
        bts[x] = a.beta[h * D + x];
    }
    constexpr int E = D / 16;                /* the row phases: half_row, columns hc .. hc + E - 1 */
    const int hrow = half_row(warp, lane), hc = E * (lane & 15);
    float dg_acc[E], db_acc[E];              /* the lane's columns' dgamma, dbeta */
#pragma unroll
    for (int e = 0; e < E; e++) dg_acc[e] = db_acc[e] = 0.f;
    float dtau_acc = 0.f;   /* thread tid < 16 owns dtau[tid] */

    tile4 pf;
    tile4_load<D>(&pf, a, b, h, nmb - 1, tid, true);
    /* the rotations of the thread's tile elements (4 tid < 16 D), the same every mini-batch */
    const float4 rc = rope4_coef<D>(4 * tid < KB * D ? a.rope : NULL, 4 * tid / D, 4 * tid % D);
    for (int n = nmb - 1; n >= 0; n--) {
        const int t0 = n * KB, r = min(KB, T - t0);
        const float *sn = st + (size_t)n * P;
        __syncthreads();

        /* P0 */
#pragma unroll
        for (int q = 0; q < NS; q++) {
            int m0, n0;
            w1_tile<D>(warp, q, &m0, &n0);
            *(uint32_t *)&dW1b[(m0 + g) * LF + n0 + 2 * t] = pack2(dW1[q][0], dW1[q][1]);
            *(uint32_t *)&dW1b[(m0 + g + 8) * LF + n0 + 2 * t] = pack2(dW1[q][2], dW1[q][3]);
            w2_tile<D>(warp, q, &m0, &n0);
            *(uint32_t *)&dW2b[(m0 + g) * LD + n0 + 2 * t] = pack2(dW2[q][0], dW2[q][1]);
            *(uint32_t *)&dW2b[(m0 + g + 8) * LD + n0 + 2 * t] = pack2(dW2[q][2], dW2[q][3]);
        }
        copy_bf16<D, F, LF, F>(W1b, (const bf16 *)sn, tid);   /* the bf16 W1, W2 of store_state */
        copy_bf16<F, D, LD, D>(W2b, (const bf16 *)(sn + D * F + F), tid);
        for (int x = tid; x < F; x += NT) b1s[x] = sn[D * F + x];
        for (int x = tid; x < D; x += NT) b2s[x] = sn[2 * D * F + F + x];
        if (tid == 0 && n > 0) prefetch_state_l2<D>(sn - P);
        if (4 * tid < KB * D) {   /* the tiles from the prefetched rows */
            const int i = 4 * tid / D, c = 4 * tid % D;
            const float4 q = rope4(rc, pf.q), k = rope4(rc, pf.k), v = pf.v;
            *(float4 *)&Ts[i * FD + c] = make_float4(v.x - k.x, v.y - k.y, v.z - k.z, v.w - k.w);
            *(float4 *)&dOs[i * FD + c] = pf.d;
            *(uint2 *)&Qb[i * LD + c] = make_uint2(pack2(q.x, q.y), pack2(q.z, q.w));
            *(uint2 *)&Kb[i * LD + c] = make_uint2(pack2(k.x, k.y), pack2(k.z, k.w));
        }
        if (tid < KB) {
            lrs[tid] = pf.lrt;
            taus[tid] = tau_of(a.token_idx, tid);
            detaL[tid] = 0.f;
        }
        __syncthreads();
        if (n > 0) tile4_load<D>(&pf, a, b, h, n - 1, tid, true);
        const float tl = taus[r - 1], e0 = tl * lrs[g], e8 = tl * lrs[g + 8];

        /* F1: Z1 -> X2, H (in dG1is until F4);  A1, -M1 */
        {
            float acc[NQ][4] = {};
            mma_row<D, false, true, NQ>(acc, Kb, LD, W1b, LF, c0, lane);
#pragma unroll
            for (int q = 0; q < NQ; q++)
#pragma unroll
                for (int hr = 0; hr < 2; hr++) {
                    const int row = g + 8 * hr, col = c0 + 8 * q + 2 * t;
                    const gelu_fast z0(acc[q][2 * hr] + b1s[col]), z1(acc[q][2 * hr + 1] + b1s[col + 1]);
                    *(uint32_t *)&X2b[row * LF + col] = pack2(z0.value(), z1.value());
                    *(float2 *)&dG1is[row * FF + col] = make_float2(z0.grad(), z1.grad());
                }
        }
        if (warp < 2) neg_eta_tile<D>(nM1b, A1s, Qb, Kb, LD, taus, lrs, warp, lane);
        __syncthreads();

        /* F2: Z2 = X2 W2 + b2 */
        if (warp < NTD) {
            float acc[4] = {};
            mma_tile_split<F, false, true>(acc, X2b, LF, 0, W2b, LD, 8 * warp, lane);
#pragma unroll
            for (int x = 0; x < 4; x++) {
                const int row = g + 8 * (x >> 1), col = 8 * warp + 2 * t + (x & 1);
                Z2s[row * FD + col] = acc[x] + b2s[col];
            }
        }
        __syncthreads();

        /* F3: G2 -> S3 (fp32), G2b */
        {
            float gm[E], bt[E], G[E];
            ldv<E>(gm, gms + hc);
            ldv<E>(bt, bts + hc);
            half_l2grad<D, E>(Z2s + hrow * FD + hc, Ts + hrow * FD + hc, gm, bt, lane, G);
            stv<E>(S3 + hrow * FD + hc, G);
            stv<E>(G2b + hrow * LD + hc, G);
        }
        __syncthreads();

        /* F4: G1 and the F-wide update terms */
        {
            float dl0 = 0.f, dl8 = 0.f;   /* rows g, g+8 of sum_f M1u G1 */
#pragma unroll
            for (int q = 0; q < NQ; q++) {
                const int n0 = c0 + 8 * q;
                float gw[4] = {}, m1u[4] = {};
                mma_tile<D, false, false>(gw, G2b, LD, 0, W2b, LD, n0, lane);
                mma_tile<D, false, true>(m1u, Kb, LD, 0, dW1b, LF, n0, lane);
                float u3[4] = {};
                mma_tile<D, false, false>(u3, G2b, LD, 0, dW2b, LD, n0, lane);
                float G1[4];
#pragma unroll
                for (int x = 0; x < 4; x++) {
                    const int col = n0 + 2 * t + (x & 1), o = (g + 8 * (x >> 1)) * FF + col;
                    const float e = x < 2 ? e0 : e8;
                    G1[x] = gw[x] * dG1is[o];   /* H from F1, then the slot takes dG1init */
                    const float mu = m1u[x] + db1acc[col];
                    if (x < 2) dl0 = fmaf(mu, G1[x], dl0); else dl8 = fmaf(mu, G1[x], dl8);
                    dG1is[o] = -e * mu;
                    u3[x] *= -e;
                }
                *(uint32_t *)&dX2ib[g * LF + n0 + 2 * t] = pack2(u3[0], u3[1]);
                *(uint32_t *)&dX2ib[(g + 8) * LF + n0 + 2 * t] = pack2(u3[2], u3[3]);
                *(uint32_t *)&G1b[g * LF + n0 + 2 * t] = pack2(G1[0], G1[1]);
                *(uint32_t *)&G1b[(g + 8) * LF + n0 + 2 * t] = pack2(G1[2], G1[3]);
            }
            dl0 = quad_sum(dl0);
            dl8 = quad_sum(dl8);
            if (t == 0) { atomicAdd(&detaL[g], -dl0); atomicAdd(&detaL[g + 8], -dl8); }
        }
        __syncthreads();   /* G1 complete */

        /* U1: dK = -e G1 dW1'^T;  M2u = X2 dW2' + db2' -> d eta_last, dG2 = -e M2u */
        {
            auto dk_out = [&](int n0, const float *acc) {
#pragma unroll
                for (int x = 0; x < 4; x++)
                    dKs[(g + 8 * (x >> 1)) * FD + n0 + 2 * t + (x & 1)] = -(x < 2 ? e0 : e8) * acc[x];
            };
            auto m2u_out = [&](int n0, const float *acc) {
                float dl0 = 0.f, dl8 = 0.f;
#pragma unroll
                for (int x = 0; x < 4; x++) {
                    const int row = g + 8 * (x >> 1), col = n0 + 2 * t + (x & 1);
                    const float mu = acc[x] + db2acc[col];
                    if (x < 2) dl0 = fmaf(mu, S3[row * FD + col], dl0); else dl8 = fmaf(mu, S3[row * FD + col], dl8);
                    dG2s[row * FD + col] = -(x < 2 ? e0 : e8) * mu;
                }
                dl0 = quad_sum(dl0);
                dl8 = quad_sum(dl8);
                if (t == 0) { atomicAdd(&detaL[g], -dl0); atomicAdd(&detaL[g + 8], -dl8); }
            };
            if constexpr (NTD == NW) {   /* a tile of each a warp: both chains in flight together */
                float dk[4] = {}, mu[4] = {};
                mma_tile_split<F, false, false>(dk, G1b, LF, 0, dW1b, LF, 8 * warp, lane);
                mma_tile_split<F, false, true>(mu, X2b, LF, 0, dW2b, LD, 8 * warp, lane);
                dk_out(8 * warp, dk);
                m2u_out(8 * warp, mu);
            } else {
                for (int j = warp; j < 2 * NTD; j += NW) {
                    const int n0 = 8 * (j % NTD);
                    float acc[4] = {};
                    if (j < NTD) {
                        mma_tile_split<F, false, false>(acc, G1b, LF, 0, dW1b, LF, n0, lane);
                        dk_out(n0, acc);
                    } else {
                        mma_tile_split<F, false, true>(acc, X2b, LF, 0, dW2b, LD, n0, lane);
                        m2u_out(n0, acc);
                    }
                }
            }
        }
        __syncthreads();

        /* F5 (R phase 2 begins): Zb1 -> Xb2, Hx = gelu'(Zb1) */
        {
            float acc[NQ][4] = {};
            mma_row<D, false, true, NQ>(acc, Qb, LD, W1b, LF, c0, lane);
            mma_row<KB, false, true, NQ>(acc, nM1b, LS, G1b, LF, c0, lane);
#pragma unroll
            for (int q = 0; q < NQ; q++)
#pragma unroll
                for (int hr = 0; hr < 2; hr++) {
                    const int row = g + 8 * hr, col = c0 + 8 * q + 2 * t;
                    const gelu_fast z0(acc[q][2 * hr] + b1s[col]), z1(acc[q][2 * hr + 1] + b1s[col + 1]);
                    *(uint32_t *)&Xb2b[row * LF + col] = pack2(z0.value(), z1.value());
                    *(float2 *)&Hx[row * FF + col] = make_float2(z0.grad(), z1.grad());
                }
        }
        __syncthreads();

        /* F6: A2, -M2 */
        if (warp < 2) neg_eta_tile<F>(nM2b, A2s, Xb2b, X2b, LF, taus, lrs, warp, lane);
        __syncthreads();

        /* F7: Zb2 -> S3 */
        if (warp < NTD) {
            float acc[4] = {};
            mma_tile<KB, false, true>(acc, nM2b, LS, 0, G2b, LD, 8 * warp, lane);
            mma_tile_split<F, false, true>(acc, Xb2b, LF, 0, W2b, LD, 8 * warp, lane);
#pragma unroll
            for (int x = 0; x < 4; x++) {
                const int row = g + 8 * (x >> 1), col = 8 * warp + 2 * t + (x & 1);
                S3[row * FD + col] = acc[x] + b2s[col];
            }
        }
        __syncthreads();

        /* B1: out = q + LN(Zb2): dZb2 (in place of Zb2, and bf16), dgamma, dbeta */
        {
            const int i = hrow;
            float zv[E], dy[E], gm[E], dz[E];
            ldv<E>(zv, S3 + i * FD + hc);
            ldv<E>(dy, dOs + i * FD + hc);
            ldv<E>(gm, gms + hc);
            half_ln_bwd<D, E>(zv, dy, gm, lane, dg_acc, db_acc, dz);
            stv<E>(S3 + i * FD + hc, dz);
            stv<E>(dZb2b + i * LD + hc, dz);
        }
        __syncthreads();

        /* B2: dP2 = -dZb2 G2^T -> d eta (=), dA2;  dW2 += Xb2^T dZb2;  db2 part */
        if (warp < 2) {
            float p[4] = {};
            mma_tile<D, false, false>(p, dZb2b, LD, 0, G2b, LD, 8 * warp, lane);
#pragma unroll
            for (int x = 0; x < 4; x++) {
                const int i = g + 8 * (x >> 1), m = 8 * warp + 2 * t + (x & 1);
                const float pp = -p[x];
                dEs[i * KB + m] = m <= i ? pp * (A2s[i * KB + m] + 1.f) : 0.f;
                dA2b[i * LS + m] = __float2bfloat16_rn(m <= i ? pp * taus[i] * lrs[m] : 0.f);
            }
        }
#pragma unroll
        for (int q = 0; q < NS; q++) {
            int m0, n0;
            w2_tile<D>(warp, q, &m0, &n0);
            mma_tile<KB, true, true>(dW2[q], Xb2b, LF, m0, dZb2b, LD, n0, lane);
        }
        /* by warps 2.. (warps 0, 1 have the dP2 tiles) */
        for (int c = tid - 64; c >= 0 && c < D; c += NT - 64) ddb2[c] = sum_kb([&](int i) { return S3[i * FD + c]; });
        __syncthreads();

        /* B3: dZb1 = (dZb2 W2^T + dA2 X2) gelu'(Zb1) (Hx); db1 part */
#pragma unroll
        for (int q = 0; q < NQ; q++) {
            const int n0 = c0 + 8 * q;
            float dx[4] = {};
            mma_tile<D, false, false>(dx, dZb2b, LD, 0, W2b, LD, n0, lane);
            mma_tile<KB, false, true>(dx, dA2b, LS, 0, X2b, LF, n0, lane);
            float dz[4];
#pragma unroll
            for (int x = 0; x < 4; x++) dz[x] = dx[x] * Hx[(g + 8 * (x >> 1)) * FF + n0 + 2 * t + (x & 1)];
            *(uint32_t *)&dZb1b[g * LF + n0 + 2 * t] = pack2(dz[0], dz[1]);
            *(uint32_t *)&dZb1b[(g + 8) * LF + n0 + 2 * t] = pack2(dz[2], dz[3]);
            const float s0 = col_sum(dz[0] + dz[2]), s1 = col_sum(dz[1] + dz[3]);
            if (g == 0) { ddb1[n0 + 2 * t] = s0; ddb1[n0 + 2 * t + 1] = s1; }
        }
        __syncthreads();

        /* B4: dG1 -> tF, dX2acc;  dP1 -> d eta (+=), dA1;  dW1 += Q^T dZb1 */
#pragma unroll
        for (int q = 0; q < NQ; q++) {
            const int n0 = c0 + 8 * q;
            float z1[4] = {}, gw[4] = {}, dg[4] = {};
            mma_tile<D, false, true>(z1, Kb, LD, 0, W1b, LF, n0, lane);
            mma_tile<D, false, false>(gw, G2b, LD, 0, W2b, LD, n0, lane);
            mma_tile<KB, true, true>(dg, nM1b, LS, 0, dZb1b, LF, n0, lane);
            float tf[4];
#pragma unroll
            for (int x = 0; x < 4; x++) {
                const int o = (g + 8 * (x >> 1)) * FF + n0 + 2 * t + (x & 1);
                const gelu_fast z(z1[x] + b1s[n0 + 2 * t + (x & 1)]);
                const float d1 = dg[x] + dG1is[o], hz = z.grad();
                tf[x] = d1 * hz;
                Hx[o] = hz;   /* for B8 (B3, its last reader, is a barrier ago) */
                const float x2i = __bfloat162float(dX2ib[(g + 8 * (x >> 1)) * LF + n0 + 2 * t + (x & 1)]);
                dX2as[o] = fmaf(d1 * gw[x], z.grad2(), x2i * hz);
            }
            *(uint32_t *)&tFb[g * LF + n0 + 2 * t] = pack2(tf[0], tf[1]);
            *(uint32_t *)&tFb[(g + 8) * LF + n0 + 2 * t] = pack2(tf[2], tf[3]);
        }
        if (warp < 2) {
            float p[4] = {};
            mma_tile_split<F, false, false>(p, dZb1b, LF, 0, G1b, LF, 8 * warp, lane);
#pragma unroll
            for (int x = 0; x < 4; x++) {
                const int i = g + 8 * (x >> 1), m = 8 * warp + 2 * t + (x & 1);
                const float pp = -p[x];
                if (m <= i) dEs[i * KB + m] += pp * (A1s[i * KB + m] + 1.f);
                dA1b[i * LS + m] = __float2bfloat16_rn(m <= i ? pp * taus[i] * lrs[m] : 0.f);
            }
        }
#pragma unroll
        for (int q = 0; q < NS; q++) {
            int m0, n0;
            w1_tile<D>(warp, q, &m0, &n0);
            mma_tile<KB, true, true>(dW1[q], Qb, LD, m0, dZb1b, LF, n0, lane);
        }
        __syncthreads();

        /* B5: dG2 += -M2^T dZb2 + tF W2;  dQ = dOut + dZb1 W1^T + dA1 K;  dW2 += tF^T G2 */
        {
            auto dg2_mma = [&](int n0, float *acc) {
                mma_tile<KB, true, true>(acc, nM2b, LS, 0, dZb2b, LD, n0, lane);
                mma_tile_split<F, false, true>(acc, tFb, LF, 0, W2b, LD, n0, lane);
            };
            auto dq_mma = [&](int n0, float *acc) {
                mma_tile<KB, false, true>(acc, dA1b, LS, 0, Kb, LD, n0, lane);
                mma_tile_split<F, false, false>(acc, dZb1b, LF, 0, W1b, LF, n0, lane);
            };
            auto dg2_out = [&](int n0, const float *acc) {
#pragma unroll
                for (int x = 0; x < 4; x++) dG2s[(g + 8 * (x >> 1)) * FD + n0 + 2 * t + (x & 1)] += acc[x];
            };
            auto dq_out = [&](int n0, const float *acc) {
#pragma unroll
                for (int hr = 0; hr < 2; hr++) {
                    const int i = g + 8 * hr, c = n0 + 2 * t;
                    if (i >= r) continue;
                    store_grad2(a.dXQ, a.dqk16, ((size_t)b * T + t0 + i) * C + h * D + c, rope_pair<D>(
                        a.rope, i, c,
                        make_float2(dOs[i * FD + c] + acc[2 * hr], dOs[i * FD + c + 1] + acc[2 * hr + 1]), -1.f));
                }
            };
            if constexpr (NTD == NW) {   /* as U1 */
                float dg[4] = {}, dq[4] = {};
                dg2_mma(8 * warp, dg);
                dq_mma(8 * warp, dq);
                dg2_out(8 * warp, dg);
                dq_out(8 * warp, dq);
            } else {
                for (int j = warp; j < 2 * NTD; j += NW) {
                    const int n0 = 8 * (j % NTD);
                    float acc[4] = {};
                    if (j < NTD) {
                        dg2_mma(n0, acc);
                        dg2_out(n0, acc);
                    } else {
                        dq_mma(n0, acc);
                        dq_out(n0, acc);
                    }
                }
            }
        }
#pragma unroll
        for (int q = 0; q < NS; q++) {
            int m0, n0;
            w2_tile<D>(warp, q, &m0, &n0);
            mma_tile<KB, true, true>(dW2[q], tFb, LF, m0, G2b, LD, n0, lane);
        }
        __syncthreads();

        /* B7: G2 = LNl2grad(Z2, V - K) backward: dZ2 (S3 and bf16), dV, dK -= dT, dgamma, dbeta */
        {
            const int i = hrow;   /* rows past the sequence's end too: the shuffles need every lane */
            float zv[E], tg[E], dG[E], gm[E], bt[E], zh[E], gy[E], rs, mgy, m, sdG = 0.f, sdGz = 0.f;
            ldv<E>(zv, Z2s + i * FD + hc);
            ldv<E>(tg, Ts + i * FD + hc);
            ldv<E>(dG, dG2s + i * FD + hc);
            ldv<E>(gm, gms + hc);
            ldv<E>(bt, bts + hc);
            half_l2grad_y<D, E>(zv, tg, gm, bt, lane, zh, gy, &rs, &mgy, &m);
#pragma unroll
            for (int e = 0; e < E; e++) {
                sdG += dG[e];
                sdGz += dG[e] * zh[e];
            }
            half_sum2(&sdG, &sdGz);
            const float mdG = sdG / D, mdGz = sdGz / D;
            float sdGG = 0.f, sdzz = 0.f, dzh[E], dv[E], dk[E];
            ldv<E>(dk, dKs + i * FD + hc);
#pragma unroll
            for (int e = 0; e < E; e++) {
                const float G = (gy[e] - mgy - zh[e] * m) * rs;
                sdGG += dG[e] * G;
                const float dgy = (dG[e] - mdG - zh[e] * mdGz) * rs, y = gm[e] * zh[e] + bt[e];
                dzh[e] = -(m * dG[e] + mdGz * gy[e]) * rs + gm[e] * gm[e] * dgy;
                sdzz += dzh[e] * zh[e];
                dg_acc[e] += dgy * (y - tg[e] + gm[e] * zh[e]);
                db_acc[e] += gm[e] * dgy;
                dv[e] = -gm[e] * dgy;
                dk[e] += gm[e] * dgy;
            }
            stv<E>(dKs + i * FD + hc, dk);
            if (i < r) {
                const size_t gi = ((size_t)b * T + t0 + i) * C + h * D + hc;
                if (a.dv16) stv<E>((bf16 *)a.dXV + gi, dv);
                else stv<E>(a.dXV + gi, dv);
            }
            half_sum2(&sdGG, &sdzz);
            const float dsig = -(sdGG + sdzz) * rs;
            float dc[E], sdc = 0.f;
#pragma unroll
            for (int e = 0; e < E; e++) {
                dc[e] = dzh[e] * rs + dsig * zh[e] / D;
                sdc += dc[e];
            }
            const float mdc = half_sum(sdc) / D;
#pragma unroll
            for (int e = 0; e < E; e++) dc[e] -= mdc;
            stv<E>(S3 + i * FD + hc, dc);
            stv<E>(dZb2b + i * LD + hc, dc);
        }
        __syncthreads();

        /* B8: dZ1 = dX2acc + (dA2^T Xb2 + dZ2 W2^T) gelu'(Z1);  dW2 += X2^T dZ2;  db parts */
#pragma unroll
        for (int q = 0; q < NQ; q++) {
            const int n0 = c0 + 8 * q;
            float dx[4] = {};
            mma_tile<KB, true, true>(dx, dA2b, LS, 0, Xb2b, LF, n0, lane);
            mma_tile<D, false, false>(dx, dZb2b, LD, 0, W2b, LD, n0, lane);
            float dz[4];
#pragma unroll
            for (int x = 0; x < 4; x++) {
                const int o = (g + 8 * (x >> 1)) * FF + n0 + 2 * t + (x & 1);
                dz[x] = fmaf(dx[x], Hx[o], dX2as[o]);   /* Hx: gelu'(Z1) from B4 */
            }
            *(uint32_t *)&dZ1b[g * LF + n0 + 2 * t] = pack2(dz[0], dz[1]);
            *(uint32_t *)&dZ1b[(g + 8) * LF + n0 + 2 * t] = pack2(dz[2], dz[3]);
            const float s0 = col_sum(dz[0] + dz[2]), s1 = col_sum(dz[1] + dz[3]);
            if (g == 0) { ddb1[n0 + 2 * t] += s0; ddb1[n0 + 2 * t + 1] += s1; }
        }
#pragma unroll
        for (int q = 0; q < NS; q++) {
            int m0, n0;
            w2_tile<D>(warp, q, &m0, &n0);
            mma_tile<KB, true, true>(dW2[q], X2b, LF, m0, dZb2b, LD, n0, lane);
        }
        for (int c = tid; c < D; c += NT) ddb2[c] += sum_kb([&](int i) { return S3[i * FD + c]; });
        __syncthreads();

        /* B9: dK += dA1^T Q + dZ1 W1^T;  dW1 += K^T dZ1;  biases, dlr, dtau */
        if (warp < NTD) {
            const int n0 = 8 * warp;
            float acc[4] = {};
            mma_tile<KB, true, true>(acc, dA1b, LS, 0, Qb, LD, n0, lane);
            mma_tile_split<F, false, false>(acc, dZ1b, LF, 0, W1b, LF, n0, lane);
#pragma unroll
            for (int hr = 0; hr < 2; hr++) {
                const int i = g + 8 * hr, c = n0 + 2 * t;
                if (i >= r) continue;
                store_grad2(a.dXK, a.dqk16, ((size_t)b * T + t0 + i) * C + h * D + c, rope_pair<D>(
                    a.rope, i, c,
                    make_float2(dKs[i * FD + c] + acc[2 * hr], dKs[i * FD + c + 1] + acc[2 * hr + 1]), -1.f));
            }
        }
#pragma unroll
        for (int q = 0; q < NS; q++) {
            int m0, n0;
            w1_tile<D>(warp, q, &m0, &n0);
            mma_tile<KB, true, true>(dW1[q], Kb, LD, m0, dZ1b, LF, n0, lane);
        }
        for (int x = tid; x < F; x += NT) db1acc[x] += ddb1[x];
        for (int x = tid; x < D; x += NT) db2acc[x] += ddb2[x];
        if (tid < KB) {
            /* dtau_i = sum_j deta_ij lr_j (+ the last row's update term) */
            const int i = tid;
            float s2 = sum_kb([&](int m) { return dEs[i * KB + m] * lrs[m]; });
            if (i == r - 1) s2 += sum_kb([&](int m) { return detaL[m] * lrs[m]; });
            if (i < r) dtau_acc += s2;
        } else if (tid >= 32 && tid < 32 + KB) {   /* another warp: the two run side by side */
            /* eta_ij = tau_i lr_j: dlr_j = sum_i deta_ij tau_i (+ the last row's update term) */
            const int j = tid - 32;
            const float s = fmaf(detaL[j], tl, sum_kb([&](int i) { return dEs[i * KB + j] * taus[i]; }));
            if (j < r) a.dlr[((size_t)b * T + t0 + j) * a.H + h] = s;
        }
    }
    __syncthreads();
    /* dW0, db0, dW20, db20, dgamma, dbeta, dtau: one atomic per element per block */
#pragma unroll
    for (int q = 0; q < NS; q++) {
        int m0, n0;
        w1_tile<D>(warp, q, &m0, &n0);
#pragma unroll
        for (int x = 0; x < 4; x++)
            atomicAdd(&a.dW0[(size_t)h * D * F + (m0 + g + 8 * (x >> 1)) * F + n0 + 2 * t + (x & 1)], dW1[q][x]);
        w2_tile<D>(warp, q, &m0, &n0);
#pragma unroll
        for (int x = 0; x < 4; x++)
            atomicAdd(&a.dW20[(size_t)h * F * D + (m0 + g + 8 * (x >> 1)) * D + n0 + 2 * t + (x & 1)], dW2[q][x]);
    }
    for (int x = tid; x < F; x += NT) atomicAdd(&a.db0[h * F + x], db1acc[x]);
    for (int x = tid; x < D; x += NT) {
        atomicAdd(&a.db20[h * D + x], db2acc[x]);
        red[x] = 0.f;
        red[D + x] = 0.f;
    }
    flush_norm_grads_at<D, E>(red, dg_acc, db_acc, hc, 1, dtau_acc, a.dgamma + h * D, a.dbeta + h * D, a.dtau, tid, NT);
}

#ifndef TTT_CUDA_EMU
template <int D> cudaError_t launch(const ttt_inner_args *a, cudaStream_t s, int fwd)
{
    return fwd ? ttt_inner_launch(mlp_fwd_tc<D>, NT, fwd_layout<D>().total, a, s)
               : ttt_inner_launch(mlp_bwd_tc<D>, NT, bwd_layout<D>().total, a, s);
}

cudaError_t dispatch(const ttt_inner_args *a, cudaStream_t s, int fwd)
{
    if (a->F != 4 * a->D) return cudaErrorInvalidValue;
    switch (a->D) {
    case 16: return launch<16>(a, s, fwd);
    case 32: return launch<32>(a, s, fwd);
    case 64: return launch<64>(a, s, fwd);
    }
    return cudaErrorInvalidValue;
}

#endif
}  /* namespace */

#ifndef TTT_CUDA_EMU
cudaError_t ttt_inner_mlp_forward_tc(const ttt_inner_args *a, cudaStream_t s) { return dispatch(a, s, 1); }
cudaError_t ttt_inner_mlp_backward_tc(const ttt_inner_args *a, cudaStream_t s) { return dispatch(a, s, 0); }
#endif
