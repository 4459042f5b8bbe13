/* cluster: the node's side of the cluster bus (schema/cluster-protocol.md §3, §4) on the
 * libevent loop: an XPUB bound on the node's endpoint (CURVE server, ZAP allow-list), one
 * SUB per peer (CURVE client pinning the peer's key), periodic HEARTBEATs, NOTICEs, and the
 * per-sender replay check. It carries news only; what to do with it is the daemon's choice
 * (clusterver_decide). Loop thread only; no callback may call cluster_free or
 * cluster_set_peers. Also relayctl's two blocking clients of the bus: cluster_send_notice and
 * cluster_probe. The only file that includes <zmq.h>. */
#ifndef RN_CLUSTER_H
#define RN_CLUSTER_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CLUSTER_KEY_LEN 40          /* Z85 text of a CURVE key */

struct event_base;
struct cluster;

struct cluster_peer {
    const char *name;               /* relayNode cn */
    const char *endpoint;           /* relayClusterEndpoint; NULL or "": publish-only member
                                     * (relayctl's key): allowed to send, never subscribed to */
    const char *public_key;         /* relayCurvePublicKey, Z85 */
};

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

/* Keys. A key file holds the Z85 secret key on its first line (cluster_secret_key_file);
 * -1 with err when unreadable or not a key. public_out gets the derived public key. */
int cluster_key_load(const char *path, char secret_out[CLUSTER_KEY_LEN + 1],
                     char public_out[CLUSTER_KEY_LEN + 1], char *err, size_t errlen);
/* A fresh keypair (for `relayctl node keygen`); -1 with err when CURVE is unavailable. */
int cluster_keypair_new(char public_out[CLUSTER_KEY_LEN + 1],
                        char secret_out[CLUSTER_KEY_LEN + 1], char *err, size_t errlen);
bool cluster_key_valid(const char *z85);

/* relayctl's one-shot publish (blocking, no event loop): connect an XSUB with our key to
 * every peer with an endpoint, send one NOTICE upstream (node = sender), and wait up to
 * linger_ms for it to leave. Returns the number of endpoints connected to, or -1 with err.
 * Delivery is not confirmed: nodes converge from heartbeats anyway. */
int cluster_send_notice(const struct cluster_peer *peers, size_t n, const char *secret_key,
                        const char *sender, const char *version, const char *origin,
                        unsigned linger_ms, char *err, size_t errlen);

/* relayctl's probe for `relayctl cluster status` (blocking, own ZeroMQ context, never for
 * the daemon, which learns the same from cluster_status). */
/* What one peer said; out[i] answers peers[i]. */
struct cluster_beat {
    char *name;             /* owned: the peer's name */
    bool probed;            /* it had an endpoint and a valid key, and was connected to */
    bool heard;             /* a HEARTBEAT carrying its own name arrived */
    char *version;          /* owned: its applied version ("" = none yet); NULL unless heard */
    bool stale;             /* it runs its last good snapshot (directory unreachable) */
    uint64_t uptime_s;      /* its uptime */
    uint64_t time_ms;       /* its wall clock when it sent the heartbeat, ms since the epoch */
    uint64_t received_ms;   /* our wall clock when the heartbeat arrived */
};

/* Connect one SUB per peer with an endpoint and a valid key (CURVE client with the keypair
 * of secret_key, pinning the peer's key) and collect HEARTBEATs for up to wait_ms, or until
 * every probed peer has been heard. A frame whose node is not that peer's name, a frame
 * over CLUSTER_FRAME_MAX or one that does not decode is dropped. Returns 0 with *out (n
 * entries, caller cluster_probe_free()s), or -1 with err (bad secret key, no ZeroMQ). */
int cluster_probe(const struct cluster_peer *peers, size_t n, const char *secret_key,
                         unsigned wait_ms, struct cluster_beat **out, size_t *nout,
                         char *err, size_t errlen);
void cluster_probe_free(struct cluster_beat **beats, size_t n);
#endif
