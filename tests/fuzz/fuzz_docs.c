/* fuzz_docs.c - libFuzzer target for the corpus document reader
 * (lib/tok_docs.c). The first input byte picks text or JSONL format and the
 * field name; the rest is the file. Documents handed to the callback must
 * lie in readable memory (ASan checks every byte through the checksum). */
#include "fuzz_common.h"
#include "tok_docs.h"

static int cb(void *ctx, const char *text, size_t n)
{
    uint32_t *h = ctx;
    for (size_t i = 0; i < n; i++) *h = *h * 31 + (unsigned char)text[i];
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    int jsonl = data[0] & 1;
    const char *field = (data[0] & 2) ? "content" : "text";
    uint32_t h = 0;
    (void)ttt_docs_each(fuzz_file(0, data + 1, size - 1), jsonl, field, cb, &h);
    return 0;
}
