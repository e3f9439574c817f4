/* fuzz_json.c - libFuzzer target for the JSON parser (lib/json.c).
 * Parses the input, walks the tree through the public getters, and checks
 * a property: every parsed string written back with json_write_str parses
 * to the same bytes. */
#include "fuzz_common.h"
#include "json.h"

static void roundtrip(const char *s, size_t n)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f) abort();
    json_write_str(f, s, n);
    fclose(f);
    json *j = json_parse(buf, len);
    if (!j || j->type != JSON_STR || j->len != n || memcmp(j->str, s, n) != 0) {
        fprintf(stderr, "json_write_str round trip failed for a %zu-byte string\n", n);
        abort();
    }
    json_free(j);
    free(buf);
}

static size_t walk(const json *j, int depth)
{
    size_t count = 1;
    switch (j->type) {
    case JSON_STR:
        if (j->str[j->len] != 0) abort();   /* documented NUL terminator */
        roundtrip(j->str, j->len);
        break;
    case JSON_OBJ:
        for (size_t i = 0; i < j->len; i++) {
            (void)json_get(j, j->keys[i]);
            (void)json_get_str(j, j->keys[i]);
            double d;
            (void)json_get_num(j, j->keys[i], &d);
            roundtrip(j->keys[i], strlen(j->keys[i]));
        }
        /* fall through */
    case JSON_ARR:
        if (depth > JSON_MAX_DEPTH) abort();
        for (size_t i = 0; i < j->len; i++) count += walk(&j->items[i], depth + 1);
        break;
    default:
        break;
    }
    return count;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json *j = json_parse((const char *)data, size);
    if (j) {
        walk(j, 1);
        json_free(j);
    }
    return 0;
}
