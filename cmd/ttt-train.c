/* ttt-train - trains a TTT language model on token shards into a run
 * directory (RUNDIR), with exact resume.
 *
 * This file parses options, keeps run.json, metrics.jsonl, the lock and the
 * progress line, and drives the loop; the math is in libttt (model, AdamW,
 * schedule, windows) and the files in lib/checkpoint.c.
 *
 * Exactness of --resume: the window sampler's generator state, the AdamW
 * moments and the step are checkpointed, and nothing else carries state
 * from step to step, so an interrupted run that resumes reaches the same
 * bits as an uninterrupted one (same thread count, CPU).
 *
 * Data parallel (lib/dist.h): under mpirun/srun every rank draws the whole
 * global batch from the same generator and trains on its slice of it, the
 * gradients are averaged in place, and the identical update keeps every
 * rank's parameters bit-equal (checked at each checkpoint). Rank 0 alone
 * writes RUNDIR; every rank reads it on --resume.
 */
#include "cli.h"

#include "checkpoint.h"    /* ttt_ckpt_*, ttt_opt_state */
#include "dist.h"          /* ttt_dist_* */
#include "err.h"           /* ttt_errmsg */
#include "io.h"            /* ttt_atomic_*, ttt_read_file */
#include "json.h"          /* json_parse */
#include "prefetch.h"
#include "layers/adamw.h"  /* ttt_adamw_update, ttt_grad_norm */
#include "model.h"         /* ttt_model_* */
#include "rng.h"           /* ttt_rng */
#include "shard.h"         /* ttt_dataset_* */
#include "tokenizer.h"     /* ttt_tokenizer_load, ttt_tokenizer_hash */
#include "train_data.h"    /* ttt_train_draw/read/slice, ttt_train_window, ttt_unigram_entropy */
#include "train_sched.h"   /* ttt_lr_schedule */
#include "train_guard.h"   /* ttt_guard_*: non-finite checks, memory estimate */
#include "ttt_cuda.h"      /* TTT_CUDA_F32, TTT_CUDA_BF16 */
#include "ttt_cuda_model.h" /* ttt_gpu_model_* (--device cuda; stubs without CUDA) */

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>
#ifdef _OPENMP
#include <omp.h>
#endif
#ifdef TTT_HAVE_BLAS
void openblas_set_num_threads(int);
#endif

/* ---- options ---- */

enum {
    O_VAL = 256, O_ARCH, O_BACKBONE, O_CTX, O_BATCH, O_STEPS, O_TOKENS, O_LR, O_SEED, O_THREADS,
    O_EVAL_EVERY, O_SAVE_EVERY, O_RESUME, O_DEVICE, O_WARMUP, O_MIN_LR, O_WD, O_CLIP, O_ACCUM,
    O_VAL_WINDOWS, O_STOP_AFTER, O_DTYPE, O_SKIP_NONFINITE, O_ALLREDUCE,
};

static const cli_option opts[] = {
    { "data", 'd', required_argument, "GLOB", "training shards, a quoted glob ('PREFIX-train-*.tok')" },
    { "val", O_VAL, required_argument, "GLOB", "validation shards (evaluated every --eval-every steps)" },
    { "config", 'c', required_argument, "PRESET|FILE", "model: tiny, small, 125m, 350m, 760m, 1b, or a config.json (small)" },
    { "arch", O_ARCH, required_argument, "ARCH", "sequence model: ttt-linear, ttt-mlp, or the baselines transformer, mamba (ttt-linear)" },
    { "backbone", O_BACKBONE, required_argument, "NAME", "backbone of the TTT layers: mamba or transformer (mamba)" },
    { "tokenizer", 't', required_argument, "FILE", "tokenizer.json of the shards, copied into RUNDIR" },
    { "output", 'o', required_argument, "RUNDIR", "run directory to create" },
    { "ctx", O_CTX, required_argument, "T", "context length of a training window (preset's)" },
    { "batch", O_BATCH, required_argument, "B", "windows per step (8)" },
    { "accum", O_ACCUM, required_argument, "N", "split each step into N micro-batches (1)" },
    { "steps", O_STEPS, required_argument, "N", "optimizer steps (1000)" },
    { "tokens", O_TOKENS, required_argument, "N", "train on N tokens: steps = ceil(N / (B*T))" },
    { "lr", O_LR, required_argument, "LR", "peak learning rate (the recipe's for the size, else 3e-3)" },
    { "warmup", O_WARMUP, required_argument, "N", "linear warm-up steps (10% of --steps)" },
    { "min-lr", O_MIN_LR, required_argument, "LR", "learning rate at the end of the cosine decay (1e-5)" },
    { "weight-decay", O_WD, required_argument, "X", "AdamW weight decay on all parameters (0.1)" },
    { "clip", O_CLIP, required_argument, "X", "global gradient norm limit, 0 = off (1.0)" },
    { "seed", O_SEED, required_argument, "S", "seed of the initialisation and the window sampler (1)" },
    { "threads", O_THREADS, required_argument, "N", "CPU threads (OpenMP/BLAS default)" },
    { "eval-every", O_EVAL_EVERY, required_argument, "N", "validate every N steps, 0 = only at the end (100)" },
    { "val-windows", O_VAL_WINDOWS, required_argument, "N", "validation windows of T tokens (64)" },
    { "save-every", O_SAVE_EVERY, required_argument, "N", "checkpoint every N steps, 0 = only at the end (1000)" },
    { "stop-after", O_STOP_AFTER, required_argument, "N", "stop after step N with a checkpoint, as if interrupted" },
    { "skip-nonfinite", O_SKIP_NONFINITE, no_argument, NULL, "skip a step whose loss or gradient is NaN/Inf (default: stop, exit 1)" },
    { "resume", O_RESUME, required_argument, "RUNDIR", "continue the run in RUNDIR" },
    { "device", O_DEVICE, required_argument, "DEV", "cpu or cuda (cpu)" },
    { "dtype", O_DTYPE, required_argument, "fp32|bf16", "cuda: matrix inputs in fp32 or bf16 (tensor cores), fp32 accumulation and state (fp32)" },
    { "allreduce", O_ALLREDUCE, required_argument, "auto|nccl|mpi", "cuda under MPI: average gradients with NCCL on the GPUs or through host memory with MPI (auto)" },
    { "quiet", 'q', no_argument, NULL, "no progress or messages" },
    { "verbose", 'v', no_argument, NULL, "a line per evaluation and checkpoint even when not a terminal" },
    { 0 },
};

