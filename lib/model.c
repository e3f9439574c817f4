/* model.c - the TTT language model on the CPU: parameter table, build/free,
 * initialisation, forward, backward, named intermediates (spec sections 1, 8, 9).
 *
 *   h = E[ids]
 *   per block:  [pre_conv] h += DWConv(RMS_conv(h));  h += Seq(RMS_seq(h));  h += SwiGLU(RMS_ffn(h))
 *   Seq = the TTT layer, or for the baselines causal attention with RoPE
 *   (layers/attn.c, the Transformer) or the Mamba block (layers/mamba.c)
 *   logits = RMS_final(h) E^T;  loss = mean CE over targets >= 0
 *
 * Memory: one arena for parameters, one for gradients (same layout), one for
 * the activations of the last forward (grown when B*T grows, never inside a
 * steady-state step), one backward scratch. Parameter gradients accumulate
 * (+=) until ttt_model_zero_grad(). Decoding lives in model_decode.c, the
 * config in model_config.c.
 */
#include "model_impl.h"
#include "err.h"                 /* ttt_seterr */
#include "blas.h"                /* ttt_gemm */
#include "rng.h"                 /* ttt_rng */
#include "layers/embed.h"        /* embed_forward/backward */
#include "layers/rmsnorm.h"      /* rmsnorm_forward/backward */
#include "layers/swiglu.h"       /* swiglu_forward/backward */
#include "layers/xent.h"         /* xent_forward/backward */
#include "layers/dwconv.h"       /* dwconv_forward/backward (pre-conv) */

#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

/* ---- parameter table ---- */

/* INIT_DT_W, INIT_DT_B, INIT_A_LOG: the Mamba dt_proj and A_log of
 * mamba_simple.py (see ttt_model_init). */
enum { INIT_ZERO, INIT_ONE, INIT_NORMAL, INIT_CONV, INIT_DT_W, INIT_DT_B, INIT_A_LOG };

/* One row per tensor of a block, in the reference state_dict order:
 * X(member of block_params, name after "model.layers.{i}.", present, init, ndim, d0, d1, d2)
 * evaluated with C H D F K I k mlp sqk gate pre (TTT), E S R (Mamba) and the
 * block kind flags tt att mam in scope. The TTT rows come first, so TTT
 * models keep the reference order; the baselines' rows follow. */
