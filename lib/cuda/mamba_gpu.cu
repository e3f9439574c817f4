/* mamba_gpu.cu - the Mamba baseline's block on the GPU (lib/ttt_cuda_mamba.h),
 * the twin of lib/layers/mamba.c with the same math:
 *   projections through cuBLAS (ttt_cuda_gemm_f32in), the causal depthwise
 *   conv (dwconv.cuh), elementwise gates, and a selective scan with one
 *   thread per (batch, channel): state h[16] in registers, sequential over
 *   time, neighbouring threads = neighbouring channels (coalesced). The
 *   forward saves the state before every MAMBA_CHUNK tokens; the backward
 *   walks the chunks in reverse, recomputes a chunk's states from the saved
 *   one into scratch, and runs the reverse recurrence through it.
 * Reductions over channels (dBm, dCm) and over the batch (dA, dD) go through
 * per-warp / per-batch partials reduced in a fixed order: the scan backward is
 * deterministic (the conv weight gradient of dwconv.cuh uses atomics).
 * Every entry point issues a GEMM first: ttt_cuda_gemm_f32in selects the
 * handle's device before the kernels run on its stream. */
#include <cuda_runtime.h>
#include <stddef.h>

extern "C" {
#include "err.h"
}
#include "ttt_cuda_mamba.h"
#include "ttt_cuda_internal.cuh"
#include "dwconv.cuh"

#define MS MAMBA_D_STATE   /* the scan kernels hold S = 16 states per thread */
#define MCH MAMBA_CHUNK
#define SCAN_THREADS 128   /* channels per scan block: a multiple of 32 */
#define ROW_CHUNK 256      /* rows per partial of the column sums */

#define CK(call) do { cudaError_t e_ = (call); if (e_ != cudaSuccess) \
    return ttt_seterr("cuda mamba: %s: %s (%s:%d)", #call, cudaGetErrorString(e_), __FILE__, __LINE__); } while (0)
#define LAUNCHED() CK(cudaGetLastError())

namespace {

__device__ __forceinline__ float m_sigm(float x) { return 1.f / (1.f + expf(-x)); }
/* softplus, linear above 20 as in PyTorch (threshold=20) and mamba.c */
__device__ __forceinline__ float m_softplus(float x) { return x > 20.f ? x : log1pf(expf(x)); }

/* ---------------------------------------------------------------- elementwise */

/* xc = silu(u) */
__global__ void km_silu(float *xc, const float *u, size_t n)
{
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x, st = (size_t)gridDim.x * blockDim.x;
    for (; i < n; i += st) xc[i] = u[i] * m_sigm(u[i]);
}

/* d *= silu'(u) */
__global__ void km_silu_bwd(float *d, const float *u, size_t n)
{
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x, st = (size_t)gridDim.x * blockDim.x;
    for (; i < n; i += st) {
        float s = m_sigm(u[i]);
        d[i] *= s * (1.f + u[i] * (1.f - s));
    }
}

/* dst [rows, ncol] = src[:, :ncol] with row stride ld; n = rows * ncol */
__global__ void km_gather_cols(float *dst, const float *src, int ld, int ncol, size_t n)
{
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x, st = (size_t)gridDim.x * blockDim.x;
    for (; i < n; i += st) dst[i] = src[(i / ncol) * ld + i % ncol];
}

/* dst[:, :ncol] (row stride ld) = src [rows, ncol]; n = rows * ncol */
__global__ void km_scatter_cols(float *dst, int ld, const float *src, int ncol, size_t n)
{
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x, st = (size_t)gridDim.x * blockDim.x;
    for (; i < n; i += st) dst[(i / ncol) * ld + i % ncol] = src[i];
}

/* dtp += bias (kept for the backward), dt = softplus(dtp); rows of E */
__global__ void km_dt(float *dtp, float *dt, const float *bias, int E, size_t n)
{
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x, st = (size_t)gridDim.x * blockDim.x;
    for (; i < n; i += st) {
        float v = dtp[i] + bias[i % E];
        dtp[i] = v;
        dt[i] = m_softplus(v);
    }
}

/* d *= sigmoid(p): softplus' */
__global__ void km_mul_sigm(float *d, const float *p, size_t n)
{
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x, st = (size_t)gridDim.x * blockDim.x;
    for (; i < n; i += st) d[i] *= m_sigm(p[i]);
}

/* yg = y silu(z) */
__global__ void km_gate(float *yg, const float *y, const float *z, size_t n)
{
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x, st = (size_t)gridDim.x * blockDim.x;
    for (; i < n; i += st) yg[i] = y[i] * z[i] * m_sigm(z[i]);
}

/* from dyg (in dy): dz = dyg y silu'(z), dy = dyg silu(z) */
__global__ void km_gate_bwd(float *dy, float *dz, const float *y, const float *z, size_t n)
{
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x, st = (size_t)gridDim.x * blockDim.x;
    for (; i < n; i += st) {
        float zz = z[i], s = m_sigm(zz), g = dy[i];
        dz[i] = g * y[i] * s * (1.f + zz * (1.f - s));
        dy[i] = g * zz * s;
    }
}

/* part[chunk, c] = sum of x[r, c] over the rows r of chunk blockIdx.y */
__global__ void km_colsum_part(float *part, const float *x, int rows, int C)
{
    int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= C) return;
    int r0 = blockIdx.y * ROW_CHUNK, r1 = min(rows, r0 + ROW_CHUNK);
    float acc = 0.f;
    for (int r = r0; r < r1; r++) acc += x[(size_t)r * C + c];
    part[(size_t)blockIdx.y * C + c] = acc;
}

/* out[c] += sum over chunks of part[chunk, c], in chunk order */
__global__ void km_colsum_fin(float *out, const float *part, int nchunk, int C)
{
    int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= C) return;
    float acc = 0.f;
    for (int j = 0; j < nchunk; j++) acc += part[(size_t)j * C + c];
    out[c] += acc;
}

