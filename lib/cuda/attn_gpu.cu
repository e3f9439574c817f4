/* attn_gpu.cu - the Transformer baseline's attention block on the GPU
 * (lib/ttt_cuda_attn.h), the twin of lib/layers/attn.c:
 *   projections through cuBLAS (ttt_cuda_gemm_f32in: fp32 or bf16 inputs),
 *   RoPE ("rotate half", angles computed in double as attn_rope_row does),
 *   a flash-attention forward (online softmax over 64-key tiles, only the
 *   row log-sum-exp kept), a FlashAttention-2 backward split in two
 *   deterministic kernels (key-tile parallel for dK/dV, query-tile parallel
 *   for dQ; no atomics), and KV-cache decoding split over the cache
 *   ("flash-decoding": partial softmax per chunk of keys, then a log-sum-exp
 *   merge; kernels in attn_decode.cuh).
 *
 * Layouts: Q, K, V, O stay token-major [B,T,C] (row b*T+t, column h*D+d) so
 * that the GEMMs write and read them in place; lse is [B,H,T].
 * The attention kernels here run in fp32 (TTT_CUDA_F32, and TTT_CUDA_BF16
 * for head dims other than 64, 128). Head dims: any even D <= 128 (the
 * kernels are instantiated for padded widths 16, 32, 64, 128; the padding
 * lanes hold zeros). In TTT_CUDA_BF16 mode, head dims 64 and 128 go to the
 * tensor-core FlashAttention-2 kernels of attn_flash_tc.cu (same tensors;
 * bf16 operands, fp32 accumulation). Decoding stays fp32.
 */
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <math.h>
#include <stddef.h>

extern "C" {
#include "err.h"
}
#include "attn_decode.cuh"
#include "attn_flash_tc.cuh"
#include "ttt_cuda_attn.h"
#include "ttt_cuda_internal.cuh"

#define CK(call) do { cudaError_t e_ = (call); if (e_ != cudaSuccess) \
    return ttt_seterr("cuda: %s: %s (%s:%d)", #call, cudaGetErrorString(e_), __FILE__, __LINE__); } while (0)

#define TILE 64          /* query and key rows per tile (= ATTN_BQ = ATTN_BK) */
#define NTHR 256         /* threads per flash block: 16 x 16 */
#define PLD (TILE + 1)   /* leading dimension of the [64][64] probability tiles */

namespace {

/* ---------------------------------------------------------------- small kernels */

/* RoPE in place on x [rows, C]: row r is at position pos0 + r % T; lanes i
 * and i + D/2 of every head form a pair rotated by pos * theta^(-2i/D)
 * (computed in double, as the CPU's attn_rope_row); sign -1 rotates back. */
__global__ void k_rope(float *x, size_t rows, int T, long pos0, int C, int D, double theta, double sign)
{
    const int h2 = D / 2, hp = C / 2;
    size_t n = rows * hp;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        size_t row = i / hp;
        int pc = (int)(i % hp), h = pc / h2, k = pc % h2;
        double a = (double)(pos0 + (long)(row % T)) * pow(theta, -(double)(2 * k) / D), s, c;
        sincos(a, &s, &c);
        float co = (float)c, si = (float)(sign * s);
        float *v = x + row * C + (size_t)h * D;
        float u = v[k], w = v[k + h2];
        v[k] = u * co - w * si;
        v[k + h2] = w * co + u * si;
    }
}

/* delta[(b*H+h)*T + t] = dO . O over the D lanes of head h at token (b,t);
 * one warp per (token, head), grid-striding. RB (the tensor-core backward):
 * dO rounded to bf16 first, as its dP = dO V^T sees it, so that dP - delta
 * cancels where it should (T = 1: dS = 0) instead of leaving bf16 noise. */
template <bool RB>
__global__ void k_delta(float *delta, const float *dO, const float *O, int B, int T, int H, int D)
{
    const int lane = threadIdx.x & 31, C = H * D;
    const size_t n = (size_t)B * T * H, nw = (size_t)gridDim.x * blockDim.x / 32;
    for (size_t w = ((size_t)blockIdx.x * blockDim.x + threadIdx.x) / 32; w < n; w += nw) {
        size_t bt = w / H;
        int h = (int)(w % H), b = (int)(bt / T), t = (int)(bt % T);
        const float *a = dO + bt * C + (size_t)h * D, *o = O + bt * C + (size_t)h * D;
        float s = 0.f;
        for (int d = lane; d < D; d += 32) s += (RB ? __bfloat162float(__float2bfloat16_rn(a[d])) : a[d]) * o[d];
        for (int off = 16; off > 0; off >>= 1) s += __shfl_xor_sync(0xffffffffu, s, off);
        if (lane == 0) delta[((size_t)b * H + h) * T + t] = s;
    }
}

/* Appends the new keys and values: k, v [B,P,C] -> cache rows pos+t of [maxpos][B][C]. */
__global__ void k_cache_append(float *kc, float *vc, const float *k, const float *v, int B, int P, int C, long pos)
{
    size_t n = (size_t)B * P * C;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        size_t row = i / C;
        int c = (int)(i % C), b = (int)(row / P), t = (int)(row % P);
        size_t dst = ((size_t)(pos + t) * B + b) * C + c;
        kc[dst] = k[i];
        vc[dst] = v[i];
    }
}

