/* decode_gpu.cu - incremental decoding of the model on the GPU
 * (lib/ttt_cuda_decode.h), the same math as lib/model_decode.c and
 * ttt_layer_step/ttt_layer_prefill (spec 7.1):
 *   embedding; per block [pre-conv RMSNorm + causal conv from its buffer],
 *   RMSNorm + TTT layer (projections with cuBLAS, share_qk convs from their
 *   buffers, RoPE at the absolute position mod K, lr gate, inner loop,
 *   post-norm, gelu gate, o_proj), RMSNorm + SwiGLU; final RMSNorm and the
 *   tied LM head on the last token of each sequence.
 * The inner loop of a chunk at an aligned position with B = 1 is the dual
 * form of the training kernels (ttt_inner_linear.cu / ttt_inner_mlp.cu)
 * starting from S_n, then A over the remainder; otherwise k_inner_primal
 * runs the tokens one after another (one block per (b,h)).
 * The baselines' sequence blocks decode through ttt_cuda_attn_decode (a
 * device KV cache per layer, [cap][B][C], allocated for the configuration's
 * max_position_embeddings and grown by doubling past it up to
 * TTT_ATTN_MAX_CONTEXT, as the CPU decoder does) and ttt_cuda_mamba_decode
 * (conv buffer + SSM state per layer, the CPU decoder's layout).
 * All work runs on the ttt_cuda handle's stream; copies to the host wait
 * for it. Parameters are a private float32 copy of the model's arena. */
#include <cuda_runtime.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef TTT_HAVE_CUDA
#define TTT_HAVE_CUDA 1   /* nvcc does not get the C flags */
#endif
extern "C" {
#include "err.h"
#include "model.h"
#include "layers/attn.h"    /* attn_config */
#include "layers/mamba.h"   /* mamba_config, mamba_config_init, mamba_state_size */
}
#include "ttt_cuda.h"
#include "ttt_cuda_decode.h"
#include "ttt_cuda_model.h"   /* ttt_gpu_model_check */
#include "ttt_cuda_internal.cuh"
#include "gpu_blocks.cuh"

