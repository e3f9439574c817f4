/* tok_bytes.c - GPT-2 byte <-> Unicode mapping and the growable-array
 * helper (see tok_bytes.h).
 * Printable Latin-1 bytes ('!'..'~', 0xA1..0xAC, 0xAE..0xFF) spell
 * themselves; the other 68 bytes get 256, 257, ... in byte order. */
#include "tok_bytes.h"
#include "err.h"      /* ttt_seterr */

#include <stdlib.h>

static uint32_t cp_of[256];
static int16_t byte_of[324];   /* code point -> byte, -1 if none */
static int ready;

static void init(void)
{
    if (ready) return;
    int n = 0;
    for (int i = 0; i < 324; i++) byte_of[i] = -1;
    for (int b = 0; b < 256; b++) {
        int printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
        cp_of[b] = printable ? (uint32_t)b : (uint32_t)(256 + n++);
        byte_of[cp_of[b]] = (int16_t)b;
    }
    ready = 1;   /* benign race: every thread writes the same tables */
}

uint32_t ttt_tok_byte_cp(unsigned char b)
{
    init();
    return cp_of[b];
}

size_t ttt_tok_bytes_to_str(const char *s, size_t n, char *out)
{
    init();
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t c = cp_of[(unsigned char)s[i]];
        if (c < 0x80) out[o++] = (char)c;
        else { out[o++] = (char)(0xC0 | c >> 6); out[o++] = (char)(0x80 | (c & 0x3F)); }
    }
    return o;
}

long ttt_tok_str_to_bytes(const char *s, size_t n, char *out)
{
    init();
    size_t o = 0;
    const unsigned char *u = (const unsigned char *)s;
    for (size_t i = 0; i < n;) {
        uint32_t c;
        if (u[i] < 0x80) c = u[i++];
        else if ((u[i] & 0xE0) == 0xC0 && i + 1 < n && (u[i + 1] & 0xC0) == 0x80) {
            c = (uint32_t)(u[i] & 0x1F) << 6 | (u[i + 1] & 0x3F);
            i += 2;
        } else return -1;   /* every mapped code point is below U+0800 */
        if (c >= 324 || byte_of[c] < 0) return -1;
        out[o++] = (char)byte_of[c];
    }
    return (long)o;
}

int ttt_tok_grow(void **p, size_t *cap, size_t need, size_t elt)
{
    if (need <= *cap) return 0;
    size_t c = *cap ? *cap : 64;
    while (c < need) c *= 2;
    void *q = realloc(*p, c * elt);
    if (!q) return ttt_seterr("out of memory");
    *p = q;
    *cap = c;
    return 0;
}
