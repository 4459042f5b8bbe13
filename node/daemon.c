/* daemon: the process around the SMTP sessions (see daemon.h).
 *
 * Startup order matters: bootstrap and log first (so every later failure is reported where
 * the operator looks), then the spool (spool_open removes tmp/ leftovers of a crash), then the
 * detach, and only then threads and the event base (threads do not survive fork).
 * Snapshot loads block on LDAP, so they run on the worker pool (STYLE.md 7); the done callback
 * swaps n->snap on the loop thread. Sessions hold their own snapshot references, so the swap
 * never frees a snapshot under a live session. At most one load is in flight; a SIGHUP during
 * a load is remembered and served when it finishes. A failed load keeps the last good
 * snapshot and retries with backoff 1 s .. 30 s; before the first success nothing listens:
 * no snapshot, no service (never fail open). */
#include "node/daemon.h"
#include "node/committer.h"
#include "node/conncount.h"
#include <errno.h>
#include <event2/event.h>
#include <event2/thread.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "directory/ldapdir.h"
#include "directory/model.h"
#include "directory/util.h"
#include "node/listener.h"
#include "node/delivery.h"
#include "node/log.h"
#include "node/queue.h"
#include "node/saslauth.h"
#include "node/tlsctx.h"
#include "node/node.h"
#include "node/spool.h"
#include "node/worker.h"

#define WORKER_THREADS   2
#define AUTH_THREADS     4        /* AUTH binds may each wait ldap_timeout on a sick directory */
#define RELOAD_PERIOD_S  60     /* safety net until the cluster notifier tells us of changes */
#define BACKOFF_MIN_S    1
#define BACKOFF_MAX_S    30
#define DRAIN_TICK_MS    100

struct daemon {
    struct node n;
    struct listeners *listeners;      /* owned */
    struct ldapdir *dir;              /* owned; touched only by the (single) load job */
    struct event *ev_hup, *ev_term, *ev_int, *ev_usr1;   /* owned signal events */
    struct event *ev_reload;          /* owned: periodic reload */
    struct event *ev_retry;           /* owned: retry after a failed load */
    struct event *ev_drain;           /* owned: drain progress tick */
    bool loading;                     /* a load job is in flight */
    bool reload_pending;              /* SIGHUP arrived during a load */
    bool stopping;                    /* teardown: load results are discarded */
    bool sasl;                        /* saslauth_init succeeded */
    unsigned backoff;                 /* seconds before the next retry */
    unsigned drain_timeout;           /* seconds */
    struct timespec drain_deadline;
    uint64_t loads_failed;
};

struct load_job {
    struct daemon *d;
    struct rn_snapshot *snap;         /* result, owned until swapped in */
    enum dir_result rc;
    char err[RN_ERRLEN];
};

static void load_start(struct daemon *d);

/* Worker thread: connect if needed, then load. The connection is dropped after a failure so
 * the next attempt reconnects (the server may have restarted or moved to the next URI). */
static void load_run(void *arg)
{
    struct load_job *j = arg;
    struct daemon *d = j->d;
    j->rc = DIR_FOUND;
    if (!d->dir)
        j->rc = ldapdir_open(&d->n.boot, &d->dir, j->err, sizeof j->err);
    if (j->rc == DIR_FOUND)
        j->rc = ldapdir_load_snapshot(d->dir, &d->n.boot, &j->snap, j->err, sizeof j->err);
    if (j->rc != DIR_FOUND) {
        ldapdir_free(&d->dir);
        if (j->snap)
            snapshot_unref(&j->snap);
    }
}

static const char *dir_result_name(enum dir_result r)
{
    switch (r) {
    case DIR_FOUND: return "found";
    case DIR_NOTFOUND: return "notfound";
    case DIR_TEMPFAIL: return "tempfail";
    default: return "fail";
    }
}

