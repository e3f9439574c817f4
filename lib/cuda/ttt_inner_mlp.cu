/* ttt_inner_mlp.cu - fused TTT-MLP inner loop (spec sections 3-5, 8.3).
 *
 * One thread block per (sequence, head) walks the mini-batches of K=16
 * tokens. The fast weights (W1 [D,F], b1 [F], W2 [F,D], b2 [D], F = 4D, fp32)
 * live in the states array in global memory, one block of P = 2DF+F+D floats
 * per mini-batch boundary: the forward reads S_n there and writes S_{n+1}
 * next to it (so every boundary state the backward needs is stored as a side
 * effect); at D=64 the two matrices are 128 KiB, too much to keep in shared
 * memory next to the backward's tiles, and a block's working set (S_n plus
 * dS) stays in L2. The per-mini-batch tiles (Q, K, V, Z1, X2, G1, ...; 16
 * rows each, padded by one column against bank conflicts) live in shared
 * memory. The backward walks the mini-batches in reverse, recomputes each
 * one from its stored S_n and carries dS' in a per-block global scratch.
 *
 * Dual form exactly as spec 5 (same operation order as lib/layers/ttt_mlp.c):
 * the inner gradient uses gelu' with the truncated constants of spec 3, the
 * outer backward differentiates that expression (H') and the forward gelu
 * exactly. Tiles are always 16 rows: rows past a partial last mini-batch
 * are zero and get lr = 0, so they contribute nothing.
 *
 * Arithmetic is plain fp32 FMA (CUDA cores): the fp32 mode must match the
 * float64 references to 1e-4. The products go through one block-wide
 * helper (mm) that gives each thread 4 rows x 1 column of the output.
 */
#include "ttt_cuda_internal.cuh"
#include "ttt_inner_rows.cuh"
#include "gelu.cuh"

#define KB TTT_CUDA_K
#define EPS TTT_INNER_EPS
#define AL 17            /* row stride of the 16x16 tiles */
#define MLP_NT 512       /* threads per block */

