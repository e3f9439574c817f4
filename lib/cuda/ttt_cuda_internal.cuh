/* ttt_cuda_internal.cuh - shared declarations of the CUDA backend: the
 * argument block of the fused inner-loop kernels (TTT-Linear:
 * ttt_inner_linear.cu, TTT-MLP: ttt_inner_mlp.cu) and their launchers, used
 * by the layer (ttt_layer_gpu.cu) and the kernel lab (tests/kernels). Not
 * part of the C API (lib/ttt_cuda.h). */
#ifndef TTT_CUDA_INTERNAL_CUH
#define TTT_CUDA_INTERNAL_CUH

#ifndef TTT_CUDA_EMU   /* host emulators (tests/unit/emu_*.cpp) bring their own types */
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#endif
#include <stddef.h>

#define TTT_CUDA_K 16   /* mini-batch size: hard-wired (spec: always 16) */

/* i / d (returned) and i % d (*r), in 32-bit arithmetic when i fits: 64-bit
 * division is emulated on the GPU, tens of instructions, which slowed the
 * elementwise kernels below memory speed. */
static __device__ __forceinline__ size_t idx_divmod(size_t i, unsigned d, unsigned *r)
{
    if (i <= 0xffffffffu) {
        unsigned q = (unsigned)i / d;
        *r = (unsigned)i - q * d;
        return q;
    }
    size_t q = i / d;
    *r = (unsigned)(i - q * d);
    return q;
}

/* Activations that only GEMMs read are kept in the GEMMs' precision: bf16
 * in bf16 mode, fp32 otherwise; kernels templated on that type store and
 * load them through these. */
static __device__ __forceinline__ void store_op(float *p, float v) { *p = v; }
static __device__ __forceinline__ void store_op(__nv_bfloat16 *p, float v) { *p = __float2bfloat16(v); }
static __device__ __forceinline__ float load_op(const float *p) { return *p; }
static __device__ __forceinline__ float load_op(const __nv_bfloat16 *p) { return __bfloat162float(*p); }
/* V consecutive floats at p (16-byte accesses for V = 4: p 16-byte aligned) */
template <int V> static __device__ __forceinline__ void ldv(float (&v)[V], const float *p)
{
    if constexpr (V == 4) {
        const float4 q = *(const float4 *)p;
        v[0] = q.x; v[1] = q.y; v[2] = q.z; v[3] = q.w;
    } else {
        for (int k = 0; k < V; k++) v[k] = p[k];
    }
}
/* V consecutive bf16 at p, as floats (8-byte access for V = 4: p 8-byte aligned) */
template <int V> static __device__ __forceinline__ void ldv(float (&v)[V], const __nv_bfloat16 *p)
{
    if constexpr (V == 4) {
        const uint2 q = *(const uint2 *)p;
        const float2 lo = __bfloat1622float2(*(const __nv_bfloat162 *)&q.x);
        const float2 hi = __bfloat1622float2(*(const __nv_bfloat162 *)&q.y);
        v[0] = lo.x; v[1] = lo.y; v[2] = hi.x; v[3] = hi.y;
    } else {
        for (int k = 0; k < V; k++) v[k] = __bfloat162float(p[k]);
    }
}
template <int V> static __device__ __forceinline__ void stv(float *p, const float (&v)[V])
{
    if constexpr (V == 4) *(float4 *)p = make_float4(v[0], v[1], v[2], v[3]);
    else for (int k = 0; k < V; k++) p[k] = v[k];
}
template <int V> static __device__ __forceinline__ void stv(__nv_bfloat16 *p, const float (&v)[V])
{
    if constexpr (V == 4) {
        *(__nv_bfloat162 *)p = __floats2bfloat162_rn(v[0], v[1]);
        *(__nv_bfloat162 *)(p + 2) = __floats2bfloat162_rn(v[2], v[3]);
    } else {
        for (int k = 0; k < V; k++) p[k] = __float2bfloat16(v[k]);
    }
}

/* The inner kernels' outputs (input gradients, Z): element i (pair i, i+1:
 * i even) of an fp32 tensor, or of the bf16 tensor at the same address when
 * bf16 (the layer then reads it only as a GEMM operand or a norm's input). */
