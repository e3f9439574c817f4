/* test_ttt_mm - the register-blocked small-matrix kernels of
 * lib/layers/ttt_mm.h against plain triple loops, over shapes that hit every
 * edge path (rows past a multiple of 4, columns past a multiple of 2
 * vectors, K past a multiple of 1 vector, leading dimensions wider than the
 * matrix), both alpha/acc modes; and the gelu pairs of gelu.h against the
 * single functions (bit-exact in this float64 build). */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "../../lib/layers/gelu.h"
#include "../../lib/layers/ttt_mm.h"

static double urand(unsigned *s)
{
    *s = *s * 1103515245u + 12345u;
    return ((*s >> 8) & 0xffff) / 32768.0 - 1;
}

/* C(i,j) of the reference: sum_k op(A)(i,k) op(B)(k,j) */
static void ref(real *C, int ldc, const real *A, int lda, int ta, const real *B, int ldb, int tb,
                int M, int N, int K, real alpha, int acc)
{
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            double s = 0;
            for (int k = 0; k < K; k++)
                s += (double)(ta ? A[(size_t)k * lda + i] : A[(size_t)i * lda + k]) *
                     (tb ? B[(size_t)j * ldb + k] : B[(size_t)k * ldb + j]);
            C[(size_t)i * ldc + j] = (acc ? C[(size_t)i * ldc + j] : 0) + alpha * s;
        }
}

static void one(int M, int N, int K, int pad, real alpha, int acc, unsigned *seed)
{
    int big = (M > K ? M : K) + pad, ldn = (N > K ? N : K) + pad, ldc = N + pad;
    size_t na = (size_t)big * big, nb = (size_t)ldn * ldn, nc = (size_t)M * ldc;
    real *A = malloc(sizeof(real) * na), *B = malloc(sizeof(real) * nb);
    real *C = malloc(sizeof(real) * nc), *R = malloc(sizeof(real) * nc);
    for (size_t i = 0; i < na; i++) A[i] = urand(seed);
    for (size_t i = 0; i < nb; i++) B[i] = urand(seed);
    for (int kind = 0; kind < 3; kind++) {
        for (size_t i = 0; i < nc; i++) C[i] = R[i] = urand(seed);
        int lda = big, ldb = ldn;
        if (kind == 0) {
            mm_nn(C, ldc, A, lda, B, ldb, M, N, K, alpha, acc);
            ref(R, ldc, A, lda, 0, B, ldb, 0, M, N, K, alpha, acc);
        } else if (kind == 1) {
            mm_nt(C, ldc, A, lda, B, ldb, M, N, K, alpha, acc);
            ref(R, ldc, A, lda, 0, B, ldb, 1, M, N, K, alpha, acc);
        } else {
            mm_tn(C, ldc, A, lda, B, ldb, M, N, K, alpha, acc);
            ref(R, ldc, A, lda, 1, B, ldb, 0, M, N, K, alpha, acc);
        }
        double worst = 0;
        for (size_t i = 0; i < nc; i++) {
            double d = C[i] - R[i];
            if (d < 0) d = -d;
            if (d > worst) worst = d;
        }
        if (!(worst <= 1e-12 * (K + 1)))
            fprintf(stderr, "kind %d M=%d N=%d K=%d pad=%d acc=%d: worst %g\n", kind, M, N, K, pad, acc, worst);
        CHECK(worst <= 1e-12 * (K + 1));
    }
    free(A); free(B); free(C); free(R);
}

int main(void)
{
    unsigned seed = 7;
    const int sizes[] = { 1, 2, 3, 4, 5, 7, 8, 9, 13, 16, 17, 31, 33, 64 };
    const int ns = sizeof sizes / sizeof sizes[0];
    for (int a = 0; a < ns; a++)
        for (int b = 0; b < ns; b++)
            for (int c = 0; c < ns; c += 3)
                one(sizes[a], sizes[b], sizes[(c + a) % ns], (a + b) % 3, (a & 1) ? -0.5 : 1, (b + c) & 1, &seed);
    one(16, 256, 64, 0, 1, 0, &seed);     /* the TTT-MLP shapes, d = 64, F = 256 */
    one(16, 64, 256, 0, -1, 1, &seed);
    one(64, 256, 16, 0, -1, 1, &seed);

    /* mm_colsum */
    real A[5 * 9], y[9], r[9];
    for (int i = 0; i < 45; i++) A[i] = urand(&seed);
    for (int j = 0; j < 9; j++) y[j] = r[j] = urand(&seed);
    mm_colsum(y, A, 9, 5, 9, 2, 1);
    for (int j = 0; j < 9; j++) {
        for (int i = 0; i < 5; i++) r[j] += 2 * A[i * 9 + j];
        CHECK_CLOSE(y[j], r[j], 1e-14, 1e-14);
    }

    /* gelu pairs equal the single functions */
    for (int i = -400; i <= 400; i++) {
        real x = i * 0.025, g, h, d, h2;
        gelu_and_trunc_grad(x, &g, &h);
        gelu_grad_and_trunc_grad2(x, &d, &h2);
        CHECK(g == gelu_tanh(x) && h == gelu_trunc_grad(x));
        CHECK(d == gelu_tanh_grad(x) && h2 == gelu_trunc_grad2(x));
    }
    return check_exit("test_ttt_mm");
}
