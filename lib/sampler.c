/* sampler.c - greedy / temperature / top-k / top-p sampling (sampler.h). */
#include "sampler.h"
#include "err.h"      /* ttt_seterr, ttt_seterrclass */

#include <math.h>
#include <stdlib.h>

void ttt_sampler_defaults(ttt_sampler_params *p)
{
    p->temperature = 1.0;
    p->top_k = 0;
    p->top_p = 1.0;
    p->greedy = 0;
}

static int usage(const char *msg)
{
    ttt_seterr("%s", msg);
    ttt_seterrclass(TTT_ERR_USAGE);
    return -1;
}

int ttt_sampler_check(const ttt_sampler_params *p)
{
    if (!(p->temperature >= 0) || !isfinite(p->temperature))
        return usage("temperature must be a finite number >= 0");
    if (p->top_k < 0) return usage("top-k must be >= 0");
    if (!(p->top_p > 0 && p->top_p <= 1)) return usage("top-p must be in (0, 1]");
    return 0;
}

int ttt_sampler_init(ttt_sampler *s, int vocab, const ttt_sampler_params *p, uint64_t seed)
{
    s->prob = NULL;
    s->idx = NULL;
    if (ttt_sampler_check(p) < 0) return -1;
    if (vocab <= 0) return ttt_seterr("sampler: vocabulary size %d", vocab);
    s->p = *p;
    s->vocab = vocab;
    ttt_rng_seed(&s->rng, seed);
    s->prob = malloc((size_t)vocab * sizeof *s->prob);
    s->idx = malloc((size_t)vocab * sizeof *s->idx);
    if (!s->prob || !s->idx) {
        ttt_sampler_free(s);
        return ttt_seterr("sampler: out of memory");
    }
    return 0;
}

void ttt_sampler_free(ttt_sampler *s)
{
    free(s->prob);
    free(s->idx);
    s->prob = NULL;
    s->idx = NULL;
}

int ttt_sampler_argmax(const real *logits, int n)
{
    int best = 0;
    double bv = -INFINITY;
    for (int i = 0; i < n; i++) {
        double v = logits[i];
        if (v > bv) { bv = v; best = i; }   /* NaN never wins */
    }
    return best;
}

/* qsort context: candidates by descending probability, then ascending id,
 * so that the order (and hence the draw) never depends on the sort. */
static const double *cmp_prob;
static int cmp_desc(const void *a, const void *b)
{
    int i = *(const int *)a, j = *(const int *)b;
    if (cmp_prob[i] > cmp_prob[j]) return -1;
    if (cmp_prob[i] < cmp_prob[j]) return 1;
    return (i > j) - (i < j);
}

int ttt_sampler_sample(ttt_sampler *s, const real *logits)
{
    const int V = s->vocab;
    if (s->p.greedy || s->p.temperature == 0) return ttt_sampler_argmax(logits, V);

    /* softmax(logits / T) in double */
    double mx = -INFINITY;
    for (int i = 0; i < V; i++)
        if (isfinite((double)logits[i]) && logits[i] > mx) mx = logits[i];
    if (mx == -INFINITY) return 0;
    double sum = 0;
    for (int i = 0; i < V; i++) {
        double v = logits[i];
        double e = isfinite(v) ? exp((v - mx) / s->p.temperature) : 0.0;
        s->prob[i] = e;
        sum += e;
    }
    for (int i = 0; i < V; i++) s->prob[i] /= sum;

    /* candidates: all with nonzero probability, or the top-k/top-p set */
    int n = 0;
    int filtered = s->p.top_k > 0 || s->p.top_p < 1;
    if (!filtered) {
        for (int i = 0; i < V; i++) s->idx[n++] = i;
    } else {
        /* For top-p alone, a token below (1-p)/(V-1) can never be inside the
         * nucleus (llama2.c's cut): sort only the rest. */
        double cut = (s->p.top_k == 0 && V > 1) ? (1.0 - s->p.top_p) / (V - 1) : 0.0;
        for (int i = 0; i < V; i++)
            if (s->prob[i] > 0 && s->prob[i] >= cut) s->idx[n++] = i;
        if (n == 0) return ttt_sampler_argmax(logits, V);
        cmp_prob = s->prob;
        qsort(s->idx, n, sizeof *s->idx, cmp_desc);
        if (s->p.top_k > 0 && n > s->p.top_k) n = s->p.top_k;
        if (s->p.top_p < 1) {
            double mass = 0, total = 0;
            for (int i = 0; i < n; i++) total += s->prob[s->idx[i]];
            int keep = n;
            for (int i = 0; i < n; i++) {
                mass += s->prob[s->idx[i]];
                /* relative to the (top-k) mass so that top-k + top-p compose */
                if (mass >= s->p.top_p * total) { keep = i + 1; break; }
            }
            n = keep;
        }
    }

    double mass = 0;
    for (int i = 0; i < n; i++) mass += s->prob[s->idx[i]];
    double u = ttt_rng_uniform(&s->rng) * mass, acc = 0;
    for (int i = 0; i < n; i++) {
        acc += s->prob[s->idx[i]];
        if (u < acc) return s->idx[i];
    }
    return s->idx[n - 1];   /* rounding: u within the last ulp of mass */
}
