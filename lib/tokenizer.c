/* tokenizer.c - byte-level BPE tokenizer: loads a Hugging Face
 * tokenizer.json (ours or GPT-2's layout), encodes and decodes, hashes.
 *
 * Encoding: GPT-2 pre-tokenization (pretok.h), then for each piece the
 * standard rank-ordered BPE: repeatedly merge the adjacent pair with the
 * lowest merge rank, leftmost first. Results per piece are cached (piece
 * bytes -> ids), so running text costs mostly one hash lookup per piece.
 * Special tokens are never matched in text: text is text.
 *
 * Not thread-safe: one tokenizer is used by one thread at a time (the
 * cache and the PCRE2 match data are per tokenizer).
 */
#include "tokenizer.h"
#include "err.h"         /* ttt_seterr */
#include "io.h"          /* ttt_read_file */
#include "json.h"        /* json_parse, json_get */
#include "pretok.h"      /* ttt_pretok_next */
#include "tok_bytes.h"   /* byte <-> Unicode mapping, pair hash */

#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#define EOT_TEXT "<|endoftext|>"
#define CACHE_MAX_PIECE 128        /* longer pieces are rare: not cached */
#define CACHE_MAX_ENTRIES (1u << 20)

typedef struct {
    uint64_t h;
    uint32_t boff, blen;   /* piece bytes in cache_bytes */
    uint32_t ioff, nids;   /* ids in cache_ids */
} cache_ent;

struct ttt_tokenizer {
    uint32_t V;
    char *arena;             /* token bytes, all tokens back to back */
    size_t *off;             /* V+1 offsets into arena */
    unsigned char *flags;    /* 1 present, 2 special */
    uint32_t byte_id[256];
    uint32_t eot;
    uint64_t hash;

    uint32_t nmerges;
    uint32_t *merges;        /* 2 * nmerges: left, right by rank */
    uint64_t *mkey;          /* merge table: (left << 32 | right) + 1, 0 = empty */
    uint64_t *mval;          /* rank << 32 | new id */
    size_t mmask;

    ttt_pretok *pt;
    cache_ent *cache;
    size_t cmask, cused;
    char *cbytes; size_t cblen, cbcap;
    uint32_t *cids; size_t cilen, cicap;

    /* scratch for one piece */
    uint32_t *sym; int32_t *nxt, *prv; size_t scap;
    uint64_t *heap; size_t hcap;
};

/* Merge lookup: returns 1 and sets rank/new id if (a, b) is a merge. */
static inline int merge_find(const ttt_tokenizer *t, uint32_t a, uint32_t b, uint32_t *rank, uint32_t *nid)
{
    uint64_t key = ((uint64_t)a << 32 | b) + 1;
    for (size_t i = ttt_tok_pair_hash(key) & t->mmask;; i = (i + 1) & t->mmask) {
        if (t->mkey[i] == key) { *rank = (uint32_t)(t->mval[i] >> 32); *nid = (uint32_t)t->mval[i]; return 1; }
        if (!t->mkey[i]) return 0;
    }
}

/* ---- string -> id map used while loading ---- */

typedef struct { const char *s; size_t n; uint32_t id; } smap_ent;
typedef struct { smap_ent *e; size_t mask; } smap;

static int smap_init(smap *m, size_t n)
{
    size_t cap = 16;
    while (cap < 2 * n + 16) cap *= 2;
    m->e = calloc(cap, sizeof *m->e);
    m->mask = cap - 1;
    return m->e ? 0 : ttt_seterr("out of memory");
}

/* Returns the slot for s (empty slot if absent). */
static smap_ent *smap_slot(smap *m, const char *s, size_t n)
{
    for (size_t i = XXH3_64bits(s, n) & m->mask;; i = (i + 1) & m->mask) {
        smap_ent *e = &m->e[i];
        if (!e->s || (e->n == n && !memcmp(e->s, s, n))) return e;
    }
}

/* ---- loading ---- */

static int get_id(const json *v, uint32_t *id)
{
    if (!v || v->type != JSON_NUM || v->num < 0 || v->num > 16777215 || v->num != (double)(uint32_t)v->num) return -1;
    *id = (uint32_t)v->num;
    return 0;
}

