/* embed.c - token embedding forward/backward (see embed.h). */
#include "embed.h"
#include "par.h"

#include <string.h>

void embed_forward(real *out, const int32_t *ids, const real *E, int N, int C)
{
    #pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++)
        memcpy(out + (size_t)n * C, E + (size_t)ids[n] * C, sizeof(real) * C);
}

void embed_backward(real *dE, const real *dout, const int32_t *ids, int N, int C)
{
    /* Rows of dE collide when a token repeats, so threads split the channels:
     * each owns a column range of every row and no two write the same place. */
    #pragma omp parallel
    {
        int id, nt;
        par_team(&id, &nt);
        int c0 = (int)((long)C * id / nt), c1 = (int)((long)C * (id + 1) / nt);
        for (int n = 0; n < N; n++) {
            real *d = dE + (size_t)ids[n] * C;
            const real *g = dout + (size_t)n * C;
            for (int c = c0; c < c1; c++) d[c] += g[c];
        }
    }
}
