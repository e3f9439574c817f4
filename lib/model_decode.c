/* model_decode.c - incremental decoding of the TTT model (spec section 7.1):
 * per layer the Mamba pre-conv buffer [B,C,k] (last k RMS-normed inputs,
 * oldest first) and the TTT layer's own state (ttt_layer_state_*). A prefill
 * runs a chunk at a position that is a multiple of K (dual form over the full
 * mini-batches, primal over the rest, inside ttt_layer_prefill); a step runs
 * one token per sequence. The state starts from the model's parameters at
 * ttt_decode_new(), so create it after loading them.
 */
#include "model_impl.h"
#include "err.h"                 /* ttt_seterr */
#include "blas.h"                /* ttt_gemm */
#include "layers/embed.h"
#include "layers/rmsnorm.h"
#include "layers/swiglu.h"
#include "layers/dwconv.h"       /* dwconv_step */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct ttt_decode {
    ttt_config cfg;
    ttt_layer_config lc;
    int B;
    long pos;
    int broken;          /* a failed call left the layers at different positions */
    real *preconv;       /* [L][B,C,k], NULL without pre_conv */
    real **state;        /* [L] ttt layer states (Mamba: conv buffer + SSM state; attention: none) */
    size_t state_size;
    attn_config ac;
    mamba_config mc;
    real **kc, **vc;     /* [L] attention KV caches, [kv_cap][B][C] each */
    long kv_cap;
    real *bscr;          /* baseline block scratch for up to cap tokens */
    /* chunk buffers for up to cap tokens per sequence */
    int cap;
    real *work;
    real *h, *x, *y, *t, *sw;
};

void ttt_decode_free(ttt_decode *s)
{
    if (!s) return;
    if (s->state)
        for (int l = 0; l < s->cfg.num_hidden_layers; l++) free(s->state[l]);
    free(s->state);
    if (s->kc)
        for (int l = 0; l < s->cfg.num_hidden_layers; l++) { free(s->kc[l]); free(s->vc[l]); }
    free(s->kc);
    free(s->vc);
    free(s->bscr);
    free(s->preconv);
    free(s->work);
    free(s);
}

ttt_decode *ttt_decode_new(const ttt_model *m, int B)
{
    if (B <= 0) {
        ttt_seterr("decode: batch size must be positive, got %d", B);
        return NULL;
    }
    ttt_decode *s = calloc(1, sizeof *s);
    if (!s) goto oom;
    s->cfg = m->cfg;
    s->lc = m->lc;
    s->B = B;
    int L = s->cfg.num_hidden_layers, C = s->cfg.hidden_size, k = s->cfg.conv_kernel;
    s->ac = m->ac;
    s->mc = m->mc;
    s->state = calloc(L, sizeof *s->state);
    if (!s->state) goto oom;
    int blk = s->cfg.seq_modeling_block;
    if (blk == SEQ_ATTENTION) {
        s->kc = calloc(L, sizeof *s->kc);
        s->vc = calloc(L, sizeof *s->vc);
        if (!s->kc || !s->vc) goto oom;
    }
    s->state_size = blk == SEQ_TTT ? ttt_layer_state_size(&s->lc, B)
                  : blk == SEQ_MAMBA ? mamba_state_size(&s->mc, B) : 0;
    for (int l = 0; l < L && blk != SEQ_ATTENTION; l++) {
        s->state[l] = calloc(s->state_size ? s->state_size : 1, sizeof(real));
        if (!s->state[l]) goto oom;
        if (blk == SEQ_TTT) ttt_layer_state_init(&s->lc, s->state[l], &m->bp[l].ttt, B);
    }
    if (s->cfg.pre_conv) {
        s->preconv = calloc((size_t)L * B * C * k, sizeof(real));
        if (!s->preconv) goto oom;
    }
    return s;
oom:
    ttt_decode_free(s);
    ttt_seterr("decode: out of memory");
    return NULL;
}

long ttt_decode_position(const ttt_decode *s) { return s->pos; }

/* Room in every layer's KV cache for `need` positions. */
static int ensure_kv(ttt_decode *s, long need)
{
    if (need <= s->kv_cap) return 0;
    if (need > TTT_ATTN_MAX_CONTEXT)
        return ttt_seterr("decode: %ld positions exceed the attention KV cache maximum of %d",
                          need, TTT_ATTN_MAX_CONTEXT);
    long cap = s->kv_cap ? 2 * s->kv_cap : 256;
    if (cap < need) cap = need;
    if (cap > TTT_ATTN_MAX_CONTEXT) cap = TTT_ATTN_MAX_CONTEXT;
    size_t row = (size_t)s->B * s->cfg.hidden_size;
    for (int l = 0; l < s->cfg.num_hidden_layers; l++) {
        /* realloc keeps the old cache on failure: the state stays usable */
        real *k = realloc(s->kc[l], (size_t)cap * row * sizeof(real));
        if (k) s->kc[l] = k;
        real *v = k ? realloc(s->vc[l], (size_t)cap * row * sizeof(real)) : NULL;
        if (v) s->vc[l] = v;
        if (!k || !v)
            return ttt_seterr("decode: out of memory for a KV cache of %ld positions", cap);
    }
    s->kv_cap = cap;
    return 0;
}