#define CK(call) do { cudaError_t e_ = (call); if (e_ != cudaSuccess) \
    return ttt_seterr("cuda decode: %s: %s (%s:%d)", #call, cudaGetErrorString(e_), __FILE__, __LINE__); } while (0)
#define CKL() CK(cudaGetLastError())

#define KMB TTT_CUDA_K
#define INNER_NT 256
#define POST_NORM_EPS 1e-6f
#define INNER_LN_EPS 1e-6f

namespace {

typedef ttt_gpu_block dblock;   /* gpu_blocks.cuh */

struct dstate {            /* device state of one layer */
    float *S[4], *A[4];    /* W1 b1 W2 b2: [B,H,D,F] [B,H,F] [B,H,F,D] [B,H,D] */
    float *convq, *convk, *preconv;   /* [B,C,k] */
    float *mamba;          /* Mamba: conv buffer [B,E,k] then SSM state [B,E,S] */
    float *kc, *vc;        /* attention: KV cache [kv_cap][B][C] each (own allocations) */
};

/* kv: 1 or 2 for a layer's k_cache / v_cache, whose pointer and size (the
 * first pos rows) are read from the layer state when asked for. */
struct dtensor { char name[48]; float *p; size_t n; int layer, kv; };

}  /* namespace */

struct ttt_gpu_decode {
    ttt_config cfg;
    int dev, B, H, D, F, mlp, k;
    int blk;                 /* seq_modeling_block */
    attn_config ac;
    mamba_config mc;
    long pos;
    long kv_cap;             /* rows of every layer's KV cache (attention) */
    int broken;
    ttt_cuda *cu;
    cudaStream_t s;
    float *P;                /* parameter arena copy */
    float *embed, *fnorm;
    dblock *bp;              /* [L] */
    float *st;               /* state arena */
    dstate *ls;              /* [L] */
    dtensor *tens;
    int ntens, nkv;          /* nkv: the KV entries at the end of tens */
    float *rope;             /* [K][D/2][2] cos, sin */
    /* chunk work arena, for up to cap tokens per sequence */
    int cap;
    float *work;
    float *h, *x, *y, *U, *XQ, *XK, *XV, *lr, *Z, *Yn, *gpre, *O, *gate, *up, *xl, *logits, *states;
    float *bscr;             /* the baselines' decode scratch */
    int32_t *ids;
};

/* ---------------------------------------------------------------- kernels */
namespace {

unsigned nblk(size_t n, int t = 256)
{
    size_t b = (n + t - 1) / t;
    return (unsigned)(b > 65536 ? 65536 : (b ? b : 1));
}

__device__ __forceinline__ float warp_sum(float v)
{
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

__device__ __forceinline__ float gelu_tanh(float x)
{
    const float k0 = 0.7978845608028654f, k1 = 0.044715f;
    return 0.5f * x * (1.f + tanhf(k0 * (x + k1 * x * x * x)));
}

/* The inner loop's truncated-constant gelu' (spec 3; lib/layers/gelu.h). */
__device__ __forceinline__ float gelu_trunc_grad(float x)
{
    const float c0 = 0.79788456f, c1 = 0.044715f, c2 = 0.1070322243f;
    float t = tanhf(c0 * x * (1.f + c1 * x * x));
    return 0.5f * x * ((1.f - t * t) * (c0 + c2 * x * x)) + 0.5f * (1.f + t);
}

__global__ void k_embed(float *out, const int32_t *ids, const float *E, int C, size_t n)
{
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x, st = (size_t)gridDim.x * blockDim.x;
    for (; i < n; i += st) out[i] = E[(size_t)ids[i / C] * C + i % C];
}

/* RMSNorm, one warp per row: out = w * x / sqrt(mean(x^2) + eps) */
__global__ void k_rms(float *out, const float *x, const float *w, int rows, int C, float eps)
{
    int row = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32, lane = threadIdx.x & 31;
    if (row >= rows) return;
    const float *xr = x + (size_t)row * C;
    float ss = 0.f;
    for (int c = lane; c < C; c += 32) ss += xr[c] * xr[c];
    float r = rsqrtf(warp_sum(ss) / C + eps);
    for (int c = lane; c < C; c += 32) out[(size_t)row * C + c] = w[c] * (xr[c] * r);
}

/* LayerNorm over C (post-norm), one warp per row */
__global__ void k_ln(float *y, const float *x, const float *w, const float *b, int rows, int C, float eps)
{
    int row = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32, lane = threadIdx.x & 31;
    if (row >= rows) return;
    const float *xr = x + (size_t)row * C;
    float s = 0.f;
    for (int c = lane; c < C; c += 32) s += xr[c];
    float mu = warp_sum(s) / C, s2 = 0.f;
    for (int c = lane; c < C; c += 32) { float d = xr[c] - mu; s2 += d * d; }
    float rs = rsqrtf(warp_sum(s2) / C + eps);
    for (int c = lane; c < C; c += 32) y[(size_t)row * C + c] = w[c] * (xr[c] - mu) * rs + b[c];
}

/* Causal depthwise conv of a chunk x [B,P,C] continuing the history buf
 * [B,C,k] (oldest first): y = bias + sum_j w[c,j] x[t-(k-1)+j]. */
__global__ void k_conv_chunk(float *y, const float *x, const float *buf, const float *w, const float *bias,
                             int P, int C, int k, size_t n)
{
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x, st = (size_t)gridDim.x * blockDim.x;
    for (; i < n; i += st) {
        int c = (int)(i % C);
        size_t row = i / C;
        int b = (int)(row / P), t = (int)(row % P);
        float acc = bias ? bias[c] : 0.f;
        for (int j = 0; j < k; j++) {
            int src = t - (k - 1) + j;
            float v = src >= 0 ? x[((size_t)b * P + src) * C + c] : buf[((size_t)b * C + c) * k + k + src];
            acc = fmaf(w[c * k + j], v, acc);
        }
        y[i] = acc;
    }
}

/* buf <- the last k of (buf ++ chunk), per (b,c); after k_conv_chunk. */
__global__ void k_conv_shift(float *buf, const float *x, int B, int P, int C, int k)
{
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= B * C) return;
    int b = i / C, c = i % C;
    float *bb = buf + (size_t)i * k, tmp[16];
    for (int j = 0; j < k; j++) {
        int src = P - k + j;
        tmp[j] = src >= 0 ? x[((size_t)b * P + src) * C + c] : bb[k + src];
    }
    for (int j = 0; j < k; j++) bb[j] = tmp[j];
}

__global__ void k_add(float *y, const float *a, size_t n)
{
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x, st = (size_t)gridDim.x * blockDim.x;
    for (; i < n; i += st) y[i] += a[i];
}

/* lr = scale * sigmoid(a + bias[h]) in place on [rows, H] */
__global__ void k_lr_gate(float *a, const float *bias, int H, size_t n, float scale)
{
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x, st = (size_t)gridDim.x * blockDim.x;
    for (; i < n; i += st) a[i] = scale / (1.f + expf(-(a[i] + bias[i % H])));
}

/* RoPE of rows of a chunk starting at absolute position pos0: pairs (2i, 2i+1)
 * of each head rotated by the angle of (pos0 + t) mod K. */
__global__ void k_rope(float *x, const float *tab, int P, long pos0, int C, int D, size_t npairs)
{
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x, st = (size_t)gridDim.x * blockDim.x;
    const int hp = C / 2, dp = D / 2;
    for (; i < npairs; i += st) {
        size_t row = i / hp;
        int pc = (int)(i % hp), pi = pc % dp, p = (int)((pos0 + (long)(row % P)) % KMB);
        float c = tab[(p * dp + pi) * 2], s = tab[(p * dp + pi) * 2 + 1];
        float *v = x + row * C + 2 * pc;
        float a = v[0], b = v[1];
        v[0] = a * c - b * s;
        v[1] = a * s + b * c;
    }
}

__global__ void k_gate(float *o, const float *gpre, const float *y, size_t n)
{
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x, st = (size_t)gridDim.x * blockDim.x;
    for (; i < n; i += st) o[i] = gelu_tanh(gpre[i]) * y[i];
}

__global__ void k_swiglu(float *h, const float *gate, const float *up, size_t n)
{
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x, st = (size_t)gridDim.x * blockDim.x;
    for (; i < n; i += st) {
        float g = gate[i];
        h[i] = g / (1.f + expf(-g)) * up[i];
    }
}

/* rows b*P + P-1 of x [B*P, C] -> out [B, C] */
__global__ void k_last_rows(float *out, const float *x, int B, int P, int C)
{
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= B * C) return;
    int b = i / C, c = i % C;
    out[i] = x[((size_t)b * P + P - 1) * C + c];
}

/* S_n (B = 1) <- block nfull of the dual kernel's states [H, nmb+1, Pst]. */
__global__ void k_take_state(float *W1, float *b1, float *W2, float *b2, const float *states, int nmb, int nfull,
                             int D, int F, int mlp)
{
    int h = blockIdx.x;
    size_t Pst = (size_t)D * F + F + (mlp ? (size_t)F * D + D : 0);
    const float *src = states + ((size_t)h * (nmb + 1) + nfull) * Pst;
    for (int x = threadIdx.x; x < D * F; x += blockDim.x) W1[(size_t)h * D * F + x] = src[x];
    for (int x = threadIdx.x; x < F; x += blockDim.x) b1[(size_t)h * F + x] = src[D * F + x];
    if (!mlp) return;
    for (int x = threadIdx.x; x < F * D; x += blockDim.x) W2[(size_t)h * F * D + x] = src[D * F + F + x];
    for (int x = threadIdx.x; x < D; x += blockDim.x) b2[(size_t)h * D + x] = src[2 * D * F + F + x];
}

/* Warp 0 only: mean and sigma = sqrt(var + eps) of z[0..n). */
__device__ void row_stats_w0(const float *z, int n, float eps, float *mu, float *sig)
{
    int lane = threadIdx.x;
    float s = 0.f;
    for (int c = lane; c < n; c += 32) s += z[c];
    float m = warp_sum(s) / n, v = 0.f;
    for (int c = lane; c < n; c += 32) { float d = z[c] - m; v += d * d; }
    *mu = m;
    *sig = sqrtf(warp_sum(v) / n + eps);
}

/* Warp 0 only: G = gradient of 0.5||gamma*LN(z) + beta - t||^2 w.r.t. z (spec 3). */
__device__ void ln_l2grad_w0(float *G, const float *z, const float *t, const float *gamma, const float *beta, int n)
{
    int lane = threadIdx.x;
    float mu, sig;
    row_stats_w0(z, n, INNER_LN_EPS, &mu, &sig);
    float s1 = 0.f, s2 = 0.f;
    for (int c = lane; c < n; c += 32) {
        float zh = (z[c] - mu) / sig, gy = gamma[c] * (gamma[c] * zh + beta[c] - t[c]);
        G[c] = gy;
        s1 += gy;
        s2 += gy * zh;
    }
    float m1 = warp_sum(s1) / n, m2 = warp_sum(s2) / n;
    for (int c = lane; c < n; c += 32) {
        float zh = (z[c] - mu) / sig;
        G[c] = (G[c] - m1 - zh * m2) / sig;
    }
}

/* Warp 0 only: out = q + gamma*LN(z) + beta. */
__device__ void ln_out_w0(float *out, const float *z, const float *q, const float *gamma, const float *beta, int n)
{
    float mu, sig;
    row_stats_w0(z, n, INNER_LN_EPS, &mu, &sig);
    for (int c = threadIdx.x; c < n; c += 32) out[c] = gamma[c] * ((z[c] - mu) / sig) + beta[c] + q[c];
}

struct primal_args {
    int B, P, H, D, F, mlp, t0, t1;   /* tokens [t0, t1) of a chunk of P per sequence */
    long pos0;                        /* absolute position of the chunk's first token */
    const float *XQ, *XK, *XV, *lr;   /* [B*P, C], lr [B*P, H] */
    const float *token_idx, *gamma, *beta;
    float *S[4], *A[4];               /* decode state pieces [B,H,...] */
    float *Z;                         /* [B*P, C] or NULL: accumulate A only */
};

/* The fused single-token recurrence, token after token, one block per (b,h):
 *   g = grad of the inner loss at S_n;  A += lr g;
 *   z = f(q; S_n - tau_i A) (written to Z);  if i == K-1: S_n -= tau_i A, A = 0.
 * Shared: q k v t [D] z2 g2 [D] z1 x2 g1 [F]. */
__global__ void __launch_bounds__(INNER_NT) k_inner_primal(primal_args a)
{
    extern __shared__ float sm[];
    const int D = a.D, F = a.F, C = a.H * a.D, tid = threadIdx.x;
    const int bh = blockIdx.x, b = bh / a.H, h = bh % a.H;
    float *q = sm, *k = q + D, *v = k + D, *tg = v + D, *z2 = tg + D, *g2 = z2 + D;
    float *z1 = g2 + D, *x2 = z1 + F, *g1 = x2 + F;
    float *W1 = a.S[0] + (size_t)bh * D * F, *b1 = a.S[1] + (size_t)bh * F;
    float *AW1 = a.A[0] + (size_t)bh * D * F, *Ab1 = a.A[1] + (size_t)bh * F;
    float *W2 = a.mlp ? a.S[2] + (size_t)bh * F * D : NULL, *b2 = a.mlp ? a.S[3] + (size_t)bh * D : NULL;
    float *AW2 = a.mlp ? a.A[2] + (size_t)bh * F * D : NULL, *Ab2 = a.mlp ? a.A[3] + (size_t)bh * D : NULL;
    const float *gamma = a.gamma + (size_t)h * D, *beta = a.beta + (size_t)h * D;

    for (int t = a.t0; t < a.t1; t++) {
        const size_t row = (size_t)b * a.P + t, base = row * C + (size_t)h * D;
        const int i = (int)((a.pos0 + t) % KMB);
        const float tau = fmaxf(1.f / (i + 1) + a.token_idx[i], 0.f);
        const float lr = a.lr[row * a.H + h];
        for (int c = tid; c < D; c += INNER_NT) {
            q[c] = a.XQ[base + c];
            k[c] = a.XK[base + c];
            v[c] = a.XV[base + c];
            tg[c] = v[c] - k[c];
        }
        __syncthreads();
        /* ---- g at S_n; A += lr g ---- */
        if (!a.mlp) {
            for (int c = tid; c < D; c += INNER_NT) {
                float z = 0.f;
                for (int r = 0; r < D; r++) z = fmaf(k[r], W1[r * D + c], z);
                z2[c] = z + b1[c];
            }
            __syncthreads();
            if (tid < 32) ln_l2grad_w0(g2, z2, tg, gamma, beta, D);
            __syncthreads();
            for (int e = tid; e < D * D; e += INNER_NT) AW1[e] += lr * k[e / D] * g2[e % D];
            for (int c = tid; c < D; c += INNER_NT) Ab1[c] += lr * g2[c];
        } else {
            for (int f = tid; f < F; f += INNER_NT) {
                float z = 0.f;
                for (int r = 0; r < D; r++) z = fmaf(k[r], W1[(size_t)r * F + f], z);
                z1[f] = z + b1[f];
                x2[f] = gelu_tanh(z1[f]);
            }
            __syncthreads();
            for (int c = tid; c < D; c += INNER_NT) {
                float z = 0.f;
                for (int f = 0; f < F; f++) z = fmaf(x2[f], W2[(size_t)f * D + c], z);
                z2[c] = z + b2[c];
            }
            __syncthreads();
            if (tid < 32) ln_l2grad_w0(g2, z2, tg, gamma, beta, D);
            __syncthreads();
            for (int f = tid; f < F; f += INNER_NT) {
                float z = 0.f;
                for (int c = 0; c < D; c++) z = fmaf(g2[c], W2[(size_t)f * D + c], z);
                g1[f] = z * gelu_trunc_grad(z1[f]);
            }
            __syncthreads();
            for (int e = tid; e < D * F; e += INNER_NT) {
                AW1[e] += lr * k[e / F] * g1[e % F];
                AW2[e] += lr * x2[e / D] * g2[e % D];
            }
            for (int f = tid; f < F; f += INNER_NT) Ab1[f] += lr * g1[f];
            for (int c = tid; c < D; c += INNER_NT) Ab2[c] += lr * g2[c];
        }
        __syncthreads();
        /* ---- z = f(q; S_n - tau A) ---- */
        if (a.Z) {
            if (!a.mlp) {
                for (int c = tid; c < D; c += INNER_NT) {
                    float z = 0.f, za = 0.f;
                    for (int r = 0; r < D; r++) {
                        z = fmaf(q[r], W1[r * D + c], z);
                        za = fmaf(q[r], AW1[r * D + c], za);
                    }
                    z2[c] = z + b1[c] - tau * (za + Ab1[c]);
                }
            } else {
                for (int f = tid; f < F; f += INNER_NT) {
                    float z = 0.f, za = 0.f;
                    for (int r = 0; r < D; r++) {
                        z = fmaf(q[r], W1[(size_t)r * F + f], z);
                        za = fmaf(q[r], AW1[(size_t)r * F + f], za);
                    }
                    x2[f] = gelu_tanh(z + b1[f] - tau * (za + Ab1[f]));
                }
                __syncthreads();
                for (int c = tid; c < D; c += INNER_NT) {
                    float z = 0.f, za = 0.f;
                    for (int f = 0; f < F; f++) {
                        z = fmaf(x2[f], W2[(size_t)f * D + c], z);
                        za = fmaf(x2[f], AW2[(size_t)f * D + c], za);
                    }
                    z2[c] = z + b2[c] - tau * (za + Ab2[c]);
                }
            }
            __syncthreads();
            if (tid < 32) ln_out_w0(a.Z + base, z2, q, gamma, beta, D);
        }
        /* ---- commit at the end of the mini-batch ---- */
        if (i == KMB - 1) {
            for (int e = tid; e < D * F; e += INNER_NT) { W1[e] -= tau * AW1[e]; AW1[e] = 0.f; }
            for (int f = tid; f < F; f += INNER_NT) { b1[f] -= tau * Ab1[f]; Ab1[f] = 0.f; }
            if (a.mlp) {
                for (int e = tid; e < F * D; e += INNER_NT) { W2[e] -= tau * AW2[e]; AW2[e] = 0.f; }
                for (int c = tid; c < D; c += INNER_NT) { b2[c] -= tau * Ab2[c]; Ab2[c] = 0.f; }
            }
        }
        __syncthreads();
    }
}

}  /* namespace */

