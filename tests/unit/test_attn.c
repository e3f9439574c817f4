/* test_attn.c - unit tests of the attention layer (float64 build): the
 * tiled flash forward and its backward against a plain T x T softmax
 * reference, RoPE (rotate-half formula, relative-position property),
 * central finite differences of the whole layer, and KV-cache decoding
 * (chunks and single steps) equal to the full forward. */
#include "check.h"
#include "testvec.h"
#include "../../lib/layers/attn.h"
#include "../../lib/rng.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static ttt_rng rng;

/* Reference for one head: the full T x T score matrix, masked softmax,
 * output, log-sum-exp, and the textbook backward from dO. */
static void naive_head(real *O, real *lse, real *dQ, real *dK, real *dV, const real *dO,
                       const real *Q, const real *K, const real *V, int T, int D)
{
    double s = 1 / sqrt((double)D);
    double *P = calloc((size_t)T * T, sizeof *P), *dP = calloc((size_t)T * T, sizeof *dP);
    for (int i = 0; i < T; i++) {
        double mx = -INFINITY, sum = 0;
        for (int j = 0; j <= i; j++) {
            P[i * T + j] = dot(Q + i * D, K + j * D, D) * s;
            mx = fmax(mx, P[i * T + j]);
        }
        for (int j = 0; j <= i; j++) sum += (P[i * T + j] = exp(P[i * T + j] - mx));
        for (int j = 0; j <= i; j++) P[i * T + j] /= sum;
        lse[i] = mx + log(sum);
        for (int d = 0; d < D; d++) {
            double o = 0;
            for (int j = 0; j <= i; j++) o += P[i * T + j] * V[j * D + d];
            O[i * D + d] = o;
        }
    }
    if (!dO) goto done;
    memset(dQ, 0, sizeof(real) * T * D);
    memset(dK, 0, sizeof(real) * T * D);
    memset(dV, 0, sizeof(real) * T * D);
    for (int i = 0; i < T; i++) {
        double rowsum = 0;
        for (int j = 0; j <= i; j++) {
            dP[i * T + j] = dot(dO + i * D, V + j * D, D);
            rowsum += dP[i * T + j] * P[i * T + j];
            for (int d = 0; d < D; d++) dV[j * D + d] += P[i * T + j] * dO[i * D + d];
        }
        for (int j = 0; j <= i; j++) {
            double dS = P[i * T + j] * (dP[i * T + j] - rowsum) * s;
            for (int d = 0; d < D; d++) {
                dQ[i * D + d] += dS * K[j * D + d];
                dK[j * D + d] += dS * Q[i * D + d];
            }
        }
    }
done:
    free(P);
    free(dP);
}

static void test_flash_vs_naive(void)
{
    int G = 3, T = 150, D = 8;   /* three query/key tiles, the last partial */
    size_t n = (size_t)G * T * D;
    /* large scores so the online max really moves between tiles */
    real *Q = randvec(&rng, n, 2, 0), *K = randvec(&rng, n, 2, 0);
    real *V = randvec(&rng, n, 1, 0), *dO = randvec(&rng, n, 1, 0);
    real *O = malloc(n * sizeof *O), *lse = malloc(G * T * sizeof *lse);
    real *dQ = malloc(n * sizeof *dQ), *dK = malloc(n * sizeof *dK), *dV = malloc(n * sizeof *dV);
    real *delta = malloc(G * T * sizeof *delta);
    real *rO = malloc(n * sizeof *rO), *rlse = malloc(G * T * sizeof *rlse);
    real *rdQ = malloc(n * sizeof *rdQ), *rdK = malloc(n * sizeof *rdK), *rdV = malloc(n * sizeof *rdV);
    attn_flash_forward(O, lse, Q, K, V, G, T, D);
    attn_flash_backward(dQ, dK, dV, delta, dO, O, lse, Q, K, V, G, T, D);
    for (int g = 0; g < G; g++) {
        size_t o = (size_t)g * T * D;
        naive_head(rO + o, rlse + g * T, rdQ + o, rdK + o, rdV + o, dO + o, Q + o, K + o, V + o, T, D);
    }
    CHECK(maxdiff(O, rO, n) < 1e-12);
    CHECK(maxdiff(lse, rlse, G * T) < 1e-12);
    CHECK(maxdiff(dQ, rdQ, n) < 1e-11);
    CHECK(maxdiff(dK, rdK, n) < 1e-11);
    CHECK(maxdiff(dV, rdV, n) < 1e-11);
    /* causality: the first row attends to itself only */
    CHECK(maxdiff(O, V, D) < 1e-14);
    /* finite differences of sum(O * dO) through the kernel itself */
    double h = 1e-6;
    real *bufs[3] = { Q, K, V }, *grads[3] = { dQ, dK, dV };
    for (int w = 0; w < 3; w++)
        for (size_t i = 7; i < n; i += 397) {
            real s = bufs[w][i];
            bufs[w][i] = s + h; attn_flash_forward(O, lse, Q, K, V, G, T, D); double lp = dot(O, dO, n);
            bufs[w][i] = s - h; attn_flash_forward(O, lse, Q, K, V, G, T, D); double lm = dot(O, dO, n);
            bufs[w][i] = s;
            CHECK_CLOSE(grads[w][i], (lp - lm) / (2 * h), 1e-7, 1e-6);   /* scores ~ 10: FD noise ~1e-8 */
        }
    free(Q); free(K); free(V); free(dO); free(O); free(lse); free(dQ); free(dK); free(dV);
    free(delta); free(rO); free(rlse); free(rdQ); free(rdK); free(rdV);
}

