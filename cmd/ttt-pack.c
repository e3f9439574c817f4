/* ttt-pack - token stream in, training and validation shards out.
 *
 * Reads one token stream (lib/tokstream.h), sends each document to the
 * training or the validation split, and writes PREFIX-train-NNNNNN.tok and
 * PREFIX-val-NNNNNN.tok shards (lib/shard.h), starting a new shard once the
 * current one holds --shard-tokens tokens; documents are never split.
 *
 * All or nothing: every shard is first completed under a hidden staging
 * name (".NAME.part.PID", itself written atomically), and only when the whole
 * input has been read are the staged shards renamed to their final names;
 * then shards with the same prefix and higher numbers, left by an earlier
 * run, are removed so that a glob sees exactly this run's output. A failure
 * or a signal removes the staged files; SIGKILL leaves only hidden files.
 */
#define _GNU_SOURCE   /* vasprintf */
#include "cli.h"
#include "../lib/err.h"        /* ttt_errmsg */
#include "../lib/io.h"         /* ttt_atomic_abort_all */
#include "../lib/shard.h"      /* ttt_shard_writer */
#include "../lib/tokstream.h"  /* ttt_tokstream_reader */

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

enum { OPT_SHARD_TOKENS = 256, OPT_BLOCK_TOKENS, OPT_VAL_DOCS, OPT_VAL_FRACTION };

static const cli_option opts[] = {
    { "output", 'o', required_argument, "PREFIX", "write PREFIX-train-NNNNNN.tok and PREFIX-val-NNNNNN.tok" },
    { "shard-tokens", OPT_SHARD_TOKENS, required_argument, "N", "start a new shard once one holds N tokens (100M)" },
    { "block-tokens", OPT_BLOCK_TOKENS, required_argument, "N", "tokens per compressed block (65536)" },
    { "val-docs", OPT_VAL_DOCS, required_argument, "N", "hold out the last N documents for validation" },
    { "val-fraction", OPT_VAL_FRACTION, required_argument, "F", "hold out an evenly spread fraction F of the documents" },
    { "level", 'l', required_argument, "LEVEL", "zlib compression level 0-9 (6)" },
    { "quiet", 'q', no_argument, NULL, "no summary on stderr" },
    { "verbose", 'v', no_argument, NULL, "name each shard as it is completed" },
    { 0 },
};

static const cli_program prog = {
    "ttt-pack",
    "ttt-pack [-o PREFIX] [--shard-tokens N] [--val-docs N | --val-fraction F] [-l LEVEL] [FILE|-]",
    "Packs a token stream (from 'ttt-tokenize encode') into compressed, checksummed\n"
    "shards for training and evaluation. Reads FILE, or standard input when FILE is\n"
    "'-' or absent. Same input and options give byte-identical shards.",
    opts,
    "PREFIX defaults to FILE without its extension, or 'data' for standard input.\n"
    "--val-fraction F sends document i (from 0) to validation when\n"
    "floor((i+1)F) > floor(iF); --val-docs N sends the last N documents.",
};

/* ---- staged shards: cleaned up by atexit and by signal handlers ---- */
typedef struct staged {
    char *part, *final;
    struct staged *next;
} staged;
static staged *volatile staged_head;
static volatile sig_atomic_t finished;

static void unlink_staged(void)
{
    for (staged *s = staged_head; s; s = s->next) unlink(s->part);
}

static void cleanup_at_exit(void)
{
    if (!finished) unlink_staged();
}

static void on_signal(int sig)
{
    ttt_atomic_abort_all();
    if (!finished) unlink_staged();
    signal(sig, SIG_DFL);
    raise(sig);
}

static char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *xasprintf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *s = NULL;
    if (vasprintf(&s, fmt, ap) < 0) cli_die("out of memory");
    va_end(ap);
    return s;
}

/* Dies with the library's message, naming the final file instead of the
 * staging name that means nothing to the user. */
static _Noreturn void die_staged(const staged *st)
{
    const char *m = ttt_errmsg();
    size_t pl = strlen(st->part);
    if (!strncmp(m, st->part, pl)) cli_die("%s%s", st->final, m + pl);
    cli_die_lib();
}

/* ---- one split (train or val) ---- */
typedef struct {
    const char *name;          /* "train" or "val" */
    ttt_shard_writer *w;
    staged *cur;               /* names of the shard being written */
    staged *done;              /* this split's completed shards, newest first */
    int nshards;
    uint64_t tokens, docs;
} split;

static const char *prefix = NULL;
static uint64_t shard_tokens = 100000000;
static ttt_shard_params params;

