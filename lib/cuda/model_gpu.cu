/* model_gpu.cu - the whole language model on the GPU (lib/ttt_cuda_model.h):
 * TTT-Linear, TTT-MLP, or the Transformer / Mamba baselines. Embedding, per
 * block [pre-conv] RMSNorm + causal depthwise conv, RMSNorm + the sequence
 * block (the TTT layer, ttt_layer_gpu.cu; attention, attn_gpu.cu; or the
 * Mamba block, mamba_gpu.cu), RMSNorm + SwiGLU,
 * final RMSNorm, tied LM head, softmax cross-entropy; forward, backward into
 * a gradient arena laid out like the CPU parameter arena, global gradient
 * norm and AdamW. Same math as lib/model.c and lib/layers/*.c; fp32
 * throughout (projections optionally with bf16 inputs).
 *
 * Memory: four arenas allocated at creation (parameters, gradients, AdamW
 * m+v, activations incl. backward scratch sized for maxB x maxT); the layer
 * handle adds its own backward scratch (grown once, at the first backward).
 * All work runs on the layer handle's non-blocking stream: copies are
 * cudaMemcpyAsync on that stream followed by a stream synchronisation.
 */
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef TTT_HAVE_CUDA
#define TTT_HAVE_CUDA 1   /* nvcc does not get the C flags; the header's real API */
#endif
extern "C" {   /* C headers: C linkage (ttt_cuda_model.h includes them too, guarded) */
#include "err.h"
#include "model.h"
#include "layers/adamw.h"
#include "layers/attn.h"    /* attn_config */
#include "layers/mamba.h"   /* mamba_config, mamba_config_init */
}
#include "ttt_cuda.h"
#include "ttt_cuda_model.h"
#include "ttt_cuda_internal.cuh"
#include "dwconv.cuh"
#include "gpu_blocks.cuh"
#include "prof.cuh"

