/* safetensors.c - safetensors reader/writer with per-tensor XXH3-64
 * checksums in __metadata__ (safetensors.h). */
#include "safetensors.h"
#include "err.h"    /* ttt_seterr */
#include "io.h"     /* ttt_atomic_*, ttt_foreign_format */
#include "json.h"   /* json_parse, json_write_str */

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

/* A header bigger than this is not a checkpoint header but damage. */
#define MAX_HEADER (100u << 20)

static const struct { const char *name; size_t size; } dtypes[TTT_ST_NDTYPES] = {
    [TTT_ST_F64] = { "F64", 8 }, [TTT_ST_F32] = { "F32", 4 }, [TTT_ST_F16] = { "F16", 2 },
    [TTT_ST_BF16] = { "BF16", 2 }, [TTT_ST_I64] = { "I64", 8 }, [TTT_ST_I32] = { "I32", 4 },
    [TTT_ST_I16] = { "I16", 2 }, [TTT_ST_I8] = { "I8", 1 }, [TTT_ST_U64] = { "U64", 8 },
    [TTT_ST_U32] = { "U32", 4 }, [TTT_ST_U16] = { "U16", 2 }, [TTT_ST_U8] = { "U8", 1 },
    [TTT_ST_BOOL] = { "BOOL", 1 },
};

const char *ttt_st_dtype_name(ttt_st_dtype d) { return d < TTT_ST_NDTYPES ? dtypes[d].name : "?"; }
size_t ttt_st_dtype_size(ttt_st_dtype d) { return d < TTT_ST_NDTYPES ? dtypes[d].size : 0; }

static int dtype_parse(const char *s)
{
    for (int i = 0; i < TTT_ST_NDTYPES; i++)
        if (!strcmp(s, dtypes[i].name)) return i;
    return -1;
}

/* ---- reader ---- */

struct ttt_st {
    char *path;
    int fd;
    unsigned char *map;       /* whole file */
    size_t file_size;
    const unsigned char *data;
    uint64_t data_size;
    ttt_st_tensor *t;
    int n;
    char **mkeys, **mvals;
    int nmeta;
};

void ttt_st_close(ttt_st *st)
{
    if (!st) return;
    for (int i = 0; i < st->n; i++) free(st->t[i].name);
    for (int i = 0; i < st->nmeta; i++) { free(st->mkeys[i]); free(st->mvals[i]); }
    free(st->t); free(st->mkeys); free(st->mvals);
    if (st->map && st->map != MAP_FAILED) munmap(st->map, st->file_size);
    if (st->fd >= 0) close(st->fd);
    free(st->path);
    free(st);
}

/* A JSON number that is a non-negative integer below 2^53. */
static int json_uint(const json *j, uint64_t *out)
{
    if (!j || j->type != JSON_NUM || !(j->num >= 0) || j->num > 9007199254740992.0 || j->num != floor(j->num))
        return -1;
    *out = (uint64_t)j->num;
    return 0;
}

static int cmp_begin(const void *a, const void *b)
{
    const ttt_st_tensor *x = *(ttt_st_tensor *const *)a, *y = *(ttt_st_tensor *const *)b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    return x->end < y->end ? -1 : x->end > y->end;
}

static int cmp_name(const void *a, const void *b)
{
    return strcmp((*(ttt_st_tensor *const *)a)->name, (*(ttt_st_tensor *const *)b)->name);
}

