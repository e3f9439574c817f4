/* ttt-inspect - describe ttt files: token shards, token streams,
 * tokenizer.json, safetensors (checkpoints and states), and name foreign
 * formats.
 *
 * Structure: detect() looks at a file's first bytes and returns a kind;
 * the kinds[] table maps each kind to one inspect_* function. To teach
 * ttt-inspect a new kind (model checkpoints, fast-weight states), add a
 * detection rule, a table row and one function that fills a record with
 * rec_*() calls. The record printer does the plain text (aligned "key:
 * value" lines, a blank line between files) and --json (one object per
 * file per line) layouts, so the inspect functions never format output.
 */
#include "cli.h"
#include "../lib/err.h"        /* ttt_errmsg */
#include "../lib/io.h"         /* ttt_foreign_format */
#include "../lib/json.h"       /* json_write_str */
#include "../lib/safetensors.h"/* ttt_st_open */
#include "../lib/shard.h"      /* ttt_shard_open */
#include "../lib/tokenizer.h"  /* ttt_tokenizer_load, decode */
#include "../lib/tokstream.h"  /* ttt_tokstream_reader */

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

enum { OPT_JSON = 256, OPT_VERIFY, OPT_DOCS };

static const cli_option opts[] = {
    { "json", OPT_JSON, no_argument, NULL, "one JSON object per file per line" },
    { "verify", OPT_VERIFY, no_argument, NULL, "check every checksum; exit 1 naming the first damage" },
    { "tokenizer", 't', required_argument, "FILE", "tokenizer.json to decode documents with (--docs)" },
    { "docs", OPT_DOCS, required_argument, "N", "show the first N documents (decoded with -t, else ids)" },
    { 0 },
};

static const cli_program prog = {
    "ttt-inspect",
    "ttt-inspect [--json] [--verify] [-t tokenizer.json] [--docs N] FILE...",
    "Describes token shards (.tok), token streams, tokenizer.json files and\n"
    "safetensors files, and names foreign formats (gzip, zstd, GGUF, llm.c .bin).",
    opts,
    NULL,
};

static int json_out, verify;
static long long show_docs;
static ttt_tokenizer *tokenizer;
static const char *tokenizer_path;

typedef unsigned long long ull;

/* ---- record printer ---- */
static int rec_fields;

static void rec_begin(const char *path)
{
    rec_fields = 0;
    if (json_out) {
        fputs("{\"file\":", stdout);
        json_write_str(stdout, path, strlen(path));
        rec_fields = 1;
    } else {
        printf("%-17s %s\n", "file:", path);
    }
}

static void rec_key(const char *key)
{
    if (json_out) {
        printf(",\"%s\":", key);
    } else {
        char k[64];
        snprintf(k, sizeof k, "%s:", key);
        for (char *p = k; *p; p++) if (*p == '_') *p = ' ';
        printf("%-17s ", k);
    }
    rec_fields++;
}

static void rec_str(const char *key, const char *v)
{
    rec_key(key);
    if (json_out) json_write_str(stdout, v, strlen(v));
    else printf("%s\n", v);
}

static void rec_u64(const char *key, uint64_t v)
{
    rec_key(key);
    printf(json_out ? "%llu" : "%llu\n", (ull)v);
}

static void rec_hex(const char *key, uint64_t v)
{
    char b[32];
    snprintf(b, sizeof b, "0x%016llx", (ull)v);
    rec_str(key, b);
}

static void rec_num(const char *key, double v, const char *text_fmt, ...) __attribute__((format(printf, 3, 4)));
/* JSON gets the number; text gets text_fmt (which may add context). */
static void rec_num(const char *key, double v, const char *text_fmt, ...)
{
    rec_key(key);
    if (json_out) {
        printf("%.6g", v);
    } else {
        va_list ap;
        va_start(ap, text_fmt);
        vprintf(text_fmt, ap);
        va_end(ap);
        putchar('\n');
    }
}

static void rec_bool(const char *key, int v)
{
    rec_key(key);
    if (json_out) fputs(v ? "true" : "false", stdout);
    else puts(v ? "ok" : "FAILED");
}

