/* test_grad_hook.c - the gradient-ready hook of ttt_model_backward
 * (ttt_model_set_grad_hook) and the all-reduce overlapped with it
 * (ttt_dist_overlap_*): the ranges cover the arena exactly once in a fixed
 * order, each is final when given, a bad cover is reported, and the
 * overlapped average equals ttt_dist_allreduce_mean bit for bit. Under
 * `mpirun -np N` the last check runs across the N ranks.
 */
#include "check.h"
#include "dist.h"
#include "err.h"
#include "model.h"

#include <stdlib.h>
#include <string.h>

#define MAXR 64

typedef struct {
    size_t lo[MAXR], n[MAXR];
    int count;
    ttt_model *m;
    real *snap;   /* the whole arena as it was at each call (NULL: not kept) */
} rec;

static void record(size_t offset, size_t n, void *ctx)
{
    rec *r = ctx;
    if (r->count < MAXR) {
        r->lo[r->count] = offset, r->n[r->count] = n;
        if (r->snap) memcpy(r->snap + offset, ttt_model_grads(r->m) + offset, n * sizeof(real));
    }
    r->count++;
}

static void run_batch(ttt_model *m, int valid)
{
    int B = 2, T = 32, V = ttt_model_config(m)->vocab_size;
    int32_t ids[64], tg[64];
    for (int i = 0; i < B * T; i++) ids[i] = (i * 7 + 3) % V, tg[i] = valid ? (i * 5 + 1) % V : -1;
    CHECK(ttt_model_forward(m, ids, tg, B, T, NULL) == 0);
    CHECK(ttt_model_backward(m) == 0);
}

/* ranges: final norm, blocks L-1..0, embedding; a cover; final when given */
static void test_ranges(const char *block)
{
    ttt_config c;
    CHECK(ttt_config_preset(&c, "tiny") == 0);
    c.seq_modeling_block = strcmp(block, "attn") == 0 ? SEQ_ATTENTION : strcmp(block, "mamba") == 0 ? SEQ_MAMBA : SEQ_TTT;
    if (c.seq_modeling_block != SEQ_TTT) c.pre_conv = c.share_qk = c.use_gate = 0;
    ttt_model *m = ttt_model_build(&c);
    CHECK(m != NULL);
    if (!m) return;
    ttt_model_init(m, 5);
    size_t np = ttt_model_num_params(m);
    int L = c.num_hidden_layers, nt = ttt_model_num_tensors(m);
    rec r = { .m = m, .snap = calloc(np, sizeof(real)) };
    ttt_model_set_grad_hook(m, record, &r);
    run_batch(m, 1);
    CHECK(r.count == L + 2);
    if (r.count == L + 2) {
        const ttt_tensor *norm = ttt_model_find(m, "model.norm.weight"), *emb = ttt_model_tensor(m, 0);
        CHECK(r.lo[0] == norm->offset && r.n[0] == norm->numel);
        CHECK(r.lo[L + 1] == 0 && r.n[L + 1] == emb->numel);
        size_t at = emb->numel;   /* blocks in reverse: block l ends where block l+1 starts */
        for (int l = 0; l < L; l++) {
            int i = L - l;
            CHECK(r.lo[i] == at);
            at += r.n[i];
        }
        CHECK(at == norm->offset);
        /* every tensor of block l lies in block l's range */
        for (int t = 0; t < nt; t++) {
            const ttt_tensor *tt = ttt_model_tensor(m, t);
            int l;
            if (sscanf(tt->name, "model.layers.%d.", &l) != 1) continue;
            CHECK(tt->offset >= r.lo[L - l] && tt->offset + tt->numel <= r.lo[L - l] + r.n[L - l]);
        }
    }
    /* final when given: the arena at the end equals each range's snapshot */
    CHECK(memcmp(r.snap, ttt_model_grads(m), np * sizeof(real)) == 0);

    /* the same ranges when no target is valid (nothing computed) */
    rec r2 = { .m = m };
    ttt_model_set_grad_hook(m, record, &r2);
    run_batch(m, 0);
    CHECK(r2.count == r.count);
    for (int i = 0; i < r.count && i < r2.count && i < MAXR; i++) CHECK(r2.lo[i] == r.lo[i] && r2.n[i] == r.n[i]);

    /* removed: not called */
    ttt_model_set_grad_hook(m, NULL, &r2);
    run_batch(m, 1);
    CHECK(r2.count == r.count);

    /* the overlapped average equals the blocking one bit for bit */
    ttt_model_zero_grad(m);
    run_batch(m, 1);
    real *ref = malloc(np * sizeof(real));
    real *g = ttt_model_grads(m);
    for (size_t i = 0; i < np; i++) g[i] += (real)(0.001 * (ttt_dist_rank() + 1) * (double)(i % 13));
    memcpy(ref, g, np * sizeof(real));
    CHECK(ttt_dist_allreduce_mean(ref, np) == 0);
    /* the same gradients again, this time with the overlap */
    ttt_model_zero_grad(m);
    run_batch(m, 1);
    ttt_dist_overlap *ov = ttt_dist_overlap_begin(g, np);
    CHECK(ov != NULL);
    if (ov) {
        /* rank-dependent values, so that the ranks' sum is not a multiple of one */
        for (size_t i = 0; i < np; i++) g[i] += (real)(0.001 * (ttt_dist_rank() + 1) * (double)(i % 13));
        for (int i = 0; i < r.count && i < MAXR; i++) ttt_dist_overlap_chunk(r.lo[i], r.n[i], ov);
        CHECK(ttt_dist_overlap_end(ov) == 0);
        CHECK(memcmp(ref, g, np * sizeof(real)) == 0);
    }
    free(ref);
    free(r.snap);
    ttt_model_free(m);
}

