/* dwconv.h - causal depthwise 1-D convolution over time (the Mamba
 * backbone's pre-conv and the TTT layer's conv_q / conv_k; spec section 1):
 *   y[b,t,c] = bias[c] + sum_{j<k} w[c,j] * x[b, t-(k-1)+j, c]   (x[t<0] = 0)
 * so w[c,k-1] multiplies the current token. Weights in the PyTorch layout
 * [C,1,k] (the middle 1 is dropped here).
 * Backward: dx is overwritten (=), dw and dbias accumulate (+=).
 */
#ifndef TTT_DWCONV_H
#define TTT_DWCONV_H

#include "../real.h"

void dwconv_forward(real *y, const real *x, const real *w, const real *bias,
                    int B, int T, int C, int k);
void dwconv_backward(real *dx, real *dw, real *dbias, const real *dy, const real *x,
                     const real *w, int B, int T, int C, int k);
/* One decoding step: state [B,C,k] holds the last k inputs, oldest first;
 * shifts x [B,C] in and writes y [B,C]. */
void dwconv_step(real *y, real *state, const real *x, const real *w, const real *bias,
                 int B, int C, int k);

#endif
