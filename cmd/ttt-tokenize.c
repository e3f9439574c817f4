/* ttt-tokenize - train a byte-level BPE tokenizer, encode text to a token
 * stream, decode a token stream back to text. Argument parsing and
 * orchestration only: the work is in lib/bpe_train.c, lib/tokenizer.c,
 * lib/tok_docs.c and lib/tokstream.c.
 */
#include "cli.h"
#include "../lib/bpe_train.h"   /* ttt_bpe_* */
#include "../lib/err.h"         /* ttt_errmsg */
#include "../lib/io.h"          /* ttt_atomic_* */
#include "../lib/shard.h"       /* ttt_shard_open, ttt_shard_doc, ttt_shard_read */
#include "../lib/tok_docs.h"    /* ttt_docs_each */
#include "../lib/tokenizer.h"   /* ttt_tokenizer_* */
#include "../lib/tokstream.h"   /* ttt_tokstream_* */

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { O_FORMAT = 256, O_FIELD, O_TEXT, O_KEEP, O_VERBOSE };

static const cli_option opts[] = {
    { "vocab-size", 'v', required_argument, "N", "train: vocabulary size incl. 256 bytes and <|endoftext|> (default 8192)" },
    { "output", 'o', required_argument, "FILE", "train: write tokenizer.json to FILE (atomically; default stdout)" },
    { "tokenizer", 't', required_argument, "FILE", "encode, decode: the tokenizer.json to use" },
    { "format", O_FORMAT, required_argument, "FMT", "train, encode: input format, text (a file is a document) or jsonl" },
    { "field", O_FIELD, required_argument, "NAME", "train, encode: JSONL field holding the text (default text)" },
    { "text", O_TEXT, no_argument, NULL, "encode: print ids as text, one document a line, instead of a token stream" },
    { "force", 'f', no_argument, NULL, "encode: write the binary token stream even to a terminal" },
    { "keep-special", O_KEEP, no_argument, NULL, "decode: print special tokens such as <|endoftext|> as text" },
    { "quiet", 'q', no_argument, NULL, "print only errors" },
    { "verbose", O_VERBOSE, no_argument, NULL, "print progress and statistics to stderr" },
    { 0 },
};

static const cli_program prog = {
    "ttt-tokenize",
    "ttt-tokenize train [-v N] [--format text|jsonl] [--field NAME] [-o FILE] [FILE...]\n"
    "       ttt-tokenize encode -t TOKENIZER [--format text|jsonl] [--field NAME] [--text] [-f] [FILE...]\n"
    "       ttt-tokenize decode -t TOKENIZER [--keep-special] [FILE]",
    "Byte-level BPE (GPT-2 style) in Hugging Face tokenizer.json format.\n"
    "  train   learn a tokenizer from documents\n"
    "  encode  write the documents as a token stream (ttt-formats(5)) to stdout\n"
    "  decode  turn a token stream back into text on stdout\n"
    "With --format text each FILE is one document; '-' or no FILE reads stdin.",
    opts,
    "encode | decode gives back the input bytes exactly; documents are joined\n"
    "with nothing between them unless --keep-special prints <|endoftext|>.",
};

static const char *const formats[] = { "text", "jsonl", NULL };

typedef struct {
    uint32_t vocab;
    const char *output, *tokenizer, *field;
    int jsonl, text, force, keep;
    unsigned given;   /* bit per option index, to reject options of another command */
} args;

static uint64_t now_ms(void);

/* ---- train ---- */

static int train_doc(void *ctx, const char *text, size_t n)
{
    return ttt_bpe_add_text(ctx, text, n);
}

static void train_progress(void *ctx, uint32_t done, uint32_t want)
{
    /* a redrawn counter only on a terminal; --verbose prints a summary */
    if (cli_verbosity >= 1 && isatty(STDERR_FILENO))
        fprintf(stderr, "\r%s: merges %u/%u", cli_prog(), done, want), fflush(stderr);
    (void)ctx;
}

