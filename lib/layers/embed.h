/* embed.h - token embedding lookup (model.embed_tokens, tied to the lm head).
 * Backward: dE accumulates (+=); there is no activation gradient. */
#ifndef TTT_EMBED_H
#define TTT_EMBED_H

#include <stdint.h>
#include "../real.h"

/* out [N,C] = E[ids[n]]; ids [N] must be in [0,V) (checked by the caller). */
void embed_forward(real *out, const int32_t *ids, const real *E, int N, int C);
/* dE [V,C] += scatter of dout [N,C] by ids [N]. */
void embed_backward(real *dE, const real *dout, const int32_t *ids, int N, int C);

#endif