/* ---------------------------------------------------------------- selective scan */

/* One step of the recurrence for one channel; the forward, the backward's
 * recomputation and the decoder share it, so they agree bit for bit.
 *   h[s] = exp(dt a[s]) h[s] + dt u bm[s] */
__device__ __forceinline__ void m_step(float (&h)[MS], const float (&a)[MS], float d, float x,
                                       const float *bm)
{
    float dx = d * x;
#pragma unroll
    for (int s = 0; s < MS; s++) h[s] = fmaf(expf(d * a[s]), h[s], dx * bm[s]);
}

/* y [B,T,E]; hs [B,nch,E,S] the state before each chunk; u, dt [B,T,E];
 * Bm, Cm at columns R and R+S of dbl [B,T,W]. grid (ceil(E/blockDim), B). */
__global__ void km_scan_fwd(float *y, float *hs, const float *u, const float *dt, const float *A_log,
                            const float *dbl, int W, int R, const float *Dv, int T, int E)
{
    int e = blockIdx.x * blockDim.x + threadIdx.x, b = blockIdx.y;
    if (e >= E) return;
    int nch = (T + MCH - 1) / MCH;
    float a[MS], h[MS];
#pragma unroll
    for (int s = 0; s < MS; s++) {
        a[s] = -expf(A_log[(size_t)e * MS + s]);
        h[s] = 0.f;
    }
    float De = Dv[e];
    for (int t = 0; t < T; t++) {
        size_t n = (size_t)b * T + t;
        if (t % MCH == 0) {
            float *o = hs + (((size_t)b * nch + t / MCH) * E + e) * MS;
#pragma unroll
            for (int s = 0; s < MS; s++) o[s] = h[s];
        }
        const float *bm = dbl + n * W + R, *cm = bm + MS;
        float x = u[n * E + e];
        m_step(h, a, dt[n * E + e], x, bm);
        float acc = 0.f;
#pragma unroll
        for (int s = 0; s < MS; s++) acc += h[s] * cm[s];
        y[n * E + e] = acc + De * x;
    }
}

