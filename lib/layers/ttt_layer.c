/* ttt_layer.c - one TTT layer (spec 2-8): projections, conv_q/conv_k, RoPE,
 * lr gate, token factors, the inner loop (ttt_linear.c / ttt_mlp.c) over
 * mini-batches, post-norm, gate, o_proj; backward; decoding.
 *
 * Activations (ttt_layer_acts_size) for B sequences of T tokens, N = ceil(T/K):
 *   ~ 20 B*T*C reals (projections, heads, post-norm, gate and backward
 *   buffers) + B*H*(N+1)*P reals of fast-weight states (P = D*F+F, plus
 *   F*D+D for the MLP) kept only at mini-batch boundaries + a fixed per-slot
 *   inner-loop scratch. So acts grow linearly with T: per token
 *   ~20 C + H*P/K reals. Everything inside a mini-batch (Z, G, attention,
 *   Zbar, ...) is recomputed in the backward from S_n, Q, K, V, eta.
 * The backward uses the state area as its running dS, so acts can be
 * back-propagated once per forward.
 *
 * Threads: the inner loop runs over (b,h) pairs with OpenMP; each thread
 * uses its own slot of scratch, at most TTT_SLOTS slots. Projections go
 * through ttt_gemm. No allocation in forward/backward/step (prefill
 * allocates its activations once per call).
 */
#include "ttt_layer.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../blas.h"
#include "../err.h"
#include "../model.h"
#include "dwconv.h"
#include "gelu.h"
#include "layernorm.h"
#include "par.h"
#include "ttt_linear.h"
#include "ttt_mlp.h"

#define TTT_SLOTS 32
#define POST_NORM_EPS 1e-6

static int nslots(int B, int H) { return B * H < TTT_SLOTS ? B * H : TTT_SLOTS; }

static int nthreads(int slots)
{
    int n = par_max_threads();
    return n < slots ? n : slots;
}

static int is_mlp(const ttt_layer_config *c) { return c->kind == TTT_MLP; }

/* Element-wise passes go parallel only above this many reals: a decode step
 * (B rows) is cheaper on one thread than a fork/join. */
#define PAR_MIN 16384

/* reals of one (b,h) fast-weight block */
static size_t state_P(const ttt_layer_config *c)
{
    return is_mlp(c) ? ttt_mlp_state_size(c->D, c->F) : ttt_linear_state_size(c->D);
}

static size_t slot_size(const ttt_layer_config *c)
{
    size_t s = is_mlp(c) ? ttt_mlp_scratch_size(c->K, c->D, c->F) : ttt_linear_scratch_size(c->K, c->D);
    size_t prim = 4 * (size_t)c->F + 4 * (size_t)c->D;
    return (s > prim ? s : prim) + 16;
}

typedef struct {
    size_t qp, kp, vp, cq, ck, XQ, XK, XV, sig, lr, tau, rcos, rsin, states, tout, pmean, prstd,
           pnout, gout, oin;
    size_t dXQ, dXK, dXV, dlr, da, dY, dZ, dq, dk, acc, slots, total;
} layout;

static void make_layout(layout *L, const ttt_layer_config *c, int B, int T, int with_bwd)
{
    size_t BTC = (size_t)B * T * c->C, BHT = (size_t)B * c->H * T, o = 0;
    int N = (T + c->K - 1) / c->K;
    memset(L, 0, sizeof *L);
#define TAKE(f, n) (L->f = o, o += (n))
    TAKE(qp, BTC);
    TAKE(kp, c->share_qk ? 0 : BTC);
    TAKE(vp, BTC);
    TAKE(cq, c->share_qk ? BTC : 0);
    TAKE(ck, c->share_qk ? BTC : 0);
    TAKE(XQ, BTC); TAKE(XK, BTC); TAKE(XV, BTC);
    TAKE(sig, BHT); TAKE(lr, BHT);
    TAKE(tau, c->K);
    TAKE(rcos, (size_t)c->K * c->D / 2); TAKE(rsin, (size_t)c->K * c->D / 2);
    TAKE(states, (size_t)B * c->H * (N + 1) * state_P(c));
    TAKE(tout, BTC);
    TAKE(pmean, (size_t)B * T); TAKE(prstd, (size_t)B * T);
    TAKE(pnout, BTC);
    TAKE(gout, c->use_gate ? BTC : 0);
    TAKE(oin, c->use_gate ? BTC : 0);
    if (with_bwd) {
        TAKE(dXQ, BTC); TAKE(dXK, BTC); TAKE(dXV, BTC);
        TAKE(dlr, BHT); TAKE(da, BHT);
        TAKE(dY, BTC); TAKE(dZ, BTC); TAKE(dq, BTC); TAKE(dk, BTC);
        TAKE(acc, (size_t)B * c->H * (2 * c->D + c->K));
    }
    TAKE(slots, (size_t)nslots(B, c->H) * slot_size(c));
#undef TAKE
    L->total = o;
}

