/* refcheck_layer.c - reference check of one TTT layer case (kind = layer):
 * configures the layer from meta.txt (config JSON, B, L, layer_class), loads
 * param.*, runs forward and backward with dout = input.R, and compares the
 * output, every intermediate the library keeps, dx and every parameter
 * gradient. Nothing here is keyed to particular case names or shapes. */
#include "refcheck.h"

#include <stdlib.h>
#include <string.h>

#include "../lib/err.h"
#include "../lib/json.h"
#include "../lib/layers/ttt_layer.h"
#include "../lib/model.h"

static int meta_int(const refvec_case *c, const char *key, int *out)
{
    char buf[64];
    if (refvec_meta(c, key, buf, sizeof buf)) return ttt_seterr("%s: meta.txt has no '%s'", c->dir, key);
    char *end;
    long v = strtol(buf, &end, 10);
    if (end == buf || v <= 0 || v > 1 << 24) return ttt_seterr("%s: meta.txt: bad %s '%s'", c->dir, key, buf);
    *out = (int)v;
    return 0;
}

static int cfg_num(const refvec_case *c, const json *j, const char *key, double *out, double dflt)
{
    const json *v = json_get(j, key);
    if (!v) { *out = dflt; return 0; }
    if (v->type == JSON_NUM) { *out = v->num; return 0; }
    if (v->type == JSON_BOOL) { *out = v->boolean; return 0; }
    return ttt_seterr("%s: config: '%s' is not a number", c->dir, key);
}

/* ttt_layer_config from the config JSON and layer_class */
static int layer_config(const refvec_case *c, ttt_layer_config *lc)
{
    char *cfg = malloc(65536);
    if (!cfg) return ttt_seterr("out of memory");
    if (refvec_meta(c, "config", cfg, 65536)) { free(cfg); return ttt_seterr("%s: meta.txt has no 'config'", c->dir); }
    json *j = json_parse(cfg, strlen(cfg));
    free(cfg);
    if (!j) return ttt_preferr("%s: meta.txt: config", c->dir);
    double hs = 0, nh = 0, K = 0, ck = 0, share = 0, gate = 0, lr = 0, theta = 0;
    int rc = -1;
    if (cfg_num(c, j, "hidden_size", &hs, -1) || cfg_num(c, j, "num_attention_heads", &nh, -1) ||
        cfg_num(c, j, "mini_batch_size", &K, 16) || cfg_num(c, j, "conv_kernel", &ck, 4) ||
        cfg_num(c, j, "share_qk", &share, 0) || cfg_num(c, j, "use_gate", &gate, 0) ||
        cfg_num(c, j, "ttt_base_lr", &lr, 1.0) || cfg_num(c, j, "rope_theta", &theta, 10000.0))
        goto out;
    if (hs <= 0 || nh <= 0 || (int)hs % (int)nh || K <= 0 || ck <= 0) {
        ttt_seterr("%s: config: bad hidden_size/num_attention_heads/mini_batch_size/conv_kernel", c->dir);
        goto out;
    }
    char cls[64] = "";
    const char *type = json_get_str(j, "ttt_layer_type");
    int mlp;
    if (!refvec_meta(c, "layer_class", cls, sizeof cls)) mlp = strstr(cls, "MLP") != NULL;
    else if (type) mlp = !strcmp(type, "mlp");
    else { ttt_seterr("%s: neither layer_class nor ttt_layer_type given", c->dir); goto out; }
    memset(lc, 0, sizeof *lc);
    lc->C = (int)hs;
    lc->H = (int)nh;
    lc->D = lc->C / lc->H;
    lc->K = (int)K;
    lc->kind = mlp ? TTT_MLP : TTT_LINEAR;
    lc->F = mlp ? 4 * lc->D : lc->D;
    lc->share_qk = share != 0;
    lc->use_gate = gate != 0;
    lc->conv_kernel = (int)ck;
    lc->base_lr = lr;
    lc->rope_theta = theta;
    if (lc->D % 2) { ttt_seterr("%s: head dim %d is odd (RoPE needs pairs)", c->dir, lc->D); goto out; }
    rc = 0;
out:
    json_free(j);
    return rc;
}

/* Piece j (W1 b1 W2 b2) of every fast-weight block at boundary n of the
 * layer's "fast_states" [B,H,N+1,P], gathered into [B,H,...]. */
static void gather_states(real *dst, const real *states, const ttt_layer_config *lc, int B, int N, int n, int j)
{
    size_t D = lc->D, F = lc->F, P = D * F + F + (lc->kind == TTT_MLP ? F * D + D : 0);
    size_t off[4] = { 0, D * F, D * F + F, D * F + F + F * D }, len[4] = { D * F, F, F * D, D };
    for (int bh = 0; bh < B * lc->H; bh++)
        memcpy(dst + bh * len[j], states + ((size_t)bh * (N + 1) + n) * P + off[j], sizeof(real) * len[j]);
}

