/* mamba.c - the Mamba selective SSM block: projections, causal conv,
 * selective scan with chunked state checkpoints, backward, recurrent
 * decoding (mamba.h). */
#include "mamba.h"
#include "dwconv.h"     /* dwconv_forward/backward/step */
#include "par.h"        /* par_max_threads, par_thread_id */
#include "../blas.h"    /* ttt_gemm */

#include <math.h>
#include <string.h>

#define EBLK 32         /* channels per scan task */

void mamba_config_init(mamba_config *m, int C, int conv_kernel)
{
    m->C = C;
    m->E = MAMBA_EXPAND * C;
    m->S = MAMBA_D_STATE;
    m->R = (C + 15) / 16;
    m->k = conv_kernel;
}

static inline real sigm(real x) { return 1 / (1 + exp(-x)); }
/* softplus, linear above 20 as in PyTorch (threshold=20) */
static inline real softplus(real x) { return x > 20 ? x : log1p(exp(x)); }

/* ---- selective scan ---- */

static int nchunks(int T) { return (T + MAMBA_CHUNK - 1) / MAMBA_CHUNK; }

void mamba_scan_forward(real *y, real *hs, const real *u, const real *dt, const real *A,
                        const real *Bm, const real *Cm, int ldbc, const real *Dv,
                        int B, int T, int E, int S)
{
    int nblk = (E + EBLK - 1) / EBLK, nch = nchunks(T);
    #pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < B; b++)
        for (int blk = 0; blk < nblk; blk++) {
            int e0 = blk * EBLK, e1 = e0 + EBLK < E ? e0 + EBLK : E;
            real h[EBLK * MAMBA_D_STATE * 4];   /* S <= 64 */
            memset(h, 0, sizeof h);
            for (int t = 0; t < T; t++) {
                size_t n = (size_t)b * T + t;
                if (t % MAMBA_CHUNK == 0)
                    memcpy(hs + (((size_t)b * nch + t / MAMBA_CHUNK) * E + e0) * S, h,
                           sizeof(real) * (e1 - e0) * S);
                const real *bm = Bm + n * ldbc, *cm = Cm + n * ldbc;
                for (int e = e0; e < e1; e++) {
                    real d = dt[n * E + e], du = d * u[n * E + e], acc = 0;
                    real *he = h + (e - e0) * S;
                    const real *a = A + (size_t)e * S;
                    for (int s = 0; s < S; s++) {
                        he[s] = exp(d * a[s]) * he[s] + du * bm[s];
                        acc += he[s] * cm[s];
                    }
                    y[n * E + e] = acc + Dv[e] * u[n * E + e];
                }
            }
        }
}

/* partial dB/dC per (b, block) [T,2S], partial dA [B,E,S], dD [B,E], and per
 * thread the states of one chunk [MAMBA_CHUNK, EBLK, S] plus dh [EBLK, S] */
size_t mamba_scan_scratch_size(int B, int T, int E, int S)
{
    size_t nblk = (E + EBLK - 1) / EBLK;
    return (size_t)B * nblk * T * 2 * S + (size_t)B * E * S + (size_t)B * E +
           (size_t)par_max_threads() * (MAMBA_CHUNK + 1) * EBLK * S;
}

