/* refcheck - compares libttt with the reference vectors (TTREF1 cases made by
 * the official PyTorch code, ../shared/refvectors/README.md).
 *
 *   tests/refcheck [-t TOL] [-v] CASE_DIR...
 *
 * Each case is configured entirely from its meta.txt (kind, config JSON, B,
 * L or L_total, prefill_len_P), so cases of any shape run. kind = layer goes
 * to refcheck_layer() (refcheck_layer.c); model and decode cases are here.
 * One line per case ("ok" or "FAIL" plus indented details); exit 0 if all
 * pass, 1 if any fails or cannot be read, 2 on usage errors. The tolerance
 * is max|ours - ref| / max|ref| per tensor: 1e-9 for the float64 build,
 * 1e-4 for float32 (tests/refcheck-f32, same source), or -t.
 */
#include "refcheck.h"
#include "../lib/model.h"     /* ttt_model_*, ttt_decode_* */
#include "../lib/err.h"       /* ttt_errmsg */
#include "../lib/json.h"      /* json_parse */

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int verbose;

/* Weak so that refcheck links in a tree without refcheck_layer.c: layer
 * cases then fail with a message instead of the build breaking. */
extern int refcheck_layer(const refvec_case *c, refvec_tally *tl) __attribute__((weak));

/* refvec_check plus a per-tensor line under -v. */
static void check(refvec_tally *tl, const refvec_case *c, const char *name, const real *ours, size_t numel)
{
    if (refvec_check(tl, c, name, ours, numel) && verbose) {
        const refvec_tensor *t = refvec_get(c, name);
        if (t->numel == numel && tl->log)
            fprintf(tl->log, "    %-64s %.3g\n", name, refvec_relerr(t, ours));
    }
}

static void fail(refvec_tally *tl, const char *fmt, const char *what)
{
    tl->checked++;
    tl->failed++;
    if (tl->log) {
        fputs("  ", tl->log);
        fprintf(tl->log, fmt, what);
        fputc('\n', tl->log);
    }
}

static int meta_int(const refvec_case *c, const char *key, int *out)
{
    char buf[64], *end;
    if (refvec_meta(c, key, buf, sizeof buf)) return -1;
    long v = strtol(buf, &end, 10);
    if (end == buf || v < 0 || v > 1 << 30) return ttt_seterr("meta.txt: bad %s '%s'", key, buf);
    *out = (int)v;
    return 0;
}

/* Model from the case's config line, with every param.* loaded (and every
 * tensor of ours present in the case, same shape). */
static ttt_model *load_model(const refvec_case *c)
{
    static char line[65536];
    if (refvec_meta(c, "config", line, sizeof line)) {
        ttt_seterr("meta.txt: no config line");
        return NULL;
    }
    json *j = json_parse(line, strlen(line));
    if (!j) {
        ttt_preferr("meta.txt: config");
        return NULL;
    }
    ttt_config cfg;
    int rc = ttt_config_from_json(&cfg, j);
    json_free(j);
    if (rc) {
        ttt_preferr("meta.txt");
        return NULL;
    }
    ttt_model *m = ttt_model_build(&cfg);
    if (!m) return NULL;
    real *p = ttt_model_params(m);
    for (int i = 0; i < ttt_model_num_tensors(m); i++) {
        const ttt_tensor *t = ttt_model_tensor(m, i);
        char name[160];
        snprintf(name, sizeof name, "param.%s", t->name);
        const refvec_tensor *r = refvec_get(c, name);
        int same = r && r->ndim == t->ndim;
        for (int d = 0; same && d < t->ndim; d++) same = r->shape[d] == t->shape[d];
        if (!same) {
            ttt_seterr("%s: %s in the case", name, r ? "has another shape" : "missing");
            ttt_model_free(m);
            return NULL;
        }
        for (size_t k = 0; k < t->numel; k++) p[t->offset + k] = (real)r->f[k];
    }
    /* The reverse: a parameter of the reference we do not have is a table bug. */
    for (int i = 0; i < c->n; i++)
        if (strncmp(c->t[i].name, "param.", 6) == 0 && !ttt_model_find(m, c->t[i].name + 6)) {
            ttt_seterr("%s: not a parameter of this implementation", c->t[i].name);
            ttt_model_free(m);
            return NULL;
        }
    return m;
}

static int32_t *load_ids(const refvec_case *c, int B, int L)
{
    const refvec_tensor *t = refvec_get(c, "input.input_ids");
    if (!t || !t->i || t->numel != (size_t)B * L) {
        ttt_seterr("input.input_ids: missing or not [B,L] = [%d,%d] i64", B, L);
        return NULL;
    }
    int32_t *ids = malloc(t->numel * sizeof *ids);
    if (!ids) { ttt_seterr("out of memory"); return NULL; }
    for (size_t k = 0; k < t->numel; k++) ids[k] = (int32_t)t->i[k];
    return ids;
}

