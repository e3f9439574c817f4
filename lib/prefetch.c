/* prefetch.c - one reader thread per ttt_prefetch_start (prefetch.h). A
 * thread per step costs microseconds against a step of many milliseconds,
 * and keeps the state simple: started, then joined. */
#include "prefetch.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "train_data.h"

struct ttt_prefetch {
    ttt_dataset *d;
    int n, T;
    uint32_t vocab;
    int32_t *ids[2], *tg[2];   /* alternating buffers [n*T] */
    uint32_t *scratch;         /* [T+1] */
    uint64_t *starts;          /* [n] */
    int cur;                   /* buffer being filled */
    int running, rc;
    char msg[512];
    pthread_t th;
};

static void *reader(void *arg)
{
    ttt_prefetch *p = arg;
    p->rc = ttt_train_read(p->d, p->starts, p->n, p->T, p->vocab, p->ids[p->cur], p->tg[p->cur], p->scratch);
    if (p->rc < 0) {   /* the message is thread-local: hand it over */
        strncpy(p->msg, ttt_errmsg(), sizeof p->msg - 1);
        p->msg[sizeof p->msg - 1] = 0;
    }
    return NULL;
}

ttt_prefetch *ttt_prefetch_new(ttt_dataset *d, int n, int T, uint32_t vocab)
{
    ttt_prefetch *p = calloc(1, sizeof *p);
    size_t nt = (size_t)n * T;
    if (p) {
        p->d = d; p->n = n; p->T = T; p->vocab = vocab;
        for (int i = 0; i < 2; i++) {
            p->ids[i] = malloc(nt * sizeof(int32_t));
            p->tg[i] = malloc(nt * sizeof(int32_t));
        }
        p->scratch = malloc(((size_t)T + 1) * sizeof(uint32_t));
        p->starts = malloc((size_t)n * sizeof(uint64_t));
    }
    if (!p || !p->ids[0] || !p->ids[1] || !p->tg[0] || !p->tg[1] || !p->scratch || !p->starts) {
        ttt_prefetch_free(p);
        ttt_seterr("out of memory (prefetch buffers of %d x %d tokens)", n, T);
        return NULL;
    }
    p->cur = 1;
    return p;
}

int ttt_prefetch_start(ttt_prefetch *p, const uint64_t *starts)
{
    if (p->running) return ttt_seterr("prefetch: a read is already in flight");
    memcpy(p->starts, starts, (size_t)p->n * sizeof *starts);
    p->cur ^= 1;
    p->rc = 0;
    if (pthread_create(&p->th, NULL, reader, p) != 0) {   /* no thread: read here */
        reader(p);
        return 0;
    }
    p->running = 1;
    return 0;
}

int ttt_prefetch_wait(ttt_prefetch *p, const int32_t **ids, const int32_t **targets)
{
    if (p->running) {
        pthread_join(p->th, NULL);
        p->running = 0;
    }
    if (p->rc < 0) return ttt_seterr("%s", p->msg);
    *ids = p->ids[p->cur];
    *targets = p->tg[p->cur];
    return 0;
}

void ttt_prefetch_free(ttt_prefetch *p)
{
    if (!p) return;
    if (p->running) pthread_join(p->th, NULL);
    for (int i = 0; i < 2; i++) {
        free(p->ids[i]);
        free(p->tg[i]);
    }
    free(p->scratch);
    free(p->starts);
    free(p);
}