static const cli_program prog = {
    "ttt-train",
    "ttt-train -d GLOB -o RUNDIR [-c PRESET|FILE] [--val GLOB] [-t tokenizer.json] [OPTION]...\n"
    "       ttt-train --resume RUNDIR [--steps N|--tokens N] [OPTION]...",
    "Trains a TTT language model on token shards (ttt-pack) with AdamW, warm-up and cosine\n"
    "decay, and writes checkpoints, metrics and the run's options into RUNDIR. SIGINT or\n"
    "SIGTERM finish the current step, save a checkpoint and exit 130; --resume continues\n"
    "exactly where the run stopped.",
    opts,
    "With --resume only --steps, --tokens, --eval-every, --save-every, --stop-after,\n"
    "--threads, --device, --dtype, --allreduce, --skip-nonfinite, -q and -v may be given; the rest comes from\n"
    "RUNDIR/run.json.\n"
    "Exit status 130: interrupted, checkpoint saved.\n"
    "Data parallel: mpirun -np N ttt-train ... (or srun --mpi=pmix); --batch is the global batch.",
};

/* Everything that defines a run; stored in run.json. */
typedef struct {
    char *data, *val, *config, *arch, *backbone, *tokenizer;
    int ctx, batch, accum, val_windows;
    long long steps, warmup, eval_every, save_every;
    double lr, min_lr, wd, clip;
    uint64_t seed;
    uint64_t train_tokens;
    double unigram_loss;
} run_opts;

static const char *const arch_names[] = { "ttt-linear", "ttt-mlp", "transformer", "mamba", NULL };
static const char *const backbone_names[] = { "mamba", "transformer", NULL };
static const char *const device_names[] = { "cpu", "cuda", NULL };
static const char *const dtype_names[] = { "fp32", "bf16", NULL };
static const char *const allreduce_names[] = { "auto", "nccl", "mpi", NULL };   /* TTT_ALLREDUCE_* */

/* ---- signals ---- */

static volatile sig_atomic_t interrupted;

static int skip_nonfinite;        /* --skip-nonfinite */
static long long skipped_total;   /* non-finite steps skipped, earlier invocations included */

static void on_signal(int sig) { interrupted = sig; }

static void install_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

/* ---- helpers ---- */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static char *xstrdup(const char *s)
{
    char *p = s ? strdup(s) : NULL;
    if (s && !p) cli_die("out of memory");
    return p;
}

/* A relative glob or path made absolute, so --resume works from anywhere. */
static char *absolute(const char *p)
{
    if (!p || p[0] == '/') return xstrdup(p);
    char cwd[PATH_MAX];
    if (!getcwd(cwd, sizeof cwd)) cli_die("cannot get the current directory: %s", strerror(errno));
    size_t n = strlen(cwd) + strlen(p) + 2;
    char *r = malloc(n);
    if (!r) cli_die("out of memory");
    snprintf(r, n, "%s/%s", cwd, p);
    return r;
}

static void write_file_atomic(const char *path, const char *data, size_t n)
{
    ttt_atomic a;
    if (ttt_atomic_open(&a, path) < 0) cli_die_lib();
    if (ttt_fwrite(a.f, data, n, path) < 0) { ttt_atomic_abort(&a); cli_die_lib(); }
    if (ttt_atomic_commit(&a) < 0) cli_die_lib();
}

static void put_str(FILE *f, const char *key, const char *v, int last)
{
    fprintf(f, "  \"%s\": ", key);
    if (v) json_write_str(f, v, strlen(v));
    else fputs("null", f);
    fputs(last ? "\n" : ",\n", f);
}

static char *run_json(const run_opts *o)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f) cli_die("out of memory");
    fputs("{\n  \"format\": \"ttt-run\",\n  \"version\": 1,\n", f);
    put_str(f, "data", o->data, 0);
    put_str(f, "val", o->val, 0);
    put_str(f, "config", o->config, 0);
    put_str(f, "arch", o->arch, 0);
    put_str(f, "backbone", o->backbone, 0);
    put_str(f, "tokenizer", o->tokenizer, 0);
    fprintf(f, "  \"ctx\": %d,\n  \"batch\": %d,\n  \"accum\": %d,\n  \"steps\": %lld,\n  \"warmup\": %lld,\n",
            o->ctx, o->batch, o->accum, o->steps, o->warmup);
    fprintf(f, "  \"lr\": %.17g,\n  \"min_lr\": %.17g,\n  \"weight_decay\": %.17g,\n  \"clip\": %.17g,\n",
            o->lr, o->min_lr, o->wd, o->clip);
    fprintf(f, "  \"seed\": %" PRIu64 ",\n  \"eval_every\": %lld,\n  \"save_every\": %lld,\n  \"val_windows\": %d,\n",
            o->seed, o->eval_every, o->save_every, o->val_windows);
    fprintf(f, "  \"train_tokens\": %" PRIu64 ",\n  \"unigram_loss\": %.9g\n}\n", o->train_tokens, o->unigram_loss);
    if (fclose(f) != 0) cli_die("out of memory");
    return buf;
}

/* main makes all six strings of run_opts its own (argv, presets and
 * run.json alike), so they are freed on every way out of main. */
static void run_opts_free(run_opts *o)
{
    free(o->data); free(o->val); free(o->config); free(o->arch); free(o->backbone); free(o->tokenizer);
}

static void run_json_load(const char *rundir, run_opts *o)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/run.json", rundir);
    char *text;
    size_t n;
    if (ttt_read_file(path, &text, &n) < 0) cli_die_lib();
    json *j = json_parse(text, n);
    free(text);
    if (!j) cli_die("%s: %s", path, ttt_errmsg());
    const char *fmt = json_get_str(j, "format");
    if (!fmt || strcmp(fmt, "ttt-run")) cli_die("%s: not a ttt-train run file", path);
#define STR(field, key, need) do { const json *v_ = json_get(j, key); \
        if (v_ && v_->type == JSON_STR) o->field = xstrdup(v_->str); \
        else if (need || (v_ && v_->type != JSON_NULL)) cli_die("%s: \"%s\" missing or not a string", path, key); \
        else o->field = NULL; } while (0)
