/* svgplot.c - line charts as SVG (svgplot.h). */
#include "svgplot.h"
#include "err.h"      /* ttt_seterr */

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define MAXTICKS 32

static const char *palette[] = {
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd",
    "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf",
};

int ttt_plot_ticks_linear(double lo, double hi, int max, double *ticks)
{
    if (max < 1) return 0;
    if (!(hi > lo)) { ticks[0] = lo; return 1; }
    double raw = (hi - lo) / (max > 1 ? max - 1 : 1);
    double mag = pow(10, floor(log10(raw)));
    double step = mag;
    static const double mult[] = { 1, 2, 5, 10 };
    for (int i = 0; i < 4; i++) {
        step = mult[i] * mag;
        if ((floor(hi / step) - ceil(lo / step) + 1) <= max) break;
    }
    int n = 0;
    for (double k = ceil(lo / step - 1e-9); k * step <= hi + step * 1e-9 && n < max; k++) {
        double v = k * step;
        if (fabs(v) < step * 1e-9) v = 0;   /* no "-0" */
        ticks[n++] = v;
    }
    return n;
}

int ttt_plot_ticks_log(double lo, double hi, int max, double *ticks)
{
    if (!(lo > 0) || !(hi >= lo) || max < 1) return 0;
    double base = (hi / lo < 100) ? 2 : 10;
    double k0 = ceil(log(lo) / log(base) - 1e-9);
    double k1 = floor(log(hi) / log(base) + 1e-9);
    int every = 1;
    while ((k1 - k0) / every + 1 > max) every++;
    int n = 0;
    for (double k = k0; k <= k1 && n < max; k += every) ticks[n++] = pow(base, k);
    if (n == 0) ticks[n++] = lo;   /* range inside one step: label its start */
    return n;
}

static void xml_text(FILE *f, const char *s)
{
    for (; s && *s; s++) {
        switch (*s) {
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '&': fputs("&amp;", f); break;
        case '"': fputs("&quot;", f); break;
        default:
            /* control bytes are not allowed in XML 1.0 */
            if ((unsigned char)*s < 0x20 && *s != '\t') fputc(' ', f);
            else fputc(*s, f);
        }
    }
}

/* Tick label: integers plainly ("1", "1024", "16k" for round thousands),
 * otherwise %g with up to 4 significant digits. */
static void tick_label(char *buf, size_t n, double v)
{
    if (v == floor(v) && fabs(v) < 1e15) {
        long long i = (long long)v;
        if (i != 0 && i % 1000000 == 0) snprintf(buf, n, "%lldM", i / 1000000);
        else if (i != 0 && i % 1000 == 0 && llabs(i) >= 10000) snprintf(buf, n, "%lldk", i / 1000);
        else snprintf(buf, n, "%lld", i);
    } else {
        snprintf(buf, n, "%.4g", v);
    }
}

static int usable(double x, double y, int logx)
{
    return isfinite(x) && isfinite(y) && (!logx || x > 0);
}