#define CK(call) do { cudaError_t e_ = (call); if (e_ != cudaSuccess) \
    return ttt_seterr("cuda: %s: %s (%s:%d)", #call, cudaGetErrorString(e_), __FILE__, __LINE__); } while (0)
#define CKL() CK(cudaGetLastError())

/* Per block parameter (or gradient) pointers into an arena; NULL if absent. */
typedef ttt_gpu_block gpu_block;   /* gpu_blocks.cuh */

/* What one block's forward keeps ([N,C] unless noted). */
struct gpu_block_acts {
    float *h1, *cn, *crstd, *h2, *out, *sn, *srstd, *to, *fn, *frstd, *sw, *ttt;
    float *sn16;   /* bf16 mode: sn rounded (the sequence block's GEMMs read it), else NULL */
};

struct ttt_gpu_model {
    ttt_config cfg;
    ttt_layer_config lc;             /* SEQ_TTT */
    attn_config ac;                  /* SEQ_ATTENTION */
    mamba_config mc;                 /* SEQ_MAMBA */
    int prec, maxB, maxT;
    ttt_cuda *cu;
    cudaStream_t s;
    size_t np;
    float *P, *G, *M, *V;            /* arenas [np] */
    __nv_bfloat16 *P16;              /* bf16 mode: the parameters rounded, each tensor at a
                                        128-byte aligned offset, kept current (upload,
                                        AdamW): GEMMs read weights from it */
    ttt_cuda_shadow *sh;             /* [nsh] its ranges, host */
    size_t *d_sh;                    /* [nsh][3] fp32 offset, count, bf16 offset, device */
    int nsh;
    size_t p16_n;                    /* elements of P16 */
    __nv_bfloat16 *x16;              /* bf16 mode: [maxB*maxT, C] an activation rounded once
                                        for two GEMMs */
    float *embed, *dembed, *fnorm, *dfnorm;
    gpu_block *bp, *bg;              /* [L] */
    float *acts;                     /* activation arena */
    size_t acts_cap;                 /* floats */
    gpu_block_acts *ba;              /* [L] */
    float *emb, *final_out, *final_rstd, *logits, *lse, *losses;
    float *dh, *d1, *d2, *swscr;     /* backward scratch */
    int32_t *d_ids, *d_tg;           /* [maxB*maxT] */
    double *d_part;                  /* grad-norm partials [NORM_BLOCKS + 1] */
    float *h_losses;                 /* pinned host copy of losses */
    int32_t *h_tg;                   /* host copy of the targets of the last forward */
    int B, T, fwd_ok, has_targets, bwd_done;
    int nograd;                /* ttt_gpu_model_set_nograd */
    long count;
};

#define NORM_BLOCKS 1024

static unsigned nblk(size_t n, int t = 256)
{
    size_t b = (n + t - 1) / t;
    return (unsigned)(b > 65536 ? 65536 : (b ? b : 1));
}

/* ---------------------------------------------------------------- kernels */
/* Internal linkage: ttt_layer_gpu.cu has kernels of the same names. */
namespace {

__device__ __forceinline__ float warp_sum(float v)
{
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}
__device__ __forceinline__ double warp_sumd(double v)
{
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

/* Block-wide sum/max for blockDim.x a multiple of 32 (<= 1024); every
 * thread gets the result. */
template <typename T, T (*WR)(T)>
__device__ T block_reduce(T v, T *sh, T init, bool is_max)
{
    int lane = threadIdx.x & 31, w = threadIdx.x >> 5, nw = blockDim.x >> 5;
    v = WR(v);
    __syncthreads();   /* sh may hold a previous reduction's values */
    if (lane == 0) sh[w] = v;
    __syncthreads();
    v = lane < nw ? sh[lane] : init;
    v = WR(v);
    (void)is_max;
    return v;
}

__global__ void k_embed(float *out, const int32_t *ids, const float *E, int C, size_t n)
{
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x, st = (size_t)gridDim.x * blockDim.x;
    for (; i < n; i += st) {
        unsigned c;
        size_t r = idx_divmod(i, C, &c);
        out[i] = E[(size_t)ids[r] * C + c];
    }
}

/* Repeated tokens collide on a row of dE: atomics. */
__global__ void k_embed_bwd(float *dE, const float *dh, const int32_t *ids, int C, size_t n)
{
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x, st = (size_t)gridDim.x * blockDim.x;
    for (; i < n; i += st) {
        unsigned c;
        size_t r = idx_divmod(i, C, &c);
        atomicAdd(&dE[(size_t)ids[r] * C + c], dh[i]);
    }
}

/* One row's RMSNorm output, out = w * x * r (and out16 = it rounded, when
 * given), by the lanes of a warp, V floats a lane at a time. */
template <int V, typename TO>
__device__ __forceinline__ void rms_scale_row(TO *out, __nv_bfloat16 *out16, const float *x, const float *w, float r,
                                              int C, int lane)
{
    for (int c = V * lane; c < C; c += 32 * V) {
        float xv[V], wv[V], y[V];
        ldv<V>(xv, x + c);
        ldv<V>(wv, w + c);
#pragma unroll
        for (int k = 0; k < V; k++) y[k] = wv[k] * (xv[k] * r);
        stv<V>(out + c, y);
        if (out16) stv<V>(out16 + c, y);
    }
}

/* RMSNorm, one warp per row: out = w * x * r, r = 1/sqrt(mean(x^2) + eps),
 * of x = a, or of x = a + b stored to xs (b given: a residual add, xs may
 * be a); out in TO (bf16 where only GEMMs read it), also rounded to out16
 * when given; V floats a lane at a time (4 when C % 4 == 0) */
template <int V, typename TO>
__global__ void k_rms_fwd(TO *out, __nv_bfloat16 *out16, float *rstd, float *xs, const float *a, const float *b,
                          const float *w, int rows, int C, float eps)
{
    int row = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32, lane = threadIdx.x & 31;
    if (row >= rows) return;
    const size_t o = (size_t)row * C;
    float ss = 0.f;
    for (int c = V * lane; c < C; c += 32 * V) {
        float xv[V];
        ldv<V>(xv, a + o + c);
        if (b) {
            float bv[V];
            ldv<V>(bv, b + o + c);
#pragma unroll
            for (int k = 0; k < V; k++) xv[k] += bv[k];
            stv<V>(xs + o + c, xv);
        }
#pragma unroll
        for (int k = 0; k < V; k++) ss += xv[k] * xv[k];
    }
    float r = rsqrtf(warp_sum(ss) / C + eps);
    /* the lanes read back the sums they stored */
    rms_scale_row<V>(out + o, out16 ? out16 + o : NULL, (b ? xs : a) + o, w, r, C, lane);
    if (lane == 0) rstd[row] = r;
}

/* dx (=, or += with accum) = r (g w - x r mean(g w x r)), and dx rounded
 * to dx16 when given (the operand of the GEMMs that read it next); warps
 * walk rows (grid stride), V floats a lane at a time (4 when C % 4 == 0).
 * With dw (C floats of dynamic shared memory): also dw[c] += sum_rows g x r,
 * summed per block in shared memory as g and x go by (read once, not again
 * by a column kernel), one global atomic per column per block. */
template <int V>
__global__ void k_rms_bwd_x(float *dx, __nv_bfloat16 *dx16, float *dw, const float *g, const float *x,
                            const float *w, const float *rstd, int rows, int C, int accum)
{
    extern __shared__ float part[];
    const int lane = threadIdx.x & 31, nw = blockDim.x / 32;
    if (dw) {
        for (int c = threadIdx.x; c < C; c += blockDim.x) part[c] = 0.f;
        __syncthreads();
    }
    for (int row = blockIdx.x * nw + threadIdx.x / 32; row < rows; row += gridDim.x * nw) {
        const size_t o = (size_t)row * C;
        float r = rstd[row], dot = 0.f;
        for (int c = V * lane; c < C; c += 32 * V) {
            float gv[V], xv[V], wv[V];
            ldv<V>(gv, g + o + c); ldv<V>(xv, x + o + c); ldv<V>(wv, w + c);
#pragma unroll
            for (int k = 0; k < V; k++) {
                dot += gv[k] * wv[k] * xv[k] * r;
                if (dw) atomicAdd(&part[c + k], gv[k] * xv[k] * r);
            }
        }
        float m = warp_sum(dot) / C;
        for (int c = V * lane; c < C; c += 32 * V) {
            float gv[V], xv[V], wv[V], v[V], d[V];
            ldv<V>(gv, g + o + c); ldv<V>(xv, x + o + c); ldv<V>(wv, w + c);
            if (accum) ldv<V>(d, dx + o + c);
#pragma unroll
            for (int k = 0; k < V; k++) v[k] = r * (gv[k] * wv[k] - xv[k] * r * m) + (accum ? d[k] : 0.f);
            stv<V>(dx + o + c, v);
            if (dx16) stv<V>(dx16 + o + c, v);
        }
    }
    if (dw) {
        __syncthreads();
        for (int c = threadIdx.x; c < C; c += blockDim.x) atomicAdd(&dw[c], part[c]);
    }
}

#define COL_CHUNK 256
#define RMS_BWD_BLOCKS 1024   /* ~8 rows a warp at 65,536 rows; one atomic per column per block */
/* dw[c] += sum_rows g x r; one thread per column per chunk of rows. */
__global__ void k_rms_bwd_w(float *dw, const float *g, const float *x, const float *rstd, int rows, int C)
{
    int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= C) return;
    int r0 = blockIdx.y * COL_CHUNK, r1 = min(rows, r0 + COL_CHUNK);
    float a = 0.f;
    for (int r = r0; r < r1; r++) a += g[(size_t)r * C + c] * x[(size_t)r * C + c] * rstd[r];
    atomicAdd(&dw[c], a);
}

__device__ __forceinline__ float silu(float g) { return g / (1.f + expf(-g)); }

/* The gradients of h = silu(g) u for upstream d: dgate = d u s (1 + g (1 - s)), dup = d silu(g) */
__device__ __forceinline__ void swiglu_grad(float g, float u, float d, float *dg, float *du)
{
    float s = 1.f / (1.f + expf(-g));
    *dg = d * u * s * (1.f + g * (1.f - s));
    *du = d * g * s;
}

/* h [N,I] = silu(g) u from gu [N,2I] (one GEMM's output: gate | up per row) */
template <typename T>
__global__ void k_swiglu(T *h, const T *gu, int I, size_t n)
{
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x, st = (size_t)gridDim.x * blockDim.x;
    for (; i < n; i += st) {
        unsigned j;
        size_t r = idx_divmod(i, I, &j), o = r * 2 * I + j;
        store_op(&h[i], silu(load_op(&gu[o])) * load_op(&gu[o + I]));
    }
}

/* dgu [N,2I] from dh [N,I] */
template <typename T>
__global__ void k_swiglu_bwd(T *dgu, const T *dh, const T *gu, int I, size_t n)
{
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x, st = (size_t)gridDim.x * blockDim.x;
    for (; i < n; i += st) {
        unsigned j;
        size_t r = idx_divmod(i, I, &j), o = r * 2 * I + j;
        float dg, du;
        swiglu_grad(load_op(&gu[o]), load_op(&gu[o + I]), load_op(&dh[i]), &dg, &du);
        store_op(&dgu[o], dg);
        store_op(&dgu[o + I], du);
    }
}

/* The same two in bf16 with I % 8 == 0: eight elements a thread, 16-byte
 * accesses (two-byte ones left the kernel at a third of memory speed). */
__global__ void k_swiglu_x8(__nv_bfloat16 *h, const __nv_bfloat16 *gu, int I, size_t n8)
{
    const unsigned I8 = I / 8;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n8; i += (size_t)gridDim.x * blockDim.x) {
        unsigned j;
        size_t r = idx_divmod(i, I8, &j), o = r * 2 * I + 8 * (size_t)j;
        uint4 gv = *(const uint4 *)(gu + o), uv = *(const uint4 *)(gu + o + I), hv;
        const __nv_bfloat162 *g2 = (const __nv_bfloat162 *)&gv, *u2 = (const __nv_bfloat162 *)&uv;
        __nv_bfloat162 *h2 = (__nv_bfloat162 *)&hv;
#pragma unroll
        for (int q = 0; q < 4; q++) {
            float2 g = __bfloat1622float2(g2[q]), u = __bfloat1622float2(u2[q]);
            h2[q] = __floats2bfloat162_rn(silu(g.x) * u.x, silu(g.y) * u.y);
        }
        *(uint4 *)(h + 8 * i) = hv;
    }
}

__global__ void k_swiglu_bwd_x8(__nv_bfloat16 *dgu, const __nv_bfloat16 *dh, const __nv_bfloat16 *gu, int I, size_t n8)
{
    const unsigned I8 = I / 8;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n8; i += (size_t)gridDim.x * blockDim.x) {
        unsigned j;
        size_t r = idx_divmod(i, I8, &j), o = r * 2 * I + 8 * (size_t)j;
        uint4 gv = *(const uint4 *)(gu + o), uv = *(const uint4 *)(gu + o + I), dv = *(const uint4 *)(dh + 8 * i);
        uint4 dgv, duv;
        const __nv_bfloat162 *g2 = (const __nv_bfloat162 *)&gv, *u2 = (const __nv_bfloat162 *)&uv;
        const __nv_bfloat162 *d2 = (const __nv_bfloat162 *)&dv;
        __nv_bfloat162 *dg2 = (__nv_bfloat162 *)&dgv, *du2 = (__nv_bfloat162 *)&duv;
#pragma unroll
        for (int q = 0; q < 4; q++) {
            float2 g = __bfloat1622float2(g2[q]), u = __bfloat1622float2(u2[q]), d = __bfloat1622float2(d2[q]);
            float gx, ux, gy, uy;
            swiglu_grad(g.x, u.x, d.x, &gx, &ux);
            swiglu_grad(g.y, u.y, d.y, &gy, &uy);
            dg2[q] = __floats2bfloat162_rn(gx, gy);
            du2[q] = __floats2bfloat162_rn(ux, uy);
        }
        *(uint4 *)(dgu + o) = dgv;
        *(uint4 *)(dgu + o + I) = duv;
    }
}

