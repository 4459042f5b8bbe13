/* committer: the classic group-commit loop. The loop thread keeps a pending list; when no
 * batch is in flight it hands the whole list to the committer's own one-thread worker, and
 * while that batch syncs new requests pile up for the next one. At one client a batch is one
 * message (fsync as before); at fifty, a batch carries many and one syncfs plus one
 * directory fsync cover them all. */
#include "node/spool/committer.h"

#include <stdbool.h>
#include <stdlib.h>
#include <time.h>

#include "directory/base/util.h"
#include "node/metrics/metrics.h"
#include "node/spool/spool.h"
#include "node/common/worker.h"

#define ERRLEN 256
#define BATCH_MAX 256      /* bounds one batch's latency and arrays */

struct commit_req {
    struct spool_msg *m;
    committer_done_fn *done;
    void *arg;
    struct commit_req *next;
};

struct batch {
    struct committer *c;
    size_t n;
    struct commit_req *reqs[BATCH_MAX];
    struct spool_msg *msgs[BATCH_MAX];
    int rcs[BATCH_MAX];
    char errs[BATCH_MAX * ERRLEN];
};

struct committer {
    struct worker *w;                  /* owned: one thread */
    struct commit_req *head, *tail;    /* pending, loop thread */
    bool inflight;
    bool stopping;                     /* committer_free: commit on the caller instead */
    unsigned long long batches, messages;
    struct metric_series *m_batch, *m_duration;   /* borrowed; observed on the thread */
};

static void committer_kick(struct committer *c);

static void batch_run(void *arg)
{
    struct batch *b = arg;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    spool_msg_commit_batch(b->msgs, b->n, b->rcs, b->errs, ERRLEN);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    int64_t ns = (int64_t)(t1.tv_sec - t0.tv_sec) * 1000000000 + (t1.tv_nsec - t0.tv_nsec);
    metrics_observe(b->c->m_batch, b->n);          /* atomics: no lock on this thread */
    metrics_observe(b->c->m_duration, ns > 0 ? (uint64_t)ns : 0);
}

static void batch_done(void *arg)
{
    struct batch *b = arg;
    struct committer *c = b->c;
    c->inflight = false;
    c->batches++;
    c->messages += b->n;
    for (size_t i = 0; i < b->n; i++) {
        struct commit_req *r = b->reqs[i];
        r->done(r->arg, b->rcs[i], b->rcs[i] == 0 ? "" : b->errs + i * ERRLEN);
        free(r);
    }
    free(b);
    committer_kick(c);
}

static struct batch *batch_take(struct committer *c)
{
    struct batch *b = xcalloc(1, sizeof *b);
    b->c = c;
    while (c->head && b->n < BATCH_MAX) {
        struct commit_req *r = c->head;
        c->head = r->next;
        b->reqs[b->n] = r;
        b->msgs[b->n] = r->m;
        b->n++;
    }
    if (!c->head)
        c->tail = NULL;
    return b;
}

static void committer_kick(struct committer *c)
{
    if (c->inflight || !c->head || c->stopping)
        return;
    c->inflight = true;
    worker_submit(c->w, batch_run, batch_done, batch_take(c));
}

struct committer *committer_new(struct event_base *base)
{
    struct committer *c = xcalloc(1, sizeof *c);
    c->w = worker_new(base, 1);
    if (!c->w) {
        free(c);
        return NULL;
    }
    return c;
}

void committer_free(struct committer **cp)
{
    struct committer *c = *cp;
    if (!c)
        return;
    /* The in-flight batch finishes in worker_free (its done() runs); what is still pending
     * is committed here, on the caller, with the same durability. */
    c->stopping = true;
    worker_free(&c->w);
    while (c->head) {
        struct batch *b = batch_take(c);
        batch_run(b);
        batch_done(b);
    }
    free(c);
    *cp = NULL;
}

void committer_submit(struct committer *c, struct spool_msg **m, committer_done_fn *done,
                      void *arg)
{
    struct commit_req *r = xcalloc(1, sizeof *r);
    r->m = *m;
    *m = NULL;
    r->done = done;
    r->arg = arg;
    if (c->tail)
        c->tail->next = r;
    else
        c->head = r;
    c->tail = r;
    committer_kick(c);
}

void committer_set_metrics(struct committer *c, struct metric_series *batch,
                           struct metric_series *duration)
{
    c->m_batch = batch;
    c->m_duration = duration;
}

void committer_stats(const struct committer *c, unsigned long long *batches,
                     unsigned long long *messages)
{
    *batches = c->batches;
    *messages = c->messages;
}
