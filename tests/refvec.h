/* refvec.h - reader for the reference vector cases (TTREF1, see
 * ../shared/refvectors/README.md): tensors.bin plus meta.txt. Test-only. */
#ifndef TTT_REFVEC_H
#define TTT_REFVEC_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    char name[128];
    int is_int;          /* i64 */
    int ndim;
    int64_t shape[8];
    size_t numel;
    double *f;           /* f64 data (also filled for i64, converted) */
    int64_t *i;          /* i64 data, NULL for f64 */
} refvec_tensor;

typedef struct {
    char dir[1024];
    refvec_tensor *t;
    int n;
    char *meta;          /* meta.txt contents */
} refvec_case;

/* Loads DIR/tensors.bin and DIR/meta.txt. 0 or -1 with ttt_errmsg. */
int refvec_load(refvec_case *c, const char *dir);
void refvec_free(refvec_case *c);
const refvec_tensor *refvec_get(const refvec_case *c, const char *name);
/* Value of "key = value" in meta.txt copied into buf; 0 or -1 if absent. */
int refvec_meta(const refvec_case *c, const char *key, char *buf, size_t n);

#endif

/* ---- comparison (compiled in the precision of `real`) ---- */
#include "../lib/real.h"
#include <stdio.h>

typedef struct {
    double tol;            /* max |ours - ref| / max |ref| allowed per tensor */
    int checked, failed;
    double worst;
    char worst_name[128];
    FILE *log;             /* failures are described here (stderr) */
} refvec_tally;

/* max |ours - ref| / max |ref| (max |ref| floored at 1e-30). */
double refvec_relerr(const refvec_tensor *t, const real *ours);
/* Compares `ours` with the case tensor `name` if the case has it (returns 0
 * and counts nothing otherwise); counts a failure on a size mismatch or an
 * error above tol. Returns 1 if compared. */
int refvec_check(refvec_tally *tl, const refvec_case *c, const char *name, const real *ours, size_t numel);