static int parse_tensor(ttt_st *st, const char *name, const json *e, ttt_st_tensor *t)
{
    const char *P = st->path;
    if (e->type != JSON_OBJ) return ttt_seterr("%s: tensor %s: header entry is not an object", P, name);
    const char *dt = json_get_str(e, "dtype");
    if (!dt) return ttt_seterr("%s: tensor %s: missing dtype", P, name);
    int d = dtype_parse(dt);
    if (d < 0) return ttt_seterr("%s: tensor %s: unknown dtype '%s'", P, name, dt);
    t->dtype = d;
    const json *sh = json_get(e, "shape");
    if (!sh || sh->type != JSON_ARR) return ttt_seterr("%s: tensor %s: missing shape", P, name);
    if (sh->len > TTT_ST_MAX_DIMS)
        return ttt_seterr("%s: tensor %s: %zu dimensions (at most %d supported)", P, name, sh->len, TTT_ST_MAX_DIMS);
    t->ndim = (int)sh->len;
    uint64_t numel = 1;
    for (int i = 0; i < t->ndim; i++) {
        uint64_t v;
        if (json_uint(&sh->items[i], &v) < 0)
            return ttt_seterr("%s: tensor %s: shape[%d] is not a non-negative integer", P, name, i);
        t->shape[i] = (int64_t)v;
        if (v && numel > UINT64_MAX / v) return ttt_seterr("%s: tensor %s: shape product overflows", P, name);
        numel *= v;
    }
    t->numel = numel;
    const json *off = json_get(e, "data_offsets");
    if (!off || off->type != JSON_ARR || off->len != 2 || json_uint(&off->items[0], &t->begin) < 0 ||
        json_uint(&off->items[1], &t->end) < 0)
        return ttt_seterr("%s: tensor %s: data_offsets must be two non-negative integers", P, name);
    if (t->begin > t->end)
        return ttt_seterr("%s: tensor %s: data_offsets [%" PRIu64 ", %" PRIu64 ") are reversed", P, name, t->begin, t->end);
    if (t->end > st->data_size)
        return ttt_seterr("%s: tensor %s: data_offsets end %" PRIu64 " beyond the data (%" PRIu64 " bytes)",
                          P, name, t->end, st->data_size);
    uint64_t es = dtypes[d].size;
    if (numel > UINT64_MAX / es || numel * es != t->end - t->begin)
        return ttt_seterr("%s: tensor %s: %" PRIu64 " bytes for %" PRIu64 " elements of %s (expected %" PRIu64 ")",
                          P, name, t->end - t->begin, numel, dt, numel > UINT64_MAX / es ? 0 : numel * es);
    return 0;
}

static int parse_header(ttt_st *st, const char *text, size_t len)
{
    const char *P = st->path;
    json *h = json_parse(text, len);
    if (!h) return ttt_preferr("%s: header", P);
    int rc = -1;
    if (h->type != JSON_OBJ) { ttt_seterr("%s: header is not a JSON object", P); goto out; }
    st->t = calloc(h->len ? h->len : 1, sizeof *st->t);
    if (!st->t) { ttt_seterr("%s: out of memory", P); goto out; }
    for (size_t i = 0; i < h->len; i++) {
        const char *k = h->keys[i];
        const json *e = &h->items[i];
        if (!strcmp(k, "__metadata__")) {
            if (e->type != JSON_OBJ) { ttt_seterr("%s: __metadata__ is not an object", P); goto out; }
            if (st->mkeys) { ttt_seterr("%s: __metadata__ appears twice", P); goto out; }
            st->mkeys = calloc(e->len + 1, sizeof *st->mkeys);
            st->mvals = calloc(e->len + 1, sizeof *st->mvals);
            if (!st->mkeys || !st->mvals) { ttt_seterr("%s: out of memory", P); goto out; }
            for (size_t m = 0; m < e->len; m++) {
                if (e->items[m].type != JSON_STR) {
                    ttt_seterr("%s: __metadata__ value of '%s' is not a string", P, e->keys[m]);
                    goto out;
                }
                st->mkeys[st->nmeta] = strdup(e->keys[m]);
                st->mvals[st->nmeta] = strdup(e->items[m].str);
                st->nmeta++;
                if (!st->mkeys[st->nmeta - 1] || !st->mvals[st->nmeta - 1]) { ttt_seterr("%s: out of memory", P); goto out; }
            }
            continue;
        }
        ttt_st_tensor *t = &st->t[st->n];
        if (!(t->name = strdup(k))) { ttt_seterr("%s: out of memory", P); goto out; }
        st->n++;
        if (parse_tensor(st, k, e, t) < 0) goto out;
    }
    /* Names unique; byte ranges non-overlapping and covering the data. */
    ttt_st_tensor **v = malloc((st->n ? st->n : 1) * sizeof *v);
    if (!v) { ttt_seterr("%s: out of memory", P); goto out; }
    for (int i = 0; i < st->n; i++) v[i] = &st->t[i];
    qsort(v, st->n, sizeof *v, cmp_name);
    for (int i = 1; i < st->n; i++)
        if (!strcmp(v[i]->name, v[i - 1]->name)) {
            ttt_seterr("%s: tensor %s appears twice in the header", P, v[i]->name);
            free(v); goto out;
        }
    qsort(v, st->n, sizeof *v, cmp_begin);
    uint64_t pos = 0;
    for (int i = 0; i < st->n; i++) {
        if (v[i]->begin < pos) {
            ttt_seterr("%s: tensor %s: data [%" PRIu64 ", %" PRIu64 ") overlaps tensor %s", P,
                       v[i]->name, v[i]->begin, v[i]->end, v[i - 1]->name);
            free(v); goto out;
        }
        if (v[i]->begin > pos) {
            ttt_seterr("%s: tensor %s: hole of %" PRIu64 " bytes before its data", P, v[i]->name, v[i]->begin - pos);
            free(v); goto out;
        }
        pos = v[i]->end;
    }
    free(v);
    if (pos != st->data_size) {
        ttt_seterr("%s: %" PRIu64 " bytes of data after the last tensor (file has trailing garbage)", P,
                   st->data_size - pos);
        goto out;
    }
    rc = 0;
out:
    json_free(h);
    return rc;
}

