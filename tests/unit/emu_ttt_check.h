/* emu_ttt_check.h - the checks of the TTT inner-kernel emulators
 * (emu_ttt_linear_tc.cpp, emu_ttt_mlp_tc.cpp), after emu_cuda.h and the
 * kernel files: random inputs in double and their fp32 copies for the
 * kernels, the float64 primal-form reference (tests/kernels/ttt_inner_ref.h)
 * as the loss L = sum(dZ * Z) (Q and K rotated first when a RoPE table is
 * given), and the comparison: Z element-wise (relative to max |Z|), every
 * gradient the backward writes through directional derivatives,
 * |grad.u - dL/du| over sum |grad_i u_i| for two random u per input, the
 * derivative by central differences of the reference (bf16 operands give a
 * few 1e-3, fp32 about 1e-6; a fragment or index error 1e-2 to 1). Token
 * offsets stay small, so tau > 0 and dtau is the offsets' gradient. */
#ifndef TTT_EMU_TTT_CHECK_H
#define TTT_EMU_TTT_CHECK_H

#include "../kernels/ttt_inner_ref.h"

enum { IQ, IK, IV, ILR, ITOK, IGAM, IBET, IW1, IB1, IW2, IB2, NIN_MAX };
static const char *ttt_in_name[NIN_MAX] = {"XQ", "XK", "XV", "lr", "token_idx", "gamma", "beta", "W1", "b1", "W2",
                                           "b2"};

struct ttt_case {
    int B, T, H, D, F, nin;                   /* TTT-Linear: F = D, 9 inputs; TTT-MLP: F = 4D, 11 */
    std::vector<double> x[NIN_MAX], rope, dZ; /* rope [16][D/2][2] cos, sin; empty: none */
    std::vector<float> f[NIN_MAX], g[NIN_MAX], ropef, dZf, Z;   /* the kernels' copies, gradients, output */

    size_t n(int k) const
    {
        const size_t btc = (size_t)B * T * H * D;
        const size_t s[NIN_MAX] = {btc, btc, btc, (size_t)B * T * H, 16, (size_t)H * D, (size_t)H * D,
                                   (size_t)H * D * F, (size_t)H * F, (size_t)H * F * D, (size_t)H * D};
        return s[k];
    }
};

static ttt_case make_case(int B, int T, int H, int D, bool mlp, bool rope, unsigned seed)
{
    ttt_case c;
    c.B = B; c.T = T; c.H = H; c.D = D; c.F = mlp ? 4 * D : D; c.nin = mlp ? 11 : 9;
    std::mt19937 rng(seed);
    std::normal_distribution<double> nd(0.0, 1.0);
    for (int k = 0; k < c.nin; k++) {
        c.x[k].resize(c.n(k));
        for (auto &v : c.x[k]) {
            const double z = nd(rng);
            v = k == ILR ? 0.2 / D * (1.0 + 0.5 * std::tanh(z))   /* base_lr sigmoid / D */
                : k == ITOK ? 0.01 * z
                : k == IGAM ? 1.0 + 0.1 * z
                : k == IBET || k == IB1 || k == IB2 ? 0.05 * z
                : k == IW1 || k == IW2 ? 0.08 * z
                : z;
        }
        c.f[k].assign(c.x[k].begin(), c.x[k].end());
        /* the backward's outputs: = (NaN until written) or += (the parameters' and dtau's: zeroed) */
        c.g[k].assign(c.n(k), k >= ITOK ? 0.f : NAN);
    }
    if (rope) {
        c.rope.resize(16 * D);
        for (int p = 0; p < 16; p++)
            for (int i = 0; i < D / 2; i++) {
                const double th = p * pow(1e4, -2.0 * i / D);
                c.rope[(p * (D / 2) + i) * 2] = cos(th);
                c.rope[(p * (D / 2) + i) * 2 + 1] = sin(th);
            }
    }
    c.ropef.assign(c.rope.begin(), c.rope.end());
    c.dZ.resize(c.n(IQ));
    for (auto &v : c.dZ) v = nd(rng);
    c.dZf.assign(c.dZ.begin(), c.dZ.end());
    c.Z.assign(c.n(IQ), NAN);
    return c;
}