#define TTT_BLOCK_PARAMS(X) \
    X(ttt.token_idx,   "seq_modeling_block.learnable_token_idx",     tt,    INIT_ZERO,   1, K, 0, 0) \
    X(ttt.lr_w,        "seq_modeling_block.learnable_ttt_lr_weight", tt,    INIT_NORMAL, 3, H, 1, C) \
    X(ttt.lr_b,        "seq_modeling_block.learnable_ttt_lr_bias",   tt,    INIT_ZERO,   2, H, 1, 0) \
    X(ttt.ttt_norm_w,  "seq_modeling_block.ttt_norm_weight",         tt,    INIT_ONE,    2, H, D, 0) \
    X(ttt.ttt_norm_b,  "seq_modeling_block.ttt_norm_bias",           tt,    INIT_ZERO,   2, H, D, 0) \
    X(ttt.W1,          "seq_modeling_block.W1",                      tt,    INIT_NORMAL, 3, H, D, F) \
    X(ttt.b1,          "seq_modeling_block.b1",                      tt,    INIT_ZERO,   3, H, 1, F) \
    X(ttt.W2,          "seq_modeling_block.W2",                      tt && mlp,  INIT_NORMAL, 3, H, F, D) \
    X(ttt.b2,          "seq_modeling_block.b2",                      tt && mlp,  INIT_ZERO,   3, H, 1, D) \
    X(ttt.q_proj,      "seq_modeling_block.q_proj.weight",           tt,    INIT_NORMAL, 2, C, C, 0) \
    X(ttt.k_proj,      "seq_modeling_block.k_proj.weight",           tt && !sqk, INIT_NORMAL, 2, C, C, 0) \
    X(ttt.v_proj,      "seq_modeling_block.v_proj.weight",           tt,    INIT_NORMAL, 2, C, C, 0) \
    X(ttt.o_proj,      "seq_modeling_block.o_proj.weight",           tt,    INIT_NORMAL, 2, C, C, 0) \
    X(ttt.conv_q_w,    "seq_modeling_block.conv_q.weight",           tt && sqk,  INIT_CONV,   3, C, 1, k) \
    X(ttt.conv_q_b,    "seq_modeling_block.conv_q.bias",             tt && sqk,  INIT_CONV,   1, C, 0, 0) \
    X(ttt.conv_k_w,    "seq_modeling_block.conv_k.weight",           tt && sqk,  INIT_CONV,   3, C, 1, k) \
    X(ttt.conv_k_b,    "seq_modeling_block.conv_k.bias",             tt && sqk,  INIT_CONV,   1, C, 0, 0) \
    X(ttt.g_proj,      "seq_modeling_block.g_proj.weight",           tt && gate, INIT_NORMAL, 2, C, C, 0) \
    X(ttt.post_norm_w, "seq_modeling_block.post_norm.weight",        tt,    INIT_ONE,    1, C, 0, 0) \
    X(ttt.post_norm_b, "seq_modeling_block.post_norm.bias",          tt,    INIT_ZERO,   1, C, 0, 0) \
    X(attn.q_proj,     "seq_modeling_block.q_proj.weight",           att,  INIT_NORMAL, 2, C, C, 0) \
    X(attn.k_proj,     "seq_modeling_block.k_proj.weight",           att,  INIT_NORMAL, 2, C, C, 0) \
    X(attn.v_proj,     "seq_modeling_block.v_proj.weight",           att,  INIT_NORMAL, 2, C, C, 0) \
    X(attn.o_proj,     "seq_modeling_block.o_proj.weight",           att,  INIT_NORMAL, 2, C, C, 0) \
    X(mamba.in_proj,   "seq_modeling_block.in_proj.weight",          mam,  INIT_NORMAL, 2, 2 * E, C, 0) \
    X(mamba.conv_w,    "seq_modeling_block.conv1d.weight",           mam,  INIT_CONV,   3, E, 1, k) \
    X(mamba.conv_b,    "seq_modeling_block.conv1d.bias",             mam,  INIT_CONV,   1, E, 0, 0) \
    X(mamba.x_proj,    "seq_modeling_block.x_proj.weight",           mam,  INIT_NORMAL, 2, R + 2 * S, E, 0) \
    X(mamba.dt_w,      "seq_modeling_block.dt_proj.weight",          mam,  INIT_DT_W,   2, E, R, 0) \
    X(mamba.dt_b,      "seq_modeling_block.dt_proj.bias",            mam,  INIT_DT_B,   1, E, 0, 0) \
    X(mamba.A_log,     "seq_modeling_block.A_log",                   mam,  INIT_A_LOG,  2, E, S, 0) \
    X(mamba.D,         "seq_modeling_block.D",                       mam,  INIT_ONE,    1, E, 0, 0) \
    X(mamba.out_proj,  "seq_modeling_block.out_proj.weight",         mam,  INIT_NORMAL, 2, C, E, 0) \
    X(gate_proj,       "mlp.gate_proj.weight",                       1,    INIT_NORMAL, 2, I, C, 0) \
    X(up_proj,         "mlp.up_proj.weight",                         1,    INIT_NORMAL, 2, I, C, 0) \
    X(down_proj,       "mlp.down_proj.weight",                       1,    INIT_NORMAL, 2, C, I, 0) \
    X(conv_norm,       "conv.norm.weight",                           pre,  INIT_ONE,    1, C, 0, 0) \
    X(conv_w,          "conv.conv.weight",                           pre,  INIT_CONV,   3, C, 1, k) \
    X(conv_b,          "conv.conv.bias",                             pre,  INIT_CONV,   1, C, 0, 0) \
    X(seq_norm,        "seq_norm.weight",                            1,    INIT_ONE,    1, C, 0, 0) \
    X(ffn_norm,        "ffn_norm.weight",                            1,    INIT_ONE,    1, C, 0, 0)

