/* test_cuda_model.c - the GPU model (lib/ttt_cuda_model.h) against the CPU
 * model (lib/model.h, float64 here) on the tiny configuration, for both
 * backbones (Mamba: pre_conv, share_qk, use_gate; Transformer: none) and
 * both TTT layer kinds (TTT-Linear, TTT-MLP), and for the two baselines
 * (the Transformer: attention; Mamba: the selective SSM block) at their
 * tiny sizes (ttt_config_preset_for), T = 70 (past the attention tile and
 * the Mamba scan chunk of 64):
 *   - mean loss and per-token losses, relative 1e-4;
 *   - every gradient tensor, ||gpu - cpu|| / ||cpu|| <= 1e-4 (tensors whose
 *     gradient is below 1e-6 of the global norm are measured against that);
 *   - the GPU gradient norm against ttt_grad_norm;
 *   - 6 AdamW steps with clipping on each: losses within 1e-3 relative;
 *   - ttt_gpu_model_check: every architecture accepted, unsupported
 *     shapes refused (attention head dim 256, Mamba conv kernel 17);
 *   - refusals: a batch over the sizes given, an id outside the vocabulary;
 *   - an evaluation forward (ttt_gpu_model_set_nograd) gives the same loss
 *     and refuses a backward.
 * The TTT models run again in bf16 mode (bf16 GEMM inputs from the bf16
 * parameter copy, bf16 dlogits and SwiGLU operands) against the same CPU
 * model, within bf16 tolerances: loss 1e-2, per-token losses and gradient
 * tensors 5e-2 and 1e-1 (measured: up to 5e-2, the TTT-MLP lr bias; a swapped
 * or misplaced operand is off by O(1)), steps 2e-2.
 * Skips cleanly (exit 0) without CUDA in the build or without a GPU. */
#include "check.h"

#include <stdio.h>

#ifdef TTT_HAVE_CUDA
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "layers/adamw.h"
#include "model.h"
#include "rng.h"
#include "ttt_cuda.h"
#include "ttt_cuda_model.h"

static float *to_f32(const real *x, size_t n)
{
    float *o = malloc(n * sizeof *o);
    for (size_t i = 0; i < n; i++) o[i] = (float)x[i];
    return o;
}

static void fill_tokens(ttt_rng *r, int32_t *ids, int32_t *tg, int n, int V)
{
    for (int i = 0; i < n; i++) {
        ids[i] = (int32_t)(ttt_rng_uniform(r) * V) % V;
        tg[i] = i % 11 == 5 ? -1 : (int32_t)(ttt_rng_uniform(r) * V) % V;   /* some ignored targets */
    }
}

/* block SEQ_TTT: the TTT model on the Mamba (mamba = 1) or Transformer
 * backbone, TTT-MLP or TTT-Linear; SEQ_ATTENTION / SEQ_MAMBA: the baseline
 * (mamba and mlp unused). */
