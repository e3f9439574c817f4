/* test_model.c - unit tests of the model (float64 build): central finite
 * differences of RMSNorm, SwiGLU, embedding, cross-entropy and of the whole
 * tiny model (both backbones, both TTT kinds, a partial last mini-batch),
 * decoding equal to the full forward across mini-batch boundaries, config
 * JSON round trip and errors, preset parameter counts against the spec table.
 */
#include "check.h"
#include "model_check.h"
#include "testvec.h"
#include "../../lib/model.h"
#include "../../lib/err.h"
#include "../../lib/rng.h"
#include "../../lib/layers/embed.h"
#include "../../lib/layers/rmsnorm.h"
#include "../../lib/layers/swiglu.h"
#include "../../lib/layers/xent.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static ttt_rng rng;

/* ---- layer pieces: loss = sum(out * R) ---- */

static double rms_loss(const real *x, const real *w, const real *R, int N, int C)
{
    real *out = malloc((size_t)N * C * sizeof *out);
    rmsnorm_forward(out, NULL, x, w, N, C, 1e-6);
    double l = dot(out, R, (size_t)N * C);
    free(out);
    return l;
}

static void test_rmsnorm(void)
{
    int N = 5, C = 7;
    real *x = randvec(&rng, N * C, 1, 0), *w = randvec(&rng, C, 0.3, 1), *R = randvec(&rng, N * C, 1, 0);
    real *out = malloc(N * C * sizeof *out), *rstd = malloc(N * sizeof *rstd);
    real *dx = malloc(N * C * sizeof *dx), *dw = calloc(C, sizeof *dw);
    rmsnorm_forward(out, rstd, x, w, N, C, 1e-6);
    /* forward against the definition */
    double ss = 0;
    for (int c = 0; c < C; c++) ss += x[C + c] * x[C + c];
    CHECK_CLOSE(out[C + 3], w[3] * x[C + 3] / sqrt(ss / C + 1e-6), 1e-14, 1e-13);
    rmsnorm_backward(dx, dw, R, x, w, rstd, N, C);
    double h = 1e-6;
    for (int i = 0; i < N * C; i += 3) {
        real s = x[i];
        x[i] = s + h; double lp = rms_loss(x, w, R, N, C);
        x[i] = s - h; double lm = rms_loss(x, w, R, N, C);
        x[i] = s;
        CHECK_CLOSE(dx[i], (lp - lm) / (2 * h), 1e-8, 1e-6);
    }
    for (int c = 0; c < C; c++) {
        real s = w[c];
        w[c] = s + h; double lp = rms_loss(x, w, R, N, C);
        w[c] = s - h; double lm = rms_loss(x, w, R, N, C);
        w[c] = s;
        CHECK_CLOSE(dw[c], (lp - lm) / (2 * h), 1e-8, 1e-6);
    }
    /* dw accumulates */
    real before = dw[2];
    rmsnorm_backward(dx, dw, R, x, w, rstd, N, C);
    CHECK_CLOSE(dw[2], 2 * before, 1e-14, 1e-12);
    free(x); free(w); free(R); free(out); free(rstd); free(dx); free(dw);
}

static double sw_loss(const real *x, real *const W[3], const real *R, int N, int C, int I)
{
    real *out = malloc((size_t)N * C * sizeof *out), *acts = malloc(swiglu_acts_size(N, I) * sizeof *acts);
    swiglu_forward(out, acts, x, W[0], W[1], W[2], N, C, I);
    double l = dot(out, R, (size_t)N * C);
    free(out); free(acts);
    return l;
}

