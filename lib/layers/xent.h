/* xent.h - mean cross-entropy of logits against targets; targets < 0 are
 * ignored (the last position, masked tokens). The loss is the mean over the
 * valid targets, so its gradient is (softmax - onehot) / count on valid rows
 * and 0 on ignored ones. dlogits is overwritten (=). */
#ifndef TTT_XENT_H
#define TTT_XENT_H

#include <stdint.h>
#include "../real.h"

/* losses [N] (0 where ignored), lse [N] logsumexp per row (kept for the
 * backward) from logits [N,V], targets [N]. Returns the sum of the valid
 * losses and sets *count to their number. Targets >= V count as invalid:
 * the caller checks them. */
double xent_forward(real *losses, real *lse, const real *logits, const int32_t *targets,
                    int N, int V, long *count);
/* dlogits [N,V] (=) of (sum of valid losses) * scale (scale = 1/count for the mean). */
void xent_backward(real *dlogits, const real *logits, const real *lse, const int32_t *targets,
                   double scale, int N, int V);

#endif
