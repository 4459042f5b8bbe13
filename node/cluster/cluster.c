/* cluster: ZeroMQ sockets of the cluster bus on the libevent loop (schema/cluster-protocol.md).
 *
 * One ZeroMQ context per cluster, holding: the ZAP handler (REP on inproc://zeromq.zap.01,
 * RFC 27), bound before anything else because libzmq 4.3 admits every CURVE client when no
 * handler is bound; the XPUB on the node's endpoint (CURVE server), which publishes our
 * frames and receives subscriptions and NOTICEs sent upstream by allowed XSUB clients
 * (relayctl); one SUB per peer (CURVE client pinning that peer's key), so a frame is known
 * to come from that peer. ZMQ_FD is edge-triggered (docs/style.md rule 8): every wake-up and
 * every send is followed by a drain that reads while ZMQ_EVENTS says ZMQ_POLLIN, or later
 * messages would never be signalled. */
#include "node/cluster/cluster.h"
#include <errno.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zmq.h>
#include "directory/base/util.h"
#include "node/cluster/cluster_wire.h"
#include "node/cluster/clusterver.h"
#include "node/common/log.h"

#define ZAP_ENDPOINT    "inproc://zeromq.zap.01"
#define ZAP_DOMAIN      "relaynode"
#define SEEN_MAX        4096    /* senders whose last seq we remember */
#define ZAP_PARTS       8

enum sock_kind { SK_ZAP, SK_XPUB, SK_SUB };

struct sockev {
    struct cluster *c;
    void *sock;                 /* owned zmq socket */
    struct event *ev;           /* owned: read event on ZMQ_FD */
    enum sock_kind kind;
    struct peer *peer;          /* SK_SUB: the peer this socket listens to */
    bool draining;              /* a drain loop is running: a nested one would be redundant */
};

struct peer {
    char *name, *endpoint;      /* owned; endpoint NULL: publish-only member */
    char key[CLUSTER_KEY_LEN + 1];
    struct sockev *sub;         /* owned; NULL when publish-only */
    bool keep;                  /* mark for cluster_set_peers */
    char *version;              /* last heartbeat */
    bool heard, stale;
    struct timespec last_hb, behind_since;
    bool behind;
    uint64_t uptime_s;
};

struct seen { char *node; uint64_t seq; uint64_t used; };

struct cluster {
    struct event_base *base;
    void *ctx;
    char *self, *bind;
    char secret[CLUSTER_KEY_LEN + 1], public[CLUSTER_KEY_LEN + 1];
    struct cluster_callbacks cb;
    struct sockev *zap, *xpub;
    struct peer **peers; size_t npeers;
    struct allow { char key[CLUSTER_KEY_LEN + 1]; char *name; } *allow; size_t nallow;
    struct seen *seen; size_t nseen; uint64_t seen_clock;
    char *applied;
    bool stale;
    uint64_t seq;
    struct timespec started;
    struct event *ev_hb;
    unsigned heartbeat_ms;
    uint64_t notices_in, heartbeats_in, replays, bad_frames, forged, zap_allowed, zap_refused;
    char last_refused_key[CLUSTER_KEY_LEN + 1];
    struct timespec refused_logged;
};

static void sock_drain(struct sockev *s);

/* Whether a peer that applied `version` is behind us (lag is counted from then). */
static bool peer_behind(const char *version, const char *applied)
{
    enum clusterver_order o = clusterver_compare(version, applied);
    return o == CV_OLDER || o == CV_CONCURRENT ||
           (o == CV_INVALID && clusterver_valid(applied) && !clusterver_valid(version));
}

static double mono_since(const struct timespec *t)
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

bool cluster_key_valid(const char *z85)
{
    uint8_t bin[32];
    return z85 && strlen(z85) == CLUSTER_KEY_LEN && zmq_z85_decode(bin, z85) != NULL;
}