size_t ttt_layer_acts_size(const ttt_layer_config *c, int B, int T)
{
    layout L;
    make_layout(&L, c, B, T, 1);
    return L.total;
}

/* ---- fast-weight blocks <-> piecewise tensors ---- */

/* Piecewise view of element idx of [n,...] tensors W1 [D,F], b1 [F], W2 [F,D], b2 [D]. */
static ttt_fast_weights fw_at(const ttt_layer_config *c, real *W1, real *b1, real *W2, real *b2, size_t idx)
{
    size_t D = c->D, F = c->F;
    ttt_fast_weights w = { W1 + idx * D * F, b1 + idx * F, NULL, NULL };
    if (is_mlp(c)) { w.W2 = W2 + idx * F * D; w.b2 = b2 + idx * D; }
    return w;
}

/* block layout: W1 [D,F] b1 [F] (W2 [F,D] b2 [D]) */
static void fw_gather(const ttt_layer_config *c, real *blk, const ttt_fast_weights *w)
{
    size_t D = c->D, F = c->F;
    memcpy(blk, w->W1, sizeof(real) * D * F); blk += D * F;
    memcpy(blk, w->b1, sizeof(real) * F); blk += F;
    if (is_mlp(c)) {
        memcpy(blk, w->W2, sizeof(real) * F * D); blk += F * D;
        memcpy(blk, w->b2, sizeof(real) * D);
    }
}

/* w (+)= blk */
static void fw_scatter(const ttt_layer_config *c, const ttt_fast_weights *w, const real *blk, int acc)
{
    size_t D = c->D, F = c->F;
    real *dst[4] = { w->W1, w->b1, w->W2, w->b2 };
    size_t n[4] = { D * F, F, F * D, D };
    for (int k = 0; k < (is_mlp(c) ? 4 : 2); k++) {
        if (acc) for (size_t i = 0; i < n[k]; i++) dst[k][i] += blk[i];
        else memcpy(dst[k], blk, sizeof(real) * n[k]);
        blk += n[k];
    }
}

/* ---- input side ---- */

/* Causal depthwise conv of x [B,T,C] continuing from a history state
 * [B,C,k] (oldest first), which is updated to the last k inputs: one
 * decoding step per token. */
static void conv_with_state(real *y, const real *x, const real *w, const real *bias, real *state,
                            int B, int T, int C, int k)
{
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            size_t row = ((size_t)b * T + t) * C;
            dwconv_step(y + row, state + (size_t)b * C * k, x + row, w, bias, 1, C, k);
        }
}

/* cos/sin [K, D/2]: angle p * theta^(-2i/D), p = position inside the mini-batch */
static void rope_tables(const ttt_layer_config *c, real *cs, real *sn)
{
    int h2 = c->D / 2;
    for (int p = 0; p < c->K; p++)
        for (int i = 0; i < h2; i++) {
            double inv = 1.0 / pow(c->rope_theta, (double)(2 * i) / c->D);
            double a = p * inv;
            cs[p * h2 + i] = (real)cos(a);
            sn[p * h2 + i] = (real)sin(a);
        }
}

/* Head split [B,T,C] -> [B,H,T,D], rotating lane pairs (2i, 2i+1) by the
 * angle of position (pos0 + t) mod K when rot. */
static void split_heads(real *dst, const real *src, const ttt_layer_config *c, const real *cs,
                        const real *sn, int rot, int B, int T, long pos0)
{
    int H = c->H, D = c->D, C = c->C, h2 = D / 2;
    #pragma omp parallel for collapse(2) schedule(static) if ((size_t)B * T * C >= PAR_MIN)
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++)
            for (int t = 0; t < T; t++) {
                const real *s = src + ((size_t)b * T + t) * C + h * D;
                real *d = dst + (((size_t)b * H + h) * T + t) * D;
                if (!rot) { memcpy(d, s, sizeof(real) * D); continue; }
                int p = (int)((pos0 + t) % c->K);
                for (int i = 0; i < h2; i++) {
                    real co = cs[p * h2 + i], si = sn[p * h2 + i];
                    d[2 * i] = s[2 * i] * co - s[2 * i + 1] * si;
                    d[2 * i + 1] = s[2 * i] * si + s[2 * i + 1] * co;
                }
            }
}

/* lr[b,h,t] = base_lr * sigmoid(x_t . w_h + c_h) / D  (sig kept for the backward) */
static void lr_gate(real *sig, real *lr, const ttt_layer_config *c, const real *x,
                    const ttt_layer_params *p, int B, int T)
{
    int H = c->H, C = c->C;
    #pragma omp parallel for collapse(2) schedule(static) if ((size_t)B * T * C >= PAR_MIN)
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            const real *xt = x + ((size_t)b * T + t) * C;
            for (int h = 0; h < H; h++) {
                real a = p->lr_b[h];
                for (int k = 0; k < C; k++) a += xt[k] * p->lr_w[(size_t)h * C + k];
                real s = 1 / (1 + exp(-a));
                size_t i = ((size_t)b * H + h) * T + t;
                sig[i] = s;
                lr[i] = (real)c->base_lr * s / c->D;
            }
        }
}

