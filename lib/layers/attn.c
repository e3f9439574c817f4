/* attn.c - causal multi-head attention with RoPE: projections, flash-style
 * tiled forward (online softmax, log-sum-exp kept per row), backward that
 * recomputes the probabilities tile by tile, KV-cache decoding (attn.h). */
#include "attn.h"
#include "../blas.h"    /* ttt_gemm */

#include <math.h>
#include <string.h>

/* ---- RoPE ---- */

/* cos/sin tables [T, D/2] for positions 0..T-1 (angle p * theta^(-2i/D)). */
static void rope_table(real *cs, real *sn, int T, int D, double theta)
{
    int h2 = D / 2;
    for (int t = 0; t < T; t++)
        for (int i = 0; i < h2; i++) {
            double a = t * pow(theta, -(double)(2 * i) / D);
            cs[(size_t)t * h2 + i] = (real)cos(a);
            sn[(size_t)t * h2 + i] = (real)sin(a);
        }
}

/* Rotate half: pairs (i, i + D/2); sign -1 rotates back (the transpose). */
static inline void rotate(real *d, const real *cs, const real *sn, int D, int sign)
{
    int h2 = D / 2;
    for (int i = 0; i < h2; i++) {
        real a = d[i], b = d[i + h2], co = cs[i], si = sign * sn[i];
        d[i] = a * co - b * si;
        d[i + h2] = b * co + a * si;
    }
}

void attn_rope_row(real *x, int D, long pos, double theta, int sign)
{
    int h2 = D / 2;
    for (int i = 0; i < h2; i++) {
        double a = pos * pow(theta, -(double)(2 * i) / D);
        real co = (real)cos(a), si = (real)(sign * sin(a));
        real u = x[i], v = x[i + h2];
        x[i] = u * co - v * si;
        x[i + h2] = v * co + u * si;
    }
}

/* [B,T,C] -> [B,H,T,D], rotating each row by its position when cs != NULL. */
static void split_heads(real *dst, const real *src, const attn_config *c, const real *cs,
                        const real *sn, int B, int T)
{
    int H = c->H, D = c->D, C = c->C, h2 = D / 2;
    #pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++)
            for (int t = 0; t < T; t++) {
                real *d = dst + (((size_t)b * H + h) * T + t) * D;
                memcpy(d, src + ((size_t)b * T + t) * C + (size_t)h * D, sizeof(real) * D);
                if (cs) rotate(d, cs + (size_t)t * h2, sn + (size_t)t * h2, D, 1);
            }
}

/* [B,H,T,D] -> [B,T,C], rotating back (sign -1) when cs != NULL. */
static void merge_heads(real *dst, const real *src, const attn_config *c, const real *cs,
                        const real *sn, int B, int T)
{
    int H = c->H, D = c->D, C = c->C, h2 = D / 2;
    #pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++)
            for (int h = 0; h < H; h++) {
                real *d = dst + ((size_t)b * T + t) * C + (size_t)h * D;
                memcpy(d, src + (((size_t)b * H + h) * T + t) * D, sizeof(real) * D);
                if (cs) rotate(d, cs + (size_t)t * h2, sn + (size_t)t * h2, D, -1);
            }
}