/* ---------------------------------------------------------------- flash tiles */

/* Loads rows r0.. of head (b, h) into sm [64][ld], zero where the row is
 * past T or the lane past D. Element (t, d) of the head: base + t*C + d. */
template <int DM>
__device__ __forceinline__ void load_tile(float *sm, int ld, const float *src, size_t base, int r0, int T, int C, int D)
{
    for (int i = threadIdx.x; i < TILE * DM; i += NTHR) {
        int r = i / DM, d = i % DM;
        sm[r * ld + d] = (r0 + r < T && d < D) ? src[base + (size_t)(r0 + r) * C + d] : 0.f;
    }
}

/* s[a][b] = A[ty+16a] . B[tx+16b] over DM lanes (rows of [64][ld] tiles). */
template <int DM>
__device__ __forceinline__ void dot_tile(float s[4][4], const float *A, const float *Bm, int ld, int ty, int tx)
{
    #pragma unroll
    for (int a = 0; a < 4; a++)
        #pragma unroll
        for (int b = 0; b < 4; b++) s[a][b] = 0.f;
    #pragma unroll 8
    for (int d = 0; d < DM; d++) {
        float x[4], y[4];
        #pragma unroll
        for (int a = 0; a < 4; a++) x[a] = A[(ty + 16 * a) * ld + d];
        #pragma unroll
        for (int b = 0; b < 4; b++) y[b] = Bm[(tx + 16 * b) * ld + d];
        #pragma unroll
        for (int a = 0; a < 4; a++)
            #pragma unroll
            for (int b = 0; b < 4; b++) s[a][b] = fmaf(x[a], y[b], s[a][b]);
    }
}

