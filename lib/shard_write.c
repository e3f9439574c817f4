/* shard_write.c - streaming token shard writer (shard.h; layout in
 * shard_format.h and man/ttt-formats.5).
 *
 * Tokens go out block by block as they arrive (a block holds block_tokens
 * tokens, documents may straddle blocks); the document table and the index
 * stay in memory (16 and 32 bytes per entry) and are written at close,
 * followed by the footer. The output is a ttt_atomic file: nothing appears
 * under the final name until close has fsync'ed and renamed it. The bytes
 * depend only on the documents and the parameters (no time stamps), so the
 * same input gives the same file.
 */
#include "shard.h"
#include "shard_format.h"   /* layout constants, ttt_put32/64 */
#include "err.h"            /* ttt_seterr */
#include "io.h"             /* ttt_atomic */

#include <stdlib.h>
#include <string.h>
#include <xxhash.h>
#include <zlib.h>

struct ttt_shard_writer {
    ttt_atomic out;
    ttt_shard_params p;
    int width;
    int failed;
    unsigned char *raw;       /* current block, fill tokens */
    uint32_t fill;
    unsigned char *comp;
    uLong comp_cap;
    unsigned char *index;     /* nblocks x TTT_SHD_IDX_LEN */
    uint64_t nblocks, index_cap;
    unsigned char *docs;      /* ndocs x TTT_SHD_DOC_LEN */
    uint64_t ndocs, docs_cap;
    uint64_t ntokens, text_bytes, offset;
};

typedef unsigned long long ull;

static int grow(unsigned char **p, uint64_t *cap, uint64_t need, size_t elem)
{
    if (need <= *cap) return 0;
    uint64_t n = *cap ? *cap * 2 : 64;
    while (n < need) n *= 2;
    unsigned char *q = realloc(*p, n * elem);
    if (!q) return -1;
    *p = q;
    *cap = n;
    return 0;
}

static int put(ttt_shard_writer *w, const void *b, size_t n)
{
    if (ttt_fwrite(w->out.f, b, n, w->out.path)) return -1;
    w->offset += n;
    return 0;
}

static int zcompress(ttt_shard_writer *w, const unsigned char *raw, size_t n, uLong *clen)
{
    uLong bound = compressBound((uLong)n);
    if (bound > w->comp_cap) {
        unsigned char *q = realloc(w->comp, bound);
        if (!q) return ttt_seterr("%s: out of memory", w->out.path);
        w->comp = q;
        w->comp_cap = bound;
    }
    *clen = bound;
    if (compress2(w->comp, clen, raw, (uLong)n, w->p.level) != Z_OK)
        return ttt_seterr("%s: zlib compression failed", w->out.path);
    return 0;
}

static int flush_block(ttt_shard_writer *w)
{
    if (w->fill == 0) return 0;
    size_t n = (size_t)w->fill * w->width;
    uLong clen;
    if (zcompress(w, w->raw, n, &clen)) return -1;
    if (grow(&w->index, &w->index_cap, w->nblocks + 1, TTT_SHD_IDX_LEN))
        return ttt_seterr("%s: out of memory", w->out.path);
    unsigned char *e = w->index + w->nblocks * TTT_SHD_IDX_LEN;
    ttt_put64(e + TTT_SHD_I_OFFSET, w->offset);
    ttt_put64(e + TTT_SHD_I_FIRST, w->ntokens - w->fill);
    ttt_put32(e + TTT_SHD_I_NTOK, w->fill);
    ttt_put32(e + TTT_SHD_I_COMP, (uint32_t)clen);
    ttt_put64(e + TTT_SHD_I_XXH, XXH3_64bits(w->raw, n));
    ttt_put64(e + TTT_SHD_I_CXXH, XXH3_64bits(w->comp, clen));
    if (put(w, w->comp, clen)) return -1;
    w->nblocks++;
    w->fill = 0;
    return 0;
}

ttt_shard_writer *ttt_shard_writer_open(const char *path, const ttt_shard_params *p)
{
    uint32_t bt = p->block_tokens ? p->block_tokens : TTT_SHD_DEFAULT_BLOCK_TOKENS;
    if (p->vocab == 0 || p->eot >= p->vocab) {
        ttt_seterr("%s: bad vocabulary (vocab %u, eot %u)", path, p->vocab, p->eot);
        return NULL;
    }
    if (p->level < 0 || p->level > 9 || bt > TTT_SHD_MAX_BLOCK_TOKENS) {
        ttt_seterr("%s: bad shard parameters (level %d, block tokens %u)", path, p->level, bt);
        ttt_seterrclass(TTT_ERR_USAGE);
        return NULL;
    }
    ttt_shard_writer *w = calloc(1, sizeof *w);
    if (!w) { ttt_seterr("%s: out of memory", path); return NULL; }
    w->p = *p;
    w->p.block_tokens = bt;
    w->width = p->vocab <= 65536 ? 2 : 4;
    w->raw = malloc((size_t)bt * w->width);
    if (!w->raw) { free(w); ttt_seterr("%s: out of memory", path); return NULL; }
    if (ttt_atomic_open(&w->out, path)) { free(w->raw); free(w); return NULL; }
    unsigned char h[TTT_SHD_HDR_LEN] = { 0 };
    memcpy(h, TTT_SHD_MAGIC, 8);
    ttt_put32(h + TTT_SHD_H_VERSION, TTT_SHD_VERSION);
    ttt_put32(h + TTT_SHD_H_HDRLEN, TTT_SHD_HDR_LEN);
    ttt_put64(h + TTT_SHD_H_TOKHASH, p->tok_hash);
    ttt_put32(h + TTT_SHD_H_VOCAB, p->vocab);
    ttt_put32(h + TTT_SHD_H_EOT, p->eot);
    ttt_put32(h + TTT_SHD_H_WIDTH, (uint32_t)w->width);
    ttt_put32(h + TTT_SHD_H_BLOCKTOK, bt);
    ttt_put64(h + TTT_SHD_HDR_LEN - 8, XXH3_64bits(h, TTT_SHD_HDR_LEN - 8));
    if (put(w, h, sizeof h)) { ttt_shard_writer_abort(w); return NULL; }
    return w;
}