/* Warp reduce-scatter of 32 values per lane: afterwards v[0] of lane l holds
 * the sum over the 32 lanes of value l. Each step halves the values a lane
 * keeps: lanes with bit `Wd` set keep the upper half, the partner the lower. */
template <int Wd>
__device__ __forceinline__ void m_rs_step(float (&v)[32], int lane)
{
    const bool up = (lane & Wd) != 0;
#pragma unroll
    for (int i = 0; i < Wd; i++) {
        float send = up ? v[i] : v[i + Wd];
        float keep = up ? v[i + Wd] : v[i];
        v[i] = keep + __shfl_xor_sync(0xffffffffu, send, Wd);
    }
}

__device__ __forceinline__ float m_reduce_scatter32(float (&v)[32], int lane)
{
    m_rs_step<16>(v, lane);
    m_rs_step<8>(v, lane);
    m_rs_step<4>(v, lane);
    m_rs_step<2>(v, lane);
    m_rs_step<1>(v, lane);
    return v[0];
}

/* index of the recomputed chunk states Hs [B, MCH, S, E] */
__device__ __forceinline__ size_t m_hidx(int b, int j, int s, int e, int E)
{
    return (((size_t)b * MCH + j) * MS + s) * E + e;
}

/* Reverse scan. Outputs: du, ddt [B,T,E] (=); pbc [B,nw,T,2S] per-warp partial
 * sums of dBm (first S) and dCm (last S) over the warp's channels; pA [B,E,S]
 * and pD [B,E] per-sequence partials of dA and dD. Hs: scratch [B,MCH,S,E].
 * blockDim a multiple of 32, grid (ceil(E/blockDim), B); nw = ceil(E/32). Lanes
 * past E take part in the shuffles with zeros. */
__global__ void __launch_bounds__(SCAN_THREADS)
km_scan_bwd(float *du, float *ddt, float *pbc, float *pA, float *pD, float *Hs,
            const float *dy, const float *hs, const float *u, const float *dt, const float *A_log,
            const float *dbl, int W, int R, const float *Dv, int T, int E, int nw)
{
    const int e = blockIdx.x * blockDim.x + threadIdx.x, b = blockIdx.y;
    const int lane = threadIdx.x & 31, wg = e >> 5;   /* the same for the whole warp */
    if (wg >= nw) return;                              /* whole warps only */
    const bool ok = e < E;
    const int nch = (T + MCH - 1) / MCH;
    float a[MS], dh[MS], pa[MS], pd = 0.f;
#pragma unroll
    for (int s = 0; s < MS; s++) {
        a[s] = ok ? -expf(A_log[(size_t)e * MS + s]) : 0.f;
        dh[s] = 0.f;
        pa[s] = 0.f;
    }
    const float De = ok ? Dv[e] : 0.f;
    for (int ch = nch - 1; ch >= 0; ch--) {
        const int t0 = ch * MCH, t1 = min(T, t0 + MCH);
        const float *h0 = hs + (((size_t)b * nch + ch) * E + (ok ? e : 0)) * MS;
        /* recompute the states h_t, t in [t0, t1), into Hs[j = t - t0] */
        if (ok) {
            float h[MS];
#pragma unroll
            for (int s = 0; s < MS; s++) h[s] = h0[s];
            for (int t = t0; t < t1; t++) {
                size_t n = (size_t)b * T + t;
                m_step(h, a, dt[n * E + e], u[n * E + e], dbl + n * W + R);
#pragma unroll
                for (int s = 0; s < MS; s++) Hs[m_hidx(b, t - t0, s, e, E)] = h[s];
            }
        }
        /* reverse: dh carries dL/dh_t; h_t = exp(d a) h_{t-1} + d u Bm, y = h.Cm + D u */
        for (int t = t1 - 1; t >= t0; t--) {
            const size_t n = (size_t)b * T + t;
            const int j = t - t0;
            const float *bm = dbl + n * W + R, *cm = bm + MS;
            float g = 0.f, d = 0.f, x = 0.f;
            if (ok) {
                g = dy[n * E + e];
                d = dt[n * E + e];
                x = u[n * E + e];
            }
            float part[2 * MS];
            float dxv = g * De, dd = 0.f;
            pd += g * x;
#pragma unroll
            for (int s = 0; s < MS; s++) {
                float ht = 0.f, hp = 0.f;
                if (ok) {
                    ht = Hs[m_hidx(b, j, s, e, E)];
                    hp = j > 0 ? Hs[m_hidx(b, j - 1, s, e, E)] : h0[s];
                }
                float ea = expf(d * a[s]);
                float v = dh[s] + g * cm[s];
                part[MS + s] = g * ht;                      /* dCm */
                dd += v * (hp * ea * a[s] + bm[s] * x);
                pa[s] += v * hp * ea * d;
                part[s] = v * d * x;                        /* dBm */
                dxv += v * d * bm[s];
                dh[s] = v * ea;
            }
            float sum = m_reduce_scatter32(part, lane);    /* lane l: value l */
            pbc[(((size_t)b * nw + wg) * T + t) * (2 * MS) + lane] = sum;
            if (ok) {
                du[n * E + e] = dxv;
                ddt[n * E + e] = dd;
            }
        }
    }
    if (ok) {
#pragma unroll
        for (int s = 0; s < MS; s++) pA[((size_t)b * E + e) * MS + s] = pa[s];
        pD[(size_t)b * E + e] = pd;
    }
}

