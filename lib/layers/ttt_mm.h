/* ttt_mm.h - small dense kernels for the inner loop (matrices of 16 x 64 x
 * 256 at most): row-major, explicit leading dimensions, innermost loops over
 * contiguous memory so the compiler vectorises them. Called from inside the
 * per-(b,h) OpenMP loop, where a BLAS call would be too small and would
 * fight over threads. `acc` = 0 overwrites C, 1 accumulates into it.
 */
#ifndef TTT_MM_H
#define TTT_MM_H

#include <string.h>
#include "../real.h"

/* C[M,N] (+)= alpha * A[M,K] B[K,N] */
static inline void mm_nn(real *restrict C, int ldc, const real *restrict A, int lda,
                         const real *restrict B, int ldb, int M, int N, int K, real alpha, int acc)
{
    for (int i = 0; i < M; i++) {
        real *c = C + (size_t)i * ldc;
        if (!acc) memset(c, 0, sizeof(real) * N);
        for (int k = 0; k < K; k++) {
            real a = alpha * A[(size_t)i * lda + k];
            const real *b = B + (size_t)k * ldb;
            _Pragma("omp simd")
            for (int j = 0; j < N; j++) c[j] += a * b[j];
        }
    }
}

/* C[M,N] (+)= alpha * A[M,K] B[N,K]^T */
static inline void mm_nt(real *restrict C, int ldc, const real *restrict A, int lda,
                         const real *restrict B, int ldb, int M, int N, int K, real alpha, int acc)
{
    for (int i = 0; i < M; i++) {
        const real *a = A + (size_t)i * lda;
        for (int j = 0; j < N; j++) {
            const real *b = B + (size_t)j * ldb;
            real s = 0;
            _Pragma("omp simd reduction(+:s)")
            for (int k = 0; k < K; k++) s += a[k] * b[k];
            C[(size_t)i * ldc + j] = (acc ? C[(size_t)i * ldc + j] : 0) + alpha * s;
        }
    }
}

/* C[M,N] (+)= alpha * A[K,M]^T B[K,N] */
static inline void mm_tn(real *restrict C, int ldc, const real *restrict A, int lda,
                         const real *restrict B, int ldb, int M, int N, int K, real alpha, int acc)
{
    if (!acc)
        for (int i = 0; i < M; i++) memset(C + (size_t)i * ldc, 0, sizeof(real) * N);
    for (int k = 0; k < K; k++) {
        const real *b = B + (size_t)k * ldb;
        for (int i = 0; i < M; i++) {
            real a = alpha * A[(size_t)k * lda + i];
            real *c = C + (size_t)i * ldc;
            _Pragma("omp simd")
            for (int j = 0; j < N; j++) c[j] += a * b[j];
        }
    }
}

/* y[N] (+)= alpha * sum of the M rows of A[M,N] */
static inline void mm_colsum(real *restrict y, const real *restrict A, int lda, int M, int N,
                             real alpha, int acc)
{
    if (!acc) memset(y, 0, sizeof(real) * N);
    for (int i = 0; i < M; i++)
        _Pragma("omp simd")
        for (int j = 0; j < N; j++) y[j] += alpha * A[(size_t)i * lda + j];
}

#endif
