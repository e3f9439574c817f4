/* gelu.cuh - the GELU pieces of the TTT-MLP inner kernels (ttt_inner_mlp.cu,
 * ttt_inner_mlp_tc.cu): the tanh GELU and its exact derivative for the
 * forward, spec 3's gelu' with the truncated constants for the inner
 * gradient, and that expression's derivative H' for the outer backward
 * (spec 8.3). The twin of lib/layers/gelu.h. */
#ifndef TTT_GELU_CUH
#define TTT_GELU_CUH

namespace {

/* tanh-gelu (exact sqrt(2/pi)) and its exact derivative */
__device__ __forceinline__ float gelu_f(float x)
{
    float t = tanhf(0.7978845608028654f * (x + 0.044715f * x * x * x));
    return 0.5f * x * (1.f + t);
}
__device__ __forceinline__ float gelu_grad_f(float x)
{
    float x2 = x * x, t = tanhf(0.7978845608028654f * (x + 0.044715f * x2 * x));
    return 0.5f * (1.f + t) + 0.5f * x * (1.f - t * t) * 0.7978845608028654f * (1.f + 3.f * 0.044715f * x2);
}
/* spec 3's gelu' with the truncated constants, and its derivative H' (spec 8.3) */
#define GC0 0.79788456f
#define GC1 0.044715f
#define GC2 0.1070322243f
__device__ __forceinline__ float gelu_tr_grad(float x)
{
    float t = tanhf(GC0 * x * (1.f + GC1 * x * x));
    return 0.5f * x * ((1.f - t * t) * (GC0 + GC2 * x * x)) + 0.5f * (1.f + t);
}
__device__ __forceinline__ float gelu_tr_grad2(float x)
{
    float x2 = x * x, t = tanhf(GC0 * x * (1.f + GC1 * x2)), om = 1.f - t * t;
    float dt = om * GC0 * (1.f + 3.f * GC1 * x2), s = GC0 + GC2 * x2;
    return 0.5f * om * s - x * t * dt * s + GC2 * x2 * om + 0.5f * dt;
}

/* The tensor-core (bf16) kernels' GELU pieces, all from one tanh of
 * GC0 x (1 + GC1 x^2) (the exact and truncated constants agree in float:
 * 3 GC0 GC1 = GC2, so gelu' and the truncated gelu' are one expression).
 * On the GPU that tanh is the hardware's tanh.approx.f32 (relative error
 * about 2^-11, below the bf16 rounding of every operand it feeds): the
 * library tanhf took half of those kernels' instructions. The host
 * emulators take tanhf. */
#ifdef TTT_CUDA_EMU
static inline float tanh_approx(float x) { return tanhf(x); }
#else
__device__ __forceinline__ float tanh_approx(float x)
{
    float y;
    asm("tanh.approx.f32 %0, %1;" : "=f"(y) : "f"(x));
    return y;
}
#endif
struct gelu_fast {
    float x, t;
    __device__ __forceinline__ explicit gelu_fast(float z)
        : x(z), t(tanh_approx(z * fmaf(GC0 * GC1, z * z, GC0))) {}
    __device__ __forceinline__ float value() const { return fmaf(0.5f * x, t, 0.5f * x); }
    /* gelu' (H) = (1 + t) / 2 + x (1 - t^2) s / 2, s = GC0 + GC2 x^2 */
    __device__ __forceinline__ float grad() const
    {
        return fmaf(0.5f * x * fmaf(-t, t, 1.f), fmaf(GC2, x * x, GC0), fmaf(0.5f, t, 0.5f));
    }
    /* H' = d gelu' / dx = (1 - t^2) (s (1 - x t s) + GC2 x^2) */
    __device__ __forceinline__ float grad2() const
    {
        const float x2 = x * x, s = fmaf(GC2, x2, GC0);
        return fmaf(-t, t, 1.f) * fmaf(s, fmaf(-x * t, s, 1.f), GC2 * x2);
    }
};

}  /* namespace */

#endif
