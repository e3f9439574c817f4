/* ttt_cuda_model.h - the whole language model on the GPU
 * (lib/cuda/model_gpu.cu): forward with targets -> mean loss, backward into
 * a device gradient arena, global gradient norm and AdamW, so that a
 * training step needs no host round trip except the loss and the norm.
 *
 * Mirrors the CPU model (model.h) on the same configuration: the device
 * parameter, gradient and AdamW moment arenas have exactly the layout of
 * the CPU parameter arena (ttt_model_tensor offsets), so upload/download of
 * each is one memcpy of float32 values. Host arrays here are float32
 * whatever `real` is (the float64 build converts).
 *
 * Supported: seq_modeling_block ttt_linear (head dim 16/32/64/96) or
 * ttt_mlp (head dim 16/32/64), either backbone (pre_conv, share_qk,
 * use_gate), mini-batch 16; the Transformer baseline (self_attention,
 * ttt_cuda_attn.h: even head dim up to 128) and the Mamba baseline
 * (ttt_cuda_mamba.h: conv kernel 1..16). Arenas are
 * sized once for batches of at most maxB windows of at most maxT tokens.
 *
 * Builds without CUDA get stubs: ttt_gpu_model_new fails with "this build
 * has no CUDA support", ttt_gpu_available returns 0.
 */
#ifndef TTT_CUDA_MODEL_H
#define TTT_CUDA_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "model.h"
#include "layers/adamw.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ttt_gpu_model ttt_gpu_model;

/* Device memory taken by each arena, bytes. */
typedef struct {
    size_t params, grads, opt, acts;
} ttt_gpu_sizes;

#ifdef TTT_HAVE_CUDA

/* Number of CUDA devices (0: none or no driver). */
int ttt_gpu_available(void);
/* 0 if the GPU model supports the configuration, else -1 with a message
 * ("--device cuda: attention head dim 256 (supported: even, 2..128)", ...). */
int ttt_gpu_model_check(const ttt_config *c);
/* A GPU copy of m's architecture (not its values: upload them) on device
 * dev; precision TTT_CUDA_F32 or TTT_CUDA_BF16 (ttt_cuda.h) for the
 * projections. Allocates every arena for up to maxB x maxT. NULL + message. */
ttt_gpu_model *ttt_gpu_model_new(const ttt_model *m, int dev, int precision, int maxB, int maxT);
void ttt_gpu_model_free(ttt_gpu_model *g);
void ttt_gpu_model_sizes(const ttt_gpu_model *g, ttt_gpu_sizes *s);
size_t ttt_gpu_model_num_params(const ttt_gpu_model *g);

/* Whole-arena copies, n = num_params floats each. 0 or -1. */
int ttt_gpu_model_upload_params(ttt_gpu_model *g, const float *params);
int ttt_gpu_model_download_params(ttt_gpu_model *g, float *params);
int ttt_gpu_model_download_grads(ttt_gpu_model *g, float *grads);
int ttt_gpu_model_upload_grads(ttt_gpu_model *g, const float *grads);
/* The device gradient arena (num_params floats) and, in *stream, the
 * cudaStream_t all of the model's work is queued on: for an in-place
 * collective over the arena between backward and grad_norm (dist.h). */
float *ttt_gpu_model_grad_arena(ttt_gpu_model *g, void **stream);
int ttt_gpu_model_upload_opt(ttt_gpu_model *g, const float *m, const float *v);
int ttt_gpu_model_download_opt(ttt_gpu_model *g, float *m, float *v);

int ttt_gpu_model_zero_grad(ttt_gpu_model *g);
/* As ttt_model_forward: ids/targets [B,T] on the host (targets may be NULL;
 * entries < 0 ignored); *loss = mean CE over valid targets. Checks ids and
 * targets against the vocabulary. 0 or -1. */
int ttt_gpu_model_forward(ttt_gpu_model *g, const int32_t *ids, const int32_t *targets, int B, int T,
                          double *loss);
/* Per-token losses of the last forward with targets, [B,T] on the host
 * (0 where ignored); valid until the next forward. NULL if none. */
