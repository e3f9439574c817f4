/* flops_cli - FLOPs per token of a model (lib/flops.h) for the GPU benchmark
 * scripts, and MFU or roofline floors from rates measured by
 * tests/bench/ceilings.cu:
 *
 *   flops_cli [-c PRESET|config.json] [--arch ARCH] [--backbone B] [-T N] [--vocab N]
 *             [--tokens-per-s X --tflops R]
 *       the forward and training FLOPs per token, with their breakdown; with
 *       a measured tokens/s and a matrix rate (TFLOP/s), the MFU
 *   flops_cli --kernel [--tc] [-H N] [-D N] [-T N] [--fp32-tflops R | --tflops R] [--gbs BW]
 *             [--fwd-ms M --bwd-ms M --tokens N]
 *       the fused TTT-Linear inner kernel per token of one layer: FLOPs and
 *       bytes, forward and backward, of the fp32 kernel or (--tc) the
 *       tensor-core kernel of bf16 mode (bf16 state checkpoints and dQ, dK,
 *       dV); with a compute rate (the fp32 rate, or for --tc the bf16 matrix
 *       rate) and the bandwidth, the floor time per token (max of FLOPs over
 *       the rate, bytes over the bandwidth); with measured times for N
 *       tokens, the measured time per token and its ratio to the floor
 *
 * Every result also goes out as one machine-readable line "flops NAME VALUE"
 * (or "kernel NAME VALUE", "mfu NAME VALUE"). ARCH: ttt-linear (default),
 * ttt-mlp, transformer, mamba; B: mamba (default) or transformer, the TTT
 * backbone, as in ttt-train. */
#include "../../lib/flops.h"
#include "../../lib/err.h"
#include "../../lib/io.h"
#include "../../lib/json.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(void)
{
    fputs("usage: flops_cli [-c PRESET|FILE.json] [--arch ttt-linear|ttt-mlp|transformer|mamba]\n"
          "                 [--backbone mamba|transformer] [-T N] [--vocab N] [--tokens-per-s X --tflops R]\n"
          "       flops_cli --kernel [--tc] [-H N] [-D N] [-T N] [--fp32-tflops R | --tflops R] [--gbs BW]\n"
          "                 [--fwd-ms M --bwd-ms M --tokens N]\n", stderr);
    exit(2);
}

static double num(const char *s, const char *what, double lo)
{
    char *e;
    double v = strtod(s, &e);
    if (e == s || *e || !(v >= lo) || v > 1e30) {
        fprintf(stderr, "flops_cli: bad %s '%s'\n", what, s);
        exit(2);
    }
    return v;
}

static void model_config(ttt_config *c, const char *config, const char *arch, const char *backbone, int vocab)
{
    int block = !strcmp(arch, "transformer") ? SEQ_ATTENTION : !strcmp(arch, "mamba") ? SEQ_MAMBA : SEQ_TTT;
    if (block == SEQ_TTT && strcmp(arch, "ttt-linear") && strcmp(arch, "ttt-mlp")) {
        fprintf(stderr, "flops_cli: unknown arch '%s' (ttt-linear, ttt-mlp, transformer, mamba)\n", arch);
        exit(2);
    }
    if (strcmp(backbone, "mamba") && strcmp(backbone, "transformer")) {
        fprintf(stderr, "flops_cli: unknown backbone '%s' (mamba, transformer)\n", backbone);
        exit(2);
    }
    size_t n = strlen(config);
    if (n > 5 && !strcmp(config + n - 5, ".json")) {
        char *text;
        size_t len;
        if (ttt_read_file(config, &text, &len) < 0) {
            fprintf(stderr, "flops_cli: %s\n", ttt_errmsg());
            exit(1);
        }
        json *j = json_parse(text, len);
        free(text);
        if (!j || ttt_config_from_json(c, j) < 0) {
            fprintf(stderr, "flops_cli: %s: %s\n", config, ttt_errmsg());
            exit(1);
        }
        json_free(j);
        return;   /* the file says what the model is */
    }
    if (ttt_config_preset_for(c, config, block) < 0) {
        fprintf(stderr, "flops_cli: %s\n", ttt_errmsg());
        exit(2);
    }
    c->seq_modeling_block = block;
    if (block == SEQ_TTT) {
        c->ttt_layer_type = strcmp(arch, "ttt-mlp") ? TTT_LINEAR : TTT_MLP;
        c->pre_conv = c->share_qk = c->use_gate = !strcmp(backbone, "mamba");
    }
    if (vocab > 0) c->vocab_size = vocab;
}

