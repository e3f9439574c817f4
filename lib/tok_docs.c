/* tok_docs.c - documents of a text or JSONL corpus file (see tok_docs.h). */
#include "tok_docs.h"
#include "err.h"    /* ttt_seterr */
#include "io.h"     /* ttt_read_file, ttt_foreign_format */
#include "json.h"   /* json_parse */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int each_line(FILE *f, const char *name, const char *field,
                     int (*cb)(void *, const char *, size_t), void *ctx)
{
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    unsigned long long lineno = 0;
    int rc = 0;
    while ((n = getline(&line, &cap, f)) >= 0) {
        lineno++;
        if (lineno == 1) {
            const char *foreign = ttt_foreign_format((const unsigned char *)line, (size_t)n);
            if (foreign) { rc = ttt_seterr("%s: this is a %s file, not JSONL text", name, foreign); break; }
        }
        size_t k = 0;
        while (k < (size_t)n && strchr(" \t\r\n", line[k])) k++;
        if (k == (size_t)n) continue;
        json *j = json_parse(line, (size_t)n);
        if (!j) {
            /* the parser saw one line: "line 1, column C: what" */
            char msg[512];
            snprintf(msg, sizeof msg, "%s", ttt_errmsg());   /* not into the buffer we format from */
            const char *col = strstr(msg, "column ");
            rc = col ? ttt_seterr("%s: line %llu, %s", name, lineno, col) : ttt_preferr("%s: line %llu", name, lineno);
            break;
        }
        const json *v = json_get(j, field);
        if (j->type != JSON_OBJ || !v || v->type != JSON_STR) {
            rc = ttt_seterr("%s: line %llu: %s", name, lineno,
                            j->type != JSON_OBJ ? "not a JSON object" : "no string field");
            if (j->type == JSON_OBJ) ttt_seterr("%s: line %llu: no string field \"%s\"", name, lineno, field);
            json_free(j);
            break;
        }
        rc = cb(ctx, v->str, v->len);
        json_free(j);
        if (rc) break;
    }
    if (!rc && ferror(f)) rc = ttt_seterr("%s: read error: %s", name, strerror(errno));
    free(line);
    return rc;
}

int ttt_docs_each(const char *path, int jsonl, const char *field,
                  int (*cb)(void *ctx, const char *text, size_t n), void *ctx)
{
    int is_stdin = !strcmp(path, "-");
    const char *name = is_stdin ? "<stdin>" : path;
    if (jsonl) {
        FILE *f = is_stdin ? stdin : fopen(path, "rb");
        if (!f) return ttt_seterr("%s: %s", path, strerror(errno));
        int rc = each_line(f, name, field ? field : "text", cb, ctx);
        if (!is_stdin) fclose(f);
        return rc;
    }
    char *buf;
    size_t n;
    if (ttt_read_file(path, &buf, &n)) return -1;
    int rc = cb(ctx, buf, n);
    free(buf);
    return rc;
}
