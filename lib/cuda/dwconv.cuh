/* dwconv.cuh - causal depthwise convolution kernels (the GPU twin of
 * lib/layers/dwconv.c), shared by the layer (conv_q/conv_k) and the model
 * (pre-conv):  y[t,c] = bias[c] + sum_j w[c,j] x[t-(k-1)+j, c]  (x[t<0] = 0).
 * Rows are [B*T] token-major; k <= 16. dwconv_bwd_w accumulates (+=) one atomic
 * per value per chunk of DWCONV_COL_CHUNK rows (grid.y = chunks). The *2
 * kernels run the TTT layer's two convolutions of one input (share_qk:
 * conv_q, conv_k of the same U) in one pass. */
#ifndef TTT_DWCONV_CUH
#define TTT_DWCONV_CUH

#ifndef __CUDA_BF16_H__   /* the host emulator (tests/unit/emu_dwconv.cpp) brings its own */
#include <cuda_bf16.h>
#endif

#include "ttt_cuda_internal.cuh"   /* idx_divmod, store_op */

#define DWCONV_COL_CHUNK 256

namespace {

/* The forward and input-gradient kernels walk runs of DWCONV_RUN rows, one
 * thread per (channel, run), consecutive threads on consecutive channels
 * (coalesced); the k rows a tap needs sit in registers by lag (forward) or
 * lead (input gradient), so each input is read once, not k times. Rows are
 * loaded DWCONV_AHEAD at a time (independent loads in flight: one at a time
 * left these kernels latency-bound). Any grid works (grid-stride);
 * dwconv_blocks(n, C) gives one thread per item.
 * Every kernel is a template on its window KW (taps held in registers, k <=
 * KW): 16 fits every k, but its windows cost 84-128 registers a thread, so
 * few threads and few loads in flight per SM; DWCONV_LAUNCH picks 4 (every
 * preset's k) where it fits, with twice the loads ahead. */
#define DWCONV_RUN 32
#define DWCONV_AHEAD(KW) ((KW) <= 4 ? 8 : 4)

static inline unsigned dwconv_blocks(size_t n, int C)
{
    size_t b = (n / DWCONV_RUN + (size_t)C + 255) / 256;
    return (unsigned)(b > 65536 ? 65536 : b);
}

/* The lag window of one channel at row r of a causal walk: win[m] =
 * x[r - m] within r's sequence (0 before it), m < 16. lag_init fills the
 * rows before r0 (t: r0's position in its sequence); per row, lag_enter
 * puts the row's value at lag 0 (clearing the window where a sequence
 * starts, t == T) and lag_next moves to the next row. */
template <int KW>
__device__ __forceinline__ void lag_init(float (&win)[KW], const float *x, size_t r0, unsigned t, int C, unsigned c,
                                         int k)
{
#pragma unroll
    for (int m = 0; m < KW; m++) win[m] = m >= 1 && m < k && (int)t - m >= 0 ? x[(r0 - m) * C + c] : 0.f;
}

template <int KW>
__device__ __forceinline__ void lag_enter(float (&win)[KW], float v, unsigned &t, unsigned T)
{
    if (t == T) {   /* a new sequence: nothing before it */
        t = 0;
#pragma unroll
        for (int m = 1; m < KW; m++) win[m] = 0.f;
    }
    win[0] = v;
}

template <int KW>
__device__ __forceinline__ void lag_next(float (&win)[KW], unsigned &t)
{
#pragma unroll
    for (int m = KW - 1; m > 0; m--) win[m] = win[m - 1];
    t++;
}

/* y_o = res + b_o + sum_j w_o[c,j] x[t-(k-1)+j] for NO outputs of one x
 * (n = rows*C; res: a residual added to each, NULL: none) */
template <int KW, int NO>
__device__ __forceinline__ void conv_fwd_runs(float *const *y, const float *x, const float *const *w,
                                              const float *const *b, const float *res, int T, int C, int k, size_t n)
{
    size_t rows = n / C, items = (rows + DWCONV_RUN - 1) / DWCONV_RUN * C;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < items; i += (size_t)gridDim.x * blockDim.x) {
        unsigned c, t;
        size_t r0 = idx_divmod(i, C, &c) * DWCONV_RUN, r1 = min(rows, r0 + DWCONV_RUN);
        idx_divmod(r0, T, &t);
        float win[KW], wl[NO][KW];   /* the lag window; wl[m] = w[k-1-m] */
        lag_init(win, x, r0, t, C, c, k);
#pragma unroll
        for (int m = 0; m < KW; m++)
#pragma unroll
            for (int o = 0; o < NO; o++) wl[o][m] = m < k ? w[o][c * k + (k - 1 - m)] : 0.f;
        for (size_t ra = r0; ra < r1; ra += DWCONV_AHEAD(KW)) {
            float xv[DWCONV_AHEAD(KW)];
#pragma unroll
            for (int q = 0; q < DWCONV_AHEAD(KW); q++) xv[q] = ra + q < r1 ? x[(ra + q) * C + c] : 0.f;
#pragma unroll
            for (int q = 0; q < DWCONV_AHEAD(KW); q++) {
                size_t r = ra + q;
                if (r >= r1) break;
                lag_enter(win, xv[q], t, T);
                const float r0 = res ? res[r * C + c] : 0.f;
#pragma unroll
                for (int o = 0; o < NO; o++) {
                    float a = b[o][c] + r0;
#pragma unroll
                    for (int m = 0; m < KW; m++)
                        if (m < k) a = fmaf(wl[o][m], win[m], a);
                    y[o][r * C + c] = a;
                }
                lag_next(win, t);
            }
        }
    }
}