int ttt_svgplot_write(FILE *f, const ttt_plot_opts *o, const ttt_plot_series *s, int ns)
{
    int W = o->width > 0 ? o->width : 720, H = o->height > 0 ? o->height : 450;
    double xmin = INFINITY, xmax = -INFINITY, ymin = INFINITY, ymax = -INFINITY;
    for (int k = 0; k < ns; k++)
        for (int i = 0; i < s[k].n; i++) {
            double x = s[k].x[i], y = s[k].y[i];
            if (!usable(x, y, o->logx)) continue;
            if (x < xmin) xmin = x;
            if (x > xmax) xmax = x;
            if (y < ymin) ymin = y;
            if (y > ymax) ymax = y;
        }
    if (!(xmin <= xmax)) return ttt_seterr("plot: no point to draw");

    /* axis ranges: ticks, then the range widened to the outer ticks (y) */
    double xt[MAXTICKS], yt[MAXTICKS];
    if (ymax == ymin) { ymin -= 0.5; ymax += 0.5; }
    int nyt = ttt_plot_ticks_linear(ymin, ymax, 7, yt);
    double ystep = nyt > 1 ? yt[1] - yt[0] : 1;
    double y0 = floor(ymin / ystep) * ystep, y1 = ceil(ymax / ystep) * ystep;
    nyt = ttt_plot_ticks_linear(y0, y1, 12, yt);
    double x0 = xmin, x1 = xmax;
    int nxt;
    if (o->logx) {
        if (x1 == x0) { x0 /= 2; x1 *= 2; }
        nxt = ttt_plot_ticks_log(x0, x1, 12, xt);
    } else {
        if (x1 == x0) { x0 -= 0.5; x1 += 0.5; }
        nxt = ttt_plot_ticks_linear(x0, x1, 9, xt);
    }

    /* plot area */
    const double L = 70, R = W - 20, T = o->title ? 40 : 20, B = H - 55;
    double lx0 = o->logx ? log10(x0) : x0, lx1 = o->logx ? log10(x1) : x1;
#define PX(x) (L + ((o->logx ? log10(x) : (x)) - lx0) / (lx1 - lx0) * (R - L))
#define PY(y) (B - ((y) - y0) / (y1 - y0) * (B - T))

    fprintf(f, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
               "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
               "viewBox=\"0 0 %d %d\" font-family=\"sans-serif\" font-size=\"12\">\n", W, H, W, H);
    fprintf(f, "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n");
    if (o->title) {
        fprintf(f, "<text x=\"%.1f\" y=\"22\" text-anchor=\"middle\" font-size=\"15\">", (L + R) / 2);
        xml_text(f, o->title);
        fputs("</text>\n", f);
    }
    /* grid and ticks */
    fputs("<g stroke=\"#e0e0e0\" stroke-width=\"1\">\n", f);
    for (int i = 0; i < nyt; i++) fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>\n", L, PY(yt[i]), R, PY(yt[i]));
    for (int i = 0; i < nxt; i++) fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>\n", PX(xt[i]), T, PX(xt[i]), B);
    fputs("</g>\n", f);
    fprintf(f, "<g stroke=\"black\" stroke-width=\"1\" fill=\"none\">\n"
               "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>\n"
               "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>\n", L, B, R, B, L, T, L, B);
    for (int i = 0; i < nyt; i++) fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>\n", L - 5, PY(yt[i]), L, PY(yt[i]));
    for (int i = 0; i < nxt; i++) fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>\n", PX(xt[i]), B, PX(xt[i]), B + 5);
    fputs("</g>\n<g class=\"ticklabels\">\n", f);
    char buf[64];
    for (int i = 0; i < nyt; i++) {
        tick_label(buf, sizeof buf, yt[i]);
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%s</text>\n", L - 8, PY(yt[i]) + 4, buf);
    }
    for (int i = 0; i < nxt; i++) {
        tick_label(buf, sizeof buf, xt[i]);
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%s</text>\n", PX(xt[i]), B + 19, buf);
    }
    fputs("</g>\n", f);
    fprintf(f, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">", (L + R) / 2, H - 12);
    xml_text(f, o->xlabel);
    fprintf(f, "%s</text>\n", o->logx ? " (log scale)" : "");
    fprintf(f, "<text transform=\"translate(18 %.1f) rotate(-90)\" text-anchor=\"middle\">", (T + B) / 2);
    xml_text(f, o->ylabel);
    fputs("</text>\n", f);

    /* series: one path each, "M" again after a skipped point */
    for (int k = 0; k < ns; k++) {
        const char *col = palette[k % (int)(sizeof palette / sizeof palette[0])];
        fprintf(f, "<path class=\"series\" fill=\"none\" stroke=\"%s\" stroke-width=\"2\" d=\"", col);
        int pen = 0;
        for (int i = 0; i < s[k].n; i++) {
            double x = s[k].x[i], y = s[k].y[i];
            if (!usable(x, y, o->logx)) { pen = 0; continue; }
            fprintf(f, "%s%.2f %.2f", pen ? " L" : (i ? " M" : "M"), PX(x), PY(y));
            pen = 1;
        }
        fputs("\"/>\n", f);
        for (int i = 0; i < s[k].n; i++)
            if (usable(s[k].x[i], s[k].y[i], o->logx))
                fprintf(f, "<circle cx=\"%.2f\" cy=\"%.2f\" r=\"2.5\" fill=\"%s\"/>\n", PX(s[k].x[i]), PY(s[k].y[i]), col);
    }
    /* legend, top right */
    if (ns > 0) {
        size_t wmax = 0;
        for (int k = 0; k < ns; k++) {
            size_t n = s[k].label ? strlen(s[k].label) : 0;
            if (n > wmax) wmax = n;
        }
        double lw = 34 + 7.0 * (wmax > 60 ? 60 : wmax), lh = 8 + 18.0 * ns;
        double lx = R - lw - 8, ly = T + 8;
        fprintf(f, "<g class=\"legend\">\n<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" "
                   "fill=\"white\" fill-opacity=\"0.85\" stroke=\"#999\"/>\n", lx, ly, lw, lh);
        for (int k = 0; k < ns; k++) {
            const char *col = palette[k % (int)(sizeof palette / sizeof palette[0])];
            double yy = ly + 16 + 18.0 * k;
            fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" stroke-width=\"2\"/>\n",
                    lx + 6, yy - 4, lx + 26, yy - 4, col);
            fprintf(f, "<text x=\"%.1f\" y=\"%.1f\">", lx + 30, yy);
            xml_text(f, s[k].label);
            fputs("</text>\n", f);
        }
        fputs("</g>\n", f);
    }
    fputs("</svg>\n", f);
#undef PX
#undef PY
    if (ferror(f)) return ttt_seterr("plot: write error");
    return 0;
}