/* tau_i = max(1/(i+1) + learnable_token_idx[i], 0) */
static void token_factors(real *tau, const ttt_layer_config *c, const ttt_layer_params *p)
{
    for (int i = 0; i < c->K; i++) {
        real t = (real)(1.0 / (i + 1)) + p->token_idx[i];
        tau[i] = t > 0 ? t : 0;
    }
}

/* ---- output side: post-norm, gate, o_proj on rows of [n,C] ---- */
static void output_side(const ttt_layer_config *c, real *out, real *pnout, real *pmean, real *prstd,
                        real *gout, real *oin, const real *tout, const real *x,
                        const ttt_layer_params *p, size_t n)
{
    int C = c->C;
    #pragma omp parallel for schedule(static) if (n * C >= PAR_MIN)
    for (size_t i = 0; i < n; i++)
        ln_row_forward(pnout + i * C, pmean ? pmean + i : NULL, prstd ? prstd + i : NULL,
                       tout + i * C, p->post_norm_w, p->post_norm_b, C, POST_NORM_EPS);
    const real *o_in = pnout;
    if (c->use_gate) {
        ttt_gemm(0, 1, (int)n, C, C, 1, x, C, p->g_proj, C, 0, gout, C);
        #pragma omp parallel for simd schedule(static) if (n * C >= PAR_MIN)
        for (size_t i = 0; i < n * C; i++) oin[i] = gelu_tanh(gout[i]) * pnout[i];
        o_in = oin;
    }
    ttt_gemm(0, 1, (int)n, C, C, 1, o_in, C, p->o_proj, C, 0, out, C);
}

/* ---- forward ---- */

/* S0: decode state to start from (piecewise [B,H,...] tensors) or NULL for
 * W0; conv_state: [2][B,C,k] conv histories (share_qk) or NULL. */
static void forward_impl(const ttt_layer_config *c, real *out, real *acts, const layout *L,
                         const real *x, const ttt_layer_params *p, int B, int T,
                         const ttt_fast_weights *S0, real *convq_state, real *convk_state)
{
    int C = c->C, H = c->H, D = c->D, K = c->K, F = c->F;
    int N = (T + K - 1) / K;
    size_t P = state_P(c), BT = (size_t)B * T;
    real *qp = acts + L->qp, *kp = acts + L->kp, *vp = acts + L->vp;
    real *XQ = acts + L->XQ, *XK = acts + L->XK, *XV = acts + L->XV;
    real *sig = acts + L->sig, *lr = acts + L->lr, *tau = acts + L->tau;
    real *cs = acts + L->rcos, *sn = acts + L->rsin, *states = acts + L->states;
    real *tout = acts + L->tout, *slots = acts + L->slots;

    /* XQ = X Wq^T etc.; Mamba: U = X Wq^T, XQ = conv_q(U), XK = conv_k(U) */
    ttt_gemm(0, 1, (int)BT, C, C, 1, x, C, p->q_proj, C, 0, qp, C);
    if (!c->share_qk) ttt_gemm(0, 1, (int)BT, C, C, 1, x, C, p->k_proj, C, 0, kp, C);
    ttt_gemm(0, 1, (int)BT, C, C, 1, x, C, p->v_proj, C, 0, vp, C);
    const real *qsrc = qp, *ksrc = kp;
    if (c->share_qk) {
        real *cq = acts + L->cq, *ck = acts + L->ck;
        if (convq_state) {
            conv_with_state(cq, qp, p->conv_q_w, p->conv_q_b, convq_state, B, T, C, c->conv_kernel);
            conv_with_state(ck, qp, p->conv_k_w, p->conv_k_b, convk_state, B, T, C, c->conv_kernel);
        } else {
            dwconv_forward(cq, qp, p->conv_q_w, p->conv_q_b, B, T, C, c->conv_kernel);
            dwconv_forward(ck, qp, p->conv_k_w, p->conv_k_b, B, T, C, c->conv_kernel);
        }
        qsrc = cq;
        ksrc = ck;
    }
    rope_tables(c, cs, sn);
    split_heads(XQ, qsrc, c, cs, sn, 1, B, T, 0);
    split_heads(XK, ksrc, c, cs, sn, 1, B, T, 0);
    split_heads(XV, vp, c, cs, sn, 0, B, T, 0);
    lr_gate(sig, lr, c, x, p, B, T);
    token_factors(tau, c, p);

    /* inner loop: (b,h) pairs in parallel, mini-batches in sequence */
    int slotsn = nslots(B, H);
    size_t ssz = slot_size(c);
    #pragma omp parallel for schedule(dynamic, 1) num_threads(nthreads(slotsn))
    for (int bh = 0; bh < B * H; bh++) {
        int b = bh / H, h = bh % H;
        real *scr = slots + (size_t)par_thread_id() * ssz;
        real *st = states + (size_t)bh * (N + 1) * P;
        ttt_fast_weights w0 = S0 ? fw_at(c, S0->W1, S0->b1, S0->W2, S0->b2, bh)
                                 : fw_at(c, p->W1, p->b1, p->W2, p->b2, h);
        fw_gather(c, st, &w0);
        const real *gamma = p->ttt_norm_w + (size_t)h * D, *beta = p->ttt_norm_b + (size_t)h * D;
        size_t base = (size_t)bh * T;
        for (int n = 0; n < N; n++) {
            int t0 = n * K, r = T - t0 < K ? T - t0 : K;
            real *S = st + (size_t)(n + 1) * P;
            memcpy(S, st + (size_t)n * P, sizeof(real) * P);
            real *o = tout + ((size_t)b * T + t0) * C + (size_t)h * D;
            const real *Q = XQ + (base + t0) * D, *Kr = XK + (base + t0) * D, *V = XV + (base + t0) * D;
            if (is_mlp(c))
                ttt_mlp_forward(o, C, S, Q, Kr, V, tau, lr + base + t0, gamma, beta, r, D, F, scr);
            else
                ttt_linear_forward(o, C, S, Q, Kr, V, tau, lr + base + t0, gamma, beta, r, D, scr);
        }
    }
    output_side(c, out, acts + L->pnout, acts + L->pmean, acts + L->prstd, acts + L->gout,
                acts + L->oin, tout, x, p, BT);
}

