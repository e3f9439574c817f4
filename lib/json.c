/* json.c - recursive-descent JSON parser with a depth limit (see json.h). */
#include "json.h"
#include "err.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const char *p, *s, *e;
    int depth;
} parser;

static int perr(parser *ps, const char *what)
{
    int line = 1, col = 1;
    for (const char *q = ps->s; q < ps->p && q < ps->e; q++) {
        if (*q == '\n') { line++; col = 1; } else col++;
    }
    return ttt_seterr("line %d, column %d: %s", line, col, what);
}

static void ws(parser *ps)
{
    while (ps->p < ps->e && (*ps->p == ' ' || *ps->p == '\t' || *ps->p == '\n' || *ps->p == '\r')) ps->p++;
}

static int hex4(parser *ps, unsigned *out)
{
    if (ps->e - ps->p < 4) return perr(ps, "truncated \\u escape");
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        char c = ps->p[i];
        v <<= 4;
        if (c >= '0' && c <= '9') v |= c - '0';
        else if (c >= 'a' && c <= 'f') v |= c - 'a' + 10;
        else if (c >= 'A' && c <= 'F') v |= c - 'A' + 10;
        else return perr(ps, "bad \\u escape");
    }
    ps->p += 4;
    *out = v;
    return 0;
}

static size_t put_utf8(char *o, unsigned cp)
{
    if (cp < 0x80) { o[0] = (char)cp; return 1; }
    if (cp < 0x800) { o[0] = (char)(0xC0 | cp >> 6); o[1] = (char)(0x80 | (cp & 0x3F)); return 2; }
    if (cp < 0x10000) {
        o[0] = (char)(0xE0 | cp >> 12); o[1] = (char)(0x80 | (cp >> 6 & 0x3F)); o[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (char)(0xF0 | cp >> 18); o[1] = (char)(0x80 | (cp >> 12 & 0x3F));
    o[2] = (char)(0x80 | (cp >> 6 & 0x3F)); o[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* Parses a string literal at ps->p (which points at the opening quote). */
static int parse_str(parser *ps, char **out, size_t *outlen)
{
    ps->p++;
    const char *start = ps->p;
    /* The decoded string is never longer than the literal. */
    const char *q = start;
    while (q < ps->e && *q != '"') { if (*q == '\\') q++; q++; }
    if (q >= ps->e) return perr(ps, "unterminated string");
    char *o = malloc((size_t)(q - start) + 1);
    if (!o) return perr(ps, "out of memory");
    size_t n = 0;
    while (*ps->p != '"') {
        unsigned char c = (unsigned char)*ps->p;
        if (c < 0x20) { free(o); return perr(ps, "control character in string"); }
        if (c != '\\') { o[n++] = (char)c; ps->p++; continue; }
        ps->p++;
        char esc = *ps->p++;
        switch (esc) {
        case '"': o[n++] = '"'; break;
        case '\\': o[n++] = '\\'; break;
        case '/': o[n++] = '/'; break;
        case 'b': o[n++] = '\b'; break;
        case 'f': o[n++] = '\f'; break;
        case 'n': o[n++] = '\n'; break;
        case 'r': o[n++] = '\r'; break;
        case 't': o[n++] = '\t'; break;
        case 'u': {
            unsigned cp, lo;
            if (hex4(ps, &cp)) { free(o); return -1; }
            if (cp >= 0xD800 && cp < 0xDC00 && ps->e - ps->p >= 6 && ps->p[0] == '\\' && ps->p[1] == 'u') {
                const char *save = ps->p;
                ps->p += 2;
                if (hex4(ps, &lo)) { free(o); return -1; }
                if (lo >= 0xDC00 && lo < 0xE000) cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                else ps->p = save;
            }
            if (cp >= 0xD800 && cp < 0xE000) cp = 0xFFFD; /* lone surrogate */
            n += put_utf8(o + n, cp);
            break;
        }
        default: free(o); ps->p--; return perr(ps, "bad escape in string");
        }
    }
    ps->p++;
    o[n] = 0;
    *out = o;
    *outlen = n;
    return 0;
}

static int parse_value(parser *ps, json *v);

static int push(parser *ps, json *v, size_t *cap)
{
    if (v->len == *cap) {
        size_t nc = *cap ? *cap * 2 : 4;
        json *ni = realloc(v->items, nc * sizeof *ni);
        if (!ni) return perr(ps, "out of memory");
        v->items = ni;
        if (v->type == JSON_OBJ) {
            char **nk = realloc(v->keys, nc * sizeof *nk);
            if (!nk) return perr(ps, "out of memory");
            v->keys = nk;
        }
        *cap = nc;
    }
    return 0;
}

static int parse_value(parser *ps, json *v)
{
    memset(v, 0, sizeof *v);
    ws(ps);
    if (ps->p >= ps->e) return perr(ps, "unexpected end of input");
    char c = *ps->p;
    if (c == '{' || c == '[') {
        if (++ps->depth > JSON_MAX_DEPTH) return perr(ps, "nesting too deep");
        int obj = c == '{';
        v->type = obj ? JSON_OBJ : JSON_ARR;
        ps->p++;
        size_t cap = 0;
        ws(ps);
        if (ps->p < ps->e && *ps->p == (obj ? '}' : ']')) { ps->p++; ps->depth--; return 0; }
        for (;;) {
            if (push(ps, v, &cap)) return -1;
            char *key = NULL;
            if (obj) {
                ws(ps);
                size_t kl;
                if (ps->p >= ps->e || *ps->p != '"') return perr(ps, "expected a string key");
                if (parse_str(ps, &key, &kl)) return -1;
                ws(ps);
                if (ps->p >= ps->e || *ps->p != ':') { free(key); return perr(ps, "expected ':'"); }
                ps->p++;
                v->keys[v->len] = key;
            }
            if (parse_value(ps, &v->items[v->len])) {
                v->len++; /* so json_free releases the partial child */
                return -1;
            }
            v->len++;
            ws(ps);
            if (ps->p >= ps->e) return perr(ps, "unexpected end of input");
            if (*ps->p == ',') { ps->p++; continue; }
            if (*ps->p == (obj ? '}' : ']')) { ps->p++; break; }
            return perr(ps, obj ? "expected ',' or '}'" : "expected ',' or ']'");
        }
        ps->depth--;
        return 0;
    }
    if (c == '"') { v->type = JSON_STR; return parse_str(ps, &v->str, &v->len); }
    if (ps->e - ps->p >= 4 && !memcmp(ps->p, "true", 4)) { v->type = JSON_BOOL; v->boolean = 1; ps->p += 4; return 0; }
    if (ps->e - ps->p >= 5 && !memcmp(ps->p, "false", 5)) { v->type = JSON_BOOL; ps->p += 5; return 0; }
    if (ps->e - ps->p >= 4 && !memcmp(ps->p, "null", 4)) { v->type = JSON_NULL; ps->p += 4; return 0; }
    if (c == '-' || (c >= '0' && c <= '9')) {
        char buf[64];
        size_t k = 0;
        while (ps->p + k < ps->e && k < sizeof buf - 1 && strchr("+-0123456789.eE", ps->p[k])) { buf[k] = ps->p[k]; k++; }
        buf[k] = 0;
        char *end;
        v->type = JSON_NUM;
        v->num = strtod(buf, &end);
        if (end == buf || (size_t)(end - buf) != k) return perr(ps, "bad number");
        ps->p += k;
        return 0;
    }
    return perr(ps, "unexpected character");
}

static void free_children(json *j)
{
    if (!j) return;
    if (j->type == JSON_STR) free(j->str);
    if (j->type == JSON_ARR || j->type == JSON_OBJ) {
        for (size_t i = 0; i < j->len; i++) {
            free_children(&j->items[i]);
            if (j->type == JSON_OBJ) free(j->keys[i]);
        }
        free(j->items);
        free(j->keys);
    }
}

json *json_parse(const char *text, size_t n)
{
    parser ps = { text, text, text + n, 0 };
    json *v = calloc(1, sizeof *v);
    if (!v) { ttt_seterr("out of memory"); return NULL; }
    if (parse_value(&ps, v)) { free_children(v); free(v); return NULL; }
    ws(&ps);
    if (ps.p != ps.e) { perr(&ps, "trailing characters after the value"); free_children(v); free(v); return NULL; }
    return v;
}

void json_free(json *j)
{
    free_children(j);
    free(j);
}

const json *json_get(const json *o, const char *key)
{
    if (!o || o->type != JSON_OBJ) return NULL;
    for (size_t i = 0; i < o->len; i++)
        if (!strcmp(o->keys[i], key)) return &o->items[i];
    return NULL;
}

const char *json_get_str(const json *o, const char *key)
{
    const json *v = json_get(o, key);
    return v && v->type == JSON_STR ? v->str : NULL;
}

int json_get_num(const json *o, const char *key, double *out)
{
    const json *v = json_get(o, key);
    if (!v || v->type != JSON_NUM) return -1;
    *out = v->num;
    return 0;
}

void json_write_str(FILE *f, const char *s, size_t n)
{
    putc('"', f);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        switch (c) {
        case '"': fputs("\\\"", f); break;
        case '\\': fputs("\\\\", f); break;
        case '\n': fputs("\\n", f); break;
        case '\r': fputs("\\r", f); break;
        case '\t': fputs("\\t", f); break;
        default:
            if (c < 0x20) fprintf(f, "\\u%04x", c);
            else putc(c, f);
        }
    }
    putc('"', f);
}