/* ddbl[n, R + j] = sum over warps of pbc[b, w, t, j], j < 2S (dBm then dCm);
 * n = b*T + t, i over [B*T*2S] */
__global__ void km_bc_reduce(float *ddbl, const float *pbc, int W, int R, int T, int nw, size_t n_all)
{
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x, st = (size_t)gridDim.x * blockDim.x;
    for (; i < n_all; i += st) {
        size_t n = i / (2 * MS);
        int jj = (int)(i % (2 * MS));
        size_t b = n / T, t = n % T;
        float acc = 0.f;
        for (int w = 0; w < nw; w++) acc += pbc[((b * nw + w) * T + t) * (2 * MS) + jj];
        ddbl[n * W + R + jj] = acc;
    }
}

/* gA_log[e,s] += (sum_b pA[b,e,s]) * A[e,s], A = -exp(A_log); gD[e] += sum_b pD[b,e] */
__global__ void km_dA_reduce(float *gA_log, float *gD, const float *pA, const float *pD,
                             const float *A_log, int B, int E)
{
    size_t n = (size_t)E * MS;
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x, st = (size_t)gridDim.x * blockDim.x;
    for (; i < n; i += st) {
        float acc = 0.f;
        for (int b = 0; b < B; b++) acc += pA[(size_t)b * n + i];
        gA_log[i] += acc * -expf(A_log[i]);
        if (i < (size_t)E) {
            float ad = 0.f;
            for (int b = 0; b < B; b++) ad += pD[(size_t)b * E + i];
            gD[i] += ad;
        }
    }
}

/* ---------------------------------------------------------------- decoding */

/* Per (b, e): shift the conv buffer conv [B,E,k] (oldest first), append xi of
 * token t (row b*P + t of xi [B,P,E]), u = silu(conv + bias) [B,E]. */
__global__ void km_dec_conv(float *u, float *conv, const float *xi, const float *w, const float *bias,
                            int B, int P, int t, int E, int k)
{
    size_t n = (size_t)B * E;
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x, st = (size_t)gridDim.x * blockDim.x;
    for (; i < n; i += st) {
        size_t b = i / E;
        int e = (int)(i % E);
        float *c = conv + i * k;
        for (int j = 0; j + 1 < k; j++) c[j] = c[j + 1];
        c[k - 1] = xi[(b * P + t) * E + e];
        float acc = bias[e];
        for (int j = 0; j < k; j++) acc = fmaf(w[(size_t)e * k + j], c[j], acc);   /* as k_conv */
        u[i] = acc * m_sigm(acc);
    }
}

