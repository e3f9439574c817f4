/* fuzz_tokenizer.c - libFuzzer target for the tokenizer.json loader
 * (lib/tokenizer.c). A tokenizer that loads is then used: every id's bytes
 * are fetched, and a fixed set of texts (plus the input itself) is encoded;
 * every id returned must be in the vocabulary and decode without error. */
#include "fuzz_common.h"
#include "tokenizer.h"

static void use(const ttt_tokenizer *t, const char *text, size_t n)
{
    uint32_t *ids = NULL;
    size_t nids = 0, cap = 0;
    uint32_t V = ttt_tokenizer_vocab_size(t);
    if (ttt_tokenizer_encode(t, text, n, &ids, &nids, &cap) == 0) {
        for (size_t i = 0; i < nids; i++)
            if (ids[i] >= V) abort();
        char *out = NULL;
        size_t len = 0, ocap = 0;
        if (ttt_tokenizer_decode(t, ids, nids, &out, &len, &ocap) != 0) abort();
        free(out);
    }
    free(ids);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ttt_tokenizer *t = ttt_tokenizer_load(fuzz_file(0, data, size));
    if (!t) return 0;
    uint32_t V = ttt_tokenizer_vocab_size(t);
    if (ttt_tokenizer_eot(t) >= V) abort();
    for (uint32_t i = 0; i < V; i++) {
        size_t len;
        const char *s = ttt_tokenizer_token(t, i, &len);
        if (!s && len) abort();
        (void)ttt_tokenizer_is_special(t, i);
    }
    (void)ttt_tokenizer_hash(t);
    (void)ttt_tokenizer_num_merges(t);
    static const char *texts[] = { "", "hello world", "  the  quick\tbrown\n\nfox's 123 ",
                                   "caf\xc3\xa9 \xf0\x9f\x98\x80 \xff\xfe <|endoftext|>" };
    for (size_t i = 0; i < sizeof texts / sizeof *texts; i++) use(t, texts[i], strlen(texts[i]));
    use(t, (const char *)data, size < 512 ? size : 512);
    ttt_tokenizer_free(t);
    return 0;
}
