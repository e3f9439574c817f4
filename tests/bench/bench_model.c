/* bench_model - CPU throughput of the model (float32 build):
 *   build/bench/bench_model [ITERS]        (default 1 timed iteration after a warm-up)
 * Forward and forward+backward tokens/s of a vocab 8192, hidden 256,
 * intermediate 688, 4 layer, 4 head model at context 512, batch 4, for both
 * TTT kinds and both backbones, next to the sgemm GFLOP/s measured in the
 * same run; model GFLOP/s use an analytic FLOP count (matmuls + the TTT
 * inner loop, backward = 2x forward), so they are estimates. */
#include "../../lib/model.h"
#include "../../lib/blas.h"
#include "../../lib/err.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

/* sgemm at the shape of the SwiGLU up-projection of this benchmark. */
static double gemm_gflops(int M, int N, int K)
{
    real *A = malloc(sizeof(real) * M * K), *B = malloc(sizeof(real) * K * N), *C = malloc(sizeof(real) * M * N);
    for (long i = 0; i < (long)M * K; i++) A[i] = (real)((i % 7) - 3) * 0.1f;
    for (long i = 0; i < (long)K * N; i++) B[i] = (real)((i % 5) - 2) * 0.1f;
    ttt_gemm(0, 1, M, N, K, 1, A, K, B, K, 0, C, N);
    int reps = 0;
    double t0 = now(), t;
    do {
        ttt_gemm(0, 1, M, N, K, 1, A, K, B, K, 0, C, N);
        reps++;
    } while ((t = now() - t0) < 0.3);
    free(A); free(B); free(C);
    return 2.0 * M * N * K * reps / t / 1e9;
}

/* Forward FLOPs per token: 2 x matmul weights (projections, SwiGLU, tied
 * head) + the dual-form inner loop per head (XW, gradient, attention-like
 * K x K products, update), doubled for the two-layer MLP. */
static double fwd_flops_per_token(const ttt_config *c)
{
    double C = c->hidden_size, I = c->intermediate_size, V = c->vocab_size, H = c->num_attention_heads;
    double D = C / H, K = c->mini_batch_size, F = c->ttt_layer_type == TTT_MLP ? 4 * D : D;
    double proj = (c->share_qk ? 3 : 4) + (c->use_gate ? 1 : 0);
    double per_layer = 2 * (proj * C * C + 3 * C * I);
    double inner = H * 2 * (3 * D * F + K * (D + F)) * (c->ttt_layer_type == TTT_MLP ? 2 : 1);
    return c->num_hidden_layers * (per_layer + inner) + 2 * V * C;
}

int main(int argc, char **argv)
{
    int iters = argc > 1 ? atoi(argv[1]) : 1;
    if (iters <= 0) {
        fprintf(stderr, "usage: bench_model [ITERS]\n");
        return 2;
    }
    const int B = 4, T = 512;
    double sg = gemm_gflops(B * T, 688, 256);
    printf("sgemm %dx%dx%d: %.1f GFLOP/s (" REAL_NAME ")\n", B * T, 688, 256, sg);
    printf("%-8s %-11s %10s %12s %10s %12s %9s\n", "layer", "backbone", "fwd tok/s", "fwd GFLOP/s",
           "f+b tok/s", "f+b GFLOP/s", "of sgemm");
    for (int kind = 0; kind < 2; kind++)
        for (int mamba = 0; mamba < 2; mamba++) {
            ttt_config c;
            ttt_config_preset(&c, "small");
            c.vocab_size = 8192;
            c.hidden_size = 256;
            c.intermediate_size = 688;
            c.num_hidden_layers = 4;
            c.num_attention_heads = 4;
            c.max_position_embeddings = T;
            c.ttt_layer_type = kind;
            c.pre_conv = c.share_qk = c.use_gate = mamba;
            ttt_model *m = ttt_model_build(&c);
            if (!m) {
                fprintf(stderr, "bench_model: %s\n", ttt_errmsg());
                return 1;
            }
            ttt_model_init(m, 1);
            int32_t *ids = malloc(sizeof(int32_t) * B * T), *tg = malloc(sizeof(int32_t) * B * T);
            for (int i = 0; i < B * T; i++) {
                ids[i] = (int32_t)((i * 2654435761u) % c.vocab_size);
                tg[i] = (int32_t)(((i + 1) * 2654435761u) % c.vocab_size);
            }
            double loss;
            /* warm-up: allocates the arenas */
            if (ttt_model_forward(m, ids, tg, B, T, &loss) || ttt_model_backward(m)) {
                fprintf(stderr, "bench_model: %s\n", ttt_errmsg());
                return 1;
            }
            double t0 = now();
            for (int i = 0; i < iters; i++) ttt_model_forward(m, ids, tg, B, T, &loss);
            double tf = (now() - t0) / iters;
            t0 = now();
            for (int i = 0; i < iters; i++) {
                ttt_model_forward(m, ids, tg, B, T, &loss);
                ttt_model_backward(m);
            }
            double tfb = (now() - t0) / iters;
            double fl = fwd_flops_per_token(&c) * B * T;
            printf("%-8s %-11s %10.0f %12.1f %10.0f %12.1f %8.0f%%\n", kind ? "mlp" : "linear",
                   mamba ? "mamba" : "transformer", B * T / tf, fl / tf / 1e9, B * T / tfb,
                   3 * fl / tfb / 1e9, 100 * 3 * fl / tfb / 1e9 / sg);
            free(ids);
            free(tg);
            ttt_model_free(m);
        }
    return 0;
}
