/* emu_ttt_lr.cpp - host emulator of the inner learning rate's kernels
 * (lib/cuda/ttt_lr.cuh): the real kernel source, one std::thread per CUDA
 * thread, mma computed from the PTX fragment layout (emu_cuda.h). Checks:
 *   - k_lr_proj_tc<2>, <4> (bf16 mode's projection and gate) against a
 *     float64 scale * sigmoid(x . w + b) of the same bf16 x and w, relative
 *     1e-5 (fp32 accumulation gives ~1e-7; a mispaired k, row or head gives
 *     order 1); rows 1, 15, 16, 37 (partial last groups of 16), C = 128, 256,
 *     768, H = 1, 5, 12, 16 (two n8 tiles, partly empty), 17, 32 (four);
 *     the output starts as NaN and sits before a sentinel zone that must
 *     survive (a row or head past the end written shows);
 *   - k_lr_gate (fp32 mode's gate, in place) against the same formula;
 *   - k_lr_colsum<true> then <false> as the layer's backward runs them (the
 *     gate's backward in place, lr_b's gradient added to a nonzero start)
 *     against float64, 1e-5 of the sum of |terms|; rows 1, 255, 256, 257,
 *     1000 (blocks of LR_ROWS, partial last), H = 1, 12, 32, 100; and the
 *     same partial sums twice give the same bits (the order is fixed).
 * Run by `make check-emu` (part of `make test`), or by hand:
 *   g++ -O1 -std=c++20 -pthread -Wno-unknown-pragmas -Ilib \
 *       tests/unit/emu_ttt_lr.cpp -o /tmp/emu_lr && /tmp/emu_lr
 * (some seconds; exit 0 when every case passes). */
#define TTT_CUDA_EMU
#define __shared__ static
#include "emu_cuda.h"

#include "emu_mma_bf16.h"

#include "cuda/ttt_lr.cuh"

static int failures, checks;

static void expect(bool ok, const char *what, int rows, int C, int H, double err)
{
    checks++;
    if (ok) return;
    if (++failures <= 20) printf("FAIL %s rows=%d C=%d H=%d: error %.3g\n", what, rows, C, H, err);
}

static double sigmoid_lr(double a, double scale) { return scale / (1 + exp(-a)); }

static void proj_case(int rows, int C, int H)
{
    std::mt19937 rng(rows * 131 + C * 7 + H);
    std::normal_distribution<float> nd(0.f, 1.f);
    std::vector<__nv_bfloat16> x((size_t)rows * C), w((size_t)H * C);
    std::vector<float> bias(H);
    for (auto &v : x) v = __float2bfloat16_rn(nd(rng));
    for (auto &v : w) v = __float2bfloat16_rn(0.05f * nd(rng));
    for (auto &v : bias) v = 0.5f * nd(rng);
    const size_t n = (size_t)rows * H, guard = 64;
    std::vector<float> lr(n + guard, NAN);
    for (size_t i = n; i < n + guard; i++) lr[i] = 12345.f;
    const float scale = 1.f / 64;
    const unsigned nb = (rows + 15) / 16;
    if (H <= 16) emu_launch(nb, 1, 1, 128, [&] { k_lr_proj_tc<2>(lr.data(), x.data(), w.data(), bias.data(), rows, C, H, scale); });
    else emu_launch(nb, 1, 1, 128, [&] { k_lr_proj_tc<4>(lr.data(), x.data(), w.data(), bias.data(), rows, C, H, scale); });
    double worst = 0;
    for (int r = 0; r < rows; r++)
        for (int h = 0; h < H; h++) {
            double s = bias[h];
            for (int k = 0; k < C; k++)
                s += (double)__bfloat162float(x[(size_t)r * C + k]) * __bfloat162float(w[(size_t)h * C + k]);
            const double ref = sigmoid_lr(s, scale), got = lr[(size_t)r * H + h];
            const double e = std::isfinite(got) ? fabs(got - ref) / ref : INFINITY;
            worst = std::max(worst, e);
        }
    expect(worst <= 1e-5, "k_lr_proj_tc", rows, C, H, worst);
    bool guard_ok = true;
    for (size_t i = n; i < n + guard; i++) guard_ok &= lr[i] == 12345.f;
    expect(guard_ok, "k_lr_proj_tc wrote past its output", rows, C, H, 0);
}

