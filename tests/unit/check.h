/* check.h - tiny test macros for tests/unit: every failure is counted and
 * printed, and check_exit() makes main return nonzero if any failed. */
#ifndef TTT_CHECK_H
#define TTT_CHECK_H

#include <math.h>
#include <stdio.h>

static int check_failures, check_count;

#define CHECK(cond) do { check_count++; if (!(cond)) { check_failures++; \
    fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); } } while (0)

#define CHECK_CLOSE(a, b, atol, rtol) do { double a_ = (a), b_ = (b); check_count++; \
    if (!(fabs(a_ - b_) <= (atol) + (rtol) * fabs(b_))) { check_failures++; \
    fprintf(stderr, "%s:%d: CHECK_CLOSE failed: %s = %.17g, %s = %.17g\n", __FILE__, __LINE__, #a, a_, #b, b_); } } while (0)

static inline int check_exit(const char *name)
{
    printf("%s: %d checks, %d failed\n", name, check_count, check_failures);
    return check_failures ? 1 : 0;
}

#endif
