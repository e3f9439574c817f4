/* train_data.c - training/validation windows and unigram entropy
 * (train_data.h). */
#include "train_data.h"
#include "err.h"   /* ttt_seterr */

#include <math.h>
#include <stdlib.h>

static int split(const uint32_t *w, int T, uint32_t vocab, uint64_t start, int32_t *ids, int32_t *targets)
{
    for (int t = 0; t <= T; t++)
        if (w[t] >= vocab)
            return ttt_seterr("token %u at position %llu is outside the vocabulary (%u)", w[t],
                              (unsigned long long)(start + t), vocab);
    for (int t = 0; t < T; t++) {
        ids[t] = (int32_t)w[t];
        targets[t] = (int32_t)w[t + 1];
    }
    return 0;
}

int ttt_train_sample(ttt_dataset *d, ttt_rng *r, int B, int T, uint32_t vocab,
                     int32_t *ids, int32_t *targets, uint32_t *scratch)
{
    uint64_t n = ttt_dataset_tokens(d);
    if (n < (uint64_t)T + 1)
        return ttt_seterr("dataset has %llu tokens, a window needs %d", (unsigned long long)n, T + 1);
    for (int b = 0; b < B; b++) {
        uint64_t start = ttt_rng_below(r, n - (uint64_t)T);
        if (ttt_dataset_read(d, start, (size_t)T + 1, scratch) < 0) return -1;
        if (split(scratch, T, vocab, start, ids + (size_t)b * T, targets + (size_t)b * T) < 0) return -1;
    }
    return 0;
}

int ttt_train_draw(const ttt_dataset *d, ttt_rng *r, int B, int T, uint64_t *starts)
{
    uint64_t n = ttt_dataset_tokens(d);
    if (n < (uint64_t)T + 1)
        return ttt_seterr("dataset has %llu tokens, a window needs %d", (unsigned long long)n, T + 1);
    for (int b = 0; b < B; b++) starts[b] = ttt_rng_below(r, n - (uint64_t)T);
    return 0;
}

int ttt_train_read(ttt_dataset *d, const uint64_t *starts, int n, int T, uint32_t vocab,
                   int32_t *ids, int32_t *targets, uint32_t *scratch)
{
    for (int b = 0; b < n; b++) {
        if (ttt_dataset_read(d, starts[b], (size_t)T + 1, scratch) < 0) return -1;
        if (split(scratch, T, vocab, starts[b], ids + (size_t)b * T, targets + (size_t)b * T) < 0) return -1;
    }
    return 0;
}

uint64_t ttt_train_num_windows(const ttt_dataset *d, int T)
{
    uint64_t n = ttt_dataset_tokens(d);
    return n < 2 ? 0 : (n - 1) / (uint64_t)T;
}

int ttt_train_window(ttt_dataset *d, uint64_t w, int T, uint32_t vocab,
                     int32_t *ids, int32_t *targets, uint32_t *scratch)
{
    uint64_t start = w * (uint64_t)T;
    if (ttt_dataset_read(d, start, (size_t)T + 1, scratch) < 0) return -1;
    return split(scratch, T, vocab, start, ids, targets);
}

int ttt_unigram_entropy(ttt_dataset *d, uint64_t max_tokens, uint32_t vocab, double *out)
{
    uint64_t n = ttt_dataset_tokens(d);
    if (n > max_tokens) n = max_tokens;
    uint64_t *cnt = calloc(vocab ? vocab : 1, sizeof *cnt);
    uint32_t *buf = malloc(65536 * sizeof *buf);
    if (!cnt || !buf) { free(cnt); free(buf); return ttt_seterr("out of memory"); }
    for (uint64_t pos = 0; pos < n;) {
        size_t k = n - pos < 65536 ? (size_t)(n - pos) : 65536;
        if (ttt_dataset_read(d, pos, k, buf) < 0) { free(cnt); free(buf); return -1; }
        for (size_t i = 0; i < k; i++)
            if (buf[i] < vocab) cnt[buf[i]]++;
        pos += k;
    }
    double h = 0;
    for (uint32_t v = 0; v < vocab; v++)
        if (cnt[v]) {
            double p = (double)cnt[v] / (double)n;
            h -= p * log(p);
        }
    free(cnt); free(buf);
    *out = h;
    return 0;
}
