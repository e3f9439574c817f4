/* shard.c - token shard reader (shard.h; layout in shard_format.h and
 * man/ttt-formats.5).
 *
 * Open reads and checks the header, footer, index and document table, so
 * that every later offset and count is known to be consistent with the file
 * size before it is used. Token blocks are only decompressed when read; each
 * one is checked (zlib stream, exact raw size, XXH3-64, ids < vocab) every
 * time it is loaded. One decoded block is cached, so a reader is not
 * thread-safe: use one ttt_shard per thread.
 */
#include "shard.h"
#include "shard_format.h"   /* layout constants, ttt_get32/64 */
#include "err.h"            /* ttt_seterr */
#include "io.h"             /* ttt_foreign_format */

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>
#include <zlib.h>

struct ttt_shard {
    char *path;
    int fd;
    ttt_shard_info info;
    uint32_t block_tokens;
    unsigned char *index;     /* nblocks x TTT_SHD_IDX_LEN, checked */
    uint64_t *doc_start;      /* ndocs + 1 token offsets */
    uint64_t *doc_bytes;      /* ndocs */
    /* one-block cache */
    int64_t cached;           /* block number, -1 if none */
    uint32_t *tokens;         /* block_tokens ids */
    unsigned char *raw, *comp;
    size_t comp_cap;
};

typedef unsigned long long ull;

static int pread_full(ttt_shard *s, void *buf, size_t n, uint64_t off, const char *what)
{
    size_t done = 0;
    while (done < n) {
        ssize_t r = pread(s->fd, (char *)buf + done, n - done, (off_t)(off + done));
        if (r < 0) {
            if (errno == EINTR) continue;
            return ttt_seterr("%s: %s: read error: %s", s->path, what, strerror(errno));
        }
        if (r == 0) return ttt_seterr("%s: %s: unexpected end of file (file changed while open?)", s->path, what);
        done += (size_t)r;
    }
    return 0;
}

/* Inflates exactly comp[0..clen) into exactly raw[0..rlen); anything else
 * (bad stream, short, long, trailing bytes) is an error with a reason. */
static const char *inflate_exact(const unsigned char *comp, size_t clen, unsigned char *raw, size_t rlen)
{
    z_stream z;
    memset(&z, 0, sizeof z);
    if (inflateInit(&z) != Z_OK) return "zlib init failed";
    z.next_in = (unsigned char *)comp;
    z.avail_in = (uInt)clen;
    z.next_out = raw;
    z.avail_out = (uInt)rlen;
    int rc = inflate(&z, Z_FINISH);
    const char *why = NULL;
    if (rc == Z_STREAM_END) {
        if (z.total_out != rlen) why = "decompressed size differs from the index";
        else if (z.avail_in != 0) why = "trailing bytes after the zlib stream";
    } else if (rc == Z_DATA_ERROR) {
        why = z.msg ? z.msg : "invalid zlib data";
    } else if (rc == Z_BUF_ERROR && z.avail_out == 0) {
        why = "decompresses to more bytes than the index says";
    } else {
        why = "zlib stream ends early";
    }
    inflateEnd(&z);
    return why;
}

