/* swiglu.h - the feed-forward block (mlp.gate_proj/up_proj/down_proj, no biases):
 *   out = (silu(x Wg^T) * (x Wu^T)) Wd^T       Wg, Wu [I,C], Wd [C,I]
 * The forward keeps gate, up and h = silu(gate)*up ([N,I] each) in acts.
 * Backward: dx is overwritten (=), dWg dWu dWd accumulate (+=); it needs a
 * scratch of 2*N*I reals and leaves acts intact. */
#ifndef TTT_SWIGLU_H
#define TTT_SWIGLU_H

#include <stddef.h>
#include "../real.h"

static inline size_t swiglu_acts_size(int N, int I) { return (size_t)3 * N * I; }

/* out [N,C], acts [3,N,I] from x [N,C]. */
void swiglu_forward(real *out, real *acts, const real *x, const real *Wg, const real *Wu,
                    const real *Wd, int N, int C, int I);
/* dx [N,C] (=), dWg dWu [I,C] dWd [C,I] (+=) from dout [N,C]; scratch [2,N,I]. */
void swiglu_backward(real *dx, real *dWg, real *dWu, real *dWd, const real *dout,
                     const real *acts, const real *x, const real *Wg, const real *Wu,
                     const real *Wd, real *scratch, int N, int C, int I);

#endif
