/* pretok.h - GPT-2 pre-tokenization: splits text into the pieces that
 * byte-level BPE encodes independently, using PCRE2 (JIT) with the GPT-2
 * pattern
 *   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
 * in UTF/UCP mode. Any bytes are accepted: with PCRE2_MATCH_INVALID_UTF the
 * pattern never matches inside an invalid UTF-8 sequence, so each maximal run
 * of bytes that no match covers becomes one piece of its own. The pieces
 * always tile the input exactly (their concatenation is the input).
 *
 * A ttt_pretok holds match data, so it belongs to one thread at a time.
 */
#ifndef TTT_PRETOK_H
#define TTT_PRETOK_H

#include <stddef.h>

typedef struct ttt_pretok ttt_pretok;

ttt_pretok *ttt_pretok_new(void);            /* NULL + ttt_errmsg */
void ttt_pretok_free(ttt_pretok *p);

/* Next piece of text[0..n) at or after *pos: sets *start and *len, advances
 * *pos past it and returns 1; returns 0 at the end, -1 on a PCRE2 error. */
int ttt_pretok_next(ttt_pretok *p, const char *text, size_t n, size_t *pos,
                    size_t *start, size_t *len);

#endif
