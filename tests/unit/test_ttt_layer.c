/* test_ttt_layer.c - the TTT layer in float64 against itself:
 *  - central finite differences of loss = sum(out * R) through the whole
 *    layer (every parameter and the input: random directions and single
 *    coordinates), for linear/mlp x transformer/mamba x T in {32, 21, 7},
 *    with one token factor clamped at 0;
 *  - dual form == a naive primal form (spec 4) written here for TTT-Linear;
 *  - decoding: prefill P in {0, 1, 16, 19} + single steps == full forward
 *    over 40 tokens (three mini-batch boundaries), an aligned two-chunk
 *    prefill, and the refusal of a misaligned multi-token prefill. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "testvec.h"
#include "../../lib/layers/layernorm.h"
#include "../../lib/layers/ttt_layer.h"
#include "../../lib/model.h"
#include "../../lib/rng.h"

typedef struct {
    ttt_layer_config c;
    ttt_layer_params p, g;
    ttt_layer_tensor tp[TTT_LAYER_MAX_TENSORS], tg[TTT_LAYER_MAX_TENSORS];
    int n;
    size_t total;
    real *buf;
} layer;

static void layer_make(layer *L, int kind, int mamba, int C, int H, double base_lr, uint64_t seed)
{
    memset(L, 0, sizeof *L);
    ttt_layer_config *c = &L->c;
    c->C = C; c->H = H; c->D = C / H; c->K = 16; c->kind = kind;
    c->F = kind == TTT_MLP ? 4 * c->D : c->D;
    c->share_qk = c->use_gate = mamba;
    c->conv_kernel = 4; c->base_lr = base_lr; c->rope_theta = 10000;
    L->n = ttt_layer_tensors(c, &L->p, L->tp);
    ttt_layer_tensors(c, &L->g, L->tg);
    for (int i = 0; i < L->n; i++) L->total += L->tp[i].numel;
    L->buf = calloc(2 * L->total, sizeof(real));
    ttt_rng r;
    ttt_rng_seed(&r, seed);
    size_t off = 0;
    for (int i = 0; i < L->n; i++) {
        real *v = *L->tp[i].ptr = L->buf + off;
        *L->tg[i].ptr = L->buf + L->total + off;
        const char *nm = L->tp[i].name;
        size_t n = L->tp[i].numel;
        int is_scale = strstr(nm, "norm_weight") || strstr(nm, "norm.weight");
        double sd = strstr(nm, "proj") ? 1 / sqrt(C) : strstr(nm, "W") ? 0.5 / sqrt(c->D) : 0.1;
        if (strstr(nm, "lr_bias")) sd = 0.5;
        if (strstr(nm, "conv")) sd = 0.3;
        for (size_t k = 0; k < n; k++) v[k] = (is_scale ? 1 : 0) + sd * ttt_rng_normal(&r);
        off += n;
    }
    /* clamp tau_2 = max(1/3 + off, 0) at 0: its gradient must vanish */
    L->p.token_idx[2] = -0.6;
}

static void rand_fill(real *v, size_t n, uint64_t seed)
{
    ttt_rng r;
    ttt_rng_seed(&r, seed);
    for (size_t k = 0; k < n; k++) v[k] = ttt_rng_normal(&r);
}

static double loss_of(layer *L, real *acts, real *out, const real *x, const real *R, int B, int T)
{
    ttt_layer_forward(&L->c, out, acts, x, &L->p, B, T);
    double s = 0;
    for (size_t k = 0; k < (size_t)B * T * L->c.C; k++) s += out[k] * R[k];
    return s;
}