/* ---------------------------------------------------------------- setup */


static int dalloc(float **p, size_t n, const char *what)
{
    cudaError_t e = cudaMalloc((void **)p, (n ? n : 1) * sizeof(float));
    if (e != cudaSuccess) {
        *p = NULL;
        cudaGetLastError();
        return ttt_seterr("cuda decode: cannot allocate %zu MiB for the %s: %s", (n * 4) >> 20, what,
                          cudaGetErrorString(e));
    }
    return 0;
}

extern "C" void ttt_gpu_decode_free(ttt_gpu_decode *d)
{
    if (!d) return;
    if (d->cu) ttt_cuda_sync(d->cu);
    cudaFree(d->P);
    cudaFree(d->st);
    cudaFree(d->rope);
    cudaFree(d->work);
    cudaFree(d->ids);
    if (d->ls)
        for (int l = 0; l < d->cfg.num_hidden_layers; l++) { cudaFree(d->ls[l].kc); cudaFree(d->ls[l].vc); }
    free(d->bp);
    free(d->ls);
    free(d->tens);
    ttt_cuda_close(d->cu);
    free(d);
}

static void add_tensor(ttt_gpu_decode *d, int l, const char *what, float *p, size_t n)
{
    dtensor *t = &d->tens[d->ntens++];
    snprintf(t->name, sizeof t->name, "layer%d.%s", l, what);
    t->p = p;
    t->n = n;
    t->layer = l;
    t->kv = 0;
}