static int check_forward(const refvec_case *c, refvec_tally *tl, const ttt_layer_config *lc,
                         const real *out, const real *acts, int B, int T)
{
    size_t BTC = (size_t)B * T * lc->C;
    refvec_check(tl, c, "output.out", out, BTC);
    static const char *btc[] = { "q_proj_out", "k_proj_out", "v_proj_out", "conv_q_out", "conv_k_out",
                                 "ttt_out_pre_post_norm", "post_norm_out", "g_proj_out", "o_proj_in",
                                 "XQ_rope", "XK_rope" };
    char nm[160];
    for (size_t i = 0; i < sizeof btc / sizeof btc[0]; i++) {
        const real *v = ttt_layer_inter(lc, acts, btc[i], B, T);
        snprintf(nm, sizeof nm, "inter.%s", btc[i]);
        if (v) refvec_check(tl, c, nm, v, BTC);
    }
    /* per ttt() call: call 0 = the full mini-batches, then the remainder */
    int K = lc->K, H = lc->H, nfull = T / K, rem = T % K, N = (T + K - 1) / K;
    const real *lr = ttt_layer_inter(lc, acts, "ttt_lr_eta", B, T);
    const real *tau = ttt_layer_inter(lc, acts, "token_eta", B, T);
    const real *states = ttt_layer_inter(lc, acts, "fast_states", B, T);
    size_t D = lc->D, F = lc->F;
    size_t len[4] = { D * F, F, F * D, D };
    static const char *piece[4] = { "W1", "b1", "W2", "b2" };
    real *buf = malloc(sizeof(real) * ((size_t)B * H * (D * F + T) + K));
    if (!buf) return ttt_seterr("out of memory");
    int call = 0;
    for (int part = 0; part < 2; part++) {
        int nmb = part == 0 ? nfull : (rem ? 1 : 0), r = part == 0 ? K : rem;
        if (!nmb) continue;
        int t0 = part == 0 ? 0 : nfull * K;
        snprintf(nm, sizeof nm, "inter.call%d.token_eta", call);
        refvec_check(tl, c, nm, tau, r);
        for (int bh = 0; bh < B * H; bh++)
            memcpy(buf + (size_t)bh * nmb * r, lr + (size_t)bh * T + t0, sizeof(real) * nmb * r);
        snprintf(nm, sizeof nm, "inter.call%d.ttt_lr_eta", call);
        refvec_check(tl, c, nm, buf, (size_t)B * H * nmb * r);
        for (int j = 0; j < (lc->kind == TTT_MLP ? 4 : 2); j++) {
            gather_states(buf, states, lc, B, N, part == 0 ? nfull : N, j);
            snprintf(nm, sizeof nm, "inter.call%d.final_%s_states", call, piece[j]);
            refvec_check(tl, c, nm, buf, (size_t)B * H * len[j]);
        }
        call++;
    }
    free(buf);
    return 0;
}

int refcheck_layer(const refvec_case *c, refvec_tally *tl)
{
    ttt_layer_config lc;
    int B, T;
    if (layer_config(c, &lc) || meta_int(c, "B", &B) || meta_int(c, "L", &T)) return -1;
    const refvec_tensor *xin = refvec_get(c, "input.hidden_states"), *R = refvec_get(c, "input.R");
    size_t BTC = (size_t)B * T * lc.C;
    if (!xin || xin->numel != BTC) return ttt_seterr("%s: input.hidden_states missing or not [%d,%d,%d]", c->dir, B, T, lc.C);

    ttt_layer_params p, g;
    ttt_layer_tensor tp[TTT_LAYER_MAX_TENSORS], tg[TTT_LAYER_MAX_TENSORS];
    int n = ttt_layer_tensors(&lc, &p, tp);
    ttt_layer_tensors(&lc, &g, tg);
    size_t total = 0;
    for (int i = 0; i < n; i++) total += tp[i].numel;
    size_t asz = ttt_layer_acts_size(&lc, B, T);
    real *pbuf = calloc(2 * total, sizeof(real));
    real *acts = malloc(asz * sizeof(real));
    real *x = malloc(BTC * sizeof(real)), *out = malloc(BTC * sizeof(real));
    real *dout = malloc(BTC * sizeof(real)), *dx = malloc(BTC * sizeof(real));
    int rc = -1;
    if (!pbuf || !acts || !x || !out || !dout || !dx) { ttt_seterr("out of memory"); goto done; }
    size_t off = 0;
    char nm[160];
    for (int i = 0; i < n; i++) {
        *tp[i].ptr = pbuf + off;
        *tg[i].ptr = pbuf + total + off;
        snprintf(nm, sizeof nm, "param.%s", tp[i].name);
        const refvec_tensor *t = refvec_get(c, nm);
        if (!t || t->numel != tp[i].numel) {
            ttt_seterr("%s: %s missing or not %zu values", c->dir, nm, tp[i].numel);
            goto done;
        }
        for (size_t k = 0; k < t->numel; k++) pbuf[off + k] = (real)t->f[k];
        off += tp[i].numel;
    }
    for (size_t k = 0; k < BTC; k++) x[k] = (real)xin->f[k];

    ttt_layer_forward(&lc, out, acts, x, &p, B, T);
    if (check_forward(c, tl, &lc, out, acts, B, T)) goto done;

    if (R && R->numel == BTC) {
        for (size_t k = 0; k < BTC; k++) dout[k] = (real)R->f[k];
        ttt_layer_backward(&lc, dx, &g, dout, acts, x, &p, B, T);
        refvec_check(tl, c, "grad.input.hidden_states", dx, BTC);
        for (int i = 0; i < n; i++) {
            snprintf(nm, sizeof nm, "grad.param.%s", tg[i].name);
            refvec_check(tl, c, nm, *tg[i].ptr, tg[i].numel);
        }
    }
    rc = 0;
done:
    free(pbuf); free(acts); free(x); free(out); free(dout); free(dx);
    return rc;
}