/* the kernel arguments over the case's tensors (states, dS: the caller's); tc: the tensor-core kernels */
static void case_args(ttt_inner_args *a, ttt_case &c, float *states, float *dS, int tc)
{
    memset(a, 0, sizeof *a);
    a->B = c.B; a->T = c.T; a->H = c.H; a->D = c.D;
    a->XQ = c.f[IQ].data(); a->XK = c.f[IK].data(); a->XV = c.f[IV].data(); a->lr = c.f[ILR].data();
    a->token_idx = c.f[ITOK].data(); a->gamma = c.f[IGAM].data(); a->beta = c.f[IBET].data();
    a->W0 = c.f[IW1].data(); a->b0 = c.f[IB1].data();
    a->Z = c.Z.data(); a->states = states;
    a->dZ = c.dZf.data();
    a->dXQ = c.g[IQ].data(); a->dXK = c.g[IK].data(); a->dXV = c.g[IV].data(); a->dlr = c.g[ILR].data();
    a->dtau = c.g[ITOK].data(); a->dgamma = c.g[IGAM].data(); a->dbeta = c.g[IBET].data();
    a->dW0 = c.g[IW1].data(); a->db0 = c.g[IB1].data();
    if (c.nin > IW2) {
        a->F = c.F;
        a->W20 = c.f[IW2].data(); a->b20 = c.f[IB2].data();
        a->dW20 = c.g[IW2].data(); a->db20 = c.g[IB2].data();
    }
    a->dS = dS;
    a->tc = tc;
    a->rope = tc && !c.rope.empty() ? c.ropef.data() : NULL;   /* the fp32 kernels take Q, K rotated */
}

/* L = sum dZ * Z of the reference at inputs x (Z out when given) */
static double ref_loss(const ttt_case &c, const std::vector<double> *x, double *Z)
{
    const int B = c.B, T = c.T, H = c.H, D = c.D, C = H * D;
    std::vector<double> Q = x[IQ], K = x[IK];
    if (!c.rope.empty())
        for (size_t row = 0; row < (size_t)B * T; row++)
            for (int col = 0; col < C; col += 2) {
                const int p = (int)(row % T) % 16, pi = (col % D) / 2;
                const double cs = c.rope[(p * (D / 2) + pi) * 2], sn = c.rope[(p * (D / 2) + pi) * 2 + 1];
                for (auto *X : {&Q, &K}) {
                    double &u = (*X)[row * C + col], &v = (*X)[row * C + col + 1];
                    const double u0 = u, v0 = v;
                    u = u0 * cs - v0 * sn;
                    v = u0 * sn + v0 * cs;
                }
            }
    double L = 0;
    std::vector<double> out((size_t)T * D), Wf(D * D), bf(D);
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++) {
            if (c.nin > IW2)
                ref_primal_mlp<double>(T, H, D, b, h, Q.data(), K.data(), x[IV].data(), x[ILR].data(), x[ITOK].data(),
                                       x[IGAM].data(), x[IBET].data(), x[IW1].data(), x[IB1].data(), x[IW2].data(),
                                       x[IB2].data(), out.data());
            else
                ref_primal<double>(T, H, D, b, h, Q.data(), K.data(), x[IV].data(), x[ILR].data(), x[ITOK].data(),
                                   x[IGAM].data(), x[IBET].data(), x[IW1].data(), x[IB1].data(), out.data(), Wf.data(),
                                   bf.data());
            for (int t = 0; t < T; t++)
                for (int col = 0; col < D; col++) {
                    const size_t i = ((size_t)b * T + t) * C + h * D + col;
                    if (Z) Z[i] = out[(size_t)t * D + col];
                    L += c.dZ[i] * out[(size_t)t * D + col];
                }
        }
    return L;
}

static int check_case(ttt_case &c, const char *label, unsigned seed, double tol);

/* A tensor-core forward fwd() run as an evaluation forward (no states)
 * first, then with Z in bf16 (z16, as the layer runs it), then as checked:
 * with its states, Z in fp32. Z must come out the same, bit for bit, and the
 * bf16 Z must be it rounded (nostate_bad set, and run_case's case failed,
 * when not). */