/* The bf16 parameter copy: range blockIdx.y of ranges r[][3] = fp32 offset,
 * count, bf16 offset. */
__global__ void k_pack_bf16(__nv_bfloat16 *p16, const float *p, const size_t *r)
{
    const size_t *e = r + 3 * blockIdx.y;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < e[1]; i += (size_t)gridDim.x * blockDim.x)
        p16[e[2] + i] = __float2bfloat16(p[e[0] + i]);
}

/* (m, s) pairs of an online softmax sum: s = sum exp(x - m). */
__device__ __forceinline__ void lse_merge(float &m, float &s, float m2, float s2)
{
    float mx = fmaxf(m, m2);
    if (mx == -INFINITY) return;
    s = s * expf(m - mx) + s2 * expf(m2 - mx);
    m = mx;
}

/* One block per row, one pass over the logits (online max and sum): lse,
 * and the loss where the target is valid. Logits fp32, or bf16 (bf16 mode:
 * the head GEMM writes them so, half the bytes of the widest tensor). */
template <typename TL>
__global__ void k_xent_fwd(float *losses, float *lse, const TL *logits, const int32_t *tg, int V)
{
    __shared__ float shm[32], shs[32];
    const TL *l = logits + (size_t)blockIdx.x * V;
    float m = -INFINITY, s = 0.f;
    /* n values at once: one rescale per group, no branch per value (this
     * kernel was bound by instructions, not by its reads) */
    auto add = [&](const float *x, int n) {
        float mx = m;
        for (int k = 0; k < n; k++) mx = fmaxf(mx, x[k]);
        if (mx == -INFINITY) return;
        float acc = s * __expf(m - mx);
        for (int k = 0; k < n; k++) acc += __expf(x[k] - mx);
        s = acc;
        m = mx;
    };
    constexpr int VEC = 16 / sizeof(TL);   /* 16-byte loads where rows start 16-byte aligned */
    if (V % VEC == 0) {
        for (int v = threadIdx.x; v < V / VEC; v += blockDim.x) {
            const uint4 q = ((const uint4 *)l)[v];
            const TL *x = (const TL *)&q;
            float f[VEC];
#pragma unroll
            for (int k = 0; k < VEC; k++) f[k] = load_op(&x[k]);
            add(f, VEC);
        }
    } else {
        for (int v = threadIdx.x; v < V; v += blockDim.x) {
            const float f = load_op(&l[v]);
            add(&f, 1);
        }
    }
    for (int o = 16; o > 0; o >>= 1) lse_merge(m, s, __shfl_xor_sync(0xffffffffu, m, o), __shfl_xor_sync(0xffffffffu, s, o));
    int lane = threadIdx.x & 31, w = threadIdx.x >> 5, nw = blockDim.x >> 5;
    if (lane == 0) { shm[w] = m; shs[w] = s; }
    __syncthreads();
    if (w == 0) {
        m = lane < nw ? shm[lane] : -INFINITY;
        s = lane < nw ? shs[lane] : 0.f;
        for (int o = 16; o > 0; o >>= 1) lse_merge(m, s, __shfl_xor_sync(0xffffffffu, m, o), __shfl_xor_sync(0xffffffffu, s, o));
    }
    float mx = m;
    if (threadIdx.x == 0) {
        float z = mx + logf(s);
        lse[blockIdx.x] = z;
        int t = tg ? tg[blockIdx.x] : -1;
        losses[blockIdx.x] = t >= 0 && t < V ? z - load_op(&l[t]) : 0.f;
    }
}

/* In place: logits -> dlogits = scale (softmax - onehot) in the logits'
 * type (bf16: the GEMMs' operand); 0 rows for ignored targets. */
template <typename TL>
__global__ void k_xent_bwd(TL *d, const float *lse, const int32_t *tg, float scale, int V)
{
    TL *row = d + (size_t)blockIdx.x * V;
    const int t = tg[blockIdx.x];
    const float z = lse[blockIdx.x];
    const bool skip = t < 0 || t >= V;
    auto grad = [&](float x, int v) { return skip ? 0.f : scale * expf(x - z) - (v == t ? scale : 0.f); };
    constexpr int VEC = 16 / sizeof(TL);
    if (V % VEC == 0) {
        for (int v = threadIdx.x; v < V / VEC; v += blockDim.x) {
            uint4 q = ((const uint4 *)row)[v];
            TL *x = (TL *)&q;
#pragma unroll
            for (int k = 0; k < VEC; k++) store_op(&x[k], grad(load_op(&x[k]), VEC * v + k));
            ((uint4 *)row)[v] = q;
        }
    } else {
        for (int v = threadIdx.x; v < V; v += blockDim.x) store_op(&row[v], grad(load_op(&row[v]), v));
    }
}

__global__ void k_sumsq(double *part, const float *g, size_t n)
{
    __shared__ double sh[32];
    double s = 0;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        s += (double)g[i] * g[i];
    s = block_reduce<double, warp_sumd>(s, sh, 0.0, false);
    if (threadIdx.x == 0) part[blockIdx.x] = s;
}

/* Fixed order: the norm does not depend on scheduling. */
__global__ void k_sum_parts(double *part, int nb)
{
    double s = 0;
    for (int i = 0; i < nb; i++) s += part[i];
    part[nb] = s;
}

/* lib/layers/adamw.c per element, in double; the rounded moments feed the update. */
__global__ void k_adamw(float *p, const float *g, float *m, float *v, size_t n, double b1, double b2, double eps,
                        double wd, double lr, double scale, double c1, double c2)
{
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x, st = (size_t)gridDim.x * blockDim.x;
    for (; i < n; i += st) {
        double gi = (double)g[i] * scale;
        float mf = (float)(b1 * m[i] + (1 - b1) * gi);
        float vf = (float)(b2 * v[i] + (1 - b2) * gi * gi);
        m[i] = mf;
        v[i] = vf;
        double u = ((double)mf / c1) / (sqrt((double)vf / c2) + eps) + wd * (double)p[i];
        p[i] = (float)((double)p[i] - lr * u);
    }
}

}  /* namespace */

/* ---------------------------------------------------------------- setup */

extern "C" int ttt_gpu_available(void) { return ttt_cuda_device_count(); }

