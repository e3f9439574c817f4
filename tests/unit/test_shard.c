/* test_shard.c - shard writer/reader/dataset: round trips of random
 * documents read back through random windows (inside blocks, across
 * blocks, across shards), 2- and 4-byte tokens, determinism, and damage:
 * every flipped byte and every truncation of a shard must be rejected, and
 * a dataset must refuse a shard made with another tokenizer.
 */
#include "check.h"
#include "shard.h"          /* shard API under test */
#include "shard_format.h"   /* layout constants, to aim corruptions */
#include "err.h"            /* ttt_errmsg */

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static uint64_t rnd(void)
{
    uint64_t x = rng_state;
    x ^= x << 13; x ^= x >> 7; x ^= x << 17;
    return rng_state = x;
}

static char dir[] = "/tmp/test_shard.XXXXXX";

typedef struct {
    uint32_t *tok;         /* all tokens, concatenated */
    uint64_t n, cap;
    uint64_t *doc_start;   /* ndocs + 1 */
    uint64_t *doc_bytes;
    uint64_t ndocs;
} corpus;

/* Random documents ending with eot; lengths from 1 to maxlen. */
static void make_corpus(corpus *c, uint64_t ndocs, uint32_t vocab, uint32_t eot, uint64_t maxlen)
{
    memset(c, 0, sizeof *c);
    c->ndocs = ndocs;
    c->doc_start = calloc(ndocs + 1, sizeof *c->doc_start);
    c->doc_bytes = calloc(ndocs, sizeof *c->doc_bytes);
    for (uint64_t d = 0; d < ndocs; d++) {
        uint64_t len = 1 + rnd() % maxlen;
        c->doc_start[d] = c->n;
        c->doc_bytes[d] = len * 3 + rnd() % 7;
        if (c->n + len > c->cap) {
            c->cap = (c->n + len) * 2;
            c->tok = realloc(c->tok, c->cap * sizeof *c->tok);
        }
        for (uint64_t i = 0; i + 1 < len; i++) {
            uint32_t t = (uint32_t)(rnd() % vocab);
            c->tok[c->n++] = t == eot ? 0 : t;
        }
        c->tok[c->n++] = eot;
    }
    c->doc_start[ndocs] = c->n;
}

static void free_corpus(corpus *c) { free(c->tok); free(c->doc_start); free(c->doc_bytes); }

/* Writes docs [d0, d1) of c into path. */
static int write_shard(const char *path, const corpus *c, uint64_t d0, uint64_t d1, uint32_t vocab, uint32_t eot,
                       uint64_t hash, uint32_t block_tokens)
{
    ttt_shard_params p = { .vocab = vocab, .tok_hash = hash, .eot = eot, .level = 6, .block_tokens = block_tokens };
    ttt_shard_writer *w = ttt_shard_writer_open(path, &p);
    if (!w) { fprintf(stderr, "%s\n", ttt_errmsg()); return -1; }
    for (uint64_t d = d0; d < d1; d++) {
        uint64_t s = c->doc_start[d], n = c->doc_start[d + 1] - s;
        if (ttt_shard_writer_add_doc(w, c->tok + s, n, c->doc_bytes[d])) {
            fprintf(stderr, "%s\n", ttt_errmsg());
            ttt_shard_writer_abort(w);
            return -1;
        }
    }
    if (ttt_shard_writer_close(w)) { fprintf(stderr, "%s\n", ttt_errmsg()); return -1; }
    return 0;
}