static void test_rope(void)
{
    int D = 8;
    double theta = 10000;
    real x[8], y[8];
    for (int i = 0; i < D; i++) x[i] = y[i] = ttt_rng_normal(&rng);
    attn_rope_row(y, D, 5, theta, 1);
    for (int i = 0; i < D / 2; i++) {
        double a = 5 * pow(theta, -2.0 * i / D);
        CHECK_CLOSE(y[i], x[i] * cos(a) - x[i + D / 2] * sin(a), 1e-15, 1e-14);
        CHECK_CLOSE(y[i + D / 2], x[i + D / 2] * cos(a) + x[i] * sin(a), 1e-15, 1e-14);
    }
    attn_rope_row(y, D, 5, theta, -1);   /* the inverse rotation undoes it */
    CHECK(maxdiff(x, y, D) < 1e-14);
    /* q(p) . k(s) depends on p - s only */
    real q[8], k[8], q2[8], k2[8];
    for (int i = 0; i < D; i++) q[i] = q2[i] = ttt_rng_normal(&rng), k[i] = k2[i] = ttt_rng_normal(&rng);
    attn_rope_row(q, D, 9, theta, 1);
    attn_rope_row(k, D, 4, theta, 1);
    attn_rope_row(q2, D, 105, theta, 1);
    attn_rope_row(k2, D, 100, theta, 1);
    CHECK_CLOSE(dot(q, k, D), dot(q2, k2, D), 1e-12, 1e-12);
}

/* ---- the whole layer ---- */

static attn_config cfg = { .C = 16, .H = 2, .D = 8, .rope_theta = 10000 };

static void alloc_params(attn_params *p, double scale)
{
    size_t CC = (size_t)cfg.C * cfg.C;
    p->q_proj = randvec(&rng, CC, scale, 0);
    p->k_proj = randvec(&rng, CC, scale, 0);
    p->v_proj = randvec(&rng, CC, scale, 0);
    p->o_proj = randvec(&rng, CC, scale, 0);
}

static double layer_loss(const real *x, const attn_params *p, const real *R, int B, int T)
{
    size_t NC = (size_t)B * T * cfg.C;
    real *out = malloc(NC * sizeof *out), *acts = malloc(attn_acts_size(&cfg, B, T) * sizeof *acts);
    attn_forward(&cfg, out, acts, x, p, B, T);
    double l = dot(out, R, NC);
    free(out);
    free(acts);
    return l;
}

