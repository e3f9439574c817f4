/* ttt-generate - text from a checkpoint: the prompt is prefilled (dual form
 * over whole mini-batches, then the remainder), then tokens are sampled one
 * at a time with constant time and memory per token, and their bytes are
 * streamed to stdout as they come. --state-out saves the complete decoding
 * state (fast weights, running sums, conv buffers, position, RNG, last
 * logits) so that --state-in continues exactly where it stopped.
 *
 * Not done here: the math (lib/model_decode.c), the sampling rules
 * (lib/sampler.c), the state file (lib/state.c). */
#define _GNU_SOURCE   /* asprintf */
#include "cli.h"
#include "checkpoint.h"   /* ttt_ckpt_load_model, ttt_ckpt_model_path */
#include "err.h"          /* ttt_errmsg */
#include "io.h"           /* ttt_read_file */
#include "sampler.h"      /* ttt_sampler */
#include "state.h"        /* ttt_state_save, ttt_state_load */
#include "tokenizer.h"    /* ttt_tokenizer_* */
#include "ttt_cuda_decode.h"  /* --device cuda: ttt_gpu_decode_* */
#include "ttt_cuda_model.h"   /* ttt_gpu_available */

#include <errno.h>
#include <inttypes.h>
#include <libgen.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* Prompt chunk per prefill call: bounds the activation and logits memory
 * for long prompts. A multiple of every sane mini-batch size. */
#define PREFILL_CHUNK 512
/* Prompt limit: token counts are ints in the decode API. */
#define MAX_PROMPT_TOKENS (INT_MAX / 2)

enum { OPT_TEMP = 256, OPT_TOPK, OPT_TOPP, OPT_SEED, OPT_GREEDY, OPT_STOP, OPT_STATE_IN, OPT_STATE_OUT, OPT_DEVICE };

static const cli_option opts[] = {
    { "model", 'm', required_argument, "RUNDIR", "checkpoint: a run directory or a model.safetensors" },
    { "tokenizer", 't', required_argument, "FILE", "tokenizer.json (default: the one in the run directory)" },
    { "prompt", 'p', required_argument, "TEXT", "prompt text (default: standard input when it is not a terminal)" },
    { "tokens", 'n', required_argument, "N", "tokens to generate (default 256; 0 = prefill only)" },
    { "temperature", OPT_TEMP, required_argument, "X", "softmax temperature (default 1; 0 = greedy)" },
    { "top-k", OPT_TOPK, required_argument, "K", "sample among the K most likely tokens (default 0 = all)" },
    { "top-p", OPT_TOPP, required_argument, "P", "sample in the smallest set with probability mass >= P (default 1)" },
    { "seed", OPT_SEED, required_argument, "S", "random seed (default 0; with --state-in: the saved RNG)" },
    { "greedy", OPT_GREEDY, no_argument, NULL, "always take the most likely token" },
    { "stop", OPT_STOP, required_argument, "STRING", "stop when the generated text contains STRING (not printed)" },
    { "state-in", OPT_STATE_IN, required_argument, "FILE", "continue from a saved decoding state" },
    { "state-out", OPT_STATE_OUT, required_argument, "FILE", "save the decoding state at the end" },
    { "device", OPT_DEVICE, required_argument, "cpu|cuda", "where to run (default cpu)" },
    { "quiet", 'q', no_argument, NULL, "no statistics on stderr" },
    { "verbose", 'v', no_argument, NULL, "print prompt length and tokens/s on stderr" },
    { 0 }
};

static const cli_program prog = {
    "ttt-generate",
    "ttt-generate -m RUNDIR [-p TEXT] [-n N] [OPTION]...",
    "Generates text from a checkpoint and writes it to standard output as it is\n"
    "produced (the prompt itself is not repeated). Without -p the prompt is read from\n"
    "standard input when that is not a terminal; with no prompt at all generation\n"
    "starts from <|endoftext|>.",
    opts,
    "Generating N tokens in one run prints exactly what `-n 0 --state-out F` followed\n"
    "by `--state-in F -n N` prints, with the same sampling options and seed.",
};