/* Per (b, e): dt = softplus(dtp + bias), one recurrence step on ssm [B,E,S],
 * yg row b*P + t = (h.Cm + D u) silu(z). dbl [B,W]: Bm, Cm at columns R, R+S. */
__global__ void km_dec_step(float *yg, float *ssm, const float *u, const float *dtp, const float *dt_b,
                            const float *dbl, int W, int R, const float *A_log, const float *Dv,
                            const float *z, int B, int P, int t, int E)
{
    size_t n = (size_t)B * E;
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x, st = (size_t)gridDim.x * blockDim.x;
    for (; i < n; i += st) {
        size_t b = i / E;
        int e = (int)(i % E);
        float a[MS], h[MS];
        float *hp = ssm + i * MS;
#pragma unroll
        for (int s = 0; s < MS; s++) {
            a[s] = -expf(A_log[(size_t)e * MS + s]);
            h[s] = hp[s];
        }
        const float *bm = dbl + b * W + R, *cm = bm + MS;
        float x = u[i];
        m_step(h, a, m_softplus(dtp[i] + dt_b[e]), x, bm);
        float acc = 0.f;
#pragma unroll
        for (int s = 0; s < MS; s++) {
            hp[s] = h[s];
            acc += h[s] * cm[s];
        }
        size_t o = (b * P + t) * E + e;
        float zz = z[o];
        yg[o] = (acc + Dv[e] * x) * zz * m_sigm(zz);
    }
}

}  /* namespace */

/* ---------------------------------------------------------------- host side */

static unsigned m_blocks(size_t n, int t = 256)
{
    size_t b = (n + t - 1) / t;
    return (unsigned)(b > 65536 ? 65536 : (b ? b : 1));
}

static int nchunks(int T) { return (T + MCH - 1) / MCH; }

/* The shapes the kernels assume: S = 16 (states in registers), k <= 16
 * (dwconv.cuh), positive sizes. */
static int check(const mamba_config *c, int B, int T, const char *what)
{
    if (c->S != MS) return ttt_seterr("cuda mamba: d_state %d unsupported (the GPU scan holds %d)", c->S, MS);
    if (c->k < 1 || c->k > 16) return ttt_seterr("cuda mamba: conv width %d unsupported (1..16)", c->k);
    if (c->C < 1 || c->E < 1 || c->R < 1) return ttt_seterr("cuda mamba: bad widths C=%d E=%d R=%d", c->C, c->E, c->R);
    if (B < 1 || T < 1) return ttt_seterr("cuda mamba: %s: bad shape B=%d %s=%d", what, B, what[0] == 'd' ? "P" : "T", T);
    return 0;
}

/* The forward's activations: the CPU layer's set plus dtr, the contiguous
 * copy of dbl[:, :R] that the dt GEMM reads (the GEMM takes packed operands). */
typedef struct { float *xi, *z, *u, *xc, *dbl, *dtr, *dtp, *dt, *y, *yg, *hs; } layout_t;

static size_t layout(const mamba_config *c, float *acts, int B, int T, layout_t *L)
{
    size_t N = (size_t)B * T, NE = N * c->E, W = c->R + 2 * c->S;
    size_t sizes[] = { NE, NE, NE, NE, N * W, N * c->R, NE, NE, NE, NE,
                       (size_t)B * nchunks(T) * c->E * c->S };
    float **ptrs[] = { &L->xi, &L->z, &L->u, &L->xc, &L->dbl, &L->dtr, &L->dtp, &L->dt, &L->y, &L->yg,
                       &L->hs };
    size_t off = 0;
    for (int i = 0; i < 11; i++) {
        if (acts) *ptrs[i] = acts + off;
        off += sizes[i];
    }
    return off;
}

extern "C" size_t ttt_cuda_mamba_acts_size(const mamba_config *c, int B, int T)
{
    layout_t L;
    return layout(c, NULL, B, T, &L);
}

