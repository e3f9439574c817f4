/* test_train_guard - lib/train_guard.c: non-finite values found by tensor
 * and index, the memory estimate against what the model really allocates
 * (malloc statistics around build, forward and backward, for every kind of
 * sequence block), the skipped-step count of metrics.jsonl, and the test
 * hook being inert unless set. */
#include "check.h"

#include "model.h"
#include "train_guard.h"

#include <malloc.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"

#if defined(__SANITIZE_ADDRESS__)
#define TTT_TEST_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TTT_TEST_ASAN 1
#endif
#endif

#ifdef TTT_TEST_ASAN
/* ASan's allocator replaces glibc's, whose mallinfo2 then counts nothing;
 * ask the sanitizer runtime (libasan, gcc or clang) instead. */
size_t __sanitizer_get_current_allocated_bytes(void);
static size_t heap_now(void) { return __sanitizer_get_current_allocated_bytes(); }
#else
static size_t heap_now(void)
{
    struct mallinfo2 mi = mallinfo2();
    return mi.uordblks + mi.hblkhd;   /* small blocks in use + mmap'ed blocks */
}
#endif

static void small_config(ttt_config *c, int block, int kind, int pre_conv)
{
    ttt_config_default(c);
    c->vocab_size = 97;
    c->hidden_size = 32;
    c->intermediate_size = 48;
    c->num_hidden_layers = 2;
    c->num_attention_heads = 4;
    c->seq_modeling_block = block;
    c->ttt_layer_type = kind;
    c->pre_conv = c->share_qk = c->use_gate = pre_conv;
    c->max_position_embeddings = 64;
}

/* The estimate against the allocations of build (parameters, gradients)
 * and of a first forward + backward of B x T (activations). */
static void check_estimate(const char *what, int block, int kind, int pre_conv, int B, int T)
{
    ttt_config c;
    small_config(&c, block, kind, pre_conv);
    CHECK(ttt_config_validate(&c) == 0);
    ttt_mem_estimate e;
    CHECK(ttt_guard_mem_estimate(&c, B, T, &e) == 0);
    size_t np = ttt_config_num_params(&c);
    CHECK(e.params == np * sizeof(real) && e.grads == e.params && e.opt == 2 * e.params);
    CHECK(e.total == e.params + e.grads + e.opt + e.acts);

    size_t h0 = heap_now();
    ttt_model *m = ttt_model_build(&c);
    CHECK(m != NULL);
    if (!m) return;
    size_t h1 = heap_now();
    ttt_model_init(m, 3);
    int32_t *ids = malloc(sizeof *ids * B * T), *tg = malloc(sizeof *tg * B * T);
    for (int i = 0; i < B * T; i++) { ids[i] = (i * 7) % c.vocab_size; tg[i] = (i * 5 + 1) % c.vocab_size; }
    size_t h2 = heap_now();
    double loss;
    CHECK(ttt_model_forward(m, ids, tg, B, T, &loss) == 0);
    CHECK(ttt_model_backward(m) == 0);
    size_t h3 = heap_now();
    double built = (double)(h1 - h0), acts = (double)(h3 - h2);
    /* the arenas dominate; the tensor table and small structs are extra */
    if (!(built >= e.params + e.grads && built <= (e.params + e.grads) * 1.05 + 65536))
        fprintf(stderr, "%s: build allocated %.0f, estimate %zu\n", what, built, e.params + e.grads);
    CHECK(built >= e.params + e.grads && built <= (e.params + e.grads) * 1.05 + 65536);
    if (!(fabs(acts - (double)e.acts) <= 0.02 * (double)e.acts + 65536))
        fprintf(stderr, "%s: forward+backward allocated %.0f, estimate %zu\n", what, acts, e.acts);
    CHECK(fabs(acts - (double)e.acts) <= 0.02 * (double)e.acts + 65536);
    free(ids);
    free(tg);
    ttt_model_free(m);
}

