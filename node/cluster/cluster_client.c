/* cluster_client: relayctl's two blocking clients of the cluster bus (cluster_client.h),
 * each with its own ZeroMQ context and no event loop: the one-shot NOTICE sent upstream to
 * every node, and the probe that listens to the nodes' HEARTBEATs for `relayctl cluster
 * status`. Nothing of the loop-side bus (cluster.c) is linked with it. */
#include "node/cluster/cluster_client.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zmq.h>
#include "directory/base/util.h"
#include "node/cluster/cluster_wire.h"
#include "node/cluster/clusterver.h"

static uint64_t wall_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
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
