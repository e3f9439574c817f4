/* attn_decode.cuh - split-KV ("flash-decoding") attention over the device KV
 * cache, the kernels behind ttt_cuda_attn_decode (attn_gpu.cu). Internal to
 * the CUDA backend; device code and plain host arithmetic only, so that
 * tests/unit/emu_attn_decode.cpp can run the very same kernels on the CPU.
 *
 * A single-token step at batch 1 has only H (token, head) pairs; one block
 * per pair walking the whole cache leaves most SMs idle. Here the keys
 * 0..pos+P-1 are cut into `ns` chunks of `chunk` keys (a multiple of
 * DEC_MIN_CHUNK), and block (token, head, chunk) computes the softmax of its
 * chunk alone: the normalised partial output and its log-sum-exp. A second
 * kernel merges a pair's partials (weights exp(lse_s - max lse)). Token t of
 * the P new ones sees cache rows 0..pos+t: chunks that start past pos+t are
 * skipped by both kernels. With ns = 1 the first kernel writes the output
 * directly and the merge does not run.
 *
 * Inside a block (DEC_WARPS warps) a key is handled by LK = DM/8 lanes, each
 * holding 8 consecutive head lanes of q, k, v (two float4 loads when D % 4
 * == 0 and the pointers are 16-byte aligned); a warp thus works on 32/LK
 * keys at once, each lane group with its own online softmax. The groups
 * are merged by shuffles within the warp, the warps through shared memory.
 * Layouts: q, o [N = B*P][H*D] (row b*P + t); caches [maxpos][B][H*D];
 * partials: lse [N*H][ns], o [N*H][ns][D]. */
#ifndef TTT_ATTN_DECODE_CUH
#define TTT_ATTN_DECODE_CUH

#include <stddef.h>

#define DEC_WARPS 8            /* warps per partial block */
#define DEC_TARGET_BLOCKS 1024 /* most blocks wanted per step (the scratch bound) */
#define DEC_MAX_SPLITS 64      /* most chunks per (token, head) */
#define DEC_MIN_CHUNK 64       /* chunk sizes are multiples of this */

/* The most chunks per pair for nh = N*H pairs: enough blocks to fill the GPU. */
static inline int dec_max_splits(size_t nh)
{
    size_t s = (DEC_TARGET_BLOCKS + nh - 1) / (nh ? nh : 1);
    return s < 1 ? 1 : s > DEC_MAX_SPLITS ? DEC_MAX_SPLITS : (int)s;
}

/* Partial slots for nh pairs: >= nh * dec_max_splits(nh) wherever that is
 * over 1 (nh < DEC_TARGET_BLOCKS; from there on one chunk, no partials), and
 * never shrinking as nh grows, so that a scratch sized for P tokens also
 * serves every smaller P (callers size for the largest chunk):
 * nh*ceil(T/nh) < T + nh, and the cap gives 64*nh. At most 2*T slots. */
static inline size_t dec_partial_slots(size_t nh)
{
    size_t a = (size_t)DEC_MAX_SPLITS * nh;
    size_t b = DEC_TARGET_BLOCKS + (nh < DEC_TARGET_BLOCKS ? nh : DEC_TARGET_BLOCKS);
    return a < b ? a : b;
}

/* Chunking of the len = pos + P keys that the last new token sees, for
 * about `target` blocks in all (the launcher passes what the GPU holds at
 * once, SMs x resident blocks per SM: one wave, no tail; at most
 * DEC_TARGET_BLOCKS, which the scratch is sized for). */
static inline void dec_plan(long len, size_t nh, long target, int *ns, long *chunk)
{
    long want = (len + DEC_MIN_CHUNK - 1) / DEC_MIN_CHUNK, smax = dec_max_splits(nh);
    if (target < 1) target = 1;
    const long fit = (target + (long)nh - 1) / (long)nh;
    if (fit < smax) smax = fit;
    long n = want < smax ? want : smax;
    if (n < 1) n = 1;
    long c = (len + n - 1) / n;
    c = (c + DEC_MIN_CHUNK - 1) / DEC_MIN_CHUNK * DEC_MIN_CHUNK;
    *chunk = c;
    *ns = (int)((len + c - 1) / c);
}