extern "C" int ttt_cuda_mamba_forward(ttt_cuda *g, int mode, const mamba_config *c, float *out, float *acts,
                                      const float *x, const ttt_cuda_mamba_params *p, int B, int T)
{
    if (check(c, B, T, "T")) return -1;
    layout_t L;
    layout(c, acts, B, T, &L);
    const int N = B * T, C = c->C, E = c->E, R = c->R, W = R + 2 * c->S;
    const size_t NE = (size_t)N * E;
    cudaStream_t st = ttt_cuda_stream(g);
    /* [xi, z] = x Win^T */
    if (ttt_cuda_gemm_f32in(g, mode, 0, 1, N, E, C, x, p->in_proj, L.xi, 0.f)) return -1;
    if (ttt_cuda_gemm_f32in(g, mode, 0, 1, N, E, C, x, p->in_proj + (size_t)E * C, L.z, 0.f)) return -1;
    /* xc = silu(conv(xi) + b) */
    DWCONV_LAUNCH(k_conv, c->k, dwconv_blocks(NE, E), 256, st, L.u, L.xi, p->conv_w, p->conv_b, NULL, T, E, c->k, NE);
    LAUNCHED();
    km_silu<<<m_blocks(NE), 256, 0, st>>>(L.xc, L.u, NE);
    LAUNCHED();
    /* [dtr, Bm, Cm] = xc Wx^T; dt = softplus(dtr Wdt^T + bdt) */
    if (ttt_cuda_gemm_f32in(g, mode, 0, 1, N, W, E, L.xc, p->x_proj, L.dbl, 0.f)) return -1;
    km_gather_cols<<<m_blocks((size_t)N * R), 256, 0, st>>>(L.dtr, L.dbl, W, R, (size_t)N * R);
    LAUNCHED();
    if (ttt_cuda_gemm_f32in(g, mode, 0, 1, N, E, R, L.dtr, p->dt_w, L.dtp, 0.f)) return -1;
    km_dt<<<m_blocks(NE), 256, 0, st>>>(L.dtp, L.dt, p->dt_b, E, NE);
    LAUNCHED();
    /* the selective scan */
    dim3 grid((E + SCAN_THREADS - 1) / SCAN_THREADS, B);
    km_scan_fwd<<<grid, SCAN_THREADS, 0, st>>>(L.y, L.hs, L.xc, L.dt, p->A_log, L.dbl, W, R, p->D, T, E);
    LAUNCHED();
    /* out = (y silu(z)) Wout^T */
    km_gate<<<m_blocks(NE), 256, 0, st>>>(L.yg, L.y, L.z, NE);
    LAUNCHED();
    return ttt_cuda_gemm_f32in(g, mode, 0, 1, N, C, E, L.yg, p->out_proj, out, 0.f);
}

/* backward scratch: dy dz dxc ddt dxi [N,E], ddbl [N,W], ddtr [N,R], pbc
 * [B,nw,T,2S], pA [B,E,S], pD [B,E], Hs [B,MCH,S,E], column partials [nrc,E] */
static size_t bwd_scratch(const mamba_config *c, int B, int T, size_t *parts)
{
    size_t N = (size_t)B * T, NE = N * c->E, W = c->R + 2 * c->S, nw = (c->E + 31) / 32;
    size_t nrc = (N + ROW_CHUNK - 1) / ROW_CHUNK;
    size_t sizes[] = { NE, NE, NE, NE, NE, N * W, N * c->R, (size_t)B * nw * T * 2 * MS,
                       (size_t)B * c->E * MS, (size_t)B * c->E, (size_t)B * MCH * MS * c->E,
                       nrc * c->E };
    size_t off = 0;
    for (int i = 0; i < 12; i++) {
        if (parts) parts[i] = off;
        off += sizes[i];
    }
    return off;
}

