/* decode_gpu.c - GPU decoding speed (lib/ttt_cuda_decode.h): for each prompt
 * length, a fresh decoder prefills that many random tokens, then decodes
 * (in chunks), then GEN steps of one token per sequence (logits downloaded each time, as
 * ttt-generate does); prints prefill time, milliseconds per step and
 * generated tokens per second (BATCH tokens per step). A TTT model's
 * per-token time should be flat in the prompt length; attention's grows.
 *
 *   decode_gpu [PRESET [linear|mlp|transformer|mamba [LENGTHS [GEN [BATCH]]]]]
 *   defaults:   125m     linear                      1024,4096,16384,32768  64  1
 * Random weights (seeded init), Mamba backbone as in the preset; the
 * baselines at the preset's size (ttt_config_preset_for). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "err.h"
#include "model.h"
#include "ttt_cuda_decode.h"
#include "ttt_cuda_model.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

int main(int argc, char **argv)
{
    const char *preset = argc > 1 ? argv[1] : "125m", *kind = argc > 2 ? argv[2] : "linear";
    const char *lengths = argc > 3 ? argv[3] : "1024,4096,16384,32768";
    int gen = argc > 4 ? atoi(argv[4]) : 64, B = argc > 5 ? atoi(argv[5]) : 1;
    if (gen < 1 || B < 1) { fprintf(stderr, "decode_gpu: GEN and BATCH must be >= 1\n"); return 2; }
    if (ttt_gpu_available() < 1) { printf("decode_gpu: skipped: no GPU\n"); return 0; }
    ttt_config c;
    int block = !strcmp(kind, "transformer") ? SEQ_ATTENTION : !strcmp(kind, "mamba") ? SEQ_MAMBA : SEQ_TTT;
    if (ttt_config_preset_for(&c, preset, block) < 0) { fprintf(stderr, "decode_gpu: %s\n", ttt_errmsg()); return 2; }
    if (block == SEQ_TTT) c.ttt_layer_type = strcmp(kind, "mlp") ? TTT_LINEAR : TTT_MLP;
    ttt_model *m = ttt_model_build(&c);
    if (!m) { fprintf(stderr, "decode_gpu: %s\n", ttt_errmsg()); return 1; }
    ttt_model_init(m, 1);
    const int V = c.vocab_size;
    printf("decode_gpu: preset %s, %s, %zu parameters, batch %d, %d steps per length\n", preset, kind,
           ttt_model_num_params(m), B, gen);
    printf("%-14s %-12s %-16s %-10s %-12s\n", "prompt_tokens", "prefill_s", "prefill_tok/s", "ms/step", "gen_tok/s");
    float *logits = malloc((size_t)B * V * sizeof *logits);
    int32_t *next = calloc((size_t)B, sizeof *next);
    char *list = strdup(lengths);
    unsigned seed = 1;
    for (char *tok = strtok(list, ","); tok; tok = strtok(NULL, ",")) {
        int L = atoi(tok);
        if (L < 1) continue;
        int32_t *ids = malloc((size_t)B * L * sizeof *ids);
        for (size_t i = 0; i < (size_t)B * L; i++) { seed = seed * 1103515245u + 12345u; ids[i] = (int32_t)((seed >> 8) % V); }
        ttt_gpu_decode *d = ttt_gpu_decode_for(m, 0, B);
        if (!d) { fprintf(stderr, "decode_gpu: %s\n", ttt_errmsg()); return 1; }
        /* prefill in chunks of at most 64k tokens over the batch (multiples of 16) */
        int chunk = 65536 / B / 16 * 16;
        if (chunk < 16) chunk = 16;
        int32_t *part = malloc((size_t)B * chunk * sizeof *part);
        double t0 = now();
        for (int p0 = 0; p0 < L; p0 += chunk) {
            int P = L - p0 < chunk ? L - p0 : chunk;
            for (int bb = 0; bb < B; bb++) memcpy(part + (size_t)bb * P, ids + (size_t)bb * L + p0, (size_t)P * sizeof *part);
            if (ttt_gpu_decode_prefill(d, part, P, logits) < 0) { fprintf(stderr, "decode_gpu: %s\n", ttt_errmsg()); return 1; }
        }
        double t1 = now();
        free(part);
        for (int j = 0; j < 8; j++)   /* warm-up, not timed */
            if (ttt_gpu_decode_step(d, next, logits) < 0) { fprintf(stderr, "decode_gpu: %s\n", ttt_errmsg()); return 1; }
        double t2 = now();
        for (int j = 0; j < gen; j++) {
            for (int bb = 0; bb < B; bb++) {   /* greedy, on the host */
                const float *lg = logits + (size_t)bb * V;
                int best = 0;
                for (int v = 1; v < V; v++) if (lg[v] > lg[best]) best = v;
                next[bb] = best;
            }
            if (ttt_gpu_decode_step(d, next, logits) < 0) { fprintf(stderr, "decode_gpu: %s\n", ttt_errmsg()); return 1; }
        }
        double t3 = now();
        printf("%-14d %-12.3f %-16.0f %-10.3f %-12.0f\n", L, t1 - t0, (double)B * L / (t1 - t0), 1e3 * (t3 - t2) / gen,
               (double)B * gen / (t3 - t2));
        fflush(stdout);
        ttt_gpu_decode_free(d);
        free(ids);
    }
    free(list);
    free(logits);
    free(next);
    ttt_model_free(m);
    return 0;
}