static void snapshot_swap(struct daemon *d, struct rn_snapshot *snap)
{
    struct node *n = &d->n;
    char qv[256];
    bool first = n->snap == NULL;
    if (n->snap)
        snapshot_unref(&n->snap);   /* sessions hold their own references */
    n->snap = snap;
    n->snap_generation++;
    log_fact("-", "config", first ? "load" : "reload",
             "version=%s connectors=%zu errors=%zu domains=%zu generation=%llu",
             log_quote(snap->version, qv, sizeof qv), snap->nconnectors, snap->nerrors,
             snap->ndomains, (unsigned long long)n->snap_generation);
    for (size_t i = 0; i < snap->nerrors; i++) {
        char qe[1024];
        log_fact("-", "config", "refused", "error=%s", log_quote(snap->errors[i], qe, sizeof qe));
    }
    size_t failed = listeners_reconcile(d->listeners, snap);
    log_fact("-", "listener", "reconciled", "listeners=%zu failed=%zu",
             listeners_count(d->listeners), failed);
}

/* Loop thread: apply a finished load, or keep the last good snapshot and schedule a retry. */
static void load_done(void *arg)
{
    struct load_job *j = arg;
    struct daemon *d = j->d;
    d->loading = false;
    if (d->stopping || d->n.draining) {
        if (j->snap)
            snapshot_unref(&j->snap);
        free(j);
        return;
    }
    if (j->rc == DIR_FOUND && d->n.snap && j->snap->version && d->n.snap->version &&
        strcmp(j->snap->version, d->n.snap->version) == 0) {
        /* Same directory version (the periodic safety net, mostly): keep the snapshot the
         * sessions already share; only retry bindings that failed to open. */
        char qv[256];
        log_fact("-", "config", "unchanged", "version=%s",
                 log_quote(j->snap->version, qv, sizeof qv));
        snapshot_unref(&j->snap);
        listeners_reconcile(d->listeners, d->n.snap);
        d->backoff = BACKOFF_MIN_S;
        evtimer_del(d->ev_retry);
    } else if (j->rc == DIR_FOUND) {
        snapshot_swap(d, j->snap);
        j->snap = NULL;
        d->backoff = BACKOFF_MIN_S;
        evtimer_del(d->ev_retry);
    } else {
        char qe[RN_ERRLEN + 64];
        d->loads_failed++;
        log_fact("-", "config", "load-failed",
                 "result=%s error=%s retry_in=%u keeping=%s failures=%llu",
                 dir_result_name(j->rc), log_quote(j->err, qe, sizeof qe), d->backoff,
                 d->n.snap ? "last-good" : "none",
                 (unsigned long long)d->loads_failed);
        struct timeval tv = {d->backoff, 0};
        evtimer_add(d->ev_retry, &tv);
        d->backoff = d->backoff * 2 > BACKOFF_MAX_S ? BACKOFF_MAX_S : d->backoff * 2;
    }
    free(j);
    if (d->reload_pending) {
        d->reload_pending = false;
        load_start(d);
    }
}

static void load_start(struct daemon *d)
{
    if (d->stopping || d->n.draining)
        return;
    if (d->loading) {
        d->reload_pending = true;
        return;
    }
    struct load_job *j = xcalloc(1, sizeof *j);
    j->d = d;
    d->loading = true;
    evtimer_del(d->ev_retry);
    worker_submit(d->n.worker, load_run, load_done, j);
}

/* SIGUSR1 (relayctl queue retry): the queue re-reads the delivery state of waiting messages. */
static void on_queue_rescan(evutil_socket_t fd, short what, void *arg)
{
    struct daemon *d = arg;
    log_fact("-", "queue", "rescan-requested", "by=SIGUSR1");
    if (d->n.queue)
        queue_rescan(d->n.queue);
}

static void on_reload_event(evutil_socket_t fd, short what, void *arg)
{
    struct daemon *d = arg;
    if (what & EV_SIGNAL)
        log_fact("-", "config", "reload-requested", "by=SIGHUP");
    load_start(d);
}

static double since(const struct timespec *a, const struct timespec *b)
{
    return (double)(b->tv_sec - a->tv_sec) + (double)(b->tv_nsec - a->tv_nsec) / 1e9;
}

static void on_drain_tick(evutil_socket_t fd, short what, void *arg)
{
    struct daemon *d = arg;
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    bool timed_out = since(&d->drain_deadline, &now) >= 0;
    if (d->n.nsessions == 0 || timed_out) {
        log_fact("-", "node", "stop", "sessions=%llu reason=%s",
                 (unsigned long long)d->n.nsessions, timed_out && d->n.nsessions ? "drain-timeout"
                                                                                 : "drained");
        event_base_loopbreak(d->n.base);
    }
}

