/* ttt_cuda_attn.h - C API of the Transformer baseline's attention block on the
 * GPU (lib/cuda/attn_gpu.cu): the twin of lib/layers/attn.h with device
 * pointers. Projections through cuBLAS (ttt_cuda_gemm_f32in: fp32, or bf16
 * inputs with fp32 accumulation in TTT_CUDA_BF16 mode), RoPE, and a fused
 * flash-attention kernel (online softmax over key tiles, only the row
 * log-sum-exp kept; the backward recomputes the probabilities tile by tile):
 * memory O(T) per head, never T x T.
 *
 * All tensors are float32 device pointers in the CPU layer's layouts:
 * x/out [B,T,C] token-major, weights [C,C] nn.Linear [out,in].
 * Backward: dx (=), parameter gradients (+=). Errors: -1 with ttt_seterr.
 * Compiled only with CUDA (TTT_HAVE_CUDA); guard every use.
 */
#ifndef TTT_CUDA_ATTN_H
#define TTT_CUDA_ATTN_H

#include <stddef.h>
#include "ttt_cuda.h"
#include "layers/attn.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    float *q_proj, *k_proj, *v_proj, *o_proj;   /* [C,C] */
} ttt_cuda_attn_params;

/* Floats of the device activation buffer one forward keeps for the backward. */
size_t ttt_cuda_attn_acts_size(const attn_config *c, int B, int T);
/* out [B,T,C] from x [B,T,C]; acts sized by ttt_cuda_attn_acts_size. */
int ttt_cuda_attn_forward(ttt_cuda *g, int mode, const attn_config *c, float *out, float *acts,
                          const float *x, const ttt_cuda_attn_params *p, int B, int T);
/* dx (=) and gradients (+=) from dout; acts and x as the forward left them
 * (acts unchanged: the backward may run more than once). Scratch comes from
 * the handle (grown once). */
int ttt_cuda_attn_backward(ttt_cuda *g, int mode, const attn_config *c, float *dx,
                           const ttt_cuda_attn_params *grad, const float *dout, const float *acts,
                           const float *x, const ttt_cuda_attn_params *p, int B, int T);

/* Decoding with a device KV cache, as attn_decode: kcache/vcache
 * [maxpos][B][C] (rotated keys, values), P new tokens per sequence x [B,P,C]
 * at positions pos..pos+P-1 appended, out [B,P,C]; scratch floats from
 * ttt_cuda_attn_decode_scratch_size. */
size_t ttt_cuda_attn_decode_scratch_size(const attn_config *c, int B, int P);
int ttt_cuda_attn_decode(ttt_cuda *g, int mode, const attn_config *c, float *out, float *kcache,
                         float *vcache, const float *x, const ttt_cuda_attn_params *p, int B, int P,
                         long pos, float *scratch);

#ifdef __cplusplus
}
#endif

#endif
