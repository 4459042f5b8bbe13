/* cluster: ZeroMQ sockets of the cluster bus on the libevent loop (schema/cluster-protocol.md).
 *
 * One ZeroMQ context per cluster, holding: the ZAP handler (REP on inproc://zeromq.zap.01,
 * RFC 27), bound before anything else because libzmq 4.3 admits every CURVE client when no
 * handler is bound; the XPUB on the node's endpoint (CURVE server), which publishes our
 * frames and receives subscriptions and NOTICEs sent upstream by allowed XSUB clients
 * (relayctl); one SUB per peer (CURVE client pinning that peer's key), so a frame is known
 * to come from that peer. ZMQ_FD is edge-triggered (docs/style.md rule 8): every wake-up and
 * every send is followed by a drain that reads while ZMQ_EVENTS says ZMQ_POLLIN, or later
 * messages would never be signalled. What arrives (the drain, frames in, ZAP) is in
 * cluster_recv.c; keys are in cluster_key.c, relayctl's blocking clients in
 * cluster_client.c. */
#include "node/cluster/cluster.h"
#include <errno.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zmq.h>
#include "directory/base/util.h"
#include "node/cluster/cluster-private.h"
#include "node/cluster/cluster_key.h"
#include "node/cluster/cluster_wire.h"
#include "node/cluster/clusterver.h"
#include "node/common/log.h"

#define ZAP_ENDPOINT    "inproc://zeromq.zap.01"
#define ZAP_DOMAIN      "relaynode"

double cluster_mono_since(const struct timespec *t)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)(now.tv_sec - t->tv_sec) + (double)(now.tv_nsec - t->tv_nsec) / 1e9;
}

static uint64_t wall_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* ---- sockets on the loop ---- */

static void on_sock_event(evutil_socket_t fd, short what, void *arg)
{
    cluster_sock_drain(arg);
}

static struct sockev *sock_open(struct cluster *c, int type, enum sock_kind kind, char *err,
                                size_t errlen)
{
    void *s = zmq_socket(c->ctx, type);
    if (!s) {
        rn_err(err, errlen, "zmq_socket: %s", zmq_strerror(zmq_errno()));
        return NULL;
    }
    int zero = 0, one = 1;
    zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof zero);
    if (kind != SK_ZAP) {
        zmq_setsockopt(s, ZMQ_IPV6, &one, sizeof one);   /* tcp://[2001:db8::5]:5670 too */
        /* A frame over the protocol's limit drops the connection before it is read into
         * memory; ZMTP PINGs find a peer that vanished without a FIN (power loss) within
         * seconds, so its SUB reconnects instead of waiting for TCP keepalive. */
        int64_t maxmsg = CLUSTER_FRAME_MAX;
        int ivl = 2000, timeout = 6000;
        zmq_setsockopt(s, ZMQ_MAXMSGSIZE, &maxmsg, sizeof maxmsg);
        zmq_setsockopt(s, ZMQ_HEARTBEAT_IVL, &ivl, sizeof ivl);
        zmq_setsockopt(s, ZMQ_HEARTBEAT_TIMEOUT, &timeout, sizeof timeout);
    }
    struct sockev *se = xcalloc(1, sizeof *se);
    se->c = c;
    se->sock = s;
    se->kind = kind;
    return se;
}

/* Register the socket's ZMQ_FD with the loop (after bind/connect) and read what is there. */
static int sock_watch(struct sockev *se, char *err, size_t errlen)
{
    int fd;
    size_t len = sizeof fd;
    if (zmq_getsockopt(se->sock, ZMQ_FD, &fd, &len) != 0)
        return rn_err(err, errlen, "ZMQ_FD: %s", zmq_strerror(zmq_errno()));
    se->ev = event_new(se->c->base, fd, EV_READ | EV_PERSIST, on_sock_event, se);
    if (!se->ev || event_add(se->ev, NULL) != 0)
        return rn_err(err, errlen, "cannot watch a ZeroMQ socket");
    cluster_sock_drain(se);
    return 0;
}