/* Room in every layer's KV cache for `need` positions: allocated for
 * `need` the first time (max_position_embeddings, at creation), then grown
 * by doubling (at least to need) with the rows so far copied; on failure
 * the old caches stay as they were. */
static int ensure_kv(ttt_gpu_decode *d, long need)
{
    if (need <= d->kv_cap) return 0;
    if (need > TTT_ATTN_MAX_CONTEXT)
        return ttt_seterr("decode: %ld positions exceed the attention KV cache maximum of %d", need,
                          TTT_ATTN_MAX_CONTEXT);
    long cap = d->kv_cap ? 2 * d->kv_cap : need;   /* the first: exactly what the creation asks for */
    if (cap < need) cap = need;
    if (cap > TTT_ATTN_MAX_CONTEXT) cap = TTT_ATTN_MAX_CONTEXT;
    const size_t row = (size_t)d->B * d->cfg.hidden_size;
    if (ttt_cuda_sync(d->cu)) return ttt_preferr("cuda decode");
    CK(cudaSetDevice(d->dev));   /* the caches live on the decoder's device */
    for (int l = 0; l < d->cfg.num_hidden_layers; l++) {
        dstate *s = &d->ls[l];
        float *kc = NULL, *vc = NULL;
        cudaError_t e = cudaMalloc((void **)&kc, (size_t)cap * row * sizeof(float));
        if (e == cudaSuccess) e = cudaMalloc((void **)&vc, (size_t)cap * row * sizeof(float));
        if (e == cudaSuccess && d->kv_cap) {   /* on the decoder's stream, finished before the old ones go */
            e = cudaMemcpyAsync(kc, s->kc, (size_t)d->kv_cap * row * sizeof(float), cudaMemcpyDeviceToDevice, d->s);
            if (e == cudaSuccess)
                e = cudaMemcpyAsync(vc, s->vc, (size_t)d->kv_cap * row * sizeof(float), cudaMemcpyDeviceToDevice, d->s);
            if (e == cudaSuccess) e = cudaStreamSynchronize(d->s);
        }
        if (e != cudaSuccess) {
            cudaGetLastError();
            cudaFree(kc);
            cudaFree(vc);
            /* layers before l already hold caches of cap rows whose first kv_cap are valid: fine */
            return ttt_seterr("cuda decode: cannot allocate a KV cache of %ld positions (%zu MiB per layer): %s", cap,
                              (size_t)cap * row * 8 >> 20, cudaGetErrorString(e));
        }
        cudaFree(s->kc);
        cudaFree(s->vc);
        s->kc = kc;
        s->vc = vc;
    }
    d->kv_cap = cap;
    return 0;
}

