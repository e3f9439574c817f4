/* dwconv.c - causal depthwise convolution, forward, backward, decode step
 * (see dwconv.h for the formula and the accumulation contract). */
#include "dwconv.h"

#include <string.h>

void dwconv_forward(real *y, const real *x, const real *w, const real *bias,
                    int B, int T, int C, int k)
{
    #pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            real *yo = y + ((size_t)b * T + t) * C;
            for (int c = 0; c < C; c++) yo[c] = bias ? bias[c] : 0;
            for (int j = 0; j < k; j++) {
                int s = t - (k - 1) + j;
                if (s < 0) continue;
                const real *xi = x + ((size_t)b * T + s) * C;
                for (int c = 0; c < C; c++) yo[c] += w[c * k + j] * xi[c];
            }
        }
}

void dwconv_backward(real *dx, real *dw, real *dbias, const real *dy, const real *x,
                     const real *w, int B, int T, int C, int k)
{
    /* dx[s] = sum_j w[j] dy[s+(k-1)-j] */
    #pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < B; b++)
        for (int s = 0; s < T; s++) {
            real *dxo = dx + ((size_t)b * T + s) * C;
            memset(dxo, 0, sizeof(real) * C);
            for (int j = 0; j < k; j++) {
                int t = s + (k - 1) - j;
                if (t >= T) continue;
                const real *dyi = dy + ((size_t)b * T + t) * C;
                for (int c = 0; c < C; c++) dxo[c] += w[c * k + j] * dyi[c];
            }
        }
    /* dw[c,j] += sum_{b,t} dy[t] x[t-(k-1)+j]; dbias[c] += sum dy; per channel, so threads own c */
    #pragma omp parallel for schedule(static)
    for (int c = 0; c < C; c++) {
        double db = 0, dwj[16] = { 0 };
        for (int b = 0; b < B; b++)
            for (int t = 0; t < T; t++) {
                real g = dy[((size_t)b * T + t) * C + c];
                db += g;
                for (int j = 0; j < k && j < 16; j++) {
                    int s = t - (k - 1) + j;
                    if (s >= 0) dwj[j] += g * x[((size_t)b * T + s) * C + c];
                }
            }
        if (dbias) dbias[c] += (real)db;
        for (int j = 0; j < k && j < 16; j++) dw[c * k + j] += (real)dwj[j];
    }
}

void dwconv_step(real *y, real *state, const real *x, const real *w, const real *bias,
                 int B, int C, int k)
{
    for (int b = 0; b < B; b++)
        for (int c = 0; c < C; c++) {
            real *st = state + ((size_t)b * C + c) * k;
            memmove(st, st + 1, sizeof(real) * (k - 1));
            st[k - 1] = x[(size_t)b * C + c];
            real acc = bias ? bias[c] : 0;
            for (int j = 0; j < k; j++) acc += st[j] * w[c * k + j];
            y[(size_t)b * C + c] = acc;
        }
}
