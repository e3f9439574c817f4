/* test_adamw.c - AdamW against a direct transcription of optax.adamw, the
 * known first-step property, clipping, thread-independent norms, and the
 * warm-up + cosine schedule at its corners. */
#include "check.h"
#include "layers/adamw.h"
#include "train_sched.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

/* optax: chain(scale_by_adam(b1, b2, eps), add_decayed_weights(wd),
 * scale_by_learning_rate(lr)), written out independently. */
static void ref_adamw(double *p, const double *g, double *m, double *v, int n, double lr, double wd, int t)
{
    for (int i = 0; i < n; i++) {
        m[i] = 0.9 * m[i] + 0.1 * g[i];
        v[i] = 0.95 * v[i] + 0.05 * g[i] * g[i];
        double mh = m[i] / (1 - pow(0.9, t)), vh = v[i] / (1 - pow(0.95, t));
        p[i] -= lr * (mh / (sqrt(vh) + 1e-8) + wd * p[i]);
    }
}

static void test_against_reference(void)
{
    enum { N = 37 };
    real p[N], g[N], m[N] = { 0 }, v[N] = { 0 };
    double rp[N], rg[N], rm[N] = { 0 }, rv[N] = { 0 };
    ttt_adamw_params hp = ttt_adamw_defaults();
    CHECK(hp.beta1 == 0.9 && hp.beta2 == 0.95 && hp.eps == 1e-8 && hp.weight_decay == 0.1);
    for (int i = 0; i < N; i++) rp[i] = p[i] = sin(i + 1.0);
    for (int t = 1; t <= 5; t++) {
        for (int i = 0; i < N; i++) rg[i] = g[i] = cos(3.0 * i + t) * (i % 5 ? 1 : 1e-3);
        double lr = 1e-2 * t;
        ttt_adamw_update(p, g, m, v, N, &hp, lr, 1.0, t);
        ref_adamw(rp, rg, rm, rv, N, lr, 0.1, t);
    }
    for (int i = 0; i < N; i++) {
        CHECK_CLOSE(p[i], rp[i], 1e-12, 1e-12);
        CHECK_CLOSE(m[i], rm[i], 1e-12, 1e-12);
        CHECK_CLOSE(v[i], rv[i], 1e-12, 1e-12);
    }
}

/* After one step with bias correction, the Adam part is g/(|g|+eps): each
 * parameter moves by about lr*(sign(g) + wd*p). grad_scale scales g first. */
static void test_first_step(void)
{
    real p[3] = { 1, -2, 0.5 }, g[3] = { 4, -0.001, 0 }, m[3] = { 0 }, v[3] = { 0 };
    ttt_adamw_params hp = ttt_adamw_defaults();
    ttt_adamw_update(p, g, m, v, 3, &hp, 0.1, 0.5, 1);
    CHECK_CLOSE(p[0], 1 - 0.1 * (1 + 0.1 * 1), 1e-9, 0);
    CHECK_CLOSE(p[1], -2 - 0.1 * (-1 + 0.1 * -2), 1e-5, 0);   /* eps matters at |g| = 5e-4 */
    CHECK_CLOSE(p[2], 0.5 - 0.1 * (0 + 0.1 * 0.5), 1e-12, 0);
    CHECK_CLOSE(m[0], 0.1 * 2, 1e-12, 0);   /* 4 * 0.5 */
    CHECK_CLOSE(v[0], 0.05 * 4, 1e-12, 0);
    /* lr 0 (the first warm-up step) changes nothing but the moments. */
    real q[1] = { 3 }, h[1] = { 1 }, mm[1] = { 0 }, vv[1] = { 0 };
    ttt_adamw_update(q, h, mm, vv, 1, &hp, 0.0, 1.0, 1);
    CHECK(q[0] == 3 && mm[0] != 0);
}

static void test_clip_and_norm(void)
{
    CHECK(ttt_clip_factor(0.5, 1.0) == 1.0);
    CHECK(ttt_clip_factor(1.0, 1.0) == 1.0);
    CHECK_CLOSE(ttt_clip_factor(4.0, 1.0), 0.25, 0, 1e-15);
    CHECK(ttt_clip_factor(1e9, 0) == 1.0);   /* off */
    CHECK(ttt_clip_factor(NAN, 1.0) == 1.0); /* a NaN norm is not "clipped" into something finite */
    real g[4] = { 3, 4, 0, 0 };
    CHECK_CLOSE(ttt_grad_norm(g, 4), 5, 0, 1e-15);
    CHECK(ttt_grad_norm(g, 0) == 0);
    /* Several chunks; the same bits with 1 and with several threads. */
    size_t n = 300000;
    real *big = malloc(n * sizeof *big);
    double ref = 0;
    for (size_t i = 0; i < n; i++) { big[i] = (real)sin(0.001 * i); ref += (double)big[i] * big[i]; }
    double a = ttt_grad_norm(big, n);
    CHECK_CLOSE(a, sqrt(ref), 0, 1e-12);
#ifdef _OPENMP
    int nt = omp_get_max_threads();
    omp_set_num_threads(1);
    double b = ttt_grad_norm(big, n);
    omp_set_num_threads(3);
    double c = ttt_grad_norm(big, n);
    omp_set_num_threads(nt);
    CHECK(memcmp(&a, &b, sizeof a) == 0 && memcmp(&a, &c, sizeof a) == 0);
#endif
    free(big);
}

/* optax.warmup_cosine_decay_schedule(0, 1e-3, 10, 110, 1e-5) at its corners. */
static void test_schedule(void)
{
    double pk = 1e-3, end = 1e-5;
    CHECK(ttt_lr_schedule(0, pk, 10, 110, end) == 0);
    CHECK_CLOSE(ttt_lr_schedule(5, pk, 10, 110, end), 5e-4, 0, 1e-14);
    CHECK_CLOSE(ttt_lr_schedule(10, pk, 10, 110, end), pk, 0, 1e-14);
    /* half-way through the decay: (1-a)/2 + a */
    CHECK_CLOSE(ttt_lr_schedule(60, pk, 10, 110, end), pk * (0.5 * (1 - 0.01) + 0.01), 0, 1e-12);
    CHECK_CLOSE(ttt_lr_schedule(110, pk, 10, 110, end), end, 0, 1e-12);
    CHECK_CLOSE(ttt_lr_schedule(500, pk, 10, 110, end), end, 0, 1e-12);   /* stays at end */
    /* monotone after the warm-up */
    double prev = 1;
    int mono = 1;
    for (int s = 10; s <= 110; s++) {
        double l = ttt_lr_schedule(s, pk, 10, 110, end);
        if (l > prev) mono = 0;
        prev = l;
    }
    CHECK(mono);
    /* no warm-up: starts at the peak */
    CHECK_CLOSE(ttt_lr_schedule(0, pk, 0, 100, end), pk, 0, 1e-14);
}

int main(void)
{
    test_against_reference();
    test_first_step();
    test_clip_and_norm();
    test_schedule();
    return check_exit("test_adamw");
}