static void test_layer_fd(void)
{
    int B = 2, T = 70, C = cfg.C;
    size_t NC = (size_t)B * T * C, CC = (size_t)C * C;
    attn_params p, g = { 0 };
    alloc_params(&p, 0.5);
    g.q_proj = calloc(CC, sizeof(real)); g.k_proj = calloc(CC, sizeof(real));
    g.v_proj = calloc(CC, sizeof(real)); g.o_proj = calloc(CC, sizeof(real));
    real *x = randvec(&rng, NC, 1, 0), *R = randvec(&rng, NC, 1, 0), *out = malloc(NC * sizeof *out);
    real *dx = malloc(NC * sizeof *dx), *acts = malloc(attn_acts_size(&cfg, B, T) * sizeof *acts);
    real *scr = malloc(attn_scratch_size(&cfg, B, T) * sizeof *scr);
    attn_forward(&cfg, out, acts, x, &p, B, T);
    attn_backward(&cfg, dx, &g, R, acts, x, &p, scr, B, T);
    double h = 1e-6;
    for (size_t i = 3; i < NC; i += 61) {
        real s = x[i];
        x[i] = s + h; double lp = layer_loss(x, &p, R, B, T);
        x[i] = s - h; double lm = layer_loss(x, &p, R, B, T);
        x[i] = s;
        CHECK_CLOSE(dx[i], (lp - lm) / (2 * h), 1e-7, 1e-6);   /* FD truncation ~h^2 plus rounding */
    }
    real *ws[4] = { p.q_proj, p.k_proj, p.v_proj, p.o_proj }, *gs[4] = { g.q_proj, g.k_proj, g.v_proj, g.o_proj };
    for (int w = 0; w < 4; w++)
        for (size_t i = w; i < CC; i += 23) {
            real s = ws[w][i];
            ws[w][i] = s + h; double lp = layer_loss(x, &p, R, B, T);
            ws[w][i] = s - h; double lm = layer_loss(x, &p, R, B, T);
            ws[w][i] = s;
            CHECK_CLOSE(gs[w][i], (lp - lm) / (2 * h), 1e-8, 1e-6);
        }
    /* parameter gradients accumulate; dx is overwritten */
    real before = g.o_proj[5], dx0 = dx[9];
    attn_backward(&cfg, dx, &g, R, acts, x, &p, scr, B, T);
    CHECK_CLOSE(g.o_proj[5], 2 * before, 1e-14, 1e-12);
    CHECK_CLOSE(dx[9], dx0, 0, 0);
    /* the layer is causal: changing the last token leaves earlier outputs alone */
    real *out2 = malloc(NC * sizeof *out2);
    for (int c = 0; c < C; c++) x[(size_t)(T - 1) * C + c] += 1;
    attn_forward(&cfg, out2, acts, x, &p, B, T);
    CHECK(maxdiff(out, out2, (size_t)(T - 1) * C) == 0);
    CHECK(maxdiff(out + (size_t)(T - 1) * C, out2 + (size_t)(T - 1) * C, C) > 1e-6);
    free(out2);
    for (int w = 0; w < 4; w++) { free(ws[w]); free(gs[w]); }
    free(x); free(R); free(out); free(dx); free(acts); free(scr);
}

static void test_decode(void)
{
    int B = 2, T = 29, C = cfg.C;
    size_t NC = (size_t)B * T * C;
    attn_params p;
    alloc_params(&p, 0.5);
    real *x = randvec(&rng, NC, 1, 0), *out = malloc(NC * sizeof *out);
    real *acts = malloc(attn_acts_size(&cfg, B, T) * sizeof *acts);
    attn_forward(&cfg, out, acts, x, &p, B, T);
    /* chunks of 5, 1, 1, 13, 1, 8 tokens continuing one cache */
    int chunks[] = { 5, 1, 1, 13, 1, 8 };
    real *kc = malloc(NC * sizeof *kc), *vc = malloc(NC * sizeof *vc);
    real *dout = malloc(NC * sizeof *dout);
    long pos = 0;
    for (int ci = 0; ci < 6; ci++) {
        int P = chunks[ci];
        real *xc = malloc((size_t)B * P * C * sizeof *xc), *oc = malloc((size_t)B * P * C * sizeof *oc);
        real *scr = malloc(attn_decode_scratch_size(&cfg, B, P) * sizeof *scr);
        for (int b = 0; b < B; b++)
            memcpy(xc + (size_t)b * P * C, x + ((size_t)b * T + pos) * C, sizeof(real) * P * C);
        attn_decode(&cfg, oc, kc, vc, xc, &p, B, P, pos, scr);
        for (int b = 0; b < B; b++)
            memcpy(dout + ((size_t)b * T + pos) * C, oc + (size_t)b * P * C, sizeof(real) * P * C);
        pos += P;
        free(xc); free(oc); free(scr);
    }
    CHECK(pos == T);
    CHECK(maxdiff(dout, out, NC) < 1e-12);
    free(p.q_proj); free(p.k_proj); free(p.v_proj); free(p.o_proj);
    free(x); free(out); free(acts); free(kc); free(vc); free(dout);
}

int main(void)
{
    ttt_rng_seed(&rng, 42);
    test_flash_vs_naive();
    test_rope();
    test_layer_fd();
    test_decode();
    return check_exit("test_attn");
}