void ttt_layer_forward(const ttt_layer_config *c, real *out, real *acts, const real *x,
                       const ttt_layer_params *p, int B, int T)
{
    layout L;
    make_layout(&L, c, B, T, 1);
    forward_impl(c, out, acts, &L, x, p, B, T, NULL, NULL, NULL);
}

const real *ttt_layer_inter(const ttt_layer_config *c, const real *acts, const char *name, int B, int T)
{
    layout L;
    make_layout(&L, c, B, T, 1);
    struct { const char *n; size_t off; int ok; } tab[] = {
        { "q_proj_out", L.qp, 1 }, { "k_proj_out", L.kp, !c->share_qk }, { "v_proj_out", L.vp, 1 },
        { "conv_q_out", L.cq, c->share_qk }, { "conv_k_out", L.ck, c->share_qk },
        { "XQ_rope", L.XQ, 1 }, { "XK_rope", L.XK, 1 }, { "XV", L.XV, 1 },
        { "ttt_lr_eta", L.lr, 1 }, { "token_eta", L.tau, 1 },
        { "fast_states", L.states, 1 },
        { "ttt_out_pre_post_norm", L.tout, 1 }, { "post_norm_out", L.pnout, 1 },
        { "g_proj_out", L.gout, c->use_gate }, { "o_proj_in", c->use_gate ? L.oin : L.pnout, 1 },
    };
    for (size_t i = 0; i < sizeof tab / sizeof tab[0]; i++)
        if (!strcmp(name, tab[i].n)) return tab[i].ok ? acts + tab[i].off : NULL;
    return NULL;
}

/* ---- backward ---- */