#define NUM(field, key, type) do { double v_; \
        if (json_get_num(j, key, &v_) < 0) cli_die("%s: \"%s\" missing or not a number", path, key); \
        o->field = (type)v_; } while (0)
    STR(data, "data", 1); STR(val, "val", 0); STR(config, "config", 1); STR(arch, "arch", 1);
    STR(backbone, "backbone", 1); STR(tokenizer, "tokenizer", 0);
    NUM(ctx, "ctx", int); NUM(batch, "batch", int); NUM(accum, "accum", int);
    NUM(steps, "steps", long long); NUM(warmup, "warmup", long long);
    NUM(lr, "lr", double); NUM(min_lr, "min_lr", double); NUM(wd, "weight_decay", double);
    NUM(clip, "clip", double); NUM(seed, "seed", uint64_t); NUM(eval_every, "eval_every", long long);
    NUM(save_every, "save_every", long long); NUM(val_windows, "val_windows", int);
    NUM(train_tokens, "train_tokens", uint64_t); NUM(unigram_loss, "unigram_loss", double);
#undef STR
#undef NUM
    json_free(j);
    if (o->ctx < 1 || o->batch < 1 || o->accum < 1 || o->batch % o->accum || o->steps < 1)
        cli_die("%s: inconsistent values (ctx, batch, accum, steps)", path);
}

/* Keeps the metrics lines of steps <= step (a resumed run rewrites the rest);
 * returns the elapsed_s of the last kept line. */
static double metrics_truncate(const char *path, long long step)
{
    char *text;
    size_t n;
    if (access(path, F_OK) != 0) return 0;
    if (ttt_read_file(path, &text, &n) < 0) cli_die_lib();
    size_t keep = 0;
    double elapsed = 0;
    for (size_t pos = 0; pos < n;) {
        char *nl = memchr(text + pos, '\n', n - pos);
        if (!nl) break;   /* a torn last line */
        long long s;
        if (sscanf(text + pos, "{\"step\":%lld", &s) != 1 || s > step) break;
        char *e = strstr(text + pos, "\"elapsed_s\":");
        if (e && e < nl) elapsed = strtod(e + 12, NULL);
        pos = keep = (size_t)(nl - text) + 1;
    }
    skipped_total = ttt_guard_count_skipped(text, keep, step);
    if (keep != n) write_file_atomic(path, text, keep);
    free(text);
    return elapsed;
}

/* A RUNDIR this process created is removed again if it exits before the
 * first checkpoint, so a failed start leaves nothing behind. */
static const char *created_dir;

static void remove_created_dir(void)
{
    if (!created_dir || ttt_ckpt_is_run(created_dir)) return;
    static const char *const files[] = { "lock", "run.json", "config.json", "metrics.jsonl", "tokenizer.json" };
    char p[PATH_MAX];
    for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
        snprintf(p, sizeof p, "%s/%s", created_dir, files[i]);
        unlink(p);
    }
    rmdir(created_dir);
}

static int take_lock(const char *rundir)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/lock", rundir);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) cli_die("%s: cannot create: %s", path, strerror(errno));
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        if (errno == EWOULDBLOCK) {
            created_dir = NULL;   /* the holder's files now, whoever made the directory */
            cli_die("%s: another ttt-train is running on this run directory", rundir);
        }
        cli_die("%s: cannot lock: %s", path, strerror(errno));
    }
    char pid[32];
    int k = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
    if (ftruncate(fd, 0) == 0 && write(fd, pid, k) != k) { /* informational only */ }
    return fd;   /* held until exit */
}

static double default_lr(const char *preset)
{
    static const struct { const char *name; double lr; } t[] = {
        { "125m", 3e-3 }, { "350m", 1.5e-3 }, { "760m", 1.25e-3 }, { "1b", 1e-3 },
    };
    for (size_t i = 0; i < sizeof t / sizeof *t; i++)
        if (preset && !strcmp(preset, t[i].name)) return t[i].lr;
    return 3e-3;
}

static int is_config_file(const char *s)
{
    size_t n = strlen(s);
    return strchr(s, '/') || (n > 5 && !strcmp(s + n - 5, ".json")) || access(s, F_OK) == 0;
}

/* The model config of a fresh run: preset or file, arch/backbone, vocab. */
static void make_config(ttt_config *c, const run_opts *o, int arch_given, int backbone_given, uint32_t data_vocab)
{
    int fixed_vocab = 0;
    int block = !strcmp(o->arch, "transformer") ? SEQ_ATTENTION : !strcmp(o->arch, "mamba") ? SEQ_MAMBA : SEQ_TTT;
    if (block != SEQ_TTT && backbone_given)
        cli_usage_error("--backbone applies to ttt-linear and ttt-mlp only");
    if (is_config_file(o->config)) {
        char *text;
        size_t n;
        if (ttt_read_file(o->config, &text, &n) < 0) cli_die_lib();
        json *j = json_parse(text, n);
        free(text);
        if (!j) cli_die("%s: %s", o->config, ttt_errmsg());
        fixed_vocab = json_get(j, "vocab_size") != NULL;
        int rc = ttt_config_from_json(c, j);
        json_free(j);
        if (rc < 0) cli_die("%s: %s", o->config, ttt_errmsg());
    } else if (ttt_config_preset_for(c, o->config, block) < 0) {
        cli_usage_error("%s", ttt_errmsg());
    } else if (strcmp(o->arch, "ttt-mlp") == 0) {
        c->ttt_base_lr = 0.1;   /* the recipe's inner lr for TTT-MLP */
    }
    if (arch_given || !is_config_file(o->config)) {
        c->seq_modeling_block = block;
        if (block == SEQ_TTT) c->ttt_layer_type = strcmp(o->arch, "ttt-mlp") ? TTT_LINEAR : TTT_MLP;
    }
    if (block == SEQ_TTT && (backbone_given || !is_config_file(o->config))) {
        int m = strcmp(o->backbone, "mamba") == 0;
        c->pre_conv = c->share_qk = c->use_gate = m;
    }
    if (fixed_vocab) {
        if ((uint32_t)c->vocab_size < data_vocab)
            cli_die("%s: vocab_size %d is smaller than the shards' vocabulary (%u)", o->config, c->vocab_size, data_vocab);
    } else {
        c->vocab_size = (int)data_vocab;
    }
    c->max_position_embeddings = o->ctx;
    if (ttt_config_validate(c) < 0) cli_die("%s: %s", o->config, ttt_errmsg());
}

static void fmt_eta(char *buf, size_t n, double s)
{
    if (!(s >= 0) || s > 1e8) { snprintf(buf, n, "?"); return; }
    long t = (long)(s + 0.5);
    if (t >= 3600) snprintf(buf, n, "%ldh%02ldm", t / 3600, t / 60 % 60);
    else snprintf(buf, n, "%ldm%02lds", t / 60, t % 60);
}

/* --device cuda: the model's working copy on the GPU (NULL on the CPU). The
 * host model m then holds the parameters only at start and at checkpoints. */