int ttt_shard_writer_add_doc(ttt_shard_writer *w, const uint32_t *ids, size_t n, uint64_t nbytes)
{
    if (w->failed) return ttt_seterr("%s: writer already failed", w->out.path);
    uint64_t d = w->ndocs;
    if (n == 0) return ttt_seterr("%s: document %llu is empty", w->out.path, (ull)d);
    if (ids[n - 1] != w->p.eot)
        return ttt_seterr("%s: document %llu does not end with eot (%u)", w->out.path, (ull)d, w->p.eot);
    for (size_t i = 0; i < n; i++)
        if (ids[i] >= w->p.vocab)
            return ttt_seterr("%s: document %llu: token %u outside the vocabulary (%u)", w->out.path, (ull)d, ids[i], w->p.vocab);
    if (nbytes > UINT64_MAX - w->text_bytes) return ttt_seterr("%s: text byte count overflows", w->out.path);
    if (grow(&w->docs, &w->docs_cap, d + 1, TTT_SHD_DOC_LEN)) return ttt_seterr("%s: out of memory", w->out.path);
    for (size_t i = 0; i < n; i++) {
        unsigned char *q = w->raw + (size_t)w->fill * w->width;
        if (w->width == 2) { q[0] = (unsigned char)ids[i]; q[1] = (unsigned char)(ids[i] >> 8); }
        else ttt_put32(q, ids[i]);
        w->fill++;
        w->ntokens++;
        if (w->fill == w->p.block_tokens && flush_block(w)) { w->failed = 1; return -1; }
    }
    ttt_put64(w->docs + d * TTT_SHD_DOC_LEN, n);
    ttt_put64(w->docs + d * TTT_SHD_DOC_LEN + 8, nbytes);
    w->ndocs++;
    w->text_bytes += nbytes;
    return 0;
}

uint64_t ttt_shard_writer_tokens(const ttt_shard_writer *w) { return w->ntokens; }

int ttt_shard_writer_close(ttt_shard_writer *w)
{
    if (w->failed) { ttt_shard_writer_abort(w); return -1; }
    if (flush_block(w)) goto fail;
    uint64_t dt_off = w->offset;
    size_t dt_len = (size_t)(w->ndocs * TTT_SHD_DOC_LEN);
    uLong clen;
    if (zcompress(w, w->docs ? w->docs : (unsigned char *)"", dt_len, &clen)) goto fail;
    uint64_t dt_xxh = XXH3_64bits(w->docs, dt_len), dt_cxxh = XXH3_64bits(w->comp, clen);
    if (put(w, w->comp, clen)) goto fail;
    uint64_t idx_off = w->offset;
    size_t ilen = (size_t)(w->nblocks * TTT_SHD_IDX_LEN);
    if (put(w, w->index, ilen)) goto fail;
    unsigned char f[TTT_SHD_FTR_LEN] = { 0 };
    ttt_put64(f + TTT_SHD_F_INDEX, idx_off);
    ttt_put64(f + TTT_SHD_F_NBLOCKS, w->nblocks);
    ttt_put64(f + TTT_SHD_F_NTOKENS, w->ntokens);
    ttt_put64(f + TTT_SHD_F_NDOCS, w->ndocs);
    ttt_put64(f + TTT_SHD_F_TEXTBYTES, w->text_bytes);
    ttt_put64(f + TTT_SHD_F_DOCTAB, dt_off);
    ttt_put64(f + TTT_SHD_F_DOCCOMP, clen);
    ttt_put64(f + TTT_SHD_F_DOCXXH, dt_xxh);
    ttt_put64(f + TTT_SHD_F_DOCCXXH, dt_cxxh);
    ttt_put64(f + TTT_SHD_F_IDXXXH, XXH3_64bits(w->index, ilen));
    ttt_put64(f + TTT_SHD_F_XXH, XXH3_64bits(f, TTT_SHD_F_XXH));
    memcpy(f + TTT_SHD_F_MAGIC, TTT_SHD_END, 8);
    if (put(w, f, sizeof f)) goto fail;
    int rc = ttt_atomic_commit(&w->out);   /* aborts the temp file itself on failure */
    w->failed = 1;
    w->out.f = NULL;
    ttt_shard_writer_abort(w);
    return rc;
fail:
    ttt_shard_writer_abort(w);
    return -1;
}

void ttt_shard_writer_abort(ttt_shard_writer *w)
{
    if (!w) return;
    if (w->out.f || w->out.tmp) ttt_atomic_abort(&w->out);
    free(w->raw);
    free(w->comp);
    free(w->index);
    free(w->docs);
    free(w);
}
