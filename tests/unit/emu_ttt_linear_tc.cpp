/* emu_ttt_linear_tc.cpp - host emulator of the TTT-Linear tensor-core
 * kernels (lib/cuda/ttt_inner_linear_tc.cu, included with -DTTT_CUDA_EMU):
 * one std::thread per CUDA thread, __syncthreads a block barrier, and the
 * warp collectives (mma m16n8k16, ldmatrix x2/x4 with and without .trans,
 * shfl) exchanged through per-warp slots and barriers, computed from the PTX
 * fragment definitions; ldmatrix rows must be 16-byte aligned, as on the GPU.
 * Runs the real kernel code, forward and backward, without a GPU, against
 * the float64 primal-form reference (tests/kernels/ttt_linear_ref.h): the
 * output and final state element-wise, and every gradient (Q, K, V, lr,
 * token offsets, ttt_norm gamma and beta, W0, b0) through directional
 * derivatives of L = sum(dZ * Z) by central differences of the reference,
 * |grad.u - dL/du| over sum |grad_i u_i| <= 1e-2 (bf16 operands give up to
 * 3e-3; a transposed operand or a mispaired state column gave 2e-2 to 3e-1
 * when tried), and Z within 2e-2 element-wise. With and without the
 * fused RoPE, partial last mini-batches, head dims 16, 64 and 96 (both
 * backward block shapes). Run by `make check-emu` (part of `make test`), or:
 *   g++ -O1 -std=c++20 -pthread -Wno-unknown-pragmas -Ilib \
 *       tests/unit/emu_ttt_linear_tc.cpp -o /tmp/emu_tl && /tmp/emu_tl
 * (about 20 seconds; exit 0 when every case passes). */
#define TTT_CUDA_EMU
#define __shared__
#include "emu_cuda.h"

namespace {
/* mma_bf16.cuh's primitives, left out with TTT_CUDA_EMU */
inline void mma(float *d, uint32_t a0, uint32_t a1, uint32_t a2, uint32_t a3, uint32_t b0, uint32_t b1)
{
    const uint32_t a[4] = {a0, a1, a2, a3};
    emu_mma(d, a, b0, b1);
}
inline void ldsm_x4(uint32_t *r, const __nv_bfloat16 *p) { emu_ldsm(r, p, 4, false); }
inline void ldsm_x2(uint32_t *r, const __nv_bfloat16 *p) { emu_ldsm(r, p, 2, false); }
inline void ldsm_x4_t(uint32_t *r, const __nv_bfloat16 *p) { emu_ldsm(r, p, 4, true); }
inline void ldsm_x2_t(uint32_t *r, const __nv_bfloat16 *p) { emu_ldsm(r, p, 2, true); }
alignas(16) unsigned char smraw[1 << 18];
}  // namespace

#include "cuda/ttt_inner_linear_tc.cu"
#include "../kernels/ttt_linear_ref.h"

template <class F>
static void launch(int nblk, int nt, F f)
{
    emu_launch(nblk, 1, 1, nt, f, smraw, sizeof smraw);
}

/* the inputs in double (the reference's, perturbed) and their float copies (the kernels') */
enum { IQ, IK, IV, ILR, ITOK, IGAM, IBET, IW, IB, NIN };
static const char *in_name[NIN] = {"XQ", "XK", "XV", "lr", "token_idx", "gamma", "beta", "W0", "b0"};

struct inputs {
    int B, T, H, D;
    std::vector<double> x[NIN];
    std::vector<double> rope;   /* [16][D/2][2] cos, sin; empty: none */
};

/* L = sum dZ * Z of the reference, Q and K rotated first when rope is given */
static double ref_loss(const inputs &in, const std::vector<double> &dZ, double *Z)
{
    const int B = in.B, T = in.T, H = in.H, D = in.D, C = H * D;
    std::vector<double> Q = in.x[IQ], K = in.x[IK];
    if (!in.rope.empty())
        for (size_t row = 0; row < (size_t)B * T; row++)
            for (int c = 0; c < C; c += 2) {
                const int p = (int)(row % T) % 16, pi = (c % D) / 2;
                const double cs = in.rope[(p * (D / 2) + pi) * 2], sn = in.rope[(p * (D / 2) + pi) * 2 + 1];
                for (auto *X : {&Q, &K}) {
                    double &a = (*X)[row * C + c], &b = (*X)[row * C + c + 1];
                    const double u = a, v = b;
                    a = u * cs - v * sn;
                    b = u * sn + v * cs;
                }
            }
    double L = 0;
    std::vector<double> out((size_t)T * D), Wf(D * D), bf(D);
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++) {
            ref_primal<double>(T, H, D, b, h, Q.data(), K.data(), in.x[IV].data(), in.x[ILR].data(), in.x[ITOK].data(),
                               in.x[IGAM].data(), in.x[IBET].data(), in.x[IW].data(), in.x[IB].data(), out.data(),
                               Wf.data(), bf.data());
            for (int t = 0; t < T; t++)
                for (int c = 0; c < D; c++) {
                    const size_t i = ((size_t)b * T + t) * C + h * D + c;
                    if (Z) Z[i] = out[(size_t)t * D + c];
                    L += dZ[i] * out[(size_t)t * D + c];
                }
        }
    return L;
}

