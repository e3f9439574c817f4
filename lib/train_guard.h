/* train_guard.h - checks that keep a training run from continuing from, or
 * saving, a broken state, and the memory a run needs:
 *   - non-finite values (NaN/Inf) in an arena laid out like the model's
 *     parameters (gradients, parameters, AdamW moments), named by tensor
 *     and index;
 *   - the bytes a training run needs for a B x T micro-batch, so that an
 *     allocation failure can say how much and what to change;
 *   - the non-finite steps a resumed run has already skipped;
 *   - one test-only fault hook (TTT_TEST_NAN_STEP), inert when unset.
 * Like the rest of libttt it never prints: failures go to ttt_errmsg().
 */
#ifndef TTT_TRAIN_GUARD_H
#define TTT_TRAIN_GUARD_H

#include <stddef.h>

#include "model.h"   /* ttt_model, ttt_config, ttt_tensor, real */

/* 1 if x is neither NaN nor infinite. Safe under -ffast-math (FAST=1),
 * where isfinite() may be folded to 1. */
int ttt_guard_finite(double x);

/* The first element of arena x (the model's parameter layout) that is NaN
 * or infinite: its tensor, and its index within that tensor in *index.
 * NULL if every element is finite. */
const ttt_tensor *ttt_guard_find_nonfinite(const ttt_model *m, const real *x, size_t *index);

/* 0 if arena x is finite, else -1 with "WHAT of TENSOR is not finite
 * (first at index I)" (WHAT: "gradient", "parameter", ...). */
int ttt_guard_check(const ttt_model *m, const real *x, const char *what);

/* Describes a step whose loss or gradient norm is not finite, for the
 * message: "the loss is nan", else the first gradient tensor affected
 * (grads: the host gradient arena, may be NULL when it is elsewhere).
 * Always returns -1 (the description is in ttt_errmsg()). */
int ttt_guard_describe_step(const ttt_model *m, const real *grads, double loss, double grad_norm);

/* Memory of a training run in bytes: the parameter, gradient and AdamW
 * arenas (the same layout each, in `real`s) and the model's activation and
 * backward arenas for a micro-batch of B windows of T tokens. */
typedef struct {
    size_t params, grads, opt, acts, total;
} ttt_mem_estimate;

/* Fills e for config c; 0, or -1 if c is invalid or the sizes overflow. */
int ttt_guard_mem_estimate(const ttt_config *c, int B, int T, ttt_mem_estimate *e);

/* Bytes this process can still allocate, roughly: the smallest of
 * physical memory, what the address-space limit (ulimit -v) leaves beside
 * what is mapped now, and the data-segment limit (ulimit -d); 0 if
 * unknown. */
size_t ttt_guard_mem_limit(void);

/* How many lines of a metrics.jsonl text with step <= step record a
 * skipped (non-finite) step: what a resumed run has skipped so far. */
long long ttt_guard_count_skipped(const char *text, size_t n, long long step);

/* Test hook, inert unless the environment sets TTT_TEST_NAN_STEP=N (the
 * gradient) or N:loss (the loss): at step N (1-based) it makes *loss, or
 * the gradient element in the middle of the arena, NaN, as a blow-up
 * would. grads may be NULL (gradients not on the host). Returns 1 if it
 * poisoned something. For the tests only. */
int ttt_guard_test_poison(long long step, double *loss, real *grads, size_t n);

#endif
