/* test_cuda_mamba.c - the GPU Mamba block (lib/ttt_cuda_mamba.h,
 * lib/cuda/mamba_gpu.cu) against the CPU block (lib/layers/mamba.h, float64
 * here) on random blocks of several shapes (T = 1, T a multiple of
 * MAMBA_CHUNK and not, 3 chunks; C = 16/24/48 so E fills whole warps or not;
 * B = 1/2; conv widths 2/4), with identical (float-rounded) parameters:
 *   - out, dx and every parameter gradient: ||gpu - cpu|| / ||cpu|| <= 1e-4
 *     in TTT_CUDA_F32 mode; in TTT_CUDA_BF16 mode (GEMM inputs rounded to
 *     bf16, ~3 significant digits) <= 3e-2 (tensors whose gradient is below
 *     1e-6 of the global gradient norm are measured against that);
 *   - a second backward leaves the activations bit-identical, gives the same
 *     dx and adds the same gradients again (the conv weight gradient sums with
 *     atomics: 1e-5);
 *   - decoding token by token, in pieces of 1, up to 5 and the rest, gives
 *     the GPU forward's rows (1e-5) and the CPU decoder's final state (1e-4);
 *   - refusals: d_state != 16, conv width > 16, an empty batch.
 * Prints the worst errors. Skips cleanly (exit 0) without CUDA in the build
 * or without a GPU. */
#include "check.h"

#include <stdio.h>

#ifdef TTT_HAVE_CUDA
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "layers/mamba.h"
#include "rng.h"
#include "ttt_cuda.h"
#include "ttt_cuda_mamba.h"

#define TOL 1e-4
#define TOL_BF16 3e-2   /* host emulation of the bf16 rounding: worst 8e-3 */
#define TOL_SAME 1e-5
#define NT 9   /* parameter tensors */

static const char *tname[NT] = { "in_proj", "conv_w", "conv_b", "x_proj", "dt_w", "dt_b",
                                 "A_log", "D", "out_proj" };

/* offsets of the tensors in one flat block; returns the total */
static size_t tensor_offsets(const mamba_config *c, size_t off[NT + 1])
{
    size_t W = c->R + 2 * c->S, E = c->E, C = c->C;
    size_t n[NT] = { 2 * E * C, E * c->k, E, W * E, E * c->R, E, E * c->S, E, C * E };
    off[0] = 0;
    for (int i = 0; i < NT; i++) off[i + 1] = off[i] + n[i];
    return off[NT];
}

static void cpu_params(mamba_params *p, real *base, const size_t *o)
{
    real **ptr[NT] = { &p->in_proj, &p->conv_w, &p->conv_b, &p->x_proj, &p->dt_w, &p->dt_b,
                       &p->A_log, &p->D, &p->out_proj };
    for (int i = 0; i < NT; i++) *ptr[i] = base + o[i];
}

static void gpu_params(ttt_cuda_mamba_params *p, float *base, const size_t *o)
{
    float **ptr[NT] = { &p->in_proj, &p->conv_w, &p->conv_b, &p->x_proj, &p->dt_w, &p->dt_b,
                        &p->A_log, &p->D, &p->out_proj };
    for (int i = 0; i < NT; i++) *ptr[i] = base + o[i];
}

static double unif(ttt_rng *r, double lo, double hi) { return lo + (hi - lo) * ttt_rng_uniform(r); }

/* Random values, rounded to float so that both sides see the same numbers. */
static void fill(ttt_rng *r, real *d, float *f, size_t n, double lo, double hi)
{
    for (size_t i = 0; i < n; i++) {
        f[i] = (float)unif(r, lo, hi);
        d[i] = f[i];
    }
}

/* Parameters with signal on every path: dt = softplus(...) spread over
 * roughly 0.03..1 so that exp(dt A) ranges from near 1 to small. */
