/* gemm_shapes.cu - cuBLAS bf16 GEMMs at the shapes of one 125m training
 * step (65,536 tokens), for choosing operand layouts: each shape with the
 * weight operand 16-byte aligned and 8-byte aligned (a bf16 tensor at an
 * offset of 4 mod 8 elements, what a copy mirroring the fp32 parameter arena
 * gives every other layer), and with fp32 or bf16 output. Prints ms and
 * TFLOP/s per case, median of REPS after warm-ups, and the ratio of the
 * misaligned case to the aligned one in the same run.
 *
 *   make build/bench/gemm_shapes && build/bench/gemm_shapes [REPS]   (default 9)
 * "skipped: no GPU" and exit 0 without a device. */
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <stdio.h>
#include <stdlib.h>
#include <vector>

#define CK(x) do { cudaError_t e_ = (x); if (e_ != cudaSuccess) { \
    fprintf(stderr, "gemm_shapes: %s: %s\n", #x, cudaGetErrorString(e_)); exit(1); } } while (0)
#define CB(x) do { cublasStatus_t s_ = (x); if (s_ != CUBLAS_STATUS_SUCCESS) { \
    fprintf(stderr, "gemm_shapes: %s: cuBLAS status %d\n", #x, (int)s_); exit(1); } } while (0)

__global__ void fill(__nv_bfloat16 *p, size_t n)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        p[i] = __float2bfloat16((float)((i * 2654435761u) % 2001) / 1000.f - 1.f);
}

struct shape { const char *what; int M, N, K, ta, tb; };

int main(int argc, char **argv)
{
    int reps = argc > 1 ? atoi(argv[1]) : 9, n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess || n == 0) { printf("gemm_shapes: skipped: no GPU\n"); return 0; }
    if (reps < 1) { fprintf(stderr, "usage: gemm_shapes [REPS]\n"); return 2; }
    /* row-major C[M,N] = op(A) op(B): A activations, B the weight (tb: [N,K]) */
    const shape S[] = {
        {"x W^T, C->C      (q, v, o, g fwd)", 65536, 768, 768, 0, 1},
        {"x W^T, C->2I     (gate+up fwd)", 65536, 4096, 768, 0, 1},
        {"h W^T, I->C      (down fwd)", 65536, 768, 2048, 0, 1},
        {"dy W, 2I->C      (gate+up dx)", 65536, 768, 4096, 0, 0},
        {"dy^T x, C x C    (dW, K=N)", 768, 768, 65536, 1, 0},
        {"x E^T, C->V      (LM head fwd)", 65536, 32000, 768, 0, 1},
    };
    size_t maxel = (size_t)65536 * 32000;
    __nv_bfloat16 *A, *B, *Cb;
    float *Cf;
    CK(cudaMalloc(&A, (size_t)65536 * 4096 * 2));
    CK(cudaMalloc(&B, ((size_t)65536 * 768 + 64) * 2));   /* the largest weight-side operand: dW's [K=65536, 768] */
    CK(cudaMalloc(&Cf, maxel * 4));
    Cb = (__nv_bfloat16 *)Cf;
    fill<<<1024, 256>>>(A, (size_t)65536 * 4096);
    fill<<<1024, 256>>>(B, (size_t)65536 * 768 + 64);
    CK(cudaDeviceSynchronize());
    cublasHandle_t h;
    CB(cublasCreate(&h));
    cudaEvent_t e0, e1;
    CK(cudaEventCreate(&e0));
    CK(cudaEventCreate(&e1));
    printf("%-36s %-9s %-6s %9s %9s %8s\n", "GEMM (M x N x K)", "weight", "out", "ms", "TFLOP/s", "vs alig");
    for (const shape &s : S) {
        double ref[2] = {0, 0};
        for (int out = 0; out < 2; out++)
            for (int mis = 0; mis < 2; mis++) {
                const __nv_bfloat16 *Bp = B + (mis ? 4 : 0);
                const float one = 1.f, zero = 0.f;
                std::vector<float> t;
                for (int r = 0; r < reps + 2; r++) {
                    CK(cudaEventRecord(e0));
                    CB(cublasGemmEx(h, s.tb ? CUBLAS_OP_T : CUBLAS_OP_N, s.ta ? CUBLAS_OP_T : CUBLAS_OP_N, s.N, s.M, s.K,
                                    &one, Bp, CUDA_R_16BF, s.tb ? s.K : s.N, A, CUDA_R_16BF, s.ta ? s.M : s.K, &zero,
                                    out ? (void *)Cb : (void *)Cf, out ? CUDA_R_16BF : CUDA_R_32F, s.N,
                                    CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
                    CK(cudaEventRecord(e1));
                    CK(cudaEventSynchronize(e1));
                    float ms;
                    CK(cudaEventElapsedTime(&ms, e0, e1));
                    if (r >= 2) t.push_back(ms);
                }
                std::sort(t.begin(), t.end());
                double ms = t[t.size() / 2], tf = 2.0 * s.M * s.N * s.K / (ms * 1e-3) / 1e12;
                if (!mis) ref[out] = ms;
                char ratio[16] = "";
                if (mis) snprintf(ratio, sizeof ratio, "%.2fx", ms / ref[out]);
                printf("%-36s %-9s %-6s %9.3f %9.1f %8s\n", s.what, mis ? "8-byte" : "16-byte", out ? "bf16" : "fp32",
                       ms, tf, ratio);
            }
    }
    cublasDestroy(h);
    return 0;
}