void mamba_scan_backward(real *du, real *ddt, real *dBm, real *dCm, real *dA, real *dD,
                         const real *dy, const real *hs, const real *u, const real *dt,
                         const real *A, const real *Bm, const real *Cm, int ldbc,
                         const real *Dv, int B, int T, int E, int S, real *scratch)
{
    int nblk = (E + EBLK - 1) / EBLK, nch = nchunks(T);
    real *pbc = scratch;                                   /* [B,nblk,T,2S] */
    real *pA = pbc + (size_t)B * nblk * T * 2 * S;         /* [B,E,S] */
    real *pD = pA + (size_t)B * E * S;                     /* [B,E] */
    real *thr = pD + (size_t)B * E;                        /* per thread */
    #pragma omp parallel
    {
        real *Hb = thr + (size_t)par_thread_id() * (MAMBA_CHUNK + 1) * EBLK * S;
        real *dh = Hb + (size_t)MAMBA_CHUNK * EBLK * S;
        #pragma omp for collapse(2) schedule(static)
        for (int b = 0; b < B; b++)
            for (int blk = 0; blk < nblk; blk++) {
                int e0 = blk * EBLK, e1 = e0 + EBLK < E ? e0 + EBLK : E, ne = e1 - e0;
                real *bc = pbc + ((size_t)b * nblk + blk) * T * 2 * S;
                real *pa = pA + (size_t)b * E * S, *pd = pD + (size_t)b * E;
                memset(bc, 0, sizeof(real) * T * 2 * S);
                memset(pa + (size_t)e0 * S, 0, sizeof(real) * ne * S);
                memset(pd + e0, 0, sizeof(real) * ne);
                memset(dh, 0, sizeof(real) * ne * S);
                for (int ch = nch - 1; ch >= 0; ch--) {
                    int t0 = ch * MAMBA_CHUNK, t1 = t0 + MAMBA_CHUNK < T ? t0 + MAMBA_CHUNK : T;
                    const real *h0 = hs + (((size_t)b * nch + ch) * E + e0) * S;
                    /* recompute the states h_t, t in [t0, t1) */
                    for (int t = t0; t < t1; t++) {
                        size_t n = (size_t)b * T + t;
                        const real *hp = t > t0 ? Hb + (size_t)(t - 1 - t0) * ne * S : h0;
                        real *ht = Hb + (size_t)(t - t0) * ne * S;
                        const real *bm = Bm + n * ldbc;
                        for (int e = e0; e < e1; e++) {
                            real d = dt[n * E + e], dx = d * u[n * E + e];
                            const real *a = A + (size_t)e * S;
                            for (int s = 0; s < S; s++)
                                ht[(e - e0) * S + s] = exp(d * a[s]) * hp[(e - e0) * S + s] + dx * bm[s];
                        }
                    }
                    /* reverse: dh carries dL/dh_t; h_t = a h_{t-1} + dt B u, y = h.C + D u */
                    for (int t = t1 - 1; t >= t0; t--) {
                        size_t n = (size_t)b * T + t;
                        const real *hp = t > t0 ? Hb + (size_t)(t - 1 - t0) * ne * S : h0;
                        const real *ht = Hb + (size_t)(t - t0) * ne * S;
                        const real *bm = Bm + n * ldbc, *cm = Cm + n * ldbc;
                        real *dbm = bc + (size_t)t * 2 * S, *dcm = dbm + S;
                        for (int e = e0; e < e1; e++) {
                            real g = dy[n * E + e], d = dt[n * E + e], x = u[n * E + e];
                            real dx = g * Dv[e], dd = 0;
                            pd[e] += g * x;
                            const real *a = A + (size_t)e * S;
                            real *dhe = dh + (e - e0) * S, *pae = pa + (size_t)e * S;
                            const real *hpe = hp + (e - e0) * S, *hte = ht + (e - e0) * S;
                            for (int s = 0; s < S; s++) {
                                real v = dhe[s] + g * cm[s];
                                real ea = exp(d * a[s]);
                                dcm[s] += g * hte[s];
                                dd += v * (hpe[s] * ea * a[s] + bm[s] * x);
                                pae[s] += v * hpe[s] * ea * d;
                                dbm[s] += v * d * x;
                                dx += v * d * bm[s];
                                dhe[s] = v * ea;
                            }
                            du[n * E + e] = dx;
                            ddt[n * E + e] = dd;
                        }
                    }
                }
            }
    }
    /* reduce the partials in a fixed order (deterministic for any thread count) */
    #pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            size_t n = (size_t)b * T + t;
            for (int s = 0; s < S; s++) {
                real sb = 0, sc = 0;
                for (int blk = 0; blk < nblk; blk++) {
                    const real *bc = pbc + (((size_t)b * nblk + blk) * T + t) * 2 * S;
                    sb += bc[s];
                    sc += bc[S + s];
                }
                dBm[n * ldbc + s] = sb;
                dCm[n * ldbc + s] = sc;
            }
        }
    #pragma omp parallel for schedule(static)
    for (int e = 0; e < E; e++) {
        for (int b = 0; b < B; b++) {
            dD[e] += pD[(size_t)b * E + e];
            for (int s = 0; s < S; s++) dA[(size_t)e * S + s] += pA[((size_t)b * E + e) * S + s];
        }
    }
}

/* ---- layer ---- */

typedef struct { real *xi, *z, *u, *xc, *dbl, *dtp, *dt, *y, *yg, *hs, *A; } mamba_layout;

static size_t layout(const mamba_config *c, real *acts, int B, int T, mamba_layout *L)
{
    size_t N = (size_t)B * T, NE = N * c->E, W = c->R + 2 * c->S;
    size_t sizes[] = { NE, NE, NE, NE, N * W, NE, NE, NE, NE,
                       (size_t)B * nchunks(T) * c->E * c->S, (size_t)c->E * c->S };
    real **ptrs[] = { &L->xi, &L->z, &L->u, &L->xc, &L->dbl, &L->dtp, &L->dt, &L->y, &L->yg,
                      &L->hs, &L->A };
    size_t off = 0;
    for (int i = 0; i < 11; i++) {
        if (acts) *ptrs[i] = acts + off;
        off += sizes[i];
    }
    return off;
}