static void test_roundtrip(uint32_t vocab, uint32_t eot, int width)
{
    corpus c;
    make_corpus(&c, 200, vocab, eot, 300);
    char path[256];
    snprintf(path, sizeof path, "%s/rt-%u.tok", dir, vocab);
    CHECK(write_shard(path, &c, 0, c.ndocs, vocab, eot, 0x1234, 97) == 0);
    ttt_shard *s = ttt_shard_open(path);
    CHECK(s != NULL);
    if (!s) { fprintf(stderr, "%s\n", ttt_errmsg()); free_corpus(&c); return; }
    const ttt_shard_info *in = ttt_shard_get_info(s);
    CHECK(in->token_width == width);
    CHECK(in->vocab == vocab && in->eot == eot && in->tok_hash == 0x1234);
    CHECK(in->ntokens == c.n);
    CHECK(in->ndocs == c.ndocs);
    CHECK(in->nblocks == (c.n + 96) / 97);
    uint64_t tb = 0;
    for (uint64_t d = 0; d < c.ndocs; d++) tb += c.doc_bytes[d];
    CHECK(in->text_bytes == tb);
    CHECK(ttt_shard_verify(s) == 0);

    /* whole shard, then random windows (many cross block boundaries) */
    uint32_t *buf = malloc(c.n * sizeof *buf);
    CHECK(ttt_shard_read(s, 0, c.n, buf) == 0 && memcmp(buf, c.tok, c.n * 4) == 0);
    int bad = 0;
    for (int k = 0; k < 2000; k++) {
        uint64_t len = rnd() % 400, start = rnd() % (c.n - len + 1);
        if (ttt_shard_read(s, start, len, buf) || memcmp(buf, c.tok + start, len * 4)) bad++;
    }
    CHECK(bad == 0);
    /* documents */
    bad = 0;
    for (uint64_t d = 0; d < c.ndocs; d++) {
        uint64_t st, nt, nb;
        if (ttt_shard_doc(s, d, &st, &nt, &nb) || st != c.doc_start[d] || nt != c.doc_start[d + 1] - st ||
            nb != c.doc_bytes[d]) bad++;
    }
    CHECK(bad == 0);
    /* out of range requests are errors, not crashes */
    CHECK(ttt_shard_read(s, c.n, 1, buf) == -1);
    CHECK(ttt_shard_read(s, c.n - 1, 2, buf) == -1);
    CHECK(ttt_shard_read(s, c.n, 0, buf) == 0);
    CHECK(ttt_shard_doc(s, c.ndocs, NULL, NULL, NULL) == -1);
    CHECK(ttt_shard_block(s, in->nblocks, NULL, NULL, NULL) == -1);
    uint64_t first; uint32_t nt, cb;
    CHECK(ttt_shard_block(s, 1, &first, &nt, &cb) == 0 && first == 97 && nt == 97 && cb > 0);
    free(buf);
    ttt_shard_close(s);
    free_corpus(&c);
}

static void test_writer_rejects(void)
{
    char path[256];
    snprintf(path, sizeof path, "%s/rej.tok", dir);
    ttt_shard_params p = { .vocab = 100, .tok_hash = 1, .eot = 99, .level = 6 };
    ttt_shard_writer *w = ttt_shard_writer_open(path, &p);
    CHECK(w != NULL);
    uint32_t no_eot[] = { 1, 2, 3 }, too_big[] = { 1, 100, 99 }, ok[] = { 5, 99 };
    CHECK(ttt_shard_writer_add_doc(w, no_eot, 3, 3) == -1);
    CHECK(ttt_shard_writer_add_doc(w, too_big, 3, 3) == -1);
    CHECK(ttt_shard_writer_add_doc(w, ok, 0, 0) == -1);
    CHECK(ttt_shard_writer_add_doc(w, ok, 2, 2) == 0);
    CHECK(ttt_shard_writer_tokens(w) == 2);
    ttt_shard_writer_abort(w);
    CHECK(access(path, F_OK) != 0);   /* nothing under the final name */
    ttt_shard_params bad = { .vocab = 10, .eot = 10 };
    CHECK(ttt_shard_writer_open(path, &bad) == NULL);
    /* vocab 65536 still fits 2 bytes; 65537 needs 4 */
    corpus c;
    make_corpus(&c, 5, 65537, 65536, 50);
    CHECK(write_shard(path, &c, 0, 5, 65537, 65536, 1, 0) == 0);
    ttt_shard *s = ttt_shard_open(path);
    CHECK(s && ttt_shard_get_info(s)->token_width == 4);
    ttt_shard_close(s);
    free_corpus(&c);
    make_corpus(&c, 5, 65536, 65535, 50);
    CHECK(write_shard(path, &c, 0, 5, 65536, 65535, 1, 0) == 0);
    s = ttt_shard_open(path);
    CHECK(s && ttt_shard_get_info(s)->token_width == 2);
    ttt_shard_close(s);
    free_corpus(&c);
}

static unsigned char *slurp(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    *n = (size_t)ftell(f);
    rewind(f);
    unsigned char *b = malloc(*n);
    if (fread(b, 1, *n, f) != *n) { free(b); b = NULL; }
    fclose(f);
    return b;
}