static int cmd_train(const args *a, char **files, int nfiles)
{
    ttt_bpe_trainer *t = ttt_bpe_new();
    if (!t) cli_die_lib();
    uint64_t t0 = now_ms();
    for (int i = 0; i < nfiles; i++)
        if (ttt_docs_each(files[i], a->jsonl, a->field, train_doc, t)) cli_die_lib();
    if (cli_verbosity >= 2)
        fprintf(stderr, "%s: %" PRIu64 " distinct words counted in %.2f s\n", cli_prog(),
                ttt_bpe_num_words(t), (now_ms() - t0) / 1e3);
    uint64_t t1 = now_ms();
    if (ttt_bpe_train(t, a->vocab, train_progress, NULL)) cli_die_lib();
    if (cli_verbosity >= 1 && isatty(STDERR_FILENO)) fputc('\n', stderr);
    if (cli_verbosity >= 2)
        fprintf(stderr, "%s: %u merges in %.2f s\n", cli_prog(), ttt_bpe_num_merges(t), (now_ms() - t1) / 1e3);
    if (ttt_bpe_vocab_size(t) < a->vocab && cli_verbosity >= 1)
        cli_warn("the input has too few distinct pairs: vocabulary is %u, not %u", ttt_bpe_vocab_size(t), a->vocab);
    if (!a->output || !strcmp(a->output, "-")) {
        if (ttt_bpe_write_json(t, stdout, "<stdout>")) { cli_check_stdout(); cli_die_lib(); }
        cli_check_stdout();
    } else {
        ttt_atomic at;
        if (ttt_atomic_open(&at, a->output)) cli_die_lib();
        if (ttt_bpe_write_json(t, at.f, a->output) || ttt_atomic_commit(&at)) {
            ttt_atomic_abort(&at);
            cli_die_lib();
        }
    }
    ttt_bpe_free(t);
    return 0;
}

/* ---- encode ---- */

typedef struct {
    ttt_tokenizer *tok;
    int text;
    uint32_t *ids;
    size_t nids, cap;
    uint64_t docs, tokens, bytes;
} enc_ctx;

static int encode_doc(void *ctx, const char *text, size_t n)
{
    enc_ctx *e = ctx;
    e->nids = 0;
    if (ttt_tokenizer_encode(e->tok, text, n, &e->ids, &e->nids, &e->cap)) return -1;
    if (e->nids + 1 > e->cap) {
        uint32_t *q = realloc(e->ids, (e->nids + 1) * sizeof *q);
        if (!q) return ttt_seterr("out of memory");
        e->ids = q;
        e->cap = e->nids + 1;
    }
    e->ids[e->nids++] = ttt_tokenizer_eot(e->tok);
    if (e->nids > UINT32_MAX - 1) return ttt_seterr("a document of %zu tokens is too long for a token stream", e->nids);
    if (e->text) {
        char buf[16];
        for (size_t i = 0; i < e->nids; i++) {
            int k = snprintf(buf, sizeof buf, i ? " %u" : "%u", e->ids[i]);
            fwrite(buf, 1, (size_t)k, stdout);
        }
        putchar('\n');
    } else if (ttt_tokstream_write_doc(stdout, "<stdout>", e->ids, (uint32_t)e->nids, n)) {
        return -1;
    }
    cli_check_stdout();
    e->docs++;
    e->tokens += e->nids;
    e->bytes += n;
    return 0;
}

static int cmd_encode(const args *a, char **files, int nfiles)
{
    if (!a->tokenizer) cli_usage_error("encode needs a tokenizer (-t FILE)");
    if (!a->text) cli_refuse_tty_binary(a->force);
    ttt_tokenizer *tok = ttt_tokenizer_load(a->tokenizer);
    if (!tok) cli_die_lib();
    static char obuf[1 << 20];
    setvbuf(stdout, obuf, _IOFBF, sizeof obuf);
    enc_ctx e = { .tok = tok, .text = a->text };
    uint64_t t0 = now_ms();
    if (!a->text) {
        ttt_tokstream_header h = { ttt_tokenizer_vocab_size(tok), ttt_tokenizer_hash(tok), ttt_tokenizer_eot(tok) };
        if (ttt_tokstream_write_header(stdout, "<stdout>", &h)) { cli_check_stdout(); cli_die_lib(); }
    }
    for (int i = 0; i < nfiles; i++)
        if (ttt_docs_each(files[i], a->jsonl, a->field, encode_doc, &e)) { cli_check_stdout(); cli_die_lib(); }
    if (!a->text && ttt_tokstream_write_end(stdout, "<stdout>", e.docs)) { cli_check_stdout(); cli_die_lib(); }
    if (fflush(stdout)) cli_check_stdout();
    cli_check_stdout();
    if (cli_verbosity >= 2) {
        double s = (now_ms() - t0) / 1e3;
        fprintf(stderr, "%s: %" PRIu64 " documents, %" PRIu64 " bytes, %" PRIu64 " tokens (%.2f bytes/token) in %.2f s, %.1f MB/s\n",
                cli_prog(), e.docs, e.bytes, e.tokens, e.tokens ? (double)e.bytes / e.tokens : 0.0, s,
                s > 0 ? e.bytes / s / 1e6 : 0.0);
    }
    free(e.ids);
    ttt_tokenizer_free(tok);
    return 0;
}

