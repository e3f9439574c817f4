/* blas.h - the one matrix product the model code calls, in the precision of
 * `real` (sgemm or dgemm). Row-major. C = alpha * op(A) op(B) + beta * C,
 * op(A) is M x K, op(B) is K x N. Uses OpenBLAS when built with it
 * (TTT_HAVE_BLAS), otherwise a plain C loop (correct, slow).
 */
#ifndef TTT_BLAS_H
#define TTT_BLAS_H

#include "real.h"

void ttt_gemm(int transA, int transB, int M, int N, int K, real alpha,
              const real *A, int lda, const real *B, int ldb, real beta, real *C, int ldc);

/* Threads used by BLAS calls (0 = library default). */
void ttt_blas_threads(int n);

#endif
