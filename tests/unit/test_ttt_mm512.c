/* test_ttt_mm512 - test_ttt_mm over the 64-byte-vector (AVX-512) build of
 * the ttt_mm.h kernels that ttt_mlp_avx512.c uses; passes with no checks
 * where the CPU (or the compiler) has no AVX-512. */
#include <stdio.h>

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
int ttt_mm512_run(void);

int main(void)
{
    __builtin_cpu_init();
    if (!__builtin_cpu_supports("avx512f") || !__builtin_cpu_supports("avx512vl") ||
        !__builtin_cpu_supports("avx512dq") || !__builtin_cpu_supports("avx512bw")) {
        printf("test_ttt_mm512: 0 checks, 0 failed (no AVX-512 here)\n");
        return 0;
    }
    return ttt_mm512_run();
}

#pragma GCC target("avx512f,avx512vl,avx512dq,avx512bw")
#define MM_VB 64
#include "check.h"
#define main ttt_mm512_run
#define check_exit(name) (check_exit)("test_ttt_mm512")
#include "test_ttt_mm.c"
#else
int main(void)
{
    printf("test_ttt_mm512: 0 checks, 0 failed (not x86-64 GCC)\n");
    return 0;
}
#endif
