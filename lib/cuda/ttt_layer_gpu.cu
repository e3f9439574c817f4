/* ttt_layer_gpu.cu - the whole TTT layer on the GPU (lib/ttt_cuda.h):
 * projections with cuBLAS (fp32, or bf16 inputs with fp32 accumulation),
 * optional share_qk convs, RoPE, lr gate, the fused inner loop
 * (ttt_inner_linear.cu or ttt_inner_mlp.cu), post-norm, optional gelu gate and o_proj, forward
 * and backward (spec sections 2, 6, 8.2-8.3). */
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern "C" {
#include "err.h"
#include "model.h"   /* TTT_LINEAR, TTT_MLP */
}
#include "ttt_cuda.h"
#include "ttt_cuda_internal.cuh"
#include "dwconv.cuh"
#include "prof.cuh"
#include "ttt_lr.cuh"

#define K16 TTT_CUDA_K

struct ttt_cuda {
    int dev;
    cudaStream_t s;
    cublasHandle_t blas;
    __nv_bfloat16 *slot[3];       /* bf16 GEMM operands */
    size_t slot_cap[3];
    float *ws;                    /* backward scratch */
    size_t ws_cap;
    float *rope_tab;              /* [16][D/2][2] cos, sin */
    int rope_D;
    double rope_theta;
    const ttt_cuda_shadow *shadow;   /* bf16 copies of fp32 ranges (the model's weights), */
    int nshadow;                     /* sorted: GEMM operands in them are not converted */
    ttt_cuda_shadow act[TTT_CUDA_NACT];   /* bf16 copies of the block's input and output
                                             gradient made by the caller (.p NULL: none) */
    /* the backward's weight gradients of the output side, which the inner loop does
     * not need, run on `side` (its own cuBLAS handle) while the inner backward,
     * launched first on s, holds its SMs */
    cudaStream_t side;
    cublasHandle_t blas_side;
    cudaEvent_t ev_fork, ev_join;
    int nograd;                   /* forwards keep nothing for a backward (ttt_cuda_set_nograd) */
};