/* Splits one merge entry ("a b" or ["a", "b"]) into its two strings. */
static int merge_parts(const json *m, const char **a, size_t *an, const char **b, size_t *bn)
{
    if (m->type == JSON_STR) {
        const char *sp = memchr(m->str, ' ', m->len);
        if (!sp || memchr(sp + 1, ' ', m->len - (size_t)(sp + 1 - m->str))) return -1;
        *a = m->str; *an = (size_t)(sp - m->str);
        *b = sp + 1; *bn = m->len - *an - 1;
        return 0;
    }
    if (m->type == JSON_ARR && m->len == 2 && m->items[0].type == JSON_STR && m->items[1].type == JSON_STR) {
        *a = m->items[0].str; *an = m->items[0].len;
        *b = m->items[1].str; *bn = m->items[1].len;
        return 0;
    }
    return -1;
}

static uint64_t compute_hash(const ttt_tokenizer *t)
{
    XXH3_state_t *st = XXH3_createState();
    XXH3_64bits_reset(st);
    unsigned char b[8];
    XXH3_64bits_update(st, "ttt-bpe-v1", 10);
#define PUT32(v) do { uint32_t v_ = (v); for (int k = 0; k < 4; k++) b[k] = (unsigned char)(v_ >> 8 * k); \
                      XXH3_64bits_update(st, b, 4); } while (0)
    PUT32(t->V);
    for (uint32_t i = 0; i < t->V; i++) {
        uint32_t len = (uint32_t)(t->off[i + 1] - t->off[i]);
        PUT32((t->flags[i] & 1) ? len : 0xFFFFFFFFu);   /* a gap in the ids differs from "" */
        XXH3_64bits_update(st, t->arena + t->off[i], len);
    }
    PUT32(t->nmerges);
    for (uint32_t i = 0; i < 2 * t->nmerges; i++) PUT32(t->merges[i]);
    uint32_t nspec = 0;
    for (uint32_t i = 0; i < t->V; i++) nspec += (t->flags[i] & 2) != 0;
    PUT32(nspec);
    for (uint32_t i = 0; i < t->V; i++)
        if (t->flags[i] & 2) PUT32(i);
#undef PUT32
    uint64_t h = XXH3_64bits_digest(st);
    XXH3_freeState(st);
    return h;
}

/* Builds the tokenizer from a parsed document; errors name no file (the
 * caller prefixes it). */
