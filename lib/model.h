/* model.h - the TTT language model: configuration, parameters, forward,
 * backward, decoding. Exactly ../shared/ttt-spec.md (the official PyTorch
 * code, ttt-lm-pytorch @ cd831db).
 *
 * Dimension letters used in shape comments across lib/:
 *   B batch, T sequence, C channels (hidden_size), H heads, D head dim (C/H),
 *   V vocab, L layers, K TTT mini-batch size (16), I SwiGLU intermediate,
 *   F inner width of the fast weights (D for TTT-Linear, 4D for TTT-MLP).
 *
 * Memory: one arena for parameters, one for gradients (same layout), one for
 * activations (sized for the largest B*T seen, allocated lazily). Parameter
 * gradients accumulate (+=) until ttt_model_zero_grad().
 */
#ifndef TTT_MODEL_H
#define TTT_MODEL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "real.h"
#include "json.h"

enum { TTT_LINEAR = 0, TTT_MLP = 1 };
/* The sequence-modelling block of every layer: the TTT layer (kind from
 * ttt_layer_type) or one of the paper's baselines. JSON "seq_modeling_block":
 * "ttt_linear" | "ttt_mlp" | "self_attention" | "mamba". */
enum { SEQ_TTT = 0, SEQ_ATTENTION = 1, SEQ_MAMBA = 2 };

/* Field names follow the reference TTTConfig (config.json uses them). */
typedef struct {
    int vocab_size;
    int hidden_size;            /* C */
    int intermediate_size;      /* I */
    int num_hidden_layers;      /* L */
    int num_attention_heads;    /* H */
    int mini_batch_size;        /* K = 16 */
    int conv_kernel;            /* 4 */
    int ttt_layer_type;         /* TTT_LINEAR or TTT_MLP ("linear"/"mlp" in JSON) */
    int seq_modeling_block;     /* SEQ_TTT (0, the default), SEQ_ATTENTION, SEQ_MAMBA */
    int pre_conv, share_qk, use_gate;   /* Mamba backbone: all 1; Transformer: all 0 */
    double ttt_base_lr;
    double rope_theta;
    double rms_norm_eps;
    double initializer_range;
    int max_position_embeddings;   /* training context (informational) */
} ttt_config;

/* Presets: "125m" "350m" "760m" "1b" (the paper's sizes, spec section 10),
 * "tiny" (tests) and "small" (the demo). Backbone/arch flags are set for
 * TTT-Linear + Mamba backbone; callers override them. Returns 0 or -1. */
int ttt_config_preset(ttt_config *c, const char *name);
/* The preset's size for another sequence block: the TTT-Linear preset's
 * shape with pre_conv/share_qk/use_gate off and intermediate_size chosen so
 * that the parameter count matches the TTT-Linear preset's (block SEQ_TTT:
 * exactly ttt_config_preset). 0 or -1. */
int ttt_config_preset_for(ttt_config *c, const char *name, int block);
/* The defaults used for fields absent from a JSON config. */
void ttt_config_default(ttt_config *c);
/* Starts from ttt_config_default, applies the object's fields (reference
 * names; unknown keys are an error naming them), then validates. */
int ttt_config_from_json(ttt_config *c, const json *j);         /* 0 or -1 */
int ttt_config_write_json(const ttt_config *c, FILE *f);       /* one JSON object */
int ttt_config_validate(const ttt_config *c);                 /* 0 or -1 with message */
/* Number of parameters the configuration has (tied lm head counted once);
 * allocates nothing. 0 if the config is invalid. */
size_t ttt_config_num_params(const ttt_config *c);

/* One named tensor of the parameter table, in the reference PyTorch names
 * ("model.layers.0.seq_modeling_block.W1", "model.embed_tokens.weight"). */
typedef struct {
    char name[96];
    int ndim;
    int shape[4];
    size_t offset;    /* into the parameter (and gradient) arena, in reals */
    size_t numel;
} ttt_tensor;

typedef struct ttt_model ttt_model;

ttt_model *ttt_model_build(const ttt_config *c);      /* NULL + ttt_errmsg */
void ttt_model_free(ttt_model *m);
const ttt_config *ttt_model_config(const ttt_model *m);

