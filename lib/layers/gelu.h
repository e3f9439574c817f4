/* gelu.h - tanh-approximation GELU (spec section 0) and the derivatives the
 * TTT layer needs:
 *   gelu_tanh          forward, exact sqrt(2/pi) (as F.gelu(approximate="tanh"))
 *   gelu_tanh_grad     its exact derivative (what autograd uses outside the inner loop)
 *   gelu_trunc_grad    the inner loop's "gelu'" with the truncated constants of spec 3,
 *                      bit-exact to the reference (it is NOT the derivative of gelu_tanh)
 *   gelu_trunc_grad2   H'(x): the derivative of gelu_trunc_grad (spec 8.3)
 *   gelu_and_trunc_grad, gelu_grad_and_trunc_grad2: two of them at once
 */
#ifndef TTT_GELU_H
#define TTT_GELU_H

#include <math.h>
#include "../real.h"

#define GELU_BETA (M_SQRT2 * M_2_SQRTPI * 0.5)   /* sqrt(2/pi), as ATen computes it */

/* tanh in the precision of `real`. float64 (the reference checks): libm.
 * float32: libm's tanh is a scalar call through double and took ~10% of a
 * layer step; this inline form vectorises inside `omp simd` loops.
 * tanh|x| = 1 - 2/(e^{2|x|} + 1), e^{2|x|} = 2^n 2^f with |f| <= 1/2 and 2^f
 * by its degree-6 Taylor polynomial: absolute error below 2e-7 (float's own
 * rounding of 1 - 2/(e+1)), which is what 0.5 x (1 + tanh) and 1 - tanh^2
 * need; the relative error of tiny results is larger (not used here). */
#ifdef TTT_F64
static inline real real_tanh(real x) { return tanh(x); }
#else
static inline real real_tanh(real x)
{
    /* |x| clamped to 9 (tanh 9 = 1 - 3e-8: 1 in float) as an integer min of
     * the bit patterns (positive floats order as their bits): a float
     * compare here becomes a branch that stops the loops vectorising */
    union { float f; int i; } ua = { .f = fabsf(x) };
    ua.i = ua.i < 0x41100000 ? ua.i : 0x41100000;
    float a = ua.f;
    float y = a * 2.88539008177792681f;      /* 2|x| log2(e), in [0, 26] */
    int n = (int)(y + 0.5f);
    float f = (y - (float)n) * 0.693147180559945309f;   /* |f| <= ln2/2 */
    float p = 1.0f + f * (1.0f + f * (0.5f + f * (1.0f / 6 + f * (1.0f / 24 + f * (1.0f / 120 + f * (1.0f / 720))))));
    union { int i; float f; } sc = { .i = (n + 127) << 23 };
    float t = 1.0f - 2.0f / (p * sc.f + 1.0f);
    return copysignf(t, x);
}
#endif
#define GELU_KAPPA 0.044715

static inline real gelu_tanh(real x)
{
    real inner = (real)GELU_BETA * (x + (real)GELU_KAPPA * x * x * x);
    return (real)0.5 * x * (1 + real_tanh(inner));
}

static inline real gelu_tanh_grad(real x)
{
    real x2 = x * x;
    real t = real_tanh((real)GELU_BETA * (x + (real)GELU_KAPPA * x2 * x));
    real left = (real)0.5 * x, right = 1 + t;
    return (real)0.5 * right + left * (1 - t * t) * (real)GELU_BETA * (1 + 3 * (real)GELU_KAPPA * x2);
}

/* The reference's gelu_bwd: 0.5*x*((1-t^2)*(C0 + C2*x^2)) + 0.5*(1+t). */
#define GELU_C0 0.79788456
#define GELU_C1 0.044715
#define GELU_C2 0.1070322243

static inline real gelu_trunc_grad(real x)
{
    real t = real_tanh((real)GELU_C0 * x * (1 + (real)GELU_C1 * x * x));
    return (real)0.5 * x * ((1 - t * t) * ((real)GELU_C0 + (real)GELU_C2 * x * x)) + (real)0.5 * (1 + t);
}

/* d/dx gelu_trunc_grad: u = C0 x (1+C1 x^2), t = tanh u, dt = (1-t^2) C0 (1+3 C1 x^2),
 * s = C0 + C2 x^2:  0.5(1-t^2)s - x t dt s + C2 x^2 (1-t^2) + 0.5 dt. */
static inline real gelu_trunc_grad2(real x)
{
    real x2 = x * x;
    real t = real_tanh((real)GELU_C0 * x * (1 + (real)GELU_C1 * x2));
    real om = 1 - t * t;
    real dt = om * (real)GELU_C0 * (1 + 3 * (real)GELU_C1 * x2);
    real s = (real)GELU_C0 + (real)GELU_C2 * x2;
    return (real)0.5 * om * s - x * t * dt * s + (real)GELU_C2 * x2 * om + (real)0.5 * dt;
}


/* Pairs over one x for the loops that need both. float64 calls the two
 * functions (the reference checks want each bit-exact). In float the two
 * tanh arguments, sqrt(2/pi)(x + k x^3) and C0 x (1 + C1 x^2), agree to
 * 1e-10 relative, below float's 6e-8, so one tanh serves both. */
#ifdef TTT_F64
static inline void gelu_and_trunc_grad(real x, real *g, real *h)
{
    *g = gelu_tanh(x);
    *h = gelu_trunc_grad(x);
}
static inline void gelu_grad_and_trunc_grad2(real x, real *d, real *h2)
{
    *d = gelu_tanh_grad(x);
    *h2 = gelu_trunc_grad2(x);
}
#else
static inline void gelu_and_trunc_grad(real x, real *g, real *h)
{
    real x2 = x * x;
    real t = real_tanh((real)GELU_BETA * (x + (real)GELU_KAPPA * x2 * x));
    *g = (real)0.5 * x * (1 + t);
    *h = (real)0.5 * x * ((1 - t * t) * ((real)GELU_C0 + (real)GELU_C2 * x2)) + (real)0.5 * (1 + t);
}
static inline void gelu_grad_and_trunc_grad2(real x, real *d, real *h2)
{
    real x2 = x * x;
    real t = real_tanh((real)GELU_BETA * (x + (real)GELU_KAPPA * x2 * x));
    real om = 1 - t * t;
    *d = (real)0.5 * (1 + t) + (real)0.5 * x * om * (real)GELU_BETA * (1 + 3 * (real)GELU_KAPPA * x2);
    real dt = om * (real)GELU_C0 * (1 + 3 * (real)GELU_C1 * x2);
    real s = (real)GELU_C0 + (real)GELU_C2 * x2;
    *h2 = (real)0.5 * om * s - x * t * dt * s + (real)GELU_C2 * x2 * om + (real)0.5 * dt;
}
#endif

#endif
