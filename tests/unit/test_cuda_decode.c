/* test_cuda_decode.c - GPU decoding (lib/ttt_cuda_decode.h) against the CPU
 * decoder (model.h ttt_decode_*, float64 here) on the tiny configuration,
 * both backbones (Mamba: pre_conv, share_qk, use_gate; Transformer: none),
 * TTT-Linear and TTT-MLP:
 *   - prefill of 0, 1, 16, 19 tokens then 40 single steps: the logits of
 *     the prefill's last token and of every step, ||gpu - cpu|| / ||cpu||
 *     <= 1e-4 (the aligned prefills take the dual-form path, the rest the
 *     token-by-token kernel);
 *   - a prefill in two aligned chunks (16 + 19) and a batch of 2 (the
 *     token-by-token kernel for the whole prompt);
 *   - state interchange: the GPU state downloaded into a CPU decoder
 *     matches the CPU decoder's own tensor by tensor, and either side
 *     continues from the other's state with the same logits;
 *   - refusals: an id outside the vocabulary, a multi-token prefill at an
 *     unaligned position.
 * The baselines (Transformer: attention with a device KV cache; Mamba: the
 * selective-SSM block's conv + SSM state) at their tiny sizes, the model's
 * max_position_embeddings set to 32 so that the KV cache grows twice:
 *   - the same prefill/step cases against the CPU decoder, plus
 *     multi-token prefills at unaligned positions (chunks of 7), which the
 *     baselines allow, and a prefill of 80 tokens in chunks of 27;
 *   - decoding token by token against the GPU model's full forward: the
 *     cross-entropy of each next token from the decode logits equals
 *     ttt_gpu_model_token_losses (checked for the TTT models too);
 *   - the state interchange as above (k_cache/v_cache [pos,B,C],
 *     conv_state/ssm_state), and at position 0 (no KV tensors yet);
 *   - the KV cache limit TTT_ATTN_MAX_CONTEXT refused with a message.
 * Skips cleanly (exit 0) without CUDA in the build or without a GPU. */
#include "check.h"

#include <stdio.h>

#ifdef TTT_HAVE_CUDA
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "model.h"
#include "rng.h"
#include "ttt_cuda.h"          /* TTT_CUDA_F32 */
#include "ttt_cuda_decode.h"
#include "ttt_cuda_model.h"

#define TOL 1e-4
#define STEPS 40

/* ||g - c|| / ||c|| over n values */
static double rel(const float *g, const real *c, size_t n)
{
    double d = 0, s = 0;
    for (size_t i = 0; i < n; i++) {
        d += ((double)g[i] - c[i]) * ((double)g[i] - c[i]);
        s += (double)c[i] * c[i];
    }
    return sqrt(d / (s > 0 ? s : 1e-300));
}

static ttt_model *tiny(int mamba, int mlp, int block)
{
    ttt_config c;
    ttt_config_preset_for(&c, "tiny", block);
    if (block == SEQ_TTT) {
        c.pre_conv = c.share_qk = c.use_gate = mamba;
        c.ttt_layer_type = mlp ? TTT_MLP : TTT_LINEAR;
    } else {
        c.max_position_embeddings = 32;   /* the GPU KV cache starts at 32 rows and grows */
        mamba = block;                    /* distinct seeds */
    }
    ttt_model *m = ttt_model_build(&c);
    if (!m) return NULL;
    ttt_model_init(m, 5 + mamba + 2 * mlp);
    /* Larger than the init's 0.02 so that every path carries signal. */
    real *P = ttt_model_params(m);
    for (int i = 0; i < ttt_model_num_tensors(m); i++) {
        const ttt_tensor *t = ttt_model_tensor(m, i);
        if ((strstr(t->name, "proj.weight") && !strstr(t->name, "dt_proj")) || strstr(t->name, "embed") ||
            strstr(t->name, "W1") || strstr(t->name, "conv.weight"))
            for (size_t j = 0; j < t->numel; j++) P[t->offset + j] *= 5;
    }
    return m;
}