/* 8 head lanes d0..d0+7 of a row (0 past D). VEC: two aligned float4 loads
 * (D % 4 == 0, so a float4 lies wholly inside or wholly past D). */
template <bool VEC>
__device__ __forceinline__ void dec_load8(float r[8], const float *__restrict__ p, int d0, int D)
{
    if (VEC) {
        #pragma unroll
        for (int i = 0; i < 2; i++) {
            float4 v = d0 + 4 * i < D ? __ldg((const float4 *)(p + d0 + 4 * i)) : make_float4(0.f, 0.f, 0.f, 0.f);
            r[4 * i] = v.x; r[4 * i + 1] = v.y; r[4 * i + 2] = v.z; r[4 * i + 3] = v.w;
        }
    } else {
        #pragma unroll
        for (int e = 0; e < 8; e++) r[e] = d0 + e < D ? __ldg(p + d0 + e) : 0.f;
    }
}

/* Merges the softmax state (m, l, acc) with another's (mo, lo, ao):
 * both rescaled to the larger max; an empty state (m = -inf) weighs 0. */
__device__ __forceinline__ void dec_merge(float &m, float &l, float acc[8], float mo, float lo, const float ao[8])
{
    const float mn = fmaxf(m, mo);
    const float a = m == -INFINITY ? 0.f : expf(m - mn), b = mo == -INFINITY ? 0.f : expf(mo - mn);
    l = l * a + lo * b;
    #pragma unroll
    for (int e = 0; e < 8; e++) acc[e] = acc[e] * a + ao[e] * b;
    m = mn;
}

/* Partial softmax of block (token bt, head h, chunk blockIdx.z) over its
 * keys, DEC_WARPS*32 threads. DIRECT (ns = 1): o [N][C] gets the output;
 * otherwise plse, po get the chunk's lse and normalised output. */
