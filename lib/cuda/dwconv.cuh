/* dwconv.cuh - causal depthwise convolution kernels (the GPU twin of
 * lib/layers/dwconv.c), shared by the layer (conv_q/conv_k) and the model
 * (pre-conv):  y[t,c] = bias[c] + sum_j w[c,j] x[t-(k-1)+j, c]  (x[t<0] = 0).
 * Rows are [B*T] token-major; k <= 16. dwconv_bwd_w accumulates (+=) one atomic
 * per value per chunk of DWCONV_COL_CHUNK rows (grid.y = chunks). The *2
 * kernels run the TTT layer's two convolutions of one input (share_qk:
 * conv_q, conv_k of the same U) in one pass. */
#ifndef TTT_DWCONV_CUH
#define TTT_DWCONV_CUH

#include <cuda_bf16.h>

#define DWCONV_COL_CHUNK 256

namespace {

__global__ void k_conv(float *y, const float *x, const float *w, const float *bias, int T, int C, int k, size_t n)
{
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x, st = (size_t)gridDim.x * blockDim.x;
    for (; i < n; i += st) {
        int c = (int)(i % C);
        size_t row = i / C;
        int t = (int)(row % T);
        float acc = bias[c];
        for (int j = 0; j < k; j++) {
            int tt = t - (k - 1) + j;
            if (tt >= 0) acc = fmaf(w[c * k + j], x[(row - t + tt) * C + c], acc);
        }
        y[i] = acc;
    }
}

/* y0, y1 = conv(x) with (w0, b0) and (w1, b1) */
__global__ void k_conv2(float *y0, float *y1, const float *x, const float *w0, const float *b0, const float *w1,
                        const float *b1, int T, int C, int k, size_t n)
{
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x, st = (size_t)gridDim.x * blockDim.x;
    for (; i < n; i += st) {
        int c = (int)(i % C);
        size_t row = i / C;
        int t = (int)(row % T);
        float a0 = b0[c], a1 = b1[c];
        for (int j = 0; j < k; j++) {
            int tt = t - (k - 1) + j;
            if (tt < 0) continue;
            float v = x[(row - t + tt) * C + c];
            a0 = fmaf(w0[c * k + j], v, a0);
            a1 = fmaf(w1[c * k + j], v, a1);
        }
        y0[i] = a0;
        y1[i] = a1;
    }
}

__device__ __forceinline__ void dw_put(float *p, float v) { *p = v; }
__device__ __forceinline__ void dw_put(__nv_bfloat16 *p, float v) { *p = __float2bfloat16(v); }

/* dx[t,c] = sum_j w0[c,j] dy0[t+(k-1)-j, c] + w1[c,j] dy1[...]: the input
 * gradient of k_conv2, in the precision of the GEMMs that read it */
template <typename TX>
__global__ void k_conv2_bwd_x(TX *dx, const float *dy0, const float *dy1, const float *w0, const float *w1, int T,
                              int C, int k, size_t n)
{
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x, st = (size_t)gridDim.x * blockDim.x;
    for (; i < n; i += st) {
        int c = (int)(i % C);
        size_t row = i / C;
        int t = (int)(row % T);
        float acc = 0.f;
        for (int j = 0; j < k; j++) {
            int tt = t + (k - 1) - j;
            if (tt >= T) continue;
            size_t o = (row - t + tt) * C + c;
            acc = fmaf(w0[c * k + j], dy0[o], fmaf(w1[c * k + j], dy1[o], acc));
        }
        dw_put(&dx[i], acc);
    }
}

/* dx[t,c] (=, or += with accum) sum_j w[c,j] dy[t+(k-1)-j, c] */
__global__ void k_conv_bwd_x(float *dx, const float *dy, const float *w, int T, int C, int k, size_t n, int accum)
{
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x, st = (size_t)gridDim.x * blockDim.x;
    for (; i < n; i += st) {
        int c = (int)(i % C);
        size_t row = i / C;
        int t = (int)(row % T);
        float acc = 0.f;
        for (int j = 0; j < k; j++) {
            int tt = t + (k - 1) - j;
            if (tt < T) acc = fmaf(w[c * k + j], dy[(row - t + tt) * C + c], acc);
        }
        dx[i] = accum ? dx[i] + acc : acc;
    }
}

/* dw_o[c,j] += sum_rows dy_o[t,c] x[t-(k-1)+j,c]; db_o[c] += sum dy_o for NO
 * gradients of one input x. One thread per column per chunk of rows; the
 * last k rows of x sit in registers by lag m = k-1-j (each x read once),
 * zeroed where a sequence starts. */
template <int NO>
__device__ __forceinline__ void conv_bwd_w_rows(float *const *dw, float *const *db, const float *const *dy,
                                                const float *x, int rows, int T, int C, int k)
{
    int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= C) return;
    int r0 = blockIdx.y * DWCONV_COL_CHUNK, r1 = min(rows, r0 + DWCONV_COL_CHUNK), t = r0 % T;
    float win[16], aw[NO][16], ab[NO];
#pragma unroll
    for (int m = 0; m < 16; m++) {   /* win[m] = x[r0 - m] within r0's sequence (m >= 1 here) */
        win[m] = m >= 1 && m < k && t - m >= 0 ? x[(size_t)(r0 - m) * C + c] : 0.f;
#pragma unroll
        for (int o = 0; o < NO; o++) aw[o][m] = 0.f;
    }
#pragma unroll
    for (int o = 0; o < NO; o++) ab[o] = 0.f;
    for (int r = r0; r < r1; r++, t++) {
        if (t == T) {   /* a new sequence: nothing before it */
            t = 0;
#pragma unroll
            for (int m = 1; m < 16; m++) win[m] = 0.f;
        }
        win[0] = x[(size_t)r * C + c];
#pragma unroll
        for (int o = 0; o < NO; o++) {
            float d = dy[o][(size_t)r * C + c];
            ab[o] += d;
#pragma unroll
            for (int m = 0; m < 16; m++)
                if (m < k) aw[o][m] = fmaf(d, win[m], aw[o][m]);
        }
#pragma unroll
        for (int m = 15; m > 0; m--) win[m] = win[m - 1];
    }
#pragma unroll
    for (int o = 0; o < NO; o++) {
#pragma unroll
        for (int m = 0; m < 16; m++)
            if (m < k) atomicAdd(&dw[o][c * k + (k - 1 - m)], aw[o][m]);
        atomicAdd(&db[o][c], ab[o]);
    }
}

__global__ void k_conv_bwd_w(float *dw, float *db, const float *dy, const float *x, int rows, int T, int C, int k)
{
    float *w[1] = {dw}, *b[1] = {db};
    const float *d[1] = {dy};
    conv_bwd_w_rows<1>(w, b, d, x, rows, T, C, k);
}

__global__ void k_conv2_bwd_w(float *dw0, float *db0, const float *dy0, float *dw1, float *db1, const float *dy1,
                              const float *x, int rows, int T, int C, int k)
{
    float *w[2] = {dw0, dw1}, *b[2] = {db0, db1};
    const float *d[2] = {dy0, dy1};
    conv_bwd_w_rows<2>(w, b, d, x, rows, T, C, k);
}

}  /* namespace */

#endif
