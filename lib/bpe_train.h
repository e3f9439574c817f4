/* bpe_train.h - learns a byte-level BPE (GPT-2 style) from documents and
 * writes it as a Hugging Face tokenizer.json that tokenizer.h loads.
 *
 * Usage: new, add_text per document (pre-tokenizes and counts words; the
 * text itself is not kept), train, write_json, free.
 *
 * Vocabulary layout: ids 0..255 are the bytes in byte order, then one id per
 * merge in merge order, then <|endoftext|> last (id = vocab size - 1).
 * Training counts each distinct pre-token once with its frequency, keeps pair
 * counts and a pair -> words index, and updates both incrementally after each
 * merge; the best pair comes from a max-heap with lazy deletion. Ties in
 * count go to the pair with the smaller (left id, right id), so the same
 * input always gives the same merges, whatever order the words were hashed in.
 */
#ifndef TTT_BPE_TRAIN_H
#define TTT_BPE_TRAIN_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef struct ttt_bpe_trainer ttt_bpe_trainer;

ttt_bpe_trainer *ttt_bpe_new(void);                 /* NULL + ttt_errmsg */
void ttt_bpe_free(ttt_bpe_trainer *t);

/* Counts the pre-tokens of one document. 0 or -1. */
int ttt_bpe_add_text(ttt_bpe_trainer *t, const char *text, size_t n);

/* Learns merges until the vocabulary (bytes + merges + <|endoftext|>) has
 * vocab_size entries (>= 257) or no pair is left. progress, if not NULL, is
 * called now and then with merges done and wanted. 0 or -1. */
int ttt_bpe_train(ttt_bpe_trainer *t, uint32_t vocab_size,
                  void (*progress)(void *ctx, uint32_t done, uint32_t want), void *ctx);

/* After training: vocabulary size, merges (left and right ids of merge i),
 * token bytes, distinct words counted. */
uint32_t ttt_bpe_vocab_size(const ttt_bpe_trainer *t);
uint32_t ttt_bpe_num_merges(const ttt_bpe_trainer *t);
void ttt_bpe_merge(const ttt_bpe_trainer *t, uint32_t i, uint32_t *left, uint32_t *right);
const char *ttt_bpe_token(const ttt_bpe_trainer *t, uint32_t id, size_t *len);
uint64_t ttt_bpe_num_words(const ttt_bpe_trainer *t);

/* Writes tokenizer.json to f (name for messages). 0 or -1. */
int ttt_bpe_write_json(const ttt_bpe_trainer *t, FILE *f, const char *name);

#endif