void ttt_layer_backward(const ttt_layer_config *c, real *dx, const ttt_layer_params *g,
                        const real *dout, real *acts, const real *x,
                        const ttt_layer_params *p, int B, int T)
{
    int C = c->C, H = c->H, D = c->D, K = c->K, F = c->F;
    int N = (T + K - 1) / K;
    size_t P = state_P(c), BT = (size_t)B * T, BTC = BT * C;
    layout L;
    make_layout(&L, c, B, T, 1);
    real *XQ = acts + L.XQ, *XK = acts + L.XK, *XV = acts + L.XV;
    real *sig = acts + L.sig, *lr = acts + L.lr, *tau = acts + L.tau, *states = acts + L.states;
    real *tout = acts + L.tout, *pnout = acts + L.pnout, *gout = acts + L.gout;
    real *dXQ = acts + L.dXQ, *dXK = acts + L.dXK, *dXV = acts + L.dXV;
    real *dlr = acts + L.dlr, *da = acts + L.da, *dY = acts + L.dY, *dZ = acts + L.dZ;
    real *dq = acts + L.dq, *dk = acts + L.dk, *accb = acts + L.acc, *slots = acts + L.slots;
    const real *o_in = c->use_gate ? acts + L.oin : pnout;

    /* out = O_in Wo^T */
    ttt_gemm(0, 0, (int)BT, C, C, 1, dout, C, p->o_proj, C, 0, dY, C);
    ttt_gemm(1, 0, C, C, (int)BT, 1, dout, C, o_in, C, 1, g->o_proj, C);
    int dx_set = 0;
    if (c->use_gate) {
        /* O_in = gelu(X Wg^T) (.) Y:  dgate (in dq) = dO_in Y gelu'(.);  dY = dO_in gelu(.) */
        #pragma omp parallel for simd schedule(static)
        for (size_t i = 0; i < BTC; i++) {
            real gg = gout[i];
            dq[i] = dY[i] * pnout[i] * gelu_tanh_grad(gg);
            dY[i] *= gelu_tanh(gg);
        }
        ttt_gemm(1, 0, C, C, (int)BT, 1, dq, C, x, C, 1, g->g_proj, C);
        ttt_gemm(0, 0, (int)BT, C, C, 1, dq, C, p->g_proj, C, 0, dx, C);
        dx_set = 1;
    }
    /* Y = LN_post(Zcat): rows in parallel, the weight gradients by column
     * blocks (each thread owns its columns and sums the rows in order) */
    #pragma omp parallel for schedule(static)
    for (size_t i = 0; i < BT; i++)
        ln_row_backward(dZ + i * C, NULL, NULL, dY + i * C, tout + i * C,
                        acts[L.pmean + i], acts[L.prstd + i], p->post_norm_w, C);
    #pragma omp parallel
    {
        int id, nt;
        par_team(&id, &nt);
        int c0 = C * id / nt, c1 = C * (id + 1) / nt;
        real *gw = g->post_norm_w, *gb = g->post_norm_b;
        for (size_t i = 0; i < BT; i++) {
            const real *dy = dY + i * C, *xr = tout + i * C;
            real mu = acts[L.pmean + i], rs = acts[L.prstd + i];
            for (int j = c0; j < c1; j++) {
                gw[j] += dy[j] * ((xr[j] - mu) * rs);
                gb[j] += dy[j];
            }
        }
    }

    /* inner loop, mini-batches in reverse; the state area of the last
     * boundary becomes the running dS of each (b,h) */
    int slotsn = nslots(B, H);
    size_t ssz = slot_size(c);
    #pragma omp parallel for schedule(dynamic, 1) num_threads(nthreads(slotsn))
    for (int bh = 0; bh < B * H; bh++) {
        int b = bh / H, h = bh % H;
        real *scr = slots + (size_t)par_thread_id() * ssz;
        real *st = states + (size_t)bh * (N + 1) * P;
        real *dS = st + (size_t)N * P;
        real *dgamma = accb + (size_t)bh * (2 * D + K), *dbeta = dgamma + D, *dtau = dbeta + D;
        memset(dS, 0, sizeof(real) * P);
        memset(dgamma, 0, sizeof(real) * (2 * D + K));
        const real *gamma = p->ttt_norm_w + (size_t)h * D, *beta = p->ttt_norm_b + (size_t)h * D;
        size_t base = (size_t)bh * T;
        for (int n = N - 1; n >= 0; n--) {
            int t0 = n * K, r = T - t0 < K ? T - t0 : K;
            const real *S = st + (size_t)n * P;
            const real *dO = dZ + ((size_t)b * T + t0) * C + (size_t)h * D;
            size_t o = (base + t0) * D;
            if (is_mlp(c))
                ttt_mlp_backward(dXQ + o, dXK + o, dXV + o, dtau, dlr + base + t0, dgamma, dbeta, dS,
                                 dO, C, S, XQ + o, XK + o, XV + o, tau, lr + base + t0, gamma, beta,
                                 r, D, F, scr);
            else
                ttt_linear_backward(dXQ + o, dXK + o, dXV + o, dtau, dlr + base + t0, dgamma, dbeta, dS,
                                    dO, C, S, XQ + o, XK + o, XV + o, tau, lr + base + t0, gamma, beta,
                                    r, D, scr);
        }
    }
    /* W0 is shared by the batch: dW0 = sum_b dS_0; per-head gamma/beta; token factors */
    for (int bh = 0; bh < B * H; bh++) {
        int h = bh % H;
        ttt_fast_weights gw = fw_at(c, g->W1, g->b1, g->W2, g->b2, h);
        fw_scatter(c, &gw, states + ((size_t)bh * (N + 1) + N) * P, 1);
        const real *a = accb + (size_t)bh * (2 * D + K);
        for (int i = 0; i < D; i++) {
            g->ttt_norm_w[(size_t)h * D + i] += a[i];
            g->ttt_norm_b[(size_t)h * D + i] += a[D + i];
        }
        /* tau_i = max(1/(i+1) + off_i, 0): no gradient where clamped */
        for (int i = 0; i < K; i++)
            if ((real)(1.0 / (i + 1)) + p->token_idx[i] > 0) g->token_idx[i] += a[2 * D + i];
    }
    /* lr = c sigmoid(a), a = x.w_h + c_h:  da = dlr lr (1 - sigmoid) (laid out [B,T,H]) */
    #pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++)
            for (int t = 0; t < T; t++) {
                size_t i = ((size_t)b * H + h) * T + t;
                da[((size_t)b * T + t) * H + h] = dlr[i] * lr[i] * (1 - sig[i]);
            }
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++)
            for (int t = 0; t < T; t++) g->lr_b[h] += da[((size_t)b * T + t) * H + h];
    ttt_gemm(1, 0, H, C, (int)BT, 1, da, H, x, C, 1, g->lr_w, C);
    ttt_gemm(0, 0, (int)BT, C, H, 1, da, H, p->lr_w, C, dx_set, dx, C);
    /* RoPE: rotate the gradient back (angle -p theta_i), merge heads into [B,T,C] */
    real *cs = acts + L.rcos, *sn = acts + L.rsin;
    int h2 = D / 2;
    #pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++)
            for (int t = 0; t < T; t++) {
                size_t hi = (((size_t)b * H + h) * T + t) * D, ti = ((size_t)b * T + t) * C + (size_t)h * D;
                int pp = t % K;
                for (int i = 0; i < h2; i++) {
                    real co = cs[pp * h2 + i], si = sn[pp * h2 + i];
                    dq[ti + 2 * i] = dXQ[hi + 2 * i] * co + dXQ[hi + 2 * i + 1] * si;
                    dq[ti + 2 * i + 1] = -dXQ[hi + 2 * i] * si + dXQ[hi + 2 * i + 1] * co;
                    dk[ti + 2 * i] = dXK[hi + 2 * i] * co + dXK[hi + 2 * i + 1] * si;
                    dk[ti + 2 * i + 1] = -dXK[hi + 2 * i] * si + dXK[hi + 2 * i + 1] * co;
                }
                memcpy(dY + ti, dXV + hi, sizeof(real) * D);    /* dY now holds dV [B,T,C] */
            }
    /* XV = X Wv^T */
    ttt_gemm(1, 0, C, C, (int)BT, 1, dY, C, x, C, 1, g->v_proj, C);
    ttt_gemm(0, 0, (int)BT, C, C, 1, dY, C, p->v_proj, C, 1, dx, C);
    if (c->share_qk) {
        /* XQ = conv_q(U), XK = conv_k(U), U = X Wq^T: dU = conv_q^T dq + conv_k^T dk (into dXQ) */
        real *dU = dXQ, *dU2 = dXK;
        const real *U = acts + L.qp;
        dwconv_backward(dU, g->conv_q_w, g->conv_q_b, dq, U, p->conv_q_w, B, T, C, c->conv_kernel);
        dwconv_backward(dU2, g->conv_k_w, g->conv_k_b, dk, U, p->conv_k_w, B, T, C, c->conv_kernel);
        #pragma omp parallel for schedule(static)
        for (size_t i = 0; i < BTC; i++) dU[i] += dU2[i];
        ttt_gemm(1, 0, C, C, (int)BT, 1, dU, C, x, C, 1, g->q_proj, C);
        ttt_gemm(0, 0, (int)BT, C, C, 1, dU, C, p->q_proj, C, 1, dx, C);
    } else {
        ttt_gemm(1, 0, C, C, (int)BT, 1, dq, C, x, C, 1, g->q_proj, C);
        ttt_gemm(0, 0, (int)BT, C, C, 1, dq, C, p->q_proj, C, 1, dx, C);
        ttt_gemm(1, 0, C, C, (int)BT, 1, dk, C, x, C, 1, g->k_proj, C);
        ttt_gemm(0, 0, (int)BT, C, C, 1, dk, C, p->k_proj, C, 1, dx, C);
    }
}

