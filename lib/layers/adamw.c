/* adamw.c - AdamW update and global gradient norm (adamw.h). */
#include "adamw.h"

#include <math.h>
#include <stdlib.h>

ttt_adamw_params ttt_adamw_defaults(void)
{
    return (ttt_adamw_params){ 0.9, 0.95, 1e-8, 0.1 };
}

void ttt_adamw_update(real *params, const real *grads, real *m, real *v, size_t n,
                      const ttt_adamw_params *hp, double lr, double grad_scale, long long t)
{
    const double b1 = hp->beta1, b2 = hp->beta2, eps = hp->eps, wd = hp->weight_decay;
    const double c1 = 1.0 - pow(b1, (double)t), c2 = 1.0 - pow(b2, (double)t);
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) {
        double g = (double)grads[i] * grad_scale;
        double mi = b1 * m[i] + (1 - b1) * g;
        double vi = b2 * v[i] + (1 - b2) * g * g;
        m[i] = (real)mi;
        v[i] = (real)vi;
        /* The stored (rounded) moments feed the update, as in optax. */
        double u = ((double)m[i] / c1) / (sqrt((double)v[i] / c2) + eps) + wd * (double)params[i];
        params[i] = (real)((double)params[i] - lr * u);
    }
}

#define NORM_CHUNK 65536

double ttt_grad_norm(const real *g, size_t n)
{
    size_t nchunks = (n + NORM_CHUNK - 1) / NORM_CHUNK;
    double stackbuf[64], *part = nchunks <= 64 ? stackbuf : malloc(nchunks * sizeof *part);
    if (!part) {   /* out of memory: serial, still deterministic */
        double s = 0;
        for (size_t i = 0; i < n; i++) s += (double)g[i] * g[i];
        return sqrt(s);
    }
#pragma omp parallel for schedule(static)
    for (size_t c = 0; c < nchunks; c++) {
        size_t lo = c * NORM_CHUNK, hi = lo + NORM_CHUNK < n ? lo + NORM_CHUNK : n;
        double s = 0;
        for (size_t i = lo; i < hi; i++) s += (double)g[i] * g[i];
        part[c] = s;
    }
    double s = 0;
    for (size_t c = 0; c < nchunks; c++) s += part[c];
    if (part != stackbuf) free(part);
    return sqrt(s);
}

double ttt_clip_factor(double norm, double max_norm)
{
    if (max_norm <= 0 || !(norm > max_norm)) return 1.0;
    return max_norm / norm;
}