static void test_swiglu(void)
{
    int N = 6, C = 5, I = 9;
    real *x = randvec(&rng, N * C, 1, 0), *R = randvec(&rng, N * C, 1, 0);
    real *W[3] = { randvec(&rng, I * C, 0.5, 0), randvec(&rng, I * C, 0.5, 0), randvec(&rng, C * I, 0.5, 0) };
    real *dW[3] = { calloc(I * C, sizeof(real)), calloc(I * C, sizeof(real)), calloc(C * I, sizeof(real)) };
    real *out = malloc(N * C * sizeof *out), *acts = malloc(swiglu_acts_size(N, I) * sizeof *acts);
    real *dx = malloc(N * C * sizeof *dx), *scratch = malloc(2 * N * I * sizeof *scratch);
    swiglu_forward(out, acts, x, W[0], W[1], W[2], N, C, I);
    /* forward against the definition at one place */
    double o = 0;
    for (int i = 0; i < I; i++) {
        double g = 0, u = 0;
        for (int c = 0; c < C; c++) { g += x[2 * C + c] * W[0][i * C + c]; u += x[2 * C + c] * W[1][i * C + c]; }
        o += g / (1 + exp(-g)) * u * W[2][1 * I + i];
    }
    CHECK_CLOSE(out[2 * C + 1], o, 1e-13, 1e-12);
    swiglu_backward(dx, dW[0], dW[1], dW[2], R, acts, x, W[0], W[1], W[2], scratch, N, C, I);
    double h = 1e-6;
    for (int i = 0; i < N * C; i += 2) {
        real s = x[i];
        x[i] = s + h; double lp = sw_loss(x, W, R, N, C, I);
        x[i] = s - h; double lm = sw_loss(x, W, R, N, C, I);
        x[i] = s;
        CHECK_CLOSE(dx[i], (lp - lm) / (2 * h), 1e-8, 1e-6);
    }
    for (int k = 0; k < 3; k++)
        for (int i = 0; i < I * C; i += 4) {
            real s = W[k][i];
            W[k][i] = s + h; double lp = sw_loss(x, W, R, N, C, I);
            W[k][i] = s - h; double lm = sw_loss(x, W, R, N, C, I);
            W[k][i] = s;
            CHECK_CLOSE(dW[k][i], (lp - lm) / (2 * h), 1e-8, 1e-6);
        }
    for (int k = 0; k < 3; k++) { free(W[k]); free(dW[k]); }
    free(x); free(R); free(out); free(acts); free(dx); free(scratch);
}

static void test_embed(void)
{
    int V = 6, C = 4, N = 5;
    int32_t ids[5] = { 3, 0, 3, 5, 3 };
    real *E = randvec(&rng, V * C, 1, 0), *out = malloc(N * C * sizeof *out), *g = randvec(&rng, N * C, 1, 0);
    real *dE = calloc(V * C, sizeof *dE);
    embed_forward(out, ids, E, N, C);
    CHECK(out[3 * C + 2] == E[5 * C + 2]);
    CHECK(out[2 * C + 1] == E[3 * C + 1]);
    embed_backward(dE, g, ids, N, C);
    /* repeated token 3 gets the sum of its three rows, absent tokens nothing */
    CHECK_CLOSE(dE[3 * C + 1], g[0 * C + 1] + g[2 * C + 1] + g[4 * C + 1], 1e-15, 1e-14);
    CHECK(dE[1 * C + 0] == 0 && dE[2 * C + 3] == 0);
    CHECK_CLOSE(dE[5 * C + 3], g[3 * C + 3], 0, 0);
    free(E); free(out); free(g); free(dE);
}

static double xent_mean(const real *logits, const int32_t *t, int N, int V)
{
    real *losses = malloc(N * sizeof *losses), *lse = malloc(N * sizeof *lse);
    long cnt;
    double s = xent_forward(losses, lse, logits, t, N, V, &cnt);
    free(losses); free(lse);
    return s / cnt;
}

