/* ttt_inner_linear.cu - fused TTT-Linear inner loop (spec sections 4-5, 8.3).
 *
 * One thread block per (sequence, head) walks the mini-batches of K=16 tokens
 * in order with the fast weights W [D,D] and b [D] resident in shared memory
 * (fp32 state, fp32 accumulation), dual form per mini-batch, partial last
 * mini-batch included. The forward stores (W,b) at every mini-batch start
 * (and the final state) for the backward, which walks the mini-batches in
 * reverse, recomputes each one from its stored start state and carries
 * dS' = (dW', db') in shared memory.
 *
 * Threads: (16/RPT)*D, RPT = rows per thread (2 for D <= 64, else 4; the
 * kernel lab tests/kernels/inner_linear_lab.cu times both). "Grid" phases
 * give thread t the column j = t % D and the RPT rows i = t/D + (16/RPT)q
 * (register blocking: each W element read once serves RPT rows); "row" phases
 * give each warp whole rows (LayerNorm-type reductions with shuffles). The
 * next mini-batch's Q/K/V(/dZ)/lr are prefetched into registers while the
 * current one computes. Tiles are always 16 rows: the rows past a partial
 * mini-batch are zero and get lr = 0, so they contribute nothing.
 *
 * Arithmetic is plain fp32 FMA (CUDA cores), not tensor cores: the fp32 mode
 * must match the float64 references to 1e-4, which bf16/tf32 MMA cannot.
 */
#include "ttt_cuda_internal.cuh"
#include "ttt_inner_rows.cuh"

#define KB TTT_CUDA_K
#define EPS TTT_INNER_EPS

/* ------------------------------------------------------------------------ */
/* forward                                                                   */
/* ------------------------------------------------------------------------ */

