/* prefetch.h - reads a training step's windows on a background thread while
 * the previous step computes (ttt-train: on a GPU the host would otherwise
 * inflate shard blocks while the device waits). Two buffers
 * alternate: the windows returned by ttt_prefetch_wait stay valid until the
 * second ttt_prefetch_start after it. The dataset must not be used by
 * anyone else while a read is in flight. */
#ifndef TTT_PREFETCH_H
#define TTT_PREFETCH_H

#include <stdint.h>

#include "shard.h"   /* ttt_dataset */

typedef struct ttt_prefetch ttt_prefetch;

/* n windows of T tokens (+1 for the targets) per step; NULL + message. */
ttt_prefetch *ttt_prefetch_new(ttt_dataset *d, int n, int T, uint32_t vocab);

/* Starts reading the windows at starts[0..n) (copied); one read at a time. */
int ttt_prefetch_start(ttt_prefetch *p, const uint64_t *starts);

/* Waits for the read started last: ids and targets [n*T] as ttt_train_read
 * makes them; -1 with the reader's message. */
int ttt_prefetch_wait(ttt_prefetch *p, const int32_t **ids, const int32_t **targets);

/* Waits for a read in flight, then frees. */
void ttt_prefetch_free(ttt_prefetch *p);

#endif