static void layer_config(const ttt_config *c, ttt_layer_config *lc)
{
    memset(lc, 0, sizeof *lc);
    lc->C = c->hidden_size;
    lc->H = c->num_attention_heads;
    lc->D = c->hidden_size / c->num_attention_heads;
    lc->K = c->mini_batch_size;
    lc->F = c->ttt_layer_type == TTT_MLP ? 4 * lc->D : lc->D;
    lc->kind = c->ttt_layer_type;
    lc->share_qk = c->share_qk;
    lc->use_gate = c->use_gate;
    lc->conv_kernel = c->conv_kernel;
    lc->base_lr = c->ttt_base_lr;
    lc->rope_theta = c->rope_theta;
}

/* The baselines' block configurations, as ttt_model_attn_config /
 * ttt_model_mamba_config (lib/model.c). */
static void attn_cfg(const ttt_config *c, attn_config *ac)
{
    ac->C = c->hidden_size;
    ac->H = c->num_attention_heads;
    ac->D = c->hidden_size / c->num_attention_heads;
    ac->rope_theta = c->rope_theta;
}

static void mamba_cfg(const ttt_config *c, mamba_config *mc) { mamba_config_init(mc, c->hidden_size, c->conv_kernel); }

/* Floats the sequence block of one layer keeps for its backward. */
static size_t seq_acts_size(const ttt_gpu_model *g, int B, int T)
{
    switch (g->cfg.seq_modeling_block) {
    case SEQ_ATTENTION: return ttt_cuda_attn_acts_size(&g->ac, B, T);
    case SEQ_MAMBA: return ttt_cuda_mamba_acts_size(&g->mc, B, T);
    default: return ttt_cuda_layer_acts_size(&g->lc, B, T);
    }
}

extern "C" int ttt_gpu_model_check(const ttt_config *c)
{
    if (c->pre_conv && (c->conv_kernel < 1 || c->conv_kernel > 16))
        return ttt_seterr("--device cuda: pre-conv kernel %d (supported: 1..16)", c->conv_kernel);
    if (c->seq_modeling_block == SEQ_ATTENTION) {
        int D = c->num_attention_heads > 0 ? c->hidden_size / c->num_attention_heads : 0;
        if (D < 2 || D > 128 || D % 2 || D * c->num_attention_heads != c->hidden_size)
            return ttt_seterr("--device cuda: attention head dim %d (supported: even, 2..128)", D);
        return 0;
    }
    if (c->seq_modeling_block == SEQ_MAMBA) {
        if (c->conv_kernel < 1 || c->conv_kernel > 16)
            return ttt_seterr("--device cuda: Mamba conv kernel %d (supported: 1..16)", c->conv_kernel);
        return 0;
    }
    if (c->seq_modeling_block != SEQ_TTT)
        return ttt_seterr("--device cuda: unknown sequence block %d", c->seq_modeling_block);
    if (c->ttt_layer_type != TTT_LINEAR && c->ttt_layer_type != TTT_MLP)
        return ttt_seterr("--device cuda: unknown TTT layer type %d", c->ttt_layer_type);
    ttt_layer_config lc;
    layer_config(c, &lc);
    if (ttt_cuda_layer_check(&lc)) return ttt_preferr("--device cuda");
    return 0;
}

/* Carves (base NULL: measures) the activation arena for B x T; returns floats. */
static size_t carve(ttt_gpu_model *g, float *base, int B, int T)
{
    const ttt_config *c = &g->cfg;
    size_t N = (size_t)B * T, C = c->hidden_size, I = c->intermediate_size, off = 0;
#define TAKE(ptr, n) do { if (base) (ptr) = base + off; off += ((size_t)(n) + 63) & ~(size_t)63; } while (0)
    TAKE(g->emb, N * C);
    float *prev = g->emb;
    for (int l = 0; l < c->num_hidden_layers; l++) {
        gpu_block_acts dummy, *a = base ? &g->ba[l] : &dummy;
        if (c->pre_conv) {
            TAKE(a->h1, N * C);
            TAKE(a->cn, N * C);
            TAKE(a->crstd, N);
        } else if (base) {
            a->h1 = prev;
            a->cn = a->crstd = NULL;
        }
        TAKE(a->h2, N * C);
        TAKE(a->out, N * C);
        TAKE(a->sn, N * C);
        if (g->prec == TTT_CUDA_BF16) TAKE(a->sn16, N * C / 2 + 1);
        else if (base) a->sn16 = NULL;
        TAKE(a->srstd, N);
        TAKE(a->to, N * C);
        TAKE(a->fn, N * C);
        TAKE(a->frstd, N);
        TAKE(a->sw, 3 * N * I);
        TAKE(a->ttt, seq_acts_size(g, B, T));
        if (base) prev = a->out;
    }
    TAKE(g->final_out, N * C);
    TAKE(g->final_rstd, N);
    TAKE(g->logits, N * c->vocab_size);   /* dlogits in place in the backward */
    TAKE(g->lse, N);
    TAKE(g->losses, N);
    TAKE(g->dh, N * C);
    TAKE(g->d1, N * C);
    TAKE(g->d2, N * C);
    TAKE(g->swscr, 3 * N * I);
#undef TAKE
    return off;
}


static int dalloc(void **p, size_t bytes, const char *what)
{
    cudaError_t e = cudaMalloc(p, bytes ? bytes : 1);
    if (e != cudaSuccess) {
        *p = NULL;
        cudaGetLastError();
        return ttt_seterr("cuda: cannot allocate %zu MiB for the %s: %s", bytes >> 20, what, cudaGetErrorString(e));
    }
    return 0;
}

/* bf16 mode: the weights' aligned bf16 copy, one range per tensor
 * (mlp.gate_proj with mlp.up_proj, which follows it: one [2I, C] GEMM
 * operand), registered with the layer handle. */
static int bf16_copy(ttt_gpu_model *g, const ttt_model *m)
{
    int nt = ttt_model_num_tensors(m);
    size_t *h = (size_t *)malloc((size_t)nt * 3 * sizeof *h), n16 = 0;
    g->sh = (ttt_cuda_shadow *)calloc(nt, sizeof *g->sh);
    if (!h || !g->sh) { free(h); return ttt_seterr("out of memory"); }
    g->nsh = 0;
    for (int i = 0; i < nt; i++) {
        const ttt_tensor *t = ttt_model_tensor(m, i);
        size_t *e = h + 3 * (g->nsh - 1);
        if (g->nsh && strstr(t->name, "mlp.up_proj.weight") && e[0] + e[1] == t->offset) {
            e[1] += t->numel;   /* joins the gate_proj before it */
            n16 += t->numel;
            continue;
        }
        n16 = (n16 + 63) & ~(size_t)63;
        e = h + 3 * g->nsh++;
        e[0] = t->offset; e[1] = t->numel; e[2] = n16;
        n16 += t->numel;
    }
    int rc = dalloc((void **)&g->P16, n16 * 2, "bf16 weights") ||
             dalloc((void **)&g->d_sh, (size_t)g->nsh * 3 * sizeof *h, "bf16 ranges");
    if (!rc && cudaMemcpy(g->d_sh, h, (size_t)g->nsh * 3 * sizeof *h, cudaMemcpyHostToDevice) != cudaSuccess)
        rc = ttt_seterr("cuda: cannot upload the bf16 ranges");
    for (int i = 0; !rc && i < g->nsh; i++)
        g->sh[i] = ttt_cuda_shadow{ g->P + h[3 * i], h[3 * i + 1], g->P16 + h[3 * i + 2] };
    free(h);
    if (!rc) ttt_cuda_set_shadow(g->cu, g->sh, g->nsh);
    g->p16_n = n16;
    return rc ? -1 : 0;
}

