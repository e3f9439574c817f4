/* bench_ttt_layer - tokens/s of one TTT layer, forward and forward+backward,
 * TTT-Linear and TTT-MLP (Mamba options on, the heavier path), float32.
 * Default shape B=4 T=512 C=256 H=4 (d=64);
 * `bench_ttt_layer [B T C H [reps [linear|mlp]]]`; each figure is the best of
 * reps runs (the machine may be shared). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../../lib/layers/ttt_layer.h"
#include "../../lib/model.h"
#include "../../lib/rng.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

int main(int argc, char **argv)
{
    int B = argc > 1 ? atoi(argv[1]) : 4, T = argc > 2 ? atoi(argv[2]) : 512;
    int C = argc > 3 ? atoi(argv[3]) : 256, H = argc > 4 ? atoi(argv[4]) : 4;
    int reps = argc > 5 ? atoi(argv[5]) : 3;
    const char *only = argc > 6 ? argv[6] : "";
    if (B <= 0 || T <= 0 || C <= 0 || H <= 0 || C % H || reps <= 0) {
        fprintf(stderr, "usage: bench_ttt_layer [B T C H [reps [linear|mlp]]]\n");
        return 2;
    }
    ttt_rng r;
    ttt_rng_seed(&r, 1);
    for (int kind = 0; kind < 2; kind++) {
        if ((!strcmp(only, "linear") && kind) || (!strcmp(only, "mlp") && !kind)) continue;
        ttt_layer_config c = { .C = C, .H = H, .D = C / H, .K = 16, .kind = kind, .share_qk = 1,
                               .use_gate = 1, .conv_kernel = 4, .base_lr = kind ? 0.1 : 1.0,
                               .rope_theta = 10000 };
        c.F = kind == TTT_MLP ? 4 * c.D : c.D;
        ttt_layer_params p, g;
        ttt_layer_tensor tp[TTT_LAYER_MAX_TENSORS], tg[TTT_LAYER_MAX_TENSORS];
        int n = ttt_layer_tensors(&c, &p, tp);
        ttt_layer_tensors(&c, &g, tg);
        size_t total = 0;
        for (int i = 0; i < n; i++) total += tp[i].numel;
        size_t BTC = (size_t)B * T * C, asz = ttt_layer_acts_size(&c, B, T);
        real *buf = calloc(2 * total, sizeof(real)), *acts = malloc(asz * sizeof(real));
        real *x = malloc(BTC * sizeof(real)), *out = malloc(BTC * sizeof(real)), *dx = malloc(BTC * sizeof(real));
        if (!buf || !acts || !x || !out || !dx) { fprintf(stderr, "bench_ttt_layer: out of memory\n"); return 1; }
        size_t off = 0;
        for (int i = 0; i < n; i++) {
            *tp[i].ptr = buf + off;
            *tg[i].ptr = buf + total + off;
            for (size_t k = 0; k < tp[i].numel; k++)
                buf[off + k] = (strstr(tp[i].name, "norm") && strstr(tp[i].name, "weight") ? 1 : 0) +
                               0.02 * ttt_rng_normal(&r);
            off += tp[i].numel;
        }
        for (size_t k = 0; k < BTC; k++) x[k] = ttt_rng_normal(&r);
        ttt_layer_forward(&c, out, acts, x, &p, B, T);   /* warm-up */
        /* best of reps: the machine is shared, the minimum is the least disturbed run */
        double tf = 1e30, tfb = 1e30;
        for (int i = 0; i < reps; i++) {
            double t0 = now();
            ttt_layer_forward(&c, out, acts, x, &p, B, T);
            double t1 = now();
            ttt_layer_backward(&c, dx, &g, out, acts, x, &p, B, T);
            double t2 = now();
            if (t1 - t0 < tf) tf = t1 - t0;
            if (t2 - t0 < tfb) tfb = t2 - t0;
        }
        printf("%-10s B=%d T=%d C=%d H=%d: forward %.0f tok/s (%.1f ms), forward+backward %.0f tok/s (%.1f ms), acts %.1f MB\n",
               kind ? "TTT-MLP" : "TTT-Linear", B, T, C, H, B * T / tf, tf * 1e3, B * T / tfb, tfb * 1e3,
               asz * sizeof(real) / 1e6);
        free(buf); free(acts); free(x); free(out); free(dx);
    }
    return 0;
}
