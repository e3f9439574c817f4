/* checkpoint.c - model/optimizer checkpoints in safetensors and the RUNDIR
 * save protocol (checkpoint.h). Parameters are stored as F32 whatever
 * `real` is; the float64 library converts on the way in and out. */
#include "checkpoint.h"
#include "err.h"           /* ttt_seterr, ttt_preferr */
#include "io.h"            /* ttt_atomic_* */
#include "json.h"          /* json_parse */
#include "safetensors.h"   /* ttt_st_* */

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static const char *const ckpt_files[] = { "model.safetensors", "optimizer.safetensors", "run.json" };
#define NFILES 3

/* ---- small helpers ---- */

/* TEST ONLY: TTT_TEST_SLOW_SAVE=MS sleeps MS milliseconds at each stage of
 * a save (after each file, after the commit point, between the moves into
 * RUNDIR) so that tests/cli/35-train-faults.bats can SIGKILL ttt-train
 * inside every window of the protocol. Unset, it does nothing. */
static void test_pause(void)
{
    const char *s = getenv("TTT_TEST_SLOW_SAVE");
    long ms = s ? strtol(s, NULL, 10) : 0;
    if (ms <= 0 || ms > 10000) return;
    struct timespec ts = { ms / 1000, ms % 1000 * 1000000L };
    nanosleep(&ts, NULL);
}

static int is_dir(const char *p)
{
    struct stat sb;
    return stat(p, &sb) == 0 && S_ISDIR(sb.st_mode);
}

static int is_file(const char *p)
{
    struct stat sb;
    return stat(p, &sb) == 0 && S_ISREG(sb.st_mode);
}

static void fsync_dir(const char *d)
{
    int fd = open(d, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) { fsync(fd); close(fd); }
}

/* Removes the plain files in d (ours only ever holds plain files), then d. */
static int remove_dir(const char *d)
{
    DIR *dp = opendir(d);
    if (!dp) return errno == ENOENT ? 0 : ttt_seterr("%s: %s", d, strerror(errno));
    struct dirent *e;
    char p[4096];
    while ((e = readdir(dp))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        snprintf(p, sizeof p, "%s/%s", d, e->d_name);
        unlink(p);
    }
    closedir(dp);
    if (rmdir(d) != 0) return ttt_seterr("%s: cannot remove: %s", d, strerror(errno));
    return 0;
}

static int parse_u64(const char *s, int base, uint64_t *out)
{
    if (!s || !*s) return -1;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, base);
    if (*end || errno || *s == '-') return -1;
    *out = v;
    return 0;
}

/* Parameters as F32: the arena itself when real is float, else a copy. */
static float *as_f32(const real *x, size_t n, float **owned)
{
#ifdef TTT_F64
    float *f = malloc(n ? n * sizeof *f : 1);
    if (f) for (size_t i = 0; i < n; i++) f[i] = (float)x[i];
    *owned = f;
    return f;
#else
    *owned = NULL;
    return (float *)x;
#endif
}

static char *config_json(const ttt_config *c)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f) return NULL;
    int rc = ttt_config_write_json(c, f);
    if (fclose(f) != 0 || rc < 0) { free(buf); return NULL; }
    return buf;
}

/* Adds the model's tensors under prefix+name, from arena x (F32 view). */
static int add_tensors(ttt_st_writer *w, const ttt_model *m, const char *prefix, const float *x)
{
    char name[160];
    for (int i = 0; i < ttt_model_num_tensors(m); i++) {
        const ttt_tensor *t = ttt_model_tensor(m, i);
        int64_t shape[4];
        for (int d = 0; d < t->ndim; d++) shape[d] = t->shape[d];
        snprintf(name, sizeof name, "%s%s", prefix, t->name);
        if (ttt_st_add(w, name, TTT_ST_F32, t->ndim, shape, x + t->offset) < 0) return -1;
    }
    return 0;
}

/* ---- writing ---- */

int ttt_ckpt_write_model(const char *path, ttt_model *m, long long step, uint64_t tokenizer_hash)
{
    float *owned = NULL;
    const float *x = as_f32(ttt_model_params(m), ttt_model_num_params(m), &owned);
    char *cfg = config_json(ttt_model_config(m));
    ttt_st_writer *w = ttt_st_writer_new();
    int rc = -1;
    char buf[32];
    if (!x || !cfg || !w) { ttt_seterr("%s: out of memory", path); goto out; }
    if (ttt_st_set_meta(w, "format", "pt") < 0 || ttt_st_set_meta(w, "config", cfg) < 0) goto out;
    snprintf(buf, sizeof buf, "%lld", step);
    if (ttt_st_set_meta(w, "step", buf) < 0) goto out;
    snprintf(buf, sizeof buf, "%016" PRIx64, tokenizer_hash);
    if (ttt_st_set_meta(w, "tokenizer_hash", buf) < 0) goto out;
    if (add_tensors(w, m, "", x) < 0) goto out;
    rc = ttt_st_write(w, path);
out:
    if (rc < 0 && !*ttt_errmsg()) ttt_seterr("%s: cannot write", path);
    ttt_st_writer_free(w);
    free(cfg);
    free(owned);
    return rc;
}

