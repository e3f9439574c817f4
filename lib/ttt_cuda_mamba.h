/* ttt_cuda_mamba.h - C API of the Mamba baseline's block on the GPU
 * (lib/cuda/mamba_gpu.cu): the twin of lib/layers/mamba.h with device
 * pointers. Projections through cuBLAS (ttt_cuda_gemm_f32in), the causal
 * depthwise conv, and a selective-scan kernel running sequentially over
 * time and in parallel over (batch, channel): the forward saves the state
 * every MAMBA_CHUNK tokens, the backward recomputes each chunk from there
 * and runs the reverse recurrence through it.
 *
 * All tensors are float32 device pointers in the CPU layer's layouts.
 * Backward: dx (=), parameter gradients (+=). Errors: -1 with ttt_seterr.
 * Compiled only with CUDA (TTT_HAVE_CUDA); guard every use.
 */
#ifndef TTT_CUDA_MAMBA_H
#define TTT_CUDA_MAMBA_H

#include <stddef.h>
#include "ttt_cuda.h"
#include "layers/mamba.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    float *in_proj;           /* [2E,C] */
    float *conv_w, *conv_b;   /* [E,1,k], [E] */
    float *x_proj;            /* [R+2S,E] */
    float *dt_w, *dt_b;       /* [E,R], [E] */
    float *A_log;             /* [E,S] */
    float *D;                 /* [E] */
    float *out_proj;          /* [C,E] */
} ttt_cuda_mamba_params;

size_t ttt_cuda_mamba_acts_size(const mamba_config *c, int B, int T);
/* out [B,T,C] from x [B,T,C]; acts sized by ttt_cuda_mamba_acts_size. */
int ttt_cuda_mamba_forward(ttt_cuda *g, int mode, const mamba_config *c, float *out, float *acts,
                           const float *x, const ttt_cuda_mamba_params *p, int B, int T);
/* dx (=), gradients (+=); acts and x as the forward left them (unchanged).
 * Scratch comes from the handle (grown once). */
int ttt_cuda_mamba_backward(ttt_cuda *g, int mode, const mamba_config *c, float *dx,
                            const ttt_cuda_mamba_params *grad, const float *dout, const float *acts,
                            const float *x, const ttt_cuda_mamba_params *p, int B, int T);

/* Decoding, as mamba_decode: state [mamba_state_size floats] on the device
 * (conv buffer [B,E,k] then SSM state [B,E,S], zero at the start); P tokens
 * per sequence x [B,P,C] -> out [B,P,C]. */
size_t ttt_cuda_mamba_decode_scratch_size(const mamba_config *c, int B, int P);
int ttt_cuda_mamba_decode(ttt_cuda *g, int mode, const mamba_config *c, float *out, float *state,
                          const float *x, const ttt_cuda_mamba_params *p, int B, int P, float *scratch);

#ifdef __cplusplus
}
#endif

#endif
