/* fuzz_cli_num.c - libFuzzer target for the option number parsers in
 * cmd/cli.c (cli_count, cli_double, cli_enum). They exit(2) on bad input,
 * so this target is linked with -Wl,--wrap=exit and __wrap_exit jumps back
 * here instead of ending the process: the real code is under test, not a
 * copy. Properties: an accepted value is inside [min, max], a count is a
 * whole number. */
#include "fuzz_common.h"
#include "cli.h"

#include <limits.h>
#include <math.h>
#include <setjmp.h>

static jmp_buf back;
static int exit_status;
static int armed;   /* only exits from the parsers jump back; libFuzzer's own exit is real */
static const cli_option no_opts[] = { { NULL, 0, 0, NULL, NULL } };
static const cli_program prog = { "ttt-fuzz", "", "", no_opts, NULL };

void __real_exit(int status);
void __wrap_exit(int status)
{
    if (!armed) __real_exit(status);
    armed = 0;
    exit_status = status;
    longjmp(back, 1);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    /* The usage messages go to a sink; sanitizer reports use fd 2 directly. */
    stderr = fopen("/dev/null", "w");
    cli_init(&prog);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 256) return 0;
    char s[257];
    memcpy(s, data + 1, size - 1);
    s[size - 1] = 0;
    static const long long lo[] = { 0, 1, -1000, LLONG_MIN, 0 };
    static const long long hi[] = { LLONG_MAX, 1000000, 1000, LLONG_MAX, 0 };
    int k = data[0] % 5;
    armed = 1;
    if (setjmp(back) == 0) {
        long long v = cli_count("--n", s, lo[k], hi[k]);
        if (v < lo[k] || v > hi[k]) abort();
    } else if (exit_status != 2) abort();
    armed = 1;
    if (setjmp(back) == 0) {
        double d = cli_double("--x", s, -1.0, 1e300);
        if (!(d >= -1.0 && d <= 1e300)) abort();
    } else if (exit_status != 2) abort();
    static const char *const choices[] = { "text", "jsonl", NULL };
    armed = 1;
    if (setjmp(back) == 0) {
        int i = cli_enum("--format", s, choices);
        if (i < 0 || i > 1 || strcmp(s, choices[i])) abort();
    } else if (exit_status != 2) abort();
    armed = 0;
    return 0;
}
