/* pretok.c - GPT-2 pre-tokenization with PCRE2 (see pretok.h).
 *
 * Pure ASCII stretches take a hand-written path that implements the same
 * pattern (the unit test checks it against PCRE2 on random strings); the
 * first non-ASCII byte of a piece hands that piece to PCRE2.
 */
#define PCRE2_CODE_UNIT_WIDTH 8
#include "pretok.h"
#include "err.h"

#include <pcre2.h>
#include <stdlib.h>
#include <string.h>

#define GPT2_PATTERN "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+"

struct ttt_pretok {
    pcre2_code *re;
    pcre2_match_data *md;
    int jit;
    int ascii_fast;   /* 0 forces PCRE2 for everything (tests) */
};

ttt_pretok *ttt_pretok_new(void)
{
    int ec;
    PCRE2_SIZE eo;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)GPT2_PATTERN, PCRE2_ZERO_TERMINATED,
                                   PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF, &ec, &eo, NULL);
    if (!re) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(ec, msg, sizeof msg);
        ttt_seterr("PCRE2: cannot compile the GPT-2 pattern: %s", (char *)msg);
        return NULL;
    }
    ttt_pretok *p = calloc(1, sizeof *p);
    if (!p) { pcre2_code_free(re); ttt_seterr("out of memory"); return NULL; }
    p->re = re;
    p->jit = pcre2_jit_compile(re, PCRE2_JIT_COMPLETE) == 0;
    p->md = pcre2_match_data_create(1, NULL);
    p->ascii_fast = getenv("TTT_PRETOK_NO_FAST") == NULL;
    if (!p->md) { ttt_pretok_free(p); ttt_seterr("out of memory"); return NULL; }
    return p;
}

void ttt_pretok_free(ttt_pretok *p)
{
    if (!p) return;
    pcre2_match_data_free(p->md);
    pcre2_code_free(p->re);
    free(p);
}

/* ---- ASCII fast path ---- */

/* ASCII classes under the pattern: letter, digit, whitespace (\s in UCP
 * mode: \t \n \v \f \r and space), other. */
enum { C_L = 1, C_N = 2, C_S = 3, C_O = 4 };
static unsigned char cls[128];
static void init_cls(void)
{
    for (int c = 0; c < 128; c++) {
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) cls[c] = C_L;
        else if (c >= '0' && c <= '9') cls[c] = C_N;
        else if (c == ' ' || (c >= 9 && c <= 13)) cls[c] = C_S;
        else cls[c] = C_O;
    }
}

/* Class of the byte at i, or 0 if it is not ASCII or past the end (the
 * caller then falls back to PCRE2 for this piece). */
static inline int ac(const unsigned char *s, size_t n, size_t i)
{
    if (i >= n || s[i] >= 128) return 0;
    return cls[s[i]];
}

/* Returns the end of the piece starting at i, or 0 when the decision needs a
 * non-ASCII byte (or the end of the text, where a run stops naturally). */
static size_t ascii_piece(const unsigned char *s, size_t n, size_t i)
{
    unsigned char c = s[i];
    if (c == '\'' && i + 1 < n) {
        unsigned char d = s[i + 1];
        if (d == 's' || d == 't' || d == 'm' || d == 'd') return i + 2;
        if (i + 2 < n) {
            unsigned char e = s[i + 2];
            if ((d == 'r' && e == 'e') || (d == 'v' && e == 'e') || (d == 'l' && e == 'l')) return i + 3;
        }
    }
    size_t j = i;
    if (c == ' ') {
        /* " ?X+" for X the class of the next byte, if that is not space */
        int k = (i + 1 < n) ? ac(s, n, i + 1) : C_S;
        if (k == 0) return 0;
        if (k != C_S) j = i + 1;
    }
    int k = ac(s, n, j);
    if (k == 0) return 0;
    if (k == C_L || k == C_N || k == C_O) {
        size_t e = j + 1;
        int m;
        while ((m = (e < n) ? ac(s, n, e) : -1) == k) e++;
        if (m == 0) return 0;          /* a non-ASCII byte could continue the run */
        return e;
    }
    /* whitespace run: \s+(?!\S) then \s+ */
    size_t e = j + 1;
    int m;
    while ((m = (e < n) ? ac(s, n, e) : -1) == C_S) e++;
    if (m == 0) return 0;
    if (m == -1) return e;             /* whitespace up to the end */
    /* followed by a non-space: leave the last whitespace char for the next
     * piece (" ?X" may take it), unless the run is one char long */
    if (e - j >= 2) return e - 1;
    return e;
}

static int pcre_piece(ttt_pretok *p, const char *text, size_t n, size_t pos, size_t *start, size_t *len)
{
    int rc = p->jit ? pcre2_jit_match(p->re, (PCRE2_SPTR)text, n, pos, 0, p->md, NULL)
                    : pcre2_match(p->re, (PCRE2_SPTR)text, n, pos, 0, p->md, NULL);
    if (rc == PCRE2_ERROR_NOMATCH) { *start = pos; *len = n - pos; return 1; }
    if (rc < 0) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(rc, msg, sizeof msg);
        return ttt_seterr("PCRE2 match error: %s", (char *)msg);
    }
    PCRE2_SIZE *ov = pcre2_get_ovector_pointer(p->md);
    if (ov[0] > pos) { *start = pos; *len = ov[0] - pos; return 1; }  /* invalid UTF-8 run */
    *start = pos;
    *len = ov[1] - ov[0];
    return 1;
}

int ttt_pretok_next(ttt_pretok *p, const char *text, size_t n, size_t *pos, size_t *start, size_t *len)
{
    size_t i = *pos;
    if (i >= n) return 0;
    if (!cls['a']) init_cls();   /* idempotent; races write the same values */
    if (p->ascii_fast) {
        size_t e = ascii_piece((const unsigned char *)text, n, i);
        if (e) { *start = i; *len = e - i; *pos = e; return 1; }
    }
    if (pcre_piece(p, text, n, i, start, len) < 0) return -1;
    *pos = *start + *len;
    return 1;
}
