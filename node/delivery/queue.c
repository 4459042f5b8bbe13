/* queue: scheduling, per-recipient state and bounces for committed messages.
 *
 * A message is in one of these places: the ready FIFO (due now), the waiting list (a retry
 * later), in flight (a delivery attempt or a state write / removal on a worker). After an
 * attempt each recipient is done (2xx), failed (5xx, or still 4xx when the lifetime ends) or
 * pending (4xx). Pending recipients make the message wait: the state file records
 * statuses and the next attempt before the message goes back to waiting. When nothing is
 * pending the message is finished: failed recipients get one DSN (committed through the
 * group committer like any accepted message, and queued), and only then is the original
 * removed. A crash anywhere repeats at most the last attempt (duplicates, never losses). */
#include "node/delivery/queue.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "directory/base/util.h"
#include "node/spool/committer.h"
#include "node/delivery/delivery.h"
#include "node/delivery/dsnmsg.h"
#include "node/common/log.h"
#include "node/common/node.h"
#include "node/spool/spool.h"
#include "node/common/worker.h"

#define TICK_S 1
#define TIME_MAX ((time_t)(((unsigned long long)1 << (sizeof(time_t) * 8 - 1)) - 1))

enum qmsg_where { Q_READY, Q_WAITING, Q_BUSY };

struct qmsg {
    char id[64];
    char *sender;                 /* owned; "" = null sender */
    char **rcpts; size_t nrcpts;  /* owned */
    time_t received;
    struct spool_state st;        /* owned */
    enum qmsg_where where;
    bool removed;                 /* relayctl removed it while we held it */
    unsigned scan_gen;            /* the last rescan that checked it */
    struct queue *q;
    struct qmsg *prev, *next;     /* in q->ready or q->waiting (Q_BUSY: in neither) */
};

struct qlist { struct qmsg *head, *tail; size_t n; };

struct queue {
    struct node *n;
    struct delivery *d;           /* not owned */
    struct queue_opts o;
    struct qlist ready, waiting;
    time_t next_due;              /* no waiting message is due before this (a lower bound) */
    size_t busy;                  /* messages in flight (delivery, state write, removal) */
    size_t inflight;              /* of which delivery attempts */
    struct event *ev_tick, *ev_kick;
    bool stopping;
    unsigned scan_gen;            /* +1 per rescan request */
    bool scan_wanted;             /* a rescan has messages left to check */
    bool scanning;                /* one of its batches is on the worker */
    size_t scan_checked, scan_kept;   /* this rescan so far: checked, kept on an error */
};

static void qlist_push(struct qlist *l, struct qmsg *m)
{
    m->next = NULL;
    m->prev = l->tail;
    if (l->tail)
        l->tail->next = m;
    else
        l->head = m;
    l->tail = m;
    l->n++;
}

static void qlist_del(struct qlist *l, struct qmsg *m)
{
    if (m->prev)
        m->prev->next = m->next;
    else
        l->head = m->next;
    if (m->next)
        m->next->prev = m->prev;
    else
        l->tail = m->prev;
    m->prev = m->next = NULL;
    l->n--;
}

static void qmsg_free(struct qmsg *m)
{
    free(m->sender);
    for (size_t i = 0; i < m->nrcpts; i++)
        free(m->rcpts[i]);
    free(m->rcpts);
    spool_state_clear(&m->st);
    free(m);
}

static void queue_kick(struct queue *q)
{
    if (!q->stopping)
        event_active(q->ev_kick, EV_TIMEOUT, 0);
}

static void qmsg_place(struct queue *q, struct qmsg *m)
{
    time_t now = time(NULL);
    if (m->st.next_attempt <= now) {
        m->where = Q_READY;
        qlist_push(&q->ready, m);
        queue_kick(q);
    } else {
        m->where = Q_WAITING;
        qlist_push(&q->waiting, m);
        if (m->st.next_attempt < q->next_due)
            q->next_due = m->st.next_attempt;
    }
}

