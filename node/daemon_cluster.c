/* daemon_cluster: the daemon's side of the cluster (schema/cluster-protocol.md §5;
 * daemon-private.h): the key and the change watcher at start, the bus once the directory
 * says where this node listens, and the news both bring. Every version learned (the
 * watcher's, a NOTICE, a peer's HEARTBEAT) goes through clusterver_decide: old news is
 * ignored, news the local replica has triggers a load, news it lacks waits for the watcher
 * (or, without a persistent watcher, for a retry). A peer's news never starts a full load
 * at once on a node whose persistent watcher is live: the watcher brings the same change
 * from the node's own server within moments, and what it brings is applied once; a load
 * follows only if it has not after PEER_WAIT_MS (on_wait_retry). Without that, a peer that
 * announced first made every node load twice (the peer's news, then its own watcher's),
 * which at 100,000 users is tens of seconds per load (README, Directory scale). */
#include <event2/event.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "directory/ldap/ldapadmin.h"
#include "directory/ldap/ldapsync.h"
#include "directory/base/util.h"
#include "node/cluster/cluster.h"
#include "node/cluster/clusterver.h"
#include "node/daemon-private.h"
#include "node/reload.h"
#include "node/common/fault.h"
#include "node/common/log.h"

static void on_bus_notice(void *arg, const char *from, const char *version, const char *origin);
static void on_bus_heartbeat(void *arg, const char *peer, const char *version, bool stale);

/* Start the bus once the directory has said where this node listens (its relayNode entry's
 * relayClusterEndpoint, or the bootstrap's cluster_bind), then keep its peers and its
 * heartbeat in step with the snapshot that runs. */
void daemon_bus_update(struct daemon *d, const struct load_job *j)
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
    cluster_set_applied(d->bus, daemon_applied_version(d), d->stale);
}