/* Where a tensor's pointer goes: layer -1 = global (embedding / final norm). */
typedef struct {
    int layer;
    size_t member;   /* offsetof(block_params, ...) or GLOBAL_* */
} slot;
enum { GLOBAL_EMBED, GLOBAL_NORM };

void ttt_model_layer_config(const ttt_config *c, ttt_layer_config *lc)
{
    memset(lc, 0, sizeof *lc);
    lc->C = c->hidden_size;
    lc->H = c->num_attention_heads;
    lc->D = c->hidden_size / c->num_attention_heads;
    lc->K = c->mini_batch_size;
    lc->F = c->ttt_layer_type == TTT_MLP ? 4 * lc->D : lc->D;
    lc->kind = c->ttt_layer_type;
    lc->share_qk = c->share_qk;
    lc->use_gate = c->use_gate;
    lc->conv_kernel = c->conv_kernel;
    lc->base_lr = c->ttt_base_lr;
    lc->rope_theta = c->rope_theta;
}

void ttt_model_attn_config(const ttt_config *c, attn_config *ac)
{
    ac->C = c->hidden_size;
    ac->H = c->num_attention_heads;
    ac->D = c->hidden_size / c->num_attention_heads;
    ac->rope_theta = c->rope_theta;
}

void ttt_model_mamba_config(const ttt_config *c, mamba_config *mc)
{
    mamba_config_init(mc, c->hidden_size, c->conv_kernel);
}

static void set_tensor(ttt_tensor *t, size_t *off, const char *name, int ndim, int d0, int d1, int d2)
{
    snprintf(t->name, sizeof t->name, "%s", name);
    t->ndim = ndim;
    int d[4] = { d0, d1, d2, 0 };
    t->numel = 1;
    for (int i = 0; i < 4; i++) {
        t->shape[i] = i < ndim ? d[i] : 0;
        if (i < ndim) t->numel *= (size_t)d[i];
    }
    t->offset = *off;
    *off += t->numel;
}

/* Walks the table: returns the number of tensors and the total size; fills
 * t/init/sl where non-NULL. */
static int layout(const ttt_config *cfg, ttt_tensor *t, unsigned char *init, slot *sl, size_t *total)
{
    int C = cfg->hidden_size, H = cfg->num_attention_heads, D = C / H, K = cfg->mini_batch_size;
    int I = cfg->intermediate_size, k = cfg->conv_kernel;
    int mlp = cfg->ttt_layer_type == TTT_MLP, F = mlp ? 4 * D : D;
    int sqk = cfg->share_qk, gate = cfg->use_gate, pre = cfg->pre_conv;
    int tt = cfg->seq_modeling_block == SEQ_TTT, att = cfg->seq_modeling_block == SEQ_ATTENTION;
    int mam = cfg->seq_modeling_block == SEQ_MAMBA;
    mamba_config mc;
    ttt_model_mamba_config(cfg, &mc);
    int E = mc.E, S = mc.S, R = mc.R;
    int n = 0;
    size_t off = 0;
    ttt_tensor dummy;
    char name[96];
    (void)F;

    set_tensor(t ? &t[n] : &dummy, &off, "model.embed_tokens.weight", 2, cfg->vocab_size, C, 0);
    if (init) init[n] = INIT_NORMAL;
    if (sl) sl[n] = (slot){ -1, GLOBAL_EMBED };
    n++;
    for (int l = 0; l < cfg->num_hidden_layers; l++) {
#define X(member, nm, present, ini, nd, d0, d1, d2) \
        if (present) { \
            snprintf(name, sizeof name, "model.layers.%d." nm, l); \
            set_tensor(t ? &t[n] : &dummy, &off, name, nd, d0, d1, d2); \
            if (init) init[n] = ini; \
            if (sl) sl[n] = (slot){ l, offsetof(block_params, member) }; \
            n++; \
        }
        TTT_BLOCK_PARAMS(X)
#undef X
    }
    set_tensor(t ? &t[n] : &dummy, &off, "model.norm.weight", 1, C, 0, 0);
    if (init) init[n] = INIT_ONE;
    if (sl) sl[n] = (slot){ -1, GLOBAL_NORM };
    n++;
    *total = off;
    return n;
}