/* ---- parameter table ---- */

int ttt_layer_tensors(const ttt_layer_config *c, ttt_layer_params *p, ttt_layer_tensor *out)
{
    size_t C = c->C, H = c->H, D = c->D, F = c->F, k = c->conv_kernel;
    int n = 0;
    memset(p, 0, sizeof *p);
#define T_(nm, field, cnt) (out[n].name = nm, out[n].ptr = &p->field, out[n].numel = (cnt), n++)
    T_("q_proj.weight", q_proj, C * C);
    if (!c->share_qk) T_("k_proj.weight", k_proj, C * C);
    T_("v_proj.weight", v_proj, C * C);
    T_("o_proj.weight", o_proj, C * C);
    if (c->use_gate) T_("g_proj.weight", g_proj, C * C);
    if (c->share_qk) {
        T_("conv_q.weight", conv_q_w, C * k); T_("conv_q.bias", conv_q_b, C);
        T_("conv_k.weight", conv_k_w, C * k); T_("conv_k.bias", conv_k_b, C);
    }
    T_("learnable_ttt_lr_weight", lr_w, H * C);
    T_("learnable_ttt_lr_bias", lr_b, H);
    T_("learnable_token_idx", token_idx, (size_t)c->K);
    T_("ttt_norm_weight", ttt_norm_w, H * D);
    T_("ttt_norm_bias", ttt_norm_b, H * D);
    T_("W1", W1, H * D * F);
    T_("b1", b1, H * F);
    if (is_mlp(c)) { T_("W2", W2, H * F * D); T_("b2", b2, H * D); }
    T_("post_norm.weight", post_norm_w, C);
    T_("post_norm.bias", post_norm_b, C);
#undef T_
    return n;
}

/* ---- decoding ---- */

typedef struct {
    size_t S[4], A[4], convq, convk, q, k, v, cq, ck, XQ, XK, tout, pn, gout, oin, sig, lr, slots, total;
} dlayout;

