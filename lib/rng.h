/* rng.h - the one PRNG of the project: xoshiro256** seeded by splitmix64.
 * The state is four words, so runs that save it (training, sampling) resume
 * bit-exactly. */
#ifndef TTT_RNG_H
#define TTT_RNG_H

#include <stdint.h>

typedef struct { uint64_t s[4]; } ttt_rng;

void ttt_rng_seed(ttt_rng *r, uint64_t seed);
uint64_t ttt_rng_u64(ttt_rng *r);
/* Uniform in [0, n) without modulo bias (n > 0). */
uint64_t ttt_rng_below(ttt_rng *r, uint64_t n);
/* Uniform in [0, 1) with 53 random bits. */
double ttt_rng_uniform(ttt_rng *r);
/* Standard normal (Box-Muller, one value per call). */
double ttt_rng_normal(ttt_rng *r);

#endif
