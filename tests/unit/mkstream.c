/* mkstream.c - test helper (not a unit test): writes a deterministic random
 * token stream (format of lib/tokstream.h) to stdout, so that the ttt-pack
 * and ttt-inspect CLI tests do not depend on a tokenizer. Self-contained on
 * purpose: the bats files compile it with a bare `cc`.
 *
 *   mkstream [-v VOCAB] [-e EOT] [-H HASH] [-s SEED] [-x] NDOCS MAXLEN
 *
 * Document lengths are uniform in 1..MAXLEN tokens (the last is EOT, the
 * default EOT is VOCAB-1); nbytes = 4 x tokens. -x leaves out the end marker.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static uint64_t st = 88172645463325252ull;
static uint64_t rnd(void)
{
    st ^= st << 13; st ^= st >> 7; st ^= st << 17;
    return st;
}

static void put32(unsigned char *p, uint32_t v) { for (int i = 0; i < 4; i++) p[i] = (unsigned char)(v >> 8 * i); }
static void put64(unsigned char *p, uint64_t v) { for (int i = 0; i < 8; i++) p[i] = (unsigned char)(v >> 8 * i); }

int main(int argc, char **argv)
{
    uint32_t vocab = 1000, eot = UINT32_MAX;
    uint64_t hash = 0x0123456789abcdefull;
    int noend = 0, c;
    while ((c = getopt(argc, argv, "v:e:H:s:x")) != -1) {
        switch (c) {
        case 'v': vocab = (uint32_t)strtoul(optarg, NULL, 0); break;
        case 'e': eot = (uint32_t)strtoul(optarg, NULL, 0); break;
        case 'H': hash = strtoull(optarg, NULL, 0); break;
        case 's': st ^= strtoull(optarg, NULL, 0) * 0x9E3779B97F4A7C15ull; if (!st) st = 1; break;
        case 'x': noend = 1; break;
        default: fprintf(stderr, "usage: mkstream [-v VOCAB] [-e EOT] [-H HASH] [-s SEED] [-x] NDOCS MAXLEN\n"); return 2;
        }
    }
    if (argc - optind != 2) { fprintf(stderr, "mkstream: need NDOCS MAXLEN\n"); return 2; }
    uint64_t ndocs = strtoull(argv[optind], NULL, 0), maxlen = strtoull(argv[optind + 1], NULL, 0);
    if (eot == UINT32_MAX) eot = vocab - 1;
    if (!maxlen) maxlen = 1;
    unsigned char h[32] = "\x89TTTSTR\n";
    put32(h + 8, 1);
    put32(h + 12, vocab);
    put64(h + 16, hash);
    put32(h + 24, eot);
    put32(h + 28, 0);
    fwrite(h, 1, 32, stdout);
    unsigned char *buf = malloc(maxlen * 4);
    for (uint64_t d = 0; d < ndocs; d++) {
        uint32_t n = (uint32_t)(1 + rnd() % maxlen);
        unsigned char rec[12];
        put32(rec, n);
        put64(rec + 4, (uint64_t)n * 4);
        fwrite(rec, 1, 12, stdout);
        for (uint32_t i = 0; i + 1 < n; i++) {
            uint32_t t = (uint32_t)(rnd() % vocab);
            put32(buf + 4 * i, t == eot ? 0 : t);
        }
        put32(buf + 4 * (n - 1), eot);
        fwrite(buf, 4, n, stdout);
    }
    if (!noend) {
        unsigned char end[12];
        put32(end, 0xFFFFFFFFu);
        put64(end + 4, ndocs);
        fwrite(end, 1, 12, stdout);
    }
    free(buf);
    return fflush(stdout) ? 1 : 0;
}