extern "C" ttt_gpu_model *ttt_gpu_model_new(const ttt_model *m, int dev, int precision, int maxB, int maxT)
{
    const ttt_config *c = ttt_model_config(m);
    if (ttt_gpu_model_check(c)) return NULL;
    if (maxB < 1 || maxT < 1 || (double)maxB * maxT > 2147483647.0) {
        ttt_seterr("cuda model: bad batch shape %d x %d", maxB, maxT);
        return NULL;
    }
    ttt_gpu_model *g = (ttt_gpu_model *)calloc(1, sizeof *g);
    if (!g) { ttt_seterr("out of memory"); return NULL; }
    g->cfg = *c;
    layer_config(c, &g->lc);
    attn_cfg(c, &g->ac);
    mamba_cfg(c, &g->mc);
    g->prec = precision;
    g->maxB = maxB;
    g->maxT = maxT;
    g->np = ttt_model_num_params(m);
    int L = c->num_hidden_layers;
    size_t N = (size_t)maxB * maxT;
    g->bp = (gpu_block *)calloc(L, sizeof *g->bp);
    g->bg = (gpu_block *)calloc(L, sizeof *g->bg);
    g->ba = (gpu_block_acts *)calloc(L, sizeof *g->ba);
    if (!g->bp || !g->bg || !g->ba) { ttt_seterr("out of memory"); goto fail; }
    if (!(g->cu = ttt_cuda_open(dev))) goto fail;
    g->s = ttt_cuda_stream(g->cu);
    g->acts_cap = carve(g, NULL, maxB, maxT);
    if (dalloc((void **)&g->P, g->np * 4, "parameters") || dalloc((void **)&g->G, g->np * 4, "gradients") ||
        dalloc((void **)&g->M, g->np * 4, "AdamW moments") || dalloc((void **)&g->V, g->np * 4, "AdamW moments") ||
        dalloc((void **)&g->acts, g->acts_cap * 4, "activations") ||
        dalloc((void **)&g->d_ids, N * 4, "token ids") || dalloc((void **)&g->d_tg, N * 4, "targets") ||
        dalloc((void **)&g->d_part, (NORM_BLOCKS + 1) * sizeof(double), "norm partials"))
        goto fail;
    if (precision == TTT_CUDA_BF16 &&
        (bf16_copy(g, m) || dalloc((void **)&g->x16, N * c->hidden_size * 2, "bf16 scratch")))
        goto fail;
    if (cudaMallocHost((void **)&g->h_losses, N * sizeof(float)) != cudaSuccess) {
        cudaGetLastError();
        g->h_losses = NULL;
        ttt_seterr("cuda: cannot allocate pinned host memory (%zu KiB)", N * 4 >> 10);
        goto fail;
    }
    if (!(g->h_tg = (int32_t *)malloc(N * sizeof(int32_t)))) { ttt_seterr("out of memory"); goto fail; }
    if (cudaMemsetAsync(g->G, 0, g->np * 4, g->s) != cudaSuccess || cudaMemsetAsync(g->M, 0, g->np * 4, g->s) != cudaSuccess ||
        cudaMemsetAsync(g->V, 0, g->np * 4, g->s) != cudaSuccess || cudaStreamSynchronize(g->s) != cudaSuccess) {
        ttt_seterr("cuda: cannot clear the arenas");
        goto fail;
    }
    {
        const ttt_tensor *te = ttt_model_find(m, "model.embed_tokens.weight"), *tn = ttt_model_find(m, "model.norm.weight");
        if (!te || !tn) { ttt_seterr("cuda model: the model has no embedding or final norm"); goto fail; }
        g->embed = g->P + te->offset; g->dembed = g->G + te->offset;
        g->fnorm = g->P + tn->offset; g->dfnorm = g->G + tn->offset;
    }
    for (int l = 0; l < L; l++) {
        block_ptrs(m, g->P, l, &g->bp[l]);
        block_ptrs(m, g->G, l, &g->bg[l]);
        /* the SwiGLU runs gate and up as one GEMM over [gate; up] */
        size_t IC = (size_t)c->intermediate_size * c->hidden_size;
        if (g->bp[l].up != g->bp[l].gate + IC || g->bg[l].up != g->bg[l].gate + IC) {
            ttt_seterr("cuda model: layer %d: mlp.gate_proj and mlp.up_proj are not adjacent", l);
            goto fail;
        }
    }
    return g;
fail:
    ttt_gpu_model_free(g);
    return NULL;
}

extern "C" void ttt_gpu_model_free(ttt_gpu_model *g)
{
    if (!g) return;
    if (g->cu) cudaStreamSynchronize(g->s);
    cudaFree(g->P); cudaFree(g->G); cudaFree(g->M); cudaFree(g->V); cudaFree(g->P16); cudaFree(g->x16); cudaFree(g->d_sh);
    free(g->sh);
    cudaFree(g->acts); cudaFree(g->d_ids); cudaFree(g->d_tg); cudaFree(g->d_part);
    if (g->h_losses) cudaFreeHost(g->h_losses);
    free(g->h_tg);
    ttt_cuda_close(g->cu);
    free(g->bp); free(g->bg); free(g->ba);
    free(g);
}

extern "C" void ttt_gpu_model_sizes(const ttt_gpu_model *g, ttt_gpu_sizes *s)
{
    s->params = g->np * 4 + g->p16_n * 2;
    s->grads = g->np * 4;
    s->opt = 2 * g->np * 4;
    s->acts = g->acts_cap * 4 + (size_t)g->maxB * g->maxT * (8 + (g->x16 ? 2 * g->cfg.hidden_size : 0));
}

extern "C" size_t ttt_gpu_model_num_params(const ttt_gpu_model *g) { return g->np; }

static int copy(ttt_gpu_model *g, void *dst, const void *src, size_t bytes, cudaMemcpyKind k)
{
    CK(cudaMemcpyAsync(dst, src, bytes, k, g->s));
    CK(cudaStreamSynchronize(g->s));
    return 0;
}

/* bf16 mode: the weights' bf16 copy from the fp32 parameters. */
static int refresh_bf16(ttt_gpu_model *g)
{
    if (!g->P16) return 0;
    /* 512 blocks a tensor: 64 left the embedding (24.6M values at 125m) to few SMs */
    k_pack_bf16<<<dim3(512, g->nsh), 256, 0, g->s>>>(g->P16, g->P, g->d_sh);
    CKL();
    return 0;
}

extern "C" int ttt_gpu_model_upload_params(ttt_gpu_model *g, const float *p)
{
    if (copy(g, g->P, p, g->np * 4, cudaMemcpyHostToDevice) || refresh_bf16(g)) return -1;
    CK(cudaStreamSynchronize(g->s));
    return 0;
}
extern "C" int ttt_gpu_model_download_params(ttt_gpu_model *g, float *p) { return copy(g, p, g->P, g->np * 4, cudaMemcpyDeviceToHost); }
extern "C" int ttt_gpu_model_download_grads(ttt_gpu_model *g, float *p) { return copy(g, p, g->G, g->np * 4, cudaMemcpyDeviceToHost); }
extern "C" int ttt_gpu_model_upload_grads(ttt_gpu_model *g, const float *p) { return copy(g, g->G, p, g->np * 4, cudaMemcpyHostToDevice); }
extern "C" float *ttt_gpu_model_grad_arena(ttt_gpu_model *g, void **stream) { *stream = (void *)g->s; return g->G; }
extern "C" int ttt_gpu_model_upload_opt(ttt_gpu_model *g, const float *m, const float *v)
{
    return copy(g, g->M, m, g->np * 4, cudaMemcpyHostToDevice) || copy(g, g->V, v, g->np * 4, cudaMemcpyHostToDevice) ? -1 : 0;
}
extern "C" int ttt_gpu_model_download_opt(ttt_gpu_model *g, float *m, float *v)
{
    return copy(g, m, g->M, g->np * 4, cudaMemcpyDeviceToHost) || copy(g, v, g->V, g->np * 4, cudaMemcpyDeviceToHost) ? -1 : 0;
}