static void on_term(evutil_socket_t sig, short what, void *arg)
{
    struct daemon *d = arg;
    if (d->n.draining) {             /* a second signal: the operator wants out now */
        log_fact("-", "node", "stop", "sessions=%llu reason=second-signal",
                 (unsigned long long)d->n.nsessions);
        event_base_loopbreak(d->n.base);
        return;
    }
    d->n.draining = true;
    log_fact("-", "node", "drain", "signal=%s sessions=%llu timeout=%u",
             sig == SIGINT ? "SIGINT" : "SIGTERM", (unsigned long long)d->n.nsessions,
             d->drain_timeout);
    listeners_free(&d->listeners);     /* stop accepting: connects are refused from now on */
    smtp_session_drain(&d->n);         /* idle sessions go now, the others after their message */
    evtimer_del(d->ev_reload);
    evtimer_del(d->ev_retry);
    clock_gettime(CLOCK_MONOTONIC, &d->drain_deadline);
    d->drain_deadline.tv_sec += d->drain_timeout;
    struct timeval tv = {0, DRAIN_TICK_MS * 1000};
    event_add(d->ev_drain, &tv);
    on_drain_tick(-1, 0, d);
}

/* Parse a bootstrap number; -1 with err naming the key. */
static int parse_num(const char *key, const char *s, unsigned long min, unsigned long max,
                     unsigned long *out, char *err, size_t errlen)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(s ? s : "", &end, 10);
    if (!s || !*s || *end || errno || v < min || v > max)
        return rn_err(err, errlen, "%s: '%s' is not a number in %lu..%lu", key, s ? s : "",
                      min, max);
    *out = v;
    return 0;
}

static int write_pidfile(const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return rn_err(err, errlen, "pidfile %s: %s", path, strerror(errno));
    fprintf(f, "%ld\n", (long)getpid());
    if (fclose(f) != 0)
        return rn_err(err, errlen, "pidfile %s: %s", path, strerror(errno));
    return 0;
}

/* Classic double fork: the first child leaves the session of the shell, the second can never
 * reacquire a controlling terminal. The original process exits 0 once the second child runs. */
static int daemonize(char *err, size_t errlen)
{
    pid_t p = fork();
    if (p < 0)
        return rn_err(err, errlen, "fork: %s", strerror(errno));
    if (p > 0)
        _exit(0);
    if (setsid() < 0)
        return rn_err(err, errlen, "setsid: %s", strerror(errno));
    p = fork();
    if (p < 0)
        return rn_err(err, errlen, "fork: %s", strerror(errno));
    if (p > 0)
        _exit(0);
    umask(027);
    int fd = open("/dev/null", O_RDWR);
    if (fd >= 0) {
        dup2(fd, 0); dup2(fd, 1); dup2(fd, 2);
        if (fd > 2)
            close(fd);
    }
    return 0;
}

