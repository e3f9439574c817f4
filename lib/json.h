/* json.h - a small JSON DOM: just what tokenizer.json, config.json,
 * safetensors headers and JSONL corpora need.
 *
 * Strings are decoded to UTF-8 (\u escapes and surrogate pairs included) and
 * keep an explicit length, so an embedded NUL survives. Numbers are doubles.
 * Objects keep their keys in file order (duplicates are kept; json_get returns
 * the first). The parser is iterative over nesting depth only up to
 * JSON_MAX_DEPTH, so hostile input cannot blow the stack.
 */
#ifndef TTT_JSON_H
#define TTT_JSON_H

#include <stddef.h>
#include <stdio.h>

#define JSON_MAX_DEPTH 256

typedef enum { JSON_NULL, JSON_BOOL, JSON_NUM, JSON_STR, JSON_ARR, JSON_OBJ } json_type;

typedef struct json json;
struct json {
    json_type type;
    int boolean;
    double num;
    char *str;       /* JSON_STR: UTF-8, NUL-terminated, length len */
    size_t len;      /* JSON_STR: bytes; JSON_ARR/JSON_OBJ: number of items */
    json *items;     /* JSON_ARR/JSON_OBJ: children */
    char **keys;     /* JSON_OBJ: keys (NUL-terminated) */
};

/* Parses text[0..n). On error returns NULL and records
 * "line L, column C: what" in ttt_errmsg (callers prefix the file name). */
json *json_parse(const char *text, size_t n);
void json_free(json *j);

const json *json_get(const json *obj, const char *key);   /* NULL if absent or not an object */
const char *json_get_str(const json *obj, const char *key); /* NULL unless a string */
/* Number member as double; returns 0 and sets *out, or -1 if absent/not a number. */
int json_get_num(const json *obj, const char *key, double *out);

/* Writes s[0..n) as a JSON string literal (with quotes). */
void json_write_str(FILE *f, const char *s, size_t n);

#endif
