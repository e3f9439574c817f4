/* test_checkpoint.c - RUNDIR checkpoints: save/load round trip of model and
 * optimizer state, the commit protocol (a committed ckpt.new/ is preferred
 * by readers and completed by ttt_ckpt_recover), and refusal of a model and
 * optimizer from different steps. */
#include "check.h"
#include "checkpoint.h"
#include "err.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char dir[256];

static ttt_model *tiny(void)
{
    ttt_config c;
    if (ttt_config_preset(&c, "tiny") < 0) return NULL;
    c.vocab_size = 50;
    ttt_model *m = ttt_model_build(&c);
    if (m) ttt_model_init(m, 3);
    return m;
}

static void save_at(const char *rd, ttt_model *m, long long step, real *mm, real *vv)
{
    ttt_opt_state o = { 0 };
    o.step = step; o.tokenizer_hash = 0xabcdef0123456789ull; o.tokens_seen = 100 * step;
    ttt_rng_seed(&o.rng, step);
    o.m = mm; o.v = vv;
    mkdir(rd, 0755);
    CHECK(ttt_ckpt_save(rd, m, &o, "{\"format\": \"ttt-run\"}\n") == 0);
}

int main(void)
{
    snprintf(dir, sizeof dir, "/tmp/test_checkpoint.XXXXXX");
    if (!mkdtemp(dir)) { perror("mkdtemp"); return 1; }
    ttt_model *m = tiny();
    CHECK(m != NULL);
    if (!m) return check_exit("test_checkpoint");
    size_t n = ttt_model_num_params(m);
    real *mm = calloc(n, sizeof *mm), *vv = calloc(n, sizeof *vv);
    for (size_t i = 0; i < n; i++) { mm[i] = (real)(0.001 * (i % 97)); vv[i] = (real)(1e-6 * (i % 13)); }
    char a[300], b[300], p[4096];
    snprintf(a, sizeof a, "%s/a", dir);
    snprintf(b, sizeof b, "%s/b", dir);

    /* round trip */
    save_at(a, m, 5, mm, vv);
    CHECK(ttt_ckpt_is_run(a));
    long long step = -1;
    uint64_t h = 0;
    ttt_model *m2 = ttt_ckpt_load_model(a, &step, &h);
    CHECK(m2 != NULL);
    if (!m2) { fprintf(stderr, "%s\n", ttt_errmsg()); return check_exit("test_checkpoint"); }
    CHECK(step == 5 && h == 0xabcdef0123456789ull);
    CHECK(ttt_model_num_params(m2) == n);
    int same = 1;
    for (size_t i = 0; i < n; i++) same &= ttt_model_params(m2)[i] == (real)(float)ttt_model_params(m)[i];
    CHECK(same);
    ttt_opt_state o = { 0 };
    o.m = calloc(n, sizeof *o.m); o.v = calloc(n, sizeof *o.v);
    CHECK(ttt_ckpt_load_optimizer(a, m2, &o, 5) == 0);
    ttt_rng r;
    ttt_rng_seed(&r, 5);
    CHECK(o.step == 5 && o.tokens_seen == 500 && !memcmp(&r, &o.rng, sizeof r));
    same = 1;
    for (size_t i = 0; i < n; i++) same &= o.m[i] == (real)(float)mm[i] && o.v[i] == (real)(float)vv[i];
    CHECK(same);
    /* the step must match the model's */
    CHECK(ttt_ckpt_load_optimizer(a, m2, &o, 4) < 0 && strstr(ttt_errmsg(), "does not match"));

    /* b at step 3; then a committed but unmoved step-5 checkpoint in b/ckpt.new */
    save_at(b, m, 3, mm, vv);
    snprintf(p, sizeof p, "mkdir -p '%s/ckpt.new' && cp '%s'/model.safetensors '%s'/optimizer.safetensors '%s'/run.json '%s/ckpt.new/'", b, a, a, a, b);
    CHECK(system(p) == 0);
    ttt_model *m3 = ttt_ckpt_load_model(b, &step, NULL);
    CHECK(m3 && step == 5);   /* readers prefer ckpt.new */
    ttt_model_free(m3);
    /* a half-finished move: the model already moved, the optimizer not */
    snprintf(p, sizeof p, "mv '%s/ckpt.new/model.safetensors' '%s/model.safetensors'", b, b);
    CHECK(system(p) == 0);
    CHECK(ttt_ckpt_recover(b) == 0);
    snprintf(p, sizeof p, "%s/ckpt.new", b);
    CHECK(access(p, F_OK) != 0);
    m3 = ttt_ckpt_load_model(b, &step, NULL);
    CHECK(m3 && step == 5);
    CHECK(ttt_ckpt_load_optimizer(b, m3, &o, 5) == 0);
    ttt_model_free(m3);
    /* an uncommitted ckpt.tmp is discarded */
    snprintf(p, sizeof p, "%s/ckpt.tmp", b);
    mkdir(p, 0755);
    CHECK(ttt_ckpt_recover(b) == 0 && access(p, F_OK) != 0);

    /* a model from another step than the optimizer is refused */
    save_at(b, m, 7, mm, vv);
    snprintf(p, sizeof p, "cp '%s/model.safetensors' '%s/model.safetensors'", a, b);
    CHECK(system(p) == 0);
    m3 = ttt_ckpt_load_model(b, &step, NULL);
    CHECK(m3 && step == 5);
    if (m3) CHECK(ttt_ckpt_load_optimizer(b, m3, &o, step) < 0 && strstr(ttt_errmsg(), "step 7"));
    ttt_model_free(m3);

    /* a model of another shape is refused naming a tensor */
    ttt_config c;
    ttt_config_preset(&c, "tiny");
    c.vocab_size = 60;
    ttt_model *m4 = ttt_model_build(&c);
    CHECK(m4 && ttt_ckpt_load_weights(a, m4, NULL, NULL) < 0 && strstr(ttt_errmsg(), "shape"));
    ttt_model_free(m4);
    /* not a run */
    CHECK(ttt_ckpt_load_model(dir, NULL, NULL) == NULL && strstr(ttt_errmsg(), "not a run directory"));

    ttt_model_free(m); ttt_model_free(m2);
    free(mm); free(vv); free(o.m); free(o.v);
    snprintf(p, sizeof p, "rm -rf '%s'", dir);
    if (system(p) != 0) fprintf(stderr, "cleanup failed\n");
    return check_exit("test_checkpoint");
}
