/* test_tokenizer.c - byte-level BPE: training on a tiny corpus gives the
 * merges worked out by hand; encoding matches a naive reference encoder and
 * decodes back exactly on random strings (valid and invalid UTF-8, long
 * whitespace runs); the ASCII fast path of the pre-tokenizer agrees with
 * PCRE2; the hash ignores JSON formatting and the merge spelling. */
#include "check.h"
#include "../../lib/bpe_train.h"
#include "../../lib/err.h"
#include "../../lib/pretok.h"
#include "../../lib/tokenizer.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char tmpdir[] = "/tmp/test_tokenizer.XXXXXX";

static uint64_t rng = 0x9E3779B97F4A7C15ull;
static uint32_t rnd(void) { rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17; return (uint32_t)(rng >> 11); }

static ttt_tokenizer *train_and_load(const char *const *docs, int n, uint32_t vocab, const char *name,
                                     uint32_t (**merges)[2], uint32_t *nmerges)
{
    ttt_bpe_trainer *t = ttt_bpe_new();
    for (int i = 0; i < n; i++) CHECK(ttt_bpe_add_text(t, docs[i], strlen(docs[i])) == 0);
    CHECK(ttt_bpe_train(t, vocab, NULL, NULL) == 0);
    char path[256];
    snprintf(path, sizeof path, "%s/%s", tmpdir, name);
    FILE *f = fopen(path, "w");
    CHECK(ttt_bpe_write_json(t, f, path) == 0);
    fclose(f);
    *nmerges = ttt_bpe_num_merges(t);
    *merges = calloc(*nmerges + 1, sizeof **merges);
    for (uint32_t r = 0; r < *nmerges; r++) ttt_bpe_merge(t, r, &(*merges)[r][0], &(*merges)[r][1]);
    ttt_bpe_free(t);
    ttt_tokenizer *tok = ttt_tokenizer_load(path);
    if (!tok) fprintf(stderr, "load: %s\n", ttt_errmsg());
    return tok;
}

static void test_tiny_merges(void)
{
    /* words: "ab" x1, " ab" x2, " cd" x1. Pair counts: (a,b) 3, (' ',a) 2,
     * (' ',c) 1, (c,d) 1. Expected: ab; then " ab" (2); then the tie
     * between (' ',c) and (c,d) goes to the smaller ids: " c"; then " cd". */
    const char *docs[] = { "ab ab ab cd" };
    ttt_bpe_trainer *t = ttt_bpe_new();
    CHECK(ttt_bpe_add_text(t, docs[0], strlen(docs[0])) == 0);
    CHECK(ttt_bpe_num_words(t) == 3);
    CHECK(ttt_bpe_train(t, 300, NULL, NULL) == 0);
    CHECK(ttt_bpe_num_merges(t) == 4);
    CHECK(ttt_bpe_vocab_size(t) == 261);
    const char *want[] = { "ab", " ab", " c", " cd" };
    for (uint32_t i = 0; i < 4 && i < ttt_bpe_num_merges(t); i++) {
        size_t n;
        const char *s = ttt_bpe_token(t, 256 + i, &n);
        CHECK(n == strlen(want[i]) && !memcmp(s, want[i], n));
    }
    uint32_t l, r;
    ttt_bpe_merge(t, 1, &l, &r);
    CHECK(l == ' ' && r == 256);
    size_t n;
    const char *eot = ttt_bpe_token(t, 260, &n);
    CHECK(n == 13 && !memcmp(eot, "<|endoftext|>", 13));
    ttt_bpe_free(t);

    /* overlapping pairs: "aaaa" -> (a,a) then (aa,aa) */
    t = ttt_bpe_new();
    CHECK(ttt_bpe_add_text(t, "aaaa", 4) == 0);
    CHECK(ttt_bpe_train(t, 1000, NULL, NULL) == 0);
    CHECK(ttt_bpe_num_merges(t) == 2);
    ttt_bpe_merge(t, 0, &l, &r);
    CHECK(l == 'a' && r == 'a');
    ttt_bpe_merge(t, 1, &l, &r);
    CHECK(l == 256 && r == 256);
    ttt_bpe_free(t);
}