size_t ttt_config_num_params(const ttt_config *c)
{
    if (ttt_config_validate(c)) return 0;
    size_t total;
    layout(c, NULL, NULL, NULL, &total);
    return total;
}

/* ---- build / free ---- */

static void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size);
    if (!p) ttt_seterr("out of memory (%zu bytes)", n * size);
    return p;
}

ttt_model *ttt_model_build(const ttt_config *c)
{
    if (ttt_config_validate(c)) return NULL;
    ttt_model *m = xcalloc(1, sizeof *m);
    if (!m) return NULL;
    m->cfg = *c;
    ttt_model_layer_config(c, &m->lc);
    ttt_model_attn_config(c, &m->ac);
    ttt_model_mamba_config(c, &m->mc);
    int L = c->num_hidden_layers;
    size_t total;
    m->ntensors = layout(c, NULL, NULL, NULL, &total);
    m->nparams = total;
    slot *sl = xcalloc(m->ntensors, sizeof *sl);
    m->tensors = xcalloc(m->ntensors, sizeof *m->tensors);
    m->init = xcalloc(m->ntensors, 1);
    m->params = xcalloc(total, sizeof(real));
    m->grads = xcalloc(total, sizeof(real));
    m->bp = xcalloc(L, sizeof *m->bp);
    m->bg = xcalloc(L, sizeof *m->bg);
    m->ba = xcalloc(L, sizeof *m->ba);
    if (!sl || !m->tensors || !m->init || !m->params || !m->grads || !m->bp || !m->bg || !m->ba) {
        free(sl);
        ttt_model_free(m);
        return NULL;
    }
    layout(c, m->tensors, m->init, sl, &total);
    for (int i = 0; i < m->ntensors; i++) {
        real *p = m->params + m->tensors[i].offset, *g = m->grads + m->tensors[i].offset;
        if (sl[i].layer < 0) {
            if (sl[i].member == GLOBAL_EMBED) { m->embed = p; m->dembed = g; }
            else { m->final_norm = p; m->dfinal_norm = g; }
        } else {
            *(real **)((char *)&m->bp[sl[i].layer] + sl[i].member) = p;
            *(real **)((char *)&m->bg[sl[i].layer] + sl[i].member) = g;
        }
    }
    free(sl);
    ttt_model_init(m, 0);
    return m;
}

void ttt_model_free(ttt_model *m)
{
    if (!m) return;
    free(m->tensors);
    free(m->init);
    free(m->params);
    free(m->grads);
    free(m->bp);
    free(m->bg);
    free(m->ba);
    free(m->acts);
    free(m->ids);
    free(m->targets);
    free(m->bwd);
    free(m);
}

const ttt_config *ttt_model_config(const ttt_model *m) { return &m->cfg; }
size_t ttt_model_num_params(const ttt_model *m) { return m->nparams; }
real *ttt_model_params(ttt_model *m) { return m->params; }
real *ttt_model_grads(ttt_model *m) { return m->grads; }
int ttt_model_num_tensors(const ttt_model *m) { return m->ntensors; }

const ttt_tensor *ttt_model_tensor(const ttt_model *m, int i)
{
    return i >= 0 && i < m->ntensors ? &m->tensors[i] : NULL;
}

const ttt_tensor *ttt_model_find(const ttt_model *m, const char *name)
{
    for (int i = 0; i < m->ntensors; i++)
        if (strcmp(m->tensors[i].name, name) == 0) return &m->tensors[i];
    return NULL;
}

/* Spec section 9 [PT]: N(0, initializer_range) for projections, embedding,
 * W1/W2 and the lr gate; PyTorch Conv1d default U(-1/sqrt(k), 1/sqrt(k)) for
 * every conv weight and bias; ones for norm scales; zeros elsewhere.
 * Mamba blocks as mamba_simple.py: dt_proj.weight U(-R^-1/2, R^-1/2),
 * dt_proj.bias the inverse softplus of dt log-uniform in [1e-3, 0.1],
 * A_log[e,s] = log(s+1), D = 1; their in/x/out projections N(0, range)
 * like every other projection here. */