extern "C" int ttt_cuda_mamba_backward(ttt_cuda *g, int mode, const mamba_config *c, float *dx,
                                       const ttt_cuda_mamba_params *grad, const float *dout, const float *acts,
                                       const float *x, const ttt_cuda_mamba_params *p, int B, int T)
{
    if (check(c, B, T, "T")) return -1;
    layout_t L;
    layout(c, (float *)acts, B, T, &L);
    const int N = B * T, C = c->C, E = c->E, R = c->R, W = R + 2 * c->S, nw = (E + 31) / 32;
    const int nrc = (N + ROW_CHUNK - 1) / ROW_CHUNK;
    const size_t NE = (size_t)N * E;
    cudaStream_t st = ttt_cuda_stream(g);
    /* out = yg Wout^T (first: the GEMM selects the handle's device, then the scratch is allocated there) */
    if (ttt_cuda_gemm_f32in(g, mode, 1, 0, C, E, N, dout, L.yg, grad->out_proj, 1.f)) return -1;
    size_t off[12];
    float *ws = ttt_cuda_scratch(g, bwd_scratch(c, B, T, off));
    if (!ws) return -1;
    float *dy = ws + off[0], *dz = ws + off[1], *dxc = ws + off[2], *ddt = ws + off[3], *dxi = ws + off[4];
    float *ddbl = ws + off[5], *ddtr = ws + off[6], *pbc = ws + off[7], *pA = ws + off[8], *pD = ws + off[9];
    float *Hs = ws + off[10], *cpart = ws + off[11];
    if (ttt_cuda_gemm_f32in(g, mode, 0, 0, N, E, C, dout, p->out_proj, dy, 0.f)) return -1;
    /* yg = y silu(z) */
    km_gate_bwd<<<m_blocks(NE), 256, 0, st>>>(dy, dz, L.y, L.z, NE);
    LAUNCHED();
    /* the scan: dxc (=), ddt (=), dBm/dCm into ddbl, dA_log and dD (+=) */
    dim3 grid((E + SCAN_THREADS - 1) / SCAN_THREADS, B);
    km_scan_bwd<<<grid, SCAN_THREADS, 0, st>>>(dxc, ddt, pbc, pA, pD, Hs, dy, L.hs, L.xc, L.dt, p->A_log,
                                               L.dbl, W, R, p->D, T, E, nw);
    LAUNCHED();
    size_t nbc = (size_t)N * 2 * MS;
    km_bc_reduce<<<m_blocks(nbc), 256, 0, st>>>(ddbl, pbc, W, R, T, nw, nbc);
    LAUNCHED();
    km_dA_reduce<<<m_blocks((size_t)E * MS), 256, 0, st>>>(grad->A_log, grad->D, pA, pD, p->A_log, B, E);
    LAUNCHED();
    /* dt = softplus(dtr Wdt^T + bdt) */
    km_mul_sigm<<<m_blocks(NE), 256, 0, st>>>(ddt, L.dtp, NE);
    LAUNCHED();
    dim3 cgrid((E + 127) / 128, nrc);
    km_colsum_part<<<cgrid, 128, 0, st>>>(cpart, ddt, N, E);
    LAUNCHED();
    km_colsum_fin<<<(E + 127) / 128, 128, 0, st>>>(grad->dt_b, cpart, nrc, E);
    LAUNCHED();
    if (ttt_cuda_gemm_f32in(g, mode, 1, 0, E, R, N, ddt, L.dtr, grad->dt_w, 1.f)) return -1;
    if (ttt_cuda_gemm_f32in(g, mode, 0, 0, N, R, E, ddt, p->dt_w, ddtr, 0.f)) return -1;
    km_scatter_cols<<<m_blocks((size_t)N * R), 256, 0, st>>>(ddbl, W, ddtr, R, (size_t)N * R);
    LAUNCHED();
    /* [dtr, Bm, Cm] = xc Wx^T */
    if (ttt_cuda_gemm_f32in(g, mode, 1, 0, W, E, N, ddbl, L.xc, grad->x_proj, 1.f)) return -1;
    if (ttt_cuda_gemm_f32in(g, mode, 0, 0, N, E, W, ddbl, p->x_proj, dxc, 1.f)) return -1;
    /* xc = silu(u), u = conv(xi) + b */
    km_silu_bwd<<<m_blocks(NE), 256, 0, st>>>(dxc, L.u, NE);
    LAUNCHED();
    DWCONV_LAUNCH(k_conv_bwd_x, c->k, dwconv_blocks(NE, E), 256, st, dxi, dxc, p->conv_w, T, E, c->k, NE, 0);
    LAUNCHED();
    dim3 wgrid((E + 127) / 128, (N + DWCONV_COL_CHUNK - 1) / DWCONV_COL_CHUNK);
    DWCONV_LAUNCH(k_conv_bwd_w, c->k, wgrid, 128, st, grad->conv_w, grad->conv_b, dxc, L.xi, N, T, E, c->k);
    LAUNCHED();
    /* [xi, z] = x Win^T */
    if (ttt_cuda_gemm_f32in(g, mode, 1, 0, E, C, N, dxi, x, grad->in_proj, 1.f)) return -1;
    if (ttt_cuda_gemm_f32in(g, mode, 1, 0, E, C, N, dz, x, grad->in_proj + (size_t)E * C, 1.f)) return -1;
    if (ttt_cuda_gemm_f32in(g, mode, 0, 0, N, C, E, dxi, p->in_proj, dx, 0.f)) return -1;
    return ttt_cuda_gemm_f32in(g, mode, 0, 0, N, C, E, dz, p->in_proj + (size_t)E * C, dx, 1.f);
}