static int node_setup(struct daemon *d, const struct daemon_opts *o, char *err, size_t errlen)
{
    struct node *n = &d->n;
    unsigned long v;
    if (bootstrap_load(o->conf, &n->boot, err, errlen) < 0)
        return -1;
    if (parse_num("max_command_line", n->boot.max_command_line, 64, 1 << 20, &v, err,
                  errlen) < 0)
        return -1;
    n->max_command_line = v;
    if (parse_num("max_text_line", n->boot.max_text_line, 64, 1 << 20, &v, err, errlen) < 0)
        return -1;
    n->max_text_line = v;
    if (parse_num("drain_timeout", n->boot.drain_timeout, 0, 86400, &v, err, errlen) < 0)
        return -1;
    unsigned long reserve;
    if (parse_num("spool_reserve", n->boot.spool_reserve, 0, ~0UL, &reserve, err, errlen) < 0)
        return -1;
    n->spool_reserve = reserve;
    d->drain_timeout = (unsigned)v;
    /* Detached, stderr is /dev/null: "stderr" would lose every line, so use syslog. */
    const char *target = n->boot.log;
    if (!o->foreground && (!target || !*target || strcmp(target, "stderr") == 0))
        target = "syslog";
    if (log_open(target, err, errlen) < 0)
        return -1;
    protolog_set_dir(n->boot.protocol_log_dir);
    char serr[RN_ERRLEN];
    /* A node must own its spool. The lock may be held for a moment by relayctl (queue
     * verbs, --list-spool), so wait a little before concluding another node runs there. */
    for (int tries = 0;; tries++) {
        if (spool_open(n->boot.spool_dir, &n->spool, serr, sizeof serr) < 0) {
            rn_err(err, errlen, "spool: %s", serr);
            return -1;
        }
        if (spool_is_owner(n->spool))
            break;
        spool_free(&n->spool);
        if (tries == 50) {
            rn_err(err, errlen, "spool %s is in use by pid %ld (another relaynode?)",
                   n->boot.spool_dir, (long)spool_owner_pid(n->boot.spool_dir));
            return -1;
        }
        usleep(100 * 1000);
    }
    bool cert = n->boot.tls_cert && *n->boot.tls_cert, key = n->boot.tls_key && *n->boot.tls_key;
    if (cert != key)
        return rn_err(err, errlen, "tls_cert and tls_key go together (one is empty)");
    if (cert) {
        char terr[RN_ERRLEN];
        n->tls = tlsctx_new(n->boot.tls_cert, n->boot.tls_key, terr, sizeof terr);
        if (!n->tls)
            return rn_err(err, errlen, "tls: %s", terr);
    }
    if (saslauth_init(err, errlen) < 0)
        return -1;
    d->sasl = true;
    const struct spool_quarantined *q;
    size_t nq = spool_quarantine_list(n->spool, &q);
    for (size_t i = 0; i < nq; i++) {
        char qn[512], qr[1024];
        log_fact("-", "spool", "quarantined", "file=%s reason=%s",
                 log_quote(q[i].name, qn, sizeof qn), log_quote(q[i].reason, qr, sizeof qr));
    }
    return 0;
}

static int loop_setup(struct daemon *d, char *err, size_t errlen)
{
    struct node *n = &d->n;
    if (evthread_use_pthreads() < 0)
        return rn_err(err, errlen, "evthread_use_pthreads failed");
    n->base = event_base_new();
    if (!n->base)
        return rn_err(err, errlen, "event_base_new failed");
    n->worker = worker_new(n->base, WORKER_THREADS);
    if (!n->worker)
        return rn_err(err, errlen, "worker pool: cannot start %d threads", WORKER_THREADS);
    d->listeners = listeners_new(n);
    n->conns = conncount_new();
    n->authworker = worker_new(n->base, AUTH_THREADS);
    if (!n->authworker)
        return rn_err(err, errlen, "auth worker pool: cannot start %d threads", AUTH_THREADS);
    n->committer = committer_new(n->base);
    if (!n->committer)
        return rn_err(err, errlen, "committer: cannot start its thread");
    d->ev_hup = evsignal_new(n->base, SIGHUP, on_reload_event, d);
    d->ev_usr1 = evsignal_new(n->base, SIGUSR1, on_queue_rescan, d);
    d->ev_term = evsignal_new(n->base, SIGTERM, on_term, d);
    d->ev_int = evsignal_new(n->base, SIGINT, on_term, d);
    d->ev_reload = event_new(n->base, -1, EV_PERSIST, on_reload_event, d);
    d->ev_retry = evtimer_new(n->base, on_reload_event, d);
    d->ev_drain = event_new(n->base, -1, EV_PERSIST, on_drain_tick, d);
    struct timeval period = {RELOAD_PERIOD_S, 0};
    if (!d->ev_hup || !d->ev_term || !d->ev_int || !d->ev_usr1 || !d->ev_reload ||
        !d->ev_retry || !d->ev_drain || event_add(d->ev_hup, NULL) < 0 ||
        event_add(d->ev_usr1, NULL) < 0 || event_add(d->ev_term, NULL) < 0 ||
        event_add(d->ev_int, NULL) < 0 || event_add(d->ev_reload, &period) < 0)
        return rn_err(err, errlen, "cannot register signal and timer events");
    signal(SIGPIPE, SIG_IGN);         /* a peer that vanishes mid-write is an EPIPE, not death */
    n->delivery = delivery_new(n, err, errlen);
    if (!n->delivery)
        return -1;
    unsigned long life, rmin, rmax, conc;
    if (parse_num("queue_lifetime", n->boot.queue_lifetime, 1, 365UL * 86400, &life, err,
                  errlen) < 0 ||
        parse_num("retry_min", n->boot.retry_min, 1, 86400, &rmin, err, errlen) < 0 ||
        parse_num("retry_max", n->boot.retry_max, 1, 7 * 86400, &rmax, err, errlen) < 0 ||
        parse_num("delivery_concurrency", n->boot.delivery_concurrency, 1, 10000, &conc, err,
                  errlen) < 0)
        return -1;
    const char *hold = n->boot.queue_hold ? n->boot.queue_hold : "no";
    if (strcmp(hold, "yes") != 0 && strcmp(hold, "no") != 0)
        return rn_err(err, errlen, "queue_hold: '%s' is not yes or no", hold);
    struct queue_opts qo = {(unsigned)life, (unsigned)rmin, (unsigned)rmax, (unsigned)conc,
                            strcmp(hold, "yes") == 0};
    n->queue = queue_new(n, n->delivery, &qo, err, errlen);
    if (!n->queue)
        return -1;
    return 0;
}