static int build(ttt_tokenizer *t, const json *root)
{
    if (!root || root->type != JSON_OBJ) return ttt_seterr("not a JSON object");
    const json *model = json_get(root, "model");
    if (!model || model->type != JSON_OBJ) return ttt_seterr("no \"model\" object (not a tokenizer.json)");
    const char *type = json_get_str(model, "type");
    if (type && strcmp(type, "BPE")) return ttt_seterr("model type is \"%s\", only BPE is supported", type);
    const json *vocab = json_get(model, "vocab");
    const json *merges = json_get(model, "merges");
    if (!vocab || vocab->type != JSON_OBJ) return ttt_seterr("model has no \"vocab\" object");
    if (!merges || merges->type != JSON_ARR) return ttt_seterr("model has no \"merges\" array");
    const json *added = json_get(root, "added_tokens");
    if (added && added->type != JSON_ARR) return ttt_seterr("\"added_tokens\" is not an array");
    size_t nadded = added ? added->len : 0;

    /* ids and total size */
    uint32_t V = 0;
    size_t bytes = 0;
    for (size_t i = 0; i < vocab->len; i++) {
        uint32_t id;
        if (get_id(&vocab->items[i], &id)) return ttt_seterr("vocab entry %zu: id is not an integer in 0..16777215", i);
        if (id + 1 > V) V = id + 1;
        bytes += strlen(vocab->keys[i]);
    }
    for (size_t i = 0; i < nadded; i++) {
        const json *a = &added->items[i];
        uint32_t id;
        const char *content = json_get_str(a, "content");
        if (get_id(json_get(a, "id"), &id) || !content) return ttt_seterr("added_tokens[%zu]: needs an integer id and a content string", i);
        if (id + 1 > V) V = id + 1;
        bytes += json_get(a, "content")->len;
    }
    if (V == 0) return ttt_seterr("empty vocabulary");
    t->V = V;
    t->arena = malloc(bytes + 1);
    t->off = calloc((size_t)V + 1, sizeof *t->off);
    t->flags = calloc(V, 1);
    size_t *len = calloc(V, sizeof *len);
    const char **src = calloc(V, sizeof *src);
    smap names = { 0 };
    if (!t->arena || !t->off || !t->flags || !len || !src || smap_init(&names, vocab->len)) {
        free(len); free(src); free(names.e);
        return ttt_seterr("out of memory");
    }
    int rc = -1;
    char *tmp = malloc(bytes + 1);
    if (!tmp) { ttt_seterr("out of memory"); goto out; }
    /* token bytes: vocab keys spelled in the byte mapping; added tokens raw */
    size_t used = 0;
    for (size_t i = 0; i < vocab->len; i++) {
        uint32_t id = (uint32_t)vocab->items[i].num;
        const char *k = vocab->keys[i];
        size_t kn = strlen(k);
        if (t->flags[id]) { ttt_seterr("vocab: id %u is used twice", id); goto out; }
        smap_ent *e = smap_slot(&names, k, kn);
        if (e->s) { ttt_seterr("vocab: token \"%s\" appears twice", k); goto out; }
        *e = (smap_ent){ k, kn, id };
        long n = ttt_tok_str_to_bytes(k, kn, tmp + used);
        if (n < 0) {
            /* not spelled in the byte mapping: allowed only for added tokens */
            int ok = 0;
            for (size_t j = 0; j < nadded && !ok; j++) {
                const char *c = json_get_str(&added->items[j], "content");
                ok = c && !strcmp(c, k);
            }
            if (!ok) { ttt_seterr("vocab: token \"%s\" is not byte-level (GPT-2 byte mapping)", k); goto out; }
            memcpy(tmp + used, k, kn);
            n = (long)kn;
        }
        src[id] = tmp + used;
        len[id] = (size_t)n;
        used += (size_t)n;
        t->flags[id] = 1;
    }
    for (size_t i = 0; i < nadded; i++) {
        const json *a = &added->items[i];
        uint32_t id = 0;
        get_id(json_get(a, "id"), &id);
        const json *c = json_get(a, "content");
        const json *sp = json_get(a, "special");
        if (t->flags[id] && (len[id] != c->len || memcmp(src[id], c->str, c->len))) {
            ttt_seterr("added_tokens[%zu]: id %u is \"%s\" in the vocab", i, id, c->str);
            goto out;
        }
        src[id] = c->str;
        len[id] = c->len;
        t->flags[id] |= 1;
        if (!sp || (sp->type == JSON_BOOL && sp->boolean)) t->flags[id] |= 2;
    }
    size_t o = 0;
    for (uint32_t i = 0; i < V; i++) {
        t->off[i] = o;
        if (len[i]) memcpy(t->arena + o, src[i], len[i]);
        o += len[i];
    }
    t->off[V] = o;

    /* byte tokens */
    for (int b = 0; b < 256; b++) {
        char k[4];
        char c = (char)b;
        size_t kn = ttt_tok_bytes_to_str(&c, 1, k);
        smap_ent *e = smap_slot(&names, k, kn);
        if (!e->s) { ttt_seterr("vocab has no token for byte 0x%02x (not a byte-level BPE vocabulary)", b); goto out; }
        t->byte_id[b] = e->id;
    }

    /* merges */
    if (merges->len > 0xFFFFFFFu) { ttt_seterr("too many merges"); goto out; }
    t->nmerges = (uint32_t)merges->len;
    t->merges = malloc(2 * (size_t)t->nmerges * sizeof *t->merges + 1);
    size_t mcap = 16;
    while (mcap < 2 * (size_t)t->nmerges + 16) mcap *= 2;
    t->mkey = calloc(mcap, sizeof *t->mkey);
    t->mval = calloc(mcap, sizeof *t->mval);
    t->mmask = mcap - 1;
    if (!t->merges || !t->mkey || !t->mval) { ttt_seterr("out of memory"); goto out; }
    char *cat = NULL;
    size_t catcap = 0;
    for (uint32_t r = 0; r < t->nmerges; r++) {
        const char *a, *b;
        size_t an, bn;
        if (merge_parts(&merges->items[r], &a, &an, &b, &bn)) {
            free(cat);
            ttt_seterr("merges[%u]: expected \"A B\" or [\"A\", \"B\"]", r);
            goto out;
        }
        smap_ent *ea = smap_slot(&names, a, an), *eb = smap_slot(&names, b, bn);
        if (!ea->s || !eb->s) {
            free(cat);
            ttt_seterr("merges[%u]: \"%.*s\" is not in the vocabulary", r, (int)(ea->s ? bn : an), ea->s ? b : a);
            goto out;
        }
        uint32_t ia = ea->id, ib = eb->id;
        if (ttt_tok_grow((void **)&cat, &catcap, an + bn, 1)) goto out;
        memcpy(cat, a, an);
        memcpy(cat + an, b, bn);
        smap_ent *ez = smap_slot(&names, cat, an + bn);
        if (!ez->s) {
            ttt_seterr("merges[%u]: result \"%.*s\" is not in the vocabulary", r, (int)(an + bn), cat);
            free(cat);
            goto out;
        }
        t->merges[2 * r] = ia;
        t->merges[2 * r + 1] = ib;
        uint64_t key = ((uint64_t)ia << 32 | ib) + 1;
        size_t s = ttt_tok_pair_hash(key) & t->mmask;
        while (t->mkey[s] && t->mkey[s] != key) s = (s + 1) & t->mmask;
        if (!t->mkey[s]) {   /* a repeated merge keeps its first (lowest) rank */
            t->mkey[s] = key;
            t->mval[s] = (uint64_t)r << 32 | ez->id;
        }
    }
    free(cat);

    /* end of text */
    uint32_t eot = UINT32_MAX;
    for (uint32_t i = 0; i < V; i++)
        if ((t->flags[i] & 1) && t->off[i + 1] - t->off[i] == strlen(EOT_TEXT) &&
            !memcmp(t->arena + t->off[i], EOT_TEXT, strlen(EOT_TEXT)) && (eot == UINT32_MAX || (t->flags[i] & 2)))
            eot = i;
    if (eot == UINT32_MAX) { ttt_seterr("no " EOT_TEXT " token (ttt needs an end-of-text token)"); goto out; }
    t->eot = eot;
    t->flags[eot] |= 2;
    t->hash = compute_hash(t);
    rc = 0;
out:
    free(tmp);
    free(len);
    free(src);
    free(names.e);
    return rc;
}