/* Prefill the first `pre` tokens (in chunks of `chunk`) then STEPS steps,
 * on both; returns the worst relative logits error. B sequences. */
static double run_case(ttt_model *m, const int32_t *ids, int B, int pre, int chunk)
{
    const int V = ttt_model_config(m)->vocab_size, T = pre + STEPS;
    ttt_decode *s = ttt_decode_new(m, B);
    ttt_gpu_decode *g = ttt_gpu_decode_for(m, 0, B);
    if (!g) fprintf(stderr, "test_cuda_decode: %s\n", ttt_errmsg());
    CHECK(s && g);
    if (!s || !g) { ttt_decode_free(s); ttt_gpu_decode_free(g); return INFINITY; }
    int cap = chunk > 1 ? chunk : 1;
    real *lc = malloc((size_t)B * cap * V * sizeof *lc), *last = malloc((size_t)B * V * sizeof *last);
    float *lg = malloc((size_t)B * V * sizeof *lg);
    int32_t *buf = malloc((size_t)B * cap * sizeof *buf);
    double worst = 0;
    for (int t0 = 0; t0 < pre; t0 += chunk) {
        int P = pre - t0 < chunk ? pre - t0 : chunk;
        for (int b = 0; b < B; b++)
            for (int j = 0; j < P; j++) buf[b * P + j] = ids[b * T + t0 + j];
        CHECK(ttt_decode_prefill(m, s, buf, P, lc) == 0);
        CHECK(ttt_gpu_decode_prefill(g, buf, P, lg) == 0);
        for (int b = 0; b < B; b++) memcpy(last + (size_t)b * V, lc + ((size_t)b * P + P - 1) * V, V * sizeof *last);
        double e = rel(lg, last, (size_t)B * V);
        if (e > worst) worst = e;
    }
    for (int j = pre; j < T; j++) {
        for (int b = 0; b < B; b++) buf[b] = ids[b * T + j];
        CHECK(ttt_decode_step(m, s, buf, lc) == 0);
        CHECK(ttt_gpu_decode_step(g, buf, lg) == 0);
        double e = rel(lg, lc, (size_t)B * V);
        if (e > worst) worst = e;
    }
    CHECK(ttt_gpu_decode_position(g) == ttt_decode_position(s));
    free(lc); free(last); free(lg); free(buf);
    ttt_decode_free(s);
    ttt_gpu_decode_free(g);
    return worst;
}

