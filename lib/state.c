/* state.c - save/load the decoding state as safetensors (state.h). */
#include "state.h"
#include "err.h"          /* ttt_seterr, ttt_preferr */
#include "safetensors.h"  /* ttt_st_* reader and writer */

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#define STATE_FORMAT "ttt-decode-state"
#define STATE_VERSION "1"

#ifdef TTT_F64
#define ST_REAL TTT_ST_F64
#else
#define ST_REAL TTT_ST_F32
#endif

/* Per-layer state tensor names, the reference TTTCache names. */
static const char *const layer_names[] = {
    "W1_states", "b1_states", "W2_states", "b2_states",
    "W1_grad", "b1_grad", "W2_grad", "b2_grad",
    "conv_pre_conv", "conv_ttt_conv_q", "conv_ttt_conv_k",
    "k_cache", "v_cache", "conv_state", "ssm_state",   /* the attention and Mamba baselines */
};
#define NLAYER_NAMES (int)(sizeof layer_names / sizeof layer_names[0])

uint64_t ttt_state_model_hash(const ttt_model *m)
{
    XXH3_state_t *h = XXH3_createState();
    XXH3_64bits_reset(h);
    const ttt_config *c = ttt_model_config(m);
    /* config fields that change the math, in a fixed order */
    int32_t ci[] = { c->vocab_size, c->hidden_size, c->intermediate_size, c->num_hidden_layers,
                     c->num_attention_heads, c->mini_batch_size, c->conv_kernel, c->ttt_layer_type,
                     c->pre_conv, c->share_qk, c->use_gate };
    double cd[] = { c->ttt_base_lr, c->rope_theta, c->rms_norm_eps };
    XXH3_64bits_update(h, ci, sizeof ci);
    XXH3_64bits_update(h, cd, sizeof cd);
    const real *p = ttt_model_params((ttt_model *)m);
    float buf[4096];
    for (int i = 0; i < ttt_model_num_tensors(m); i++) {
        const ttt_tensor *t = ttt_model_tensor(m, i);
        XXH3_64bits_update(h, t->name, strlen(t->name) + 1);
        int32_t shp[5] = { t->ndim, t->shape[0], t->shape[1], t->shape[2], t->shape[3] };
        XXH3_64bits_update(h, shp, sizeof shp);
        /* float32 values: the same checkpoint hashes the same in both builds */
        for (size_t j = 0; j < t->numel; j += 4096) {
            size_t n = t->numel - j < 4096 ? t->numel - j : 4096;
            for (size_t k = 0; k < n; k++) buf[k] = (float)p[t->offset + j + k];
            XXH3_64bits_update(h, buf, n * sizeof *buf);
        }
    }
    uint64_t v = XXH3_64bits_digest(h);
    XXH3_freeState(h);
    return v;
}

/* ---- save ---- */

int ttt_state_save(const char *path, const ttt_model *m, const ttt_decode *s,
                   const ttt_rng *rng, int32_t last_token, const real *logits)
{
    const ttt_config *c = ttt_model_config(m);
    ttt_st_writer *w = ttt_st_writer_new();
    if (!w) return ttt_seterr("%s: out of memory", path);
    char name[128], val[64];
    int64_t shp[4];
    int ndim, shape[4], rc = -1, ntensors = 0;
    char *cfg = NULL;
    size_t cfglen = 0;
    int64_t pos64 = ttt_decode_position(s), tok64 = last_token;

    for (int l = 0; l < c->num_hidden_layers; l++)
        for (int k = 0; k < NLAYER_NAMES; k++) {
            snprintf(name, sizeof name, "layer%d.%s", l, layer_names[k]);
            const real *t = ttt_decode_tensor(s, name, &ndim, shape);
            if (!t) continue;
            for (int d = 0; d < ndim; d++) shp[d] = shape[d];
            if (ttt_st_add(w, name, ST_REAL, ndim, shp, t) < 0) goto out;
            ntensors++;
        }
    if (ntensors == 0) { ttt_seterr("%s: the decoder exposes no state tensors", path); goto out; }
    int64_t four = 4, one = 1, V = c->vocab_size;
    if (ttt_st_add(w, "rng", TTT_ST_U64, 1, &four, rng->s) < 0) goto out;
    if (ttt_st_add(w, "last_token", TTT_ST_I64, 1, &one, &tok64) < 0) goto out;
    if (logits && ttt_st_add(w, "logits", ST_REAL, 1, &V, logits) < 0) goto out;

    FILE *f = open_memstream(&cfg, &cfglen);
    if (!f || ttt_config_write_json(c, f) < 0) { if (f) fclose(f); ttt_seterr("%s: cannot format config", path); goto out; }
    fclose(f);
    snprintf(val, sizeof val, "%016" PRIx64, ttt_state_model_hash(m));
    if (ttt_st_set_meta(w, "format", STATE_FORMAT) < 0 || ttt_st_set_meta(w, "version", STATE_VERSION) < 0 ||
        ttt_st_set_meta(w, "model_hash", val) < 0 || ttt_st_set_meta(w, "config", cfg) < 0)
        goto out;
    snprintf(val, sizeof val, "%" PRId64, pos64);
    if (ttt_st_set_meta(w, "position", val) < 0 || ttt_st_set_meta(w, "batch", "1") < 0) goto out;
    rc = ttt_st_write(w, path);
out:
    free(cfg);
    ttt_st_writer_free(w);
    return rc;
}

