/* io.h - file helpers shared by every tool: atomic output files and
 * whole-file reads with "-" meaning stdin.
 *
 * Atomic outputs are written to ".NAME.tmp.PID" in the destination's
 * directory, then flushed, fsync'ed and renamed over NAME, and the directory
 * is fsync'ed; a process killed at any moment leaves either the old file or
 * the complete new one under NAME, never a partial one.
 */
#ifndef TTT_IO_H
#define TTT_IO_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef struct {
    char *path;  /* final name */
    char *tmp;   /* temporary name in the same directory */
    FILE *f;     /* open for writing while the file is pending */
} ttt_atomic;

/* Opens a temporary file next to path. Returns 0, or -1 with ttt_errmsg. */
int ttt_atomic_open(ttt_atomic *a, const char *path);
/* Flushes, fsyncs and renames into place; closes in every case. */
int ttt_atomic_commit(ttt_atomic *a);
/* Discards the temporary file (safe to call after a failed commit). */
void ttt_atomic_abort(ttt_atomic *a);
/* Removes every pending temporary file of this process (signal handlers). */
void ttt_atomic_abort_all(void);

/* Reads a whole file ("-" = stdin) into a malloc'ed buffer with one extra
 * NUL byte after the data. Returns 0 or -1 with ttt_errmsg naming the file. */
int ttt_read_file(const char *path, char **buf, size_t *len);

/* fwrite that records "PATH: write error: strerror" on failure. */
int ttt_fwrite(FILE *f, const void *p, size_t n, const char *path);

/* Recognises well-known foreign formats by their first bytes; returns a
 * short name ("gzip", "zstd", "safetensors", "GGUF", "llm.c .bin", ...)
 * or NULL. */
const char *ttt_foreign_format(const unsigned char *head, size_t n);

#endif