/* S = W0 per (b,h), A = 0, conv buffers 0 */
static int reset_state(ttt_gpu_decode *d)
{
    size_t DF = (size_t)d->D * d->F;
    if (d->blk != SEQ_TTT) return 0;   /* the baselines' states start at zero (the arena's memset) */
    for (int l = 0; l < d->cfg.num_hidden_layers; l++) {
        const ttt_cuda_params *p = &d->bp[l].ttt;
        const dstate *s = &d->ls[l];
        const float *w0[4] = { p->W1, p->b1, p->W2, p->b2 };
        size_t per[4] = { DF, (size_t)d->F, DF, (size_t)d->D };
        for (int j = 0; j < (d->mlp ? 4 : 2); j++)
            for (int b = 0; b < d->B; b++)
                CK(cudaMemcpyAsync(s->S[j] + (size_t)b * d->H * per[j], w0[j], d->H * per[j] * sizeof(float),
                                   cudaMemcpyDeviceToDevice, d->s));
    }
    return 0;
}

extern "C" ttt_gpu_decode *ttt_gpu_decode_new(const ttt_model *m, const float *params, int dev, int B)
{
    const ttt_config *c = ttt_model_config(m);
    if (ttt_gpu_model_check(c)) return NULL;
    if (B < 1) { ttt_seterr("cuda decode: batch size must be positive, got %d", B); return NULL; }
    ttt_gpu_decode *d = (ttt_gpu_decode *)calloc(1, sizeof *d);
    if (!d) { ttt_seterr("out of memory"); return NULL; }
    d->cfg = *c;
    d->dev = dev;
    d->B = B;
    d->H = c->num_attention_heads;
    d->D = c->hidden_size / d->H;
    d->blk = c->seq_modeling_block;
    d->mlp = d->blk == SEQ_TTT && c->ttt_layer_type == TTT_MLP;
    d->ac.C = c->hidden_size;
    d->ac.H = d->H;
    d->ac.D = c->hidden_size / d->H;
    d->ac.rope_theta = c->rope_theta;
    mamba_config_init(&d->mc, c->hidden_size, c->conv_kernel);
    d->F = d->mlp ? 4 * d->D : d->D;
    d->k = c->conv_kernel;
    int L = c->num_hidden_layers, C = c->hidden_size, H = d->H, D = d->D, F = d->F, k = d->k;
    d->cu = ttt_cuda_open(dev);
    if (!d->cu) { free(d); return NULL; }
    d->s = ttt_cuda_stream(d->cu);
    size_t np = ttt_model_num_params(m);
    d->bp = (dblock *)calloc(L, sizeof *d->bp);
    d->ls = (dstate *)calloc(L, sizeof *d->ls);
    d->tens = (dtensor *)calloc((size_t)L * 16, sizeof *d->tens);
    if (!d->bp || !d->ls || !d->tens) { ttt_seterr("out of memory"); goto fail; }
    if (dalloc(&d->P, np, "parameters")) goto fail;
    if (cudaMemcpy(d->P, params, np * sizeof(float), cudaMemcpyHostToDevice) != cudaSuccess) {
        ttt_seterr("cuda decode: cannot upload the parameters");
        goto fail;
    }
    d->embed = gpu_tensor_ptr(m, d->P, "model.embed_tokens.weight", 0);
    d->fnorm = gpu_tensor_ptr(m, d->P, "model.norm.weight", 0);
    for (int l = 0; l < L; l++) block_ptrs(m, d->P, l, &d->bp[l]);
    {
        /* state arena: per layer S, A, conv buffers */
        const int tt = d->blk == SEQ_TTT;
        size_t BH = (size_t)B * H, BCk = (size_t)B * C * k;
        size_t piece[4] = { tt ? BH * D * F : 0, tt ? BH * F : 0, d->mlp ? BH * F * D : 0, d->mlp ? BH * D : 0 };
        size_t msz = d->blk == SEQ_MAMBA ? mamba_state_size(&d->mc, B) : 0;
        size_t mconv = (size_t)B * d->mc.E * d->mc.k;
        size_t per = 2 * (piece[0] + piece[1] + piece[2] + piece[3]) + (tt && c->share_qk ? 2 * BCk : 0) +
                     (c->pre_conv ? BCk : 0) + msz;
        if (dalloc(&d->st, per * L, "decode state")) goto fail;
        if (cudaMemset(d->st, 0, per * L * sizeof(float)) != cudaSuccess) { ttt_seterr("cuda decode: memset"); goto fail; }
        static const char *nm[4] = { "W1", "b1", "W2", "b2" };
        float *o = d->st;
        for (int l = 0; l < L; l++) {
            dstate *s = &d->ls[l];
            char what[32];
            for (int j = 0; j < 4; j++) { s->S[j] = piece[j] ? o : NULL; o += piece[j]; }
            for (int j = 0; j < 4; j++) { s->A[j] = piece[j] ? o : NULL; o += piece[j]; }
            for (int g = 0; g < 2 && tt; g++)
                for (int j = 0; j < (d->mlp ? 4 : 2); j++) {
                    snprintf(what, sizeof what, "%s_%s", nm[j], g ? "grad" : "states");
                    add_tensor(d, l, what, g ? s->A[j] : s->S[j], piece[j]);
                }
            if (c->pre_conv) { s->preconv = o; o += BCk; add_tensor(d, l, "conv_pre_conv", s->preconv, BCk); }
            if (tt && c->share_qk) {
                s->convq = o; o += BCk;
                s->convk = o; o += BCk;
                add_tensor(d, l, "conv_ttt_conv_q", s->convq, BCk);
                add_tensor(d, l, "conv_ttt_conv_k", s->convk, BCk);
            }
            if (msz) {
                s->mamba = o; o += msz;
                add_tensor(d, l, "conv_state", s->mamba, mconv);
                add_tensor(d, l, "ssm_state", s->mamba + mconv, msz - mconv);
            }
        }
        /* the KV caches last: they exist (on the CPU too) only from position 1 on */
        for (int l = 0; l < L && d->blk == SEQ_ATTENTION; l++)
            for (int kv = 1; kv <= 2; kv++) {
                add_tensor(d, l, kv == 1 ? "k_cache" : "v_cache", NULL, 0);
                d->tens[d->ntens - 1].kv = kv;
                d->nkv++;
            }
    }
    if (d->blk == SEQ_ATTENTION) {
        long cap = c->max_position_embeddings;
        if (cap < 1) cap = 1;
        if (cap > TTT_ATTN_MAX_CONTEXT) cap = TTT_ATTN_MAX_CONTEXT;
        if (ensure_kv(d, cap)) goto fail;
    }
    {
        size_t n = (size_t)KMB * (D / 2) * 2;
        float *tab = (float *)malloc(n * sizeof *tab);
        if (!tab) { ttt_seterr("out of memory"); goto fail; }
        for (int p = 0; p < KMB; p++)
            for (int i = 0; i < D / 2; i++) {
                double a = p * pow(c->rope_theta, -2.0 * i / D);
                tab[(p * (D / 2) + i) * 2] = (float)cos(a);
                tab[(p * (D / 2) + i) * 2 + 1] = (float)sin(a);
            }
        int bad = dalloc(&d->rope, n, "RoPE table") ||
                  cudaMemcpy(d->rope, tab, n * sizeof *tab, cudaMemcpyHostToDevice) != cudaSuccess;
        free(tab);
        if (bad) { if (d->rope) ttt_seterr("cuda decode: cannot upload the RoPE table"); goto fail; }
    }
    /* the uploads above ran on the legacy stream: finish them before d->s reads */
    if (cudaDeviceSynchronize() != cudaSuccess) { ttt_seterr("cuda decode: upload failed"); goto fail; }
    if (reset_state(d) || ttt_cuda_sync(d->cu)) goto fail;
    return d;
fail:
    ttt_gpu_decode_free(d);
    return NULL;
}

