/* clusterprobe: `relayctl cluster status`'s view of the bus (schema/cluster-protocol.md §3):
 * subscribe to every node's XPUB for a short while, as a CURVE client with relayctl's admin
 * key, and keep each node's last HEARTBEAT. Blocking, no event loop, its own ZeroMQ context;
 * for relayctl, never for the daemon (which learns the same from cluster_status). */
#ifndef RN_CLUSTERPROBE_H
#define RN_CLUSTERPROBE_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "node/cluster.h"

/* What one peer said; out[i] answers peers[i]. */
struct clusterprobe_beat {
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
 * entries, caller clusterprobe_free()s), or -1 with err (bad secret key, no ZeroMQ). */
int clusterprobe_collect(const struct cluster_peer *peers, size_t n, const char *secret_key,
                         unsigned wait_ms, struct clusterprobe_beat **out, size_t *nout,
                         char *err, size_t errlen);
void clusterprobe_free(struct clusterprobe_beat **beats, size_t n);
#endif
