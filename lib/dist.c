/* dist.c - MPI start-up and collectives for data-parallel training
 * (dist.h). Without TTT_HAVE_MPI every function is the size-1 no-op. */
#include "dist.h"
#include "err.h"   /* ttt_seterr */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifdef TTT_HAVE_MPI
#include <mpi.h>
#endif

/* Chunk of the gradient all-reduce: MPI counts are int, and chunks bound
 * the temporary buffers MPI allocates for large in-place reductions. */
#define DIST_CHUNK ((size_t)1 << 24)

static int g_rank = 0, g_size = 1;
#ifdef TTT_HAVE_MPI
static int g_active;      /* MPI initialised by us and not yet finalised */
#endif

static long env_long(const char *name)
{
    const char *s = getenv(name);
    if (!s || !*s) return -1;
    char *end;
    long v = strtol(s, &end, 10);
    return *end ? -1 : v;
}

/* Tasks the launcher says it started (-1: unknown). */
static long launched_size(void)
{
    static const char *const vars[] = { "OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "SLURM_STEP_NUM_TASKS" };
    for (size_t i = 0; i < sizeof vars / sizeof *vars; i++) {
        long v = env_long(vars[i]);
        if (v > 0) return v;
    }
    return -1;
}

int ttt_dist_built(void)
{
#ifdef TTT_HAVE_MPI
    return 1;
#else
    return 0;
#endif
}

/* Open MPI's mpirun, MPICH/Intel MPI hydra and Slurm's PMI-2 set PMI_RANK
 * or OMPI_*, PMIx launchers (srun --mpi=pmix, prterun) PMIX_RANK. */
int ttt_dist_launched(void)
{
    return getenv("OMPI_COMM_WORLD_RANK") || getenv("PMI_RANK") || getenv("PMIX_RANK");
}

#ifdef TTT_HAVE_MPI
static MPI_Datatype real_type(void) { return sizeof(real) == sizeof(double) ? MPI_DOUBLE : MPI_FLOAT; }

static int mpi_fail(const char *what, int rc)
{
    char msg[MPI_MAX_ERROR_STRING];
    int len = 0;
    if (MPI_Error_string(rc, msg, &len) != MPI_SUCCESS) snprintf(msg, sizeof msg, "error %d", rc);
    return ttt_seterr("rank %d: %s: %s", g_rank, what, msg);
}

/* A process that exits while MPI is active did not reach the normal end:
 * take the job down instead of leaving the other ranks in a collective. */
static void abort_at_exit(int status, void *arg)
{
    if (!g_active) return;
    /* An error every rank meets (bad data) is met by rank 0 too; let it
     * finish its own exit handlers (removing a RUNDIR it just created)
     * before this abort kills it. */
    if (g_rank != 0) sleep(2);
    MPI_Abort(MPI_COMM_WORLD, status ? status : 1);
}
#endif

int ttt_dist_init(void)
{
    long n = launched_size();
    if (!ttt_dist_launched()) {
        /* srun -n N without an MPI plugin starts N unrelated copies. */
        if (getenv("SLURM_PROCID") && n > 1)
            return ttt_seterr("srun started %ld tasks without an MPI process interface; use srun --mpi=pmix "
                              "(or pmi2), or run a single task", n);
        g_rank = 0, g_size = 1;
        return 0;
    }
#ifdef TTT_HAVE_MPI
    if (g_active) return 0;
    int provided, rc = MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided);
    if (rc != MPI_SUCCESS) return ttt_seterr("MPI_Init_thread failed (error %d)", rc);
    g_active = 1;
    on_exit(abort_at_exit, NULL);   /* glibc: sees the exit status, which MPI_Abort passes on */
    /* Errors come back as return codes (reported by the caller), not as
     * MPI's default abort with its own message. */
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &g_size);
    return 0;
#else
    if (n > 1)
        return ttt_seterr("started by an MPI launcher as one of %ld tasks, but this build has no MPI support "
                          "(rebuild with Open MPI or MPICH installed)", n);
    g_rank = 0, g_size = 1;
    return 0;
#endif
}

void ttt_dist_finalize(void)
{
#ifdef TTT_HAVE_MPI
    if (!g_active) return;
    g_active = 0;
    MPI_Finalize();
#endif
}

int ttt_dist_rank(void) { return g_rank; }
int ttt_dist_size(void) { return g_size; }