/* ---- naive reference encoder: pieces from PCRE2 alone, then repeatedly
 * the lowest-rank pair, leftmost, merged by concatenating bytes ---- */

typedef struct { char *s; size_t n; } bytes;

static long token_of(const ttt_tokenizer *t, const char *s, size_t n)
{
    for (uint32_t i = 0; i < ttt_tokenizer_vocab_size(t); i++) {
        size_t l;
        const char *p = ttt_tokenizer_token(t, i, &l);
        if (p && l == n && !memcmp(p, s, n) && !ttt_tokenizer_is_special(t, i)) return i;
    }
    return -1;
}

static size_t naive_encode(const ttt_tokenizer *t, uint32_t (*merges)[2], uint32_t nm,
                           ttt_pretok *pt, const char *text, size_t n, uint32_t *out)
{
    size_t pos = 0, st, len, k = 0;
    while (ttt_pretok_next(pt, text, n, &pos, &st, &len) == 1) {
        uint32_t sym[4096];
        size_t m = len;
        for (size_t i = 0; i < len; i++) sym[i] = (uint32_t)token_of(t, text + st + i, 1);
        for (;;) {
            uint32_t best = UINT32_MAX;
            size_t at = 0;
            for (size_t i = 0; i + 1 < m; i++)
                for (uint32_t r = 0; r < nm && r < best; r++)
                    if (merges[r][0] == sym[i] && merges[r][1] == sym[i + 1]) { best = r; at = i; }
            if (best == UINT32_MAX) break;
            size_t la, lb;
            const char *a = ttt_tokenizer_token(t, sym[at], &la), *b = ttt_tokenizer_token(t, sym[at + 1], &lb);
            char buf[8192];
            memcpy(buf, a, la);
            memcpy(buf + la, b, lb);
            sym[at] = (uint32_t)token_of(t, buf, la + lb);
            memmove(sym + at + 1, sym + at + 2, (m - at - 2) * sizeof *sym);
            m--;
        }
        memcpy(out + k, sym, m * sizeof *sym);
        k += m;
    }
    return k;
}

static size_t random_text(char *buf, size_t max)
{
    static const char *const atoms[] = {
        "a", "b", "ab", "the", " ", " ", "  ", "\n", "\r\n", "\t", "'s", "'ll", "'", "1", "23", "!", "?!", ".",
        "\xc3\xa9", "\xe2\x80\x94", "\xf0\x9f\x98\x80", "\xe4\xb8\xad", "\xc2\xa0", "\x00", "\xff", "\xc3", "\x80",
        "A", "Z", "9", "_", "-", "                              ", "\xd9\xa3",
    };
    size_t na = sizeof atoms / sizeof *atoms, n = 0, len = rnd() % max;
    while (n < len) {
        uint32_t k = rnd() % na;
        size_t l = k == 23 ? 1 : strlen(atoms[k]);   /* the NUL atom */
        if (n + l > max) break;
        memcpy(buf + n, atoms[k], l);
        n += l;
    }
    return n;
}

