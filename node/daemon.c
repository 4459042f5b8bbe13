/* daemon: the process around the SMTP sessions (see daemon.h): the run loop, snapshot loads
 * and what is done with them, signals, the drain and teardown. Setup is in daemon_setup.c,
 * the cluster side in daemon_cluster.c (daemon-private.h).
 *
 * Startup order matters: bootstrap and log first (so every later failure is reported where
 * the operator looks), then the spool (spool_open removes tmp/ leftovers of a crash), then the
 * detach, and only then threads and the event base (threads do not survive fork).
 * Snapshot loads block on LDAP, so they run on the worker pool (docs/style.md 7); the done callback
 * swaps n->snap on the loop thread. Sessions hold their own snapshot references, so the swap
 * never frees a snapshot under a live session. At most one load is in flight; a SIGHUP during
 * a load is remembered and served when it finishes. A failed load keeps the last good
 * snapshot and retries with backoff 1 s .. 30 s; before the first success nothing listens:
 * no snapshot, no service (never fail open). What a finished load means (failed, unchanged,
 * older, apply) is reload_decide's pure decision (reload.h); this file acts on it.
 *
 * Cluster (schema/cluster-protocol.md §5): the change watcher (ldapsync, its own thread)
 * reports the version of the node's own directory server; the bus (cluster) brings NOTICEs
 * and peers' HEARTBEATs. Every version learned goes through clusterver_decide: old news is
 * ignored, news the local replica has triggers a load, news it lacks waits for the watcher.
 * A load is swapped in only if it is not older than what runs (clusterver_accept). */
#include "node/daemon.h"
#include <event2/event.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>
#include "directory/ldap/ldapadmin.h"
#include "directory/ldap/ldapdir.h"
#include "directory/ldap/ldapsync.h"
#include "directory/model.h"
#include "directory/snapdelta.h"
#include "directory/base/util.h"
#include "node/cluster/cluster.h"
#include "node/daemon-private.h"
#include "node/listener.h"
#include "node/metrics/relaymetrics.h"
#include "node/reload.h"
#include "node/delivery/delivery.h"
#include "node/common/log.h"
#include "node/common/looplat.h"
#include "node/common/notify.h"
#include "node/delivery/queue.h"
#include "node/milter/milter.h"
#include "node/smtp/conncount.h"
#include "node/smtp/saslauth.h"
#include "node/spool/committer.h"
#include "node/common/tlsctx.h"
#include "node/common/node.h"
#include "node/smtp/smtp_session.h"
#include "node/spool/spool.h"
#include "node/common/worker.h"

/* Worker thread: connect if needed, then load. The connection is dropped after a failure so
 * the next attempt reconnects (the server may have restarted or moved to the next URI). */