static int write_optimizer(const char *path, const ttt_model *m, const ttt_opt_state *o)
{
    size_t n = ttt_model_num_params(m);
    float *om = NULL, *ov = NULL;
    const float *xm = as_f32(o->m, n, &om), *xv = as_f32(o->v, n, &ov);
    ttt_st_writer *w = ttt_st_writer_new();
    int rc = -1;
    char buf[32];
    int64_t rshape[1] = { 4 };
    if (!xm || !xv || !w) { ttt_seterr("%s: out of memory", path); goto out; }
    if (ttt_st_set_meta(w, "format", "ttt-optimizer") < 0 || ttt_st_set_meta(w, "version", "1") < 0) goto out;
    snprintf(buf, sizeof buf, "%lld", o->step);
    if (ttt_st_set_meta(w, "step", buf) < 0) goto out;
    snprintf(buf, sizeof buf, "%" PRIu64, o->tokens_seen);
    if (ttt_st_set_meta(w, "tokens_seen", buf) < 0) goto out;
    snprintf(buf, sizeof buf, "%016" PRIx64, o->tokenizer_hash);
    if (ttt_st_set_meta(w, "tokenizer_hash", buf) < 0) goto out;
    if (add_tensors(w, m, "adam_m.", xm) < 0 || add_tensors(w, m, "adam_v.", xv) < 0) goto out;
    if (ttt_st_add(w, "rng", TTT_ST_U64, 1, rshape, o->rng.s) < 0) goto out;
    rc = ttt_st_write(w, path);
out:
    ttt_st_writer_free(w);
    free(om); free(ov);
    return rc;
}

static int write_text(const char *path, const char *text)
{
    ttt_atomic a;
    if (ttt_atomic_open(&a, path) < 0) return -1;
    if (ttt_fwrite(a.f, text, strlen(text), path) < 0) { ttt_atomic_abort(&a); return -1; }
    return ttt_atomic_commit(&a);
}

int ttt_ckpt_recover(const char *rundir)
{
    char src[4096], dst[4096];
    snprintf(src, sizeof src, "%s/ckpt.new", rundir);
    if (is_dir(src)) {
        for (int i = 0; i < NFILES; i++) {
            snprintf(src, sizeof src, "%s/ckpt.new/%s", rundir, ckpt_files[i]);
            snprintf(dst, sizeof dst, "%s/%s", rundir, ckpt_files[i]);
            if (is_file(src) && rename(src, dst) != 0)
                return ttt_seterr("%s: cannot move into place: %s", src, strerror(errno));
            test_pause();
        }
        fsync_dir(rundir);
        snprintf(src, sizeof src, "%s/ckpt.new", rundir);
        if (remove_dir(src) < 0) return -1;
    }
    snprintf(src, sizeof src, "%s/ckpt.tmp", rundir);
    if (is_dir(src) && remove_dir(src) < 0) return -1;
    fsync_dir(rundir);
    return 0;
}

int ttt_ckpt_save(const char *rundir, ttt_model *m, const ttt_opt_state *o, const char *run_json)
{
    char tmp[4096], p[4224], nw[4224];
    if (ttt_ckpt_recover(rundir) < 0) return -1;
    snprintf(tmp, sizeof tmp, "%s/ckpt.tmp", rundir);
    if (mkdir(tmp, 0755) != 0) return ttt_seterr("%s: cannot create: %s", tmp, strerror(errno));
    snprintf(p, sizeof p, "%s/model.safetensors", tmp);
    if (ttt_ckpt_write_model(p, m, o->step, o->tokenizer_hash) < 0) goto fail;
    test_pause();
    snprintf(p, sizeof p, "%s/optimizer.safetensors", tmp);
    if (write_optimizer(p, m, o) < 0) goto fail;
    test_pause();
    snprintf(p, sizeof p, "%s/run.json", tmp);
    if (write_text(p, run_json) < 0) goto fail;
    test_pause();
    snprintf(nw, sizeof nw, "%s/ckpt.new", rundir);
    if (rename(tmp, nw) != 0) { ttt_seterr("%s: cannot rename to ckpt.new: %s", tmp, strerror(errno)); goto fail; }
    fsync_dir(rundir);
    test_pause();
    return ttt_ckpt_recover(rundir);
fail:
    {
        /* Keep the first message; clean up the uncommitted directory. */
        char msg[1024];
        snprintf(msg, sizeof msg, "%s", ttt_errmsg());
        remove_dir(tmp);
        return ttt_seterr("%s", msg);
    }
}