namespace {


/* Block-wide product, no barrier inside:
 *   C[i,j] = alpha * sum_k A(i,k) B(k,j) + beta * Cin[i,j] (+ bias[j])
 * for i < M (a multiple of 4), j < N; A(i,k) = A[i*ai + k*ak],
 * B(k,j) = B[k*bk + j*bj] (strides express transposes); C and Cin share
 * the row stride ldc and may be the same array (each element is read and
 * written by one thread). Any pointer may be shared or global. */
__device__ __forceinline__ void mm(float *C, int ldc, const float *Cin, const float *A, int ai, int ak,
                                   const float *B, int bk, int bj, int M, int N, int K, float alpha, float beta,
                                   const float *bias)
{
    const int items = (M >> 2) * N;
    for (int x = threadIdx.x; x < items; x += blockDim.x) {
        const int j = x % N, i0 = (x / N) << 2;
        const float *a = A + (size_t)i0 * ai, *b = B + (size_t)j * bj;
        float c0 = 0.f, c1 = 0.f, c2 = 0.f, c3 = 0.f;
#pragma unroll 4
        for (int k = 0; k < K; k++) {
            const float bv = b[(size_t)k * bk];
            const float *ak_ = a + (size_t)k * ak;
            c0 = fmaf(ak_[0], bv, c0);
            c1 = fmaf(ak_[ai], bv, c1);
            c2 = fmaf(ak_[2 * ai], bv, c2);
            c3 = fmaf(ak_[3 * ai], bv, c3);
        }
        const float cc[4] = {c0, c1, c2, c3};
        const float bb = bias ? bias[j] : 0.f;
#pragma unroll
        for (int q = 0; q < 4; q++) {
            size_t idx = (size_t)(i0 + q) * ldc + j;
            float v = alpha * cc[q] + bb;
            if (beta != 0.f) v = fmaf(beta, Cin[idx], v);
            C[idx] = v;
        }
    }
}

/* out[c] (=, or += when acc) sum_k w_k X[k,c] over the 16 tile rows (column sums, optionally weighted) */
__device__ __forceinline__ void colsum(float *out, const float *X, int ld, int N, const float *w, float sign)
{
    for (int c = threadIdx.x; c < N; c += blockDim.x) {
        float s = 0.f;
#pragma unroll
        for (int k = 0; k < KB; k++) s = fmaf(w ? w[k] : 1.f, X[k * ld + c], s);
        out[c] += sign * s;
    }
}

/* G2 = LNl2grad(Z2, V - K) row by row (one warp a row; G2 may be Z2):
 * G = (g_y - mean(g_y) - zhat mean(g_y zhat)) / sigma. */
template <int D>
__device__ __forceinline__ void ln_l2grad_rows(float *G2, const float *Z2, const float *Vs, const float *Ks,
                                               const float *g_r, const float *be_r, int warp, int lane)
{
    constexpr int TD = D + 1, NW = MLP_NT / 32, CPL = (D + 31) / 32;
    for (int i = warp; i < KB; i += NW) {
        float zv[CPL], mu, sig;
        row_load<D, CPL>(zv, Z2 + i * TD, lane);
        row_stats<D, CPL>(zv, lane, &mu, &sig);
        float zh[CPL], gy[CPL], mg, mgz;
#pragma unroll
        for (int u = 0; u < CPL; u++) {
            int c = lane + 32 * u;
            zh[u] = c < D ? (zv[u] - mu) / sig : 0.f;
        }
        l2_grad_y<D, CPL>(zh, Vs + i * TD, Ks + i * TD, g_r, be_r, lane, gy, &mg, &mgz);
#pragma unroll
        for (int u = 0; u < CPL; u++) {
            int c = lane + 32 * u;
            if (c < D) G2[i * TD + c] = (gy[u] - mg - zh[u] * mgz) / sig;
        }
    }
}

/* ------------------------------------------------------------------------ */
/* forward                                                                   */
/* ------------------------------------------------------------------------ */

template <int D>
struct mlp_dims {
    static constexpr int F = 4 * D, TD = D + 1, TF = F + 1, CPL = (D + 31) / 32;
    static constexpr int P = 2 * D * F + F + D;
};

template <int D>
__global__ void __launch_bounds__(MLP_NT) mlp_fwd(ttt_inner_args a)
{
    using Dm = mlp_dims<D>;
    constexpr int F = Dm::F, TD = Dm::TD, TF = Dm::TF, CPL = Dm::CPL, P = Dm::P, NW = MLP_NT / 32;
    extern __shared__ float sm[];
    float *Qs = sm, *Ks = Qs + KB * TD, *Vs = Ks + KB * TD;
    float *G2s = Vs + KB * TD;        /* Z2, then G2 */
    float *Zb2s = G2s + KB * TD;
    float *Kes = Zb2s + KB * TD;      /* e_k K[k,:] */
    float *G2es = Kes + KB * TD;      /* e_k G2[k,:] */
    float *Z1s = G2es + KB * TD, *X2s = Z1s + KB * TF;
    float *G1s = X2s + KB * TF;       /* G2 W2^T, then G1 */
    float *Xb2s = G1s + KB * TF;      /* Zb1, then Xb2 */
    float *M1s = Xb2s + KB * TF, *M2s = M1s + KB * AL;   /* A, then eta*(A+1) masked */
    float *lrs = M2s + KB * AL, *taus = lrs + KB;

    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int bh = blockIdx.x, b = bh / a.H, h = bh % a.H;
    const int C = a.H * D, T = a.T, nmb = ttt_inner_nmb(T);
    const float *gam = a.gamma + h * D, *bet = a.beta + h * D;
    float *st = a.states + (size_t)bh * (nmb + 1) * P;

    /* S_0 = the head's initial state */
    for (int x = tid; x < D * F; x += MLP_NT) {
        st[x] = a.W0[(size_t)h * D * F + x];
        st[D * F + F + x] = a.W20[(size_t)h * F * D + x];
    }
    for (int x = tid; x < F; x += MLP_NT) st[D * F + x] = a.b0[h * F + x];
    for (int x = tid; x < D; x += MLP_NT) st[2 * D * F + F + x] = a.b20[h * D + x];
    float g_r[CPL], be_r[CPL];
#pragma unroll
    for (int u = 0; u < CPL; u++) {
        int c = lane + 32 * u;
        g_r[u] = c < D ? gam[c] : 0.f;
        be_r[u] = c < D ? bet[c] : 0.f;
    }
    __syncthreads();

    for (int n = 0; n < nmb; n++) {
        const int t0 = n * KB, r = min(KB, T - t0);
        const float *W1 = st + (size_t)n * P, *b1 = W1 + D * F, *W2 = b1 + F, *b2 = W2 + F * D;
        float *W1n = st + (size_t)(n + 1) * P, *b1n = W1n + D * F, *W2n = b1n + F, *b2n = W2n + F * D;
        for (int x = tid; x < KB * D; x += MLP_NT) {
            int i = x / D, c = x % D;
            size_t g = ((size_t)b * T + t0 + i) * C + h * D + c;
            Qs[i * TD + c] = i < r ? a.XQ[g] : 0.f;
            Ks[i * TD + c] = i < r ? a.XK[g] : 0.f;
            Vs[i * TD + c] = i < r ? a.XV[g] : 0.f;
        }
        if (tid < KB) {
            lrs[tid] = tid < r ? a.lr[((size_t)b * T + t0 + tid) * a.H + h] : 0.f;
            taus[tid] = tau_of(a.token_idx, tid);
        }
        __syncthreads();

        /* Z1 = K W1 + b1; Zb1 = Q W1 + b1; A1 = Q K^T */
        mm(Z1s, TF, nullptr, Ks, TD, 1, W1, F, 1, KB, F, D, 1.f, 0.f, b1);
        mm(Xb2s, TF, nullptr, Qs, TD, 1, W1, F, 1, KB, F, D, 1.f, 0.f, b1);
        mm(M1s, AL, nullptr, Qs, TD, 1, Ks, 1, TD, KB, KB, D, 1.f, 0.f, nullptr);
        __syncthreads();
        /* X2 = gelu(Z1); M1 = eta (.) (A1 + 1), lower triangle */
        for (int x = tid; x < KB * F; x += MLP_NT) {
            int i = x / F, c = x % F;
            X2s[i * TF + c] = gelu_f(Z1s[i * TF + c]);
        }
        for (int x = tid; x < KB * KB; x += MLP_NT) {
            int i = x / KB, j = x % KB;
            M1s[i * AL + j] = j <= i ? taus[i] * lrs[j] * (M1s[i * AL + j] + 1.f) : 0.f;
        }
        __syncthreads();
        /* Z2 = X2 W2 + b2 */
        mm(G2s, TD, nullptr, X2s, TF, 1, W2, D, 1, KB, D, F, 1.f, 0.f, b2);
        __syncthreads();
        /* G2 = LNl2grad(Z2, V - K), in place */
        ln_l2grad_rows<D>(G2s, G2s, Vs, Ks, g_r, be_r, warp, lane);
        __syncthreads();
        /* G1 = (G2 W2^T) (.) gelu'(Z1) */
        mm(G1s, TF, nullptr, G2s, TD, 1, W2, 1, D, KB, F, D, 1.f, 0.f, nullptr);
        __syncthreads();
        for (int x = tid; x < KB * F; x += MLP_NT) {
            int i = x / F, c = x % F;
            G1s[i * TF + c] *= gelu_tr_grad(Z1s[i * TF + c]);
        }
        __syncthreads();
        /* Zb1 -= M1 G1 */
        mm(Xb2s, TF, Xb2s, M1s, AL, 1, G1s, TF, 1, KB, F, KB, -1.f, 1.f, nullptr);
        __syncthreads();
        /* Xb2 = gelu(Zb1) */
        for (int x = tid; x < KB * F; x += MLP_NT) {
            int i = x / F, c = x % F;
            Xb2s[i * TF + c] = gelu_f(Xb2s[i * TF + c]);
        }
        __syncthreads();
        /* A2 = Xb2 X2^T; Zb2 = Xb2 W2 + b2 */
        mm(M2s, AL, nullptr, Xb2s, TF, 1, X2s, 1, TF, KB, KB, F, 1.f, 0.f, nullptr);
        mm(Zb2s, TD, nullptr, Xb2s, TF, 1, W2, D, 1, KB, D, F, 1.f, 0.f, b2);
        __syncthreads();
        /* M2 = eta (.) (A2 + 1) masked; e-scaled K and G2 for the update, e_k = tau_{r-1} lr_k */
        const float tl = taus[r - 1];
        for (int x = tid; x < KB * KB; x += MLP_NT) {
            int i = x / KB, j = x % KB;
            M2s[i * AL + j] = j <= i ? taus[i] * lrs[j] * (M2s[i * AL + j] + 1.f) : 0.f;
        }
        for (int x = tid; x < KB * D; x += MLP_NT) {
            int k = x / D, c = x % D;
            float e = tl * lrs[k];
            Kes[k * TD + c] = e * Ks[k * TD + c];
            G2es[k * TD + c] = e * G2s[k * TD + c];
        }
        __syncthreads();
        /* Zb2 -= M2 G2;  W1' = W1 - K^T diag(e) G1;  W2' = W2 - X2^T diag(e) G2;
         * b1' = b1 - e^T G1;  b2' = b2 - e^T G2 */
        mm(Zb2s, TD, Zb2s, M2s, AL, 1, G2s, TD, 1, KB, D, KB, -1.f, 1.f, nullptr);
        mm(W1n, F, W1, Kes, 1, TD, G1s, TF, 1, D, F, KB, -1.f, 1.f, nullptr);
        mm(W2n, D, W2, X2s, 1, TF, G2es, TD, 1, F, D, KB, -1.f, 1.f, nullptr);
        for (int c = tid; c < F; c += MLP_NT) {
            float s = 0.f;
#pragma unroll
            for (int k = 0; k < KB; k++) s = fmaf(tl * lrs[k], G1s[k * TF + c], s);
            b1n[c] = b1[c] - s;
        }
        for (int c = tid; c < D; c += MLP_NT) {
            float s = 0.f;
#pragma unroll
            for (int k = 0; k < KB; k++) s += G2es[k * TD + c];
            b2n[c] = b2[c] - s;
        }
        __syncthreads();
        /* out = q + LN(Zb2) */
        for (int i = warp; i < r; i += NW) {
            float zv[CPL], mu, sig;
            row_load<D, CPL>(zv, Zb2s + i * TD, lane);
            row_stats<D, CPL>(zv, lane, &mu, &sig);
            size_t g = ((size_t)b * T + t0 + i) * C + h * D;
#pragma unroll
            for (int u = 0; u < CPL; u++) {
                int c = lane + 32 * u;
                if (c < D) a.Z[g + c] = Qs[i * TD + c] + g_r[u] * ((zv[u] - mu) / sig) + be_r[u];
            }
        }
        __syncthreads();
    }
}

/* ------------------------------------------------------------------------ */
/* backward (spec 8.3, TTT-MLP)                                              */
/* ------------------------------------------------------------------------ */

/* deta += dM (.) (A + 1) and dM <- dM (.) eta, lower triangle (dM = 0 above) */
__device__ __forceinline__ void attn_bwd(float *deta, float *dM, const float *A, const float *taus, const float *lrs)
{
    for (int x = threadIdx.x; x < KB * KB; x += blockDim.x) {
        int i = x / KB, j = x % KB;
        if (j > i) { dM[i * AL + j] = 0.f; continue; }
        float dm = dM[i * AL + j];
        deta[i * AL + j] += dm * (A[i * AL + j] + 1.f);
        dM[i * AL + j] = dm * taus[i] * lrs[j];
    }
}

template <int D>
__global__ void __launch_bounds__(MLP_NT) mlp_bwd(ttt_inner_args a)
{
    using Dm = mlp_dims<D>;
    constexpr int F = Dm::F, TD = Dm::TD, TF = Dm::TF, CPL = Dm::CPL, P = Dm::P, NW = MLP_NT / 32;
    constexpr int SD = KB * TD, SF = KB * TF, SA = KB * AL;
    extern __shared__ float sm[];
    float *Qs = sm, *Ks = Qs + SD, *Vs = Ks + SD;
    float *dQs = Vs + SD;             /* dOut, then dQ */
    float *Z2s = dQs + SD, *G2s = Z2s + SD, *Zb2s = G2s + SD, *dG2s = Zb2s + SD, *dZb2s = dG2s + SD;
    float *dZ2s = dZb2s + SD, *dKs = dZ2s + SD, *dVs = dKs + SD;
    float *Z1s = dVs + SD, *X2s = Z1s + SF;
    float *GWs = X2s + SF;            /* G2 W2^T, then dZ1 */
    float *G1s = GWs + SF, *Zb1s = G1s + SF, *Xb2s = Zb1s + SF;
    float *dG1s = Xb2s + SF;          /* dG1, then dG1 (.) gelu'(Z1) */
    float *dX2s = dG1s + SF;
    float *dXb2s = dX2s + SF;         /* dXb2, then dZb1 */
    float *A1s = dXb2s + SF, *M1s = A1s + SA, *A2s = M1s + SA, *M2s = A2s + SA, *dMs = M2s + SA, *dEs = dMs + SA;
    float *lrs = dEs + SA, *taus = lrs + KB, *red = taus + KB;   /* red: [2*D] */

    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int bh = blockIdx.x, b = bh / a.H, h = bh % a.H;
    const int C = a.H * D, T = a.T, nmb = ttt_inner_nmb(T);
    const float *gam = a.gamma + h * D, *bet = a.beta + h * D;
    const float *st = a.states + (size_t)bh * (nmb + 1) * P;
    float *dW1 = a.dS + (size_t)bh * P, *db1 = dW1 + D * F, *dW2 = db1 + F, *db2 = dW2 + F * D;

    for (int x = tid; x < P; x += MLP_NT) dW1[x] = 0.f;
    float g_r[CPL], be_r[CPL], dg_acc[CPL], db_acc[CPL];
#pragma unroll
    for (int u = 0; u < CPL; u++) {
        int c = lane + 32 * u;
        g_r[u] = c < D ? gam[c] : 0.f;
        be_r[u] = c < D ? bet[c] : 0.f;
        dg_acc[u] = db_acc[u] = 0.f;
    }
    float dtau_acc = 0.f;   /* thread tid < 16 owns dtau[tid] */

    for (int n = nmb - 1; n >= 0; n--) {
        const int t0 = n * KB, r = min(KB, T - t0);
        const float *W1 = st + (size_t)n * P, *b1 = W1 + D * F, *W2 = b1 + F, *b2 = W2 + F * D;
        __syncthreads();
        for (int x = tid; x < KB * D; x += MLP_NT) {
            int i = x / D, c = x % D;
            size_t g = ((size_t)b * T + t0 + i) * C + h * D + c;
            Qs[i * TD + c] = i < r ? a.XQ[g] : 0.f;
            Ks[i * TD + c] = i < r ? a.XK[g] : 0.f;
            Vs[i * TD + c] = i < r ? a.XV[g] : 0.f;
            dQs[i * TD + c] = i < r ? a.dZ[g] : 0.f;
        }
        if (tid < KB) {
            lrs[tid] = tid < r ? a.lr[((size_t)b * T + t0 + tid) * a.H + h] : 0.f;
            taus[tid] = tau_of(a.token_idx, tid);
        }
        __syncthreads();
        const float tl = taus[r - 1];

        /* ---- recompute the forward of this mini-batch from S_n ---- */
        mm(Z1s, TF, nullptr, Ks, TD, 1, W1, F, 1, KB, F, D, 1.f, 0.f, b1);
        mm(Zb1s, TF, nullptr, Qs, TD, 1, W1, F, 1, KB, F, D, 1.f, 0.f, b1);
        mm(A1s, AL, nullptr, Qs, TD, 1, Ks, 1, TD, KB, KB, D, 1.f, 0.f, nullptr);
        __syncthreads();
        for (int x = tid; x < KB * F; x += MLP_NT) {
            int i = x / F, c = x % F;
            X2s[i * TF + c] = gelu_f(Z1s[i * TF + c]);
        }
        for (int x = tid; x < KB * KB; x += MLP_NT) {
            int i = x / KB, j = x % KB;
            M1s[i * AL + j] = j <= i ? taus[i] * lrs[j] * (A1s[i * AL + j] + 1.f) : 0.f;
        }
        __syncthreads();
        mm(Z2s, TD, nullptr, X2s, TF, 1, W2, D, 1, KB, D, F, 1.f, 0.f, b2);
        __syncthreads();
        ln_l2grad_rows<D>(G2s, Z2s, Vs, Ks, g_r, be_r, warp, lane);
        __syncthreads();
        mm(GWs, TF, nullptr, G2s, TD, 1, W2, 1, D, KB, F, D, 1.f, 0.f, nullptr);
        __syncthreads();
        for (int x = tid; x < KB * F; x += MLP_NT) {
            int i = x / F, c = x % F;
            G1s[i * TF + c] = GWs[i * TF + c] * gelu_tr_grad(Z1s[i * TF + c]);
        }
        __syncthreads();
        mm(Zb1s, TF, Zb1s, M1s, AL, 1, G1s, TF, 1, KB, F, KB, -1.f, 1.f, nullptr);
        __syncthreads();
        for (int x = tid; x < KB * F; x += MLP_NT) {
            int i = x / F, c = x % F;
            Xb2s[i * TF + c] = gelu_f(Zb1s[i * TF + c]);
        }
        __syncthreads();
        mm(A2s, AL, nullptr, Xb2s, TF, 1, X2s, 1, TF, KB, KB, F, 1.f, 0.f, nullptr);
        mm(Zb2s, TD, nullptr, Xb2s, TF, 1, W2, D, 1, KB, D, F, 1.f, 0.f, b2);
        __syncthreads();
        for (int x = tid; x < KB * KB; x += MLP_NT) {
            int i = x / KB, j = x % KB;
            M2s[i * AL + j] = j <= i ? taus[i] * lrs[j] * (A2s[i * AL + j] + 1.f) : 0.f;
            dEs[i * AL + j] = 0.f;
        }
        __syncthreads();
        /* Zb2 -= M2 G2. Update terms, reading dS' before it accumulates:
         *   dG1 = K dW1' + db1', dG2 = X2 dW2' + db2' (unscaled), dK = G1 dW1'^T, dX2 = G2 dW2'^T */
        mm(Zb2s, TD, Zb2s, M2s, AL, 1, G2s, TD, 1, KB, D, KB, -1.f, 1.f, nullptr);
        mm(dG1s, TF, nullptr, Ks, TD, 1, dW1, F, 1, KB, F, D, 1.f, 0.f, db1);
        mm(dG2s, TD, nullptr, X2s, TF, 1, dW2, D, 1, KB, D, F, 1.f, 0.f, db2);
        mm(dKs, TD, nullptr, G1s, TF, 1, dW1, 1, F, KB, D, F, 1.f, 0.f, nullptr);
        mm(dX2s, TF, nullptr, G2s, TD, 1, dW2, 1, D, KB, F, D, 1.f, 0.f, nullptr);
        __syncthreads();

        /* ---- rows: de_j of the update and the -e_j scaling; output LN backward ---- */
        for (int j = warp; j < KB; j += NW) {
            const float e = tl * lrs[j];
            float s = 0.f;
            for (int c = lane; c < F; c += 32) {
                s = fmaf(dG1s[j * TF + c], G1s[j * TF + c], s);
                dG1s[j * TF + c] *= -e;
                dX2s[j * TF + c] *= -e;
            }
            for (int c = lane; c < D; c += 32) {
                s = fmaf(dG2s[j * TD + c], G2s[j * TD + c], s);
                dG2s[j * TD + c] *= -e;
                dKs[j * TD + c] *= -e;
            }
            s = warp_sum(s);
            if (lane == 0 && j < r) dEs[(r - 1) * AL + j] -= s;

            /* out = q + LN(Zb2): dZb2, dgamma, dbeta (dQ = dOut already) */
            float zv[CPL], mu, sig;
            row_load<D, CPL>(zv, Zb2s + j * TD, lane);
            row_stats<D, CPL>(zv, lane, &mu, &sig);
            ln_bwd_row<D, CPL>(zv, mu, 1.f / sig, dQs + j * TD, g_r, dg_acc, db_acc, dZb2s + j * TD, lane);
        }
        __syncthreads();

        /* Zb2 = Xb2 W2 + 1b2 - M2 G2 */
        mm(dXb2s, TF, nullptr, dZb2s, TD, 1, W2, 1, D, KB, F, D, 1.f, 0.f, nullptr);
        mm(dW2, D, dW2, Xb2s, 1, TF, dZb2s, TD, 1, F, D, KB, 1.f, 1.f, nullptr);
        colsum(db2, dZb2s, TD, D, nullptr, 1.f);
        mm(dMs, AL, nullptr, dZb2s, TD, 1, G2s, 1, TD, KB, KB, D, -1.f, 0.f, nullptr);
        mm(dG2s, TD, dG2s, M2s, 1, AL, dZb2s, TD, 1, KB, D, KB, -1.f, 1.f, nullptr);
        __syncthreads();
        attn_bwd(dEs, dMs, A2s, taus, lrs);
        __syncthreads();
        mm(dXb2s, TF, dXb2s, dMs, AL, 1, X2s, TF, 1, KB, F, KB, 1.f, 1.f, nullptr);
        mm(dX2s, TF, dX2s, dMs, 1, AL, Xb2s, TF, 1, KB, F, KB, 1.f, 1.f, nullptr);
        __syncthreads();
        /* Xb2 = gelu(Zb1) */
        for (int x = tid; x < KB * F; x += MLP_NT) {
            int i = x / F, c = x % F;
            dXb2s[i * TF + c] *= gelu_grad_f(Zb1s[i * TF + c]);
        }
        __syncthreads();
        /* Zb1 = Q W1 + 1b1 - M1 G1 */
        mm(dQs, TD, dQs, dXb2s, TF, 1, W1, 1, F, KB, D, F, 1.f, 1.f, nullptr);
        mm(dW1, F, dW1, Qs, 1, TD, dXb2s, TF, 1, D, F, KB, 1.f, 1.f, nullptr);
        colsum(db1, dXb2s, TF, F, nullptr, 1.f);
        mm(dMs, AL, nullptr, dXb2s, TF, 1, G1s, 1, TF, KB, KB, F, -1.f, 0.f, nullptr);
        mm(dG1s, TF, dG1s, M1s, 1, AL, dXb2s, TF, 1, KB, F, KB, -1.f, 1.f, nullptr);
        __syncthreads();
        attn_bwd(dEs, dMs, A1s, taus, lrs);
        __syncthreads();
        /* dQ += dA1 K; dK += dA1^T Q.  G1 = GW (.) gelu'(Z1): tF = dG1 gelu'(Z1) (in dG1),
         * dZ1 = dG1 GW H'(Z1) (in GW) */
        mm(dQs, TD, dQs, dMs, AL, 1, Ks, TD, 1, KB, D, KB, 1.f, 1.f, nullptr);
        mm(dKs, TD, dKs, dMs, 1, AL, Qs, TD, 1, KB, D, KB, 1.f, 1.f, nullptr);
        for (int x = tid; x < KB * F; x += MLP_NT) {
            int i = x / F, c = x % F, o = i * TF + c;
            float z = Z1s[o], dg = dG1s[o];
            dG1s[o] = dg * gelu_tr_grad(z);
            GWs[o] = dg * GWs[o] * gelu_tr_grad2(z);
        }
        __syncthreads();
        /* dG2 += tF W2;  dW2 += tF^T G2 */
        mm(dG2s, TD, dG2s, dG1s, TF, 1, W2, D, 1, KB, D, F, 1.f, 1.f, nullptr);
        mm(dW2, D, dW2, dG1s, 1, TF, G2s, TD, 1, F, D, KB, 1.f, 1.f, nullptr);
        __syncthreads();
        /* G2 = LNl2grad(Z2, V - K): dZ2, dT (= dV), dgamma, dbeta; dK -= dT */
        for (int i = warp; i < KB; i += NW) {
            float zv[CPL], mu, sig;
            row_load<D, CPL>(zv, Z2s + i * TD, lane);
            row_stats<D, CPL>(zv, lane, &mu, &sig);
            float zh[CPL], gy[CPL], tg[CPL], dG[CPL], sgy = 0.f, sgyz = 0.f, sdG = 0.f, sdGz = 0.f;
#pragma unroll
            for (int u = 0; u < CPL; u++) {
                int c = lane + 32 * u;
                zh[u] = c < D ? (zv[u] - mu) / sig : 0.f;
                tg[u] = c < D ? Vs[i * TD + c] - Ks[i * TD + c] : 0.f;
                gy[u] = c < D ? g_r[u] * (g_r[u] * zh[u] + be_r[u] - tg[u]) : 0.f;
                dG[u] = c < D ? dG2s[i * TD + c] : 0.f;
                sgy += gy[u];
                sgyz += gy[u] * zh[u];
                sdG += dG[u];
                sdGz += dG[u] * zh[u];
            }
            const float mgy = warp_sum(sgy) / D, m = warp_sum(sgyz) / D;
            const float mdG = warp_sum(sdG) / D, mdGz = warp_sum(sdGz) / D;
            float sdGG = 0.f, sdzz = 0.f, dzh[CPL];
#pragma unroll
            for (int u = 0; u < CPL; u++) {
                int c = lane + 32 * u;
                float G = (gy[u] - mgy - zh[u] * m) / sig;
                sdGG += dG[u] * G;
                float dgy = c < D ? (dG[u] - mdG - zh[u] * mdGz) / sig : 0.f;
                float y = g_r[u] * zh[u] + be_r[u];
                dzh[u] = -(m * dG[u] + mdGz * gy[u]) / sig + g_r[u] * g_r[u] * dgy;
                sdzz += dzh[u] * zh[u];
                dg_acc[u] += dgy * (y - tg[u] + g_r[u] * zh[u]);
                db_acc[u] += g_r[u] * dgy;
                if (c < D) {
                    dVs[i * TD + c] = -g_r[u] * dgy;
                    dKs[i * TD + c] += g_r[u] * dgy;
                }
            }
            const float dsig = -warp_sum(sdGG) / sig - warp_sum(sdzz) / sig;
            float dc[CPL], sdc = 0.f;
#pragma unroll
            for (int u = 0; u < CPL; u++) {
                int c = lane + 32 * u;
                dc[u] = c < D ? dzh[u] / sig + dsig * zh[u] / D : 0.f;
                sdc += dc[u];
            }
            const float mdc = warp_sum(sdc) / D;
#pragma unroll
            for (int u = 0; u < CPL; u++) {
                int c = lane + 32 * u;
                if (c < D) dZ2s[i * TD + c] = dc[u] - mdc;
            }
        }
        __syncthreads();
        /* Z2 = X2 W2 + 1b2 */
        mm(dX2s, TF, dX2s, dZ2s, TD, 1, W2, 1, D, KB, F, D, 1.f, 1.f, nullptr);
        mm(dW2, D, dW2, X2s, 1, TF, dZ2s, TD, 1, F, D, KB, 1.f, 1.f, nullptr);
        colsum(db2, dZ2s, TD, D, nullptr, 1.f);
        __syncthreads();
        /* X2 = gelu(Z1) */
        for (int x = tid; x < KB * F; x += MLP_NT) {
            int i = x / F, c = x % F, o = i * TF + c;
            GWs[o] = fmaf(dX2s[o], gelu_grad_f(Z1s[o]), GWs[o]);
        }
        __syncthreads();
        /* Z1 = K W1 + 1b1 */
        mm(dKs, TD, dKs, GWs, TF, 1, W1, 1, F, KB, D, F, 1.f, 1.f, nullptr);
        mm(dW1, F, dW1, Ks, 1, TD, GWs, TF, 1, D, F, KB, 1.f, 1.f, nullptr);
        colsum(db1, GWs, TF, F, nullptr, 1.f);
        if (tid < KB) {
            /* eta_ij = tau_i lr_j: dlr_j = sum_i deta_ij tau_i, dtau_i += sum_j deta_ij lr_j */
            const int j = tid;
            float s = 0.f;
            for (int i = j; i < r; i++) s = fmaf(dEs[i * AL + j], taus[i], s);
            if (j < r) a.dlr[((size_t)b * T + t0 + j) * a.H + h] = s;
            const int i = tid;
            float s2 = 0.f;
            for (int m = 0; m <= i && m < r; m++) s2 = fmaf(dEs[i * AL + m], lrs[m], s2);
            if (i < r) dtau_acc += s2;
        }
        __syncthreads();
        for (int x = tid; x < KB * D; x += MLP_NT) {
            int i = x / D, c = x % D;
            if (i < r) {
                size_t g = ((size_t)b * T + t0 + i) * C + h * D + c;
                a.dXQ[g] = dQs[i * TD + c];
                a.dXK[g] = dKs[i * TD + c];
                a.dXV[g] = dVs[i * TD + c];
            }
        }
    }
    __syncthreads();
    /* dW0 etc.: one atomic per element per block (blocks of one head collide) */
    for (int x = tid; x < D * F; x += MLP_NT) {
        atomicAdd(&a.dW0[(size_t)h * D * F + x], dW1[x]);
        atomicAdd(&a.dW20[(size_t)h * F * D + x], dW2[x]);
    }
    for (int x = tid; x < F; x += MLP_NT) atomicAdd(&a.db0[h * F + x], db1[x]);
    for (int x = tid; x < D; x += MLP_NT) {
        atomicAdd(&a.db20[h * D + x], db2[x]);
        red[x] = 0.f;
        red[D + x] = 0.f;
    }
    flush_norm_grads<D, CPL>(red, dg_acc, db_acc, dtau_acc, a.dgamma + h * D, a.dbeta + h * D, a.dtau, tid, MLP_NT, lane);
}

template <int D> size_t fwd_smem()
{
    using Dm = mlp_dims<D>;
    return sizeof(float) * (7 * KB * Dm::TD + 4 * KB * Dm::TF + 2 * KB * AL + 2 * KB);
}
template <int D> size_t bwd_smem()
{
    using Dm = mlp_dims<D>;
    return sizeof(float) * (12 * KB * Dm::TD + 9 * KB * Dm::TF + 6 * KB * AL + 2 * KB + 2 * D);
}

#ifndef TTT_CUDA_EMU   /* host emulators (tests/unit/emu_*.cpp) run the kernels themselves */
template <int D> cudaError_t launch(const ttt_inner_args *a, cudaStream_t s, int fwd)
{
    return fwd ? ttt_inner_launch(mlp_fwd<D>, MLP_NT, fwd_smem<D>(), a, s)
               : ttt_inner_launch(mlp_bwd<D>, MLP_NT, bwd_smem<D>(), a, s);
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

int ttt_inner_mlp_supported(int D) { return D == 16 || D == 32 || D == 64; }
#ifndef TTT_CUDA_EMU
cudaError_t ttt_inner_mlp_forward(const ttt_inner_args *a, cudaStream_t s)
{
    if ((!a->states || a->z16) && !a->tc) return cudaErrorInvalidValue;   /* tc only: no states, bf16 Z */
    if (a->tc) return ttt_inner_mlp_forward_tc(a, s);
    return dispatch(a, s, 1);
}
cudaError_t ttt_inner_mlp_backward(const ttt_inner_args *a, cudaStream_t s)
{
    if (!a->states) return cudaErrorInvalidValue;
    if (a->tc) return ttt_inner_mlp_backward_tc(a, s);
    return dispatch(a, s, 0);
}
#endif
