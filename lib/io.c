/* io.c - atomic output files, whole-file reads, foreign format detection. */
#include "io.h"
#include "err.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Pending temporary files, so that a signal handler can remove them. */
#define MAX_PENDING 64
static char *pending[MAX_PENDING];

static void pending_add(char *tmp)
{
    for (int i = 0; i < MAX_PENDING; i++)
        if (!pending[i]) { pending[i] = tmp; return; }
}

static void pending_del(const char *tmp)
{
    for (int i = 0; i < MAX_PENDING; i++)
        if (pending[i] == tmp) pending[i] = NULL;
}

void ttt_atomic_abort_all(void)
{
    for (int i = 0; i < MAX_PENDING; i++)
        if (pending[i]) unlink(pending[i]);
}

int ttt_atomic_open(ttt_atomic *a, const char *path)
{
    memset(a, 0, sizeof *a);
    a->path = strdup(path);
    char *d = strdup(path), *b = strdup(path);
    if (!a->path || !d || !b) { free(d); free(b); free(a->path); return ttt_seterr("%s: out of memory", path); }
    size_t n = strlen(path) + 64;
    a->tmp = malloc(n);
    if (a->tmp) snprintf(a->tmp, n, "%s/.%s.tmp.%ld", dirname(d), basename(b), (long)getpid());
    free(d); free(b);
    if (!a->tmp) { free(a->path); return ttt_seterr("%s: out of memory", path); }
    /* listed before it exists: a signal between the two would leave it behind */
    pending_add(a->tmp);
    int fd = open(a->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0 || !(a->f = fdopen(fd, "wb"))) {
        int e = errno;
        if (fd >= 0) { close(fd); unlink(a->tmp); }
        pending_del(a->tmp);
        ttt_seterr("%s: cannot create: %s", path, strerror(e));
        free(a->tmp); free(a->path); a->tmp = a->path = NULL;
        return -1;
    }
    return 0;
}

int ttt_atomic_commit(ttt_atomic *a)
{
    int rc = 0, e = 0;
    if (fflush(a->f) != 0 || ferror(a->f)) { rc = -1; e = errno; }
    if (!rc && fsync(fileno(a->f)) != 0) { rc = -1; e = errno; }
    if (fclose(a->f) != 0 && !rc) { rc = -1; e = errno; }
    a->f = NULL;
    if (!rc && rename(a->tmp, a->path) != 0) { rc = -1; e = errno; }
    if (rc) {
        ttt_seterr("%s: write error: %s", a->path, strerror(e ? e : EIO));
        ttt_atomic_abort(a);
        return -1;
    }
    /* Make the rename itself durable. */
    char *d = strdup(a->path);
    if (d) {
        int dfd = open(dirname(d), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd >= 0) { fsync(dfd); close(dfd); }
        free(d);
    }
    pending_del(a->tmp);
    free(a->tmp); free(a->path);
    a->tmp = a->path = NULL;
    return 0;
}

void ttt_atomic_abort(ttt_atomic *a)
{
    if (a->f) { fclose(a->f); a->f = NULL; }
    if (a->tmp) { unlink(a->tmp); pending_del(a->tmp); }
    free(a->tmp); free(a->path);
    a->tmp = a->path = NULL;
}

int ttt_read_file(const char *path, char **buf, size_t *len)
{
    int is_stdin = strcmp(path, "-") == 0;
    FILE *f = is_stdin ? stdin : fopen(path, "rb");
    const char *name = is_stdin ? "<stdin>" : path;
    if (!f) return ttt_seterr("%s: %s", path, strerror(errno));
    size_t cap = 1 << 16, n = 0;
    char *p = malloc(cap + 1);
    for (;;) {
        if (!p) { if (!is_stdin) fclose(f); return ttt_seterr("%s: out of memory", name); }
        size_t got = fread(p + n, 1, cap - n, f);
        n += got;
        if (n < cap) break;
        cap *= 2;
        char *q = realloc(p, cap + 1);
        if (!q) free(p);
        p = q;
    }
    int err = ferror(f);
    int e = errno;
    if (!is_stdin) fclose(f);
    if (err) { free(p); return ttt_seterr("%s: read error: %s", name, strerror(e)); }
    p[n] = 0;
    *buf = p;
    *len = n;
    return 0;
}

int ttt_fwrite(FILE *f, const void *p, size_t n, const char *path)
{
    if (n && fwrite(p, 1, n, f) != n)
        return ttt_seterr("%s: write error: %s", path, strerror(errno));
    return 0;
}

const char *ttt_foreign_format(const unsigned char *h, size_t n)
{
    if (n >= 2 && h[0] == 0x1f && h[1] == 0x8b) return "gzip";
    if (n >= 4 && h[0] == 0x28 && h[1] == 0xb5 && h[2] == 0x2f && h[3] == 0xfd) return "zstd";
    if (n >= 4 && memcmp(h, "GGUF", 4) == 0) return "GGUF";
    if (n >= 4 && memcmp(h, "PK\3\4", 4) == 0) return "zip (PyTorch .pt?)";
    if (n >= 6 && memcmp(h, "\x93NUMPY", 6) == 0) return "NumPy .npy";
    if (n >= 4) {
        uint32_t m = (uint32_t)h[0] | (uint32_t)h[1] << 8 | (uint32_t)h[2] << 16 | (uint32_t)h[3] << 24;
        if (m == 20240520 || m == 20240326 || m == 20240327 || m == 20240522) return "llm.c .bin";
    }
    /* safetensors: u64 little-endian header length, then '{' */
    if (n >= 9 && h[8] == '{') {
        uint64_t hl = 0;
        for (int i = 7; i >= 0; i--) hl = hl << 8 | h[i];
        if (hl > 1 && hl < (1ull << 32)) return "safetensors";
    }
    return NULL;
}
