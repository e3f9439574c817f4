/* attn_flash_tc.cuh - launchers of the tensor-core flash attention
 * (lib/cuda/attn_flash_tc.cu) used by the attention block (attn_gpu.cu) in
 * TTT_CUDA_BF16 mode. Same tensors and layouts as the fp32 kernels there:
 * Q, K, V, O, dO, dQ, dK, dV token-major [B,T,H*D] fp32 (Q, K rotated),
 * lse and delta [B,H,T] fp32 (lse natural-log of the scaled scores, so the
 * fp32 and the tensor-core kernels can read each other's lse). Internal to
 * the CUDA backend. */
#ifndef TTT_ATTN_FLASH_TC_CUH
#define TTT_ATTN_FLASH_TC_CUH

#include <cuda_runtime.h>

/* 1 when the tensor-core kernels take head dim D with these pointers (D 64
 * or 128, every pointer 16-byte aligned: the tiles are read as float4);
 * otherwise the caller keeps the fp32 kernels. */
int ttt_attn_tc_supported(int D, const void *const *ptrs, int n);

/* O, lse from Q, K, V (causal, scale 1/sqrt(D) passed in). */
cudaError_t ttt_attn_tc_forward(cudaStream_t st, float *O, float *lse, const float *Q, const float *K,
                                const float *V, int B, int T, int H, int D, float scale);

/* dQ, dK, dV (=) from dO, the forward's lse and delta = rowsum(dO * O). */
cudaError_t ttt_attn_tc_backward(cudaStream_t st, float *dQ, float *dK, float *dV, const float *Q,
                                 const float *K, const float *V, const float *dO, const float *lse,
                                 const float *delta, int B, int T, int H, int D, float scale);

#endif
