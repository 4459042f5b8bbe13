/* daemon: the process around the SMTP sessions (see daemon.h).
 *
 * Startup order matters: bootstrap and log first (so every later failure is reported where
 * the operator looks), then the spool (spool_open removes tmp/ leftovers of a crash), then the
 * detach, and only then threads and the event base (threads do not survive fork).
 * Snapshot loads block on LDAP, so they run on the worker pool (docs/style.md 7); the done callback
 * swaps n->snap on the loop thread. Sessions hold their own snapshot references, so the swap
 * never frees a snapshot under a live session. At most one load is in flight; a SIGHUP during
 * a load is remembered and served when it finishes. A failed load keeps the last good
 * snapshot and retries with backoff 1 s .. 30 s; before the first success nothing listens:
 * no snapshot, no service (never fail open).
 *
 * Cluster (schema/cluster-protocol.md §5): the change watcher (ldapsync, its own thread)
 * reports the version of the node's own directory server; the bus (cluster) brings NOTICEs
 * and peers' HEARTBEATs. Every version learned goes through clusterver_decide: old news is
 * ignored, news the local replica has triggers a load, news it lacks waits for the watcher.
 * A load is swapped in only if it is not older than what runs (clusterver_accept). */
#include "node/daemon.h"
#include "node/spool/committer.h"
#include "node/smtp/conncount.h"
#include <errno.h>
#include <event2/event.h>
#include <event2/thread.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "directory/ldap/ldapadmin.h"
#include "directory/ldap/ldapdir.h"
#include "directory/ldap/ldapsync.h"
#include "directory/model.h"
#include "directory/base/util.h"
#include "node/cluster/cluster.h"
#include "node/cluster/cluster_wire.h"
#include "node/cluster/clusterver.h"
#include "node/listener.h"
#include "node/delivery/delivery.h"
#include "node/common/log.h"
#include "node/delivery/queue.h"
#include "node/smtp/saslauth.h"
#include "node/common/tlsctx.h"
#include "node/common/node.h"
#include "node/smtp/smtp_session.h"
#include "node/spool/spool.h"
#include "node/common/worker.h"

#define WORKER_THREADS   2
#define AUTH_THREADS     4        /* AUTH binds may each wait ldap_timeout on a sick directory */
#define RELOAD_PERIOD_S  60     /* safety net behind the watcher and the bus */
#define WAIT_RETRY_S     1      /* a WAIT without a persist watcher is retried by a load */
#define BACKWARDS_S      300    /* an older directory for this long is the truth (restore) */
#define BACKOFF_MIN_S    1
#define BACKOFF_MAX_S    30
#define DRAIN_TICK_MS    100
#define QVER (CLUSTER_VERSION_MAX + 64)   /* a version quoted for the log, whole */

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
    /* cluster */
    struct cluster *bus;              /* owned; NULL: standalone (no key, or not bound yet) */
    char secret[CLUSTER_KEY_LEN + 1]; /* "" when no cluster_secret_key_file */
    unsigned heartbeat_ms;
    struct ldapsync *watch;           /* owned; NULL when directory_watch = off */
    bool watch_persist;               /* the watcher runs refreshAndPersist (not polling) */
    char *replica;                    /* own server's version per the watcher; NULL unknown */
    char *wanted;                     /* announced version the replica lacks (WAIT) */
    char *load_floor;                 /* replica version when the in-flight load started */
    bool stale;                       /* the last load failed: serving the last good snapshot */
    struct timespec older_since;      /* first load discarded as older; {0}: none pending */
    unsigned max_stale;               /* seconds; 0 = a stale snapshot serves for ever */
    struct event *ev_expire;          /* owned: fires max_stale after the first failed load */
    struct event *ev_watch;           /* owned: activated by the watcher thread */
    struct event *ev_wait;            /* owned: WAIT retry when the watcher is not persistent */
    pthread_mutex_t watch_mu;         /* guards the w_* slot the watcher thread fills */
    char *w_version;                  /* latest VERSION not yet taken by the loop */
    char *w_mark;                     /* latest CHANGED mark not yet taken by the loop */
    bool w_down, w_up;
    char w_detail[256];
};