/* Work arena for chunks of up to P tokens per sequence. */
static int ensure_cap(ttt_gpu_decode *d, int P)
{
    if (P <= d->cap) return 0;
    const ttt_config *c = &d->cfg;
    size_t N = (size_t)d->B * P, C = c->hidden_size, I = c->intermediate_size, o = 0;
    size_t Pst = (size_t)d->D * d->F + d->F + (d->mlp ? (size_t)d->F * d->D + d->D : 0);
    size_t states = d->B == 1 && d->blk == SEQ_TTT ? (size_t)d->H * (ttt_inner_nmb(P) + 1) * Pst : 0;
    size_t bs = d->blk == SEQ_ATTENTION ? ttt_cuda_attn_decode_scratch_size(&d->ac, d->B, P)
              : d->blk == SEQ_MAMBA ? ttt_cuda_mamba_decode_scratch_size(&d->mc, d->B, P) : 0;
    size_t need = 12 * N * C + N * d->H + 2 * N * I + (size_t)d->B * C + (size_t)d->B * c->vocab_size + states +
                  bs + 32 * 64;
    float *w;
    int32_t *ids;
    if (dalloc(&w, need, "decode work arena")) return -1;
    if (cudaMalloc((void **)&ids, N * sizeof *ids) != cudaSuccess) {
        cudaGetLastError();
        cudaFree(w);
        return ttt_seterr("cuda decode: cannot allocate the token buffer");
    }
    ttt_cuda_sync(d->cu);
    cudaFree(d->work);
    cudaFree(d->ids);
    d->work = w;
    d->ids = ids;
#define TAKE(f, n) (d->f = w + o, o += (((size_t)(n) + 63) & ~(size_t)63))
    TAKE(h, N * C); TAKE(x, N * C); TAKE(y, N * C); TAKE(U, N * C);
    TAKE(XQ, N * C); TAKE(XK, N * C); TAKE(XV, N * C); TAKE(Z, N * C); TAKE(Yn, N * C);
    TAKE(gpre, N * C); TAKE(O, N * C); TAKE(lr, N * d->H);
    TAKE(gate, N * I); TAKE(up, N * I);
    TAKE(xl, (size_t)d->B * C); TAKE(logits, (size_t)d->B * c->vocab_size);
    TAKE(states, states);
    TAKE(bscr, bs);
#undef TAKE
    d->cap = P;
    return 0;
}

/* out [N,n] (+)= x [N,k] W^T, W [n,k] (nn.Linear layout), fp32 */
static int linear(ttt_gpu_decode *d, float *out, const float *x, const float *W, int N, int n, int k, float beta)
{
    return ttt_cuda_gemm_f32in(d->cu, TTT_CUDA_F32, 0, 1, N, n, k, x, W, out, beta);
}

