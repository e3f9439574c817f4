/* test_model_arch.c - the Transformer and Mamba baselines inside the model
 * (float64 build): central finite differences of the whole tiny model's
 * loss, decoding (KV cache / recurrent state, any chunking) equal to the
 * full forward, tensor names and shapes, the Mamba initialisation, config
 * JSON (seq_modeling_block) round trip and errors, presets matched by
 * parameter count, the KV cache limit. */
#include "check.h"
#include "model_check.h"
#include "../../lib/model.h"
#include "../../lib/err.h"
#include "../../lib/json.h"
#include "../../lib/rng.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static ttt_rng rng;

static void tiny(ttt_config *c, int block)
{
    ttt_config_default(c);
    c->vocab_size = 37;
    c->hidden_size = 16;
    c->intermediate_size = 24;
    c->num_hidden_layers = 2;
    c->num_attention_heads = 2;
    c->seq_modeling_block = block;
}

/* Random parameters of a useful scale: the initialisation's zeros and
 * ones would hide errors in the terms they multiply. A_log stays near its
 * init so the state decays at realistic rates. */
static void scramble(ttt_model *m)
{
    real *p = ttt_model_params(m);
    for (int i = 0; i < ttt_model_num_tensors(m); i++) {
        const ttt_tensor *t = ttt_model_tensor(m, i);
        double scale = strstr(t->name, "A_log") || strstr(t->name, "dt_proj.bias") ? 0.2 : 0.3;
        for (size_t k = 0; k < t->numel; k++) p[t->offset + k] += scale * ttt_rng_normal(&rng);
    }
}

static void test_fd(int block)
{
    ttt_config c;
    tiny(&c, block);
    ttt_model *m = ttt_model_build(&c);
    CHECK(m != NULL);
    if (!m) return;
    ttt_model_init(m, 3);
    scramble(m);
    enum { B = 2, T = 70 };   /* T crosses the Mamba scan's chunk and the attention tile */
    int32_t ids[B * T], tg[B * T];
    random_batch(&rng, ids, tg, B, T, c.vocab_size);
    tg[5] = -1;
    real *grad = model_grad(m, ids, tg, B, T);
    double h = 1e-5;
    /* every tensor: its largest-gradient entry and two others */
    int bad = 0;
    for (int i = 0; i < ttt_model_num_tensors(m); i++) {
        const ttt_tensor *t = ttt_model_tensor(m, i);
        size_t pick[3] = { largest_grad(grad, t), t->offset + t->numel / 3, t->offset + t->numel - 1 };
        for (int j = 0; j < 3; j++) bad += !fd_agrees(m, ids, tg, B, T, t, pick[j], grad, h);
    }
    CHECK(bad == 0);
    /* the inter views reach the baseline blocks */
    model_loss(m, ids, tg, B, T);
    CHECK(ttt_model_inter(m, "inter.block1.seq_out") != NULL);
    CHECK((ttt_model_inter(m, "inter.block0.attn.lse") != NULL) == (block == SEQ_ATTENTION));
    CHECK((ttt_model_inter(m, "inter.block0.mamba.dt") != NULL) == (block == SEQ_MAMBA));
    CHECK(ttt_model_inter(m, "inter.block0.ttt.XQ_rope") == NULL);
    free(grad);
    ttt_model_free(m);
}

static void test_decode(int block)
{
    ttt_config c;
    tiny(&c, block);
    ttt_model *m = ttt_model_build(&c);
    if (!m) { CHECK(0); return; }
    scramble(m);
    enum { B = 2, T = 75 };
    int V = c.vocab_size;
    int32_t ids[B * T], chunk[B * T];
    random_batch(&rng, ids, NULL, B, T, V);
    real *full = full_logits(m, ids, B, T, V), *lg = malloc((size_t)B * T * V * sizeof *lg);
    /* no alignment needed: prefills of 3, steps, a prefill of 67 from position 5 */
    static const int Ps[] = { 3, 1, 1, 67, 1, 1, 1 };
    ttt_decode *s = ttt_decode_new(m, B);
    CHECK(s != NULL);
    double worst = 0;
    long pos = 0;
    for (size_t pi = 0; pi < sizeof Ps / sizeof Ps[0]; pi++) {
        int P = Ps[pi];
        for (int b = 0; b < B; b++) memcpy(chunk + b * P, ids + b * T + pos, P * sizeof *ids);
        int rc = P == 1 ? ttt_decode_step(m, s, chunk, lg) : ttt_decode_prefill(m, s, chunk, P, lg);
        CHECK(rc == 0);
        worst = fmax(worst, logits_diff(lg, full, B, P, T, pos, V));
        pos += P;
    }
    CHECK(pos == T && ttt_decode_position(s) == T);
    if (!(worst < 1e-10)) fprintf(stderr, "  decode block %d: max |diff| %.3g\n", block, worst);
    CHECK(worst < 1e-10);
    int nd, shape[4];
    if (block == SEQ_ATTENTION) {
        CHECK(ttt_decode_tensor(s, "layer1.k_cache", &nd, shape) != NULL && nd == 3 &&
              shape[0] == T && shape[1] == B && shape[2] == c.hidden_size);
        CHECK(ttt_decode_tensor(s, "layer0.v_cache", &nd, shape) != NULL);
        CHECK(ttt_decode_tensor(s, "layer0.ssm_state", &nd, shape) == NULL);
        /* beyond the cache maximum: a clear error, the state still usable */
        CHECK(ttt_decode_set_position(s, (long)TTT_ATTN_MAX_CONTEXT + 1) == -1 &&
              strstr(ttt_errmsg(), "maximum"));
        CHECK(ttt_decode_position(s) == T);
    } else {
        CHECK(ttt_decode_tensor(s, "layer1.ssm_state", &nd, shape) != NULL && nd == 3 &&
              shape[0] == B && shape[1] == 2 * c.hidden_size && shape[2] == 16);
        CHECK(ttt_decode_tensor(s, "layer0.conv_state", &nd, shape) != NULL && shape[2] == 4);
        CHECK(ttt_decode_tensor(s, "layer0.k_cache", &nd, shape) == NULL);
    }
    CHECK(ttt_decode_tensor(s, "layer0.W1_states", &nd, shape) == NULL);
    ttt_decode_free(s);
    free(full); free(lg);
    ttt_model_free(m);
}