/* one shown document: decoded text, or ids without a tokenizer */
static void rec_doc(uint64_t i, const uint32_t *ids, uint64_t n, uint64_t nbytes, uint32_t eot, int first)
{
    uint64_t shown = n && ids[n - 1] == eot ? n - 1 : n;   /* text without the trailing eot */
    char *text = NULL;
    size_t len = 0, cap = 0;
    if (tokenizer && ttt_tokenizer_decode(tokenizer, ids, (size_t)shown, &text, &len, &cap))
        cli_die("%s: %s", tokenizer_path, ttt_errmsg());
    if (json_out) {
        if (first) fputs(",\"docs\":[", stdout);
        else putchar(',');
        printf("{\"index\":%llu,\"tokens\":%llu,\"bytes\":%llu,", (ull)i, (ull)n, (ull)nbytes);
        if (tokenizer) {
            fputs("\"text\":", stdout);
            json_write_str(stdout, text ? text : "", len);
        } else {
            fputs("\"ids\":[", stdout);
            for (uint64_t k = 0; k < n; k++) printf(k ? ",%u" : "%u", ids[k]);
            putchar(']');
        }
        putchar('}');
    } else {
        printf("--- document %llu: %llu tokens, %llu bytes\n", (ull)i, (ull)n, (ull)nbytes);
        if (tokenizer) {
            fwrite(text, 1, len, stdout);
            if (len && text[len - 1] != '\n') putchar('\n');
        } else {
            for (uint64_t k = 0; k < n; k++) printf(k ? " %u" : "%u", ids[k]);
            putchar('\n');
        }
    }
    free(text);
    cli_check_stdout();
}

static void rec_docs_end(int any)
{
    if (json_out && any) putchar(']');
}

/* Ends the record; err (may be NULL) is added to the JSON object. */
static void rec_end(const char *err)
{
    if (json_out) {
        if (err) {
            fputs(",\"error\":", stdout);
            json_write_str(stdout, err, strlen(err));
        }
        puts("}");
    }
    cli_check_stdout();
}

/* ---- helpers ---- */
static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* min / median / max of n document lengths (sorts lens) */
static void rec_doc_lengths(uint64_t *lens, uint64_t n)
{
    if (!n) return;
    qsort(lens, (size_t)n, sizeof *lens, cmp_u64);
    uint64_t med = lens[n / 2];
    if (json_out) {
        rec_u64("doc_tokens_min", lens[0]);
        rec_u64("doc_tokens_median", med);
        rec_u64("doc_tokens_max", lens[n - 1]);
    } else {
        rec_key("doc_tokens");
        printf("min %llu, median %llu, max %llu\n", (ull)lens[0], (ull)med, (ull)lens[n - 1]);
    }
}

/* -t given: the file's tokenizer must be this one, or decoding is nonsense */
static int check_tokenizer(const char *path, uint64_t hash, uint32_t vocab)
{
    if (!tokenizer) return 0;
    uint64_t th = ttt_tokenizer_hash(tokenizer);
    if (th != hash || ttt_tokenizer_vocab_size(tokenizer) != vocab)
        return ttt_seterr("%s: made with another tokenizer than %s (hash 0x%016llx vocab %u, tokenizer has "
                          "0x%016llx vocab %u)", path, tokenizer_path, (ull)hash, vocab, (ull)th,
                          ttt_tokenizer_vocab_size(tokenizer));
    return 0;
}

/* ---- kinds ---- */
static int inspect_shard(const char *path)
{
    ttt_shard *s = ttt_shard_open(path);
    if (!s) return -1;
    const ttt_shard_info *in = ttt_shard_get_info(s);
    uint64_t comp = 0;
    uint32_t bt = in->block_tokens;
    for (uint64_t b = 0; b < in->nblocks; b++) {
        uint32_t cb;
        ttt_shard_block(s, b, NULL, NULL, &cb);
        comp += cb;
    }
    uint64_t raw = in->ntokens * (uint64_t)in->token_width;
    rec_begin(path);
    rec_str("format", "ttt shard");
    rec_u64("tokens", in->ntokens);
    rec_u64("documents", in->ndocs);
    if (json_out) { rec_u64("blocks", in->nblocks); rec_u64("block_tokens", bt); }
    else { rec_key("blocks"); printf("%llu (of %u tokens)\n", (ull)in->nblocks, bt); }
    if (json_out) rec_u64("token_width", (uint64_t)in->token_width);
    else { rec_key("token_width"); printf("%d bytes\n", in->token_width); }
    double ratio = comp ? (double)raw / (double)comp : 0;
    rec_num("compression", ratio, "%.2fx (%llu -> %llu bytes)", ratio, (ull)raw, (ull)comp);
    if (json_out) { rec_u64("raw_bytes", raw); rec_u64("compressed_bytes", comp); }
    rec_u64("file_bytes", in->file_bytes);
    rec_hex("tokenizer_hash", in->tok_hash);
    rec_u64("vocab", in->vocab);
    rec_u64("eot", in->eot);
    rec_u64("text_bytes", in->text_bytes);
    if (in->ntokens) {
        double bpt = (double)in->text_bytes / (double)in->ntokens;
        rec_num("bytes_per_token", bpt, "%.3f", bpt);
    }
    uint64_t *lens = malloc((in->ndocs ? in->ndocs : 1) * sizeof *lens);
    if (!lens) cli_die("out of memory");
    for (uint64_t d = 0; d < in->ndocs; d++) ttt_shard_doc(s, d, NULL, &lens[d], NULL);
    rec_doc_lengths(lens, in->ndocs);
    free(lens);

    int rc = 0;
    if (verify) {
        rc = ttt_shard_verify(s);
        rec_bool("verified", rc == 0);
    }
    if (!rc && show_docs > 0) rc = check_tokenizer(path, in->tok_hash, in->vocab);
    uint32_t *ids = NULL;
    for (uint64_t d = 0; !rc && d < in->ndocs && d < (uint64_t)show_docs; d++) {
        uint64_t st, nt, nb;
        ttt_shard_doc(s, d, &st, &nt, &nb);
        uint32_t *p = realloc(ids, (size_t)nt * sizeof *ids);
        if (!p) cli_die("out of memory");
        ids = p;
        rc = ttt_shard_read(s, st, (size_t)nt, ids);
        if (!rc) rec_doc(d, ids, nt, nb, in->eot, d == 0);
    }
    free(ids);
    rec_docs_end(show_docs > 0 && in->ndocs > 0);
    rec_end(rc ? ttt_errmsg() : NULL);
    ttt_shard_close(s);
    return rc;
}

