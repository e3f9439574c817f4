/* ttt_mm.h - small dense kernels for the inner loop (matrices of 16 x 64 x
 * 256 at most): row-major, explicit leading dimensions. Called from inside
 * the per-(b,h) OpenMP loop, where a BLAS call would be too small and would
 * fight over threads. `acc` = 0 overwrites C, 1 accumulates into it.
 *
 * Register blocking with GCC vector extensions (32-byte vectors: AVX2 under
 * the default -march=x86-64-v3, two SSE halves elsewhere; the build is -O2,
 * which does not auto-vectorise): mm_nn/mm_tn keep a 4 x 2-vector block of C
 * in registers over the whole K loop (6 loads per 8 FMAs instead of the 5
 * loads + 1 store per 4 FMAs of a row-at-a-time loop); mm_nt keeps 4 x 2 dot
 * products as vector partial sums, reduced together by lane shuffles. Edges (rows past a multiple of 4, columns
 * past a multiple of 2 vectors, K past a multiple of 1 vector) take plain
 * loops, so any shape is correct.
 */
#ifndef TTT_MM_H
#define TTT_MM_H

#include <stddef.h>
#include <string.h>
#include "../real.h"

/* vector bytes: 32, or 64 where the build targets AVX-512 (ttt_mlp_avx512.c
 * asks for 64 in a default build) */
#ifndef MM_VB
#ifdef __AVX512F__
#define MM_VB 64
#else
#define MM_VB 32
#endif
#endif
#ifdef TTT_F64
#define MM_VL (MM_VB / 8)                               /* lanes per vector */
#else
#define MM_VL (MM_VB / 4)
#endif
typedef real mm_v __attribute__((vector_size(MM_VB)));

static inline mm_v mm_ld(const real *p) { mm_v v; memcpy(&v, p, sizeof v); return v; }
/* a load kept in a register: GCC otherwise folds a load used twice into both
 * FMAs as memory operands, and the dot-product loops become load-bound */
static inline mm_v mm_ldr(const real *p)
{
    mm_v v = mm_ld(p);
#if defined(__x86_64__) || defined(__i386__)
#if MM_VB == 64
    __asm__("" : "+v"(v));
#else
    __asm__("" : "+x"(v));
#endif
#endif
    return v;
}
static inline void mm_st(real *p, mm_v v) { memcpy(p, &v, sizeof v); }
/* broadcast; not `(mm_v){0} + s`, which without -ffast-math costs a scalar add */
#if MM_VL == 4
static inline mm_v mm_bc(real s) { return (mm_v){ s, s, s, s }; }
#elif MM_VL == 8
static inline mm_v mm_bc(real s) { return (mm_v){ s, s, s, s, s, s, s, s }; }
#else
static inline mm_v mm_bc(real s) { return (mm_v){ s, s, s, s, s, s, s, s, s, s, s, s, s, s, s, s }; }
#endif
static inline real mm_hsum(mm_v v)
{
    real s = 0;
    for (int l = 0; l < MM_VL; l++) s += v[l];
    return s;
}

/* d[u] = sum of the lanes of s[u], u < 8, by a butterfly of lane shuffles
 * (pairs of vectors add their neighbouring lanes, halving the width each
 * level) instead of eight serial lane-by-lane sums. */
/* __builtin_shuffle is GCC's; clang (the libFuzzer build, tests/fuzz/) picks
 * the same lanes one by one. */
#ifdef __clang__
#define MM_SHUFFLE(a, b, m) __extension__({ mm_v r_; for (int l_ = 0; l_ < MM_VL; l_++) \
        r_[l_] = (m)[l_] < MM_VL ? (a)[(m)[l_]] : (b)[(m)[l_] - MM_VL]; r_; })
#else
#define MM_SHUFFLE(a, b, m) __builtin_shuffle(a, b, m)
#endif
#ifdef TTT_F64
typedef long long mm_vi __attribute__((vector_size(MM_VB)));
#else
typedef int mm_vi __attribute__((vector_size(MM_VB)));
#endif
/* lane l of a butterfly level with blocks of w lanes: blocks alternate
 * between a (lanes 0..VL-1) and b (VL..2VL-1); E takes the first block of
 * each pair, E + w the second */
#define MM_E(w, l) ((((l) / (w)) % 2 ? MM_VL : 0) + (l) / (w) / 2 * 2 * (w) + (l) % (w))
#define MM_L4(w, o) MM_E(w, 0) + (o), MM_E(w, 1) + (o), MM_E(w, 2) + (o), MM_E(w, 3) + (o)
#define MM_L8(w, o) MM_L4(w, o), MM_E(w, 4) + (o), MM_E(w, 5) + (o), MM_E(w, 6) + (o), MM_E(w, 7) + (o)
#define MM_L16(w, o) MM_L8(w, o), MM_E(w, 8) + (o), MM_E(w, 9) + (o), MM_E(w, 10) + (o), \
    MM_E(w, 11) + (o), MM_E(w, 12) + (o), MM_E(w, 13) + (o), MM_E(w, 14) + (o), MM_E(w, 15) + (o)