template <int D, int RPT>
__global__ void __launch_bounds__(KB / RPT * D) inner_fwd(ttt_inner_args a)
{
    constexpr int RG = KB / RPT, NT = RG * D, TLD = D + 4, CLD = 20, NW = NT / 32, CPL = (D + 31) / 32;
    extern __shared__ float sm[];
    float *Ws = sm;                 /* [D][D] */
    float *bs = Ws + D * D;         /* [D] */
    float *Qs = bs + D;             /* [16][TLD] */
    float *Ks = Qs + KB * TLD;
    float *Vs = Ks + KB * TLD;
    float *Zs = Vs + KB * TLD;      /* Z, then G */
    float *Ys = Zs + KB * TLD;      /* QW+b, then zbar */
    float *Cs = Ys + KB * TLD;      /* [16][CLD] eta*(A+1), masked */
    float *Kt = Cs + KB * CLD;      /* [D][16] K transposed (W update) */
    float *lrs = Kt + D * KB;       /* [16] */
    float *taus = lrs + KB;         /* [16] */

    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int bh = blockIdx.x, b = bh / a.H, h = bh % a.H;
    const int C = a.H * D, T = a.T, nmb = ttt_inner_nmb(T);
    const int jcol = tid % D, ig = tid / D;
    const float *gam = a.gamma + h * D, *bet = a.beta + h * D;
    float *st = a.states + (size_t)bh * (nmb + 1) * (D * D + D);

    for (int x = tid; x < D * D; x += NT) Ws[x] = a.W0[(size_t)h * D * D + x];
    for (int x = tid; x < D; x += NT) bs[x] = a.b0[h * D + x];
    float g_r[CPL], be_r[CPL];
#pragma unroll
    for (int u = 0; u < CPL; u++) {
        int c = lane + 32 * u;
        g_r[u] = c < D ? gam[c] : 0.f;
        be_r[u] = c < D ? bet[c] : 0.f;
    }
    __syncthreads();

    float pq[RPT], pk[RPT], pv[RPT], plr = 0.f;
#define PREFETCH(nn) do { const int t0_ = (nn) * KB, r_ = min(KB, T - t0_);                       \
        _Pragma("unroll") for (int u = 0; u < RPT; u++) {                                       \
            int x = tid + u * NT, i = x / D, c = x % D;                                         \
            size_t g = ((size_t)b * T + t0_ + i) * C + h * D + c;                               \
            pq[u] = i < r_ ? a.XQ[g] : 0.f; pk[u] = i < r_ ? a.XK[g] : 0.f;                     \
            pv[u] = i < r_ ? a.XV[g] : 0.f;                                                     \
        }                                                                                       \
        if (tid < KB) plr = tid < r_ ? a.lr[((size_t)b * T + t0_ + tid) * a.H + h] : 0.f;       \
    } while (0)
    PREFETCH(0);

    for (int n = 0; n < nmb; n++) {
        const int t0 = n * KB, r = min(KB, T - t0);
        /* P0: save the start state, load the tiles */
        float *stn = st + (size_t)n * (D * D + D);
        for (int x = tid; x < D * D; x += NT) stn[x] = Ws[x];
        for (int x = tid; x < D; x += NT) stn[D * D + x] = bs[x];
#pragma unroll
        for (int u = 0; u < RPT; u++) {
            int x = tid + u * NT, i = x / D, c = x % D;
            Qs[i * TLD + c] = pq[u]; Ks[i * TLD + c] = pk[u]; Vs[i * TLD + c] = pv[u];
            Kt[c * KB + i] = pk[u];
        }
        if (tid < KB) {
            lrs[tid] = plr;
            taus[tid] = tau_of(a.token_idx, tid);
        }
        __syncthreads();
        /* prefetch the next mini-batch into registers while this one computes */
        if (n + 1 < nmb) PREFETCH(n + 1);

        /* P1: Z = K W + b, Y = Q W + b; coefficients eta*(tril(QK^T)+1) */
        {
            float z[RPT], y[RPT];
#pragma unroll
            for (int q = 0; q < RPT; q++) z[q] = y[q] = bs[jcol];
            /* float4 along k: 4 W loads + 2*RPT vector loads per 8*RPT FMAs
             * (shared-memory bandwidth is what limits this kernel) */
#pragma unroll 4
            for (int k = 0; k < D; k += 4) {
                float w0 = Ws[k * D + jcol], w1 = Ws[(k + 1) * D + jcol];
                float w2 = Ws[(k + 2) * D + jcol], w3 = Ws[(k + 3) * D + jcol];
#pragma unroll
                for (int q = 0; q < RPT; q++) {
                    int i = ig + RG * q;
                    float4 kk = *(const float4 *)&Ks[i * TLD + k], qq = *(const float4 *)&Qs[i * TLD + k];
                    z[q] = fmaf(kk.x, w0, fmaf(kk.y, w1, fmaf(kk.z, w2, fmaf(kk.w, w3, z[q]))));
                    y[q] = fmaf(qq.x, w0, fmaf(qq.y, w1, fmaf(qq.z, w2, fmaf(qq.w, w3, y[q]))));
                }
            }
#pragma unroll
            for (int q = 0; q < RPT; q++) {
                int i = ig + RG * q;
                Zs[i * TLD + jcol] = z[q];
                Ys[i * TLD + jcol] = y[q];
            }
        }
        for (int x = tid; x < KB * KB; x += NT) {
            int i = x / KB, m = x % KB;
            float c = 0.f;
            if (m <= i) {
                float acc = 0.f;
#pragma unroll 4
                for (int k = 0; k < D; k += 4) {
                    float4 qq = *(const float4 *)&Qs[i * TLD + k], kk = *(const float4 *)&Ks[m * TLD + k];
                    acc = fmaf(qq.x, kk.x, fmaf(qq.y, kk.y, fmaf(qq.z, kk.z, fmaf(qq.w, kk.w, acc))));
                }
                c = taus[i] * lrs[m] * (acc + 1.f);
            }
            Cs[i * CLD + m] = c;
        }
        __syncthreads();

        /* P2: G = LNl2grad(Z, V - K), row-wise, in place of Z */
        for (int i = warp; i < KB; i += NW) {
            float zv[CPL], zh[CPL], gy[CPL], G[CPL], sig, mgz;
            row_load<D, CPL>(zv, Zs + i * TLD, lane);
            ln_l2grad_row<D, CPL>(zv, Vs + i * TLD, Ks + i * TLD, g_r, be_r, lane, zh, gy, G, &sig, &mgz);
#pragma unroll
            for (int u = 0; u < CPL; u++) {
                int c = lane + 32 * u;
                if (c < D) Zs[i * TLD + c] = G[u];
            }
        }
        __syncthreads();

        /* P3: zbar = Y - (eta*(A+1)) G; W -= K^T diag(e) G; b -= e^T G */
        {
            float y[RPT];
#pragma unroll
            for (int q = 0; q < RPT; q++) y[q] = Ys[(ig + RG * q) * TLD + jcol];
#pragma unroll
            for (int m = 0; m < KB; m += 4) {
                float g0 = Zs[m * TLD + jcol], g1 = Zs[(m + 1) * TLD + jcol];
                float g2 = Zs[(m + 2) * TLD + jcol], g3 = Zs[(m + 3) * TLD + jcol];
#pragma unroll
                for (int q = 0; q < RPT; q++) {
                    float4 cc = *(const float4 *)&Cs[(ig + RG * q) * CLD + m];
                    y[q] = fmaf(-cc.x, g0, fmaf(-cc.y, g1, fmaf(-cc.z, g2, fmaf(-cc.w, g3, y[q]))));
                }
            }
#pragma unroll
            for (int q = 0; q < RPT; q++) Ys[(ig + RG * q) * TLD + jcol] = y[q];

            const float tl = taus[r - 1];
            float eg[KB], sb = 0.f;
#pragma unroll
            for (int i = 0; i < KB; i++) {
                eg[i] = tl * lrs[i] * Zs[i * TLD + jcol];
                sb += eg[i];
            }
            for (int k = ig; k < D; k += RG) {
                float acc = 0.f;
#pragma unroll
                for (int i = 0; i < KB; i += 4) {
                    float4 kk = *(const float4 *)&Kt[k * KB + i];
                    acc = fmaf(kk.x, eg[i], fmaf(kk.y, eg[i + 1], fmaf(kk.z, eg[i + 2], fmaf(kk.w, eg[i + 3], acc))));
                }
                Ws[k * D + jcol] -= acc;
            }
            if (ig == 0) bs[jcol] -= sb;
        }
        __syncthreads();

        /* P4: out = q + LN(zbar) */
        for (int i = warp; i < r; i += NW) {
            float zv[CPL], mu, var;
            row_load<D, CPL>(zv, Ys + i * TLD, lane);
            row_moments<D, CPL>(zv, lane, &mu, &var);
            const float rs = rsqrtf(var + EPS);
            size_t g = ((size_t)b * T + t0 + i) * C + h * D;
#pragma unroll
            for (int u = 0; u < CPL; u++) {
                int c = lane + 32 * u;
                if (c < D) a.Z[g + c] = Qs[i * TLD + c] + g_r[u] * (zv[u] - mu) * rs + be_r[u];
            }
        }
        __syncthreads();
    }