static void split_open(split *sp)
{
    staged *st = calloc(1, sizeof *st);
    if (!st) cli_die("out of memory");
    st->final = xasprintf("%s-%s-%06d.tok", prefix, sp->name, sp->nshards);
    char *d = strdup(st->final), *b = strdup(st->final);
    if (!d || !b) cli_die("out of memory");
    st->part = xasprintf("%s/.%s.part.%ld", dirname(d), basename(b), (long)getpid());
    free(d);
    free(b);
    sp->cur = st;
    sp->w = ttt_shard_writer_open(st->part, &params);
    if (!sp->w) die_staged(st);
}

static void split_close(split *sp)
{
    if (!sp->w) return;
    staged *st = sp->cur;
    /* a second list node on staged_head, which the signal handler walks,
     * listed before the writer's commit renames the shard to st->part: no
     * moment when that file exists unlisted */
    staged *pub = malloc(sizeof *pub);
    if (!pub) cli_die("out of memory");
    *pub = (staged){ st->part, st->final, staged_head };
    __atomic_signal_fence(__ATOMIC_SEQ_CST);   /* the node is whole before the handler can see it */
    staged_head = pub;
    int rc = ttt_shard_writer_close(sp->w);
    sp->w = NULL;
    if (rc) die_staged(st);
    st->next = sp->done;
    sp->done = st;
    sp->nshards++;
    sp->cur = NULL;
    if (cli_verbosity > 1) fprintf(stderr, "%s: %s: complete (staged)\n", cli_prog(), st->final);
}

static void split_add(split *sp, const uint32_t *ids, uint32_t n, uint64_t nbytes)
{
    if (sp->w && ttt_shard_writer_tokens(sp->w) >= shard_tokens) split_close(sp);
    if (!sp->w) split_open(sp);
    if (ttt_shard_writer_add_doc(sp->w, ids, n, nbytes)) die_staged(sp->cur);
    sp->tokens += n;
    sp->docs++;
}

/* Publishes the split's staged shards as one set. 000000 is the commit
 * point: the earlier run's set is invalidated by removing its 000000 first,
 * then the rest of it, and the new shards are renamed highest number first,
 * so 000000 appears last. A kill at any moment leaves either no set or a set
 * without 000000, which the dataset reader refuses (shard_dataset.c). */
static void publish(split *sp)
{
    for (int k = 0;; k++) {
        char *old = xasprintf("%s-%s-%06d.tok", prefix, sp->name, k);
        int gone = unlink(old) != 0;
        if (!gone && k >= sp->nshards && cli_verbosity > 0)
            fprintf(stderr, "%s: removed %s (left by an earlier run)\n", cli_prog(), old);
        free(old);
        if (gone && k > 0) break;
    }
    for (staged *st = sp->done; st; st = st->next)   /* newest (highest number) first */
        if (rename(st->part, st->final) != 0) cli_die("%s: cannot rename into place: %s", st->final, strerror(errno));
}

/* Frees the split's names once published. The nodes on staged_head share
 * their strings with the splits' lists, so they go first, without them. */
static void staged_free(split *train, split *val)
{
    for (staged *s = staged_head, *next; s; s = next) { next = s->next; free(s); }
    staged_head = NULL;
    split *sp[2] = { train, val };
    for (int k = 0; k < 2; k++)
        for (staged *s = sp[k]->done, *next; s; s = next) {
            next = s->next;
            free(s->part); free(s->final); free(s);
        }
}

/* ---- the last N documents, held back until the end of the input ---- */
typedef struct {
    uint32_t *ids;
    uint32_t n;
    uint64_t nbytes;
} held_doc;

static void summary(const split *sp)
{
    if (!sp->nshards) return;
    char range[64] = "";
    if (sp->nshards > 1) snprintf(range, sizeof range, " .. %06d", sp->nshards - 1);
    fprintf(stderr, "%s: %s-%s-000000%s.tok: %d shard%s, %llu tokens, %llu documents\n", cli_prog(), prefix, sp->name,
            range, sp->nshards, sp->nshards == 1 ? "" : "s", (unsigned long long)sp->tokens,
            (unsigned long long)sp->docs);
}

static char *default_prefix(const char *in)
{
    int std_in = !in || !strcmp(in, "-");
    char *p = strdup(std_in ? "data" : in);
    if (!p) cli_die("out of memory");
    if (std_in) return p;
    char *slash = strrchr(p, '/'), *dot = strrchr(p, '.');
    if (dot && dot > (slash ? slash + 1 : p)) *dot = 0;
    return p;
}