#if MM_VL == 4
#define MM_LANES(w, o) { MM_L4(w, o) }
#elif MM_VL == 8
#define MM_LANES(w, o) { MM_L8(w, o) }
#else
#define MM_LANES(w, o) { MM_L16(w, o) }
#endif
static inline mm_v mm_pair(mm_v a, mm_v b, int w)
{
    const mm_vi e1 = MM_LANES(1, 0), o1 = MM_LANES(1, 1), e2 = MM_LANES(2, 0), o2 = MM_LANES(2, 2);
    const mm_vi e4 = MM_LANES(4, 0), o4 = MM_LANES(4, 4);
    if (w == 1) return MM_SHUFFLE(a, b, e1) + MM_SHUFFLE(a, b, o1);
    if (w == 2) return MM_SHUFFLE(a, b, e2) + MM_SHUFFLE(a, b, o2);
    return MM_SHUFFLE(a, b, e4) + MM_SHUFFLE(a, b, o4);
}
static inline void mm_reduce8(real d[8], const mm_v s[8])
{
#if MM_VL == 4
    for (int h = 0; h < 2; h++) {         /* four sums per vector */
        const mm_v *t = s + 4 * h;
        mm_v r = mm_pair(mm_pair(t[0], t[1], 1), mm_pair(t[2], t[3], 1), 2);
        memcpy(d + 4 * h, &r, sizeof r);
    }
#else
    mm_v a = mm_pair(mm_pair(s[0], s[1], 1), mm_pair(s[2], s[3], 1), 2);
    mm_v b = mm_pair(mm_pair(s[4], s[5], 1), mm_pair(s[6], s[7], 1), 2);
    mm_v r = mm_pair(a, b, 4);
#if MM_VL == 16                           /* lanes l and l + 8 hold halves of sum l */
    const mm_vi hi = { 8, 9, 10, 11, 12, 13, 14, 15, 0, 1, 2, 3, 4, 5, 6, 7 };
    r += MM_SHUFFLE(r, r, hi);
#endif
    memcpy(d, &r, sizeof(real) * 8);
#endif
}

/* C = acc ? C + alpha*v : alpha*v, one vector */
static inline void mm_put(real *c, mm_v v, real alpha, int acc)
{
    v *= alpha;
    mm_st(c, acc ? mm_ld(c) + v : v);
}

/* C[M,N] (+)= alpha * A B with A(i,k) = A[i*sai + k*sak] and B[K,N] row-major:
 * sai = lda, sak = 1 is A[M,K]; sai = 1, sak = lda is A[K,M]^T. */
static inline void mm_gen(real *restrict C, int ldc, const real *restrict A, size_t sai, size_t sak,
                          const real *restrict B, int ldb, int M, int N, int K, real alpha, int acc)
{
    const int W = 2 * MM_VL, nv = N - N % W, mv = M - M % 4;
    /* column panels outer: a K x W panel of B stays in L1 across the row blocks */
    for (int j = 0; j < nv; j += W) {
        for (int i = 0; i < mv; i += 4) {
            mm_v c00 = { 0 }, c01 = { 0 }, c10 = { 0 }, c11 = { 0 };
            mm_v c20 = { 0 }, c21 = { 0 }, c30 = { 0 }, c31 = { 0 };
            const real *a = A + i * sai, *b = B + j;
            for (int k = 0; k < K; k++, a += sak, b += ldb) {
                mm_v b0 = mm_ld(b), b1 = mm_ld(b + MM_VL), x;
                x = mm_bc(a[0]);       c00 += x * b0; c01 += x * b1;
                x = mm_bc(a[sai]);     c10 += x * b0; c11 += x * b1;
                x = mm_bc(a[2 * sai]); c20 += x * b0; c21 += x * b1;
                x = mm_bc(a[3 * sai]); c30 += x * b0; c31 += x * b1;
            }
            real *c = C + (size_t)i * ldc + j;
            mm_put(c, c00, alpha, acc); mm_put(c + MM_VL, c01, alpha, acc); c += ldc;
            mm_put(c, c10, alpha, acc); mm_put(c + MM_VL, c11, alpha, acc); c += ldc;
            mm_put(c, c20, alpha, acc); mm_put(c + MM_VL, c21, alpha, acc); c += ldc;
            mm_put(c, c30, alpha, acc); mm_put(c + MM_VL, c31, alpha, acc);
        }
        for (int i = mv; i < M; i++) {
            mm_v c0 = { 0 }, c1 = { 0 };
            const real *a = A + i * sai, *b = B + j;
            for (int k = 0; k < K; k++, a += sak, b += ldb) {
                mm_v x = mm_bc(a[0]);
                c0 += x * mm_ld(b); c1 += x * mm_ld(b + MM_VL);
            }
            real *c = C + (size_t)i * ldc + j;
            mm_put(c, c0, alpha, acc); mm_put(c + MM_VL, c1, alpha, acc);
        }
    }
    for (int i = 0; i < M && nv < N; i++) {
        real *c = C + (size_t)i * ldc;
        for (int j = nv; j < N; j++) {
            real s = 0;
            for (int k = 0; k < K; k++) s += A[i * sai + k * sak] * B[(size_t)k * ldb + j];
            c[j] = (acc ? c[j] : 0) + alpha * s;
        }
    }
}

