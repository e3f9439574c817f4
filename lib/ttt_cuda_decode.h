/* ttt_cuda_decode.h - incremental decoding of the model on the GPU
 * (lib/cuda/decode_gpu.cu), the device twin of ttt_decode (model.h, spec
 * section 7.1): per layer S_n and the running sums A per (b,h), the conv
 * buffers, the position; prefill of a chunk and single-token steps.
 * The baselines keep per layer a KV cache [cap][B][C] (attention: rotated
 * keys and values, allocated for max_position_embeddings positions and
 * grown past them up to TTT_ATTN_MAX_CONTEXT) or the Mamba conv buffer
 * [B,E,k] and SSM state [B,E,S]; their prefill may start at any position.
 *
 * Prefill at a position that is a multiple of K with B = 1 runs the dual
 * form over the chunk with the training inner-loop kernel (ttt_inner_*.cu,
 * starting from the decode state), then accumulates A over the remainder
 * token by token; any other chunk (and every step) runs the fused
 * single-token kernel, one block per (b,h), token after token: g at S_n,
 * A += lr g, z = f(q; S_n - tau_i A), commit at the end of the mini-batch.
 *
 * The device state tensors have the names, shapes and layout of
 * ttt_decode_tensor() ("layer0.W1_states" [B,H,D,F], ..., "layer0.conv_pre_conv"
 * [B,C,k], "layer0.k_cache" [pos,B,C] (listed from position 1 on, as on
 * the CPU), "layer0.conv_state" [B,E,k], "layer0.ssm_state" [B,E,S]), so
 * a state moves between host and device with one copy per
 * tensor: ttt_gpu_decode_store / ttt_gpu_decode_load below do that with a
 * CPU ttt_decode of the same model and batch, which lib/state.c then saves
 * or has loaded. Logits come back for the last token only, [B,V] float32.
 *
 * Supported: what ttt_gpu_model_check accepts (TTT-Linear head dim
 * 16/32/64/96, TTT-MLP 16/32/64, K = 16, either backbone; the Transformer
 * and Mamba baselines). Builds without
 * CUDA get stubs that fail with "this build has no CUDA support".
 */
#ifndef TTT_CUDA_DECODE_H
#define TTT_CUDA_DECODE_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "err.h"
#include "model.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ttt_gpu_decode ttt_gpu_decode;

#ifdef TTT_HAVE_CUDA

/* A decoder for B sequences on device dev with the parameters `params`
 * (float32, laid out as m's parameter arena, ttt_model_tensor offsets),
 * the state at position 0 (S = W0, A = 0, conv buffers 0). NULL + message. */
ttt_gpu_decode *ttt_gpu_decode_new(const ttt_model *m, const float *params, int dev, int B);
void ttt_gpu_decode_free(ttt_gpu_decode *d);
/* Prefill P >= 1 tokens ids [B,P] from the current position (for TTT
 * models a multiple of K unless P == 1, as ttt_decode_prefill); logits
 * [B,V] of the chunk's last token, if non-NULL. 0 or -1 (a failure
 * part-way leaves the state unusable). */
int ttt_gpu_decode_prefill(ttt_gpu_decode *d, const int32_t *ids, int P, float *logits);
/* One token per sequence, ids [B]; logits [B,V] if non-NULL. */
int ttt_gpu_decode_step(ttt_gpu_decode *d, const int32_t *ids, float *logits);
long ttt_gpu_decode_position(const ttt_gpu_decode *d);
/* Sets the position (attention: grows the KV caches to hold pos rows;
 * -1 past TTT_ATTN_MAX_CONTEXT or out of device memory). */
int ttt_gpu_decode_set_position(ttt_gpu_decode *d, long pos);
/* The i-th device state tensor (0 <= i < count): its ttt_decode_tensor name,
 * device pointer and element count; NULL past the end. The count and the
 * KV caches' pointers and sizes depend on the position: ask after
 * ttt_gpu_decode_set_position. */
int ttt_gpu_decode_ntensors(const ttt_gpu_decode *d);
const char *ttt_gpu_decode_tensor(const ttt_gpu_decode *d, int i, float **dev, size_t *n);
/* float32 copies between host memory and a device tensor. 0 or -1. */
int ttt_gpu_decode_copy(ttt_gpu_decode *d, float *dst, const float *src, size_t n, int to_device);

#else /* no CUDA in this build */

