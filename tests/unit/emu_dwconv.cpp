/* emu_dwconv.cpp - host emulator of the causal depthwise-conv kernels
 * (lib/cuda/dwconv.cuh): CI has no GPU, so the real kernel source is compiled
 * for the host and every CUDA thread of a launch runs one after another (the
 * kernels use only global memory: no barriers, shuffles or shared memory;
 * atomicAdd is a plain add). Checks, against a float64 direct convolution
 *   y[t,c] = b[c] + sum_j w[c,j] x[t-(k-1)+j, c]   (x before a sequence = 0)
 * and its gradients, on deterministic pseudo-random data:
 *   - k_conv without and with a residual input, k_conv2 (two weight/bias
 *     sets of one x);
 *   - k_conv_bwd_x with accum 0 (dx =) and 1 (dx +=: a row walked twice
 *     shows), k_conv2_bwd_x<float> and <__nv_bfloat16> (dy0 w0 + dy1 w1);
 *   - k_conv_bwd_w, k_conv2_bwd_w (dw, db start nonzero: they must add);
 *   - B = 1..3; T = 1, 5, 31, 32, 33, 45, 70, 300 (runs of DWCONV_RUN rows
 *     that cross sequence ends, partial last runs and chunks); C = 1, 3, 64,
 *     130 (partial blocks of channels); k = 1, 2, 4, 7, 16, each with the
 *     16-tap window and k <= 4 also with the 4-tap one (DWCONV_LAUNCH);
 *   - launch geometry as the callers (dwconv_blocks(n, C) x 256; bwd_w grid
 *     (ceil(C/128), ceil(rows/DWCONV_COL_CHUNK)) x 128) and small grids
 *     (1 x 256, 3 x 64; bwd_w with 32-thread blocks) for the grid-stride loops;
 *   - outputs start as NaN where the kernel must write every element, and
 *     sit between guard zones holding a sentinel that must survive (a write
 *     outside the tensor shows);
 *   - inputs sit against an inaccessible page, at their start for some
 *     launches and at their end for others: any read just outside a tensor
 *     faults and is reported (its address named), even one whose value the
 *     kernel then discards (on a GPU such a read can be an illegal address).
 * Tolerance: fp32 outputs 1e-5 relative to the output's largest sum of
 * |terms| (its max |ref| but for cancellation: db of one channel over 600
 * rows can sum to ~0.01 with fp32 error ~4e-6, legitimately); bf16 outputs
 * against the reference rounded to bf16, 1e-2 of the max |ref|. fp32
 * rounding gives ~3e-7; a wrong row, tap or sequence boundary gives ~1e-1.
 * Output: one line per kernel family (worst error, checks, failures), the
 * first 40 failures, and "emu_dwconv: N cases, F failed"; exit 1 on any.
 * Run by `make check-emu` (part of `make test`), or by hand:
 *   g++ -O1 -std=c++20 -pthread -Wno-unknown-pragmas -Ilib \
 *       tests/unit/emu_dwconv.cpp -o /tmp/emu_dwconv && /tmp/emu_dwconv
 * (about 3 s; exit 0 when every case passes). Linux/POSIX: mmap, mprotect,
 * sigsetjmp out of the SIGSEGV handler. */
#include <csetjmp>
#include <csignal>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include <sys/mman.h>
#include <unistd.h>

/* dwconv.cuh includes <cuda_bf16.h> (only when __CUDA_BF16_H__ is not
 * defined: CI has no CUDA toolkit) and "ttt_cuda_internal.cuh": their
 * guards defined here skip them; what the kernels use of them follows. */
#define __CUDA_BF16_H__
#define TTT_CUDA_INTERNAL_CUH

#define __device__
#define __global__
#define __forceinline__ inline
#define __restrict__

struct dim3e { unsigned x, y, z; };
static dim3e threadIdx, blockIdx, gridDim, blockDim;