struct load_job {
    struct daemon *d;
    struct rn_snapshot *snap;         /* result, owned until swapped in */
    enum dir_result rc;
    char err[RN_ERRLEN];
    struct ldapadmin_node *nodes;     /* the relayNode entries (cluster peers), with the bus */
    size_t nnodes;
    bool want_nodes;
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
    if (j->rc == DIR_FOUND && j->want_nodes)
        j->rc = ldapadmin_list_nodes(d->dir, d->n.boot.base_dn, &j->nodes, &j->nnodes, j->err,
                                     sizeof j->err);
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

/* The named certificates the snapshot's connectors use. At a swap, names already loaded keep
 * their context (a burst of directory changes must not re-read files on the loop each time)
 * and new or failed ones are read from tls_cert_dir; on SIGHUP (reread) every file is read
 * again, so renewals need no restart. The old set goes. Sessions keep no pointer into it
 * (node_tls_for at STARTTLS; an upgraded SSL holds its own SSL_CTX reference). */
static void certs_load(struct node *n, const struct rn_snapshot *snap, bool reread)
{
    struct tlsctx_named *named = NULL;
    size_t nnamed = 0;
    for (size_t i = 0; i < snap->nconnectors; i++) {
        const char *name = snap->connectors[i].tls_cert_name;
        char terr[RN_ERRLEN], qe[RN_ERRLEN + 64];
        if (name && tlsctx_named_add_reuse(&named, &nnamed, reread ? NULL : n->tls_named,
                                           reread ? 0 : n->ntls_named, n->boot.tls_cert_dir,
                                           name, terr, sizeof terr) < 0)
            log_fact("-", "tls", "certificate-failed", "name=%s error=%s", name,
                     log_quote(terr, qe, sizeof qe));
    }
    tlsctx_named_free(&n->tls_named, &n->ntls_named);
    n->tls_named = named;
    n->ntls_named = nnamed;
}

/* SIGHUP: the node certificate (tls_cert/tls_key) and the named ones are read again. A node
 * certificate that no longer loads keeps the one in use (logged), never drops STARTTLS. */
static void certs_reread(struct daemon *d)
{
    struct node *n = &d->n;
    if (n->tls) {
        char terr[RN_ERRLEN], qe[RN_ERRLEN + 64];
        struct tlsctx *t = tlsctx_new(n->boot.tls_cert, n->boot.tls_key, terr, sizeof terr);
        if (t) {
            tlsctx_free(&n->tls);
            n->tls = t;
            log_fact("-", "tls", "certificate-reloaded", "name=%s", "node");
        } else {
            log_fact("-", "tls", "certificate-failed", "name=node error=%s keeping=current",
                     log_quote(terr, qe, sizeof qe));
        }
    }
    if (n->snap)
        certs_load(n, n->snap, true);
}

static void snapshot_swap(struct daemon *d, struct rn_snapshot *snap)
{
    struct node *n = &d->n;
    char qv[QVER];
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
    certs_load(n, snap, false);
    size_t failed = listeners_reconcile(d->listeners, snap);
    log_fact("-", "listener", "reconciled", "listeners=%zu failed=%zu",
             listeners_count(d->listeners), failed);
}

static const char *applied_version(const struct daemon *d)
{
    return d->n.snap ? d->n.snap->version : NULL;
}

/* Whether a snapshot at version `have` holds everything of `want`. */
static bool covers(const char *have, const char *want)
{
    enum clusterver_order o = clusterver_compare(have, want);
    return o == CV_EQUAL || o == CV_NEWER;
}

static void set_str(char **slot, const char *v)
{
    free(*slot);
    *slot = v ? xstrdup(v) : NULL;
}

static void load_job_free(struct load_job *j)
{
    if (j->snap)
        snapshot_unref(&j->snap);
    ldapadmin_nodes_free(&j->nodes, j->nnodes);
    free(j);
}

static void on_bus_notice(void *arg, const char *from, const char *version, const char *origin);
static void on_bus_heartbeat(void *arg, const char *peer, const char *version, bool stale);

/* Start the bus once the directory has said where this node listens (its relayNode entry's
 * relayClusterEndpoint, or the bootstrap's cluster_bind), then keep its peers and its
 * heartbeat in step with the snapshot that runs. */
static void bus_update(struct daemon *d, const struct load_job *j)
{
    if (!d->secret[0])
        return;
    if (!d->bus && j->nodes) {
        const struct ldapadmin_node *self = NULL;
        for (size_t i = 0; i < j->nnodes; i++)
            if (j->nodes[i].name && strcasecmp(j->nodes[i].name, d->n.boot.node) == 0)
                self = &j->nodes[i];
        const char *bind = d->n.boot.cluster_bind && *d->n.boot.cluster_bind
                               ? d->n.boot.cluster_bind
                               : self && self->endpoint ? self->endpoint : NULL;
        if (!bind || !*bind) {
            log_fact("-", "cluster", "standalone", "reason=%s",
                     "no-relayClusterEndpoint-and-no-cluster_bind");
            return;
        }
        struct cluster_opts o = {d->n.boot.node, bind, d->secret, d->heartbeat_ms};
        struct cluster_callbacks cb = {on_bus_notice, on_bus_heartbeat, d};
        char err[RN_ERRLEN], qe[RN_ERRLEN + 64], qb[512];
        d->bus = cluster_new(d->n.base, &o, &cb, err, sizeof err);
        if (!d->bus) {
            log_fact("-", "cluster", "bus-failed", "bind=%s error=%s retry=next-load",
                     log_quote(bind, qb, sizeof qb), log_quote(err, qe, sizeof qe));
            return;
        }
        log_fact("-", "cluster", "bus-start", "bind=%s public_key=%s heartbeat_ms=%u",
                 log_quote(bind, qb, sizeof qb), cluster_public_key(d->bus), d->heartbeat_ms);
        if (!self || !self->pubkey || strcmp(self->pubkey, cluster_public_key(d->bus)) != 0)
            log_fact("-", "cluster", "key-mismatch",
                     "node=%s detail=%s", d->n.boot.node,
                     "relayCurvePublicKey of this node's entry is not the public key of "
                     "cluster_secret_key_file: peers will refuse this node");
    }
    if (!d->bus)
        return;
    if (j->nodes) {
        struct cluster_peer *p = xcalloc(j->nnodes ? j->nnodes : 1, sizeof *p);
        for (size_t i = 0; i < j->nnodes; i++)
            p[i] = (struct cluster_peer){j->nodes[i].name, j->nodes[i].endpoint,
                                         j->nodes[i].pubkey};
        char err[RN_ERRLEN], qe[RN_ERRLEN + 64];
        size_t skipped = cluster_set_peers(d->bus, p, j->nnodes, err, sizeof err);
        if (skipped)
            log_fact("-", "cluster", "peers-skipped", "count=%zu first=%s", skipped,
                     log_quote(err, qe, sizeof qe));
        free(p);
    }
    cluster_set_applied(d->bus, applied_version(d), d->stale);
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
    d->stale = d->n.snap != NULL;
    log_fact("-", "config", "load-failed",
             "result=%s error=%s retry_in=%u keeping=%s failures=%llu",
             dir_result_name(j->rc), log_quote(j->err, qe, sizeof qe), d->backoff,
             d->n.snap ? "last-good" : "none", (unsigned long long)d->loads_failed);
    struct timeval tv = {d->backoff, 0};
    evtimer_add(d->ev_retry, &tv);
    d->backoff = d->backoff * 2 > BACKOFF_MAX_S ? BACKOFF_MAX_S : d->backoff * 2;
    if (d->bus)
        cluster_set_applied(d->bus, applied_version(d), d->stale);
}

/* A load older than what runs is refused (a lagging replica after a failover catches up in
 * seconds), but a directory that stays older for BACKWARDS_S was restored from a backup or
 * lost a provider's CSN: it is the truth, and a node must not serve a config it no longer
 * holds forever. True once that long has passed since the first refusal. */
static bool older_for_long(struct daemon *d)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    if (!d->older_since.tv_sec) {
        d->older_since = now;
        if (!d->older_since.tv_sec)
            d->older_since.tv_sec = 1;
        return false;
    }
    return now.tv_sec - d->older_since.tv_sec >= BACKWARDS_S;
}