int main(int argc, char **argv)
{
    cli_init(&prog);
    long long val_docs = -1;
    double val_fraction = -1;
    params.level = 6;
    params.block_tokens = 65536;
    int c;
    while ((c = cli_next(argc, argv)) != -1) {
        switch (c) {
        case 'o':
            if (!*optarg) cli_usage_error("--output: empty prefix");
            prefix = optarg;
            break;
        case OPT_SHARD_TOKENS: shard_tokens = (uint64_t)cli_count("--shard-tokens", optarg, 1, 1000000000000LL); break;
        case OPT_BLOCK_TOKENS: params.block_tokens = (uint32_t)cli_count("--block-tokens", optarg, 1, 1 << 24); break;
        case OPT_VAL_DOCS: val_docs = cli_count("--val-docs", optarg, 0, 100000000LL); break;
        case OPT_VAL_FRACTION: val_fraction = cli_double("--val-fraction", optarg, 0, 1); break;
        case 'l': params.level = (int)cli_count("--level", optarg, 0, 9); break;
        case 'q': cli_verbosity = 0; break;
        case 'v': cli_verbosity++; break;
        }
    }
    if (val_docs >= 0 && val_fraction >= 0) cli_usage_error("--val-docs and --val-fraction exclude each other");
    if (argc - optind > 1) cli_usage_error("one input at a time (got %d operands)", argc - optind);
    const char *in = optind < argc ? argv[optind] : NULL;
    if (!in && isatty(STDIN_FILENO)) cli_usage_error("no input: give a FILE, or pipe a token stream into standard input");
    int use_stdin = !in || !strcmp(in, "-");
    const char *name = use_stdin ? "<stdin>" : in;
    FILE *f = use_stdin ? stdin : fopen(in, "rb");
    if (!f) cli_die("%s: %s", in, strerror(errno));
    struct stat st;
    if (fstat(fileno(f), &st) == 0 && S_ISDIR(st.st_mode)) cli_die("%s: is a directory", name);
    char *own_prefix = NULL;
    if (!prefix) prefix = own_prefix = default_prefix(in);

    atexit(cleanup_at_exit);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);

    ttt_tokstream_reader r;
    if (ttt_tokstream_open(&r, f, name)) cli_die_lib();
    params.vocab = r.hdr.vocab;
    params.tok_hash = r.hdr.tok_hash;
    params.eot = r.hdr.eot;

    split train = { .name = "train" }, val = { .name = "val" };
    held_doc *ring = NULL;
    size_t ring_n = 0, ring_head = 0;
    if (val_docs > 0 && !(ring = calloc((size_t)val_docs, sizeof *ring))) cli_die("out of memory");

    uint32_t *ids = NULL;
    size_t cap = 0;
    uint32_t n;
    uint64_t nbytes, i = 0;
    int rc;
    while ((rc = ttt_tokstream_next(&r, &ids, &n, &cap, &nbytes)) == 1) {
        if (val_fraction > 0 && floor((double)(i + 1) * val_fraction) > floor((double)i * val_fraction)) {
            split_add(&val, ids, n, nbytes);
        } else if (ring) {
            /* the ring keeps the last val_docs documents; the oldest goes to train */
            held_doc *h = &ring[(ring_head + ring_n) % (size_t)val_docs];
            if (ring_n == (size_t)val_docs) {
                h = &ring[ring_head];
                split_add(&train, h->ids, h->n, h->nbytes);
                ring_head = (ring_head + 1) % (size_t)val_docs;
                ring_n--;
            }
            uint32_t *copy = realloc(h->ids, (size_t)n * sizeof *copy);
            if (!copy) cli_die("out of memory");
            memcpy(copy, ids, (size_t)n * sizeof *copy);
            *h = (held_doc){ copy, n, nbytes };
            ring_n++;
        } else {
            split_add(&train, ids, n, nbytes);
        }
        i++;
    }
    if (rc < 0) cli_die_lib();
    if (i == 0) cli_die("%s: no documents in the token stream", name);
    for (size_t k = 0; k < ring_n; k++) {
        held_doc *h = &ring[(ring_head + k) % (size_t)val_docs];
        split_add(&val, h->ids, h->n, h->nbytes);
    }
    split_close(&train);
    split_close(&val);

    publish(&train);
    publish(&val);
    finished = 1;
    /* make the renames durable */
    char *d = strdup(prefix);
    int dfd = d ? open(dirname(d), O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;
    if (dfd >= 0) { fsync(dfd); close(dfd); }
    free(d);

    if (cli_verbosity > 0) {
        summary(&train);
        summary(&val);
        if (!train.docs) cli_warn("no training documents: all %llu went to validation", (unsigned long long)i);
        if ((val_docs > 0 || val_fraction > 0) && !val.docs) cli_warn("no document was selected for validation");
    }
    staged_free(&train, &val);
    for (size_t k = 0; ring && k < (size_t)val_docs; k++) free(ring[k].ids);
    free(ring);
    free(ids);
    free(own_prefix);
    return 0;
}