/* ---- model cases ---- */

int refcheck_model(const refvec_case *c, refvec_tally *tl)
{
    int B, L;
    if (meta_int(c, "B", &B) || (meta_int(c, "L", &L) && meta_int(c, "L_total", &L)))
        return ttt_seterr("meta.txt: needs B and L");
    ttt_model *m = load_model(c);
    if (!m) return -1;
    int32_t *ids = load_ids(c, B, L), *tg = malloc((size_t)B * L * sizeof *tg);
    if (!ids || !tg) { free(ids); free(tg); ttt_model_free(m); return -1; }
    /* next-token targets; the last position has none */
    for (int b = 0; b < B; b++)
        for (int t = 0; t < L; t++)
            tg[b * L + t] = t + 1 < L ? ids[b * L + t + 1] : -1;
    const ttt_config *cfg = ttt_model_config(m);
    size_t NC = (size_t)B * L * cfg->hidden_size;
    double loss;
    int rc = -1;
    if (ttt_model_forward(m, ids, tg, B, L, &loss)) goto out;
    check(tl, c, "output.logits", ttt_model_logits(m), NC / cfg->hidden_size * cfg->vocab_size);
    real lr = (real)loss;
    check(tl, c, "output.loss", &lr, 1);
    for (int i = 0; i < c->n; i++) {
        const char *name = c->t[i].name;
        if (strncmp(name, "inter.", 6) != 0) continue;
        const real *ours = ttt_model_inter(m, name);
        if (ours) check(tl, c, name, ours, NC);
        else if (verbose && tl->log) fprintf(tl->log, "    %-64s (not kept here, skipped)\n", name);
    }
    ttt_model_zero_grad(m);
    if (ttt_model_backward(m)) goto out;
    const real *g = ttt_model_grads(m);
    for (int i = 0; i < ttt_model_num_tensors(m); i++) {
        const ttt_tensor *t = ttt_model_tensor(m, i);
        char name[160];
        snprintf(name, sizeof name, "grad.param.%s", t->name);
        if (!refvec_get(c, name)) fail(tl, "%s: missing in the case", name);
        else check(tl, c, name, g + t->offset, t->numel);
    }
    rc = 0;
out:
    free(ids);
    free(tg);
    ttt_model_free(m);
    return rc;
}

/* ---- decode cases ---- */

/* Compares every cache.<when>.* tensor of the case with our decode state. */
static void check_cache(refvec_tally *tl, const refvec_case *c, const ttt_decode *s, const char *when)
{
    char prefix[64];
    int np = snprintf(prefix, sizeof prefix, "cache.%s.", when);
    for (int i = 0; i < c->n; i++) {
        const refvec_tensor *r = &c->t[i];
        if (strncmp(r->name, prefix, np) != 0) continue;
        int ndim, shape[4];
        const real *ours = ttt_decode_tensor(s, r->name + np, &ndim, shape);
        if (!ours) { fail(tl, "%s: no such decode state here", r->name); continue; }
        int same = ndim == r->ndim;
        for (int d = 0; same && d < ndim; d++) same = shape[d] == r->shape[d];
        if (!same) { fail(tl, "%s: shape differs", r->name); continue; }
        check(tl, c, r->name, ours, r->numel);
    }
}

