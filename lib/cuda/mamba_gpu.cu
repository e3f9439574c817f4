/* mamba_gpu.cu - the Mamba baseline's block on the GPU (lib/ttt_cuda_mamba.h).
 * Stub: the entry points exist so that callers link; bodies follow. */
#include <cuda_runtime.h>

extern "C" {
#include "err.h"
}
#include "ttt_cuda_mamba.h"

static size_t nchunks(int T) { return ((size_t)T + MAMBA_CHUNK - 1) / MAMBA_CHUNK; }

extern "C" size_t ttt_cuda_mamba_acts_size(const mamba_config *c, int B, int T)
{
    size_t N = (size_t)B * T, NE = N * c->E, W = c->R + 2 * c->S;
    return 9 * NE + N * W + N * c->R + (size_t)B * nchunks(T) * c->E * c->S;
}

extern "C" int ttt_cuda_mamba_forward(ttt_cuda *, int, const mamba_config *, float *, float *,
                                      const float *, const ttt_cuda_mamba_params *, int, int)
{
    return ttt_seterr("cuda mamba: forward not implemented yet");
}

extern "C" int ttt_cuda_mamba_backward(ttt_cuda *, int, const mamba_config *, float *,
                                       const ttt_cuda_mamba_params *, const float *, const float *,
                                       const float *, const ttt_cuda_mamba_params *, int, int)
{
    return ttt_seterr("cuda mamba: backward not implemented yet");
}

extern "C" size_t ttt_cuda_mamba_decode_scratch_size(const mamba_config *c, int B, int P)
{
    size_t W = c->R + 2 * c->S;
    return 3 * (size_t)B * P * c->E + (size_t)B * (2 * c->E + W + c->R);
}

extern "C" int ttt_cuda_mamba_decode(ttt_cuda *, int, const mamba_config *, float *, float *,
                                     const float *, const ttt_cuda_mamba_params *, int, int, float *)
{
    return ttt_seterr("cuda mamba: decode not implemented yet");
}