static void spit(const char *path, const unsigned char *b, size_t n)
{
    FILE *f = fopen(path, "wb");
    fwrite(b, 1, n, f);
    fclose(f);
}

/* 0 if the file opens and verifies, -1 otherwise. */
static int open_verify(const char *path)
{
    ttt_shard *s = ttt_shard_open(path);
    if (!s) return -1;
    int rc = ttt_shard_verify(s);
    ttt_shard_close(s);
    return rc;
}

static void test_corruption(int width)
{
    uint32_t vocab = width == 2 ? 500 : 70000, eot = vocab - 1;
    corpus c;
    make_corpus(&c, 12, vocab, eot, 40);
    char good[256], bad[256];
    snprintf(good, sizeof good, "%s/good%d.tok", dir, width);
    snprintf(bad, sizeof bad, "%s/bad%d.tok", dir, width);
    CHECK(write_shard(good, &c, 0, c.ndocs, vocab, eot, 77, 31) == 0);
    size_t n;
    unsigned char *b = slurp(good, &n);
    CHECK(b != NULL);
    if (!b) return;
    CHECK(open_verify(good) == 0);
    /* every byte flipped (two different bit patterns), every truncation */
    int missed_flip = 0, missed_trunc = 0, unnamed_block = 0;
    for (size_t i = 0; i < n; i++) {
        for (int m = 0; m < 2; m++) {
            unsigned char save = b[i];
            b[i] ^= m ? 0xFF : (unsigned char)(1u << (i % 8));
            spit(bad, b, n);
            b[i] = save;
            ttt_shard *s = ttt_shard_open(bad);
            if (s) {
                int rc = ttt_shard_verify(s);
                if (rc == 0) { missed_flip++; fprintf(stderr, "flip at %zu not detected\n", i); }
                else if (!strstr(ttt_errmsg(), ": block ") && !strstr(ttt_errmsg(), "does not end with eot"))
                    unnamed_block++;
                ttt_shard_close(s);
            }
        }
    }
    for (size_t k = 0; k < n; k++) {
        spit(bad, b, k);
        if (open_verify(bad) == 0) { missed_trunc++; fprintf(stderr, "truncation at %zu not detected\n", k); }
    }
    /* a byte appended is damage too */
    unsigned char *longer = malloc(n + 1);
    memcpy(longer, b, n);
    longer[n] = 0;
    spit(bad, longer, n + 1);
    CHECK(open_verify(bad) == -1);
    free(longer);
    CHECK(missed_flip == 0);
    CHECK(missed_trunc == 0);
    CHECK(unnamed_block == 0);   /* damage found only when reading blocks names the block */

    /* a flip in block 1's compressed bytes: the message names block 1 */
    ttt_shard *s = ttt_shard_open(good);
    uint64_t f1; uint32_t nt1, cb1;
    CHECK(s && ttt_shard_block(s, 1, &f1, &nt1, &cb1) == 0);
    ttt_shard_close(s);
    size_t off = TTT_SHD_HDR_LEN;
    s = ttt_shard_open(good);
    uint32_t cb0;
    ttt_shard_block(s, 0, NULL, NULL, &cb0);
    ttt_shard_close(s);
    off += cb0 + cb1 / 2;
    b[off] ^= 0x10;
    spit(bad, b, n);
    b[off] ^= 0x10;
    s = ttt_shard_open(bad);
    CHECK(s != NULL);
    if (s) {
        CHECK(ttt_shard_verify(s) == -1);
        CHECK(strstr(ttt_errmsg(), "bad2.tok: block 1: checksum mismatch") || strstr(ttt_errmsg(), "bad4.tok: block 1: checksum mismatch"));
        uint32_t tmp[64];
        CHECK(ttt_shard_read(s, 0, 10, tmp) == 0);     /* block 0 still reads */
        CHECK(ttt_shard_read(s, f1, 10, tmp) == -1);   /* block 1 does not */
        ttt_shard_close(s);
    }
    /* wrong magic, and a token stream offered as a shard */
    b[1] = 'X';
    spit(bad, b, n);
    CHECK(ttt_shard_open(bad) == NULL && strstr(ttt_errmsg(), "not a ttt shard"));
    spit(bad, (const unsigned char *)"\x89TTTSTR\n\1\0\0\0", 12);
    CHECK(ttt_shard_open(bad) == NULL && strstr(ttt_errmsg(), "token stream"));
    spit(bad, (const unsigned char *)"", 0);
    CHECK(ttt_shard_open(bad) == NULL && strstr(ttt_errmsg(), "empty"));
    CHECK(ttt_shard_open("/nonexistent/x.tok") == NULL && strstr(ttt_errmsg(), "/nonexistent/x.tok: "));
    free(b);
    free_corpus(&c);
}

