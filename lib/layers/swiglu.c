/* swiglu.c - SwiGLU feed-forward forward/backward (see swiglu.h). The three
 * products go through ttt_gemm; only the gating is done here. */
#include "swiglu.h"
#include "../blas.h"     /* ttt_gemm */

#include <math.h>

void swiglu_forward(real *out, real *acts, const real *x, const real *Wg, const real *Wu,
                    const real *Wd, int N, int C, int I)
{
    real *gate = acts, *up = acts + (size_t)N * I, *h = acts + (size_t)2 * N * I;
    ttt_gemm(0, 1, N, I, C, 1, x, C, Wg, C, 0, gate, I);
    ttt_gemm(0, 1, N, I, C, 1, x, C, Wu, C, 0, up, I);
    size_t n = (size_t)N * I;
    #pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) {
        real g = gate[i];
        h[i] = g / (1 + (real)exp(-(double)g)) * up[i];
    }
    ttt_gemm(0, 1, N, C, I, 1, h, I, Wd, I, 0, out, C);
}

void swiglu_backward(real *dx, real *dWg, real *dWu, real *dWd, const real *dout,
                     const real *acts, const real *x, const real *Wg, const real *Wu,
                     const real *Wd, real *scratch, int N, int C, int I)
{
    const real *gate = acts, *up = acts + (size_t)N * I, *h = acts + (size_t)2 * N * I;
    real *dgate = scratch, *dup = scratch + (size_t)N * I;
    /* out = h Wd^T:  dWd += dout^T h,  dh = dout Wd (into dgate) */
    ttt_gemm(1, 0, C, I, N, 1, dout, C, h, I, 1, dWd, I);
    ttt_gemm(0, 0, N, I, C, 1, dout, C, Wd, I, 0, dgate, I);
    /* h = silu(g) u:  du = dh silu(g),  dg = dh u s (1 + g (1 - s)),  s = sigmoid(g) */
    size_t n = (size_t)N * I;
    #pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) {
        real g = gate[i], dh = dgate[i];
        real s = (real)(1 / (1 + exp(-(double)g)));
        dup[i] = dh * g * s;
        dgate[i] = dh * up[i] * s * (1 + g * (1 - s));
    }
    /* gate = x Wg^T, up = x Wu^T */
    ttt_gemm(1, 0, I, C, N, 1, dgate, I, x, C, 1, dWg, C);
    ttt_gemm(1, 0, I, C, N, 1, dup, I, x, C, 1, dWu, C);
    ttt_gemm(0, 0, N, C, I, 1, dgate, I, Wg, C, 0, dx, C);
    ttt_gemm(0, 0, N, C, I, 1, dup, I, Wu, C, 1, dx, C);
}