#undef PREFETCH
    float *stn = st + (size_t)nmb * (D * D + D);
    for (int x = tid; x < D * D; x += NT) stn[x] = Ws[x];
    for (int x = tid; x < D; x += NT) stn[D * D + x] = bs[x];
}

/* ------------------------------------------------------------------------ */
/* backward (spec 8.3, TTT-Linear)                                           */
/* ------------------------------------------------------------------------ */

template <int D, int RPT>
__global__ void __launch_bounds__(KB / RPT * D) inner_bwd(ttt_inner_args a)
{
    constexpr int RG = KB / RPT, NT = RG * D, TLD = D + 4, WLD = D + 4, NW = NT / 32, CPL = (D + 31) / 32;
    constexpr int TS = KB * TLD, SS = KB * 17;
    extern __shared__ float sm[];
    float *Ws = sm;                  /* [D][WLD] state S_n */
    float *dWs = Ws + D * WLD;       /* [D][WLD] dS' then dS_n */
    float *bs = dWs + D * WLD, *dbs = bs + D;
    float *Qs = dbs + D, *Ks = Qs + TS, *Vs = Ks + TS, *dOs = Vs + TS;
    float *Zh = dOs + TS;            /* zhat of Z */
    float *Gs = Zh + TS, *GYs = Gs + TS;
    float *Ys = GYs + TS;            /* QW+b, then zbar */
    float *dZb = Ys + TS;            /* d zbar */
    float *Ms = dZb + TS;            /* K dW' + db' */
    float *dGs = Ms + TS, *dZs = dGs + TS, *dTs = dZs + TS, *dQs = dTs + TS, *dKs = dQs + TS;
    float *Qt = dKs + TS, *Kt = Qt + D * KB;   /* [D][16] transposed Q, K (dW update) */
    float *As = Kt + D * KB;         /* [16][17] tril(QK^T) */
    float *Es = As + SS;             /* eta masked */
    float *Cs = Es + SS;             /* eta*(A+1) */
    float *dEs = Cs + SS;            /* d eta */
    float *dAs = dEs + SS;
    float *lrs = dAs + SS, *taus = lrs + KB, *sigs = taus + KB, *mrow = sigs + KB, *detaL = mrow + KB;
    float *red = detaL + KB;         /* [2*D] final dgamma/dbeta reduction */

    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int bh = blockIdx.x, b = bh / a.H, h = bh % a.H;
    const int C = a.H * D, T = a.T, nmb = ttt_inner_nmb(T);
    const int jcol = tid % D, ig = tid / D;
    const float *gam = a.gamma + h * D, *bet = a.beta + h * D;
    const float *st = a.states + (size_t)bh * (nmb + 1) * (D * D + D);

    for (int x = tid; x < D * WLD; x += NT) dWs[x] = 0.f;
    for (int x = tid; x < D; x += NT) dbs[x] = 0.f;
    float g_r[CPL], be_r[CPL], dg_acc[CPL], db_acc[CPL];
#pragma unroll
    for (int u = 0; u < CPL; u++) {
        int c = lane + 32 * u;
        g_r[u] = c < D ? gam[c] : 0.f;
        be_r[u] = c < D ? bet[c] : 0.f;
        dg_acc[u] = db_acc[u] = 0.f;
    }
    float dtau_acc = 0.f;   /* thread tid < 16 owns dtau[tid] */

    float pq[RPT], pk[RPT], pv[RPT], pd[RPT], plr = 0.f;
#define PREFETCH(nn) do { const int t0_ = (nn) * KB, r_ = min(KB, T - t0_);                       \
        _Pragma("unroll") for (int u = 0; u < RPT; u++) {                                       \
            int x = tid + u * NT, i = x / D, c = x % D;                                         \
            size_t g = ((size_t)b * T + t0_ + i) * C + h * D + c;                               \
            pq[u] = i < r_ ? a.XQ[g] : 0.f; pk[u] = i < r_ ? a.XK[g] : 0.f;                     \
            pv[u] = i < r_ ? a.XV[g] : 0.f; pd[u] = i < r_ ? a.dZ[g] : 0.f;                     \
        }                                                                                       \
        if (tid < KB) plr = tid < r_ ? a.lr[((size_t)b * T + t0_ + tid) * a.H + h] : 0.f;       \
    } while (0)
    PREFETCH(nmb - 1);

    for (int n = nmb - 1; n >= 0; n--) {
        const int t0 = n * KB, r = min(KB, T - t0);
        __syncthreads();
        /* P0: load S_n and the tiles */
        const float *stn = st + (size_t)n * (D * D + D);
        for (int x = tid; x < D * D; x += NT) Ws[(x / D) * WLD + x % D] = stn[x];
        for (int x = tid; x < D; x += NT) bs[x] = stn[D * D + x];
#pragma unroll
        for (int u = 0; u < RPT; u++) {
            int x = tid + u * NT, i = x / D, c = x % D;
            Qs[i * TLD + c] = pq[u]; Ks[i * TLD + c] = pk[u]; Vs[i * TLD + c] = pv[u]; dOs[i * TLD + c] = pd[u];
            Qt[c * KB + i] = pq[u]; Kt[c * KB + i] = pk[u];
        }
        if (tid < KB) {
            lrs[tid] = plr;
            taus[tid] = tau_of(a.token_idx, tid);
        }
        __syncthreads();
        if (n > 0) PREFETCH(n - 1);
        const float tl = taus[r - 1];

        /* P1: Z, Y = QW+b, M = K dW' + db'; A, eta, coefficients */
        {
            float z[RPT], y[RPT], m[RPT];
#pragma unroll
            for (int q = 0; q < RPT; q++) { z[q] = y[q] = bs[jcol]; m[q] = dbs[jcol]; }
#pragma unroll 2
            for (int k = 0; k < D; k += 4) {
                float w[4], dw[4];
#pragma unroll
                for (int kk = 0; kk < 4; kk++) { w[kk] = Ws[(k + kk) * WLD + jcol]; dw[kk] = dWs[(k + kk) * WLD + jcol]; }
#pragma unroll
                for (int q = 0; q < RPT; q++) {
                    int i = ig + RG * q;
                    float4 k4 = *(const float4 *)&Ks[i * TLD + k], q4 = *(const float4 *)&Qs[i * TLD + k];
                    z[q] = fmaf(k4.x, w[0], fmaf(k4.y, w[1], fmaf(k4.z, w[2], fmaf(k4.w, w[3], z[q]))));
                    m[q] = fmaf(k4.x, dw[0], fmaf(k4.y, dw[1], fmaf(k4.z, dw[2], fmaf(k4.w, dw[3], m[q]))));
                    y[q] = fmaf(q4.x, w[0], fmaf(q4.y, w[1], fmaf(q4.z, w[2], fmaf(q4.w, w[3], y[q]))));
                }
            }
#pragma unroll
            for (int q = 0; q < RPT; q++) {
                int i = ig + RG * q;
                Zh[i * TLD + jcol] = z[q];
                Ys[i * TLD + jcol] = y[q];
                Ms[i * TLD + jcol] = m[q];
            }
        }
        for (int x = tid; x < KB * KB; x += NT) {
            int i = x / KB, m = x % KB;
            float A = 0.f, e = 0.f;
            if (m <= i) {
#pragma unroll 4
                for (int k = 0; k < D; k += 4) {
                    float4 q4 = *(const float4 *)&Qs[i * TLD + k], k4 = *(const float4 *)&Ks[m * TLD + k];
                    A = fmaf(q4.x, k4.x, fmaf(q4.y, k4.y, fmaf(q4.z, k4.z, fmaf(q4.w, k4.w, A))));
                }
                e = taus[i] * lrs[m];
            }
            As[i * 17 + m] = A; Es[i * 17 + m] = e; Cs[i * 17 + m] = e * (A + 1.f);
        }
        __syncthreads();

        /* P2: LNl2grad forward pieces per row: zhat, g_y, G, sigma, m */
        for (int i = warp; i < KB; i += NW) {
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
                }
            }
            if (lane == 0) { sigs[i] = sig; mrow[i] = mgz; }
        }
        __syncthreads();

        /* P3: zbar = Y - C G */
        {
            float y[RPT];
#pragma unroll
            for (int q = 0; q < RPT; q++) y[q] = Ys[(ig + RG * q) * TLD + jcol];
#pragma unroll 4
            for (int m = 0; m < KB; m++) {
                float g = Gs[m * TLD + jcol];
#pragma unroll
                for (int q = 0; q < RPT; q++) y[q] = fmaf(-Cs[(ig + RG * q) * 17 + m], g, y[q]);
            }
#pragma unroll
            for (int q = 0; q < RPT; q++) Ys[(ig + RG * q) * TLD + jcol] = y[q];
        }
        __syncthreads();

        /* P4: output LN backward: dzbar, dgamma, dbeta */
        for (int i = warp; i < KB; i += NW) {
            float zv[CPL], mu, var;
            row_load<D, CPL>(zv, Ys + i * TLD, lane);
            row_moments<D, CPL>(zv, lane, &mu, &var);
            ln_bwd_row<D, CPL>(zv, mu, rsqrtf(var + EPS), dOs + i * TLD, g_r, dg_acc, db_acc, dZb + i * TLD, lane);
        }
        __syncthreads();

        /* P5: dP, d eta, dA; dK_upd = -diag(e) G dW'^T; dG = -C^T dzbar - diag(e) M */
        for (int x = tid; x < KB * KB; x += NT) {
            int i = x / KB, m = x % KB;
            float de = 0.f, da = 0.f;
            if (m <= i) {
                float p = 0.f;
#pragma unroll 4
                for (int j = 0; j < D; j += 4) {
                    float4 d4 = *(const float4 *)&dZb[i * TLD + j], g4 = *(const float4 *)&Gs[m * TLD + j];
                    p = fmaf(d4.x, g4.x, fmaf(d4.y, g4.y, fmaf(d4.z, g4.z, fmaf(d4.w, g4.w, p))));
                }
                p = -p;
                de = p * (As[i * 17 + m] + 1.f);
                da = p * Es[i * 17 + m];
            }
            dEs[i * 17 + m] = de; dAs[i * 17 + m] = da;
        }
        {
            /* thread: column k = jcol of dK, rows ig+4q */
            float acc[RPT];
#pragma unroll
            for (int q = 0; q < RPT; q++) acc[q] = 0.f;
#pragma unroll 4
            for (int j = 0; j < D; j += 4) {
                float4 dw = *(const float4 *)&dWs[jcol * WLD + j];
#pragma unroll
                for (int q = 0; q < RPT; q++) {
                    float4 g4 = *(const float4 *)&Gs[(ig + RG * q) * TLD + j];
                    acc[q] = fmaf(g4.x, dw.x, fmaf(g4.y, dw.y, fmaf(g4.z, dw.z, fmaf(g4.w, dw.w, acc[q]))));
                }
            }
#pragma unroll
            for (int q = 0; q < RPT; q++) {
                int i = ig + RG * q;
                dKs[i * TLD + jcol] = -tl * lrs[i] * acc[q];
            }
            float dg[RPT];
#pragma unroll
            for (int q = 0; q < RPT; q++) {
                int m = ig + RG * q;
                dg[q] = -tl * lrs[m] * Ms[m * TLD + jcol];
            }
#pragma unroll 4
            for (int i = 0; i < KB; i++) {
                float dz = dZb[i * TLD + jcol];
#pragma unroll
                for (int q = 0; q < RPT; q++) dg[q] = fmaf(-Cs[i * 17 + ig + RG * q], dz, dg[q]);
            }
#pragma unroll
            for (int q = 0; q < RPT; q++) dGs[(ig + RG * q) * TLD + jcol] = dg[q];
        }
        __syncthreads();

        /* P6: dQ = dOut + dzbar W^T + dA K; dK += dA^T Q. Rows: LNl2grad
         * backward -> dZ, dT; d eta of the last row from the update. */
        {
            float dq[RPT], dk[RPT];
#pragma unroll
            for (int q = 0; q < RPT; q++) {
                int i = ig + RG * q;
                dq[q] = dOs[i * TLD + jcol];
                dk[q] = dKs[i * TLD + jcol];
            }
#pragma unroll 4
            for (int j = 0; j < D; j += 4) {
                float4 w = *(const float4 *)&Ws[jcol * WLD + j];
#pragma unroll
                for (int q = 0; q < RPT; q++) {
                    float4 d4 = *(const float4 *)&dZb[(ig + RG * q) * TLD + j];
                    dq[q] = fmaf(d4.x, w.x, fmaf(d4.y, w.y, fmaf(d4.z, w.z, fmaf(d4.w, w.w, dq[q]))));
                }
            }
#pragma unroll 4
            for (int m = 0; m < KB; m++) {
                float kk = Ks[m * TLD + jcol], qq = Qs[m * TLD + jcol];
#pragma unroll
                for (int q = 0; q < RPT; q++) {
                    int i = ig + RG * q;
                    dq[q] = fmaf(dAs[i * 17 + m], kk, dq[q]);
                    dk[q] = fmaf(dAs[m * 17 + i], qq, dk[q]);
                }
            }
#pragma unroll
            for (int q = 0; q < RPT; q++) {
                int i = ig + RG * q;
                dQs[i * TLD + jcol] = dq[q];
                dKs[i * TLD + jcol] = dk[q];
            }
        }
        for (int i = warp; i < KB; i += NW) {
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
                }
            }
        }
        __syncthreads();

        /* P7: dK += -dT + dZ W^T; dW += Q^T dzbar + K^T dZ; db; dlr, dtau; write out */
        {
            float dk[RPT];
#pragma unroll
            for (int q = 0; q < RPT; q++) {
                int i = ig + RG * q;
                dk[q] = dKs[i * TLD + jcol] - dTs[i * TLD + jcol];
            }
#pragma unroll 4
            for (int j = 0; j < D; j += 4) {
                float4 w = *(const float4 *)&Ws[jcol * WLD + j];
#pragma unroll
                for (int q = 0; q < RPT; q++) {
                    float4 d4 = *(const float4 *)&dZs[(ig + RG * q) * TLD + j];
                    dk[q] = fmaf(d4.x, w.x, fmaf(d4.y, w.y, fmaf(d4.z, w.z, fmaf(d4.w, w.w, dk[q]))));
                }
            }
#pragma unroll
            for (int q = 0; q < RPT; q++) {
                int i = ig + RG * q;
                if (i < r) {
                    size_t g = ((size_t)b * T + t0 + i) * C + h * D + jcol;
                    a.dXK[g] = dk[q];
                    a.dXQ[g] = dQs[i * TLD + jcol];
                    a.dXV[g] = dTs[i * TLD + jcol];
                }
            }
            float dzb[KB], dz[KB], sb = 0.f;
#pragma unroll
            for (int i = 0; i < KB; i++) {
                dzb[i] = dZb[i * TLD + jcol];
                dz[i] = dZs[i * TLD + jcol];
                sb += dzb[i] + dz[i];
            }
            for (int k = ig; k < D; k += RG) {
                float acc = 0.f;
#pragma unroll
                for (int i = 0; i < KB; i += 4) {
                    float4 q4 = *(const float4 *)&Qt[k * KB + i], k4 = *(const float4 *)&Kt[k * KB + i];
                    acc = fmaf(q4.x, dzb[i], fmaf(q4.y, dzb[i + 1], fmaf(q4.z, dzb[i + 2], fmaf(q4.w, dzb[i + 3], acc))));
                    acc = fmaf(k4.x, dz[i], fmaf(k4.y, dz[i + 1], fmaf(k4.z, dz[i + 2], fmaf(k4.w, dz[i + 3], acc))));
                }
                dWs[k * WLD + jcol] += acc;
            }
            if (ig == 0) dbs[jcol] += sb;
        }
        if (tid < KB) {
            /* d lr_j = sum_i deta_ij tau_i (+ last-row update term) */
            int j = tid;
            float s = 0.f;
            for (int i = 0; i < KB; i++) s = fmaf(dEs[i * 17 + j], taus[i], s);
            s = fmaf(detaL[j], tl, s);
            if (j < r) a.dlr[((size_t)b * T + t0 + j) * a.H + h] = s;
            /* d tau_i = sum_j deta_ij lr_j */
            int i = tid;
            float st2 = 0.f;
            for (int m = 0; m < KB; m++) st2 = fmaf(dEs[i * 17 + m], lrs[m], st2);
            if (i == r - 1)
                for (int m = 0; m < KB; m++) st2 = fmaf(detaL[m], lrs[m], st2);
            if (i < r) dtau_acc += st2;
        }
    }