int ttt_dist_local_rank(void)
{
    /* set per rank by the launcher itself: Open MPI, MPICH/Intel MPI hydra */
    static const char *const vars[] = { "OMPI_COMM_WORLD_LOCAL_RANK", "MPI_LOCALRANKID" };
    for (size_t i = 0; i < sizeof vars / sizeof *vars; i++) {
        long v = env_long(vars[i]);
        if (v >= 0) return (int)v;
    }
#ifdef TTT_HAVE_MPI
    if (g_active) {
        MPI_Comm node;
        int r;
        if (MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, g_rank, MPI_INFO_NULL, &node) == MPI_SUCCESS) {
            if (MPI_Comm_rank(node, &r) != MPI_SUCCESS) r = -1;
            MPI_Comm_free(&node);
            if (r >= 0) return r;
        }
    }
#endif
    long v = env_long("SLURM_LOCALID");
    return v >= 0 ? (int)v : 0;
}

int ttt_dist_allreduce_mean(real *buf, size_t n)
{
    if (g_size == 1) return 0;
#ifdef TTT_HAVE_MPI
    const real inv = (real)1 / (real)g_size;
    for (size_t lo = 0; lo < n; lo += DIST_CHUNK) {
        size_t k = n - lo < DIST_CHUNK ? n - lo : DIST_CHUNK;
        int rc = MPI_Allreduce(MPI_IN_PLACE, buf + lo, (int)k, real_type(), MPI_SUM, MPI_COMM_WORLD);
        if (rc != MPI_SUCCESS) return mpi_fail("gradient all-reduce", rc);
        /* while the chunk is still in cache */
        for (size_t i = lo; i < lo + k; i++) buf[i] *= inv;
    }
#endif
    return 0;
}

/* ---- the all-reduce overlapped with the backward ---- */

typedef struct { size_t lo, n; } ov_range;

struct ttt_dist_overlap {
    real *buf;
    size_t n;
    ov_range *rg;          /* the ranges given, for the cover check */
    size_t nrg, rg_cap;
    int failed;            /* chunk() met an error: its message is kept for end() */
#ifdef TTT_HAVE_MPI
    MPI_Request *req;
    size_t nreq, req_cap;
#endif
};

static int grow(void **p, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap) return 0;
    size_t c = *cap ? 2 * *cap : 16;
    while (c < need) c *= 2;
    void *q = realloc(*p, c * elem);
    if (!q) return -1;
    *p = q, *cap = c;
    return 0;
}

ttt_dist_overlap *ttt_dist_overlap_begin(real *buf, size_t n)
{
    ttt_dist_overlap *ov = calloc(1, sizeof *ov);
    if (!ov) { ttt_seterr("out of memory"); return NULL; }
    ov->buf = buf, ov->n = n;
    return ov;
}

static void ov_fail_mpi(ttt_dist_overlap *ov, const char *what, int rc)
{
#ifdef TTT_HAVE_MPI
    if (!ov->failed) mpi_fail(what, rc);
#else
    (void)what, (void)rc;
#endif
    ov->failed = 1;
}

void ttt_dist_overlap_chunk(size_t offset, size_t n, void *ctx)
{
    ttt_dist_overlap *ov = ctx;
    if (ov->failed) return;
    /* Not sent when out of range: every rank gives the same ranges, so
     * every rank skips it alike and none waits for the others. */
    if (offset > ov->n || n > ov->n - offset) {
        ttt_seterr("gradient all-reduce: range %zu+%zu outside the arena of %zu", offset, n, ov->n);
        ov->failed = 1;
        return;
    }
    if (grow((void **)&ov->rg, &ov->rg_cap, ov->nrg + 1, sizeof *ov->rg)) {
        ttt_seterr("out of memory");
        ov->failed = 1;
        return;
    }
    ov->rg[ov->nrg++] = (ov_range){ offset, n };
#ifdef TTT_HAVE_MPI
    if (g_size == 1) return;
    for (size_t lo = offset; lo < offset + n; lo += DIST_CHUNK) {
        size_t k = offset + n - lo < DIST_CHUNK ? offset + n - lo : DIST_CHUNK;
        if (grow((void **)&ov->req, &ov->req_cap, ov->nreq + 1, sizeof *ov->req)) {
            ttt_seterr("out of memory");
            ov->failed = 1;
            return;
        }
        int rc = MPI_Iallreduce(MPI_IN_PLACE, ov->buf + lo, (int)k, real_type(), MPI_SUM, MPI_COMM_WORLD,
                                &ov->req[ov->nreq]);
        if (rc != MPI_SUCCESS) { ov_fail_mpi(ov, "gradient all-reduce", rc); return; }
        ov->nreq++;
    }
    /* Without a progress thread MPI moves the data only inside MPI calls:
     * give the earlier reductions a turn while the backward goes on. */
    int done;
    int rc = MPI_Testall((int)ov->nreq, ov->req, &done, MPI_STATUSES_IGNORE);
    if (rc != MPI_SUCCESS) ov_fail_mpi(ov, "gradient all-reduce", rc);
#endif
}