ttt_tokenizer *ttt_tokenizer_load(const char *path)
{
    char *buf;
    size_t n;
    if (ttt_read_file(path, &buf, &n)) return NULL;
    if (n == 0) { free(buf); ttt_seterr("%s: empty file (expected a tokenizer.json)", path); return NULL; }
    const char *foreign = ttt_foreign_format((const unsigned char *)buf, n);
    if (foreign) { free(buf); ttt_seterr("%s: this is a %s file, not a tokenizer.json", path, foreign); return NULL; }
    json *root = json_parse(buf, n);
    free(buf);
    if (!root) { ttt_preferr("%s", path); return NULL; }
    ttt_tokenizer *t = calloc(1, sizeof *t);
    if (!t) { json_free(root); ttt_seterr("out of memory"); return NULL; }
    int rc = build(t, root);
    json_free(root);
    if (rc == 0 && !(t->pt = ttt_pretok_new())) rc = -1;
    if (rc) {
        ttt_preferr("%s", path);
        ttt_tokenizer_free(t);
        return NULL;
    }
    return t;
}

void ttt_tokenizer_free(ttt_tokenizer *t)
{
    if (!t) return;
    free(t->arena); free(t->off); free(t->flags);
    free(t->merges); free(t->mkey); free(t->mval);
    ttt_pretok_free(t->pt);
    free(t->cache); free(t->cbytes); free(t->cids);
    free(t->sym); free(t->nxt); free(t->prv); free(t->heap);
    free(t);
}

uint32_t ttt_tokenizer_vocab_size(const ttt_tokenizer *t) { return t->V; }
uint64_t ttt_tokenizer_hash(const ttt_tokenizer *t) { return t->hash; }
uint32_t ttt_tokenizer_eot(const ttt_tokenizer *t) { return t->eot; }

const char *ttt_tokenizer_token(const ttt_tokenizer *t, uint32_t id, size_t *len)
{
    if (id >= t->V || !(t->flags[id] & 1)) { if (len) *len = 0; return NULL; }
    if (len) *len = t->off[id + 1] - t->off[id];
    return t->arena + t->off[id];
}