#undef PREFETCH
    __syncthreads();
    /* dW0, db0, dgamma, dbeta, dtau: one atomic per element per block */
    for (int x = tid; x < D * D; x += NT) atomicAdd(&a.dW0[(size_t)h * D * D + x], dWs[(x / D) * WLD + x % D]);
    for (int x = tid; x < D; x += NT) { atomicAdd(&a.db0[h * D + x], dbs[x]); red[x] = 0.f; red[D + x] = 0.f; }
    flush_norm_grads<D, CPL>(red, dg_acc, db_acc, dtau_acc, a.dgamma + h * D, a.dbeta + h * D, a.dtau, tid, NT, lane);
}

/* ------------------------------------------------------------------------ */

template <int D> static size_t fwd_smem() { return sizeof(float) * (D * D + D + 5 * KB * (D + 4) + KB * 20 + D * KB + 2 * KB); }
template <int D> static size_t bwd_smem()
{
    return sizeof(float) * (2 * D * (D + 4) + 2 * D + 15 * KB * (D + 4) + 2 * D * KB + 5 * KB * 17 + 5 * KB + 2 * D);
}

#ifndef TTT_CUDA_EMU   /* host emulators (tests/unit/emu_*.cpp) run the kernels themselves */
template <int D, int RPT> static cudaError_t launch_fwd(const ttt_inner_args *a, cudaStream_t s)
{
    return ttt_inner_launch(inner_fwd<D, RPT>, KB / RPT * D, fwd_smem<D>(), a, s);
}