static struct qmsg *qmsg_new(struct queue *q, const char *id, const char *sender,
                             const char *const *rcpts, size_t n, time_t received)
{
    struct qmsg *m = xcalloc(1, sizeof *m);
    rn_strlcpy(m->id, id, sizeof m->id);
    m->q = q;
    m->sender = xstrdup(sender ? sender : "");
    m->rcpts = xcalloc(n ? n : 1, sizeof *m->rcpts);
    for (size_t i = 0; i < n; i++)
        m->rcpts[i] = xstrdup(rcpts[i]);
    m->nrcpts = n;
    m->received = received;
    return m;
}

/* ---- finishing: state write, bounce, removal (blocking steps on the worker) ---- */

struct qjob {
    struct qmsg *m;
    int rc;
    char err[256];
};

static void qmsg_release(struct queue *q, struct qmsg *m)
{
    q->busy--;
    if (q->stopping || m->removed) {
        qmsg_free(m);
        return;
    }
    qmsg_place(q, m);
}

static void state_run(void *arg)
{
    struct qjob *j = arg;
    struct queue *q = j->m->q;
    j->rc = spool_state_write(q->n->spool, j->m->id, &j->m->st, j->err, sizeof j->err);
}

static void state_done(void *arg)
{
    struct qjob *j = arg;
    struct qmsg *m = j->m;
    if (j->rc < 0) {
        char qe[512];
        /* Not fatal: without its state the message is retried for every recipient not
         * known done (a duplicate, never a loss). */
        log_fact(m->id, "queue", "state-failed", "error=%s", log_quote(j->err, qe, sizeof qe));
    }
    free(j);
    qmsg_release(m->q, m);
}

static void remove_run(void *arg)
{
    struct qjob *j = arg;
    j->rc = spool_remove(j->m->q->n->spool, j->m->id, j->err, sizeof j->err);
}

static void remove_done(void *arg)
{
    struct qjob *j = arg;
    struct qmsg *m = j->m;
    struct queue *q = m->q;
    if (j->rc < 0) {
        char qe[512];
        log_fact(m->id, "queue", "remove-failed", "error=%s", log_quote(j->err, qe, sizeof qe));
    }
    log_fact(m->id, "queue", "done", "attempts=%u", m->st.attempts);
    free(j);
    q->busy--;
    qmsg_free(m);
}

/* A blocking step for m on the worker; while the node stops (the worker may be gone) it
 * runs here instead, so a result that arrives during shutdown is still recorded. */
static void qmsg_job(struct queue *q, struct qmsg *m, worker_fn run, worker_fn done)
{
    struct qjob *j = xcalloc(1, sizeof *j);
    j->m = m;
    if (q->stopping) {
        run(j);
        done(j);
    } else {
        worker_submit(q->n->worker, run, done, j);
    }
}

static void qmsg_remove(struct queue *q, struct qmsg *m)
{
    qmsg_job(q, m, remove_run, remove_done);
}

static void qmsg_save_state(struct queue *q, struct qmsg *m)
{
    qmsg_job(q, m, state_run, state_done);
}

struct bounce {
    struct qmsg *m;
    char dsn_id[64];
};

static void bounce_done(void *arg, int rc, const char *err)
{
    struct bounce *b = arg;
    struct qmsg *m = b->m;
    struct queue *q = m->q;
    if (rc == 0) {
        log_fact(m->id, "queue", "dsn", "dsn=%s to=<%s>", b->dsn_id, m->sender);
        const char *to[1] = {m->sender};
        if (!q->stopping)
            queue_add(q, b->dsn_id, "", to, 1, time(NULL));
        free(b);
        qmsg_remove(q, m);
        return;
    }
    char qe[512];
    log_fact(m->id, "queue", "dsn-failed", "error=%s retry_in=%u", log_quote(err, qe, sizeof qe),
             q->o.retry_min);
    free(b);
    m->st.next_attempt = time(NULL) + q->o.retry_min;
    qmsg_save_state(q, m);
}

static int header_chunk(void *arg, const void *p, size_t n)
{
    struct { char *buf; size_t len; } *h = arg;
    size_t room = 65536 - h->len;
    size_t k = n < room ? n : room;
    memcpy(h->buf + h->len, p, k);
    h->len += k;
    return h->len >= 65536 ? -1 : 0;        /* enough: the headers are at the front */
}

