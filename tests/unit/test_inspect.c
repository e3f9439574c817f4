/* test_inspect.c - lib/inspect_*: statistics (NaN handling, every float
 * dtype), comparison, the .npy header for 0-, 1- and 3-dimensional tensors,
 * parameter groups. Tensors go through a real safetensors file. */
#include "check.h"
#include "../../lib/inspect_model.h"
#include "../../lib/inspect_npy.h"
#include "../../lib/inspect_tensor.h"
#include "../../lib/safetensors.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char path[64];

static ttt_st *write_file(void)
{
    float a[6] = { 1, -2, 3, NAN, 5, INFINITY };      /* finite: 1 -2 3 5 */
    float b[6] = { 1, -2, 3.5f, NAN, 5, INFINITY };   /* one finite element differs */
    double s = 2.5;
    uint16_t h[3] = { 0x3c00, 0xc000, 0x0001 };       /* F16 1, -2, 2^-24 */
    uint16_t bf[2] = { 0x3f80, 0x4040 };              /* BF16 1, 3 */
    int64_t i[2] = { -7, 9 };
    int64_t s23[2] = { 2, 3 }, s6[1] = { 6 }, s3[1] = { 3 }, s2[1] = { 2 }, s123[3] = { 1, 2, 3 };
    ttt_st_writer *w = ttt_st_writer_new();
    CHECK(ttt_st_add(w, "a", TTT_ST_F32, 2, s23, a) == 0);
    CHECK(ttt_st_add(w, "b", TTT_ST_F32, 1, s6, b) == 0);
    CHECK(ttt_st_add(w, "c", TTT_ST_F32, 3, s123, a) == 0);
    CHECK(ttt_st_add(w, "a6", TTT_ST_F32, 1, s6, a) == 0);
    CHECK(ttt_st_add(w, "scalar", TTT_ST_F64, 0, NULL, &s) == 0);
    CHECK(ttt_st_add(w, "half", TTT_ST_F16, 1, s3, h) == 0);
    CHECK(ttt_st_add(w, "bf", TTT_ST_BF16, 1, s2, bf) == 0);
    CHECK(ttt_st_add(w, "ints", TTT_ST_I64, 1, s2, i) == 0);
    snprintf(path, sizeof path, "/tmp/test_inspect.%d.safetensors", (int)getpid());
    CHECK(ttt_st_write(w, path) == 0);
    ttt_st_writer_free(w);
    ttt_st *st = ttt_st_open(path, TTT_ST_VERIFY);
    CHECK(st != NULL);
    return st;
}

static void test_stats(const ttt_st *st)
{
    ttt_tstats s;
    ttt_tstats_of(st, ttt_st_find(st, "a"), &s);
    CHECK(s.n == 6 && s.nonfinite == 2);
    CHECK_CLOSE(s.mean, 7.0 / 4, 0, 1e-15);
    CHECK_CLOSE(s.std, sqrt((0.5625 + 14.0625 + 1.5625 + 10.5625) / 4), 0, 1e-15);
    CHECK(s.min == -2 && s.max == 5);
    CHECK_CLOSE(s.norm, sqrt(1 + 4 + 9 + 25), 0, 1e-15);
    ttt_tstats_of(st, ttt_st_find(st, "half"), &s);
    CHECK(s.min == -2 && s.max == 1);
    CHECK_CLOSE(s.mean, (1 - 2 + ldexp(1, -24)) / 3, 0, 1e-15);
    ttt_tstats_of(st, ttt_st_find(st, "bf"), &s);
    CHECK(s.mean == 2 && s.norm == sqrt(10));
    ttt_tstats_of(st, ttt_st_find(st, "ints"), &s);
    CHECK(s.min == -7 && s.max == 9 && s.mean == 1);
    ttt_tstats_of(st, ttt_st_find(st, "scalar"), &s);
    CHECK(s.n == 1 && s.mean == 2.5 && s.std == 0);
}

