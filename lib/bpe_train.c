/* bpe_train.c - byte-level BPE training (see bpe_train.h).
 *
 * Data:
 *   words   distinct pre-tokens: frequency and current symbol ids (merged
 *           in place as training goes)
 *   pairs   (left, right) -> count weighted by word frequency, and the words
 *           where it was seen (may hold words that no longer contain it;
 *           those are skipped when scanned)
 *   heap    (count, pair) entries; an entry whose count is no longer the
 *           pair's count is stale: popped, it is pushed back with the current
 *           count. Counts of existing pairs only fall during a merge, except
 *           pairs with the new token, which are pushed after the merge.
 */
#include "bpe_train.h"
#include "err.h"         /* ttt_seterr */
#include "json.h"        /* json_write_str */
#include "pretok.h"      /* ttt_pretok_next */
#include "tok_bytes.h"   /* byte mapping, pair hash */

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

typedef struct {
    uint64_t freq;
    uint32_t off;      /* symbols in t->syms (after training) / bytes in t->wbytes */
    uint32_t len;      /* current number of symbols */
    uint32_t blen;     /* length in bytes */
    uint64_t boff;
    uint64_t h;
} word;

typedef struct {
    int64_t count;
    uint32_t a, b;
    uint32_t *where;   /* word indices */
    uint32_t nwhere, capwhere;
    uint32_t stamp;    /* merge number that last pushed it */
} pair;

typedef struct { int64_t count; uint32_t a, b; } hent;

struct ttt_bpe_trainer {
    ttt_pretok *pt;
    /* word counting: open addressing on word index + 1 */
    word *words; size_t nwords, capwords;
    uint32_t *wtab; size_t wmask;
    char *wbytes; size_t wblen, wbcap;
    /* training */
    uint32_t *syms;
    pair *pairs; size_t npairs, cappairs;
    uint32_t *ptab; size_t pmask;          /* pair index + 1 */
    hent *heap; size_t nheap, capheap;
    uint32_t *wstamp;
    /* result */
    uint32_t nmerges;
    uint32_t *merges;                       /* 2 per merge */
    char *tbytes; size_t *toff;             /* token bytes, offsets (vocab+1) */
    uint32_t vocab;
};

ttt_bpe_trainer *ttt_bpe_new(void)
{
    ttt_bpe_trainer *t = calloc(1, sizeof *t);
    if (!t) { ttt_seterr("out of memory"); return NULL; }
    if (!(t->pt = ttt_pretok_new())) { free(t); return NULL; }
    return t;
}

void ttt_bpe_free(ttt_bpe_trainer *t)
{
    if (!t) return;
    ttt_pretok_free(t->pt);
    free(t->words); free(t->wtab); free(t->wbytes); free(t->syms);
    for (size_t i = 0; i < t->npairs; i++) free(t->pairs[i].where);
    free(t->pairs); free(t->ptab); free(t->heap); free(t->wstamp);
    free(t->merges); free(t->tbytes); free(t->toff);
    free(t);
}

/* ---- counting ---- */

static int word_rehash(ttt_bpe_trainer *t)
{
    size_t cap = t->wtab ? 2 * (t->wmask + 1) : 1 << 12;
    uint32_t *tab = calloc(cap, sizeof *tab);
    if (!tab) return ttt_seterr("out of memory");
    for (size_t i = 0; i < t->nwords; i++) {
        size_t s = t->words[i].h & (cap - 1);
        while (tab[s]) s = (s + 1) & (cap - 1);
        tab[s] = (uint32_t)i + 1;
    }
    free(t->wtab);
    t->wtab = tab;
    t->wmask = cap - 1;
    return 0;
}

