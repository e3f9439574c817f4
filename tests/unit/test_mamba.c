/* test_mamba.c - unit tests of the Mamba block (float64 build): the chunked
 * selective scan against a direct sequential implementation written out
 * here, its backward and the whole block's against central finite
 * differences, the chunk size irrelevant to the result, and recurrent
 * decoding equal to the full forward. */
#include "check.h"
#include "testvec.h"
#include "../../lib/layers/mamba.h"
#include "../../lib/rng.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static ttt_rng rng;

/* ---- the scan ---- */

enum { SB = 2, ST = 150, SE = 40, SS = 6, LD = 2 * SS + 3 };  /* 3 chunks, 2 channel blocks */

/* The recurrence exactly as written in the paper, one (b, e, s) at a time. */
static void direct_scan(real *y, const real *u, const real *dt, const real *A, const real *bc,
                        const real *Dv)
{
    for (int b = 0; b < SB; b++)
        for (int e = 0; e < SE; e++) {
            double h[SS] = { 0 };
            for (int t = 0; t < ST; t++) {
                int n = b * ST + t;
                double acc = 0;
                for (int s = 0; s < SS; s++) {
                    double abar = exp(dt[n * SE + e] * A[e * SS + s]);
                    double bbar = dt[n * SE + e] * bc[n * LD + s];
                    h[s] = abar * h[s] + bbar * u[n * SE + e];
                    acc += h[s] * bc[n * LD + SS + s];
                }
                y[n * SE + e] = acc + Dv[e] * u[n * SE + e];
            }
        }
}

static real *hs_buf(void) { return malloc((size_t)SB * ((ST + MAMBA_CHUNK - 1) / MAMBA_CHUNK) * SE * SS * sizeof(real)); }

/* Finite differences subtract the two outputs elementwise before the dot
 * product with R: differencing two large sums would lose ~1e-8. */
static real *fd_out[2];

static void scan_out(int which, const real *u, const real *dt, const real *A, const real *bc,
                     const real *Dv)
{
    real *hs = hs_buf();
    mamba_scan_forward(fd_out[which], hs, u, dt, A, bc, bc + SS, LD, Dv, SB, ST, SE, SS);
    free(hs);
}

static double fd_diff(const real *R, size_t n, double h)
{
    double s = 0;
    for (size_t i = 0; i < n; i++) s += (fd_out[0][i] - fd_out[1][i]) * R[i];
    return s / (2 * h);
}

