/* bodysrc: see bodysrc.h. Each pull is one worker job: one spool_reader_step (64 KiB of the
 * file) through dotstuff into a staging buffer the loop then moves, without copying, to the
 * connection's output. The staging evbuffer is touched by one thread at a time: the worker
 * until its job ends, the loop after (the pool's queue orders the two). */
#include "node/delivery/bodysrc.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "directory/base/util.h"
#include "node/common/node.h"
#include "node/common/worker.h"
#include "node/delivery/dotstuff.h"
#include "node/spool/spool.h"

struct bodysrc {
    struct node *n;
    char id[64];
    struct spool_reader *r;         /* owned; opened by the first job */
    struct dotstuff ds;
    struct evbuffer *piece;         /* owned: filled by the job, emptied by the caller */
    bool busy;                      /* a job is in flight */
    bool orphan;                    /* freed while busy: the job's end frees it */
    bool ended;                     /* 0 or -1 was delivered */
    bool in_memory;                 /* bodysrc_new_bytes: piece already holds everything */
    int rc;
    char err[300];
    struct event *ev;               /* answers a pull that cannot be queued, from the loop */
    bodysrc_fn *fn;
    void *arg;
};

static void destroy(struct bodysrc *b)
{
    spool_reader_free(&b->r);
    evbuffer_free(b->piece);
    if (b->ev)
        event_free(b->ev);
    free(b);
}

struct bodysrc *bodysrc_new(struct node *n, const char *id)
{
    struct bodysrc *b = xcalloc(1, sizeof *b);
    b->n = n;
    rn_strlcpy(b->id, id, sizeof b->id);
    b->piece = evbuffer_new();
    if (!b->piece)
        abort();                    /* out of memory: fatal (docs/style.md 12) */
    return b;
}

static void stuff_emit(void *arg, const char *p, size_t n)
{
    struct bodysrc *b = arg;
    evbuffer_add(b->piece, p, n);
}

static int stuff_data(void *arg, const void *p, size_t n)
{
    struct bodysrc *b = arg;
    return dotstuff_feed(&b->ds, p, n);
}

/* Worker: one step of the file. */
static void pull_run(void *arg)
{
    struct bodysrc *b = arg;
    char err[RN_ERRLEN];
    if (!b->r) {
        dotstuff_init(&b->ds, stuff_emit, b);
        b->r = spool_reader_open(b->n->spool, b->id, err, sizeof err);
        if (!b->r) {
            b->rc = -1;
            snprintf(b->err, sizeof b->err, "4.3.0 cannot read the queued message: %.200s", err);
            return;
        }
    }
    b->rc = spool_reader_step(b->r, stuff_data, b, err, sizeof err);
    if (b->rc == 0 && dotstuff_end(&b->ds) < 0)
        b->rc = -1;
    if (b->rc < 0 && b->ds.bad)     /* the pre-scan passed: the file changed since */
        snprintf(b->err, sizeof b->err, "4.3.0 cannot read the queued message: %s: changed "
                 "since it was checked (%s)", b->id, b->ds.bad);
    else if (b->rc < 0)
        snprintf(b->err, sizeof b->err, "4.3.0 cannot read the queued message: %.200s", err);
}

static void pull_done(void *arg)
{
    struct bodysrc *b = arg;
    b->busy = false;
    if (b->orphan) {
        destroy(b);
        return;
    }
    if (b->rc <= 0) {
        b->ended = true;
        spool_reader_free(&b->r);   /* the file is closed as soon as it is read */
    }
    if (b->rc < 0)
        evbuffer_drain(b->piece, evbuffer_get_length(b->piece));
    b->fn(b->arg, b->rc, b->piece, b->rc < 0 ? b->err : NULL);
}

static void on_answer(evutil_socket_t fd, short what, void *arg)
{
    pull_done(arg);
}

struct bodysrc *bodysrc_new_bytes(struct node *n, const char *p, size_t len)
{
    struct bodysrc *b = bodysrc_new(n, "-");
    evbuffer_add(b->piece, p, len);
    b->in_memory = true;
    return b;
}

void bodysrc_pull(struct bodysrc *b, bodysrc_fn *fn, void *arg)
{
    if (b->busy || b->ended)
        abort();                    /* a caller bug */
    b->fn = fn;
    b->arg = arg;
    b->busy = true;
    if (b->in_memory) {
        b->rc = 0;                  /* everything is in piece: answer from the loop */
    } else if (b->n->worker && worker_try_submit(b->n->worker, pull_run, pull_done, b) == 0) {
        return;
    } else {
        /* The pool is stopping (the node is shutting down): answer from the loop. */
        b->rc = -1;
        snprintf(b->err, sizeof b->err, "4.3.2 node shutting down");
    }
    struct timeval now = {0, 0};
    if (!b->ev)
        b->ev = evtimer_new(b->n->base, on_answer, b);
    if (!b->ev || evtimer_add(b->ev, &now) < 0)
        abort();
}

void bodysrc_free(struct bodysrc **bp)
{
    struct bodysrc *b = *bp;
    if (!b)
        return;
    *bp = NULL;
    if (b->busy && !(b->ev && evtimer_pending(b->ev, NULL))) {
        b->orphan = true;           /* the worker holds it: pull_done frees it */
        return;
    }
    destroy(b);
}
