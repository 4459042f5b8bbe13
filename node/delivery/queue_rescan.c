/* queue_rescan: relayctl queue retry (SIGUSR1) for the queue (queue.h, issue 13). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "directory/base/util.h"
#include "node/common/log.h"
#include "node/common/node.h"
#include "node/common/worker.h"
#include "node/delivery/queue-private.h"
#include "node/spool/spool.h"

/* ---- rescan (relayctl queue retry) ----
 *
 * The loop never touches a message file here: it takes the waiting messages in batches of
 * RESCAN_BATCH off the waiting list (they are in flight meanwhile, so nothing attempts or
 * frees them), a worker checks that each file is still there and re-reads its state, and the
 * loop applies the results and takes the next batch. Its cost on the loop is a pointer walk
 * per batch, whatever the size of the queue. Only a file that is gone (ENOENT) drops a
 * message; any other error (EMFILE, EIO...) keeps it with the state it had, for the next
 * attempt or rescan (issue 13). */

#define RESCAN_BATCH 256

struct rescan_item {
    struct qmsg *m;               /* in flight (q->busy) until rescan_done */
    char id[64];
    size_t nrcpts;
    int present;                  /* 1 there, 0 gone (ENOENT), -1 could not tell (err) */
    int strc;                     /* spool_state_read's result, when present */
    struct spool_state st;        /* owned: the state read back */
    char err[200];
};

struct rescan_job {
    struct queue *q;
    size_t n;
    struct rescan_item it[RESCAN_BATCH];
};

static void rescan_next(struct queue *q);

static void rescan_run(void *arg)
{
    struct rescan_job *j = arg;
    struct spool *s = j->q->n->spool;
    for (size_t i = 0; i < j->n; i++) {
        struct rescan_item *it = &j->it[i];
        it->present = spool_exists(s, it->id, it->err, sizeof it->err);
        if (it->present == 1)
            it->strc = spool_state_read(s, it->id, it->nrcpts, &it->st, it->err,
                                        sizeof it->err);
    }
}

static void rescan_apply(struct queue *q, struct rescan_item *it)
{
    struct qmsg *m = it->m;
    char qe[512];
    if (it->present == 0 && !q->stopping && !m->removed) {
        log_fact(m->id, "queue", "gone", "reason=removed-from-spool");
        q->busy--;
        queue_msg_free(m);
        return;
    }
    if (it->present == 1 && it->strc != 1)
        m->state_written = true;  /* a state file is there (relayctl queue retry wrote it) */
    if (it->present < 0) {
        q->scan_kept++;
        log_fact(m->id, "queue", "rescan-failed", "error=%s action=keep",
                 log_quote(it->err, qe, sizeof qe));
    } else if (it->present == 1 && it->strc < 0) {
        /* Unreadable now (EMFILE...): the state held in memory is the better guess. */
        q->scan_kept++;
        log_fact(m->id, "queue", "state-unreadable", "error=%s action=keep",
                 log_quote(it->err, qe, sizeof qe));
    } else if (it->present == 1) {
        spool_state_clear(&m->st);
        m->st = it->st;
        memset(&it->st, 0, sizeof it->st);
    }
    queue_msg_release(q, m);
}

static void rescan_done(void *arg)
{
    struct rescan_job *j = arg;
    struct queue *q = j->q;
    for (size_t i = 0; i < j->n; i++) {
        rescan_apply(q, &j->it[i]);
        spool_state_clear(&j->it[i].st);
    }
    q->scan_checked += j->n;
    free(j);
    q->scanning = false;
    rescan_next(q);
}

/* Take the next batch of waiting messages not yet checked in this rescan (those put back go
 * to the tail, so the unchecked ones are at the head) and hand it to the worker. */
static void rescan_next(struct queue *q)
{
    if (q->stopping || !q->scan_wanted)
        return;
    struct rescan_job *j = NULL;
    while (q->waiting.head && q->waiting.head->scan_gen != q->scan_gen &&
           (!j || j->n < RESCAN_BATCH)) {
        struct qmsg *m = q->waiting.head;
        if (!j) {
            j = xcalloc(1, sizeof *j);
            j->q = q;
        }
        queue_list_del(&q->waiting, m);
        m->where = Q_BUSY;
        m->scan_gen = q->scan_gen;
        q->busy++;
        struct rescan_item *it = &j->it[j->n++];
        it->m = m;
        rn_strlcpy(it->id, m->id, sizeof it->id);
        it->nrcpts = m->nrcpts;
    }
    if (!j) {
        q->scan_wanted = false;
        log_fact("-", "queue", "rescan-done", "checked=%zu kept-on-error=%zu",
                 q->scan_checked, q->scan_kept);
        queue_tick(-1, 0, q);
        return;
    }
    q->scanning = true;
    worker_submit(q->n->worker, rescan_run, rescan_done, j);
}

void queue_rescan(struct queue *q)
{
    if (q->stopping)
        return;
    q->scan_gen++;                /* a rescan already running starts over with this one */
    q->scan_wanted = true;
    q->scan_checked = q->scan_kept = 0;
    queue_tick(-1, 0, q);
    if (!q->scanning)
        rescan_next(q);
}

int queue_rescanning(const struct queue *q)
{
    return q->scan_wanted || q->scanning;
}

