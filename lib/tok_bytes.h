/* tok_bytes.h - GPT-2's byte <-> Unicode mapping used by byte-level BPE
 * vocabularies (tokenizer.json keys are bytes spelled as printable
 * characters: space is U+0120 'Ġ', newline U+010A 'Ċ', ...), and the small
 * hash and array helpers the tokenizer and the trainer share.
 */
#ifndef TTT_TOK_BYTES_H
#define TTT_TOK_BYTES_H

#include <stddef.h>
#include <stdint.h>

/* Code point that spells byte b. */
uint32_t ttt_tok_byte_cp(unsigned char b);

/* Spells s[0..n) as UTF-8 of the mapped code points into out (needs 2n
 * bytes); returns the length written. */
size_t ttt_tok_bytes_to_str(const char *s, size_t n, char *out);

/* Reverses ttt_tok_bytes_to_str: decodes the UTF-8 string s[0..n) into out
 * (at most n bytes). Returns the length, or -1 if s holds a character that
 * is not in the mapping (or malformed UTF-8). */
long ttt_tok_str_to_bytes(const char *s, size_t n, char *out);

/* Makes room for `need` elements of `elt` bytes in the realloc'ed array *p
 * of capacity *cap (doubling from 64). 0, or -1 with "out of memory" (the
 * array is then left as it was). */
int ttt_tok_grow(void **p, size_t *cap, size_t need, size_t elt);

/* Hash of a (left, right) id pair for open-addressing tables. */
static inline uint64_t ttt_tok_pair_hash(uint64_t key)
{
    key ^= key >> 31;
    key *= 0x9E3779B97F4A7C15ull;
    key ^= key >> 29;
    return key;
}

#endif
