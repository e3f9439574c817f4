/* inspect_tensor.c - tensor statistics and comparison (inspect_tensor.h). */
#include "inspect_tensor.h"
#include "err.h"   /* ttt_seterr */

#include <math.h>
#include <stdio.h>
#include <string.h>

enum { CHUNK = 4096 };

static double half_to_double(uint16_t h)
{
    int e = (h >> 10) & 0x1f, m = h & 0x3ff;
    double v;
    if (e == 0) v = ldexp(m, -24);                       /* subnormal or zero */
    else if (e == 31) v = m ? NAN : INFINITY;
    else v = ldexp(m + 1024, e - 25);
    return (h & 0x8000) ? -v : v;
}

static double bf16_to_double(uint16_t h)
{
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* Little-endian loads through memcpy: tensor data need not be aligned. */
#define LOAD(T, p, i) ({ T v_; memcpy(&v_, (const char *)(p) + (size_t)(i) * sizeof(T), sizeof v_); v_; })

void ttt_inspect_convert(const ttt_st *st, const ttt_st_tensor *t, uint64_t first, uint64_t n, double *out)
{
    const char *p = (const char *)ttt_st_data(st, t) + first * ttt_st_dtype_size(t->dtype);
    for (uint64_t i = 0; i < n; i++) {
        switch (t->dtype) {
        case TTT_ST_F64: out[i] = LOAD(double, p, i); break;
        case TTT_ST_F32: out[i] = LOAD(float, p, i); break;
        case TTT_ST_F16: out[i] = half_to_double(LOAD(uint16_t, p, i)); break;
        case TTT_ST_BF16: out[i] = bf16_to_double(LOAD(uint16_t, p, i)); break;
        case TTT_ST_I64: out[i] = (double)LOAD(int64_t, p, i); break;
        case TTT_ST_I32: out[i] = LOAD(int32_t, p, i); break;
        case TTT_ST_I16: out[i] = LOAD(int16_t, p, i); break;
        case TTT_ST_I8: out[i] = LOAD(int8_t, p, i); break;
        case TTT_ST_U64: out[i] = (double)LOAD(uint64_t, p, i); break;
        case TTT_ST_U32: out[i] = LOAD(uint32_t, p, i); break;
        case TTT_ST_U16: out[i] = LOAD(uint16_t, p, i); break;
        case TTT_ST_U8: out[i] = LOAD(uint8_t, p, i); break;
        case TTT_ST_BOOL: out[i] = LOAD(uint8_t, p, i) != 0; break;
        default: out[i] = NAN; break;
        }
    }
}

void ttt_tstats_of(const ttt_st *st, const ttt_st_tensor *t, ttt_tstats *s)
{
    double buf[CHUNK], sum = 0, sq = 0, lo = INFINITY, hi = -INFINITY;
    uint64_t finite = 0;
    memset(s, 0, sizeof *s);
    s->n = t->numel;
    /* two passes (mean, then squared deviations): no cancellation in std */
    for (uint64_t i = 0; i < t->numel; i += CHUNK) {
        uint64_t n = t->numel - i < CHUNK ? t->numel - i : CHUNK;
        ttt_inspect_convert(st, t, i, n, buf);
        for (uint64_t k = 0; k < n; k++) {
            double x = buf[k];
            if (!isfinite(x)) { s->nonfinite++; continue; }
            finite++;
            sum += x;
            sq += x * x;
            if (x < lo) lo = x;
            if (x > hi) hi = x;
        }
    }
    if (!finite) {
        s->mean = s->std = s->min = s->max = s->norm = NAN;
        return;
    }
    s->mean = sum / (double)finite;
    s->min = lo;
    s->max = hi;
    s->norm = sqrt(sq);
    double dev = 0;
    for (uint64_t i = 0; i < t->numel; i += CHUNK) {
        uint64_t n = t->numel - i < CHUNK ? t->numel - i : CHUNK;
        ttt_inspect_convert(st, t, i, n, buf);
        for (uint64_t k = 0; k < n; k++)
            if (isfinite(buf[k])) dev += (buf[k] - s->mean) * (buf[k] - s->mean);
    }
    s->std = sqrt(dev / (double)finite);
}

void ttt_shape_str(const ttt_st_tensor *t, char *b, size_t n)
{
    size_t k = (size_t)snprintf(b, n, "[");
    for (int d = 0; d < t->ndim && k < n; d++)
        k += (size_t)snprintf(b + k, n - k, "%s%lld", d ? "," : "", (long long)t->shape[d]);
    if (k < n) snprintf(b + k, n - k, "]");
}

int ttt_tdiff_of(const ttt_st *a, const ttt_st_tensor *ta, const ttt_st *b, const ttt_st_tensor *tb, ttt_tdiff *d)
{
    memset(d, 0, sizeof *d);
    int same_shape = ta->ndim == tb->ndim;
    for (int k = 0; same_shape && k < ta->ndim; k++) same_shape = ta->shape[k] == tb->shape[k];
    if (!same_shape) {
        char sa[128], sb[128];
        ttt_shape_str(ta, sa, sizeof sa);
        ttt_shape_str(tb, sb, sizeof sb);
        return ttt_seterr("tensor %s: shape %s against %s", ta->name, sa, sb);
    }
    d->identical = ta->dtype == tb->dtype && ta->end - ta->begin == tb->end - tb->begin &&
                   !memcmp(ttt_st_data(a, ta), ttt_st_data(b, tb), ta->end - ta->begin);
    double x[CHUNK], y[CHUNK], sd = 0, sa = 0, sb = 0;
    for (uint64_t i = 0; i < ta->numel; i += CHUNK) {
        uint64_t n = ta->numel - i < CHUNK ? ta->numel - i : CHUNK;
        ttt_inspect_convert(a, ta, i, n, x);
        ttt_inspect_convert(b, tb, i, n, y);
        for (uint64_t k = 0; k < n; k++) {
            int na = isnan(x[k]), nb = isnan(y[k]);
            if (na && nb) continue;
            if (na || nb) { d->ndiff++; d->max_abs = INFINITY; continue; }
            if (x[k] == y[k]) { if (isfinite(x[k])) { sa += x[k] * x[k]; sb += y[k] * y[k]; } continue; }
            double e = fabs(x[k] - y[k]);
            d->ndiff++;
            if (e > d->max_abs || isnan(e)) d->max_abs = isnan(e) ? INFINITY : e;
            sd += e * e;
            sa += x[k] * x[k];
            sb += y[k] * y[k];
        }
    }
    d->norm_diff = sqrt(sd);
    d->norm_a = sqrt(sa);
    d->norm_b = sqrt(sb);
    double m = d->norm_a > d->norm_b ? d->norm_a : d->norm_b;
    d->rel = d->ndiff == 0 ? 0 : m > 0 ? d->norm_diff / m : INFINITY;
    return 0;
}
