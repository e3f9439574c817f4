/* fuzz_safetensors.c - libFuzzer target for the safetensors reader
 * (lib/safetensors.c): open with and without checksum verification, walk
 * tensors and metadata, convert small float tensors. Every tensor's byte
 * range must lie inside the file. */
#include "fuzz_common.h"
#include "safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = fuzz_file(0, data, size);
    for (int pass = 0; pass < 2; pass++) {
        ttt_st *st = ttt_st_open(path, pass ? TTT_ST_VERIFY : 0);
        if (!st) continue;
        for (int i = 0; i < ttt_st_meta_count(st); i++) {
            const char *k = ttt_st_meta_key(st, i);
            if (!k || !ttt_st_meta(st, k)) abort();
        }
        for (int i = 0; i < ttt_st_count(st); i++) {
            const ttt_st_tensor *t = ttt_st_at(st, i);
            if (ttt_st_find(st, t->name) != t) abort();
            if (t->end < t->begin || t->end > size) abort();
            const unsigned char *p = ttt_st_data(st, t);
            if (t->end > t->begin) {
                volatile unsigned char x = p[0];
                x = p[t->end - t->begin - 1];   /* ASan/SEGV if outside */
                (void)x;
            }
            (void)ttt_st_verify_tensor(st, t);
            (void)ttt_st_dtype_name(t->dtype);
            if (t->numel <= 4096) {
                float f[4096];
                double d[4096];
                (void)ttt_st_read_f32(st, t, f);
                (void)ttt_st_read_f64(st, t, d);
            }
        }
        ttt_st_close(st);
    }
    return 0;
}