extern "C" int ttt_gpu_model_zero_grad(ttt_gpu_model *g)
{
    CK(cudaMemsetAsync(g->G, 0, g->np * 4, g->s));
    return 0;
}

/* ---------------------------------------------------------------- forward */

/* Row-major C[M,N] = op(A) op(B) + beta C in the model's precision, with
 * operands that may be of that type already (ready: bf16 in bf16 mode;
 * else fp32, rounded first), a ready A with rows lda apart (0: dense). */
static int gemm_op(ttt_gpu_model *g, int ta, int tb, int M, int N, int K, const void *A, int a_ready, int lda,
                   const void *B, int b_ready, void *C, int c_bf16, float beta)
{
    return ttt_cuda_gemm_op(g->cu, g->prec, ta, tb, M, N, K, A, a_ready, lda, B, b_ready, C, c_bf16, beta);
}

/* hh [N,I] = SwiGLU(gu [N,2I]), in the GEMMs' precision */
static int swiglu_fwd(ttt_gpu_model *g, void *hh, const void *gu, int I, size_t NI)
{
    typedef __nv_bfloat16 bf;
    if (g->P16 && I % 8 == 0) k_swiglu_x8<<<nblk(NI / 8), 256, 0, g->s>>>((bf *)hh, (const bf *)gu, I, NI / 8);
    else if (g->P16) k_swiglu<<<nblk(NI), 256, 0, g->s>>>((bf *)hh, (const bf *)gu, I, NI);
    else k_swiglu<<<nblk(NI), 256, 0, g->s>>>((float *)hh, (const float *)gu, I, NI);
    CKL();
    return 0;
}

/* dgu [N,2I] from dhh [N,I] and gu, in the GEMMs' precision */
static int swiglu_bwd(ttt_gpu_model *g, void *dgu, const void *dhh, const void *gu, int I, size_t NI)
{
    typedef __nv_bfloat16 bf;
    if (g->P16 && I % 8 == 0)
        k_swiglu_bwd_x8<<<nblk(NI / 8), 256, 0, g->s>>>((bf *)dgu, (const bf *)dhh, (const bf *)gu, I, NI / 8);
    else if (g->P16) k_swiglu_bwd<<<nblk(NI), 256, 0, g->s>>>((bf *)dgu, (const bf *)dhh, (const bf *)gu, I, NI);
    else k_swiglu_bwd<<<nblk(NI), 256, 0, g->s>>>((float *)dgu, (const float *)dhh, (const float *)gu, I, NI);
    CKL();
    return 0;
}

/* fn = RMS(h2 = h1 + s) in the GEMMs' precision (the FFN's input: only GEMMs read it) */
static int add_rms(ttt_gpu_model *g, float *h2, void *fn, float *rstd, const float *h1, const float *s, const float *w, int N)
{
    const int C = g->cfg.hidden_size, b = (N + 7) / 8;
    const float eps = (float)g->cfg.rms_norm_eps;
    typedef __nv_bfloat16 bf;
    if (g->P16 && C % 4 == 0) k_rms_fwd<4><<<b, 256, 0, g->s>>>((bf *)fn, (bf *)NULL, rstd, h2, h1, s, w, N, C, eps);
    else if (g->P16) k_rms_fwd<1><<<b, 256, 0, g->s>>>((bf *)fn, (bf *)NULL, rstd, h2, h1, s, w, N, C, eps);
    else if (C % 4 == 0) k_rms_fwd<4><<<b, 256, 0, g->s>>>((float *)fn, (bf *)NULL, rstd, h2, h1, s, w, N, C, eps);
    else k_rms_fwd<1><<<b, 256, 0, g->s>>>((float *)fn, (bf *)NULL, rstd, h2, h1, s, w, N, C, eps);
    CKL();
    return 0;
}

/* out = RMS(x) (fp32, and rounded to out16 when given); with res, of x +=
 * res first (the residual add the FFN left to the next norm) */
static int rms_fwd(ttt_gpu_model *g, float *out, float *rstd, float *x, const float *w, int N, float *out16 = NULL,
                   const float *res = NULL)
{
    const int C = g->cfg.hidden_size, b = (N + 7) / 8;
    const float eps = (float)g->cfg.rms_norm_eps;
    __nv_bfloat16 *o16 = (__nv_bfloat16 *)out16;
    if (C % 4 == 0) k_rms_fwd<4><<<b, 256, 0, g->s>>>(out, o16, rstd, x, x, res, w, N, C, eps);
    else k_rms_fwd<1><<<b, 256, 0, g->s>>>(out, o16, rstd, x, x, res, w, N, C, eps);
    CKL();
    return 0;
}

/* a->to = Seq(a->sn) for the model's sequence block. */
static int seq_forward_of(ttt_gpu_model *g, gpu_block_acts *a, const gpu_block *p, int B, int T)
{
    switch (g->cfg.seq_modeling_block) {
    case SEQ_ATTENTION: return ttt_cuda_attn_forward(g->cu, g->prec, &g->ac, a->to, a->ttt, a->sn, &p->attn, B, T);
    case SEQ_MAMBA: return ttt_cuda_mamba_forward(g->cu, g->prec, &g->mc, a->to, a->ttt, a->sn, &p->mamba, B, T);
    default: return ttt_cuda_layer_forward(g->cu, g->prec, &g->lc, a->to, a->ttt, a->sn, &p->ttt, B, T);
    }
}

/* bf16 mode: the block's GEMMs read sn's bf16 copy made by its norm */
static int seq_forward(ttt_gpu_model *g, gpu_block_acts *a, const gpu_block *p, int B, int T)
{
    ttt_cuda_set_act16(g->cu, TTT_CUDA_ACT_IN, a->sn, a->sn16, (size_t)B * T * g->cfg.hidden_size);
    int rc = seq_forward_of(g, a, p, B, T);
    ttt_cuda_set_act16(g->cu, TTT_CUDA_ACT_IN, NULL, NULL, 0);
    return rc;
}

