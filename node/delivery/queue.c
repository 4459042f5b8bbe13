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
#include "node/delivery/queue-private.h"

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
#include "node/metrics/relaymetrics.h"
#include "node/spool/spool.h"
#include "node/common/fault.h"
#include "node/common/worker.h"

#define TICK_S 1
void queue_list_push(struct qlist *l, struct qmsg *m)
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

void queue_list_del(struct qlist *l, struct qmsg *m)
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

/* by_age: the list of every message in received order, so the oldest is its head. A new
 * message is received now and goes at the tail (walking back over any clock step); the
 * spool's messages are sorted once at load (age_sort). */
static void age_insert(struct queue *q, struct qmsg *m)
{
    struct qmsg *after = q->age_tail;
    while (after && after->received > m->received)
        after = after->age_prev;
    m->age_prev = after;
    m->age_next = after ? after->age_next : q->age_head;
    if (m->age_next)
        m->age_next->age_prev = m;
    else
        q->age_tail = m;
    if (after)
        after->age_next = m;
    else
        q->age_head = m;
}

/* At load: appended as the spool lists them, sorted once at the end (age_sort). */
static void age_append(struct queue *q, struct qmsg *m)
{
    m->age_prev = q->age_tail;
    m->age_next = NULL;
    if (q->age_tail)
        q->age_tail->age_next = m;
    else
        q->age_head = m;
    q->age_tail = m;
}

static void age_remove(struct queue *q, struct qmsg *m)
{
    if (m->age_prev)
        m->age_prev->age_next = m->age_next;
    else if (q->age_head == m)
        q->age_head = m->age_next;
    if (m->age_next)
        m->age_next->age_prev = m->age_prev;
    else if (q->age_tail == m)
        q->age_tail = m->age_prev;
    m->age_prev = m->age_next = NULL;
}

static int age_cmp(const void *a, const void *b)
{
    time_t x = (*(struct qmsg *const *)a)->received, y = (*(struct qmsg *const *)b)->received;
    return x < y ? -1 : x > y;
}

/* After the load (before the loop runs): the spool's order is not received order. */
static void age_sort(struct queue *q)
{
    size_t n = 0;
    for (struct qmsg *m = q->age_head; m; m = m->age_next)
        n++;
    if (n < 2)
        return;
    struct qmsg **v = xcalloc(n, sizeof *v);
    n = 0;
    for (struct qmsg *m = q->age_head; m; m = m->age_next)
        v[n++] = m;
    qsort(v, n, sizeof *v, age_cmp);
    q->age_head = q->age_tail = NULL;
    for (size_t i = 0; i < n; i++)
        age_append(q, v[i]);
    free(v);
}

time_t queue_oldest(const struct queue *q)
{
    return q->age_head ? q->age_head->received : 0;
}

void queue_msg_free(struct qmsg *m)
{
    age_remove(m->q, m);
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
        queue_list_push(&q->ready, m);
        queue_kick(q);
    } else {
        m->where = Q_WAITING;
        queue_list_push(&q->waiting, m);
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

void queue_msg_release(struct queue *q, struct qmsg *m)
{
    q->busy--;
    if (q->stopping || m->removed) {
        queue_msg_free(m);
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
    queue_msg_release(m->q, m);
}

static void remove_run(void *arg)
{
    struct qjob *j = arg;
    j->rc = spool_remove(j->m->q->n->spool, j->m->id, j->m->state_written, j->err,
                         sizeof j->err);
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
    queue_msg_free(m);
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
    m->state_written = true;      /* even a failed write may leave the file */
    qmsg_job(q, m, state_run, state_done);
}

struct bounce {
    struct qmsg *m;               /* in flight (q->busy) */
    struct spool_msg *sm;         /* owned: the DSN written on the worker, until committed */
    char dsn_id[64];
    char err[256];
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

/* Worker thread: the DSN for b->m written to a new spool message (m is in flight, so the
 * loop does not touch it meanwhile). */
static void bounce_build_run(void *arg)
{
    struct bounce *b = arg;
    fault_sleep("dsn");
    b->sm = queue_dsn(b->m->q, b->m, b->err, sizeof b->err);
    if (b->sm)
        rn_strlcpy(b->dsn_id, spool_msg_id(b->sm), sizeof b->dsn_id);
}

/* Loop: commit the DSN like any accepted message, or retry the bounce later. */
static void bounce_build_done(void *arg)
{
    struct bounce *b = arg;
    struct qmsg *m = b->m;
    struct queue *q = m->q;
    if (!b->sm) {
        char qe[512];
        log_fact(m->id, "queue", "dsn-failed", "error=%s retry_in=%u",
                 log_quote(b->err, qe, sizeof qe), q->o.retry_min);
        free(b);
        m->st.next_attempt = time(NULL) + q->o.retry_min;
        qmsg_save_state(q, m);
        return;
    }
    committer_submit(q->n->committer, &b->sm, bounce_done, b);
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
    struct bounce *b = xcalloc(1, sizeof *b);
    b->m = m;
    /* Reading the original's headers and writing the DSN are disk work: on the worker
     * (docs/style.md 7); while the node stops (the worker may be gone) here instead. */
    if (q->stopping) {
        bounce_build_run(b);
        bounce_build_done(b);
    } else {
        worker_submit(q->n->worker, bounce_build_run, bounce_build_done, b);
    }
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
        if (q->n->metrics)
            metrics_inc(q->n->metrics->deliveries[res[k].cls == DELIVERY_OK     ? RM_DELIVERED
                                                  : res[k].cls == DELIVERY_PERM ? RM_FAILED
                                                                                : RM_DEFERRED],
                        1);
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
            if (q->n->metrics)
                metrics_inc(q->n->metrics->deliveries[RM_EXPIRED], 1);
        }
        pending = 0;
    }
    if (m->removed) {
        q->busy--;
        queue_msg_free(m);
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
        queue_list_del(&q->ready, m);
        qmsg_attempt(q, m);
    }
}

void queue_tick(evutil_socket_t fd, short what, void *arg)
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
                queue_list_del(&q->waiting, m);
                m->where = Q_READY;
                queue_list_push(&q->ready, m);
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
    age_insert(q, m);
    spool_state_init(&m->st, n);
    log_fact(id, "queue", "receive", "from=<%s> rcpts=%zu", m->sender, n);
    qmsg_place(q, m);
}

static int load_one(const struct spool_entry *e, void *arg)
{
    struct queue *q = arg;
    struct qmsg *m = qmsg_new(q, e->id, e->sender, (const char *const *)e->rcpts, e->nrcpts,
                              e->received);
    age_append(q, m);
    char err[256];
    int rc = spool_state_read(q->n->spool, e->id, e->nrcpts, &m->st, err, sizeof err);
    m->state_written = rc != 1;   /* 1: no state file */
    if (rc < 0) {
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
    q->ev_tick = event_new(n->base, -1, EV_PERSIST, queue_tick, q);
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
    age_sort(q);
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
            queue_list_del(lists[i], m);
            queue_msg_free(m);
        }
    if (q->ev_kick)
        event_free(q->ev_kick);
    if (q->ev_tick)
        event_free(q->ev_tick);
    free(q);
    *qp = NULL;
}

void queue_counts(const struct queue *q, size_t *ready, size_t *waiting, size_t *busy)
{
    *ready = q->ready.n;
    *waiting = q->waiting.n;
    *busy = q->busy;
}
