/* err.c - thread-local error message buffer (see err.h). */
#include "err.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static _Thread_local char errbuf[1024];
static _Thread_local int errcls = TTT_ERR_DATA;

int ttt_seterr(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(errbuf, sizeof errbuf, fmt, ap);
    va_end(ap);
    errcls = TTT_ERR_DATA;
    return -1;
}

int ttt_preferr(const char *fmt, ...)
{
    char pre[512], old[sizeof errbuf];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(pre, sizeof pre, fmt, ap);
    va_end(ap);
    memcpy(old, errbuf, sizeof old);
    /* prefix + ": " + old message, cut to the buffer */
    size_t n = strlen(pre);
    if (n > sizeof errbuf - 3) n = sizeof errbuf - 3;
    memcpy(errbuf, pre, n);
    memcpy(errbuf + n, ": ", 2);
    size_t room = sizeof errbuf - n - 3, ol = strlen(old);
    if (ol > room) ol = room;
    memcpy(errbuf + n + 2, old, ol);
    errbuf[n + 2 + ol] = 0;
    return -1;
}

const char *ttt_errmsg(void) { return errbuf; }
int ttt_errclass(void) { return errcls; }
void ttt_seterrclass(int cls) { errcls = cls; }