int ttt_tokenizer_is_special(const ttt_tokenizer *t, uint32_t id)
{
    return id < t->V && (t->flags[id] & 2);
}

/* ---- BPE on one piece ---- */

/* Heap of (rank << 32 | position): the lowest rank, then the leftmost. */
static void heap_push(uint64_t *h, size_t *n, uint64_t v)
{
    size_t i = (*n)++;
    while (i && h[(i - 1) / 2] > v) { h[i] = h[(i - 1) / 2]; i = (i - 1) / 2; }
    h[i] = v;
}

static uint64_t heap_pop(uint64_t *h, size_t *n)
{
    uint64_t top = h[0], v = h[--*n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= *n) break;
        if (c + 1 < *n && h[c + 1] < h[c]) c++;
        if (h[c] >= v) break;
        h[i] = h[c];
        i = c;
    }
    h[i] = v;
    return top;
}

/* Writes the ids of piece s[0..n) to t->sym[0..count) and returns count. */
static long bpe_piece(ttt_tokenizer *t, const unsigned char *s, size_t n)
{
    if (ttt_tok_grow((void **)&t->sym, &t->scap, n, sizeof *t->sym)) return -1;
    uint32_t *sym = t->sym;
    for (size_t i = 0; i < n; i++) sym[i] = t->byte_id[s[i]];
    if (n < 2) return (long)n;
    if (n <= 24) {
        /* short pieces: scan for the best pair, merge, repeat */
        size_t m = n;
        for (;;) {
            uint32_t best = UINT32_MAX, bid = 0, r, z;
            size_t at = 0;
            for (size_t i = 0; i + 1 < m; i++)
                if (merge_find(t, sym[i], sym[i + 1], &r, &z) && r < best) { best = r; bid = z; at = i; }
            if (best == UINT32_MAX) return (long)m;
            sym[at] = bid;
            memmove(sym + at + 1, sym + at + 2, (m - at - 2) * sizeof *sym);
            m--;
        }
    }
    /* long pieces: linked list + heap, O(n log n); the heap holds at most
     * n - 1 initial entries plus two per merge, so 3n */
    size_t cap = t->scap;
    if (!t->nxt || cap > t->hcap) {
        int32_t *a = realloc(t->nxt, cap * sizeof *a), *b = a ? realloc(t->prv, cap * sizeof *b) : NULL;
        if (a) t->nxt = a;
        if (b) t->prv = b;
        uint64_t *h = b ? realloc(t->heap, 3 * cap * sizeof *h) : NULL;
        if (!h) return ttt_seterr("out of memory");
        t->heap = h;
        t->hcap = cap;
    }
    int32_t *nx = t->nxt, *pv = t->prv;
    uint64_t *h = t->heap;
    size_t hn = 0;
    for (size_t i = 0; i < n; i++) { nx[i] = i + 1 < n ? (int32_t)(i + 1) : -1; pv[i] = (int32_t)i - 1; }
    uint32_t r, z;
    for (size_t i = 0; i + 1 < n; i++)
        if (merge_find(t, sym[i], sym[i + 1], &r, &z)) heap_push(h, &hn, (uint64_t)r << 32 | i);
    while (hn) {
        uint64_t top = heap_pop(h, &hn);
        uint32_t rank = (uint32_t)(top >> 32), i = (uint32_t)top;
        if (sym[i] == UINT32_MAX || nx[i] < 0) continue;          /* gone */
        int32_t j = nx[i];
        if (!merge_find(t, sym[i], sym[j], &r, &z) || r != rank) continue;   /* stale */
        sym[i] = z;
        sym[j] = UINT32_MAX;
        nx[i] = nx[j];
        if (nx[j] >= 0) pv[nx[j]] = (int32_t)i;
        if (pv[i] >= 0 && merge_find(t, sym[pv[i]], sym[i], &r, &z)) heap_push(h, &hn, (uint64_t)r << 32 | (uint32_t)pv[i]);
        if (nx[i] >= 0 && merge_find(t, sym[i], sym[nx[i]], &r, &z)) heap_push(h, &hn, (uint64_t)r << 32 | i);
    }
    size_t m = 0;
    for (int32_t i = 0; i >= 0; i = nx[i]) sym[m++] = sym[i];
    return (long)m;
}

/* ---- cache ---- */