int cluster_keypair_new(char public_out[CLUSTER_KEY_LEN + 1],
                        char secret_out[CLUSTER_KEY_LEN + 1], char *err, size_t errlen)
{
    if (zmq_curve_keypair(public_out, secret_out) != 0)
        return rn_err(err, errlen, "zmq_curve_keypair: %s", zmq_strerror(zmq_errno()));
    return 0;
}

int cluster_key_load(const char *path, char secret_out[CLUSTER_KEY_LEN + 1],
                     char public_out[CLUSTER_KEY_LEN + 1], char *err, size_t errlen)
{
    FILE *f = fopen(path, "re");
    if (!f)
        return rn_err(err, errlen, "cluster_secret_key_file %s: %s", path, strerror(errno));
    char line[128] = "";
    bool got = fgets(line, sizeof line, f) != NULL;
    fclose(f);
    line[strcspn(line, "\r\n")] = '\0';
    int rc = 0;
    if (!got || !cluster_key_valid(line))
        rc = rn_err(err, errlen, "cluster_secret_key_file %s: first line is not a Z85 CURVE "
                    "secret key (40 characters)", path);
    else if (zmq_curve_public(public_out, line) != 0)
        rc = rn_err(err, errlen, "cluster_secret_key_file %s: %s", path,
                    zmq_strerror(zmq_errno()));
    else
        memcpy(secret_out, line, CLUSTER_KEY_LEN + 1);
    explicit_bzero(line, sizeof line);
    return rc;
}

/* ---- sockets on the loop ---- */

static void on_sock_event(evutil_socket_t fd, short what, void *arg)
{
    sock_drain(arg);
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
    sock_drain(se);
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
    sock_drain(c->xpub);
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
    m.uptime_s = (uint64_t)mono_since(&c->started);
    char err[RN_ERRLEN];
    if (xpub_send(c, &m, err, sizeof err) < 0)
        log_fact("-", "cluster", "heartbeat-failed", "error=%s", err);
}

static void on_heartbeat_timer(evutil_socket_t fd, short what, void *arg)
{
    heartbeat_send(arg);
}

/* ---- replay check ---- */

/* Whether seq is above the last one seen from node; records it if so. The table is
 * bounded: the least recently used sender is forgotten (its next frame is accepted, and
 * versions, not seqs, decide what is applied). */
static bool seq_fresh(struct cluster *c, const char *node, uint64_t seq)
{
    c->seen_clock++;
    for (size_t i = 0; i < c->nseen; i++) {
        struct seen *s = &c->seen[i];
        if (strcmp(s->node, node) == 0) {
            if (seq <= s->seq)
                return false;
            s->seq = seq;
            s->used = c->seen_clock;
            return true;
        }
    }
    size_t slot = c->nseen;
    if (c->nseen == SEEN_MAX) {
        slot = 0;
        for (size_t i = 1; i < c->nseen; i++)
            if (c->seen[i].used < c->seen[slot].used)
                slot = i;
        free(c->seen[slot].node);
    } else {
        c->nseen++;
    }
    c->seen[slot] = (struct seen){xstrdup(node), seq, c->seen_clock};
    return true;
}

/* ---- frames in ---- */

