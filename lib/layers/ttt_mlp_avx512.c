/* ttt_mlp_avx512.c - the TTT-MLP dual-form forward and backward of
 * ttt_mlp.c compiled a second time with AVX-512 and 64-byte vectors in the
 * ttt_mm.h kernels, as ttt_mlp_forward_avx512 / ttt_mlp_backward_avx512;
 * ttt_mlp.c calls them where the CPU has AVX-512. Empty where the build
 * already targets AVX-512, or is not x86-64 GCC. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(__AVX512F__)
#pragma GCC target("avx512f,avx512vl,avx512dq,avx512bw")
#define MM_VB 64
#define TTT_MLP_AVX512_TU
#include "ttt_mlp.c"
#else
typedef int ttt_mlp_avx512_empty;   /* ISO C: no empty translation unit */
#endif