static void init_params(ttt_rng *r, const mamba_config *c, const size_t *o, real *Pd, float *Pf)
{
    double sc = 1 / sqrt(c->C), se = 1 / sqrt(c->E), sk = 1 / sqrt(c->k), sr = 1 / sqrt(c->R);
    fill(r, Pd + o[0], Pf + o[0], o[1] - o[0], -sc, sc);      /* in_proj */
    fill(r, Pd + o[1], Pf + o[1], o[2] - o[1], -sk, sk);      /* conv_w */
    fill(r, Pd + o[2], Pf + o[2], o[3] - o[2], -0.2, 0.2);    /* conv_b */
    fill(r, Pd + o[3], Pf + o[3], o[4] - o[3], -se, se);      /* x_proj */
    fill(r, Pd + o[4], Pf + o[4], o[5] - o[4], -sr, sr);      /* dt_w */
    fill(r, Pd + o[5], Pf + o[5], o[6] - o[5], -3.5, 0.5);    /* dt_b */
    for (int e = 0; e < c->E; e++)                            /* A_log ~ log(1..S) */
        for (int s = 0; s < c->S; s++) {
            size_t i = o[6] + (size_t)e * c->S + s;
            Pf[i] = (float)(log(s + 1.0) + unif(r, -0.1, 0.1));
            Pd[i] = Pf[i];
        }
    fill(r, Pd + o[7], Pf + o[7], o[8] - o[7], 0.5, 1.5);     /* D */
    fill(r, Pd + o[8], Pf + o[8], o[9] - o[8], -se, se);      /* out_proj */
}

static double norm2(const double *a, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++) s += a[i] * a[i];
    return sqrt(s);
}

/* ||g - c|| / max(||c||, floor) with g float, c real */
static double rel_err(const float *g, const real *c, size_t n, double floor)
{
    double dd = 0, nn = 0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)g[i] - (double)c[i];
        dd += d * d;
        nn += (double)c[i] * c[i];
    }
    double den = sqrt(nn) > floor ? sqrt(nn) : floor;
    return den > 0 ? sqrt(dd) / den : sqrt(dd);
}

/* same for two float arrays */
static double rel_errf(const float *g, const float *c, size_t n)
{
    double dd = 0, nn = 0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)g[i] - (double)c[i];
        dd += d * d;
        nn += (double)c[i] * c[i];
    }
    return nn > 0 ? sqrt(dd / nn) : sqrt(dd);
}

static double worst_fp32, worst_bf16, worst_same;

static void note(const char *tag, int mode, const char *what, double e, double tol)
{
    if (!(e <= tol)) fprintf(stderr, "%s: %s: relative error %.3g > %.3g\n", tag, what, e, tol);
    CHECK(e <= tol);
    double *w = mode == TTT_CUDA_BF16 ? &worst_bf16 : &worst_fp32;
    if (!(e <= *w)) *w = e;
}