/* The tokenizer next to the checkpoint: RUNDIR/tokenizer.json, or the
 * directory of a model file. */
static char *default_tokenizer(const char *model)
{
    struct stat sb;
    char *dir = strdup(model), *path;
    if (!dir) cli_die("out of memory");
    const char *d = (stat(model, &sb) == 0 && S_ISDIR(sb.st_mode)) ? dir : dirname(dir);
    if (asprintf(&path, "%s/tokenizer.json", d) < 0) cli_die("out of memory");
    free(dir);
    return path;
}

/* Stdout check after writing: EPIPE ends quietly (status 0), another error
 * is reported once and ends with status 1. (cli_check_stdout's cli_die
 * would run the at-exit flush of the same buffer and print twice.) */
static void check_out(void)
{
    if (!ferror(stdout)) return;
    if (errno == EPIPE) _exit(0);
    fprintf(stderr, "%s: write error on standard output: %s\n", cli_prog(), strerror(errno));
    ttt_atomic_abort_all();
    _exit(1);
}

/* ---- output with --stop: bytes that might begin the stop string are held
 * back until they are known not to. ---- */
typedef struct {
    const char *stop;
    size_t slen;
    char *held;
    size_t nheld;
    int tty;
} out_state;

/* Writes n bytes; returns 1 when the stop string was completed. */
static int emit(out_state *o, const char *p, size_t n)
{
    if (!o->slen) {
        fwrite(p, 1, n, stdout);
        if (o->tty) fflush(stdout);
        check_out();
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        o->held[o->nheld++] = p[i];
        if (o->nheld == o->slen && memcmp(o->held, o->stop, o->slen) == 0) return 1;
        /* drop from the front until the held bytes are a prefix of stop */
        size_t k = 0;
        while (k < o->nheld && memcmp(o->held + k, o->stop, o->nheld - k) != 0) k++;
        fwrite(o->held, 1, k, stdout);
        memmove(o->held, o->held + k, o->nheld - k);
        o->nheld -= k;
    }
    if (o->tty) fflush(stdout);
    check_out();
    return 0;
}

static void flush_held(out_state *o)
{
    if (o->nheld) fwrite(o->held, 1, o->nheld, stdout);   /* held may be NULL when empty */
    o->nheld = 0;
    check_out();
}

/* --device cuda: the GPU decoder; the CPU decoder s then only carries the
 * state to and from state files. The GPU returns the logits of a chunk's
 * last token only: they are put where the CPU path leaves them. */
static ttt_gpu_decode *gd;

static int dec_step(ttt_model *m, ttt_decode *s, const int32_t *id, real *logits)
{
    return gd ? ttt_gpu_decode_step(gd, id, (float *)logits) : ttt_decode_step(m, s, id, logits);
}

static int dec_prefill(ttt_model *m, ttt_decode *s, const int32_t *ids, int P, real *logits, int V)
{
    return gd ? ttt_gpu_decode_prefill(gd, ids, P, (float *)logits + (size_t)(P - 1) * V)
              : ttt_decode_prefill(m, s, ids, P, logits);
}

static long dec_pos(const ttt_decode *s) { return gd ? ttt_gpu_decode_position(gd) : ttt_decode_position(s); }

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

