/* train_guard.c - non-finite checks, the memory estimate of a training run,
 * and the test-only fault hook (train_guard.h). */
#include "train_guard.h"
#include "err.h"               /* ttt_seterr */
#include "layers/attn.h"       /* attn_acts_size, attn_scratch_size */
#include "layers/mamba.h"      /* mamba_config_init, mamba_acts_size, mamba_scratch_size */
#include "layers/swiglu.h"     /* swiglu_acts_size */
#include "layers/ttt_layer.h"  /* ttt_layer_acts_size */

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

/* ---- non-finite values ---- */

/* By the exponent bits, not isfinite(): FAST=1 builds with -ffast-math,
 * under which the compiler may assume isfinite() is always true. */
int ttt_guard_finite(double x)
{
    uint64_t b;
    memcpy(&b, &x, sizeof b);
    return (b & 0x7ff0000000000000ull) != 0x7ff0000000000000ull;
}

static int real_finite(real x)
{
#ifdef TTT_F64
    return ttt_guard_finite(x);
#else
    uint32_t b;
    memcpy(&b, &x, sizeof b);
    return (b & 0x7f800000u) != 0x7f800000u;
#endif
}

const ttt_tensor *ttt_guard_find_nonfinite(const ttt_model *m, const real *x, size_t *index)
{
    /* Tensors are contiguous in arena order, so one pass finds the first. */
    for (int i = 0; i < ttt_model_num_tensors(m); i++) {
        const ttt_tensor *t = ttt_model_tensor(m, i);
        const real *p = x + t->offset;
        for (size_t j = 0; j < t->numel; j++)
            if (!real_finite(p[j])) {
                if (index) *index = j;
                return t;
            }
    }
    return NULL;
}

int ttt_guard_check(const ttt_model *m, const real *x, const char *what)
{
    size_t at;
    const ttt_tensor *t = ttt_guard_find_nonfinite(m, x, &at);
    if (!t) return 0;
    return ttt_seterr("%s of %s is not finite (first at index %zu)", what, t->name, at);
}

int ttt_guard_describe_step(const ttt_model *m, const real *grads, double loss, double grad_norm)
{
    if (!ttt_guard_finite(loss)) {
        uint64_t b;   /* NaN or which infinity, by the bits (printf gives "-nan") */
        memcpy(&b, &loss, sizeof b);
        return ttt_seterr("the loss is %s", b & 0xfffffffffffffull ? "NaN" : b >> 63 ? "-Inf" : "Inf");
    }
    if (grads && ttt_guard_check(m, grads, "gradient") < 0) return -1;
    /* Finite elements whose squares overflow cannot happen in double for
     * float gradients; say what is known. */
    return ttt_seterr("the gradient norm is not finite");
}

/* ---- memory ---- */

/* a*b+c in size_t, or SIZE_MAX on overflow (an impossible request). */
static size_t mul_add(size_t a, size_t b, size_t c)
{
    if (a && b > (SIZE_MAX - c) / a) return SIZE_MAX;
    return a * b + c;
}

/* The activation arena, in reals: mirrors carve() in lib/model.c (every
 * piece rounded up to 16 reals), plus the backward's scratch and the token
 * copies. Keep in step with it; it only has to be close (it is reported,
 * and compared with the memory limit). */
static size_t acts_reals(const ttt_config *c, int B, int T)
{
    size_t N = (size_t)B * T, C = c->hidden_size, I = c->intermediate_size, V = c->vocab_size;
    size_t seq;
    attn_config ac = { c->hidden_size, c->num_attention_heads, c->hidden_size / c->num_attention_heads, c->rope_theta };
    mamba_config mc;
    mamba_config_init(&mc, c->hidden_size, c->conv_kernel);
    size_t blk = 2 * N * I;   /* the backward's block scratch */
    if (c->seq_modeling_block == SEQ_ATTENTION) {
        seq = attn_acts_size(&ac, B, T);
        if (attn_scratch_size(&ac, B, T) > blk) blk = attn_scratch_size(&ac, B, T);
    } else if (c->seq_modeling_block == SEQ_MAMBA) {
        seq = mamba_acts_size(&mc, B, T);
        if (mamba_scratch_size(&mc, B, T) > blk) blk = mamba_scratch_size(&mc, B, T);
    } else {
        ttt_layer_config lc;
        memset(&lc, 0, sizeof lc);
        lc.C = c->hidden_size;
        lc.H = c->num_attention_heads;
        lc.D = c->hidden_size / c->num_attention_heads;
        lc.K = c->mini_batch_size;
        lc.F = c->ttt_layer_type == TTT_MLP ? 4 * lc.D : lc.D;
        lc.kind = c->ttt_layer_type;
        lc.share_qk = c->share_qk;
        lc.use_gate = c->use_gate;
        lc.conv_kernel = c->conv_kernel;
        lc.base_lr = c->ttt_base_lr;
        lc.rope_theta = c->rope_theta;
        seq = ttt_layer_acts_size(&lc, B, T);
    }
#define R16(n) (((size_t)(n) + 15) & ~(size_t)15)
    size_t layer = 5 * R16(N * C) + 2 * R16(N) + R16(swiglu_acts_size((int)N, (int)I)) + R16(seq);
    if (c->pre_conv) layer += 3 * R16(N * C) + R16(N);   /* h1, cn, pc, crstd */
#undef R16
    size_t fwd = mul_add(layer, (size_t)c->num_hidden_layers, 0);
    fwd = mul_add(N, 2 * C + V + 3, fwd);     /* emb, final_out, logits; final_rstd, lse, losses */
    size_t bwd = mul_add(N, V + 3 * C, blk);  /* dlogits, three [N,C], block scratch */
    return fwd > SIZE_MAX - bwd ? SIZE_MAX : fwd + bwd;
}