void ttt_model_init(ttt_model *m, uint64_t seed)
{
    ttt_rng r;
    ttt_rng_seed(&r, seed);
    double std = m->cfg.initializer_range, bound = 1.0 / sqrt((double)m->cfg.conv_kernel);
    for (int i = 0; i < m->ntensors; i++) {
        real *p = m->params + m->tensors[i].offset;
        size_t n = m->tensors[i].numel;
        for (size_t j = 0; j < n; j++) {
            switch (m->init[i]) {
            case INIT_ZERO: p[j] = 0; break;
            case INIT_ONE: p[j] = 1; break;
            case INIT_NORMAL: p[j] = (real)(std * ttt_rng_normal(&r)); break;
            case INIT_DT_W: {
                double b = 1 / sqrt((double)m->mc.R);
                p[j] = (real)(b * (2 * ttt_rng_uniform(&r) - 1));
                break;
            }
            case INIT_DT_B: {
                double dt = exp(ttt_rng_uniform(&r) * (log(0.1) - log(1e-3)) + log(1e-3));
                if (dt < 1e-4) dt = 1e-4;
                p[j] = (real)(dt + log(-expm1(-dt)));   /* softplus^-1(dt) */
                break;
            }
            case INIT_A_LOG: p[j] = (real)log(1.0 + (double)(j % m->tensors[i].shape[1])); break;
            default: p[j] = (real)(bound * (2 * ttt_rng_uniform(&r) - 1)); break;
            }
        }
    }
    ttt_model_zero_grad(m);
}

void ttt_model_zero_grad(ttt_model *m)
{
    memset(m->grads, 0, m->nparams * sizeof(real));
}

/* ---- activations ---- */

static size_t seq_acts_size(const ttt_model *m, int B, int T)
{
    switch (m->cfg.seq_modeling_block) {
    case SEQ_ATTENTION: return attn_acts_size(&m->ac, B, T);
    case SEQ_MAMBA: return mamba_acts_size(&m->mc, B, T);
    default: return ttt_layer_acts_size(&m->lc, B, T);
    }
}

/* Carves (or, with base NULL, measures) the activation arena for B x T. */
static size_t carve(ttt_model *m, real *base, int B, int T)
{
    const ttt_config *c = &m->cfg;
    size_t N = (size_t)B * T, C = c->hidden_size, off = 0;
    int pre = c->pre_conv;
#define TAKE(ptr, n) do { if (base) (ptr) = base + off; off += ((size_t)(n) + 15) & ~(size_t)15; } while (0)
    TAKE(m->emb, N * C);
    real *prev = m->emb;
    for (int l = 0; l < c->num_hidden_layers; l++) {
        block_acts *a = base ? &m->ba[l] : &(block_acts){ 0 };
        if (pre) {
            TAKE(a->h1, N * C);
            TAKE(a->cn, N * C);
            TAKE(a->crstd, N);
            TAKE(a->pc, N * C);
        } else if (base) {
            a->h1 = prev;
            a->cn = a->crstd = a->pc = NULL;
        }
        TAKE(a->h2, N * C);
        TAKE(a->out, N * C);
        TAKE(a->sn, N * C);
        TAKE(a->srstd, N);
        TAKE(a->to, N * C);
        TAKE(a->fn, N * C);
        TAKE(a->frstd, N);
        TAKE(a->sw, swiglu_acts_size((int)N, c->intermediate_size));
        TAKE(a->ttt, seq_acts_size(m, B, T));
        prev = a->out;
    }
    TAKE(m->final_out, N * C);
    TAKE(m->final_rstd, N);
    TAKE(m->logits, N * c->vocab_size);
    TAKE(m->lse, N);
    TAKE(m->losses, N);
#undef TAKE
    return off;
}