static int cmp_range(const void *a, const void *b)
{
    const ov_range *x = a, *y = b;
    return x->lo < y->lo ? -1 : x->lo > y->lo;
}

int ttt_dist_overlap_end(ttt_dist_overlap *ov)
{
    int rc = ov->failed ? -1 : 0;
#ifdef TTT_HAVE_MPI
    /* Wait even after a failure: the buffer must not be freed or reused
     * under a reduction still in flight. */
    if (ov->nreq) {
        int e = MPI_Waitall((int)ov->nreq, ov->req, MPI_STATUSES_IGNORE);
        if (e != MPI_SUCCESS && !rc) rc = mpi_fail("gradient all-reduce", e);
    }
#endif
    if (!rc) {
        qsort(ov->rg, ov->nrg, sizeof *ov->rg, cmp_range);
        size_t at = 0;
        for (size_t i = 0; i < ov->nrg && !rc; i++) {
            if (ov->rg[i].lo != at)
                rc = ttt_seterr("gradient all-reduce: elements %zu..%zu %s", ov->rg[i].lo < at ? ov->rg[i].lo : at,
                                (ov->rg[i].lo < at ? at : ov->rg[i].lo) - 1,
                                ov->rg[i].lo < at ? "given twice" : "never given");
            at = ov->rg[i].lo + ov->rg[i].n;
        }
        if (!rc && at != ov->n) rc = ttt_seterr("gradient all-reduce: elements %zu..%zu never given", at, ov->n - 1);
    }
    if (!rc && g_size > 1) {
        const real inv = (real)1 / (real)g_size;
        for (size_t i = 0; i < ov->n; i++) ov->buf[i] *= inv;
    }
    free(ov->rg);
#ifdef TTT_HAVE_MPI
    free(ov->req);
#endif
    free(ov);
    return rc;
}

int ttt_dist_allreduce_sum(double *v, int n)
{
    if (g_size == 1) return 0;
#ifdef TTT_HAVE_MPI
    int rc = MPI_Allreduce(MPI_IN_PLACE, v, n, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
    if (rc != MPI_SUCCESS) return mpi_fail("all-reduce", rc);
#endif
    return 0;
}

int ttt_dist_bcast(void *buf, size_t n, int root)
{
    if (g_size == 1) return 0;
#ifdef TTT_HAVE_MPI
    for (size_t lo = 0; lo < n; lo += (size_t)1 << 30) {
        size_t k = n - lo < ((size_t)1 << 30) ? n - lo : (size_t)1 << 30;
        int rc = MPI_Bcast((char *)buf + lo, (int)k, MPI_BYTE, root, MPI_COMM_WORLD);
        if (rc != MPI_SUCCESS) return mpi_fail("broadcast", rc);
    }
#endif
    return 0;
}

int ttt_dist_barrier(void)
{
    if (g_size == 1) return 0;
#ifdef TTT_HAVE_MPI
    int rc = MPI_Barrier(MPI_COMM_WORLD);
    if (rc != MPI_SUCCESS) return mpi_fail("barrier", rc);
#endif
    return 0;
}

int ttt_dist_same_u64(uint64_t x)
{
    if (g_size == 1) return 1;
#ifdef TTT_HAVE_MPI
    /* equal everywhere iff the bitwise AND equals the bitwise OR */
    uint64_t v[2] = { x, ~x };
    int rc = MPI_Allreduce(MPI_IN_PLACE, v, 2, MPI_UINT64_T, MPI_BAND, MPI_COMM_WORLD);
    if (rc != MPI_SUCCESS) return mpi_fail("consistency check", rc);
    return v[0] == ~v[1];
#endif
    return 1;
}