const float *ttt_gpu_model_token_losses(const ttt_gpu_model *g);
/* Backward of the mean loss of the last forward; gradients accumulate. */
int ttt_gpu_model_backward(ttt_gpu_model *g);
/* on: forwards for evaluation only (ttt-eval): they keep nothing a backward
 * needs (the inner loops on tensor cores write no state checkpoints), and
 * backward fails while it is on. */
void ttt_gpu_model_set_nograd(ttt_gpu_model *g, int on);
/* L2 norm of the gradient arena (double accumulation, fixed order). */
int ttt_gpu_model_grad_norm(ttt_gpu_model *g, double *norm);
/* ttt_adamw_update on the device arenas (same formula, double arithmetic). */
int ttt_gpu_model_adamw(ttt_gpu_model *g, const ttt_adamw_params *hp, double lr, double grad_scale, long long t);

#else /* no CUDA in this build */

#include "err.h"
/* Every entry point fails with "this build has no CUDA support". */
#define TTT_GPU_NOCUDA_ ttt_seterr("this build has no CUDA support")
static inline int ttt_gpu_available(void) { return 0; }
static inline int ttt_gpu_model_check(const ttt_config *c) { (void)c; return TTT_GPU_NOCUDA_; }
static inline ttt_gpu_model *ttt_gpu_model_new(const ttt_model *m, int dev, int precision, int maxB, int maxT)
{
    (void)m; (void)dev; (void)precision; (void)maxB; (void)maxT;
    TTT_GPU_NOCUDA_;
    return NULL;
}
static inline void ttt_gpu_model_free(ttt_gpu_model *g) { (void)g; }
static inline void ttt_gpu_model_sizes(const ttt_gpu_model *g, ttt_gpu_sizes *s) { (void)g; s->params = s->grads = s->opt = s->acts = 0; }
static inline size_t ttt_gpu_model_num_params(const ttt_gpu_model *g) { (void)g; return 0; }
static inline int ttt_gpu_model_upload_params(ttt_gpu_model *g, const float *p) { (void)g; (void)p; return TTT_GPU_NOCUDA_; }
static inline int ttt_gpu_model_download_params(ttt_gpu_model *g, float *p) { (void)g; (void)p; return TTT_GPU_NOCUDA_; }
static inline int ttt_gpu_model_download_grads(ttt_gpu_model *g, float *p) { (void)g; (void)p; return TTT_GPU_NOCUDA_; }
static inline int ttt_gpu_model_upload_grads(ttt_gpu_model *g, const float *p) { (void)g; (void)p; return TTT_GPU_NOCUDA_; }
static inline float *ttt_gpu_model_grad_arena(ttt_gpu_model *g, void **s) { (void)g; *s = NULL; TTT_GPU_NOCUDA_; return NULL; }
static inline int ttt_gpu_model_upload_opt(ttt_gpu_model *g, const float *m, const float *v) { (void)g; (void)m; (void)v; return TTT_GPU_NOCUDA_; }
static inline int ttt_gpu_model_download_opt(ttt_gpu_model *g, float *m, float *v) { (void)g; (void)m; (void)v; return TTT_GPU_NOCUDA_; }
static inline int ttt_gpu_model_zero_grad(ttt_gpu_model *g) { (void)g; return TTT_GPU_NOCUDA_; }
static inline int ttt_gpu_model_forward(ttt_gpu_model *g, const int32_t *ids, const int32_t *targets, int B, int T, double *loss)
{
    (void)g; (void)ids; (void)targets; (void)B; (void)T; (void)loss;
    return TTT_GPU_NOCUDA_;
}
static inline const float *ttt_gpu_model_token_losses(const ttt_gpu_model *g) { (void)g; return NULL; }
static inline int ttt_gpu_model_backward(ttt_gpu_model *g) { (void)g; return TTT_GPU_NOCUDA_; }
static inline void ttt_gpu_model_set_nograd(ttt_gpu_model *g, int on) { (void)g; (void)on; }
static inline int ttt_gpu_model_grad_norm(ttt_gpu_model *g, double *n) { (void)g; (void)n; return TTT_GPU_NOCUDA_; }
static inline int ttt_gpu_model_adamw(ttt_gpu_model *g, const ttt_adamw_params *hp, double lr, double s, long long t)
{
    (void)g; (void)hp; (void)lr; (void)s; (void)t;
    return TTT_GPU_NOCUDA_;
}

#endif

#ifdef __cplusplus
}
#endif

#endif
