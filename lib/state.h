/* state.h - the complete decoding state of ttt-generate as a safetensors
 * file, so that generation can stop and resume bit-exactly
 * (`--state-out` / `--state-in`).
 *
 * Contents (names exactly as written):
 *   layer<l>.<name>    every tensor ttt_decode_tensor() exposes, under the
 *                      reference cache names: W1_states b1_states (W2_states
 *                      b2_states) W1_grad b1_grad (W2_grad b2_grad)
 *                      conv_pre_conv conv_ttt_conv_q conv_ttt_conv_k;
 *                      F32 (F64 in the float64 library), shapes as exposed
 *   rng                U64 [4]   the sampler's xoshiro256** state
 *   logits             F32 [B,V] logits after the last consumed token
 *   last_token         I64 [B]   the last consumed token
 * Metadata: format "ttt-decode-state", version "1", position (tokens
 * consumed), batch, model_hash (ttt_state_model_hash, 16 hex digits),
 * config (the model's config.json), plus the xxh3.* checksums the
 * safetensors writer adds.
 *
 * A state is tied to the parameters it was computed with: loading checks
 * model_hash and every tensor's name and shape, and a mismatch is an error
 * that says so. This module does not know about sampling parameters or
 * tokenizers; the caller passes the RNG and the logits.
 */
#ifndef TTT_STATE_H
#define TTT_STATE_H

#include <stdint.h>

#include "model.h"   /* ttt_model, ttt_decode, real */
#include "rng.h"     /* ttt_rng */

/* XXH3-64 over the model's tensor names, shapes and float32 values (in
 * table order) and its config: identifies the checkpoint independently of
 * how its file was written. */
uint64_t ttt_state_model_hash(const ttt_model *m);

typedef struct {
    ttt_rng rng;
    int32_t last_token;   /* batch entry 0; -1 if nothing consumed */
    const real *logits;   /* save: [V] (batch 1) or NULL; load: filled */
} ttt_state_extra;

/* Writes PATH atomically. 0 or -1 with ttt_errmsg. */
int ttt_state_save(const char *path, const ttt_model *m, const ttt_decode *s,
                   const ttt_rng *rng, int32_t last_token, const real *logits);

/* Restores s (fresh from ttt_decode_new for the same model, batch 1) from
 * PATH; *rng, *last_token and logits [V] (may be NULL) are filled.
 * 0 or -1 with a message naming PATH and the problem (another checkpoint,
 * truncated or damaged file, missing tensor). */
int ttt_state_load(const char *path, ttt_model *m, ttt_decode *s,
                   ttt_rng *rng, int32_t *last_token, real *logits);

#endif
