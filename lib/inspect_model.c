/* inspect_model.c - parameter groups and fast-weight summaries (inspect_model.h). */
#include "inspect_model.h"
#include "err.h"              /* ttt_seterr */
#include "inspect_tensor.h"   /* ttt_inspect_convert */

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const group_names[TTT_G_COUNT] = {
    [TTT_G_EMBED] = "embedding",
    [TTT_G_PROJ] = "ttt projections",
    [TTT_G_W0] = "fast-weight init W0",
    [TTT_G_LR] = "ttt learning rate",
    [TTT_G_NORM] = "norms",
    [TTT_G_SWIGLU] = "swiglu",
    [TTT_G_CONV] = "convs",
    [TTT_G_ATTN] = "attention",
    [TTT_G_FINAL_NORM] = "final norm",
    [TTT_G_OTHER] = "other",
};

const char *ttt_group_name(int g) { return g >= 0 && g < TTT_G_COUNT ? group_names[g] : "?"; }

int ttt_group_per_layer(int g) { return g != TTT_G_EMBED && g != TTT_G_FINAL_NORM && g != TTT_G_OTHER; }

/* Suffixes after "model.layers.<l>." (first match wins). */
static const struct { const char *suffix; int group; } rules[] = {
    { "seq_modeling_block.q_proj.", TTT_G_PROJ },
    { "seq_modeling_block.k_proj.", TTT_G_PROJ },
    { "seq_modeling_block.v_proj.", TTT_G_PROJ },
    { "seq_modeling_block.o_proj.", TTT_G_PROJ },
    { "seq_modeling_block.g_proj.", TTT_G_PROJ },
    { "seq_modeling_block.W1", TTT_G_W0 },
    { "seq_modeling_block.b1", TTT_G_W0 },
    { "seq_modeling_block.W2", TTT_G_W0 },
    { "seq_modeling_block.b2", TTT_G_W0 },
    { "seq_modeling_block.learnable_", TTT_G_LR },
    { "seq_modeling_block.ttt_norm_", TTT_G_NORM },
    { "seq_modeling_block.post_norm.", TTT_G_NORM },
    { "seq_modeling_block.conv_q.", TTT_G_CONV },
    { "seq_modeling_block.conv_k.", TTT_G_CONV },
    { "seq_modeling_block.", TTT_G_ATTN },   /* an attention block's own projections */
    { "self_attn.", TTT_G_ATTN },
    { "mlp.", TTT_G_SWIGLU },
    { "conv.norm.", TTT_G_NORM },
    { "conv.", TTT_G_CONV },
    { "seq_norm.", TTT_G_NORM },
    { "ffn_norm.", TTT_G_NORM },
};

int ttt_group_of(const char *name, int *layer)
{
    if (layer) *layer = -1;
    if (!strcmp(name, "model.embed_tokens.weight") || !strcmp(name, "lm_head.weight")) return TTT_G_EMBED;
    if (!strcmp(name, "model.norm.weight")) return TTT_G_FINAL_NORM;
    int l, n = 0;
    if (sscanf(name, "model.layers.%d.%n", &l, &n) != 1 || n == 0 || l < 0) return TTT_G_OTHER;
    if (layer) *layer = l;
    const char *rest = name + n;
    for (size_t i = 0; i < sizeof rules / sizeof rules[0]; i++)
        if (!strncmp(rest, rules[i].suffix, strlen(rules[i].suffix))) return rules[i].group;
    return TTT_G_OTHER;
}

/* One tensor of the state as doubles (malloc'ed), checked against [1,H,...]. */
static double *state_tensor(const ttt_st *st, const char *name, int H, uint64_t *per_head)
{
    const ttt_st_tensor *t = ttt_st_find(st, name);
    if (!t) return NULL;
    if (t->ndim < 2 || t->shape[0] != 1 || t->shape[1] != H || t->numel == 0) {
        ttt_seterr("%s: tensor %s: expected shape [1,%d,...] (batch 1, %d heads)", ttt_st_path(st), name, H, H);
        return NULL;
    }
    double *x = malloc(t->numel * sizeof *x);
    if (!x) { ttt_seterr("%s: out of memory", ttt_st_path(st)); return NULL; }
    ttt_inspect_convert(st, t, 0, t->numel, x);
    *per_head = t->numel / (uint64_t)H;
    return x;
}