/* ---- reading ---- */

int ttt_ckpt_is_run(const char *dir)
{
    char p[4096];
    snprintf(p, sizeof p, "%s/model.safetensors", dir);
    if (is_file(p)) return 1;
    snprintf(p, sizeof p, "%s/ckpt.new/model.safetensors", dir);
    return is_file(p);
}

/* RUNDIR/<name>, preferring a committed but not yet moved ckpt.new/<name>. */
static void run_file(const char *dir, const char *name, char *buf, size_t n)
{
    snprintf(buf, n, "%s/ckpt.new/%s", dir, name);
    if (is_file(buf)) return;
    snprintf(buf, n, "%s/%s", dir, name);
}

int ttt_ckpt_model_path(const char *path, char *buf, size_t n)
{
    if (!is_dir(path)) {
        if (snprintf(buf, n, "%s", path) >= (int)n) return ttt_seterr("%s: path too long", path);
        if (!is_file(path)) return ttt_seterr("%s: %s", path, strerror(errno ? errno : ENOENT));
        return 0;
    }
    run_file(path, "model.safetensors", buf, n);
    if (!is_file(buf)) return ttt_seterr("%s: not a run directory (no model.safetensors)", path);
    return 0;
}

static int config_from_st(const ttt_st *st, ttt_config *c)
{
    const char *cfg = ttt_st_meta(st, "config");
    if (!cfg) return ttt_seterr("%s: no \"config\" in __metadata__ (not a ttt checkpoint?)", ttt_st_path(st));
    json *j = json_parse(cfg, strlen(cfg));
    if (!j) return ttt_preferr("%s: metadata config", ttt_st_path(st));
    int rc = ttt_config_from_json(c, j);
    json_free(j);
    if (rc < 0) return ttt_preferr("%s", ttt_st_path(st));
    return 0;
}

int ttt_ckpt_read_config(const char *path, ttt_config *c)
{
    char p[4096];
    if (ttt_ckpt_model_path(path, p, sizeof p) < 0) return -1;
    ttt_st *st = ttt_st_open(p, 0);
    if (!st) return -1;
    int rc = config_from_st(st, c);
    ttt_st_close(st);
    return rc;
}

static int meta_step_hash(const ttt_st *st, long long *step, uint64_t *hash)
{
    uint64_t v;
    const char *s = ttt_st_meta(st, "step");
    if (step) {
        if (!s) *step = 0;
        else if (parse_u64(s, 10, &v) < 0 || v > (uint64_t)INT64_MAX)
            return ttt_seterr("%s: metadata step '%s' is not a count", ttt_st_path(st), s);
        else *step = (long long)v;
    }
    s = ttt_st_meta(st, "tokenizer_hash");
    if (hash) {
        if (!s) *hash = 0;
        else if (strlen(s) != 16 || parse_u64(s, 16, &v) < 0)
            return ttt_seterr("%s: metadata tokenizer_hash '%s' is not 16 hex digits", ttt_st_path(st), s);
        else *hash = v;
    }
    return 0;
}

/* Reads prefix+name for every model tensor into x (arena layout); the file
 * must hold exactly those (plus `extra` other tensors). */