/* The TTT layer on x [B*P, C] (seq_norm output); h += its output. */
static int ttt_layer(ttt_gpu_decode *d, int l, int P)
{
    const ttt_config *c = &d->cfg;
    const ttt_cuda_params *p = &d->bp[l].ttt;
    const dstate *s = &d->ls[l];
    const int B = d->B, C = c->hidden_size, H = d->H, D = d->D, N = B * P;
    const size_t NC = (size_t)N * C;
    if (c->share_qk) {
        if (linear(d, d->U, d->x, p->q_proj, N, C, C, 0.f)) return -1;
        k_conv_chunk<<<nblk(NC), 256, 0, d->s>>>(d->XQ, d->U, s->convq, p->conv_q_w, p->conv_q_b, P, C, d->k, NC);
        k_conv_chunk<<<nblk(NC), 256, 0, d->s>>>(d->XK, d->U, s->convk, p->conv_k_w, p->conv_k_b, P, C, d->k, NC);
        k_conv_shift<<<nblk((size_t)B * C), 256, 0, d->s>>>(s->convq, d->U, B, P, C, d->k);
        k_conv_shift<<<nblk((size_t)B * C), 256, 0, d->s>>>(s->convk, d->U, B, P, C, d->k);
    } else {
        if (linear(d, d->XQ, d->x, p->q_proj, N, C, C, 0.f)) return -1;
        if (linear(d, d->XK, d->x, p->k_proj, N, C, C, 0.f)) return -1;
    }
    if (linear(d, d->XV, d->x, p->v_proj, N, C, C, 0.f)) return -1;
    if (linear(d, d->lr, d->x, p->lr_w, N, H, C, 0.f)) return -1;
    k_lr_gate<<<nblk((size_t)N * H), 256, 0, d->s>>>(d->lr, p->lr_b, H, (size_t)N * H, (float)(c->ttt_base_lr / D));
    k_rope<<<nblk(NC / 2), 256, 0, d->s>>>(d->XQ, d->rope, P, d->pos, C, D, NC / 2);
    k_rope<<<nblk(NC / 2), 256, 0, d->s>>>(d->XK, d->rope, P, d->pos, C, D, NC / 2);
    CKL();

    primal_args a;
    memset(&a, 0, sizeof a);
    a.B = B; a.P = P; a.H = H; a.D = D; a.F = d->F; a.mlp = d->mlp;
    a.pos0 = d->pos; a.t0 = 0; a.t1 = P;
    a.XQ = d->XQ; a.XK = d->XK; a.XV = d->XV; a.lr = d->lr;
    a.token_idx = p->token_idx; a.gamma = p->ttt_norm_w; a.beta = p->ttt_norm_b;
    for (int j = 0; j < 4; j++) { a.S[j] = s->S[j]; a.A[j] = s->A[j]; }
    a.Z = d->Z;
    size_t shm = (6 * (size_t)D + 3 * (size_t)d->F) * sizeof(float);
    const int nfull = P / KMB;
    if (B == 1 && d->pos % KMB == 0 && nfull > 0) {
        /* dual form over the chunk from S_n (B = 1: the state is per head, as W0) */
        ttt_inner_args ia;
        memset(&ia, 0, sizeof ia);
        ia.B = 1; ia.T = P; ia.H = H; ia.D = D;
        ia.XQ = d->XQ; ia.XK = d->XK; ia.XV = d->XV; ia.lr = d->lr;
        ia.token_idx = p->token_idx; ia.gamma = p->ttt_norm_w; ia.beta = p->ttt_norm_b;
        ia.W0 = s->S[0]; ia.b0 = s->S[1];
        ia.Z = d->Z; ia.states = d->states;
        if (d->mlp) {
            ia.F = d->F; ia.W20 = s->S[2]; ia.b20 = s->S[3];
            CK(ttt_inner_mlp_forward(&ia, d->s));
        } else {
            CK(ttt_inner_linear_forward(&ia, d->s));
        }
        /* S <- the state at the start of the open mini-batch; A <- sum over its tokens */
        k_take_state<<<H, 256, 0, d->s>>>(s->S[0], s->S[1], s->S[2], s->S[3], d->states, ttt_inner_nmb(P), nfull,
                                         D, d->F, d->mlp);
        for (int j = 0; j < (d->mlp ? 4 : 2); j++) {
            size_t n = j == 0 || j == 2 ? (size_t)H * D * d->F : (size_t)H * (j == 1 ? d->F : D);
            CK(cudaMemsetAsync(s->A[j], 0, n * sizeof(float), d->s));
        }
        a.t0 = nfull * KMB;
        a.Z = NULL;
    }
    if (a.t0 < a.t1) k_inner_primal<<<B * H, INNER_NT, shm, d->s>>>(a);
    CKL();

    k_ln<<<(N + 7) / 8, 256, 0, d->s>>>(d->Yn, d->Z, p->post_norm_w, p->post_norm_b, N, C, POST_NORM_EPS);
    const float *o_in = d->Yn;
    if (c->use_gate) {
        if (linear(d, d->gpre, d->x, p->g_proj, N, C, C, 0.f)) return -1;
        k_gate<<<nblk(NC), 256, 0, d->s>>>(d->O, d->gpre, d->Yn, NC);
        o_in = d->O;
    }
    return linear(d, d->h, o_in, p->o_proj, N, C, C, 1.f);   /* h += o_proj(...) */
}

/* The sequence block of layer l on x [B*P, C] (seq_norm output); h += its output. */
static int seq_block(ttt_gpu_decode *d, int l, int P)
{
    const size_t NC = (size_t)d->B * P * d->cfg.hidden_size;
    dstate *s = &d->ls[l];
    if (d->blk == SEQ_ATTENTION) {
        if (ttt_cuda_attn_decode(d->cu, TTT_CUDA_F32, &d->ac, d->y, s->kc, s->vc, d->x, &d->bp[l].attn, d->B, P,
                                 d->pos, d->bscr))
            return -1;
    } else if (d->blk == SEQ_MAMBA) {
        if (ttt_cuda_mamba_decode(d->cu, TTT_CUDA_F32, &d->mc, d->y, s->mamba, d->x, &d->bp[l].mamba, d->B, P, d->bscr))
            return -1;
    } else {
        return ttt_layer(d, l, P);
    }
    k_add<<<nblk(NC), 256, 0, d->s>>>(d->h, d->y, NC);
    CKL();
    return 0;
}