ttt_st *ttt_st_open(const char *path, int flags)
{
    ttt_st *st = calloc(1, sizeof *st);
    if (!st) { ttt_seterr("%s: out of memory", path); return NULL; }
    st->fd = -1;
    if (!(st->path = strdup(path))) { free(st); ttt_seterr("%s: out of memory", path); return NULL; }
    st->fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat sb;
    if (st->fd < 0 || fstat(st->fd, &sb) < 0) {
        ttt_seterr("%s: %s", path, strerror(errno));
        goto fail;
    }
    if (!S_ISREG(sb.st_mode)) { ttt_seterr("%s: not a regular file", path); goto fail; }
    st->file_size = (size_t)sb.st_size;
    unsigned char head[16] = { 0 };
    ssize_t got = pread(st->fd, head, sizeof head, 0);
    if (got < 8) { ttt_seterr("%s: too short for safetensors (%zu bytes)", path, st->file_size); goto fail; }
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = hlen << 8 | head[i];
    if (hlen > MAX_HEADER || hlen > st->file_size - 8 || hlen < 2 || head[8] != '{') {
        const char *f = ttt_foreign_format(head, (size_t)got);
        if (f && strcmp(f, "safetensors")) ttt_seterr("%s: this is a %s file, not safetensors", path, f);
        else if (hlen > st->file_size - 8)
            ttt_seterr("%s: header length %" PRIu64 " exceeds the file size (%zu bytes): truncated or not safetensors",
                       path, hlen, st->file_size);
        else ttt_seterr("%s: not a safetensors file (bad header length %" PRIu64 ")", path, hlen);
        goto fail;
    }
    st->map = mmap(NULL, st->file_size, PROT_READ, MAP_PRIVATE, st->fd, 0);
    if (st->map == MAP_FAILED) { ttt_seterr("%s: mmap: %s", path, strerror(errno)); goto fail; }
    st->data = st->map + 8 + hlen;
    st->data_size = st->file_size - 8 - hlen;
    if (parse_header(st, (const char *)st->map + 8, hlen) < 0) goto fail;
    if (flags & TTT_ST_VERIFY)
        for (int i = 0; i < st->n; i++)
            if (ttt_st_verify_tensor(st, &st->t[i]) < 0) goto fail;
    return st;
fail:
    ttt_st_close(st);
    return NULL;
}

const char *ttt_st_path(const ttt_st *st) { return st->path; }
int ttt_st_count(const ttt_st *st) { return st->n; }
const ttt_st_tensor *ttt_st_at(const ttt_st *st, int i) { return i >= 0 && i < st->n ? &st->t[i] : NULL; }
int ttt_st_meta_count(const ttt_st *st) { return st->nmeta; }
const char *ttt_st_meta_key(const ttt_st *st, int i) { return i >= 0 && i < st->nmeta ? st->mkeys[i] : NULL; }

const ttt_st_tensor *ttt_st_find(const ttt_st *st, const char *name)
{
    for (int i = 0; i < st->n; i++)
        if (!strcmp(st->t[i].name, name)) return &st->t[i];
    return NULL;
}

const char *ttt_st_meta(const ttt_st *st, const char *key)
{
    for (int i = 0; i < st->nmeta; i++)
        if (!strcmp(st->mkeys[i], key)) return st->mvals[i];
    return NULL;
}

const void *ttt_st_data(const ttt_st *st, const ttt_st_tensor *t) { return st->data + t->begin; }

int ttt_st_verify_tensor(const ttt_st *st, const ttt_st_tensor *t)
{
    size_t kl = strlen(t->name) + 8;
    char *key = malloc(kl);
    if (!key) return ttt_seterr("%s: out of memory", st->path);
    snprintf(key, kl, "xxh3.%s", t->name);
    const char *want = ttt_st_meta(st, key);
    free(key);
    if (!want) return 0;
    char *end;
    errno = 0;
    unsigned long long stored = strtoull(want, &end, 16);
    if (strlen(want) != 16 || *end || errno)
        return ttt_seterr("%s: tensor %s: malformed checksum '%s' in __metadata__", st->path, t->name, want);
    uint64_t got = XXH3_64bits(st->data + t->begin, t->end - t->begin);
    if (got != stored)
        return ttt_seterr("%s: tensor %s: checksum mismatch (stored %016llx, computed %016" PRIx64 "): the file is damaged",
                          st->path, t->name, stored, got);
    return 0;
}

