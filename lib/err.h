/* err.h - error reporting for libttt.
 *
 * libttt never prints and never exits. A failing function records one
 * human-readable message (without the program name) and returns -1 or NULL;
 * the command line tools prefix it with their name and decide the exit code.
 * The message buffer is thread-local.
 */
#ifndef TTT_ERR_H
#define TTT_ERR_H

#include <stddef.h>

/* Records a printf-style message; always returns -1 so callers can write
 * `return ttt_seterr("...")`. */
int ttt_seterr(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Prepends "prefix: " to the current message (adds context while unwinding). */
int ttt_preferr(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* The last message recorded in this thread ("" if none). */
const char *ttt_errmsg(void);

/* Error class of the last failure: usage-type errors (bad option value
 * discovered in the library) versus data/runtime errors. */
enum { TTT_ERR_DATA = 1, TTT_ERR_USAGE = 2 };
int ttt_errclass(void);
void ttt_seterrclass(int cls);

#endif
