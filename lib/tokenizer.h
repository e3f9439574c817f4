/* tokenizer.h - byte-level BPE (GPT-2 style) with Hugging Face
 * tokenizer.json as the file format: load, encode, decode, hash.
 * Training a new tokenizer is in bpe_train.h.
 */
#ifndef TTT_TOKENIZER_H
#define TTT_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

typedef struct ttt_tokenizer ttt_tokenizer;

/* Loads a tokenizer.json (ours, or GPT-2's layout). NULL + ttt_errmsg
 * naming the file and the problem. */
ttt_tokenizer *ttt_tokenizer_load(const char *path);
void ttt_tokenizer_free(ttt_tokenizer *t);

uint32_t ttt_tokenizer_vocab_size(const ttt_tokenizer *t);
/* XXH3-64 of the tokenizer's content (vocabulary, merges, special tokens),
 * independent of JSON formatting. Stored in streams, shards and checkpoints. */
uint64_t ttt_tokenizer_hash(const ttt_tokenizer *t);
/* Id of <|endoftext|>. */
uint32_t ttt_tokenizer_eot(const ttt_tokenizer *t);
/* Bytes of a token (special tokens decode to their text). */
const char *ttt_tokenizer_token(const ttt_tokenizer *t, uint32_t id, size_t *len);

/* Encodes text[0..n) (any bytes) and appends the ids to *ids (growable,
 * *nids used, *cap allocated). Special tokens in the text are NOT matched
 * (text is text). Returns 0 or -1. */
int ttt_tokenizer_encode(const ttt_tokenizer *t, const char *text, size_t n,
                         uint32_t **ids, size_t *nids, size_t *cap);
/* Decodes ids and appends bytes to *out (growable). Ids out of range are an
 * error. Returns 0 or -1. */
int ttt_tokenizer_decode(const ttt_tokenizer *t, const uint32_t *ids, size_t n,
                         char **out, size_t *len, size_t *cap);

/* Whether id is a special (added) token such as <|endoftext|>. */
int ttt_tokenizer_is_special(const ttt_tokenizer *t, uint32_t id);
/* Number of merges (rank order). */
uint32_t ttt_tokenizer_num_merges(const ttt_tokenizer *t);

/* Note: encoding keeps a per-tokenizer cache, so one tokenizer must not
 * encode from two threads at once (load one per thread instead). */

#endif