/* ---- load ---- */

static int read_real(const ttt_st *st, const ttt_st_tensor *t, real *out)
{
#ifdef TTT_F64
    return ttt_st_read_f64(st, t, out);
#else
    return ttt_st_read_f32(st, t, out);
#endif
}

int ttt_state_load(const char *path, ttt_model *m, ttt_decode *s,
                   ttt_rng *rng, int32_t *last_token, real *logits)
{
    const ttt_config *c = ttt_model_config(m);
    ttt_st *st = ttt_st_open(path, TTT_ST_VERIFY);
    if (!st) return -1;   /* the reader names the file */
    int rc = -1;
    char name[128];
    int ndim, shape[4];

    const char *fmt = ttt_st_meta(st, "format");
    if (!fmt || strcmp(fmt, STATE_FORMAT) != 0) {
        ttt_seterr("%s: not a ttt decoding state (metadata format is %s%s%s)", path,
                   fmt ? "'" : "", fmt ? fmt : "missing", fmt ? "'" : "");
        goto out;
    }
    const char *ver = ttt_st_meta(st, "version");
    if (!ver || strcmp(ver, STATE_VERSION) != 0) {
        ttt_seterr("%s: unsupported state version %s (this program reads %s)", path, ver ? ver : "(none)", STATE_VERSION);
        goto out;
    }
    char want[32];
    snprintf(want, sizeof want, "%016" PRIx64, ttt_state_model_hash(m));
    const char *have = ttt_st_meta(st, "model_hash");
    if (!have || strcmp(have, want) != 0) {
        ttt_seterr("%s: state was saved from another checkpoint (model hash %s, this model %s)", path,
                   have ? have : "missing", want);
        goto out;
    }
    const char *b = ttt_st_meta(st, "batch");
    if (!b || strcmp(b, "1") != 0) { ttt_seterr("%s: batch %s, expected 1", path, b ? b : "missing"); goto out; }
    const char *ps = ttt_st_meta(st, "position");
    char *end;
    long pos = ps ? strtol(ps, &end, 10) : -1;
    if (!ps || *end || pos < 0) { ttt_seterr("%s: bad or missing position in metadata", path); goto out; }

    if (ttt_decode_position(s) != 0) { ttt_seterr("%s: loading into a decoder that has already run", path); goto out; }
    /* the position first (attention layers size their KV cache by it), then
     * every state tensor is overwritten */
    if (ttt_decode_set_position(s, pos) < 0) { ttt_preferr("%s", path); goto out; }

    /* every state tensor of this decoder must be in the file with its shape */
    int matched = 0;
    for (int l = 0; l < c->num_hidden_layers; l++)
        for (int k = 0; k < NLAYER_NAMES; k++) {
            snprintf(name, sizeof name, "layer%d.%s", l, layer_names[k]);
            real *dst = ttt_decode_tensor_mut(s, name, &ndim, shape);
            if (!dst) continue;
            const ttt_st_tensor *t = ttt_st_find(st, name);
            if (!t) { ttt_seterr("%s: tensor %s missing", path, name); goto out; }
            int ok = t->ndim == ndim;
            for (int d = 0; ok && d < ndim; d++) ok = t->shape[d] == shape[d];
            if (!ok) { ttt_seterr("%s: tensor %s has the wrong shape for this model", path, name); goto out; }
            if (read_real(st, t, dst) < 0) { ttt_preferr("%s: %s", path, name); goto out; }
            matched++;
        }
    /* and nothing else of that kind (a state of a deeper model) */
    int layer_tensors = 0;
    for (int i = 0; i < ttt_st_count(st); i++)
        if (!strncmp(ttt_st_at(st, i)->name, "layer", 5)) layer_tensors++;
    if (layer_tensors != matched) {
        ttt_seterr("%s: %d layer tensors in the file, this model has %d", path, layer_tensors, matched);
        goto out;
    }

    const ttt_st_tensor *t = ttt_st_find(st, "rng");
    if (!t || t->dtype != TTT_ST_U64 || t->numel != 4) { ttt_seterr("%s: tensor rng missing or not U64[4]", path); goto out; }
    memcpy(rng->s, ttt_st_data(st, t), sizeof rng->s);
    t = ttt_st_find(st, "last_token");
    if (!t || t->dtype != TTT_ST_I64 || t->numel != 1) { ttt_seterr("%s: tensor last_token missing or not I64[1]", path); goto out; }
    int64_t tok;
    memcpy(&tok, ttt_st_data(st, t), sizeof tok);
    if (tok < -1 || tok >= c->vocab_size) { ttt_seterr("%s: last_token %" PRId64 " out of range", path, tok); goto out; }
    *last_token = (int32_t)tok;
    if (logits) {
        t = ttt_st_find(st, "logits");
        if (!t) { ttt_seterr("%s: tensor logits missing (a state saved before any token)", path); goto out; }
        if (t->numel != (uint64_t)c->vocab_size) { ttt_seterr("%s: logits has %" PRIu64 " values, vocabulary is %d", path, t->numel, c->vocab_size); goto out; }
        if (read_real(st, t, logits) < 0) { ttt_preferr("%s: logits", path); goto out; }
    }
    rc = 0;
out:
    ttt_st_close(st);
    return rc;
}
