/* xent.c - cross-entropy forward/backward (see xent.h). The exponentials are
 * taken in the precision of `real` (the vocabulary-wide exp is the cost
 * here), their sums in double. */
#include "xent.h"

#include <math.h>
#include <string.h>

#ifdef TTT_F64
#define EXPR exp
#else
#define EXPR expf
#endif

double xent_forward(real *losses, real *lse, const real *logits, const int32_t *targets,
                    int N, int V, long *count)
{
    double total = 0;
    long cnt = 0;
    #pragma omp parallel for schedule(static) reduction(+:total, cnt)
    for (int n = 0; n < N; n++) {
        const real *l = logits + (size_t)n * V;
        real mx = l[0];
        for (int v = 1; v < V; v++) if (l[v] > mx) mx = l[v];
        double s = 0;
        for (int v = 0; v < V; v++) s += EXPR(l[v] - mx);
        double z = mx + log(s);
        lse[n] = (real)z;
        int t = targets ? targets[n] : -1;
        if (t >= 0 && t < V) {
            losses[n] = (real)(z - l[t]);
            total += z - l[t];
            cnt++;
        } else {
            losses[n] = 0;
        }
    }
    *count = cnt;
    return total;
}

void xent_backward(real *dlogits, const real *logits, const real *lse, const int32_t *targets,
                   double scale, int N, int V)
{
    /* loss_n = lse_n - l[t]:  dl[v] = scale (exp(l[v] - lse_n) - [v == t]) */
    #pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        real *d = dlogits + (size_t)n * V;
        const real *l = logits + (size_t)n * V;
        int t = targets[n];
        if (t < 0 || t >= V) {
            memset(d, 0, sizeof(real) * V);
            continue;
        }
        real z = lse[n], sc = (real)scale;
        for (int v = 0; v < V; v++) d[v] = sc * EXPR(l[v] - z);
        d[t] -= sc;
    }
}
