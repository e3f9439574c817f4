/* ttt-eval - held-out evaluation of one or more checkpoints on token shards:
 * tokens evaluated, mean loss (nats), perplexity, bits per byte; with
 * --by-position the loss by token index in octave buckets, and with --plot
 * that curve as an SVG chart (one line per model).
 *
 * The windowing (consecutive, non-overlapping windows of --ctx tokens, each
 * from the initial state, a short last window evaluated) is lib/eval.h's;
 * this file parses options, loads, prints. */
#include "cli.h"
#include "checkpoint.h"   /* ttt_ckpt_load_model */
#include "err.h"          /* ttt_errmsg */
#include "eval.h"         /* ttt_eval_run, ttt_eval_result */
#include "io.h"           /* ttt_atomic */
#include "json.h"         /* json_write_str */
#include "shard.h"        /* ttt_dataset */
#include "svgplot.h"      /* ttt_svgplot_write */
#include "ttt_cuda.h"     /* TTT_CUDA_F32, TTT_CUDA_BF16 */
#include "ttt_cuda_model.h" /* ttt_gpu_model_* (--device cuda; stubs without CUDA) */

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { OPT_CTX = 256, OPT_BATCH, OPT_MAXTOK, OPT_JSON, OPT_BYPOS, OPT_PLOT, OPT_DEVICE, OPT_DTYPE };

static const cli_option opts[] = {
    { "model", 'm', required_argument, "RUNDIR", "checkpoint: a run directory or a model.safetensors (repeatable)" },
    { "data", 'd', required_argument, "PATTERN", "token shards, a glob such as 'data/kjv-val-*.tok'" },
    { "ctx", OPT_CTX, required_argument, "T", "window length in tokens (default: the model's max_position_embeddings)" },
    { "batch", OPT_BATCH, required_argument, "B", "windows per forward pass (default 4; does not change the result)" },
    { "max-tokens", OPT_MAXTOK, required_argument, "N", "evaluate at most N target tokens (default: all)" },
    { "json", OPT_JSON, no_argument, NULL, "one JSON object per model per line instead of a table" },
    { "by-position", OPT_BYPOS, no_argument, NULL, "also report the loss by token index (octave buckets)" },
    { "plot", OPT_PLOT, required_argument, "FILE.svg", "draw loss by token index of every model as an SVG chart" },
    { "device", OPT_DEVICE, required_argument, "cpu|cuda", "where to run (default cpu)" },
    { "dtype", OPT_DTYPE, required_argument, "fp32|bf16", "cuda: fp32 (default) or bf16 matrix inputs, as ttt-train --dtype" },
    { "quiet", 'q', no_argument, NULL, "no progress line" },
    { "verbose", 'v', no_argument, NULL, "progress line even when stderr is not a terminal" },
    { 0 }
};

static const cli_program prog = {
    "ttt-eval",
    "ttt-eval -m RUNDIR [-m RUNDIR]... -d PATTERN [OPTION]...",
    "Evaluates checkpoints on held-out token shards. The shards' tokens, in order, are cut\n"
    "into consecutive windows of T tokens; each window starts from the model's initial\n"
    "state and predicts its next tokens. Reports tokens evaluated, mean loss in nats,\n"
    "perplexity and bits per byte.",
    opts,
    "Output: a tab-separated table with a header line (model, tokens, windows, ctx, loss,\n"
    "ppl, bpb), then with --by-position a second table (model, from, to, count, loss)\n"
    "after an empty line. With --json: one JSON object per model per line.",
};

typedef struct {
    const char *name;
    int ctx;
    ttt_eval_result r;
} model_result;

static int show_progress;

/* --device cuda: the evaluation's forward on the GPU model. */
static int gpu_forward(void *fud, const int32_t *ids, const int32_t *tg, int B, int T, const float **losses)
{
    double mean;
    if (ttt_gpu_model_forward(fud, ids, tg, B, T, &mean) < 0) return -1;
    *losses = ttt_gpu_model_token_losses(fud);
    return 0;
}

static void progress(void *ud, uint64_t done, uint64_t total)
{
    const char *name = ud;
    fprintf(stderr, "\r%s: %s: %" PRIu64 "/%" PRIu64 " tokens (%.0f%%)", cli_prog(), name, done, total,
            total ? 100.0 * done / total : 100.0);
    fflush(stderr);
}

/* EPIPE ends quietly (status 0); another write error is reported once
 * (cli_check_stdout's exit would flush the same buffer again). */
static void check_out(void)
{
    fflush(stdout);
    if (!ferror(stdout)) return;
    if (errno == EPIPE) _exit(0);
    fprintf(stderr, "%s: write error on standard output: %s\n", cli_prog(), strerror(errno));
    _exit(1);
}