#define CK(call) do { cudaError_t e_ = (call); if (e_ != cudaSuccess) \
    return ttt_seterr("cuda: %s: %s (%s:%d)", #call, cudaGetErrorString(e_), __FILE__, __LINE__); } while (0)
#define CB(call) do { cublasStatus_t e_ = (call); if (e_ != CUBLAS_STATUS_SUCCESS) \
    return ttt_seterr("cublas: %s: status %d (%s:%d)", #call, (int)e_, __FILE__, __LINE__); } while (0)

/* ---------------------------------------------------------------- basics */

extern "C" int ttt_cuda_device_count(void)
{
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) { cudaGetLastError(); return 0; }
    return n;
}

extern "C" void ttt_cuda_device_name(int dev, char *buf, size_t n)
{
    cudaDeviceProp p;
    if (n == 0) return;
    buf[0] = 0;
    if (cudaGetDeviceProperties(&p, dev) == cudaSuccess) snprintf(buf, n, "%s", p.name);
}

extern "C" ttt_cuda *ttt_cuda_open(int dev)
{
    int n = ttt_cuda_device_count();
    if (dev < 0 || dev >= n) { ttt_seterr("cuda: device %d not present (%d found)", dev, n); return NULL; }
    ttt_cuda *g = (ttt_cuda *)calloc(1, sizeof *g);
    if (!g) { ttt_seterr("cuda: out of memory"); return NULL; }
    g->dev = dev;
    /* both at the default priority: the main stream at the highest measured slower
     * (TTT-MLP forward+backward at 8k: 2.77M tokens/s, against 2.92M) */
    cudaError_t e = cudaSetDevice(dev);
    if (e == cudaSuccess) e = cudaStreamCreateWithFlags(&g->s, cudaStreamNonBlocking);
    if (e == cudaSuccess) e = cudaStreamCreateWithFlags(&g->side, cudaStreamNonBlocking);
    if (e == cudaSuccess) e = cudaEventCreateWithFlags(&g->ev_fork, cudaEventDisableTiming);
    if (e == cudaSuccess) e = cudaEventCreateWithFlags(&g->ev_join, cudaEventDisableTiming);
    if (e != cudaSuccess) {
        ttt_seterr("cuda: device %d: %s", dev, cudaGetErrorString(e));
        ttt_cuda_close(g);
        return NULL;
    }
    if (cublasCreate(&g->blas) != CUBLAS_STATUS_SUCCESS || cublasCreate(&g->blas_side) != CUBLAS_STATUS_SUCCESS) {
        ttt_seterr("cublas: cannot create a handle on device %d", dev);
        ttt_cuda_close(g);
        return NULL;
    }
    cublasSetStream(g->blas, g->s);
    cublasSetStream(g->blas_side, g->side);
    cublasSetMathMode(g->blas, CUBLAS_DEFAULT_MATH);   /* no TF32 in fp32 mode */
    cublasSetMathMode(g->blas_side, CUBLAS_DEFAULT_MATH);
    return g;
}

extern "C" void ttt_cuda_close(ttt_cuda *g)
{
    if (!g) return;
    if (g->s) cudaStreamSynchronize(g->s);
    if (g->side) cudaStreamSynchronize(g->side);
    for (int i = 0; i < 3; i++) cudaFree(g->slot[i]);
    cudaFree(g->ws);
    cudaFree(g->rope_tab);
    if (g->blas) cublasDestroy(g->blas);
    if (g->blas_side) cublasDestroy(g->blas_side);
    if (g->ev_fork) cudaEventDestroy(g->ev_fork);
    if (g->ev_join) cudaEventDestroy(g->ev_join);
    if (g->side) cudaStreamDestroy(g->side);
    if (g->s) cudaStreamDestroy(g->s);
    free(g);
}

extern "C" int ttt_cuda_sync(ttt_cuda *g) { CK(cudaStreamSynchronize(g->s)); CK(cudaGetLastError()); return 0; }

extern "C" float *ttt_cuda_alloc(size_t n)
{
    void *p = NULL;
    cudaError_t e = cudaMalloc(&p, (n ? n : 1) * sizeof(float));
    if (e == cudaSuccess) e = cudaMemset(p, 0, (n ? n : 1) * sizeof(float));
    if (e != cudaSuccess) {
        ttt_seterr("cuda: cannot allocate %zu floats: %s", n, cudaGetErrorString(e));
        cudaFree(p);
        return NULL;
    }
    return (float *)p;
}
extern "C" void ttt_cuda_free(void *p) { cudaFree(p); }
extern "C" int ttt_cuda_upload(float *d, const float *s, size_t n) { CK(cudaMemcpy(d, s, n * 4, cudaMemcpyHostToDevice)); return 0; }
extern "C" int ttt_cuda_download(float *d, const float *s, size_t n) { CK(cudaMemcpy(d, s, n * 4, cudaMemcpyDeviceToHost)); return 0; }
extern "C" int ttt_cuda_zero(float *p, size_t n) { CK(cudaMemset(p, 0, n * 4)); return 0; }

static int grow(void **p, size_t *cap, size_t bytes)
{
    if (*cap >= bytes) return 0;
    cudaFree(*p);
    *p = NULL; *cap = 0;
    CK(cudaMalloc(p, bytes));
    *cap = bytes;
    return 0;
}

/* ---------------------------------------------------------------- GEMM */

__global__ void k_to_bf16(const float *x, __nv_bfloat16 *y, size_t n)
{
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x, st = (size_t)gridDim.x * blockDim.x;
    for (; i < n; i += st) y[i] = __float2bfloat16(x[i]);
}

static unsigned nblk(size_t n, int t = 256)
{
    size_t b = (n + t - 1) / t;
    return (unsigned)(b > 65536 ? 65536 : (b ? b : 1));
}

/* The bf16 copy of [p, p+n) when one of the sorted ranges r[0..nr) holds
 * it, else NULL. */
static const void *copy_of(const ttt_cuda_shadow *r, int nr, const float *p, size_t n)
{
    int lo = 0, hi = nr - 1;   /* the last range starting at or before p */
    while (lo < hi) {
        int mid = (lo + hi + 1) / 2;
        if (r[mid].p <= p) lo = mid; else hi = mid - 1;
    }
    if (nr == 0 || r[lo].p > p || n > r[lo].n || (size_t)(p - r[lo].p) > r[lo].n - n) return NULL;
    return (const __nv_bfloat16 *)r[lo].p16 + (p - r[lo].p);
}

/* GEMM operand: the fp32 pointer itself, or its bf16 copy: the block
 * input's, output gradient's or the weights' when the caller keeps them,
 * else made in a slot. */
static int operand(ttt_cuda *g, int mode, int slot, const float *p, size_t n, const void **out)
{
    if (mode != TTT_CUDA_BF16) { *out = p; return 0; }
    for (int i = 0; i < TTT_CUDA_NACT; i++)
        if (g->act[i].p && (*out = copy_of(&g->act[i], 1, p, n))) return 0;
    if ((*out = copy_of(g->shadow, g->nshadow, p, n))) return 0;
    if (grow((void **)&g->slot[slot], &g->slot_cap[slot], n * sizeof(__nv_bfloat16))) return -1;
    k_to_bf16<<<nblk(n), 256, 0, g->s>>>(p, g->slot[slot], n);
    *out = g->slot[slot];
    return 0;
}

/* Row-major C[M,N] = op(A) op(B) + beta C with A [M,K] (ta=0) or [K,M] (ta=1),
 * B [K,N] (tb=0) or [N,K] (tb=1); A, B already operands of `mode`, rows
 * lda, ldb elements apart (0: dense). */
static int gemm_ld(ttt_cuda *g, int mode, int ta, int tb, int M, int N, int K,
                   const void *A, int lda, const void *B, int ldb, void *C, int c_bf16, float beta)
{
    const float one = 1.f;
    cudaDataType_t t = mode == TTT_CUDA_BF16 ? CUDA_R_16BF : CUDA_R_32F;
    CB(cublasGemmEx(g->blas, tb ? CUBLAS_OP_T : CUBLAS_OP_N, ta ? CUBLAS_OP_T : CUBLAS_OP_N, N, M, K, &one,
                    B, t, ldb ? ldb : tb ? K : N, A, t, lda ? lda : ta ? M : K, &beta, C,
                    c_bf16 ? CUDA_R_16BF : CUDA_R_32F, N, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
    return 0;
}

static int gemm_raw(ttt_cuda *g, int mode, int ta, int tb, int M, int N, int K,
                    const void *A, const void *B, float *C, float beta)
{
    return gemm_ld(g, mode, ta, tb, M, N, K, A, 0, B, 0, C, 0, beta);
}

/* Same, converting fp32 inputs as needed; slotA/slotB name the bf16 slots
 * (-1: the pointer is already an operand of `mode`). */
static int gemm(ttt_cuda *g, int mode, int ta, int tb, int M, int N, int K,
                const void *A, int slotA, const void *B, int slotB, float *C, float beta)
{
    if (slotA >= 0 && operand(g, mode, slotA, (const float *)A, (size_t)M * K, &A)) return -1;
    if (slotB >= 0 && operand(g, mode, slotB, (const float *)B, (size_t)K * N, &B)) return -1;
    return gemm_raw(g, mode, ta, tb, M, N, K, A, B, C, beta);
}

cudaStream_t ttt_cuda_stream(ttt_cuda *g) { return g->s; }
float *ttt_cuda_scratch(ttt_cuda *g, size_t floats)
{
    return grow((void **)&g->ws, &g->ws_cap, floats * 4) ? NULL : g->ws;
}

int ttt_cuda_gemm_f32in(ttt_cuda *g, int mode, int ta, int tb, int M, int N, int K,
                        const float *A, const float *B, float *C, float beta)
{
    if (cudaSetDevice(g->dev) != cudaSuccess) return ttt_seterr("cuda: cannot select device %d", g->dev);
    return gemm(g, mode, ta, tb, M, N, K, A, 0, B, 1, C, beta);
}

int ttt_cuda_gemm_op(ttt_cuda *g, int mode, int ta, int tb, int M, int N, int K, const void *A, int a_ready,
                     int lda, const void *B, int b_ready, void *C, int c_bf16, float beta)
{
    if (cudaSetDevice(g->dev) != cudaSuccess) return ttt_seterr("cuda: cannot select device %d", g->dev);
    if (!a_ready && operand(g, mode, 0, (const float *)A, (size_t)M * K, &A)) return -1;
    if (!b_ready && operand(g, mode, 1, (const float *)B, (size_t)K * N, &B)) return -1;
    return gemm_ld(g, mode, ta, tb, M, N, K, A, a_ready ? lda : 0, B, 0, C, c_bf16 && mode == TTT_CUDA_BF16, beta);
}

extern "C" int ttt_cuda_to_bf16(ttt_cuda *g, void *dst, const float *src, size_t n)
{
    k_to_bf16<<<nblk(n), 256, 0, g->s>>>(src, (__nv_bfloat16 *)dst, n);
    CK(cudaGetLastError());
    return 0;
}

extern "C" void ttt_cuda_set_act16(ttt_cuda *g, int which, const float *x, const void *x16, size_t n)
{
    g->act[which] = ttt_cuda_shadow{ x16 ? x : NULL, n, x16 };
}

extern "C" void ttt_cuda_set_nograd(ttt_cuda *g, int on) { g->nograd = on != 0; }

extern "C" void ttt_cuda_set_shadow(ttt_cuda *g, const ttt_cuda_shadow *r, int n)
{
    g->shadow = r;
    g->nshadow = r ? n : 0;
}

/* ---------------------------------------------------------------- small kernels */

__device__ __forceinline__ float warp_sum(float v)
{
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

/* RoPE (interleaved pairs, position t mod 16), sign -1 rotates back (backward). */
__global__ void k_rope(float *x, const float *tab, int T, int C, int D, size_t npairs, float sign)
{
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x, st = (size_t)gridDim.x * blockDim.x;
    const int hp = C / 2, dp = D / 2;
    for (; i < npairs; i += st) {
        size_t row = i / hp;
        int pc = (int)(i % hp), pi = pc % dp, p = (int)(row % T) % K16;
        float c = tab[(p * dp + pi) * 2], s = sign * tab[(p * dp + pi) * 2 + 1];
        float *v = x + row * C + 2 * pc;
        float a = v[0], b = v[1];
        v[0] = a * c - b * s;
        v[1] = a * s + b * c;
    }
}

#define COL_CHUNK 256
/* row LayerNorm over C (eps 1e-6): y = w*zhat + b; one warp per row, V
 * values a lane at a time (4 when C % 4 == 0); y in bf16 where only bf16
 * GEMMs read it, x in bf16 where the tensor-core inner loop wrote it */
template <int V, typename TY, typename TX>
__global__ void k_ln_fwd(TY *y, float *mean, float *rstd, const TX *x, const float *w, const float *b, int rows, int C)
{
    int row = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32, lane = threadIdx.x & 31;
    if (row >= rows) return;
    const size_t o = (size_t)row * C;
    float s = 0.f, s2 = 0.f;
    for (int c = V * lane; c < C; c += 32 * V) {
        float xv[V];
        ldv<V>(xv, x + o + c);
#pragma unroll
        for (int k = 0; k < V; k++) s += xv[k];
    }
    float mu = warp_sum(s) / C;
    for (int c = V * lane; c < C; c += 32 * V) {
        float xv[V];
        ldv<V>(xv, x + o + c);
#pragma unroll
        for (int k = 0; k < V; k++) s2 += (xv[k] - mu) * (xv[k] - mu);
    }
    float rs = rsqrtf(warp_sum(s2) / C + 1e-6f);
    for (int c = V * lane; c < C; c += 32 * V) {
        float xv[V], wv[V], bv[V], yv[V];
        ldv<V>(xv, x + o + c); ldv<V>(wv, w + c); ldv<V>(bv, b + c);
#pragma unroll
        for (int k = 0; k < V; k++) yv[k] = wv[k] * (xv[k] - mu) * rs + bv[k];
        stv<V>(y + o + c, yv);
    }
    if (lane == 0) { mean[row] = mu; rstd[row] = rs; }
}

/* dx = the LayerNorm input gradient; one warp per row, V floats a lane at
 * a time (4 when C % 4 == 0). (Summing dw, db here too, in shared memory
 * as k_rms_bwd_x does, measured slower than k_ln_bwd_params beside it:
 * two shared atomics per value.) */
template <int V, typename TX>
__global__ void k_ln_bwd(float *dx, const float *dy, const TX *x, const float *mean, const float *rstd,
                         const float *w, int rows, int C)
{
    int row = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32, lane = threadIdx.x & 31;
    if (row >= rows) return;
    const size_t o = (size_t)row * C;
    float mu = mean[row], rs = rstd[row], s1 = 0.f, s2 = 0.f;
    for (int c = V * lane; c < C; c += 32 * V) {
        float xv[V], dv[V], wv[V];
        ldv<V>(xv, x + o + c); ldv<V>(dv, dy + o + c); ldv<V>(wv, w + c);
#pragma unroll
        for (int k = 0; k < V; k++) {
            float dz = wv[k] * dv[k], zh = (xv[k] - mu) * rs;
            s1 += dz; s2 += dz * zh;
        }
    }
    s1 = warp_sum(s1) / C; s2 = warp_sum(s2) / C;
    for (int c = V * lane; c < C; c += 32 * V) {
        float xv[V], dv[V], wv[V], y[V];
        ldv<V>(xv, x + o + c); ldv<V>(dv, dy + o + c); ldv<V>(wv, w + c);
#pragma unroll
        for (int k = 0; k < V; k++) {
            float dz = wv[k] * dv[k], zh = (xv[k] - mu) * rs;
            y[k] = (dz - s1 - zh * s2) * rs;
        }
        stv<V>(dx + o + c, y);
    }
}

/* dw[c] += sum dy*zhat, db[c] += sum dy */
template <typename TX>
__global__ void k_ln_bwd_params(float *dw, float *db, const float *dy, const TX *x, const float *mean,
                                const float *rstd, int rows, int C)
{
    int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= C) return;
    int r0 = blockIdx.y * COL_CHUNK, r1 = min(rows, r0 + COL_CHUNK);
    float aw = 0.f, ab = 0.f;
    for (int r = r0; r < r1; r++) {
        float d = dy[(size_t)r * C + c];
        aw += d * (load_op(x + (size_t)r * C + c) - mean[r]) * rstd[r];
        ab += d;
    }
    atomicAdd(&dw[c], aw);
    atomicAdd(&db[c], ab);
}

__device__ __forceinline__ float gelu_tanh(float x, float *deriv)
{
    const float k0 = 0.7978845608028654f, k1 = 0.044715f;
    float u = k0 * (x + k1 * x * x * x), t = tanhf(u);
    if (deriv) *deriv = 0.5f * (1.f + t) + 0.5f * x * (1.f - t * t) * k0 * (1.f + 3.f * k1 * x * x);
    return 0.5f * x * (1.f + t);
}

/* o = gelu(gpre) y, in the precision of the o_proj GEMMs (its only readers) */
template <typename TO>
__global__ void k_gate(TO *o, const float *gpre, const float *y, size_t n)
{
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x, st = (size_t)gridDim.x * blockDim.x;
    for (; i < n; i += st) store_op(&o[i], gelu_tanh(gpre[i], NULL) * y[i]);
}

/* dO -> dY (in place) and dgpre, in the precision of the GEMMs that read it */
template <typename TG>
__global__ void k_gate_bwd(float *dO, TG *dg, const float *gpre, const float *y, size_t n)
{
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x, st = (size_t)gridDim.x * blockDim.x;
    for (; i < n; i += st) {
        float d, ge = gelu_tanh(gpre[i], &d), g = dO[i];
        store_op(&dg[i], g * y[i] * d);
        dO[i] = g * ge;
    }
}

__global__ void k_token_grad(float *gtok, const float *dtau, const float *tok)
{
    int i = threadIdx.x;
    if (i < K16 && 1.f / (i + 1) + tok[i] > 0.f) gtok[i] += dtau[i];
}

/* ---------------------------------------------------------------- layout */

struct acts_layout {
    size_t XQ, XK, XV, Zin, Y, lr, mean, rstd, U, gpre, O, states, total;
};

/* The inner loop's output Zin is bf16 in bf16 mode (its tensor-core kernels
 * write it so, a.z16: only the post-norm reads it), fp32 otherwise. */
static int zin16(int mode) { return mode == TTT_CUDA_BF16; }

static acts_layout layout(const ttt_layer_config *c, int B, int T)
{
    acts_layout L;
    size_t btc = (size_t)B * T * c->C, bt = (size_t)B * T, o = 0;
    L.XQ = o; o += btc;
    L.XK = o; o += btc;
    L.XV = o; o += btc;
    L.Zin = o; o += btc;
    L.Y = o; o += btc;
    L.lr = o; o += bt * c->H;
    L.mean = o; o += bt;
    L.rstd = o; o += bt;
    L.U = c->share_qk ? o : (size_t)-1; if (c->share_qk) o += btc;
    L.gpre = c->use_gate ? o : (size_t)-1; if (c->use_gate) o += btc;
    L.O = c->use_gate ? o : (size_t)-1; if (c->use_gate) o += btc;
    o = (o + 63) & ~(size_t)63;
    L.states = o;
    o += c->kind == TTT_MLP ? ttt_inner_mlp_states_size(B, c->H, c->D, T) : ttt_inner_states_size(B, c->H, c->D, T);
    L.total = o;
    return L;
}

extern "C" int ttt_cuda_layer_check(const ttt_layer_config *c)
{
    if (c->kind != TTT_LINEAR && c->kind != TTT_MLP) return ttt_seterr("cuda layer: unknown TTT layer kind %d", c->kind);
    if (c->K != K16) return ttt_seterr("cuda layer: mini-batch size %d (the kernels need 16)", c->K);
    if (c->H * c->D != c->C) return ttt_seterr("cuda layer: heads*head_dim %d*%d != channels %d", c->H, c->D, c->C);
    if (c->H > 256) return ttt_seterr("cuda layer: %d heads (supported: up to 256)", c->H);
    if (c->kind == TTT_MLP) {
        if (c->F != 4 * c->D) return ttt_seterr("cuda layer: TTT-MLP inner width %d (the kernels need 4*head dim = %d)", c->F, 4 * c->D);
        if (!ttt_inner_mlp_supported(c->D)) return ttt_seterr("cuda layer: TTT-MLP head dim %d (supported: 16, 32, 64)", c->D);
    } else if (!ttt_inner_linear_supported(c->D)) {
        return ttt_seterr("cuda layer: head dim %d (supported: 16, 32, 64, 96)", c->D);
    }
    if (c->share_qk && (c->conv_kernel < 1 || c->conv_kernel > 8))
        return ttt_seterr("cuda layer: conv kernel %d (supported: 1..8)", c->conv_kernel);
    return 0;
}

extern "C" size_t ttt_cuda_layer_acts_size(const ttt_layer_config *c, int B, int T) { return layout(c, B, T).total; }

extern "C" const float *ttt_cuda_layer_inter(const ttt_layer_config *c, const float *acts, const char *name, int B, int T)
{
    acts_layout L = layout(c, B, T);
    size_t o = (size_t)-1;
    if (!strcmp(name, "XQ_rope")) o = L.XQ;
    else if (!strcmp(name, "XK_rope")) o = L.XK;
    else if (!strcmp(name, "v_proj_out")) o = L.XV;
    else if (!strcmp(name, "ttt_lr_eta")) o = L.lr;
    else if (!strcmp(name, "ttt_out_pre_post_norm")) o = L.Zin;
    else if (!strcmp(name, "post_norm_out")) o = L.Y;
    else if (!strcmp(name, "o_proj_in")) o = c->use_gate ? L.O : L.Y;
    else if (!strcmp(name, "g_proj_out")) o = L.gpre;
    else if (!strcmp(name, "q_proj_out") && c->share_qk) o = L.U;
    else if (!strcmp(name, "states")) o = L.states;
    return o == (size_t)-1 ? NULL : acts + o;
}

static int rope_table(ttt_cuda *g, int D, double theta)
{
    if (g->rope_tab && g->rope_D == D && g->rope_theta == theta) return 0;
    size_t n = (size_t)K16 * (D / 2) * 2;
    float *h = (float *)malloc(n * sizeof(float));
    if (!h) return ttt_seterr("cuda: out of memory");
    for (int p = 0; p < K16; p++)
        for (int i = 0; i < D / 2; i++) {
            double a = p * pow(theta, -2.0 * i / D);
            h[(p * (D / 2) + i) * 2] = (float)cos(a);
            h[(p * (D / 2) + i) * 2 + 1] = (float)sin(a);
        }
    cudaFree(g->rope_tab);
    g->rope_tab = NULL;
    cudaError_t e = cudaMalloc(&g->rope_tab, n * sizeof(float));
    if (e == cudaSuccess) e = cudaMemcpy(g->rope_tab, h, n * sizeof(float), cudaMemcpyHostToDevice);
    free(h);
    if (e != cudaSuccess) return ttt_seterr("cuda: rope table: %s", cudaGetErrorString(e));
    g->rope_D = D;
    g->rope_theta = theta;
    return 0;
}

/* ---------------------------------------------------------------- forward */

template <typename TX>
static void ln_fwd_launch(ttt_cuda *g, int vec, int y16, float *y, float *mean, float *rstd, const TX *x,
                          const float *w, const float *b, int rows, int C)
{
    const int nb = (rows + 7) / 8;
    __nv_bfloat16 *yb = (__nv_bfloat16 *)y;
    if (vec && y16) k_ln_fwd<4><<<nb, 256, 0, g->s>>>(yb, mean, rstd, x, w, b, rows, C);
    else if (vec) k_ln_fwd<4><<<nb, 256, 0, g->s>>>(y, mean, rstd, x, w, b, rows, C);
    else if (y16) k_ln_fwd<1><<<nb, 256, 0, g->s>>>(yb, mean, rstd, x, w, b, rows, C);
    else k_ln_fwd<1><<<nb, 256, 0, g->s>>>(y, mean, rstd, x, w, b, rows, C);
}

/* k_ln_fwd with 16-byte accesses when vec (C % 4 == 0), y in bf16 when y16,
 * x in bf16 when x16 */
static int ln_fwd(ttt_cuda *g, int vec, int y16, int x16, float *y, float *mean, float *rstd, const float *x,
                  const float *w, const float *b, int rows, int C)
{
    if (x16) ln_fwd_launch(g, vec, y16, y, mean, rstd, (const __nv_bfloat16 *)x, w, b, rows, C);
    else ln_fwd_launch(g, vec, y16, y, mean, rstd, x, w, b, rows, C);
    CK(cudaGetLastError());
    return 0;
}

/* k_ln_bwd, 16-byte accesses when vec (C % 4 == 0) */
template <typename TX>
static void ln_bwd(ttt_cuda *g, int vec, float *dx, const float *dy, const TX *x, const float *mean, const float *rstd,
                   const float *w, int rows, int C)
{
    if (vec) k_ln_bwd<4><<<(rows + 7) / 8, 256, 0, g->s>>>(dx, dy, x, mean, rstd, w, rows, C);
    else k_ln_bwd<1><<<(rows + 7) / 8, 256, 0, g->s>>>(dx, dy, x, mean, rstd, w, rows, C);
}

/* XQ, XK, XV = x W^T of q_proj, k_proj, v_proj as one strided batched GEMM
 * (three times the tiles in one launch) where bf16 mode finds the three
 * weights' copies equally spaced among the caller's (the model's shadow
 * keeps them in a row) and the outputs are (XK = XQ + BT C, XV = XK + BT C in
 * acts): 1 when it ran, 0 when the layout does not allow it, -1 on error. */
static int qkv_batched(ttt_cuda *g, int mode, int BT, int C, const void *xin, const ttt_cuda_params *p, float *XQ)
{
    if (mode != TTT_CUDA_BF16) return 0;
    const size_t cc = (size_t)C * C;
    const bf16 *wq = (const bf16 *)copy_of(g->shadow, g->nshadow, p->q_proj, cc);
    const bf16 *wk = (const bf16 *)copy_of(g->shadow, g->nshadow, p->k_proj, cc);
    const bf16 *wv = (const bf16 *)copy_of(g->shadow, g->nshadow, p->v_proj, cc);
    if (!wq || !wk || !wv || wk - wq < (ptrdiff_t)cc || wv - wk != wk - wq) return 0;
    const float one = 1.f, zero = 0.f;
    CB(cublasGemmStridedBatchedEx(g->blas, CUBLAS_OP_T, CUBLAS_OP_N, C, BT, C, &one, wq, CUDA_R_16BF, C, wk - wq, xin,
                                  CUDA_R_16BF, C, 0, &zero, XQ, CUDA_R_32F, C, (long long)BT * C, 3,
                                  CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
    return 1;
}

/* The inner learning rate lr [BT][H] from x (xin: its operand): in bf16 mode
 * one mma kernel (ttt_lr.cuh) where the shapes and alignment allow, else a
 * GEMM and the gate */
static int lr_forward(ttt_cuda *g, int mode, const ttt_layer_config *c, float *lr, const void *xin,
                      const ttt_cuda_params *p, int BT)
{
    const int C = c->C, H = c->H;
    const float scale = (float)(c->base_lr / c->D);
    const void *w;
    if (operand(g, mode, 1, p->lr_w, (size_t)H * C, &w)) return -1;
    if (mode == TTT_CUDA_BF16 && C % 128 == 0 && H <= 32 && (((uintptr_t)w | (uintptr_t)xin) & 15) == 0) {
        const bf16 *x16 = (const bf16 *)xin, *w16 = (const bf16 *)w;
        const unsigned nb = (BT + 15) / 16;
        if (H <= 16) k_lr_proj_tc<2><<<nb, 128, 0, g->s>>>(lr, x16, w16, p->lr_b, BT, C, H, scale);
        else k_lr_proj_tc<4><<<nb, 128, 0, g->s>>>(lr, x16, w16, p->lr_b, BT, C, H, scale);
        return 0;
    }
    if (gemm(g, mode, 0, 1, BT, H, C, xin, -1, w, -1, lr, 0.f)) return -1;
    k_lr_gate<<<nblk((size_t)BT * H), 256, 0, g->s>>>(lr, p->lr_b, H, (size_t)BT * H, scale);
    return 0;
}

extern "C" int ttt_cuda_layer_forward(ttt_cuda *g, int mode, const ttt_layer_config *c, float *out,
                                      float *acts, const float *x, const ttt_cuda_params *p, int B, int T)
{
    if (ttt_cuda_layer_check(c)) return -1;
    if (B < 1 || T < 1) return ttt_seterr("cuda layer: empty batch (B=%d T=%d)", B, T);
    CK(cudaSetDevice(g->dev));
    const int C = c->C, H = c->H, D = c->D, BT = B * T;
    const size_t btc = (size_t)BT * C;
    acts_layout L = layout(c, B, T);
    float *XQ = acts + L.XQ, *XK = acts + L.XK, *XV = acts + L.XV, *lr = acts + L.lr;
    if (rope_table(g, D, c->rope_theta)) return -1;

    ttt_prof_push(g->s, "ttt.in-proj");
    ttt_prof_push(g->s, "x-bf16");
    const void *xin;
    if (operand(g, mode, 0, x, btc, &xin)) return -1;
    if (c->share_qk) {
        float *U = acts + L.U;
        ttt_prof_next(g->s, "q,k");
        if (gemm(g, mode, 0, 1, BT, C, C, xin, -1, p->q_proj, 1, U, 0.f)) return -1;
        ttt_prof_next(g->s, "conv");
        DWCONV_LAUNCH(k_conv2, c->conv_kernel, dwconv_blocks(btc, C), 256, g->s, XQ, XK, U, p->conv_q_w, p->conv_q_b,
                      p->conv_k_w, p->conv_k_b, T, C, c->conv_kernel, btc);
        ttt_prof_next(g->s, "v");
        if (gemm(g, mode, 0, 1, BT, C, C, xin, -1, p->v_proj, 1, XV, 0.f)) return -1;
    } else {
        ttt_prof_next(g->s, "q,k,v");
        const int batched = qkv_batched(g, mode, BT, C, xin, p, XQ);
        if (batched < 0) return -1;
        if (!batched && (gemm(g, mode, 0, 1, BT, C, C, xin, -1, p->q_proj, 1, XQ, 0.f) ||
                         gemm(g, mode, 0, 1, BT, C, C, xin, -1, p->k_proj, 1, XK, 0.f) ||
                         gemm(g, mode, 0, 1, BT, C, C, xin, -1, p->v_proj, 1, XV, 0.f)))
            return -1;
    }
    /* lr gate: in bf16 mode from the bf16 x already made (half the bytes of this skinny GEMM) */
    ttt_prof_next(g->s, "lr");
    if (lr_forward(g, mode, c, lr, xin, p, BT)) return -1;
    ttt_prof_pop(g->s);
    /* bf16 mode: the inner loop on tensor cores, whose kernels rotate Q, K as they load them */
    const int tc = mode == TTT_CUDA_BF16;
    if (!tc) {
        k_rope<<<nblk(btc / 2), 256, 0, g->s>>>(XQ, g->rope_tab, T, C, D, btc / 2, 1.f);
        k_rope<<<nblk(btc / 2), 256, 0, g->s>>>(XK, g->rope_tab, T, C, D, btc / 2, 1.f);
    }
    CK(cudaGetLastError());
    ttt_prof_pop(g->s);

    ttt_inner_args a;
    memset(&a, 0, sizeof a);
    a.B = B; a.T = T; a.H = H; a.D = D;
    a.XQ = XQ; a.XK = XK; a.XV = XV; a.lr = lr;
    a.token_idx = p->token_idx; a.gamma = p->ttt_norm_w; a.beta = p->ttt_norm_b;
    a.W0 = p->W1; a.b0 = p->b1;
    a.Z = acts + L.Zin;
    a.z16 = zin16(mode);
    /* evaluation only: the tensor-core forwards write no checkpoints */
    a.states = g->nograd && tc ? NULL : acts + L.states;
    a.tc = tc;
    a.rope = tc ? g->rope_tab : NULL;
    {
        TTT_PROF(g->s, "ttt.inner");
        if (c->kind == TTT_MLP) {
            a.F = c->F; a.W20 = p->W2; a.b20 = p->b2;
            CK(ttt_inner_mlp_forward(&a, g->s));
        } else {
            CK(ttt_inner_linear_forward(&a, g->s));
        }
    }
    TTT_PROF(g->s, "ttt.out");

    /* o_proj's input (Y, or the gated O) in the GEMMs' precision: only they read it */
    float *Y = acts + L.Y;
    const int b16 = mode == TTT_CUDA_BF16;
    ttt_prof_push(g->s, "post-norm");
    if (ln_fwd(g, C % 4 == 0, b16 && !c->use_gate, zin16(mode), Y, acts + L.mean, acts + L.rstd, acts + L.Zin,
               p->post_norm_w, p->post_norm_b, BT, C))
        return -1;
    const float *O = Y;
    if (c->use_gate) {
        ttt_prof_next(g->s, "gate");
        if (gemm(g, mode, 0, 1, BT, C, C, xin, -1, p->g_proj, 1, acts + L.gpre, 0.f)) return -1;
        if (b16) k_gate<<<nblk(btc), 256, 0, g->s>>>((__nv_bfloat16 *)(acts + L.O), acts + L.gpre, Y, btc);
        else k_gate<<<nblk(btc), 256, 0, g->s>>>(acts + L.O, acts + L.gpre, Y, btc);
        O = acts + L.O;
    }
    ttt_prof_next(g->s, "o");
    if (gemm(g, mode, 0, 1, BT, C, C, O, -1, p->o_proj, 1, out, 0.f)) return -1;
    ttt_prof_pop(g->s);
    CK(cudaGetLastError());
    return 0;
}

/* ---------------------------------------------------------------- backward */

/* y = x W^T: dW += dy^T x, dx += dy W; dy converted once for both GEMMs
 * (ready: it is an operand of the mode already) */
static int proj_bwd(ttt_cuda *g, int mode, int BT, int C, const void *dy, int ready, const void *xin,
                    const float *W, float *dW, float *dx)
{
    const void *d = dy;
    if (!ready && operand(g, mode, 2, (const float *)dy, (size_t)BT * C, &d)) return -1;
    if (gemm(g, mode, 1, 0, C, C, BT, d, -1, xin, -1, dW, 1.f)) return -1;
    return gemm(g, mode, 0, 0, BT, C, C, d, -1, W, 1, dx, 1.f);
}

/* The output side's weight gradients (o_proj, the gate's g_proj, the post-norm's)
 * and the gate's term of dx (its first: written), on g->s; none of them is an
 * input of the inner backward */
static int out_grads(ttt_cuda *g, int mode, const ttt_layer_config *c, float *dx, const ttt_cuda_params *gr,
                     const float *acts, const acts_layout &L, const void *xin, const void *din, const float *dO,
                     const float *dG, const ttt_cuda_params *p, int B, int T)
{
    const int C = c->C, BT = B * T;
    const float *O = c->use_gate ? acts + L.O : acts + L.Y;
    TTT_PROF(g->s, "ttt.out-grads");
    if (gemm(g, mode, 1, 0, C, C, BT, din, -1, O, -1, gr->o_proj, 1.f)) return -1;   /* O: already an operand */
    if (c->use_gate) {
        if (gemm(g, mode, 1, 0, C, C, BT, dG, -1, xin, -1, gr->g_proj, 1.f)) return -1;
        /* dx's first term: written, not added (no zeroing pass, one read of dx fewer) */
        if (gemm(g, mode, 0, 0, BT, C, C, dG, -1, p->g_proj, 1, dx, 0.f)) return -1;
    }
    const dim3 colgrid((C + 127) / 128, (BT + COL_CHUNK - 1) / COL_CHUNK);
    if (zin16(mode))
        k_ln_bwd_params<<<colgrid, 128, 0, g->s>>>(gr->post_norm_w, gr->post_norm_b, dO,
                                                   (const __nv_bfloat16 *)(acts + L.Zin), acts + L.mean, acts + L.rstd,
                                                   BT, C);
    else
        k_ln_bwd_params<<<colgrid, 128, 0, g->s>>>(gr->post_norm_w, gr->post_norm_b, dO, acts + L.Zin, acts + L.mean,
                                                   acts + L.rstd, BT, C);
    CK(cudaGetLastError());
    return 0;
}

extern "C" int ttt_cuda_layer_backward(ttt_cuda *g, int mode, const ttt_layer_config *c, float *dx,
                                       const ttt_cuda_params *gr, const float *dout, const float *acts,
                                       const float *x, const ttt_cuda_params *p, int B, int T)
{
    if (ttt_cuda_layer_check(c)) return -1;
    if (g->nograd) return ttt_seterr("cuda layer: backward asked of a handle set for evaluation only");
    CK(cudaSetDevice(g->dev));
    const int C = c->C, H = c->H, D = c->D, BT = B * T;
    const size_t btc = (size_t)BT * C, bt = (size_t)BT;
    acts_layout L = layout(c, B, T);
    if (rope_table(g, D, c->rope_theta)) return -1;

    /* scratch: dO, dZin, dXQ, dXK, dXV, (dU), (dgpre), dlr, dtau, lr_b's partial
     * sums, (TTT-MLP: per-block dS) */
    size_t need = btc * (5 + c->share_qk + c->use_gate) + bt * H + 64 + (bt + LR_ROWS - 1) / LR_ROWS * H;
    size_t dS_off = need;
    if (c->kind == TTT_MLP) need += ttt_inner_mlp_dS_size(B, H, D);
    if (grow((void **)&g->ws, &g->ws_cap, need * sizeof(float))) return -1;
    float *dO = g->ws, *dZin = dO + btc, *dXQ = dZin + btc, *dXK = dXQ + btc, *dXV = dXK + btc;
    float *dU = c->share_qk ? dXV + btc : NULL;
    float *dG = dXV + btc * (1 + c->share_qk);   /* d gpre (use_gate) */
    float *dlr = dXV + btc * (1 + c->share_qk + c->use_gate), *dtau = dlr + bt * H, *dlr_part = dtau + 64;
    CK(cudaMemsetAsync(dtau, 0, K16 * sizeof(float), g->s));

    const dim3 colgrid((C + 127) / 128, (BT + COL_CHUNK - 1) / COL_CHUNK);
    const void *xin, *din;
    if (operand(g, mode, 0, x, btc, &xin)) return -1;
    const float *Y = acts + L.Y;

    /* What the inner backward needs: dO, through the gate, and dZin; the rest
     * of the output side is out_grads */
    ttt_prof_push(g->s, "ttt.out");
    ttt_prof_push(g->s, "o");
    if (operand(g, mode, 2, dout, btc, &din)) return -1;
    if (gemm(g, mode, 0, 0, BT, C, C, din, -1, p->o_proj, 1, dO, 0.f)) return -1;
    if (c->use_gate) {   /* dO -> dY, dgpre in the GEMMs' precision */
        ttt_prof_next(g->s, "gate");
        if (mode == TTT_CUDA_BF16) k_gate_bwd<<<nblk(btc), 256, 0, g->s>>>(dO, (__nv_bfloat16 *)dG, acts + L.gpre, Y, btc);
        else k_gate_bwd<<<nblk(btc), 256, 0, g->s>>>(dO, dG, acts + L.gpre, Y, btc);
    }
    ttt_prof_next(g->s, "post-norm");
    if (zin16(mode))
        ln_bwd(g, C % 4 == 0, dZin, dO, (const __nv_bfloat16 *)(acts + L.Zin), acts + L.mean, acts + L.rstd,
               p->post_norm_w, BT, C);
    else
        ln_bwd(g, C % 4 == 0, dZin, dO, acts + L.Zin, acts + L.mean, acts + L.rstd, p->post_norm_w, BT, C);
    CK(cudaGetLastError());
    ttt_prof_pop(g->s);
    ttt_prof_pop(g->s);

    /* inner loop */
    ttt_inner_args a;
    memset(&a, 0, sizeof a);
    a.B = B; a.T = T; a.H = H; a.D = D;
    a.XQ = acts + L.XQ; a.XK = acts + L.XK; a.XV = acts + L.XV; a.lr = acts + L.lr;
    a.token_idx = p->token_idx; a.gamma = p->ttt_norm_w; a.beta = p->ttt_norm_b;
    a.W0 = p->W1; a.b0 = p->b1;
    a.states = (float *)(acts + L.states);
    a.dZ = dZin; a.dXQ = dXQ; a.dXK = dXK; a.dXV = dXV; a.dlr = dlr; a.dtau = dtau;
    a.dgamma = gr->ttt_norm_w; a.dbeta = gr->ttt_norm_b; a.dW0 = gr->W1; a.db0 = gr->b1;
    a.tc = mode == TTT_CUDA_BF16;
    a.rope = a.tc ? g->rope_tab : NULL;
    /* tensor cores: dXV (and dXQ, dXK unless the convolutions read them) straight in bf16 */
    a.dv16 = a.tc;
    a.dqk16 = a.tc && !c->share_qk;
    /* the output side's weight gradients run beside the inner backward, on the
     * side stream, launched after it (tests/kernels/overlap_lab.cu: the inner
     * loop must hold its SMs first); measured: TTT-Linear forward+backward 10.15M
     * -> 10.69M tokens/s at 2k, 11.58M -> 11.93M at 8k; TTT-MLP unchanged */
    CK(cudaEventRecord(g->ev_fork, g->s));
    ttt_prof_push(g->s, "ttt.inner");
    if (c->kind == TTT_MLP) {
        a.F = c->F; a.W20 = p->W2; a.b20 = p->b2; a.dW20 = gr->W2; a.db20 = gr->b2;
        a.dS = g->ws + dS_off;
        CK(ttt_inner_mlp_backward(&a, g->s));
    } else {
        CK(ttt_inner_linear_backward(&a, g->s));
    }
    ttt_prof_pop(g->s);
    {
        CK(cudaStreamWaitEvent(g->side, g->ev_fork, 0));
        cudaStream_t main_s = g->s;
        cublasHandle_t main_blas = g->blas;
        g->s = g->side;   /* for the helpers, which use g->s and g->blas */
        g->blas = g->blas_side;
        int rc = out_grads(g, mode, c, dx, gr, acts, L, xin, din, dO, dG, p, B, T);
        g->s = main_s;
        g->blas = main_blas;
        if (rc) return -1;
        CK(cudaEventRecord(g->ev_join, g->side));
        CK(cudaStreamWaitEvent(g->s, g->ev_join, 0));
    }
    TTT_PROF(g->s, "ttt.in-proj");
    if (!a.rope) {
        k_rope<<<nblk(btc / 2), 256, 0, g->s>>>(dXQ, g->rope_tab, T, C, D, btc / 2, -1.f);
        k_rope<<<nblk(btc / 2), 256, 0, g->s>>>(dXK, g->rope_tab, T, C, D, btc / 2, -1.f);
    }
    k_token_grad<<<1, 32, 0, g->s>>>(gr->token_idx, dtau, p->token_idx);

    /* lr gate */
    ttt_prof_push(g->s, "lr");
    {
        const int nb = (BT + LR_ROWS - 1) / LR_ROWS;
        k_lr_colsum<true><<<nb, 256, 0, g->s>>>(dlr_part, dlr, acts + L.lr, BT, H, LR_ROWS, (float)(D / c->base_lr), 0);
        k_lr_colsum<false><<<1, 256, 0, g->s>>>(gr->lr_b, dlr_part, NULL, nb, H, nb, 0.f, 1);
    }
    {
        const void *dl;
        if (operand(g, mode, 2, dlr, bt * H, &dl)) return -1;
        if (gemm(g, mode, 1, 0, H, C, BT, dl, -1, xin, -1, gr->lr_w, 1.f)) return -1;
        /* dx's first term unless the gate's came first */
        if (gemm(g, mode, 0, 0, BT, C, H, dl, -1, p->lr_w, 1, dx, c->use_gate ? 1.f : 0.f)) return -1;
    }

    /* projections */
    if (c->share_qk) {
        int k = c->conv_kernel;
        const float *U = acts + L.U;
        ttt_prof_next(g->s, "conv");
        /* dU straight in the GEMMs' precision */
        if (mode == TTT_CUDA_BF16)
            DWCONV_LAUNCH(k_conv2_bwd_x, k, dwconv_blocks(btc, C), 256, g->s, (__nv_bfloat16 *)dU, dXQ, dXK, p->conv_q_w,
                          p->conv_k_w, T, C, k, btc);
        else DWCONV_LAUNCH(k_conv2_bwd_x, k, dwconv_blocks(btc, C), 256, g->s, dU, dXQ, dXK, p->conv_q_w, p->conv_k_w, T, C, k, btc);
        DWCONV_LAUNCH(k_conv2_bwd_w, k, colgrid, 128, g->s, gr->conv_q_w, gr->conv_q_b, dXQ, gr->conv_k_w, gr->conv_k_b, dXK,
                      U, BT, T, C, k);
        ttt_prof_next(g->s, "q,k");
        if (proj_bwd(g, mode, BT, C, dU, 1, xin, p->q_proj, gr->q_proj, dx)) return -1;
    } else {
        ttt_prof_next(g->s, "q,k");
        if (proj_bwd(g, mode, BT, C, dXQ, a.dqk16, xin, p->q_proj, gr->q_proj, dx)) return -1;
        if (proj_bwd(g, mode, BT, C, dXK, a.dqk16, xin, p->k_proj, gr->k_proj, dx)) return -1;
    }
    ttt_prof_next(g->s, "v");
    if (proj_bwd(g, mode, BT, C, dXV, a.dv16, xin, p->v_proj, gr->v_proj, dx)) return -1;
    ttt_prof_pop(g->s);
    CK(cudaGetLastError());
    return 0;
}
