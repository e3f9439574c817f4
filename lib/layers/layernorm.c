/* layernorm.c - row LayerNorm forward/backward and the fused LN+l2 inner
 * gradient with its backward (see layernorm.h; formulas from spec 3, 8.3). */
#include "layernorm.h"

#include <math.h>

/* mean and sigma of one row, two-pass, biased variance */
static void row_stats(const real *x, int n, double eps, real *mean, real *sigma)
{
    double s = 0;
    _Pragma("omp simd reduction(+:s)")
    for (int i = 0; i < n; i++) s += x[i];
    double mu = s / n, v = 0;
    _Pragma("omp simd reduction(+:v)")
    for (int i = 0; i < n; i++) { double d = x[i] - mu; v += d * d; }
    *mean = (real)mu;
    *sigma = (real)sqrt(v / n + eps);
}

void ln_row_forward(real *y, real *mean, real *rstd, const real *x, const real *gamma,
                    const real *beta, int n, double eps)
{
    real mu, sig;
    row_stats(x, n, eps, &mu, &sig);
    real rs = 1 / sig;
    _Pragma("omp simd")
    for (int i = 0; i < n; i++) y[i] = gamma[i] * ((x[i] - mu) * rs) + beta[i];
    if (mean) *mean = mu;
    if (rstd) *rstd = rs;
}

/* y = gamma*xh + beta, xh = (x-mu)*rstd:
 * dxh = gamma*dy; dx = rstd*(dxh - mean(dxh) - xh*mean(dxh*xh)); dgamma += dy*xh; dbeta += dy */
void ln_row_backward(real *dx, real *dgamma, real *dbeta, const real *dy, const real *x,
                     real mean, real rstd, const real *gamma, int n)
{
    double s1 = 0, s2 = 0;
    _Pragma("omp simd reduction(+:s1, s2)")
    for (int i = 0; i < n; i++) {
        real xh = (x[i] - mean) * rstd, dxh = gamma[i] * dy[i];
        s1 += dxh;
        s2 += dxh * xh;
    }
    if (dgamma)
        _Pragma("omp simd")
        for (int i = 0; i < n; i++) dgamma[i] += dy[i] * ((x[i] - mean) * rstd);
    if (dbeta)
        _Pragma("omp simd")
        for (int i = 0; i < n; i++) dbeta[i] += dy[i];
    real m1 = (real)(s1 / n), m2 = (real)(s2 / n);
    _Pragma("omp simd")
    for (int i = 0; i < n; i++) {
        real xh = (x[i] - mean) * rstd;
        dx[i] = rstd * (gamma[i] * dy[i] - m1 - xh * m2);
    }
}

/* (Rows are d = 64 long and run 16 at a time per mini-batch: the loops are
 * `omp simd` reductions, 1/sigma multiplied rather than divided.)
 * zh = (z-mu)/sigma; y = gamma*zh + beta; g_y = gamma*(y - target);
 * G = (g_y - mean(g_y) - zh*mean(g_y*zh)) / sigma */
void ln_l2grad_row(real *G, const real *z, const real *target, const real *gamma,
                   const real *beta, int n, double eps)
{
    real mu, sig;
    row_stats(z, n, eps, &mu, &sig);
    double s1 = 0, s2 = 0;
    real rs = 1 / sig;
    _Pragma("omp simd reduction(+:s1, s2)")
    for (int i = 0; i < n; i++) {
        real zh = (z[i] - mu) * rs;
        real gy = gamma[i] * (gamma[i] * zh + beta[i] - target[i]);
        G[i] = gy;
        s1 += gy;
        s2 += gy * zh;
    }
    real m1 = (real)(s1 / n), m2 = (real)(s2 / n);
    _Pragma("omp simd")
    for (int i = 0; i < n; i++) {
        real zh = (z[i] - mu) * rs;
        G[i] = (G[i] - m1 - zh * m2) * rs;
    }
}

/* Spec 8.3 LNl2grad_bwd, m = mean(g_y*zh):
 *   dg_y = (dG - mean(dG) - zh*mean(dG*zh)) / sigma
 *   dzh  = -(m*dG + mean(dG*zh)*g_y)/sigma + gamma^2*dg_y
 *   dsig = -sum(dG*G)/sigma - sum(dzh*zh)/sigma
 *   dgamma += dg_y*(y - t + gamma*zh);  dbeta += gamma*dg_y;  dt = -gamma*dg_y
 *   dc = dzh/sigma + dsig*zh/n;  dz = dc - mean(dc) */
void ln_l2grad_row_backward(real *dz, real *dtarget, real *dgamma, real *dbeta, const real *dG,
                            const real *z, const real *target, const real *gamma,
                            const real *beta, int n, double eps)
{
    real mu, sig;
    row_stats(z, n, eps, &mu, &sig);
    real zh[n], gy[n], G[n];
    double sgy = 0, sgyz = 0, sdG = 0, sdGz = 0;
    real rs = 1 / sig;
    _Pragma("omp simd reduction(+:sgy, sgyz, sdG, sdGz)")
    for (int i = 0; i < n; i++) {
        zh[i] = (z[i] - mu) * rs;
        gy[i] = gamma[i] * (gamma[i] * zh[i] + beta[i] - target[i]);
        sgy += gy[i];
        sgyz += gy[i] * zh[i];
        sdG += dG[i];
        sdGz += dG[i] * zh[i];
    }
    real mgy = (real)(sgy / n), m = (real)(sgyz / n);
    real mdG = (real)(sdG / n), mdGz = (real)(sdGz / n);
    double sdGG = 0, sdzz = 0;
    _Pragma("omp simd reduction(+:sdGG)")
    for (int i = 0; i < n; i++) {
        G[i] = (gy[i] - mgy - zh[i] * m) * rs;
        sdGG += dG[i] * G[i];
    }
    /* dz is used as storage for dzh until the end */
    for (int i = 0; i < n; i++) {
        real dgy = (dG[i] - mdG - zh[i] * mdGz) * rs;
        real y = gamma[i] * zh[i] + beta[i];
        real dzh = -(m * dG[i] + mdGz * gy[i]) * rs + gamma[i] * gamma[i] * dgy;
        sdzz += dzh * zh[i];
        if (dgamma) dgamma[i] += dgy * (y - target[i] + gamma[i] * zh[i]);
        if (dbeta) dbeta[i] += gamma[i] * dgy;
        if (dtarget) dtarget[i] = -gamma[i] * dgy;
        dz[i] = dzh;
    }
    real dsig = (real)(-sdGG / sig - sdzz / sig);
    double sdc = 0;
    _Pragma("omp simd reduction(+:sdc)")
    for (int i = 0; i < n; i++) {
        dz[i] = dz[i] * rs + dsig * zh[i] / n;
        sdc += dz[i];
    }
    real mdc = (real)(sdc / n);
    _Pragma("omp simd")
    for (int i = 0; i < n; i++) dz[i] -= mdc;
}