static int inspect_stream(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) return ttt_seterr("%s: %s", path, strerror(errno));
    ttt_tokstream_reader r;
    if (ttt_tokstream_open(&r, f, path)) { fclose(f); return -1; }
    uint32_t *ids = NULL, n;
    size_t cap = 0;
    uint64_t nbytes, ntok = 0, text = 0, lcap = 0, *lens = NULL;
    /* documents to show are kept until the header lines are out */
    typedef struct { uint32_t *ids; uint32_t n; uint64_t nbytes; } kept;
    kept *keep = show_docs > 0 ? calloc((size_t)(show_docs < 1024 ? show_docs : 1024), sizeof *keep) : NULL;
    uint64_t nkeep = 0;
    int rc;
    while ((rc = ttt_tokstream_next(&r, &ids, &n, &cap, &nbytes)) == 1) {
        if (r.docs > lcap) {
            lcap = lcap ? lcap * 2 : 1024;
            uint64_t *p = realloc(lens, lcap * sizeof *lens);
            if (!p) cli_die("out of memory");
            lens = p;
        }
        lens[r.docs - 1] = n;
        ntok += n;
        text += nbytes;
        if (keep && nkeep < (uint64_t)show_docs && nkeep < 1024) {
            keep[nkeep].ids = malloc((size_t)n * sizeof *ids);
            if (!keep[nkeep].ids) cli_die("out of memory");
            memcpy(keep[nkeep].ids, ids, (size_t)n * sizeof *ids);
            keep[nkeep].n = n;
            keep[nkeep++].nbytes = nbytes;
        }
    }
    fclose(f);
    free(ids);
    if (rc == 0) {
        rec_begin(path);
        rec_str("format", "ttt token stream");
        rec_u64("tokens", ntok);
        rec_u64("documents", r.docs);
        rec_hex("tokenizer_hash", r.hdr.tok_hash);
        rec_u64("vocab", r.hdr.vocab);
        rec_u64("eot", r.hdr.eot);
        rec_u64("text_bytes", text);
        if (ntok) {
            double bpt = (double)text / (double)ntok;
            rec_num("bytes_per_token", bpt, "%.3f", bpt);
        }
        rec_doc_lengths(lens, r.docs);
        /* reading the stream is its whole check: it carries no checksums */
        if (verify) rec_bool("verified", 1);
        rc = show_docs > 0 ? check_tokenizer(path, r.hdr.tok_hash, r.hdr.vocab) : 0;
        for (uint64_t d = 0; !rc && d < nkeep; d++) rec_doc(d, keep[d].ids, keep[d].n, keep[d].nbytes, r.hdr.eot, d == 0);
        rec_docs_end(!rc && nkeep > 0);
        rec_end(rc ? ttt_errmsg() : NULL);
    }
    for (uint64_t d = 0; d < nkeep; d++) free(keep[d].ids);
    free(keep);
    free(lens);
    return rc;
}

static int inspect_tokenizer(const char *path)
{
    ttt_tokenizer *t = ttt_tokenizer_load(path);
    if (!t) return -1;
    rec_begin(path);
    rec_str("format", "tokenizer.json (byte-level BPE)");
    rec_u64("vocab", ttt_tokenizer_vocab_size(t));
    rec_hex("tokenizer_hash", ttt_tokenizer_hash(t));
    rec_u64("eot", ttt_tokenizer_eot(t));
    if (verify) rec_bool("verified", 1);   /* loading checks it completely */
    rec_end(NULL);
    ttt_tokenizer_free(t);
    return 0;
}

