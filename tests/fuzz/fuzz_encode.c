/* fuzz_encode.c - libFuzzer target for encode/decode with a real trained
 * tokenizer (tests/fuzz/seeds/tokenizer.json, or $TTT_FUZZ_TOKENIZER).
 * Byte-level BPE covers every byte, so decode(encode(x)) must equal x for
 * every input x, and encoding must be deterministic. */
#include "fuzz_common.h"
#include "err.h"
#include "tokenizer.h"

static ttt_tokenizer *tok;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    const char *p = getenv("TTT_FUZZ_TOKENIZER");
    if (!p) p = "tests/fuzz/seeds/tokenizer.json";
    tok = ttt_tokenizer_load(p);
    if (!tok) {
        fprintf(stderr, "fuzz_encode: %s (set TTT_FUZZ_TOKENIZER)\n", ttt_errmsg());
        exit(1);
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint32_t *ids = NULL, *ids2 = NULL;
    size_t nids = 0, cap = 0, nids2 = 0, cap2 = 0;
    if (ttt_tokenizer_encode(tok, (const char *)data, size, &ids, &nids, &cap) != 0) abort();
    if (ttt_tokenizer_encode(tok, (const char *)data, size, &ids2, &nids2, &cap2) != 0) abort();
    if (nids != nids2 || (nids && memcmp(ids, ids2, nids * 4))) {
        fprintf(stderr, "encode is not deterministic\n");
        abort();
    }
    if (size && !nids) abort();
    char *out = NULL;
    size_t len = 0, ocap = 0;
    if (ttt_tokenizer_decode(tok, ids, nids, &out, &len, &ocap) != 0) abort();
    if (len != size || (size && memcmp(out, data, size))) {
        fprintf(stderr, "decode(encode(x)) != x (%zu bytes in, %zu out)\n", size, len);
        abort();
    }
    free(out);
    free(ids);
    free(ids2);
    return 0;
}