/* The DSN for m's failed recipients, written to a new spool message (not yet committed). */
static struct spool_msg *queue_dsn(struct queue *q, struct qmsg *m, char *err, size_t errlen)
{
    struct { char *buf; size_t len; } h = {xmalloc(65536), 0};
    char rerr[256];
    spool_read_data(q->n->spool, m->id, header_chunk, &h, rerr, sizeof rerr);
    size_t hlen = h.len;
    for (size_t i = 0; i + 3 < h.len; i++)
        if (memcmp(h.buf + i, "\r\n\r\n", 4) == 0) {
            hlen = i + 2;
            break;
        }
    struct dsnmsg_rcpt *br = xcalloc(m->nrcpts, sizeof *br);
    size_t nb = 0;
    for (size_t i = 0; i < m->nrcpts; i++)
        if (m->st.status[i] == SPOOL_RCPT_FAILED)
            br[nb++] = (struct dsnmsg_rcpt){m->rcpts[i], m->st.diag[i] ? m->st.diag[i] : "",
                                            ""};
    const char *fqdn = q->n->boot.hostname && *q->n->boot.hostname ? q->n->boot.hostname
                                                                    : "localhost";
    size_t len = 0;
    char *text = dsnmsg_build(fqdn, m->id, m->sender, m->received, time(NULL), br, nb, h.buf,
                              hlen, &len);
    free(br);
    free(h.buf);
    const char *to[1] = {m->sender};
    struct spool_envelope env = {.sender = "", .rcpts = to, .nrcpts = 1, .client_ip = "",
                                 .helo = "", .connector = "", .auth_as = "Anonymous",
                                 .received = time(NULL)};
    struct spool_msg *sm = text ? spool_msg_new(q->n->spool, &env, err, errlen) : NULL;
    if (!text)
        rn_err(err, errlen, "cannot build the DSN");
    if (sm && spool_msg_write(sm, text, len, err, errlen) < 0)
        spool_msg_abort(&sm);
    free(text);
    return sm;
}

/* Nothing pending: bounce the failed recipients (if any, and never to the null sender),
 * then remove the message. */
static void qmsg_finish(struct queue *q, struct qmsg *m)
{
    size_t failed = 0;
    for (size_t i = 0; i < m->nrcpts; i++)
        failed += m->st.status[i] == SPOOL_RCPT_FAILED;
    if (failed == 0 || !m->sender[0]) {
        if (failed)
            log_fact(m->id, "queue", "dsn-suppressed", "reason=null-sender failed=%zu", failed);
        qmsg_remove(q, m);
        return;
    }
    char err[256];
    struct spool_msg *sm = queue_dsn(q, m, err, sizeof err);
    if (!sm) {
        char qe[512];
        log_fact(m->id, "queue", "dsn-failed", "error=%s retry_in=%u",
                 log_quote(err, qe, sizeof qe), q->o.retry_min);
        m->st.next_attempt = time(NULL) + q->o.retry_min;
        qmsg_save_state(q, m);
        return;
    }
    struct bounce *b = xcalloc(1, sizeof *b);
    b->m = m;
    rn_strlcpy(b->dsn_id, spool_msg_id(sm), sizeof b->dsn_id);
    committer_submit(q->n->committer, &sm, bounce_done, b);
}

/* ---- attempts ---- */

static unsigned backoff(const struct queue *q, unsigned attempts)
{
    unsigned long long d = q->o.retry_min;
    for (unsigned i = 1; i < attempts && d < q->o.retry_max; i++)
        d *= 2;
    return d > q->o.retry_max ? q->o.retry_max : (unsigned)d;
}

struct attempt {
    struct qmsg *m;
    size_t n;
    size_t *idx;                  /* owned: result i belongs to recipient idx[i] */
};