/* A version learned from the watcher, a NOTICE or a peer's HEARTBEAT (§5 of the spec). */
static void cluster_news(struct daemon *d, const char *version, const char *via,
                         const char *from)
{
    if (d->stopping || d->n.draining || !clusterver_valid(version))
        return;
    if (d->loading && d->load_floor && reload_covers(d->load_floor, version))
        return;                       /* the load in flight already holds it */
    if (evtimer_pending(d->ev_retry, NULL))
        return;                       /* in backoff after a failure: the retry loads it */
    enum clusterver_action a = clusterver_decide(daemon_applied_version(d), version, d->replica);
    char qv[QVER], qa[QVER], qf[300];
    if (a == CV_IGNORE)
        return;
    if (a == CV_WAIT) {
        if (!d->wanted || clusterver_compare(version, d->wanted) == CV_NEWER) {
            daemon_set_str(&d->wanted, version);
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
    if (strcmp(via, "watcher") != 0 && d->watch_persist && d->watch_up) {
        if (!d->wanted || clusterver_compare(version, d->wanted) == CV_NEWER) {
            daemon_set_str(&d->wanted, version);
            log_fact("-", "cluster", "wait", "from=%s via=%s version=%s replica=%s "
                     "for=own-watcher max_ms=%d", log_quote(from, qf, sizeof qf), via,
                     log_quote(version, qv, sizeof qv), log_quote(d->replica, qa, sizeof qa),
                     PEER_WAIT_MS);
        }
        if (!evtimer_pending(d->ev_wait, NULL)) {
            struct timeval tv = {PEER_WAIT_MS / 1000, (PEER_WAIT_MS % 1000) * 1000};
            evtimer_add(d->ev_wait, &tv);
        }
        return;
    }
    log_fact("-", "cluster", "news", "from=%s via=%s version=%s applied=%s action=reload",
             log_quote(from, qf, sizeof qf), via, log_quote(version, qv, sizeof qv),
             log_quote(daemon_applied_version(d), qa, sizeof qa));
    daemon_load_start(d);
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
    if (ev == LDAPSYNC_VERSION)
        fault_sleep("watch-version");   /* test builds: a watcher slower than the bus */
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
        d->watch_up = false;
    }
    if (up) {
        d->watch_persist = strcmp(detail, "persist") == 0;
        d->watch_up = true;
        log_fact("-", "cluster", "watcher-up", "mode=%s", log_quote(detail, qd, sizeof qd));
    }
    if (version) {
        daemon_set_str(&d->replica, version);
        const char *applied = daemon_applied_version(d);
        enum clusterver_order o = clusterver_compare(version, applied);
        log_fact("-", "cluster", "directory-version", "version=%s",
                 log_quote(version, qv, sizeof qv));
        /* Announce each version the watcher brings once. With incremental apply the
         * watcher's batch is usually applied before its version is reported (o is then
         * CV_EQUAL): the peers without a watcher of their own still need the NOTICE. */
        enum clusterver_order oa = d->announced ? clusterver_compare(version, d->announced)
                                                : CV_NEWER;
        if (d->bus && applied && (o == CV_NEWER || o == CV_CONCURRENT || o == CV_EQUAL) &&
            (oa == CV_NEWER || oa == CV_CONCURRENT)) {
            char err[RN_ERRLEN], qe[RN_ERRLEN + 64];
            if (cluster_publish_notice(d->bus, version, d->watch_persist ? "sync" : "poll",
                                       err, sizeof err) < 0)
                log_fact("-", "cluster", "notice-failed", "error=%s",
                         log_quote(err, qe, sizeof qe));
            else
                daemon_set_str(&d->announced, version);
        }
        cluster_news(d, version, "watcher", d->n.boot.node);
        free(version);
    }
    if (mark) {
        /* A write the version did not show (no contextCSN, or one syncprov does not keep):
         * load; the snapshot's content hash tells the loader's result apart. */
        log_fact("-", "cluster", "directory-changed", "mark=%s", log_quote(mark, qd, sizeof qd));
        free(mark);
        daemon_load_start(d);
    }
}

/* The wait for news the replica lacked (no persistent watcher), or the bound on waiting for
 * a live watcher: load, unless what was wanted runs or the load in flight holds it. */
static void on_wait_retry(evutil_socket_t fd, short what, void *arg)
{
    struct daemon *d = arg;
    if (!d->wanted || d->stopping || d->n.draining)
        return;
    if (reload_covers(daemon_applied_version(d), d->wanted)) {
        free(d->wanted);
        d->wanted = NULL;
        return;
    }
    if (d->loading && d->load_floor && reload_covers(d->load_floor, d->wanted))
        return;                       /* load_done settles it */
    char qv[QVER], qa[QVER];
    log_fact("-", "cluster", "wait-over", "version=%s applied=%s watcher=%s action=reload",
             log_quote(d->wanted, qv, sizeof qv), log_quote(daemon_applied_version(d), qa,
                                                             sizeof qa),
             d->watch_up ? "up" : "down");
    daemon_load_start(d);
}

/* The key (a configured key that cannot be read stops the start: never a bus without
 * CURVE, never a silent standalone node) and the change watcher. The bus itself starts after
 * the first load, which says where this node listens. */
int daemon_cluster_setup(struct daemon *d, char *err, size_t errlen)
{
    struct node *n = &d->n;
    d->heartbeat_ms = n->boot.cluster_heartbeat_ms;
    enum ldapsync_mode mode;
    switch (n->boot.directory_watch) {
    case BOOT_WATCH_PERSIST: mode = LDAPSYNC_PERSIST; break;
    case BOOT_WATCH_POLL: mode = LDAPSYNC_POLL; break;
    case BOOT_WATCH_OFF: mode = (enum ldapsync_mode)-1; break;
    default: mode = LDAPSYNC_AUTO; break;
    }
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
    if (!d->ev_watch || !d->ev_wait)
        return rn_err(err, errlen, "cannot create the watcher events");
    bool incremental = daemon_incr_setup(d);
    if ((int)mode == -1) {
        log_fact("-", "cluster", "watcher-off", "reload=%s", "SIGHUP, bus news, every 60 s");
        return 0;
    }
    struct ldapsync_opts o = {mode, n->boot.directory_poll_interval,
                              incremental ? daemon_incr_batch : NULL};
    d->watch = ldapsync_start(&n->boot, &o, on_watch_thread, d, err, errlen);
    return d->watch ? 0 : -1;
}

