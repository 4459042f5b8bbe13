/* cluster-private: the bus's internals shared by its two files only (cluster.c: sockets,
 * lifecycle, peers, publishing, status; cluster_recv.c: what arrives, i.e. the drain, frames
 * in, the replay check and the ZAP handler). Nothing outside node/cluster/ includes it. */
#ifndef RN_CLUSTER_PRIVATE_H
#define RN_CLUSTER_PRIVATE_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>
#include "node/cluster/cluster.h"

#define SEEN_MAX        4096    /* senders whose last seq we remember */

struct event;

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
    struct event *ev_rebind;           /* owned: a rebind waiting for its port */
    unsigned rebind_tries;
    unsigned heartbeat_ms;
    uint64_t notices_in, heartbeats_in, replays, bad_frames, forged, zap_allowed, zap_refused;
    char last_refused_key[CLUSTER_KEY_LEN + 1];
    struct timespec refused_logged;
};

/* cluster_recv.c */
/* Read everything waiting on the socket (ZMQ_FD is edge-triggered: call it after every
 * wake-up and every send on the socket). Not re-entered for the same socket. */
void cluster_sock_drain(struct sockev *s);
/* Whether a peer that applied `version` is behind us (lag is counted from then). */
bool cluster_peer_behind(const char *version, const char *applied);
/* The allow-list entry of a Z85 key, or NULL. */
const struct allow *cluster_allow_find(const struct cluster *c, const char *key);

/* cluster.c */
double cluster_mono_since(const struct timespec *t);   /* seconds on CLOCK_MONOTONIC */
#endif