size_t mamba_acts_size(const mamba_config *c, int B, int T)
{
    mamba_layout L;
    return layout(c, NULL, B, T, &L);
}

static void neg_exp(real *A, const real *A_log, size_t n)
{
    for (size_t i = 0; i < n; i++) A[i] = -exp(A_log[i]);
}

void mamba_forward(const mamba_config *c, real *out, real *acts, const real *x,
                   const mamba_params *p, int B, int T)
{
    mamba_layout L;
    layout(c, acts, B, T, &L);
    int N = B * T, C = c->C, E = c->E, S = c->S, R = c->R, W = R + 2 * S;
    size_t NE = (size_t)N * E;
    ttt_gemm(0, 1, N, E, C, 1, x, C, p->in_proj, C, 0, L.xi, E);
    ttt_gemm(0, 1, N, E, C, 1, x, C, p->in_proj + (size_t)E * C, C, 0, L.z, E);
    dwconv_forward(L.u, L.xi, p->conv_w, p->conv_b, B, T, E, c->k);
    #pragma omp parallel for schedule(static)
    for (size_t i = 0; i < NE; i++) L.xc[i] = L.u[i] * sigm(L.u[i]);
    ttt_gemm(0, 1, N, W, E, 1, L.xc, E, p->x_proj, E, 0, L.dbl, W);
    ttt_gemm(0, 1, N, E, R, 1, L.dbl, W, p->dt_w, R, 0, L.dtp, E);
    #pragma omp parallel for schedule(static)
    for (size_t i = 0; i < NE; i++) {
        L.dtp[i] += p->dt_b[i % E];
        L.dt[i] = softplus(L.dtp[i]);
    }
    neg_exp(L.A, p->A_log, (size_t)E * S);
    mamba_scan_forward(L.y, L.hs, L.xc, L.dt, L.A, L.dbl + R, L.dbl + R + S, W, p->D, B, T, E, S);
    #pragma omp parallel for schedule(static)
    for (size_t i = 0; i < NE; i++) L.yg[i] = L.y[i] * L.z[i] * sigm(L.z[i]);
    ttt_gemm(0, 1, N, C, E, 1, L.yg, E, p->out_proj, E, 0, out, C);
}

size_t mamba_scratch_size(const mamba_config *c, int B, int T)
{
    size_t N = (size_t)B * T, NE = N * c->E;
    return 5 * NE + N * (c->R + 2 * c->S) + (size_t)c->E * c->S +
           mamba_scan_scratch_size(B, T, c->E, c->S);
}

void mamba_backward(const mamba_config *c, real *dx, const mamba_params *g, const real *dout,
                    const real *acts, const real *x, const mamba_params *p, real *scratch,
                    int B, int T)
{
    mamba_layout L;
    layout(c, (real *)acts, B, T, &L);
    int N = B * T, C = c->C, E = c->E, S = c->S, R = c->R, W = R + 2 * S;
    size_t NE = (size_t)N * E;
    real *dy = scratch, *dz = dy + NE, *dxc = dz + NE, *ddt = dxc + NE, *dxi = ddt + NE;
    real *ddbl = dxi + NE, *dA = ddbl + (size_t)N * W, *sscr = dA + (size_t)E * S;
    /* out = yg Wout^T */
    ttt_gemm(1, 0, C, E, N, 1, dout, C, L.yg, E, 1, g->out_proj, E);
    ttt_gemm(0, 0, N, E, C, 1, dout, C, p->out_proj, E, 0, dy, E);
    /* yg = y silu(z) */
    #pragma omp parallel for schedule(static)
    for (size_t i = 0; i < NE; i++) {
        real z = L.z[i], s = sigm(z);
        dz[i] = dy[i] * L.y[i] * s * (1 + z * (1 - s));
        dy[i] *= z * s;
    }
    memset(dA, 0, sizeof(real) * E * S);
    mamba_scan_backward(dxc, ddt, ddbl + R, ddbl + R + S, dA, g->D, dy, L.hs, L.xc, L.dt, L.A,
                        L.dbl + R, L.dbl + R + S, W, p->D, B, T, E, S, sscr);
    /* A = -exp(A_log): dA_log = dA * A */
    for (size_t i = 0; i < (size_t)E * S; i++) g->A_log[i] += dA[i] * L.A[i];
    /* dt = softplus(dtr Wdt^T + bdt) */
    #pragma omp parallel for schedule(static)
    for (size_t i = 0; i < NE; i++) ddt[i] *= sigm(L.dtp[i]);
    for (int n = 0; n < N; n++)
        for (int e = 0; e < E; e++) g->dt_b[e] += ddt[(size_t)n * E + e];
    ttt_gemm(1, 0, E, R, N, 1, ddt, E, L.dbl, W, 1, g->dt_w, R);
    ttt_gemm(0, 0, N, R, E, 1, ddt, E, p->dt_w, R, 0, ddbl, W);
    /* [dtr, Bm, Cm] = xc Wx^T */
    ttt_gemm(1, 0, W, E, N, 1, ddbl, W, L.xc, E, 1, g->x_proj, E);
    ttt_gemm(0, 0, N, E, W, 1, ddbl, W, p->x_proj, E, 1, dxc, E);
    /* xc = silu(u) */
    #pragma omp parallel for schedule(static)
    for (size_t i = 0; i < NE; i++) {
        real s = sigm(L.u[i]);
        dxc[i] *= s * (1 + L.u[i] * (1 - s));
    }
    dwconv_backward(dxi, g->conv_w, g->conv_b, dxc, L.xi, p->conv_w, B, T, E, c->k);
    /* [xi, z] = x Win^T */
    ttt_gemm(1, 0, E, C, N, 1, dxi, E, x, C, 1, g->in_proj, C);
    ttt_gemm(1, 0, E, C, N, 1, dz, E, x, C, 1, g->in_proj + (size_t)E * C, C);
    ttt_gemm(0, 0, N, C, E, 1, dxi, E, p->in_proj, C, 0, dx, C);
    ttt_gemm(0, 0, N, C, E, 1, dz, E, p->in_proj + (size_t)E * C, C, 1, dx, C);
}