static __device__ __forceinline__ void store_grad(float *p, int bf16, size_t i, float v)
{
    if (bf16) ((__nv_bfloat16 *)p)[i] = __float2bfloat16(v);
    else p[i] = v;
}
static __device__ __forceinline__ void store_grad2(float *p, int bf16, size_t i, float2 v)
{
    if (bf16) *(__nv_bfloat162 *)((__nv_bfloat16 *)p + i) = __floats2bfloat162_rn(v.x, v.y);
    else *(float2 *)(p + i) = v;
}

/* Tensors of the inner loop for one layer call. Token-major layouts so that
 * the kernels read the projections in place: row (b*T + t), column h*D + c. */
struct ttt_inner_args {
    int B, T, H, D;                 /* C = H*D */
    const float *XQ, *XK, *XV;      /* [B,T,C], Q and K after RoPE */
    const float *lr;                /* [B,T,H] per-token inner lr (base_lr*sigmoid/D) */
    const float *token_idx;         /* [K] learnable offsets; tau_i = max(1/(i+1)+off_i, 0) */
    const float *gamma, *beta;      /* ttt_norm [H,D] */
    const float *W0, *b0;           /* [H,D,F], [H,F] (W1, b1; F = D for TTT-Linear) */
    float *Z;                       /* [B,T,C] out: q + LN(zbar) (z16: bf16 at the same address) */
    float *states;                  /* [B*H, nmb+1, P]: the state at each mini-batch start + final
                                       (tc forwards: NULL when no backward follows);
                                       P = D*D+D (W,b) or 2DF+F+D (W1,b1,W2,b2) for TTT-MLP;
                                       TTT-Linear on tensor cores: W as D*D bf16 in the
                                       first D*D/2 floats, in the forward's register order
                                       (ttt_tc_state_w_index; its backward reads W only as
                                       bf16 operands), b fp32 at D*D */
    /* backward */
    const float *dZ;                /* [B,T,C] upstream gradient of Z */
    float *dXQ, *dXK, *dXV;         /* [B,T,C] (=) */
    float *dlr;                     /* [B,T,H] (=) */
    float *dtau;                    /* [K] (+=), gradient of the clamped factor tau */
    float *dgamma, *dbeta;          /* [H,D] (+=) */
    float *dW0, *db0;               /* [H,D,F], [H,F] (+=) */
    int rpt;                        /* tuning: rows per thread 2 or 4 (0 = default) */
    int tc;                         /* TTT-Linear on tensor cores, bf16 operands
                                       (ttt_inner_linear_tc.cu); 0: fp32 CUDA cores */
    const float *rope;              /* tc only: [16][D/2][2] cos, sin: XQ, XK are *not* rotated
                                       yet, the kernels rotate them as they load them (and
                                       rotate dXQ, dXK back); NULL: already rotated */
    int dqk16, dv16;                /* tc only: dXQ and dXK (dqk16), dXV (dv16) stored in bf16 at
                                       the same addresses (store_grad), for the GEMMs that read them */
    int z16;                        /* tc only: Z stored in bf16 (the post-norm reads it) */
    /* TTT-MLP only */
    int F;                          /* inner width, 4*D */
    const float *W20, *b20;         /* [H,F,D], [H,D] */
    float *dW20, *db20;             /* [H,F,D], [H,D] (+=) */
    float *dS;                      /* backward scratch [B*H, P]: the running dS per block */
};

/* Default rows per thread (threads per block = 16/rpt * D), from the kernel lab. */
#define TTT_INNER_RPT_FWD 2
#define TTT_INNER_RPT_BWD 2

__host__ __device__ static inline int ttt_inner_nmb(int T) { return (T + TTT_CUDA_K - 1) / TTT_CUDA_K; }
static inline size_t ttt_inner_states_size(int B, int H, int D, int T)
{
    return (size_t)B * H * (ttt_inner_nmb(T) + 1) * ((size_t)D * D + D);
}

/* Where W[i][j] sits among the D*D bf16 of a tensor-core TTT-Linear
 * checkpoint: in the order the forward holds W (ttt_inner_linear_tc.cu),
 * 16-byte pieces a lane, so that it stores a checkpoint with a few full
 * stores: piece (warp, p, lane) = ((j / 16) * D/16 + p) * 32 + 4 (j % 8) +
 * (i % 8) / 2 holds rows 16p + 2t + {0, 1} (+ 8) of the columns j, j + 8
 * (g = j % 8): bf16 (8 it + 2t + k, j0 + g + 8 h) at 2 (2 (it % 2) + h) + k. */