static void daemon_teardown(struct daemon *d)
{
    struct node *n = &d->n;
    d->stopping = true;
    listeners_free(&d->listeners);
    if (n->queue)
        queue_stop(n->queue);         /* no new attempts; results from now on recorded inline */
    worker_free(&n->worker);          /* spool reads for attempts, state writes, a load */
    delivery_free(&n->delivery);      /* open connections and lookups end as temporary */
    if (n->committer) {
        unsigned long long batches, msgs;
        committer_stats(n->committer, &batches, &msgs);
        log_fact("-", "spool", "commit-stats", "batches=%llu messages=%llu", batches, msgs);
    }
    committer_free(&n->committer);    /* pending commits finish and are answered */
    worker_free(&n->authworker);      /* AUTH steps in flight finish (directory timeout) */
    worker_free(&n->worker);          /* waits for an in-flight load; its result is dropped */
    smtp_session_free_all(n);         /* sessions the drain timeout left open */
    queue_free(&n->queue);
    conncount_free(&n->conns);
    struct event **evs[] = {&d->ev_hup, &d->ev_usr1, &d->ev_term, &d->ev_int, &d->ev_reload,
                            &d->ev_retry,
                            &d->ev_drain};
    for (size_t i = 0; i < sizeof evs / sizeof evs[0]; i++)
        if (*evs[i]) {
            event_free(*evs[i]);
            *evs[i] = NULL;
        }
    ldapdir_free(&d->dir);
    if (n->snap)
        snapshot_unref(&n->snap);
    spool_free(&n->spool);
    tlsctx_free(&n->tls);
    if (d->sasl)
        saslauth_done();
    if (n->base) {
        event_base_free(n->base);
        n->base = NULL;
    }
    bootstrap_clear(&n->boot);
}

int daemon_run(const struct daemon_opts *o)
{
    struct daemon *d = xcalloc(1, sizeof *d);
    char err[RN_ERRLEN];
    int rc = 1;
    bool logging = false;
    d->backoff = BACKOFF_MIN_S;
    if (node_setup(d, o, err, sizeof err) < 0)
        goto out;
    logging = true;
    if (!o->foreground && daemonize(err, sizeof err) < 0)
        goto out;
    if (o->pidfile && write_pidfile(o->pidfile, err, sizeof err) < 0)
        goto out;
    if (loop_setup(d, err, sizeof err) < 0)
        goto out;
    log_fact("-", "node", "start", "node=%s pid=%ld foreground=%s", d->n.boot.node,
             (long)getpid(), o->foreground ? "yes" : "no");
    load_start(d);                    /* listeners open when the first snapshot arrives */
    event_base_dispatch(d->n.base);
    rc = 0;
    log_fact("-", "node", "exit", "status=%d", rc);
out:
    if (rc != 0) {
        char qe[RN_ERRLEN + 64];
        if (logging)
            log_fact("-", "node", "start-failed", "error=%s", log_quote(err, qe, sizeof qe));
        fprintf(stderr, "relaynode: %s\n", err);
    }
    if (o->pidfile && rc == 0)
        unlink(o->pidfile);
    daemon_teardown(d);
    free(d);
    log_close();
    return rc;
}