static ttt_gpu_model *gpu;
static ttt_dist_gpu *nccl;   /* averages gpu's gradients on the device (NULL: through the host) */

/* Draws the next step's global batch with *rng and starts reading this
 * rank's windows of it (from `first`) on the prefetch thread. */
static int draw_ahead(ttt_dataset *train, ttt_rng *rng, int batch, int T, uint64_t *starts, int first, ttt_prefetch *pf)
{
    return ttt_train_draw(train, rng, batch, T, starts) < 0 ? -1 : ttt_prefetch_start(pf, starts + first);
}

static int forward(ttt_model *m, const int32_t *ids, const int32_t *tg, int B, int T, double *loss)
{
    return gpu ? ttt_gpu_model_forward(gpu, ids, tg, B, T, loss) : ttt_model_forward(m, ids, tg, B, T, loss);
}

/* Host copies of the GPU's parameters and AdamW moments, for a checkpoint. */
static void gpu_download(ttt_model *m, ttt_opt_state *st)
{
    if (gpu && (ttt_gpu_model_download_params(gpu, ttt_model_params(m)) < 0 ||
                ttt_gpu_model_download_opt(gpu, st->m, st->v) < 0))
        cli_die_lib();
}

/* Mean loss over the validation windows, in micro-batches of mb; each
 * rank takes a contiguous share of the windows. */
static double validate(ttt_model *m, ttt_dataset *val, uint64_t nwin, int mb, int T, uint32_t vocab,
                       int32_t *ids, int32_t *tg, uint32_t *scratch)
{
    double sum = 0;
    uint64_t r = (uint64_t)ttt_dist_rank(), N = (uint64_t)ttt_dist_size();
    uint64_t end = nwin * (r + 1) / N;
    if (gpu) ttt_gpu_model_set_nograd(gpu, 1);   /* no backward follows: no state checkpoints */
    for (uint64_t w = nwin * r / N; w < end;) {
        int b = 0;
        for (; b < mb && w < end; b++, w++)
            if (ttt_train_window(val, w, T, vocab, ids + (size_t)b * T, tg + (size_t)b * T, scratch) < 0)
                cli_die("validation data: %s", ttt_errmsg());
        double loss;
        if (forward(m, ids, tg, b, T, &loss) < 0) cli_die_lib();
        sum += loss * b;
    }
    if (gpu) ttt_gpu_model_set_nograd(gpu, 0);
    if (ttt_dist_allreduce_sum(&sum, 1) < 0) cli_die_lib();
    return sum / (double)nwin;
}

/* Data parallel: the ranks apply identical updates to identical
 * parameters, so their bits must agree; a difference (a rank on other
 * hardware or with another BLAS) would silently fork the model. */
static void check_in_sync(ttt_model *m, long long step)
{
    uint64_t h = XXH3_64bits(ttt_model_params(m), ttt_model_num_params(m) * sizeof(real));
    int same = ttt_dist_same_u64(h);
    if (same < 0) cli_die_lib();
    if (!same)
        cli_die("rank %d: the ranks' parameters differ at step %lld (ranks need the same CPU type, libraries and "
                "--threads)", ttt_dist_rank(), step);
}

/* ---- faults (lib/train_guard.h) ---- */

static ttt_mem_estimate mem;   /* what the run needs, for the out-of-memory line */
static int mem_mb, mem_T;

static size_t mib(size_t b) { return (b + (1 << 20) - 1) >> 20; }

/* One line: what failed (or what is available), what the run needs, and
 * what to change. */
static _Noreturn void die_oom(const char *what, size_t avail)
{
    char have[64] = "";
    if (avail) snprintf(have, sizeof have, ", %zu MiB available", mib(avail));
    if (!mem.total) cli_die("out of memory%s%s; try a larger --accum or a smaller --batch or --ctx", what ? " allocating " : "", what ? what : "");
    cli_die("out of memory%s%s: the run needs about %zu MiB%s (parameters and gradients %zu MiB, AdamW moments "
            "%zu MiB, activations for %d windows x %d tokens %zu MiB); try a larger --accum or a smaller --batch or --ctx",
            what ? " allocating " : "", what ? what : "", mib(mem.total), have, mib(mem.params + mem.grads),
            mib(mem.opt), mem_mb, mem_T, mib(mem.acts));
}

/* A library failure; running out of memory gets the estimate and advice. */
static _Noreturn void die_lib_oom(const char *what)
{
    if (strstr(ttt_errmsg(), "out of memory")) die_oom(what, 0);
    cli_die_lib();
}

/* Before allocating: the estimate, and a refusal (nothing allocated yet)
 * when it exceeds physical memory or what ulimit -v/-d leaves. */
static void mem_check(const ttt_config *c, int mb, int T)
{
    mem_mb = mb > 0 ? mb : 1;
    mem_T = T;
    if (ttt_guard_mem_estimate(c, mem_mb, T, &mem) < 0) {
        memset(&mem, 0, sizeof mem);
        return;
    }
    size_t lim = ttt_guard_mem_limit();
    if (lim && mem.total > lim) die_oom(NULL, lim);
    if (cli_verbosity >= 2)
        fprintf(stderr, "%s: memory: about %zu MiB (activations for %d windows x %d tokens: %zu MiB)\n", cli_prog(),
                mib(mem.total), mem_mb, T, mib(mem.acts));
}

/* ---- main ---- */