static void cache_clear(ttt_tokenizer *t)
{
    if (t->cache) memset(t->cache, 0, (t->cmask + 1) * sizeof *t->cache);
    t->cused = t->cblen = t->cilen = 0;
}

static int cache_ensure(ttt_tokenizer *t)
{
    if (t->cache && t->cused * 2 < t->cmask + 1) return 0;
    if (t->cache && t->cmask + 1 >= 2 * CACHE_MAX_ENTRIES) { cache_clear(t); return 0; }
    size_t ncap = t->cache ? 2 * (t->cmask + 1) : 4096;
    cache_ent *ne = calloc(ncap, sizeof *ne);
    if (!ne) return ttt_seterr("out of memory");
    for (size_t i = 0; t->cache && i <= t->cmask; i++) {
        if (!t->cache[i].h) continue;
        size_t s = t->cache[i].h & (ncap - 1);
        while (ne[s].h) s = (s + 1) & (ncap - 1);
        ne[s] = t->cache[i];
    }
    free(t->cache);
    t->cache = ne;
    t->cmask = ncap - 1;
    return 0;
}

int ttt_tokenizer_encode(const ttt_tokenizer *tc, const char *text, size_t n,
                         uint32_t **ids, size_t *nids, size_t *cap)
{
    ttt_tokenizer *t = (ttt_tokenizer *)tc;   /* the cache is mutable state */
    size_t pos = 0, st, len;
    int rc;
    while ((rc = ttt_pretok_next(t->pt, text, n, &pos, &st, &len)) == 1) {
        const char *p = text + st;
        uint64_t h = 0;
        cache_ent *e = NULL;
        if (len <= CACHE_MAX_PIECE) {
            if (cache_ensure(t)) return -1;
            h = XXH3_64bits(p, len) | 1;   /* 0 marks an empty slot */
            size_t s = h & t->cmask;
            for (;; s = (s + 1) & t->cmask) {
                e = &t->cache[s];
                if (!e->h) break;
                if (e->h == h && e->blen == len && !memcmp(t->cbytes + e->boff, p, len)) {
                    if (ttt_tok_grow((void **)ids, cap, *nids + e->nids, sizeof **ids)) return -1;
                    memcpy(*ids + *nids, t->cids + e->ioff, e->nids * sizeof **ids);
                    *nids += e->nids;
                    goto next;
                }
            }
        }
        long m = bpe_piece(t, (const unsigned char *)p, len);
        if (m < 0) return -1;
        if (ttt_tok_grow((void **)ids, cap, *nids + (size_t)m, sizeof **ids)) return -1;
        memcpy(*ids + *nids, t->sym, (size_t)m * sizeof **ids);
        *nids += (size_t)m;
        if (e) {
            if (t->cblen + len > UINT32_MAX / 2 || t->cilen + (size_t)m > UINT32_MAX / 2) { cache_clear(t); goto next; }
            if (ttt_tok_grow((void **)&t->cbytes, &t->cbcap, t->cblen + len, 1) ||
                ttt_tok_grow((void **)&t->cids, &t->cicap, t->cilen + (size_t)m, sizeof *t->cids)) return -1;
            memcpy(t->cbytes + t->cblen, p, len);
            memcpy(t->cids + t->cilen, t->sym, (size_t)m * sizeof *t->cids);
            *e = (cache_ent){ h, (uint32_t)t->cblen, (uint32_t)len, (uint32_t)t->cilen, (uint32_t)m };
            t->cblen += len;
            t->cilen += (size_t)m;
            t->cused++;
        }
    next:;
    }
    return rc < 0 ? -1 : 0;
}

int ttt_tokenizer_decode(const ttt_tokenizer *t, const uint32_t *ids, size_t n,
                         char **out, size_t *len, size_t *cap)
{
    for (size_t i = 0; i < n; i++) {
        uint32_t id = ids[i];
        if (id >= t->V || !(t->flags[id] & 1))
            return ttt_seterr("token id %u is not in the vocabulary (size %u)", id, t->V);
        size_t l = t->off[id + 1] - t->off[id];
        if (ttt_tok_grow((void **)out, cap, *len + l + 1, 1)) return -1;
        memcpy(*out + *len, t->arena + t->off[id], l);
        *len += l;
    }
    return 0;
}

uint32_t ttt_tokenizer_num_merges(const ttt_tokenizer *t) { return t->nmerges; }
