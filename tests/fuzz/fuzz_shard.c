/* fuzz_shard.c - libFuzzer target for the shard reader (lib/shard.c):
 * open, facts, reads of windows chosen from the input's last bytes, document
 * and block lookups, out-of-range requests, and a full verify. Tokens that a
 * read returns must be inside the vocabulary. */
#include "fuzz_common.h"
#include "shard.h"

static void window(ttt_shard *s, const ttt_shard_info *in, uint64_t start, size_t n)
{
    static uint32_t buf[8192];
    if (n > 8192) n = 8192;
    int rc = ttt_shard_read(s, start, n, buf);
    if (start + n > in->ntokens || start + n < start) {
        if (rc == 0 && n) { fprintf(stderr, "read past the end succeeded\n"); abort(); }
        return;
    }
    if (rc == 0)
        for (size_t i = 0; i < n; i++)
            if (buf[i] >= in->vocab) { fprintf(stderr, "token outside the vocabulary\n"); abort(); }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ttt_shard *s = ttt_shard_open(fuzz_file(0, data, size));
    if (!s) return 0;
    const ttt_shard_info *in = ttt_shard_get_info(s);
    (void)ttt_shard_path(s);
    uint64_t T = in->ntokens;
    uint64_t r = size >= 8 ? fuzz_u64(data + size - 8) : 0;
    window(s, in, 0, T < 300 ? T : 300);
    if (T) {
        window(s, in, r % T, (size_t)(r >> 48) % 5000 + 1);
        window(s, in, T - 1, 1);
        window(s, in, T / 2, (size_t)(T - T / 2));
    }
    window(s, in, T, 1);
    window(s, in, UINT64_MAX - 2, 5);
    for (uint64_t i = 0; i < in->ndocs && i < 64; i++) {
        uint64_t st, nt, nb;
        if (ttt_shard_doc(s, i, &st, &nt, &nb) == 0 && (st > T || nt > T - st)) {
            fprintf(stderr, "document %llu outside the tokens\n", (unsigned long long)i);
            abort();
        }
    }
    uint64_t st, nt, nb;
    if (ttt_shard_doc(s, in->ndocs, &st, &nt, &nb) == 0) abort();
    for (uint64_t i = 0; i < in->nblocks && i < 64; i++) {
        uint64_t ft;
        uint32_t ntok, comp;
        (void)ttt_shard_block(s, i, &ft, &ntok, &comp);
    }
    (void)ttt_shard_verify(s);
    ttt_shard_close(s);
    return 0;
}