static void frame_in(struct cluster *c, struct sockev *se, const uint8_t *data, size_t len)
{
    if (se->kind == SK_XPUB && len > 0 && (data[0] == 0 || data[0] == 1))
        return;                               /* a subscription from a SUB: nothing to do */
    struct cluster_msg m;
    char err[RN_ERRLEN], qn[600];
    const char *src = se->kind == SK_SUB ? se->peer->name : "upstream";
    if (cluster_wire_decode(data, len, &m, err, sizeof err) < 0) {
        c->bad_frames++;
        log_fact("-", "cluster", "bad-frame", "from=%s bytes=%zu error=%s",
                 log_quote(src, qn, sizeof qn), len, err);
        return;
    }
    if (se->kind == SK_XPUB && m.type != CLUSTER_NOTICE) {
        c->bad_frames++;                      /* clients send only NOTICEs upstream */
        return;
    }
    if (m.type == CLUSTER_HEARTBEAT && strcmp(m.node, se->peer->name) != 0) {
        c->forged++;
        char qm[600];
        log_fact("-", "cluster", "forged-heartbeat", "peer=%s claims=%s",
                 log_quote(se->peer->name, qn, sizeof qn), log_quote(m.node, qm, sizeof qm));
        return;
    }
    if (!seq_fresh(c, m.node, m.seq)) {
        c->replays++;
        return;
    }
    if (m.type == CLUSTER_NOTICE) {
        if (!clusterver_valid(m.version)) {
            c->bad_frames++;
            return;
        }
#ifdef RN_FAULTS
        /* Test builds only (make test compiles with -DRN_FAULTS): RELAYNODE_FAULT=
         * drop-notices loses every NOTICE, so a test can show convergence by heartbeats. */
        const char *fault = getenv("RELAYNODE_FAULT");
        if (fault && strstr(fault, "drop-notices")) {
            char qv[CLUSTER_VERSION_MAX + 8];
            log_fact("-", "cluster", "fault-dropped-notice", "from=%s version=%s",
                     log_quote(m.node, qn, sizeof qn), log_quote(m.version, qv, sizeof qv));
            return;
        }
#endif
        c->notices_in++;
        if (se->kind == SK_XPUB) {            /* relayctl's news: pass it on unchanged */
            uint8_t buf[CLUSTER_FRAME_MAX];
            memcpy(buf, data, len);
            zmq_send(c->xpub->sock, buf, len, ZMQ_DONTWAIT);
        }
        if (c->cb.on_notice)
            c->cb.on_notice(c->cb.arg, m.node, m.version, m.origin);
        return;
    }
    struct peer *p = se->peer;
    c->heartbeats_in++;
    if (!p->version || strcmp(p->version, m.version) != 0) {
        free(p->version);
        p->version = xstrdup(m.version);
    }
    p->heard = true;
    p->stale = m.stale;
    p->uptime_s = m.uptime_s;
    clock_gettime(CLOCK_MONOTONIC, &p->last_hb);
    bool behind = peer_behind(p->version, c->applied);
    if (behind && !p->behind)
        p->behind_since = p->last_hb;
    p->behind = behind;
    if (c->cb.on_heartbeat)
        c->cb.on_heartbeat(c->cb.arg, p->name, m.version, m.stale);
}

/* ---- ZAP (RFC 27) ---- */

static const struct allow *allow_find(const struct cluster *c, const char *key)
{
    for (size_t i = 0; i < c->nallow; i++)
        if (strcmp(c->allow[i].key, key) == 0)
            return &c->allow[i];
    return NULL;
}

static void zap_reply(void *sock, const zmq_msg_t *reqid, const char *code, const char *text,
                      const char *user)
{
    zmq_send(sock, "1.0", 3, ZMQ_SNDMORE);
    zmq_send(sock, zmq_msg_data((zmq_msg_t *)reqid), zmq_msg_size((zmq_msg_t *)reqid),
             ZMQ_SNDMORE);
    zmq_send(sock, code, strlen(code), ZMQ_SNDMORE);
    zmq_send(sock, text, strlen(text), ZMQ_SNDMORE);
    zmq_send(sock, user, strlen(user), ZMQ_SNDMORE);
    zmq_send(sock, "", 0, 0);
}

/* One ZAP request: version, request id, domain, address, routing id, mechanism, then the
 * CURVE client's 32-byte public key. Only keys in the allow-list get 200. */