/* dx[t] (=, or += with accum) sum_o sum_j w_o[c,j] dy_o[t+(k-1)-j] within t's
 * sequence; rows walked downwards */
template <int KW, int NO, typename TX>
__device__ __forceinline__ void conv_bwd_x_runs(TX *dx, const float *const *dy, const float *const *w, int T, int C,
                                                int k, size_t n, int accum)
{
    size_t rows = n / C, items = (rows + DWCONV_RUN - 1) / DWCONV_RUN * C;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < items; i += (size_t)gridDim.x * blockDim.x) {
        unsigned c, t;
        size_t r0 = idx_divmod(i, C, &c) * DWCONV_RUN, r1 = min(rows, r0 + DWCONV_RUN);
        idx_divmod(r1 - 1, T, &t);
        float win[NO][KW], wl[NO][KW];   /* win[m] = dy[r+m] in r's sequence; wl[m] = w[k-1-m] */
#pragma unroll
        for (int o = 0; o < NO; o++)
#pragma unroll
            for (int m = 0; m < KW; m++) {
                win[o][m] = m >= 1 && m < k && t + m < (unsigned)T ? dy[o][(r1 - 1 + m) * C + c] : 0.f;
                wl[o][m] = m < k ? w[o][c * k + (k - 1 - m)] : 0.f;
            }
        for (size_t ra = r1; ra > r0;) {   /* rows ra-1, ra-2, ... */
            float dv[NO][DWCONV_AHEAD(KW)];
#pragma unroll
            for (int q = 0; q < DWCONV_AHEAD(KW); q++)
#pragma unroll
                for (int o = 0; o < NO; o++) dv[o][q] = ra > r0 + q ? dy[o][(ra - 1 - q) * C + c] : 0.f;
#pragma unroll
            for (int q = 0; q < DWCONV_AHEAD(KW); q++) {
                if (ra == r0) break;
                size_t r = --ra;
                float a = 0.f;
#pragma unroll
                for (int o = 0; o < NO; o++) {
                    win[o][0] = dv[o][q];
#pragma unroll
                    for (int m = 0; m < KW; m++)
                        if (m < k) a = fmaf(wl[o][m], win[o][m], a);
#pragma unroll
                    for (int m = KW - 1; m > 0; m--) win[o][m] = win[o][m - 1];
                }
                if (accum) a += (float)dx[r * C + c];
                store_op(&dx[r * C + c], a);
                if (t == 0) {   /* row r-1 ends the previous sequence: nothing after it */
                    t = T - 1;
#pragma unroll
                    for (int o = 0; o < NO; o++)
#pragma unroll
                        for (int m = 1; m < KW; m++) win[o][m] = 0.f;
                } else {
                    t--;
                }
            }
        }
    }
}

/* y = res + conv(x) (res NULL: none; the pre-conv's residual add fused) */
template <int KW>
__global__ void k_conv(float *y, const float *x, const float *w, const float *bias, const float *res, int T, int C,
                       int k, size_t n)
{
    float *ys[1] = {y};
    const float *ws[1] = {w}, *bs[1] = {bias};
    conv_fwd_runs<KW, 1>(ys, x, ws, bs, res, T, C, k, n);
}

/* y0, y1 = conv(x) with (w0, b0) and (w1, b1) */
template <int KW>
__global__ void k_conv2(float *y0, float *y1, const float *x, const float *w0, const float *b0, const float *w1,
                        const float *b1, int T, int C, int k, size_t n)
{
    float *ys[2] = {y0, y1};
    const float *ws[2] = {w0, w1}, *bs[2] = {b0, b1};
    conv_fwd_runs<KW, 2>(ys, x, ws, bs, NULL, T, C, k, n);
}