/* C[M,N] (+)= alpha * A[M,K] B[K,N] */
static inline void mm_nn(real *restrict C, int ldc, const real *restrict A, int lda,
                         const real *restrict B, int ldb, int M, int N, int K, real alpha, int acc)
{
    mm_gen(C, ldc, A, (size_t)lda, 1, B, ldb, M, N, K, alpha, acc);
}

/* C[M,N] (+)= alpha * A[K,M]^T B[K,N] */
static inline void mm_tn(real *restrict C, int ldc, const real *restrict A, int lda,
                         const real *restrict B, int ldb, int M, int N, int K, real alpha, int acc)
{
    mm_gen(C, ldc, A, 1, (size_t)lda, B, ldb, M, N, K, alpha, acc);
}

/* dot product of a[K] and b[K] with the vector part kv = K - K % MM_VL */
static inline real mm_dot(const real *a, const real *b, int K, int kv)
{
    mm_v s = { 0 };
    for (int k = 0; k < kv; k += MM_VL) s += mm_ld(a + k) * mm_ld(b + k);
    real t = mm_hsum(s);
    for (int k = kv; k < K; k++) t += a[k] * b[k];
    return t;
}

/* C[M,N] (+)= alpha * A[M,K] B[N,K]^T: 4 rows of A x 2 rows of B per pass */
static inline void mm_nt(real *restrict C, int ldc, const real *restrict A, int lda,
                         const real *restrict B, int ldb, int M, int N, int K, real alpha, int acc)
{
    const int kv = K - K % MM_VL, mv = M - M % 4, nv = N - N % 2;
    for (int i = 0; i < mv; i += 4) {
        const real *a0 = A + (size_t)i * lda, *a1 = a0 + lda, *a2 = a1 + lda, *a3 = a2 + lda;
        for (int j = 0; j < nv; j += 2) {
            const real *b0 = B + (size_t)j * ldb, *b1 = b0 + ldb;
            mm_v s00 = { 0 }, s01 = { 0 }, s10 = { 0 }, s11 = { 0 };
            mm_v s20 = { 0 }, s21 = { 0 }, s30 = { 0 }, s31 = { 0 };
            for (int k = 0; k < kv; k += MM_VL) {
                mm_v y0 = mm_ld(b0 + k), y1 = mm_ld(b1 + k), x;
                x = mm_ldr(a0 + k); s00 += x * y0; s01 += x * y1;
                x = mm_ldr(a1 + k); s10 += x * y0; s11 += x * y1;
                x = mm_ldr(a2 + k); s20 += x * y0; s21 += x * y1;
                x = mm_ldr(a3 + k); s30 += x * y0; s31 += x * y1;
            }
            const mm_v sv[8] = { s00, s01, s10, s11, s20, s21, s30, s31 };
            real d[8];
            mm_reduce8(d, sv);
            for (int k = kv; k < K; k++) {
                d[0] += a0[k] * b0[k]; d[1] += a0[k] * b1[k];
                d[2] += a1[k] * b0[k]; d[3] += a1[k] * b1[k];
                d[4] += a2[k] * b0[k]; d[5] += a2[k] * b1[k];
                d[6] += a3[k] * b0[k]; d[7] += a3[k] * b1[k];
            }
            for (int u = 0; u < 4; u++)
                for (int v = 0; v < 2; v++) {
                    real *c = C + (size_t)(i + u) * ldc + j + v;
                    *c = (acc ? *c : 0) + alpha * d[2 * u + v];
                }
        }
    }
    for (int i = 0; i < M; i++)
        for (int j = i < mv ? nv : 0; j < N; j++) {
            real *c = C + (size_t)i * ldc + j;
            *c = (acc ? *c : 0) + alpha * mm_dot(A + (size_t)i * lda, B + (size_t)j * ldb, K, kv);
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