template <int D>
static int run(int B, int H, int T, bool rope)
{
    constexpr int SPLIT = D <= 64 ? 2 : 1;
    const int C = H * D, nmb = ttt_inner_nmb(T);
    const size_t btc = (size_t)B * T * C;
    std::mt19937 rng(77 + D + T + rope);
    std::normal_distribution<double> nd(0.0, 1.0);
    inputs in{B, T, H, D, {}, {}};
    const size_t n[NIN] = {btc, btc, btc, (size_t)B * T * H, 16, (size_t)H * D, (size_t)H * D, (size_t)H * D * D,
                           (size_t)H * D};
    for (int k = 0; k < NIN; k++) {
        in.x[k].resize(n[k]);
        for (auto &v : in.x[k]) {
            const double z = nd(rng);
            v = k == ILR ? 0.2 / D * (1.0 + 0.5 * std::tanh(z))   /* base_lr sigmoid / D */
                : k == ITOK ? 0.01 * z
                : k == IGAM ? 1.0 + 0.1 * z
                : k == IBET || k == IB ? 0.05 * z
                : k == IW ? 0.02 * z * 4
                : z;
        }
    }
    if (rope) {
        in.rope.resize(16 * D);
        for (int p = 0; p < 16; p++)
            for (int i = 0; i < D / 2; i++) {
                const double th = p * pow(1e4, -2.0 * i / D);
                in.rope[(p * (D / 2) + i) * 2] = cos(th);
                in.rope[(p * (D / 2) + i) * 2 + 1] = sin(th);
            }
    }
    std::vector<double> dZ(btc);
    for (auto &v : dZ) v = nd(rng);

    /* the kernels' fp32 tensors */
    std::vector<float> f[NIN], ropef(in.rope.begin(), in.rope.end()), dZf(dZ.begin(), dZ.end());
    for (int k = 0; k < NIN; k++) f[k].assign(in.x[k].begin(), in.x[k].end());
    std::vector<float> Z(btc, NAN), states((size_t)B * H * (nmb + 1) * (D * D + D), NAN);
    std::vector<float> g[NIN];
    for (int k = 0; k < NIN; k++) g[k].assign(k == ITOK ? 16 : n[k], k >= ITOK ? 0.f : NAN);   /* += ones zeroed */
    ttt_inner_args a;
    memset(&a, 0, sizeof a);
    a.B = B; a.T = T; a.H = H; a.D = D;
    a.XQ = f[IQ].data(); a.XK = f[IK].data(); a.XV = f[IV].data(); a.lr = f[ILR].data();
    a.token_idx = f[ITOK].data(); a.gamma = f[IGAM].data(); a.beta = f[IBET].data();
    a.W0 = f[IW].data(); a.b0 = f[IB].data();
    a.Z = Z.data(); a.states = states.data();
    a.dZ = dZf.data();
    a.dXQ = g[IQ].data(); a.dXK = g[IK].data(); a.dXV = g[IV].data(); a.dlr = g[ILR].data();
    a.dtau = g[ITOK].data(); a.dgamma = g[IGAM].data(); a.dbeta = g[IBET].data();
    a.dW0 = g[IW].data(); a.db0 = g[IB].data();
    a.tc = 1;
    a.rope = rope ? ropef.data() : NULL;
    emu_misaligned = 0;
    launch(B * H, 2 * D, [&] { inner_fwd_tc<D>(a); });
    launch(B * H, 4 * D * SPLIT, [&] { inner_bwd_tc<D, SPLIT>(a); });

    /* forward: Z element-wise; the final state's W (bf16) and b */
    std::vector<double> Zr(btc);
    const double L0 = ref_loss(in, dZ, Zr.data());
    double m = 0, r = 1e-30;
    for (size_t i = 0; i < btc; i++) { m = std::max(m, fabs(Z[i] - Zr[i])); r = std::max(r, fabs(Zr[i])); }
    const double ez = m / r;
    (void)L0;
    bool bad = !(ez < 2e-2) || emu_misaligned;
    printf("D=%-3d B=%d H=%d T=%-3d rope=%d: Z %.2e", D, B, H, T, rope, ez);

    /* backward: per input, two random directions; tau > 0 throughout, so dtau is d/d token_idx */
    for (int k = 0; k < NIN; k++) {
        double worst = 0;
        for (int rep = 0; rep < 2; rep++) {
            std::vector<double> u(n[k]);
            for (auto &v : u) v = nd(rng);
            double ad = 0, mag = 0, scale = 0;
            for (size_t i = 0; i < n[k]; i++) {
                ad += g[k][i] * u[i];
                mag += fabs(g[k][i] * u[i]);
                scale = std::max(scale, fabs(in.x[k][i]));
            }
            const double eps = 1e-4 * std::max(scale, 1e-2);
            inputs p = in;
            for (size_t i = 0; i < n[k]; i++) p.x[k][i] = in.x[k][i] + eps * u[i];
            const double Lp = ref_loss(p, dZ, NULL);
            for (size_t i = 0; i < n[k]; i++) p.x[k][i] = in.x[k][i] - eps * u[i];
            const double Lm = ref_loss(p, dZ, NULL);
            const double fd = (Lp - Lm) / (2 * eps);
            worst = std::max(worst, fabs(ad - fd) / std::max(mag, 1e-30));
        }
        printf(" %s %.1e", in_name[k], worst);
        bad |= !(worst < 1e-2);
    }
    if (emu_misaligned) printf(" (ldmatrix row not 16-byte aligned)");
    printf("  %s\n", bad ? "FAIL" : "ok");
    return bad;
}

int main(void)
{
    int bad = 0;
    bad |= run<16>(2, 2, 45, false);
    bad |= run<16>(1, 2, 40, true);
    bad |= run<64>(1, 1, 37, true);
    bad |= run<96>(1, 1, 20, false);
    printf("emu_ttt_linear_tc: %s\n", bad ? "FAILED" : "all cases ok");
    return bad;
}