static int check_header(ttt_shard *s, const unsigned char *h, uint32_t hlen)
{
    uint64_t stored = ttt_get64(h + hlen - 8), comp = XXH3_64bits(h, hlen - 8);
    if (stored != comp)
        return ttt_seterr("%s: header: checksum mismatch (stored 0x%016llx, computed 0x%016llx)", s->path,
                          (ull)stored, (ull)comp);
    ttt_shard_info *in = &s->info;
    in->tok_hash = ttt_get64(h + TTT_SHD_H_TOKHASH);
    in->vocab = ttt_get32(h + TTT_SHD_H_VOCAB);
    in->eot = ttt_get32(h + TTT_SHD_H_EOT);
    in->token_width = (int)ttt_get32(h + TTT_SHD_H_WIDTH);
    s->block_tokens = in->block_tokens = ttt_get32(h + TTT_SHD_H_BLOCKTOK);
    uint64_t flags = ttt_get64(h + TTT_SHD_H_FLAGS);
    if (in->token_width != 2 && in->token_width != 4)
        return ttt_seterr("%s: header: token width %d (expected 2 or 4)", s->path, in->token_width);
    if (in->vocab == 0 || in->eot >= in->vocab)
        return ttt_seterr("%s: header: bad vocabulary (vocab %u, eot %u)", s->path, in->vocab, in->eot);
    if (in->token_width == 2 && in->vocab > 65536)
        return ttt_seterr("%s: header: vocab %u does not fit 2-byte tokens", s->path, in->vocab);
    if (s->block_tokens == 0 || s->block_tokens > TTT_SHD_MAX_BLOCK_TOKENS)
        return ttt_seterr("%s: header: block size %u tokens out of range (1..%u)", s->path, s->block_tokens,
                          TTT_SHD_MAX_BLOCK_TOKENS);
    if (flags != 0) return ttt_seterr("%s: header: unknown flags 0x%llx (written by a newer ttt?)", s->path, (ull)flags);
    return 0;
}

/* Index entries must tile the block area exactly, in order, with full
 * blocks except the last, so that token t lives in block t / block_tokens. */
static int check_index(ttt_shard *s, uint64_t hlen, uint64_t doctab_off)
{
    const ttt_shard_info *in = &s->info;
    uint64_t off = hlen, first = 0;
    uLong maxcomp = compressBound((uLong)s->block_tokens * (uLong)in->token_width);
    for (uint64_t b = 0; b < in->nblocks; b++) {
        const unsigned char *e = s->index + b * TTT_SHD_IDX_LEN;
        uint64_t eoff = ttt_get64(e + TTT_SHD_I_OFFSET), efirst = ttt_get64(e + TTT_SHD_I_FIRST);
        uint32_t ntok = ttt_get32(e + TTT_SHD_I_NTOK), comp = ttt_get32(e + TTT_SHD_I_COMP);
        if (eoff != off)
            return ttt_seterr("%s: block %llu: index says offset %llu, expected %llu", s->path, (ull)b, (ull)eoff, (ull)off);
        if (efirst != first)
            return ttt_seterr("%s: block %llu: index says first token %llu, expected %llu", s->path, (ull)b,
                              (ull)efirst, (ull)first);
        int last = b + 1 == in->nblocks;
        if (ntok == 0 || ntok > s->block_tokens || (!last && ntok != s->block_tokens))
            return ttt_seterr("%s: block %llu: bad token count %u (block size %u)", s->path, (ull)b, ntok, s->block_tokens);
        if (comp == 0 || comp > maxcomp)
            return ttt_seterr("%s: block %llu: bad compressed size %u", s->path, (ull)b, comp);
        if ((uint64_t)ntok * (uint64_t)in->token_width > (uint64_t)comp * TTT_SHD_ZLIB_MAX_RATIO + 64)
            return ttt_seterr("%s: block %llu: %u tokens cannot fit in %u compressed bytes", s->path, (ull)b, ntok, comp);
        off += comp;
        first += ntok;
        if (off > doctab_off)
            return ttt_seterr("%s: block %llu: extends past the block area (offset %llu > %llu)", s->path, (ull)b,
                              (ull)off, (ull)doctab_off);
    }
    if (off != doctab_off)
        return ttt_seterr("%s: index: blocks end at %llu but the document table starts at %llu", s->path, (ull)off,
                          (ull)doctab_off);
    if (first != in->ntokens)
        return ttt_seterr("%s: index: blocks hold %llu tokens, footer says %llu", s->path, (ull)first, (ull)in->ntokens);
    return 0;
}

