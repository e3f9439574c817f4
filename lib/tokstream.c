/* tokstream.c - token stream reader and writer (see tokstream.h). */
#include "tokstream.h"
#include "err.h"
#include "io.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static void put32(unsigned char *p, uint32_t v) { for (int i = 0; i < 4; i++) p[i] = (unsigned char)(v >> 8 * i); }
static void put64(unsigned char *p, uint64_t v) { for (int i = 0; i < 8; i++) p[i] = (unsigned char)(v >> 8 * i); }
static uint32_t get32(const unsigned char *p) { uint32_t v = 0; for (int i = 3; i >= 0; i--) v = v << 8 | p[i]; return v; }
static uint64_t get64(const unsigned char *p) { uint64_t v = 0; for (int i = 7; i >= 0; i--) v = v << 8 | p[i]; return v; }

int ttt_tokstream_write_header(FILE *f, const char *name, const ttt_tokstream_header *h)
{
    unsigned char b[32] = { 0 };
    memcpy(b, TTT_TOKSTREAM_MAGIC, 8);
    put32(b + 8, 1);
    put32(b + 12, h->vocab);
    put64(b + 16, h->tok_hash);
    put32(b + 24, h->eot);
    return ttt_fwrite(f, b, sizeof b, name);
}

int ttt_tokstream_write_doc(FILE *f, const char *name, const uint32_t *ids, uint32_t n, uint64_t nbytes)
{
    unsigned char b[12];
    put32(b, n);
    put64(b + 4, nbytes);
    if (ttt_fwrite(f, b, sizeof b, name)) return -1;
    /* ids are little-endian u32; x86 and arm64 are little-endian hosts */
    return ttt_fwrite(f, ids, (size_t)n * 4, name);
}

int ttt_tokstream_write_end(FILE *f, const char *name, uint64_t ndocs)
{
    unsigned char b[12];
    put32(b, TTT_TOKSTREAM_END);
    put64(b + 4, ndocs);
    return ttt_fwrite(f, b, sizeof b, name);
}

int ttt_tokstream_open(ttt_tokstream_reader *r, FILE *f, const char *name)
{
    memset(r, 0, sizeof *r);
    r->f = f;
    r->name = name;
    unsigned char b[32];
    size_t got = fread(b, 1, sizeof b, f);
    if (got == 0) return ttt_seterr("%s: empty input (expected a token stream from 'ttt-tokenize encode')", name);
    if (got < 8 || memcmp(b, TTT_TOKSTREAM_MAGIC, 8) != 0) {
        const char *foreign = ttt_foreign_format(b, got);
        if (foreign) return ttt_seterr("%s: this is a %s file, not a ttt token stream", name, foreign);
        if (got >= 8 && !memcmp(b, "\x89TTTSHD", 7)) return ttt_seterr("%s: this is a ttt shard, not a token stream", name);
        return ttt_seterr("%s: not a ttt token stream (bad magic)", name);
    }
    if (got < sizeof b) return ttt_seterr("%s: truncated header (%zu of 32 bytes)", name, got);
    uint32_t ver = get32(b + 8);
    if (ver != 1) return ttt_seterr("%s: unsupported token stream version %u", name, ver);
    r->hdr.vocab = get32(b + 12);
    r->hdr.tok_hash = get64(b + 16);
    r->hdr.eot = get32(b + 24);
    if (r->hdr.vocab == 0 || r->hdr.eot >= r->hdr.vocab)
        return ttt_seterr("%s: bad header (vocab %u, eot %u)", name, r->hdr.vocab, r->hdr.eot);
    return 0;
}

int ttt_tokstream_next(ttt_tokstream_reader *r, uint32_t **ids, uint32_t *n, size_t *cap, uint64_t *nbytes)
{
    if (r->done) return 0;
    unsigned char b[12];
    size_t got = fread(b, 1, sizeof b, r->f);
    if (got != sizeof b) {
        if (ferror(r->f)) return ttt_seterr("%s: read error: %s", r->name, strerror(errno));
        return ttt_seterr("%s: truncated token stream after %llu documents (no end marker)", r->name,
                          (unsigned long long)r->docs);
    }
    uint32_t cnt = get32(b);
    uint64_t nb = get64(b + 4);
    if (cnt == TTT_TOKSTREAM_END) {
        if (nb != r->docs)
            return ttt_seterr("%s: end marker counts %llu documents, stream had %llu", r->name,
                              (unsigned long long)nb, (unsigned long long)r->docs);
        r->done = 1;
        return 0;
    }
    if (cnt == 0) return ttt_seterr("%s: document %llu: empty record", r->name, (unsigned long long)r->docs + 1);
    if (cnt > (1u << 30)) return ttt_seterr("%s: document %llu: implausible length %u", r->name, (unsigned long long)r->docs + 1, cnt);
    /* Grow only as tokens actually arrive: a hostile count in a tiny
     * truncated stream must not allocate gigabytes up front. */
    got = 0;
    while (got < cnt) {
        size_t want = cnt - got < (1u << 20) ? cnt - got : (1u << 20);
        if (*cap < got + want) {
            size_t nc = got + want;
            if (nc < cnt && nc < 2 * *cap) nc = 2 * *cap < cnt ? 2 * *cap : cnt;
            uint32_t *p = realloc(*ids, nc * 4);
            if (!p) return ttt_seterr("%s: out of memory", r->name);
            *ids = p;
            *cap = nc;
        }
        size_t g = fread(*ids + got, 4, want, r->f);
        got += g;
        if (g < want) break;
    }
    if (got != cnt) return ttt_seterr("%s: document %llu: truncated (%zu of %u tokens)", r->name, (unsigned long long)r->docs + 1, got, cnt);
    for (uint32_t i = 0; i < cnt; i++)
        if ((*ids)[i] >= r->hdr.vocab)
            return ttt_seterr("%s: document %llu: token %u out of range (vocab %u)", r->name,
                              (unsigned long long)r->docs + 1, (*ids)[i], r->hdr.vocab);
    r->docs++;
    *n = cnt;
    *nbytes = nb;
    return 1;
}
