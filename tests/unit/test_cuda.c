/* test_cuda.c - the GPU TTT layer (lib/ttt_cuda.h) against the float64
 * reference cases: every layer_linear_* and layer_mlp_* case under
 * $TTT_REFVECTORS (default ../shared/refvectors) runs forward and backward in fp32 and every output,
 * intermediate, final TTT state and gradient the case holds must agree to
 * 1e-4 relative (max |gpu - ref| / max |ref|); the bf16 mode (tensor-core
 * inner loop for TTT-Linear) must stay within 3e-2 on the output and 5e-2 on
 * dx and every parameter gradient, and its evaluation forward must give the
 * training forward's output exactly and refuse a backward. Skips cleanly
 * (exit 0) when built without CUDA or when no GPU is present, as on CI. */
#include "check.h"

#include <stdio.h>

#ifdef TTT_HAVE_CUDA
#include <dirent.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../refvec.h"
#include "err.h"
#include "json.h"
#include "model.h"
#include "ttt_cuda.h"

#define TOL 1e-4

typedef struct {
    const char *name;   /* reference name after "param." / "grad.param." */
    size_t off;         /* offset of the float* in ttt_cuda_params */
} pname;

static const pname PNAMES[] = {
    {"q_proj.weight", offsetof(ttt_cuda_params, q_proj)},
    {"k_proj.weight", offsetof(ttt_cuda_params, k_proj)},
    {"v_proj.weight", offsetof(ttt_cuda_params, v_proj)},
    {"o_proj.weight", offsetof(ttt_cuda_params, o_proj)},
    {"g_proj.weight", offsetof(ttt_cuda_params, g_proj)},
    {"conv_q.weight", offsetof(ttt_cuda_params, conv_q_w)},
    {"conv_q.bias", offsetof(ttt_cuda_params, conv_q_b)},
    {"conv_k.weight", offsetof(ttt_cuda_params, conv_k_w)},
    {"conv_k.bias", offsetof(ttt_cuda_params, conv_k_b)},
    {"learnable_ttt_lr_weight", offsetof(ttt_cuda_params, lr_w)},
    {"learnable_ttt_lr_bias", offsetof(ttt_cuda_params, lr_b)},
    {"learnable_token_idx", offsetof(ttt_cuda_params, token_idx)},
    {"ttt_norm_weight", offsetof(ttt_cuda_params, ttt_norm_w)},
    {"ttt_norm_bias", offsetof(ttt_cuda_params, ttt_norm_b)},
    {"W1", offsetof(ttt_cuda_params, W1)},
    {"b1", offsetof(ttt_cuda_params, b1)},
    {"W2", offsetof(ttt_cuda_params, W2)},
    {"b2", offsetof(ttt_cuda_params, b2)},
    {"post_norm.weight", offsetof(ttt_cuda_params, post_norm_w)},
    {"post_norm.bias", offsetof(ttt_cuda_params, post_norm_b)},
};
#define NP (sizeof PNAMES / sizeof PNAMES[0])

static float **slot(ttt_cuda_params *p, int i) { return (float **)((char *)p + PNAMES[i].off); }

static float *upload(const double *src, size_t n)
{
    float *h = malloc(n * sizeof *h), *d = ttt_cuda_alloc(n);
    for (size_t i = 0; i < n; i++) h[i] = (float)src[i];
    if (d) ttt_cuda_upload(d, h, n);
    free(h);
    return d;
}

static double *download(const float *d, size_t n)
{
    float *h = malloc(n * sizeof *h);
    double *o = malloc(n * sizeof *o);
    ttt_cuda_download(h, d, n);
    for (size_t i = 0; i < n; i++) o[i] = h[i];
    free(h);
    return o;
}

/* token-major [B,T,H*D] -> head-major [B,H,T,D] */
static double *to_heads(const double *x, int B, int T, int H, int D)
{
    double *o = malloc((size_t)B * T * H * D * sizeof *o);
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++)
            for (int h = 0; h < H; h++)
                for (int d = 0; d < D; d++)
                    o[(((size_t)b * H + h) * T + t) * D + d] = x[((size_t)b * T + t) * H * D + h * D + d];
    return o;
}

static void check_dev(refvec_tally *tl, const refvec_case *rc, const char *name, const float *d, size_t n)
{
    double *h = download(d, n);
    refvec_check(tl, rc, name, h, n);
    free(h);
}