static int load_doctab(ttt_shard *s, uint64_t off, uint64_t comp, uint64_t cxxh, uint64_t xxh)
{
    const ttt_shard_info *in = &s->info;
    if (in->ndocs > in->ntokens)
        return ttt_seterr("%s: footer: %llu documents but only %llu tokens", s->path, (ull)in->ndocs, (ull)in->ntokens);
    uint64_t rawlen = in->ndocs * TTT_SHD_DOC_LEN;
    if (comp == 0 || comp > ((uint64_t)1 << 32) || rawlen > comp * TTT_SHD_ZLIB_MAX_RATIO + 64 || rawlen > ((uint64_t)1 << 32))
        return ttt_seterr("%s: document table: implausible size (%llu documents in %llu bytes)", s->path,
                          (ull)in->ndocs, (ull)comp);
    unsigned char *c = malloc(comp), *raw = malloc(rawlen ? rawlen : 1);
    s->doc_start = malloc((in->ndocs + 1) * sizeof *s->doc_start);
    s->doc_bytes = malloc((in->ndocs ? in->ndocs : 1) * sizeof *s->doc_bytes);
    int rc = -1;
    if (!c || !raw || !s->doc_start || !s->doc_bytes) { ttt_seterr("%s: out of memory", s->path); goto out; }
    if (pread_full(s, c, comp, off, "document table")) goto out;
    uint64_t cgot = XXH3_64bits(c, comp);
    if (cgot != cxxh) {
        ttt_seterr("%s: document table: checksum mismatch in compressed bytes (stored 0x%016llx, computed 0x%016llx)",
                   s->path, (ull)cxxh, (ull)cgot);
        goto out;
    }
    const char *why = inflate_exact(c, comp, raw, rawlen);
    if (why) { ttt_seterr("%s: document table: %s", s->path, why); goto out; }
    uint64_t got = XXH3_64bits(raw, rawlen);
    if (got != xxh) {
        ttt_seterr("%s: document table: checksum mismatch (stored 0x%016llx, computed 0x%016llx)", s->path, (ull)xxh, (ull)got);
        goto out;
    }
    uint64_t pos = 0, bytes = 0;
    for (uint64_t i = 0; i < in->ndocs; i++) {
        uint64_t n = ttt_get64(raw + i * TTT_SHD_DOC_LEN), nb = ttt_get64(raw + i * TTT_SHD_DOC_LEN + 8);
        if (n == 0 || n > in->ntokens - pos) {
            ttt_seterr("%s: document %llu: bad token count %llu", s->path, (ull)i, (ull)n);
            goto out;
        }
        if (nb > UINT64_MAX - bytes) { ttt_seterr("%s: document %llu: byte count overflows", s->path, (ull)i); goto out; }
        s->doc_start[i] = pos;
        s->doc_bytes[i] = nb;
        pos += n;
        bytes += nb;
    }
    s->doc_start[in->ndocs] = pos;
    if (pos != in->ntokens) {
        ttt_seterr("%s: document table: documents hold %llu tokens, footer says %llu", s->path, (ull)pos, (ull)in->ntokens);
        goto out;
    }
    if (bytes != in->text_bytes) {
        ttt_seterr("%s: document table: documents hold %llu text bytes, footer says %llu", s->path, (ull)bytes,
                   (ull)in->text_bytes);
        goto out;
    }
    rc = 0;
out:
    free(c);
    free(raw);
    return rc;
}