static int count_word(ttt_bpe_trainer *t, const char *p, size_t n)
{
    if (n > UINT32_MAX / 2) return ttt_seterr("a pre-token of %zu bytes is too long to train on", n);
    if (!t->wtab || 2 * (t->nwords + 1) > t->wmask + 1)
        if (word_rehash(t)) return -1;
    uint64_t h = XXH3_64bits(p, n);
    size_t s = h & t->wmask;
    for (;; s = (s + 1) & t->wmask) {
        uint32_t w = t->wtab[s];
        if (!w) break;
        word *x = &t->words[w - 1];
        if (x->h == h && x->blen == n && !memcmp(t->wbytes + x->boff, p, n)) { x->freq++; return 0; }
    }
    if (t->nwords >= UINT32_MAX - 1) return ttt_seterr("too many distinct words");
    if (ttt_tok_grow((void **)&t->words, &t->capwords, t->nwords + 1, sizeof *t->words) ||
        ttt_tok_grow((void **)&t->wbytes, &t->wbcap, t->wblen + n, 1)) return -1;
    memcpy(t->wbytes + t->wblen, p, n);
    t->words[t->nwords] = (word){ .freq = 1, .blen = (uint32_t)n, .boff = t->wblen, .h = h };
    t->wblen += n;
    t->wtab[s] = (uint32_t)++t->nwords;
    return 0;
}

int ttt_bpe_add_text(ttt_bpe_trainer *t, const char *text, size_t n)
{
    size_t pos = 0, st, len;
    int rc;
    while ((rc = ttt_pretok_next(t->pt, text, n, &pos, &st, &len)) == 1)
        if (count_word(t, text + st, len)) return -1;
    return rc;
}

/* ---- pairs and heap ---- */

static int hent_better(const hent *x, const hent *y)
{
    if (x->count != y->count) return x->count > y->count;
    if (x->a != y->a) return x->a < y->a;
    return x->b < y->b;
}

static int heap_push(ttt_bpe_trainer *t, int64_t count, uint32_t a, uint32_t b)
{
    if (ttt_tok_grow((void **)&t->heap, &t->capheap, t->nheap + 1, sizeof *t->heap)) return -1;
    hent v = { count, a, b };
    size_t i = t->nheap++;
    while (i && hent_better(&v, &t->heap[(i - 1) / 2])) { t->heap[i] = t->heap[(i - 1) / 2]; i = (i - 1) / 2; }
    t->heap[i] = v;
    return 0;
}

static hent heap_pop(ttt_bpe_trainer *t)
{
    hent top = t->heap[0], v = t->heap[--t->nheap];
    size_t i = 0, n = t->nheap;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && hent_better(&t->heap[c + 1], &t->heap[c])) c++;
        if (!hent_better(&t->heap[c], &v)) break;
        t->heap[i] = t->heap[c];
        i = c;
    }
    if (n) t->heap[i] = v;
    return top;
}

static int pair_rehash(ttt_bpe_trainer *t)
{
    size_t cap = t->ptab ? 2 * (t->pmask + 1) : 1 << 14;
    uint32_t *tab = calloc(cap, sizeof *tab);
    if (!tab) return ttt_seterr("out of memory");
    for (size_t i = 0; i < t->npairs; i++) {
        uint64_t key = (uint64_t)t->pairs[i].a << 32 | t->pairs[i].b;
        size_t s = ttt_tok_pair_hash(key) & (cap - 1);
        while (tab[s]) s = (s + 1) & (cap - 1);
        tab[s] = (uint32_t)i + 1;
    }
    free(t->ptab);
    t->ptab = tab;
    t->pmask = cap - 1;
    return 0;
}

/* Index of pair (a, b), created with count 0 if new; -1 on error. */
static long pair_get(ttt_bpe_trainer *t, uint32_t a, uint32_t b)
{
    if (!t->ptab || 2 * (t->npairs + 1) > t->pmask + 1)
        if (pair_rehash(t)) return -1;
    uint64_t key = (uint64_t)a << 32 | b;
    size_t s = ttt_tok_pair_hash(key) & t->pmask;
    for (;; s = (s + 1) & t->pmask) {
        uint32_t p = t->ptab[s];
        if (!p) break;
        if (t->pairs[p - 1].a == a && t->pairs[p - 1].b == b) return (long)p - 1;
    }
    if (t->npairs >= UINT32_MAX - 1) return ttt_seterr("too many pairs");
    if (ttt_tok_grow((void **)&t->pairs, &t->cappairs, t->npairs + 1, sizeof *t->pairs)) return -1;
    t->pairs[t->npairs] = (pair){ .a = a, .b = b, .stamp = UINT32_MAX };
    t->ptab[s] = (uint32_t)++t->npairs;
    return (long)t->npairs - 1;
}

