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
    real **state;        /* [L] ttt layer states */
    size_t state_size;
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
    s->state = calloc(L, sizeof *s->state);
    if (!s->state) goto oom;
    s->state_size = ttt_layer_state_size(&s->lc, B);
    for (int l = 0; l < L; l++) {
        s->state[l] = malloc((s->state_size ? s->state_size : 1) * sizeof(real));
        if (!s->state[l]) goto oom;
        ttt_layer_state_init(&s->lc, s->state[l], &m->bp[l].ttt, B);
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

int ttt_decode_set_position(ttt_decode *s, long pos)
{
    if (pos < 0) return ttt_seterr("decode: negative position %ld", pos);
    s->pos = pos;
    return 0;
}

static int ensure_chunk(ttt_decode *s, int P)
{
    if (P <= s->cap) return 0;
    size_t N = (size_t)s->B * P, C = s->cfg.hidden_size, I = s->cfg.intermediate_size;
    size_t need = 4 * N * C + swiglu_acts_size((int)N, (int)I);
    real *w = malloc(need * sizeof(real));
    if (!w) return ttt_seterr("decode: out of memory for a chunk of %d tokens", P);
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
        if (step)
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
    if (s->pos % s->cfg.mini_batch_size != 0)
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
    return ttt_layer_state_tensor(&s->lc, s->state[l], what, s->B, ndim, shape);
}