static void test_xent(void)
{
    int N = 4, V = 7;
    int32_t t[4] = { 2, -1, 6, 0 };
    real *l = randvec(&rng, N * V, 2, 0), *d = malloc(N * V * sizeof *d);
    real losses[4], lse[4];
    long cnt;
    double sum = xent_forward(losses, lse, l, t, N, V, &cnt);
    CHECK(cnt == 3);
    CHECK(losses[1] == 0);
    double z = 0;
    for (int v = 0; v < V; v++) z += exp(l[2 * V + v]);
    CHECK_CLOSE(losses[2], log(z) - l[2 * V + 6], 1e-14, 1e-13);
    CHECK_CLOSE(sum, losses[0] + losses[2] + losses[3], 1e-14, 1e-14);
    xent_backward(d, l, lse, t, 1.0 / cnt, N, V);
    double h = 1e-6;
    for (int i = 0; i < N * V; i++) {
        real s = l[i];
        l[i] = s + h; double lp = xent_mean(l, t, N, V);
        l[i] = s - h; double lm = xent_mean(l, t, N, V);
        l[i] = s;
        CHECK_CLOSE(d[i], (lp - lm) / (2 * h), 1e-9, 1e-6);
    }
    free(l); free(d);
}

/* ---- whole model ---- */

static void tiny_config(ttt_config *c, int kind, int mamba)
{
    CHECK(ttt_config_preset(c, "tiny") == 0);
    c->vocab_size = 37;
    c->hidden_size = 16;
    c->num_attention_heads = 2;
    c->intermediate_size = 24;
    c->num_hidden_layers = 2;
    c->ttt_layer_type = kind;
    c->pre_conv = c->share_qk = c->use_gate = mamba;
    c->ttt_base_lr = kind == TTT_MLP ? 0.1 : 1.0;
}

/* Parameters like the reference vectors': far enough from the official init
 * that every path carries signal. */
static void scramble(ttt_model *m)
{
    real *p = ttt_model_params(m);
    for (int i = 0; i < ttt_model_num_tensors(m); i++) {
        const ttt_tensor *t = ttt_model_tensor(m, i);
        int fan = t->ndim >= 2 ? t->shape[t->ndim - 1] : 1;
        int isnorm = strstr(t->name, "norm") != NULL && strstr(t->name, "bias") == NULL;
        for (size_t k = 0; k < t->numel; k++) {
            double r = ttt_rng_normal(&rng);
            if (isnorm) p[t->offset + k] = 1 + 0.1 * r;
            else if (strstr(t->name, "token_idx")) p[t->offset + k] = 0.03 * r;
            else if (strstr(t->name, "embed")) p[t->offset + k] = 0.3 * r;
            else p[t->offset + k] = (fan > 1 ? 1 / sqrt(fan) : 0.1) * r;
        }
    }
}

/* The scrambled tiny model; NULL (a failed check) if it does not build. */
static ttt_model *tiny_model(ttt_config *c, int kind, int mamba)
{
    tiny_config(c, kind, mamba);
    ttt_model *m = ttt_model_build(c);
    CHECK(m != NULL);
    if (m) scramble(m);
    return m;
}

static void test_model_fd(int kind, int mamba)
{
    ttt_config c;
    ttt_model *m = tiny_model(&c, kind, mamba);
    if (!m) return;
    int B = 2, T = 21;   /* one full mini-batch and a partial one of 5 */
    int32_t ids[42], tg[42];
    random_batch(&rng, ids, tg, B, T, c.vocab_size);
    tg[3] = -1;   /* an ignored target in the middle */
    size_t n = ttt_model_num_params(m);
    real *p = ttt_model_params(m), *g = ttt_model_grads(m);
    real *grad = model_grad(m, ids, tg, B, T);

    /* random directions through all parameters */
    double h = 1e-5;
    for (int rep = 0; rep < 3; rep++) {
        real *dir = randvec(&rng, n, 1, 0), *p0 = malloc(n * sizeof *p0);
        memcpy(p0, p, n * sizeof *p0);
        for (size_t i = 0; i < n; i++) p[i] = p0[i] + h * dir[i];
        double lp = model_loss(m, ids, tg, B, T);
        for (size_t i = 0; i < n; i++) p[i] = p0[i] - h * dir[i];
        double lm = model_loss(m, ids, tg, B, T);
        memcpy(p, p0, n * sizeof *p0);
        double fd = (lp - lm) / (2 * h), an = dot(grad, dir, n);
        CHECK_CLOSE(an, fd, 1e-9, 1e-6);
        free(dir); free(p0);
    }
    /* single coordinates: the largest-gradient entry of every tensor */
    int bad = 0;
    for (int i = 0; i < ttt_model_num_tensors(m); i++) {
        const ttt_tensor *t = ttt_model_tensor(m, i);
        bad += !fd_agrees(m, ids, tg, B, T, t, largest_grad(grad, t), grad, h);
    }
    CHECK(bad == 0);
    /* gradients accumulate; one backward per forward */
    model_loss(m, ids, tg, B, T);
    CHECK(ttt_model_backward(m) == 0);
    CHECK(ttt_model_backward(m) == -1 && strstr(ttt_errmsg(), "already"));
    CHECK_CLOSE(g[7], 2 * grad[7], 1e-12, 1e-9);
    /* per-token losses: mean over valid targets is the loss */
    double loss = model_loss(m, ids, tg, B, T), s = 0;
    const real *tl = ttt_model_token_losses(m);
    int cnt = 0;
    for (int i = 0; i < B * T; i++) if (tg[i] >= 0) { s += tl[i]; cnt++; } else CHECK(tl[i] == 0);
    CHECK_CLOSE(loss, s / cnt, 1e-13, 1e-13);
    free(grad);
    ttt_model_free(m);
}