/* Finite differences against the backward for one configuration. */
static void test_fd(int kind, int mamba, int T)
{
    int B = 2, C = 8, H = 2;
    layer L;
    layer_make(&L, kind, mamba, C, H, kind == TTT_MLP ? 0.5 : 1.0, 100 + kind * 10 + mamba * 3 + T);
    size_t BTC = (size_t)B * T * C;
    real *x = malloc(BTC * sizeof(real)), *R = malloc(BTC * sizeof(real));
    real *out = malloc(BTC * sizeof(real)), *dx = malloc(BTC * sizeof(real));
    real *acts = malloc(ttt_layer_acts_size(&L.c, B, T) * sizeof(real));
    rand_fill(x, BTC, 7 + T);
    rand_fill(R, BTC, 8 + T);
    loss_of(&L, acts, out, x, R, B, T);
    ttt_layer_backward(&L.c, dx, &L.g, R, acts, x, &L.p, B, T);

    const double eps = 1e-5;
    /* random directions through all parameters and the input */
    for (int trial = 0; trial < 2; trial++) {
        size_t np = L.total;
        real *dir = malloc((np + BTC) * sizeof(real)), *save = malloc((np + BTC) * sizeof(real));
        rand_fill(dir, np + BTC, 1000 + trial);
        for (int i = 0; i < L.n; i++) if (!strcmp(L.tp[i].name, "learnable_token_idx")) {
            /* keep the clamped entry away from its kink */
            size_t o = *L.tp[i].ptr - L.buf;
            dir[o + 2] = 0;
        }
        /* unit length, so eps is the actual step */
        double nrm = 0;
        for (size_t k = 0; k < np + BTC; k++) nrm += dir[k] * dir[k];
        for (size_t k = 0; k < np + BTC; k++) dir[k] /= sqrt(nrm);
        memcpy(save, L.buf, np * sizeof(real));
        memcpy(save + np, x, BTC * sizeof(real));
        double lp, lm, an = 0;
        for (size_t k = 0; k < np; k++) { an += dir[k] * L.buf[L.total + k]; L.buf[k] = save[k] + eps * dir[k]; }
        for (size_t k = 0; k < BTC; k++) { an += dir[np + k] * dx[k]; x[k] = save[np + k] + eps * dir[np + k]; }
        lp = loss_of(&L, acts, out, x, R, B, T);
        for (size_t k = 0; k < np; k++) L.buf[k] = save[k] - eps * dir[k];
        for (size_t k = 0; k < BTC; k++) x[k] = save[np + k] - eps * dir[np + k];
        lm = loss_of(&L, acts, out, x, R, B, T);
        memcpy(L.buf, save, np * sizeof(real));
        memcpy(x, save + np, BTC * sizeof(real));
        double fd = (lp - lm) / (2 * eps);
        if (fabs(an - fd) > 1e-7 + 1e-6 * fabs(fd)) fprintf(stderr, "  dir kind %d mamba %d T %d: an %.10g fd %.10g\n", kind, mamba, T, an, fd);
        CHECK_CLOSE(an, fd, 1e-7, 1e-6);
        free(dir); free(save);
    }
    /* single coordinates: one random entry of every tensor and of the input */
    ttt_rng r;
    ttt_rng_seed(&r, 55 + T);
    for (int i = 0; i <= L.n; i++) {
        real *base = i < L.n ? *L.tp[i].ptr : x;
        const real *grad = i < L.n ? *L.tg[i].ptr : dx;
        size_t n = i < L.n ? L.tp[i].numel : BTC;
        size_t k = ttt_rng_below(&r, n);
        int is_tok = i < L.n && !strcmp(L.tp[i].name, "learnable_token_idx");
        if (is_tok && k == 2) k = 3;
        real s = base[k];
        base[k] = s + eps;
        double lp = loss_of(&L, acts, out, x, R, B, T);
        base[k] = s - eps;
        double lm = loss_of(&L, acts, out, x, R, B, T);
        base[k] = s;
        double fd = (lp - lm) / (2 * eps);
        if (fabs(grad[k] - fd) > 1e-6 + 1e-5 * fabs(fd))
            fprintf(stderr, "  %s[%zu]: backward %.10g fd %.10g\n", i < L.n ? L.tp[i].name : "x", k, grad[k], fd);
        CHECK_CLOSE(grad[k], fd, 1e-6, 1e-5);
        if (is_tok) CHECK(L.g.token_idx[2] == 0);
    }
    free(x); free(R); free(out); free(dx); free(acts); free(L.buf);
}

/* Naive primal form of TTT-Linear (spec 4) on the layer's own XQ/XK/XV,
 * lr and tau: for token i of mini-batch n, S^(i) = S_n - tau_i sum_{j<=i}
 * lr_j grad l_j(S_n); z = q + LN(q W^(i) + b^(i)). Compared with the dual
 * form's ttt_out_pre_post_norm. */