static int ensure_acts(ttt_model *m, int B, int T)
{
    size_t need = carve(m, NULL, B, T), N = (size_t)B * T;
    if (need > m->acts_cap) {
        free(m->acts);
        m->acts = malloc(need * sizeof(real));
        if (!m->acts) {
            m->acts_cap = 0;
            return ttt_seterr("out of memory for activations (B=%d, T=%d: %zu MiB)", B, T,
                              need * sizeof(real) >> 20);
        }
        m->acts_cap = need;
    }
    if (N > m->ids_cap) {
        free(m->ids);
        free(m->targets);
        m->ids = malloc(N * sizeof(int32_t));
        m->targets = malloc(N * sizeof(int32_t));
        if (!m->ids || !m->targets) {
            m->ids_cap = 0;
            return ttt_seterr("out of memory for token buffers");
        }
        m->ids_cap = N;
    }
    carve(m, m->acts, B, T);
    return 0;
}

static void add_into(real *y, const real *a, const real *b, size_t n)   /* y = a + b */
{
    #pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) y[i] = a[i] + b[i];
}

/* ---- forward ---- */

int ttt_model_forward(ttt_model *m, const int32_t *ids, const int32_t *targets, int B, int T, double *loss)
{
    const ttt_config *c = &m->cfg;
    int C = c->hidden_size, V = c->vocab_size, I = c->intermediate_size, k = c->conv_kernel;
    double eps = c->rms_norm_eps;
    m->fwd_ok = 0;
    m->bwd_done = 0;
    if (B <= 0 || T <= 0 || (double)B * T > 2147483647.0)
        return ttt_seterr("forward: bad batch shape B=%d T=%d", B, T);
    int N = B * T;
    for (int n = 0; n < N; n++) {
        if (ids[n] < 0 || ids[n] >= V)
            return ttt_seterr("forward: token id %d at position %d is outside the vocabulary (size %d)", (int)ids[n], n, V);
        if (targets && targets[n] >= V)
            return ttt_seterr("forward: target %d at position %d is outside the vocabulary (size %d)", (int)targets[n], n, V);
    }
    if (ensure_acts(m, B, T)) return -1;
    m->B = B;
    m->T = T;
    memcpy(m->ids, ids, (size_t)N * sizeof(int32_t));

    embed_forward(m->emb, ids, m->embed, N, C);
    const real *h = m->emb;
    size_t NC = (size_t)N * C;
    for (int l = 0; l < c->num_hidden_layers; l++) {
        block_acts *a = &m->ba[l];
        const block_params *p = &m->bp[l];
        if (c->pre_conv) {
            rmsnorm_forward(a->cn, a->crstd, h, p->conv_norm, N, C, eps);
            dwconv_forward(a->pc, a->cn, p->conv_w, p->conv_b, B, T, C, k);
            add_into(a->h1, h, a->pc, NC);
        }
        rmsnorm_forward(a->sn, a->srstd, a->h1, p->seq_norm, N, C, eps);
        if (c->seq_modeling_block == SEQ_ATTENTION)
            attn_forward(&m->ac, a->to, a->ttt, a->sn, &p->attn, B, T);
        else if (c->seq_modeling_block == SEQ_MAMBA)
            mamba_forward(&m->mc, a->to, a->ttt, a->sn, &p->mamba, B, T);
        else
            ttt_layer_forward(&m->lc, a->to, a->ttt, a->sn, &p->ttt, B, T);
        add_into(a->h2, a->h1, a->to, NC);
        rmsnorm_forward(a->fn, a->frstd, a->h2, p->ffn_norm, N, C, eps);
        swiglu_forward(a->out, a->sw, a->fn, p->gate_proj, p->up_proj, p->down_proj, N, C, I);
        add_into(a->out, a->out, a->h2, NC);
        h = a->out;
    }
    rmsnorm_forward(m->final_out, m->final_rstd, h, m->final_norm, N, C, eps);
    /* tied lm head: logits = h E^T */
    ttt_gemm(0, 1, N, V, C, 1, m->final_out, C, m->embed, C, 0, m->logits, V);

    m->has_targets = targets != NULL;
    if (targets) {
        memcpy(m->targets, targets, (size_t)N * sizeof(int32_t));
        double sum = xent_forward(m->losses, m->lse, m->logits, targets, N, V, &m->count);
        if (loss) *loss = m->count ? sum / m->count : 0;
    }
    m->fwd_ok = 1;
    return 0;
}

