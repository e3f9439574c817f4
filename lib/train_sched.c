/* train_sched.c - warm-up + cosine decay learning rate (train_sched.h). */
#include "train_sched.h"

#include <math.h>

double ttt_lr_schedule(long long count, double peak, long long warmup, long long total, double end)
{
    if (count < 0) count = 0;
    if (warmup > 0 && count < warmup) return peak * (double)count / (double)warmup;
    long long d = total - warmup;
    if (d <= 0 || peak == 0) return peak;   /* no decay phase */
    double c = (double)(count - warmup);
    if (c > d) c = (double)d;
    double a = end / peak;
    return peak * ((1 - a) * 0.5 * (1 + cos(M_PI * c / (double)d)) + a);
}
