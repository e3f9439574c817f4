/* test_flops - lib/flops.c against counts written out by hand on tiny
 * configs (C 8, H 2, d 4, I 6, V 10, K 4, conv 2), a brute-force walk over
 * the causal attention positions, the parameter count (every weight of a
 * linear map does one multiply-add per token), and the fused-kernel byte
 * count on a tiny head. */
#include "../../lib/flops.h"
#include "../../lib/err.h"
#include "check.h"

#include <string.h>

/* The hand-count config: one layer unless changed. */
static ttt_config tiny(int block)
{
    ttt_config c;
    ttt_config_default(&c);
    c.vocab_size = 10;
    c.hidden_size = 8;
    c.intermediate_size = 6;
    c.num_hidden_layers = 1;
    c.num_attention_heads = 2;
    c.mini_batch_size = 4;
    c.conv_kernel = 2;
    c.seq_modeling_block = block;
    return c;
}

static void test_ttt_linear_mamba_backbone(void)
{
    ttt_config c = tiny(SEQ_TTT);
    c.pre_conv = c.share_qk = c.use_gate = 1;
    ttt_flops f;
    CHECK(ttt_flops_forward(&c, 8, &f) == 0);
    /* SwiGLU 3 x 2*8*6 */
    CHECK_CLOSE(f.mlp, 288, 0, 0);
    /* q, v, o, g: 4 x 2*64 = 512; lr gate 2*2*8 = 32; pre-conv 2*2*8 = 32; conv_q + conv_k 64 */
    CHECK_CLOSE(f.proj, 512 + 32 + 32 + 64, 0, 0);
    /* per head and mini-batch of 4: 6*4*16 + 6*16*4 = 768, i.e. 192 a token; 2 heads */
    CHECK_CLOSE(f.seq, 384, 0, 0);
    CHECK_CLOSE(f.head, 160, 0, 0);
    CHECK_CLOSE(f.total, 288 + 640 + 384 + 160, 0, 0);

    /* T = 6: mini-batches of 4 and 2: 768 + (6*2*16 + 6*4*4) = 1056 per head, /6 tokens */
    CHECK(ttt_flops_forward(&c, 6, &f) == 0);
    CHECK_CLOSE(f.seq, 2 * 1056 / 6.0, 1e-12, 0);
    /* T = 1: one mini-batch of 1: 6*16 + 6*4 = 120 per head */
    CHECK_CLOSE(ttt_flops_inner(TTT_LINEAR, 2, 4, 4, 1), 240, 0, 0);

    /* two layers: everything but the head doubles */
    c.num_hidden_layers = 2;
    ttt_flops g;
    CHECK(ttt_flops_forward(&c, 8, &g) == 0);
    CHECK_CLOSE(g.total - g.head, 2 * (288 + 640 + 384), 0, 0);
    CHECK_CLOSE(g.head, 160, 0, 0);
}

static void test_ttt_transformer_backbone_and_mlp(void)
{
    ttt_config c = tiny(SEQ_TTT);   /* Transformer backbone: q, k, v, o; no convs */
    ttt_flops f;
    CHECK(ttt_flops_forward(&c, 8, &f) == 0);
    CHECK_CLOSE(f.proj, 4 * 128 + 32, 0, 0);
    CHECK_CLOSE(f.seq, 384, 0, 0);

    c.ttt_layer_type = TTT_MLP;     /* F = 16 */
    CHECK(ttt_flops_forward(&c, 8, &f) == 0);
    /* per head and mini-batch of 4: 7 products 4x4x16 = 7*2*256 = 3584; r x r: 2*16*(3*4 + 3*16) = 1920;
     * (3584 + 1920) / 4 tokens * 2 heads */
    CHECK_CLOSE(f.seq, (3584 + 1920) / 4.0 * 2, 0, 0);
    CHECK_CLOSE(ttt_flops_inner(TTT_MLP, 2, 4, 4, 8), 2752, 0, 0);
    CHECK(ttt_flops_inner(7, 2, 4, 4, 8) == 0);
    CHECK(ttt_flops_inner(TTT_LINEAR, 2, 4, 4, 0) == 0);
}

static void test_attention(void)
{
    ttt_config c = tiny(SEQ_ATTENTION);
    ttt_flops f;
    CHECK(ttt_flops_forward(&c, 8, &f) == 0);
    CHECK_CLOSE(f.proj, 4 * 128, 0, 0);
    /* walk the causal positions: token t meets t+1 keys, each costing
     * 2d (q.k) + 2d (p v) per head */
    for (long T = 1; T <= 40; T += 13) {
        double s = 0;
        for (long t = 0; t < T; t++)
            for (long j = 0; j <= t; j++)
                s += 2 * (2 * 4 + 2 * 4);
        CHECK(ttt_flops_forward(&c, T, &f) == 0);
        CHECK_CLOSE(f.seq, s / T, 1e-9, 0);
    }
    CHECK(ttt_flops_forward(&c, 8, &f) == 0);
    CHECK_CLOSE(f.seq, 144, 0, 0);
    CHECK_CLOSE(f.total, 288 + 512 + 144 + 160, 0, 0);
}