static void test_encode_vs_naive(void)
{
    const char *docs[] = {
        "the cat's hat, the bat's mat; aaa bbb ab ab ab 123 4567 !!! ?? ...",
        "caf\xc3\xa9 na\xc3\xafve \xe2\x80\x94 \xf0\x9f\x98\x80\xf0\x9f\x98\x80 \xe4\xb8\xad\xe6\x96\x87 tabs\tand\r\nCRLF\r\n",
        "      lots     of    spaces              and \n\n\n newlines   ",
    };
    uint32_t (*merges)[2], nm;
    ttt_tokenizer *t = train_and_load(docs, 3, 400, "rand.json", &merges, &nm);
    CHECK(t != NULL);
    if (!t) return;
    CHECK(nm > 20 && nm == ttt_tokenizer_num_merges(t));
    setenv("TTT_PRETOK_NO_FAST", "1", 1);
    ttt_pretok *slow = ttt_pretok_new();
    unsetenv("TTT_PRETOK_NO_FAST");
    ttt_pretok *fast = ttt_pretok_new();
    char text[600];
    uint32_t *ids = NULL, ref[1200];
    size_t cap = 0;
    char *out = NULL;
    size_t ocap = 0;
    int bad_pieces = 0, bad_ids = 0, bad_rt = 0;
    for (int it = 0; it < 3000; it++) {
        size_t n = random_text(text, sizeof text);
        /* pre-tokenizer: fast path and PCRE2 alone give the same pieces */
        size_t p1 = 0, p2 = 0, s1, l1, s2, l2;
        for (;;) {
            int r1 = ttt_pretok_next(fast, text, n, &p1, &s1, &l1), r2 = ttt_pretok_next(slow, text, n, &p2, &s2, &l2);
            if (r1 != r2 || (r1 == 1 && (s1 != s2 || l1 != l2))) { bad_pieces++; break; }
            if (r1 != 1) break;
        }
        size_t nids = 0;
        CHECK(ttt_tokenizer_encode(t, text, n, &ids, &nids, &cap) == 0);
        size_t k = naive_encode(t, merges, nm, slow, text, n, ref);
        if (k != nids || memcmp(ref, ids, k * sizeof *ids)) bad_ids++;
        size_t olen = 0;
        CHECK(ttt_tokenizer_decode(t, ids, nids, &out, &olen, &ocap) == 0);
        if (olen != n || memcmp(out, text, n)) bad_rt++;
    }
    CHECK(bad_pieces == 0);
    CHECK(bad_ids == 0);
    CHECK(bad_rt == 0);
    /* every ASCII byte pair and triple through both pre-tokenizer paths */
    for (int a = 0; a < 128; a++)
        for (int b = 0; b < 128; b++)
            for (int c = 0; c < 128; c += 3) {
                char s[3] = { (char)a, (char)b, (char)c };
                size_t p1 = 0, p2 = 0, s1, l1, s2, l2;
                for (;;) {
                    int r1 = ttt_pretok_next(fast, s, 3, &p1, &s1, &l1), r2 = ttt_pretok_next(slow, s, 3, &p2, &s2, &l2);
                    if (r1 != r2 || (r1 == 1 && (s1 != s2 || l1 != l2))) { bad_pieces++; break; }
                    if (r1 != 1) break;
                }
            }
    CHECK(bad_pieces == 0);
    uint32_t badid = ttt_tokenizer_vocab_size(t);
    size_t olen = 0;
    CHECK(ttt_tokenizer_decode(t, &badid, 1, &out, &olen, &ocap) == -1);
    free(out);
    free(ids);
    free(merges);
    ttt_pretok_free(slow);
    ttt_pretok_free(fast);
    ttt_tokenizer_free(t);
}

static void write_file(const char *name, const char *s)
{
    char path[256];
    snprintf(path, sizeof path, "%s/%s", tmpdir, name);
    FILE *f = fopen(path, "w");
    fputs(s, f);
    fclose(f);
}

static ttt_tokenizer *load(const char *name)
{
    char path[256];
    snprintf(path, sizeof path, "%s/%s", tmpdir, name);
    ttt_tokenizer *t = ttt_tokenizer_load(path);
    if (!t) fprintf(stderr, "load %s: %s\n", name, ttt_errmsg());
    return t;
}

/* A GPT-2-layout vocabulary: bytes in the byte-to-unicode order (printable
 * first), merges as "a b" strings or as pairs; same content, same hash. */