int main(int argc, char **argv)
{
    cli_init(&prog);
    run_opts o = { 0 };
    o.batch = 8; o.accum = 1; o.steps = 1000; o.warmup = -1; o.eval_every = 100; o.save_every = 1000;
    o.lr = -1; o.min_lr = 1e-5; o.wd = 0.1; o.clip = 1.0; o.seed = 1; o.val_windows = 64;
    const char *out = NULL, *resume = NULL, *tokenizer = NULL;
    long long tokens = 0, stop_after = 0;
    int threads = 0, device = 0, dtype = 0, allreduce = TTT_ALLREDUCE_AUTO, steps_given = 0, arch_given = 0, backbone_given = 0;
    const char *fixed_given = NULL;   /* first run-defining option seen (conflicts with --resume) */
    int status = 0;                   /* 130: interrupted */
    int c;
    while ((c = cli_next(argc, argv)) != -1) {
        const char *name = NULL;
        switch (c) {
        case 'd': o.data = optarg; name = "--data"; break;
        case O_VAL: o.val = optarg; name = "--val"; break;
        case 'c': o.config = optarg; name = "--config"; break;
        case O_ARCH: o.arch = (char *)arch_names[cli_enum("--arch", optarg, arch_names)]; arch_given = 1; name = "--arch"; break;
        case O_BACKBONE:
            o.backbone = (char *)backbone_names[cli_enum("--backbone", optarg, backbone_names)];
            backbone_given = 1; name = "--backbone"; break;
        case 't': tokenizer = optarg; name = "--tokenizer"; break;
        case 'o': out = optarg; break;
        case O_CTX: o.ctx = (int)cli_count("--ctx", optarg, 1, 1 << 20); name = "--ctx"; break;
        case O_BATCH: o.batch = (int)cli_count("--batch", optarg, 1, 1 << 20); name = "--batch"; break;
        case O_ACCUM: o.accum = (int)cli_count("--accum", optarg, 1, 1 << 20); name = "--accum"; break;
        case O_STEPS: o.steps = cli_count("--steps", optarg, 1, LLONG_MAX / 2); steps_given = 1; break;
        case O_TOKENS: tokens = cli_count("--tokens", optarg, 1, LLONG_MAX / 2); break;
        case O_LR: o.lr = cli_double("--lr", optarg, 0, 10); name = "--lr"; break;
        case O_WARMUP: o.warmup = cli_count("--warmup", optarg, 0, LLONG_MAX / 2); name = "--warmup"; break;
        case O_MIN_LR: o.min_lr = cli_double("--min-lr", optarg, 0, 10); name = "--min-lr"; break;
        case O_WD: o.wd = cli_double("--weight-decay", optarg, 0, 10); name = "--weight-decay"; break;
        case O_CLIP: o.clip = cli_double("--clip", optarg, 0, 1e30); name = "--clip"; break;
        case O_SEED: o.seed = (uint64_t)cli_count("--seed", optarg, 0, LLONG_MAX); name = "--seed"; break;
        case O_THREADS: threads = (int)cli_count("--threads", optarg, 1, 4096); break;
        case O_EVAL_EVERY: o.eval_every = cli_count("--eval-every", optarg, 0, LLONG_MAX / 2); break;
        case O_VAL_WINDOWS: o.val_windows = (int)cli_count("--val-windows", optarg, 1, 1 << 24); name = "--val-windows"; break;
        case O_SAVE_EVERY: o.save_every = cli_count("--save-every", optarg, 0, LLONG_MAX / 2); break;
        case O_STOP_AFTER: stop_after = cli_count("--stop-after", optarg, 1, LLONG_MAX / 2); break;
        case O_SKIP_NONFINITE: skip_nonfinite = 1; break;
        case O_RESUME: resume = optarg; break;
        case O_DEVICE: device = cli_enum("--device", optarg, device_names); break;
        case O_DTYPE: dtype = cli_enum("--dtype", optarg, dtype_names); break;
        case O_ALLREDUCE: allreduce = cli_enum("--allreduce", optarg, allreduce_names); break;
        case 'q': cli_verbosity = 0; break;
        case 'v': cli_verbosity++; break;
        default: cli_usage_error("unhandled option");
        }
        if (name && !fixed_given) fixed_given = name;
    }
    if (optind < argc) cli_usage_error("unexpected operand '%s'", argv[optind]);
    if (steps_given && tokens) cli_usage_error("--steps and --tokens exclude each other");
    if (dtype == 1 && device != 1) cli_usage_error("--dtype bf16 needs --device cuda (the CPU trains in fp32)");
    if (allreduce == TTT_ALLREDUCE_NCCL && device != 1) cli_usage_error("--allreduce nccl needs --device cuda");
    if (device == 1) {
#ifdef TTT_HAVE_CUDA
        if (ttt_gpu_available() < 1) cli_die("--device cuda: no CUDA device found");
#else
        cli_die("--device cuda: this build has no CUDA support");
#endif
    }
    const char *rundir;
    if (resume) {
        if (fixed_given)
            cli_usage_error("%s cannot be given with --resume (the run's options are in RUNDIR/run.json)", fixed_given);
        if (out && strcmp(out, resume)) cli_usage_error("-o %s and --resume %s name different directories", out, resume);
        rundir = resume;
    } else {
        if (!o.data) cli_usage_error("no training data: give -d 'PREFIX-train-*.tok'");
        if (!out) cli_usage_error("no output directory: give -o RUNDIR");
        rundir = out;
        if (o.batch % o.accum) cli_usage_error("--batch %d is not a multiple of --accum %d", o.batch, o.accum);
    }
    /* After option parsing, so usage errors exit 2 on every rank before MPI
     * starts; from here on a failing rank takes the job down (dist.h). */
    if (ttt_dist_init() < 0) cli_die_lib();
    const int root = ttt_dist_rank() == 0, nranks = ttt_dist_size();
    if (!root) cli_verbosity = 0;   /* rank 0 reports; errors still print everywhere */
    if (!resume && o.batch % ((long long)nranks * o.accum))   /* before RUNDIR exists (resume: below) */
        cli_usage_error("--batch %d is not a multiple of %d ranks x --accum %d", o.batch, nranks, o.accum);
    if (threads) {
#ifdef _OPENMP
        omp_set_num_threads(threads);
#endif
#ifdef TTT_HAVE_BLAS
        openblas_set_num_threads(threads);
#endif
    }

    /* ---- the run directory ---- */
    struct stat sb;
    if (!root) {
        /* rank 0 owns RUNDIR */
    } else if (resume) {
        if (stat(rundir, &sb) != 0 || !S_ISDIR(sb.st_mode)) cli_die("%s: no such run directory", rundir);
    } else if (mkdir(rundir, 0755) == 0) {
        created_dir = rundir;
        atexit(remove_created_dir);
    } else if (errno != EEXIST) {
        cli_die("%s: cannot create: %s", rundir, strerror(errno));
    } else if (stat(rundir, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
        cli_die("%s: exists and is not a directory", rundir);
    }
    if (root) {
        take_lock(rundir);
        if (ttt_ckpt_recover(rundir) < 0) cli_die_lib();
    }
    if (ttt_dist_barrier() < 0) cli_die_lib();   /* the others read RUNDIR once it is recovered */
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/run.json", rundir);
    if (resume) {
        if (!ttt_ckpt_is_run(rundir) || access(path, F_OK) != 0)
            cli_die("%s: not a training run (no model.safetensors and run.json)", rundir);
        long long keep_steps = o.steps, keep_eval = o.eval_every, keep_save = o.save_every;
        int eval_given = 0, save_given = 0;
        for (int i = 1; i < argc; i++) {
            if (!strncmp(argv[i], "--eval-every", 12)) eval_given = 1;
            if (!strncmp(argv[i], "--save-every", 12)) save_given = 1;
        }
        run_json_load(rundir, &o);
        if (steps_given) o.steps = keep_steps;
        if (tokens) o.steps = (tokens + (long long)o.batch * o.ctx - 1) / ((long long)o.batch * o.ctx);
        if (eval_given) o.eval_every = keep_eval;
        if (save_given) o.save_every = keep_save;
    } else {
        if (ttt_ckpt_is_run(rundir))
            cli_die("%s: already holds a training run; continue it with --resume %s or choose another -o", rundir, rundir);
        o.data = absolute(o.data);
        o.val = absolute(o.val);
        if (!o.config) o.config = "small";
        o.config = is_config_file(o.config) ? absolute(o.config) : xstrdup(o.config);
        o.arch = xstrdup(o.arch ? o.arch : "ttt-linear");
        o.backbone = xstrdup(o.backbone ? o.backbone : "mamba");
        o.tokenizer = tokenizer ? absolute(tokenizer) : NULL;
    }

    /* ---- data ---- */
    ttt_dataset *train = ttt_dataset_open(o.data);
    if (!train) cli_die_lib();
    const ttt_shard_info *info = ttt_dataset_info(train);
    uint64_t tok_hash = info->tok_hash;
    ttt_dataset *val = NULL;
    if (o.val) {
        if (!(val = ttt_dataset_open(o.val))) cli_die_lib();
        if (ttt_dataset_info(val)->tok_hash != tok_hash)
            cli_die("%s: tokenizer hash %016" PRIx64 " differs from the training shards' (%016" PRIx64 ")", o.val,
                    ttt_dataset_info(val)->tok_hash, tok_hash);
    }
    if (tokenizer && root) {
        ttt_tokenizer *tk = ttt_tokenizer_load(tokenizer);
        if (!tk) cli_die_lib();
        uint64_t h = ttt_tokenizer_hash(tk);
        ttt_tokenizer_free(tk);
        if (h != tok_hash)
            cli_die("%s: tokenizer hash %016" PRIx64 " does not match the shards %s (%016" PRIx64 ")", tokenizer, h,
                    o.data, tok_hash);
        char *text;
        size_t n;
        if (ttt_read_file(tokenizer, &text, &n) < 0) cli_die_lib();
        snprintf(path, sizeof path, "%s/tokenizer.json", rundir);
        write_file_atomic(path, text, n);
        free(text);
    }

    /* ---- model and optimizer state ---- */
    ttt_model *m;
    ttt_opt_state st = { 0 };
    double elapsed0 = 0;
    if (resume) {
        long long step;
        uint64_t h;
        ttt_config rc;
        if (device == 0 && ttt_ckpt_read_config(rundir, &rc) == 0) mem_check(&rc, o.batch / nranks / o.accum, o.ctx);
        if (!(m = ttt_ckpt_load_model(rundir, &step, &h))) die_lib_oom("the model");
        if (h != tok_hash)
            cli_die("%s: the run was trained with tokenizer %016" PRIx64 ", the shards %s have %016" PRIx64, rundir, h,
                    o.data, tok_hash);
        size_t np = ttt_model_num_params(m);
        st.m = calloc(np, sizeof *st.m);
        st.v = calloc(np, sizeof *st.v);
        if (!st.m || !st.v) die_oom("the AdamW moments", 0);
        if (ttt_ckpt_load_optimizer(rundir, m, &st, step) < 0) cli_die_lib();
        snprintf(path, sizeof path, "%s/metrics.jsonl", rundir);
        if (root) elapsed0 = metrics_truncate(path, st.step);
    } else {
        if (!o.ctx) {
            ttt_config pc;
            o.ctx = !is_config_file(o.config) && ttt_config_preset(&pc, o.config) == 0 ? pc.max_position_embeddings : 512;
        }
        if (tokens) o.steps = (tokens + (long long)o.batch * o.ctx - 1) / ((long long)o.batch * o.ctx);
        if (o.lr < 0) o.lr = default_lr(o.config);
        if (o.warmup < 0) o.warmup = o.steps / 10;
        if (o.warmup >= o.steps) cli_usage_error("--warmup %lld must be less than the number of steps (%lld)", o.warmup, o.steps);
        ttt_config cfg;
        make_config(&cfg, &o, arch_given, backbone_given, info->vocab);
        if (device == 0) mem_check(&cfg, o.batch / nranks / o.accum, o.ctx);
        if (!(m = ttt_model_build(&cfg))) die_lib_oom("the model");
        ttt_model_init(m, o.seed);
        size_t np = ttt_model_num_params(m);
        st.m = calloc(np, sizeof *st.m);
        st.v = calloc(np, sizeof *st.v);
        if (!st.m || !st.v) die_oom("the AdamW moments", 0);
        st.tokenizer_hash = tok_hash;
        ttt_rng_seed(&st.rng, o.seed ^ 0x5851f42d4c957f2dull);   /* a stream apart from the init's */
        o.train_tokens = ttt_dataset_tokens(train);
        if (root && ttt_unigram_entropy(train, 50000000, info->vocab, &o.unigram_loss) < 0) cli_die_lib();
        /* config.json, run.json, an empty metrics.jsonl */
        char *buf = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&buf, &len);
        if (!f || ttt_config_write_json(&cfg, f) < 0 || fclose(f) != 0) cli_die("out of memory");
        if (root) {
            snprintf(path, sizeof path, "%s/config.json", rundir);
            write_file_atomic(path, buf, len);
            snprintf(path, sizeof path, "%s/metrics.jsonl", rundir);
            write_file_atomic(path, "", 0);
        }
        free(buf);
    }
    const ttt_config *cfg = ttt_model_config(m);
    uint32_t vocab = (uint32_t)cfg->vocab_size;
    if (info->vocab > vocab) cli_die("%s: shards' vocabulary %u exceeds the model's %u", o.data, info->vocab, vocab);
    /* Usage, but known only now (resume: run.json; any run: the rank count). */
    if (o.batch % ((long long)nranks * o.accum))
        cli_usage_error("--batch %d is not a multiple of %d ranks x --accum %d", o.batch, nranks, o.accum);
    const int T = o.ctx, MB = o.batch / nranks / o.accum;   /* windows per rank per micro-batch */
    int first, mine;   /* this rank's slice of each step's global batch */
    ttt_train_slice(o.batch, ttt_dist_rank(), nranks, &first, &mine);
    if (ttt_dataset_tokens(train) < (uint64_t)T + 1)
        cli_die("%s: %" PRIu64 " tokens, fewer than one window of --ctx %d + 1", o.data, ttt_dataset_tokens(train), T);
    uint64_t nval = 0;
    if (val) {
        nval = ttt_train_num_windows(val, T);
        if (nval == 0) cli_die("%s: fewer than --ctx %d + 1 tokens", o.val, T);
        if (nval > (uint64_t)o.val_windows) nval = (uint64_t)o.val_windows;
    }
    if (o.warmup >= o.steps && !resume) cli_usage_error("--warmup must be less than --steps");
    char *rj = run_json(&o);
    snprintf(path, sizeof path, "%s/run.json", rundir);
    if (root) write_file_atomic(path, rj, strlen(rj));

    int32_t *ids = malloc((size_t)MB * T * sizeof *ids), *tg = malloc((size_t)MB * T * sizeof *tg);
    uint32_t *scratch = malloc(((size_t)T + 1) * sizeof *scratch);
    uint64_t *starts = malloc((size_t)o.batch * sizeof *starts);
    if (!ids || !tg || !scratch || !starts) cli_die("out of memory");
    snprintf(path, sizeof path, "%s/metrics.jsonl", rundir);
    FILE *metrics = root ? fopen(path, "a") : NULL;
    if (root && !metrics) cli_die("%s: %s", path, strerror(errno));

    /* ---- the loop ---- */
    install_signals();
    const int tty = isatty(2) && cli_verbosity >= 1;
    const int notes = cli_verbosity >= 2;
    ttt_adamw_params hp = ttt_adamw_defaults();
    hp.weight_decay = o.wd;
    real *params = ttt_model_params(m), *grads = ttt_model_grads(m);
    size_t np = ttt_model_num_params(m);
    double t0 = now_s(), rate = 0;
    ttt_prefetch *pf = NULL;   /* the next step's windows, read on a thread (below) */
    if (st.step >= o.steps) {
        if (cli_verbosity >= 1)
            cli_warn("%s: the run is complete at step %lld (give --steps to extend it)", rundir, st.step);
        if (metrics) fclose(metrics);
        ttt_dist_finalize();
        goto done;
    }
    if (device == 1) {
        int prec = dtype == 1 ? TTT_CUDA_BF16 : TTT_CUDA_F32;
        int dev = ttt_dist_gpu_device(ttt_gpu_available());   /* local rank % GPUs */
        char note[512];
        if (ttt_dist_gpu_choose(allreduce, dev, &nccl, note, sizeof note) < 0) cli_die_lib();
        if (*note && cli_verbosity >= 1) cli_warn("%s", note);
        if (!(gpu = ttt_gpu_model_new(m, dev, prec, MB, T)) || ttt_gpu_model_upload_params(gpu, params) < 0 ||
            ttt_gpu_model_upload_opt(gpu, st.m, st.v) < 0)
            cli_die_lib();
        if (notes) {
            ttt_gpu_sizes gs;
            ttt_gpu_model_sizes(gpu, &gs);
            cli_warn("cuda: %s; device arenas: params %zu MiB, grads %zu MiB, AdamW %zu MiB, activations %zu MiB",
                     prec == TTT_CUDA_BF16 ? "bf16 GEMM inputs" : "fp32", gs.params >> 20, gs.grads >> 20,
                     gs.opt >> 20, gs.acts >> 20);
        }
    }
    if (nranks > 1) check_in_sync(m, st.step);
    /* Each step's windows are read on a thread while the step before runs
     * (on a GPU the host would otherwise inflate shard blocks while the
     * device waits). They are drawn ahead from rng_next, the generator after
     * the latest draw, which becomes st.rng when their step starts: draws
     * and checkpoints equal a serial run's. Every rank draws the whole
     * global batch, so the generator stays in step everywhere and equals a
     * 1-rank run's. */
    ttt_rng rng_next = st.rng;
    if (!(pf = ttt_prefetch_new(train, o.accum * MB, T, vocab))) cli_die_lib();
    if (draw_ahead(train, &rng_next, o.batch, T, starts, first, pf) < 0) cli_die("%s: %s", o.data, ttt_errmsg());
    int signalled = 0;   /* stopped by a signal (on any rank) */
    while (st.step < o.steps) {
        double ts = now_s();
        if (gpu ? ttt_gpu_model_zero_grad(gpu) < 0 : (ttt_model_zero_grad(m), 0)) cli_die_lib();
        double loss = 0;
        const int32_t *pids, *ptg;   /* this rank's windows of this step */
        st.rng = rng_next;
        if (ttt_prefetch_wait(pf, &pids, &ptg) < 0 ||
            (st.step + 1 < o.steps && draw_ahead(train, &rng_next, o.batch, T, starts, first, pf) < 0))
            cli_die("%s: %s", o.data, ttt_errmsg());
        /* CPU, several ranks: the last micro-batch's backward starts the
         * all-reduce of each block's gradients as soon as they are final
         * (the earlier micro-batches only accumulate). */
        ttt_dist_overlap *ov = NULL;
        for (int a = 0; a < o.accum; a++) {
            double l;
            if (forward(m, pids + (size_t)a * MB * T, ptg + (size_t)a * MB * T, MB, T, &l) < 0)
                die_lib_oom("the activations");
            if (!gpu && nranks > 1 && a == o.accum - 1) {
                if (!(ov = ttt_dist_overlap_begin(grads, np))) cli_die_lib();
                ttt_model_set_grad_hook(m, ttt_dist_overlap_chunk, ov);
            }
            if ((gpu ? ttt_gpu_model_backward(gpu) : ttt_model_backward(m)) < 0) die_lib_oom("the activations");
            ttt_model_set_grad_hook(m, NULL, NULL);
            loss += l;
        }
        loss /= o.accum;
        int stop_signal = 0;
        if (nccl) {   /* on the device, queued on the model's stream before the norm */
            void *s;
            float *dg = ttt_gpu_model_grad_arena(gpu, &s);
            if (ttt_dist_gpu_allreduce_mean(nccl, dg, np, s) < 0) cli_die_lib();
        }
        if (nranks > 1) {
            /* Rank means of equally many tokens: their mean is the global
             * mean. The stop flag rides along, so a signal on any rank stops
             * every rank after the same step. */
            double red[2] = { loss, interrupted ? 1 : 0 };
            if (gpu && !nccl && ttt_gpu_model_download_grads(gpu, grads) < 0) cli_die_lib();
            if ((!nccl && (ov ? ttt_dist_overlap_end(ov) : ttt_dist_allreduce_mean(grads, np)) < 0) ||
                ttt_dist_allreduce_sum(red, 2) < 0)
                cli_die_lib();
            if (gpu && !nccl && ttt_gpu_model_upload_grads(gpu, grads) < 0) cli_die_lib();
            loss = red[0] / nranks;
            stop_signal = red[1] > 0;
        }
        ttt_guard_test_poison(st.step + 1, &loss, gpu ? NULL : grads, np);   /* inert unless TTT_TEST_NAN_STEP */
        /* The gradients hold the sum of the micro-batch means. */
        double gnorm;
        if (!gpu) gnorm = ttt_grad_norm(grads, np);
        else if (ttt_gpu_model_grad_norm(gpu, &gnorm) < 0) cli_die_lib();
        gnorm /= o.accum;
        /* NaN/Inf: stop before the update (checkpoints keep the last good
         * state) or, with --skip-nonfinite, apply none and go on. */
        int skip = !ttt_guard_finite(loss) || !ttt_guard_finite(gnorm);
        if (skip) {
            if (gpu && !ttt_guard_finite(gnorm) && ttt_gpu_model_download_grads(gpu, grads) < 0) cli_die_lib();
            ttt_guard_describe_step(m, grads, loss, gnorm);
            if (!skip_nonfinite)
                cli_die("step %lld: %s; stopped before the update, nothing of it saved (try a lower --lr, or "
                        "--skip-nonfinite)", st.step + 1, ttt_errmsg());
            skipped_total++;
            if (cli_verbosity >= 1) cli_warn("step %lld: %s; skipped, no update", st.step + 1, ttt_errmsg());
        }
        double scale = ttt_clip_factor(gnorm, o.clip) / o.accum;
        double lr = ttt_lr_schedule(st.step, o.lr, o.warmup, o.steps, o.min_lr);
        if (skip) { /* parameters and AdamW moments stay as they are */ }
        else if (!gpu) ttt_adamw_update(params, grads, st.m, st.v, np, &hp, lr, scale, st.step + 1);
        else if (ttt_gpu_model_adamw(gpu, &hp, lr, scale, st.step + 1) < 0) cli_die_lib();
        st.step++;
        st.tokens_seen += (uint64_t)o.batch * T;
        double te = now_s();
        double r = (double)o.batch * T / (te - ts > 1e-9 ? te - ts : 1e-9);
        rate = rate ? 0.9 * rate + 0.1 * r : r;

        int last = st.step == o.steps;
        double vloss = NAN;
        if (val && ((o.eval_every && st.step % o.eval_every == 0) || last))
            vloss = validate(m, val, nval, MB, T, vocab, ids, tg, scratch);
        if (root) {
            /* JSON has no NaN: a skipped step's values are null */
            if (skip) fprintf(metrics, "{\"step\":%lld,\"loss\":null,\"skipped\":true,\"skipped_total\":%lld,", st.step, skipped_total);
            else fprintf(metrics, "{\"step\":%lld,\"loss\":%.9g,", st.step, loss);
            if (!isnan(vloss)) fprintf(metrics, "\"val_loss\":%.9g,", vloss);
            fprintf(metrics, "\"lr\":%.9g,\"grad_norm\":", lr);
            fprintf(metrics, ttt_guard_finite(gnorm) ? "%.9g" : "null", gnorm);
            fprintf(metrics, ",\"tokens\":%" PRIu64 ",\"tokens_per_s\":%.1f,\"elapsed_s\":%.3f}\n", st.tokens_seen, r,
                    elapsed0 + (now_s() - t0));
            if (fflush(metrics) != 0 || ferror(metrics)) cli_die("%s: write error: %s", path, strerror(errno));
        }

        if (nranks == 1) stop_signal = interrupted != 0;
        signalled |= stop_signal;
        int stop = stop_signal || (stop_after && st.step >= stop_after);
        int save = last || stop || (o.save_every && st.step % o.save_every == 0);
        if (tty) {
            char eta[32];
            fmt_eta(eta, sizeof eta, (double)(o.steps - st.step) * o.batch * T / rate);
            fprintf(stderr, "\rstep %lld/%lld  loss %.4f  lr %.2e  %.0f tok/s  ETA %s   ", st.step, o.steps, loss, lr,
                    rate, eta);
        }
        if (save) {
            gpu_download(m, &st);
            /* never put a broken state over the last good checkpoint */
            if (ttt_guard_check(m, params, "parameter") < 0 || ttt_guard_check(m, st.m, "AdamW moment m") < 0 ||
                ttt_guard_check(m, st.v, "AdamW moment v") < 0)
                cli_die("step %lld: %s; not saved, the last checkpoint in %s is intact", st.step, ttt_errmsg(), rundir);
            if (nranks > 1) check_in_sync(m, st.step);
            if (root && ttt_ckpt_save(rundir, m, &st, rj) < 0) cli_die_lib();
        }
        if (!isnan(vloss) || save) {
            char vl[48] = "";
            if (!isnan(vloss)) snprintf(vl, sizeof vl, "  val_loss %.4f", vloss);
            if (notes)   /* -v: one line per evaluation and checkpoint */
                fprintf(stderr, "%s%s: step %lld/%lld  loss %.4f%s%s\n", tty ? "\r" : "", cli_prog(), st.step,
                        o.steps, loss, vl, save ? "  (saved)" : "");
            else if (tty && *vl)
                fprintf(stderr, "\rstep %lld/%lld  loss %.4f%s%30s\n", st.step, o.steps, loss, vl, "");
        }
        if (stop) break;
    }
    if (tty) fputc('\n', stderr);
    if (skipped_total && cli_verbosity >= 1)
        cli_warn("%lld step%s skipped: loss or gradient not finite (\"skipped\" in metrics.jsonl)", skipped_total,
                 skipped_total == 1 ? "" : "s");
    if (metrics) fclose(metrics);
    ttt_dist_gpu_close(nccl);
    nccl = NULL;
    ttt_dist_finalize();   /* waits for rank 0's last checkpoint */
    if (signalled) {
        if (cli_verbosity >= 1)
            fprintf(stderr, "%s: interrupted at step %lld; checkpoint saved, continue with --resume %s\n", cli_prog(),
                    st.step, rundir);
        status = 130;
    }
done:
    ttt_prefetch_free(pf);   /* joins a read in flight before its dataset closes */
    ttt_dataset_close(train);
    if (val) ttt_dataset_close(val);
    ttt_gpu_model_free(gpu);
    ttt_model_free(m);
    free(st.m); free(st.v); free(ids); free(tg); free(scratch); free(starts); free(rj);
    run_opts_free(&o);
    return status;
}
