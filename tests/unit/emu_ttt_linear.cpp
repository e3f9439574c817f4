/* emu_ttt_linear.cpp - host emulator of the TTT-Linear inner-loop kernels,
 * the tensor-core ones (lib/cuda/ttt_inner_linear_tc.cu) and the fp32 ones
 * (ttt_inner_linear.cu, both row-group sizes), included with -DTTT_CUDA_EMU:
 * one std::thread per CUDA thread, __syncthreads a block barrier, and the
 * warp collectives (mma m16n8k16, ldmatrix x2/x4 with and without .trans,
 * shfl) exchanged through per-warp slots and barriers, computed from the PTX
 * fragment definitions; ldmatrix rows must be 16-byte aligned, as on the GPU.
 * Runs the real kernel code, forward and backward, without a GPU, against
 * the float64 primal-form reference (tests/kernels/ttt_inner_ref.h): the
 * output element-wise and every gradient (Q, K, V, lr, token offsets,
 * ttt_norm gamma and beta, W, b) through directional derivatives of
 * L = sum(dZ * Z) by central differences of the reference
 * (tests/unit/emu_ttt_check.h): bf16 operands give up to 3e-3, and a
 * transposed operand or a mispaired state column, tried on a copy, gave
 * 2e-2 to 3e-1 (the bound is 1e-2). With and without the
 * fused RoPE, partial last mini-batches, head dims 16, 64 and 96 (both
 * backward block shapes), the tensor-core forward also without state
 * checkpoints (the same Z bit for bit) and with Z in bf16 (Z rounded, bit
 * for bit); the fp32 kernels (RoPE not fused:
 * Q, K come rotated) within 1e-4. Run by `make check-emu` (part of `make
 * test`), or:
 *   g++ -O1 -std=c++20 -pthread -Wno-unknown-pragmas -Ilib \
 *       tests/unit/emu_ttt_linear.cpp -o /tmp/emu_tl && /tmp/emu_tl
 * (about 30 seconds; exit 0 when every case passes). */
#define TTT_CUDA_EMU
#define __shared__
#include "emu_cuda.h"

#include "emu_mma_bf16.h"

alignas(16) float sm[1 << 16];   /* the fp32 kernels' extern __shared__ sm[] */
#include "cuda/ttt_inner_linear.cu"
#undef KB
#undef EPS
#include "cuda/ttt_inner_linear_tc.cu"
#include "emu_ttt_check.h"

/* the tensor-core kernels */
template <int D>
static int run(int B, int H, int T, bool rope)
{
    constexpr int SPLIT = D <= 64 ? 2 : 1;
    return run_case(
        B, H, D, T, false, 1, rope,
        [&](ttt_inner_args &a) {
            fwd_without_then_with_states(a, "inner_fwd_tc", [&] {
                emu_launch(B * H, 1, 1, 2 * D, [&] {
                    if (a.z16) a.states ? inner_fwd_tc<D, true, true>(a) : inner_fwd_tc<D, true, false>(a);
                    else a.states ? inner_fwd_tc<D, false, true>(a) : inner_fwd_tc<D, false, false>(a);
                }, smraw, sizeof smraw);
            });
        },
        [&](ttt_inner_args &a) {
            emu_launch(B * H, 1, 1, 4 * D * SPLIT, [&] { inner_bwd_tc<D, SPLIT>(a); }, smraw, sizeof smraw);
        });
}

/* the fp32 kernels, RPT rows per thread */
template <int D, int RPT>
static int run_fp32(int B, int H, int T)
{
    return run_case(
        B, H, D, T, false, 0, false,
        [&](ttt_inner_args &a) { emu_launch(B * H, 1, 1, KB / RPT * D, [&] { inner_fwd<D, RPT>(a); }, sm, sizeof sm); },
        [&](ttt_inner_args &a) { emu_launch(B * H, 1, 1, KB / RPT * D, [&] { inner_bwd<D, RPT>(a); }, sm, sizeof sm); });
}

int main(void)
{
    int bad = 0;
    bad |= run<16>(2, 2, 45, false);
    bad |= run<16>(1, 2, 40, true);
    bad |= run<64>(1, 1, 37, true);
    bad |= run<96>(1, 1, 20, false);
    bad |= run_fp32<16, 4>(2, 2, 45);
    bad |= run_fp32<32, 2>(1, 2, 40);
    bad |= run_fp32<96, 4>(1, 1, 20);
    printf("emu_ttt_linear: %s\n", bad ? "FAILED" : "all cases ok");
    return bad;
}