static void test_diff(const ttt_st *st)
{
    ttt_tdiff d;
    const ttt_st_tensor *a = ttt_st_find(st, "a"), *b = ttt_st_find(st, "b"), *a6 = ttt_st_find(st, "a6");
    CHECK(ttt_tdiff_of(st, a, st, a, &d) == 0 && d.identical && d.ndiff == 0 && d.max_abs == 0 && d.rel == 0);
    CHECK(ttt_tdiff_of(st, a, st, b, &d) == -1);   /* [2,3] against [6] */
    /* 3 against 3.5; the NaN and Inf pairs agree */
    CHECK(ttt_tdiff_of(st, a6, st, b, &d) == 0 && !d.identical && d.ndiff == 1);
    CHECK(d.max_abs == 0.5);
    CHECK_CLOSE(d.rel, 0.5 / 6.5, 0, 1e-15);
}

/* The .npy bytes of tensor name: header dict and total size. */
static void check_npy(const ttt_st *st, const char *name, const char *dict, size_t data)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    CHECK(ttt_npy_write(f, st, ttt_st_find(st, name)) == 0);
    fclose(f);
    CHECK(len >= 10 && !memcmp(buf, "\x93NUMPY\x01\x00", 8));
    size_t hl = (unsigned char)buf[8] | (size_t)(unsigned char)buf[9] << 8;
    CHECK((10 + hl) % 64 == 0 && buf[10 + hl - 1] == '\n');
    CHECK(!strncmp(buf + 10, dict, strlen(dict)));
    for (size_t i = 10 + strlen(dict); i < 10 + hl - 1; i++) CHECK(buf[i] == ' ');
    CHECK(len == 10 + hl + data);
    if (!strcmp(name, "bf")) {
        float v[2];
        memcpy(v, buf + 10 + hl, sizeof v);
        CHECK(v[0] == 1 && v[1] == 3);
    }
    free(buf);
}

static void test_npy(const ttt_st *st)
{
    check_npy(st, "a", "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", 24);
    check_npy(st, "b", "{'descr': '<f4', 'fortran_order': False, 'shape': (6,), }", 24);
    check_npy(st, "c", "{'descr': '<f4', 'fortran_order': False, 'shape': (1, 2, 3), }", 24);
    check_npy(st, "scalar", "{'descr': '<f8', 'fortran_order': False, 'shape': (), }", 8);
    check_npy(st, "half", "{'descr': '<f2', 'fortran_order': False, 'shape': (3,), }", 6);
    check_npy(st, "bf", "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }", 8);
    check_npy(st, "ints", "{'descr': '<i8', 'fortran_order': False, 'shape': (2,), }", 16);
}

static void test_groups(void)
{
    int l;
    CHECK(ttt_group_of("model.embed_tokens.weight", &l) == TTT_G_EMBED && l == -1);
    CHECK(ttt_group_of("model.layers.7.seq_modeling_block.W1", &l) == TTT_G_W0 && l == 7);
    CHECK(ttt_group_of("model.layers.0.seq_modeling_block.b2", NULL) == TTT_G_W0);
    CHECK(ttt_group_of("model.layers.0.seq_modeling_block.q_proj.weight", NULL) == TTT_G_PROJ);
    CHECK(ttt_group_of("model.layers.0.seq_modeling_block.learnable_token_idx", NULL) == TTT_G_LR);
    CHECK(ttt_group_of("model.layers.0.seq_modeling_block.post_norm.bias", NULL) == TTT_G_NORM);
    CHECK(ttt_group_of("model.layers.0.seq_modeling_block.conv_k.weight", NULL) == TTT_G_CONV);
    CHECK(ttt_group_of("model.layers.1.conv.norm.weight", NULL) == TTT_G_NORM);
    CHECK(ttt_group_of("model.layers.1.conv.conv.bias", NULL) == TTT_G_CONV);
    CHECK(ttt_group_of("model.layers.1.mlp.down_proj.weight", NULL) == TTT_G_SWIGLU);
    CHECK(ttt_group_of("model.layers.1.ffn_norm.weight", NULL) == TTT_G_NORM);
    CHECK(ttt_group_of("model.norm.weight", &l) == TTT_G_FINAL_NORM && l == -1);
    CHECK(ttt_group_of("model.layers.x.mlp", &l) == TTT_G_OTHER);
    CHECK(ttt_group_of("something", &l) == TTT_G_OTHER && l == -1);
    CHECK(!strcmp(ttt_group_name(TTT_G_W0), "fast-weight init W0"));
}

int main(void)
{
    ttt_st *st = write_file();
    if (st) {
        test_stats(st);
        test_diff(st);
        test_npy(st);
        ttt_st_close(st);
    }
    unlink(path);
    test_groups();
    return check_exit("test_inspect");
}
