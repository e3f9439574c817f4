/* eval.c - windowed held-out evaluation (eval.h). */
#include "eval.h"
#include "err.h"      /* ttt_seterr */

#include <math.h>
#include <stdlib.h>
#include <string.h>

int ttt_eval_nbuckets(int T)
{
    int n = 0;
    while ((1L << n) <= T) n++;
    return n;
}

static int bucket_of(int i)   /* i >= 1 */
{
    int b = 0;
    while ((2L << b) <= i) b++;
    return b;
}

void ttt_eval_result_free(ttt_eval_result *r)
{
    free(r->buckets);
    r->buckets = NULL;
}

/* Scores nw windows starting at window w0, each of length Tw (all the same
 * here), tokens read from the dataset; adds to r. */
static int run_batch(ttt_model *m, const ttt_eval_opts *o, ttt_dataset *d, uint64_t w0, int nw, int T, int Tw,
                     int32_t *ids, int32_t *tgt, uint32_t *buf, double *bsum, ttt_eval_result *r)
{
    const int V = ttt_model_config(m)->vocab_size;
    for (int b = 0; b < nw; b++) {
        uint64_t start = (w0 + b) * (uint64_t)T;
        if (ttt_dataset_read(d, start, (size_t)Tw + 1, buf) < 0) return -1;
        for (int t = 0; t <= Tw; t++)
            if (buf[t] >= (uint32_t)V)
                return ttt_seterr("token %u at position %llu is outside the model's vocabulary (%d)",
                                  buf[t], (unsigned long long)(start + t), V);
        for (int t = 0; t < Tw; t++) {
            ids[(size_t)b * Tw + t] = (int32_t)buf[t];
            tgt[(size_t)b * Tw + t] = (int32_t)buf[t + 1];
        }
    }
    double mean;
    const real *lossr = NULL;
    const float *lossf = NULL;
    if (o->forward) {
        if (o->forward(o->fud, ids, tgt, nw, Tw, &lossf) < 0) return -1;
    } else {
        if (ttt_model_forward(m, ids, tgt, nw, Tw, &mean) < 0) return -1;
        lossr = ttt_model_token_losses(m);
    }
#define loss(i) (lossf ? (double)lossf[i] : (double)lossr[i])
    for (int b = 0; b < nw; b++) {
        double ws = 0;   /* window sum first: the order is the same for any B */
        for (int t = 0; t < Tw; t++) {
            double l = loss((size_t)b * Tw + t);
            ws += l;
        }
        r->loss_sum += ws;
        for (int t = 0; t < Tw; t++) {
            int k = bucket_of(t + 1);
            r->buckets[k].count++;
            bsum[k] += loss((size_t)b * Tw + t);
        }
        if (!isfinite(ws)) return ttt_seterr("non-finite loss in window %llu", (unsigned long long)(w0 + b));
    }
#undef loss
    r->windows += nw;
    r->targets += (uint64_t)nw * Tw;
    return 0;
}

int ttt_eval_run(ttt_model *m, ttt_dataset *d, const ttt_eval_opts *o, ttt_eval_result *r)
{
    memset(r, 0, sizeof *r);
    const int T = o->ctx, B = o->batch;
    if (T <= 0 || B <= 0) return ttt_seterr("evaluation: context and batch must be positive");
    uint64_t N = ttt_dataset_tokens(d);
    if (N < 2) return ttt_seterr("the dataset has %llu token(s); at least 2 are needed", (unsigned long long)N);
    uint64_t total = N - 1;                       /* scorable targets */
    uint64_t want = o->max_targets && o->max_targets < total ? o->max_targets : total;
    uint64_t full = want / T;                     /* full windows */
    int last = (int)(want % T);                   /* targets of the short last window */

    r->nbuckets = ttt_eval_nbuckets(T);
    r->buckets = calloc(r->nbuckets, sizeof *r->buckets);
    double *bsum = calloc(r->nbuckets, sizeof *bsum);
    size_t cap = (size_t)B * T;
    int32_t *ids = malloc(cap * sizeof *ids), *tgt = malloc(cap * sizeof *tgt);
    uint32_t *buf = malloc(((size_t)T + 1) * sizeof *buf);
    int rc = -1;
    if (!r->buckets || !bsum || !ids || !tgt || !buf) { ttt_seterr("evaluation: out of memory"); goto out; }
    for (int k = 0; k < r->nbuckets; k++) {
        r->buckets[k].lo = 1 << k;
        r->buckets[k].hi = (2 << k) - 1 < T ? (2 << k) - 1 : T;
    }

    for (uint64_t w = 0; w < full; w += B) {
        int nw = full - w < (uint64_t)B ? (int)(full - w) : B;
        if (run_batch(m, o, d, w, nw, T, T, ids, tgt, buf, bsum, r) < 0) goto out;
        if (o->progress) o->progress(o->ud, r->targets, want);
    }
    if (last > 0) {
        if (run_batch(m, o, d, full, 1, T, last, ids, tgt, buf, bsum, r) < 0) goto out;
        if (o->progress) o->progress(o->ud, r->targets, want);
    }

    r->loss = r->loss_sum / r->targets;
    r->ppl = exp(r->loss);
    double bytes = (double)ttt_dataset_text_bytes(d);
    r->bytes_scaled = r->targets < total;
    r->bytes = r->bytes_scaled ? bytes * ((double)r->targets / total) : bytes;
    r->bpb = r->bytes > 0 ? r->loss_sum / log(2.0) / r->bytes : NAN;
    for (int k = 0; k < r->nbuckets; k++)
        r->buckets[k].loss = r->buckets[k].count ? bsum[k] / r->buckets[k].count : NAN;
    rc = 0;
out:
    free(bsum);
    free(ids);
    free(tgt);
    free(buf);
    if (rc < 0) ttt_eval_result_free(r);
    return rc;
}