/* count += delta; on an increase, remembers word w. */
static long pair_add(ttt_bpe_trainer *t, uint32_t a, uint32_t b, int64_t delta, uint32_t w)
{
    long p = pair_get(t, a, b);
    if (p < 0) return -1;
    pair *x = &t->pairs[p];
    x->count += delta;
    if (delta > 0 && (x->nwhere == 0 || x->where[x->nwhere - 1] != w)) {
        if (x->nwhere == x->capwhere) {
            uint32_t c = x->capwhere ? 2 * x->capwhere : 4;
            uint32_t *q = realloc(x->where, (size_t)c * sizeof *q);
            if (!q) return ttt_seterr("out of memory");
            x->where = q;
            x->capwhere = c;
        }
        x->where[x->nwhere++] = w;
    }
    return p;
}

/* ---- training ---- */

static int add_token(ttt_bpe_trainer *t, size_t *tcap, size_t *tlen, const char *s, size_t n)
{
    if (ttt_tok_grow((void **)&t->tbytes, tcap, *tlen + n, 1)) return -1;
    memcpy(t->tbytes + *tlen, s, n);
    *tlen += n;
    t->toff[++t->vocab] = *tlen;
    return 0;
}

/* Replaces every (a, b) in word w by z, updating the pair counts. Newly
 * made pairs (they contain z) are listed in *touched for pushing. */
static int merge_word(ttt_bpe_trainer *t, uint32_t w, uint32_t a, uint32_t b, uint32_t z,
                      uint32_t **touched, size_t *ntouched, size_t *captouched, uint32_t m)
{
    word *x = &t->words[w];
    uint32_t *s = t->syms + x->off;
    int64_t f = (int64_t)x->freq;
    uint32_t len = x->len, i = 0, j = 0;
    while (i < len) {
        if (i + 1 < len && s[i] == a && s[i + 1] == b) {
            long p;
            if (j > 0) {
                if (pair_add(t, s[j - 1], a, -f, w) < 0 || (p = pair_add(t, s[j - 1], z, f, w)) < 0) return -1;
                if (t->pairs[p].stamp != m) {
                    t->pairs[p].stamp = m;
                    if (ttt_tok_grow((void **)touched, captouched, *ntouched + 1, sizeof **touched)) return -1;
                    (*touched)[(*ntouched)++] = (uint32_t)p;
                }
            }
            if (i + 2 < len) {
                if (pair_add(t, b, s[i + 2], -f, w) < 0 || (p = pair_add(t, z, s[i + 2], f, w)) < 0) return -1;
                if (t->pairs[p].stamp != m) {
                    t->pairs[p].stamp = m;
                    if (ttt_tok_grow((void **)touched, captouched, *ntouched + 1, sizeof **touched)) return -1;
                    (*touched)[(*ntouched)++] = (uint32_t)p;
                }
            }
            if (pair_add(t, a, b, -f, w) < 0) return -1;
            s[j++] = z;
            i += 2;
        } else {
            s[j++] = s[i++];
        }
    }
    x->len = j;
    return 0;
}

