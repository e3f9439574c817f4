/* attn.h - causal multi-head self-attention with RoPE, the Transformer
 * baseline's sequence block (Llama style, no biases):
 *   q, k, v = x Wq^T, x Wk^T, x Wv^T          [N,C] split into H heads of D
 *   q, k rotated by RoPE at their absolute position (HF Llama "rotate half":
 *     lanes i and i+D/2 form a pair, angle p * theta^(-2i/D))
 *   o_h = softmax(q_h k_h^T / sqrt(D) + causal mask) v_h;  out = [o_1..o_H] Wo^T
 *
 * The softmax is computed flash-style: query tiles of ATTN_BQ rows sweep key
 * tiles of ATTN_BK with an online (running max, running sum) softmax, and
 * only the log-sum-exp of every row is kept. The backward recomputes the
 * probabilities tile by tile from it (FlashAttention-2): memory is O(T) per
 * head, never T x T.
 *
 * Backward: dx is overwritten (=), parameter gradients accumulate (+=).
 */
#ifndef TTT_ATTN_H
#define TTT_ATTN_H

#include <stddef.h>
#include "../real.h"

#define ATTN_BQ 64      /* query rows per tile */
#define ATTN_BK 64      /* key rows per tile */

typedef struct {
    int C, H, D;             /* channels, heads, head dim (C/H, even) */
    double rope_theta;
} attn_config;

typedef struct {
    real *q_proj, *k_proj, *v_proj, *o_proj;   /* [C,C] nn.Linear layout [out,in] */
} attn_params;

/* Size in reals of what one forward keeps for the backward. */
size_t attn_acts_size(const attn_config *c, int B, int T);
/* out [B,T,C] from x [B,T,C]; acts sized by attn_acts_size. */
void attn_forward(const attn_config *c, real *out, real *acts, const real *x,
                  const attn_params *p, int B, int T);
/* Scratch in reals the backward needs. */
size_t attn_scratch_size(const attn_config *c, int B, int T);
/* dx [B,T,C] (=), g (+=) from dout; acts and x as the forward left them
 * (acts are not modified: the backward may run more than once). */
void attn_backward(const attn_config *c, real *dx, const attn_params *g, const real *dout,
                   const real *acts, const real *x, const attn_params *p, real *scratch,
                   int B, int T);
/* Named intermediates in acts: "q_rope" "k_rope" "v" "o" [B,H,T,D], "lse" [B,H,T]. */
const real *attn_inter(const attn_config *c, const real *acts, const char *name, int B, int T);

/* ---- kernels (exposed for the unit test) ----
 * Q, K, V, O [G,T,D] (G = B*H independent heads), lse [G,T]. */
void attn_flash_forward(real *O, real *lse, const real *Q, const real *K, const real *V,
                        int G, int T, int D);
/* dQ dK dV [G,T,D] (=) from dO; delta [G,T] is scratch. */
void attn_flash_backward(real *dQ, real *dK, real *dV, real *delta, const real *dO,
                         const real *O, const real *lse, const real *Q, const real *K,
                         const real *V, int G, int T, int D);
/* Rotates the D lanes of one row in place by the angles of position pos
 * (sign -1: the inverse rotation, for gradients). */
void attn_rope_row(real *x, int D, long pos, double theta, int sign);

/* ---- decoding with a KV cache ----
 * The cache of one layer holds the rotated keys and the values of every
 * past position, [pos][B][C] (position-major, so it grows by appending).
 * Runs P new tokens per sequence x [B,P,C] at positions pos..pos+P-1:
 * appends their k, v at rows pos.. (the caller guarantees room for pos+P
 * rows) and writes out [B,P,C]. scratch: attn_decode_scratch_size reals. */
size_t attn_decode_scratch_size(const attn_config *c, int B, int P);
void attn_decode(const attn_config *c, real *out, real *kcache, real *vcache, const real *x,
                 const attn_params *p, int B, int P, long pos, real *scratch);

#endif
