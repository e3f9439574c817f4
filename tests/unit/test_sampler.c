/* test_sampler.c - lib/sampler: greedy, temperature, top-k, top-p, and
 * determinism of the RNG-driven draw. */
#include "check.h"
#include "sampler.h"
#include "err.h"

#include <string.h>

#define V 8

static void histogram(ttt_sampler *s, const real *logits, int n, int *hist)
{
    memset(hist, 0, V * sizeof *hist);
    for (int i = 0; i < n; i++) hist[ttt_sampler_sample(s, logits)]++;
}

int main(void)
{
    real logits[V] = { 1.0, 3.0, 2.0, 3.0, -1.0, 0.5, 2.5, -5.0 };
    ttt_sampler_params p;
    ttt_sampler s;
    int hist[V];

    /* greedy: argmax, lowest id on ties, consumes no randomness */
    ttt_sampler_defaults(&p);
    p.greedy = 1;
    CHECK(ttt_sampler_init(&s, V, &p, 1) == 0);
    ttt_rng before = s.rng;
    CHECK(ttt_sampler_sample(&s, logits) == 1);
    CHECK(memcmp(&before, &s.rng, sizeof before) == 0);
    ttt_sampler_free(&s);
    /* temperature 0 is greedy too */
    ttt_sampler_defaults(&p);
    p.temperature = 0;
    CHECK(ttt_sampler_init(&s, V, &p, 1) == 0);
    CHECK(ttt_sampler_sample(&s, logits) == 1);
    ttt_sampler_free(&s);

    /* top-k 1 = argmax whatever the seed */
    ttt_sampler_defaults(&p);
    p.top_k = 1;
    CHECK(ttt_sampler_init(&s, V, &p, 7) == 0);
    histogram(&s, logits, 200, hist);
    CHECK(hist[1] == 200);
    ttt_sampler_free(&s);

    /* top-k 3: only ids 1, 3, 6 (logits 3, 3, 2.5) */
    p.top_k = 3;
    CHECK(ttt_sampler_init(&s, V, &p, 7) == 0);
    histogram(&s, logits, 3000, hist);
    CHECK(hist[1] + hist[3] + hist[6] == 3000);
    CHECK(hist[1] > 0 && hist[3] > 0 && hist[6] > 0);
    /* ids 1 and 3 are equally likely (1000+-150), 6 less (e^-0.5 ~ 0.61 of them) */
    CHECK(hist[1] > 850 && hist[1] < 1350);
    CHECK(hist[6] < hist[1] && hist[6] < hist[3]);
    ttt_sampler_free(&s);

    /* full sampling: frequencies follow softmax */
    ttt_sampler_defaults(&p);
    CHECK(ttt_sampler_init(&s, V, &p, 42) == 0);
    int N = 40000;
    histogram(&s, logits, N, hist);
    double z = 0;
    for (int i = 0; i < V; i++) z += exp(logits[i]);
    for (int i = 0; i < V; i++) {
        double pr = exp(logits[i]) / z;
        double sd = sqrt(N * pr * (1 - pr)) + 1;
        CHECK(fabs(hist[i] - N * pr) < 5 * sd);
    }
    ttt_sampler_free(&s);

    /* top-p: p = 0.5 of the mass. Sorted probs: 1,3 (0.293 each) -> keep 2 */
    p.top_p = 0.5;
    CHECK(ttt_sampler_init(&s, V, &p, 3) == 0);
    histogram(&s, logits, 2000, hist);
    CHECK(hist[1] + hist[3] == 2000);
    ttt_sampler_free(&s);
    /* a tiny top-p keeps only the most likely (first of the tie by id) */
    p.top_p = 1e-6;
    CHECK(ttt_sampler_init(&s, V, &p, 3) == 0);
    histogram(&s, logits, 100, hist);
    CHECK(hist[1] == 100);
    ttt_sampler_free(&s);

    /* low temperature concentrates, high temperature flattens */
    ttt_sampler_defaults(&p);
    p.temperature = 0.05;
    CHECK(ttt_sampler_init(&s, V, &p, 5) == 0);
    histogram(&s, logits, 1000, hist);
    CHECK(hist[1] + hist[3] == 1000);
    ttt_sampler_free(&s);
    p.temperature = 100;
    CHECK(ttt_sampler_init(&s, V, &p, 5) == 0);
    histogram(&s, logits, 8000, hist);
    for (int i = 0; i < V; i++) CHECK(hist[i] > 700 && hist[i] < 1300);
    ttt_sampler_free(&s);

    /* determinism: same seed same sequence; saved RNG state resumes exactly */
    ttt_sampler_defaults(&p);
    p.top_p = 0.9;
    ttt_sampler a, b;
    CHECK(ttt_sampler_init(&a, V, &p, 99) == 0);
    CHECK(ttt_sampler_init(&b, V, &p, 99) == 0);
    int same = 1;
    for (int i = 0; i < 500; i++) same &= ttt_sampler_sample(&a, logits) == ttt_sampler_sample(&b, logits);
    CHECK(same);
    ttt_rng saved = a.rng;
    int seq[50];
    for (int i = 0; i < 50; i++) seq[i] = ttt_sampler_sample(&a, logits);
    b.rng = saved;
    for (int i = 0; i < 50; i++) same &= seq[i] == ttt_sampler_sample(&b, logits);
    CHECK(same);
    /* different seed: different sequence */
    ttt_sampler_free(&b);
    CHECK(ttt_sampler_init(&b, V, &p, 100) == 0);
    b.rng.s[0] ^= 0;   /* fresh seed 100 */
    int diff = 0;
    for (int i = 0; i < 50; i++) diff += seq[i] != ttt_sampler_sample(&b, logits);
    CHECK(diff > 0);
    ttt_sampler_free(&a);
    ttt_sampler_free(&b);

    /* non-finite logits never win; all -inf gives id 0 */
    real bad[V] = { NAN, -INFINITY, 1, INFINITY, 0, 0, 0, 0 };
    ttt_sampler_defaults(&p);
    CHECK(ttt_sampler_init(&s, V, &p, 1) == 0);
    for (int i = 0; i < 100; i++) {
        int t = ttt_sampler_sample(&s, bad);
        CHECK(t != 0 && t != 1 && t != 3);
    }
    real none[V];
    for (int i = 0; i < V; i++) none[i] = -INFINITY;
    CHECK(ttt_sampler_sample(&s, none) == 0);
    ttt_sampler_free(&s);

    /* parameter checks are usage errors */
    ttt_sampler_defaults(&p);
    p.top_p = 0;
    CHECK(ttt_sampler_check(&p) == -1 && ttt_errclass() == TTT_ERR_USAGE);
    p.top_p = 1.5;
    CHECK(ttt_sampler_check(&p) == -1);
    ttt_sampler_defaults(&p);
    p.temperature = -1;
    CHECK(ttt_sampler_check(&p) == -1);
    p.temperature = NAN;
    CHECK(ttt_sampler_check(&p) == -1);
    ttt_sampler_defaults(&p);
    p.top_k = -2;
    CHECK(ttt_sampler_init(&s, V, &p, 1) == -1);
    return check_exit("test_sampler");
}