static double bf16_to_double(uint16_t h)
{
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static double f16_to_double(uint16_t h)
{
    int s = h >> 15, e = (h >> 10) & 31, m = h & 1023;
    double v;
    if (e == 0) v = ldexp(m, -24);
    else if (e == 31) v = m ? NAN : INFINITY;
    else v = ldexp(m + 1024, e - 25);
    return s ? -v : v;
}

/* Element i of a float tensor as double (unaligned-safe). */
static int load_elem(const unsigned char *p, ttt_st_dtype d, uint64_t i, double *out)
{
    switch (d) {
    case TTT_ST_F64: { double v; memcpy(&v, p + 8 * i, 8); *out = v; return 0; }
    case TTT_ST_F32: { float v; memcpy(&v, p + 4 * i, 4); *out = v; return 0; }
    case TTT_ST_BF16: { uint16_t v; memcpy(&v, p + 2 * i, 2); *out = bf16_to_double(v); return 0; }
    case TTT_ST_F16: { uint16_t v; memcpy(&v, p + 2 * i, 2); *out = f16_to_double(v); return 0; }
    default: return -1;
    }
}

int ttt_st_read_f32(const ttt_st *st, const ttt_st_tensor *t, float *out)
{
    const unsigned char *p = st->data + t->begin;
    if (t->dtype == TTT_ST_F32) { memcpy(out, p, t->numel * 4); return 0; }
    for (uint64_t i = 0; i < t->numel; i++) {
        double v;
        if (load_elem(p, t->dtype, i, &v) < 0)
            return ttt_seterr("%s: tensor %s: dtype %s is not a float type", st->path, t->name, ttt_st_dtype_name(t->dtype));
        out[i] = (float)v;
    }
    return 0;
}

int ttt_st_read_f64(const ttt_st *st, const ttt_st_tensor *t, double *out)
{
    const unsigned char *p = st->data + t->begin;
    if (t->dtype == TTT_ST_F64) { memcpy(out, p, t->numel * 8); return 0; }
    for (uint64_t i = 0; i < t->numel; i++)
        if (load_elem(p, t->dtype, i, &out[i]) < 0)
            return ttt_seterr("%s: tensor %s: dtype %s is not a float type", st->path, t->name, ttt_st_dtype_name(t->dtype));
    return 0;
}

/* ---- writer ---- */

typedef struct {
    char *name;
    ttt_st_dtype dtype;
    int ndim;
    int64_t shape[TTT_ST_MAX_DIMS];
    uint64_t nbytes;
    const void *data;
} wtensor;

struct ttt_st_writer {
    wtensor *t;
    int n, cap;
    char **mkeys, **mvals;
    int nmeta, mcap;
};

ttt_st_writer *ttt_st_writer_new(void)
{
    ttt_st_writer *w = calloc(1, sizeof *w);
    if (!w) ttt_seterr("out of memory");
    return w;
}

void ttt_st_writer_free(ttt_st_writer *w)
{
    if (!w) return;
    for (int i = 0; i < w->n; i++) free(w->t[i].name);
    for (int i = 0; i < w->nmeta; i++) { free(w->mkeys[i]); free(w->mvals[i]); }
    free(w->t); free(w->mkeys); free(w->mvals);
    free(w);
}

int ttt_st_add(ttt_st_writer *w, const char *name, ttt_st_dtype dtype, int ndim, const int64_t *shape,
               const void *data)
{
    if (dtype >= TTT_ST_NDTYPES) return ttt_seterr("tensor %s: bad dtype", name);
    if (ndim < 0 || ndim > TTT_ST_MAX_DIMS) return ttt_seterr("tensor %s: %d dimensions", name, ndim);
    if (!strcmp(name, "__metadata__")) return ttt_seterr("tensor name __metadata__ is reserved");
    for (int i = 0; i < w->n; i++)
        if (!strcmp(w->t[i].name, name)) return ttt_seterr("tensor %s added twice", name);
    uint64_t nb = dtypes[dtype].size;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0) return ttt_seterr("tensor %s: negative dimension", name);
        if (shape[i] && nb > UINT64_MAX / (uint64_t)shape[i]) return ttt_seterr("tensor %s: too large", name);
        nb *= (uint64_t)shape[i];
    }
    if (w->n == w->cap) {
        int nc = w->cap ? 2 * w->cap : 64;
        wtensor *t = realloc(w->t, nc * sizeof *t);
        if (!t) return ttt_seterr("out of memory");
        w->t = t; w->cap = nc;
    }
    wtensor *t = &w->t[w->n];
    memset(t, 0, sizeof *t);
    if (!(t->name = strdup(name))) return ttt_seterr("out of memory");
    t->dtype = dtype; t->ndim = ndim; t->nbytes = nb; t->data = data;
    for (int i = 0; i < ndim; i++) t->shape[i] = shape[i];
    w->n++;
    return 0;
}