static void test_dataset(void)
{
    corpus c;
    make_corpus(&c, 90, 300, 0, 200);
    char path[256], pat[256];
    uint64_t cuts[] = { 0, 30, 31, 90 };   /* shard 1 holds a single document */
    for (int i = 0; i < 3; i++) {
        snprintf(path, sizeof path, "%s/ds-train-%06d.tok", dir, i);
        CHECK(write_shard(path, &c, cuts[i], cuts[i + 1], 300, 0, 42, 64) == 0);
    }
    snprintf(pat, sizeof pat, "%s/ds-train-*.tok", dir);
    ttt_dataset *d = ttt_dataset_open(pat);
    CHECK(d != NULL);
    if (d) {
        CHECK(ttt_dataset_nshards(d) == 3);
        CHECK(ttt_dataset_tokens(d) == c.n);
        CHECK(ttt_dataset_docs(d) == c.ndocs);
        CHECK(ttt_dataset_info(d)->tok_hash == 42);
        CHECK(ttt_dataset_shard(d, 3) == NULL && ttt_dataset_shard(d, 2) != NULL);
        uint32_t *buf = malloc(c.n * sizeof *buf);
        CHECK(ttt_dataset_read(d, 0, c.n, buf) == 0 && memcmp(buf, c.tok, c.n * 4) == 0);
        int bad = 0;
        for (int k = 0; k < 3000; k++) {
            uint64_t len = rnd() % 500, start = rnd() % (c.n - len + 1);
            if (ttt_dataset_read(d, start, len, buf) || memcmp(buf, c.tok + start, len * 4)) bad++;
        }
        CHECK(bad == 0);
        CHECK(ttt_dataset_read(d, c.n - 3, 4, buf) == -1);
        free(buf);
        ttt_dataset_close(d);
    }
    /* a shard made with another tokenizer in the glob is refused by name */
    snprintf(path, sizeof path, "%s/ds-train-000003.tok", dir);
    CHECK(write_shard(path, &c, 0, 5, 300, 0, 43, 64) == 0);
    d = ttt_dataset_open(pat);
    CHECK(d == NULL);
    CHECK(strstr(ttt_errmsg(), "ds-train-000003.tok: made with another tokenizer") != NULL);
    unlink(path);
    /* same hash, different vocabulary */
    CHECK(write_shard(path, &c, 0, 5, 301, 0, 42, 64) == 0);
    CHECK(ttt_dataset_open(pat) == NULL);
    unlink(path);
    snprintf(pat, sizeof pat, "%s/none-*.tok", dir);
    CHECK(ttt_dataset_open(pat) == NULL && strstr(ttt_errmsg(), "no shard matches"));
    free_corpus(&c);
}

static void test_determinism(void)
{
    corpus c;
    make_corpus(&c, 40, 1000, 3, 100);
    char a[256], b[256];
    snprintf(a, sizeof a, "%s/det-a.tok", dir);
    snprintf(b, sizeof b, "%s/det-b.tok", dir);
    CHECK(write_shard(a, &c, 0, c.ndocs, 1000, 3, 5, 0) == 0);
    CHECK(write_shard(b, &c, 0, c.ndocs, 1000, 3, 5, 0) == 0);
    size_t na, nb;
    unsigned char *x = slurp(a, &na), *y = slurp(b, &nb);
    CHECK(x && y && na == nb && memcmp(x, y, na) == 0);
    free(x); free(y);
    free_corpus(&c);
}

int main(void)
{
    if (!mkdtemp(dir)) { perror("mkdtemp"); return 1; }
    test_roundtrip(1000, 999, 2);
    test_roundtrip(100000, 50256, 4);
    test_writer_rejects();
    test_corruption(2);
    test_corruption(4);
    test_dataset();
    test_determinism();
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    return check_exit("test_shard");
}