int ttt_fw_rows(const ttt_st *st, const ttt_model *m, const ttt_config *c, long position,
                ttt_fw_row **rows, int *nrows)
{
    static const char *const params[] = { "W1", "b1", "W2", "b2" };
    const char *P = ttt_st_path(st);
    int H = c->num_attention_heads, K = c->mini_batch_size, L = c->num_hidden_layers;
    int cap = L * 4 * H, n = 0;
    ttt_fw_row *r = calloc((size_t)(cap ? cap : 1), sizeof *r);
    if (!r) return ttt_seterr("%s: out of memory", P);
    char name[160];
    /* the open mini-batch: the last consumed token had index i inside it */
    int open = position % K != 0;
    int i_last = open ? (int)((position - 1) % K) : 0;
    for (int l = 0; l < L; l++) {
        double tau = 0;
        if (m && open) {
            snprintf(name, sizeof name, "model.layers.%d.seq_modeling_block.learnable_token_idx", l);
            const ttt_tensor *ti = ttt_model_find(m, name);
            if (!ti || (int)ti->numel != K) { ttt_seterr("%s: checkpoint has no %s [%d]", P, name, K); goto fail; }
            tau = 1.0 / (i_last + 1) + ttt_model_params((ttt_model *)m)[ti->offset + (size_t)i_last];
            if (tau < 0) tau = 0;
        }
        for (int p = 0; p < 4; p++) {
            uint64_t ph = 0, phg = 0;
            snprintf(name, sizeof name, "layer%d.%s_states", l, params[p]);
            if (!ttt_st_find(st, name)) continue;   /* W2/b2 only in TTT-MLP */
            double *S = state_tensor(st, name, H, &ph), *A = NULL;
            if (!S) goto fail;
            snprintf(name, sizeof name, "layer%d.%s_grad", l, params[p]);
            A = state_tensor(st, name, H, &phg);
            if (!A && ttt_st_find(st, name)) { free(S); goto fail; }   /* present but malformed */
            if (A && phg != ph) { free(S); free(A); ttt_seterr("%s: %s: shape differs from %s_states", P, name, params[p]); goto fail; }
            const real *W0 = NULL;
            if (m) {
                snprintf(name, sizeof name, "model.layers.%d.seq_modeling_block.%s", l, params[p]);
                const ttt_tensor *t = ttt_model_find(m, name);
                if (!t || t->numel != ph * (uint64_t)H) {
                    free(S); free(A);
                    ttt_seterr("%s: layer%d.%s_states does not fit the checkpoint's %s", P, l, params[p], name);
                    goto fail;
                }
                W0 = ttt_model_params((ttt_model *)m) + t->offset;
            }
            for (int h = 0; h < H; h++) {
                ttt_fw_row *o = &r[n++];
                o->layer = l;
                o->head = h;
                snprintf(o->param, sizeof o->param, "%s", params[p]);
                double sn = 0, sa = 0, d0 = 0, dn = 0;
                for (uint64_t k = 0; k < ph; k++) {
                    uint64_t j = (uint64_t)h * ph + k;
                    double s = S[j], a = A ? A[j] : 0;
                    sn += s * s;
                    sa += a * a;
                    if (W0) {
                        double e = s - (double)W0[j], f = s - tau * a - (double)W0[j];
                        d0 += e * e;
                        dn += f * f;
                    }
                }
                o->norm = sqrt(sn);
                o->pending = sqrt(sa);
                o->dist0 = W0 ? sqrt(d0) : NAN;
                o->dist_now = W0 ? sqrt(dn) : NAN;
            }
            free(S);
            free(A);
        }
    }
    *rows = r;
    *nrows = n;
    return 0;
fail:
    free(r);
    return -1;
}