static void gate_case(int rows, int H)
{
    std::mt19937 rng(rows * 17 + H);
    std::normal_distribution<float> nd(0.f, 1.f);
    const size_t n = (size_t)rows * H;
    std::vector<float> a(n), bias(H);
    for (auto &v : a) v = nd(rng);
    for (auto &v : bias) v = nd(rng);
    std::vector<float> a0 = a;
    const float scale = 0.25f;
    emu_launch(3, 1, 1, 64, [&] { k_lr_gate(a.data(), bias.data(), H, n, scale); });
    double worst = 0;
    for (size_t i = 0; i < n; i++) {
        const double ref = sigmoid_lr((double)a0[i] + bias[i % H], scale);
        worst = std::max(worst, fabs(a[i] - ref) / ref);
    }
    expect(worst <= 1e-5, "k_lr_gate", rows, 0, H, worst);
}

/* the backward as ttt_cuda_layer_backward launches it */
static void colsum_run(std::vector<float> &dlr, std::vector<float> &part, const std::vector<float> &lr,
                       std::vector<float> &out, int rows, int H, float inv_scale)
{
    const int nb = (rows + LR_ROWS - 1) / LR_ROWS;
    emu_launch(nb, 1, 1, 256, [&] { k_lr_colsum<true>(part.data(), dlr.data(), lr.data(), rows, H, LR_ROWS, inv_scale, 0); });
    emu_launch(1, 1, 1, 256, [&] { k_lr_colsum<false>(out.data(), part.data(), NULL, nb, H, nb, 0.f, 1); });
}

static void colsum_case(int rows, int H)
{
    std::mt19937 rng(rows * 29 + H);
    std::normal_distribution<float> nd(0.f, 1.f);
    std::uniform_real_distribution<float> ud(0.f, 1.f);
    const size_t n = (size_t)rows * H;
    const float scale = 0.5f, inv_scale = 1 / scale;
    std::vector<float> dlr(n), lr(n), out0(H);
    for (auto &v : dlr) v = nd(rng);
    for (auto &v : lr) v = scale * ud(rng);
    for (auto &v : out0) v = nd(rng);
    const int nb = (rows + LR_ROWS - 1) / LR_ROWS;
    std::vector<float> d1 = dlr, part(nb * H, NAN), out = out0;
    colsum_run(d1, part, lr, out, rows, H, inv_scale);
    double wd = 0, wb = 0;
    for (int h = 0; h < H; h++) {
        double s = out0[h], mag = fabs(out0[h]);
        for (int r = 0; r < rows; r++) {
            const size_t i = (size_t)r * H + h;
            const double d = (double)dlr[i] * lr[i] * (1 - (double)lr[i] * inv_scale);
            wd = std::max(wd, fabs(d1[i] - d) / (fabs(d) + 1e-30));
            s += d;
            mag += fabs(d);
        }
        wb = std::max(wb, fabs(out[h] - s) / mag);
    }
    expect(wd <= 1e-5, "k_lr_colsum<true> (the gate's backward)", rows, 0, H, wd);
    expect(wb <= 1e-5, "k_lr_colsum (lr_b's gradient)", rows, 0, H, wb);
    std::vector<float> d2 = dlr, part2(nb * H, NAN), out2 = out0;
    colsum_run(d2, part2, lr, out2, rows, H, inv_scale);
    expect(!memcmp(out.data(), out2.data(), H * sizeof(float)), "k_lr_colsum not deterministic", rows, 0, H, 0);
}

int main(void)
{
    for (int rows : {1, 15, 16, 37})
        for (int C : {128, 256, 768})
            for (int H : {1, 5, 12, 16, 17, 32}) {
                if (C == 768 && rows == 37 && H != 12) continue;   /* the emulator is slow; one large case */
                proj_case(rows, C, H);
            }
    for (int rows : {1, 7, 300}) gate_case(rows, 12);
    for (int rows : {1, 255, 256, 257, 1000})
        for (int H : {1, 12, 32, 100}) colsum_case(rows, H);
    printf("emu_ttt_lr: %d checks, %d failed\n", checks, failures);
    return failures != 0;
}
