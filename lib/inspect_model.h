/* inspect_model.h - what ttt-inspect says about a model checkpoint and a
 * fast-weight state beyond per-tensor numbers: the parameter group of each
 * checkpoint tensor, and per layer and head the size of the fast weights of
 * a decoding state (state.h) and, given the checkpoint, their distance from
 * the initial fast weights W0 (the checkpoint's W1, b1, W2, b2).
 */
#ifndef TTT_INSPECT_MODEL_H
#define TTT_INSPECT_MODEL_H

#include <stdint.h>

#include "model.h"         /* ttt_model, ttt_config */
#include "safetensors.h"   /* ttt_st */

/* Parameter groups, in display order. */
enum {
    TTT_G_EMBED, TTT_G_PROJ, TTT_G_W0, TTT_G_LR, TTT_G_NORM, TTT_G_SWIGLU, TTT_G_CONV,
    TTT_G_ATTN, TTT_G_FINAL_NORM, TTT_G_OTHER, TTT_G_COUNT
};
/* "embedding", "ttt projections", "fast-weight init W0", ... */
const char *ttt_group_name(int g);
/* 1 if the group repeats in every layer (model.layers.<l>.*). */
int ttt_group_per_layer(int g);
/* The group of a tensor name of the reference PyTorch model; *layer gets
 * the layer index or -1 (may be NULL). TTT_G_OTHER when unknown. */
int ttt_group_of(const char *name, int *layer);

/* One fast-weight tensor of one head in one layer of a decoding state. */
typedef struct {
    int layer, head;
    char param[4];     /* "W1" "b1" "W2" "b2" */
    double norm;       /* |S_n|: the state at the start of the open mini-batch */
    double pending;    /* |A|: the open mini-batch's gradient sum (W1_grad, ...) */
    double dist0;      /* |S_n - W0|                  (NaN without the model) */
    double dist_now;   /* |S_n - tau_i A - W0|, the weights the last token used
                        * (i = (position-1) mod K; NaN without the model) */
} ttt_fw_row;

/* Rows for every layer, head and fast-weight tensor of the state st, in
 * layer, param, head order. m (may be NULL) is the checkpoint the state was
 * computed from. *rows is malloc'ed. 0 or -1 with ttt_errmsg. */
int ttt_fw_rows(const ttt_st *st, const ttt_model *m, const ttt_config *c, long position,
                ttt_fw_row **rows, int *nrows);

#endif