/* GPU state -> CPU decoder and back, mid mini-batch (position 19 + 5). */
static void state_interchange(ttt_model *m, const int32_t *ids, const char *what)
{
    const int V = ttt_model_config(m)->vocab_size;
    ttt_decode *s = ttt_decode_new(m, 1), *h = ttt_decode_new(m, 1);
    ttt_gpu_decode *g = ttt_gpu_decode_for(m, 0, 1), *g2 = ttt_gpu_decode_for(m, 0, 1);
    CHECK(s && h && g && g2);
    if (!s || !h || !g || !g2) goto out;
    real *lc = malloc((size_t)19 * V * sizeof *lc), *lh = malloc((size_t)V * sizeof *lh);
    float *lg = malloc((size_t)V * sizeof *lg);
    CHECK(ttt_decode_prefill(m, s, ids, 19, lc) == 0 && ttt_gpu_decode_prefill(g, ids, 19, lg) == 0);
    for (int j = 19; j < 24; j++)
        CHECK(ttt_decode_step(m, s, ids + j, lc) == 0 && ttt_gpu_decode_step(g, ids + j, lg) == 0);
    /* download: every tensor as the CPU decoder has it */
    CHECK(ttt_gpu_decode_sync_host(g, h, 0) == 0);
    CHECK(ttt_decode_position(h) == 24);
    int n = ttt_gpu_decode_ntensors(g);
    CHECK(n >= 2 * ttt_model_config(m)->num_hidden_layers);
    double worst = 0;
    for (int i = 0; i < n; i++) {
        float *dev;
        size_t cnt;
        int nd, sh[4], nd2, sh2[4];
        const char *name = ttt_gpu_decode_tensor(g, i, &dev, &cnt);
        const real *a = ttt_decode_tensor(h, name, &nd, sh), *b = ttt_decode_tensor(s, name, &nd2, sh2);
        CHECK(a && b && nd == nd2);
        if (!a || !b) continue;
        double d = 0, sc = 0;
        for (size_t k = 0; k < cnt; k++) { d += (a[k] - b[k]) * (a[k] - b[k]); sc += b[k] * b[k]; }
        double e = sc > 0 ? sqrt(d / sc) : sqrt(d);
        if (e > worst) worst = e;
    }
    printf("%s: state after 24 tokens, worst tensor error %.2e (%d tensors)\n", what, worst, n);
    CHECK(worst <= TOL);
    /* the CPU continues from the GPU's state; a fresh GPU decoder from the CPU's */
    CHECK(ttt_gpu_decode_sync_host(g2, s, 1) == 0);
    CHECK(ttt_gpu_decode_position(g2) == 24);
    for (int j = 24; j < 40; j++) {
        CHECK(ttt_decode_step(m, h, ids + j, lh) == 0);
        CHECK(ttt_decode_step(m, s, ids + j, lc) == 0);
        CHECK(ttt_gpu_decode_step(g2, ids + j, lg) == 0);
        CHECK(rel(lg, lc, V) <= TOL);
        float lhf[V];
        for (int v = 0; v < V; v++) lhf[v] = (float)lh[v];
        CHECK(rel(lhf, lc, V) <= TOL);
    }
    free(lc); free(lh); free(lg);
out:
    ttt_decode_free(s);
    ttt_decode_free(h);
    ttt_gpu_decode_free(g);
    ttt_gpu_decode_free(g2);
}

/* Decoding token by token (after a prefill of `pre`) against the GPU
 * model's full forward over the same T tokens: the next-token
 * cross-entropy from each decode logits row against the full forward's
 * per-token losses. Returns the worst |difference| / max(1, |loss|). */
static double vs_full_forward(ttt_model *m, const int32_t *ids, int T, int pre)
{
    const int V = ttt_model_config(m)->vocab_size;
    size_t np = ttt_model_num_params(m);
    const real *P = ttt_model_params(m);
    float *pf = malloc(np * sizeof *pf), *lg = malloc((size_t)V * sizeof *lg);
    int32_t *tg = malloc((size_t)T * sizeof *tg);
    for (size_t i = 0; i < np; i++) pf[i] = (float)P[i];
    for (int t = 0; t < T; t++) tg[t] = t + 1 < T ? ids[t + 1] : -1;
    ttt_gpu_model *gm = ttt_gpu_model_new(m, 0, TTT_CUDA_F32, 1, T);
    ttt_gpu_decode *g = ttt_gpu_decode_new(m, pf, 0, 1);
    if (!gm || !g) fprintf(stderr, "test_cuda_decode: %s\n", ttt_errmsg());
    CHECK(gm && g);
    double worst = INFINITY, loss;
    if (gm && g && ttt_gpu_model_upload_params(gm, pf) == 0 && ttt_gpu_model_forward(gm, ids, tg, 1, T, &loss) == 0) {
        const float *tl = ttt_gpu_model_token_losses(gm);
        worst = 0;
        for (int t = pre ? pre - 1 : 0; t < T - 1; t++) {
            int rc = t == pre - 1 ? ttt_gpu_decode_prefill(g, ids, pre, lg) : ttt_gpu_decode_step(g, ids + t, lg);
            CHECK(rc == 0);
            if (rc) { worst = INFINITY; break; }
            double mx = lg[0], se = 0;
            for (int v = 1; v < V; v++) if (lg[v] > mx) mx = lg[v];
            for (int v = 0; v < V; v++) se += exp(lg[v] - mx);
            double l = mx + log(se) - lg[tg[t]];
            double e = fabs(l - tl[t]) / (fabs(tl[t]) > 1 ? fabs(tl[t]) : 1);
            if (e > worst) worst = e;
        }
    } else {
        CHECK(0);
    }
    ttt_gpu_decode_free(g);
    ttt_gpu_model_free(gm);
    free(pf); free(lg); free(tg);
    return worst;
}

