/* fuzz_common.h - helpers shared by the libFuzzer targets in tests/fuzz/.
 *
 * Readers that take a path get the fuzz input through a memfd: the bytes are
 * written to an anonymous in-memory file and the reader opens
 * /proc/self/fd/N, so no disk I/O happens per execution and nothing is left
 * behind. stderr is not touched: ASan/UBSan report through fd 2.
 */
#ifndef TTT_FUZZ_COMMON_H
#define TTT_FUZZ_COMMON_H

#define _GNU_SOURCE
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* Writes data[0..n) into a reusable memfd (one per slot) and returns a path
 * that opens it. Aborts if the memfd cannot be made: that is a harness bug. */
static inline const char *fuzz_file(int slot, const uint8_t *data, size_t n)
{
    static int fds[4] = { -1, -1, -1, -1 };
    static char paths[4][64];
    if (fds[slot] < 0) {
        fds[slot] = memfd_create("ttt-fuzz", 0);
        if (fds[slot] < 0) { perror("memfd_create"); abort(); }
        snprintf(paths[slot], sizeof paths[slot], "/proc/self/fd/%d", fds[slot]);
    }
    if (ftruncate(fds[slot], 0) != 0) abort();
    size_t off = 0;
    while (off < n) {
        ssize_t w = pwrite(fds[slot], data + off, n - off, (off_t)off);
        if (w <= 0) abort();
        off += (size_t)w;
    }
    return paths[slot];
}

/* A little-endian u64 taken from the input (for choosing windows). */
static inline uint64_t fuzz_u64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = v << 8 | p[i];
    return v;
}

#endif