static void zap_handle(struct cluster *c, zmq_msg_t *part, size_t nparts)
{
    char key[CLUSTER_KEY_LEN + 1] = "", addr[64] = "", qa[128];
    size_t alen = nparts > 3 ? zmq_msg_size(&part[3]) : 0;
    if (alen >= sizeof addr)
        alen = sizeof addr - 1;
    if (alen)
        memcpy(addr, zmq_msg_data(&part[3]), alen);
    bool well_formed = nparts == 7 && zmq_msg_size(&part[0]) == 3 &&
                       memcmp(zmq_msg_data(&part[0]), "1.0", 3) == 0 &&
                       zmq_msg_size(&part[5]) == 5 &&
                       memcmp(zmq_msg_data(&part[5]), "CURVE", 5) == 0 &&
                       zmq_msg_size(&part[6]) == 32;
    if (well_formed)
        zmq_z85_encode(key, zmq_msg_data(&part[6]), 32);
    const struct allow *a = well_formed ? allow_find(c, key) : NULL;
    zmq_msg_t none;
    zmq_msg_init(&none);                      /* a REP must answer even a broken request */
    const zmq_msg_t *reqid = nparts >= 2 ? &part[1] : &none;
    if (a) {
        c->zap_allowed++;
        zap_reply(c->zap->sock, reqid, "200", "OK", a->name);
        zmq_msg_close(&none);
        return;
    }
    c->zap_refused++;
    /* A refused client retries every reconnect interval: one line per key per minute. */
    bool repeat = strcmp(c->last_refused_key, key) == 0 && mono_since(&c->refused_logged) < 60;
    rn_strlcpy(c->last_refused_key, key, sizeof c->last_refused_key);
    if (!repeat) {
        clock_gettime(CLOCK_MONOTONIC, &c->refused_logged);
        log_fact("-", "cluster", "zap-refused", "key=%s address=%s reason=%s",
             *key ? key : "-", log_quote(addr, qa, sizeof qa),
             well_formed ? "not-in-allow-list" : "malformed-request");
    }
    zap_reply(c->zap->sock, reqid, "400", "key not allowed", "");
    zmq_msg_close(&none);
}

static void zap_drain_one(struct cluster *c)
{
    zmq_msg_t part[ZAP_PARTS];
    size_t n = 0;
    int more = 1;
    while (more) {
        zmq_msg_t m;
        zmq_msg_init(&m);
        if (zmq_msg_recv(&m, c->zap->sock, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&m);
            break;
        }
        more = zmq_msg_more(&m);
        if (n < ZAP_PARTS)
            part[n++] = m;
        else
            zmq_msg_close(&m);               /* more parts than RFC 27 has: refused below */
    }
    if (n)
        zap_handle(c, part, n == ZAP_PARTS ? ZAP_PARTS + 1 : n);
    for (size_t i = 0; i < n; i++)
        zmq_msg_close(&part[i]);
}

/* ---- the drain ---- */

static void sock_drain(struct sockev *s)
{
    if (s->draining)
        return;
    s->draining = true;
    struct cluster *c = s->c;
    for (;;) {
        int events = 0;
        size_t len = sizeof events;
        if (zmq_getsockopt(s->sock, ZMQ_EVENTS, &events, &len) != 0 || !(events & ZMQ_POLLIN))
            break;
        if (s->kind == SK_ZAP) {
            zap_drain_one(c);
            continue;
        }
        zmq_msg_t m;
        zmq_msg_init(&m);
        if (zmq_msg_recv(&m, s->sock, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&m);
            break;
        }
        bool multipart = zmq_msg_more(&m);
        if (!multipart) {
            frame_in(c, s, zmq_msg_data(&m), zmq_msg_size(&m));
        } else {
            c->bad_frames++;                 /* protocol 1 is one frame per message */
            while (zmq_msg_more(&m)) {
                zmq_msg_close(&m);
                zmq_msg_init(&m);
                if (zmq_msg_recv(&m, s->sock, ZMQ_DONTWAIT) < 0)
                    break;
            }
        }
        zmq_msg_close(&m);
    }
    s->draining = false;
}

