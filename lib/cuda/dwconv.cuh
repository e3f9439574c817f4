/* dwconv.cuh - causal depthwise convolution kernels (the GPU twin of
 * lib/layers/dwconv.c), shared by the layer (conv_q/conv_k) and the model
 * (pre-conv):  y[t,c] = bias[c] + sum_j w[c,j] x[t-(k-1)+j, c]  (x[t<0] = 0).
 * Rows are [B*T] token-major; k <= 16. dwconv_bwd_w accumulates (+=) one atomic
 * per value per chunk of DWCONV_COL_CHUNK rows (grid.y = chunks). */
#ifndef TTT_DWCONV_CUH
#define TTT_DWCONV_CUH

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

/* dw[c,j] += sum_rows dy[t,c] x[t-(k-1)+j,c]; db[c] += sum dy */
__global__ void k_conv_bwd_w(float *dw, float *db, const float *dy, const float *x, int rows, int T, int C, int k)
{
    int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= C) return;
    int r0 = blockIdx.y * DWCONV_COL_CHUNK, r1 = min(rows, r0 + DWCONV_COL_CHUNK);
    float aw[16], ab = 0.f;
    for (int j = 0; j < 16; j++) aw[j] = 0.f;
    for (int r = r0; r < r1; r++) {
        float d = dy[(size_t)r * C + c];
        int t = r % T;
        ab += d;
#pragma unroll
        for (int j = 0; j < 16; j++) {
            int tt = t - (k - 1) + j;
            if (j < k && tt >= 0) aw[j] = fmaf(d, x[(size_t)(r - t + tt) * C + c], aw[j]);
        }
    }
    for (int j = 0; j < k; j++) atomicAdd(&dw[c * k + j], aw[j]);
    atomicAdd(&db[c], ab);
}

}  /* namespace */

#endif