static void run_backbone(int block, int mamba, int T, int mlp, int bf16)
{
    char bb[48];
    const double TOL = bf16 ? 1e-2 : 1e-4, TOL_T = bf16 ? 5e-2 : 1e-4, TOL_G = bf16 ? 1e-1 : 1e-4;
    const double TOL_STEP = bf16 ? 2e-2 : 1e-3;
    if (block == SEQ_TTT)
        snprintf(bb, sizeof bb, "%s/%s%s", mamba ? "mamba" : "transformer", mlp ? "ttt-mlp" : "ttt-linear",
                 bf16 ? " bf16" : "");
    else
        snprintf(bb, sizeof bb, "baseline %s", block == SEQ_ATTENTION ? "transformer" : "mamba");
    ttt_config c;
    ttt_config_preset_for(&c, "tiny", block);
    if (block == SEQ_TTT) {
        c.pre_conv = c.share_qk = c.use_gate = mamba;
        c.ttt_layer_type = mlp ? TTT_MLP : TTT_LINEAR;
    } else {
        mamba = block == SEQ_MAMBA ? 2 : 3;   /* distinct seeds below */
    }
    ttt_model *m = ttt_model_build(&c);
    CHECK(m != NULL);
    if (!m) return;
    ttt_model_init(m, 11 + mamba);
    /* Larger than the init's 0.02 so that every path carries signal. */
    real *P = ttt_model_params(m);
    size_t np = ttt_model_num_params(m);
    ttt_rng r;
    ttt_rng_seed(&r, 99 + mamba);
    for (int i = 0; i < ttt_model_num_tensors(m); i++) {
        const ttt_tensor *t = ttt_model_tensor(m, i);
        /* (not dt_proj: its init already spans softplus's useful range) */
        if ((strstr(t->name, "proj.weight") && !strstr(t->name, "dt_proj")) || strstr(t->name, "embed") ||
            strstr(t->name, "W1"))
            for (size_t j = 0; j < t->numel; j++) P[t->offset + j] *= 5;
    }
    const int B = 2, N = B * T, V = c.vocab_size;
    int32_t *ids = malloc(N * sizeof *ids), *tg = malloc(N * sizeof *tg);
    fill_tokens(&r, ids, tg, N, V);

    ttt_gpu_model *g = ttt_gpu_model_new(m, 0, bf16 ? TTT_CUDA_BF16 : TTT_CUDA_F32, B, T);
    if (!g) fprintf(stderr, "test_cuda_model: %s\n", ttt_errmsg());
    CHECK(g != NULL);
    if (!g) { ttt_model_free(m); free(ids); free(tg); return; }
    ttt_gpu_sizes sz;
    ttt_gpu_model_sizes(g, &sz);
    printf("%s: arenas params %zu B, grads %zu B, opt %zu B, acts %zu B\n", bb, sz.params, sz.grads, sz.opt, sz.acts);
    /* bf16: + the weights' bf16 copy, each tensor padded to 64 elements */
    CHECK(bf16 ? sz.params >= np * 6 && sz.params <= np * 6 + 128 * (size_t)ttt_model_num_tensors(m) : sz.params == np * 4);
    CHECK(sz.opt == 2 * np * 4 && sz.acts > 0);

    float *pf = to_f32(P, np), *gf = malloc(np * sizeof *gf);
    CHECK(ttt_gpu_model_upload_params(g, pf) == 0);
    /* round trip of the parameter arena */
    CHECK(ttt_gpu_model_download_params(g, gf) == 0);
    CHECK(memcmp(pf, gf, np * sizeof *gf) == 0);

    double lc, lg;
    ttt_model_zero_grad(m);
    CHECK(ttt_model_forward(m, ids, tg, B, T, &lc) == 0 && ttt_model_backward(m) == 0);
    CHECK(ttt_gpu_model_zero_grad(g) == 0);
    CHECK(ttt_gpu_model_forward(g, ids, tg, B, T, &lg) == 0);
    CHECK(ttt_gpu_model_backward(g) == 0);
    CHECK(ttt_gpu_model_backward(g) == -1);   /* once per forward */
    {   /* an evaluation forward (no state checkpoints): the same loss, and no backward */
        double le;
        ttt_gpu_model_set_nograd(g, 1);
        CHECK(ttt_gpu_model_forward(g, ids, tg, B, T, &le) == 0);
        CHECK(le == lg);
        CHECK(ttt_gpu_model_backward(g) == -1);
        ttt_gpu_model_set_nograd(g, 0);
    }
    printf("%s: loss cpu %.9f gpu %.9f\n", bb, lc, lg);
    CHECK_CLOSE(lg, lc, 0, TOL);
    const real *tl = ttt_model_token_losses(m);
    const float *tlg = ttt_gpu_model_token_losses(g);
    CHECK(tlg != NULL);
    double emax = 0;
    for (int i = 0; tlg && i < N; i++) {
        double e = fabs(tlg[i] - tl[i]) / (fabs(tl[i]) + 1e-3);
        if (e > emax) emax = e;
        if (tg[i] < 0) CHECK(tlg[i] == 0);
    }
    if (!(emax < TOL_T)) fprintf(stderr, "%s: per-token loss relative error %.3g\n", bb, emax);
    CHECK(emax < TOL_T);

    CHECK(ttt_gpu_model_download_grads(g, gf) == 0);
    const real *G = ttt_model_grads(m);
    double gnorm = ttt_grad_norm(G, np), worst = 0;
    const char *worst_name = "";
    for (int i = 0; i < ttt_model_num_tensors(m); i++) {
        const ttt_tensor *t = ttt_model_tensor(m, i);
        double dd = 0, nn = 0;
        for (size_t j = 0; j < t->numel; j++) {
            double a = gf[t->offset + j], b = G[t->offset + j];
            dd += (a - b) * (a - b);
            nn += b * b;
        }
        double den = sqrt(nn) > 1e-6 * gnorm ? sqrt(nn) : 1e-6 * gnorm;
        double rel = sqrt(dd) / den;
        if (!(rel <= TOL_G)) fprintf(stderr, "%s: gradient %s: relative error %.3g (norm %.3g)\n", bb, t->name, rel, sqrt(nn));
        CHECK(rel <= TOL_G);
        if (!(rel <= worst)) { worst = rel; worst_name = t->name; }
    }
    printf("%s: %d gradient tensors, worst relative error %.3g (%s)\n", bb, ttt_model_num_tensors(m), worst, worst_name);
    double gn;
    CHECK(ttt_gpu_model_grad_norm(g, &gn) == 0);
    printf("%s: grad norm cpu %.9g gpu %.9g\n", bb, gnorm, gn);
    CHECK_CLOSE(gn, gnorm, 0, TOL_G);

    /* a few training steps, each on fresh tokens, from the same start */
    ttt_adamw_params hp = ttt_adamw_defaults();
    real *mc = calloc(np, sizeof *mc), *vc = calloc(np, sizeof *vc);
    float *zero = calloc(np, sizeof *zero);
    CHECK(ttt_gpu_model_upload_opt(g, zero, zero) == 0);
    double worst_step = 0;
    for (int s = 1; s <= 6; s++) {
        fill_tokens(&r, ids, tg, N, V);
        double l1, l2, n1, n2;
        ttt_model_zero_grad(m);
        CHECK(ttt_model_forward(m, ids, tg, B, T, &l1) == 0 && ttt_model_backward(m) == 0);
        n1 = ttt_grad_norm(G, np);
        ttt_adamw_update(P, G, mc, vc, np, &hp, 3e-3, ttt_clip_factor(n1, 1.0), s);
        CHECK(ttt_gpu_model_zero_grad(g) == 0);
        CHECK(ttt_gpu_model_forward(g, ids, tg, B, T, &l2) == 0 && ttt_gpu_model_backward(g) == 0);
        CHECK(ttt_gpu_model_grad_norm(g, &n2) == 0);
        CHECK(ttt_gpu_model_adamw(g, &hp, 3e-3, ttt_clip_factor(n2, 1.0), s) == 0);
        double rel = fabs(l2 - l1) / fabs(l1);
        if (rel > worst_step) worst_step = rel;
        printf("%s: step %d loss cpu %.7f gpu %.7f (rel %.2g), grad norm %.5g / %.5g\n", bb, s, l1, l2, rel, n1, n2);
        CHECK(rel <= TOL_STEP);
    }
    /* the optimizer state and the parameters stay close after the steps */
    float *mg = malloc(np * sizeof *mg), *vg = malloc(np * sizeof *vg);
    CHECK(ttt_gpu_model_download_params(g, gf) == 0 && ttt_gpu_model_download_opt(g, mg, vg) == 0);
    /* AdamW kept the bf16 weight copy current: the same loss as after an upload of the parameters */
    double la, lb;
    CHECK(ttt_gpu_model_forward(g, ids, tg, B, T, &la) == 0);
    CHECK(ttt_gpu_model_upload_params(g, gf) == 0 && ttt_gpu_model_forward(g, ids, tg, B, T, &lb) == 0);
    if (la != lb) fprintf(stderr, "%s: loss after the steps %.9g, after re-uploading the parameters %.9g\n", bb, la, lb);
    CHECK(la == lb);
    double dp = 0, pn = 0;
    for (size_t i = 0; i < np; i++) {
        dp += (gf[i] - P[i]) * (gf[i] - P[i]);
        pn += P[i] * P[i];
    }
    printf("%s: after 6 steps: parameters relative difference %.3g; worst step loss difference %.3g\n", bb,
           sqrt(dp / pn), worst_step);
    CHECK(sqrt(dp / pn) < (bf16 ? 5e-2 : 1e-2));   /* AdamW amplifies rounding in near-zero gradients: a sanity bound */

    /* refusals */
    double l;
    CHECK(ttt_gpu_model_forward(g, ids, tg, B + 1, T, &l) == -1);
    CHECK(strstr(ttt_errmsg(), "sized") != NULL);
    ids[3] = V;
    CHECK(ttt_gpu_model_forward(g, ids, tg, B, T, &l) == -1);
    CHECK(strstr(ttt_errmsg(), "vocabulary") != NULL);
    CHECK(ttt_gpu_model_backward(g) == -1);

    ttt_gpu_model_free(g);
    ttt_model_free(m);
    free(pf); free(gf); free(mc); free(vc); free(zero); free(mg); free(vg); free(ids); free(tg);
}