/* decode scratch: xi, z, yg [B,P,E]; u, dtp [B,E]; dbl [B,W]; dtr [B,R] */
extern "C" size_t ttt_cuda_mamba_decode_scratch_size(const mamba_config *c, int B, int P)
{
    size_t W = c->R + 2 * c->S;
    return 3 * (size_t)B * P * c->E + (size_t)B * (2 * c->E + W + c->R);
}

extern "C" int ttt_cuda_mamba_decode(ttt_cuda *g, int mode, const mamba_config *c, float *out, float *state,
                                     const float *x, const ttt_cuda_mamba_params *p, int B, int P, float *scratch)
{
    if (check(c, B, P, "decode")) return -1;
    const int C = c->C, E = c->E, R = c->R, W = R + 2 * c->S, BP = B * P;
    const size_t BE = (size_t)B * E;
    float *conv = state, *ssm = state + BE * c->k;
    float *xi = scratch, *z = xi + (size_t)BP * E, *yg = z + (size_t)BP * E;
    float *u = yg + (size_t)BP * E, *dtp = u + BE, *dbl = dtp + BE, *dtr = dbl + (size_t)B * W;
    cudaStream_t st = ttt_cuda_stream(g);
    /* the projections act row by row: all P tokens at once */
    if (ttt_cuda_gemm_f32in(g, mode, 0, 1, BP, E, C, x, p->in_proj, xi, 0.f)) return -1;
    if (ttt_cuda_gemm_f32in(g, mode, 0, 1, BP, E, C, x, p->in_proj + (size_t)E * C, z, 0.f)) return -1;
    for (int t = 0; t < P; t++) {
        km_dec_conv<<<m_blocks(BE), 256, 0, st>>>(u, conv, xi, p->conv_w, p->conv_b, B, P, t, E, c->k);
        LAUNCHED();
        if (ttt_cuda_gemm_f32in(g, mode, 0, 1, B, W, E, u, p->x_proj, dbl, 0.f)) return -1;
        km_gather_cols<<<m_blocks((size_t)B * R), 256, 0, st>>>(dtr, dbl, W, R, (size_t)B * R);
        LAUNCHED();
        if (ttt_cuda_gemm_f32in(g, mode, 0, 1, B, E, R, dtr, p->dt_w, dtp, 0.f)) return -1;
        km_dec_step<<<m_blocks(BE), 256, 0, st>>>(yg, ssm, u, dtp, p->dt_b, dbl, W, R, p->A_log, p->D, z,
                                                  B, P, t, E);
        LAUNCHED();
    }
    return ttt_cuda_gemm_f32in(g, mode, 0, 1, BP, C, E, yg, p->out_proj, out, 0.f);
}