/* bf16 as the CUDA type: 16 bits of storage, round to nearest even */
struct __nv_bfloat16 {
    uint16_t x;
    operator float() const
    {
        uint32_t u = (uint32_t)x << 16;
        float f;
        memcpy(&f, &u, 4);
        return f;
    }
};
static inline __nv_bfloat16 __float2bfloat16(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return {(uint16_t)((u >> 16) | 0x40)};   /* NaN stays NaN */
    u += 0x7fffu + ((u >> 16) & 1);
    return {(uint16_t)(u >> 16)};
}
static inline float __bfloat162float(__nv_bfloat16 b) { return (float)b; }

/* CUDA's min is overloaded for every integer type; the kernels use it on
 * size_t and int (fmaf is the C library's, a true fused multiply-add) */
template <class T> static inline T min(T a, T b) { return b < a ? b : a; }
/* threads run one at a time: an atomic add is an add */
static inline float atomicAdd(float *p, float v)
{
    float o = *p;
    *p = o + v;
    return o;
}
/* ttt_cuda_internal.cuh's: returns i / d, *r = i % d */
static inline size_t idx_divmod(size_t i, unsigned d, unsigned *r)
{
    *r = (unsigned)(i % d);
    return i / d;
}
/* and its store_op: a value in the precision of the GEMMs that read it */
static inline void store_op(float *p, float v) { *p = v; }
static inline void store_op(__nv_bfloat16 *p, float v) { *p = __float2bfloat16(v); }

#include "cuda/dwconv.cuh"

/* A kernel touching an inaccessible page (see PageBuf) faults: the handler
 * jumps back out of the launch, which reports the fault and its address. */
static sigjmp_buf fault_jmp;
static volatile sig_atomic_t in_kernel;
static void *volatile fault_addr;
static bool launch_faulted;   /* the last launch faulted, at fault_addr */
static void on_fault(int sig, siginfo_t *si, void *)
{
    if (in_kernel) {
        fault_addr = si->si_addr;
        siglongjmp(fault_jmp, 1);
    }
    signal(sig, SIG_DFL);
    raise(sig);
}

template <class F>
static void __attribute__((noinline)) run_grid(F &f)
{
    for (unsigned by = 0; by < gridDim.y; by++)
        for (unsigned bx = 0; bx < gridDim.x; bx++) {
            blockIdx = {bx, by, 0};
            for (unsigned i = 0; i < blockDim.x; i++) {
                threadIdx = {i, 0, 0};
                f();
            }
        }
}

/* one launch: every thread of every block, in order */
template <class F>
static void launch(unsigned gx, unsigned gy, unsigned nt, F f)
{
    gridDim = {gx, gy, 1};
    blockDim = {nt, 1, 1};
    launch_faulted = false;
    if (sigsetjmp(fault_jmp, 1)) {
        in_kernel = 0;
        launch_faulted = true;
        return;
    }
    in_kernel = 1;
    run_grid(f);
    in_kernel = 0;
}

/* deterministic uniform [-1, 1) */
static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static float urand()
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (float)((double)(rng_state >> 11) * 0x1p-52 - 1.0);
}

/* A tensor of n elements between two guard zones of g elements each. */
template <class E>
struct Buf {
    std::vector<E> v;
    size_t n, g;
    Buf(size_t n_, size_t g_, E guard) : v(n_ + 2 * g_, guard), n(n_), g(g_) {}
    E *p() { return v.data() + g; }
    E &operator[](size_t i) { return v[g + i]; }
    bool guards_hold(E guard) const
    {
        for (size_t i = 0; i < g; i++)
            if (memcmp(&v[i], &guard, sizeof(E)) || memcmp(&v[g + n + i], &guard, sizeof(E))) return false;
        return true;
    }
};

/* An input tensor of n floats against an inaccessible page at its start or
 * at its end (an access just outside it faults, even one whose value the
 * kernel then discards); the rest of its pages hold NaN. */