int main(void)
{
    ttt_config c;
    ttt_config_preset(&c, "tiny");
    c.ttt_layer_type = TTT_MLP;
    if (ttt_gpu_model_check(&c)) fprintf(stderr, "test_cuda_model: %s\n", ttt_errmsg());
    CHECK(ttt_gpu_model_check(&c) == 0);
    /* the baselines are accepted at their preset sizes, refused past the kernels' limits */
    static const char *const presets[] = { "tiny", "small", "125m", "760m", "1b" };
    for (int i = 0; i < 5; i++)
        for (int blk = SEQ_ATTENTION; blk <= SEQ_MAMBA; blk++) {
            CHECK(ttt_config_preset_for(&c, presets[i], blk) == 0);
            if (ttt_gpu_model_check(&c)) fprintf(stderr, "test_cuda_model: %s: %s\n", presets[i], ttt_errmsg());
            CHECK(ttt_gpu_model_check(&c) == 0);
        }
    ttt_config_preset_for(&c, "tiny", SEQ_ATTENTION);
    c.num_attention_heads = 1;
    c.hidden_size = 256;   /* head dim 256 */
    CHECK(ttt_gpu_model_check(&c) == -1 && strstr(ttt_errmsg(), "head dim 256") != NULL);
    ttt_config_preset_for(&c, "tiny", SEQ_MAMBA);
    c.conv_kernel = 17;
    CHECK(ttt_gpu_model_check(&c) == -1 && strstr(ttt_errmsg(), "conv kernel 17") != NULL);
    if (ttt_gpu_available() < 1) {
        printf("test_cuda_model: skipped: no GPU\n");
        return 0;
    }
    char name[256];
    ttt_cuda_device_name(0, name, sizeof name);
    printf("test_cuda_model: device 0: %s\n", name);
    for (int bf16 = 0; bf16 <= 1; bf16++) {
        run_backbone(SEQ_TTT, 1, 48, 0, bf16);
        run_backbone(SEQ_TTT, 0, 45, 0, bf16);
        run_backbone(SEQ_TTT, 1, 48, 1, bf16);
        run_backbone(SEQ_TTT, 0, 45, 1, bf16);
    }
    run_backbone(SEQ_ATTENTION, 0, 70, 0, 0);
    run_backbone(SEQ_MAMBA, 0, 70, 0, 0);
    run_backbone(SEQ_ATTENTION, 0, 70, 0, 1);
    run_backbone(SEQ_MAMBA, 0, 70, 0, 1);
    return check_exit("test_cuda_model");
}

#else

int main(void)
{
    printf("test_cuda_model: skipped: built without CUDA\n");
    return 0;
}

#endif
