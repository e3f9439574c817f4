/* ttt_cuda.h - C API of the CUDA backend (lib/cuda/): a whole TTT layer
 * (TTT-Linear or TTT-MLP) forward and backward on the GPU, mirroring ttt_layer_forward /
 * ttt_layer_backward (lib/layers/ttt_layer.h) with device pointers.
 *
 * Compiled only when the build found nvcc (the Makefile then defines
 * TTT_HAVE_CUDA for C code); guard every use with #ifdef TTT_HAVE_CUDA.
 *
 * All tensors are float32 device pointers, in the same layouts as the CPU
 * layer (x/out [B,T,C] token-major, nn.Linear weights [out,in], per-head
 * TTT tensors [H,...]). The precision mode picks how the projections run:
 *   TTT_CUDA_F32   fp32 cuBLAS GEMMs (no TF32): matches the CPU layer ~1e-5
 *   TTT_CUDA_BF16  GEMM inputs rounded to bf16, fp32 accumulation/outputs;
 *                  the fused inner loop (TTT-Linear and TTT-MLP) on tensor
 *                  cores (bf16 operands, fp32 accumulation and fp32
 *                  fast-weight state), RoPE fused into it
 * Errors: -1 / NULL with ttt_seterr (a message naming the CUDA call).
 */
#ifndef TTT_CUDA_H
#define TTT_CUDA_H

#include <stddef.h>
#include "layers/ttt_layer.h"

#ifdef __cplusplus
extern "C" {
#endif

enum { TTT_CUDA_F32 = 0, TTT_CUDA_BF16 = 1 };

typedef struct ttt_cuda ttt_cuda;   /* device, stream, cuBLAS handle, scratch */

/* Number of usable CUDA devices (0 when there is no driver or no GPU). */
int ttt_cuda_device_count(void);
/* Name of device `dev` into buf ("" on failure). */
void ttt_cuda_device_name(int dev, char *buf, size_t n);

ttt_cuda *ttt_cuda_open(int dev);            /* NULL + message on failure */
void ttt_cuda_close(ttt_cuda *g);
int ttt_cuda_sync(ttt_cuda *g);              /* waits for the stream; 0 / -1 */

/* Device memory helpers (float counts). */
float *ttt_cuda_alloc(size_t n);             /* zeroed; NULL + message */
void ttt_cuda_free(void *p);
int ttt_cuda_upload(float *dst, const float *src, size_t n);
int ttt_cuda_download(float *dst, const float *src, size_t n);
int ttt_cuda_zero(float *p, size_t n);

/* Layer parameters (or gradients) as device pointers; names as in
 * ttt_layer_params. NULL where the configuration has no such tensor. */
typedef struct {
    float *q_proj, *k_proj, *v_proj, *o_proj, *g_proj;
    float *conv_q_w, *conv_q_b, *conv_k_w, *conv_k_b;
    float *lr_w, *lr_b;
    float *token_idx;
    float *ttt_norm_w, *ttt_norm_b;
    float *W1, *b1;
    float *W2, *b2;              /* TTT-MLP only */
    float *post_norm_w, *post_norm_b;
} ttt_cuda_params;

/* Checks that the GPU layer supports the configuration (K = 16; TTT-Linear
 * with head dim 16/32/64/96, or TTT-MLP (F = 4D) with head dim 16/32/64;
 * conv_kernel <= 8). 0 or -1 with a message. */
int ttt_cuda_layer_check(const ttt_layer_config *c);

/* Floats of the device activation buffer one forward keeps for backward. */
size_t ttt_cuda_layer_acts_size(const ttt_layer_config *c, int B, int T);

/* out [B,T,C] = TTTLayer(x); acts sized by ttt_cuda_layer_acts_size. */
int ttt_cuda_layer_forward(ttt_cuda *g, int mode, const ttt_layer_config *c, float *out,
                           float *acts, const float *x, const ttt_cuda_params *p, int B, int T);

/* dx (=) and parameter gradients (+=) from dout; acts/x as the forward left them.
 * Part of it (the output side's weight gradients) runs on a second stream of
 * the handle, beside the inner loop; the handle's stream waits for it before
 * the call's last work, so later work on that stream sees every result. */
int ttt_cuda_layer_backward(ttt_cuda *g, int mode, const ttt_layer_config *c, float *dx,
                            const ttt_cuda_params *grad, const float *dout, const float *acts,
                            const float *x, const ttt_cuda_params *p, int B, int T);

/* Device views of named intermediates in acts: "XQ_rope" "XK_rope" (token-
 * major [B,T,C], not [B,H,T,D]), "v_proj_out", "ttt_lr_eta" [B,T,H],
 * "ttt_out_pre_post_norm", "post_norm_out", "o_proj_in", "states"
 * ([B,H,nmb+1,P], P = D*D+D for TTT-Linear, W1 [D,F] b1 [F] W2 [F,D] b2 [D]
 * = 2DF+F+D for TTT-MLP); NULL if absent. In TTT_CUDA_BF16 mode the inner
 * kernels rotate Q and K themselves: there "XQ_rope"/"XK_rope" hold them
 * before the rotation; "ttt_out_pre_post_norm" (only the post-norm reads
 * it), "post_norm_out" (without the gate) and "o_proj_in" are bf16 there
 * (only the o_proj GEMMs read them), and the "states" hold
 * their weights (W, or W1 and W2) in bf16 at the fp32 offsets (the
 * tensor-core backward reads them only so; TTT-Linear's W in the order its
 * forward holds it, ttt_tc_state_w_index in lib/cuda/ttt_cuda_internal.cuh). The backward must use the
 * forward's mode. */
const float *ttt_cuda_layer_inter(const ttt_layer_config *c, const float *acts, const char *name,
                                  int B, int T);

/* bf16 copies the caller keeps, so that the layer's TTT_CUDA_BF16 GEMMs
 * read them instead of rounding fp32 operands before every product. */
typedef struct ttt_cuda_shadow {
    const float *p;     /* fp32 range [p, p + n) */
    size_t n;
    const void *p16;    /* its bf16 copy */
} ttt_cuda_shadow;
/* dst (bf16, n values) = src rounded, on the handle's stream. */
int ttt_cuda_to_bf16(ttt_cuda *g, void *dst, const float *src, size_t n);
/* Weights: r[0..n) sorted by p and disjoint (NULL: none), kept by the
 * caller, who keeps the copies current (the GPU model: once per optimizer
 * step; each copy 128-byte aligned, as cuBLAS runs misaligned operands on
 * slower kernels: tests/bench/gemm_shapes.cu). */
void ttt_cuda_set_shadow(ttt_cuda *g, const ttt_cuda_shadow *r, int n);
/* Activations x [n] with a bf16 copy x16 (NULL: none): the block input
 * (TTT_CUDA_ACT_IN), set around a forward or backward, and the gradient of
 * its output (TTT_CUDA_ACT_DOUT), around a backward (the GPU model's norms
 * write both copies as they make x). */
enum { TTT_CUDA_ACT_IN, TTT_CUDA_ACT_DOUT, TTT_CUDA_NACT };
void ttt_cuda_set_act16(ttt_cuda *g, int which, const float *x, const void *x16, size_t n);
/* on: the forwards that follow are for evaluation only; the inner loops on
 * tensor cores (bf16 mode) then write no state checkpoints, and a backward
 * fails until it is turned off again. */
void ttt_cuda_set_nograd(ttt_cuda *g, int on);

#ifdef __cplusplus
}
#endif

#endif