static void test_tensors_and_init(void)
{
    ttt_config c;
    tiny(&c, SEQ_ATTENTION);
    ttt_model *m = ttt_model_build(&c);
    if (!m) { CHECK(0); return; }
    CHECK(ttt_model_find(m, "model.layers.1.seq_modeling_block.o_proj.weight") != NULL);
    CHECK(ttt_model_find(m, "model.layers.0.seq_modeling_block.W1") == NULL);
    CHECK(ttt_model_find(m, "model.layers.0.conv.conv.weight") == NULL);
    /* embed + final norm + per layer q k v o, gate up down, 2 norms */
    CHECK(ttt_model_num_tensors(m) == 2 + 2 * 9);
    CHECK(ttt_model_num_params(m) == 37 * 16 + 16 + 2 * (4 * 256 + 3 * 16 * 24 + 2 * 16));
    ttt_model_free(m);

    tiny(&c, SEQ_MAMBA);
    m = ttt_model_build(&c);
    if (!m) { CHECK(0); return; }
    int E = 32, S = 16, R = 1;
    const ttt_tensor *t = ttt_model_find(m, "model.layers.0.seq_modeling_block.A_log");
    CHECK(t && t->ndim == 2 && t->shape[0] == E && t->shape[1] == S);
    t = ttt_model_find(m, "model.layers.0.seq_modeling_block.in_proj.weight");
    CHECK(t && t->shape[0] == 2 * E && t->shape[1] == 16);
    t = ttt_model_find(m, "model.layers.0.seq_modeling_block.x_proj.weight");
    CHECK(t && t->shape[0] == R + 2 * S && t->shape[1] == E);
    t = ttt_model_find(m, "model.layers.1.seq_modeling_block.conv1d.weight");
    CHECK(t && t->ndim == 3 && t->shape[0] == E && t->shape[1] == 1 && t->shape[2] == 4);
    CHECK(ttt_model_find(m, "model.layers.1.seq_modeling_block.dt_proj.bias") != NULL);
    CHECK(ttt_model_find(m, "model.layers.1.seq_modeling_block.D") != NULL);
    CHECK(ttt_model_find(m, "model.layers.1.seq_modeling_block.out_proj.weight") != NULL);
    CHECK(ttt_model_find(m, "model.layers.1.mlp.down_proj.weight") != NULL);
    ttt_model_init(m, 9);
    const real *p = ttt_model_params(m);
    t = ttt_model_find(m, "model.layers.0.seq_modeling_block.A_log");
    CHECK_CLOSE(p[t->offset + 3 * S + 4], log(5.0), 1e-15, 0);
    t = ttt_model_find(m, "model.layers.0.seq_modeling_block.D");
    CHECK(p[t->offset] == 1 && p[t->offset + E - 1] == 1);
    t = ttt_model_find(m, "model.layers.0.seq_modeling_block.dt_proj.bias");
    int in_range = 1;
    for (int e = 0; e < E; e++) {
        double dt = log1p(exp(p[t->offset + e]));   /* softplus */
        if (!(dt >= 1e-3 * 0.999 && dt <= 0.1 * 1.001)) in_range = 0;
    }
    CHECK(in_range);
    t = ttt_model_find(m, "model.layers.0.seq_modeling_block.dt_proj.weight");
    int bounded = 1;
    for (int k = 0; k < E * R; k++) if (fabs(p[t->offset + k]) > 1 / sqrt((double)R)) bounded = 0;
    CHECK(bounded);
    ttt_model_free(m);
}

