/* emu_ttt_mlp.cpp - host emulator of the TTT-MLP inner-loop kernels, the
 * tensor-core ones (lib/cuda/ttt_inner_mlp_tc.cu) and the fp32 ones
 * (ttt_inner_mlp.cu), included with -DTTT_CUDA_EMU: one
 * std::thread per CUDA thread, the warp collectives (mma m16n8k16, ldmatrix
 * x2/x4 with and without .trans, shfl) from the PTX fragment definitions
 * (tests/unit/emu_cuda.h; ldmatrix rows must be 16-byte aligned). Runs the
 * real kernel code, forward and backward (with its bf16 W1/W2 state
 * checkpoints and the register prefetch), against the float64 primal-form
 * TTT-MLP reference (tests/kernels/ttt_inner_ref.h): Z element-wise and
 * every gradient (Q, K, V, lr, token offsets, gamma, beta, W1, b1, W2, b2)
 * through directional central differences (tests/unit/emu_ttt_check.h);
 * with and without the fused RoPE, partial last mini-batches, head dims 16,
 * 32 and 64, the tensor-core forward also without state checkpoints (the
 * same Z bit for bit) and with Z in bf16 (Z rounded, bit for bit); the fp32
 * kernels (Q, K come rotated) within 1e-4. A W2
 * checkpoint read from the wrong offset, or the lr of the wrong row, tried
 * on a copy, fail (NaN, and 1e-2 to 4e-1). Run by `make check-emu` (part
 * of `make test`), about a minute, or:
 *   g++ -O1 -std=c++20 -pthread -Wno-unknown-pragmas -Ilib \
 *       tests/unit/emu_ttt_mlp.cpp -o /tmp/emu_tm && /tmp/emu_tm */
#define TTT_CUDA_EMU
#define __shared__
#include "emu_cuda.h"

#include "emu_mma_bf16.h"

namespace {
alignas(16) float sm[1 << 16];   /* the fp32 kernels' extern __shared__ sm[] */
}
#include "cuda/ttt_inner_mlp.cu"
#undef KB
#undef EPS
#include "cuda/ttt_inner_mlp_tc.cu"
#include "emu_ttt_check.h"

template <int D>
static int run(int B, int H, int T, bool rope)
{
    if (bwd_layout<D>().total > sizeof smraw || fwd_layout<D>().total > sizeof smraw) {
        printf("D=%d: the kernels' shared memory exceeds the emulator's\n", D);
        return 1;
    }
    return run_case(
        B, H, D, T, true, 1, rope,
        [&](ttt_inner_args &a) {
            fwd_without_then_with_states(a, "mlp_fwd_tc", [&] {
                emu_launch(B * H, 1, 1, NT, [&] { mlp_fwd_tc<D>(a); }, smraw, sizeof smraw);
            });
        },
        [&](ttt_inner_args &a) { emu_launch(B * H, 1, 1, NT, [&] { mlp_bwd_tc<D>(a); }, smraw, sizeof smraw); });
}

/* the fp32 kernels */
template <int D>
static int run_fp32(int B, int H, int T)
{
    return run_case(
        B, H, D, T, true, 0, false,
        [&](ttt_inner_args &a) { emu_launch(B * H, 1, 1, MLP_NT, [&] { mlp_fwd<D>(a); }, sm, sizeof sm); },
        [&](ttt_inner_args &a) { emu_launch(B * H, 1, 1, MLP_NT, [&] { mlp_bwd<D>(a); }, sm, sizeof sm); });
}

int main(void)
{
    int bad = 0;
    bad |= run<16>(2, 1, 45, false);
    bad |= run<16>(1, 2, 40, true);
    bad |= run<32>(1, 1, 37, true);
    bad |= run<64>(1, 1, 20, false);
    bad |= run_fp32<16>(2, 1, 45);
    bad |= run_fp32<32>(1, 1, 37);
    printf("emu_ttt_mlp: %s\n", bad ? "FAILED" : "all cases ok");
    return bad;
}