/* dx = the input gradient of k_conv2 from dy0, dy1, in the precision of the
 * GEMMs that read it */
template <int KW, typename TX>
__global__ void k_conv2_bwd_x(TX *dx, const float *dy0, const float *dy1, const float *w0, const float *w1, int T,
                              int C, int k, size_t n)
{
    const float *ds[2] = {dy0, dy1}, *ws[2] = {w0, w1};
    conv_bwd_x_runs<KW, 2, TX>(dx, ds, ws, T, C, k, n, 0);
}

/* dx[t,c] (=, or += with accum) sum_j w[c,j] dy[t+(k-1)-j, c] */
template <int KW>
__global__ void k_conv_bwd_x(float *dx, const float *dy, const float *w, int T, int C, int k, size_t n, int accum)
{
    const float *ds[1] = {dy}, *ws[1] = {w};
    conv_bwd_x_runs<KW, 1, float>(dx, ds, ws, T, C, k, n, accum);
}

/* dw_o[c,j] += sum_rows dy_o[t,c] x[t-(k-1)+j,c]; db_o[c] += sum dy_o for NO
 * gradients of one input x. One thread per column per chunk of rows; the
 * last k rows of x sit in the lag window (m = k-1-j; each x read once). */
template <int KW, int NO>
__device__ __forceinline__ void conv_bwd_w_rows(float *const *dw, float *const *db, const float *const *dy,
                                                const float *x, int rows, int T, int C, int k)
{
    int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= C) return;
    int r0 = blockIdx.y * DWCONV_COL_CHUNK, r1 = min(rows, r0 + DWCONV_COL_CHUNK);
    unsigned t = r0 % T;
    float win[KW], aw[NO][KW], ab[NO];
    lag_init(win, x, r0, t, C, c, k);
#pragma unroll
    for (int m = 0; m < KW; m++)
#pragma unroll
        for (int o = 0; o < NO; o++) aw[o][m] = 0.f;
#pragma unroll
    for (int o = 0; o < NO; o++) ab[o] = 0.f;
    for (int ra = r0; ra < r1; ra += DWCONV_AHEAD(KW)) {
        float xv[DWCONV_AHEAD(KW)], dv[NO][DWCONV_AHEAD(KW)];
#pragma unroll
        for (int q = 0; q < DWCONV_AHEAD(KW); q++) {
            xv[q] = ra + q < r1 ? x[(size_t)(ra + q) * C + c] : 0.f;
#pragma unroll
            for (int o = 0; o < NO; o++) dv[o][q] = ra + q < r1 ? dy[o][(size_t)(ra + q) * C + c] : 0.f;
        }
#pragma unroll
        for (int q = 0; q < DWCONV_AHEAD(KW); q++) {
            if (ra + q >= r1) break;
            lag_enter(win, xv[q], t, T);
#pragma unroll
            for (int o = 0; o < NO; o++) {
                float d = dv[o][q];
                ab[o] += d;
#pragma unroll
                for (int m = 0; m < KW; m++)
                    if (m < k) aw[o][m] = fmaf(d, win[m], aw[o][m]);
            }
            lag_next(win, t);
        }
    }
#pragma unroll
    for (int o = 0; o < NO; o++) {
#pragma unroll
        for (int m = 0; m < KW; m++)
            if (m < k) atomicAdd(&dw[o][c * k + (k - 1 - m)], aw[o][m]);
        atomicAdd(&db[o][c], ab[o]);
    }
}

template <int KW>
__global__ void k_conv_bwd_w(float *dw, float *db, const float *dy, const float *x, int rows, int T, int C, int k)
{
    float *w[1] = {dw}, *b[1] = {db};
    const float *d[1] = {dy};
    conv_bwd_w_rows<KW, 1>(w, b, d, x, rows, T, C, k);
}

template <int KW>
__global__ void k_conv2_bwd_w(float *dw0, float *db0, const float *dy0, float *dw1, float *db1, const float *dy1,
                              const float *x, int rows, int T, int C, int k)
{
    float *w[2] = {dw0, dw1}, *b[2] = {db0, db1};
    const float *d[2] = {dy0, dy1};
    conv_bwd_w_rows<KW, 2>(w, b, d, x, rows, T, C, k);
}

}  /* namespace */

#ifdef __CUDACC__
/* kern<KW><<<grid, block, 0, stream>>>(args...) with the smallest window
 * that holds k taps */
#define DWCONV_LAUNCH(kern, k, grid, block, stream, ...)                              \
    do {                                                                              \
        if ((k) <= 4) kern<4><<<grid, block, 0, stream>>>(__VA_ARGS__);               \
        else kern<16><<<grid, block, 0, stream>>>(__VA_ARGS__);                       \
    } while (0)
#endif

#endif
