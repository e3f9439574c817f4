/* shard_dataset.c - the shards matching a glob pattern seen as one token
 * sequence (shard.h). Shards are taken in sorted name order, so
 * PREFIX-train-000000.tok, -000001, ... concatenate in the order ttt-pack
 * wrote them. Every shard must come from the same tokenizer (hash, vocab
 * and eot); the first one sets the reference and an error names the odd
 * one out. Like a single shard, a dataset is not thread-safe.
 */
#include "shard.h"
#include "err.h"   /* ttt_seterr */

#include <glob.h>
#include <stdlib.h>
#include <string.h>

struct ttt_dataset {
    int n;
    ttt_shard **shards;
    uint64_t *start;     /* n + 1 cumulative token offsets */
    uint64_t docs, text_bytes;
};

typedef unsigned long long ull;

/* ttt-pack publishes a set PREFIX-SPLIT-000000..N-1.tok by renaming 000000
 * last, so a set that lacks 000000 or has a gap was cut short (an interrupted
 * ttt-pack): refuse it rather than train on part of the data. Names that do
 * not end in -NNNNNN.tok are not checked. glob() sorts, so the shards of one
 * set are adjacent and in number order. */
static int check_sets(const glob_t *g)
{
    const char *stem = NULL;
    size_t stemlen = 0;
    long expect = 0;
    for (size_t i = 0; i < g->gl_pathc; i++) {
        const char *p = g->gl_pathv[i];
        size_t n = strlen(p);
        const size_t tail = sizeof "-000000.tok" - 1;
        if (n < tail || p[n - tail] != '-' || strcmp(p + n - 4, ".tok") != 0 ||
            strspn(p + n - tail + 1, "0123456789") != 6) {
            stem = NULL;
            continue;
        }
        long num = strtol(p + n - tail + 1, NULL, 10);
        if (!stem || n - tail != stemlen || strncmp(p, stem, stemlen) != 0) {
            stem = p;
            stemlen = n - tail;
            expect = 0;
        }
        if (num != expect)
            return ttt_seterr("%.*s-%06ld.tok: missing from the set (an interrupted ttt-pack?)", (int)stemlen, stem, expect);
        expect++;
    }
    return 0;
}

ttt_dataset *ttt_dataset_open(const char *pattern)
{
    glob_t g;
    int grc = glob(pattern, GLOB_ERR, NULL, &g);
    if (grc == GLOB_NOMATCH) {
        ttt_seterr("%s: no shard matches", pattern);
        return NULL;
    }
    if (grc != 0) {
        ttt_seterr("%s: cannot expand the pattern (%s)", pattern, grc == GLOB_NOSPACE ? "out of memory" : "read error");
        return NULL;
    }
    if (check_sets(&g) < 0) {
        globfree(&g);
        return NULL;
    }
    ttt_dataset *d = calloc(1, sizeof *d);
    if (d) {
        d->shards = calloc(g.gl_pathc, sizeof *d->shards);
        d->start = calloc(g.gl_pathc + 1, sizeof *d->start);
    }
    if (!d || !d->shards || !d->start) {
        ttt_seterr("%s: out of memory", pattern);
        goto fail;
    }
    for (size_t i = 0; i < g.gl_pathc; i++) {
        ttt_shard *s = ttt_shard_open(g.gl_pathv[i]);
        if (!s) goto fail;
        d->shards[d->n++] = s;
        const ttt_shard_info *a = ttt_shard_get_info(d->shards[0]), *b = ttt_shard_get_info(s);
        if (b->tok_hash != a->tok_hash || b->vocab != a->vocab || b->eot != a->eot) {
            ttt_seterr("%s: made with another tokenizer than %s (hash 0x%016llx vocab %u eot %u, expected "
                       "0x%016llx vocab %u eot %u)", g.gl_pathv[i], g.gl_pathv[0], (ull)b->tok_hash, b->vocab,
                       b->eot, (ull)a->tok_hash, a->vocab, a->eot);
            goto fail;
        }
        d->start[i + 1] = d->start[i] + b->ntokens;
        d->docs += b->ndocs;
        d->text_bytes += b->text_bytes;
    }
    globfree(&g);
    return d;
fail:
    globfree(&g);
    ttt_dataset_close(d);
    return NULL;
}

void ttt_dataset_close(ttt_dataset *d)
{
    if (!d) return;
    for (int i = 0; i < d->n; i++) ttt_shard_close(d->shards[i]);
    free(d->shards);
    free(d->start);
    free(d);
}

uint64_t ttt_dataset_tokens(const ttt_dataset *d) { return d->start[d->n]; }
uint64_t ttt_dataset_docs(const ttt_dataset *d) { return d->docs; }
uint64_t ttt_dataset_text_bytes(const ttt_dataset *d) { return d->text_bytes; }
const ttt_shard_info *ttt_dataset_info(const ttt_dataset *d) { return ttt_shard_get_info(d->shards[0]); }
int ttt_dataset_nshards(const ttt_dataset *d) { return d->n; }
ttt_shard *ttt_dataset_shard(ttt_dataset *d, int i) { return i >= 0 && i < d->n ? d->shards[i] : NULL; }

int ttt_dataset_read(ttt_dataset *d, uint64_t start, size_t n, uint32_t *out)
{
    uint64_t total = d->start[d->n];
    if (start > total || n > total - start)
        return ttt_seterr("dataset: tokens %llu..%llu requested, it has %llu", (ull)start, (ull)(start + n), (ull)total);
    /* last shard whose start <= start (skips empty shards) */
    int lo = 0, hi = d->n - 1;
    while (lo < hi) {
        int mid = (lo + hi + 1) / 2;
        if (d->start[mid] <= start) lo = mid; else hi = mid - 1;
    }
    for (int i = lo; n > 0; i++) {
        uint64_t off = start - d->start[i], have = d->start[i + 1] - start;
        size_t take = have < n ? (size_t)have : n;
        if (take && ttt_shard_read(d->shards[i], off, take, out)) return -1;
        out += take;
        start += take;
        n -= take;
    }
    return 0;
}
