/* test_cuda_attn.c - the GPU attention block (lib/ttt_cuda_attn.h,
 * lib/cuda/attn_gpu.cu) against the CPU twin (lib/layers/attn.h, float64
 * here) on random layers of several shapes: T = 1, T below, at and past the
 * 64-row tile, head dims 8..128 (16/32/64/128 exactly and padded widths),
 * B = 1, 2 and H = 1..4:
 *   - out, dx and the four weight gradients, ||gpu - cpu|| / ||cpu||
 *     <= 1e-4 in fp32 mode (a gradient below 1% of the largest one is
 *     measured against that 1%: at T = 1 dWq and dWk are exactly 0 and the
 *     GPU leaves rounding noise of dP - delta); <= 5e-2 in TTT_CUDA_BF16 mode (GEMM inputs
 *     rounded to bf16: ~4e-3 relative per operand, amplified by the
 *     softmax; a broken term gives errors of order 1);
 *   - the backward's contract: dx overwritten (garbage beforehand makes no
 *     difference), gradients accumulated (a second backward doubles them,
 *     and gives the same dx bit for bit), acts left unchanged bit for bit;
 *   - decoding with the device KV cache (prefill of T/3 tokens, a chunk of
 *     up to 3, then single tokens) equals the rows of the full forward
 *     (GPU and CPU), <= 1e-4; also long caches (T 700..1200, prefill of all
 *     but 20 tokens), where the split decode cuts the keys into many chunks
 *     (lib/cuda/attn_decode.cuh) and the 3-token chunk straddles them; head
 *     dim 6 takes the scalar loads;
 *   - refusals: an odd head dim, a head dim over 128;
 *   - TTT_CUDA_BF16 runs the tensor-core FlashAttention-2 kernels
 *     (lib/cuda/attn_flash_tc.cu) for head dims 64 and 128: cases with T = 1,
 *     2, exactly one tile, T not a multiple of 64, several query tiles (off-
 *     diagonal key tiles), B*H > 1; D = 96 checks the bf16 fallback to the
 *     fp32 kernels;
 *   - timing lines of a longer forward + backward in both modes (not an
 *     assertion; B=1 H=16 D=64, T from $TTT_ATTN_TIMING_T, default 4096, 0
 *     skips) and of single-token decode steps at batch 1 (B=1 H=12 D=64,
 *     caches of 1k, 8k, 32k tokens: ms per ttt_cuda_attn_decode call,
 *     projections included; skipped with the others when the variable is 0).
 * Inputs are rounded to float once and the CPU reference runs on the very
 * same values, so the measured errors are the GPU's arithmetic alone.
 * Skips cleanly (exit 0) without CUDA in the build or without a GPU. */
#include "check.h"

#include <stdio.h>

#ifdef TTT_HAVE_CUDA
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "err.h"
#include "layers/attn.h"
#include "rng.h"
#include "ttt_cuda.h"
#include "ttt_cuda_attn.h"

#define TOL_F32 1e-4
#define TOL_BF16 5e-2

static ttt_rng rng;
static double worst_f32, worst_bf16, worst_dec;

/* ||g - c|| / max(||c||, floor) over n values */
static double rel_floor(const float *g, const real *c, size_t n, double fl)
{
    double d = 0, s = 0;
    for (size_t i = 0; i < n; i++) {
        d += ((double)g[i] - c[i]) * ((double)g[i] - c[i]);
        s += (double)c[i] * c[i];
    }
    s = sqrt(s);
    return sqrt(d) / (s > fl ? s : fl > 0 ? fl : 1e-300);
}

static double rel(const float *g, const real *c, size_t n) { return rel_floor(g, c, n, 0); }

static double norm(const real *c, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++) s += (double)c[i] * c[i];
    return sqrt(s);
}

static double rel_ff(const float *g, const float *c, size_t n)
{
    double d = 0, s = 0;
    for (size_t i = 0; i < n; i++) {
        d += ((double)g[i] - c[i]) * ((double)g[i] - c[i]);
        s += (double)c[i] * c[i];
    }
    return sqrt(d / (s > 0 ? s : 1e-300));
}