static void sock_close(struct sockev **se)
{
    if (!*se)
        return;
    if ((*se)->ev)
        event_free((*se)->ev);
    zmq_close((*se)->sock);
    free(*se);
    *se = NULL;
}

/* Send one frame on the XPUB, then drain it: the send may have consumed the edge that
 * announced an upstream frame. */
static int xpub_send(struct cluster *c, const struct cluster_msg *m, char *err, size_t errlen)
{
    uint8_t buf[CLUSTER_FRAME_MAX];
    int n = cluster_wire_encode(m, buf, sizeof buf, err, errlen);
    if (n < 0)
        return -1;
    if (!c->xpub)
        return rn_err(err, errlen, "no bus: the endpoint could not be bound again");
    int rc = zmq_send(c->xpub->sock, buf, (size_t)n, ZMQ_DONTWAIT);
    cluster_sock_drain(c->xpub);
    if (rc < 0)
        return rn_err(err, errlen, "send: %s", zmq_strerror(zmq_errno()));
    return 0;
}

static void heartbeat_send(struct cluster *c)
{
    struct cluster_msg m = {.type = CLUSTER_HEARTBEAT, .seq = ++c->seq, .stale = c->stale};
    rn_strlcpy(m.node, c->self, sizeof m.node);
    rn_strlcpy(m.version, c->applied ? c->applied : "", sizeof m.version);
    m.time_ms = wall_us() / 1000;
    m.uptime_s = (uint64_t)cluster_mono_since(&c->started);
    char err[RN_ERRLEN];
    if (xpub_send(c, &m, err, sizeof err) < 0)
        log_fact("-", "cluster", "heartbeat-failed", "error=%s", err);
}

static void on_heartbeat_timer(evutil_socket_t fd, short what, void *arg)
{
    heartbeat_send(arg);
}

/* ---- lifecycle ---- */

#define REBIND_TRIES 100        /* a rebind waits at most this many ... */
#define REBIND_WAIT_MS 10       /* ... times this for the old listener to go */

/* One XPUB: CURVE server with our secret key, ZAP domain set, bound to c->bind. 0 bound;
 * 1 the port is still held (EADDRINUSE: no socket left open); -1 with err. */
static int xpub_try(struct cluster *c, char *err, size_t errlen)
{
    c->xpub = sock_open(c, ZMQ_XPUB, SK_XPUB, err, errlen);
    if (!c->xpub)
        return -1;
    int one = 1;
    if (zmq_setsockopt(c->xpub->sock, ZMQ_CURVE_SERVER, &one, sizeof one) != 0 ||
        zmq_setsockopt(c->xpub->sock, ZMQ_CURVE_SECRETKEY, c->secret, CLUSTER_KEY_LEN) != 0 ||
        zmq_setsockopt(c->xpub->sock, ZMQ_ZAP_DOMAIN, ZAP_DOMAIN, strlen(ZAP_DOMAIN)) != 0)
        return rn_err(err, errlen, "cluster: CURVE server options: %s",
                      zmq_strerror(zmq_errno()));
    if (zmq_bind(c->xpub->sock, c->bind) != 0) {
        int e = zmq_errno();
        sock_close(&c->xpub);
        if (e == EADDRINUSE)
            return 1;
        return rn_err(err, errlen, "cluster: bind %s: %s", c->bind, zmq_strerror(e));
    }
    return sock_watch(c->xpub, err, errlen);
}

/* At start (before the loop runs): a port still held by a previous process's listener is
 * waited for here, up to REBIND_TRIES * REBIND_WAIT_MS. */
