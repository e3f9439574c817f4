/* decode_gpu.c - GPU decoding speed (lib/ttt_cuda_decode.h): for each prompt
 * length, a fresh decoder prefills that many random tokens, then decodes
 * GEN single tokens (logits downloaded each time, as ttt-generate does);
 * prints prefill time and milliseconds per decoded token. A TTT model's
 * per-token time should be flat in the prompt length.
 *
 *   decode_gpu [PRESET [linear|mlp [LENGTHS [GEN]]]]
 *   defaults:   125m     linear    1024,4096,16384,32768  64
 * Random weights (seeded init), Mamba backbone as in the preset. */
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
    int gen = argc > 4 ? atoi(argv[4]) : 64;
    if (ttt_gpu_available() < 1) { printf("decode_gpu: skipped: no GPU\n"); return 0; }
    ttt_config c;
    if (ttt_config_preset(&c, preset) < 0) { fprintf(stderr, "decode_gpu: %s\n", ttt_errmsg()); return 2; }
    c.ttt_layer_type = strcmp(kind, "mlp") ? TTT_LINEAR : TTT_MLP;
    ttt_model *m = ttt_model_build(&c);
    if (!m) { fprintf(stderr, "decode_gpu: %s\n", ttt_errmsg()); return 1; }
    ttt_model_init(m, 1);
    const int V = c.vocab_size;
    printf("decode_gpu: preset %s, ttt-%s, %zu parameters, %d generated tokens per length\n", preset, kind,
           ttt_model_num_params(m), gen);
    printf("%-14s %-12s %-16s %-10s\n", "prompt_tokens", "prefill_s", "prefill_tok/s", "ms/token");
    float *logits = malloc((size_t)V * sizeof *logits);
    char *list = strdup(lengths);
    unsigned seed = 1;
    for (char *tok = strtok(list, ","); tok; tok = strtok(NULL, ",")) {
        int L = atoi(tok);
        if (L < 1) continue;
        int32_t *ids = malloc((size_t)L * sizeof *ids);
        for (int i = 0; i < L; i++) { seed = seed * 1103515245u + 12345u; ids[i] = (int32_t)((seed >> 8) % V); }
        ttt_gpu_decode *d = ttt_gpu_decode_for(m, 0, 1);
        if (!d) { fprintf(stderr, "decode_gpu: %s\n", ttt_errmsg()); return 1; }
        double t0 = now();
        if (ttt_gpu_decode_prefill(d, ids, L, logits) < 0) { fprintf(stderr, "decode_gpu: %s\n", ttt_errmsg()); return 1; }
        double t1 = now();
        int32_t next = 0;
        for (int j = 0; j < 8; j++)   /* warm-up, not timed */
            if (ttt_gpu_decode_step(d, &next, logits) < 0) { fprintf(stderr, "decode_gpu: %s\n", ttt_errmsg()); return 1; }
        double t2 = now();
        for (int j = 0; j < gen; j++) {
            int best = 0;
            for (int v = 1; v < V; v++) if (logits[v] > logits[best]) best = v;   /* greedy, on the host */
            next = best;
            if (ttt_gpu_decode_step(d, &next, logits) < 0) { fprintf(stderr, "decode_gpu: %s\n", ttt_errmsg()); return 1; }
        }
        double t3 = now();
        printf("%-14d %-12.3f %-16.0f %-10.3f\n", L, t1 - t0, L / (t1 - t0), 1e3 * (t3 - t2) / gen);
        fflush(stdout);
        ttt_gpu_decode_free(d);
        free(ids);
    }
    free(list);
    free(logits);
    ttt_model_free(m);
    return 0;
}