/* One shape in one precision mode. */
static void run_case(ttt_cuda *g, int C, int k, int B, int T, int mode, uint64_t seed)
{
    char tag[96];
    snprintf(tag, sizeof tag, "C=%d k=%d B=%d T=%d %s", C, k, B, T, mode == TTT_CUDA_BF16 ? "bf16" : "fp32");
    const double tol = mode == TTT_CUDA_BF16 ? TOL_BF16 : TOL;
    mamba_config c;
    mamba_config_init(&c, C, k);
    size_t o[NT + 1], np = tensor_offsets(&c, o);
    size_t N = (size_t)B * T, NC = N * C;
    ttt_rng r;
    ttt_rng_seed(&r, seed);

    /* host: parameters, input, upstream gradient (double and float copies) */
    real *Pd = malloc(np * sizeof *Pd), *Gd = calloc(np, sizeof *Gd);
    float *Pf = malloc(np * sizeof *Pf), *G1 = malloc(np * sizeof *G1), *G2 = malloc(np * sizeof *G2);
    real *xd = malloc(NC * sizeof *xd), *doutd = malloc(NC * sizeof *doutd);
    float *xf = malloc(NC * sizeof *xf), *doutf = malloc(NC * sizeof *doutf);
    init_params(&r, &c, o, Pd, Pf);
    fill(&r, xd, xf, NC, -1, 1);
    fill(&r, doutd, doutf, NC, -1, 1);

    /* CPU reference */
    mamba_params P, G;
    cpu_params(&P, Pd, o);
    cpu_params(&G, Gd, o);
    real *acts = malloc(mamba_acts_size(&c, B, T) * sizeof *acts);
    real *scr = malloc(mamba_scratch_size(&c, B, T) * sizeof *scr);
    real *outd = malloc(NC * sizeof *outd), *dxd = malloc(NC * sizeof *dxd);
    mamba_forward(&c, outd, acts, xd, &P, B, T);
    mamba_backward(&c, dxd, &G, doutd, acts, xd, &P, scr, B, T);

    /* GPU */
    size_t na = ttt_cuda_mamba_acts_size(&c, B, T);
    CHECK(na > 0);
    float *dP = ttt_cuda_alloc(np), *dG = ttt_cuda_alloc(np), *dA = ttt_cuda_alloc(na);
    float *dx_ = ttt_cuda_alloc(NC), *dout_ = ttt_cuda_alloc(NC), *dx2_ = ttt_cuda_alloc(NC);
    float *dX = ttt_cuda_alloc(NC), *dOut = ttt_cuda_alloc(NC);
    CHECK(dP && dG && dA && dx_ && dout_ && dx2_ && dX && dOut);
    float *outf = malloc(NC * sizeof *outf), *dxf = malloc(NC * sizeof *dxf), *dx2f = malloc(NC * sizeof *dx2f);
    float *a1 = malloc(na * sizeof *a1), *a2 = malloc(na * sizeof *a2);
    ttt_cuda_mamba_params p, gr;
    gpu_params(&p, dP, o);
    gpu_params(&gr, dG, o);
    int ok = dP && dG && dA && dx_ && dout_ && dx2_ && dX && dOut;
    ok = ok && ttt_cuda_upload(dP, Pf, np) == 0 && ttt_cuda_upload(dX, xf, NC) == 0 &&
         ttt_cuda_upload(dout_, doutf, NC) == 0;
    ok = ok && ttt_cuda_mamba_forward(g, mode, &c, dOut, dA, dX, &p, B, T) == 0;
    ok = ok && ttt_cuda_sync(g) == 0 && ttt_cuda_download(a1, dA, na) == 0;
    ok = ok && ttt_cuda_mamba_backward(g, mode, &c, dx_, &gr, dout_, dA, dX, &p, B, T) == 0;
    ok = ok && ttt_cuda_sync(g) == 0;
    ok = ok && ttt_cuda_download(outf, dOut, NC) == 0 && ttt_cuda_download(dxf, dx_, NC) == 0 &&
         ttt_cuda_download(G1, dG, np) == 0;
    if (!ok) fprintf(stderr, "%s: %s\n", tag, ttt_errmsg());
    CHECK(ok);
    if (ok) {
        double gnorm = norm2(Gd, np), e, wg = 0;
        int wi = 0;
        note(tag, mode, "out", rel_err(outf, outd, NC, 0), tol);
        note(tag, mode, "dx", rel_err(dxf, dxd, NC, 0), tol);
        for (int i = 0; i < NT; i++) {
            e = rel_err(G1 + o[i], Gd + o[i], o[i + 1] - o[i], 1e-6 * gnorm);
            char what[64];
            snprintf(what, sizeof what, "gradient %s", tname[i]);
            note(tag, mode, what, e, tol);
            if (!(e <= wg)) { wg = e; wi = i; }
        }
        printf("%s: out %.3g, dx %.3g, worst gradient %.3g (%s)\n", tag, rel_err(outf, outd, NC, 0),
               rel_err(dxf, dxd, NC, 0), wg, tname[wi]);

        /* a second backward: same dx, the same gradients added again, acts untouched */
        ok = ttt_cuda_mamba_backward(g, mode, &c, dx2_, &gr, dout_, dA, dX, &p, B, T) == 0 &&
             ttt_cuda_sync(g) == 0 && ttt_cuda_download(dx2f, dx2_, NC) == 0 &&
             ttt_cuda_download(G2, dG, np) == 0 && ttt_cuda_download(a2, dA, na) == 0;
        if (!ok) fprintf(stderr, "%s: second backward: %s\n", tag, ttt_errmsg());
        CHECK(ok);
        if (ok) {
            CHECK(memcmp(a1, a2, na * sizeof *a1) == 0);
            double ws = rel_errf(dx2f, dxf, NC);
            for (size_t i = 0; i < np; i++) G2[i] -= G1[i];
            for (int i = 0; i < NT; i++) {
                e = rel_errf(G2 + o[i], G1 + o[i], o[i + 1] - o[i]);
                if (!(e <= TOL_SAME)) fprintf(stderr, "%s: second backward: gradient %s differs by %.3g\n", tag, tname[i], e);
                CHECK(e <= TOL_SAME);
                if (e > ws) ws = e;
            }
            CHECK(rel_errf(dx2f, dxf, NC) <= TOL_SAME);
            if (ws > worst_same) worst_same = ws;
        }
    }

    /* decoding in pieces of 1, up to 5 and the rest, against the forward rows */
    if (ok && mode == TTT_CUDA_F32) {
        size_t ns = mamba_state_size(&c, B);
        int Pmax = T;
        float *dS = ttt_cuda_alloc(ns), *dScr = ttt_cuda_alloc(ttt_cuda_mamba_decode_scratch_size(&c, B, Pmax));
        float *dXp = ttt_cuda_alloc((size_t)B * Pmax * C), *dOp = ttt_cuda_alloc((size_t)B * Pmax * C);
        float *xp = malloc((size_t)B * Pmax * C * sizeof *xp), *op = malloc((size_t)B * Pmax * C * sizeof *op);
        float *dec = malloc(NC * sizeof *dec), *Sf = malloc(ns * sizeof *Sf);
        int dok = dS && dScr && dXp && dOp;
        for (int t0 = 0, piece = 0; dok && t0 < T; piece++) {
            int P1 = piece == 0 ? 1 : piece == 1 ? (T - t0 < 5 ? T - t0 : 5) : T - t0;
            for (int b = 0; b < B; b++)
                memcpy(xp + (size_t)b * P1 * C, xf + ((size_t)b * T + t0) * C, sizeof(float) * P1 * C);
            dok = ttt_cuda_upload(dXp, xp, (size_t)B * P1 * C) == 0 &&
                  ttt_cuda_mamba_decode(g, mode, &c, dOp, dS, dXp, &p, B, P1, dScr) == 0 &&
                  ttt_cuda_sync(g) == 0 && ttt_cuda_download(op, dOp, (size_t)B * P1 * C) == 0;
            for (int b = 0; dok && b < B; b++)
                memcpy(dec + ((size_t)b * T + t0) * C, op + (size_t)b * P1 * C, sizeof(float) * P1 * C);
            t0 += P1;
        }
        dok = dok && ttt_cuda_download(Sf, dS, ns) == 0;
        if (!dok) fprintf(stderr, "%s: decode: %s\n", tag, ttt_errmsg());
        CHECK(dok);
        if (dok) {
            /* the CPU decoder's state after all T tokens */
            real *Sd = calloc(ns, sizeof *Sd), *od = malloc(NC * sizeof *od);
            real *dscr = malloc(mamba_decode_scratch_size(&c, B) * sizeof *dscr);
            mamba_decode(&c, od, Sd, xd, &P, B, T, dscr);
            double e1 = rel_errf(dec, outf, NC), e2 = rel_err(Sf, Sd, ns, 0), e3 = rel_err(dec, od, NC, 0);
            printf("%s: decode vs forward %.3g, state vs cpu decode %.3g, out vs cpu decode %.3g\n", tag, e1, e2, e3);
            if (!(e1 <= TOL_SAME)) fprintf(stderr, "%s: decode differs from the forward: %.3g\n", tag, e1);
            CHECK(e1 <= TOL_SAME);
            note(tag, mode, "decode state", e2, TOL);
            note(tag, mode, "decode out", e3, TOL);
            if (e1 > worst_same) worst_same = e1;
            free(Sd); free(od); free(dscr);
        }
        ttt_cuda_free(dS); ttt_cuda_free(dScr); ttt_cuda_free(dXp); ttt_cuda_free(dOp);
        free(xp); free(op); free(dec); free(Sf);
    }

    ttt_cuda_free(dP); ttt_cuda_free(dG); ttt_cuda_free(dA); ttt_cuda_free(dx_); ttt_cuda_free(dout_);
    ttt_cuda_free(dx2_); ttt_cuda_free(dX); ttt_cuda_free(dOut);
    free(Pd); free(Gd); free(Pf); free(G1); free(G2); free(xd); free(doutd); free(xf); free(doutf);
    free(acts); free(scr); free(outd); free(dxd); free(outf); free(dxf); free(dx2f); free(a1); free(a2);
}

