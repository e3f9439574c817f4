/* gelu.h - tanh-approximation GELU (spec section 0) and the derivatives the
 * TTT layer needs:
 *   gelu_tanh          forward, exact sqrt(2/pi) (as F.gelu(approximate="tanh"))
 *   gelu_tanh_grad     its exact derivative (what autograd uses outside the inner loop)
 *   gelu_trunc_grad    the inner loop's "gelu'" with the truncated constants of spec 3,
 *                      bit-exact to the reference (it is NOT the derivative of gelu_tanh)
 *   gelu_trunc_grad2   H'(x): the derivative of gelu_trunc_grad (spec 8.3)
 */
#ifndef TTT_GELU_H
#define TTT_GELU_H

#include <math.h>
#include "../real.h"

#define GELU_BETA (M_SQRT2 * M_2_SQRTPI * 0.5)   /* sqrt(2/pi), as ATen computes it */
#define GELU_KAPPA 0.044715

static inline real gelu_tanh(real x)
{
    real inner = (real)GELU_BETA * (x + (real)GELU_KAPPA * x * x * x);
    return (real)0.5 * x * (1 + tanh(inner));
}

static inline real gelu_tanh_grad(real x)
{
    real x2 = x * x;
    real t = tanh((real)GELU_BETA * (x + (real)GELU_KAPPA * x2 * x));
    real left = (real)0.5 * x, right = 1 + t;
    return (real)0.5 * right + left * (1 - t * t) * (real)GELU_BETA * (1 + 3 * (real)GELU_KAPPA * x2);
}

/* The reference's gelu_bwd: 0.5*x*((1-t^2)*(C0 + C2*x^2)) + 0.5*(1+t). */
#define GELU_C0 0.79788456
#define GELU_C1 0.044715
#define GELU_C2 0.1070322243

static inline real gelu_trunc_grad(real x)
{
    real t = tanh((real)GELU_C0 * x * (1 + (real)GELU_C1 * x * x));
    return (real)0.5 * x * ((1 - t * t) * ((real)GELU_C0 + (real)GELU_C2 * x * x)) + (real)0.5 * (1 + t);
}

/* d/dx gelu_trunc_grad: u = C0 x (1+C1 x^2), t = tanh u, dt = (1-t^2) C0 (1+3 C1 x^2),
 * s = C0 + C2 x^2:  0.5(1-t^2)s - x t dt s + C2 x^2 (1-t^2) + 0.5 dt. */
static inline real gelu_trunc_grad2(real x)
{
    real x2 = x * x;
    real t = tanh((real)GELU_C0 * x * (1 + (real)GELU_C1 * x2));
    real om = 1 - t * t;
    real dt = om * (real)GELU_C0 * (1 + 3 * (real)GELU_C1 * x2);
    real s = (real)GELU_C0 + (real)GELU_C2 * x2;
    return (real)0.5 * om * s - x * t * dt * s + (real)GELU_C2 * x2 * om + (real)0.5 * dt;
}

#endif