/* Decoding (prefill P, then steps) gives the full forward's logits. */
static void test_decode(int kind, int mamba)
{
    ttt_config c;
    ttt_model *m = tiny_model(&c, kind, mamba);
    if (!m) return;
    enum { B = 2, T = 53 };
    int V = c.vocab_size;
    int32_t ids[B * T], chunk[B * T];
    random_batch(&rng, ids, NULL, B, T, V);
    real *full = full_logits(m, ids, B, T, V), *lg = malloc((size_t)B * T * V * sizeof *lg);
    static const int Ps[] = { 0, 1, 16, 19, 32 };
    for (size_t pi = 0; pi < sizeof Ps / sizeof Ps[0]; pi++) {
        int P = Ps[pi];
        ttt_decode *s = ttt_decode_new(m, B);
        CHECK(s != NULL);
        double worst = 0;
        if (P > 0) {
            for (int b = 0; b < B; b++) memcpy(chunk + b * P, ids + b * T, P * sizeof *ids);
            CHECK(ttt_decode_prefill(m, s, chunk, P, lg) == 0);
            worst = fmax(worst, logits_diff(lg, full, B, P, T, 0, V));
        }
        for (int t = P; t < T; t++) {
            for (int b = 0; b < B; b++) chunk[b] = ids[b * T + t];
            CHECK(ttt_decode_step(m, s, chunk, lg) == 0);
            worst = fmax(worst, logits_diff(lg, full, B, 1, T, t, V));
        }
        CHECK(ttt_decode_position(s) == T);
        if (!(worst < 1e-10)) fprintf(stderr, "  decode P=%d: max |diff| %.3g\n", P, worst);
        CHECK(worst < 1e-10);
        ttt_decode_free(s);
    }
    /* two aligned prefills (16 then 21) then steps; a misaligned prefill is refused */
    ttt_decode *s = ttt_decode_new(m, B);
    double worst = 0;
    int done = 0;
    for (int part = 0; part < 2; part++) {
        int P = part ? 21 : 16;
        for (int b = 0; b < B; b++) memcpy(chunk + b * P, ids + b * T + done, P * sizeof *ids);
        CHECK(ttt_decode_prefill(m, s, chunk, P, lg) == 0);
        worst = fmax(worst, logits_diff(lg, full, B, P, T, done, V));
        done += P;
    }
    CHECK(worst < 1e-10);
    CHECK(ttt_decode_prefill(m, s, chunk, 3, lg) == -1);
    CHECK(strstr(ttt_errmsg(), "multiple of 16") != NULL);
    int nd, shape[4];
    CHECK(ttt_decode_tensor(s, "layer1.W1_states", &nd, shape) != NULL && shape[0] == B);
    CHECK((ttt_decode_tensor(s, "layer0.conv_pre_conv", &nd, shape) != NULL) == mamba);
    CHECK(ttt_decode_tensor(s, "layer9.W1_states", &nd, shape) == NULL);
    ttt_decode_free(s);
    free(full); free(lg);
    ttt_model_free(m);
}