const real *ttt_model_logits(const ttt_model *m) { return m->fwd_ok ? m->logits : NULL; }

const real *ttt_model_token_losses(const ttt_model *m)
{
    return m->fwd_ok && m->has_targets ? m->losses : NULL;
}

/* ---- backward ---- */

void ttt_model_set_grad_hook(ttt_model *m, void (*fn)(size_t offset, size_t n, void *ctx), void *ctx)
{
    m->grad_hook = fn;
    m->grad_hook_ctx = fn ? ctx : NULL;
}

/* The arena's layout (layout()): the embedding, the L blocks one after the
 * other with the same tensors each, the final norm last. */
static void hook_final_norm(ttt_model *m)
{
    if (m->grad_hook) {
        size_t lo = (size_t)(m->dfinal_norm - m->grads);
        m->grad_hook(lo, m->nparams - lo, m->grad_hook_ctx);
    }
}

static void hook_block(ttt_model *m, int l)
{
    if (!m->grad_hook) return;
    int L = m->cfg.num_hidden_layers, per = (m->ntensors - 2) / L;
    size_t lo = m->tensors[1 + l * per].offset;
    size_t hi = l + 1 < L ? m->tensors[1 + (l + 1) * per].offset : (size_t)(m->dfinal_norm - m->grads);
    m->grad_hook(lo, hi - lo, m->grad_hook_ctx);
}

static void hook_embed(ttt_model *m)
{
    if (m->grad_hook) m->grad_hook(0, m->tensors[0].numel, m->grad_hook_ctx);   /* tensor 0 at offset 0 */
}

int ttt_model_backward(ttt_model *m)
{
    const ttt_config *c = &m->cfg;
    if (!m->fwd_ok || !m->has_targets)
        return ttt_seterr("backward: no forward with targets to differentiate");
    /* The TTT layers reuse their saved activations during the backward, so
     * each forward can be differentiated once. */
    if (m->bwd_done)
        return ttt_seterr("backward: the last forward was already differentiated; run a forward first");
    m->bwd_done = 1;
    int B = m->B, T = m->T, N = B * T, C = c->hidden_size, V = c->vocab_size;
    int I = c->intermediate_size, k = c->conv_kernel;
    size_t NC = (size_t)N * C;
    /* the scratch serves SwiGLU ([2,N,I]) and the baselines' sequence blocks */
    size_t blk = 2 * (size_t)N * I;
    if (c->seq_modeling_block == SEQ_ATTENTION && attn_scratch_size(&m->ac, B, T) > blk)
        blk = attn_scratch_size(&m->ac, B, T);
    if (c->seq_modeling_block == SEQ_MAMBA && mamba_scratch_size(&m->mc, B, T) > blk)
        blk = mamba_scratch_size(&m->mc, B, T);
    size_t need = (size_t)N * V + 3 * NC + blk;
    if (need > m->bwd_cap) {
        free(m->bwd);
        m->bwd = malloc(need * sizeof(real));
        if (!m->bwd) {
            m->bwd_cap = 0;
            return ttt_seterr("out of memory for the backward (%zu MiB)", need * sizeof(real) >> 20);
        }
        m->bwd_cap = need;
    }
    real *dlogits = m->bwd, *dh = dlogits + (size_t)N * V, *d1 = dh + NC, *d2 = d1 + NC;
    real *scratch = d2 + NC;

    if (m->count == 0) {   /* nothing valid: the loss is a constant 0, the gradients are final as they are */
        hook_final_norm(m);
        for (int l = c->num_hidden_layers - 1; l >= 0; l--) hook_block(m, l);
        hook_embed(m);
        return 0;
    }
    xent_backward(dlogits, m->logits, m->lse, m->targets, 1.0 / m->count, N, V);
    /* logits = f E^T:  dE += dlogits^T f,  df = dlogits E */
    ttt_gemm(1, 0, V, C, N, 1, dlogits, V, m->final_out, C, 1, m->dembed, C);
    ttt_gemm(0, 0, N, C, V, 1, dlogits, V, m->embed, C, 0, d1, C);
    const real *hlast = c->num_hidden_layers ? m->ba[c->num_hidden_layers - 1].out : m->emb;
    rmsnorm_backward(dh, m->dfinal_norm, d1, hlast, m->final_norm, m->final_rstd, N, C);
    hook_final_norm(m);

    for (int l = c->num_hidden_layers - 1; l >= 0; l--) {
        block_acts *a = &m->ba[l];
        const block_params *p = &m->bp[l], *g = &m->bg[l];
        const real *h0 = l ? m->ba[l - 1].out : m->emb;
        /* out = h2 + SwiGLU(RMS_ffn(h2)) */
        swiglu_backward(d1, g->gate_proj, g->up_proj, g->down_proj, dh, a->sw, a->fn,
                        p->gate_proj, p->up_proj, p->down_proj, scratch, N, C, I);
        rmsnorm_backward(d2, g->ffn_norm, d1, a->h2, p->ffn_norm, a->frstd, N, C);
        add_into(dh, dh, d2, NC);
        /* h2 = h1 + Seq(RMS_seq(h1)), Seq = TTT, attention or Mamba */
        if (c->seq_modeling_block == SEQ_ATTENTION)
            attn_backward(&m->ac, d1, &g->attn, dh, a->ttt, a->sn, &p->attn, scratch, B, T);
        else if (c->seq_modeling_block == SEQ_MAMBA)
            mamba_backward(&m->mc, d1, &g->mamba, dh, a->ttt, a->sn, &p->mamba, scratch, B, T);
        else
            ttt_layer_backward(&m->lc, d1, &g->ttt, dh, a->ttt, a->sn, &p->ttt, B, T);
        rmsnorm_backward(d2, g->seq_norm, d1, a->h1, p->seq_norm, a->srstd, N, C);
        add_into(dh, dh, d2, NC);
        /* h1 = h0 + DWConv(RMS_conv(h0)) */
        if (c->pre_conv) {
            dwconv_backward(d1, g->conv_w, g->conv_b, dh, a->cn, p->conv_w, B, T, C, k);
            rmsnorm_backward(d2, g->conv_norm, d1, h0, p->conv_norm, a->crstd, N, C);
            add_into(dh, dh, d2, NC);
        }
        hook_block(m, l);
    }
    embed_backward(m->dembed, dh, m->ids, N, C);
    hook_embed(m);
    return 0;
}