static int meta_int(const refvec_case *rc, const char *key)
{
    char buf[64];
    return refvec_meta(rc, key, buf, sizeof buf) ? -1 : atoi(buf);
}

static int run_case(ttt_cuda *g, const char *dir)
{
    refvec_case rc;
    if (refvec_load(&rc, dir)) { fprintf(stderr, "test_cuda: %s\n", ttt_errmsg()); return -1; }
    char cfgs[4096];
    json *j = NULL;
    if (refvec_meta(&rc, "config", cfgs, sizeof cfgs) || !(j = json_parse(cfgs, strlen(cfgs)))) {
        fprintf(stderr, "test_cuda: %s: no readable config in meta.txt\n", dir);
        refvec_free(&rc);
        return -1;
    }
    double v;
    ttt_layer_config c;
    memset(&c, 0, sizeof c);
    c.kind = strstr(cfgs, "\"ttt_layer_type\": \"mlp\"") ? TTT_MLP : TTT_LINEAR;
    c.K = 16;
    json_get_num(j, "hidden_size", &v); c.C = (int)v;
    json_get_num(j, "num_attention_heads", &v); c.H = (int)v;
    c.D = c.C / c.H; c.F = c.kind == TTT_MLP ? 4 * c.D : c.D;
    c.conv_kernel = json_get_num(j, "conv_kernel", &v) ? 4 : (int)v;
    c.base_lr = json_get_num(j, "ttt_base_lr", &v) ? 1.0 : v;
    c.rope_theta = json_get_num(j, "rope_theta", &v) ? 1e4 : v;
    const json *sq = json_get(j, "share_qk"), *ug = json_get(j, "use_gate");
    (void)sq; (void)ug;
    c.share_qk = strstr(cfgs, "\"share_qk\": true") != NULL;
    c.use_gate = strstr(cfgs, "\"use_gate\": true") != NULL;
    json_free(j);
    const int B = meta_int(&rc, "B"), T = meta_int(&rc, "L");
    const size_t btc = (size_t)B * T * c.C;

    ttt_cuda_params p, gp;
    memset(&p, 0, sizeof p);
    memset(&gp, 0, sizeof gp);
    for (int i = 0; i < (int)NP; i++) {
        char nm[160];
        snprintf(nm, sizeof nm, "param.%s", PNAMES[i].name);
        const refvec_tensor *t = refvec_get(&rc, nm);
        if (!t) continue;
        *slot(&p, i) = upload(t->f, t->numel);
        *slot(&gp, i) = ttt_cuda_alloc(t->numel);
    }
    const refvec_tensor *xin = refvec_get(&rc, "input.hidden_states"), *R = refvec_get(&rc, "input.R");
    float *x = upload(xin->f, btc), *dout = upload(R->f, btc), *out = ttt_cuda_alloc(btc), *dx = ttt_cuda_alloc(btc);
    float *acts = ttt_cuda_alloc(ttt_cuda_layer_acts_size(&c, B, T));

    refvec_tally tl = {.tol = TOL, .log = stderr};
    int rcode = 0;
    if (ttt_cuda_layer_forward(g, TTT_CUDA_F32, &c, out, acts, x, &p, B, T) ||
        ttt_cuda_layer_backward(g, TTT_CUDA_F32, &c, dx, &gp, dout, acts, x, &p, B, T) || ttt_cuda_sync(g)) {
        fprintf(stderr, "test_cuda: %s: %s\n", dir, ttt_errmsg());
        rcode = -1;
        goto done;
    }
    check_dev(&tl, &rc, "output.out", out, btc);
    check_dev(&tl, &rc, "grad.input.hidden_states", dx, btc);
    static const char *inter[] = {"ttt_out_pre_post_norm", "post_norm_out", "o_proj_in", "v_proj_out", "g_proj_out"};
    for (size_t i = 0; i < sizeof inter / sizeof *inter; i++) {
        const float *d = ttt_cuda_layer_inter(&c, acts, inter[i], B, T);
        char nm[160];
        snprintf(nm, sizeof nm, "inter.%s", inter[i]);
        if (d) check_dev(&tl, &rc, nm, d, btc);
    }
    for (int k = 0; k < 2; k++) {
        const char *nm = k ? "XK_rope" : "XQ_rope";
        double *h = download(ttt_cuda_layer_inter(&c, acts, nm, B, T), btc), *hh = to_heads(h, B, T, c.H, c.D);
        char rn[64];
        snprintf(rn, sizeof rn, "inter.%s", nm);
        refvec_check(&tl, &rc, rn, hh, btc);
        free(h); free(hh);
    }
    /* final states of each ttt() call: call0 ends after T/16 full mini-batches.
     * A state block is W1 [D,F], b1 [F] (, W2 [F,D], b2 [D]). */
    {
        int D = c.D, F = c.F, nmb = (T + 15) / 16, mlp = c.kind == TTT_MLP, BH = B * c.H;
        size_t per = mlp ? (size_t)2 * D * F + F + D : (size_t)D * D + D, ns = (size_t)BH * (nmb + 1) * per;
        const char *pn[4] = {"W1", "b1", "W2", "b2"};
        size_t poff[4] = {0, (size_t)D * F, (size_t)D * F + F, (size_t)2 * D * F + F};
        size_t plen[4] = {(size_t)D * F, (size_t)F, (size_t)F * D, (size_t)D};
        double *st = download(ttt_cuda_layer_inter(&c, acts, "states", B, T), ns);
        double *buf = malloc((size_t)BH * D * F * sizeof *buf);
        for (int call = 0; call < 2; call++) {
            int n = call == 0 ? (T >= 16 ? T / 16 : nmb) : nmb;
            if (call == 1 && (T % 16 == 0 || T < 16)) break;
            for (int k = 0; k < (mlp ? 4 : 2); k++) {
                for (int bh = 0; bh < BH; bh++)
                    memcpy(buf + (size_t)bh * plen[k], st + ((size_t)bh * (nmb + 1) + n) * per + poff[k],
                           plen[k] * sizeof *buf);
                char nm[96];
                snprintf(nm, sizeof nm, "inter.call%d.final_%s_states", call, pn[k]);
                refvec_check(&tl, &rc, nm, buf, (size_t)BH * plen[k]);
            }
        }
        free(st); free(buf);
    }
    for (int i = 0; i < (int)NP; i++) {
        char nm[160];
        snprintf(nm, sizeof nm, "grad.param.%s", PNAMES[i].name);
        const refvec_tensor *t = refvec_get(&rc, nm);
        if (t && *slot(&gp, i)) check_dev(&tl, &rc, nm, *slot(&gp, i), t->numel);
        else if (t) { fprintf(stderr, "test_cuda: %s: %s has no GPU gradient\n", dir, nm); tl.failed++; }
    }
    /* bf16 mode (bf16 GEMM inputs; TTT-Linear's inner loop on tensor cores with
     * RoPE fused): same case, loose tolerance on the output, dx and every
     * parameter gradient (max |gpu - ref| / max |ref|) */
    for (int i = 0; i < (int)NP; i++) {
        char nm[160];
        snprintf(nm, sizeof nm, "grad.param.%s", PNAMES[i].name);
        const refvec_tensor *t = refvec_get(&rc, nm);
        if (t && *slot(&gp, i)) ttt_cuda_zero(*slot(&gp, i), t->numel);
    }
    if (ttt_cuda_layer_forward(g, TTT_CUDA_BF16, &c, out, acts, x, &p, B, T) ||
        ttt_cuda_layer_backward(g, TTT_CUDA_BF16, &c, dx, &gp, dout, acts, x, &p, B, T) || ttt_cuda_sync(g)) {
        fprintf(stderr, "test_cuda: %s: bf16: %s\n", dir, ttt_errmsg());
        rcode = -1;
        goto done;
    }
    {
        double *h = download(out, btc), *hd = download(dx, btc);
        double e = refvec_relerr(refvec_get(&rc, "output.out"), h);
        double ed = refvec_relerr(refvec_get(&rc, "grad.input.hidden_states"), hd), eg = 0;
        const char *worst = "";
        for (int i = 0; i < (int)NP; i++) {
            char nm[160];
            snprintf(nm, sizeof nm, "grad.param.%s", PNAMES[i].name);
            const refvec_tensor *t = refvec_get(&rc, nm);
            if (!t || !*slot(&gp, i)) continue;
            double *hg = download(*slot(&gp, i), t->numel), eg1 = refvec_relerr(t, hg);
            if (eg1 > eg) { eg = eg1; worst = PNAMES[i].name; }
            free(hg);
        }
        printf("  %s: bf16 mode rel err: output %.2e, dx %.2e, worst gradient %.2e (%s)\n", dir, e, ed, eg, worst);
        CHECK(e < 3e-2);
        CHECK(ed < 5e-2);
        CHECK(eg < 5e-2);
        /* the evaluation forward (no state checkpoints): the same output; no backward after it */
        ttt_cuda_set_nograd(g, 1);
        if (ttt_cuda_layer_forward(g, TTT_CUDA_BF16, &c, out, acts, x, &p, B, T) || ttt_cuda_sync(g)) {
            fprintf(stderr, "test_cuda: %s: bf16 evaluation forward: %s\n", dir, ttt_errmsg());
            rcode = -1;
        } else {
            double *he = download(out, btc), m = 0;
            for (size_t i = 0; i < btc; i++) m = fmax(m, fabs(he[i] - h[i]));
            printf("  %s: evaluation forward vs training forward: max difference %.2e\n", dir, m);
            CHECK(m == 0);
            free(he);
        }
        CHECK(ttt_cuda_layer_backward(g, TTT_CUDA_BF16, &c, dx, &gp, dout, acts, x, &p, B, T) == -1);
        ttt_cuda_set_nograd(g, 0);
        free(h); free(hd);
    }
    printf("  %s: %d tensors compared, %d failed, worst %.2e (%s)\n", dir, tl.checked, tl.failed, tl.worst,
           tl.worst_name);
    CHECK(tl.checked >= 20);
    CHECK(tl.failed == 0);
done:
    for (int i = 0; i < (int)NP; i++) { ttt_cuda_free(*slot(&p, i)); ttt_cuda_free(*slot(&gp, i)); }
    ttt_cuda_free(x); ttt_cuda_free(dout); ttt_cuda_free(out); ttt_cuda_free(dx); ttt_cuda_free(acts);
    refvec_free(&rc);
    return rcode;
}

