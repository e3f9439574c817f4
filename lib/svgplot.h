/* svgplot.h - a line chart as a standalone SVG document: axes with ticks
 * and labels, optional log-scaled x axis, several series with a legend.
 * Used by `ttt-eval --plot` for the loss-vs-token-index figure.
 *
 * Plain C and stdio, no dependency. Points with a non-finite coordinate (or
 * x <= 0 on a log axis) are skipped and break the line. Writes to a FILE the
 * caller opened (the tools use ttt_atomic for the final name).
 */
#ifndef TTT_SVGPLOT_H
#define TTT_SVGPLOT_H

#include <stdio.h>

typedef struct {
    const char *label;     /* legend text (XML-escaped on output) */
    const double *x, *y;   /* [n] */
    int n;
} ttt_plot_series;

typedef struct {
    const char *title;     /* may be NULL */
    const char *xlabel, *ylabel;
    int logx;              /* log10-scaled x axis */
    int width, height;     /* pixels; 0 = 720 x 450 */
} ttt_plot_opts;

/* 0, or -1 with a message (no drawable point, write error). */
int ttt_svgplot_write(FILE *f, const ttt_plot_opts *o, const ttt_plot_series *s, int ns);

/* Nice linear tick positions covering [lo, hi]: at most max ticks, step
 * 1, 2 or 5 x 10^k. Returns the count written to ticks. Exposed for tests. */
int ttt_plot_ticks_linear(double lo, double hi, int max, double *ticks);
/* Log ticks in [lo, hi] (lo > 0): powers of 10, or of 2 when the range is
 * under two decades. Returns the count written (at most max). */
int ttt_plot_ticks_log(double lo, double hi, int max, double *ticks);

#endif