/* Loop thread: apply a finished load, or keep the last good snapshot and schedule a retry. */
static void load_done(void *arg)
{
    struct load_job *j = arg;
    struct daemon *d = j->d;
    d->loading = false;
    free(d->load_floor);
    d->load_floor = NULL;
    if (d->stopping || d->n.draining) {
        load_job_free(j);
        return;
    }
    char qv[QVER], qa[QVER];
    const char *applied = applied_version(d);
    if (j->rc != DIR_FOUND) {
        load_failed(d, j);
    } else if (d->n.snap && j->snap->version && applied &&
               (strcmp(j->snap->version, applied) == 0 ||
                clusterver_compare(j->snap->version, applied) == CV_EQUAL) &&
               j->snap->content_hash == d->n.snap->content_hash) {
        /* Same directory version (the periodic safety net, a duplicate notice): keep the
         * snapshot the sessions already share; only retry bindings that failed to open. */
        log_fact("-", "config", "unchanged", "version=%s",
                 log_quote(j->snap->version, qv, sizeof qv));
        listeners_reconcile(d->listeners, d->n.snap);
        memset(&d->older_since, 0, sizeof d->older_since);
        d->backoff = BACKOFF_MIN_S;
        stale_end(d);
        evtimer_del(d->ev_retry);
        bus_update(d, j);
    } else if (!clusterver_accept(applied, j->snap->version) && !older_for_long(d)) {
        /* Older than (or concurrent with) what runs: a replica behind the one we loaded
         * from last (failover). Never go backwards; try again later. */
        log_fact("-", "config", "older-discarded", "loaded=%s applied=%s retry_in=%u",
                 log_quote(j->snap->version, qv, sizeof qv),
                 log_quote(applied, qa, sizeof qa), d->backoff);
        struct timeval tv = {d->backoff, 0};
        evtimer_add(d->ev_retry, &tv);
        d->backoff = d->backoff * 2 > BACKOFF_MAX_S ? BACKOFF_MAX_S : d->backoff * 2;
    } else {
        if (d->n.snap && applied && j->snap->version && strcmp(j->snap->version, applied) == 0)
            log_fact("-", "config", "changed-same-version", "version=%s detail=%s",
                     log_quote(applied, qv, sizeof qv), "the entries changed but contextCSN "
                     "did not (is syncprov maintaining it?): applied anyway");
        if (d->older_since.tv_sec && !clusterver_accept(applied, j->snap->version))
            log_fact("-", "config", "version-reset", "loaded=%s applied=%s older_for_s=%d",
                     log_quote(j->snap->version, qv, sizeof qv),
                     log_quote(applied, qa, sizeof qa), BACKWARDS_S);
        memset(&d->older_since, 0, sizeof d->older_since);
        snapshot_swap(d, j->snap);
        j->snap = NULL;
        d->backoff = BACKOFF_MIN_S;
        stale_end(d);
        evtimer_del(d->ev_retry);
        bus_update(d, j);
    }
    if (d->wanted && covers(applied_version(d), d->wanted)) {
        free(d->wanted);
        d->wanted = NULL;
        evtimer_del(d->ev_wait);
    }
    load_job_free(j);
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
    j->want_nodes = d->secret[0] != '\0';
    d->loading = true;
    set_str(&d->load_floor, d->replica);   /* the load reads its version first: >= this */
    evtimer_del(d->ev_retry);
    worker_submit(d->n.worker, load_run, load_done, j);
}