/* T random token ids of m's vocabulary (caller frees). */
static int32_t *random_ids(const ttt_model *m, int T, uint64_t seed)
{
    const int V = ttt_model_config(m)->vocab_size;
    int32_t *ids = malloc((size_t)T * sizeof *ids);
    ttt_rng r;
    ttt_rng_seed(&r, seed);
    for (int i = 0; i < T; i++) ids[i] = (int32_t)(ttt_rng_uniform(&r) * V) % V;
    return ids;
}

/* Batch 1, prefills of 0, 1, 16 (one mini-batch) and 19 tokens + STEPS steps. */
static void check_prefills(ttt_model *m, const int32_t *ids, const char *what)
{
    static const int pre[] = { 0, 1, 16, 19 };
    for (int k = 0; k < 4; k++) {
        double e = run_case(m, ids, 1, pre[k], pre[k] ? pre[k] : 1);
        printf("%s: prefill %2d + %d steps: worst logits error %.2e\n", what, pre[k], STEPS, e);
        CHECK(e <= TOL);
    }
}

/* The Transformer (block SEQ_ATTENTION) or Mamba (SEQ_MAMBA) baseline. */
static void run_baseline(int block)
{
    const char *what = block == SEQ_ATTENTION ? "baseline transformer" : "baseline mamba";
    ttt_model *m = tiny(0, 0, block);
    CHECK(m != NULL);
    if (!m) return;
    const int V = ttt_model_config(m)->vocab_size;
    int32_t *ids = random_ids(m, 2 * (80 + STEPS), 31 + block);
    check_prefills(m, ids, what);
    double e = run_case(m, ids, 1, 35, 7);
    printf("%s: prefill 35 in chunks of 7 (unaligned) + %d steps: worst logits error %.2e\n", what, STEPS, e);
    CHECK(e <= TOL);
    e = run_case(m, ids, 1, 80, 27);
    printf("%s: prefill 80 in chunks of 27 + %d steps: worst logits error %.2e\n", what, STEPS, e);
    CHECK(e <= TOL);
    e = run_case(m, ids, 2, 19, 19);
    printf("%s: batch 2, prefill 19 + %d steps: worst logits error %.2e\n", what, STEPS, e);
    CHECK(e <= TOL);
    e = run_case(m, ids, 2, 21, 5);
    printf("%s: batch 2, prefill 21 in chunks of 5 + %d steps: worst logits error %.2e\n", what, STEPS, e);
    CHECK(e <= TOL);
    e = vs_full_forward(m, ids, 70, 1);
    printf("%s: 70 tokens one by one vs the GPU full forward: worst loss error %.2e\n", what, e);
    CHECK(e <= TOL);
    e = vs_full_forward(m, ids, 70, 23);
    printf("%s: prefill 23 + steps to 70 vs the GPU full forward: worst loss error %.2e\n", what, e);
    CHECK(e <= TOL);
    state_interchange(m, ids, what);

    /* state at position 0: attention has no tensors yet, Mamba its zero state */
    ttt_decode *s = ttt_decode_new(m, 1);
    ttt_gpu_decode *g = ttt_gpu_decode_for(m, 0, 1);
    CHECK(s && g);
    if (s && g) {
        CHECK(ttt_gpu_decode_ntensors(g) == (block == SEQ_ATTENTION ? 0 : 2 * ttt_model_config(m)->num_hidden_layers));
        CHECK(ttt_gpu_decode_sync_host(g, s, 0) == 0 && ttt_decode_position(s) == 0);
        CHECK(ttt_gpu_decode_sync_host(g, s, 1) == 0 && ttt_gpu_decode_position(g) == 0);
        int32_t bad = V, two[2] = { 1, 2 };
        float *lg = malloc((size_t)V * sizeof *lg);
        CHECK(ttt_gpu_decode_step(g, &bad, lg) < 0 && strstr(ttt_errmsg(), "outside the vocabulary"));
        CHECK(ttt_gpu_decode_step(g, two, lg) == 0);
        CHECK(ttt_gpu_decode_prefill(g, two, 2, lg) == 0);   /* unaligned multi-token prefill: allowed */
        CHECK(ttt_gpu_decode_position(g) == 3);
        if (block == SEQ_ATTENTION) {
            CHECK(ttt_gpu_decode_set_position(g, (long)TTT_ATTN_MAX_CONTEXT + 1) < 0 &&
                  strstr(ttt_errmsg(), "maximum") != NULL);
            CHECK(ttt_gpu_decode_position(g) == 3);
        }
        free(lg);
    }
    ttt_decode_free(s);
    ttt_gpu_decode_free(g);
    free(ids);
    ttt_model_free(m);
}

