/* cluster_recv: what the bus receives on the loop (cluster.h, cluster-private.h): the drain
 * of a socket, which reads while ZMQ_EVENTS says ZMQ_POLLIN (ZMQ_FD is edge-triggered,
 * docs/style.md rule 8); frames from peers' XPUBs and NOTICEs sent upstream by allowed clients,
 * each through the per-sender replay check; and the ZAP handler (RFC 27) that admits only
 * the keys of the allow-list. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zmq.h>
#include "directory/base/util.h"
#include "node/cluster/cluster-private.h"
#include "node/cluster/cluster_wire.h"
#include "node/cluster/clusterver.h"
#include "node/common/log.h"

#define ZAP_PARTS       8

/* Whether a peer that applied `version` is behind us (lag is counted from then). */
bool cluster_peer_behind(const char *version, const char *applied)
{
    enum clusterver_order o = clusterver_compare(version, applied);
    return o == CV_OLDER || o == CV_CONCURRENT ||
           (o == CV_INVALID && clusterver_valid(applied) && !clusterver_valid(version));
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
    bool behind = cluster_peer_behind(p->version, c->applied);
    if (behind && !p->behind)
        p->behind_since = p->last_hb;
    p->behind = behind;
    if (c->cb.on_heartbeat)
        c->cb.on_heartbeat(c->cb.arg, p->name, m.version, m.stale);
}

/* ---- ZAP (RFC 27) ---- */

const struct allow *cluster_allow_find(const struct cluster *c, const char *key)
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
    const struct allow *a = well_formed ? cluster_allow_find(c, key) : NULL;
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
    bool repeat = strcmp(c->last_refused_key, key) == 0 &&
                  cluster_mono_since(&c->refused_logged) < 60;
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

void cluster_sock_drain(struct sockev *s)
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