int refcheck_decode(const refvec_case *c, refvec_tally *tl)
{
    int B, L, P;
    if (meta_int(c, "B", &B) || (meta_int(c, "L_total", &L) && meta_int(c, "L", &L)) ||
        meta_int(c, "prefill_len_P", &P))
        return ttt_seterr("meta.txt: needs B, L_total and prefill_len_P");
    if (P > L) return ttt_seterr("meta.txt: prefill_len_P %d > L_total %d", P, L);
    ttt_model *m = load_model(c);
    if (!m) return -1;
    int V = ttt_model_config(m)->vocab_size;
    int32_t *ids = load_ids(c, B, L), *chunk = malloc((size_t)B * (L + 1) * sizeof *chunk);
    real *pl = malloc(((size_t)B * P + 1) * V * sizeof *pl);
    real *sl = malloc(((size_t)B * (L - P) + 1) * V * sizeof *sl);
    real *one = malloc((size_t)B * V * sizeof *one);
    ttt_decode *s = NULL;
    int rc = -1;
    if (!ids || !chunk || !pl || !sl || !one) goto out;

    if (ttt_model_forward(m, ids, NULL, B, L, NULL)) goto out;
    check(tl, c, "output.full_logits", ttt_model_logits(m), (size_t)B * L * V);

    if (!(s = ttt_decode_new(m, B))) goto out;
    if (P > 0) {
        for (int b = 0; b < B; b++) memcpy(chunk + (size_t)b * P, ids + (size_t)b * L, P * sizeof *ids);
        if (ttt_decode_prefill(m, s, chunk, P, pl)) goto out;
        check(tl, c, "decode.prefill_logits", pl, (size_t)B * P * V);
        check_cache(tl, c, s, "after_prefill");
    }
    /* teacher forcing: token t of every sequence, logits into [B, L-P, V] */
    for (int t = P; t < L; t++) {
        for (int b = 0; b < B; b++) chunk[b] = ids[(size_t)b * L + t];
        if (ttt_decode_step(m, s, chunk, one)) goto out;
        for (int b = 0; b < B; b++)
            memcpy(sl + ((size_t)b * (L - P) + (t - P)) * V, one + (size_t)b * V, V * sizeof *one);
    }
    if (L > P) check(tl, c, "decode.step_logits", sl, (size_t)B * (L - P) * V);
    if (ttt_decode_position(s) != L) fail(tl, "%s: decode position is wrong at the end", "decode");
    check_cache(tl, c, s, "final");
    rc = 0;
out:
    if (rc && !ttt_errmsg()[0]) ttt_seterr("out of memory");
    ttt_decode_free(s);
    free(ids);
    free(chunk);
    free(pl);
    free(sl);
    free(one);
    ttt_model_free(m);
    return rc;
}

/* ---- main ---- */

static void usage(FILE *f)
{
    fprintf(f, "usage: refcheck [-t TOL] [-v] CASE_DIR...\n"
               "  -t TOL  max relative error per tensor (default %g for " REAL_NAME ")\n"
               "  -v      print every compared tensor's error\n",
#ifdef TTT_F64
            1e-9
#else
            1e-4
#endif
    );
}

int main(int argc, char **argv)
{
    double tol = sizeof(real) == 8 ? 1e-9 : 1e-4;
    int opt;
    while ((opt = getopt(argc, argv, "t:vh")) != -1) {
        switch (opt) {
        case 't': {
            char *end;
            tol = strtod(optarg, &end);
            if (end == optarg || *end || !(tol >= 0)) {
                fprintf(stderr, "refcheck: -t: not a tolerance: '%s'\n", optarg);
                return 2;
            }
            break;
        }
        case 'v': verbose = 1; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind >= argc) {
        usage(stderr);
        return 2;
    }
    int nfail = 0;
    for (int a = optind; a < argc; a++) {
        refvec_case c;
        memset(&c, 0, sizeof c);
        char name[256];
        const char *dir = argv[a];
        size_t dl = strlen(dir);
        while (dl > 1 && dir[dl - 1] == '/') dl--;
        const char *base = dir;
        for (size_t i = 0; i < dl; i++) if (dir[i] == '/' && i + 1 < dl) base = dir + i + 1;
        snprintf(name, sizeof name, "%.*s", (int)(dl - (base - dir)), base);
        if (refvec_load(&c, dir)) {
            printf("FAIL %s  (cannot read the case)\n  %s\n", name, ttt_errmsg());
            nfail++;
            continue;
        }
        char kind[32] = "";
        refvec_meta(&c, "kind", kind, sizeof kind);
        refvec_tally tl = { .tol = tol };
        /* details are collected first so they print under the case line */
        char *detail = NULL;
        size_t dn = 0;
        tl.log = open_memstream(&detail, &dn);
        ttt_seterr("%s", "");
        int rc;
        if (strcmp(kind, "layer") == 0)
            rc = refcheck_layer ? refcheck_layer(&c, &tl)
                                : ttt_seterr("layer cases: this refcheck was built without refcheck_layer.c");
        else if (strcmp(kind, "model") == 0) rc = refcheck_model(&c, &tl);
        else if (strcmp(kind, "decode") == 0) rc = refcheck_decode(&c, &tl);
        else rc = ttt_seterr("meta.txt: unknown kind '%s' (expected layer, model or decode)", kind);
        fclose(tl.log);
        if (rc || tl.failed || tl.checked == 0) {
            nfail++;
            printf("FAIL %-30s (%d tensors, %d over %.1g)\n", name, tl.checked, tl.failed, tol);
            if (rc) printf("  %s\n", ttt_errmsg());
            else if (tl.checked == 0) printf("  nothing compared\n");
        } else {
            printf("ok   %-30s (%d tensors, worst %.2g %s)\n", name, tl.checked, tl.worst, tl.worst_name);
        }
        if (detail) fputs(detail, stdout);
        free(detail);
        fflush(stdout);
        refvec_free(&c);
    }
    return nfail ? 1 : 0;
}