static inline ttt_gpu_decode *ttt_gpu_decode_new(const ttt_model *m, const float *params, int dev, int B)
{
    (void)m; (void)params; (void)dev; (void)B;
    ttt_seterr("this build has no CUDA support");
    return NULL;
}
static inline void ttt_gpu_decode_free(ttt_gpu_decode *d) { (void)d; }
static inline int ttt_gpu_decode_prefill(ttt_gpu_decode *d, const int32_t *ids, int P, float *logits)
{
    (void)d; (void)ids; (void)P; (void)logits;
    return ttt_seterr("this build has no CUDA support");
}
static inline int ttt_gpu_decode_step(ttt_gpu_decode *d, const int32_t *ids, float *logits)
{
    (void)d; (void)ids; (void)logits;
    return ttt_seterr("this build has no CUDA support");
}
static inline long ttt_gpu_decode_position(const ttt_gpu_decode *d) { (void)d; return 0; }
static inline int ttt_gpu_decode_set_position(ttt_gpu_decode *d, long pos) { (void)d; (void)pos; return ttt_seterr("this build has no CUDA support"); }
static inline int ttt_gpu_decode_ntensors(const ttt_gpu_decode *d) { (void)d; return 0; }
static inline const char *ttt_gpu_decode_tensor(const ttt_gpu_decode *d, int i, float **dev, size_t *n)
{
    (void)d; (void)i; (void)dev; (void)n;
    return NULL;
}
static inline int ttt_gpu_decode_copy(ttt_gpu_decode *d, float *dst, const float *src, size_t n, int to_device)
{
    (void)d; (void)dst; (void)src; (void)n; (void)to_device;
    return ttt_seterr("this build has no CUDA support");
}

#endif

/* ---- helpers for C callers (compiled with the caller's `real`) ---- */

/* A GPU decoder for m's current parameters (converted to float32). */
static inline ttt_gpu_decode *ttt_gpu_decode_for(ttt_model *m, int dev, int B)
{
    const real *p = ttt_model_params(m);
    if (sizeof(real) == sizeof(float)) return ttt_gpu_decode_new(m, (const float *)p, dev, B);
    size_t n = ttt_model_num_params(m);
    float *f = (float *)malloc(n * sizeof *f);
    if (!f) { ttt_seterr("out of memory"); return NULL; }
    for (size_t i = 0; i < n; i++) f[i] = (float)p[i];
    ttt_gpu_decode *d = ttt_gpu_decode_new(m, f, dev, B);
    free(f);
    return d;
}

/* Moves every state tensor between the device decoder and a CPU decoder s
 * of the same model and batch (to_device: s -> d, else d -> s) and sets the
 * receiver's position. One copy per tensor. 0 or -1. */
static inline int ttt_gpu_decode_sync_host(ttt_gpu_decode *d, ttt_decode *s, int to_device)
{
    if (to_device ? ttt_gpu_decode_set_position(d, ttt_decode_position(s))
                  : ttt_decode_set_position(s, ttt_gpu_decode_position(d)))
        return -1;
    for (int i = 0; i < ttt_gpu_decode_ntensors(d); i++) {
        float *dev;
        size_t n, hn = 1;
        int ndim, shape[4];
        const char *name = ttt_gpu_decode_tensor(d, i, &dev, &n);
        real *h = ttt_decode_tensor_mut(s, name, &ndim, shape);
        if (!h) return ttt_seterr("decode state: the CPU decoder has no tensor %s", name);
        for (int k = 0; k < ndim; k++) hn *= (size_t)shape[k];
        if (hn != n) return ttt_seterr("decode state: %s has %zu values on the host, %zu on the device", name, hn, n);
        float *f = sizeof(real) == sizeof(float) ? (float *)h : (float *)malloc(n * sizeof *f);
        if (!f) return ttt_seterr("out of memory");
        if (to_device && f != (float *)h)
            for (size_t k = 0; k < n; k++) f[k] = (float)h[k];
        int rc = to_device ? ttt_gpu_decode_copy(d, dev, f, n, 1) : ttt_gpu_decode_copy(d, f, dev, n, 0);
        if (!to_device && f != (float *)h)
            for (size_t k = 0; k < n; k++) h[k] = (real)f[k];
        if (f != (float *)h) free(f);
        if (rc) return -1;
    }
    return 0;
}

#ifdef __cplusplus
}
#endif

#endif