static void run_config(int mamba, int mlp)
{
    char what[48];
    snprintf(what, sizeof what, "%s/%s", mamba ? "mamba" : "transformer", mlp ? "ttt-mlp" : "ttt-linear");
    ttt_model *m = tiny(mamba, mlp, SEQ_TTT);
    CHECK(m != NULL);
    if (!m) return;
    const int V = ttt_model_config(m)->vocab_size;
    int32_t *ids = random_ids(m, 2 * (40 + STEPS), 17 + mamba + 4 * mlp);
    check_prefills(m, ids, what);
    double e = run_case(m, ids, 1, 35, 16);
    printf("%s: prefill 35 in chunks of 16 + %d steps: worst logits error %.2e\n", what, STEPS, e);
    CHECK(e <= TOL);
    e = run_case(m, ids, 2, 19, 19);
    printf("%s: batch 2, prefill 19 + %d steps: worst logits error %.2e\n", what, STEPS, e);
    CHECK(e <= TOL);
    state_interchange(m, ids, what);
    e = vs_full_forward(m, ids, 45, 16);
    printf("%s: prefill 16 + steps to 45 vs the GPU full forward: worst loss error %.2e\n", what, e);
    CHECK(e <= TOL);

    /* refusals */
    ttt_gpu_decode *g = ttt_gpu_decode_for(m, 0, 1);
    CHECK(g != NULL);
    if (g) {
        int32_t bad = V, two[2] = { 1, 2 };
        float *lg = malloc((size_t)V * sizeof *lg);
        CHECK(ttt_gpu_decode_step(g, &bad, lg) < 0 && strstr(ttt_errmsg(), "outside the vocabulary"));
        CHECK(ttt_gpu_decode_step(g, two, lg) == 0);
        CHECK(ttt_gpu_decode_prefill(g, two, 2, lg) < 0 && strstr(ttt_errmsg(), "multiple of 16"));
        free(lg);
        ttt_gpu_decode_free(g);
    }
    free(ids);
    ttt_model_free(m);
}

int main(void)
{
    if (ttt_gpu_available() < 1) {
        printf("test_cuda_decode: skipped: no GPU\n");
        return 0;
    }
    for (int mlp = 0; mlp < 2; mlp++)
        for (int mamba = 0; mamba < 2; mamba++) run_config(mamba, mlp);
    run_baseline(SEQ_ATTENTION);
    run_baseline(SEQ_MAMBA);
    return check_exit("test_cuda_decode");
}

#else

int main(void)
{
    printf("test_cuda_decode: skipped: built without CUDA\n");
    return 0;
}

#endif