static int open_checked(ttt_shard *s)
{
    struct stat st;
    if (fstat(s->fd, &st) != 0) return ttt_seterr("%s: %s", s->path, strerror(errno));
    if (!S_ISREG(st.st_mode)) return ttt_seterr("%s: not a regular file", s->path);
    uint64_t size = (uint64_t)st.st_size;
    s->info.file_bytes = size;
    unsigned char head[16];
    size_t nh = size < sizeof head ? (size_t)size : sizeof head;
    if (size == 0) return ttt_seterr("%s: empty file", s->path);
    if (pread_full(s, head, nh, 0, "header")) return -1;
    if (nh < 8 || memcmp(head, TTT_SHD_MAGIC, 8) != 0) {
        const char *foreign = ttt_foreign_format(head, nh);
        if (foreign) return ttt_seterr("%s: this is a %s file, not a ttt shard", s->path, foreign);
        if (nh >= 8 && !memcmp(head, "\x89TTTSTR\n", 8))
            return ttt_seterr("%s: this is a token stream, not a shard (make one with ttt-pack)", s->path);
        if (nh >= 7 && !memcmp(head, TTT_SHD_MAGIC, 7))
            return ttt_seterr("%s: bad magic (a ttt shard with a damaged or unknown 8th byte)", s->path);
        return ttt_seterr("%s: not a ttt shard (bad magic)", s->path);
    }
    if (nh < 16) return ttt_seterr("%s: truncated header (%llu bytes)", s->path, (ull)size);
    uint32_t ver = ttt_get32(head + TTT_SHD_H_VERSION), hlen = ttt_get32(head + TTT_SHD_H_HDRLEN);
    if (ver != TTT_SHD_VERSION) return ttt_seterr("%s: unsupported shard version %u (this ttt reads %u)", s->path, ver, TTT_SHD_VERSION);
    if (hlen < TTT_SHD_HDR_LEN || hlen > TTT_SHD_HDR_MAX)
        return ttt_seterr("%s: header: bad header length %u", s->path, hlen);
    if (size < (uint64_t)hlen + TTT_SHD_FTR_LEN)
        return ttt_seterr("%s: truncated (%llu bytes, smaller than header and footer)", s->path, (ull)size);
    unsigned char *h = malloc(hlen);
    if (!h) return ttt_seterr("%s: out of memory", s->path);
    int rc = pread_full(s, h, hlen, 0, "header");
    if (!rc) rc = check_header(s, h, hlen);
    free(h);
    if (rc) return -1;

    unsigned char f[TTT_SHD_FTR_LEN];
    if (pread_full(s, f, sizeof f, size - TTT_SHD_FTR_LEN, "footer")) return -1;
    if (memcmp(f + TTT_SHD_F_MAGIC, TTT_SHD_END, 8) != 0)
        return ttt_seterr("%s: no footer (truncated, or still being written)", s->path);
    uint64_t fx = ttt_get64(f + TTT_SHD_F_XXH), fc = XXH3_64bits(f, TTT_SHD_F_XXH);
    if (fx != fc)
        return ttt_seterr("%s: footer: checksum mismatch (stored 0x%016llx, computed 0x%016llx)", s->path, (ull)fx, (ull)fc);
    ttt_shard_info *in = &s->info;
    uint64_t idx_off = ttt_get64(f + TTT_SHD_F_INDEX);
    in->nblocks = ttt_get64(f + TTT_SHD_F_NBLOCKS);
    in->ntokens = ttt_get64(f + TTT_SHD_F_NTOKENS);
    in->ndocs = ttt_get64(f + TTT_SHD_F_NDOCS);
    in->text_bytes = ttt_get64(f + TTT_SHD_F_TEXTBYTES);
    uint64_t dt_off = ttt_get64(f + TTT_SHD_F_DOCTAB), dt_comp = ttt_get64(f + TTT_SHD_F_DOCCOMP);
    uint64_t dt_xxh = ttt_get64(f + TTT_SHD_F_DOCXXH), dt_cxxh = ttt_get64(f + TTT_SHD_F_DOCCXXH), idx_xxh = ttt_get64(f + TTT_SHD_F_IDXXXH);
    if (ttt_get64(f + TTT_SHD_F_FLAGS) != 0) return ttt_seterr("%s: footer: unknown flags (written by a newer ttt?)", s->path);
    uint64_t body = size - TTT_SHD_FTR_LEN;
    if (in->nblocks > (body - hlen) / TTT_SHD_IDX_LEN || idx_off != body - in->nblocks * TTT_SHD_IDX_LEN)
        return ttt_seterr("%s: footer: index (%llu blocks at %llu) does not end at the footer", s->path,
                          (ull)in->nblocks, (ull)idx_off);
    if (dt_off < hlen || dt_off > idx_off || dt_comp != idx_off - dt_off)
        return ttt_seterr("%s: footer: document table (%llu bytes at %llu) does not end at the index", s->path,
                          (ull)dt_comp, (ull)dt_off);
    if (in->ntokens > in->nblocks * (uint64_t)s->block_tokens)
        return ttt_seterr("%s: footer: %llu tokens do not fit %llu blocks", s->path, (ull)in->ntokens, (ull)in->nblocks);

    size_t ilen = (size_t)(in->nblocks * TTT_SHD_IDX_LEN);
    s->index = malloc(ilen ? ilen : 1);
    if (!s->index) return ttt_seterr("%s: out of memory", s->path);
    if (pread_full(s, s->index, ilen, idx_off, "index")) return -1;
    uint64_t ic = XXH3_64bits(s->index, ilen);
    if (ic != idx_xxh)
        return ttt_seterr("%s: index: checksum mismatch (stored 0x%016llx, computed 0x%016llx)", s->path, (ull)idx_xxh, (ull)ic);
    if (check_index(s, hlen, dt_off)) return -1;
    if (load_doctab(s, dt_off, dt_comp, dt_cxxh, dt_xxh)) return -1;

    size_t rawmax = (size_t)s->block_tokens * (size_t)in->token_width;
    s->tokens = malloc((size_t)s->block_tokens * sizeof *s->tokens);
    s->raw = malloc(rawmax);
    if (!s->tokens || !s->raw) return ttt_seterr("%s: out of memory", s->path);
    return 0;
}

