/* shard.h - token shard files (PREFIX-train-NNNNNN.tok): zlib-compressed,
 * XXH3-64-checksummed blocks of tokens with document boundaries, per
 * document byte counts, an index for random access and a footer. The format
 * is specified byte by byte in man/ttt-formats.5.
 *
 * Readers treat every file as hostile: sizes, offsets, counts and checksums
 * are checked before use, and errors name the file and the block (blocks
 * are numbered from 0). A ttt_shard or ttt_dataset caches one decoded block
 * and is not thread-safe: open one per thread.
 */
#ifndef TTT_SHARD_H
#define TTT_SHARD_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint32_t vocab;          /* vocabulary size of the tokenizer */
    uint64_t tok_hash;       /* ttt_tokenizer_hash() */
    uint32_t eot;            /* id of <|endoftext|> */
    int token_width;         /* 2 or 4 bytes per token on disk (raw) */
    uint64_t ntokens;
    uint64_t ndocs;
    uint64_t nblocks;
    uint64_t text_bytes;     /* sum of the documents' byte counts */
    uint64_t file_bytes;
    uint32_t block_tokens;   /* tokens in every block but the last */
} ttt_shard_info;

/* ---- reader ---- */
typedef struct ttt_shard ttt_shard;
ttt_shard *ttt_shard_open(const char *path);        /* NULL + ttt_errmsg */
void ttt_shard_close(ttt_shard *s);
const ttt_shard_info *ttt_shard_get_info(const ttt_shard *s);
/* Tokens [start, start+n) into out; decompresses and checksums only the
 * blocks touched (a small cache keeps the last block). 0 or -1. */
int ttt_shard_read(ttt_shard *s, uint64_t start, size_t n, uint32_t *out);
/* Document i: first token, token count (including its trailing eot), bytes. */
int ttt_shard_doc(const ttt_shard *s, uint64_t i, uint64_t *start, uint64_t *ntok, uint64_t *nbytes);
/* Checks every block; on damage returns -1 naming the first bad block. */
int ttt_shard_verify(ttt_shard *s);
/* Raw block facts for ttt-inspect: compressed and raw sizes. */
int ttt_shard_block(const ttt_shard *s, uint64_t i, uint64_t *first_token, uint32_t *ntok,
                    uint32_t *comp_bytes);
/* The path the shard was opened with. */
const char *ttt_shard_path(const ttt_shard *s);

/* ---- writer (atomic: temp file, fsync, rename on close) ---- */
typedef struct {
    uint32_t vocab;
    uint64_t tok_hash;
    uint32_t eot;
    int level;               /* zlib level 0-9 */
    uint32_t block_tokens;   /* tokens per block (default 65536) */
} ttt_shard_params;

typedef struct ttt_shard_writer ttt_shard_writer;
ttt_shard_writer *ttt_shard_writer_open(const char *path, const ttt_shard_params *p);
int ttt_shard_writer_add_doc(ttt_shard_writer *w, const uint32_t *ids, size_t n, uint64_t nbytes);
uint64_t ttt_shard_writer_tokens(const ttt_shard_writer *w);
/* Finishes (index, footer), fsyncs and renames into place; frees w. */
int ttt_shard_writer_close(ttt_shard_writer *w);
/* Discards the temporary file; frees w. */
void ttt_shard_writer_abort(ttt_shard_writer *w);

/* ---- dataset: the shards matching a glob pattern, in sorted name order,
 * seen as one token sequence. All shards must share tokenizer hash and
 * vocabulary (an error names the odd one out). ---- */
typedef struct ttt_dataset ttt_dataset;
ttt_dataset *ttt_dataset_open(const char *pattern);   /* NULL + ttt_errmsg (no match is an error) */
void ttt_dataset_close(ttt_dataset *d);
uint64_t ttt_dataset_tokens(const ttt_dataset *d);
uint64_t ttt_dataset_docs(const ttt_dataset *d);
uint64_t ttt_dataset_text_bytes(const ttt_dataset *d);
const ttt_shard_info *ttt_dataset_info(const ttt_dataset *d);   /* of the first shard */
int ttt_dataset_nshards(const ttt_dataset *d);
/* Shard i (0-based, in name order), NULL if out of range. */
ttt_shard *ttt_dataset_shard(ttt_dataset *d, int i);
/* Tokens [start, start+n) of the concatenation (may cross shards). 0 or -1. */
int ttt_dataset_read(ttt_dataset *d, uint64_t start, size_t n, uint32_t *out);

#endif