static void test_dual_vs_primal(int T)
{
    int B = 2, C = 8, H = 2, D = 4;
    layer L;
    layer_make(&L, TTT_LINEAR, 0, C, H, 1.0, 77 + T);
    size_t BTC = (size_t)B * T * C;
    real *x = malloc(BTC * sizeof(real)), *out = malloc(BTC * sizeof(real));
    real *acts = malloc(ttt_layer_acts_size(&L.c, B, T) * sizeof(real));
    rand_fill(x, BTC, 3 + T);
    ttt_layer_forward(&L.c, out, acts, x, &L.p, B, T);
    const real *XQ = ttt_layer_inter(&L.c, acts, "XQ_rope", B, T), *XK = ttt_layer_inter(&L.c, acts, "XK_rope", B, T);
    const real *XV = ttt_layer_inter(&L.c, acts, "XV", B, T), *lr = ttt_layer_inter(&L.c, acts, "ttt_lr_eta", B, T);
    const real *tau = ttt_layer_inter(&L.c, acts, "token_eta", B, T);
    const real *dual = ttt_layer_inter(&L.c, acts, "ttt_out_pre_post_norm", B, T);
    double worst = 0;
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++) {
            const real *gamma = L.p.ttt_norm_w + h * D, *beta = L.p.ttt_norm_b + h * D;
            real W[16], bb[4], gW[16], gb[4];
            memcpy(W, L.p.W1 + h * 16, sizeof W);
            memcpy(bb, L.p.b1 + h * 4, sizeof bb);
            for (int t0 = 0; t0 < T; t0 += 16) {
                memset(gW, 0, sizeof gW); memset(gb, 0, sizeof gb);
                int r = T - t0 < 16 ? T - t0 : 16;
                for (int i = 0; i < r; i++) {
                    size_t row = ((size_t)(b * H + h) * T + t0 + i);
                    const real *k = XK + row * D, *v = XV + row * D, *q = XQ + row * D;
                    real z[4], tg[4], g[4], Wi[16], bi[4], zq[4], y[4];
                    for (int c = 0; c < D; c++) {
                        z[c] = bb[c]; tg[c] = v[c] - k[c];
                        for (int a = 0; a < D; a++) z[c] += k[a] * W[a * D + c];
                    }
                    ln_l2grad_row(g, z, tg, gamma, beta, D, 1e-6);
                    for (int a = 0; a < D; a++) for (int c = 0; c < D; c++) gW[a * D + c] += lr[row] * k[a] * g[c];
                    for (int c = 0; c < D; c++) gb[c] += lr[row] * g[c];
                    for (int e = 0; e < 16; e++) Wi[e] = W[e] - tau[i] * gW[e];
                    for (int c = 0; c < D; c++) bi[c] = bb[c] - tau[i] * gb[c];
                    for (int c = 0; c < D; c++) {
                        zq[c] = bi[c];
                        for (int a = 0; a < D; a++) zq[c] += q[a] * Wi[a * D + c];
                    }
                    ln_row_forward(y, NULL, NULL, zq, gamma, beta, D, 1e-6);
                    for (int c = 0; c < D; c++) {
                        double d = fabs(y[c] + q[c] - dual[((size_t)b * T + t0 + i) * C + h * D + c]);
                        if (d > worst) worst = d;
                    }
                    if (i == r - 1) { memcpy(W, Wi, sizeof W); memcpy(bb, bi, sizeof bb); }
                }
            }
        }
    CHECK(worst < 1e-12);
    free(x); free(out); free(acts); free(L.buf);
}

