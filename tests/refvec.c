/* refvec.c - TTREF1 reader (refvec.h). Treats the files as untrusted. */
#include "refvec.h"
#include "../lib/err.h"
#include "../lib/io.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int refvec_load(refvec_case *c, const char *dir)
{
    memset(c, 0, sizeof *c);
    snprintf(c->dir, sizeof c->dir, "%s", dir);
    char path[1200];
    char *buf;
    size_t len;
    snprintf(path, sizeof path, "%s/meta.txt", dir);
    if (ttt_read_file(path, &c->meta, &len)) return -1;
    snprintf(path, sizeof path, "%s/tensors.bin", dir);
    if (ttt_read_file(path, &buf, &len)) return -1;
    if (len < 7 || memcmp(buf, "TTREF1\n", 7)) { free(buf); return ttt_seterr("%s: not a TTREF1 file", path); }
    size_t pos = 7;
    int cap = 0;
    while (pos < len) {
        char *nl = memchr(buf + pos, '\n', len - pos);
        if (!nl) { free(buf); return ttt_seterr("%s: truncated header line", path); }
        *nl = 0;
        if (c->n == cap) {
            cap = cap ? cap * 2 : 64;
            c->t = realloc(c->t, cap * sizeof *c->t);
        }
        refvec_tensor *t = &c->t[c->n];
        memset(t, 0, sizeof *t);
        char dtype[8];
        int off = 0;
        if (sscanf(buf + pos, "%127s %7s %d%n", t->name, dtype, &t->ndim, &off) != 3 || t->ndim < 0 || t->ndim > 8) {
            free(buf); return ttt_seterr("%s: bad header line '%s'", path, buf + pos);
        }
        char *q = buf + pos + off;
        t->numel = 1;
        for (int d = 0; d < t->ndim; d++) {
            char *end;
            t->shape[d] = strtoll(q, &end, 10);
            if (end == q || t->shape[d] < 0) { free(buf); return ttt_seterr("%s: bad shape for %s", path, t->name); }
            q = end;
            t->numel *= (size_t)t->shape[d];
        }
        t->is_int = !strcmp(dtype, "i64");
        pos = (size_t)(nl - buf) + 1;
        if (t->numel > (len - pos) / 8) { free(buf); return ttt_seterr("%s: %s: data truncated", path, t->name); }
        t->f = malloc(t->numel * sizeof(double) + 1);
        if (t->is_int) {
            t->i = malloc(t->numel * sizeof(int64_t) + 1);
            memcpy(t->i, buf + pos, t->numel * 8);
            for (size_t k = 0; k < t->numel; k++) t->f[k] = (double)t->i[k];
        } else {
            memcpy(t->f, buf + pos, t->numel * 8);
        }
        pos += t->numel * 8;
        c->n++;
    }
    free(buf);
    return 0;
}

void refvec_free(refvec_case *c)
{
    for (int i = 0; i < c->n; i++) { free(c->t[i].f); free(c->t[i].i); }
    free(c->t);
    free(c->meta);
    memset(c, 0, sizeof *c);
}

const refvec_tensor *refvec_get(const refvec_case *c, const char *name)
{
    for (int i = 0; i < c->n; i++)
        if (!strcmp(c->t[i].name, name)) return &c->t[i];
    return NULL;
}

int refvec_meta(const refvec_case *c, const char *key, char *buf, size_t n)
{
    size_t kl = strlen(key);
    for (const char *p = c->meta; p && *p;) {
        const char *eol = strchr(p, '\n');
        size_t ll = eol ? (size_t)(eol - p) : strlen(p);
        if (ll > kl + 2 && !strncmp(p, key, kl) && !strncmp(p + kl, " = ", 3)) {
            size_t vl = ll - kl - 3;
            if (vl >= n) vl = n - 1;
            memcpy(buf, p + kl + 3, vl);
            buf[vl] = 0;
            return 0;
        }
        p = eol ? eol + 1 : NULL;
    }
    return -1;
}

#include <math.h>

double refvec_relerr(const refvec_tensor *t, const real *ours)
{
    double maxref = 1e-30, maxdiff = 0;
    for (size_t k = 0; k < t->numel; k++) {
        double r = fabs(t->f[k]);
        if (r > maxref) maxref = r;
        double d = fabs((double)ours[k] - t->f[k]);
        if (!(d <= maxdiff)) maxdiff = d;   /* NaN propagates as a failure */
    }
    return maxdiff / maxref;
}

int refvec_check(refvec_tally *tl, const refvec_case *c, const char *name, const real *ours, size_t numel)
{
    const refvec_tensor *t = refvec_get(c, name);
    if (!t) return 0;
    tl->checked++;
    if (t->numel != numel) {
        tl->failed++;
        if (tl->log) fprintf(tl->log, "  %s: size mismatch (ours %zu, reference %zu)\n", name, numel, t->numel);
        return 1;
    }
    double e = refvec_relerr(t, ours);
    if (!(e <= tl->worst)) {
        tl->worst = e;
        snprintf(tl->worst_name, sizeof tl->worst_name, "%s", name);
    }
    if (!(e <= tl->tol)) {
        tl->failed++;
        if (tl->log) fprintf(tl->log, "  %s: relative error %.3g > %.1g\n", name, e, tl->tol);
    }
    return 1;
}