static void print_num(double v, const char *fmt)
{
    if (isfinite(v)) printf(fmt, v);
    else printf("null");
}

static void print_json(const model_result *mr, int bypos)
{
    const ttt_eval_result *r = &mr->r;
    printf("{\"model\":");
    json_write_str(stdout, mr->name, strlen(mr->name));
    printf(",\"tokens\":%" PRIu64 ",\"windows\":%" PRIu64 ",\"ctx\":%d,\"loss\":", r->targets, r->windows, mr->ctx);
    print_num(r->loss, "%.6f");
    printf(",\"ppl\":");
    print_num(r->ppl, "%.6f");
    printf(",\"bpb\":");
    print_num(r->bpb, "%.6f");
    printf(",\"bytes\":%.0f,\"bytes_scaled\":%s", r->bytes, r->bytes_scaled ? "true" : "false");
    if (bypos) {
        printf(",\"by_position\":[");
        for (int k = 0; k < r->nbuckets; k++) {
            const ttt_eval_bucket *b = &r->buckets[k];
            printf("%s{\"from\":%d,\"to\":%d,\"count\":%" PRIu64 ",\"loss\":", k ? "," : "", b->lo, b->hi, b->count);
            print_num(b->loss, "%.6f");
            printf("}");
        }
        printf("]");
    }
    printf("}\n");
}

static void write_plot(const char *path, const model_result *mr, int n)
{
    ttt_plot_series *s = calloc(n, sizeof *s);
    double **xs = calloc(n, sizeof *xs), **ys = calloc(n, sizeof *ys);
    if (!s || !xs || !ys) cli_die("out of memory");
    for (int i = 0; i < n; i++) {
        const ttt_eval_result *r = &mr[i].r;
        xs[i] = malloc(r->nbuckets * sizeof **xs);
        ys[i] = malloc(r->nbuckets * sizeof **ys);
        if (!xs[i] || !ys[i]) cli_die("out of memory");
        for (int k = 0; k < r->nbuckets; k++) {
            /* a bucket sits at the geometric middle of its index range */
            xs[i][k] = sqrt((double)r->buckets[k].lo * r->buckets[k].hi);
            ys[i][k] = r->buckets[k].loss;
        }
        s[i] = (ttt_plot_series){ mr[i].name, xs[i], ys[i], r->nbuckets };
    }
    ttt_plot_opts o = { "Loss by token index", "token index", "loss (nats)", 1, 0, 0 };
    ttt_atomic a;
    if (ttt_atomic_open(&a, path) < 0) cli_die_lib();
    if (ttt_svgplot_write(a.f, &o, s, n) < 0) {
        ttt_atomic_abort(&a);
        cli_die("%s: %s", path, ttt_errmsg());
    }
    if (ttt_atomic_commit(&a) < 0) cli_die_lib();
    for (int i = 0; i < n; i++) { free(xs[i]); free(ys[i]); }
    free(xs);
    free(ys);
    free(s);
}