/* through the hook for real: equals the blocking average */
static void test_hooked(void)
{
    ttt_config c;
    CHECK(ttt_config_preset(&c, "tiny") == 0);
    ttt_model *m = ttt_model_build(&c);
    if (!m) { CHECK(0); return; }
    ttt_model_init(m, 9);
    size_t np = ttt_model_num_params(m);
    run_batch(m, 1);   /* an earlier micro-batch: accumulated, then the hooked one */
    ttt_dist_overlap *ov = ttt_dist_overlap_begin(ttt_model_grads(m), np);
    CHECK(ov != NULL);
    if (!ov) { ttt_model_free(m); return; }
    ttt_model_set_grad_hook(m, ttt_dist_overlap_chunk, ov);
    run_batch(m, 1);
    ttt_model_set_grad_hook(m, NULL, NULL);
    CHECK(ttt_dist_overlap_end(ov) == 0);
    real *got = malloc(np * sizeof(real));
    memcpy(got, ttt_model_grads(m), np * sizeof(real));
    ttt_model_zero_grad(m);
    run_batch(m, 1);
    run_batch(m, 1);
    CHECK(ttt_dist_allreduce_mean(ttt_model_grads(m), np) == 0);
    CHECK(memcmp(got, ttt_model_grads(m), np * sizeof(real)) == 0);
    free(got);
    ttt_model_free(m);
}

/* a cover with a gap, an overlap or a range outside the buffer fails */
static void test_bad_cover(void)
{
    real buf[100] = { 0 };
    ttt_dist_overlap *ov = ttt_dist_overlap_begin(buf, 100);
    ttt_dist_overlap_chunk(50, 50, ov);
    ttt_dist_overlap_chunk(0, 40, ov);
    CHECK(ttt_dist_overlap_end(ov) == -1 && strstr(ttt_errmsg(), "40..49 never given"));
    ov = ttt_dist_overlap_begin(buf, 100);
    ttt_dist_overlap_chunk(0, 60, ov);
    ttt_dist_overlap_chunk(50, 50, ov);
    CHECK(ttt_dist_overlap_end(ov) == -1 && strstr(ttt_errmsg(), "50..59 given twice"));
    ov = ttt_dist_overlap_begin(buf, 100);
    ttt_dist_overlap_chunk(0, 90, ov);
    CHECK(ttt_dist_overlap_end(ov) == -1 && strstr(ttt_errmsg(), "90..99 never given"));
    ov = ttt_dist_overlap_begin(buf, 100);
    ttt_dist_overlap_chunk(0, 100, ov);
    ttt_dist_overlap_chunk(90, 20, ov);
    CHECK(ttt_dist_overlap_end(ov) == -1 && strstr(ttt_errmsg(), "outside"));
    ov = ttt_dist_overlap_begin(buf, 100);
    ttt_dist_overlap_chunk(0, 100, ov);
    CHECK(ttt_dist_overlap_end(ov) == 0);
}

int main(void)
{
    CHECK(ttt_dist_init() == 0);
    test_ranges("ttt");
    test_ranges("attn");
    test_ranges("mamba");
    test_hooked();
    test_bad_cover();
    ttt_dist_finalize();
    return check_exit("test_grad_hook");
}