/* Generic safetensors facts. Model checkpoints and fast-weight states are
 * safetensors too: their own inspect function (config, step, layers) goes
 * in front of this one in the kinds[] table once their metadata is fixed. */
static int inspect_safetensors(const char *path)
{
    ttt_st *st = ttt_st_open(path, verify ? TTT_ST_VERIFY : 0);
    if (!st) return -1;
    uint64_t params = 0, bytes = 0;
    for (int i = 0; i < ttt_st_count(st); i++) {
        params += ttt_st_at(st, i)->numel;
        bytes += ttt_st_at(st, i)->end - ttt_st_at(st, i)->begin;
    }
    rec_begin(path);
    rec_str("format", "safetensors");
    rec_u64("tensors", (uint64_t)ttt_st_count(st));
    rec_u64("parameters", params);
    rec_u64("tensor_bytes", bytes);
    rec_u64("metadata_keys", (uint64_t)ttt_st_meta_count(st));
    if (verify) rec_bool("verified", 1);   /* TTT_ST_VERIFY checked every stored xxh3 at open */
    rec_end(NULL);
    ttt_st_close(st);
    return 0;
}

typedef enum { K_SHARD, K_STREAM, K_TOKENIZER, K_SAFETENSORS, K_NKINDS } kind;

static const struct {
    const char *name;
    int (*inspect)(const char *path);
} kinds[K_NKINDS] = {
    [K_SHARD] = { "shard", inspect_shard },
    [K_STREAM] = { "token stream", inspect_stream },
    [K_TOKENIZER] = { "tokenizer.json", inspect_tokenizer },
    [K_SAFETENSORS] = { "safetensors", inspect_safetensors },
};

/* The kind of path from its first bytes, or -1 with ttt_errmsg set. */
static int detect(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) return ttt_seterr("%s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fileno(f), &st) == 0 && S_ISDIR(st.st_mode)) { fclose(f); return ttt_seterr("%s: is a directory", path); }
    unsigned char h[64];
    size_t n = fread(h, 1, sizeof h, f);
    int err = ferror(f);
    fclose(f);
    if (err) return ttt_seterr("%s: read error", path);
    if (n == 0) return ttt_seterr("%s: empty file", path);
    if (n >= 7 && !memcmp(h, "\x89TTTSHD", 7)) return K_SHARD;
    if (n >= 8 && !memcmp(h, TTT_TOKSTREAM_MAGIC, 8)) return K_STREAM;
    const char *foreign = ttt_foreign_format(h, n);
    if (foreign && !strcmp(foreign, "safetensors")) return K_SAFETENSORS;
    if (foreign) return ttt_seterr("%s: a %s file, not a ttt file", path, foreign);
    size_t i = 0;
    if (n >= 3 && !memcmp(h, "\xef\xbb\xbf", 3)) i = 3;   /* UTF-8 BOM */
    while (i < n && (h[i] == ' ' || h[i] == '\t' || h[i] == '\n' || h[i] == '\r')) i++;
    if (i < n && h[i] == '{') return K_TOKENIZER;
    return ttt_seterr("%s: unknown format (not a shard, token stream, tokenizer.json or safetensors file)", path);
}

int main(int argc, char **argv)
{
    cli_init(&prog);
    int c;
    while ((c = cli_next(argc, argv)) != -1) {
        switch (c) {
        case OPT_JSON: json_out = 1; break;
        case OPT_VERIFY: verify = 1; break;
        case 't': tokenizer_path = optarg; break;
        case OPT_DOCS: show_docs = cli_count("--docs", optarg, 0, 1000000000LL); break;
        }
    }
    if (optind >= argc) cli_usage_error("no FILE given");
    if (tokenizer_path && !show_docs) cli_usage_error("-t/--tokenizer is only used with --docs N");
    if (tokenizer_path && !(tokenizer = ttt_tokenizer_load(tokenizer_path))) cli_die_lib();
    int status = 0;
    for (int i = optind; i < argc; i++) {
        const char *path = argv[i];
        if (!json_out && i > optind) putchar('\n');
        int k = detect(path);
        if (k < 0 || kinds[k].inspect(path) != 0) {
            fflush(stdout);
            fprintf(stderr, "%s: %s\n", cli_prog(), ttt_errmsg());
            status = 1;
        }
        cli_check_stdout();
    }
    if (tokenizer) ttt_tokenizer_free(tokenizer);
    return status;
}