int main(int argc, char **argv)
{
    cli_init(&prog);
    const char **models = NULL;
    int nmodels = 0, ctx = 0, batch = 4, json = 0, bypos = 0, device = 0, dtype = 0;
    const char *data = NULL, *plot = NULL;
    uint64_t max_tokens = 0;
    static const char *const devices[] = { "cpu", "cuda", NULL }, *const dtypes[] = { "fp32", "bf16", NULL };
    int c;
    while ((c = cli_next(argc, argv)) != -1) {
        switch (c) {
        case 'm':
            models = realloc(models, (nmodels + 1) * sizeof *models);
            if (!models) cli_die("out of memory");
            models[nmodels++] = optarg;
            break;
        case 'd': data = optarg; break;
        case OPT_CTX: ctx = (int)cli_count("--ctx", optarg, 1, 1 << 24); break;
        case OPT_BATCH: batch = (int)cli_count("--batch", optarg, 1, 65536); break;
        case OPT_MAXTOK: max_tokens = (uint64_t)cli_count("--max-tokens", optarg, 1, (long long)1e15); break;
        case OPT_JSON: json = 1; break;
        case OPT_BYPOS: bypos = 1; break;
        case OPT_PLOT: plot = optarg; break;
        case OPT_DEVICE: device = cli_enum("--device", optarg, devices); break;
        case OPT_DTYPE: dtype = cli_enum("--dtype", optarg, dtypes); break;
        case 'q': cli_verbosity = 0; break;
        case 'v': cli_verbosity = 2; break;
        }
    }
    if (optind < argc) cli_usage_error("unexpected operand '%s'", argv[optind]);
    if (nmodels == 0) cli_usage_error("no model given (-m RUNDIR)");
    if (!data) cli_usage_error("no data given (-d PATTERN)");
    if (plot && !*plot) cli_usage_error("--plot: empty file name");
    if (dtype == 1 && device != 1) cli_usage_error("--dtype bf16 needs --device cuda (the CPU evaluates in fp32)");
#ifdef TTT_HAVE_CUDA
    if (device == 1 && ttt_gpu_available() < 1) cli_die("--device cuda: no CUDA device found");
#else
    if (device == 1) cli_die("--device cuda: this build has no CUDA support");
#endif
    show_progress = cli_verbosity >= 2 || (cli_verbosity >= 1 && isatty(STDERR_FILENO));

    ttt_dataset *d = ttt_dataset_open(data);
    if (!d) cli_die_lib();
    const ttt_shard_info *di = ttt_dataset_info(d);

    model_result *mr = calloc(nmodels, sizeof *mr);
    if (!mr) cli_die("out of memory");
    for (int i = 0; i < nmodels; i++) {
        uint64_t tok_hash = 0;
        ttt_model *m = ttt_ckpt_load_model(models[i], NULL, &tok_hash);
        if (!m) cli_die_lib();
        const ttt_config *cfg = ttt_model_config(m);
        if (tok_hash && di->tok_hash && tok_hash != di->tok_hash)
            cli_die("%s: the shards were made with another tokenizer than the model's "
                    "(tokenizer hash %016" PRIx64 " in the shards, %016" PRIx64 " in the model)",
                    data, di->tok_hash, tok_hash);
        if (di->vocab > (uint32_t)cfg->vocab_size)
            cli_die("%s: vocabulary of the shards (%u) is larger than the model's (%d)", data, di->vocab, cfg->vocab_size);
        mr[i].name = models[i];
        mr[i].ctx = ctx ? ctx : cfg->max_position_embeddings;
        ttt_eval_opts o = { mr[i].ctx, batch, max_tokens, show_progress ? progress : NULL, (void *)models[i], NULL, NULL };
        ttt_gpu_model *gm = NULL;
        if (device == 1) {
            if (!(gm = ttt_gpu_model_new(m, 0, dtype == 1 ? TTT_CUDA_BF16 : TTT_CUDA_F32, batch, mr[i].ctx)) ||
                ttt_gpu_model_upload_params(gm, ttt_model_params(m)) < 0)
                cli_die("%s: %s", models[i], ttt_errmsg());
            ttt_gpu_model_set_nograd(gm, 1);   /* no backward follows: no state checkpoints */
            o.forward = gpu_forward;
            o.fud = gm;
        }
        int rc = ttt_eval_run(m, d, &o, &mr[i].r);
        ttt_gpu_model_free(gm);
        if (show_progress) fputc('\n', stderr);
        if (rc < 0) cli_die("%s: %s", models[i], ttt_errmsg());
        ttt_model_free(m);
        if (mr[i].r.bytes_scaled && cli_verbosity >= 1 && !json)
            cli_warn("%s: evaluated %" PRIu64 " of %" PRIu64 " tokens; bits per byte uses the shards' text bytes "
                     "scaled by that fraction", models[i], mr[i].r.targets, ttt_dataset_tokens(d) - 1);
    }

    if (json) {
        for (int i = 0; i < nmodels; i++) print_json(&mr[i], bypos);
    } else {
        printf("model\ttokens\twindows\tctx\tloss\tppl\tbpb\n");
        for (int i = 0; i < nmodels; i++) {
            const ttt_eval_result *r = &mr[i].r;
            printf("%s\t%" PRIu64 "\t%" PRIu64 "\t%d\t%.6f\t%.4f\t%.6f\n", mr[i].name, r->targets, r->windows,
                   mr[i].ctx, r->loss, r->ppl, r->bpb);
        }
        if (bypos) {
            printf("\nmodel\tfrom\tto\tcount\tloss\n");
            for (int i = 0; i < nmodels; i++)
                for (int k = 0; k < mr[i].r.nbuckets; k++) {
                    const ttt_eval_bucket *b = &mr[i].r.buckets[k];
                    printf("%s\t%d\t%d\t%" PRIu64 "\t%.6f\n", mr[i].name, b->lo, b->hi, b->count, b->loss);
                }
        }
    }
    check_out();
    if (plot) write_plot(plot, mr, nmodels);
    for (int i = 0; i < nmodels; i++) ttt_eval_result_free(&mr[i].r);
    free(mr);
    free(models);
    ttt_dataset_close(d);
    return 0;
}