ttt_shard *ttt_shard_open(const char *path)
{
    ttt_shard *s = calloc(1, sizeof *s);
    if (!s) { ttt_seterr("%s: out of memory", path); return NULL; }
    s->cached = -1;
    s->path = strdup(path);
    s->fd = open(path, O_RDONLY | O_CLOEXEC);
    if (!s->path || s->fd < 0) {
        ttt_seterr("%s: %s", path, s->path ? strerror(errno) : "out of memory");
        ttt_shard_close(s);
        return NULL;
    }
    if (open_checked(s)) {
        ttt_shard_close(s);
        return NULL;
    }
    return s;
}

void ttt_shard_close(ttt_shard *s)
{
    if (!s) return;
    if (s->fd >= 0) close(s->fd);
    free(s->path);
    free(s->index);
    free(s->doc_start);
    free(s->doc_bytes);
    free(s->tokens);
    free(s->raw);
    free(s->comp);
    free(s);
}

const ttt_shard_info *ttt_shard_get_info(const ttt_shard *s) { return &s->info; }

/* Loads block b into the cache, checking everything about it. */
static int load_block(ttt_shard *s, uint64_t b)
{
    if ((int64_t)b == s->cached) return 0;
    s->cached = -1;
    const unsigned char *e = s->index + b * TTT_SHD_IDX_LEN;
    uint64_t off = ttt_get64(e + TTT_SHD_I_OFFSET), want = ttt_get64(e + TTT_SHD_I_XXH);
    uint64_t cwant = ttt_get64(e + TTT_SHD_I_CXXH);
    uint32_t ntok = ttt_get32(e + TTT_SHD_I_NTOK), comp = ttt_get32(e + TTT_SHD_I_COMP);
    if (comp > s->comp_cap) {
        unsigned char *p = realloc(s->comp, comp);
        if (!p) return ttt_seterr("%s: out of memory", s->path);
        s->comp = p;
        s->comp_cap = comp;
    }
    char what[48];
    snprintf(what, sizeof what, "block %llu", (ull)b);
    if (pread_full(s, s->comp, comp, off, what)) return -1;
    uint64_t cgot = XXH3_64bits(s->comp, comp);
    if (cgot != cwant)
        return ttt_seterr("%s: block %llu: checksum mismatch in compressed bytes (stored 0x%016llx, computed 0x%016llx)",
                          s->path, (ull)b, (ull)cwant, (ull)cgot);
    int w = s->info.token_width;
    size_t rawlen = (size_t)ntok * (size_t)w;
    const char *why = inflate_exact(s->comp, comp, s->raw, rawlen);
    if (why) return ttt_seterr("%s: block %llu: corrupt zlib data (%s)", s->path, (ull)b, why);
    uint64_t got = XXH3_64bits(s->raw, rawlen);
    if (got != want)
        return ttt_seterr("%s: block %llu: checksum mismatch (stored 0x%016llx, computed 0x%016llx)", s->path, (ull)b,
                          (ull)want, (ull)got);
    for (uint32_t i = 0; i < ntok; i++) {
        const unsigned char *p = s->raw + (size_t)i * w;
        uint32_t id = w == 2 ? (uint32_t)p[0] | (uint32_t)p[1] << 8 : ttt_get32(p);
        if (id >= s->info.vocab)
            return ttt_seterr("%s: block %llu: token %llu is %u, outside the vocabulary (%u)", s->path, (ull)b,
                              (ull)(b * s->block_tokens + i), id, s->info.vocab);
        s->tokens[i] = id;
    }
    s->cached = (int64_t)b;
    return 0;
}