static void refusals(ttt_cuda *g)
{
    mamba_config c;
    mamba_config_init(&c, 16, 4);
    size_t o[NT + 1], np = tensor_offsets(&c, o);
    float *dP = ttt_cuda_alloc(np), *buf = ttt_cuda_alloc(4096);
    ttt_cuda_mamba_params p;
    gpu_params(&p, dP, o);
    mamba_config bad = c;
    bad.S = 8;
    CHECK(ttt_cuda_mamba_forward(g, TTT_CUDA_F32, &bad, buf, buf, buf, &p, 1, 1) == -1);
    CHECK(strstr(ttt_errmsg(), "d_state") != NULL);
    bad = c;
    bad.k = 17;
    CHECK(ttt_cuda_mamba_decode(g, TTT_CUDA_F32, &bad, buf, buf, buf, &p, 1, 1, buf) == -1);
    CHECK(strstr(ttt_errmsg(), "conv width") != NULL);
    CHECK(ttt_cuda_mamba_backward(g, TTT_CUDA_F32, &c, buf, &p, buf, buf, buf, &p, 0, 4) == -1);
    CHECK(strstr(ttt_errmsg(), "shape") != NULL);
    ttt_cuda_free(dP);
    ttt_cuda_free(buf);
}

int main(void)
{
    if (ttt_cuda_device_count() < 1) {
        printf("test_cuda_mamba: skipped: no GPU\n");
        return 0;
    }
    char name[256];
    ttt_cuda_device_name(0, name, sizeof name);
    printf("test_cuda_mamba: device 0: %s\n", name);
    ttt_cuda *g = ttt_cuda_open(0);
    CHECK(g != NULL);
    if (!g) { fprintf(stderr, "test_cuda_mamba: %s\n", ttt_errmsg()); return check_exit("test_cuda_mamba"); }
    static const int shapes[][4] = {   /* C, k, B, T */
        { 16, 4, 2, 1 }, { 16, 4, 2, 64 }, { 24, 4, 2, 70 }, { 48, 4, 2, 130 }, { 16, 2, 1, 5 },
    };
    for (int m = 0; m < 2; m++)
        for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
            run_case(g, shapes[i][0], shapes[i][1], shapes[i][2], shapes[i][3],
                     m ? TTT_CUDA_BF16 : TTT_CUDA_F32, 1000 + i);
    refusals(g);
    printf("test_cuda_mamba: worst relative error fp32 %.3g (bound %g), bf16 %.3g (bound %g); "
           "second backward / decode vs forward %.3g (bound %g)\n",
           worst_fp32, TOL, worst_bf16, TOL_BF16, worst_same, TOL_SAME);
    ttt_cuda_close(g);
    return check_exit("test_cuda_mamba");
}

#else

int main(void)
{
    printf("test_cuda_mamba: skipped: built without CUDA\n");
    return 0;
}

#endif
