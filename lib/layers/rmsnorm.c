/* rmsnorm.c - RMSNorm forward/backward (see rmsnorm.h). Row sums are
 * accumulated in double so the float32 build stays close to the reference. */
#include "rmsnorm.h"

#include <math.h>
#include <stddef.h>

void rmsnorm_forward(real *out, real *rstd, const real *x, const real *w, int N, int C, double eps)
{
    #pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        const real *xr = x + (size_t)n * C;
        real *o = out + (size_t)n * C;
        double ss = 0;
        for (int c = 0; c < C; c++) ss += (double)xr[c] * xr[c];
        real r = (real)(1.0 / sqrt(ss / C + eps));
        for (int c = 0; c < C; c++) o[c] = w[c] * (xr[c] * r);
        if (rstd) rstd[n] = r;
    }
}

void rmsnorm_backward(real *dx, real *dw, const real *dout, const real *x, const real *w,
                      const real *rstd, int N, int C)
{
    /* xhat = x r, out = w xhat:
     * dxhat = dout w;  dx = r (dxhat - xhat mean(dxhat xhat));  dw += dout xhat */
    #pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        const real *xr = x + (size_t)n * C, *g = dout + (size_t)n * C;
        real *d = dx + (size_t)n * C;
        real r = rstd[n];
        double dot = 0;
        for (int c = 0; c < C; c++) dot += (double)g[c] * w[c] * xr[c] * r;
        real m = (real)(dot / C);
        for (int c = 0; c < C; c++) d[c] = r * (g[c] * w[c] - xr[c] * r * m);
    }
    /* dw: threads own channels, rows summed in order (deterministic). */
    #pragma omp parallel for schedule(static)
    for (int c = 0; c < C; c++) {
        double s = 0;
        for (int n = 0; n < N; n++) s += (double)dout[(size_t)n * C + c] * x[(size_t)n * C + c] * rstd[n];
        dw[c] += (real)s;
    }
}