/* ---- named intermediates ---- */

const real *ttt_model_inter(const ttt_model *m, const char *name)
{
    if (!m->fwd_ok) return NULL;
    if (strcmp(name, "inter.final_norm_out") == 0) return m->final_out;
    int l, len = 0;
    if (sscanf(name, "inter.block%d.%n", &l, &len) != 1 || len == 0 || l < 0 ||
        l >= m->cfg.num_hidden_layers)
        return NULL;
    const char *what = name + len;
    const block_acts *a = &m->ba[l];
    if (strcmp(what, "pre_conv_out") == 0) return a->pc;
    if (strcmp(what, "seq_norm_out") == 0) return a->sn;
    if (strcmp(what, "ttt_layer_out") == 0 || strcmp(what, "seq_out") == 0) return a->to;
    if (strcmp(what, "out") == 0) return a->out;
    if (strcmp(what, "ffn_norm_out") == 0) return a->fn;
    /* "inter.block{i}.ttt.<name>": the layer's own intermediates */
    if (strncmp(what, "ttt.", 4) == 0 && m->cfg.seq_modeling_block == SEQ_TTT)
        return ttt_layer_inter(&m->lc, a->ttt, what + 4, m->B, m->T);
    /* "inter.block{i}.attn.<name>", "inter.block{i}.mamba.<name>" */
    if (strncmp(what, "attn.", 5) == 0 && m->cfg.seq_modeling_block == SEQ_ATTENTION)
        return attn_inter(&m->ac, a->ttt, what + 5, m->B, m->T);
    if (strncmp(what, "mamba.", 6) == 0 && m->cfg.seq_modeling_block == SEQ_MAMBA)
        return mamba_inter(&m->mc, a->ttt, what + 6, m->B, m->T);
    return NULL;
}
