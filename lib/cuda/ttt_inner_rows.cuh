/* ttt_inner_rows.cuh - device helpers shared by the fused inner-loop kernels
 * (ttt_inner_linear*.cu, ttt_inner_mlp*.cu): warp reductions, the per-token
 * factor tau, and the "row" phases that give one warp a whole D-row held as
 * CPL values per lane (c = lane + 32u), or half a warp a row (the half_*
 * helpers). Arithmetic order is that of the kernels before they shared it:
 * the GPU results are compared with the float64 references at 1e-4. */
#ifndef TTT_INNER_ROWS_CUH
#define TTT_INNER_ROWS_CUH

#define TTT_INNER_EPS 1e-6f   /* LayerNorm epsilon (spec) */

namespace {

__device__ __forceinline__ float warp_sum(float v)
{
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

/* tau_i = max(1/(i+1) + off_i, 0) */
__device__ __forceinline__ float tau_of(const float *off, int i)
{
    return fmaxf(1.0f / (float)(i + 1) + off[i], 0.0f);
}

template <int D, int CPL>
__device__ __forceinline__ void row_load(float *v, const float *row, int lane)
{
#pragma unroll
    for (int u = 0; u < CPL; u++) {
        int c = lane + 32 * u;
        v[u] = c < D ? row[c] : 0.f;
    }
}

/* a and b summed over the warp in one shuffle chain (two in flight) */
__device__ __forceinline__ void warp_sum2(float *a, float *b)
{
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
        *a += __shfl_xor_sync(0xffffffffu, *a, o);
        *b += __shfl_xor_sync(0xffffffffu, *b, o);
    }
}

/* Row mean and (biased) variance of v; lanes past D hold 0. One reduction:
 * the sums of d = v - x0 and d^2, shifted by a value of the row (x0, lane
 * 0's first) so that var = mean(d^2) - mean(d)^2 does not cancel. */
template <int D, int CPL>
__device__ __forceinline__ void row_moments(const float *v, int lane, float *mu, float *var)
{
    const float x0 = __shfl_sync(0xffffffffu, v[0], 0);
    float s = 0.f, s2 = 0.f;
#pragma unroll
    for (int u = 0; u < CPL; u++) {
        int c = lane + 32 * u;
        float d = c < D ? v[u] - x0 : 0.f;
        s += d;
        s2 += d * d;
    }
    warp_sum2(&s, &s2);
    const float md = s / D;
    *mu = x0 + md;
    *var = fmaxf(s2 / D - md * md, 0.f);
}

/* Row mean and sigma = sqrt(var + eps). */
template <int D, int CPL>
__device__ __forceinline__ void row_stats(const float *v, int lane, float *mu, float *sig)
{
    float var;
    row_moments<D, CPL>(v, lane, mu, &var);
    *sig = sqrtf(var + TTT_INNER_EPS);
}

/* The inner loss's gradient at the LN output, g_y = gamma (gamma zhat + beta
 * - (v - k)), and the row means mean(g_y), mean(g_y zhat) (LNl2grad). */
template <int D, int CPL>
__device__ __forceinline__ void l2_grad_y(const float *zh, const float *vrow, const float *krow, const float *g_r,
                                          const float *be_r, int lane, float *gy, float *mg, float *mgz)
{
    float s3 = 0.f, s4 = 0.f;
#pragma unroll
    for (int u = 0; u < CPL; u++) {
        int c = lane + 32 * u;
        float tgt = c < D ? vrow[c] - krow[c] : 0.f;
        gy[u] = c < D ? g_r[u] * (g_r[u] * zh[u] + be_r[u] - tgt) : 0.f;
        s3 += gy[u];
        s4 += gy[u] * zh[u];
    }
    warp_sum2(&s3, &s4);
    *mg = s3 / D;
    *mgz = s4 / D;
}

/* LNl2grad of one row z (held in zv) against the target v - k, for the
 * forward and the backward's recomputation: zhat, g_y, sigma, 1/sigma and
 * mean(g_y zhat); G = (g_y - mean(g_y) - zhat mean(g_y zhat)) / sigma. */
template <int D, int CPL>
__device__ __forceinline__ void ln_l2grad_row(const float *zv, const float *vrow, const float *krow, const float *g_r,
                                              const float *be_r, int lane, float *zh, float *gy, float *G,
                                              float *sig, float *mgz)
{
    float mu, mg;
    row_stats<D, CPL>(zv, lane, &mu, sig);
    const float rs = 1.f / *sig;
#pragma unroll
    for (int u = 0; u < CPL; u++) {
        int c = lane + 32 * u;
        zh[u] = c < D ? (zv[u] - mu) * rs : 0.f;
    }
    l2_grad_y<D, CPL>(zh, vrow, krow, g_r, be_r, lane, gy, &mg, mgz);
#pragma unroll
    for (int u = 0; u < CPL; u++) G[u] = (gy[u] - mg - zh[u] * *mgz) * rs;
}

/* Backward of out = gamma zhat + beta, zhat = (z - mu) rs, over one row:
 * dz = rs (dzh - mean(dzh) - zhat mean(dzh zhat)), dzh = gamma dy;
 * dgamma += dy zhat, dbeta += dy per lane. */
template <int D, int CPL>
__device__ __forceinline__ void ln_bwd_row(const float *zv, float mu, float rs, const float *dyrow, const float *g_r,
                                           float *dg_acc, float *db_acc, float *dzrow, int lane)
{
    float zh[CPL], dzh[CPL], s1 = 0.f, s2 = 0.f;
#pragma unroll
    for (int u = 0; u < CPL; u++) {
        int c = lane + 32 * u;
        float dy = c < D ? dyrow[c] : 0.f;
        zh[u] = c < D ? (zv[u] - mu) * rs : 0.f;
        dzh[u] = g_r[u] * dy;
        dg_acc[u] += dy * zh[u];
        db_acc[u] += dy;
        s1 += dzh[u];
        s2 += dzh[u] * zh[u];
    }
    warp_sum2(&s1, &s2);
    const float m1 = s1 / D, m2 = s2 / D;
#pragma unroll
    for (int u = 0; u < CPL; u++) {
        int c = lane + 32 * u;
        if (c < D) dzrow[c] = rs * (dzh[u] - m1 - zh[u] * m2);
    }
}

/* Backward of G = LNl2grad(Z, V - K) over one row (spec 8.3), from dG:
 * dz (the gradient at Z, through zhat and sigma) and dt = -gamma d(g_y)
 * (the gradient at the target V - K), per lane (c = lane + 32u; 0 past D);
 * -sum(M G), the last row's d eta term, into *detaL (lane 0); the ttt_norm
 * parameter gradients accumulate per lane. Rows: dG, zhat, G, M = K dW' +
 * db', g_y, V, K; sig and mgz = mean(g_y zhat) from the forward pieces. */
template <int D, int CPL>
__device__ __forceinline__ void ln_l2grad_bwd_row(const float *dGr, const float *zhr, const float *Gr, const float *Mr,
                                                  const float *GYr, const float *Vr, const float *Kr, float sig,
                                                  float mm, const float *g_r, const float *be_r, float *dg_acc,
                                                  float *db_acc, float *detaL, float *dz, float *dt, int lane)
{
    const float rs = 1.f / sig;
    float dG[CPL], zh[CPL], s1 = 0.f, s2 = 0.f, s5 = 0.f, szh = 0.f;
#pragma unroll
    for (int u = 0; u < CPL; u++) {
        int c = lane + 32 * u;
        dG[u] = c < D ? dGr[c] : 0.f;
        zh[u] = c < D ? zhr[c] : 0.f;
        float g = c < D ? Gr[c] : 0.f;
        s1 += dG[u];
        s2 += dG[u] * zh[u];
        s5 += (c < D ? Mr[c] : 0.f) * g;
        szh += zh[u];
    }
    warp_sum2(&s1, &s2);
    warp_sum2(&s5, &szh);
    float mdG = s1 / D, mdGz = s2 / D, sdGG_part = 0.f;
    if (lane == 0) *detaL = -s5;
    float dgy[CPL], dzh[CPL], s6 = 0.f, sdzh = 0.f;
#pragma unroll
    for (int u = 0; u < CPL; u++) {
        int c = lane + 32 * u;
        float gy = c < D ? GYr[c] : 0.f;
        float g = c < D ? Gr[c] : 0.f;
        dgy[u] = c < D ? (dG[u] - mdG - zh[u] * mdGz) * rs : 0.f;
        dzh[u] = -(mm * dG[u] + mdGz * gy) * rs + g_r[u] * g_r[u] * dgy[u];
        sdGG_part += dG[u] * g;
        s6 += dzh[u] * zh[u];
        sdzh += dzh[u];
        float tgt = c < D ? Vr[c] - Kr[c] : 0.f;
        dg_acc[u] += dgy[u] * (g_r[u] * zh[u] + be_r[u] - tgt + g_r[u] * zh[u]);
        db_acc[u] += g_r[u] * dgy[u];
    }
    warp_sum2(&sdGG_part, &s6);
    sdzh = warp_sum(sdzh);
    const float dsig = (-sdGG_part - s6) * rs;
    /* dc = dzh rs + dsig zhat / D; its mean from the sums above (no third reduction) */
    const float mdc = (sdzh * rs + dsig * szh / D) / D;
#pragma unroll
    for (int u = 0; u < CPL; u++) {
        int c = lane + 32 * u;
        dz[u] = c < D ? dzh[u] * rs + dsig * zh[u] / D - mdc : 0.f;
        dt[u] = -g_r[u] * dgy[u];
    }
}

/* ---- rows held by half a warp: lanes 16h .. 16h + 15 hold one row, E
 * consecutive columns a lane (the tensor-core TTT-MLP kernels, bf16 mode:
 * a reduction is 4 shuffle levels for both of a warp's rows at once, where
 * a warp a row takes 5 levels a row; 1/sigma by rsqrtf). ---- */

__device__ __forceinline__ void half_sum2(float *a, float *b)
{
#pragma unroll
    for (int o = 8; o > 0; o >>= 1) {
        *a += __shfl_xor_sync(0xffffffffu, *a, o);
        *b += __shfl_xor_sync(0xffffffffu, *b, o);
    }
}
__device__ __forceinline__ float half_sum(float v)
{
#pragma unroll
    for (int o = 8; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}
/* mean and 1/sigma of a row held E a lane (the shifted sums of row_moments) */
template <int D, int E>
__device__ __forceinline__ void half_stats(const float (&v)[E], int lane, float *mu, float *rs)
{
    const float x0 = __shfl_sync(0xffffffffu, v[0], lane & 16);
    float s = 0.f, s2 = 0.f;
#pragma unroll
    for (int e = 0; e < E; e++) {
        const float d = v[e] - x0;
        s += d;
        s2 += d * d;
    }
    half_sum2(&s, &s2);
    const float md = s / D;
    *mu = x0 + md;
    *rs = rsqrtf(fmaxf(s2 / D - md * md, 0.f) + TTT_INNER_EPS);
}

/* The pieces of G = LNl2grad(z, tgt) of a row (tgt = v - k; gamma, beta
 * at the lane's columns), as l2_grad_y: zhat, g_y, 1/sigma and the row
 * means mean(g_y), mean(g_y zhat); G = (g_y - mg - zhat mgz) / sigma */
template <int D, int E>
__device__ __forceinline__ void half_l2grad_y(const float (&zv)[E], const float (&tg)[E], const float *gm,
                                              const float *bt, int lane, float (&zh)[E], float (&gy)[E], float *rs,
                                              float *mg, float *mgz)
{
    float mu, s3 = 0.f, s4 = 0.f;
    half_stats<D, E>(zv, lane, &mu, rs);
#pragma unroll
    for (int e = 0; e < E; e++) {
        zh[e] = (zv[e] - mu) * *rs;
        gy[e] = gm[e] * (gm[e] * zh[e] + bt[e] - tg[e]);
        s3 += gy[e];
        s4 += gy[e] * zh[e];
    }
    half_sum2(&s3, &s4);
    *mg = s3 / D;
    *mgz = s4 / D;
}

/* Backward of out = gamma zhat + beta over a row, as ln_bwd_row: dz, and
 * dgamma += dy zhat, dbeta += dy at the lane's columns */
template <int D, int E>
__device__ __forceinline__ void half_ln_bwd(const float (&zv)[E], const float (&dy)[E], const float (&gm)[E], int lane,
                                            float (&dg_acc)[E], float (&db_acc)[E], float (&dz)[E])
{
    float zh[E], dzh[E], mu, rs, s1 = 0.f, s2 = 0.f;
    half_stats<D, E>(zv, lane, &mu, &rs);
#pragma unroll
    for (int e = 0; e < E; e++) {
        zh[e] = (zv[e] - mu) * rs;
        dzh[e] = gm[e] * dy[e];
        dg_acc[e] += dy[e] * zh[e];
        db_acc[e] += dy[e];
        s1 += dzh[e];
        s2 += dzh[e] * zh[e];
    }
    half_sum2(&s1, &s2);
    const float m1 = s1 / D, m2 = s2 / D;
#pragma unroll
    for (int e = 0; e < E; e++) dz[e] = rs * (dzh[e] - m1 - zh[e] * m2);
}

/* The block's ttt_norm and tau gradients into global memory, one atomic per
 * element per block: the per-lane partials (dg_acc, db_acc: element u at
 * column c0 + cstep u) of every warp go through red [2D] (zeroed by the
 * caller before this call), the per-token dtau of threads tid < 16
 * directly. Two block barriers. */
template <int D, int N>
__device__ __forceinline__ void flush_norm_grads_at(float *red, const float *dg_acc, const float *db_acc, int c0,
                                                    int cstep, float dtau_acc, float *dgamma, float *dbeta,
                                                    float *dtau, int tid, int nt)
{
    __syncthreads();
#pragma unroll
    for (int u = 0; u < N; u++) {
        int c = c0 + cstep * u;
        if (c < D) { atomicAdd(&red[c], dg_acc[u]); atomicAdd(&red[D + c], db_acc[u]); }
    }
    if (tid < TTT_CUDA_K) atomicAdd(&dtau[tid], dtau_acc);
    __syncthreads();
    for (int x = tid; x < D; x += nt) {
        atomicAdd(&dgamma[x], red[x]);
        atomicAdd(&dbeta[x], red[D + x]);
    }
}
/* the row helpers' lane layout: element u at column lane + 32 u */
template <int D, int CPL>
__device__ __forceinline__ void flush_norm_grads(float *red, const float *dg_acc, const float *db_acc, float dtau_acc,
                                                 float *dgamma, float *dbeta, float *dtau, int tid, int nt, int lane)
{
    flush_norm_grads_at<D, CPL>(red, dg_acc, db_acc, lane, 32, dtau_acc, dgamma, dbeta, dtau, tid, nt);
}

}  /* namespace */

#endif