static int parse(ttt_config *c, const char *text)
{
    json *j = json_parse(text, strlen(text));
    if (!j) return -2;
    int rc = ttt_config_from_json(c, j);
    json_free(j);
    return rc;
}

static void test_config(void)
{
    ttt_config c, d;
    char buf[4096];
    for (int block = 0; block < 3; block++) {
        tiny(&c, block);
        FILE *f = fmemopen(buf, sizeof buf, "w");
        CHECK(ttt_config_write_json(&c, f) == 0);
        fclose(f);
        /* TTT configs keep the reference JSON: no new key */
        CHECK((strstr(buf, "seq_modeling_block") != NULL) == (block != SEQ_TTT));
        CHECK(parse(&d, buf) == 0);
        CHECK(memcmp(&c, &d, sizeof c) == 0);
    }
    CHECK(parse(&c, "{\"seq_modeling_block\": \"mamba\"}") == 0 && c.seq_modeling_block == SEQ_MAMBA);
    CHECK(parse(&c, "{\"seq_modeling_block\": \"self_attention\"}") == 0 && c.seq_modeling_block == SEQ_ATTENTION);
    CHECK(parse(&c, "{\"seq_modeling_block\": \"ttt_mlp\"}") == 0 && c.seq_modeling_block == SEQ_TTT &&
          c.ttt_layer_type == TTT_MLP);
    CHECK(parse(&c, "{\"seq_modeling_block\": \"ttt_mlp\", \"ttt_layer_type\": \"mlp\"}") == 0);
    CHECK(parse(&c, "{\"seq_modeling_block\": \"ttt_mlp\", \"ttt_layer_type\": \"linear\"}") == -1 &&
          strstr(ttt_errmsg(), "disagree"));
    CHECK(parse(&c, "{\"seq_modeling_block\": \"rnn\"}") == -1 && strstr(ttt_errmsg(), "seq_modeling_block"));
    CHECK(parse(&c, "{\"seq_modeling_block\": 2}") == -1);
    CHECK(parse(&c, "{\"seq_modeling_block\": \"mamba\", \"pre_conv\": true}") == -1 &&
          strstr(ttt_errmsg(), "TTT blocks only"));
    CHECK(parse(&c, "{\"seq_modeling_block\": \"self_attention\", \"hidden_size\": 18, \"num_attention_heads\": 6}") == -1 &&
          strstr(ttt_errmsg(), "even head dim"));
}

static void test_presets(void)
{
    static const char *names[] = { "tiny", "small", "125m", "350m", "760m", "1b" };
    for (int i = 0; i < 6; i++) {
        ttt_config t, a;
        CHECK(ttt_config_preset_for(&t, names[i], SEQ_TTT) == 0);
        CHECK(t.pre_conv && t.seq_modeling_block == SEQ_TTT);
        double pt = (double)ttt_config_num_params(&t);
        for (int block = 1; block < 3; block++) {
            CHECK(ttt_config_preset_for(&a, names[i], block) == 0);
            CHECK(a.seq_modeling_block == block && !a.pre_conv && !a.share_qk && !a.use_gate);
            CHECK(a.hidden_size == t.hidden_size && a.num_hidden_layers == t.num_hidden_layers &&
                  a.vocab_size == t.vocab_size && a.intermediate_size % 8 == 0);
            double pa = (double)ttt_config_num_params(&a);
            /* within one step of I (3*C*L*8 parameters) of the TTT-Linear count */
            CHECK(fabs(pa - pt) <= 1.5 * 3 * 8.0 * a.hidden_size * a.num_hidden_layers);
            CHECK(fabs(pa - pt) / pt < 0.01);
        }
    }
    /* the counts documented in model_config.c */
    ttt_config c;
    ttt_config_preset_for(&c, "125m", SEQ_TTT);
    CHECK(ttt_config_num_params(&c) == 110424144);
    ttt_config_preset_for(&c, "125m", SEQ_ATTENTION);
    CHECK(ttt_config_num_params(&c) == 110414592 && c.intermediate_size == 2080);
    ttt_config_preset_for(&c, "125m", SEQ_MAMBA);
    CHECK(ttt_config_num_params(&c) == 110322432 && c.intermediate_size == 1464);
    CHECK(ttt_config_preset_for(&c, "nope", SEQ_MAMBA) == -1);
}

int main(void)
{
    ttt_rng_seed(&rng, 11);
    test_fd(SEQ_ATTENTION);
    test_fd(SEQ_MAMBA);
    test_decode(SEQ_ATTENTION);
    test_decode(SEQ_MAMBA);
    test_tensors_and_init();
    test_config();
    test_presets();
    return check_exit("test_model_arch");
}
