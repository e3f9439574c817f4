/* overlap_lab.cu - can the projections' GEMMs run beside the inner loop?
 * The tensor-core TTT-Linear forward runs one block per (sequence, head),
 * 96 blocks at the benchmark shape, latency-bound, on 96 of the H200's 132
 * SMs. This lab times, at B=8 H=12 D=64 and length T, the inner forward
 * alone, the layer's four C x C projection GEMMs alone (on a cuBLAS handle
 * targeting all SMs and one targeting the SMs the inner loop leaves free),
 * and both launched together on two streams (the inner loop's at the
 * highest priority), in both orders. Prints ms per case (median of 7) and
 * the overlapped time against the serial sum. (Measured: the GEMMs hide
 * under the inner loop only when it is launched first, and only while it is
 * one launch: in time chunks, whose GEMM parts wait for the chunk before,
 * cuBLAS's persistent GEMM blocks take the SMs each finished chunk frees;
 * the chunked pipeline, commit ef8f22e, is in tests/bench/model_gpu.md.)
 *
 *   make build/kernels/overlap_lab && build/kernels/overlap_lab [T]   (default 8192) */
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <algorithm>
#include <string.h>

#define LAB_NAME "overlap_lab"
#include "lab_util.cuh"
#include "cuda/ttt_cuda_internal.cuh"

#define CB(x) do { cublasStatus_t s_ = (x); if (s_ != CUBLAS_STATUS_SUCCESS) { \
    fprintf(stderr, LAB_NAME ": %s: cuBLAS status %d\n", #x, (int)s_); exit(1); } } while (0)

__global__ void to_bf16(const float *x, __nv_bfloat16 *y, size_t n)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        y[i] = __float2bfloat16(x[i]);
}

int main(int argc, char **argv)
{
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess || n == 0) { printf(LAB_NAME ": skipped: no GPU\n"); return 0; }
    const int B = 8, H = 12, D = 64, C = H * D, T = argc > 1 ? atoi(argv[1]) : 8192;
    if (T < 16) { fprintf(stderr, "usage: overlap_lab [T]\n"); return 2; }
    const size_t BT = (size_t)B * T, btc = BT * C;
    ttt_inner_args a;
    memset(&a, 0, sizeof a);
    a.B = B; a.T = T; a.H = H; a.D = D; a.tc = 1;
    a.XQ = dev(rnd(btc, -1, 1)); a.XK = dev(rnd(btc, -1, 1)); a.XV = dev(rnd(btc, -1, 1));
    a.lr = dev(rnd(BT * H, 0.3f / D, 3.f / D)); a.token_idx = dev(rnd(16, -0.03f, 0.03f));
    a.gamma = dev(rnd((size_t)H * D, 0.8f, 1.2f)); a.beta = dev(rnd((size_t)H * D, -0.1f, 0.1f));
    a.W0 = dev(rnd((size_t)H * D * D, -0.1f, 0.1f)); a.b0 = dev(rnd((size_t)H * D, -0.1f, 0.1f));
    a.Z = dzero(btc);
    a.states = dzero(ttt_inner_states_size(B, H, D, T));

    __nv_bfloat16 *x16, *w16;
    float *out;
    CKE(cudaMalloc(&x16, btc * 2));
    CKE(cudaMalloc(&w16, (size_t)4 * C * C * 2));
    CKE(cudaMalloc(&out, 4 * btc * 4));
    to_bf16<<<1024, 256>>>(a.XQ, x16, btc);
    to_bf16<<<1024, 256>>>(a.XK, w16, (size_t)4 * C * C);
    CKE(cudaDeviceSynchronize());

    int lo, hi, sms;
    CKE(cudaDeviceGetStreamPriorityRange(&lo, &hi));
    CKE(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0));
    cudaStream_t s0, s1;
    CKE(cudaStreamCreateWithPriority(&s0, cudaStreamNonBlocking, hi));
    CKE(cudaStreamCreateWithPriority(&s1, cudaStreamNonBlocking, lo));
    const int spare = sms - B * H > 8 ? sms - B * H : 8;
    cublasHandle_t hf, hs;
    CB(cublasCreate(&hf)); CB(cublasCreate(&hs));
    CB(cublasSetStream(hf, s1)); CB(cublasSetStream(hs, s1));
    CB(cublasSetSmCountTarget(hs, spare));

    auto gemms = [&](cublasHandle_t h) {
        const float one = 1.f, zero = 0.f;
        for (int i = 0; i < 4; i++)
            CB(cublasGemmEx(h, CUBLAS_OP_T, CUBLAS_OP_N, C, (int)BT, C, &one, w16 + (size_t)i * C * C, CUDA_R_16BF, C,
                            x16, CUDA_R_16BF, C, &zero, out + i * btc, CUDA_R_32F, C, CUBLAS_COMPUTE_32F,
                            CUBLAS_GEMM_DEFAULT));
    };
    auto inner = [&]() { CKE(ttt_inner_linear_forward(&a, s0)); };
    cudaEvent_t e0, e1, j;
    CKE(cudaEventCreate(&e0)); CKE(cudaEventCreate(&e1)); CKE(cudaEventCreate(&j));
    /* 0: inner alone, 1: gemms alone, 2: both, inner first, 3: both, gemms first */
    auto timed = [&](int mode, cublasHandle_t h) {
        std::vector<float> t;
        for (int rep = 0; rep < 8; rep++) {
            CKE(cudaEventRecord(e0, s0));
            CKE(cudaStreamWaitEvent(s1, e0, 0));
            if (mode == 0 || mode == 2) inner();
            if (mode >= 1) gemms(h);
            if (mode == 3) inner();
            CKE(cudaEventRecord(j, s1));
            CKE(cudaStreamWaitEvent(s0, j, 0));
            CKE(cudaEventRecord(e1, s0));
            CKE(cudaEventSynchronize(e1));
            float ms;
            CKE(cudaEventElapsedTime(&ms, e0, e1));
            if (rep) t.push_back(ms);
        }
        std::sort(t.begin(), t.end());
        return t[t.size() / 2];
    };
    printf("overlap_lab: B=%d H=%d D=%d T=%d, %d SMs, spare-SM handle targets %d\n", B, H, D, T, sms, spare);
    const float ti = timed(0, hf), tgf = timed(1, hf), tgs = timed(1, hs);
    printf("%-44s %8.3f ms\n", "inner forward alone", ti);
    float *st = a.states;
    a.states = NULL;
    printf("%-44s %8.3f ms\n", "inner forward alone, no checkpoints", timed(0, hf));
    a.states = st;
    printf("%-44s %8.3f ms\n", "4 GEMMs alone, all SMs", tgf);
    printf("%-44s %8.3f ms\n", "4 GEMMs alone, spare-SM target", tgs);
    const char *name[2] = {"all SMs", "spare-SM target"};
    cublasHandle_t hh[2] = {hf, hs};
    for (int k = 0; k < 2; k++)
        for (int m = 2; m <= 3; m++) {
            float t = timed(m, hh[k]);
            printf("both, %s first, GEMMs %-16s %8.3f ms  (serial %.3f, saved %.3f)\n", m == 2 ? "inner" : "GEMMs",
                   name[k], t, ti + tgf, ti + tgf - t);
        }
    return 0;
}