static void make_dlayout(dlayout *L, const ttt_layer_config *c, int B)
{
    size_t BH = (size_t)B * c->H, D = c->D, F = c->F, BC = (size_t)B * c->C, o = 0;
    size_t piece[4] = { BH * D * F, BH * F, is_mlp(c) ? BH * F * D : 0, is_mlp(c) ? BH * D : 0 };
    memset(L, 0, sizeof *L);
    for (int i = 0; i < 4; i++) { L->S[i] = o; o += piece[i]; }
    for (int i = 0; i < 4; i++) { L->A[i] = o; o += piece[i]; }
#define TAKE(f, n) (L->f = o, o += (n))
    TAKE(convq, c->share_qk ? BC * c->conv_kernel : 0);
    TAKE(convk, c->share_qk ? BC * c->conv_kernel : 0);
    TAKE(q, BC); TAKE(k, BC); TAKE(v, BC); TAKE(cq, BC); TAKE(ck, BC); TAKE(XQ, BC); TAKE(XK, BC);
    TAKE(tout, BC); TAKE(pn, BC); TAKE(gout, BC); TAKE(oin, BC);
    TAKE(sig, BH); TAKE(lr, BH);
    TAKE(slots, (size_t)nslots(B, c->H) * slot_size(c));
#undef TAKE
    L->total = o;
}

size_t ttt_layer_state_size(const ttt_layer_config *c, int B)
{
    dlayout L;
    make_dlayout(&L, c, B);
    return L.total;
}

static ttt_fast_weights dstate_fw(const ttt_layer_config *c, real *state, const size_t off[4], size_t bh)
{
    return fw_at(c, state + off[0], state + off[1], state + off[2], state + off[3], bh);
}

void ttt_layer_state_init(const ttt_layer_config *c, real *state, const ttt_layer_params *p, int B)
{
    dlayout L;
    make_dlayout(&L, c, B);
    memset(state, 0, sizeof(real) * L.total);
    size_t P = state_P(c);
    real blk[P];
    for (int bh = 0; bh < B * c->H; bh++) {
        ttt_fast_weights w0 = fw_at(c, p->W1, p->b1, p->W2, p->b2, bh % c->H);
        fw_gather(c, blk, &w0);
        ttt_fast_weights s = dstate_fw(c, state, L.S, bh);
        fw_scatter(c, &s, blk, 0);
    }
}

void ttt_layer_step(const ttt_layer_config *c, real *out, real *state, const real *x,
                    const ttt_layer_params *p, int B, long pos)
{
    int C = c->C, H = c->H, D = c->D, K = c->K, F = c->F;
    dlayout L;
    make_dlayout(&L, c, B);
    real *q = state + L.q, *k = state + L.k, *v = state + L.v, *XQ = state + L.XQ, *XK = state + L.XK;
    real *lr = state + L.lr, *tout = state + L.tout, *slots = state + L.slots;
    int i = (int)(pos % K);
    ttt_gemm(0, 1, B, C, C, 1, x, C, p->q_proj, C, 0, q, C);
    if (!c->share_qk) ttt_gemm(0, 1, B, C, C, 1, x, C, p->k_proj, C, 0, k, C);
    ttt_gemm(0, 1, B, C, C, 1, x, C, p->v_proj, C, 0, v, C);
    const real *qs = q, *ks = k;
    if (c->share_qk) {
        conv_with_state(state + L.cq, q, p->conv_q_w, p->conv_q_b, state + L.convq, B, 1, C, c->conv_kernel);
        conv_with_state(state + L.ck, q, p->conv_k_w, p->conv_k_b, state + L.convk, B, 1, C, c->conv_kernel);
        qs = state + L.cq;
        ks = state + L.ck;
    }
    real cs[K * D / 2], sn[K * D / 2];
    rope_tables(c, cs, sn);
    split_heads(XQ, qs, c, cs, sn, 1, B, 1, pos);     /* [B,H,1,D] = [B,C] */
    split_heads(XK, ks, c, cs, sn, 1, B, 1, pos);
    lr_gate(state + L.sig, lr, c, x, p, B, 1);
    real tau[K];
    token_factors(tau, c, p);

    int slotsn = nslots(B, H);
    size_t ssz = slot_size(c), P[4] = { (size_t)D * F, F, is_mlp(c) ? (size_t)F * D : 0, is_mlp(c) ? D : 0 };
    #pragma omp parallel for schedule(static) num_threads(nthreads(slotsn))
    for (int bh = 0; bh < B * H; bh++) {
        int h = bh % H;
        real *scr = slots + (size_t)par_thread_id() * ssz;
        ttt_fast_weights S = dstate_fw(c, state, L.S, bh), A = dstate_fw(c, state, L.A, bh);
        const real *gamma = p->ttt_norm_w + (size_t)h * D, *beta = p->ttt_norm_b + (size_t)h * D;
        size_t o = (size_t)bh * D;
        /* A += lr g(S_n);  z = f(q; S_n - tau_i A) */
        if (is_mlp(c)) {
            ttt_mlp_grad_acc(&A, &S, XK + o, v + o, lr[bh], gamma, beta, D, F, scr);
            ttt_mlp_apply(tout + o, &S, &A, tau[i], XQ + o, gamma, beta, D, F, scr);
        } else {
            ttt_linear_grad_acc(&A, &S, XK + o, v + o, lr[bh], gamma, beta, D, scr);
            ttt_linear_apply(tout + o, &S, &A, tau[i], XQ + o, gamma, beta, D, scr);
        }
        if (i == K - 1) {   /* end of the mini-batch: S_n <- S_n - tau A, A <- 0 */
            real *sp[4] = { S.W1, S.b1, S.W2, S.b2 }, *ap[4] = { A.W1, A.b1, A.W2, A.b2 };
            for (int j = 0; j < 4; j++)
                for (size_t e = 0; e < P[j]; e++) { sp[j][e] -= tau[i] * ap[j][e]; ap[j][e] = 0; }
        }
    }
    output_side(c, out, state + L.pn, NULL, NULL, state + L.gout, state + L.oin, tout, x, p, B);
}