int ttt_bpe_train(ttt_bpe_trainer *t, uint32_t vocab_size,
                  void (*progress)(void *ctx, uint32_t done, uint32_t want), void *ctx)
{
    if (vocab_size < 257) { ttt_seterrclass(TTT_ERR_USAGE); return ttt_seterr("vocabulary size %u is below 257 (256 bytes + <|endoftext|>)", vocab_size); }
    uint32_t want = vocab_size - 257;
    /* symbols: every word starts as its bytes (ids 0..255) */
    if (t->wblen > UINT32_MAX) return ttt_seterr("too much distinct text to train on (%zu bytes of distinct words)", t->wblen);
    t->syms = malloc((t->wblen + 1) * sizeof *t->syms);
    t->wstamp = malloc((t->nwords + 1) * sizeof *t->wstamp);
    t->merges = malloc(2 * ((size_t)want + 1) * sizeof *t->merges);
    t->toff = malloc(((size_t)vocab_size + 1) * sizeof *t->toff);
    if (!t->syms || !t->wstamp || !t->merges || !t->toff) return ttt_seterr("out of memory");
    for (size_t w = 0; w < t->nwords; w++) {
        word *x = &t->words[w];
        x->off = (uint32_t)x->boff;
        x->len = x->blen;
        for (uint32_t i = 0; i < x->blen; i++) t->syms[x->off + i] = (unsigned char)t->wbytes[x->boff + i];
        t->wstamp[w] = UINT32_MAX;
    }
    size_t tcap = 0, tlen = 0;
    t->vocab = 0;
    t->toff[0] = 0;
    for (int b = 0; b < 256; b++) {
        char c = (char)b;
        if (add_token(t, &tcap, &tlen, &c, 1)) return -1;
    }
    /* initial pair counts */
    for (size_t w = 0; w < t->nwords; w++) {
        word *x = &t->words[w];
        for (uint32_t i = 0; i + 1 < x->len; i++)
            if (pair_add(t, t->syms[x->off + i], t->syms[x->off + i + 1], (int64_t)x->freq, (uint32_t)w) < 0) return -1;
    }
    for (size_t p = 0; p < t->npairs; p++)
        if (heap_push(t, t->pairs[p].count, t->pairs[p].a, t->pairs[p].b)) return -1;

    uint32_t *touched = NULL;
    size_t ntouched = 0, captouched = 0;
    t->nmerges = 0;
    while (t->nmerges < want && t->nheap) {
        hent top = heap_pop(t);
        long p = pair_get(t, top.a, top.b);
        if (p < 0) { free(touched); return -1; }
        int64_t cur = t->pairs[p].count;
        if (cur <= 0) continue;
        if (cur != top.count) {   /* stale: the count fell since it was pushed */
            if (heap_push(t, cur, top.a, top.b)) { free(touched); return -1; }
            continue;
        }
        uint32_t a = top.a, b = top.b, m = t->nmerges, z = 256 + m;
        t->merges[2 * m] = a;
        t->merges[2 * m + 1] = b;
        size_t la = t->toff[a + 1] - t->toff[a], lb = t->toff[b + 1] - t->toff[b];
        if (ttt_tok_grow((void **)&t->tbytes, &tcap, tlen + la + lb, 1)) { free(touched); return -1; }
        memmove(t->tbytes + tlen, t->tbytes + t->toff[a], la);
        memmove(t->tbytes + tlen + la, t->tbytes + t->toff[b], lb);
        tlen += la + lb;
        t->toff[++t->vocab] = tlen;
        t->nmerges++;
        /* the words list may grow while we scan (pair_add on other pairs
         * only), but this pair's list does not: its count only falls */
        ntouched = 0;
        uint32_t nwhere = t->pairs[p].nwhere;
        for (uint32_t k = 0; k < nwhere; k++) {
            uint32_t w = t->pairs[p].where[k];
            if (t->wstamp[w] == m) continue;
            t->wstamp[w] = m;
            if (merge_word(t, w, a, b, z, &touched, &ntouched, &captouched, m)) { free(touched); return -1; }
        }
        free(t->pairs[p].where);
        t->pairs[p].where = NULL;
        t->pairs[p].nwhere = t->pairs[p].capwhere = 0;
        for (size_t k = 0; k < ntouched; k++) {
            pair *x = &t->pairs[touched[k]];
            if (x->count > 0 && heap_push(t, x->count, x->a, x->b)) { free(touched); return -1; }
        }
        if (progress && (m % 256 == 0 || t->nmerges == want)) progress(ctx, t->nmerges, want);
    }
    free(touched);
    if (progress) progress(ctx, t->nmerges, want);
    const char *eot = "<|endoftext|>";
    if (add_token(t, &tcap, &tlen, eot, strlen(eot))) return -1;
    return 0;
}

uint32_t ttt_bpe_vocab_size(const ttt_bpe_trainer *t) { return t->vocab; }
uint32_t ttt_bpe_num_merges(const ttt_bpe_trainer *t) { return t->nmerges; }
uint64_t ttt_bpe_num_words(const ttt_bpe_trainer *t) { return t->nwords; }

