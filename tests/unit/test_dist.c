/* test_dist.c - the data-parallel layer (lib/dist.h) and the rank slice of
 * the training windows (lib/train_data.h).
 *
 *   test_dist                      unit checks; under `mpirun -np N` also
 *                                  the collectives across the N ranks
 *   test_dist --compare A B TOL    compares two safetensors files tensor by
 *                                  tensor (same names, shapes, dtypes); prints
 *                                  the largest absolute difference and exits
 *                                  1 if it exceeds TOL (tests/cli/80-mpi.bats)
 */
#include "check.h"
#include "dist.h"
#include "err.h"
#include "rng.h"
#include "safetensors.h"
#include "shard.h"
#include "train_data.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- --compare ---- */

static int compare(const char *a, const char *b, double tol)
{
    ttt_st *sa = ttt_st_open(a, TTT_ST_VERIFY), *sb = sa ? ttt_st_open(b, TTT_ST_VERIFY) : NULL;
    if (!sa || !sb) {
        fprintf(stderr, "test_dist: %s\n", ttt_errmsg());
        return 2;
    }
    int bad = 0;
    double maxabs = 0, maxref = 0;
    const char *worst = "";
    if (ttt_st_count(sa) != ttt_st_count(sb)) {
        fprintf(stderr, "test_dist: %s has %d tensors, %s %d\n", a, ttt_st_count(sa), b, ttt_st_count(sb));
        bad = 1;
    }
    for (int i = 0; i < ttt_st_count(sa) && !bad; i++) {
        const ttt_st_tensor *ta = ttt_st_at(sa, i), *tb = ttt_st_find(sb, ta->name);
        if (!tb || tb->numel != ta->numel || tb->ndim != ta->ndim ||
            memcmp(ta->shape, tb->shape, ta->ndim * sizeof *ta->shape)) {
            fprintf(stderr, "test_dist: %s: tensor %s missing or shaped differently in %s\n", a, ta->name, b);
            bad = 1;
            break;
        }
        if (ta->dtype != tb->dtype) {
            fprintf(stderr, "test_dist: %s: dtype %s in %s, %s in %s\n", ta->name, ttt_st_dtype_name(ta->dtype), a,
                    ttt_st_dtype_name(tb->dtype), b);
            bad = 1;
            break;
        }
        if (ta->dtype != TTT_ST_F32 && ta->dtype != TTT_ST_F64 && ta->dtype != TTT_ST_F16 && ta->dtype != TTT_ST_BF16) {
            /* integers (the sampler state): bit-equal or different */
            if (memcmp(ttt_st_data(sa, ta), ttt_st_data(sb, tb), ta->end - ta->begin)) {
                fprintf(stderr, "test_dist: %s: tensor %s differs from %s's\n", a, ta->name, b);
                bad = 1;
                break;
            }
            continue;
        }
        double *xa = malloc((ta->numel + 1) * sizeof *xa), *xb = malloc((ta->numel + 1) * sizeof *xb);
        if (!xa || !xb || ttt_st_read_f64(sa, ta, xa) < 0 || ttt_st_read_f64(sb, tb, xb) < 0) {
            fprintf(stderr, "test_dist: %s: %s\n", ta->name, xa && xb ? ttt_errmsg() : "out of memory");
            free(xa); free(xb);
            bad = 1;
            break;
        }
        for (uint64_t k = 0; k < ta->numel; k++) {
            double d = fabs(xa[k] - xb[k]);
            if (!(d <= maxabs)) { maxabs = d; worst = ta->name; }   /* NaN wins too */
            if (fabs(xa[k]) > maxref) maxref = fabs(xa[k]);
        }
        free(xa); free(xb);
    }
    if (!bad) {
        printf("max_abs_diff %.3g (in %s), max_abs_value %.3g, tensors %d\n", maxabs, worst, maxref, ttt_st_count(sa));
        if (!(maxabs <= tol)) {
            fprintf(stderr, "test_dist: %s and %s differ by %.3g > %.3g in %s\n", a, b, maxabs, tol, worst);
            bad = 1;
        }
    }
    ttt_st_close(sa);
    ttt_st_close(sb);
    return bad;
}

/* ---- unit checks ---- */

static void test_slice(void)
{
    /* the slices tile [0, B) in rank order */
    for (int B = 1; B <= 40; B++)
        for (int N = 1; N <= 8; N++) {
            int next = 0, ok = 1;
            for (int r = 0; r < N; r++) {
                int first, count;
                ttt_train_slice(B, r, N, &first, &count);
                ok &= first == next && count >= 0;
                if (B % N == 0) ok &= count == B / N;
                next = first + count;
            }
            CHECK(ok && next == B);
        }
}

/* draw + read of the whole batch == ttt_train_sample, and the generator
 * ends in the same state; a slice reads the same windows as the batch. */