/* n normal values * sd, rounded to float; the float copy and its exact double twin */
static void fill(float *f, real *r, size_t n, double sd)
{
    for (size_t i = 0; i < n; i++) {
        f[i] = (float)(ttt_rng_normal(&rng) * sd);
        r[i] = f[i];
    }
}

static float *dup_up(const float *h, size_t n)
{
    float *d = ttt_cuda_alloc(n);
    if (d && ttt_cuda_upload(d, h, n)) { ttt_cuda_free(d); d = NULL; }
    if (!d) fprintf(stderr, "test_cuda_attn: %s\n", ttt_errmsg());
    return d;
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static const char *pname[4] = {"q_proj", "k_proj", "v_proj", "o_proj"};

/* Decoding: prefill of `pre` tokens, a chunk of up to 3, then single tokens
 * through the device cache; each output row against the GPU forward (outg)
 * and the CPU forward (outc). The scratch is sized once for the prefill and
 * serves the smaller chunks after it (as the generator's arena does). */
static void check_decode(ttt_cuda *g, const attn_config *c, const ttt_cuda_attn_params *dp, const float *xf,
                         const float *outg, const real *outc, int B, int T, int pre, const char *tag)
{
    const int C = c->C;
    float *kc = ttt_cuda_alloc((size_t)T * B * C), *vc = ttt_cuda_alloc((size_t)T * B * C);
    float *scr = ttt_cuda_alloc(ttt_cuda_attn_decode_scratch_size(c, B, pre > 3 ? pre : 3));
    float *xd = ttt_cuda_alloc((size_t)B * T * C), *od = ttt_cuda_alloc((size_t)B * T * C);
    float *xh = malloc(sizeof(float) * B * T * C), *oh = malloc(sizeof(float) * B * T * C);
    float *og = malloc(sizeof(float) * B * T * C);
    CHECK(kc && vc && scr && xd && od);
    if (!(kc && vc && scr && xd && od)) goto done;
    int steps = 0;
    double e_g = 0, e_c = 0;
    for (int pos = 0; pos < T; steps++) {
        int P = pos == 0 ? pre : (steps == 1 ? (T - pos < 3 ? T - pos : 3) : 1);
        for (int b = 0; b < B; b++)
            memcpy(xh + (size_t)b * P * C, xf + ((size_t)b * T + pos) * C, sizeof(float) * P * C);
        int ok = ttt_cuda_upload(xd, xh, (size_t)B * P * C) == 0 &&
                 ttt_cuda_attn_decode(g, TTT_CUDA_F32, c, od, kc, vc, xd, dp, B, P, pos, scr) == 0 &&
                 ttt_cuda_sync(g) == 0 && ttt_cuda_download(oh, od, (size_t)B * P * C) == 0;
        if (!ok) fprintf(stderr, "test_cuda_attn: %s: decode at %d: %s\n", tag, pos, ttt_errmsg());
        CHECK(ok);
        if (!ok) goto done;
        for (int b = 0; b < B; b++)
            for (int t = 0; t < P; t++) {
                const float *row = oh + ((size_t)b * P + t) * C;
                memcpy(og + ((size_t)b * T + pos + t) * C, row, sizeof(float) * C);
            }
        pos += P;
    }
    e_g = rel_ff(og, outg, (size_t)B * T * C);
    e_c = rel(og, outc, (size_t)B * T * C);
    printf("%s: decode (prefill %d, %d calls) vs GPU forward %.3g, vs CPU forward %.3g\n", tag, pre, steps, e_g, e_c);
    CHECK(e_g <= TOL_F32);
    CHECK(e_c <= TOL_F32);
    if (e_g > worst_dec) worst_dec = e_g;
    if (e_c > worst_dec) worst_dec = e_c;
done:
    ttt_cuda_free(kc); ttt_cuda_free(vc); ttt_cuda_free(scr); ttt_cuda_free(xd); ttt_cuda_free(od);
    free(xh); free(oh); free(og);
}

/* One random layer of shape (B, H, D, T) in precision `mode`. */
static void run_case(ttt_cuda *g, int B, int H, int D, int T, int mode)
{
    attn_config c = {H * D, H, D, 10000.0};
    const int C = c.C;
    const size_t NC = (size_t)B * T * C, CC = (size_t)C * C;
    const double tol = mode == TTT_CUDA_BF16 ? TOL_BF16 : TOL_F32;
    char tag[96];
    snprintf(tag, sizeof tag, "B=%d H=%d D=%d T=%d %s", B, H, D, T, mode == TTT_CUDA_BF16 ? "bf16" : "fp32");

    /* host: float inputs and their double twins; weights sd 1.2/sqrt(C) give
     * scores of sd ~1.4: peaked, not one-hot softmax rows */
    float *xf = malloc(sizeof(float) * NC), *df = malloc(sizeof(float) * NC), *wf[4];
    real *xr = malloc(sizeof(real) * NC), *dr = malloc(sizeof(real) * NC), *wr[4], *gr[4];
    fill(xf, xr, NC, 1.0);
    fill(df, dr, NC, 1.0);
    for (int i = 0; i < 4; i++) {
        wf[i] = malloc(sizeof(float) * CC);
        wr[i] = malloc(sizeof(real) * CC);
        gr[i] = calloc(CC, sizeof(real));
        fill(wf[i], wr[i], CC, 1.2 / sqrt((double)C));
    }

    /* CPU reference (float64) */
    attn_params cp = {wr[0], wr[1], wr[2], wr[3]}, cg = {gr[0], gr[1], gr[2], gr[3]};
    real *outc = malloc(sizeof(real) * NC), *dxc = malloc(sizeof(real) * NC);
    real *actc = malloc(sizeof(real) * attn_acts_size(&c, B, T));
    real *scrc = malloc(sizeof(real) * attn_scratch_size(&c, B, T));
    attn_forward(&c, outc, actc, xr, &cp, B, T);
    attn_backward(&c, dxc, &cg, dr, actc, xr, &cp, scrc, B, T);

    /* GPU */
    ttt_cuda_attn_params dp, dg;
    float **dpp[4] = {&dp.q_proj, &dp.k_proj, &dp.v_proj, &dp.o_proj};
    float **dgp[4] = {&dg.q_proj, &dg.k_proj, &dg.v_proj, &dg.o_proj};
    int ok = 1;
    for (int i = 0; i < 4; i++) {
        *dpp[i] = dup_up(wf[i], CC);
        *dgp[i] = ttt_cuda_alloc(CC);
        ok &= *dpp[i] && *dgp[i];
    }
    size_t na = ttt_cuda_attn_acts_size(&c, B, T);
    float *xd = dup_up(xf, NC), *dd = dup_up(df, NC), *outd = ttt_cuda_alloc(NC), *dxd = ttt_cuda_alloc(NC);
    float *actd = ttt_cuda_alloc(na);
    float *outg = malloc(sizeof(float) * NC), *dxg = malloc(sizeof(float) * NC), *dx2 = malloc(sizeof(float) * NC);
    float *gg[4], *gg2 = malloc(sizeof(float) * CC), *acth = malloc(sizeof(float) * na), *acth2 = malloc(sizeof(float) * na);
    for (int i = 0; i < 4; i++) gg[i] = malloc(sizeof(float) * CC);
    ok &= xd && dd && outd && dxd && actd;
    CHECK(ok);
    if (!ok) goto done;

    /* forward; dx preset to garbage: the backward must overwrite it */
    for (size_t i = 0; i < NC; i++) dx2[i] = 1e30f;
    ok = ttt_cuda_attn_forward(g, mode, &c, outd, actd, xd, &dp, B, T) == 0 &&
         ttt_cuda_upload(dxd, dx2, NC) == 0 &&
         ttt_cuda_attn_backward(g, mode, &c, dxd, &dg, dd, actd, xd, &dp, B, T) == 0 && ttt_cuda_sync(g) == 0;
    if (!ok) fprintf(stderr, "test_cuda_attn: %s: %s\n", tag, ttt_errmsg());
    CHECK(ok);
    if (!ok) goto done;
    ttt_cuda_download(outg, outd, NC);
    ttt_cuda_download(dxg, dxd, NC);
    ttt_cuda_download(acth, actd, na);
    double e[6], gmax = 0;
    e[0] = rel(outg, outc, NC);
    e[1] = rel(dxg, dxc, NC);
    for (int i = 0; i < 4; i++)
        if (norm(gr[i], CC) > gmax) gmax = norm(gr[i], CC);
    for (int i = 0; i < 4; i++) {
        ttt_cuda_download(gg[i], *dgp[i], CC);
        e[2 + i] = rel_floor(gg[i], gr[i], CC, 1e-2 * gmax);
    }
    double w = 0;
    for (int i = 0; i < 6; i++) {
        CHECK(e[i] <= tol);
        if (!(e[i] <= tol)) fprintf(stderr, "test_cuda_attn: %s: %s relative error %.3g > %.0e\n", tag,
                                    i == 0 ? "out" : i == 1 ? "dx" : pname[i - 2], e[i], tol);
        if (!(e[i] <= w)) w = e[i];
    }
    printf("%s: out %.3g dx %.3g dWq %.3g dWk %.3g dWv %.3g dWo %.3g\n", tag, e[0], e[1], e[2], e[3], e[4], e[5]);
    double *wp = mode == TTT_CUDA_BF16 ? &worst_bf16 : &worst_f32;
    if (!(w <= *wp)) *wp = w;

    /* second backward: same dx bit for bit, doubled gradients, acts untouched */
    ok = ttt_cuda_attn_backward(g, mode, &c, dxd, &dg, dd, actd, xd, &dp, B, T) == 0 && ttt_cuda_sync(g) == 0;
    CHECK(ok);
    if (!ok) { fprintf(stderr, "test_cuda_attn: %s: second backward: %s\n", tag, ttt_errmsg()); goto done; }
    ttt_cuda_download(dx2, dxd, NC);
    ttt_cuda_download(acth2, actd, na);
    CHECK(memcmp(dx2, dxg, sizeof(float) * NC) == 0);
    CHECK(memcmp(acth2, acth, sizeof(float) * na) == 0);
    double e2 = 0;
    for (int i = 0; i < 4; i++) {
        ttt_cuda_download(gg2, *dgp[i], CC);
        for (size_t j = 0; j < CC; j++) gg2[j] *= 0.5f;
        double r = rel_ff(gg2, gg[i], CC);
        if (r > e2) e2 = r;
    }
    CHECK(e2 <= 1e-6);
    if (!(e2 <= 1e-6)) fprintf(stderr, "test_cuda_attn: %s: second backward: gradients/2 differ by %.3g\n", tag, e2);

    if (mode == TTT_CUDA_F32) check_decode(g, &c, &dp, xf, outg, outc, B, T, T / 3 > 0 ? T / 3 : 1, tag);

done:
    for (int i = 0; i < 4; i++) {
        ttt_cuda_free(*dpp[i]); ttt_cuda_free(*dgp[i]);
        free(wf[i]); free(wr[i]); free(gr[i]); free(gg[i]);
    }
    ttt_cuda_free(xd); ttt_cuda_free(dd); ttt_cuda_free(outd); ttt_cuda_free(dxd); ttt_cuda_free(actd);
    free(xf); free(df); free(xr); free(dr); free(outc); free(dxc); free(actc); free(scrc);
    free(outg); free(dxg); free(dx2); free(gg2); free(acth); free(acth2);
}

/* Decoding over a long cache: forward of T tokens (GPU and CPU), then the
 * decode with a prefill of T - 20, a chunk of 3 and single tokens. */
static void decode_long(ttt_cuda *g, int B, int H, int D, int T)
{
    attn_config c = {H * D, H, D, 10000.0};
    const size_t NC = (size_t)B * T * c.C, CC = (size_t)c.C * c.C;
    char tag[96];
    snprintf(tag, sizeof tag, "B=%d H=%d D=%d T=%d fp32 long", B, H, D, T);
    float *xf = malloc(sizeof(float) * NC), *wf = malloc(sizeof(float) * 4 * CC), *outg = malloc(sizeof(float) * NC);
    real *xr = malloc(sizeof(real) * NC), *wr = malloc(sizeof(real) * 4 * CC), *outc = malloc(sizeof(real) * NC);
    real *actc = malloc(sizeof(real) * attn_acts_size(&c, B, T));
    fill(xf, xr, NC, 1.0);
    fill(wf, wr, 4 * CC, 1.2 / sqrt((double)c.C));
    attn_params cp = {wr, wr + CC, wr + 2 * CC, wr + 3 * CC};
    attn_forward(&c, outc, actc, xr, &cp, B, T);
    ttt_cuda_attn_params dp = {dup_up(wf, CC), dup_up(wf + CC, CC), dup_up(wf + 2 * CC, CC), dup_up(wf + 3 * CC, CC)};
    float *xd = dup_up(xf, NC), *outd = ttt_cuda_alloc(NC), *actd = ttt_cuda_alloc(ttt_cuda_attn_acts_size(&c, B, T));
    int ok = dp.q_proj && dp.k_proj && dp.v_proj && dp.o_proj && xd && outd && actd &&
             ttt_cuda_attn_forward(g, TTT_CUDA_F32, &c, outd, actd, xd, &dp, B, T) == 0 && ttt_cuda_sync(g) == 0 &&
             ttt_cuda_download(outg, outd, NC) == 0;
    if (!ok) fprintf(stderr, "test_cuda_attn: %s: %s\n", tag, ttt_errmsg());
    CHECK(ok);
    if (ok) check_decode(g, &c, &dp, xf, outg, outc, B, T, T - 20, tag);
    ttt_cuda_free(dp.q_proj); ttt_cuda_free(dp.k_proj); ttt_cuda_free(dp.v_proj); ttt_cuda_free(dp.o_proj);
    ttt_cuda_free(xd); ttt_cuda_free(outd); ttt_cuda_free(actd);
    free(xf); free(wf); free(outg); free(xr); free(wr); free(outc); free(actc);
}

/* Refusals: checked before any device work. */
static void refusals(ttt_cuda *g)
{
    float *buf = ttt_cuda_alloc(64);
    ttt_cuda_attn_params p = {buf, buf, buf, buf};
    attn_config odd = {6, 2, 3, 10000.0}, wide = {260, 2, 130, 10000.0}, bad = {64, 3, 16, 10000.0};
    CHECK(ttt_cuda_attn_forward(g, TTT_CUDA_F32, &odd, buf, buf, buf, &p, 1, 2) == -1);
    CHECK(strstr(ttt_errmsg(), "head dim 3") != NULL);
    CHECK(ttt_cuda_attn_forward(g, TTT_CUDA_F32, &wide, buf, buf, buf, &p, 1, 2) == -1);
    CHECK(strstr(ttt_errmsg(), "head dim 130") != NULL);
    CHECK(ttt_cuda_attn_backward(g, TTT_CUDA_F32, &bad, buf, &p, buf, buf, buf, &p, 1, 2) == -1);
    CHECK(strstr(ttt_errmsg(), "channels") != NULL);
    CHECK(ttt_cuda_attn_decode(g, TTT_CUDA_F32, &odd, buf, buf, buf, buf, &p, 1, 1, 0, buf) == -1);
    ttt_cuda_free(buf);
}

/* Not an assertion: forward + backward time of a longer sequence. */
static void timing(ttt_cuda *g, int mode, int B, int H, int D, int T)
{
    attn_config c = {H * D, H, D, 10000.0};
    size_t NC = (size_t)B * T * c.C, CC = (size_t)c.C * c.C;
    float *h = malloc(sizeof(float) * (NC > CC ? NC : CC));
    real *r = malloc(sizeof(real) * (NC > CC ? NC : CC));
    fill(h, r, CC, 1.0 / sqrt((double)c.C));
    ttt_cuda_attn_params p = {dup_up(h, CC), dup_up(h, CC), dup_up(h, CC), dup_up(h, CC)};
    ttt_cuda_attn_params gr = {ttt_cuda_alloc(CC), ttt_cuda_alloc(CC), ttt_cuda_alloc(CC), ttt_cuda_alloc(CC)};
    fill(h, r, NC, 1.0);
    float *x = dup_up(h, NC), *out = ttt_cuda_alloc(NC), *dx = ttt_cuda_alloc(NC);
    float *acts = ttt_cuda_alloc(ttt_cuda_attn_acts_size(&c, B, T));
    int ok = p.q_proj && p.k_proj && p.v_proj && p.o_proj && gr.q_proj && gr.k_proj && gr.v_proj && gr.o_proj &&
             x && out && dx && acts;
    double tf = 0, tb = 0;
    for (int it = 0; ok && it < 3; it++) {   /* the first round warms up */
        double t0 = now();
        ok = ttt_cuda_attn_forward(g, mode, &c, out, acts, x, &p, B, T) == 0 && ttt_cuda_sync(g) == 0;
        double t1 = now();
        ok = ok && ttt_cuda_attn_backward(g, mode, &c, dx, &gr, out, acts, x, &p, B, T) == 0 &&
             ttt_cuda_sync(g) == 0;
        double t2 = now();
        if (it) { tf += (t1 - t0) / 2; tb += (t2 - t1) / 2; }
    }
    CHECK(ok);
    if (ok) {
        ttt_cuda_download(h, out, NC);
        int finite = 1;
        for (size_t i = 0; i < NC; i++) finite &= isfinite(h[i]) != 0;
        CHECK(finite);
        /* causal attention flops: 4 T^2/2 D per head forward, 2.5x that backward */
        double fl = 2.0 * T * (double)T * D * H * B;
        printf("timing B=%d H=%d D=%d T=%d %s: forward %.2f ms (attention ~%.1f TFLOP/s incl. projections), "
               "backward %.2f ms\n", B, H, D, T, mode == TTT_CUDA_BF16 ? "bf16" : "fp32", tf * 1e3,
               fl / tf * 1e-12, tb * 1e3);
    } else {
        fprintf(stderr, "test_cuda_attn: timing: %s\n", ttt_errmsg());
    }
    ttt_cuda_free(p.q_proj); ttt_cuda_free(p.k_proj); ttt_cuda_free(p.v_proj); ttt_cuda_free(p.o_proj);
    ttt_cuda_free(gr.q_proj); ttt_cuda_free(gr.k_proj); ttt_cuda_free(gr.v_proj); ttt_cuda_free(gr.o_proj);
    ttt_cuda_free(x); ttt_cuda_free(out); ttt_cuda_free(dx); ttt_cuda_free(acts);
    free(h); free(r);
}

/* Not an assertion: single-token decode steps at batch 1 (generation after a
 * long prompt): caches of L tokens filled with random rows, then calls at
 * position L, each synchronised (the generator waits for every token's
 * logits); ms per call, projections and cache append included. The second
 * figure is the K and V bytes read per step over that time (a lower bound on
 * the attention kernels' own bandwidth). */
static void decode_timing(ttt_cuda *g)
{
    enum { B = 1, H = 12, D = 64, C = H * D, STEPS = 50 };
    static const int lens[] = {1024, 8192, 32768};
    const size_t maxpos = 32768 + 1, blk = (size_t)1 << 20, CC = (size_t)C * C;
    attn_config c = {C, H, D, 10000.0};
    float *h = malloc(sizeof(float) * blk);
    real *r = malloc(sizeof(real) * blk);
    fill(h, r, CC, 1.0 / sqrt((double)C));
    ttt_cuda_attn_params p = {dup_up(h, CC), dup_up(h, CC), dup_up(h, CC), dup_up(h, CC)};
    float *kc = ttt_cuda_alloc(maxpos * C), *vc = ttt_cuda_alloc(maxpos * C);
    float *scr = ttt_cuda_alloc(ttt_cuda_attn_decode_scratch_size(&c, B, 1));
    float *x = ttt_cuda_alloc(C), *out = ttt_cuda_alloc(C);
    int ok = p.q_proj && p.k_proj && p.v_proj && p.o_proj && kc && vc && scr && x && out;
    fill(h, r, blk, 1.0);
    for (size_t i = 0; ok && i < maxpos * C; i += blk) {   /* the same random block over and over */
        size_t n = maxpos * C - i < blk ? maxpos * C - i : blk;
        ok = ttt_cuda_upload(kc + i, h, n) == 0 && ttt_cuda_upload(vc + i, h, n) == 0;
    }
    ok = ok && ttt_cuda_upload(x, h + 12345, C) == 0;
    for (size_t i = 0; ok && i < sizeof lens / sizeof lens[0]; i++) {
        const long L = lens[i];
        double t0 = 0;
        for (int it = 0; ok && it < STEPS + 3; it++) {   /* 3 warm-up calls */
            if (it == 3) t0 = now();
            ok = ttt_cuda_attn_decode(g, TTT_CUDA_F32, &c, out, kc, vc, x, &p, B, 1, L, scr) == 0 &&
                 ttt_cuda_sync(g) == 0;
        }
        const double t = (now() - t0) / STEPS;
        if (!ok) break;
        ttt_cuda_download(h, out, C);
        int finite = 1;
        for (int j = 0; j < C; j++) finite &= isfinite(h[j]) != 0;
        CHECK(finite);
        printf("timing decode B=%d H=%d D=%d cache %ld: %.3f ms per step (K+V %.0f GB/s)\n", B, H, D, L, t * 1e3,
               2.0 * (L + 1) * C * sizeof(float) / t * 1e-9);
    }
    CHECK(ok);
    if (!ok) fprintf(stderr, "test_cuda_attn: decode timing: %s\n", ttt_errmsg());
    ttt_cuda_free(p.q_proj); ttt_cuda_free(p.k_proj); ttt_cuda_free(p.v_proj); ttt_cuda_free(p.o_proj);
    ttt_cuda_free(kc); ttt_cuda_free(vc); ttt_cuda_free(scr); ttt_cuda_free(x); ttt_cuda_free(out);
    free(h); free(r);
}

int main(void)
{
    if (ttt_cuda_device_count() < 1) {
        printf("test_cuda_attn: skipped: no GPU\n");
        return 0;
    }
    char name[256];
    ttt_cuda_device_name(0, name, sizeof name);
    printf("test_cuda_attn: device 0: %s\n", name);
    ttt_cuda *g = ttt_cuda_open(0);
    if (!g) fprintf(stderr, "test_cuda_attn: %s\n", ttt_errmsg());
    CHECK(g != NULL);
    if (!g) return check_exit("test_cuda_attn");
    ttt_rng_seed(&rng, 20240917);
    refusals(g);
    static const int shapes[][4] = {   /* B, H, D, T */
        {2, 3, 16, 1}, {2, 3, 16, 70}, {2, 3, 64, 130}, {1, 4, 32, 64}, {1, 2, 128, 200},
        {2, 1, 96, 77}, {1, 2, 8, 150}, {2, 3, 64, 2},
    };
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
        run_case(g, shapes[i][0], shapes[i][1], shapes[i][2], shapes[i][3], TTT_CUDA_F32);
    static const int shapes_bf16[][4] = {   /* tensor cores: D 64, 128; D 96 falls back to fp32 */
        {2, 3, 64, 130}, {1, 2, 128, 200}, {2, 3, 64, 1}, {2, 2, 128, 1}, {1, 1, 64, 2},
        {2, 2, 64, 64}, {1, 3, 128, 77}, {1, 1, 64, 300}, {2, 1, 96, 77},
    };
    for (size_t i = 0; i < sizeof shapes_bf16 / sizeof shapes_bf16[0]; i++)
        run_case(g, shapes_bf16[i][0], shapes_bf16[i][1], shapes_bf16[i][2], shapes_bf16[i][3], TTT_CUDA_BF16);
    decode_long(g, 2, 2, 64, 1200);   /* many chunks, B = 2 */
    decode_long(g, 1, 3, 6, 700);     /* head dim 6: scalar loads */
    printf("test_cuda_attn: worst relative error: fp32 %.3g (bound %.0e), bf16 %.3g (bound %.0e), decode %.3g\n",
           worst_f32, TOL_F32, worst_bf16, TOL_BF16, worst_dec);
    const char *tt = getenv("TTT_ATTN_TIMING_T");
    int T = tt ? atoi(tt) : 4096;
    if (T > 0) {
        timing(g, TTT_CUDA_F32, 1, 16, 64, T);
        timing(g, TTT_CUDA_BF16, 1, 16, 64, T);
        decode_timing(g);
    }
    ttt_cuda_close(g);
    return check_exit("test_cuda_attn");
}

#else

int main(void)
{
    printf("test_cuda_attn: skipped: built without CUDA\n");
    return 0;
}

#endif