int ttt_shard_read(ttt_shard *s, uint64_t start, size_t n, uint32_t *out)
{
    uint64_t total = s->info.ntokens;
    if (start > total || n > total - start)
        return ttt_seterr("%s: tokens %llu..%llu requested, the shard has %llu", s->path, (ull)start,
                          (ull)(start + n), (ull)total);
    while (n > 0) {
        uint64_t b = start / s->block_tokens, in_block = start % s->block_tokens;
        if (load_block(s, b)) return -1;
        uint32_t ntok = ttt_get32(s->index + b * TTT_SHD_IDX_LEN + TTT_SHD_I_NTOK);
        size_t take = (size_t)(ntok - in_block);
        if (take > n) take = n;
        memcpy(out, s->tokens + in_block, take * sizeof *out);
        out += take;
        start += take;
        n -= take;
    }
    return 0;
}

int ttt_shard_doc(const ttt_shard *s, uint64_t i, uint64_t *start, uint64_t *ntok, uint64_t *nbytes)
{
    if (i >= s->info.ndocs)
        return ttt_seterr("%s: document %llu requested, the shard has %llu", s->path, (ull)i, (ull)s->info.ndocs);
    if (start) *start = s->doc_start[i];
    if (ntok) *ntok = s->doc_start[i + 1] - s->doc_start[i];
    if (nbytes) *nbytes = s->doc_bytes[i];
    return 0;
}

int ttt_shard_verify(ttt_shard *s)
{
    uint64_t d = 0;   /* next document whose last token is checked */
    for (uint64_t b = 0; b < s->info.nblocks; b++) {
        s->cached = -1;   /* verify reads from the file even if cached */
        if (load_block(s, b)) return -1;
        uint64_t first = b * s->block_tokens;
        uint32_t ntok = ttt_get32(s->index + b * TTT_SHD_IDX_LEN + TTT_SHD_I_NTOK);
        while (d < s->info.ndocs && s->doc_start[d + 1] - 1 < first + ntok) {
            uint64_t last = s->doc_start[d + 1] - 1;
            if (s->tokens[last - first] != s->info.eot)
                return ttt_seterr("%s: block %llu: document %llu does not end with eot (%u) but with %u", s->path,
                                  (ull)b, (ull)d, s->info.eot, s->tokens[last - first]);
            d++;
        }
    }
    return 0;
}

int ttt_shard_block(const ttt_shard *s, uint64_t i, uint64_t *first_token, uint32_t *ntok, uint32_t *comp_bytes)
{
    if (i >= s->info.nblocks)
        return ttt_seterr("%s: block %llu requested, the shard has %llu", s->path, (ull)i, (ull)s->info.nblocks);
    const unsigned char *e = s->index + i * TTT_SHD_IDX_LEN;
    if (first_token) *first_token = ttt_get64(e + TTT_SHD_I_FIRST);
    if (ntok) *ntok = ttt_get32(e + TTT_SHD_I_NTOK);
    if (comp_bytes) *comp_bytes = ttt_get32(e + TTT_SHD_I_COMP);
    return 0;
}

const char *ttt_shard_path(const ttt_shard *s) { return s->path; }