__host__ __device__ static inline size_t ttt_tc_state_w_index(int D, int i, int j)
{
    const int w = j / 16, h = (j % 16) / 8, g = j % 8, it = i / 8, t = (i % 8) / 2, k = i % 2;
    const size_t piece = ((size_t)w * (D / 16) + it / 2) * 32 + 4 * g + t;
    return piece * 8 + 2 * (2 * (it % 2) + h) + k;
}

static inline size_t ttt_inner_mlp_states_size(int B, int H, int D, int T)
{
    return (size_t)B * H * (ttt_inner_nmb(T) + 1) * (2 * (size_t)D * 4 * D + 4 * D + D);
}

/* the fp32 TTT-MLP backward's scratch: one running dS per (sequence, head) */
static inline size_t ttt_inner_mlp_dS_size(int B, int H, int D)
{
    return (size_t)B * H * (2 * (size_t)D * 4 * D + 4 * D + D);
}

#ifndef TTT_CUDA_EMU
/* Launches an inner-loop kernel, one block per (sequence, head), with sm
 * bytes of dynamic shared memory (the kernel's limit is raised first; that
 * call fails past the device's opt-in maximum). */
template <typename Kernel>
static inline cudaError_t ttt_inner_launch(Kernel k, int threads, size_t sm, const ttt_inner_args *a, cudaStream_t s)
{
    cudaError_t e = cudaFuncSetAttribute(k, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)sm);
    if (e != cudaSuccess) return e;
    k<<<a->B * a->H, threads, sm, s>>>(*a);
    return cudaGetLastError();
}

/* TTT-MLP (F = 4D), head dims 16, 32, 64. */
int ttt_inner_mlp_supported(int D);
cudaError_t ttt_inner_mlp_forward(const ttt_inner_args *a, cudaStream_t s);
cudaError_t ttt_inner_mlp_backward(const ttt_inner_args *a, cudaStream_t s);
/* The tensor-core forward and backward (what the two above run when a->tc). */
cudaError_t ttt_inner_mlp_forward_tc(const ttt_inner_args *a, cudaStream_t s);
cudaError_t ttt_inner_mlp_backward_tc(const ttt_inner_args *a, cudaStream_t s);

/* 0 or a cudaError_t; head dims supported: 16, 32, 64, 96. */
int ttt_inner_linear_supported(int D);
cudaError_t ttt_inner_linear_forward(const ttt_inner_args *a, cudaStream_t s);
cudaError_t ttt_inner_linear_backward(const ttt_inner_args *a, cudaStream_t s);
/* The tensor-core forward and backward (what the two above run when a->tc). */
cudaError_t ttt_inner_linear_forward_tc(const ttt_inner_args *a, cudaStream_t s);
cudaError_t ttt_inner_linear_backward_tc(const ttt_inner_args *a, cudaStream_t s);

/* For the GPU model (model_gpu.cu), from ttt_layer_gpu.cu: the handle's
 * stream and row-major fp32-in GEMM of the layer (same conventions as its
 * static gemm: C[M,N] = op(A) op(B) + beta C, A [M,K] or [K,M] with ta, B
 * [K,N] or [N,K] with tb; in TTT_CUDA_BF16 mode A and B are rounded to bf16
 * first). 0 or -1 with ttt_seterr. */
struct ttt_cuda;
cudaStream_t ttt_cuda_stream(struct ttt_cuda *g);
/* The handle's backward scratch of at least `floats` floats (grown when
 * needed; shared by the layer kinds: one model uses one kind). NULL + message. */
float *ttt_cuda_scratch(struct ttt_cuda *g, size_t floats);
int ttt_cuda_gemm_f32in(struct ttt_cuda *g, int mode, int ta, int tb, int M, int N, int K,
                        const float *A, const float *B, float *C, float beta);
/* The same where an operand may already be of the mode's type (x_ready: bf16
 * in TTT_CUDA_BF16 mode, fp32 otherwise; the others are fp32 and converted),
 * a ready A with rows lda elements apart (0: dense); C in bf16 when c_bf16
 * and the mode is TTT_CUDA_BF16, else fp32. */
int ttt_cuda_gemm_op(struct ttt_cuda *g, int mode, int ta, int tb, int M, int N, int K, const void *A,
                     int a_ready, int lda, const void *B, int b_ready, void *C, int c_bf16, float beta);
/* ttt_cuda_to_bf16, ttt_cuda_shadow, ttt_cuda_set_shadow, ttt_cuda_set_act16: ttt_cuda.h */
#endif /* !TTT_CUDA_EMU */

#endif
