/* cli.c - option table driven argument parsing and error exits (cli.h). */
#include "cli.h"
#include "../lib/err.h"
#include "../lib/io.h"
#include "config.h"   /* build configuration written by the Makefile */

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define TTT_VERSION "0.1.0"

static const cli_program *prog;
int cli_verbosity = 1;

static struct option *longopts;
static char shortopts[256];

static void check_stdout_at_exit(void)
{
    if (fflush(stdout) != 0 || ferror(stdout)) {
        if (errno == EPIPE) _exit(0);
        fprintf(stderr, "%s: write error on standard output: %s\n", prog->name, strerror(errno));
        _exit(1);
    }
}

void cli_init(const cli_program *p)
{
    prog = p;
    signal(SIGPIPE, SIG_IGN);
    atexit(check_stdout_at_exit);
    size_t n = 0;
    while (p->opts[n].name) n++;
    longopts = calloc(n + 5, sizeof *longopts);
    char *s = shortopts;
    *s++ = ':';
    *s++ = 'h';
    *s++ = 'V';
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        const cli_option *o = &p->opts[i];
        longopts[k++] = (struct option){ o->name, o->has_arg, NULL, o->key };
        if (o->key > 0 && o->key < 256) {
            *s++ = (char)o->key;
            if (o->has_arg == required_argument) *s++ = ':';
        }
    }
    longopts[k++] = (struct option){ "help", no_argument, NULL, 'h' };
    longopts[k++] = (struct option){ "version", no_argument, NULL, 'V' };
    longopts[k++] = (struct option){ "list-options", no_argument, NULL, 1000 };
    longopts[k++] = (struct option){ "describe-options", no_argument, NULL, 1001 };
    *s = 0;
}

const char *cli_prog(void) { return prog ? prog->name : "ttt"; }

static void print_help(void)
{
    printf("Usage: %s\n\n%s\n\nOptions:\n", prog->usage, prog->summary);
    for (const cli_option *o = prog->opts; o->name; o++) {
        char left[96];
        int n = 0;
        if (o->key > 0 && o->key < 256) n = snprintf(left, sizeof left, "  -%c, --%s", o->key, o->name);
        else n = snprintf(left, sizeof left, "      --%s", o->name);
        if (o->arg && n < (int)sizeof left) snprintf(left + n, sizeof left - n, " %s", o->arg);
        if (strlen(left) > 28) printf("%s\n%30s%s\n", left, "", o->help);
        else printf("%-30s%s\n", left, o->help);
    }
    printf("%-30s%s\n", "  -h, --help", "print this help and exit");
    printf("%-30s%s\n", "  -V, --version", "print the version (with -v: the build configuration)");
    if (prog->epilog) printf("\n%s\n", prog->epilog);
    printf("\nExit status: 0 success, 1 data or runtime error, 2 usage error.\n"
           "See %s(1), ttt(7), ttt-formats(5).\n", prog->name);
}

static void print_version(int argc, char **argv)
{
    printf("%s %s\n", prog->name, TTT_VERSION);
    int verbose = 0;
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "-v") || !strcmp(argv[i], "--verbose")) verbose = 1;
    if (verbose) printf("%s", TTT_BUILD_CONFIG);
}

int cli_next(int argc, char **argv)
{
    for (;;) {
        int c = getopt_long(argc, argv, shortopts, longopts, NULL);
        switch (c) {
        case 'h': print_help(); exit(0);
        case 'V': print_version(argc, argv); exit(0);
        case 1000:
            for (const cli_option *o = prog->opts; o->name; o++) {
                if (o->key > 0 && o->key < 256) printf("-%c\n", o->key);
                printf("--%s\n", o->name);
            }
            printf("-h\n--help\n-V\n--version\n");
            exit(0);
        case 1001:
            /* hidden: SHORT<TAB>LONG<TAB>ARG<TAB>HELP per option, read by completions/gen-zsh.sh */
            for (const cli_option *o = prog->opts; o->name; o++)
                printf("%c\t%s\t%s\t%s\n", o->key > 0 && o->key < 256 ? o->key : '-', o->name,
                       o->arg ? o->arg : "-", o->help);
            exit(0);
        case ':':
            cli_usage_error("option '%s' needs a value", argv[optind - 1]);
        case '?':
            if (optopt && optopt < 256) cli_usage_error("unknown option '-%c'", optopt);
            cli_usage_error("unknown option '%s'", argv[optind - 1]);
        default:
            return c;
        }
    }
}

static void vmsg(const char *kind, const char *fmt, va_list ap)
{
    fflush(stdout);
    fprintf(stderr, "%s: %s", cli_prog(), kind);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
}

void cli_usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vmsg("", fmt, ap);
    va_end(ap);
    fprintf(stderr, "Try '%s --help' for more information.\n", cli_prog());
    ttt_atomic_abort_all();
    exit(2);
}

void cli_die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vmsg("", fmt, ap);
    va_end(ap);
    ttt_atomic_abort_all();
    exit(1);
}

void cli_die_lib(void)
{
    if (ttt_errclass() == TTT_ERR_USAGE) cli_usage_error("%s", ttt_errmsg());
    cli_die("%s", ttt_errmsg());
}

void cli_warn(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vmsg("warning: ", fmt, ap);
    va_end(ap);
}

void cli_hint(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vmsg("hint: ", fmt, ap);
    va_end(ap);
}

long long cli_count(const char *opt, const char *s, long long min, long long max)
{
    char *end;
    errno = 0;
    long double v = strtold(s, &end);
    long double mult = 1;
    if (end != s) {
        if (*end == 'k' || *end == 'K') { mult = 1e3; end++; }
        else if (*end == 'M') { mult = 1e6; end++; }
        else if (*end == 'G') { mult = 1e9; end++; }
    }
    if (end == s || *end || errno || !isfinite((double)v)) cli_usage_error("%s: invalid number '%s'", opt, s);
    v *= mult;
    if (v != floorl(v)) cli_usage_error("%s: '%s' is not a whole number", opt, s);
    if (v < min || v > max) cli_usage_error("%s: %s is out of range (%lld..%lld)", opt, s, min, max);
    return (long long)v;
}

double cli_double(const char *opt, const char *s, double min, double max)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || *end || errno || !isfinite(v)) cli_usage_error("%s: invalid number '%s'", opt, s);
    if (v < min || v > max) cli_usage_error("%s: %s is out of range (%g..%g)", opt, s, min, max);
    return v;
}

int cli_enum(const char *opt, const char *s, const char *const *choices)
{
    char list[256] = "";
    for (int i = 0; choices[i]; i++) {
        if (!strcmp(s, choices[i])) return i;
        strncat(list, i ? ", " : "", sizeof list - strlen(list) - 1);
        strncat(list, choices[i], sizeof list - strlen(list) - 1);
    }
    cli_usage_error("%s: invalid value '%s' (expected one of: %s)", opt, s, list);
}

void cli_refuse_tty_binary(int force)
{
    if (!force && isatty(STDOUT_FILENO))
        cli_die("stdout is a terminal, refusing to write binary tokens (use -f to force, or redirect)");
}

void cli_check_stdout(void)
{
    if (ferror(stdout)) {
        if (errno == EPIPE) _exit(0);
        /* _exit, not exit: the at-exit check would report the same error again */
        fprintf(stderr, "%s: write error on standard output: %s\n", cli_prog(), strerror(errno));
        ttt_atomic_abort_all();
        _exit(1);
    }
}