/* prefill of P tokens then single steps == the full forward */
static void test_decode(int kind, int mamba, int P)
{
    int B = 2, C = 8, H = 2, T = 40;
    layer L;
    layer_make(&L, kind, mamba, C, H, kind == TTT_MLP ? 0.5 : 1.0, 300 + P + kind * 7 + mamba);
    size_t BTC = (size_t)B * T * C;
    real *x = malloc(BTC * sizeof(real)), *full = malloc(BTC * sizeof(real)), *dec = malloc(BTC * sizeof(real));
    real *acts = malloc(ttt_layer_acts_size(&L.c, B, T) * sizeof(real));
    real *state = malloc(ttt_layer_state_size(&L.c, B) * sizeof(real));
    real *xb = malloc(B * C * sizeof(real)), *ob = malloc((size_t)B * T * C * sizeof(real));
    rand_fill(x, BTC, 11 + P);
    ttt_layer_forward(&L.c, full, acts, x, &L.p, B, T);
    ttt_layer_state_init(&L.c, state, &L.p, B);
    if (P > 0) {
        /* chunk [B,P,C] out of [B,T,C] */
        real *xc = malloc((size_t)B * P * C * sizeof(real));
        for (int b = 0; b < B; b++) memcpy(xc + (size_t)b * P * C, x + (size_t)b * T * C, (size_t)P * C * sizeof(real));
        CHECK(ttt_layer_prefill(&L.c, ob, state, xc, &L.p, B, P, 0) == 0);
        for (int b = 0; b < B; b++) memcpy(dec + (size_t)b * T * C, ob + (size_t)b * P * C, (size_t)P * C * sizeof(real));
        free(xc);
    }
    for (int t = P; t < T; t++) {
        for (int b = 0; b < B; b++) memcpy(xb + b * C, x + ((size_t)b * T + t) * C, C * sizeof(real));
        ttt_layer_step(&L.c, ob, state, xb, &L.p, B, t);
        for (int b = 0; b < B; b++) memcpy(dec + ((size_t)b * T + t) * C, ob + b * C, C * sizeof(real));
    }
    double worst = maxdiff(dec, full, BTC);
    if (!(worst < 1e-12)) fprintf(stderr, "  decode kind %d mamba %d P %d: max diff %.3g\n", kind, mamba, P, worst);
    CHECK(worst < 1e-12);
    /* after 40 tokens the state holds S_2 and A over tokens 32..39 */
    int nd, shape[4];
    CHECK(ttt_layer_state_tensor(&L.c, state, "W1_states", B, &nd, shape) != NULL && nd == 4 && shape[0] == B);
    CHECK((ttt_layer_state_tensor(&L.c, state, "conv_ttt_conv_q", B, &nd, shape) != NULL) == mamba);
    CHECK((ttt_layer_state_tensor(&L.c, state, "W2_grad", B, &nd, shape) != NULL) == (kind == TTT_MLP));
    free(x); free(full); free(dec); free(acts); free(state); free(xb); free(ob); free(L.buf);
}

/* two aligned prefill chunks (16 then 20) == full forward; misaligned chunk refused */
static void test_chunked_prefill(void)
{
    int B = 1, C = 8, H = 2, T = 36;
    layer L;
    layer_make(&L, TTT_MLP, 1, C, H, 0.5, 999);
    size_t BTC = (size_t)B * T * C;
    real *x = malloc(BTC * sizeof(real)), *full = malloc(BTC * sizeof(real)), *dec = malloc(BTC * sizeof(real));
    real *acts = malloc(ttt_layer_acts_size(&L.c, B, T) * sizeof(real));
    real *state = malloc(ttt_layer_state_size(&L.c, B) * sizeof(real));
    rand_fill(x, BTC, 4242);
    ttt_layer_forward(&L.c, full, acts, x, &L.p, B, T);
    ttt_layer_state_init(&L.c, state, &L.p, B);
    CHECK(ttt_layer_prefill(&L.c, dec, state, x, &L.p, B, 16, 0) == 0);
    CHECK(ttt_layer_prefill(&L.c, dec + 16 * C, state, x + 16 * C, &L.p, B, 20, 16) == 0);
    double worst = maxdiff(dec, full, BTC);
    CHECK(worst < 1e-12);
    CHECK(ttt_layer_prefill(&L.c, dec, state, x, &L.p, B, 3, 37) == -1);
    free(x); free(full); free(dec); free(acts); free(state); free(L.buf);
}

int main(void)
{
    static const int lens[] = { 32, 21, 7 };
    for (int kind = 0; kind < 2; kind++)
        for (int mamba = 0; mamba < 2; mamba++)
            for (int i = 0; i < 3; i++) test_fd(kind, mamba, lens[i]);
    test_dual_vs_primal(40);
    test_dual_vs_primal(9);
    static const int pre[] = { 0, 1, 16, 19 };
    for (int kind = 0; kind < 2; kind++)
        for (int mamba = 0; mamba < 2; mamba++)
            for (int i = 0; i < 4; i++) test_decode(kind, mamba, pre[i]);
    test_chunked_prefill();
    return check_exit("test_ttt_layer");
}