static inline real dotr(const real *a, const real *b, int n)
{
    real s = 0;
    #pragma omp simd reduction(+:s)
    for (int i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}

static inline void axpy(real *y, real a, const real *x, int n)
{
    #pragma omp simd
    for (int i = 0; i < n; i++) y[i] += a * x[i];
}

/* ---- flash kernels ---- */

/* One query tile [i0, i0+nq) of one head: sweeps the key tiles up to the
 * diagonal keeping a running max m and sum l per row; O rows accumulate
 * the unnormalised output and are rescaled when the max grows. */
static void fwd_tile(real *O, real *lse, const real *Q, const real *K, const real *V, int T,
                     int D, int i0, real scale)
{
    int nq = T - i0 < ATTN_BQ ? T - i0 : ATTN_BQ;
    real m[ATTN_BQ], l[ATTN_BQ], s[ATTN_BK];
    for (int r = 0; r < nq; r++) {
        m[r] = -INFINITY;
        l[r] = 0;
        memset(O + (size_t)(i0 + r) * D, 0, sizeof(real) * D);
    }
    int kend = i0 + nq;
    for (int j0 = 0; j0 < kend; j0 += ATTN_BK) {
        int nk = kend - j0 < ATTN_BK ? kend - j0 : ATTN_BK;
        for (int r = 0; r < nq; r++) {
            int qi = i0 + r, lim = qi - j0 + 1;   /* causal: keys j0..qi */
            if (lim <= 0) continue;
            if (lim > nk) lim = nk;
            const real *q = Q + (size_t)qi * D;
            real mx = m[r];
            for (int c = 0; c < lim; c++) {
                s[c] = dotr(q, K + (size_t)(j0 + c) * D, D) * scale;
                if (s[c] > mx) mx = s[c];
            }
            real *o = O + (size_t)qi * D;
            if (mx > m[r] && l[r] > 0) {
                real corr = exp(m[r] - mx);
                l[r] *= corr;
                for (int d = 0; d < D; d++) o[d] *= corr;
            }
            m[r] = mx;
            for (int c = 0; c < lim; c++) {
                real pe = exp(s[c] - mx);
                l[r] += pe;
                axpy(o, pe, V + (size_t)(j0 + c) * D, D);
            }
        }
    }
    for (int r = 0; r < nq; r++) {
        real inv = 1 / l[r];
        real *o = O + (size_t)(i0 + r) * D;
        for (int d = 0; d < D; d++) o[d] *= inv;
        lse[i0 + r] = m[r] + log(l[r]);
    }
}

void attn_flash_forward(real *O, real *lse, const real *Q, const real *K, const real *V,
                        int G, int T, int D)
{
    real scale = (real)(1 / sqrt((double)D));
    int nqt = (T + ATTN_BQ - 1) / ATTN_BQ;
    /* later query tiles see more keys: dynamic schedule balances the triangle */
    #pragma omp parallel for collapse(2) schedule(dynamic)
    for (int g = 0; g < G; g++)
        for (int it = 0; it < nqt; it++) {
            size_t o = (size_t)g * T * D;
            fwd_tile(O + o, lse + (size_t)g * T, Q + o, K + o, V + o, T, D, it * ATTN_BQ, scale);
        }
}

/* FlashAttention-2 backward of one head: for every key tile, the query
 * tiles at or below the diagonal recompute P = exp(S - lse), then
 *   dV += P^T dO,  dS = P (dO V^T - delta),  dQ += dS K s,  dK += dS^T Q s. */
static void bwd_head(real *dQ, real *dK, real *dV, real *delta, const real *dO, const real *O,
                     const real *lse, const real *Q, const real *K, const real *V, int T, int D,
                     real scale)
{
    for (int i = 0; i < T; i++) delta[i] = dotr(dO + (size_t)i * D, O + (size_t)i * D, D);
    memset(dQ, 0, sizeof(real) * T * D);
    memset(dK, 0, sizeof(real) * T * D);
    memset(dV, 0, sizeof(real) * T * D);
    for (int j0 = 0; j0 < T; j0 += ATTN_BK) {
        int nk = T - j0 < ATTN_BK ? T - j0 : ATTN_BK;
        for (int i0 = (j0 / ATTN_BQ) * ATTN_BQ; i0 < T; i0 += ATTN_BQ) {
            int nq = T - i0 < ATTN_BQ ? T - i0 : ATTN_BQ;
            for (int r = 0; r < nq; r++) {
                int qi = i0 + r, lim = qi - j0 + 1;
                if (lim <= 0) continue;
                if (lim > nk) lim = nk;
                const real *q = Q + (size_t)qi * D, *dout = dO + (size_t)qi * D;
                real *dq = dQ + (size_t)qi * D;
                for (int c = 0; c < lim; c++) {
                    size_t kj = (size_t)(j0 + c) * D;
                    real p = exp(dotr(q, K + kj, D) * scale - lse[qi]);
                    axpy(dV + kj, p, dout, D);
                    real ds = p * (dotr(dout, V + kj, D) - delta[qi]) * scale;
                    axpy(dq, ds, K + kj, D);
                    axpy(dK + kj, ds, q, D);
                }
            }
        }
    }
}

void attn_flash_backward(real *dQ, real *dK, real *dV, real *delta, const real *dO,
                         const real *O, const real *lse, const real *Q, const real *K,
                         const real *V, int G, int T, int D)
{
    real scale = (real)(1 / sqrt((double)D));
    #pragma omp parallel for schedule(dynamic)
    for (int g = 0; g < G; g++) {
        size_t o = (size_t)g * T * D;
        bwd_head(dQ + o, dK + o, dV + o, delta + (size_t)g * T, dO + o, O + o,
                 lse + (size_t)g * T, Q + o, K + o, V + o, T, D, scale);
    }
}

/* ---- layer ---- */

typedef struct { real *Q, *K, *V, *O, *om, *lse, *cs, *sn; } attn_layout;

static size_t layout(const attn_config *c, real *acts, int B, int T, attn_layout *L)
{
    size_t NC = (size_t)B * T * c->C, GT = (size_t)B * c->H * T, TD = (size_t)T * (c->D / 2);
    if (L) {
        L->Q = acts;
        L->K = L->Q + NC;
        L->V = L->K + NC;
        L->O = L->V + NC;
        L->om = L->O + NC;
        L->lse = L->om + NC;
        L->cs = L->lse + GT;
        L->sn = L->cs + TD;
    }
    return 5 * NC + GT + 2 * TD;
}

size_t attn_acts_size(const attn_config *c, int B, int T) { return layout(c, NULL, B, T, NULL); }

void attn_forward(const attn_config *c, real *out, real *acts, const real *x,
                  const attn_params *p, int B, int T)
{
    attn_layout L;
    layout(c, acts, B, T, &L);
    int N = B * T, C = c->C;
    rope_table(L.cs, L.sn, T, c->D, c->rope_theta);
    /* om serves as the projection buffer before it holds the merged heads */
    ttt_gemm(0, 1, N, C, C, 1, x, C, p->q_proj, C, 0, L.om, C);
    split_heads(L.Q, L.om, c, L.cs, L.sn, B, T);
    ttt_gemm(0, 1, N, C, C, 1, x, C, p->k_proj, C, 0, L.om, C);
    split_heads(L.K, L.om, c, L.cs, L.sn, B, T);
    ttt_gemm(0, 1, N, C, C, 1, x, C, p->v_proj, C, 0, L.om, C);
    split_heads(L.V, L.om, c, NULL, NULL, B, T);
    attn_flash_forward(L.O, L.lse, L.Q, L.K, L.V, B * c->H, T, c->D);
    merge_heads(L.om, L.O, c, NULL, NULL, B, T);
    ttt_gemm(0, 1, N, C, C, 1, L.om, C, p->o_proj, C, 0, out, C);
}

size_t attn_scratch_size(const attn_config *c, int B, int T)
{
    return 5 * (size_t)B * T * c->C + (size_t)B * c->H * T;
}

void attn_backward(const attn_config *c, real *dx, const attn_params *g, const real *dout,
                   const real *acts, const real *x, const attn_params *p, real *scratch,
                   int B, int T)
{
    attn_layout L;
    layout(c, (real *)acts, B, T, &L);
    int N = B * T, C = c->C;
    size_t NC = (size_t)N * C;
    real *s0 = scratch, *dO = s0 + NC, *dQ = dO + NC, *dK = dQ + NC, *dV = dK + NC, *delta = dV + NC;
    /* out = om Wo^T */
    ttt_gemm(1, 0, C, C, N, 1, dout, C, L.om, C, 1, g->o_proj, C);
    ttt_gemm(0, 0, N, C, C, 1, dout, C, p->o_proj, C, 0, s0, C);
    split_heads(dO, s0, c, NULL, NULL, B, T);
    attn_flash_backward(dQ, dK, dV, delta, dO, L.O, L.lse, L.Q, L.K, L.V, B * c->H, T, c->D);
    /* q = rope(x Wq^T) etc.: rotate the gradients back, then the projections */
    merge_heads(s0, dQ, c, L.cs, L.sn, B, T);
    ttt_gemm(1, 0, C, C, N, 1, s0, C, x, C, 1, g->q_proj, C);
    ttt_gemm(0, 0, N, C, C, 1, s0, C, p->q_proj, C, 0, dx, C);
    merge_heads(s0, dK, c, L.cs, L.sn, B, T);
    ttt_gemm(1, 0, C, C, N, 1, s0, C, x, C, 1, g->k_proj, C);
    ttt_gemm(0, 0, N, C, C, 1, s0, C, p->k_proj, C, 1, dx, C);
    merge_heads(s0, dV, c, NULL, NULL, B, T);
    ttt_gemm(1, 0, C, C, N, 1, s0, C, x, C, 1, g->v_proj, C);
    ttt_gemm(0, 0, N, C, C, 1, s0, C, p->v_proj, C, 1, dx, C);
}

const real *attn_inter(const attn_config *c, const real *acts, const char *name, int B, int T)
{
    attn_layout L;
    layout(c, (real *)acts, B, T, &L);
    if (strcmp(name, "q_rope") == 0) return L.Q;
    if (strcmp(name, "k_rope") == 0) return L.K;
    if (strcmp(name, "v") == 0) return L.V;
    if (strcmp(name, "o") == 0) return L.O;
    if (strcmp(name, "lse") == 0) return L.lse;
    return NULL;
}

/* ---- decoding ---- */

size_t attn_decode_scratch_size(const attn_config *c, int B, int P)
{
    return 4 * (size_t)B * P * c->C;
}

void attn_decode(const attn_config *c, real *out, real *kcache, real *vcache, const real *x,
                 const attn_params *p, int B, int P, long pos, real *scratch)
{
    int C = c->C, H = c->H, D = c->D, N = B * P;
    size_t NC = (size_t)N * C;
    real *q = scratch, *k = q + NC, *v = k + NC, *o = v + NC;
    real scale = (real)(1 / sqrt((double)D));
    ttt_gemm(0, 1, N, C, C, 1, x, C, p->q_proj, C, 0, q, C);
    ttt_gemm(0, 1, N, C, C, 1, x, C, p->k_proj, C, 0, k, C);
    ttt_gemm(0, 1, N, C, C, 1, x, C, p->v_proj, C, 0, v, C);
    for (int b = 0; b < B; b++)
        for (int t = 0; t < P; t++) {
            size_t row = ((size_t)b * P + t) * C, crow = ((size_t)(pos + t) * B + b) * C;
            for (int h = 0; h < H; h++) {
                attn_rope_row(q + row + (size_t)h * D, D, pos + t, c->rope_theta, 1);
                attn_rope_row(k + row + (size_t)h * D, D, pos + t, c->rope_theta, 1);
            }
            memcpy(kcache + crow, k + row, sizeof(real) * C);
            memcpy(vcache + crow, v + row, sizeof(real) * C);
        }
    /* each query attends to cache rows 0..pos+t with a one-pass online softmax */
    #pragma omp parallel for collapse(3) schedule(static)
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++)
            for (int t = 0; t < P; t++) {
                const real *qr = q + ((size_t)b * P + t) * C + (size_t)h * D;
                real *orow = o + ((size_t)b * P + t) * C + (size_t)h * D;
                real m = -INFINITY, l = 0;
                memset(orow, 0, sizeof(real) * D);
                for (long s = 0; s <= pos + t; s++) {
                    size_t cr = ((size_t)s * B + b) * C + (size_t)h * D;
                    real sc = dotr(qr, kcache + cr, D) * scale;
                    if (sc > m) {
                        real corr = l > 0 ? exp(m - sc) : 0;
                        l *= corr;
                        for (int d = 0; d < D; d++) orow[d] *= corr;
                        m = sc;
                    }
                    real pe = exp(sc - m);
                    l += pe;
                    axpy(orow, pe, vcache + cr, D);
                }
                for (int d = 0; d < D; d++) orow[d] /= l;
            }
    ttt_gemm(0, 1, N, C, C, 1, o, C, p->o_proj, C, 0, out, C);
}
