/* gpu_blocks.cuh - per-block parameter (or gradient) pointers into a device
 * arena laid out like the CPU model's (ttt_model_tensor offsets), by reference
 * tensor name; shared by the GPU model (model_gpu.cu) and the GPU decoder
 * (decode_gpu.cu). The sequence block's pointers come in three views: the
 * TTT layer's, the attention baseline's and the Mamba baseline's; only the
 * one of the model's seq_modeling_block is filled (the others stay NULL).
 * Host code; include after model.h and ttt_cuda.h. */
#ifndef TTT_GPU_BLOCKS_CUH
#define TTT_GPU_BLOCKS_CUH

#include <stdio.h>
#include <string.h>

#include "ttt_cuda_attn.h"
#include "ttt_cuda_mamba.h"

struct ttt_gpu_block {     /* NULL where the configuration has no such tensor */
    float *conv_norm, *conv_w, *conv_b, *seq_norm, *ffn_norm, *gate, *up, *down;
    ttt_cuda_params ttt;            /* SEQ_TTT */
    ttt_cuda_attn_params attn;      /* SEQ_ATTENTION */
    ttt_cuda_mamba_params mamba;    /* SEQ_MAMBA */
};

/* Pointers into an arena by reference tensor name; NULL when absent. */
static inline float *gpu_tensor_ptr(const ttt_model *m, float *arena, const char *fmt, int l)
{
    char name[128];
    snprintf(name, sizeof name, fmt, l);
    const ttt_tensor *t = ttt_model_find(m, name);
    return t ? arena + t->offset : NULL;
}

static inline void block_ptrs(const ttt_model *m, float *arena, int l, ttt_gpu_block *b)
{
#define TP(fmt) gpu_tensor_ptr(m, arena, "model.layers.%d." fmt, l)
    b->conv_norm = TP("conv.norm.weight");
    b->conv_w = TP("conv.conv.weight");
    b->conv_b = TP("conv.conv.bias");
    b->seq_norm = TP("seq_norm.weight");
    b->ffn_norm = TP("ffn_norm.weight");
    b->gate = TP("mlp.gate_proj.weight");
    b->up = TP("mlp.up_proj.weight");
    b->down = TP("mlp.down_proj.weight");
    memset(&b->ttt, 0, sizeof b->ttt);
    memset(&b->attn, 0, sizeof b->attn);
    memset(&b->mamba, 0, sizeof b->mamba);
    int blk = ttt_model_config(m)->seq_modeling_block;
    if (blk == SEQ_ATTENTION) {
        ttt_cuda_attn_params *a = &b->attn;
        a->q_proj = TP("seq_modeling_block.q_proj.weight");
        a->k_proj = TP("seq_modeling_block.k_proj.weight");
        a->v_proj = TP("seq_modeling_block.v_proj.weight");
        a->o_proj = TP("seq_modeling_block.o_proj.weight");
        return;
    }
    if (blk == SEQ_MAMBA) {
        ttt_cuda_mamba_params *q = &b->mamba;
        q->in_proj = TP("seq_modeling_block.in_proj.weight");
        q->conv_w = TP("seq_modeling_block.conv1d.weight");
        q->conv_b = TP("seq_modeling_block.conv1d.bias");
        q->x_proj = TP("seq_modeling_block.x_proj.weight");
        q->dt_w = TP("seq_modeling_block.dt_proj.weight");
        q->dt_b = TP("seq_modeling_block.dt_proj.bias");
        q->A_log = TP("seq_modeling_block.A_log");
        q->D = TP("seq_modeling_block.D");
        q->out_proj = TP("seq_modeling_block.out_proj.weight");
        return;
    }
    ttt_cuda_params *p = &b->ttt;
    p->q_proj = TP("seq_modeling_block.q_proj.weight");
    p->k_proj = TP("seq_modeling_block.k_proj.weight");
    p->v_proj = TP("seq_modeling_block.v_proj.weight");
    p->o_proj = TP("seq_modeling_block.o_proj.weight");
    p->g_proj = TP("seq_modeling_block.g_proj.weight");
    p->conv_q_w = TP("seq_modeling_block.conv_q.weight");
    p->conv_q_b = TP("seq_modeling_block.conv_q.bias");
    p->conv_k_w = TP("seq_modeling_block.conv_k.weight");
    p->conv_k_b = TP("seq_modeling_block.conv_k.bias");
    p->lr_w = TP("seq_modeling_block.learnable_ttt_lr_weight");
    p->lr_b = TP("seq_modeling_block.learnable_ttt_lr_bias");
    p->token_idx = TP("seq_modeling_block.learnable_token_idx");
    p->ttt_norm_w = TP("seq_modeling_block.ttt_norm_weight");
    p->ttt_norm_b = TP("seq_modeling_block.ttt_norm_bias");
    p->W1 = TP("seq_modeling_block.W1");
    p->b1 = TP("seq_modeling_block.b1");
    p->W2 = TP("seq_modeling_block.W2");   /* NULL for TTT-Linear */
    p->b2 = TP("seq_modeling_block.b2");
    p->post_norm_w = TP("seq_modeling_block.post_norm.weight");
    p->post_norm_b = TP("seq_modeling_block.post_norm.bias");
#undef TP
}

#endif