int main(int argc, char **argv)
{
    enum { O_ARCH = 256, O_BACKBONE, O_VOCAB, O_TPS, O_TFLOPS, O_KERNEL, O_TC, O_FP32, O_GBS, O_FWD, O_BWD, O_TOK };
    static const struct option opts[] = {
        { "config", required_argument, 0, 'c' }, { "arch", required_argument, 0, O_ARCH },
        { "backbone", required_argument, 0, O_BACKBONE }, { "vocab", required_argument, 0, O_VOCAB },
        { "tokens-per-s", required_argument, 0, O_TPS }, { "tflops", required_argument, 0, O_TFLOPS },
        { "kernel", no_argument, 0, O_KERNEL }, { "tc", no_argument, 0, O_TC },
        { "fp32-tflops", required_argument, 0, O_FP32 },
        { "gbs", required_argument, 0, O_GBS }, { "fwd-ms", required_argument, 0, O_FWD },
        { "bwd-ms", required_argument, 0, O_BWD }, { "tokens", required_argument, 0, O_TOK },
        { "help", no_argument, 0, 'h' }, { 0, 0, 0, 0 }
    };
    const char *config = "125m", *arch = "ttt-linear", *backbone = "mamba";
    long T = 2048;
    int H = 12, D = 64, vocab = 0, kernel = 0, tc = 0;
    double tps = 0, tflops = 0, fp32 = 0, gbs = 0, fwd_ms = 0, bwd_ms = 0, tokens = 0;
    int o;
    while ((o = getopt_long(argc, argv, "c:T:H:D:h", opts, NULL)) != -1) {
        switch (o) {
        case 'c': config = optarg; break;
        case 'T': T = (long)num(optarg, "-T", 1); break;
        case 'H': H = (int)num(optarg, "-H", 1); break;
        case 'D': D = (int)num(optarg, "-D", 1); break;
        case O_ARCH: arch = optarg; break;
        case O_BACKBONE: backbone = optarg; break;
        case O_VOCAB: vocab = (int)num(optarg, "--vocab", 1); break;
        case O_TPS: tps = num(optarg, "--tokens-per-s", 0); break;
        case O_TFLOPS: tflops = num(optarg, "--tflops", 1e-6); break;
        case O_KERNEL: kernel = 1; break;
        case O_TC: tc = 1; break;
        case O_FP32: fp32 = num(optarg, "--fp32-tflops", 1e-6); break;
        case O_GBS: gbs = num(optarg, "--gbs", 1e-6); break;
        case O_FWD: fwd_ms = num(optarg, "--fwd-ms", 0); break;
        case O_BWD: bwd_ms = num(optarg, "--bwd-ms", 0); break;
        case O_TOK: tokens = num(optarg, "--tokens", 1); break;
        default: usage();
        }
    }
    if (optind < argc) usage();

    if (kernel) {
        ttt_kernel_cost k;
        if (ttt_flops_inner_linear_kernel(H, D, T, tc, &k) < 0) {
            fprintf(stderr, "flops_cli: %s\n", ttt_errmsg());
            return 2;
        }
        printf("fused TTT-Linear inner kernel, %s, one layer: H %d D %d T %ld (per token)\n",
               tc ? "tensor cores (bf16 mode)" : "fp32", H, D, T);
        if (fp32 <= 0) fp32 = tflops;   /* the compute rate of the floor, however given */
        printf("kernel fwd_flops %.0f\nkernel fwd_bytes %.0f\nkernel bwd_flops %.0f\nkernel bwd_bytes %.0f\n",
               k.fwd_flops, k.fwd_bytes, k.bwd_flops, k.bwd_bytes);
        printf("kernel fwd_intensity %.2f\nkernel bwd_intensity %.2f\n", k.fwd_flops / k.fwd_bytes,
               k.bwd_flops / k.bwd_bytes);
        if (fp32 > 0 && gbs > 0) {
            /* ns per token: FLOPs / (TFLOP/s * 1e3), bytes / (GB/s) */
            double cf = k.fwd_flops / (fp32 * 1e3), mf = k.fwd_bytes / gbs;
            double cb = k.bwd_flops / (fp32 * 1e3), mb = k.bwd_bytes / gbs;
            double ff = cf > mf ? cf : mf, fb = cb > mb ? cb : mb;
            printf("floor fwd: compute %.3f ns, memory %.3f ns per token -> %.3f ns (%s-bound)\n", cf, mf, ff,
                   cf > mf ? "compute" : "memory");
            printf("floor bwd: compute %.3f ns, memory %.3f ns per token -> %.3f ns (%s-bound)\n", cb, mb, fb,
                   cb > mb ? "compute" : "memory");
            printf("kernel fwd_floor_ns %.4f\nkernel bwd_floor_ns %.4f\n", ff, fb);
            if (tokens > 0 && fwd_ms > 0 && bwd_ms > 0) {
                double mfn = fwd_ms * 1e6 / tokens, mbn = bwd_ms * 1e6 / tokens;
                printf("measured fwd %.3f ns per token (%.1fx the floor), bwd %.3f ns per token (%.1fx the floor)\n",
                       mfn, mfn / ff, mbn, mbn / fb);
                printf("kernel fwd_measured_ns %.4f\nkernel bwd_measured_ns %.4f\n", mfn, mbn);
                printf("kernel fwd_gap %.2f\nkernel bwd_gap %.2f\n", mfn / ff, mbn / fb);
            }
        }
        return 0;
    }

    ttt_config c;
    model_config(&c, config, arch, backbone, vocab);
    ttt_flops f;
    if (ttt_flops_forward(&c, T, &f) < 0) {
        fprintf(stderr, "flops_cli: %s\n", ttt_errmsg());
        return 2;
    }
    const double tf = TTT_FLOPS_TRAIN_FACTOR;
    static const char *const seqname[] = { "TTT inner loop", "attention QK^T+PV", "Mamba scan" };
    printf("%s %s%s, T %ld, %zu params: FLOPs per token (multiply-add = 2; training = 3 x forward)\n",
           config, c.seq_modeling_block == SEQ_TTT ? (c.ttt_layer_type == TTT_MLP ? "ttt-mlp" : "ttt-linear")
           : c.seq_modeling_block == SEQ_ATTENTION ? "transformer" : "mamba",
           c.seq_modeling_block == SEQ_TTT ? (c.pre_conv ? " (mamba backbone)" : " (transformer backbone)") : "",
           T, ttt_config_num_params(&c));
    printf("  %-28s %14s %14s %7s\n", "part", "forward", "training", "share");
    const struct { const char *name; double v; } rows[] = {
        { "sequence-block projections", f.proj }, { "SwiGLU MLP", f.mlp },
        { seqname[c.seq_modeling_block], f.seq }, { "LM head", f.head }, { "total", f.total },
    };
    for (int i = 0; i < 5; i++)
        printf("  %-28s %14.0f %14.0f %6.1f%%\n", rows[i].name, rows[i].v, tf * rows[i].v, 100 * rows[i].v / f.total);
    printf("  (6 x params = %.0f)\n", 6.0 * (double)ttt_config_num_params(&c));
    printf("flops fwd_per_token %.0f\nflops train_per_token %.0f\nflops seq_fwd_per_token %.0f\n", f.total,
           tf * f.total, f.seq);
    if (tps > 0 && tflops > 0) {
        double achieved = tps * tf * f.total / 1e12;
        printf("MFU: %.1f tokens/s x %.4g FLOPs = %.2f TFLOP/s over %.1f TFLOP/s = %.2f%%\n", tps, tf * f.total,
               achieved, tflops, 100 * achieved / tflops);
        printf("mfu achieved_tflops %.3f\nmfu percent %.3f\n", achieved, 100 * achieved / tflops);
    }
    return 0;
}
