/* train_sched.h - the outer learning-rate schedule of the recipe (spec
 * section 10): optax.warmup_cosine_decay_schedule(init_value=0,
 * peak_value=peak, warmup_steps=warmup, decay_steps=total, end_value=end).
 *
 *   count <  warmup:  peak * count / warmup
 *   count >= warmup:  peak * ((1-a) * 0.5 * (1 + cos(pi * min(c, d) / d)) + a)
 *                     with c = count - warmup, d = total - warmup, a = end/peak
 *
 * count is the number of updates already applied (0 for the first update,
 * as optax counts), so the first update uses lr 0 when warmup > 0.
 */
#ifndef TTT_TRAIN_SCHED_H
#define TTT_TRAIN_SCHED_H

double ttt_lr_schedule(long long count, double peak, long long warmup, long long total, double end);

#endif