int ttt_decode_set_position(ttt_decode *s, long pos)
{
    if (pos < 0) return ttt_seterr("decode: negative position %ld", pos);
    if (s->cfg.seq_modeling_block == SEQ_ATTENTION && ensure_kv(s, pos)) return -1;
    s->pos = pos;
    return 0;
}

static int ensure_chunk(ttt_decode *s, int P)
{
    if (P <= s->cap) return 0;
    size_t N = (size_t)s->B * P, C = s->cfg.hidden_size, I = s->cfg.intermediate_size;
    size_t need = 4 * N * C + swiglu_acts_size((int)N, (int)I);
    size_t bs = s->cfg.seq_modeling_block == SEQ_ATTENTION ? attn_decode_scratch_size(&s->ac, s->B, P)
              : s->cfg.seq_modeling_block == SEQ_MAMBA ? mamba_decode_scratch_size(&s->mc, s->B) : 1;
    real *w = malloc(need * sizeof(real)), *b = malloc(bs * sizeof(real));
    if (!w || !b) {
        free(w);
        free(b);
        return ttt_seterr("decode: out of memory for a chunk of %d tokens", P);
    }
    free(s->bscr);
    s->bscr = b;
    free(s->work);
    s->work = w;
    s->h = w;
    s->x = s->h + N * C;
    s->y = s->x + N * C;
    s->t = s->y + N * C;
    s->sw = s->t + N * C;
    s->cap = P;
    return 0;
}

/* Pre-conv over a chunk x [B,P,C] continuing the history in buf [B,C,k]
 * (oldest first): y = bias + sum_j w[c,j] x[t-(k-1)+j]; then buf keeps the
 * chunk's last k inputs. */
static void preconv_chunk(real *y, real *buf, const real *x, const real *w, const real *bias,
                          int B, int P, int C, int k)
{
    #pragma omp parallel for schedule(static)
    for (int b = 0; b < B; b++) {
        real *bb = buf + (size_t)b * C * k;
        for (int t = 0; t < P; t++) {
            real *yo = y + ((size_t)b * P + t) * C;
            for (int c = 0; c < C; c++) {
                real acc = bias[c];
                for (int j = 0; j < k; j++) {
                    int src = t - (k - 1) + j;
                    real v = src >= 0 ? x[((size_t)b * P + src) * C + c] : bb[(size_t)c * k + k + src];
                    acc += w[c * k + j] * v;
                }
                yo[c] = acc;
            }
        }
        /* shift: the new buffer is the last k of (old buffer ++ chunk) */
        for (int c = 0; c < C; c++) {
            real tmp[16];
            for (int j = 0; j < k; j++) {
                int src = P - k + j;    /* index into the chunk; < 0 reaches into the old buffer */
                tmp[j] = src >= 0 ? x[((size_t)b * P + src) * C + c] : bb[(size_t)c * k + k + src];
            }
            memcpy(bb + (size_t)c * k, tmp, sizeof(real) * k);
        }
    }
}

static void add_to(real *y, const real *a, size_t n)
{
    #pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) y[i] += a[i];
}

/* Runs P tokens per sequence through every block from position s->pos; step
 * = 1 uses the single-token recurrences. logits [B,P,V] if non-NULL. */