static void test_mamba(void)
{
    ttt_config c = tiny(SEQ_MAMBA);   /* E 16, S 16, R 1 */
    ttt_flops f;
    CHECK(ttt_flops_forward(&c, 8, &f) == 0);
    /* in_proj 2*8*32, conv 2*2*16, x_proj 2*16*33, dt_proj 2*16*1, out_proj 2*16*8 */
    CHECK_CLOSE(f.proj, 512 + 64 + 1056 + 32 + 256, 0, 0);
    CHECK_CLOSE(f.seq, 6 * 256 + 3 * 16, 0, 0);
    /* the scan does not depend on the context */
    ttt_flops g;
    CHECK(ttt_flops_forward(&c, 1000, &g) == 0);
    CHECK_CLOSE(g.total, f.total, 0, 0);
}

/* Transformer: every weight of a projection or of the SwiGLU, and the tied
 * embedding as the head, does one multiply-add per token, so forward
 * FLOPs minus attention = 2 x (params - norm weights). */
static void test_params_relation(void)
{
    static const char *presets[] = { "tiny", "small", "125m", "1b" };
    for (int i = 0; i < 4; i++) {
        ttt_config c;
        CHECK(ttt_config_preset_for(&c, presets[i], SEQ_ATTENTION) == 0);
        ttt_flops f;
        CHECK(ttt_flops_forward(&c, 2048, &f) == 0);
        double norms = (2.0 * c.num_hidden_layers + 1) * c.hidden_size;
        CHECK_CLOSE(f.total - f.seq, 2 * ((double)ttt_config_num_params(&c) - norms), 0, 1e-15);
    }
    /* 125m TTT-Linear (Mamba backbone) at 2048: training FLOPs within 3% of 6N
     * (the inner loop and the convs add, the norms, lr gate and W0 don't do
     * multiply-adds per parameter) */
    ttt_config c;
    CHECK(ttt_config_preset(&c, "125m") == 0);
    ttt_flops f;
    CHECK(ttt_flops_forward(&c, 2048, &f) == 0);
    double sixN = 6.0 * (double)ttt_config_num_params(&c);
    CHECK_CLOSE(TTT_FLOPS_TRAIN_FACTOR * f.total, sixN, 0, 0.03);
    /* its inner loop at 2048: 12 layers x 12 heads x (6*64^2 + 6*16*64) */
    CHECK_CLOSE(f.seq, 12.0 * 12 * (6 * 4096 + 6 * 16 * 64), 0, 0);
}

static void test_kernel_cost(void)
{
    ttt_kernel_cost k;
    /* H 1, d 16, T 32: two full mini-batches, states of 16*16+16 = 272 */
    CHECK(ttt_flops_inner_linear_kernel(1, 16, 32, 0, &k) == 0);
    CHECK_CLOSE(k.fwd_flops, (6 * 16 * 256 + 6 * 256 * 16) / 16.0, 0, 0);
    CHECK_CLOSE(k.bwd_flops, (16 * 16 * 256 + 12 * 256 * 16) / 16.0, 0, 0);
    /* fwd: 4 x (Q, K, V, Z: 4*16 + lr: 1) a token; 3 states written + W0, b0 (272),
     * gamma, beta (32), token_idx (16) read, over 32 tokens */
    CHECK_CLOSE(k.fwd_bytes, 4 * 65 + 4 * (3 * 272 + 272 + 32 + 16) / 32.0, 1e-12, 0);
    /* bwd: 4 x (Q, K, V, dZ, dQ, dK, dV: 7*16 + lr, dlr: 2); 2 states read; gamma, beta,
     * token_idx read (48); dW0, db0, dgamma, dbeta, dtau read and written (2 x 320) */
    CHECK_CLOSE(k.bwd_bytes, 4 * 114 + 4 * (2 * 272 + 48 + 2 * 320) / 32.0, 1e-12, 0);
    /* per layer of 12 heads at d 64, T 2048: the per-token terms dominate */
    CHECK(ttt_flops_inner_linear_kernel(12, 64, 2048, 0, &k) == 0);
    CHECK_CLOSE(k.fwd_bytes, 4 * (4 * 768 + 12) + 4 * 12 * 4160 / 16.0, 0, 0.01);
    /* the tensor-core kernel: states with W in bf16 (2*256 + 4*16 = 576 bytes), dQ, dK, dV in bf16 */
    CHECK(ttt_flops_inner_linear_kernel(1, 16, 32, 1, &k) == 0);
    CHECK_CLOSE(k.fwd_bytes, 4 * 65 + (3 * 576 + 4 * (272 + 32 + 16)) / 32.0, 1e-12, 0);
    CHECK_CLOSE(k.bwd_bytes, 4 * 66 + 2 * 48 + (2 * 576 + 4 * (48 + 2 * 320)) / 32.0, 1e-12, 0);
    CHECK_CLOSE(k.bwd_flops, (16 * 16 * 256 + 12 * 256 * 16) / 16.0, 0, 0);
    CHECK(ttt_flops_inner_linear_kernel(12, 0, 2048, 0, &k) == -1);
    CHECK(strstr(ttt_errmsg(), "positive") != NULL);
}

static void test_bad_input(void)
{
    ttt_config c = tiny(SEQ_TTT);
    ttt_flops f;
    CHECK(ttt_flops_forward(&c, 0, &f) == -1);
    CHECK(strstr(ttt_errmsg(), "context") != NULL);
    c.hidden_size = 9;   /* not a multiple of the heads */
    CHECK(ttt_flops_forward(&c, 8, &f) == -1);
}

int main(void)
{
    test_ttt_linear_mamba_backbone();
    test_ttt_transformer_backbone_and_mlp();
    test_attention();
    test_mamba();
    test_params_relation();
    test_kernel_cost();
    test_bad_input();
    return check_exit("test_flops");
}
