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

/* C[M,N] (+)= alpha * A[M,K] B[K,N]. Four rows of B per pass over a row of
 * C: one load and store of C per four FMAs (the products are L1-bound). */
static inline void mm_nn(real *restrict C, int ldc, const real *restrict A, int lda,
                         const real *restrict B, int ldb, int M, int N, int K, real alpha, int acc)
{
    for (int i = 0; i < M; i++) {
        real *c = C + (size_t)i * ldc;
        const real *a = A + (size_t)i * lda;
        if (!acc) memset(c, 0, sizeof(real) * N);
        int k = 0;
        for (; k + 4 <= K; k += 4) {
            real a0 = alpha * a[k], a1 = alpha * a[k + 1], a2 = alpha * a[k + 2], a3 = alpha * a[k + 3];
            const real *b0 = B + (size_t)k * ldb, *b1 = b0 + ldb, *b2 = b1 + ldb, *b3 = b2 + ldb;
            _Pragma("omp simd")
            for (int j = 0; j < N; j++) c[j] += a0 * b0[j] + a1 * b1[j] + a2 * b2[j] + a3 * b3[j];
        }
        for (; k < K; k++) {
            real a0 = alpha * a[k];
            const real *b0 = B + (size_t)k * ldb;
            _Pragma("omp simd")
            for (int j = 0; j < N; j++) c[j] += a0 * b0[j];
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

/* C[M,N] (+)= alpha * A[K,M]^T B[K,N], blocked like mm_nn */
static inline void mm_tn(real *restrict C, int ldc, const real *restrict A, int lda,
                         const real *restrict B, int ldb, int M, int N, int K, real alpha, int acc)
{
    for (int i = 0; i < M; i++) {
        real *c = C + (size_t)i * ldc;
        if (!acc) memset(c, 0, sizeof(real) * N);
        int k = 0;
        for (; k + 4 <= K; k += 4) {
            real a0 = alpha * A[(size_t)k * lda + i], a1 = alpha * A[(size_t)(k + 1) * lda + i];
            real a2 = alpha * A[(size_t)(k + 2) * lda + i], a3 = alpha * A[(size_t)(k + 3) * lda + i];
            const real *b0 = B + (size_t)k * ldb, *b1 = b0 + ldb, *b2 = b1 + ldb, *b3 = b2 + ldb;
            _Pragma("omp simd")
            for (int j = 0; j < N; j++) c[j] += a0 * b0[j] + a1 * b1[j] + a2 * b2[j] + a3 * b3[j];
        }
        for (; k < K; k++) {
            real a0 = alpha * A[(size_t)k * lda + i];
            const real *b0 = B + (size_t)k * ldb;
            _Pragma("omp simd")
            for (int j = 0; j < N; j++) c[j] += a0 * b0[j];
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