/* Reductions over the 16 lanes of one half-warp (the 16 threads sharing ty). */
__device__ __forceinline__ float hw_max(float v)
{
    for (int o = 8; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}
__device__ __forceinline__ float hw_sum(float v)
{
    for (int o = 8; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

template <int DM> constexpr int fwd_smem_floats()
{
    return TILE * (DM + 1) + (TILE * (DM + 1) > TILE * PLD ? TILE * (DM + 1) : TILE * PLD) + TILE * DM;
}
template <int DM> constexpr int bwd_kv_smem_floats() { return 4 * TILE * (DM + 1) + 2 * TILE * PLD + 2 * TILE; }
template <int DM> constexpr int bwd_q_smem_floats() { return 4 * TILE * (DM + 1) + TILE * PLD + 2 * TILE; }

/* Forward: block (query tile, b*H+h); thread (ty, tx) owns the query rows
 * ty+16a (a < 4): their scores at keys tx+16b and their output lanes
 * tx+16j. Running max m and sum l per row; the output is rescaled when the
 * max grows and normalised at the end; lse = m + log l. */
template <int DM>
__global__ void __launch_bounds__(NTHR) k_flash_fwd(float *O, float *lse, const float *Q, const float *K,
                                                    const float *V, int T, int H, int D, float scale)
{
    extern __shared__ float sm[];
    constexpr int LD = DM + 1, NJ = DM / 16;
    float *Qs = sm;                       /* [64][LD] */
    float *KP = Qs + TILE * LD;           /* keys [64][LD], then the probabilities [64][PLD] */
    float *Vs = KP + (TILE * LD > TILE * PLD ? TILE * LD : TILE * PLD);   /* [64][DM] */
    const int tx = threadIdx.x & 15, ty = threadIdx.x >> 4, C = H * D;
    const int bh = blockIdx.y, b = bh / H, h = bh % H;
    const int i0 = (gridDim.x - 1 - blockIdx.x) * TILE;   /* longest tiles first */
    const size_t base = (size_t)b * T * C + (size_t)h * D;

    load_tile<DM>(Qs, LD, Q, base, i0, T, C, D);
    float acc[4][NJ], m[4], l[4];
    #pragma unroll
    for (int a = 0; a < 4; a++) {
        m[a] = -INFINITY;
        l[a] = 0.f;
        #pragma unroll
        for (int j = 0; j < NJ; j++) acc[a][j] = 0.f;
    }
    const int kend = min(i0 + TILE, T);
    for (int j0 = 0; j0 < kend; j0 += TILE) {
        __syncthreads();                  /* the previous tile's P and V are consumed */
        load_tile<DM>(KP, LD, K, base, j0, T, C, D);
        for (int i = threadIdx.x; i < TILE * DM; i += NTHR) {
            int r = i / DM, d = i % DM;
            Vs[i] = (j0 + r < T && d < D) ? V[base + (size_t)(j0 + r) * C + d] : 0.f;
        }
        __syncthreads();
        float s[4][4];
        dot_tile<DM>(s, Qs, KP, LD, ty, tx);
        __syncthreads();                  /* every thread is done with the keys: KP becomes P */
        #pragma unroll
        for (int a = 0; a < 4; a++) {
            const int qi = i0 + ty + 16 * a;
            float mx = -INFINITY;
            #pragma unroll
            for (int c = 0; c < 4; c++) {
                const int kj = j0 + tx + 16 * c;
                s[a][c] = (kj <= qi && kj < T) ? s[a][c] * scale : -INFINITY;
                mx = fmaxf(mx, s[a][c]);
            }
            /* key j0 <= qi is always visible (j0 <= i0 <= qi and j0 < T): mnew is finite */
            const float mnew = fmaxf(m[a], hw_max(mx));
            const float corr = expf(m[a] - mnew);   /* 0 on the first tile (m = -inf) */
            float ps = 0.f;
            #pragma unroll
            for (int c = 0; c < 4; c++) {
                const float p = expf(s[a][c] - mnew);   /* 0 where masked */
                KP[(ty + 16 * a) * PLD + tx + 16 * c] = p;
                ps += p;
            }
            l[a] = l[a] * corr + hw_sum(ps);
            m[a] = mnew;
            #pragma unroll
            for (int j = 0; j < NJ; j++) acc[a][j] *= corr;
        }
        __syncthreads();
        #pragma unroll 4
        for (int c = 0; c < TILE; c++) {
            float v[NJ];
            #pragma unroll
            for (int j = 0; j < NJ; j++) v[j] = Vs[c * DM + tx + 16 * j];
            #pragma unroll
            for (int a = 0; a < 4; a++) {
                const float p = KP[(ty + 16 * a) * PLD + c];
                #pragma unroll
                for (int j = 0; j < NJ; j++) acc[a][j] = fmaf(p, v[j], acc[a][j]);
            }
        }
    }
    #pragma unroll
    for (int a = 0; a < 4; a++) {
        const int qi = i0 + ty + 16 * a;
        if (qi >= T) continue;
        const float inv = 1.f / l[a];
        #pragma unroll
        for (int j = 0; j < NJ; j++) {
            const int d = tx + 16 * j;
            if (d < D) O[base + (size_t)qi * C + d] = acc[a][j] * inv;
        }
        if (tx == 0) lse[(size_t)bh * T + qi] = m[a] + logf(l[a]);
    }
}

/* Loads lse and delta of query rows i0.. (0 past T) into ls, ds [64]. */
__device__ __forceinline__ void load_rowstats(float *ls, float *ds, const float *lse, const float *delta,
                                              size_t off, int i0, int T)
{
    if (threadIdx.x < TILE) {
        int i = i0 + threadIdx.x;
        ls[threadIdx.x] = i < T ? lse[off + i] : 0.f;
        ds[threadIdx.x] = i < T ? delta[off + i] : 0.f;
    }
}

/* Backward, key side: block (key tile, b*H+h) sweeps the query tiles at or
 * below the diagonal. Thread (ty, tx) computes P^T and dS^T at keys ty+16a,
 * queries tx+16b, then accumulates dV, dK at keys ty+16a, lanes tx+16j:
 *   P = exp(S*scale - lse), dS = P (dO V^T - delta),
 *   dV += P^T dO, dK += dS^T Q * scale. */
template <int DM>
__global__ void __launch_bounds__(NTHR) k_flash_bwd_kv(float *dK, float *dV, const float *Q, const float *K,
                                                       const float *V, const float *dO, const float *lse,
                                                       const float *delta, int T, int H, int D, float scale)
{
    extern __shared__ float sm[];
    constexpr int LD = DM + 1, NJ = DM / 16;
    float *Ks = sm, *Vs = Ks + TILE * LD, *Qs = Vs + TILE * LD, *dOs = Qs + TILE * LD;
    float *Ps = dOs + TILE * LD, *dSs = Ps + TILE * PLD, *ls = dSs + TILE * PLD, *dl = ls + TILE;
    const int tx = threadIdx.x & 15, ty = threadIdx.x >> 4, C = H * D;
    const int bh = blockIdx.y, b = bh / H, h = bh % H;
    const int j0 = blockIdx.x * TILE;     /* the first key tiles see the most queries: launched first */
    const size_t base = (size_t)b * T * C + (size_t)h * D, off = (size_t)bh * T;

    load_tile<DM>(Ks, LD, K, base, j0, T, C, D);
    load_tile<DM>(Vs, LD, V, base, j0, T, C, D);
    float dk[4][NJ], dv[4][NJ];
    #pragma unroll
    for (int a = 0; a < 4; a++)
        #pragma unroll
        for (int j = 0; j < NJ; j++) dk[a][j] = dv[a][j] = 0.f;

    for (int i0 = j0; i0 < T; i0 += TILE) {
        __syncthreads();                  /* the previous query tile is consumed */
        load_tile<DM>(Qs, LD, Q, base, i0, T, C, D);
        load_tile<DM>(dOs, LD, dO, base, i0, T, C, D);
        load_rowstats(ls, dl, lse, delta, off, i0, T);
        __syncthreads();
        float s[4][4], dp[4][4];
        dot_tile<DM>(s, Ks, Qs, LD, ty, tx);
        dot_tile<DM>(dp, Vs, dOs, LD, ty, tx);
        #pragma unroll
        for (int a = 0; a < 4; a++) {
            const int kr = ty + 16 * a, kj = j0 + kr;
            #pragma unroll
            for (int c = 0; c < 4; c++) {
                const int qr = tx + 16 * c, qi = i0 + qr;
                const bool ok = kj <= qi && qi < T && kj < T;
                const float p = ok ? expf(s[a][c] * scale - ls[qr]) : 0.f;
                Ps[kr * PLD + qr] = p;
                dSs[kr * PLD + qr] = p * (dp[a][c] - dl[qr]);
            }
        }
        __syncthreads();
        #pragma unroll 4
        for (int q = 0; q < TILE; q++) {
            float o[NJ], x[NJ];
            #pragma unroll
            for (int j = 0; j < NJ; j++) {
                o[j] = dOs[q * LD + tx + 16 * j];
                x[j] = Qs[q * LD + tx + 16 * j];
            }
            #pragma unroll
            for (int a = 0; a < 4; a++) {
                const float p = Ps[(ty + 16 * a) * PLD + q], ds = dSs[(ty + 16 * a) * PLD + q];
                #pragma unroll
                for (int j = 0; j < NJ; j++) {
                    dv[a][j] = fmaf(p, o[j], dv[a][j]);
                    dk[a][j] = fmaf(ds, x[j], dk[a][j]);
                }
            }
        }
    }
    #pragma unroll
    for (int a = 0; a < 4; a++) {
        const int kj = j0 + ty + 16 * a;
        if (kj >= T) continue;
        #pragma unroll
        for (int j = 0; j < NJ; j++) {
            const int d = tx + 16 * j;
            if (d < D) {
                dK[base + (size_t)kj * C + d] = dk[a][j] * scale;
                dV[base + (size_t)kj * C + d] = dv[a][j];
            }
        }
    }
}

/* Backward, query side: block (query tile, b*H+h) sweeps the key tiles up to
 * the diagonal; thread (ty, tx) computes dS at queries ty+16a, keys tx+16b,
 * then dQ += dS K * scale at queries ty+16a, lanes tx+16j. */
template <int DM>
__global__ void __launch_bounds__(NTHR) k_flash_bwd_q(float *dQ, const float *Q, const float *K, const float *V,
                                                      const float *dO, const float *lse, const float *delta,
                                                      int T, int H, int D, float scale)
{
    extern __shared__ float sm[];
    constexpr int LD = DM + 1, NJ = DM / 16;
    float *Qs = sm, *dOs = Qs + TILE * LD, *Ks = dOs + TILE * LD, *Vs = Ks + TILE * LD;
    float *dSs = Vs + TILE * LD, *ls = dSs + TILE * PLD, *dl = ls + TILE;
    const int tx = threadIdx.x & 15, ty = threadIdx.x >> 4, C = H * D;
    const int bh = blockIdx.y, b = bh / H, h = bh % H;
    const int i0 = (gridDim.x - 1 - blockIdx.x) * TILE;   /* longest tiles first */
    const size_t base = (size_t)b * T * C + (size_t)h * D, off = (size_t)bh * T;

    load_tile<DM>(Qs, LD, Q, base, i0, T, C, D);
    load_tile<DM>(dOs, LD, dO, base, i0, T, C, D);
    load_rowstats(ls, dl, lse, delta, off, i0, T);
    float dq[4][NJ];
    #pragma unroll
    for (int a = 0; a < 4; a++)
        #pragma unroll
        for (int j = 0; j < NJ; j++) dq[a][j] = 0.f;

    const int kend = min(i0 + TILE, T);
    for (int j0 = 0; j0 < kend; j0 += TILE) {
        __syncthreads();                  /* the previous key tile is consumed */
        load_tile<DM>(Ks, LD, K, base, j0, T, C, D);
        load_tile<DM>(Vs, LD, V, base, j0, T, C, D);
        __syncthreads();
        float s[4][4], dp[4][4];
        dot_tile<DM>(s, Qs, Ks, LD, ty, tx);
        dot_tile<DM>(dp, dOs, Vs, LD, ty, tx);
        #pragma unroll
        for (int a = 0; a < 4; a++) {
            const int qr = ty + 16 * a, qi = i0 + qr;
            #pragma unroll
            for (int c = 0; c < 4; c++) {
                const int kr = tx + 16 * c, kj = j0 + kr;
                const bool ok = kj <= qi && qi < T && kj < T;
                const float p = ok ? expf(s[a][c] * scale - ls[qr]) : 0.f;
                dSs[qr * PLD + kr] = p * (dp[a][c] - dl[qr]);
            }
        }
        __syncthreads();
        #pragma unroll 4
        for (int k = 0; k < TILE; k++) {
            float kv[NJ];
            #pragma unroll
            for (int j = 0; j < NJ; j++) kv[j] = Ks[k * LD + tx + 16 * j];
            #pragma unroll
            for (int a = 0; a < 4; a++) {
                const float ds = dSs[(ty + 16 * a) * PLD + k];
                #pragma unroll
                for (int j = 0; j < NJ; j++) dq[a][j] = fmaf(ds, kv[j], dq[a][j]);
            }
        }
    }
    #pragma unroll
    for (int a = 0; a < 4; a++) {
        const int qi = i0 + ty + 16 * a;
        if (qi >= T) continue;
        #pragma unroll
        for (int j = 0; j < NJ; j++) {
            const int d = tx + 16 * j;
            if (d < D) dQ[base + (size_t)qi * C + d] = dq[a][j] * scale;
        }
    }
}

/* ---------------------------------------------------------------- launchers */

unsigned nblk(size_t n, int t = 256)
{
    size_t b = (n + t - 1) / t;
    return (unsigned)(b > 65536 ? 65536 : (b ? b : 1));
}

int check_cfg(const attn_config *c, int B, int T, const char *what)
{
    if (c->H < 1 || c->D < 2 || c->H * c->D != c->C)
        return ttt_seterr("cuda attention: heads*head_dim %d*%d != channels %d", c->H, c->D, c->C);
    if (c->D % 2 || c->D > 128)
        return ttt_seterr("cuda attention: head dim %d (the kernels need an even head dim <= 128)", c->D);
    if (B < 1 || T < 1) return ttt_seterr("cuda attention: empty %s (B=%d, %s=%d)", what, B, what[0] == 'd' ? "P" : "T", T);
    if ((size_t)B * c->H > 65535) return ttt_seterr("cuda attention: batch*heads %d*%d over 65535", B, c->H);
    return 0;
}

int rope(ttt_cuda *g, float *x, size_t rows, int T, long pos0, const attn_config *c, double sign)
{
    size_t pairs = rows * (size_t)(c->C / 2);
    k_rope<<<nblk(pairs), 256, 0, ttt_cuda_stream(g)>>>(x, rows, T, pos0, c->C, c->D, c->rope_theta, sign);
    CK(cudaGetLastError());
    return 0;
}

template <int DM>
int flash_fwd_dm(cudaStream_t st, float *O, float *lse, const float *Q, const float *K, const float *V,
                 int B, int T, int H, int D, float scale)
{
    const size_t smem = fwd_smem_floats<DM>() * sizeof(float);
    CK(cudaFuncSetAttribute(k_flash_fwd<DM>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
    dim3 grid((T + TILE - 1) / TILE, B * H);
    k_flash_fwd<DM><<<grid, NTHR, smem, st>>>(O, lse, Q, K, V, T, H, D, scale);
    CK(cudaGetLastError());
    return 0;
}

template <int DM>
int flash_bwd_dm(cudaStream_t st, float *dQ, float *dK, float *dV, const float *Q, const float *K,
                 const float *V, const float *dO, const float *lse, const float *delta, int B, int T,
                 int H, int D, float scale)
{
    const size_t s_kv = bwd_kv_smem_floats<DM>() * sizeof(float), s_q = bwd_q_smem_floats<DM>() * sizeof(float);
    CK(cudaFuncSetAttribute(k_flash_bwd_kv<DM>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)s_kv));
    CK(cudaFuncSetAttribute(k_flash_bwd_q<DM>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)s_q));
    dim3 grid((T + TILE - 1) / TILE, B * H);
    k_flash_bwd_kv<DM><<<grid, NTHR, s_kv, st>>>(dK, dV, Q, K, V, dO, lse, delta, T, H, D, scale);
    CK(cudaGetLastError());
    k_flash_bwd_q<DM><<<grid, NTHR, s_q, st>>>(dQ, Q, K, V, dO, lse, delta, T, H, D, scale);
    CK(cudaGetLastError());
    return 0;
}

/* 1 when every pointer is 16-byte aligned (the float4 decode loads). */
bool aligned16(const void *const *p, int n)
{
    for (int i = 0; i < n; i++)
        if ((size_t)p[i] % 16) return false;
    return true;
}

/* Blocks of kernel k the GPU holds at once (SMs x resident blocks per SM),
 * the split decode's target; DEC_TARGET_BLOCKS if the query fails. */
long resident_blocks(const void *k)
{
    int dev = 0, sms = 0, per = 0;
    if (cudaGetDevice(&dev) != cudaSuccess || cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev) != cudaSuccess ||
        cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per, k, DEC_WARPS * 32, 0) != cudaSuccess || sms * per < 1) {
        cudaGetLastError();
        return DEC_TARGET_BLOCKS;
    }
    return (long)sms * per;
}

/* Split decode of head width DM: partials over ns chunks (planned for one
 * wave of blocks), then the merge (ns = 1: the partial kernel writes o
 * itself). The partial lse [N*H][ns] at plse, the outputs after them. */
template <int DM>
int decode_dm(cudaStream_t st, bool vec, float *o, float *plse, const float *q, const float *kc, const float *vc,
              int B, int P, int H, int D, long pos)
{
    static long resident[2];   /* per load path, found once (one kind of GPU per process assumed) */
    long &res = resident[vec];
    if (!res) res = resident_blocks(vec ? (const void *)k_decode_part<DM, true, false>
                                        : (const void *)k_decode_part<DM, false, false>);
    int ns;
    long chunk;
    dec_plan(pos + P, (size_t)B * P * H, res, &ns, &chunk);
    float *po = plse + (size_t)B * P * H * ns;
    const float sc = (float)(1 / sqrt((double)D));
    const dim3 grid(B * P, H, ns);
    if (ns == 1) {
        if (vec) k_decode_part<DM, true, true><<<grid, DEC_WARPS * 32, 0, st>>>(o, plse, po, q, kc, vc, B, P, H, D, pos, chunk, ns, sc);
        else k_decode_part<DM, false, true><<<grid, DEC_WARPS * 32, 0, st>>>(o, plse, po, q, kc, vc, B, P, H, D, pos, chunk, ns, sc);
        CK(cudaGetLastError());
        return 0;
    }
    if (vec) k_decode_part<DM, true, false><<<grid, DEC_WARPS * 32, 0, st>>>(o, plse, po, q, kc, vc, B, P, H, D, pos, chunk, ns, sc);
    else k_decode_part<DM, false, false><<<grid, DEC_WARPS * 32, 0, st>>>(o, plse, po, q, kc, vc, B, P, H, D, pos, chunk, ns, sc);
    CK(cudaGetLastError());
    k_decode_combine<<<dim3(B * P, H), DM < 64 ? 64 : DM, 0, st>>>(o, plse, po, P, H, D, pos, chunk, ns);
    CK(cudaGetLastError());
    return 0;
}

float attn_scale(int D) { return (float)(1 / sqrt((double)D)); }

} /* namespace */