static void test_nonfinite(void)
{
    CHECK(ttt_guard_finite(0.0) && ttt_guard_finite(-0.0) && ttt_guard_finite(1e308) && ttt_guard_finite(-1e-310));
    CHECK(!ttt_guard_finite(NAN) && !ttt_guard_finite(INFINITY) && !ttt_guard_finite(-INFINITY));

    ttt_config c;
    small_config(&c, SEQ_TTT, TTT_LINEAR, 1);
    ttt_model *m = ttt_model_build(&c);
    CHECK(m != NULL);
    if (!m) return;
    real *g = ttt_model_grads(m);
    size_t idx = 99;
    ttt_model_zero_grad(m);
    CHECK(ttt_guard_find_nonfinite(m, g, &idx) == NULL && idx == 99);
    CHECK(ttt_guard_check(m, g, "gradient") == 0);
    /* two bad values: the first in arena order is reported */
    const ttt_tensor *w1 = ttt_model_find(m, "model.layers.1.seq_modeling_block.W1");
    const ttt_tensor *last = ttt_model_tensor(m, ttt_model_num_tensors(m) - 1);
    CHECK(w1 != NULL);
    if (!w1) return;
    g[last->offset + last->numel - 1] = (real)NAN;
    g[w1->offset + 123] = (real)-INFINITY;
    CHECK(ttt_guard_find_nonfinite(m, g, &idx) == w1 && idx == 123);
    CHECK(ttt_guard_check(m, g, "gradient") < 0);
    CHECK(!strcmp(ttt_errmsg(), "gradient of model.layers.1.seq_modeling_block.W1 is not finite (first at index 123)"));
    CHECK(ttt_guard_describe_step(m, g, 2.5, INFINITY) < 0 && strstr(ttt_errmsg(), "W1 is not finite"));
    CHECK(ttt_guard_describe_step(m, g, NAN, 1.0) < 0 && !strcmp(ttt_errmsg(), "the loss is NaN"));
    CHECK(ttt_guard_describe_step(m, g, -INFINITY, 1.0) < 0 && !strcmp(ttt_errmsg(), "the loss is -Inf"));
    CHECK(ttt_guard_describe_step(m, NULL, 1.0, NAN) < 0 && !strcmp(ttt_errmsg(), "the gradient norm is not finite"));
    g[w1->offset + 123] = 0;
    CHECK(ttt_guard_find_nonfinite(m, g, &idx) == last && idx == last->numel - 1);
    ttt_model_free(m);
}

static void test_skipped(void)
{
    const char *t =
        "{\"step\":1,\"loss\":5.1,\"lr\":0}\n"
        "{\"step\":2,\"loss\":null,\"skipped\":true,\"skipped_total\":1,\"lr\":0}\n"
        "{\"step\":3,\"loss\":4.9,\"lr\":0}\n"
        "{\"step\":4,\"loss\":null,\"skipped\":true,\"skipped_total\":2,\"lr\":0}\n"
        "{\"step\":5,\"loss\":null,\"skipped\":true";   /* torn */
    size_t n = strlen(t);
    CHECK(ttt_guard_count_skipped(t, n, 1) == 0);
    CHECK(ttt_guard_count_skipped(t, n, 2) == 1);
    CHECK(ttt_guard_count_skipped(t, n, 3) == 1);
    CHECK(ttt_guard_count_skipped(t, n, 100) == 2);
    CHECK(ttt_guard_count_skipped("", 0, 5) == 0);
}

static void test_hook(void)
{
    real g[10] = { 0 };
    double loss = 1.0;
    unsetenv("TTT_TEST_NAN_STEP");
    CHECK(ttt_guard_test_poison(3, &loss, g, 10) == 0 && loss == 1.0 && g[5] == 0);
    setenv("TTT_TEST_NAN_STEP", "3", 1);
    CHECK(ttt_guard_test_poison(2, &loss, g, 10) == 0 && g[5] == 0);
    CHECK(ttt_guard_test_poison(3, &loss, g, 10) == 1 && !ttt_guard_finite(g[5]) && loss == 1.0);
    CHECK(ttt_guard_test_poison(3, &loss, NULL, 10) == 0);
    setenv("TTT_TEST_NAN_STEP", "4:loss", 1);
    CHECK(ttt_guard_test_poison(4, &loss, g, 10) == 1 && !ttt_guard_finite(loss));
    setenv("TTT_TEST_NAN_STEP", "4:bogus", 1);
    loss = 1.0;
    CHECK(ttt_guard_test_poison(4, &loss, g, 10) == 0 && loss == 1.0);
    unsetenv("TTT_TEST_NAN_STEP");
}

int main(void)
{
    test_nonfinite();
    test_skipped();
    test_hook();
    check_estimate("ttt-linear, mamba backbone", SEQ_TTT, TTT_LINEAR, 1, 2, 32);
    check_estimate("ttt-linear, transformer backbone", SEQ_TTT, TTT_LINEAR, 0, 3, 48);
    check_estimate("ttt-mlp", SEQ_TTT, TTT_MLP, 1, 2, 64);
    check_estimate("attention", SEQ_ATTENTION, TTT_LINEAR, 0, 2, 40);
    check_estimate("mamba", SEQ_MAMBA, TTT_LINEAR, 0, 2, 32);
    ttt_mem_estimate e;
    ttt_config c;
    small_config(&c, SEQ_TTT, TTT_LINEAR, 1);
    CHECK(ttt_guard_mem_estimate(&c, 0, 32, &e) < 0);
    CHECK(ttt_guard_mem_estimate(&c, 1 << 20, 1 << 20, &e) == 0 && e.total > ((size_t)1 << 40));
    CHECK(ttt_guard_mem_limit() > 0);
    return check_exit("test_train_guard");
}