static void test_draw_read(void)
{
    char dir[] = "/tmp/test_dist.XXXXXX", path[64], pat[64];
    CHECK(mkdtemp(dir) != NULL);
    snprintf(path, sizeof path, "%s/d-train-000000.tok", dir);
    snprintf(pat, sizeof pat, "%s/d-train-*.tok", dir);
    ttt_shard_params sp = { .vocab = 97, .tok_hash = 7, .eot = 96, .level = 1, .block_tokens = 256 };
    ttt_shard_writer *w = ttt_shard_writer_open(path, &sp);
    CHECK(w != NULL);
    if (!w) return;
    uint32_t doc[500];
    for (int d = 0; d < 6; d++) {
        for (int i = 0; i < 500; i++) doc[i] = (uint32_t)((i * 31 + d * 7) % 96);
        doc[499] = 96;
        CHECK(ttt_shard_writer_add_doc(w, doc, 500, 1000) == 0);
    }
    CHECK(ttt_shard_writer_close(w) == 0);
    ttt_dataset *ds = ttt_dataset_open(pat);
    CHECK(ds != NULL);
    if (!ds) return;
    enum { B = 8, T = 24 };
    int32_t ids[B * T], tg[B * T], ids2[B * T], tg2[B * T];
    uint32_t scratch[T + 1];
    uint64_t starts[B];
    ttt_rng r1, r2;
    ttt_rng_seed(&r1, 5);
    r2 = r1;
    CHECK(ttt_train_sample(ds, &r1, B, T, 97, ids, tg, scratch) == 0);
    CHECK(ttt_train_draw(ds, &r2, B, T, starts) == 0);
    CHECK(memcmp(&r1, &r2, sizeof r1) == 0);
    CHECK(ttt_train_read(ds, starts, B, T, 97, ids2, tg2, scratch) == 0);
    CHECK(memcmp(ids, ids2, sizeof ids) == 0 && memcmp(tg, tg2, sizeof tg) == 0);
    int first, count;
    ttt_train_slice(B, 1, 2, &first, &count);
    CHECK(ttt_train_read(ds, starts + first, count, T, 97, ids2, tg2, scratch) == 0);
    CHECK(memcmp(ids + first * T, ids2, (size_t)count * T * sizeof *ids) == 0);
    /* a token outside the vocabulary names its position */
    CHECK(ttt_train_read(ds, starts, B, T, 50, ids2, tg2, scratch) == -1 && strstr(ttt_errmsg(), "outside"));
    ttt_dataset_close(ds);
    unlink(path);
    rmdir(dir);
}

/* Single process: every collective leaves the data alone. Under a
 * launcher: the real thing across the ranks. */
static void test_collectives(void)
{
    CHECK(ttt_dist_init() == 0);
    int r = ttt_dist_rank(), N = ttt_dist_size();
    CHECK(N >= 1 && r >= 0 && r < N);
    if (!ttt_dist_launched()) CHECK(N == 1 && r == 0);
    /* the mean of (rank+1) * (i+1) over the ranks is (N+1)/2 * (i+1);
     * n spans more than one chunk boundary only in size, not here */
    size_t n = 1000;
    real *g = malloc(n * sizeof *g);
    for (size_t i = 0; i < n; i++) g[i] = (real)((r + 1) * (double)(i + 1));
    CHECK(ttt_dist_allreduce_mean(g, n) == 0);
    int ok = 1;
    for (size_t i = 0; i < n; i++) ok &= fabs(g[i] - (N + 1) / 2.0 * (double)(i + 1)) <= 1e-6 * (double)(i + 1);
    CHECK(ok);
    free(g);
    double v[2] = { 1, (double)r };
    CHECK(ttt_dist_allreduce_sum(v, 2) == 0);
    CHECK(v[0] == N && v[1] == N * (N - 1) / 2.0);
    char msg[16] = "";
    if (r == 0) strcpy(msg, "from rank 0");
    CHECK(ttt_dist_bcast(msg, sizeof msg, 0) == 0 && strcmp(msg, "from rank 0") == 0);
    CHECK(ttt_dist_same_u64(0x1234) == 1);
    CHECK(ttt_dist_same_u64((uint64_t)r) == (N == 1));
    CHECK(ttt_dist_barrier() == 0);
}

int main(int argc, char **argv)
{
    if (argc == 5 && !strcmp(argv[1], "--compare")) return compare(argv[2], argv[3], atof(argv[4]));
    if (argc != 1) {
        fprintf(stderr, "usage: test_dist [--compare A.safetensors B.safetensors TOL]\n");
        return 2;
    }
    test_collectives();
    if (ttt_dist_rank() == 0) {   /* file-system checks once */
        test_slice();
        test_draw_read();
    }
    /* every rank's failures count: the job fails if any rank's did */
    double f = check_failures;
    CHECK(ttt_dist_allreduce_sum(&f, 1) == 0);
    if (f > 0 && check_failures == 0) check_failures = 1;
    int rc = ttt_dist_rank() == 0 ? check_exit("test_dist") : (check_failures != 0);
    ttt_dist_finalize();
    return rc;
}
