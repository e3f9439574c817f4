/* test_safetensors.c - round trip of lib/safetensors and rejection of every
 * kind of damage the reader checks, each with a message naming the file and
 * (where there is one) the tensor. */
#include "check.h"
#include "err.h"
#include "safetensors.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char dir[256];

static char *tmp_path(const char *name)
{
    static char p[512];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    return p;
}

/* Writes u64 length + header text (as given) + data bytes. */
static void write_raw(const char *path, const char *hdr, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    uint64_t len = strlen(hdr);
    unsigned char le[8];
    for (int i = 0; i < 8; i++) le[i] = (unsigned char)(len >> (8 * i));
    fwrite(le, 1, 8, f);
    fwrite(hdr, 1, len, f);
    if (n) fwrite(data, 1, n, f);
    fclose(f);
}

/* Expects open to fail with a message containing every given fragment. */
static void expect_fail(const char *path, int flags, const char *frag1, const char *frag2)
{
    ttt_st *st = ttt_st_open(path, flags);
    CHECK(st == NULL);
    if (st) { ttt_st_close(st); return; }
    const char *m = ttt_errmsg();
    CHECK(strstr(m, path) != NULL);
    if (frag1) CHECK(strstr(m, frag1) != NULL);
    if (frag2) CHECK(strstr(m, frag2) != NULL);
    if ((frag1 && !strstr(m, frag1)) || (frag2 && !strstr(m, frag2))) fprintf(stderr, "  message: %s\n", m);
}

static void test_round_trip(void)
{
    float a[6] = { 1, -2, 3.5f, 1e-30f, -0.0f, 65504 };
    double b[3] = { 1.0 / 3, -2e300, 0 };
    int64_t sa[2] = { 2, 3 }, sb[1] = { 3 }, sc[1] = { 0 };
    ttt_st_writer *w = ttt_st_writer_new();
    CHECK(ttt_st_add(w, "model.layers.0.a", TTT_ST_F32, 2, sa, a) == 0);
    CHECK(ttt_st_add(w, "b \"quoted\"", TTT_ST_F64, 1, sb, b) == 0);
    CHECK(ttt_st_add(w, "empty", TTT_ST_F32, 1, sc, NULL) == 0);
    CHECK(ttt_st_add(w, "model.layers.0.a", TTT_ST_F32, 2, sa, a) < 0);   /* duplicate */
    CHECK(ttt_st_set_meta(w, "step", "7") == 0);
    CHECK(ttt_st_set_meta(w, "config", "{\"x\": 1}") == 0);
    CHECK(ttt_st_set_meta(w, "step", "8") == 0);   /* replaces */
    char *p = tmp_path("rt.safetensors");
    CHECK(ttt_st_write(w, p) == 0);
    ttt_st_writer_free(w);

    ttt_st *st = ttt_st_open(p, TTT_ST_VERIFY);
    CHECK(st != NULL);
    if (!st) { fprintf(stderr, "%s\n", ttt_errmsg()); return; }
    CHECK(ttt_st_count(st) == 3);
    CHECK(!strcmp(ttt_st_meta(st, "step"), "8"));
    CHECK(!strcmp(ttt_st_meta(st, "config"), "{\"x\": 1}"));
    CHECK(ttt_st_meta(st, "xxh3.model.layers.0.a") != NULL);
    CHECK(ttt_st_meta(st, "nope") == NULL);
    const ttt_st_tensor *t = ttt_st_find(st, "model.layers.0.a");
    CHECK(t && t->dtype == TTT_ST_F32 && t->ndim == 2 && t->shape[0] == 2 && t->shape[1] == 3 && t->numel == 6);
    float ra[6];
    double rd[6];
    CHECK(t && ttt_st_read_f32(st, t, ra) == 0 && !memcmp(ra, a, sizeof a));
    CHECK(t && ttt_st_read_f64(st, t, rd) == 0 && rd[2] == 3.5 && rd[5] == 65504);
    t = ttt_st_find(st, "b \"quoted\"");
    CHECK(t && t->dtype == TTT_ST_F64 && ttt_st_read_f64(st, t, rd) == 0 && !memcmp(rd, b, sizeof b));
    CHECK(t && ttt_st_read_f32(st, t, ra) == 0 && ra[0] == (float)(1.0 / 3));
    t = ttt_st_find(st, "empty");
    CHECK(t && t->numel == 0 && t->begin == t->end);
    /* The data section starts 8-byte aligned. */
    FILE *f = fopen(p, "rb");
    unsigned char le[8];
    CHECK(fread(le, 1, 8, f) == 8);
    fclose(f);
    uint64_t hl = 0;
    for (int i = 7; i >= 0; i--) hl = hl << 8 | le[i];
    CHECK((hl + 8) % 8 == 0);
    ttt_st_close(st);
}