int ttt_layer_prefill(const ttt_layer_config *c, real *out, real *state, const real *x,
                      const ttt_layer_params *p, int B, int T, long pos)
{
    int H = c->H, D = c->D, K = c->K, F = c->F;
    if (T <= 0) return 0;
    if (pos % K) {
        if (T == 1) { ttt_layer_step(c, out, state, x, p, B, pos); return 0; }
        return ttt_seterr("prefill of %d tokens at position %ld: multi-token chunks must start at a multiple of %d", T, pos, K);
    }
    dlayout DL;
    make_dlayout(&DL, c, B);
    layout L;
    make_layout(&L, c, B, T, 0);
    real *acts = malloc(sizeof(real) * L.total);
    if (!acts) return ttt_seterr("prefill: out of memory (%zu activations)", L.total);
    ttt_fast_weights S0 = { state + DL.S[0], state + DL.S[1], state + DL.S[2], state + DL.S[3] };
    forward_impl(c, out, acts, &L, x, p, B, T, &S0, c->share_qk ? state + DL.convq : NULL,
                 c->share_qk ? state + DL.convk : NULL);
    /* S <- state at the start of the open mini-batch; A <- sum of lr_j g_j over its tokens */
    int N = (T + K - 1) / K, nfull = T / K, r = T % K;
    size_t P = state_P(c);
    for (int bh = 0; bh < B * H; bh++) {
        int h = bh % H;
        ttt_fast_weights S = dstate_fw(c, state, DL.S, bh), A = dstate_fw(c, state, DL.A, bh);
        fw_scatter(c, &S, acts + L.states + ((size_t)bh * (N + 1) + nfull) * P, 0);
        memset(A.W1, 0, sizeof(real) * D * F);
        memset(A.b1, 0, sizeof(real) * F);
        if (is_mlp(c)) { memset(A.W2, 0, sizeof(real) * F * D); memset(A.b2, 0, sizeof(real) * D); }
        const real *gamma = p->ttt_norm_w + (size_t)h * D, *beta = p->ttt_norm_b + (size_t)h * D;
        real *scr = acts + L.slots;
        for (int j = 0; j < r; j++) {
            size_t t = (size_t)nfull * K + j, o = ((size_t)bh * T + t) * D;
            real lr = acts[L.lr + (size_t)bh * T + t];
            if (is_mlp(c)) ttt_mlp_grad_acc(&A, &S, acts + L.XK + o, acts + L.XV + o, lr, gamma, beta, D, F, scr);
            else ttt_linear_grad_acc(&A, &S, acts + L.XK + o, acts + L.XV + o, lr, gamma, beta, D, scr);
        }
    }
    free(acts);
    return 0;
}

real *ttt_layer_state_tensor(const ttt_layer_config *c, real *state, const char *name, int B,
                             int *ndim, int shape[4])
{
    dlayout L;
    make_dlayout(&L, c, B);
    static const char *fw[4] = { "W1", "b1", "W2", "b2" };
    int D = c->D, F = c->F;
    int dims[4][2] = { { D, F }, { 1, F }, { F, D }, { 1, D } };
    for (int j = 0; j < (is_mlp(c) ? 4 : 2); j++)
        for (int g = 0; g < 2; g++) {
            char nm[32];
            snprintf(nm, sizeof nm, "%s_%s", fw[j], g ? "grad" : "states");
            if (strcmp(name, nm)) continue;
            *ndim = 4;
            shape[0] = B; shape[1] = c->H; shape[2] = dims[j][0]; shape[3] = dims[j][1];
            return state + (g ? L.A[j] : L.S[j]);
        }
    if (c->share_qk && (!strcmp(name, "conv_ttt_conv_q") || !strcmp(name, "conv_ttt_conv_k"))) {
        *ndim = 3;
        shape[0] = B; shape[1] = c->C; shape[2] = c->conv_kernel; shape[3] = 0;
        return state + (name[14] == 'q' ? L.convq : L.convk);
    }
    return NULL;
}