static int xpub_open(struct cluster *c, char *err, size_t errlen)
{
    for (int tries = 0;; tries++) {
        int r = xpub_try(c, err, errlen);
        if (r <= 0)
            return r;
        if (tries == REBIND_TRIES)
            return rn_err(err, errlen, "cluster: bind %s: %s", c->bind, strerror(EADDRINUSE));
        struct timespec ts = {0, REBIND_WAIT_MS * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
}

/* A rebind whose port was still held: try again from a timer, never sleeping on the loop
 * (issue 13). Meanwhile there is no XPUB: notices are not sent (xpub_send says so) and the
 * next heartbeat after the bind repairs what peers missed. */
static void on_rebind_timer(evutil_socket_t fd, short what, void *arg)
{
    struct cluster *c = arg;
    char err[RN_ERRLEN];
    int r = xpub_try(c, err, sizeof err);
    if (r == 1 && ++c->rebind_tries < REBIND_TRIES) {
        struct timeval tv = {0, REBIND_WAIT_MS * 1000};
        evtimer_add(c->ev_rebind, &tv);
        return;
    }
    if (r == 0)
        log_fact("-", "cluster", "rebind", "reason=key-revoked allowed=%zu tries=%u",
                 c->nallow, c->rebind_tries + 1);
    else
        log_fact("-", "cluster", "rebind-failed", "error=%s",
                 r == 1 ? "endpoint still in use after the wait" : err);
}

/* ZAP runs only at the handshake, so a key taken off the allow-list would keep its open
 * connection: drop every connection by rebinding; allowed peers reconnect (100 ms) and are
 * asked again, and the next heartbeat repairs what the gap lost. libzmq closes listeners on
 * its I/O thread, so the port may be held for a moment: 1 = the bind goes on from a timer. */
static int xpub_rebind(struct cluster *c, char *err, size_t errlen)
{
    if (c->xpub)
        zmq_unbind(c->xpub->sock, c->bind);
    sock_close(&c->xpub);
    evtimer_del(c->ev_rebind);
    c->rebind_tries = 0;
    int r = xpub_try(c, err, errlen);
    if (r == 1) {
        struct timeval tv = {0, REBIND_WAIT_MS * 1000};
        evtimer_add(c->ev_rebind, &tv);
    }
    return r;
}

struct cluster *cluster_new(struct event_base *base, const struct cluster_opts *o,
                            const struct cluster_callbacks *cb, char *err, size_t errlen)
{
    if (!o->self || !*o->self || strlen(o->self) > CLUSTER_NODE_MAX) {
        rn_err(err, errlen, "cluster: node name missing or longer than %d", CLUSTER_NODE_MAX);
        return NULL;
    }
    if (!o->bind || !*o->bind) {
        rn_err(err, errlen, "cluster: no endpoint to bind");
        return NULL;
    }
    if (!cluster_key_valid(o->secret_key)) {
        rn_err(err, errlen, "cluster: the secret key is not a Z85 CURVE key");
        return NULL;
    }
    if (!zmq_has("curve")) {
        rn_err(err, errlen, "cluster: libzmq was built without CURVE");
        return NULL;
    }
    struct cluster *c = xcalloc(1, sizeof *c);
    c->base = base;
    c->self = xstrdup(o->self);
    c->bind = xstrdup(o->bind);
    memcpy(c->secret, o->secret_key, CLUSTER_KEY_LEN + 1);
    if (zmq_curve_public(c->public, c->secret) != 0) {
        rn_err(err, errlen, "cluster: %s", zmq_strerror(zmq_errno()));
        goto fail;
    }
    if (cb)
        c->cb = *cb;
    c->heartbeat_ms = o->heartbeat_ms ? o->heartbeat_ms : 1000;
    c->seq = wall_us();
    c->seen = xcalloc(SEEN_MAX, sizeof *c->seen);
    clock_gettime(CLOCK_MONOTONIC, &c->started);
    c->ctx = zmq_ctx_new();
    if (!c->ctx) {
        rn_err(err, errlen, "cluster: zmq_ctx_new: %s", zmq_strerror(zmq_errno()));
        goto fail;
    }
    /* The ZAP handler first: without one, libzmq 4.3 lets every CURVE client in. */
    c->zap = sock_open(c, ZMQ_REP, SK_ZAP, err, errlen);
    if (!c->zap)
        goto fail;
    if (zmq_bind(c->zap->sock, ZAP_ENDPOINT) != 0) {
        rn_err(err, errlen, "cluster: ZAP handler: %s", zmq_strerror(zmq_errno()));
        goto fail;
    }
    if (sock_watch(c->zap, err, errlen) < 0)
        goto fail;
    c->ev_rebind = evtimer_new(base, on_rebind_timer, c);
    if (!c->ev_rebind) {
        rn_err(err, errlen, "cluster: cannot create the rebind timer");
        goto fail;
    }
    if (xpub_open(c, err, errlen) < 0)
        goto fail;
    c->ev_hb = event_new(base, -1, EV_PERSIST, on_heartbeat_timer, c);
    struct timeval tv = {c->heartbeat_ms / 1000, (c->heartbeat_ms % 1000) * 1000};
    if (!c->ev_hb || event_add(c->ev_hb, &tv) != 0) {
        rn_err(err, errlen, "cluster: cannot start the heartbeat timer");
        goto fail;
    }
    return c;
fail:
    cluster_free(&c);
    return NULL;
}

static void peer_free(struct peer **p)
{
    if (!*p)
        return;
    sock_close(&(*p)->sub);
    free((*p)->name);
    free((*p)->endpoint);
    free((*p)->version);
    free(*p);
    *p = NULL;
}

static void allow_clear(struct cluster *c)
{
    for (size_t i = 0; i < c->nallow; i++)
        free(c->allow[i].name);
    free(c->allow);
    c->allow = NULL;
    c->nallow = 0;
}

void cluster_free(struct cluster **cp)
{
    struct cluster *c = *cp;
    if (!c)
        return;
    if (c->ev_hb)
        event_free(c->ev_hb);
    if (c->ev_rebind)
        event_free(c->ev_rebind);
    for (size_t i = 0; i < c->npeers; i++)
        peer_free(&c->peers[i]);
    free(c->peers);
    sock_close(&c->xpub);
    sock_close(&c->zap);
    if (c->ctx)
        zmq_ctx_term(c->ctx);
    allow_clear(c);
    for (size_t i = 0; i < c->nseen; i++)
        free(c->seen[i].node);
    free(c->seen);
    free(c->self);
    free(c->bind);
    free(c->applied);
    explicit_bzero(c->secret, sizeof c->secret);
    free(c);
    *cp = NULL;
}

/* ---- peers ---- */

static struct sockev *sub_connect(struct cluster *c, struct peer *p, char *err, size_t errlen)
{
    struct sockev *se = sock_open(c, ZMQ_SUB, SK_SUB, err, errlen);
    if (!se)
        return NULL;
    se->peer = p;
    int ivl = 100, ivl_max = 2000;
    if (zmq_setsockopt(se->sock, ZMQ_CURVE_SERVERKEY, p->key, CLUSTER_KEY_LEN) != 0 ||
        zmq_setsockopt(se->sock, ZMQ_CURVE_PUBLICKEY, c->public, CLUSTER_KEY_LEN) != 0 ||
        zmq_setsockopt(se->sock, ZMQ_CURVE_SECRETKEY, c->secret, CLUSTER_KEY_LEN) != 0 ||
        zmq_setsockopt(se->sock, ZMQ_RECONNECT_IVL, &ivl, sizeof ivl) != 0 ||
        zmq_setsockopt(se->sock, ZMQ_RECONNECT_IVL_MAX, &ivl_max, sizeof ivl_max) != 0 ||
        zmq_setsockopt(se->sock, ZMQ_SUBSCRIBE, "", 0) != 0) {
        rn_err(err, errlen, "%s: socket options: %s", p->name, zmq_strerror(zmq_errno()));
        sock_close(&se);
        return NULL;
    }
    if (zmq_connect(se->sock, p->endpoint) != 0) {
        rn_err(err, errlen, "%s: connect %s: %s", p->name, p->endpoint,
               zmq_strerror(zmq_errno()));
        sock_close(&se);
        return NULL;
    }
    if (sock_watch(se, err, errlen) < 0) {
        sock_close(&se);
        return NULL;
    }
    return se;
}

static struct peer *peer_find(struct cluster *c, const char *name)
{
    for (size_t i = 0; i < c->npeers; i++)
        if (strcmp(c->peers[i]->name, name) == 0)
            return c->peers[i];
    return NULL;
}

static bool str_same(const char *a, const char *b)
{
    return (!a || !*a) ? (!b || !*b) : (b && strcmp(a, b) == 0);
}

size_t cluster_set_peers(struct cluster *c, const struct cluster_peer *peers, size_t n,
                         char *err, size_t errlen)
{
    size_t skipped = 0;
    char e[RN_ERRLEN];
    if (errlen)
        err[0] = '\0';
    struct allow *old = c->allow;
    size_t nold = c->nallow;
    c->allow = xcalloc(n ? n : 1, sizeof *c->allow);
    c->nallow = 0;
    for (size_t i = 0; i < c->npeers; i++)
        c->peers[i]->keep = false;
    for (size_t i = 0; i < n; i++) {
        const struct cluster_peer *d = &peers[i];
        const char *why = NULL;
        if (!d->name || !*d->name || strlen(d->name) > CLUSTER_NODE_MAX)
            why = "bad node name";
        else if (!cluster_key_valid(d->public_key))
            why = "no valid relayCurvePublicKey";
        if (why) {
            if (!skipped++)
                rn_err(err, errlen, "%s: %s", d->name ? d->name : "?", why);
            continue;
        }
        if (!cluster_allow_find(c, d->public_key)) {
            struct allow *a = &c->allow[c->nallow++];
            memcpy(a->key, d->public_key, CLUSTER_KEY_LEN + 1);
            a->name = xstrdup(d->name);
        }
        if (strcmp(d->name, c->self) == 0)
            continue;
        struct peer *p = peer_find(c, d->name);
        if (p && (!str_same(p->endpoint, d->endpoint) || strcmp(p->key, d->public_key) != 0)) {
            sock_close(&p->sub);             /* moved or re-keyed: connect afresh */
            free(p->endpoint);
            p->endpoint = d->endpoint && *d->endpoint ? xstrdup(d->endpoint) : NULL;
            memcpy(p->key, d->public_key, CLUSTER_KEY_LEN + 1);
        }
        if (!p) {
            p = xcalloc(1, sizeof *p);
            p->name = xstrdup(d->name);
            p->endpoint = d->endpoint && *d->endpoint ? xstrdup(d->endpoint) : NULL;
            memcpy(p->key, d->public_key, CLUSTER_KEY_LEN + 1);
            c->peers = xrealloc(c->peers, (c->npeers + 1) * sizeof *c->peers);
            c->peers[c->npeers++] = p;
        }
        p->keep = true;
        if (p->endpoint && !p->sub) {
            p->sub = sub_connect(c, p, e, sizeof e);
            if (!p->sub && !skipped++)
                rn_err(err, errlen, "%s", e);
        }
    }
    size_t w = 0;
    for (size_t i = 0; i < c->npeers; i++) {
        if (c->peers[i]->keep)
            c->peers[w++] = c->peers[i];
        else
            peer_free(&c->peers[i]);
    }
    c->npeers = w;
    bool revoked = false;
    for (size_t i = 0; i < nold; i++) {
        revoked = revoked || !cluster_allow_find(c, old[i].key);
        free(old[i].name);
    }
    free(old);
    if (revoked) {
        char k[RN_ERRLEN];
        int r = xpub_rebind(c, k, sizeof k);
        if (r < 0) {
            log_fact("-", "cluster", "rebind-failed", "error=%s", k);
            if (!skipped++)
                rn_err(err, errlen, "%s", k);
        } else if (r == 0) {
            log_fact("-", "cluster", "rebind", "reason=key-revoked allowed=%zu", c->nallow);
        } else {
            log_fact("-", "cluster", "rebind-waiting", "reason=endpoint-still-in-use");
        }
    }
    return skipped;
}

/* ---- publishing ---- */

void cluster_set_applied(struct cluster *c, const char *version, bool stale)
{
    bool changed = !str_same(c->applied, version) || c->stale != stale;
    free(c->applied);
    c->applied = version && *version ? xstrdup(version) : NULL;
    c->stale = stale;
    for (size_t i = 0; i < c->npeers; i++) {    /* "behind" is relative to what we run */
        struct peer *p = c->peers[i];
        if (!p->heard)
            continue;
        bool behind = cluster_peer_behind(p->version, c->applied);
        if (behind && !p->behind)
            clock_gettime(CLOCK_MONOTONIC, &p->behind_since);
        p->behind = behind;
    }
    if (changed)
        heartbeat_send(c);
}

int cluster_publish_notice(struct cluster *c, const char *version, const char *origin,
                           char *err, size_t errlen)
{
    if (!clusterver_valid(version))
        return rn_err(err, errlen, "not a version: '%s'", version ? version : "");
    struct cluster_msg m = {.type = CLUSTER_NOTICE, .seq = ++c->seq};
    rn_strlcpy(m.node, c->self, sizeof m.node);
    if (strlen(version) > CLUSTER_VERSION_MAX)
        return rn_err(err, errlen, "version longer than %d", CLUSTER_VERSION_MAX);
    rn_strlcpy(m.version, version, sizeof m.version);
    rn_strlcpy(m.origin, origin ? origin : "", sizeof m.origin);
    return xpub_send(c, &m, err, errlen);
}

const char *cluster_public_key(const struct cluster *c)
{
    return c->public;
}

/* ---- status ---- */

static int peer_status_cmp(const void *a, const void *b)
{
    return strcmp(((const struct cluster_peer_status *)a)->name,
                  ((const struct cluster_peer_status *)b)->name);
}

struct cluster_status *cluster_status(const struct cluster *c)
{
    struct cluster_status *s = xcalloc(1, sizeof *s);
    s->self = xstrdup(c->self);
    s->applied = c->applied ? xstrdup(c->applied) : NULL;
    s->stale = c->stale;
    s->peers = xcalloc(c->npeers ? c->npeers : 1, sizeof *s->peers);
    for (size_t i = 0; i < c->npeers; i++) {
        const struct peer *p = c->peers[i];
        struct cluster_peer_status *ps = &s->peers[s->npeers++];
        ps->name = xstrdup(p->name);
        ps->endpoint = p->endpoint ? xstrdup(p->endpoint) : NULL;
        ps->version = p->heard && p->version ? xstrdup(p->version) : NULL;
        ps->heard = p->heard;
        ps->stale = p->stale;
        ps->age_s = p->heard ? cluster_mono_since(&p->last_hb) : -1;
        ps->uptime_s = p->uptime_s;
        ps->order = clusterver_compare(p->version, c->applied);
        ps->lag_s = p->heard && p->behind ? cluster_mono_since(&p->behind_since) : 0;
    }
    qsort(s->peers, s->npeers, sizeof *s->peers, peer_status_cmp);
    s->allowed_keys = c->nallow;
    s->notices_in = c->notices_in;
    s->heartbeats_in = c->heartbeats_in;
    s->replays = c->replays;
    s->bad_frames = c->bad_frames;
    s->forged = c->forged;
    s->zap_allowed = c->zap_allowed;
    s->zap_refused = c->zap_refused;
    rn_strlcpy(s->last_refused_key, c->last_refused_key, sizeof s->last_refused_key);
    return s;
}

void cluster_status_free(struct cluster_status **sp)
{
    struct cluster_status *s = *sp;
    if (!s)
        return;
    for (size_t i = 0; i < s->npeers; i++) {
        free(s->peers[i].name);
        free(s->peers[i].endpoint);
        free(s->peers[i].version);
    }
    free(s->peers);
    free(s->self);
    free(s->applied);
    free(s);
    *sp = NULL;
}
