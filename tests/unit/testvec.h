/* testvec.h - vector helpers the layer and model tests share (float64
 * build): random normal vectors, dot product, largest absolute difference. */
#ifndef TTT_TESTVEC_H
#define TTT_TESTVEC_H

#include "../../lib/real.h"
#include "../../lib/rng.h"

#include <math.h>
#include <stdlib.h>

/* n values offset + scale * N(0,1) from rng, malloc'ed (caller frees). */
static inline real *randvec(ttt_rng *rng, size_t n, double scale, double offset)
{
    real *v = malloc((n ? n : 1) * sizeof *v);
    for (size_t i = 0; i < n; i++) v[i] = offset + scale * ttt_rng_normal(rng);
    return v;
}

static inline double dot(const real *a, const real *b, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}

/* max |a[i] - b[i]| */
static inline double maxdiff(const real *a, const real *b, size_t n)
{
    double m = 0;
    for (size_t i = 0; i < n; i++) m = fmax(m, fabs(a[i] - b[i]));
    return m;
}

#endif
