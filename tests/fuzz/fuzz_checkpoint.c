/* fuzz_checkpoint.c - libFuzzer target for checkpoint loading
 * (lib/checkpoint.c over lib/safetensors.c): read the config from the
 * metadata, and when the model it describes is small, build it and load the
 * weights with every checksum checked. Loaded weights must be finite or the
 * load must fail (non-finite values are passed through as data, so only
 * the bounds of the tensors are really under test here). */
#include "fuzz_common.h"
#include "checkpoint.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = fuzz_file(0, data, size);
    ttt_config c;
    if (ttt_ckpt_read_config(path, &c) != 0) return 0;
    size_t np = ttt_config_num_params(&c);
    if (np == 0 || np > (1u << 20)) return 0;   /* keep each execution small */
    long long step;
    uint64_t hash;
    ttt_model *m = ttt_ckpt_load_model(path, &step, &hash);
    if (m) {
        if (ttt_model_num_params(m) != np) abort();
        if (step < 0) abort();
        ttt_model_free(m);
    }
    return 0;
}