/* ---------------------------------------------------------------- API */

/* acts: Q, K (rotated), V, O token-major [B,T,C], lse [B,H,T] */
extern "C" size_t ttt_cuda_attn_acts_size(const attn_config *c, int B, int T)
{
    return 4 * (size_t)B * T * c->C + (size_t)B * c->H * T;
}

extern "C" int ttt_cuda_attn_forward(ttt_cuda *g, int mode, const attn_config *c, float *out, float *acts,
                                     const float *x, const ttt_cuda_attn_params *p, int B, int T)
{
    if (check_cfg(c, B, T, "batch")) return -1;
    const int C = c->C, H = c->H, D = c->D, BT = B * T;
    const size_t btc = (size_t)BT * C;
    float *Q = acts, *K = Q + btc, *V = K + btc, *O = V + btc, *lse = O + btc;
    if (ttt_cuda_gemm_f32in(g, mode, 0, 1, BT, C, C, x, p->q_proj, Q, 0.f)) return -1;
    if (ttt_cuda_gemm_f32in(g, mode, 0, 1, BT, C, C, x, p->k_proj, K, 0.f)) return -1;
    if (ttt_cuda_gemm_f32in(g, mode, 0, 1, BT, C, C, x, p->v_proj, V, 0.f)) return -1;
    if (rope(g, Q, BT, T, 0, c, 1) || rope(g, K, BT, T, 0, c, 1)) return -1;
    cudaStream_t st = ttt_cuda_stream(g);
    const float sc = attn_scale(D);
    const void *tcp[] = {Q, K, V, O, lse};
    if (mode == TTT_CUDA_BF16 && ttt_attn_tc_supported(D, tcp, 5)) {
        CK(ttt_attn_tc_forward(st, O, lse, Q, K, V, B, T, H, D, sc));
        return ttt_cuda_gemm_f32in(g, mode, 0, 1, BT, C, C, O, p->o_proj, out, 0.f);
    }
    int r = D <= 16 ? flash_fwd_dm<16>(st, O, lse, Q, K, V, B, T, H, D, sc)
          : D <= 32 ? flash_fwd_dm<32>(st, O, lse, Q, K, V, B, T, H, D, sc)
          : D <= 64 ? flash_fwd_dm<64>(st, O, lse, Q, K, V, B, T, H, D, sc)
          : flash_fwd_dm<128>(st, O, lse, Q, K, V, B, T, H, D, sc);
    if (r) return -1;
    return ttt_cuda_gemm_f32in(g, mode, 0, 1, BT, C, C, O, p->o_proj, out, 0.f);
}