/* A version learned from the watcher, a NOTICE or a peer's HEARTBEAT (§5 of the spec). */
static void cluster_news(struct daemon *d, const char *version, const char *via,
                         const char *from)
{
    if (d->stopping || d->n.draining || !clusterver_valid(version))
        return;
    if (d->loading && d->load_floor && covers(d->load_floor, version))
        return;                       /* the load in flight already holds it */
    if (evtimer_pending(d->ev_retry, NULL))
        return;                       /* in backoff after a failure: the retry loads it */
    enum clusterver_action a = clusterver_decide(applied_version(d), version, d->replica);
    char qv[QVER], qa[QVER], qf[300];
    if (a == CV_IGNORE)
        return;
    if (a == CV_WAIT) {
        if (!d->wanted || clusterver_compare(version, d->wanted) == CV_NEWER) {
            set_str(&d->wanted, version);
            log_fact("-", "cluster", "wait", "from=%s via=%s version=%s replica=%s",
                     log_quote(from, qf, sizeof qf), via, log_quote(version, qv, sizeof qv),
                     log_quote(d->replica, qa, sizeof qa));
        }
        if (!d->watch_persist && !evtimer_pending(d->ev_wait, NULL)) {
            struct timeval tv = {WAIT_RETRY_S, 0};
            evtimer_add(d->ev_wait, &tv);
        }
        return;
    }
    if (d->loading && d->reload_pending)
        return;                       /* a load is already queued behind the one in flight */
    log_fact("-", "cluster", "news", "from=%s via=%s version=%s applied=%s action=reload",
             log_quote(from, qf, sizeof qf), via, log_quote(version, qv, sizeof qv),
             log_quote(applied_version(d), qa, sizeof qa));
    load_start(d);
}