int ttt_guard_mem_estimate(const ttt_config *c, int B, int T, ttt_mem_estimate *e)
{
    memset(e, 0, sizeof *e);
    size_t np = ttt_config_num_params(c);
    if (!np) return -1;
    if (B < 1 || T < 1) return ttt_seterr("memory estimate: bad micro-batch %d x %d", B, T);
    size_t acts = acts_reals(c, B, T);
    if (np > SIZE_MAX / 4 / sizeof(real) || acts > SIZE_MAX / 2 / sizeof(real))
        return ttt_seterr("memory estimate: %d x %d tokens overflow the address space", B, T);
    e->params = e->grads = np * sizeof(real);
    e->opt = 2 * np * sizeof(real);
    e->acts = acts * sizeof(real) + 2 * (size_t)B * T * sizeof(int32_t);
    size_t s = e->params + e->grads + e->opt;
    e->total = s > SIZE_MAX - e->acts ? SIZE_MAX : s + e->acts;
    return 0;
}

/* Bytes of address space this process already has (VmSize), or 0. */
static size_t mapped_now(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long pages = 0;
    if (f) {
        if (fscanf(f, "%lu", &pages) != 1) pages = 0;
        fclose(f);
    }
    long psize = sysconf(_SC_PAGESIZE);
    return psize > 0 ? (size_t)pages * (size_t)psize : 0;
}

size_t ttt_guard_mem_limit(void)
{
    size_t lim = 0;
    long pages = sysconf(_SC_PHYS_PAGES), psize = sysconf(_SC_PAGESIZE);
    if (pages > 0 && psize > 0) lim = (size_t)pages * (size_t)psize;
    /* ulimit -v counts what is mapped already (libraries, BLAS buffers) */
    struct rlimit r;
    if (getrlimit(RLIMIT_AS, &r) == 0 && r.rlim_cur != RLIM_INFINITY) {
        size_t used = mapped_now(), left = r.rlim_cur > used ? (size_t)r.rlim_cur - used : 0;
        if (!lim || left < lim) lim = left ? left : 1;
    }
    if (getrlimit(RLIMIT_DATA, &r) == 0 && r.rlim_cur != RLIM_INFINITY && (!lim || r.rlim_cur < lim))
        lim = (size_t)r.rlim_cur;
    return lim;
}

/* ---- skipped steps ---- */

/* 1 if line[0..n) contains key (memmem is a GNU extension). */
static int line_has(const char *line, size_t n, const char *key)
{
    size_t k = strlen(key);
    for (size_t i = 0; i + k <= n; i++)
        if (line[i] == key[0] && !memcmp(line + i, key, k)) return 1;
    return 0;
}

long long ttt_guard_count_skipped(const char *text, size_t n, long long step)
{
    long long k = 0;
    for (size_t pos = 0; pos < n;) {
        const char *line = text + pos, *nl = memchr(line, '\n', n - pos);
        if (!nl) break;   /* a torn last line */
        long long s;
        if (sscanf(line, "{\"step\":%lld", &s) != 1 || s > step) break;
        /* the key is written on skipped steps only */
        if (line_has(line, (size_t)(nl - line), "\"skipped\":true")) k++;
        pos = (size_t)(nl - text) + 1;
    }
    return k;
}

/* ---- test hook ---- */

int ttt_guard_test_poison(long long step, double *loss, real *grads, size_t n)
{
    /* Test-only (tests/cli/35-train-faults.bats): TTT_TEST_NAN_STEP=N or
     * N:loss. Unset, this is one getenv per step. */
    const char *s = getenv("TTT_TEST_NAN_STEP");
    if (!s || !*s) return 0;
    char *end;
    long long at = strtoll(s, &end, 10);
    if (at != step) return 0;
    if (!strcmp(end, ":loss")) {
        if (loss) *loss = NAN;
        return 1;
    }
    if (*end || !grads || !n) return 0;
    grads[n / 2] = (real)NAN;
    return 1;
}
