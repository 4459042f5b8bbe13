/* cluster_client: relayctl's two blocking clients of the cluster bus (schema/
 * cluster-protocol.md §3), each with its own ZeroMQ context and no event loop: a one-shot
 * NOTICE, and a probe of the nodes' HEARTBEATs. Never for the daemon, which has the bus
 * (cluster.h); linking this pulls nothing of the bus in. */
#ifndef RN_CLUSTER_CLIENT_H
#define RN_CLUSTER_CLIENT_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "node/cluster/cluster_key.h"

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
