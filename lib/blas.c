/* blas.c - row-major gemm over `real` (see blas.h). */
#include "blas.h"

#ifdef TTT_HAVE_BLAS
#include <cblas.h>
#endif

void ttt_gemm(int tA, int tB, int M, int N, int K, real alpha,
              const real *A, int lda, const real *B, int ldb, real beta, real *C, int ldc)
{
    if (M <= 0 || N <= 0) return;
#ifdef TTT_HAVE_BLAS
#ifdef TTT_F64
    cblas_dgemm(CblasRowMajor, tA ? CblasTrans : CblasNoTrans, tB ? CblasTrans : CblasNoTrans,
                M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
#else
    cblas_sgemm(CblasRowMajor, tA ? CblasTrans : CblasNoTrans, tB ? CblasTrans : CblasNoTrans,
                M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
#endif
#else
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            double s = 0;
            for (int k = 0; k < K; k++) {
                real a = tA ? A[(long)k * lda + i] : A[(long)i * lda + k];
                real b = tB ? B[(long)j * ldb + k] : B[(long)k * ldb + j];
                s += (double)a * b;
            }
            real *c = &C[(long)i * ldc + j];
            *c = (real)(alpha * s + (beta == 0 ? 0 : beta * *c));
        }
#endif
}

void ttt_blas_threads(int n)
{
#ifdef TTT_HAVE_BLAS
    if (n > 0) openblas_set_num_threads(n);
#else
    (void)n;
#endif
}