extern "C" int ttt_gpu_model_forward(ttt_gpu_model *g, const int32_t *ids, const int32_t *targets, int B, int T,
                                     double *loss)
{
    const ttt_config *c = &g->cfg;
    const int C = c->hidden_size, V = c->vocab_size, I = c->intermediate_size, k = c->conv_kernel;
    g->fwd_ok = 0;
    g->bwd_done = 0;
    if (B < 1 || T < 1 || B > g->maxB || T > g->maxT)
        return ttt_seterr("cuda forward: batch %d x %d exceeds the %d x %d the GPU model was sized for", B, T, g->maxB, g->maxT);
    const int N = B * T;
    for (int n = 0; n < N; n++) {
        if (ids[n] < 0 || ids[n] >= V)
            return ttt_seterr("forward: token id %d at position %d is outside the vocabulary (size %d)", (int)ids[n], n, V);
        if (targets && targets[n] >= V)
            return ttt_seterr("forward: target %d at position %d is outside the vocabulary (size %d)", (int)targets[n], n, V);
    }
    if (carve(g, g->acts, B, T) > g->acts_cap) return ttt_seterr("cuda forward: activation arena too small");
    g->B = B;
    g->T = T;
    const size_t NC = (size_t)N * C, NI = (size_t)N * I;
    CK(cudaMemcpyAsync(g->d_ids, ids, (size_t)N * 4, cudaMemcpyHostToDevice, g->s));
    g->count = 0;
    if (targets) {
        memcpy(g->h_tg, targets, (size_t)N * 4);
        for (int n = 0; n < N; n++) g->count += targets[n] >= 0;
        CK(cudaMemcpyAsync(g->d_tg, g->h_tg, (size_t)N * 4, cudaMemcpyHostToDevice, g->s));
    }

    ttt_prof_push(g->s, "forward");
    k_embed<<<nblk(NC), 256, 0, g->s>>>(g->emb, g->d_ids, g->embed, C, NC);
    CKL();
    /* h: the residual stream; res: the FFN output's residual, added by the
     * next norm as it reads h (one pass over h fewer) */
    float *h = g->emb;
    const float *res = NULL;
    for (int l = 0; l < c->num_hidden_layers; l++) {
        gpu_block_acts *a = &g->ba[l];
        const gpu_block *p = &g->bp[l];
        TTT_PROF(g->s, "block");
        if (c->pre_conv) {
            TTT_PROF(g->s, "pre-conv");
            if (rms_fwd(g, a->cn, a->crstd, h, p->conv_norm, N, NULL, res)) return -1;
            /* h1 = h + conv(cn) */
            DWCONV_LAUNCH(k_conv, k, dwconv_blocks(NC, C), 256, g->s, a->h1, a->cn, p->conv_w, p->conv_b, h, T, C, k, NC);
            CKL();
        }
        {
            TTT_PROF(g->s, "seq-norm");
            /* without the pre-conv h1 is h */
            if (rms_fwd(g, a->sn, a->srstd, a->h1, p->seq_norm, N, a->sn16, c->pre_conv ? NULL : res)) return -1;
        }
        {
            TTT_PROF(g->s, "seq");
            if (seq_forward(g, a, p, B, T)) return -1;
        }
        TTT_PROF(g->s, "ffn");
        ttt_prof_push(g->s, "add+norm");
        if (add_rms(g, a->h2, a->fn, a->frstd, a->h1, a->to, p->ffn_norm, N)) return -1;
        ttt_prof_next(g->s, "gate,up");
        /* gu [N,2I] = fn [gate; up]^T in one GEMM; fn, gu, hh [N,I] in the GEMMs' precision */
        float *gu = a->sw, *hh = a->sw + 2 * NI;
        if (gemm_op(g, 0, 1, N, 2 * I, C, a->fn, 1, 0, p->gate, 0, gu, 1, 0.f)) return -1;
        ttt_prof_next(g->s, "swiglu");
        if (swiglu_fwd(g, hh, gu, I, NI)) return -1;
        ttt_prof_next(g->s, "down");
        if (gemm_op(g, 0, 1, N, C, I, hh, 1, 0, p->down, 0, a->out, 0, 0.f)) return -1;
        ttt_prof_pop(g->s);
        h = a->out;
        res = a->h2;
    }
    ttt_prof_push(g->s, "head");
    if (rms_fwd(g, g->final_out, g->final_rstd, h, g->fnorm, N, NULL, res)) return -1;
    /* tied head; bf16 mode: bf16 logits */
    if (gemm_op(g, 0, 1, N, V, C, g->final_out, 0, 0, g->embed, 0, g->logits, 1, 0.f)) return -1;
    ttt_prof_pop(g->s);
    g->has_targets = targets != NULL;
    if (targets) {
        TTT_PROF(g->s, "xent");
        if (g->P16) k_xent_fwd<<<N, 512, 0, g->s>>>(g->losses, g->lse, (const __nv_bfloat16 *)g->logits, g->d_tg, V);
        else k_xent_fwd<<<N, 512, 0, g->s>>>(g->losses, g->lse, (const float *)g->logits, g->d_tg, V);
        CKL();
        CK(cudaMemcpyAsync(g->h_losses, g->losses, (size_t)N * 4, cudaMemcpyDeviceToHost, g->s));
    }
    ttt_prof_pop(g->s);
    CK(cudaStreamSynchronize(g->s));
    CKL();
    if (targets) {
        double sum = 0;
        for (int n = 0; n < N; n++) sum += g->h_losses[n];
        if (loss) *loss = g->count ? sum / g->count : 0;
    }
    g->fwd_ok = 1;
    return 0;
}

extern "C" const float *ttt_gpu_model_token_losses(const ttt_gpu_model *g)
{
    return g->fwd_ok && g->has_targets ? g->h_losses : NULL;
}

/* ---------------------------------------------------------------- backward */

/* dx16: dx rounded to bf16 too (NULL: not) */
static int rms_bwd(ttt_gpu_model *g, float *dx, float *dw, const float *dout, const float *x, const float *w,
                   const float *rstd, int N, int accum, __nv_bfloat16 *dx16 = NULL)
{
    const int C = g->cfg.hidden_size;
    /* dw summed on the way when its partial sums fit the default shared memory */
    const int fuse = (size_t)C * 4 <= 48 * 1024;
    const unsigned rows8 = (N + 7) / 8, nb = fuse && rows8 > RMS_BWD_BLOCKS ? RMS_BWD_BLOCKS : rows8;
    const size_t sm = fuse ? (size_t)C * 4 : 0;
    float *dwf = fuse ? dw : NULL;
    if (C % 4 == 0) k_rms_bwd_x<4><<<nb, 256, sm, g->s>>>(dx, dx16, dwf, dout, x, w, rstd, N, C, accum);
    else k_rms_bwd_x<1><<<nb, 256, sm, g->s>>>(dx, dx16, dwf, dout, x, w, rstd, N, C, accum);
    if (!fuse)
        k_rms_bwd_w<<<dim3((C + 127) / 128, (N + COL_CHUNK - 1) / COL_CHUNK), 128, 0, g->s>>>(dw, dout, x, rstd, N,
                                                                                              C);
    CKL();
    return 0;
}

/* dx (=) from dout through the sequence block; its parameter gradients (+=) into gr. */
static int seq_backward_of(ttt_gpu_model *g, float *dx, const float *dout, const gpu_block_acts *a, const gpu_block *p,
                           const gpu_block *gr, int B, int T)
{
    switch (g->cfg.seq_modeling_block) {
    case SEQ_ATTENTION:
        return ttt_cuda_attn_backward(g->cu, g->prec, &g->ac, dx, &gr->attn, dout, a->ttt, a->sn, &p->attn, B, T);
    case SEQ_MAMBA:
        return ttt_cuda_mamba_backward(g->cu, g->prec, &g->mc, dx, &gr->mamba, dout, a->ttt, a->sn, &p->mamba, B, T);
    default:
        return ttt_cuda_layer_backward(g->cu, g->prec, &g->lc, dx, &gr->ttt, dout, a->ttt, a->sn, &p->ttt, B, T);
    }
}