static int cmp(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

int main(void)
{
    int n = ttt_cuda_device_count();
    if (n == 0) {
        printf("test_cuda: skipped: no GPU\n");
        return 0;
    }
    char name[256];
    ttt_cuda_device_name(0, name, sizeof name);
    printf("test_cuda: device 0: %s\n", name);
    ttt_cuda *g = ttt_cuda_open(0);
    CHECK(g != NULL);
    if (!g) { fprintf(stderr, "test_cuda: %s\n", ttt_errmsg()); return check_exit("test_cuda"); }

    /* configuration checks */
    ttt_layer_config bad = {.C = 64, .H = 4, .D = 16, .K = 16, .F = 64, .kind = TTT_MLP};
    CHECK(ttt_cuda_layer_check(&bad) == 0);
    bad.F = 16;                                       /* TTT-MLP needs F = 4D */
    CHECK(ttt_cuda_layer_check(&bad) == -1);
    bad.C = 96; bad.H = 1; bad.D = 96; bad.F = 384;   /* no TTT-MLP kernel at D = 96 */
    CHECK(ttt_cuda_layer_check(&bad) == -1);
    bad.C = 64; bad.H = 4; bad.D = 16;
    bad.kind = TTT_LINEAR; bad.F = 16; bad.K = 8;
    CHECK(ttt_cuda_layer_check(&bad) == -1);
    bad.K = 16;
    CHECK(ttt_cuda_layer_check(&bad) == 0);
    bad.C = 80; bad.H = 1; bad.D = 80;
    CHECK(ttt_cuda_layer_check(&bad) == -1);

    const char *root = getenv("TTT_REFVECTORS");
    if (!root) root = "../shared/refvectors";
    DIR *d = opendir(root);
    if (!d) {
        printf("test_cuda: %s not found: reference cases skipped\n", root);
    } else {
        char *names[256];
        int k = 0;
        struct dirent *e;
        while ((e = readdir(d)) && k < 256)
            if (!strncmp(e->d_name, "layer_linear_", 13) || !strncmp(e->d_name, "layer_mlp_", 10))
                names[k++] = strdup(e->d_name);
        closedir(d);
        qsort(names, k, sizeof *names, cmp);
        for (int i = 0; i < k; i++) {
            char dir[1024];
            snprintf(dir, sizeof dir, "%s/%s", root, names[i]);
            CHECK(run_case(g, dir) == 0);
            free(names[i]);
        }
        CHECK(k > 0);
    }
    ttt_cuda_close(g);
    return check_exit("test_cuda");
}

#else

int main(void)
{
    printf("test_cuda: skipped: no GPU (built without CUDA)\n");
    return 0;
}

#endif