static void load_run(void *arg)
{
    struct load_job *j = arg;
    struct daemon *d = j->d;
    j->rc = DIR_FOUND;
    if (!d->dir)
        j->rc = ldapdir_open(&d->n.boot, &d->dir, j->err, sizeof j->err);
    if (j->rc == DIR_FOUND)           /* incremental when it can be, else full */
        j->rc = daemon_incr_load(d, j);
    if (j->rc == DIR_FOUND && j->want_nodes)
        j->rc = ldapadmin_list_nodes(d->dir, d->n.boot.base_dn, &j->nodes, &j->nnodes, j->err,
                                     sizeof j->err);
    if (j->rc != DIR_FOUND) {
        ldapdir_free(&d->dir);
        if (j->snap)
            snapshot_unref(&j->snap);
    }
    if (j->snap)                     /* the certificates its connectors add, read here */
        daemon_certs_read(d, &j->certs, j->snap);
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

/* Swap a loaded snapshot in: log it, load the certificates its connectors name, and make the
 * listeners follow it. */
static void snapshot_swap(struct daemon *d, struct rn_snapshot *snap, struct certs_job *certs,
                          double load_ms)
{
    struct node *n = &d->n;
    char qv[QVER];
    bool first = n->snap == NULL;
    if (n->snap)
        snapshot_unref(&n->snap);   /* sessions hold their own references */
    n->snap = snap;
    n->snap_generation++;
    log_fact("-", "config", first ? "load" : "reload",
             "version=%s connectors=%zu errors=%zu domains=%zu generation=%llu load_ms=%.1f",
             log_quote(snap->version, qv, sizeof qv), snap->nconnectors, snap->nerrors,
             snap->ndomains, (unsigned long long)n->snap_generation, load_ms);
    for (size_t i = 0; i < snap->nerrors; i++) {
        char qe[1024];
        log_fact("-", "config", "refused", "error=%s", log_quote(snap->errors[i], qe, sizeof qe));
    }
    daemon_certs_load(n, snap, certs);
    size_t failed = listeners_reconcile(d->listeners, snap);
    log_fact("-", "listener", "reconciled", "listeners=%zu failed=%zu",
             listeners_count(d->listeners), failed);
    /* systemd (Type=notify): ready once the first snapshot is in and its listeners are
     * open; before that nothing listens, so nothing may depend on the node yet. */
    notify_status("serving version %s, %zu connectors", snap->version, snap->nconnectors);
    if (first)
        notify_send("READY=1");
}

const char *daemon_applied_version(const struct daemon *d)
{
    return d->n.snap ? d->n.snap->version : NULL;
}

void daemon_set_str(char **slot, const char *v)
{
    free(*slot);
    *slot = v ? xstrdup(v) : NULL;
}

static void load_job_free(struct load_job *j)
{
    daemon_certs_end(&j->certs);
    snapdelta_changes_free(&j->changes, j->nchanges);
    snapstore_free(&j->store);
    if (j->snap)
        snapshot_unref(&j->snap);
    ldapadmin_nodes_free(&j->nodes, j->nnodes);
    free(j);
}

/* The directory answered again: the snapshot is fresh, whatever max_stale said. */
static void stale_end(struct daemon *d)
{
    d->stale = false;
    evtimer_del(d->ev_expire);
    if (d->n.snap_expired) {
        d->n.snap_expired = false;
        log_fact("-", "config", "serving-again", "reason=%s", "directory-reachable");
    }
}

static void on_expire(evutil_socket_t fd, short what, void *arg)
{
    struct daemon *d = arg;
    if (!d->stale)
        return;
    d->n.snap_expired = true;
    log_fact("-", "config", "expired", "max_stale=%u refusing=\"421 4.3.2 at connect, "
             "451 4.3.2 at MAIL\"", d->max_stale);
}

static void load_failed(struct daemon *d, const struct load_job *j)
{
    char qe[RN_ERRLEN + 64];
    d->loads_failed++;
    if (d->n.snap && !d->stale && d->max_stale) {
        struct timeval tv = {d->max_stale, 0};
        evtimer_add(d->ev_expire, &tv);
    }
    if (d->n.snap && !d->stale)
        clock_gettime(CLOCK_MONOTONIC, &d->stale_since);
    d->stale = d->n.snap != NULL;
    log_fact("-", "config", "load-failed",
             "result=%s error=%s retry_in=%u keeping=%s failures=%llu",
             dir_result_name(j->rc), log_quote(j->err, qe, sizeof qe), d->backoff,
             d->n.snap ? "last-good" : "none", (unsigned long long)d->loads_failed);
    struct timeval tv = {d->backoff, 0};
    evtimer_add(d->ev_retry, &tv);
    d->backoff = reload_backoff_next(d->backoff);
    if (d->bus)
        cluster_set_applied(d->bus, daemon_applied_version(d), d->stale);
    if (d->n.snap)
        notify_status("directory unreachable, serving version %s", d->n.snap->version);
    else
        notify_status("directory unreachable, no snapshot yet: not serving");
}

/* The load is the running snapshot's version and content, or it was applied: the directory
 * is reachable and the retry schedule starts over. */
static void load_good(struct daemon *d, const struct load_job *j)
{
    d->backoff = RELOAD_BACKOFF_MIN_S;
    stale_end(d);
    evtimer_del(d->ev_retry);
    daemon_bus_update(d, j);
}

static void load_done(void *arg);

static void replay_run(void *arg)
{
    struct load_job *j = arg;
    daemon_incr_replay(j->d, j);
}

/* A full load is done while side jobs applied changes beside it (daemon_incr.c): its
 * snapshot lacks those the directory had not yet when it read, so they are applied to its
 * store first (a second step of the same job) and only that snapshot can be swapped in.
 * True when that step was started. */
static bool load_replay(struct daemon *d, struct load_job *j)
{
    if (j->replay || j->rc != DIR_FOUND || !j->store || d->nreplay == 0)
        return false;
    snapdelta_changes_free(&j->changes, j->nchanges);
    j->changes = d->replay;
    j->nchanges = d->nreplay;
    d->replay = NULL;
    d->nreplay = 0;
    j->replay = true;
    d->main_full = false;             /* batches now wait for this step, a short one */
    log_fact("-", "config", "replay-onto-full", "changes=%zu", j->nchanges);
    worker_submit(d->n.worker, replay_run, load_done, j);
    return true;
}

/* Loop thread: act on reload_decide's verdict on a finished load: apply it, or keep the last
 * good snapshot (and schedule a retry when the load failed or was older). */
static void load_done(void *arg)
{
    struct load_job *j = arg;
    struct daemon *d = j->d;
    bool quit = d->stopping || d->n.draining;
    if (d->side && !quit) {
        d->parked = j;                /* the side job uses d->store: after it (side_done) */
        return;
    }
    if (!quit && load_replay(d, j))
        return;
    d->loading = false;
    d->main_full = false;
    snapdelta_changes_free(&d->replay, d->nreplay);   /* a failed full load: the next one is */
    d->nreplay = 0;                                   /* full and reads them */
    free(d->load_floor);
    d->load_floor = NULL;
    if (j->rc == DIR_FOUND && j->store) {             /* a full load's store */
        snapstore_free(&d->store);
        d->store = j->store;
        j->store = NULL;
    } else if (j->rc != DIR_FOUND) {
        snapstore_free(&d->store);                    /* as the failed load left it */
    }
    if (quit) {
        load_job_free(j);
        return;
    }
    daemon_incr_done(d, j);
    char qv[QVER], qa[QVER];
    const char *applied = daemon_applied_version(d);
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    bool ok = j->rc == DIR_FOUND;
    struct reload_input in = {
        .load_ok = ok, .have_snap = d->n.snap != NULL, .applied = applied,
        .applied_hash = d->n.snap ? d->n.snap->content_hash : 0,
        .loaded = ok ? j->snap->version : NULL, .loaded_hash = ok ? j->snap->content_hash : 0,
        .now = (long long)now.tv_sec, .older_since = d->older_since};
    struct reload_decision r = reload_decide(&in);
    d->older_since = r.older_since;
    if (d->n.metrics)
        metrics_inc(d->n.metrics->reloads[r.action == RELOAD_FAILED      ? RM_LOAD_FAILED
                                          : r.action == RELOAD_UNCHANGED ? RM_UNCHANGED
                                          : r.action == RELOAD_OLDER     ? RM_OLDER
                                                                         : RM_APPLIED], 1);
    switch (r.action) {
    case RELOAD_FAILED:
        load_failed(d, j);
        break;
    case RELOAD_UNCHANGED:
        /* Same directory version (the periodic safety net, a duplicate notice): keep the
         * snapshot the sessions already share; only retry bindings that failed to open. */
        log_fact("-", "config", "unchanged", "version=%s load_ms=%.1f",
                 log_quote(j->snap->version, qv, sizeof qv), j->load_ms);
        listeners_reconcile(d->listeners, d->n.snap);
        load_good(d, j);
        break;
    case RELOAD_OLDER: {
        /* Older than (or concurrent with) what runs: a replica behind the one we loaded
         * from last (failover). Never go backwards; try again later. */
        log_fact("-", "config", "older-discarded", "loaded=%s applied=%s retry_in=%u",
                 log_quote(j->snap->version, qv, sizeof qv),
                 log_quote(applied, qa, sizeof qa), d->backoff);
        struct timeval tv = {d->backoff, 0};
        evtimer_add(d->ev_retry, &tv);
        d->backoff = reload_backoff_next(d->backoff);
        break;
    }
    case RELOAD_APPLY_SAME_VERSION:
    case RELOAD_APPLY_RESET:
    case RELOAD_APPLY:
        if (r.action == RELOAD_APPLY_SAME_VERSION)
            log_fact("-", "config", "changed-same-version", "version=%s detail=%s",
                     log_quote(applied, qv, sizeof qv), "the entries changed but contextCSN "
                     "did not (is syncprov maintaining it?): applied anyway");
        if (r.action == RELOAD_APPLY_RESET)
            log_fact("-", "config", "version-reset", "loaded=%s applied=%s older_for_s=%d",
                     log_quote(j->snap->version, qv, sizeof qv),
                     log_quote(applied, qa, sizeof qa), RELOAD_BACKWARDS_S);
        snapshot_swap(d, j->snap, &j->certs, j->load_ms);
        j->snap = NULL;
        load_good(d, j);
        break;
    }
    if (d->wanted && reload_covers(daemon_applied_version(d), d->wanted)) {
        free(d->wanted);
        d->wanted = NULL;
        evtimer_del(d->ev_wait);
    }
    load_job_free(j);
    if (d->reload_pending) {
        d->reload_pending = false;
        daemon_load_start(d);
    }
}

static void side_run(void *arg)
{
    struct load_job *j = arg;
    daemon_incr_side(j->d, j);
}

/* Loop: a side job is done. Its snapshot runs at once when reload_decide would apply it; its
 * changes are kept for the full load's store either way (a failed one dropped d->store: the
 * changes then wait for the full load and its replay). */
static void side_done(void *arg)
{
    struct load_job *j = arg;
    struct daemon *d = j->d;
    d->side = NULL;
    if (!d->stopping && !d->n.draining && j->rc == DIR_FOUND) {
        daemon_incr_done(d, j);
        const char *applied = daemon_applied_version(d);
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        struct reload_input in = {
            .load_ok = true, .have_snap = d->n.snap != NULL, .applied = applied,
            .applied_hash = d->n.snap ? d->n.snap->content_hash : 0,
            .loaded = j->snap->version, .loaded_hash = j->snap->content_hash,
            .now = (long long)now.tv_sec, .older_since = d->older_since};
        enum reload_action a = reload_decide(&in).action;
        if (a == RELOAD_APPLY || a == RELOAD_APPLY_SAME_VERSION) {
            if (d->n.metrics)
                metrics_inc(d->n.metrics->reloads[RM_APPLIED], 1);
            snapshot_swap(d, j->snap, &j->certs, j->load_ms);
            j->snap = NULL;
            if (d->bus)
                cluster_set_applied(d->bus, daemon_applied_version(d), d->stale);
            if (d->wanted && reload_covers(daemon_applied_version(d), d->wanted)) {
                free(d->wanted);
                d->wanted = NULL;
                evtimer_del(d->ev_wait);
            }
        }
    } else if (!d->stopping && !d->n.draining) {
        char qe[RN_ERRLEN + 64];
        log_fact("-", "config", "side-load-failed", "result=%s error=%s changes=%zu "
                 "then=%s", dir_result_name(j->rc), log_quote(j->err, qe, sizeof qe),
                 j->nchanges, "after-the-full-load");
    }
    daemon_incr_keep(d, j);
    load_job_free(j);
    struct load_job *f = d->parked;
    d->parked = NULL;
    if (f)
        load_done(f);
    else
        daemon_side_start(d);         /* batches that arrived meanwhile */
}

void daemon_side_start(struct daemon *d)
{
    if (d->stopping || d->n.draining || !d->loading || !d->main_full || d->side ||
        !d->store || !d->watch_persist)
        return;
    struct load_job *j = xcalloc(1, sizeof *j);
    j->d = d;
    j->side = true;
    j->incremental = true;
    if (!daemon_incr_take_side(d, j)) {
        free(j);
        return;
    }
    daemon_certs_begin(d, &j->certs, false);
    d->side = j;
    worker_submit(d->n.worker, side_run, side_done, j);
}

void daemon_load_start(struct daemon *d)
{
    if (d->stopping || d->n.draining)
        return;
    if (d->loading) {
        d->reload_pending = true;
        return;
    }
    struct load_job *j = xcalloc(1, sizeof *j);
    j->d = d;
    j->want_nodes = d->secret[0] != '\0';
    daemon_certs_begin(d, &j->certs, false);
    daemon_incr_take(d, j);
    d->loading = true;
    daemon_set_str(&d->load_floor, d->replica);   /* the load reads its version first: >= this */
    evtimer_del(d->ev_retry);
    worker_submit(d->n.worker, load_run, load_done, j);
}

/* SIGUSR1 (relayctl queue retry): the queue re-reads the delivery state of waiting messages. */
static void on_queue_rescan(evutil_socket_t fd, short what, void *arg)
{
    struct daemon *d = arg;
    if (d->stopping)
        return;
    log_fact("-", "queue", "rescan-requested", "by=SIGUSR1");
    if (d->n.queue)
        queue_rescan(d->n.queue);
}

static void on_reload_event(evutil_socket_t fd, short what, void *arg)
{
    struct daemon *d = arg;
    if (d->stopping)
        return;
    if (what & EV_SIGNAL) {
        log_fact("-", "config", "reload-requested", "by=SIGHUP");
        /* logrotate's postrotate: the renamed log files are let go, new ones opened. */
        char lerr[RN_ERRLEN], qe[RN_ERRLEN + 64];
        if (log_reopen(lerr, sizeof lerr) < 0)
            log_fact("-", "log", "reopen-failed", "error=%s keeping=current",
                     log_quote(lerr, qe, sizeof qe));
        daemon_certs_reread(d);
    }
    d->full_wanted = true;            /* SIGHUP, the periodic safety net, a retry: in full */
    daemon_load_start(d);
}

/* Arm the next periodic safety-net load at a random point of RELOAD_PERIOD_S +- a quarter
 * (reload_period_ms): a one-shot timer drawn again each time, so that the nodes of a
 * cluster, started together, spread their full loads instead of reading the whole directory
 * from one server in the same second, every minute, for ever. */
static void period_arm(struct daemon *d)
{
    uint32_t r;
    if (getrandom(&r, sizeof r, GRND_NONBLOCK) != (ssize_t)sizeof r) {
        struct timespec t;
        clock_gettime(CLOCK_MONOTONIC, &t);
        r = (uint32_t)t.tv_nsec ^ (uint32_t)getpid() * 2654435761u;
    }
    unsigned ms = reload_period_ms(RELOAD_PERIOD_S, r);
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    evtimer_add(d->ev_reload, &tv);
}

static void on_period(evutil_socket_t fd, short what, void *arg)
{
    struct daemon *d = arg;
    if (d->stopping || d->n.draining)
        return;
    period_arm(d);
    on_reload_event(fd, what, arg);
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
    notify_send("STOPPING=1");
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

int daemon_events_new(struct daemon *d, char *err, size_t errlen)
{
    struct event_base *base = d->n.base;
    d->ev_hup = evsignal_new(base, SIGHUP, on_reload_event, d);
    d->ev_usr1 = evsignal_new(base, SIGUSR1, on_queue_rescan, d);
    d->ev_term = evsignal_new(base, SIGTERM, on_term, d);
    d->ev_int = evsignal_new(base, SIGINT, on_term, d);
    d->ev_reload = evtimer_new(base, on_period, d);
    d->ev_retry = evtimer_new(base, on_reload_event, d);
    d->ev_drain = event_new(base, -1, EV_PERSIST, on_drain_tick, d);
    d->ev_expire = evtimer_new(base, on_expire, d);
    d->lat = looplat_new(base, LOOPLAT_REPORT_S, LOOPLAT_THRESHOLD_MS);
    if (!d->lat || !d->ev_hup || !d->ev_term || !d->ev_int || !d->ev_usr1 || !d->ev_reload ||
        !d->ev_retry || !d->ev_drain || !d->ev_expire || event_add(d->ev_hup, NULL) < 0 ||
        event_add(d->ev_usr1, NULL) < 0 || event_add(d->ev_term, NULL) < 0 ||
        event_add(d->ev_int, NULL) < 0)
        return rn_err(err, errlen, "cannot register signal and timer events");
    period_arm(d);
    return 0;
}

static void daemon_teardown(struct daemon *d)
{
    struct node *n = &d->n;
    /* Freeing the signal events below gives SIGTERM its default action back: a signal from
     * here on (a supervisor's second SIGTERM while the node is already exiting) would kill the
     * process mid-teardown. Every other thread blocks signals, so blocked here they stay
     * pending until exit. */
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGTERM);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGHUP);
    sigaddset(&stop, SIGUSR1);
    pthread_sigmask(SIG_BLOCK, &stop, NULL);
    /* A signal caught before the block may still wait in libevent: the pass below that runs
     * the sessions' finalizers must not dispatch it (a reload or a rescan would find the
     * workers gone). */
    struct event *quiet[] = {d->ev_hup, d->ev_usr1, d->ev_term, d->ev_int, d->ev_reload,
                             d->ev_retry, d->ev_drain};
    for (size_t i = 0; i < sizeof quiet / sizeof quiet[0]; i++)
        if (quiet[i])
            event_del(quiet[i]);
    d->stopping = true;
    n->stopping = true;               /* sessions start nothing new from here on */
    ldapsync_stop(&d->watch);         /* before its event goes: the thread activates it */
    cluster_free(&d->bus);
    daemon_metrics_stop(d);
    explicit_bzero(d->secret, sizeof d->secret);
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
    /* AUTH steps in flight finish first (directory timeout): their done() must still find
     * the committer, and with n->stopping their session runs none of its pipelined input. */
    worker_free(&n->authworker);
    committer_free(&n->committer);    /* pending commits finish and are answered */
    worker_free(&n->worker);          /* waits for an in-flight load; its result is dropped */
    daemon_incr_teardown(d);          /* the watcher and the load job are gone */
    smtp_session_free_all(n);         /* sessions the drain timeout left open */
    /* A freed TLS bufferevent is finalized by the loop (libevent defers it while callbacks
     * may still be queued): one pass without waiting lets those finalizers run. */
    if (n->base)
        event_base_loop(n->base, EVLOOP_NONBLOCK);
    queue_free(&n->queue);
    conncount_free(&n->conns);
    milter_cfg_free(&n->milter);
    looplat_free(&d->lat);            /* logs the worst loop latency since start */
    struct event **evs[] = {&d->ev_hup, &d->ev_usr1, &d->ev_term, &d->ev_int, &d->ev_reload,
                            &d->ev_retry, &d->ev_drain, &d->ev_watch, &d->ev_wait,
                            &d->ev_expire};
    for (size_t i = 0; i < sizeof evs / sizeof evs[0]; i++)
        if (*evs[i]) {
            event_free(*evs[i]);
            *evs[i] = NULL;
        }
    ldapdir_free(&d->dir);
    free(d->replica);
    free(d->announced);
    free(d->wanted);
    free(d->load_floor);
    free(d->w_version);
    free(d->w_mark);
    if (n->snap)
        snapshot_unref(&n->snap);
    spool_free(&n->spool);
    tlsctx_free(&n->tls);
    tlsctx_store_free(n->tls_ca);
    n->tls_ca = NULL;
    tlsctx_client_free(n->tls_client);
    n->tls_client = NULL;
    tlsctx_named_free(&n->tls_named, &n->ntls_named);
    if (d->sasl)
        saslauth_done();
    daemon_metrics_free(d);
    if (n->base) {
        event_base_free(n->base);
        n->base = NULL;
    }
    bootstrap_clear(&n->boot);
}

