/* cluster: the node's side of the cluster bus (schema/cluster-protocol.md §3, §4) on the
 * libevent loop: an XPUB bound on the node's endpoint (CURVE server, ZAP allow-list), one
 * SUB per peer (CURVE client pinning the peer's key), periodic HEARTBEATs, NOTICEs, and the
 * per-sender replay check. It carries news only; what to do with it is the daemon's choice
 * (clusterver_decide). Loop thread only; no callback may call cluster_free or
 * cluster_set_peers. Keys and the description of a member are in cluster_key.h; relayctl's
 * blocking clients of the bus in cluster_client.h (never linked with this). */
#ifndef RN_CLUSTER_H
#define RN_CLUSTER_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "node/cluster/cluster_key.h"

struct event_base;
struct cluster;

struct cluster_callbacks {
    /* A NOTICE that passed the replay check: from a peer's XPUB, or sent upstream by an
     * allowed client (relayctl; then also republished). from = the frame's node field. */
    void (*on_notice)(void *arg, const char *from, const char *version, const char *origin);
    /* A peer's HEARTBEAT (its node field matched the peer subscribed to). */
    void (*on_heartbeat)(void *arg, const char *peer, const char *version, bool stale);
    void *arg;
};

struct cluster_opts {
    const char *self;               /* this node's name (the node field it sends) */
    const char *bind;               /* endpoint for the XPUB, e.g. "tcp://10.0.0.5:5670" */
    const char *secret_key;         /* Z85 secret key; the public key is derived from it */
    unsigned heartbeat_ms;          /* 0: 1000 */
};

/* Start the bus: own ZeroMQ context, ZAP handler bound first (an empty allow-list refuses
 * everyone), then the XPUB. NULL with err on a bad key or endpoint. Copies opts. */
struct cluster *cluster_new(struct event_base *base, const struct cluster_opts *o,
                            const struct cluster_callbacks *cb, char *err, size_t errlen);
/* Close every socket and the context (no linger), free; *c = NULL. */
void cluster_free(struct cluster **c);

/* Reconcile with the directory's node list (self included or not; matched by name):
 * SUBs of peers gone or whose endpoint or key changed are closed, new ones connected, and
 * the allow-list becomes exactly the valid keys listed. Returns how many entries were
 * skipped (bad key or endpoint; err names the first), 0 when all were used. */
size_t cluster_set_peers(struct cluster *c, const struct cluster_peer *peers, size_t n,
                         char *err, size_t errlen);

/* What the heartbeats say: the applied version (NULL: none yet) and whether the node runs
 * its last good snapshot because the directory is unreachable. A change is sent at once. */
void cluster_set_applied(struct cluster *c, const char *version, bool stale);
/* Publish a NOTICE for version (it must be a valid version, clusterver_valid): -1 with
 * err when it is not, or the frame cannot be sent. */
int cluster_publish_notice(struct cluster *c, const char *version, const char *origin,
                           char *err, size_t errlen);
const char *cluster_public_key(const struct cluster *c);   /* Z85, owned by c */

struct cluster_peer_status {
    char *name, *endpoint;          /* owned */
    char *version;                  /* last heartbeat's applied version; NULL: none heard */
    bool heard, stale;
    double age_s;                   /* since the last heartbeat; -1 when none */
    uint64_t uptime_s;
    int order;                      /* enum clusterver_order of version vs our applied */
    double lag_s;                   /* how long the peer has been behind us; 0 = not */
};
struct cluster_status {
    char *self, *applied;           /* owned; applied may be NULL */
    bool stale;
    struct cluster_peer_status *peers;   /* owned, sorted by name */
    size_t npeers;
    size_t allowed_keys;
    uint64_t notices_in, heartbeats_in, replays, bad_frames, forged;
    uint64_t zap_allowed, zap_refused;
    char last_refused_key[CLUSTER_KEY_LEN + 1];   /* "" when none */
};
/* A copy of the bus state for `relayctl cluster status`; caller cluster_status_free()s. */
struct cluster_status *cluster_status(const struct cluster *c);
void cluster_status_free(struct cluster_status **s);
#endif