static int load_tensors(const ttt_st *st, const ttt_model *m, const char *prefix, real *x, int extra)
{
    const char *P = ttt_st_path(st);
    char name[160];
    int nt = ttt_model_num_tensors(m);
    for (int i = 0; i < nt; i++) {
        const ttt_tensor *t = ttt_model_tensor(m, i);
        snprintf(name, sizeof name, "%s%s", prefix, t->name);
        const ttt_st_tensor *s = ttt_st_find(st, name);
        if (!s) return ttt_seterr("%s: tensor %s is missing", P, name);
        int same = s->ndim == t->ndim;
        for (int d = 0; same && d < t->ndim; d++) same = s->shape[d] == t->shape[d];
        if (!same) {
            char a[64] = "", b[64] = "";
            for (int d = 0; d < t->ndim; d++)
                snprintf(a + strlen(a), sizeof a - strlen(a), "%s%d", d ? "," : "", t->shape[d]);
            for (int d = 0; d < s->ndim && d < TTT_ST_MAX_DIMS; d++)
                snprintf(b + strlen(b), sizeof b - strlen(b), "%s%" PRId64, d ? "," : "", s->shape[d]);
            return ttt_seterr("%s: tensor %s: shape [%s], the model needs [%s]", P, name, b, a);
        }
        if (ttt_st_verify_tensor(st, s) < 0) return -1;
        if (ttt_st_read_real(st, s, x + t->offset) < 0) return -1;
    }
    if (ttt_st_count(st) != nt + extra) {
        /* Name one tensor the model does not have. */
        for (int i = 0; i < ttt_st_count(st); i++) {
            const char *n = ttt_st_at(st, i)->name;
            if (extra && (!strcmp(n, "rng") || !strncmp(n, "adam_", 5))) {
                if (!strncmp(n, "adam_m.", 7) || !strncmp(n, "adam_v.", 7)) n += 7;
                else if (!strcmp(n, "rng")) continue;
                if (ttt_model_find(m, n)) continue;
                return ttt_seterr("%s: tensor %s is not part of this model", P, ttt_st_at(st, i)->name);
            }
            if (strncmp(n, prefix, strlen(prefix)) || !ttt_model_find(m, n + strlen(prefix))) {
                return ttt_seterr("%s: tensor %s is not part of this model", P, n);
            }
        }
        return ttt_seterr("%s: %d tensors, the model has %d", P, ttt_st_count(st), nt);
    }
    return 0;
}

int ttt_ckpt_load_weights(const char *path, ttt_model *m, long long *step, uint64_t *tokenizer_hash)
{
    char p[4096];
    if (ttt_ckpt_model_path(path, p, sizeof p) < 0) return -1;
    ttt_st *st = ttt_st_open(p, 0);
    if (!st) return -1;
    int rc = meta_step_hash(st, step, tokenizer_hash);
    if (!rc) rc = load_tensors(st, m, "", ttt_model_params(m), 0);
    ttt_st_close(st);
    return rc;
}

ttt_model *ttt_ckpt_load_model(const char *path, long long *step, uint64_t *tokenizer_hash)
{
    char p[4096];
    if (ttt_ckpt_model_path(path, p, sizeof p) < 0) return NULL;
    ttt_st *st = ttt_st_open(p, 0);
    if (!st) return NULL;
    ttt_config c;
    ttt_model *m = NULL;
    if (config_from_st(st, &c) < 0 || meta_step_hash(st, step, tokenizer_hash) < 0) goto out;
    if (!(m = ttt_model_build(&c))) { ttt_preferr("%s", p); goto out; }
    if (load_tensors(st, m, "", ttt_model_params(m), 0) < 0) { ttt_model_free(m); m = NULL; }
out:
    ttt_st_close(st);
    return m;
}

int ttt_ckpt_load_optimizer(const char *rundir, const ttt_model *m, ttt_opt_state *o, long long want_step)
{
    char p[4096];
    run_file(rundir, "optimizer.safetensors", p, sizeof p);
    ttt_st *st = ttt_st_open(p, 0);
    if (!st) return -1;
    int rc = -1;
    uint64_t v;
    const char *fmt = ttt_st_meta(st, "format");
    if (!fmt || strcmp(fmt, "ttt-optimizer")) { ttt_seterr("%s: not a ttt optimizer state", p); goto out; }
    if (meta_step_hash(st, &o->step, &o->tokenizer_hash) < 0) goto out;
    if (o->step != want_step) {
        ttt_seterr("%s: step %lld does not match the model's step %lld (files from different checkpoints)",
                   p, o->step, want_step);
        goto out;
    }
    if (parse_u64(ttt_st_meta(st, "tokens_seen"), 10, &v) < 0) {
        ttt_seterr("%s: metadata tokens_seen missing or malformed", p);
        goto out;
    }
    o->tokens_seen = v;
    const ttt_st_tensor *r = ttt_st_find(st, "rng");
    if (!r || r->dtype != TTT_ST_U64 || r->numel != 4) { ttt_seterr("%s: tensor rng (U64 [4]) missing", p); goto out; }
    if (ttt_st_verify_tensor(st, r) < 0) goto out;
    memcpy(o->rng.s, ttt_st_data(st, r), sizeof o->rng.s);
    if (load_tensors(st, m, "adam_m.", o->m, ttt_model_num_tensors(m) + 1) < 0) goto out;
    if (load_tensors(st, m, "adam_v.", o->v, ttt_model_num_tensors(m) + 1) < 0) goto out;
    rc = 0;
out:
    ttt_st_close(st);
    return rc;
}