void ttt_bpe_merge(const ttt_bpe_trainer *t, uint32_t i, uint32_t *left, uint32_t *right)
{
    *left = t->merges[2 * i];
    *right = t->merges[2 * i + 1];
}

const char *ttt_bpe_token(const ttt_bpe_trainer *t, uint32_t id, size_t *len)
{
    if (id >= t->vocab) { *len = 0; return NULL; }
    *len = t->toff[id + 1] - t->toff[id];
    return t->tbytes + t->toff[id];
}

/* ---- output ---- */

static void write_mapped(FILE *f, const ttt_bpe_trainer *t, uint32_t id, char *buf)
{
    size_t n;
    const char *s = ttt_bpe_token(t, id, &n);
    json_write_str(f, buf, ttt_tok_bytes_to_str(s, n, buf));
}

int ttt_bpe_write_json(const ttt_bpe_trainer *t, FILE *f, const char *name)
{
    if (!t->vocab) return ttt_seterr("tokenizer not trained");
    size_t maxlen = 0;
    for (uint32_t i = 0; i < t->vocab; i++)
        if (t->toff[i + 1] - t->toff[i] > maxlen) maxlen = t->toff[i + 1] - t->toff[i];
    char *buf = malloc(2 * maxlen + 1);
    if (!buf) return ttt_seterr("out of memory");
    uint32_t eot = t->vocab - 1;
    fprintf(f, "{\n  \"version\": \"1.0\",\n  \"truncation\": null,\n  \"padding\": null,\n"
               "  \"added_tokens\": [\n    {\"id\": %u, \"content\": \"<|endoftext|>\", \"single_word\": false, "
               "\"lstrip\": false, \"rstrip\": false, \"normalized\": false, \"special\": true}\n  ],\n"
               "  \"normalizer\": null,\n"
               "  \"pre_tokenizer\": {\"type\": \"ByteLevel\", \"add_prefix_space\": false, \"trim_offsets\": true, \"use_regex\": true},\n"
               "  \"post_processor\": {\"type\": \"ByteLevel\", \"add_prefix_space\": true, \"trim_offsets\": false, \"use_regex\": true},\n"
               "  \"decoder\": {\"type\": \"ByteLevel\", \"add_prefix_space\": true, \"trim_offsets\": true, \"use_regex\": true},\n"
               "  \"model\": {\n    \"type\": \"BPE\",\n    \"dropout\": null,\n    \"unk_token\": null,\n"
               "    \"continuing_subword_prefix\": null,\n    \"end_of_word_suffix\": null,\n"
               "    \"fuse_unk\": false,\n    \"byte_fallback\": false,\n    \"ignore_merges\": false,\n"
               "    \"vocab\": {", eot);
    for (uint32_t i = 0; i < eot; i++) {
        fputs(i ? ",\n      " : "\n      ", f);
        write_mapped(f, t, i, buf);
        fprintf(f, ": %u", i);
    }
    fprintf(f, ",\n      \"<|endoftext|>\": %u\n    },\n    \"merges\": [", eot);
    for (uint32_t m = 0; m < t->nmerges; m++) {
        /* "A B": byte-level tokens never hold a space (it is spelled U+0120) */
        size_t na, nb;
        const char *a = ttt_bpe_token(t, t->merges[2 * m], &na);
        const char *b = ttt_bpe_token(t, t->merges[2 * m + 1], &nb);
        char *sa = malloc(2 * (na + nb) + 2);
        if (!sa) { free(buf); return ttt_seterr("out of memory"); }
        size_t k = ttt_tok_bytes_to_str(a, na, sa);
        sa[k++] = ' ';
        k += ttt_tok_bytes_to_str(b, nb, sa + k);
        fputs(m ? ",\n      " : "\n      ", f);
        json_write_str(f, sa, k);
        free(sa);
    }
    fputs(t->nmerges ? "\n    ]\n  }\n}\n" : "]\n  }\n}\n", f);
    free(buf);
    if (ferror(f)) return ttt_seterr("%s: write error: %s", name, strerror(errno));
    return 0;
}