static void test_gpt2_layout_and_hash(void)
{
    char *v = malloc(1 << 16);
    size_t n = 0;
    n += sprintf(v + n, "{\"model\":{\"type\":\"BPE\",\"vocab\":{");
    int id = 0;
    for (int pass = 0; pass < 2; pass++)
        for (int b = 0; b < 256; b++) {
            int printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
            if (printable != (pass == 0)) continue;
            unsigned cp = printable ? (unsigned)b : 0;
            if (!printable) { static int k = 0; cp = 256 + k++; }
            if (cp < 0x80) n += sprintf(v + n, "\"%s%c\":%d,", cp == '"' || cp == '\\' ? "\\" : "", cp, id++);
            else n += sprintf(v + n, "\"%c%c\":%d,", 0xC0 | cp >> 6, 0x80 | (cp & 0x3F), id++);
        }
    /* U+0120 is the space: "\xc4\xa0" */
    n += sprintf(v + n, "\"\xc4\xa0t\":256,\"he\":257,\"\xc4\xa0the\":258,\"<|endoftext|>\":259},");
    char *a = malloc(1 << 16), *b = malloc(1 << 16);
    memcpy(a, v, n);
    memcpy(b, v, n);
    sprintf(a + n, "\"merges\":[\"\xc4\xa0 t\",\"h e\",\"\xc4\xa0t he\"]},"
                   "\"added_tokens\":[{\"id\":259,\"content\":\"<|endoftext|>\",\"special\":true}]}");
    sprintf(b + n, "\"merges\":[[\"\xc4\xa0\",\"t\"],  [\"h\",\"e\"],\n[\"\xc4\xa0t\",\"he\"]]},\n"
                   "  \"added_tokens\" : [ {\"id\": 259, \"special\": true, \"content\": \"<|endoftext|>\"} ] }");
    write_file("gpt2a.json", a);
    write_file("gpt2b.json", b);
    ttt_tokenizer *ta = load("gpt2a.json"), *tb = load("gpt2b.json");
    CHECK(ta && tb);
    if (ta && tb) {
        CHECK(ttt_tokenizer_hash(ta) == ttt_tokenizer_hash(tb));
        CHECK(ttt_tokenizer_vocab_size(ta) == 260);
        CHECK(ttt_tokenizer_eot(ta) == 259);
        uint32_t *ids = NULL;
        size_t nids = 0, cap = 0;
        CHECK(ttt_tokenizer_encode(ta, "hi the", 6, &ids, &nids, &cap) == 0);
        /* "hi" -> h i (bytes), " the" -> 258 */
        CHECK(nids == 3 && ids[2] == 258);
        CHECK(nids == 3 && ids[0] == 'h' - 33 && ids[1] == 'i' - 33);
        free(ids);
    }
    ttt_tokenizer_free(ta);
    ttt_tokenizer_free(tb);
    /* a different merge order is a different tokenizer */
    sprintf(a + n, "\"merges\":[\"h e\",\"\xc4\xa0 t\",\"\xc4\xa0t he\"]},"
                   "\"added_tokens\":[{\"id\":259,\"content\":\"<|endoftext|>\",\"special\":true}]}");
    write_file("gpt2c.json", a);
    ta = load("gpt2a.json");
    tb = load("gpt2c.json");
    CHECK(ta && tb && ttt_tokenizer_hash(ta) != ttt_tokenizer_hash(tb));
    ttt_tokenizer_free(ta);
    ttt_tokenizer_free(tb);
    /* broken files: message names the file */
    sprintf(a + n, "\"merges\":[\"h x\"]}}");
    write_file("bad1.json", a);
    CHECK(load("bad1.json") == NULL && strstr(ttt_errmsg(), "bad1.json") && strstr(ttt_errmsg(), "merges[0]"));
    write_file("bad2.json", "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[]}}");
    CHECK(load("bad2.json") == NULL && strstr(ttt_errmsg(), "byte"));
    write_file("bad3.json", "{\"model\": ");
    CHECK(load("bad3.json") == NULL && strstr(ttt_errmsg(), "bad3.json"));
    free(v); free(a); free(b);
}

int main(void)
{
    if (!mkdtemp(tmpdir)) { perror("mkdtemp"); return 1; }
    test_tiny_merges();
    test_encode_vs_naive();
    test_gpt2_layout_and_hash();
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd)) {}
    return check_exit("test_tokenizer");
}