/* Passwords of AUTH PLAIN/LOGIN go to the directory in a bind: say at start whether that
 * link is protected, and what BasicAuth does about it (smtp_auth_mechs). */
static void daemon_log_directory_security(const struct rn_bootstrap *b)
{
    if (bootstrap_directory_security(b) == BOOT_DIR_PROTECTED)
        return;
    if (b->allow_cleartext_directory)
        log_fact("-", "node", "warning", "directory=cleartext basic_auth=offered why=%s",
                 "\"allow_cleartext_directory = yes: AUTH PLAIN/LOGIN passwords cross to the "
                 "directory unencrypted\"");
    else
        log_fact("-", "node", "warning", "directory=cleartext basic_auth=off why=%s",
                 "\"the directory connection is not ldaps://, StartTLS or ldapi://: AUTH "
                 "PLAIN/LOGIN is offered on no connector (allow_cleartext_directory)\"");
}

int daemon_run(const struct daemon_opts *o)
{
    struct daemon *d = xcalloc(1, sizeof *d);
    char err[RN_ERRLEN];
    int rc = 1;
    bool logging = false;
    d->backoff = RELOAD_BACKOFF_MIN_S;
    pthread_mutex_init(&d->watch_mu, NULL);
    if (daemon_node_setup(d, o, err, sizeof err) < 0)
        goto out;
    logging = true;
    if (!o->foreground && daemon_daemonize(err, sizeof err) < 0)
        goto out;
    spool_write_pid(d->n.spool);             /* the lock stayed ours across the fork */
    notify_init();
    if (o->pidfile && daemon_write_pidfile(o->pidfile, err, sizeof err) < 0)
        goto out;
    if (daemon_privileges_drop(d, err, sizeof err) < 0)
        goto out;
    if (daemon_loop_setup(d, err, sizeof err) < 0 || daemon_cluster_setup(d, err, sizeof err) < 0 ||
        daemon_metrics_setup(d, err, sizeof err) < 0)
        goto out;
    log_fact("-", "node", "start", "node=%s pid=%ld foreground=%s", d->n.boot.node,
             (long)getpid(), o->foreground ? "yes" : "no");
    daemon_log_directory_security(&d->n.boot);
    daemon_load_start(d);                    /* listeners open when the first snapshot arrives */
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
    pthread_mutex_destroy(&d->watch_mu);
    free(d);
    log_close();
    return rc;
}
