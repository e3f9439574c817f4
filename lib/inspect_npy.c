/* inspect_npy.c - .npy export of one tensor (inspect_npy.h). */
#include "inspect_npy.h"
#include "err.h"   /* ttt_seterr */

#include <errno.h>
#include <stdint.h>
#include <string.h>

const char *ttt_npy_descr(const ttt_st_tensor *t)
{
    static const char *const d[TTT_ST_NDTYPES] = {
        [TTT_ST_F64] = "<f8", [TTT_ST_F32] = "<f4", [TTT_ST_F16] = "<f2", [TTT_ST_BF16] = "<f4",
        [TTT_ST_I64] = "<i8", [TTT_ST_I32] = "<i4", [TTT_ST_I16] = "<i2", [TTT_ST_I8] = "|i1",
        [TTT_ST_U64] = "<u8", [TTT_ST_U32] = "<u4", [TTT_ST_U16] = "<u2", [TTT_ST_U8] = "|u1",
        [TTT_ST_BOOL] = "|b1",
    };
    return t->dtype < TTT_ST_NDTYPES ? d[t->dtype] : NULL;
}

int ttt_npy_write(FILE *f, const ttt_st *st, const ttt_st_tensor *t)
{
    char dict[512];
    size_t k = (size_t)snprintf(dict, sizeof dict, "{'descr': '%s', 'fortran_order': False, 'shape': (",
                                ttt_npy_descr(t));
    for (int d = 0; d < t->ndim; d++)
        k += (size_t)snprintf(dict + k, sizeof dict - k, "%lld,%s", (long long)t->shape[d],
                              d + 1 < t->ndim ? " " : "");
    if (t->ndim > 1) k--;   /* (3, 4) but (3,) for one dimension */
    k += (size_t)snprintf(dict + k, sizeof dict - k, "), }");
    /* 10 bytes of preamble + dict + padding + '\n' is a multiple of 64 */
    size_t total = (10 + k + 1 + 63) / 64 * 64;
    size_t hlen = total - 10;
    unsigned char pre[10] = { 0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, (unsigned char)(hlen & 0xff), (unsigned char)(hlen >> 8) };
    fwrite(pre, 1, sizeof pre, f);
    fwrite(dict, 1, k, f);
    for (size_t i = 10 + k; i < total - 1; i++) fputc(' ', f);
    fputc('\n', f);
    const unsigned char *p = ttt_st_data(st, t);
    if (t->dtype == TTT_ST_BF16) {
        for (uint64_t i = 0; i < t->numel; i++) {
            uint32_t u = (uint32_t)(p[2 * i] | p[2 * i + 1] << 8) << 16;   /* bf16 is the top half of f32 */
            fwrite(&u, 4, 1, f);
        }
    } else {
        fwrite(p, 1, t->end - t->begin, f);
    }
    if (fflush(f) != 0 || ferror(f)) return ttt_seterr("write error: %s", strerror(errno));
    return 0;
}