static void on_bus_notice(void *arg, const char *from, const char *version, const char *origin)
{
    char via[80];
    snprintf(via, sizeof via, "notice/%s", origin && *origin ? origin : "-");
    cluster_news(arg, version, via, from);
}

static void on_bus_heartbeat(void *arg, const char *peer, const char *version, bool stale)
{
    cluster_news(arg, version, "heartbeat", peer);
}

/* Watcher thread: leave the event in the slot and wake the loop. */
static void on_watch_thread(void *arg, enum ldapsync_event ev, const char *version,
                            const char *detail)
{
    struct daemon *d = arg;
    pthread_mutex_lock(&d->watch_mu);
    if (ev == LDAPSYNC_VERSION) {
        free(d->w_version);
        d->w_version = xstrdup(version);
    } else if (ev == LDAPSYNC_CHANGED) {
        free(d->w_mark);
        d->w_mark = xstrdup(version);
    } else {
        d->w_down = ev == LDAPSYNC_DOWN;
        d->w_up = ev == LDAPSYNC_UP;
        rn_strlcpy(d->w_detail, detail ? detail : "", sizeof d->w_detail);
    }
    pthread_mutex_unlock(&d->watch_mu);
    event_active(d->ev_watch, EV_READ, 0);
}

/* Loop thread: what the watcher saw of the node's own directory server. */
static void on_watch(evutil_socket_t fd, short what, void *arg)
{
    struct daemon *d = arg;
    pthread_mutex_lock(&d->watch_mu);
    char *version = d->w_version, *mark = d->w_mark;
    d->w_version = d->w_mark = NULL;
    bool down = d->w_down, up = d->w_up;
    d->w_down = d->w_up = false;
    char detail[sizeof d->w_detail], qd[600], qv[QVER];
    rn_strlcpy(detail, d->w_detail, sizeof detail);
    pthread_mutex_unlock(&d->watch_mu);
    if (down) {
        log_fact("-", "cluster", "watcher-down", "reason=%s", log_quote(detail, qd, sizeof qd));
        free(d->replica);             /* unknown now: news is loaded for, not waited on */
        d->replica = NULL;
    }
    if (up) {
        d->watch_persist = strcmp(detail, "persist") == 0;
        log_fact("-", "cluster", "watcher-up", "mode=%s", log_quote(detail, qd, sizeof qd));
    }
    if (version) {
        set_str(&d->replica, version);
        const char *applied = applied_version(d);
        enum clusterver_order o = clusterver_compare(version, applied);
        log_fact("-", "cluster", "directory-version", "version=%s",
                 log_quote(version, qv, sizeof qv));
        if (d->bus && applied && (o == CV_NEWER || o == CV_CONCURRENT)) {
            char err[RN_ERRLEN], qe[RN_ERRLEN + 64];
            if (cluster_publish_notice(d->bus, version, d->watch_persist ? "sync" : "poll",
                                       err, sizeof err) < 0)
                log_fact("-", "cluster", "notice-failed", "error=%s",
                         log_quote(err, qe, sizeof qe));
        }
        cluster_news(d, version, "watcher", d->n.boot.node);
        free(version);
    }
    if (mark) {
        /* A write the version did not show (no contextCSN, or one syncprov does not keep):
         * load; the snapshot's content hash tells the loader's result apart. */
        log_fact("-", "cluster", "directory-changed", "mark=%s", log_quote(mark, qd, sizeof qd));
        free(mark);
        load_start(d);
    }
}