static void test_bf16_f16(void)
{
    /* BF16 1.5 = 0x3fc0, -2 = 0xc000; F16 1.5 = 0x3e00, -2 = 0xc000, 2^-24 = 0x0001 */
    uint16_t bf[2] = { 0x3fc0, 0xc000 }, hf[3] = { 0x3e00, 0xc000, 0x0001 };
    char *p = tmp_path("half.safetensors");
    char data[10];
    memcpy(data, bf, 4);
    memcpy(data + 4, hf, 6);
    write_raw(p, "{\"a\":{\"dtype\":\"BF16\",\"shape\":[2],\"data_offsets\":[0,4]},"
                 "\"h\":{\"dtype\":\"F16\",\"shape\":[3],\"data_offsets\":[4,10]}}", data, 10);
    ttt_st *st = ttt_st_open(p, TTT_ST_VERIFY);
    CHECK(st != NULL);
    if (!st) { fprintf(stderr, "%s\n", ttt_errmsg()); return; }
    float v[3];
    CHECK(ttt_st_read_f32(st, ttt_st_find(st, "a"), v) == 0 && v[0] == 1.5f && v[1] == -2.0f);
    CHECK(ttt_st_read_f32(st, ttt_st_find(st, "h"), v) == 0 && v[0] == 1.5f && v[1] == -2.0f &&
          v[2] == 0x1p-24f);
    ttt_st_close(st);
}

static void test_integer_dtype_not_float(void)
{
    char *p = tmp_path("int.safetensors");
    int32_t d[2] = { 1, 2 };
    write_raw(p, "{\"i\":{\"dtype\":\"I32\",\"shape\":[2],\"data_offsets\":[0,8]}}", d, 8);
    ttt_st *st = ttt_st_open(p, 0);
    CHECK(st != NULL);
    if (!st) return;
    float v[2];
    CHECK(ttt_st_read_f32(st, ttt_st_find(st, "i"), v) < 0);
    CHECK(strstr(ttt_errmsg(), "tensor i") != NULL);
    ttt_st_close(st);
}

