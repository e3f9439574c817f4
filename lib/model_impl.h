/* model_impl.h - private to lib/model*.c: the model struct, its parameter
 * pointers and activation layout. Nothing outside lib/model*.c includes it. */
#ifndef TTT_MODEL_IMPL_H
#define TTT_MODEL_IMPL_H

#include "model.h"
#include "layers/ttt_layer.h"   /* ttt_layer_config, ttt_layer_params */
#include "layers/attn.h"        /* attn_config, attn_params (SEQ_ATTENTION) */
#include "layers/mamba.h"       /* mamba_config, mamba_params (SEQ_MAMBA) */

/* Pointers of one block into the parameter (or gradient) arena; NULL for
 * tensors the configuration does not have. */
typedef struct {
    ttt_layer_params ttt;                 /* model.layers.{i}.seq_modeling_block.* (SEQ_TTT) */
    attn_params attn;                     /* the same prefix (SEQ_ATTENTION) */
    mamba_params mamba;                   /* the same prefix (SEQ_MAMBA) */
    real *gate_proj, *up_proj, *down_proj; /* [I,C] [I,C] [C,I] */
    real *conv_norm, *conv_w, *conv_b;     /* Mamba pre-conv: [C], [C,1,k], [C] */
    real *seq_norm, *ffn_norm;             /* [C] */
} block_params;

/* What one block's forward keeps ([N,C] unless noted, N = B*T). */
typedef struct {
    real *h1;            /* after the pre-conv residual (= block input without pre_conv) */
    real *h2;            /* after the TTT residual */
    real *out;           /* block output */
    real *cn, *crstd;    /* pre-conv RMSNorm output, its rstd [N] (pre_conv only) */
    real *pc;            /* pre-conv output before the residual add (pre_conv only) */
    real *sn, *srstd;    /* seq_norm output (TTT layer input), rstd [N] */
    real *to;            /* sequence block (TTT / attention / Mamba) output */
    real *fn, *frstd;    /* ffn_norm output, rstd [N] */
    real *sw;            /* SwiGLU acts [3,N,I] */
    real *ttt;           /* sequence block acts (ttt_layer_acts_size, attn_acts_size or mamba_acts_size) */
} block_acts;

struct ttt_model {
    ttt_config cfg;
    ttt_layer_config lc;
    attn_config ac;
    mamba_config mc;
    int ntensors;
    ttt_tensor *tensors;
    unsigned char *init;        /* init kind per tensor */
    size_t nparams;
    real *params, *grads;
    real *embed, *dembed;       /* [V,C] */
    real *final_norm, *dfinal_norm;   /* [C] */
    block_params *bp, *bg;      /* [L] params / grads */

    /* activations of the last forward */
    real *acts;
    size_t acts_cap;            /* reals */
    int B, T, fwd_ok, has_targets, bwd_done;
    long count;                 /* valid targets */
    int32_t *ids, *targets;     /* copies [N] */
    size_t ids_cap;
    block_acts *ba;             /* [L] */
    real *emb, *final_out, *final_rstd, *logits, *lse, *losses;

    /* ttt_model_set_grad_hook */
    void (*grad_hook)(size_t offset, size_t n, void *ctx);
    void *grad_hook_ctx;

    /* backward scratch (allocated at the first backward) */
    real *bwd;
    size_t bwd_cap;
};

/* Fills the layer config of the model config. */
void ttt_model_layer_config(const ttt_config *c, ttt_layer_config *lc);
/* The baselines' block configs of the model config. */
void ttt_model_attn_config(const ttt_config *c, attn_config *ac);
void ttt_model_mamba_config(const ttt_config *c, mamba_config *mc);

#endif
