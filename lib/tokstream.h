/* tokstream.h - the token stream: what `ttt-tokenize encode` writes and
 * `ttt-pack` reads (specified in man/ttt-formats.5).
 *
 *   header (32 bytes, little-endian):
 *     magic     8  "\x89TTTSTR\n"
 *     version   u32  1
 *     vocab     u32  vocabulary size of the tokenizer
 *     tok_hash  u64  ttt_tokenizer_hash() of the tokenizer
 *     eot       u32  id of <|endoftext|>
 *     reserved  u32  0
 *   then one record per document:
 *     ntok      u32  number of ids that follow (>= 1; the last one is eot)
 *     nbytes    u64  length in bytes of the document's text
 *     ids       ntok x u32
 *   then the end marker: ntok = 0xFFFFFFFF, nbytes = total documents.
 *
 * A stream without its end marker is truncated, and readers say so. Every id
 * is checked against the vocabulary size.
 */
#ifndef TTT_TOKSTREAM_H
#define TTT_TOKSTREAM_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define TTT_TOKSTREAM_MAGIC "\x89TTTSTR\n"
#define TTT_TOKSTREAM_END 0xFFFFFFFFu

typedef struct {
    uint32_t vocab;
    uint64_t tok_hash;
    uint32_t eot;
} ttt_tokstream_header;

typedef struct {
    FILE *f;
    const char *name;          /* for messages */
    ttt_tokstream_header hdr;
    uint64_t docs;             /* documents read so far */
    int done;
} ttt_tokstream_reader;

/* Writer: header, then documents. All return 0 or -1 with ttt_errmsg. */
int ttt_tokstream_write_header(FILE *f, const char *name, const ttt_tokstream_header *h);
int ttt_tokstream_write_doc(FILE *f, const char *name, const uint32_t *ids, uint32_t n, uint64_t nbytes);
int ttt_tokstream_write_end(FILE *f, const char *name, uint64_t ndocs);

/* Reader. open: reads and checks the header (foreign formats are named). */
int ttt_tokstream_open(ttt_tokstream_reader *r, FILE *f, const char *name);
/* Next document into a growable buffer: returns 1 with a document, 0 at the
 * end marker, -1 on error (truncation, id out of range, bad record). */
int ttt_tokstream_next(ttt_tokstream_reader *r, uint32_t **ids, uint32_t *n, size_t *cap, uint64_t *nbytes);

#endif
