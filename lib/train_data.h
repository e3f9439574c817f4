/* train_data.h - training and validation windows over a token dataset
 * (spec section 10: windows of T+1 tokens, inputs [:-1], targets [1:]),
 * and the unigram entropy of a dataset (the loss a model that learned only
 * token frequencies would reach: the bar a real run must get well below).
 *
 * Random windows start uniformly in [0, N-T-1] and consume exactly B draws
 * of ttt_rng_below(), so the sequence is a function of the generator state:
 * saving that state makes a resumed run draw the same windows.
 */
#ifndef TTT_TRAIN_DATA_H
#define TTT_TRAIN_DATA_H

#include <stdint.h>

#include "rng.h"     /* ttt_rng */
#include "shard.h"   /* ttt_dataset */

/* ids, targets [B,T]; scratch holds T+1 tokens. Tokens >= vocab are an
 * error naming the dataset position. 0 or -1. */
int ttt_train_sample(ttt_dataset *d, ttt_rng *r, int B, int T, uint32_t vocab,
                     int32_t *ids, int32_t *targets, uint32_t *scratch);

/* The same windows as ttt_train_sample in two halves, for data-parallel
 * runs: ttt_train_draw makes the B draws of one step (the generator
 * advances exactly as in ttt_train_sample) into starts[B]; every rank draws
 * the whole global batch and ttt_train_read reads only its slice
 * (ttt_train_slice). ids, targets [n,T]. 0 or -1. */
int ttt_train_draw(const ttt_dataset *d, ttt_rng *r, int B, int T, uint64_t *starts);
int ttt_train_read(ttt_dataset *d, const uint64_t *starts, int n, int T, uint32_t vocab,
                   int32_t *ids, int32_t *targets, uint32_t *scratch);

/* Rank r of N takes windows [r*B/N, (r+1)*B/N) of a global batch of B
 * (B divisible by N: every rank's loss is a mean over equally many tokens,
 * so the mean of the rank means is the global mean). */
static inline void ttt_train_slice(int B, int rank, int size, int *first, int *count)
{
    *first = (int)((long long)rank * B / size);
    *count = (int)((long long)(rank + 1) * B / size) - *first;
}

/* Validation window w: tokens [w*T, w*T+T] (consecutive windows overlap by
 * one token, so every token after the first is predicted exactly once).
 * ids, targets [T]. 0 or -1. */
int ttt_train_window(ttt_dataset *d, uint64_t w, int T, uint32_t vocab,
                     int32_t *ids, int32_t *targets, uint32_t *scratch);

/* How many validation windows of T fit in the dataset. */
uint64_t ttt_train_num_windows(const ttt_dataset *d, int T);

/* Entropy in nats of the token frequencies of the first max_tokens tokens
 * (all if fewer). 0 or -1. */
int ttt_unigram_entropy(ttt_dataset *d, uint64_t max_tokens, uint32_t vocab, double *out);

#endif
