/* flops.h - exact FLOP counts of the model and the bytes of the fused
 * TTT-Linear inner kernel, for MFU and roofline figures
 * (tests/bench/roofline.md derives every formula).
 *
 * Convention (PaLM appendix B / llm.c): a multiply-add is 2 FLOPs, and only
 * the multiply-adds of linear maps are counted: matrix products, the
 * depthwise convs, the TTT dual form's products, attention's QK^T and PV,
 * the Mamba scan's recurrence. Pointwise work (norms, RoPE, softmax,
 * activations, gates, biases, residuals, exp) is not counted. Attention is
 * causal: token t (from 0) meets t+1 keys. The TTT inner loop is the dual
 * form as spec section 5 writes it (dense r x r products, per mini-batch of
 * r <= K tokens), whatever the kernel skips. Training = 3 x forward
 * (backward = 2 x forward), recomputation not counted: model FLOPs, not
 * hardware FLOPs. All counts are per token, averaged over a context of T.
 */
#ifndef TTT_FLOPS_H
#define TTT_FLOPS_H

#include "model.h"

#define TTT_FLOPS_TRAIN_FACTOR 3.0   /* training FLOPs = 3 x forward FLOPs */

/* Forward FLOPs per token of the whole model at context T, all layers summed. */
typedef struct {
    double proj;    /* the sequence block's linear maps: q/k/v/o/gate projections, lr gate,
                       convs (pre-conv, conv_q/conv_k), Mamba in/x/dt/out projections and conv */
    double mlp;     /* SwiGLU: gate, up, down */
    double seq;     /* TTT inner loop, attention QK^T + PV, or the Mamba scan */
    double head;    /* LM head (tied embedding): 2 C V */
    double total;   /* sum of the above */
} ttt_flops;

/* Fills *f for config c at context T (>= 1). 0, or -1 with ttt_seterr
 * (invalid config or T). */
int ttt_flops_forward(const ttt_config *c, long T, ttt_flops *f);

/* Forward FLOPs per token of one layer's TTT inner loop (all H heads), dual
 * form, mini-batches of K from t = 0 (the last one partial when K does not
 * divide T): per mini-batch of r tokens and head,
 *   TTT-Linear (F = d):  6 r d^2 + 6 r^2 d
 *   TTT-MLP   (F = 4d): 14 r d F + 6 r^2 (d + F)
 * kind TTT_LINEAR or TTT_MLP; 0 for bad arguments. */
double ttt_flops_inner(int kind, int H, int D, int K, long T);

/* The fused TTT-Linear inner kernel (K = TTT_CUDA_K = 16) per token of one
 * layer (all H heads) at context T: FLOPs of the forward (the dual form
 * above) and of the backward kernel (which recomputes Z, QW, tril(QK^T)
 * from the stored start state: 16 r d^2 + 12 r^2 d per mini-batch and
 * head), and the fewest bytes each moves through device memory (every input
 * read once, every output written once; the per-(sequence, head) parameter
 * reads and gradient read-modify-writes spread over the T tokens). tc = 0:
 * the fp32 kernel (lib/cuda/ttt_inner_linear.cu), everything fp32; tc = 1:
 * the tensor-core kernel of bf16 mode (ttt_inner_linear_tc.cu) as the layer
 * runs it without share_qk: the state checkpoints' W and the gradients dQ,
 * dK, dV in bf16, the rest fp32. */
typedef struct {
    double fwd_flops, bwd_flops;
    double fwd_bytes, bwd_bytes;
} ttt_kernel_cost;
int ttt_flops_inner_linear_kernel(int H, int D, long T, int tc, ttt_kernel_cost *k);   /* 0 or -1 */

#endif