static void test_damage(void)
{
    char *p = tmp_path("bad.safetensors");
    float d[4] = { 1, 2, 3, 4 };
    const char *ok2 = "\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}";

    /* too short */
    write_raw(p, "", NULL, 0);
    FILE *f = fopen(p, "wb"); fwrite("abc", 1, 3, f); fclose(f);
    expect_fail(p, 0, "too short", NULL);
    /* header length beyond the file */
    f = fopen(p, "wb");
    unsigned char le[12] = { 0xff, 0xff, 0, 0, 0, 0, 0, 0, '{', '}', ' ', ' ' };
    fwrite(le, 1, 12, f); fclose(f);
    expect_fail(p, 0, "exceeds the file size", NULL);
    /* foreign format */
    f = fopen(p, "wb");
    fwrite("\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03", 1, 10, f); fclose(f);
    expect_fail(p, 0, "gzip", NULL);
    /* not JSON */
    write_raw(p, "{\"a\": [1, 2", NULL, 0);
    expect_fail(p, 0, "header", NULL);
    /* not an object */
    write_raw(p, "{\"a\": 5}", NULL, 0);
    expect_fail(p, 0, "tensor a", "not an object");
    /* unknown dtype */
    write_raw(p, "{\"a\":{\"dtype\":\"F8\",\"shape\":[2],\"data_offsets\":[0,8]}}", d, 8);
    expect_fail(p, 0, "tensor a", "unknown dtype 'F8'");
    /* missing dtype / shape / offsets */
    write_raw(p, "{\"a\":{\"shape\":[2],\"data_offsets\":[0,8]}}", d, 8);
    expect_fail(p, 0, "tensor a", "missing dtype");
    write_raw(p, "{\"a\":{\"dtype\":\"F32\",\"data_offsets\":[0,8]}}", d, 8);
    expect_fail(p, 0, "tensor a", "missing shape");
    write_raw(p, "{\"a\":{\"dtype\":\"F32\",\"shape\":[2]}}", d, 8);
    expect_fail(p, 0, "tensor a", "data_offsets");
    /* negative / fractional dimension */
    write_raw(p, "{\"a\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", d, 8);
    expect_fail(p, 0, "tensor a", "shape[0]");
    write_raw(p, "{\"a\":{\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,8]}}", d, 8);
    expect_fail(p, 0, "tensor a", "shape[0]");
    /* shape product overflow */
    write_raw(p, "{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,4294967296],\"data_offsets\":[0,8]}}", d, 8);
    expect_fail(p, 0, "tensor a", "overflow");
    /* shape product does not match the byte count */
    write_raw(p, "{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", d, 8);
    expect_fail(p, 0, "tensor a", "expected 12");
    /* dtype size does not match */
    write_raw(p, "{\"a\":{\"dtype\":\"F64\",\"shape\":[2],\"data_offsets\":[0,8]}}", d, 8);
    expect_fail(p, 0, "tensor a", "expected 16");
    /* offsets beyond the data */
    write_raw(p, "{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", d, 8);
    expect_fail(p, 0, "tensor a", "beyond the data");
    /* reversed offsets */
    write_raw(p, "{\"a\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[8,0]}}", d, 8);
    expect_fail(p, 0, "tensor a", "reversed");
    /* overlap */
    write_raw(p, "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                 "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", d, 12);
    expect_fail(p, 0, "tensor b", "overlaps tensor a");
    /* hole */
    write_raw(p, "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                 "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[12,16]}}", d, 16);
    expect_fail(p, 0, "tensor b", "hole");
    /* trailing garbage */
    char h[256];
    snprintf(h, sizeof h, "{%s}", ok2);
    write_raw(p, h, d, 12);
    expect_fail(p, 0, "trailing", NULL);
    /* duplicate tensor */
    write_raw(p, "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                 "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", d, 8);
    expect_fail(p, 0, "tensor a", "twice");
    /* metadata value not a string */
    snprintf(h, sizeof h, "{\"__metadata__\":{\"step\":7},%s}", ok2);
    write_raw(p, h, d, 8);
    expect_fail(p, 0, "step", "not a string");
    /* malformed checksum */
    snprintf(h, sizeof h, "{\"__metadata__\":{\"xxh3.a\":\"xyz\"},%s}", ok2);
    write_raw(p, h, d, 8);
    expect_fail(p, TTT_ST_VERIFY, "tensor a", "malformed checksum");
    /* too many dimensions */
    write_raw(p, "{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,2],\"data_offsets\":[0,8]}}", d, 8);
    expect_fail(p, 0, "tensor a", "dimensions");
}

/* One flipped bit in a tensor's bytes is caught by its checksum and the
 * message names that tensor; without the flag the file still opens. */
static void test_checksum(void)
{
    float a[4] = { 1, 2, 3, 4 }, b[4] = { 5, 6, 7, 8 };
    int64_t s[1] = { 4 };
    ttt_st_writer *w = ttt_st_writer_new();
    ttt_st_add(w, "first", TTT_ST_F32, 1, s, a);
    ttt_st_add(w, "second.weight", TTT_ST_F32, 1, s, b);
    char *p = tmp_path("ck.safetensors");
    CHECK(ttt_st_write(w, p) == 0);
    ttt_st_writer_free(w);
    FILE *f = fopen(p, "r+b");
    fseek(f, -3, SEEK_END);   /* inside "second.weight" */
    int c = fgetc(f);
    fseek(f, -3, SEEK_END);
    fputc(c ^ 0x10, f);
    fclose(f);
    expect_fail(p, TTT_ST_VERIFY, "tensor second.weight", "checksum mismatch");
    ttt_st *st = ttt_st_open(p, 0);
    CHECK(st != NULL);
    if (st) {
        CHECK(ttt_st_verify_tensor(st, ttt_st_find(st, "first")) == 0);
        CHECK(ttt_st_verify_tensor(st, ttt_st_find(st, "second.weight")) < 0);
        ttt_st_close(st);
    }
    /* A missing file names the file. */
    expect_fail(tmp_path("absent.safetensors"), 0, "No such file", NULL);
}

/* A write into a directory that does not exist fails cleanly. */
static void test_write_error(void)
{
    float a[1] = { 1 };
    int64_t s[1] = { 1 };
    ttt_st_writer *w = ttt_st_writer_new();
    ttt_st_add(w, "a", TTT_ST_F32, 1, s, a);
    CHECK(ttt_st_write(w, tmp_path("no/such/dir/x.safetensors")) < 0);
    CHECK(strstr(ttt_errmsg(), "x.safetensors") != NULL);
    ttt_st_writer_free(w);
}

int main(void)
{
    snprintf(dir, sizeof dir, "/tmp/test_safetensors.XXXXXX");
    if (!mkdtemp(dir)) { perror("mkdtemp"); return 1; }
    test_round_trip();
    test_bf16_f16();
    test_integer_dtype_not_float();
    test_damage();
    test_checksum();
    test_write_error();
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "cleanup failed\n");
    return check_exit("test_safetensors");
}