static void test_scan(void)
{
    size_t n = (size_t)SB * ST * SE, nbc = (size_t)SB * ST * LD;
    real *u = randvec(&rng, n, 1, 0), *dt = malloc(n * sizeof *dt), *A = malloc(SE * SS * sizeof *A);
    real *bc = randvec(&rng, nbc, 1, 0), *Dv = randvec(&rng, SE, 1, 0), *R = randvec(&rng, n, 1, 0);
    for (size_t i = 0; i < n; i++) dt[i] = 0.05 + 0.5 * ttt_rng_uniform(&rng);
    for (int i = 0; i < SE * SS; i++) A[i] = -(1 + i % SS) * (0.5 + ttt_rng_uniform(&rng));
    real *y = malloc(n * sizeof *y), *yd = malloc(n * sizeof *yd), *hs = hs_buf();
    mamba_scan_forward(y, hs, u, dt, A, bc, bc + SS, LD, Dv, SB, ST, SE, SS);
    direct_scan(yd, u, dt, A, bc, Dv);
    CHECK(maxdiff(y, yd, n) < 1e-12);

    real *du = malloc(n * sizeof *du), *ddt = malloc(n * sizeof *ddt);
    real *dbc = calloc(nbc, sizeof *dbc), *dA = calloc(SE * SS, sizeof *dA), *dD = calloc(SE, sizeof *dD);
    real *scr = malloc(mamba_scan_scratch_size(SB, ST, SE, SS) * sizeof *scr);
    fd_out[0] = malloc(n * sizeof(real));
    fd_out[1] = malloc(n * sizeof(real));
    mamba_scan_backward(du, ddt, dbc, dbc + SS, dA, dD, R, hs, u, dt, A, bc, bc + SS, LD, Dv,
                        SB, ST, SE, SS, scr);
    /* the padding columns of the strided B/C rows are left alone */
    CHECK(dbc[2 * SS] == 0 && dbc[LD + 2 * SS + 2] == 0);
    double h = 1e-6;
    struct { real *x, *g; size_t n, step; } v[] = {
        { u, du, n, 37 }, { dt, ddt, n, 41 }, { A, dA, SE * SS, 7 }, { Dv, dD, SE, 3 },
    };
    for (int w = 0; w < 4; w++)
        for (size_t i = w; i < v[w].n; i += v[w].step) {
            real s = v[w].x[i];
            v[w].x[i] = s + h; scan_out(0, u, dt, A, bc, Dv);
            v[w].x[i] = s - h; scan_out(1, u, dt, A, bc, Dv);
            v[w].x[i] = s;
            CHECK_CLOSE(v[w].g[i], fd_diff(R, n, h), 1e-9, 1e-6);
        }
    for (size_t i = 1; i < nbc; i += 29) {
        if (i % LD >= 2 * SS) continue;
        real s = bc[i];
        bc[i] = s + h; scan_out(0, u, dt, A, bc, Dv);
        bc[i] = s - h; scan_out(1, u, dt, A, bc, Dv);
        bc[i] = s;
        CHECK_CLOSE(dbc[i], fd_diff(R, n, h), 1e-9, 1e-6);
    }
    /* the state really carries across the chunk boundary at 64: y at t = 70
     * depends on u at t = 0 (decayed by ~1e-9, far above rounding) */
    double y0 = y[(size_t)70 * SE];
    u[0] += 1;
    mamba_scan_forward(y, hs, u, dt, A, bc, bc + SS, LD, Dv, SB, ST, SE, SS);
    CHECK(fabs(y[(size_t)70 * SE] - y0) > 1e-13);
    free(fd_out[0]); free(fd_out[1]);
    free(u); free(dt); free(A); free(bc); free(Dv); free(R); free(y); free(yd); free(hs);
    free(du); free(ddt); free(dbc); free(dA); free(dD); free(scr);
}

/* ---- the block ---- */

static mamba_config mc;

typedef struct { real *t[9]; size_t n[9]; } block;   /* tensors in mamba_params order */

static mamba_params view(block *b)
{
    return (mamba_params){ b->t[0], b->t[1], b->t[2], b->t[3], b->t[4], b->t[5], b->t[6], b->t[7], b->t[8] };
}

static void block_alloc(block *b, int zero)
{
    int C = mc.C, E = mc.E, S = mc.S, R = mc.R, k = mc.k;
    size_t n[9] = { (size_t)2 * E * C, (size_t)E * k, E, (size_t)(R + 2 * S) * E, (size_t)E * R, E,
                    (size_t)E * S, E, (size_t)C * E };
    double scale[9] = { 0.3, 0.4, 0.2, 0.3, 0.5, 0.3, 0.2, 0.5, 0.3 };
    for (int i = 0; i < 9; i++) {
        b->n[i] = n[i];
        b->t[i] = zero ? calloc(n[i], sizeof(real)) : randvec(&rng, n[i], scale[i], 0);
    }
    if (!zero)
        for (int e = 0; e < E; e++)
            for (int s = 0; s < S; s++) b->t[6][e * S + s] += log(1.0 + s);   /* A_log as initialised */
}

static void block_free(block *b)
{
    for (int i = 0; i < 9; i++) free(b->t[i]);
}

static void block_out(int which, const real *x, block *p, int B, int T)
{
    real *acts = malloc(mamba_acts_size(&mc, B, T) * sizeof *acts);
    mamba_params pp = view(p);
    mamba_forward(&mc, fd_out[which], acts, x, &pp, B, T);
    free(acts);
}