template <int DM, bool VEC, bool DIRECT>
__global__ void __launch_bounds__(DEC_WARPS * 32)
k_decode_part(float *__restrict__ o, float *__restrict__ plse, float *__restrict__ po, const float *__restrict__ q,
              const float *__restrict__ kc, const float *__restrict__ vc, int B, int P, int H, int D, long pos,
              long chunk, int ns, float scale)
{
    constexpr int LK = DM / 8, G = 32 / LK;   /* lanes per key, keys per warp */
    __shared__ float sm_m[DEC_WARPS], sm_l[DEC_WARPS], sm_o[DEC_WARPS][DM];
    const int lane = threadIdx.x & 31, w = threadIdx.x >> 5, g = lane / LK, d0 = (lane % LK) * 8;
    const int bt = blockIdx.x, h = blockIdx.y, sp = blockIdx.z, b = bt / P, t = bt % P, C = H * D;
    const long last = pos + t, s0 = (long)sp * chunk;
    if (s0 > last) return;                /* the whole block: token t does not see this chunk */
    const long s1 = s0 + chunk < last + 1 ? s0 + chunk : last + 1;

    float qv[8], acc[8], m = -INFINITY, l = 0.f;
    dec_load8<VEC>(qv, q + (size_t)bt * C + (size_t)h * D, d0, D);
    #pragma unroll
    for (int e = 0; e < 8; e++) acc[e] = 0.f;

    /* the loop bound is uniform over the warp: every lane takes part in the shuffles */
    for (long sb = s0 + (long)w * G; sb < s1; sb += DEC_WARPS * G) {
        const long s = sb + g;
        const bool ok = s < s1;
        float kv[8], vv[8];
        const size_t row = ((size_t)(ok ? s : s0) * B + b) * C + (size_t)h * D;
        dec_load8<VEC>(kv, kc + row, d0, D);   /* k and v issued together: the loads overlap */
        dec_load8<VEC>(vv, vc + row, d0, D);
        float dot = 0.f;
        #pragma unroll
        for (int e = 0; e < 8; e++) dot = fmaf(qv[e], kv[e], dot);
        #pragma unroll
        for (int off = LK / 2; off > 0; off >>= 1) dot += __shfl_xor_sync(0xffffffffu, dot, off);
        if (ok) {
            const float sc = dot * scale, mn = fmaxf(m, sc);
            const float corr = expf(m - mn), p = expf(sc - mn);   /* corr 0 on the group's first key */
            l = l * corr + p;
            m = mn;
            #pragma unroll
            for (int e = 0; e < 8; e++) acc[e] = fmaf(p, vv[e], acc[e] * corr);
        }
    }
    /* the warp's G lane groups (same head lanes at lane % LK) merged by a butterfly */
    #pragma unroll
    for (int off = LK; off < 32; off <<= 1) {
        float ao[8];
        const float mo = __shfl_xor_sync(0xffffffffu, m, off), lo = __shfl_xor_sync(0xffffffffu, l, off);
        #pragma unroll
        for (int e = 0; e < 8; e++) ao[e] = __shfl_xor_sync(0xffffffffu, acc[e], off);
        dec_merge(m, l, acc, mo, lo, ao);
    }
    if (lane == 0) { sm_m[w] = m; sm_l[w] = l; }
    if (lane < LK) {
        #pragma unroll
        for (int e = 0; e < 8; e++) sm_o[w][d0 + e] = acc[e];
    }
    __syncthreads();
    /* warps that saw no key have m = -inf, l = 0; warp 0 saw key s0, so L > 0 */
    float M = -INFINITY;
    #pragma unroll
    for (int i = 0; i < DEC_WARPS; i++) M = fmaxf(M, sm_m[i]);
    float L = 0.f;
    #pragma unroll
    for (int i = 0; i < DEC_WARPS; i++) L += sm_l[i] > 0.f ? sm_l[i] * expf(sm_m[i] - M) : 0.f;
    const size_t pair = (size_t)bt * H + h;
    for (int d = threadIdx.x; d < D; d += blockDim.x) {
        float v = 0.f;
        #pragma unroll
        for (int i = 0; i < DEC_WARPS; i++)
            if (sm_l[i] > 0.f) v += sm_o[i][d] * expf(sm_m[i] - M);
        if (DIRECT) o[(size_t)bt * C + (size_t)h * D + d] = v / L;
        else po[(pair * ns + sp) * D + d] = v / L;
    }
    if (!DIRECT && threadIdx.x == 0) plse[pair * ns + sp] = M + logf(L);
}

/* Merge of the partials: block (token bt, head h), thread d < D. Token t
 * has partials for its chunks 0..(pos+t)/chunk only. */
__global__ void k_decode_combine(float *__restrict__ o, const float *__restrict__ plse,
                                 const float *__restrict__ po, int P, int H, int D, long pos, long chunk, int ns)
{
    const int bt = blockIdx.x, h = blockIdx.y, t = bt % P;
    const long seen = (pos + t) / chunk + 1;
    const int n = seen < ns ? (int)seen : ns;
    const size_t pair = (size_t)bt * H + h;
    const float *ls = plse + pair * ns, *os = po + pair * ns * D;
    float M = -INFINITY;
    for (int s = 0; s < n; s++) M = fmaxf(M, ls[s]);
    for (int d = threadIdx.x; d < D; d += blockDim.x) {
        float W = 0.f, v = 0.f;
        for (int s = 0; s < n; s++) {
            const float wgt = expf(ls[s] - M);
            W += wgt;
            v = fmaf(wgt, os[(size_t)s * D + d], v);
        }
        o[(size_t)bt * H * D + (size_t)h * D + d] = v / W;
    }
}

#endif
