/* inspect_tensor.h - numbers about safetensors tensors for ttt-inspect:
 * element conversion of any dtype to double, summary statistics and
 * element-wise comparison of two tensors. Everything works in chunks over
 * the mapped bytes, so a tensor of any size needs no full-size buffer.
 */
#ifndef TTT_INSPECT_TENSOR_H
#define TTT_INSPECT_TENSOR_H

#include <stddef.h>
#include <stdint.h>

#include "safetensors.h"   /* ttt_st, ttt_st_tensor */

/* Elements [first, first+n) of t as doubles (integers exactly up to 2^53). */
void ttt_inspect_convert(const ttt_st *st, const ttt_st_tensor *t, uint64_t first, uint64_t n, double *out);

/* t's shape as text, "[2,16,16]", into b (n bytes, truncated if short). */
void ttt_shape_str(const ttt_st_tensor *t, char *b, size_t n);

/* Statistics over the finite elements; nonfinite counts NaN and +-Inf.
 * Without a finite element mean/std/min/max/norm are NaN. std is the
 * population standard deviation; norm the Euclidean (Frobenius) norm. */
typedef struct {
    uint64_t n, nonfinite;
    double mean, std, min, max, norm;
} ttt_tstats;

void ttt_tstats_of(const ttt_st *st, const ttt_st_tensor *t, ttt_tstats *s);

/* Comparison of two tensors with the same number of elements.
 * identical: same dtype, shape and bytes. ndiff: elements whose values
 * differ (a NaN against a number counts, with max_abs = +Inf).
 * rel = |a-b| / max(|a|, |b|) in the Euclidean norm, 0 when both are 0. */
typedef struct {
    int identical;
    uint64_t ndiff;
    double max_abs, norm_diff, norm_a, norm_b, rel;
} ttt_tdiff;

/* 0, or -1 with ttt_errmsg when the tensors cannot be compared (element
 * counts or shapes differ). */
int ttt_tdiff_of(const ttt_st *a, const ttt_st_tensor *ta, const ttt_st *b, const ttt_st_tensor *tb, ttt_tdiff *d);

#endif