size_t ttt_model_num_params(const ttt_model *m);
real *ttt_model_params(ttt_model *m);
real *ttt_model_grads(ttt_model *m);
int ttt_model_num_tensors(const ttt_model *m);
const ttt_tensor *ttt_model_tensor(const ttt_model *m, int i);
const ttt_tensor *ttt_model_find(const ttt_model *m, const char *name);

/* Initialisation of spec section 9 ([PT]), from a seeded generator. */
void ttt_model_init(ttt_model *m, uint64_t seed);

/* Forward over ids [B,T]. With targets [B,T] (entries < 0 ignored) the mean
 * cross-entropy over valid targets goes to *loss (0 if none is valid).
 * Keeps what the backward needs. Returns 0 or -1 (id or target outside the
 * vocabulary, bad shape, out of memory). */
int ttt_model_forward(ttt_model *m, const int32_t *ids, const int32_t *targets, int B, int T, double *loss);
/* Logits of the last forward, [B,T,V]. */
const real *ttt_model_logits(const ttt_model *m);
/* Per-token losses of the last forward with targets, [B,T] (0 where ignored). */
const real *ttt_model_token_losses(const ttt_model *m);
void ttt_model_zero_grad(ttt_model *m);
/* Backward of the mean loss of the last forward; gradients accumulate.
 * Once per forward (the TTT layers reuse their saved activations). */
int ttt_model_backward(ttt_model *m);

/* Called by ttt_model_backward as each contiguous range [offset,
 * offset+n) of the gradient arena (in reals) becomes final for this
 * backward, so that its all-reduce can start while the rest is computed
 * (ttt_dist_overlap_chunk fits). Fixed ranges in a fixed order, the same
 * whatever the data: the final norm, each block from the last to the
 * first, then the tied embedding, covering the arena exactly once. On the
 * calling thread. fn NULL removes the hook. */
void ttt_model_set_grad_hook(ttt_model *m, void (*fn)(size_t offset, size_t n, void *ctx), void *ctx);

/* Named intermediates of the last forward for the reference checks, e.g.
 * "inter.block0.seq_norm_out" [B,T,C]; NULL if not kept. */
const real *ttt_model_inter(const ttt_model *m, const char *name);

/* ---- decoding (spec section 7) ---- */
typedef struct ttt_decode ttt_decode;
ttt_decode *ttt_decode_new(const ttt_model *m, int B);
void ttt_decode_free(ttt_decode *s);
/* Prefill P tokens [B,P] from the current position (for TTT blocks a
 * multiple of K unless P == 1); logits [B,P,V] if non-NULL. Attention
 * layers keep a KV cache of at most TTT_ATTN_MAX_CONTEXT positions. */
#define TTT_ATTN_MAX_CONTEXT 131072
int ttt_decode_prefill(ttt_model *m, ttt_decode *s, const int32_t *ids, int P, real *logits);
/* One token per sequence [B]; logits [B,V]. */
int ttt_decode_step(ttt_model *m, ttt_decode *s, const int32_t *ids, real *logits);
long ttt_decode_position(const ttt_decode *s);
/* Sets the position, for restoring a saved state: the caller then overwrites
 * every state tensor through ttt_decode_tensor_mut. 0 or -1. */
int ttt_decode_set_position(ttt_decode *s, long pos);
/* Named state tensors, reference cache names without the "cache.<when>."
 * prefix: "layer0.W1_states", "layer0.W1_grad", "layer0.conv_pre_conv",
 * "layer0.conv_ttt_conv_q", ... with their shape. NULL if absent.
 * Attention layers: "layer0.k_cache", "layer0.v_cache" [P,B,C] (rotated
 * keys and values of the P = position tokens so far, position-major).
 * Mamba layers: "layer0.conv_state" [B,E,k], "layer0.ssm_state" [B,E,S]. */
const real *ttt_decode_tensor(const ttt_decode *s, const char *name, int *ndim, int shape[4]);
/* The same view, writable (restoring a saved state). */
real *ttt_decode_tensor_mut(ttt_decode *s, const char *name, int *ndim, int shape[4]);

#endif
