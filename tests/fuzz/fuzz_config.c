/* fuzz_config.c - libFuzzer target for the model config reader
 * (ttt_config_from_json in lib/model_config.c). An accepted config must
 * validate, count its parameters without overflow traps, and write out as
 * JSON that reads back to the same config. */
#include "fuzz_common.h"
#include "json.h"
#include "model.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json *j = json_parse((const char *)data, size);
    if (!j) return 0;
    ttt_config c;
    if (ttt_config_from_json(&c, j) == 0) {
        if (ttt_config_validate(&c) != 0) abort();
        (void)ttt_config_num_params(&c);
        char *buf = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&buf, &len);
        if (ttt_config_write_json(&c, f) != 0) abort();
        fclose(f);
        json *j2 = json_parse(buf, len);
        ttt_config c2;
        if (!j2 || ttt_config_from_json(&c2, j2) != 0 || memcmp(&c, &c2, sizeof c) != 0) {
            fprintf(stderr, "config does not survive write + read:\n%s\n", buf);
            abort();
        }
        json_free(j2);
        free(buf);
    }
    json_free(j);
    return 0;
}
