/* flops.c - FLOP counts per token of the model (attention, Mamba, TTT-Linear,
 * TTT-MLP) and the byte count of the fused TTT-Linear inner kernel; the
 * conventions are in flops.h, the derivations in tests/bench/roofline.md. */
#include "flops.h"
#include "err.h"                 /* ttt_seterr */
#include "layers/mamba.h"        /* mamba_config_init: E, S, R of the baseline */

/* Sum over the mini-batches of T tokens (K each, the last one r = T mod K
 * when that is not 0) of a r-dependent count a*r + b*r^2, over T. */
static double per_token_mb(double a, double b, int K, long T)
{
    long full = T / K, r = T % K;
    double s = (double)full * (a * K + b * (double)K * K) + (a * r + b * (double)r * r);
    return s / (double)T;
}

double ttt_flops_inner(int kind, int H, int D, int K, long T)
{
    if (H < 1 || D < 1 || K < 1 || T < 1) return 0;
    double d = D;
    if (kind == TTT_LINEAR)
        /* Z = KW, QW, W' = W - K^T diag(e) G: 3 products r x d x d;
         * tril(QK^T), (eta.A) G, eta G: 3 products r x r x d */
        return H * per_token_mb(6 * d * d, 6 * d, K, T);
    if (kind == TTT_MLP) {
        double F = 4 * d;
        /* r x d x F products: Z1 = K W1, Z2 = X2 W2, G2 W2^T, Q W1, Xbar2 W2,
         * K^T diag(e) G1, X2^T diag(e) G2 (7); r x r x {d,F}: tril(QK^T) (d),
         * (eta.A1) G1 (F), eta G1 (F), tril(Xbar2 X2^T) (F), (eta.A2) G2 (d), eta G2 (d) */
        return H * per_token_mb(14 * d * F, 6 * (d + F), K, T);
    }
    return 0;
}

int ttt_flops_forward(const ttt_config *c, long T, ttt_flops *f)
{
    if (ttt_config_validate(c)) return -1;
    if (T < 1) return ttt_seterr("FLOP count: context must be at least 1, got %ld", T);
    double C = c->hidden_size, I = c->intermediate_size, V = c->vocab_size;
    double H = c->num_attention_heads, k = c->conv_kernel, L = c->num_hidden_layers;
    int D = c->hidden_size / c->num_attention_heads;
    double proj = 0, seq = 0;

    switch (c->seq_modeling_block) {
    case SEQ_TTT: {
        /* q, v, o always; k unless shared; the output gate with use_gate */
        int nproj = 3 + !c->share_qk + c->use_gate;
        proj = nproj * 2 * C * C;
        proj += 2 * H * C;                           /* lr gate: x . w_h per head */
        if (c->share_qk) proj += 2 * (2 * k * C);    /* conv_q, conv_k */
        if (c->pre_conv) proj += 2 * k * C;          /* the block's pre-conv */
        seq = ttt_flops_inner(c->ttt_layer_type, c->num_attention_heads, D, c->mini_batch_size, T);
        break;
    }
    case SEQ_ATTENTION:
        proj = 4 * 2 * C * C;                        /* q, k, v, o */
        /* token t meets t+1 keys: QK^T and PV, 2 C (t+1) FLOPs each over the heads;
         * mean over t = 0..T-1 of 4 C (t+1) = 2 C (T+1) */
        seq = 2 * C * ((double)T + 1);
        break;
    case SEQ_MAMBA: {
        mamba_config m;
        mamba_config_init(&m, c->hidden_size, c->conv_kernel);
        double E = m.E, S = m.S, R = m.R;
        proj = 2 * C * 2 * E                         /* in_proj -> [xi, z] */
             + 2 * k * E                             /* conv1d */
             + 2 * E * (R + 2 * S)                   /* x_proj -> dt_raw, B, C */
             + 2 * E * R                             /* dt_proj */
             + 2 * E * C;                            /* out_proj */
        /* per (e, s): dt*A (1), h = dA h + (dt x) B (1 + 2), y += h C (2);
         * per e: dt*x (1), y += D x (2) */
        seq = 6 * E * S + 3 * E;
        break;
    }
    default:
        return ttt_seterr("FLOP count: unknown sequence block %d", c->seq_modeling_block);
    }
    f->proj = L * proj;
    f->mlp = L * 3 * 2 * C * I;
    f->seq = L * seq;
    f->head = 2 * C * V;
    f->total = f->proj + f->mlp + f->seq + f->head;
    return 0;
}

int ttt_flops_inner_linear_kernel(int H, int D, long T, int tc, ttt_kernel_cost *kc)
{
    if (H < 1 || D < 1 || T < 1)
        return ttt_seterr("kernel cost: H, D and T must be positive (got %d, %d, %ld)", H, D, T);
    const int K = 16;   /* TTT_CUDA_K: the kernel's mini-batch is hard-wired */
    double d = D, h = H, C = h * d, t = (double)T;
    long nmb = (T + K - 1) / K;
    double P = d * d + d;                            /* one state (W, b) per head, as parameters */
    double S = tc ? 2 * d * d + 4 * d : 4 * P;       /* bytes of a stored state checkpoint */
    double G = tc ? 2 : 4;                           /* bytes of a dQ, dK, dV element */
    kc->fwd_flops = ttt_flops_inner(TTT_LINEAR, H, D, K, T);
    kc->bwd_flops = h * per_token_mb(16 * d * d, 12 * d, K, T);
    /* Forward: read Q, K, V (3C) and lr (H), write Z (C), fp32; write the
     * state at every mini-batch start and the final one, (nmb+1) S per
     * head; read W0, b0, gamma, beta (P + 2d) and token_idx (K) once per
     * (sequence, head), fp32 */
    kc->fwd_bytes = 4 * (4 * C + h) + h * ((double)(nmb + 1) * S + 4 * (P + 2 * d + K)) / t;
    /* Backward: read Q, K, V, dZ (4C) and lr (H), write dlr (H), fp32; write
     * dQ, dK, dV (3C); read the nmb start states per head; read gamma, beta,
     * token_idx and read-modify-write dW0, db0, dgamma, dbeta (P + 2d) and
     * dtau (K), fp32, once per (sequence, head) */
    kc->bwd_bytes = 4 * (4 * C + 2 * h) + G * 3 * C + h * ((double)nmb * S + 4 * (2 * d + K + 2 * (P + 2 * d + K))) / t;
    return 0;
}