int ttt_st_set_meta(ttt_st_writer *w, const char *key, const char *value)
{
    for (int i = 0; i < w->nmeta; i++)
        if (!strcmp(w->mkeys[i], key)) {
            char *v = strdup(value);
            if (!v) return ttt_seterr("out of memory");
            free(w->mvals[i]); w->mvals[i] = v;
            return 0;
        }
    if (w->nmeta == w->mcap) {
        int nc = w->mcap ? 2 * w->mcap : 16;
        char **k = realloc(w->mkeys, nc * sizeof *k);
        if (!k) return ttt_seterr("out of memory");
        w->mkeys = k;
        char **v = realloc(w->mvals, nc * sizeof *v);
        if (!v) return ttt_seterr("out of memory");
        w->mvals = v; w->mcap = nc;
    }
    w->mkeys[w->nmeta] = strdup(key);
    w->mvals[w->nmeta] = strdup(value);
    if (!w->mkeys[w->nmeta] || !w->mvals[w->nmeta]) {
        free(w->mkeys[w->nmeta]); free(w->mvals[w->nmeta]);
        return ttt_seterr("out of memory");
    }
    w->nmeta++;
    return 0;
}

int ttt_st_write(ttt_st_writer *w, const char *path)
{
    /* Checksums first: they go into the header. */
    for (int i = 0; i < w->n; i++) {
        char key[16 + 1024], hex[17];
        if (strlen(w->t[i].name) > 1000) return ttt_seterr("%s: tensor name too long", path);
        snprintf(key, sizeof key, "xxh3.%s", w->t[i].name);
        snprintf(hex, sizeof hex, "%016" PRIx64, (uint64_t)XXH3_64bits(w->t[i].data, w->t[i].nbytes));
        if (ttt_st_set_meta(w, key, hex) < 0) return ttt_preferr("%s", path);
    }
    char *hdr = NULL;
    size_t hlen = 0;
    FILE *m = open_memstream(&hdr, &hlen);
    if (!m) return ttt_seterr("%s: out of memory", path);
    fputc('{', m);
    if (w->nmeta) {
        fputs("\"__metadata__\":{", m);
        for (int i = 0; i < w->nmeta; i++) {
            if (i) fputc(',', m);
            json_write_str(m, w->mkeys[i], strlen(w->mkeys[i]));
            fputc(':', m);
            json_write_str(m, w->mvals[i], strlen(w->mvals[i]));
        }
        fputc('}', m);
    }
    uint64_t off = 0;
    for (int i = 0; i < w->n; i++) {
        const wtensor *t = &w->t[i];
        if (i || w->nmeta) fputc(',', m);
        json_write_str(m, t->name, strlen(t->name));
        fprintf(m, ":{\"dtype\":\"%s\",\"shape\":[", dtypes[t->dtype].name);
        for (int d = 0; d < t->ndim; d++) fprintf(m, "%s%" PRId64, d ? "," : "", t->shape[d]);
        fprintf(m, "],\"data_offsets\":[%" PRIu64 ",%" PRIu64 "]}", off, off + t->nbytes);
        off += t->nbytes;
    }
    fputc('}', m);
    /* Pad with spaces so the data starts 8-byte aligned. */
    while ((ftell(m) + 8) % 8) fputc(' ', m);
    if (fclose(m) != 0 || !hdr) { free(hdr); return ttt_seterr("%s: out of memory", path); }

    ttt_atomic a;
    if (ttt_atomic_open(&a, path) < 0) { free(hdr); return -1; }
    unsigned char le[8];
    for (int i = 0; i < 8; i++) le[i] = (unsigned char)((uint64_t)hlen >> (8 * i));
    int rc = ttt_fwrite(a.f, le, 8, path);
    if (!rc) rc = ttt_fwrite(a.f, hdr, hlen, path);
    free(hdr);
    for (int i = 0; i < w->n && !rc; i++)
        if (w->t[i].nbytes) rc = ttt_fwrite(a.f, w->t[i].data, w->t[i].nbytes, path);
    if (rc) { ttt_atomic_abort(&a); return -1; }
    return ttt_atomic_commit(&a);
}