/* ---- decode ---- */

typedef struct {
    const ttt_tokenizer *tok;
    const char *name;
    int keep;
    char *out;
    size_t ocap;
} dec_ctx;

/* Writes one document's text; checks its length against the stored count. */
static void decode_doc(dec_ctx *d, uint64_t doc, const uint32_t *ids, size_t n, uint64_t nbytes)
{
    size_t olen = 0;
    for (size_t i = 0; i < n; i++) {
        if (!d->keep && ttt_tokenizer_is_special(d->tok, ids[i])) continue;
        if (ttt_tokenizer_decode(d->tok, ids + i, 1, &d->out, &olen, &d->ocap))
            cli_die("%s: document %" PRIu64 ": %s", d->name, doc, ttt_errmsg());
    }
    if (!d->keep && olen != nbytes)
        cli_die("%s: document %" PRIu64 ": decodes to %zu bytes, the file says %" PRIu64, d->name, doc, olen, nbytes);
    if (olen) fwrite(d->out, 1, olen, stdout);   /* d->out is NULL until a byte was decoded */
    cli_check_stdout();
}

static void check_same_tokenizer(const char *name, uint64_t hash, uint32_t vocab, const char *tpath, const ttt_tokenizer *tok)
{
    if (hash == ttt_tokenizer_hash(tok) && vocab == ttt_tokenizer_vocab_size(tok)) return;
    cli_die("%s: made with another tokenizer (hash %016" PRIx64 ", vocabulary %u) than %s (hash %016" PRIx64 ", vocabulary %u)",
            name, hash, vocab, tpath, ttt_tokenizer_hash(tok), ttt_tokenizer_vocab_size(tok));
}

static void decode_shard(dec_ctx *d, const char *tpath)
{
    ttt_shard *sh = ttt_shard_open(d->name);
    if (!sh) cli_die_lib();
    const ttt_shard_info *info = ttt_shard_get_info(sh);
    check_same_tokenizer(d->name, info->tok_hash, info->vocab, tpath, d->tok);
    uint32_t *ids = NULL;
    size_t cap = 0;
    for (uint64_t i = 0; i < info->ndocs; i++) {
        uint64_t start, ntok, nbytes;
        if (ttt_shard_doc(sh, i, &start, &ntok, &nbytes)) cli_die_lib();
        if (ntok > cap) {
            free(ids);
            if (ntok > SIZE_MAX / sizeof *ids || !(ids = malloc(ntok * sizeof *ids))) cli_die("%s: out of memory", d->name);
            cap = ntok;
        }
        if (ttt_shard_read(sh, start, ntok, ids)) cli_die_lib();
        decode_doc(d, i, ids, ntok, nbytes);
    }
    free(ids);
    ttt_shard_close(sh);
}