/* ---- config, table, errors ---- */

static void test_config(void)
{
    static const char *names[] = { "125m", "350m", "760m", "1b", "tiny", "small" };
    for (int i = 0; i < 6; i++) {
        ttt_config c, d;
        CHECK(ttt_config_preset(&c, names[i]) == 0);
        c.ttt_layer_type = TTT_MLP;
        c.rms_norm_eps = 1e-5 / 3;
        c.ttt_base_lr = 0.1;
        c.share_qk = 0;
        char *buf = NULL;
        size_t n = 0;
        FILE *f = open_memstream(&buf, &n);
        CHECK(ttt_config_write_json(&c, f) == 0);
        fclose(f);
        json *j = json_parse(buf, n);
        CHECK(j != NULL);
        CHECK(ttt_config_from_json(&d, j) == 0);
        CHECK(memcmp(&c, &d, sizeof c) == 0);
        json_free(j);
        free(buf);
    }
    ttt_config c;
    CHECK(ttt_config_preset(&c, "2b") == -1 && strstr(ttt_errmsg(), "2b"));
    static const struct { const char *text, *needle; } bad[] = {
        { "{\"hidden_size\": 64, \"hiden_size\": 3}", "hiden_size" },
        { "{\"hidden_size\": 64.5}", "hidden_size" },
        { "{\"ttt_layer_type\": \"conv\"}", "ttt_layer_type" },
        { "{\"tie_word_embeddings\": false}", "tie_word_embeddings" },
        { "{\"hidden_size\": 60, \"num_attention_heads\": 7}", "multiple" },
        { "{\"pre_conv\": \"yes\"}", "pre_conv" },
        { "[1,2]", "object" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        json *j = json_parse(bad[i].text, strlen(bad[i].text));
        CHECK(j && ttt_config_from_json(&c, j) == -1 && strstr(ttt_errmsg(), bad[i].needle));
        json_free(j);
    }
    /* a reference config line loads, with its ignored keys */
    const char *ref = "{\"conv_kernel\": 4, \"hidden_size\": 64, \"intermediate_size\": 128, \"mini_batch_size\": 16, "
        "\"num_attention_heads\": 4, \"num_hidden_layers\": 2, \"pre_conv\": true, \"rms_norm_eps\": 1e-06, "
        "\"rope_theta\": 10000.0, \"scan_checkpoint_group_size\": 0, \"share_qk\": true, \"tie_word_embeddings\": true, "
        "\"ttt_base_lr\": 0.1, \"ttt_layer_type\": \"mlp\", \"use_cache\": false, \"use_gate\": true, \"vocab_size\": 256}";
    json *j = json_parse(ref, strlen(ref));
    CHECK(ttt_config_from_json(&c, j) == 0);
    CHECK(c.ttt_layer_type == TTT_MLP && c.pre_conv && c.share_qk && c.use_gate && c.vocab_size == 256);
    CHECK(c.ttt_base_lr == 0.1 && c.rms_norm_eps == 1e-6 && c.num_hidden_layers == 2);
    json_free(j);
}

/* Spec section 10 table (V = 32000, millions, one decimal). */
static void test_param_counts(void)
{
    static const struct { const char *name; double lt, lm, mt, mm; } tab[] = {
        { "125m", 110.3, 110.4, 114.4, 114.6 },
        { "350m", 337.3, 337.7, 348.4, 348.8 },
        { "760m", 733.0, 733.6, 757.9, 758.5 },
        { "1b", 1284.9, 1285.6, 1307.1, 1307.9 },
    };
    for (int i = 0; i < 4; i++)
        for (int k = 0; k < 4; k++) {
            ttt_config c;
            ttt_config_preset(&c, tab[i].name);
            c.ttt_layer_type = k >= 2 ? TTT_MLP : TTT_LINEAR;
            c.pre_conv = c.share_qk = c.use_gate = k & 1;
            double want = k == 0 ? tab[i].lt : k == 1 ? tab[i].lm : k == 2 ? tab[i].mt : tab[i].mm;
            double got = round(ttt_config_num_params(&c) / 1e5) / 10;
            if (got != want) fprintf(stderr, "  %s kind %d: %.1fM, spec %.1fM\n", tab[i].name, k, got, want);
            CHECK(got == want);
        }
}

static void test_table_and_errors(void)
{
    ttt_config c;
    tiny_config(&c, TTT_MLP, 1);
    ttt_model *m = ttt_model_build(&c);
    CHECK(m && ttt_model_num_params(m) == ttt_config_num_params(&c));
    const ttt_tensor *t = ttt_model_find(m, "model.layers.1.seq_modeling_block.W2");
    CHECK(t && t->ndim == 3 && t->shape[0] == 2 && t->shape[1] == 32 && t->shape[2] == 8);
    CHECK(ttt_model_find(m, "model.layers.0.seq_modeling_block.k_proj.weight") == NULL);
    CHECK(ttt_model_find(m, "model.layers.0.conv.conv.bias") != NULL);
    CHECK(ttt_model_find(m, "lm_head.weight") == NULL);
    CHECK(strcmp(ttt_model_tensor(m, 0)->name, "model.embed_tokens.weight") == 0);
    const ttt_tensor *last = ttt_model_tensor(m, ttt_model_num_tensors(m) - 1);
    CHECK(strcmp(last->name, "model.norm.weight") == 0 && last->offset + last->numel == ttt_model_num_params(m));
    /* init per spec section 9 */
    ttt_model_init(m, 5);
    const real *p = ttt_model_params(m);
    t = ttt_model_find(m, "model.layers.0.seq_modeling_block.ttt_norm_weight");
    CHECK(p[t->offset] == 1 && p[t->offset + t->numel - 1] == 1);
    t = ttt_model_find(m, "model.layers.0.seq_modeling_block.b1");
    CHECK(p[t->offset + 3] == 0);
    t = ttt_model_find(m, "model.embed_tokens.weight");
    double ss = 0;
    for (size_t k = 0; k < t->numel; k++) ss += p[t->offset + k] * p[t->offset + k];
    CHECK_CLOSE(sqrt(ss / t->numel), 0.02, 0.002, 0);
    t = ttt_model_find(m, "model.layers.1.conv.conv.weight");
    double mx = 0;
    for (size_t k = 0; k < t->numel; k++) mx = fmax(mx, fabs(p[t->offset + k]));
    CHECK(mx <= 0.5 && mx > 0.3);
    /* bad input is an error, not a crash */
    int32_t ids[4] = { 1, 2, 37, 3 };
    CHECK(ttt_model_forward(m, ids, NULL, 1, 4, NULL) == -1 && strstr(ttt_errmsg(), "37"));
    CHECK(ttt_model_backward(m) == -1);
    ids[2] = 0;
    CHECK(ttt_model_forward(m, ids, NULL, 1, 4, NULL) == 0 && ttt_model_logits(m) != NULL);
    CHECK(ttt_model_token_losses(m) == NULL);
    CHECK(ttt_model_inter(m, "inter.block1.seq_norm_out") != NULL);
    CHECK(ttt_model_inter(m, "inter.block2.seq_norm_out") == NULL);
    CHECK(ttt_model_inter(m, "inter.final_norm_out") != NULL);
    ttt_model_free(m);
    c.hidden_size = 15;
    CHECK(ttt_model_build(&c) == NULL && strstr(ttt_errmsg(), "hidden_size"));
}

int main(void)
{
    ttt_rng_seed(&rng, 1234);
    test_rmsnorm();
    test_swiglu();
    test_embed();
    test_xent();
    test_config();
    test_param_counts();
    test_table_and_errors();
    for (int kind = 0; kind < 2; kind++)
        for (int mamba = 0; mamba < 2; mamba++) {
            test_model_fd(kind, mamba);
            test_decode(kind, mamba);
        }
    return check_exit("test_model");
}
