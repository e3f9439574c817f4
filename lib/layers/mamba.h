/* mamba.h - the Mamba (Mamba-1, Gu & Dao 2023; mamba_simple.py) selective
 * state-space block, the Mamba baseline's sequence block:
 *   [xi, z] = x Win^T                    Win [2E,C]        (in_proj, no bias)
 *   xc = silu(DWConv(xi) + conv_b)       conv [E,1,k]      (conv1d, causal)
 *   [dtr, Bm, Cm] = xc Wx^T              Wx [R+2S,E]       (x_proj, no bias)
 *   dt = softplus(dtr Wdt^T + bdt)       Wdt [E,R]         (dt_proj)
 *   A = -exp(A_log)                      [E,S]
 *   h_t[e,s] = exp(dt_t[e] A[e,s]) h_{t-1}[e,s] + dt_t[e] Bm_t[s] xc_t[e]
 *   y_t[e] = sum_s h_t[e,s] Cm_t[s] + D[e] xc_t[e]
 *   out = (y * silu(z)) Wout^T           Wout [C,E]        (out_proj, no bias)
 * with E = 2C (expand 2), S = 16 (d_state), R = ceil(C/16) (dt_rank), k the
 * conv width (the model's conv_kernel, 4).
 *
 * The selective scan runs sequentially over time, in parallel over (batch,
 * channel block). The forward keeps the state only at the start of every
 * MAMBA_CHUNK tokens; the backward recomputes the states of one chunk from
 * there and runs the reverse recurrence through it.
 * Backward: dx is overwritten (=), parameter gradients accumulate (+=).
 */
#ifndef TTT_MAMBA_H
#define TTT_MAMBA_H

#include <stddef.h>
#include "../real.h"

#define MAMBA_D_STATE 16
#define MAMBA_EXPAND 2
#define MAMBA_CHUNK 64     /* tokens between saved states */

typedef struct {
    int C, E, S, R, k;      /* model width, inner width, state size, dt rank, conv width */
} mamba_config;

/* E = 2C, S = 16, R = ceil(C/16), k = conv_kernel. */
void mamba_config_init(mamba_config *m, int C, int conv_kernel);

typedef struct {
    real *in_proj;           /* [2E,C] */
    real *conv_w, *conv_b;   /* [E,1,k], [E] */
    real *x_proj;            /* [R+2S,E] */
    real *dt_w, *dt_b;       /* [E,R], [E] */
    real *A_log;             /* [E,S] */
    real *D;                 /* [E] */
    real *out_proj;          /* [C,E] */
} mamba_params;

size_t mamba_acts_size(const mamba_config *c, int B, int T);
/* out [B,T,C] from x [B,T,C]; acts sized by mamba_acts_size. */
void mamba_forward(const mamba_config *c, real *out, real *acts, const real *x,
                   const mamba_params *p, int B, int T);
/* Scratch in reals of the backward (depends on the OpenMP thread count). */
size_t mamba_scratch_size(const mamba_config *c, int B, int T);
/* dx (=), g (+=) from dout; acts and x as the forward left them (unchanged). */
void mamba_backward(const mamba_config *c, real *dx, const mamba_params *g, const real *dout,
                    const real *acts, const real *x, const mamba_params *p, real *scratch,
                    int B, int T);
/* Named intermediates: "xi" "z" "xc" "dt" "y" [B,T,E], "x_proj_out" [B,T,R+2S]. */
const real *mamba_inter(const mamba_config *c, const real *acts, const char *name, int B, int T);

/* ---- the selective scan (exposed for the unit test) ----
 * u, dt, y [B,T,E]; Bm, Cm rows of stride ldbc ([B,T,ldbc]); A [E,S], Dv [E];
 * hs [B, ceil(T/MAMBA_CHUNK), E, S]: the state before each chunk. */
void mamba_scan_forward(real *y, real *hs, const real *u, const real *dt, const real *A,
                        const real *Bm, const real *Cm, int ldbc, const real *Dv,
                        int B, int T, int E, int S);
size_t mamba_scan_scratch_size(int B, int T, int E, int S);
/* du, ddt [B,T,E] and dBm, dCm (stride ldbc) (=); dA [E,S], dD [E] (+=). */
void mamba_scan_backward(real *du, real *ddt, real *dBm, real *dCm, real *dA, real *dD,
                         const real *dy, const real *hs, const real *u, const real *dt,
                         const real *A, const real *Bm, const real *Cm, int ldbc,
                         const real *Dv, int B, int T, int E, int S, real *scratch);

/* ---- decoding: per layer the conv buffer [B,E,k] (last k inputs, oldest
 * first) followed by the SSM state [B,E,S]; zero at the start ---- */
size_t mamba_state_size(const mamba_config *c, int B);
size_t mamba_decode_scratch_size(const mamba_config *c, int B);
/* P tokens per sequence x [B,P,C] -> out [B,P,C], one recurrence step each. */
void mamba_decode(const mamba_config *c, real *out, real *state, const real *x,
                  const mamba_params *p, int B, int P, real *scratch);

#endif
