/* ttt-eval - placeholder until its issue lands: prints usage, exits 2. */
#include "cli.h"

#include <stdlib.h>

static const cli_option opts[] = { { 0 } };
static const cli_program prog = {
    "ttt-eval", "ttt-eval [OPTION]...", "Not implemented yet.", opts, NULL,
};

int main(int argc, char **argv)
{
    cli_init(&prog);
    while (cli_next(argc, argv) != -1) {}
    cli_usage_error("not implemented yet");
}
