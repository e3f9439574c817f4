/* tok_docs.h - the documents of a corpus file, for training and encoding:
 * either the whole file is one document (text format), or each line is a
 * JSON object whose string field (default "text") is one document (JSONL,
 * as in the Pile). Blank lines in JSONL are skipped; any other line that is
 * not an object with that string field is an error naming the file and the
 * line number.
 */
#ifndef TTT_TOK_DOCS_H
#define TTT_TOK_DOCS_H

#include <stddef.h>

/* Calls cb(ctx, text, n) for each document of path ("-" = stdin). text is
 * only valid during the call. A nonzero return from cb stops the walk and is
 * returned. 0 or -1 with ttt_errmsg. */
int ttt_docs_each(const char *path, int jsonl, const char *field,
                  int (*cb)(void *ctx, const char *text, size_t n), void *ctx);

#endif