static int run_chunk(ttt_gpu_decode *d, const int32_t *ids, int P, float *logits)
{
    const ttt_config *c = &d->cfg;
    const int B = d->B, C = c->hidden_size, V = c->vocab_size, I = c->intermediate_size, N = B * P;
    const size_t NC = (size_t)N * C;
    const float eps = (float)c->rms_norm_eps;
    if (d->broken) return ttt_seterr("cuda decode: the state is unusable after an earlier failure; start a new one");
    for (int n = 0; n < N; n++)
        if (ids[n] < 0 || ids[n] >= V)
            return ttt_seterr("decode: token id %d is outside the vocabulary (size %d)", (int)ids[n], V);
    if (ensure_cap(d, P)) return -1;
    if (d->blk == SEQ_ATTENTION && ensure_kv(d, d->pos + P)) return -1;
    CK(cudaSetDevice(d->dev));
    CK(cudaMemcpyAsync(d->ids, ids, (size_t)N * sizeof *ids, cudaMemcpyHostToDevice, d->s));
    d->broken = 1;   /* until the whole chunk went through */
    k_embed<<<nblk(NC), 256, 0, d->s>>>(d->h, d->ids, d->embed, C, NC);
    for (int l = 0; l < c->num_hidden_layers; l++) {
        const dblock *b = &d->bp[l];
        if (c->pre_conv) {
            k_rms<<<(N + 7) / 8, 256, 0, d->s>>>(d->x, d->h, b->conv_norm, N, C, eps);
            k_conv_chunk<<<nblk(NC), 256, 0, d->s>>>(d->y, d->x, d->ls[l].preconv, b->conv_w, b->conv_b, P, C, d->k, NC);
            k_conv_shift<<<nblk((size_t)B * C), 256, 0, d->s>>>(d->ls[l].preconv, d->x, B, P, C, d->k);
            k_add<<<nblk(NC), 256, 0, d->s>>>(d->h, d->y, NC);
        }
        k_rms<<<(N + 7) / 8, 256, 0, d->s>>>(d->x, d->h, b->seq_norm, N, C, eps);
        CKL();
        if (seq_block(d, l, P)) return -1;
        k_rms<<<(N + 7) / 8, 256, 0, d->s>>>(d->x, d->h, b->ffn_norm, N, C, eps);
        if (linear(d, d->gate, d->x, b->gate, N, I, C, 0.f)) return -1;
        if (linear(d, d->up, d->x, b->up, N, I, C, 0.f)) return -1;
        k_swiglu<<<nblk((size_t)N * I), 256, 0, d->s>>>(d->gate, d->gate, d->up, (size_t)N * I);
        if (linear(d, d->h, d->gate, b->down, N, C, I, 1.f)) return -1;
        CKL();
    }
    if (logits) {
        k_last_rows<<<nblk((size_t)B * C), 256, 0, d->s>>>(d->y, d->h, B, P, C);
        k_rms<<<(B + 7) / 8, 256, 0, d->s>>>(d->xl, d->y, d->fnorm, B, C, eps);
        if (linear(d, d->logits, d->xl, d->embed, B, V, C, 0.f)) return -1;
        CK(cudaMemcpyAsync(logits, d->logits, (size_t)B * V * sizeof(float), cudaMemcpyDeviceToHost, d->s));
    }
    if (ttt_cuda_sync(d->cu)) return ttt_preferr("cuda decode");
    d->pos += P;
    d->broken = 0;
    return 0;
}

extern "C" int ttt_gpu_decode_prefill(ttt_gpu_decode *d, const int32_t *ids, int P, float *logits)
{
    if (P <= 0) return ttt_seterr("decode: prefill of %d tokens", P);
    if (P > 1 && d->blk == SEQ_TTT && d->pos % KMB != 0)
        return ttt_seterr("decode: a multi-token prefill must start at a multiple of %d, not at position %ld", KMB,
                          d->pos);
    return run_chunk(d, ids, P, logits);
}

extern "C" int ttt_gpu_decode_step(ttt_gpu_decode *d, const int32_t *ids, float *logits)
{
    return run_chunk(d, ids, 1, logits);
}

extern "C" long ttt_gpu_decode_position(const ttt_gpu_decode *d) { return d->pos; }

extern "C" int ttt_gpu_decode_set_position(ttt_gpu_decode *d, long pos)
{
    if (pos < 0) return ttt_seterr("decode: negative position %ld", pos);
    if (d->blk == SEQ_ATTENTION && ensure_kv(d, pos)) return -1;
    d->pos = pos;
    return 0;
}

/* The KV caches are listed from position 1 on, as the CPU decoder has them. */
extern "C" int ttt_gpu_decode_ntensors(const ttt_gpu_decode *d) { return d->pos > 0 ? d->ntens : d->ntens - d->nkv; }

extern "C" const char *ttt_gpu_decode_tensor(const ttt_gpu_decode *d, int i, float **dev, size_t *n)
{
    if (i < 0 || i >= ttt_gpu_decode_ntensors(d)) return NULL;
    const dtensor *t = &d->tens[i];
    if (t->kv) {   /* [pos][B][C]: the rows written so far */
        const dstate *s = &d->ls[t->layer];
        *dev = t->kv == 1 ? s->kc : s->vc;
        *n = (size_t)d->pos * d->B * d->cfg.hidden_size;
    } else {
        *dev = t->p;
        *n = t->n;
    }
    return t->name;
}

extern "C" int ttt_gpu_decode_copy(ttt_gpu_decode *d, float *dst, const float *src, size_t n, int to_device)
{
    if (ttt_cuda_sync(d->cu)) return -1;
    CK(cudaMemcpy(dst, src, n * sizeof(float), to_device ? cudaMemcpyHostToDevice : cudaMemcpyDeviceToHost));
    CK(cudaDeviceSynchronize());   /* a pageable upload may still be in flight */
    if (to_device) d->broken = 0;   /* a loaded state replaces whatever was there */
    return 0;
}
