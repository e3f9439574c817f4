/* model_speed_gpu.c - whole-model speed against context length on the GPU
 * (lib/ttt_cuda_model.h): for each context T, batches of TOKENS/T windows of
 * random tokens through the GPU model, forward (with the loss) and
 * forward+backward, timed after a warm-up; prints tokens/s. Every
 * architecture at the preset's size (the baselines parameter-matched by
 * ttt_config_preset_for), random weights.
 *
 *   model_speed_gpu [PRESET [ARCH [LENGTHS [TOKENS [fp32|bf16 [ITERS]]]]]]
 *   defaults:        125m    ttt-linear 1024,2048,4096,8192,16384,32768  65536  bf16  3
 * ARCH: ttt-linear ttt-mlp transformer mamba. Built by `make bench`; prints
 * a skip line and exits 0 without CUDA or a GPU. */
#include <stdio.h>

#ifdef TTT_HAVE_CUDA
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "err.h"
#include "model.h"
#include "ttt_cuda.h"
#include "ttt_cuda_model.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

/* median of x[0..n) (sorts x) */
static double median(double *x, int n)
{
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && x[j] < x[j - 1]; j--) { double t = x[j]; x[j] = x[j - 1]; x[j - 1] = t; }
    return x[n / 2];
}

static void die(const char *what)
{
    fprintf(stderr, "model_speed_gpu: %s: %s\n", what, ttt_errmsg());
    exit(1);
}

int main(int argc, char **argv)
{
    const char *preset = argc > 1 ? argv[1] : "125m", *arch = argc > 2 ? argv[2] : "ttt-linear";
    const char *lengths = argc > 3 ? argv[3] : "1024,2048,4096,8192,16384,32768";
    long tokens = argc > 4 ? atol(argv[4]) : 65536;
    const char *dt = argc > 5 ? argv[5] : "bf16";
    int iters = argc > 6 ? atoi(argv[6]) : 3;
    int block = !strcmp(arch, "transformer") ? SEQ_ATTENTION : !strcmp(arch, "mamba") ? SEQ_MAMBA
              : !strcmp(arch, "ttt-linear") || !strcmp(arch, "ttt-mlp") ? SEQ_TTT : -1;
    if (block < 0 || tokens < 1 || iters < 1 || (strcmp(dt, "fp32") && strcmp(dt, "bf16"))) {
        fprintf(stderr, "usage: model_speed_gpu [PRESET [ttt-linear|ttt-mlp|transformer|mamba [LENGTHS [TOKENS "
                        "[fp32|bf16 [ITERS]]]]]]\n");
        return 2;
    }
    if (ttt_gpu_available() < 1) { printf("model_speed_gpu: skipped: no GPU\n"); return 0; }
    ttt_config c;
    if (ttt_config_preset_for(&c, preset, block) < 0) die(preset);
    if (block == SEQ_TTT) c.ttt_layer_type = strcmp(arch, "ttt-mlp") ? TTT_LINEAR : TTT_MLP;
    ttt_model *m = ttt_model_build(&c);
    if (!m) die("model");
    ttt_model_init(m, 1);
    size_t np = ttt_model_num_params(m);
    float *params = malloc(np * sizeof *params);
    const real *src = ttt_model_params(m);
    for (size_t i = 0; i < np; i++) params[i] = (float)src[i];
    const int prec = strcmp(dt, "bf16") ? TTT_CUDA_F32 : TTT_CUDA_BF16, V = c.vocab_size;
    printf("model_speed_gpu: preset %s, %s, %zu parameters, %s, %ld tokens per batch, median of %d\n", preset, arch,
           np, dt, tokens, iters);
    printf("%-8s %-6s %-14s %-14s\n", "ctx", "batch", "fwd_tok/s", "fwd+bwd_tok/s");
    char *list = strdup(lengths);
    unsigned seed = 7;
    for (char *tok = strtok(list, ","); tok; tok = strtok(NULL, ",")) {
        int T = atoi(tok), B = (int)(tokens / (T > 0 ? T : 1));
        if (T < 1) continue;
        if (B < 1) B = 1;
        size_t n = (size_t)B * T;
        int32_t *ids = malloc(n * sizeof *ids), *tg = malloc(n * sizeof *tg);
        for (size_t i = 0; i < n; i++) {
            seed = seed * 1103515245u + 12345u;
            ids[i] = (int32_t)((seed >> 8) % V);
        }
        for (size_t i = 0; i < n; i++) tg[i] = (i + 1) % T ? ids[i + 1] : -1;
        ttt_gpu_model *g = ttt_gpu_model_new(m, 0, prec, B, T);
        if (!g) { printf("%-8d %-6d %s\n", T, B, ttt_errmsg()); free(ids); free(tg); continue; }
        if (ttt_gpu_model_upload_params(g, params)) die("upload");
        double loss, tf[16], tb[16];
        if (ttt_gpu_model_forward(g, ids, tg, B, T, &loss) || ttt_gpu_model_backward(g)) die("warm-up");
        int it = iters > 16 ? 16 : iters;
        for (int k = 0; k < it; k++) {
            double t0 = now();
            if (ttt_gpu_model_forward(g, ids, tg, B, T, &loss)) die("forward");   /* syncs for the loss */
            double t1 = now();
            if (ttt_gpu_model_zero_grad(g) || ttt_gpu_model_backward(g)) die("backward");
            double norm;
            if (ttt_gpu_model_grad_norm(g, &norm)) die("norm");   /* syncs */
            double t2 = now();
            tf[k] = t1 - t0;
            tb[k] = t2 - t0;
        }
        printf("%-8d %-6d %-14.0f %-14.0f\n", T, B, n / median(tf, it), n / median(tb, it));
        fflush(stdout);
        ttt_gpu_model_free(g);
        free(ids);
        free(tg);
    }
    free(list);
    free(params);
    ttt_model_free(m);
    return 0;
}

#else

int main(void)
{
    printf("model_speed_gpu: skipped: built without CUDA\n");
    return 0;
}

#endif