extern "C" int ttt_cuda_attn_backward(ttt_cuda *g, int mode, const attn_config *c, float *dx,
                                      const ttt_cuda_attn_params *gr, const float *dout, const float *acts,
                                      const float *x, const ttt_cuda_attn_params *p, int B, int T)
{
    if (check_cfg(c, B, T, "batch")) return -1;
    const int C = c->C, H = c->H, D = c->D, BT = B * T;
    const size_t btc = (size_t)BT * C;
    const float *Q = acts, *K = Q + btc, *V = K + btc, *O = V + btc, *lse = O + btc;
    /* scratch: dO (the gradient of O), dQ, dK, dV token-major, delta [B,H,T] */
    float *dO = ttt_cuda_scratch(g, 4 * btc + (size_t)BT * H);
    if (!dO) return -1;
    float *dQ = dO + btc, *dK = dQ + btc, *dV = dK + btc, *delta = dV + btc;
    cudaStream_t st = ttt_cuda_stream(g);

    /* out = O Wo^T */
    if (ttt_cuda_gemm_f32in(g, mode, 1, 0, C, C, BT, dout, O, gr->o_proj, 1.f)) return -1;
    if (ttt_cuda_gemm_f32in(g, mode, 0, 0, BT, C, C, dout, p->o_proj, dO, 0.f)) return -1;
    const void *tcp[] = {Q, K, V, dO, dQ, dK, dV};
    const bool tc = mode == TTT_CUDA_BF16 && ttt_attn_tc_supported(D, tcp, 7);
    size_t warps = (size_t)BT * H;
    if (tc) k_delta<true><<<nblk(warps * 32), 256, 0, st>>>(delta, dO, O, B, T, H, D);
    else k_delta<false><<<nblk(warps * 32), 256, 0, st>>>(delta, dO, O, B, T, H, D);
    CK(cudaGetLastError());
    const float sc = attn_scale(D);
    if (tc) CK(ttt_attn_tc_backward(st, dQ, dK, dV, Q, K, V, dO, lse, delta, B, T, H, D, sc));
    int r = tc ? 0
          : D <= 16 ? flash_bwd_dm<16>(st, dQ, dK, dV, Q, K, V, dO, lse, delta, B, T, H, D, sc)
          : D <= 32 ? flash_bwd_dm<32>(st, dQ, dK, dV, Q, K, V, dO, lse, delta, B, T, H, D, sc)
          : D <= 64 ? flash_bwd_dm<64>(st, dQ, dK, dV, Q, K, V, dO, lse, delta, B, T, H, D, sc)
          : flash_bwd_dm<128>(st, dQ, dK, dV, Q, K, V, dO, lse, delta, B, T, H, D, sc);
    if (r) return -1;
    /* q = rope(x Wq^T), k likewise: rotate the gradients back, then the projections */
    if (rope(g, dQ, BT, T, 0, c, -1) || rope(g, dK, BT, T, 0, c, -1)) return -1;
    if (ttt_cuda_gemm_f32in(g, mode, 1, 0, C, C, BT, dQ, x, gr->q_proj, 1.f)) return -1;
    if (ttt_cuda_gemm_f32in(g, mode, 0, 0, BT, C, C, dQ, p->q_proj, dx, 0.f)) return -1;
    if (ttt_cuda_gemm_f32in(g, mode, 1, 0, C, C, BT, dK, x, gr->k_proj, 1.f)) return -1;
    if (ttt_cuda_gemm_f32in(g, mode, 0, 0, BT, C, C, dK, p->k_proj, dx, 1.f)) return -1;
    if (ttt_cuda_gemm_f32in(g, mode, 1, 0, C, C, BT, dV, x, gr->v_proj, 1.f)) return -1;
    if (ttt_cuda_gemm_f32in(g, mode, 0, 0, BT, C, C, dV, p->v_proj, dx, 1.f)) return -1;
    CK(cudaGetLastError());
    return 0;
}

