/* fuzz_tokstream.c - libFuzzer target for the token stream reader
 * (lib/tokstream.c): open, then read every document; every id returned must
 * be inside the header's vocabulary. */
#include "fuzz_common.h"
#include "tokstream.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    FILE *f = fopen(fuzz_file(0, data, size), "rb");
    if (!f) abort();
    ttt_tokstream_reader r;
    if (ttt_tokstream_open(&r, f, "fuzz") == 0) {
        uint32_t *ids = NULL, n = 0;
        size_t cap = 0;
        uint64_t nbytes;
        int rc;
        while ((rc = ttt_tokstream_next(&r, &ids, &n, &cap, &nbytes)) == 1) {
            if (n == 0 || n > cap) abort();
            for (uint32_t i = 0; i < n; i++)
                if (ids[i] >= r.hdr.vocab) abort();
        }
        free(ids);
    }
    fclose(f);
    return 0;
}
