/* cli.h - what every ttt-* program shares: one option table that drives
 * getopt_long, --help, the hidden --list-options (read by the completion
 * and man page drift test), --version; error exits; number parsing; stdout
 * handling. This lives in cmd/ because it may exit(); lib/ never does.
 *
 * Exit codes: 0 success, 1 data/runtime failure, 2 usage error,
 * 130 interrupted (ttt-train after saving).
 */
#ifndef TTT_CLI_H
#define TTT_CLI_H

#include <getopt.h>
#include <stdio.h>

typedef struct {
    const char *name;     /* long option without "--" */
    int key;              /* short option letter, or a unique value >= 256 */
    int has_arg;          /* no_argument or required_argument */
    const char *arg;      /* metavariable for --help ("FILE", "N"), NULL if none */
    const char *help;     /* one line for --help */
} cli_option;

typedef struct {
    const char *name;       /* "ttt-pack" */
    const char *usage;      /* synopsis lines after "Usage: " (may hold '\n') */
    const char *summary;    /* paragraph printed under the synopsis */
    const cli_option *opts; /* terminated by an entry with name == NULL */
    const char *epilog;     /* optional text after the option list */
} cli_program;

/* Sets the program for messages; ignores SIGPIPE (EPIPE ends quietly) and
 * registers the stdout check at exit. */
void cli_init(const cli_program *p);
const char *cli_prog(void);

/* getopt_long over the table. Handles -h/--help, -V/--version (with -v:
 * build configuration), --list-options, and unknown options / missing
 * arguments (usage error, exit 2). Returns the option key, or -1 when done
 * (optind then indexes the operands). */
int cli_next(int argc, char **argv);

_Noreturn void cli_usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
_Noreturn void cli_die(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Dies with the library's last message (exit 2 if it was a usage error). */
_Noreturn void cli_die_lib(void);
void cli_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* "prog: hint: ..." */
void cli_hint(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Number parsing: a usage error (exit 2) names the option when the value is
 * malformed or outside [min, max]. Counts accept k/M/G (x1000). */
long long cli_count(const char *opt, const char *s, long long min, long long max);
double cli_double(const char *opt, const char *s, double min, double max);
/* Index of s in the NULL-terminated list, else a usage error listing them. */
int cli_enum(const char *opt, const char *s, const char *const *choices);

/* Refuses binary output to a terminal unless forced (exit 1 style of zstd). */
void cli_refuse_tty_binary(int force);
/* Checks stdout after writing a chunk: EPIPE ends the program quietly with
 * status 0, another error dies with status 1. */
void cli_check_stdout(void);

/* Verbosity shared by the tools: -q lowers, -v raises (default 1). */
extern int cli_verbosity;

#endif