int main(int argc, char **argv)
{
    cli_init(&prog);
    const char *model_path = NULL, *tok_path = NULL, *prompt = NULL, *stop = NULL;
    const char *state_in = NULL, *state_out = NULL;
    long long ntok = 256;
    uint64_t seed = 0;
    int seed_given = 0, device = 0;
    ttt_sampler_params sp;
    ttt_sampler_defaults(&sp);
    static const char *const devices[] = { "cpu", "cuda", NULL };
    int c;
    while ((c = cli_next(argc, argv)) != -1) {
        switch (c) {
        case 'm': model_path = optarg; break;
        case 't': tok_path = optarg; break;
        case 'p': prompt = optarg; break;
        case 'n': ntok = cli_count("-n", optarg, 0, INT_MAX); break;
        case OPT_TEMP: sp.temperature = cli_double("--temperature", optarg, 0, 1e6); break;
        case OPT_TOPK: sp.top_k = (int)cli_count("--top-k", optarg, 0, INT_MAX); break;
        case OPT_TOPP: sp.top_p = cli_double("--top-p", optarg, 1e-9, 1); break;
        case OPT_SEED: seed = (uint64_t)cli_count("--seed", optarg, 0, LLONG_MAX); seed_given = 1; break;
        case OPT_GREEDY: sp.greedy = 1; break;
        case OPT_STOP:
            stop = optarg;
            if (!*stop) cli_usage_error("--stop: empty string");
            break;
        case OPT_STATE_IN: state_in = optarg; break;
        case OPT_STATE_OUT: state_out = optarg; break;
        case OPT_DEVICE: device = cli_enum("--device", optarg, devices); break;
        case 'q': cli_verbosity = 0; break;
        case 'v': cli_verbosity = 2; break;
        }
    }
    if (optind < argc) cli_usage_error("unexpected operand '%s'", argv[optind]);
    if (!model_path) cli_usage_error("no model given (-m RUNDIR)");
#ifndef TTT_HAVE_CUDA
    if (device == 1) cli_die("--device cuda: the CUDA backend is not available in this build; use --device cpu");
#endif
    if (device == 1 && ttt_gpu_available() < 1) cli_die("--device cuda: no CUDA device found; use --device cpu");

    /* model and tokenizer */
    uint64_t model_tok_hash = 0;
    ttt_model *m = ttt_ckpt_load_model(model_path, NULL, &model_tok_hash);
    if (!m) cli_die_lib();
    const ttt_config *cfg = ttt_model_config(m);
    const int V = cfg->vocab_size, K = cfg->mini_batch_size;
    char *tp = tok_path ? strdup(tok_path) : default_tokenizer(model_path);
    ttt_tokenizer *tok = ttt_tokenizer_load(tp);
    if (!tok) {
        if (!tok_path) {
            cli_warn("%s", ttt_errmsg());
            cli_hint("give the tokenizer with -t FILE");
            exit(1);
        }
        cli_die_lib();
    }
    if (model_tok_hash && ttt_tokenizer_hash(tok) != model_tok_hash)
        cli_die("%s: not the model's tokenizer (hash %016" PRIx64 ", the model was trained with %016" PRIx64 ")",
                tp, ttt_tokenizer_hash(tok), model_tok_hash);
    if (ttt_tokenizer_vocab_size(tok) > (uint32_t)V)
        cli_die("%s: vocabulary of %u tokens is larger than the model's %d", tp, ttt_tokenizer_vocab_size(tok), V);

    /* prompt */
    char *text = NULL;
    size_t tlen = 0;
    if (prompt) {
        tlen = strlen(prompt);
    } else if (!isatty(STDIN_FILENO)) {
        if (ttt_read_file("-", &text, &tlen) < 0) cli_die_lib();
        prompt = text;
    }
    uint32_t *ids = NULL;
    size_t nids = 0, cap = 0;
    if (tlen && ttt_tokenizer_encode(tok, prompt, tlen, &ids, &nids, &cap) < 0) cli_die_lib();
    if (nids > MAX_PROMPT_TOKENS) cli_die("prompt of %zu tokens is longer than the limit of %d", nids, MAX_PROMPT_TOKENS);
    if (nids == 0 && !state_in) {
        /* nothing to condition on: start a new document */
        ids = realloc(ids, sizeof *ids);
        if (!ids) cli_die("out of memory");
        ids[0] = ttt_tokenizer_eot(tok);
        nids = 1;
    }

    ttt_sampler smp;
    if (ttt_sampler_init(&smp, V, &sp, seed) < 0) cli_die_lib();
    ttt_decode *s = ttt_decode_new(m, 1);
    real *logits = malloc((size_t)PREFILL_CHUNK * V * sizeof *logits);
    if (!s || !logits) cli_die("out of memory");
    if (device == 1) {
        if (sizeof(real) != sizeof(float)) cli_die("--device cuda needs the float32 library");
        if (!(gd = ttt_gpu_decode_for(m, 0, 1))) cli_die_lib();
    }
    int32_t last = -1;
    if (state_in) {
        ttt_rng saved;
        if (ttt_state_load(state_in, m, s, &saved, &last, logits) < 0) cli_die_lib();
        if (gd && ttt_gpu_decode_sync_host(gd, s, 1) < 0) cli_die_lib();
        if (!seed_given) smp.rng = saved;
    }

    /* prefill: single steps up to a mini-batch boundary (a resumed state may
     * stop inside one), then whole chunks; logits of the last token stay in
     * logits[0..V) */
    double t0 = now();
    size_t i = 0;
    int32_t one;
    while (i < nids && dec_pos(s) % K != 0) {
        one = (int32_t)ids[i++];
        if (dec_step(m, s, &one, logits) < 0) cli_die_lib();
    }
    int32_t *chunk = malloc(PREFILL_CHUNK * sizeof *chunk);
    if (!chunk) cli_die("out of memory");
    while (i < nids) {
        int P = nids - i < PREFILL_CHUNK ? (int)(nids - i) : PREFILL_CHUNK;
        for (int j = 0; j < P; j++) chunk[j] = (int32_t)ids[i + j];
        if (dec_prefill(m, s, chunk, P, logits, V) < 0) cli_die_lib();
        if (P > 1) memmove(logits, logits + (size_t)(P - 1) * V, (size_t)V * sizeof *logits);
        i += P;
    }
    if (nids) last = (int32_t)ids[nids - 1];
    double t1 = now();

    /* generation */
    out_state o = { stop, stop ? strlen(stop) : 0, NULL, 0, isatty(STDOUT_FILENO) };
    if (o.slen && !(o.held = malloc(o.slen))) cli_die("out of memory");
    setvbuf(stdout, NULL, _IOLBF, 0);
    long long made = 0;
    int stopped = 0;
    while (made < ntok && !stopped) {
        int next = ttt_sampler_sample(&smp, logits);
        size_t blen;
        const char *bytes = ttt_tokenizer_token(tok, (uint32_t)next, &blen);
        if (!bytes) cli_die("token %d has no text in %s", next, tp);
        made++;
        stopped = emit(&o, bytes, blen);
        /* consume the token so the state (and a saved state) includes it;
         * the last one only matters when the state is saved */
        if (made < ntok && !stopped) {
            one = next;
            if (dec_step(m, s, &one, logits) < 0) cli_die_lib();
        } else if (state_out) {
            one = next;
            if (dec_step(m, s, &one, logits) < 0) cli_die_lib();
        }
        last = next;
    }
    if (!stopped) flush_held(&o);
    fflush(stdout);
    check_out();
    double t2 = now();

    if (state_out && gd && ttt_gpu_decode_sync_host(gd, s, 0) < 0) cli_die_lib();
    if (state_out && ttt_state_save(state_out, m, s, &smp.rng, last, logits) < 0) cli_die_lib();
    if (cli_verbosity >= 2)
        fprintf(stderr, "%s: prompt %zu tokens in %.3f s (%.1f tokens/s); generated %lld tokens in %.3f s (%.2f ms/token); position %ld\n",
                cli_prog(), nids, t1 - t0, nids ? nids / (t1 - t0) : 0.0, made, t2 - t1,
                made ? 1e3 * (t2 - t1) / made : 0.0, dec_pos(s));

    free(o.held);
    free(chunk);
    free(logits);
    free(ids);
    free(text);
    free(tp);
    ttt_sampler_free(&smp);
    ttt_decode_free(s);
    ttt_gpu_decode_free(gd);
    ttt_tokenizer_free(tok);
    ttt_model_free(m);
    return 0;
}
