/* test_svgplot.c - lib/svgplot: tick choice and a well-formed SVG with one
 * path per series, a legend, escaped labels, log-scaled x. */
#include "check.h"
#include "svgplot.h"

#include <stdlib.h>
#include <string.h>

static int count(const char *hay, const char *needle)
{
    int n = 0;
    for (const char *p = hay; (p = strstr(p, needle)); p++) n++;
    return n;
}

int main(void)
{
    double t[32];
    int n = ttt_plot_ticks_linear(0.13, 0.97, 7, t);
    CHECK(n >= 3 && n <= 7);
    for (int i = 0; i < n; i++) CHECK(t[i] >= 0.13 - 1e-12 && t[i] <= 0.97 + 1e-12);
    CHECK_CLOSE(t[1] - t[0], 0.2, 1e-12, 0);
    n = ttt_plot_ticks_linear(2, 8, 12, t);
    CHECK(n == 7 && t[0] == 2 && t[6] == 8);
    n = ttt_plot_ticks_linear(-1, 1, 5, t);
    CHECK(n == 5 && t[2] == 0 && !signbit(t[2]));

    n = ttt_plot_ticks_log(1, 2048, 12, t);       /* powers of 10 */
    CHECK(n == 4 && t[0] == 1 && t[3] == 1000);
    n = ttt_plot_ticks_log(1, 64, 12, t);         /* < 2 decades: powers of 2 */
    CHECK(n == 7 && t[6] == 64);
    n = ttt_plot_ticks_log(1, 1e12, 5, t);        /* thinned to fit */
    CHECK(n <= 5 && n >= 3 && t[0] == 1);

    double x[5] = { 1, 2.5, 5.5, 11.5, 23.5 }, y1[5] = { 5, 4, 3.5, 3.2, 3.1 };
    double y2[5] = { 5, 4.2, NAN, 3.6, 3.5 };
    ttt_plot_series s[2] = { { "ttt <linear> & co", x, y1, 5 }, { "mlp", x, y2, 5 } };
    ttt_plot_opts o = { "Loss vs token index", "token index", "loss (nats)", 1, 0, 0 };
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    CHECK(ttt_svgplot_write(f, &o, s, 2) == 0);
    fclose(f);
    CHECK(strncmp(buf, "<?xml", 5) == 0);
    CHECK(strstr(buf, "</svg>\n") != NULL);
    CHECK(count(buf, "class=\"series\"") == 2);
    CHECK(strstr(buf, "ttt &lt;linear&gt; &amp; co") != NULL);
    CHECK(strstr(buf, "<linear>") == NULL);
    CHECK(strstr(buf, "(log scale)") != NULL);
    CHECK(strstr(buf, "class=\"legend\"") != NULL);
    CHECK(count(buf, "<circle") == 9);       /* the NaN point is skipped */
    CHECK(strstr(buf, "nan") == NULL && strstr(buf, "inf") == NULL);
    /* the second series' path restarts after the gap */
    const char *p2 = strstr(strstr(buf, "class=\"series\"") + 1, "class=\"series\"");
    CHECK(p2 && strstr(p2, " M") != NULL);
    free(buf);

    /* nothing drawable is an error, not an empty chart */
    double bx[1] = { -1 }, by[1] = { 1 };
    ttt_plot_series bad = { "x", bx, by, 1 };
    f = open_memstream(&buf, &len);
    CHECK(ttt_svgplot_write(f, &o, &bad, 1) == -1);
    fclose(f);
    free(buf);
    return check_exit("test_svgplot");
}