static int run_chunk(ttt_model *m, ttt_decode *s, const int32_t *ids, int P, int step, real *logits)
{
    const ttt_config *c = &s->cfg;
    int B = s->B, C = c->hidden_size, V = c->vocab_size, I = c->intermediate_size, k = c->conv_kernel;
    int N = B * P;
    double eps = c->rms_norm_eps;
    if (s->broken)
        return ttt_seterr("decode: the state is unusable after an earlier failure; start a new one");
    for (int n = 0; n < N; n++)
        if (ids[n] < 0 || ids[n] >= V)
            return ttt_seterr("decode: token id %d is outside the vocabulary (size %d)", (int)ids[n], V);
    if (ensure_chunk(s, P)) return -1;
    if (c->seq_modeling_block == SEQ_ATTENTION && ensure_kv(s, s->pos + P)) return -1;
    size_t NC = (size_t)N * C;
    embed_forward(s->h, ids, m->embed, N, C);
    for (int l = 0; l < c->num_hidden_layers; l++) {
        const block_params *p = &m->bp[l];
        if (c->pre_conv) {
            real *buf = s->preconv + (size_t)l * B * C * k;
            rmsnorm_forward(s->x, NULL, s->h, p->conv_norm, N, C, eps);
            if (step)
                dwconv_step(s->y, buf, s->x, p->conv_w, p->conv_b, B, C, k);
            else
                preconv_chunk(s->y, buf, s->x, p->conv_w, p->conv_b, B, P, C, k);
            add_to(s->h, s->y, NC);
        }
        rmsnorm_forward(s->x, NULL, s->h, p->seq_norm, N, C, eps);
        if (c->seq_modeling_block == SEQ_ATTENTION)
            attn_decode(&s->ac, s->y, s->kc[l], s->vc[l], s->x, &p->attn, B, P, s->pos, s->bscr);
        else if (c->seq_modeling_block == SEQ_MAMBA)
            mamba_decode(&s->mc, s->y, s->state[l], s->x, &p->mamba, B, P, s->bscr);
        else if (step)
            ttt_layer_step(&s->lc, s->y, s->state[l], s->x, &p->ttt, B, s->pos);
        else if (ttt_layer_prefill(&s->lc, s->y, s->state[l], s->x, &p->ttt, B, P, s->pos)) {
            s->broken = 1;   /* earlier layers have advanced: the state is unusable */
            return -1;
        }
        add_to(s->h, s->y, NC);
        rmsnorm_forward(s->x, NULL, s->h, p->ffn_norm, N, C, eps);
        swiglu_forward(s->y, s->sw, s->x, p->gate_proj, p->up_proj, p->down_proj, N, C, I);
        add_to(s->h, s->y, NC);
    }
    if (logits) {
        rmsnorm_forward(s->x, NULL, s->h, m->final_norm, N, C, eps);
        ttt_gemm(0, 1, N, V, C, 1, s->x, C, m->embed, C, 0, logits, V);
    }
    s->pos += P;
    return 0;
}

int ttt_decode_prefill(ttt_model *m, ttt_decode *s, const int32_t *ids, int P, real *logits)
{
    if (P <= 0) return ttt_seterr("decode: prefill of %d tokens", P);
    if (P == 1) return run_chunk(m, s, ids, 1, 1, logits);
    if (s->cfg.seq_modeling_block == SEQ_TTT && s->pos % s->cfg.mini_batch_size != 0)
        return ttt_seterr("decode: a multi-token prefill must start at a multiple of %d, not at position %ld",
                          s->cfg.mini_batch_size, s->pos);
    return run_chunk(m, s, ids, P, 0, logits);
}

int ttt_decode_step(ttt_model *m, ttt_decode *s, const int32_t *ids, real *logits)
{
    return run_chunk(m, s, ids, 1, 1, logits);
}

const real *ttt_decode_tensor(const ttt_decode *s, const char *name, int *ndim, int shape[4])
{
    int l, len = 0;
    if (sscanf(name, "layer%d.%n", &l, &len) != 1 || len == 0 || l < 0 || l >= s->cfg.num_hidden_layers)
        return NULL;
    const char *what = name + len;
    if (strcmp(what, "conv_pre_conv") == 0) {
        if (!s->preconv) return NULL;
        int C = s->cfg.hidden_size, k = s->cfg.conv_kernel;
        *ndim = 3;
        shape[0] = s->B; shape[1] = C; shape[2] = k; shape[3] = 0;
        return s->preconv + (size_t)l * s->B * C * k;
    }
    if (s->cfg.seq_modeling_block == SEQ_ATTENTION) {
        int kv = strcmp(what, "k_cache") == 0 ? 1 : strcmp(what, "v_cache") == 0 ? 2 : 0;
        if (!kv || s->pos == 0) return NULL;
        *ndim = 3;
        shape[0] = (int)s->pos; shape[1] = s->B; shape[2] = s->cfg.hidden_size; shape[3] = 0;
        return kv == 1 ? s->kc[l] : s->vc[l];
    }
    if (s->cfg.seq_modeling_block == SEQ_MAMBA) {
        const mamba_config *mc = &s->mc;
        int conv = strcmp(what, "conv_state") == 0, ssm = strcmp(what, "ssm_state") == 0;
        if (!conv && !ssm) return NULL;
        *ndim = 3;
        shape[0] = s->B; shape[1] = mc->E; shape[2] = conv ? mc->k : mc->S; shape[3] = 0;
        return s->state[l] + (conv ? 0 : (size_t)s->B * mc->E * mc->k);
    }
    return ttt_layer_state_tensor(&s->lc, s->state[l], what, s->B, ndim, shape);
}

real *ttt_decode_tensor_mut(ttt_decode *s, const char *name, int *ndim, int shape[4])
{
    /* the views point into the decoder's own arrays: writable when s is */
    return (real *)ttt_decode_tensor(s, name, ndim, shape);
}