static void attempt_done(void *arg, const struct delivery_rcpt_result *res, size_t n)
{
    struct attempt *a = arg;
    struct qmsg *m = a->m;
    struct queue *q = m->q;
    q->inflight--;
    /* A delivery slot is free: the next ready message starts now, not at the next tick
     * (waiting for the tick paced a backlog at max_inflight messages per second). */
    queue_kick(q);
    time_t now = time(NULL);
    m->st.attempts++;
    size_t pending = 0;
    for (size_t k = 0; k < n && k < a->n; k++) {
        size_t i = a->idx[k];
        char qr[700], qh[400];
        const char *ev = res[k].cls == DELIVERY_OK ? "send"
                         : res[k].cls == DELIVERY_PERM ? "fail" : "defer";
        log_fact(m->id, "queue", ev, "from=<%s> to=<%s> relay=%s reply=%s attempt=%u",
                 m->sender, m->rcpts[i], log_quote(res[k].remote[0] ? res[k].remote : "-", qh,
                                                   sizeof qh),
                 log_quote(res[k].reply, qr, sizeof qr), m->st.attempts);
        enum spool_rcpt_status s = res[k].cls == DELIVERY_OK     ? SPOOL_RCPT_DONE
                                   : res[k].cls == DELIVERY_PERM ? SPOOL_RCPT_FAILED
                                                                 : SPOOL_RCPT_PENDING;
        spool_state_set(&m->st, i, s, res[k].reply);
    }
    for (size_t i = 0; i < m->nrcpts; i++)
        pending += m->st.status[i] == SPOOL_RCPT_PENDING;
    free(a->idx);
    free(a);
    if (pending && now - m->received >= (time_t)q->o.lifetime) {
        for (size_t i = 0; i < m->nrcpts; i++) {
            if (m->st.status[i] != SPOOL_RCPT_PENDING)
                continue;
            char why[SPOOL_DIAG_MAX + 64];
            snprintf(why, sizeof why, "4.4.7 message expired after %u attempts; last reply: %s",
                     m->st.attempts, m->st.diag[i] ? m->st.diag[i] : "none");
            spool_state_set(&m->st, i, SPOOL_RCPT_FAILED, why);
            log_fact(m->id, "queue", "expire", "to=<%s> age=%lld", m->rcpts[i],
                     (long long)(now - m->received));
        }
        pending = 0;
    }
    if (m->removed) {
        q->busy--;
        qmsg_free(m);
        return;
    }
    if (pending) {
        m->st.next_attempt = now + backoff(q, m->st.attempts);
        qmsg_save_state(q, m);
        return;
    }
    qmsg_finish(q, m);
}

static void qmsg_attempt(struct queue *q, struct qmsg *m)
{
    struct attempt *a = xcalloc(1, sizeof *a);
    a->m = m;
    a->idx = xcalloc(m->nrcpts ? m->nrcpts : 1, sizeof *a->idx);
    const char **rcpts = xcalloc(m->nrcpts ? m->nrcpts : 1, sizeof *rcpts);
    for (size_t i = 0; i < m->nrcpts; i++)
        if (m->st.status[i] == SPOOL_RCPT_PENDING) {
            a->idx[a->n] = i;
            rcpts[a->n++] = m->rcpts[i];
        }
    m->where = Q_BUSY;
    q->busy++;
    if (a->n == 0) {              /* everything already settled (e.g. a crash before removal) */
        free(a->idx);
        free(a);
        free(rcpts);
        qmsg_finish(q, m);
        return;
    }
    q->inflight++;
    delivery_start(q->d, m->id, m->sender, rcpts, a->n, attempt_done, a);
    free(rcpts);
}

static void on_kick(evutil_socket_t fd, short what, void *arg)
{
    struct queue *q = arg;
    if (!q->n->snap || q->o.hold)
        return;                   /* no configuration yet (the tick tries again), or held */
    while (!q->stopping && q->ready.head && q->inflight < q->o.max_inflight) {
        struct qmsg *m = q->ready.head;
        qlist_del(&q->ready, m);
        qmsg_attempt(q, m);
    }
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    struct queue *q = arg;
    time_t now = time(NULL);
    /* The walk is O(waiting): skipped while nothing can be due, so a large deferred queue
     * costs the loop nothing per tick (issue 13). */
    if (q->next_due <= now) {
        time_t next_due = TIME_MAX;
        for (struct qmsg *m = q->waiting.head, *next; m; m = next) {
            next = m->next;
            if (m->st.next_attempt <= now) {
                qlist_del(&q->waiting, m);
                m->where = Q_READY;
                qlist_push(&q->ready, m);
            } else if (m->st.next_attempt < next_due) {
                next_due = m->st.next_attempt;
            }
        }
        q->next_due = next_due;
    }
    on_kick(-1, 0, q);
}