/* q, k, v, o [B,P,C], then the partials of the split decode: lse and
 * output per (token, head, chunk), at most dec_partial_slots(N*H) chunks in
 * all (grows with P: a scratch sized for P serves every smaller chunk). */
extern "C" size_t ttt_cuda_attn_decode_scratch_size(const attn_config *c, int B, int P)
{
    const size_t N = (size_t)B * P;
    return 4 * N * c->C + dec_partial_slots(N * c->H) * (size_t)(c->D + 1);
}

extern "C" int ttt_cuda_attn_decode(ttt_cuda *g, int mode, const attn_config *c, float *out, float *kcache,
                                    float *vcache, const float *x, const ttt_cuda_attn_params *p, int B, int P,
                                    long pos, float *scratch)
{
    if (check_cfg(c, B, P, "decode")) return -1;
    if (pos < 0) return ttt_seterr("cuda attention: negative decode position %ld", pos);
    if ((size_t)B * P > 0x7fffffff) return ttt_seterr("cuda attention: decode batch %d*%d too large", B, P);
    const int C = c->C, H = c->H, D = c->D, N = B * P;
    const size_t nc = (size_t)N * C;
    float *q = scratch, *k = q + nc, *v = k + nc, *o = v + nc, *plse = o + nc;
    if (ttt_cuda_gemm_f32in(g, mode, 0, 1, N, C, C, x, p->q_proj, q, 0.f)) return -1;
    if (ttt_cuda_gemm_f32in(g, mode, 0, 1, N, C, C, x, p->k_proj, k, 0.f)) return -1;
    if (ttt_cuda_gemm_f32in(g, mode, 0, 1, N, C, C, x, p->v_proj, v, 0.f)) return -1;
    /* rows (b, t) of [B,P,C] sit at position pos + t */
    if (rope(g, q, N, P, pos, c, 1) || rope(g, k, N, P, pos, c, 1)) return -1;
    cudaStream_t st = ttt_cuda_stream(g);
    k_cache_append<<<nblk(nc), 256, 0, st>>>(kcache, vcache, k, v, B, P, C, pos);
    CK(cudaGetLastError());
    const void *vp[] = {q, kcache, vcache};
    const bool vec = D % 4 == 0 && aligned16(vp, 3);
    const int r = D <= 16 ? decode_dm<16>(st, vec, o, plse, q, kcache, vcache, B, P, H, D, pos)
                : D <= 32 ? decode_dm<32>(st, vec, o, plse, q, kcache, vcache, B, P, H, D, pos)
                : D <= 64 ? decode_dm<64>(st, vec, o, plse, q, kcache, vcache, B, P, H, D, pos)
                : decode_dm<128>(st, vec, o, plse, q, kcache, vcache, B, P, H, D, pos);
    if (r) return -1;
    return ttt_cuda_gemm_f32in(g, mode, 0, 1, N, C, C, o, p->o_proj, out, 0.f);
}
