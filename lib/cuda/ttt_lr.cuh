/* ttt_lr.cuh - the TTT layer's inner learning rate, one per token and head
 * (spec: eta = base_lr / D * sigmoid(x lr_w^T + lr_b)), and its backward:
 *   k_lr_proj_tc   bf16 mode: projection and gate in one kernel, on mma.
 *                  cuBLAS ran this H-wide GEMM (H = 12) at a quarter of the
 *                  bandwidth it needs: 18 us of a 2k-token layer forward.
 *   k_lr_gate      otherwise (fp32 mode, or shapes k_lr_proj_tc does not
 *                  take): the gate on a GEMM's output, in place.
 *   k_lr_colsum    the gate's backward in place, with the bias gradient's
 *                  column sums per block of rows, then those added up in
 *                  block order (deterministic; the atomic column sum it
 *                  replaces took 28 us walking 256 rows a thread). */
#ifndef TTT_LR_CUH
#define TTT_LR_CUH

#include "mma_bf16.cuh"
#include "ttt_cuda_internal.cuh"   /* idx_divmod */

namespace {

/* lr[r][h] = scale * sigmoid(x[r] . w[h] + bias[h]) for bf16 x [rows][C] and
 * w [H][C], H <= 8 NTL, C % 128 == 0, x and w 16-byte aligned. A block of 4
 * warps per 16 rows, warp j summing the columns [jC/4, (j+1)C/4); n8 tiles of
 * heads. The order of a dot product's terms is free, so thread t takes the 8
 * columns 8t..8t+7 of every 32 (one 16-byte load of row g, of row g+8 and of
 * w's row), which mma reads as the k = (2t, 2t+1, 2t+8, 2t+9) of two k16
 * steps: A and B agree on which column each k is. The warps' partial sums
 * are added in warp order (deterministic). */
template <int NTL>
__global__ void __launch_bounds__(128) k_lr_proj_tc(float *lr, const bf16 *__restrict__ x,
                                                    const bf16 *__restrict__ w, const float *bias, int rows, int C,
                                                    int H, float scale)
{
    __shared__ float part[4][NTL][32][4];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, g = lane >> 2, t = lane & 3;
    const int r0 = blockIdx.x * 16, kw = C / 4, k0 = warp * kw + 8 * t;
    /* rows past the end read the last row; their sums are not stored */
    const bf16 *xa = x + (size_t)min(r0 + g, rows - 1) * C + k0;
    const bf16 *xb = x + (size_t)min(r0 + g + 8, rows - 1) * C + k0;
    float acc[NTL][4];
#pragma unroll
    for (int n = 0; n < NTL; n++) acc[n][0] = acc[n][1] = acc[n][2] = acc[n][3] = 0.f;
#pragma unroll 4
    for (int k = 0; k < kw; k += 32) {
        const uint4 a = *(const uint4 *)(xa + k), b = *(const uint4 *)(xb + k);
#pragma unroll
        for (int n = 0; n < NTL; n++) {
            const int h = 8 * n + g;   /* B's column n = g: head h's weights */
            uint4 v = {0u, 0u, 0u, 0u};
            if (h < H) v = *(const uint4 *)(w + (size_t)h * C + k0 + k);
            mma(acc[n], a.x, b.x, a.y, b.y, v.x, v.y);
            mma(acc[n], a.z, b.z, a.w, b.w, v.z, v.w);
        }
    }
#pragma unroll
    for (int n = 0; n < NTL; n++)
#pragma unroll
        for (int e = 0; e < 4; e++) part[warp][n][lane][e] = acc[n][e];
    __syncthreads();
    if (warp) return;
#pragma unroll
    for (int n = 0; n < NTL; n++)
#pragma unroll
        for (int e = 0; e < 4; e++) {
            const int row = r0 + g + 8 * (e >> 1), h = 8 * n + 2 * t + (e & 1);
            const float s = part[0][n][lane][e] + part[1][n][lane][e] + part[2][n][lane][e] + part[3][n][lane][e];
            if (row < rows && h < H) lr[(size_t)row * H + h] = scale / (1.f + expf(-(s + bias[h])));
        }
}

/* the gate on the projection a = x lr_w^T [n/H][H], in place (fp32 mode) */
__global__ void k_lr_gate(float *a, const float *bias, int H, size_t n, float scale)
{
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x, st = (size_t)gridDim.x * blockDim.x;
    for (; i < n; i += st) {
        unsigned h;
        idx_divmod(i, H, &h);
        a[i] = scale / (1.f + expf(-(a[i] + bias[h])));
    }
}

/* Rows of [rows][H] a block of the gate's backward takes: 256 blocks at
 * 16k rows (256 rows a block: 10 us, a thread walking 12 rows) */
#define LR_ROWS 64

/* Column sums of x [rows][H] over the rows [b R, (b+1) R) of block b, to
 * part[b][h] (accum: added to part[h], one block): thread (q, h) = (tid / H,
 * tid % H) walks rows q, q + NQ, ... (NQ = blockDim.x / H; consecutive
 * threads read consecutive elements), and its NQ partials are added in q
 * order: deterministic. GATE: x = dlr first becomes the gate's backward,
 * dlr * lr * (1 - sigmoid) (sigmoid = lr / scale), in place. H <= 256. */
template <bool GATE>
__global__ void k_lr_colsum(float *part, float *x, const float *lr, int rows, int H, int R, float inv_scale, int accum)
{
    __shared__ float s[256];
    const int tid = threadIdx.x, nq = blockDim.x / H, q = tid / H, h = tid % H;
    float acc = 0.f;
    if (q < nq) {
        const int r1 = min(rows, (int)(blockIdx.x + 1) * R);
        for (int r = blockIdx.x * R + q; r < r1; r += nq) {
            const size_t i = (size_t)r * H + h;
            float d = x[i];
            if (GATE) x[i] = d = d * lr[i] * (1.f - lr[i] * inv_scale);
            acc += d;
        }
    }
    s[tid] = acc;
    __syncthreads();
    if (tid < H) {
        float sum = 0.f;
        for (int j = 0; j < nq; j++) sum += s[j * H + tid];
        if (accum) part[tid] += sum;
        else part[(size_t)blockIdx.x * H + tid] = sum;
    }
}

}  /* namespace */

#endif