static int cmd_decode(const args *a, char **files, int nfiles)
{
    if (!a->tokenizer) cli_usage_error("decode needs a tokenizer (-t FILE)");
    if (nfiles > 1) cli_usage_error("decode reads one token stream or shard (got %d operands)", nfiles);
    ttt_tokenizer *tok = ttt_tokenizer_load(a->tokenizer);
    if (!tok) cli_die_lib();
    const char *path = files[0];
    int is_stdin = !strcmp(path, "-");
    dec_ctx d = { .tok = tok, .name = is_stdin ? "<stdin>" : path, .keep = a->keep };
    FILE *f = is_stdin ? stdin : fopen(path, "rb");
    if (!f) cli_die("%s: %s", path, strerror(errno));
    static char obuf[1 << 20];
    setvbuf(stdout, obuf, _IOFBF, sizeof obuf);
    /* a shard (random-access file) or a token stream (a pipe is fine) */
    int c0 = getc(f);
    if (c0 != EOF) ungetc(c0, f);
    if (!is_stdin && c0 == 0x89) {
        char head[8] = { 0 };
        size_t got = fread(head, 1, sizeof head, f);
        if (got >= 7 && !memcmp(head, "\x89TTTSHD", 7)) {
            fclose(f);
            decode_shard(&d, a->tokenizer);
            goto done;
        }
        rewind(f);
    }
    ttt_tokstream_reader r;
    if (ttt_tokstream_open(&r, f, d.name)) cli_die_lib();
    check_same_tokenizer(d.name, r.hdr.tok_hash, r.hdr.vocab, a->tokenizer, tok);
    uint32_t *ids = NULL, n;
    size_t cap = 0;
    uint64_t nbytes;
    int rc;
    while ((rc = ttt_tokstream_next(&r, &ids, &n, &cap, &nbytes)) == 1)
        decode_doc(&d, r.docs, ids, n, nbytes);
    if (rc < 0) { fflush(stdout); cli_check_stdout(); cli_die_lib(); }
    if (!is_stdin) fclose(f);
    free(ids);
done:
    free(d.out);
    ttt_tokenizer_free(tok);
    return 0;
}

/* ---- main ---- */

#include <time.h>
static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

int main(int argc, char **argv)
{
    cli_init(&prog);
    args a = { .vocab = 8192 };
    const char *optname[16] = { 0 };
    int c;
    while ((c = cli_next(argc, argv)) != -1) {
        for (int i = 0; opts[i].name; i++)
            if (opts[i].key == c) { a.given |= 1u << i; optname[i] = opts[i].name; }
        switch (c) {
        case 'v': a.vocab = (uint32_t)cli_count("--vocab-size", optarg, 257, 16777216); break;
        case 'o': a.output = optarg; break;
        case 't': a.tokenizer = optarg; break;
        case O_FORMAT: a.jsonl = cli_enum("--format", optarg, formats); break;
        case O_FIELD: a.field = optarg; break;
        case O_TEXT: a.text = 1; break;
        case 'f': a.force = 1; break;
        case O_KEEP: a.keep = 1; break;
        case 'q': cli_verbosity = 0; break;
        case O_VERBOSE: cli_verbosity = 2; break;
        }
    }
    if (optind >= argc) cli_usage_error("missing command (train, encode or decode)");
    const char *cmd = argv[optind++];
    /* which options each command takes: train v o format field; encode t
     * format field text f; decode t keep-special; all: q verbose */
    static const char *const cmds[] = { "train", "encode", "decode", NULL };
    static const char *const allowed[] = { "vocab-size output format field quiet verbose",
                                           "tokenizer format field text force quiet verbose",
                                           "tokenizer keep-special quiet verbose" };
    int k = -1;
    for (int i = 0; cmds[i]; i++)
        if (!strcmp(cmd, cmds[i])) k = i;
    if (k < 0) cli_usage_error("unknown command '%s' (expected train, encode or decode)", cmd);
    for (int i = 0; opts[i].name; i++) {
        if (!(a.given >> i & 1)) continue;
        const char *s = strstr(allowed[k], optname[i]);
        size_t l = strlen(optname[i]);
        if (!s || (s[l] && s[l] != ' ') || (s > allowed[k] && s[-1] != ' '))
            cli_usage_error("option '--%s' does not apply to '%s'", optname[i], cmd);
    }
    if (a.field && !a.jsonl) cli_usage_error("--field needs --format jsonl");
    char **files = argv + optind;
    int nfiles = argc - optind;
    static char *dash[] = { "-", NULL };
    if (nfiles == 0) {
        int want_stdin_data = 1;
        if (want_stdin_data && isatty(STDIN_FILENO))
            cli_usage_error("%s: no input (give FILE operands, or pipe data on stdin)", cmd);
        files = dash;
        nfiles = 1;
    }
    switch (k) {
    case 0: return cmd_train(&a, files, nfiles);
    case 1: return cmd_encode(&a, files, nfiles);
    default: return cmd_decode(&a, files, nfiles);
    }
}