static void on_wait_retry(evutil_socket_t fd, short what, void *arg)
{
    struct daemon *d = arg;
    if (d->wanted)
        load_start(d);
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
    if (what & EV_SIGNAL) {
        log_fact("-", "config", "reload-requested", "by=SIGHUP");
        certs_reread(d);
    }
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
    unsigned long max_stale;
    if (parse_num("max_stale", n->boot.max_stale, 0, 365UL * 86400, &max_stale, err, errlen) < 0)
        return -1;
    d->max_stale = (unsigned)max_stale;
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
    /* A tls_cert_dir that is not a directory is a typo, stopped here like a bad tls_cert;
     * a missing NAME.pem inside it only costs the connectors naming it (snapshot_swap). */
    const char *cdir = n->boot.tls_cert_dir;
    if (cdir && *cdir) {
        struct stat st;
        if (stat(cdir, &st) != 0)
            return rn_err(err, errlen, "tls_cert_dir %s: %s", cdir, strerror(errno));
        if (!S_ISDIR(st.st_mode))
            return rn_err(err, errlen, "tls_cert_dir %s: not a directory", cdir);
    }
    if (saslauth_init(&n->boot, err, errlen) < 0)
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

/* The key (a configured key that cannot be read stops the start: never a bus without
 * CURVE, never a silent standalone node) and the change watcher. The bus itself starts after
 * the first load, which says where this node listens. */
static int cluster_setup(struct daemon *d, char *err, size_t errlen)
{
    struct node *n = &d->n;
    unsigned long hb, poll_s;
    if (parse_num("cluster_heartbeat_ms", n->boot.cluster_heartbeat_ms, 50, 60000, &hb, err,
                  errlen) < 0 ||
        parse_num("directory_poll_interval", n->boot.directory_poll_interval, 1, 3600, &poll_s,
                  err, errlen) < 0)
        return -1;
    d->heartbeat_ms = (unsigned)hb;
    const char *w = n->boot.directory_watch ? n->boot.directory_watch : "auto";
    enum ldapsync_mode mode;
    if (strcmp(w, "auto") == 0)
        mode = LDAPSYNC_AUTO;
    else if (strcmp(w, "persist") == 0)
        mode = LDAPSYNC_PERSIST;
    else if (strcmp(w, "poll") == 0)
        mode = LDAPSYNC_POLL;
    else if (strcmp(w, "off") == 0)
        mode = (enum ldapsync_mode)-1;
    else
        return rn_err(err, errlen, "directory_watch: '%s' is not auto, persist, poll or off", w);
    const char *kf = n->boot.cluster_secret_key_file;
    if (kf && *kf) {
        char public[CLUSTER_KEY_LEN + 1], kerr[RN_ERRLEN];
        if (cluster_key_load(kf, d->secret, public, kerr, sizeof kerr) < 0)
            return rn_err(err, errlen, "cluster_secret_key_file: %s", kerr);
    } else {
        log_fact("-", "cluster", "standalone", "reason=%s", "no-cluster_secret_key_file");
    }
    d->ev_watch = event_new(n->base, -1, 0, on_watch, d);
    d->ev_wait = evtimer_new(n->base, on_wait_retry, d);
    d->ev_expire = evtimer_new(n->base, on_expire, d);
    if (!d->ev_watch || !d->ev_wait || !d->ev_expire)
        return rn_err(err, errlen, "cannot create the watcher events");
    if ((int)mode == -1) {
        log_fact("-", "cluster", "watcher-off", "reload=%s", "SIGHUP, bus news, every 60 s");
        return 0;
    }
    struct ldapsync_opts o = {mode, (unsigned)poll_s};
    d->watch = ldapsync_start(&n->boot, &o, on_watch_thread, d, err, errlen);
    return d->watch ? 0 : -1;
}

static void daemon_teardown(struct daemon *d)
{
    struct node *n = &d->n;
    d->stopping = true;
    ldapsync_stop(&d->watch);         /* before its event goes: the thread activates it */
    cluster_free(&d->bus);
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
    committer_free(&n->committer);    /* pending commits finish and are answered */
    worker_free(&n->authworker);      /* AUTH steps in flight finish (directory timeout) */
    worker_free(&n->worker);          /* waits for an in-flight load; its result is dropped */
    smtp_session_free_all(n);         /* sessions the drain timeout left open */
    queue_free(&n->queue);
    conncount_free(&n->conns);
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
    free(d->wanted);
    free(d->load_floor);
    free(d->w_version);
    free(d->w_mark);
    if (n->snap)
        snapshot_unref(&n->snap);
    spool_free(&n->spool);
    tlsctx_free(&n->tls);
    tlsctx_named_free(&n->tls_named, &n->ntls_named);
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
    pthread_mutex_init(&d->watch_mu, NULL);
    if (node_setup(d, o, err, sizeof err) < 0)
        goto out;
    logging = true;
    if (!o->foreground && daemonize(err, sizeof err) < 0)
        goto out;
    if (o->pidfile && write_pidfile(o->pidfile, err, sizeof err) < 0)
        goto out;
    if (loop_setup(d, err, sizeof err) < 0 || cluster_setup(d, err, sizeof err) < 0)
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
    pthread_mutex_destroy(&d->watch_mu);
    free(d);
    log_close();
    return rc;
}