static int nostate_bad;
template <class Fwd>
static void fwd_without_then_with_states(ttt_inner_args &a, const char *kernel, Fwd fwd)
{
    const size_t n = (size_t)a.B * a.T * a.H * a.D;
    float *st = a.states;
    a.states = NULL;
    fwd();
    const std::vector<float> Z(a.Z, a.Z + n);
    a.z16 = 1;
    fwd();
    const std::vector<uint16_t> Z16((const uint16_t *)a.Z, (const uint16_t *)a.Z + n);
    a.z16 = 0;
    a.states = st;
    fwd();
    if (memcmp(Z.data(), a.Z, n * sizeof(float))) {
        printf("%s D=%d: the forward without states gives another Z\n", kernel, a.D);
        nostate_bad = 1;
    }
    for (size_t i = 0; i < n; i++)
        if (Z16[i] != bf16_bits(a.Z[i])) {
            printf("%s D=%d: Z in bf16 (z16) is not Z rounded (element %zu)\n", kernel, a.D, i);
            nostate_bad = 1;
            break;
        }
}

/* One case: random inputs (mlp: TTT-MLP), the kernels (tc: the tensor-core
 * ones, whose RoPE is fused; the fp32 ones without RoPE) run by fwd(a) and
 * bwd(a), each an emu_launch, then check_case: bounds 2e-2 (Z) and 1e-2
 * (gradients) for bf16 operands, 1e-4 for fp32 */
template <class Fwd, class Bwd>
static int run_case(int B, int H, int D, int T, bool mlp, int tc, bool rope, Fwd fwd, Bwd bwd)
{
    ttt_case c = make_case(B, T, H, D, mlp, rope && tc, 77 + D + T + rope + 14 * mlp);
    std::vector<float> states(mlp ? ttt_inner_mlp_states_size(B, H, D, T) : ttt_inner_states_size(B, H, D, T), NAN);
    std::vector<float> dS(mlp ? ttt_inner_mlp_dS_size(B, H, D) : 0, NAN);
    ttt_inner_args a;
    case_args(&a, c, states.data(), dS.data(), tc);
    emu_misaligned = 0;
    nostate_bad = 0;
    fwd(a);
    bwd(a);
    char label[64];
    snprintf(label, sizeof label, "%s D=%-3d B=%d H=%d T=%-3d rope=%d", tc ? "tc  " : "fp32", D, B, H, T, rope && tc);
    return check_case(c, label, 5 + D + T, tc ? 1e-2 : 1e-4) | nostate_bad;
}

/* Z and every gradient of the kernels' run against the reference, the
 * gradients within tol (Z within 2 tol); one line, 1 when a check fails */
static int check_case(ttt_case &c, const char *label, unsigned seed, double tol)
{
    std::mt19937 rng(seed);
    std::normal_distribution<double> nd(0.0, 1.0);
    const size_t btc = c.n(IQ);
    std::vector<double> Zr(btc);
    ref_loss(c, c.x, Zr.data());
    double m = 0, r = 1e-30;
    for (size_t i = 0; i < btc; i++) {
        m = std::max(m, fabs(c.Z[i] - Zr[i]));   /* NaN (never written) fails below */
        if (c.Z[i] != c.Z[i]) m = NAN;
        r = std::max(r, fabs(Zr[i]));
    }
    const double ez = m / r;
    bool bad = !(ez < 2 * tol) || emu_misaligned;
    printf("%s: Z %.2e", label, ez);
    for (int k = 0; k < c.nin; k++) {
        double worst = 0;
        for (int rep = 0; rep < 2; rep++) {
            std::vector<double> u(c.n(k));
            for (auto &v : u) v = nd(rng);
            double ad = 0, mag = 0, scale = 0;
            for (size_t i = 0; i < u.size(); i++) {
                ad += c.g[k][i] * u[i];
                mag += fabs(c.g[k][i] * u[i]);
                scale = std::max(scale, fabs(c.x[k][i]));
            }
            const double eps = 1e-4 * std::max(scale, 1e-2);
            std::vector<double> p[NIN_MAX];
            for (int j = 0; j < c.nin; j++) p[j] = c.x[j];
            for (size_t i = 0; i < u.size(); i++) p[k][i] = c.x[k][i] + eps * u[i];
            const double Lp = ref_loss(c, p, NULL);
            for (size_t i = 0; i < u.size(); i++) p[k][i] = c.x[k][i] - eps * u[i];
            const double Lm = ref_loss(c, p, NULL);
            const double e = fabs(ad - (Lp - Lm) / (2 * eps)) / std::max(mag, 1e-30);
            worst = e != e ? NAN : std::max(worst, e);
        }
        printf(" %s %.1e", ttt_in_name[k], worst);
        bad |= !(worst < tol);
    }
    if (emu_misaligned) printf(" (ldmatrix row not 16-byte aligned)");
    printf("  %s\n", bad ? "FAIL" : "ok");
    return bad;
}

#endif
