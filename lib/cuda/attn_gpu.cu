/* attn_gpu.cu - the Transformer baseline's attention block on the GPU
 * (lib/ttt_cuda_attn.h), the twin of lib/layers/attn.c. Work in progress:
 * the entry points exist so that the model links; bodies follow. */
#include <cuda_runtime.h>
#include <stddef.h>

extern "C" {
#include "err.h"
}
#include "ttt_cuda_attn.h"
#include "ttt_cuda_internal.cuh"

/* acts: Q, K (rotated), V, O token-major [B,T,C], lse [B,H,T] */
extern "C" size_t ttt_cuda_attn_acts_size(const attn_config *c, int B, int T)
{
    return 4 * (size_t)B * T * c->C + (size_t)B * c->H * T;
}

extern "C" int ttt_cuda_attn_forward(ttt_cuda *, int, const attn_config *, float *, float *,
                                     const float *, const ttt_cuda_attn_params *, int, int)
{
    return ttt_seterr("cuda attention: forward not implemented yet");
}

extern "C" int ttt_cuda_attn_backward(ttt_cuda *, int, const attn_config *, float *,
                                      const ttt_cuda_attn_params *, const float *, const float *,
                                      const float *, const ttt_cuda_attn_params *, int, int)
{
    return ttt_seterr("cuda attention: backward not implemented yet");
}

extern "C" size_t ttt_cuda_attn_decode_scratch_size(const attn_config *c, int B, int P)
{
    return 4 * (size_t)B * P * c->C;
}

extern "C" int ttt_cuda_attn_decode(ttt_cuda *, int, const attn_config *, float *, float *, float *,
                                    const float *, const ttt_cuda_attn_params *, int, int, long, float *)
{
    return ttt_seterr("cuda attention: decode not implemented yet");
}
