/* ttt_layer.h - one TTT layer (TTT-Linear or TTT-MLP) with its projections:
 * spec sections 2-6 forward, 8 backward, 7 decoding. The model (lib/model.c)
 * calls this with the seq_norm output as x.
 *
 * Parameter and gradient structs hold pointers into the model's arenas
 * (NULL for tensors the configuration does not have: k_proj when share_qk,
 * conv_q/conv_k without share_qk, g_proj without use_gate, W2/b2 for linear).
 * Backward: dx is overwritten (=), parameter gradients accumulate (+=).
 */
#ifndef TTT_LAYER_H
#define TTT_LAYER_H

#include <stddef.h>
#include "../real.h"

typedef struct {
    int C, H, D, K;          /* channels, heads, head dim, mini-batch */
    int F;                   /* inner width: D (linear) or 4D (MLP) */
    int kind;                /* TTT_LINEAR / TTT_MLP (model.h) */
    int share_qk, use_gate;  /* Mamba backbone options */
    int conv_kernel;         /* 4 */
    double base_lr, rope_theta;
} ttt_layer_config;

typedef struct {
    real *q_proj, *k_proj, *v_proj, *o_proj, *g_proj;   /* [C,C] nn.Linear layout [out,in] */
    real *conv_q_w, *conv_q_b, *conv_k_w, *conv_k_b;    /* [C,1,k], [C] */
    real *lr_w, *lr_b;           /* learnable_ttt_lr_weight [H,1,C], learnable_ttt_lr_bias [H,1] */
    real *token_idx;             /* learnable_token_idx [K] */
    real *ttt_norm_w, *ttt_norm_b;   /* [H,D] */
    real *W1, *b1, *W2, *b2;     /* [H,D,F] [H,1,F] [H,F,D] [H,1,D] */
    real *post_norm_w, *post_norm_b; /* [C] */
} ttt_layer_params;

/* The tensors a configuration has, by reference name ("q_proj.weight",
 * "conv_q.weight", "learnable_ttt_lr_weight", "W1", "post_norm.bias", ...),
 * each pointing at its field of *p, with its element count. Fills out[]
 * (TTT_LAYER_MAX_TENSORS entries) and returns how many; tensors the
 * configuration lacks are left NULL in *p. For tests and tools that hold a
 * single layer; the model keeps its own table. */
#define TTT_LAYER_MAX_TENSORS 24
typedef struct { const char *name; real **ptr; size_t numel; } ttt_layer_tensor;
int ttt_layer_tensors(const ttt_layer_config *c, ttt_layer_params *p, ttt_layer_tensor *out);

/* Size in reals of the activation buffer one forward keeps for backward. */
size_t ttt_layer_acts_size(const ttt_layer_config *c, int B, int T);

/* out [B,T,C] = TTTLayer(x [B,T,C]); acts sized by ttt_layer_acts_size. */
void ttt_layer_forward(const ttt_layer_config *c, real *out, real *acts,
                       const real *x, const ttt_layer_params *p, int B, int T);

/* dx [B,T,C] (=), g (+=) from dout [B,T,C]; acts/x as left by the forward.
 * Uses the fast-weight state area of acts as its running gradient: one
 * backward per forward. */
void ttt_layer_backward(const ttt_layer_config *c, real *dx, const ttt_layer_params *g,
                        const real *dout, real *acts, const real *x,
                        const ttt_layer_params *p, int B, int T);

/* Named intermediates kept in acts for the reference checks; NULL if not
 * kept. [B,T,C]: "q_proj_out" "k_proj_out" "v_proj_out" "conv_q_out"
 * "conv_k_out" "ttt_out_pre_post_norm" "post_norm_out" "g_proj_out"
 * "o_proj_in"; [B,H,T,D]: "XQ_rope" "XK_rope" "XV"; "ttt_lr_eta" [B,H,T];
 * "token_eta" [K]; "fast_states" [B,H,N+1,P], N = ceil(T/K): the state at
 * every mini-batch boundary, each a block W1 [D,F], b1 [F] (, W2 [F,D],
 * b2 [D]). Valid after the forward, not after the backward (which reuses
 * the state area). Gradients of intermediates are not exposed. */
const real *ttt_layer_inter(const ttt_layer_config *c, const real *acts, const char *name, int B, int T);

/* ---- decoding: per layer state for B sequences ----
 * Holds S_n (W1,b1[,W2,b2] per b,h), the running sums A (same shapes), the
 * conv buffers [B,C,k] (pre-conv buffer is the model's, not here) and the
 * position. */
size_t ttt_layer_state_size(const ttt_layer_config *c, int B);
void ttt_layer_state_init(const ttt_layer_config *c, real *state, const ttt_layer_params *p, int B);
/* Multi-token chunk at a position that is a multiple of K (or one token
 * anywhere): dual form over the full mini-batches, primal over the
 * remainder (spec 7.1). Allocates its activations for the call; returns 0,
 * or -1 with ttt_errmsg (misaligned position, out of memory). */
int ttt_layer_prefill(const ttt_layer_config *c, real *out, real *state, const real *x,
                       const ttt_layer_params *p, int B, int T, long pos);
/* One token per sequence at absolute position pos: x [B,C] -> out [B,C]. */
void ttt_layer_step(const ttt_layer_config *c, real *out, real *state, const real *x,
                    const ttt_layer_params *p, int B, long pos);
/* Views into a state: "W1_states" "b1_states" "W2_states" "b2_states"
 * "W1_grad" ... "conv_ttt_conv_q" "conv_ttt_conv_k"; NULL if absent. */
real *ttt_layer_state_tensor(const ttt_layer_config *c, real *state, const char *name, int B,
                             int *ndim, int shape[4]);

#endif