static int seq_backward(ttt_gpu_model *g, float *dx, const float *dout, const gpu_block_acts *a, const gpu_block *p,
                        const gpu_block *gr, int B, int T)
{
    const size_t n = (size_t)B * T * g->cfg.hidden_size;
    ttt_cuda_set_act16(g->cu, TTT_CUDA_ACT_IN, a->sn, a->sn16, n);
    ttt_cuda_set_act16(g->cu, TTT_CUDA_ACT_DOUT, dout, g->x16, n);
    int rc = seq_backward_of(g, dx, dout, a, p, gr, B, T);
    ttt_cuda_set_act16(g->cu, TTT_CUDA_ACT_IN, NULL, NULL, 0);
    ttt_cuda_set_act16(g->cu, TTT_CUDA_ACT_DOUT, NULL, NULL, 0);
    return rc;
}

extern "C" void ttt_gpu_model_set_nograd(ttt_gpu_model *g, int on)
{
    g->nograd = on != 0;
    ttt_cuda_set_nograd(g->cu, on);
}

extern "C" int ttt_gpu_model_backward(ttt_gpu_model *g)
{
    const ttt_config *c = &g->cfg;
    if (g->nograd) return ttt_seterr("backward: the GPU model is set for evaluation only");
    if (!g->fwd_ok || !g->has_targets) return ttt_seterr("backward: no forward with targets to differentiate");
    if (g->bwd_done) return ttt_seterr("backward: the last forward was already differentiated; run a forward first");
    g->bwd_done = 1;
    if (g->count == 0) return 0;
    const int B = g->B, T = g->T, N = B * T, C = c->hidden_size, V = c->vocab_size, I = c->intermediate_size;
    const int k = c->conv_kernel;
    const size_t NC = (size_t)N * C, NI = (size_t)N * I;
    float *dl = g->logits, *dh = g->dh, *d1 = g->d1;
    const int bf16 = g->P16 != NULL;

    TTT_PROF(g->s, "backward");
    ttt_prof_push(g->s, "xent+head");
    /* dlogits in place, in the logits' type (bf16 mode: bf16, the GEMMs' operand) */
    if (bf16) k_xent_bwd<<<N, 512, 0, g->s>>>((__nv_bfloat16 *)dl, g->lse, g->d_tg, (float)(1.0 / g->count), V);
    else k_xent_bwd<<<N, 512, 0, g->s>>>(dl, g->lse, g->d_tg, (float)(1.0 / g->count), V);
    CKL();
    /* logits = f E^T: dE += dl^T f, df = dl E */
    if (gemm_op(g, 1, 0, V, C, N, dl, 1, 0, g->final_out, 0, g->dembed, 0, 1.f)) return -1;
    if (gemm_op(g, 0, 0, N, C, V, dl, 1, 0, g->embed, 0, d1, 0, 0.f)) return -1;
    const float *hlast = c->num_hidden_layers ? g->ba[c->num_hidden_layers - 1].out : g->emb;
    if (rms_bwd(g, dh, g->dfnorm, d1, hlast, g->fnorm, g->final_rstd, N, 0, g->x16)) return -1;
    ttt_prof_pop(g->s);

    for (int l = c->num_hidden_layers - 1; l >= 0; l--) {
        gpu_block_acts *a = &g->ba[l];
        const gpu_block *p = &g->bp[l], *gr = &g->bg[l];
        const float *h0 = l ? g->ba[l - 1].out : g->emb;
        const void *gu = a->sw, *hh = a->sw + 2 * NI;
        void *dhh = g->swscr, *dgu = g->swscr + NI;   /* [N,I], [N,2I]; bf16 in bf16 mode */
        TTT_PROF(g->s, "block");
        ttt_prof_push(g->s, "ffn");
        /* out = h2 + down(silu(gate(fn)) up(fn)); bf16 mode: dh's bf16 copy x16, made
         * with it by the norm backward that wrote dh last */
        const void *dho = bf16 ? (const void *)g->x16 : dh;
        ttt_prof_push(g->s, "down");
        if (gemm_op(g, 1, 0, C, I, N, dho, 1, 0, hh, 1, gr->down, 0, 1.f)) return -1;
        if (gemm_op(g, 0, 0, N, I, C, dho, 1, 0, p->down, 0, dhh, 1, 0.f)) return -1;
        ttt_prof_next(g->s, "swiglu");
        if (swiglu_bwd(g, dgu, dhh, gu, I, NI)) return -1;
        /* [gate; up] as one [2I, C] weight */
        ttt_prof_next(g->s, "gate,up");
        if (gemm_op(g, 1, 0, 2 * I, C, N, dgu, 1, 0, a->fn, 1, gr->gate, 0, 1.f)) return -1;
        if (gemm_op(g, 0, 0, N, C, 2 * I, dgu, 1, 0, p->gate, 0, d1, 0, 0.f)) return -1;
        ttt_prof_next(g->s, "norm");
        if (rms_bwd(g, dh, gr->ffn_norm, d1, a->h2, p->ffn_norm, a->frstd, N, 1, g->x16)) return -1;
        ttt_prof_pop(g->s);
        ttt_prof_pop(g->s);
        /* h2 = h1 + Seq(RMS_seq(h1)), Seq = TTT, attention or Mamba */
        {
            TTT_PROF(g->s, "seq");
            if (seq_backward(g, d1, dh, a, p, gr, B, T)) return -1;
        }
        {
            TTT_PROF(g->s, "seq-norm");
            if (rms_bwd(g, dh, gr->seq_norm, d1, a->h1, p->seq_norm, a->srstd, N, 1, c->pre_conv ? NULL : g->x16))
                return -1;
        }
        /* h1 = h0 + DWConv(RMS_conv(h0)) */
        if (c->pre_conv) {
            TTT_PROF(g->s, "pre-conv");
            DWCONV_LAUNCH(k_conv_bwd_x, k, dwconv_blocks(NC, C), 256, g->s, d1, dh, p->conv_w, T, C, k, NC, 0);
            DWCONV_LAUNCH(k_conv_bwd_w, k, dim3((C + 127) / 128, (N + COL_CHUNK - 1) / COL_CHUNK), 128, g->s,
                          gr->conv_w, gr->conv_b, dh, a->cn, N, T, C, k);
            CKL();
            if (rms_bwd(g, dh, gr->conv_norm, d1, h0, p->conv_norm, a->crstd, N, 1, g->x16)) return -1;
        }
    }
    k_embed_bwd<<<nblk(NC), 256, 0, g->s>>>(g->dembed, dh, g->d_ids, C, NC);
    CKL();
    return 0;
}

/* ---------------------------------------------------------------- optimizer */

extern "C" int ttt_gpu_model_grad_norm(ttt_gpu_model *g, double *norm)
{
    ttt_prof_push(g->s, "grad-norm");
    k_sumsq<<<NORM_BLOCKS, 256, 0, g->s>>>(g->d_part, g->G, g->np);
    k_sum_parts<<<1, 1, 0, g->s>>>(g->d_part, NORM_BLOCKS);
    ttt_prof_pop(g->s);
    CKL();
    double s;
    if (copy(g, &s, g->d_part + NORM_BLOCKS, sizeof s, cudaMemcpyDeviceToHost)) return -1;
    *norm = sqrt(s);
    return 0;
}

extern "C" int ttt_gpu_model_adamw(ttt_gpu_model *g, const ttt_adamw_params *hp, double lr, double grad_scale, long long t)
{
    const double c1 = 1.0 - pow(hp->beta1, (double)t), c2 = 1.0 - pow(hp->beta2, (double)t);
    TTT_PROF(g->s, "adamw");
    k_adamw<<<nblk(g->np), 256, 0, g->s>>>(g->P, g->G, g->M, g->V, g->np, hp->beta1, hp->beta2, hp->eps,
                                           hp->weight_decay, lr, grad_scale, c1, c2);
    CKL();
    return refresh_bf16(g);
}