/* ---- lifecycle ---- */

/* The XPUB: CURVE server with our secret key, ZAP domain set, bound to c->bind. A rebind
 * (key revocation) may find the port still held by the closing socket for a moment, as
 * libzmq closes listeners on its I/O thread: retry for up to a second. */
static int xpub_open(struct cluster *c, char *err, size_t errlen)
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
    for (int tries = 0; zmq_bind(c->xpub->sock, c->bind) != 0; tries++) {
        if (zmq_errno() != EADDRINUSE || tries == 100)
            return rn_err(err, errlen, "cluster: bind %s: %s", c->bind,
                          zmq_strerror(zmq_errno()));
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    return sock_watch(c->xpub, err, errlen);
}

/* ZAP runs only at the handshake, so a key taken off the allow-list would keep its open
 * connection: drop every connection by rebinding; allowed peers reconnect (100 ms) and are
 * asked again, and the next heartbeat repairs what the gap lost. */
static int xpub_rebind(struct cluster *c, char *err, size_t errlen)
{
    if (c->xpub)
        zmq_unbind(c->xpub->sock, c->bind);
    sock_close(&c->xpub);
    return xpub_open(c, err, errlen);
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
        if (!allow_find(c, d->public_key)) {
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
        revoked = revoked || !allow_find(c, old[i].key);
        free(old[i].name);
    }
    free(old);
    if (revoked) {
        char k[RN_ERRLEN];
        if (xpub_rebind(c, k, sizeof k) < 0) {
            log_fact("-", "cluster", "rebind-failed", "error=%s", k);
            if (!skipped++)
                rn_err(err, errlen, "%s", k);
        } else {
            log_fact("-", "cluster", "rebind", "reason=key-revoked allowed=%zu", c->nallow);
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
        bool behind = peer_behind(p->version, c->applied);
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
        ps->age_s = p->heard ? mono_since(&p->last_hb) : -1;
        ps->uptime_s = p->uptime_s;
        ps->order = clusterver_compare(p->version, c->applied);
        ps->lag_s = p->heard && p->behind ? mono_since(&p->behind_since) : 0;
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

/* ---- relayctl's one-shot NOTICE ---- */

int cluster_send_notice(const struct cluster_peer *peers, size_t n, const char *secret_key,
                        const char *sender, const char *version, const char *origin,
                        unsigned linger_ms, char *err, size_t errlen)
{
    char public[CLUSTER_KEY_LEN + 1];
    if (!cluster_key_valid(secret_key) || zmq_curve_public(public, secret_key) != 0)
        return rn_err(err, errlen, "the secret key is not a Z85 CURVE key");
    if (!clusterver_valid(version))
        return rn_err(err, errlen, "not a version: '%s'", version ? version : "");
    struct cluster_msg m = {.type = CLUSTER_NOTICE, .seq = wall_us()};
    if (!sender || !*sender || strlen(sender) > CLUSTER_NODE_MAX ||
        strlen(version) > CLUSTER_VERSION_MAX)
        return rn_err(err, errlen, "bad sender name or version length");
    rn_strlcpy(m.node, sender, sizeof m.node);
    rn_strlcpy(m.version, version, sizeof m.version);
    rn_strlcpy(m.origin, origin ? origin : "", sizeof m.origin);
    uint8_t buf[CLUSTER_FRAME_MAX];
    int len = cluster_wire_encode(&m, buf, sizeof buf, err, errlen);
    if (len < 0)
        return -1;
    void *ctx = zmq_ctx_new();
    void *s = ctx ? zmq_socket(ctx, ZMQ_XSUB) : NULL;
    if (!s) {
        if (ctx)
            zmq_ctx_term(ctx);
        return rn_err(err, errlen, "zmq: %s", zmq_strerror(zmq_errno()));
    }
    int linger = (int)linger_ms, one = 1;
    zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt(s, ZMQ_IPV6, &one, sizeof one);
    zmq_setsockopt(s, ZMQ_CURVE_PUBLICKEY, public, CLUSTER_KEY_LEN);
    zmq_setsockopt(s, ZMQ_CURVE_SECRETKEY, secret_key, CLUSTER_KEY_LEN);
    int connected = 0;
    for (size_t i = 0; i < n; i++) {
        if (!peers[i].endpoint || !*peers[i].endpoint || !cluster_key_valid(peers[i].public_key))
            continue;
        /* The server key is read at connect time, so each connection pins its own peer. */
        if (zmq_setsockopt(s, ZMQ_CURVE_SERVERKEY, peers[i].public_key, CLUSTER_KEY_LEN) == 0 &&
            zmq_connect(s, peers[i].endpoint) == 0)
            connected++;
    }
    int rc = connected;
    /* With ZMQ_IMMEDIATE off (the default) each connect has a pipe at once, so the frame is
     * queued for every peer and leaves when its handshake completes, within the linger. */
    if (connected && zmq_send(s, buf, (size_t)len, 0) < 0)
        rc = rn_err(err, errlen, "send: %s", zmq_strerror(zmq_errno()));
    if (!connected)
        rc = rn_err(err, errlen, "no node with a cluster endpoint and a valid key");
    zmq_close(s);
    zmq_ctx_term(ctx);                        /* waits up to the linger for the frame */
    return rc;
}

/* ---- relayctl's probe (cluster status) ----
 *
 * A subscriber like any node (§3): one SUB per peer, a CURVE client pinning that peer's
 * key, so a frame is known to come from the peer the socket is connected to, and a HEARTBEAT
 * naming another node is dropped exactly as a node drops it. relayctl's key is an admin key
 * in every node's ZAP allow-list; without it the handshake is refused and the node simply
 * stays unheard. Nodes heartbeat every second, so a wait of a few seconds hears every
 * reachable node; we stop as soon as all are heard. */

static uint64_t probe_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static int64_t probe_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A SUB for one peer; NULL when it cannot be set up (the peer then stays unprobed). */
static void *probe_sub_open(void *ctx, const struct cluster_peer *p, const char *public,
                      const char *secret)
{
    void *s = zmq_socket(ctx, ZMQ_SUB);
    if (!s)
        return NULL;
    int linger = 0, one = 1;
    int64_t maxmsg = CLUSTER_FRAME_MAX;       /* a bigger frame is never read into memory */
    if (zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof linger) != 0 ||
        zmq_setsockopt(s, ZMQ_IPV6, &one, sizeof one) != 0 ||
        zmq_setsockopt(s, ZMQ_MAXMSGSIZE, &maxmsg, sizeof maxmsg) != 0 ||
        zmq_setsockopt(s, ZMQ_CURVE_PUBLICKEY, public, CLUSTER_KEY_LEN) != 0 ||
        zmq_setsockopt(s, ZMQ_CURVE_SECRETKEY, secret, CLUSTER_KEY_LEN) != 0 ||
        zmq_setsockopt(s, ZMQ_CURVE_SERVERKEY, p->public_key, CLUSTER_KEY_LEN) != 0 ||
        zmq_setsockopt(s, ZMQ_SUBSCRIBE, "", 0) != 0 || zmq_connect(s, p->endpoint) != 0) {
        zmq_close(s);
        return NULL;
    }
    return s;
}

/* Read every frame waiting on s (docs/style.md rule 8 applies to ZMQ_FD; zmq_poll is level-
 * triggered, but draining keeps one wake-up per burst). Keeps the peer's last heartbeat. */
static void probe_sub_drain(void *s, const struct cluster_peer *p, struct cluster_beat *b)
{
    uint8_t buf[CLUSTER_FRAME_MAX];
    for (;;) {
        int len = zmq_recv(s, buf, sizeof buf, ZMQ_DONTWAIT);
        if (len < 0)
            return;                           /* EAGAIN: drained */
        int more = 0;
        size_t ml = sizeof more;
        bool multipart = zmq_getsockopt(s, ZMQ_RCVMORE, &more, &ml) == 0 && more;
        while (more) {                        /* protocol 1 frames are single-part */
            if (zmq_recv(s, buf, sizeof buf, 0) < 0 ||
                zmq_getsockopt(s, ZMQ_RCVMORE, &more, &ml) != 0)
                more = 0;
        }
        if (multipart || (size_t)len > sizeof buf)
            continue;
        struct cluster_msg m;
        char err[RN_ERRLEN];
        if (cluster_wire_decode(buf, (size_t)len, &m, err, sizeof err) != 0 ||
            m.type != CLUSTER_HEARTBEAT || strcmp(m.node, p->name) != 0)
            continue;
        free(b->version);
        b->version = xstrdup(m.version);
        b->heard = true;
        b->stale = m.stale;
        b->uptime_s = m.uptime_s;
        b->time_ms = m.time_ms;
        b->received_ms = probe_wall_ms();
    }
}

int cluster_probe(const struct cluster_peer *peers, size_t n, const char *secret_key,
                         unsigned wait_ms, struct cluster_beat **out, size_t *nout,
                         char *err, size_t errlen)
{
    *out = NULL;
    *nout = 0;
    char public[CLUSTER_KEY_LEN + 1];
    if (!cluster_key_valid(secret_key) || zmq_curve_public(public, secret_key) != 0)
        return rn_err(err, errlen, "the secret key is not a Z85 CURVE key");
    void *ctx = zmq_ctx_new();
    if (!ctx)
        return rn_err(err, errlen, "zmq: %s", zmq_strerror(zmq_errno()));
    struct cluster_beat *b = xcalloc(n ? n : 1, sizeof *b);
    zmq_pollitem_t *items = xcalloc(n ? n : 1, sizeof *items);
    size_t *which = xcalloc(n ? n : 1, sizeof *which);   /* items[k] listens to peers[which[k]] */
    size_t nitems = 0;
    for (size_t i = 0; i < n; i++) {
        b[i].name = xstrdup(peers[i].name ? peers[i].name : "");
        if (!peers[i].name || !*peers[i].name || !peers[i].endpoint || !*peers[i].endpoint ||
            !cluster_key_valid(peers[i].public_key))
            continue;
        void *s = probe_sub_open(ctx, &peers[i], public, secret_key);
        if (!s)
            continue;
        b[i].probed = true;
        items[nitems] = (zmq_pollitem_t){.socket = s, .events = ZMQ_POLLIN};
        which[nitems++] = i;
    }
    int64_t deadline = probe_mono_ms() + wait_ms;
    size_t heard = 0;
    while (heard < nitems) {
        int64_t left = deadline - probe_mono_ms();
        if (left <= 0)
            break;
        int r = zmq_poll(items, (int)nitems, (long)left);
        if (r < 0 && zmq_errno() != EINTR)
            break;
        heard = 0;
        for (size_t k = 0; k < nitems; k++) {
            if (items[k].revents & ZMQ_POLLIN)
                probe_sub_drain(items[k].socket, &peers[which[k]], &b[which[k]]);
            heard += b[which[k]].heard;
        }
    }
    for (size_t k = 0; k < nitems; k++)
        zmq_close(items[k].socket);
    zmq_ctx_term(ctx);                        /* linger 0: returns at once */
    free(items);
    free(which);
    *out = b;
    *nout = n;
    return 0;
}

void cluster_probe_free(struct cluster_beat **beats, size_t n)
{
    if (!*beats)
        return;
    for (size_t i = 0; i < n; i++) {
        free((*beats)[i].name);
        free((*beats)[i].version);
    }
    free(*beats);
    *beats = NULL;
}