const real *mamba_inter(const mamba_config *c, const real *acts, const char *name, int B, int T)
{
    mamba_layout L;
    layout(c, (real *)acts, B, T, &L);
    if (strcmp(name, "xi") == 0) return L.xi;
    if (strcmp(name, "z") == 0) return L.z;
    if (strcmp(name, "xc") == 0) return L.xc;
    if (strcmp(name, "dt") == 0) return L.dt;
    if (strcmp(name, "y") == 0) return L.y;
    if (strcmp(name, "x_proj_out") == 0) return L.dbl;
    return NULL;
}

/* ---- decoding ---- */

size_t mamba_state_size(const mamba_config *c, int B)
{
    return (size_t)B * c->E * (c->k + c->S);
}

size_t mamba_decode_scratch_size(const mamba_config *c, int B)
{
    return (size_t)B * (2 * c->C + 4 * c->E + c->R + 2 * c->S);
}

void mamba_decode(const mamba_config *c, real *out, real *state, const real *x,
                  const mamba_params *p, int B, int P, real *scratch)
{
    int C = c->C, E = c->E, S = c->S, R = c->R, W = R + 2 * S;
    real *conv = state, *ssm = state + (size_t)B * E * c->k;
    real *xt = scratch, *ot = xt + (size_t)B * C, *xi = ot + (size_t)B * C, *z = xi + (size_t)B * E;
    real *u = z + (size_t)B * E, *dt = u + (size_t)B * E, *dbl = dt + (size_t)B * E;
    for (int t = 0; t < P; t++) {
        for (int b = 0; b < B; b++)
            memcpy(xt + (size_t)b * C, x + ((size_t)b * P + t) * C, sizeof(real) * C);
        ttt_gemm(0, 1, B, E, C, 1, xt, C, p->in_proj, C, 0, xi, E);
        ttt_gemm(0, 1, B, E, C, 1, xt, C, p->in_proj + (size_t)E * C, C, 0, z, E);
        dwconv_step(u, conv, xi, p->conv_w, p->conv_b, B, E, c->k);
        for (size_t i = 0; i < (size_t)B * E; i++) u[i] *= sigm(u[i]);
        ttt_gemm(0, 1, B, W, E, 1, u, E, p->x_proj, E, 0, dbl, W);
        ttt_gemm(0, 1, B, E, R, 1, dbl, W, p->dt_w, R, 0, dt, E);
        for (int b = 0; b < B; b++) {
            const real *bm = dbl + (size_t)b * W + R, *cm = bm + S;
            for (int e = 0; e < E; e++) {
                size_t i = (size_t)b * E + e;
                real d = softplus(dt[i] + p->dt_b[e]), acc = 0;
                real *h = ssm + i * S;
                for (int s = 0; s < S; s++) {
                    h[s] = exp(-d * exp(p->A_log[(size_t)e * S + s])) * h[s] + d * bm[s] * u[i];
                    acc += h[s] * cm[s];
                }
                xi[i] = (acc + p->D[e] * u[i]) * z[i] * sigm(z[i]);   /* xi reused for yg */
            }
        }
        ttt_gemm(0, 1, B, C, E, 1, xi, E, p->out_proj, E, 0, ot, C);
        for (int b = 0; b < B; b++)
            memcpy(out + ((size_t)b * P + t) * C, ot + (size_t)b * C, sizeof(real) * C);
    }
}