template <int D, int RPT> static cudaError_t launch_bwd(const ttt_inner_args *a, cudaStream_t s)
{
    return ttt_inner_launch(inner_bwd<D, RPT>, KB / RPT * D, bwd_smem<D>(), a, s);
}

#endif

int ttt_inner_linear_supported(int D) { return D == 16 || D == 32 || D == 64 || D == 96; }

#ifndef TTT_CUDA_EMU
/* Rows per thread: 4 (4*D threads) everywhere; 2 (8*D threads) for D <= 64
 * when asked (rpt = 2). The kernel lab times both. */
static int pick_rpt(const ttt_inner_args *a, int fwd)
{
    int r = a->rpt ? a->rpt : (fwd ? TTT_INNER_RPT_FWD : TTT_INNER_RPT_BWD);
    return (r == 2 && a->D <= 64) ? 2 : 4;
}

#define DISPATCH(fn, fwd)                                                          \
    switch (a->D * 10 + pick_rpt(a, fwd)) {                                        \
    case 164: return fn<16, 4>(a, s);                                              \
    case 162: return fn<16, 2>(a, s);                                              \
    case 324: return fn<32, 4>(a, s);                                              \
    case 322: return fn<32, 2>(a, s);                                              \
    case 644: return fn<64, 4>(a, s);                                              \
    case 642: return fn<64, 2>(a, s);                                              \
    case 964: return fn<96, 4>(a, s);                                              \
    }                                                                              \
    return cudaErrorInvalidValue;

cudaError_t ttt_inner_linear_forward(const ttt_inner_args *a, cudaStream_t s)
{
    if ((!a->states || a->z16) && !a->tc) return cudaErrorInvalidValue;   /* tc only: no states, bf16 Z */
    if (a->tc) return ttt_inner_linear_forward_tc(a, s);
    DISPATCH(launch_fwd, 1)
}
cudaError_t ttt_inner_linear_backward(const ttt_inner_args *a, cudaStream_t s)
{
    if (!a->states) return cudaErrorInvalidValue;
    if (a->tc) return ttt_inner_linear_backward_tc(a, s);
    DISPATCH(launch_bwd, 0)
}
#endif
