/* checkpoint.h - model checkpoints and training run directories.
 *
 * A RUNDIR (written by ttt-train, read by ttt-eval/generate/inspect) holds:
 *   model.safetensors      every parameter, F32, the reference PyTorch names
 *                          and shapes (the model's tensor table); metadata
 *                          format "pt", config (config JSON), step,
 *                          tokenizer_hash (16 hex digits), xxh3.<name>
 *   optimizer.safetensors  adam_m.<name>, adam_v.<name> (F32, same shapes),
 *                          rng (U64 [4], the window sampler's state);
 *                          metadata format "ttt-optimizer", version "1",
 *                          step, tokens_seen, tokenizer_hash, xxh3.<name>
 *   run.json               the training options (written by the caller)
 *   config.json, metrics.jsonl, tokenizer.json, lock   (ttt-train's own)
 *
 * Saving is one unit: the three checkpoint files are written (atomically,
 * fsync'ed) into RUNDIR/ckpt.tmp/, that directory is renamed to
 * RUNDIR/ckpt.new/ (the commit point), then each file is renamed into
 * RUNDIR and ckpt.new/ is removed. A crash before the commit leaves the old
 * set; a crash after it is completed by ttt_ckpt_recover() (ttt-train calls
 * it under its lock), and readers meanwhile prefer the files in ckpt.new/.
 * The step in both safetensors files must agree on load.
 */
#ifndef TTT_CHECKPOINT_H
#define TTT_CHECKPOINT_H

#include <stdint.h>

#include "model.h"   /* ttt_model, ttt_config, real */
#include "rng.h"     /* ttt_rng */

typedef struct {
    long long step;           /* optimizer updates applied */
    uint64_t tokenizer_hash;  /* of the training data (0 if unknown) */
    uint64_t tokens_seen;     /* training tokens consumed */
    ttt_rng rng;              /* window sampler state after `step` updates */
    real *m, *v;              /* AdamW moments [num_params], arena layout */
} ttt_opt_state;

/* 1 if DIR holds a checkpoint (model.safetensors directly or in ckpt.new/). */
int ttt_ckpt_is_run(const char *dir);

/* Writes PATH (a .safetensors file) atomically with the metadata above. */
int ttt_ckpt_write_model(const char *path, ttt_model *m, long long step, uint64_t tokenizer_hash);

/* Saves {model, optimizer, run.json} into RUNDIR as one unit (see above). */
int ttt_ckpt_save(const char *rundir, ttt_model *m, const ttt_opt_state *o, const char *run_json);

/* Completes a save interrupted after its commit point and removes an
 * uncommitted ckpt.tmp/. Call with the run's lock held. 0 or -1. */
int ttt_ckpt_recover(const char *rundir);

/* The model file of PATH: PATH itself if it is a file, else the newest
 * RUNDIR/model.safetensors. Writes into buf; 0 or -1 if none. */
int ttt_ckpt_model_path(const char *path, char *buf, size_t n);

/* Reads the config stored in a checkpoint's metadata (PATH: file or RUNDIR). */
int ttt_ckpt_read_config(const char *path, ttt_config *c);

/* Builds a model from a checkpoint (config from its metadata), verifying
 * every checksum; step and tokenizer_hash may be NULL. NULL + ttt_errmsg. */
ttt_model *ttt_ckpt_load_model(const char *path, long long *step, uint64_t *tokenizer_hash);

/* Loads the weights of PATH into m: the set of names and every shape must
 * equal the model's tensor table. 0 or -1 naming the tensor. */
int ttt_ckpt_load_weights(const char *path, ttt_model *m, long long *step, uint64_t *tokenizer_hash);

/* Loads RUNDIR's optimizer state into o (o->m, o->v allocated by the caller,
 * num_params each) and checks that its step equals want_step (the model's). */
int ttt_ckpt_load_optimizer(const char *rundir, const ttt_model *m, ttt_opt_state *o, long long want_step);

#endif