static void test_block_fd(void)
{
    int B = 2, T = 70, C = mc.C;
    size_t NC = (size_t)B * T * C;
    block p, g;
    block_alloc(&p, 0);
    block_alloc(&g, 1);
    mamba_params pp = view(&p), gg = view(&g);
    real *x = randvec(&rng, NC, 1, 0), *R = randvec(&rng, NC, 1, 0), *out = malloc(NC * sizeof *out);
    real *dx = malloc(NC * sizeof *dx), *acts = malloc(mamba_acts_size(&mc, B, T) * sizeof *acts);
    real *scr = malloc(mamba_scratch_size(&mc, B, T) * sizeof *scr);
    fd_out[0] = malloc(NC * sizeof(real));
    fd_out[1] = malloc(NC * sizeof(real));
    mamba_forward(&mc, out, acts, x, &pp, B, T);
    mamba_backward(&mc, dx, &gg, R, acts, x, &pp, scr, B, T);
    double h = 1e-6;
    for (size_t i = 2; i < NC; i += 53) {
        real s = x[i];
        x[i] = s + h; block_out(0, x, &p, B, T);
        x[i] = s - h; block_out(1, x, &p, B, T);
        x[i] = s;
        CHECK_CLOSE(dx[i], fd_diff(R, NC, h), 1e-9, 1e-6);
    }
    for (int w = 0; w < 9; w++) {
        size_t step = p.n[w] / 12 + 1;
        for (size_t i = w % 3; i < p.n[w]; i += step) {
            real s = p.t[w][i];
            p.t[w][i] = s + h; block_out(0, x, &p, B, T);
            p.t[w][i] = s - h; block_out(1, x, &p, B, T);
            p.t[w][i] = s;
            CHECK_CLOSE(g.t[w][i], fd_diff(R, NC, h), 1e-9, 1e-6);
        }
    }
    /* gradients accumulate, dx is overwritten, acts survive the backward */
    real before = g.t[6][3], dx0 = dx[11];
    mamba_backward(&mc, dx, &gg, R, acts, x, &pp, scr, B, T);
    CHECK_CLOSE(g.t[6][3], 2 * before, 1e-14, 1e-12);
    CHECK_CLOSE(dx[11], dx0, 0, 0);
    /* causal: the last token does not change earlier outputs */
    real *out2 = malloc(NC * sizeof *out2);
    for (int c = 0; c < C; c++) x[(size_t)(T - 1) * C + c] += 1;
    mamba_forward(&mc, out2, acts, x, &pp, B, T);
    CHECK(maxdiff(out, out2, (size_t)(T - 1) * C) == 0);
    free(out2);
    free(fd_out[0]); free(fd_out[1]);
    block_free(&p); block_free(&g);
    free(x); free(R); free(out); free(dx); free(acts); free(scr);
}

static void test_decode(void)
{
    int B = 3, T = 150, C = mc.C;    /* crosses two chunk boundaries */
    size_t NC = (size_t)B * T * C;
    block p;
    block_alloc(&p, 0);
    mamba_params pp = view(&p);
    real *x = randvec(&rng, NC, 1, 0), *out = malloc(NC * sizeof *out), *dout = malloc(NC * sizeof *dout);
    real *acts = malloc(mamba_acts_size(&mc, B, T) * sizeof *acts);
    mamba_forward(&mc, out, acts, x, &pp, B, T);
    real *state = calloc(mamba_state_size(&mc, B), sizeof *state);
    real *scr = malloc(mamba_decode_scratch_size(&mc, B) * sizeof *scr);
    int chunks[] = { 1, 17, 1, 64, 67 };
    long pos = 0;
    for (int ci = 0; ci < 5; ci++) {
        int P = chunks[ci];
        real *xc = malloc((size_t)B * P * C * sizeof *xc), *oc = malloc((size_t)B * P * C * sizeof *oc);
        for (int b = 0; b < B; b++)
            memcpy(xc + (size_t)b * P * C, x + ((size_t)b * T + pos) * C, sizeof(real) * P * C);
        mamba_decode(&mc, oc, state, xc, &pp, B, P, scr);
        for (int b = 0; b < B; b++)
            memcpy(dout + ((size_t)b * T + pos) * C, oc + (size_t)b * P * C, sizeof(real) * P * C);
        pos += P;
        free(xc); free(oc);
    }
    CHECK(pos == T);
    CHECK(maxdiff(dout, out, NC) < 1e-12);
    block_free(&p);
    free(x); free(out); free(dout); free(acts); free(state); free(scr);
}

int main(void)
{
    ttt_rng_seed(&rng, 7);
    test_scan();
    mamba_config_init(&mc, 24, 4);   /* E = 48 (two channel blocks), S = 16, R = 2 */
    CHECK(mc.E == 48 && mc.S == 16 && mc.R == 2 && mc.k == 4);
    test_block_fd();
    test_decode();
    return check_exit("test_mamba");
}