struct PageBuf;
static std::vector<const PageBuf *> pagebufs;   /* the live ones, to name a fault address */
struct PageBuf {
    const char *name;
    char *base;
    size_t total, bytes;
    float *p_;
    PageBuf(const char *nm, const std::vector<float> &v, bool at_end) : name(nm)
    {
        bytes = v.size() * sizeof(float);
        const size_t pg = (size_t)sysconf(_SC_PAGESIZE), span = (bytes + pg - 1) / pg * pg + pg;   /* at least a page of NaN before or after */
        total = span + 2 * pg;
        base = (char *)mmap(nullptr, total, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (base == (char *)MAP_FAILED) perror("emu_dwconv: mmap"), exit(1);
        float *f = (float *)(base + pg);
        for (size_t i = 0; i < span / sizeof(float); i++) f[i] = NAN;
        if (mprotect(base, pg, PROT_NONE) || mprotect(base + pg + span, pg, PROT_NONE))
            perror("emu_dwconv: mprotect"), exit(1);
        /* the NaN page between tensor and the far guard catches nothing;
         * the near guard is where an off-by-a-few access lands */
        p_ = at_end ? (float *)(base + pg + span - bytes) : f;
        if (!v.empty()) memcpy(p_, v.data(), bytes);
        pagebufs.push_back(this);
    }
    PageBuf(const PageBuf &) = delete;
    PageBuf &operator=(const PageBuf &) = delete;
    ~PageBuf()
    {
        munmap(base, total);
        for (size_t i = 0; i < pagebufs.size(); i++)
            if (pagebufs[i] == this) pagebufs.erase(pagebufs.begin() + (long)i);
    }
    const float *p() const { return p_; }
};

/* "12 bytes before the start of dy0" for an address in a guard page */
static std::string where_is(const void *a)
{
    const char *c = (const char *)a;
    char buf[96];
    for (const PageBuf *b : pagebufs) {
        if (c < b->base || c >= b->base + b->total) continue;
        const char *s = (const char *)b->p_;
        if (c < s) snprintf(buf, sizeof buf, "%zu bytes before the start of %s", (size_t)(s - c), b->name);
        else snprintf(buf, sizeof buf, "%zu bytes past the end of %s", (size_t)(c - s) - b->bytes, b->name);
        return buf;
    }
    snprintf(buf, sizeof buf, "address %p, in no input's guard", a);
    return buf;
}

static const float SENT = 7777.f;   /* output guard value */
static const __nv_bfloat16 SENT_BF = {0x1234};

/* worst error per kernel family, and the failures */
struct Family {
    const char *name;
    double tol, worst;
    long checks, failed;
};
static Family fams[] = {
    {"k_conv", 1e-5, 0, 0, 0},
    {"k_conv2", 1e-5, 0, 0, 0},
    {"k_conv_bwd_x (accum 0)", 1e-5, 0, 0, 0},
    {"k_conv_bwd_x (accum 1)", 1e-5, 0, 0, 0},
    {"k_conv2_bwd_x<float>", 1e-5, 0, 0, 0},
    {"k_conv2_bwd_x<bf16>", 1e-2, 0, 0, 0},
    {"k_conv_bwd_w", 1e-5, 0, 0, 0},
    {"k_conv2_bwd_w", 1e-5, 0, 0, 0},
};
enum { F_CONV, F_CONV2, F_BWDX0, F_BWDX1, F_BWDX2F, F_BWDX2B, F_BWDW, F_BWDW2 };
static long ncases, nfailed;
static std::vector<std::string> failures;

/* A float64 reference: the values, and per element the sum of the absolute
 * values of its terms (what fp32 rounding error scales with: a sum that
 * cancels to near zero carries the rounding of its large terms). */
struct Ref {
    std::vector<double> v, m;
    double scale() const   /* the largest term sum: errors are relative to it */
    {
        double s = 0;
        for (double x : m) s = fmax(s, x);
        return s > 0 ? s : 1;
    }
};

/* max |got - ref| / scale; NaN counts as infinite; the first element over
 * the tolerance is named */
template <class G>
static void compare(int fam, const char *what, const std::string &where, G got, const std::vector<double> &ref,
                    double scale, bool guards)
{
    Family &F = fams[fam];
    char buf[512];
    ncases++;
    F.checks++;
    if (launch_faulted) {
        nfailed++;
        F.failed++;
        snprintf(buf, sizeof buf, "%s %s %s: fault: read %s", F.name, what, where.c_str(),
                 where_is(fault_addr).c_str());
        failures.push_back(buf);
        return;
    }
    double err = 0;
    size_t bad = (size_t)-1;
    for (size_t i = 0; i < ref.size(); i++) {
        double e = fabs(got(i) - ref[i]) / scale;
        if (std::isnan(e)) e = INFINITY;
        if (e > err) err = e;
        if (!(e <= F.tol) && bad == (size_t)-1) bad = i;
    }
    if (err > F.worst) F.worst = err;
    if (bad != (size_t)-1 || !guards) nfailed++, F.failed++;
    if (bad != (size_t)-1) {
        snprintf(buf, sizeof buf, "%s %s %s: rel err %.3g (tol %g); first bad element %zu: got %.9g, want %.9g",
                 F.name, what, where.c_str(), err, F.tol, bad, (double)got(bad), ref[bad]);
        failures.push_back(buf);
    }
    if (!guards) {
        snprintf(buf, sizeof buf, "%s %s %s: wrote outside its tensor (guard zone changed)", F.name, what,
                 where.c_str());
        failures.push_back(buf);
    }
}

/* float64 references, rows = B*T token-major, w[c*k + j] */
static Ref ref_fwd(const float *x, const float *w, const float *b, int B, int T, int C, int k)
{
    Ref r{std::vector<double>((size_t)B * T * C), std::vector<double>((size_t)B * T * C)};
    for (int s = 0; s < B; s++)
        for (int t = 0; t < T; t++)
            for (int c = 0; c < C; c++) {
                double a = b[c], m = fabs(b[c]);
                for (int j = 0; j < k; j++) {
                    int u = t - (k - 1) + j;
                    if (u < 0) continue;
                    double p = (double)w[c * k + j] * x[((size_t)s * T + u) * C + c];
                    a += p, m += fabs(p);
                }
                r.v[((size_t)s * T + t) * C + c] = a;
                r.m[((size_t)s * T + t) * C + c] = m;
            }
    return r;
}

/* dx[t,c] = pre[t,c] + sum_j w[c,j] dy[t+(k-1)-j, c] within t's sequence
 * (pre: the accumulated-into value, or none) */
static Ref ref_bwd_x(const float *dy, const float *w, const float *pre, int B, int T, int C, int k)
{
    Ref r{std::vector<double>((size_t)B * T * C), std::vector<double>((size_t)B * T * C)};
    for (int s = 0; s < B; s++)
        for (int t = 0; t < T; t++)
            for (int c = 0; c < C; c++) {
                size_t o = ((size_t)s * T + t) * C + c;
                double a = pre ? pre[o] : 0, m = fabs(a);
                for (int j = 0; j < k; j++) {
                    int u = t + (k - 1) - j;
                    if (u >= T) continue;
                    double p = (double)w[c * k + j] * dy[((size_t)s * T + u) * C + c];
                    a += p, m += fabs(p);
                }
                r.v[o] = a;
                r.m[o] = m;
            }
    return r;
}

/* dw[c*k+j] = dw0 + sum dy[t,c] x[t-(k-1)+j,c]; db[c] = db0 + sum dy[t,c] */
static void ref_bwd_w(Ref &dw, Ref &db, const float *dy, const float *x, const float *dw0, const float *db0, int B,
                      int T, int C, int k)
{
    dw.v.assign((size_t)C * k, 0), dw.m.assign((size_t)C * k, 0);
    db.v.assign(C, 0), db.m.assign(C, 0);
    for (int c = 0; c < C; c++) {
        db.v[c] = db0[c], db.m[c] = fabs(db0[c]);
        for (int j = 0; j < k; j++) dw.v[c * k + j] = dw0[c * k + j], dw.m[c * k + j] = fabs(dw0[c * k + j]);
    }
    for (int s = 0; s < B; s++)
        for (int t = 0; t < T; t++)
            for (int c = 0; c < C; c++) {
                double g = dy[((size_t)s * T + t) * C + c];
                db.v[c] += g, db.m[c] += fabs(g);
                for (int j = 0; j < k; j++) {
                    int u = t - (k - 1) + j;
                    if (u < 0) continue;
                    double p = g * x[((size_t)s * T + u) * C + c];
                    dw.v[c * k + j] += p, dw.m[c * k + j] += fabs(p);
                }
            }
}

static Ref add(const Ref &a, const Ref &b)
{
    Ref r{a.v, a.m};
    for (size_t i = 0; i < r.v.size(); i++) r.v[i] += b.v[i], r.m[i] += b.m[i];
    return r;
}

static double bf16_round(double v) { return (double)(float)__float2bfloat16((float)v); }

template <int KW>
static void run_case(int B, int T, int C, int k)
{
    const int rows = B * T;
    /* guards wide enough for a block of threads past C, or k rows past an end */
    const size_t n = (size_t)rows * C, G = (size_t)16 * (C + 256);
    char tag[96];
    snprintf(tag, sizeof tag, "B=%d T=%d C=%d k=%d window %d", B, T, C, k, KW);

    std::vector<float> hx(n), hdy0(n), hdy1(n), hpre(n), hw0((size_t)C * k), hw1((size_t)C * k), hb0(C), hb1(C);
    for (size_t i = 0; i < n; i++) hx[i] = urand(), hdy0[i] = urand(), hdy1[i] = urand(), hpre[i] = urand();
    for (size_t i = 0; i < (size_t)C * k; i++) hw0[i] = urand(), hw1[i] = urand();
    for (int c = 0; c < C; c++) hb0[c] = urand(), hb1[c] = urand();
    /* the inputs twice: against a fault page at their start, and at their end */
    struct In {
        PageBuf x, dy0, dy1, w0, w1, b0, b1;
    };
#define EMU_INPUTS(e)                                                                                      \
    {{"x", hx, e}, {"dy0", hdy0, e}, {"dy1", hdy1, e}, {"w0", hw0, e}, {"w1", hw1, e}, {"b0", hb0, e}, {"b1", hb1, e}}
    const In ins[2] = {EMU_INPUTS(false), EMU_INPUTS(true)};

    const Ref y0 = ref_fwd(hx.data(), hw0.data(), hb0.data(), B, T, C, k),
              y1 = ref_fwd(hx.data(), hw1.data(), hb1.data(), B, T, C, k),
              g0 = ref_bwd_x(hdy0.data(), hw0.data(), nullptr, B, T, C, k),
              g0acc = ref_bwd_x(hdy0.data(), hw0.data(), hpre.data(), B, T, C, k),
              g01 = add(g0, ref_bwd_x(hdy1.data(), hw1.data(), nullptr, B, T, C, k));
    /* the forward with a residual (dy1 as the residual input) */
    std::vector<double> y0res(n);
    double resmax = 0;
    for (size_t i = 0; i < n; i++) y0res[i] = y0.v[i] + hdy1[i], resmax = fmax(resmax, fabs((double)hdy1[i]));
    /* bf16 output: against the reference rounded, relative to its max |ref| */
    std::vector<double> g01b(n);
    double g01max = 0;
    for (size_t i = 0; i < n; i++) g01b[i] = bf16_round(g01.v[i]), g01max = fmax(g01max, fabs(g01.v[i]));

    /* forward and input gradient: the callers' grid, then small ones */
    struct Geo { unsigned blocks, threads; };
    const Geo geos[] = {{dwconv_blocks(n, C), 256}, {1, 256}, {3, 64}};
    for (int gi = 0; gi < 3; gi++) {
        const Geo &g = geos[gi];
        const In &in = ins[gi & 1];
        char gtag[256];
        snprintf(gtag, sizeof gtag, "%s grid %u x %u, inputs against a fault page at their %s", tag, g.blocks,
                 g.threads, gi & 1 ? "end" : "start");
        const std::string where = gtag;
        auto f32 = [](Buf<float> &b) { return [&b](size_t i) { return (double)b[i]; }; };

        Buf<float> ya(n, G, SENT), yb(n, G, SENT);
        for (size_t i = 0; i < n; i++) ya[i] = NAN;
        launch(g.blocks, 1, g.threads, [&] { k_conv<KW>(ya.p(), in.x.p(), in.w0.p(), in.b0.p(), nullptr, T, C, k, n); });
        compare(F_CONV, "y", where, f32(ya), y0.v, y0.scale(), ya.guards_hold(SENT));

        /* with a residual (the pre-conv's): y = dy1 + conv(x) */
        for (size_t i = 0; i < n; i++) ya[i] = NAN;
        launch(g.blocks, 1, g.threads,
               [&] { k_conv<KW>(ya.p(), in.x.p(), in.w0.p(), in.b0.p(), in.dy1.p(), T, C, k, n); });
        compare(F_CONV, "y + res", where, f32(ya), y0res, y0.scale() + resmax, ya.guards_hold(SENT));

        for (size_t i = 0; i < n; i++) ya[i] = yb[i] = NAN;
        launch(g.blocks, 1, g.threads,
               [&] { k_conv2<KW>(ya.p(), yb.p(), in.x.p(), in.w0.p(), in.b0.p(), in.w1.p(), in.b1.p(), T, C, k, n); });
        compare(F_CONV2, "y0", where, f32(ya), y0.v, y0.scale(), ya.guards_hold(SENT));
        compare(F_CONV2, "y1", where, f32(yb), y1.v, y1.scale(), yb.guards_hold(SENT));

        for (size_t i = 0; i < n; i++) ya[i] = NAN;
        launch(g.blocks, 1, g.threads, [&] { k_conv_bwd_x<KW>(ya.p(), in.dy0.p(), in.w0.p(), T, C, k, n, 0); });
        compare(F_BWDX0, "dx", where, f32(ya), g0.v, g0.scale(), ya.guards_hold(SENT));

        for (size_t i = 0; i < n; i++) ya[i] = hpre[i];
        launch(g.blocks, 1, g.threads, [&] { k_conv_bwd_x<KW>(ya.p(), in.dy0.p(), in.w0.p(), T, C, k, n, 1); });
        compare(F_BWDX1, "dx", where, f32(ya), g0acc.v, g0acc.scale(), ya.guards_hold(SENT));

        for (size_t i = 0; i < n; i++) ya[i] = NAN;
        launch(g.blocks, 1, g.threads,
               [&] { k_conv2_bwd_x<KW, float>(ya.p(), in.dy0.p(), in.dy1.p(), in.w0.p(), in.w1.p(), T, C, k, n); });
        compare(F_BWDX2F, "dx", where, f32(ya), g01.v, g01.scale(), ya.guards_hold(SENT));

        Buf<__nv_bfloat16> xb(n, G, SENT_BF);
        for (size_t i = 0; i < n; i++) xb[i] = __float2bfloat16(NAN);
        launch(g.blocks, 1, g.threads,
               [&] { k_conv2_bwd_x<KW, __nv_bfloat16>(xb.p(), in.dy0.p(), in.dy1.p(), in.w0.p(), in.w1.p(), T, C, k, n); });
        compare(F_BWDX2B, "dx", where, [&](size_t i) { return (double)(float)xb[i]; }, g01b,
                g01max > 0 ? g01max : 1, xb.guards_hold(SENT_BF));
    }

    /* weight gradient: blocks of channels x chunks of rows (no grid stride);
     * dw, db start nonzero */
    Buf<float> dw0s((size_t)C * k, G, NAN), db0s(C, G, NAN), dw1s((size_t)C * k, G, NAN), db1s(C, G, NAN);
    for (size_t i = 0; i < (size_t)C * k; i++) dw0s[i] = urand(), dw1s[i] = urand();
    for (int c = 0; c < C; c++) db0s[c] = urand(), db1s[c] = urand();
    Ref rdw0, rdb0, rdw1, rdb1;
    ref_bwd_w(rdw0, rdb0, hdy0.data(), hx.data(), dw0s.p(), db0s.p(), B, T, C, k);
    ref_bwd_w(rdw1, rdb1, hdy1.data(), hx.data(), dw1s.p(), db1s.p(), B, T, C, k);
    const unsigned chunks = (unsigned)((rows + DWCONV_COL_CHUNK - 1) / DWCONV_COL_CHUNK);
    for (int gi = 0; gi < 2; gi++) {
        const unsigned nt = gi ? 32 : 128;   /* the callers', and a smaller block */
        const In &in = ins[gi];
        char gtag[256];
        snprintf(gtag, sizeof gtag, "%s grid %u x %u x %u, inputs against a fault page at their %s", tag,
                 (C + nt - 1) / nt, chunks, nt, gi ? "end" : "start");
        const std::string where = gtag;
        const unsigned gx = (C + nt - 1) / nt;
        Buf<float> dwa((size_t)C * k, G, SENT), dba(C, G, SENT), dwb((size_t)C * k, G, SENT), dbb(C, G, SENT);
        auto f32 = [](Buf<float> &b) { return [&b](size_t i) { return (double)b[i]; }; };

        for (size_t i = 0; i < (size_t)C * k; i++) dwa[i] = dw0s[i];
        for (int c = 0; c < C; c++) dba[c] = db0s[c];
        launch(gx, chunks, nt, [&] { k_conv_bwd_w<KW>(dwa.p(), dba.p(), in.dy0.p(), in.x.p(), rows, T, C, k); });
        compare(F_BWDW, "dw", where, f32(dwa), rdw0.v, rdw0.scale(), dwa.guards_hold(SENT));
        compare(F_BWDW, "db", where, f32(dba), rdb0.v, rdb0.scale(), dba.guards_hold(SENT));

        for (size_t i = 0; i < (size_t)C * k; i++) dwa[i] = dw0s[i], dwb[i] = dw1s[i];
        for (int c = 0; c < C; c++) dba[c] = db0s[c], dbb[c] = db1s[c];
        launch(gx, chunks, nt, [&] {
            k_conv2_bwd_w<KW>(dwa.p(), dba.p(), in.dy0.p(), dwb.p(), dbb.p(), in.dy1.p(), in.x.p(), rows, T, C, k);
        });
        compare(F_BWDW2, "dw0", where, f32(dwa), rdw0.v, rdw0.scale(), dwa.guards_hold(SENT));
        compare(F_BWDW2, "db0", where, f32(dba), rdb0.v, rdb0.scale(), dba.guards_hold(SENT));
        compare(F_BWDW2, "dw1", where, f32(dwb), rdw1.v, rdw1.scale(), dwb.guards_hold(SENT));
        compare(F_BWDW2, "db1", where, f32(dbb), rdb1.v, rdb1.scale(), dbb.guards_hold(SENT));
    }
}

int main(void)
{
    struct sigaction sa = {};
    sa.sa_sigaction = on_fault;
    sa.sa_flags = SA_SIGINFO;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGSEGV, &sa, nullptr);
    sigaction(SIGBUS, &sa, nullptr);
    for (int B = 1; B <= 3; B++)
        for (int T : {1, 5, 31, 32, 33, 45, 70, 300})
            for (int C : {1, 3, 64, 130})
                for (int k : {1, 2, 4, 7, 16}) {
                    if (k <= 4) run_case<4>(B, T, C, k);   /* the launchers' window for k <= 4 */
                    run_case<16>(B, T, C, k);               /* and the general one */
                }
    for (const Family &F : fams)
        printf("%-24s worst rel err %.3g (tol %g), %ld checks, %ld failed\n", F.name, F.worst, F.tol, F.checks,
               F.failed);
    const size_t show = failures.size() < 40 ? failures.size() : 40;
    for (size_t i = 0; i < show; i++) printf("FAIL %s\n", failures[i].c_str());
    if (failures.size() > show) printf("... and %zu more failures\n", failures.size() - show);
    printf("emu_dwconv: %ld cases, %ld failed\n", ncases, nfailed);
    return nfailed ? 1 : 0;
}