/* ---- public ---- */

void queue_add(struct queue *q, const char *id, const char *sender, const char *const *rcpts,
               size_t n, time_t received)
{
    if (q->stopping)
        return;                   /* committed: the next start loads it from the spool */
    struct qmsg *m = qmsg_new(q, id, sender, rcpts, n, received);
    spool_state_init(&m->st, n);
    log_fact(id, "queue", "receive", "from=<%s> rcpts=%zu", m->sender, n);
    qmsg_place(q, m);
}

static int load_one(const struct spool_entry *e, void *arg)
{
    struct queue *q = arg;
    struct qmsg *m = qmsg_new(q, e->id, e->sender, (const char *const *)e->rcpts, e->nrcpts,
                              e->received);
    char err[256];
    if (spool_state_read(q->n->spool, e->id, e->nrcpts, &m->st, err, sizeof err) < 0) {
        char qe[512];
        log_fact(e->id, "queue", "state-unreadable", "error=%s action=retry-all-pending",
                 log_quote(err, qe, sizeof qe));
    }
    qmsg_place(q, m);
    return 0;
}

struct queue *queue_new(struct node *n, struct delivery *d, const struct queue_opts *o,
                        char *err, size_t errlen)
{
    struct queue *q = xcalloc(1, sizeof *q);
    q->n = n;
    q->d = d;
    q->o = *o;
    q->next_due = TIME_MAX;
    if (q->o.max_inflight == 0)
        q->o.max_inflight = 1;
    if (q->o.retry_min == 0)
        q->o.retry_min = 1;
    if (q->o.retry_max < q->o.retry_min)
        q->o.retry_max = q->o.retry_min;
    q->ev_kick = event_new(n->base, -1, 0, on_kick, q);
    q->ev_tick = event_new(n->base, -1, EV_PERSIST, on_tick, q);
    struct timeval tv = {TICK_S, 0};
    if (!q->ev_kick || !q->ev_tick || event_add(q->ev_tick, &tv) < 0) {
        queue_free(&q);
        rn_err(err, errlen, "queue: cannot create its events");
        return NULL;
    }
    if (spool_foreach(n->spool, load_one, q, err, errlen) < 0) {
        queue_free(&q);
        return NULL;
    }
    log_fact("-", "queue", "loaded", "messages=%zu due=%zu", q->ready.n + q->waiting.n,
             q->ready.n);
    return q;
}

void queue_stop(struct queue *q)
{
    q->stopping = true;
    if (q->ev_tick)
        event_del(q->ev_tick);
    if (q->ev_kick)
        event_del(q->ev_kick);
}

void queue_free(struct queue **qp)
{
    struct queue *q = *qp;
    if (!q)
        return;
    q->stopping = true;
    struct qlist *lists[] = {&q->ready, &q->waiting};
    for (size_t i = 0; i < 2; i++)
        while (lists[i]->head) {
            struct qmsg *m = lists[i]->head;
            qlist_del(lists[i], m);
            qmsg_free(m);
        }
    if (q->ev_kick)
        event_free(q->ev_kick);
    if (q->ev_tick)
        event_free(q->ev_tick);
    free(q);
    *qp = NULL;
}

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
        qmsg_free(m);
        return;
    }
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
    qmsg_release(q, m);
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
        qlist_del(&q->waiting, m);
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
        on_tick(-1, 0, q);
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
    on_tick(-1, 0, q);
    if (!q->scanning)
        rescan_next(q);
}

int queue_rescanning(const struct queue *q)
{
    return q->scan_wanted || q->scanning;
}

void queue_counts(const struct queue *q, size_t *ready, size_t *waiting, size_t *busy)
{
    *ready = q->ready.n;
    *waiting = q->waiting.n;
    *busy = q->busy;
}
