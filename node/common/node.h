/* node: the process-wide state one relaynode runs with, shared by the daemon (node/daemon.c,
 * which owns it), the SMTP sessions (node/smtp/), delivery (node/delivery/) and TLS. Loop
 * thread only, except where a function says otherwise. */
#ifndef RN_NODE_H
#define RN_NODE_H
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include "directory/bootstrap.h"
#include "directory/model.h"

struct event_base;
struct committer;
struct delivery;
struct queue;
struct relay_metrics;
struct conncount;
struct milter_cfg;
struct smtp_session;
struct spool;
struct tlsctx;
struct tlsctx_named;
struct worker;

struct node {
    struct event_base *base;
    struct rn_bootstrap boot;          /* owned */
    struct rn_snapshot *snap;          /* current snapshot; owned reference; swapped by reload */
    uint64_t snap_generation;          /* +1 at every swap, so sessions notice cheaply */
    struct spool *spool;               /* owned */
    struct worker *worker;             /* owned: runs blocking directory work off the loop */
    struct committer *committer;       /* owned: group commit of accepted messages */
    struct worker *authworker;         /* owned: SMTP AUTH directory lookups and binds */
    struct tlsctx *tls;                /* owned: STARTTLS context; NULL = no certificate */
    struct tlsctx_named *tls_named;    /* owned: the certificates n->snap's connectors name,
                                        * rebuilt at every swap; use node_tls_for (tlsctx.h) */
    size_t ntls_named;
    void *tls_ca;                      /* owned: trust store (tls_ca_file, else the system's)
                                        * partner and RequireTLS smart host certificates are
                                        * verified against (tlsctx_store_new); replaced on
                                        * SIGHUP (a delivery holds its own reference) */
    void *tls_client;                  /* owned: client context deliveries use for STARTTLS,
                                        * showing tls_cert to hops that ask
                                        * (tlsctx_client_new); replaced on SIGHUP likewise */
    struct delivery *delivery;         /* owned: onward delivery (send connectors, MX) */
    struct queue *queue;               /* owned: committed messages until delivered */
    size_t max_command_line, max_text_line;
    uint64_t spool_reserve;            /* MAIL gets 452 4.3.1 below this much free space */
    bool draining;                     /* SIGTERM: no new sessions, finish the open ones */
    bool stopping;                     /* teardown: the loop is gone, the pools are being
                                        * emptied; a session runs no more of its input */
    bool snap_expired;                 /* stale beyond max_stale: the snapshot serves nothing */
    uint64_t nsessions;                /* open sessions (for drain) */
    uint64_t max_sessions;             /* node-wide cap (max_sessions, fitted to RLIMIT_NOFILE) */
    struct smtp_session *sessions;     /* the open sessions (owned by themselves) */
    struct conncount *conns;           /* owned: sessions per connector and source */
    struct relay_metrics *metrics;     /* owned: counters any thread may bump (relaymetrics.h);
                                        * NULL in parts built without it */
    struct milter_cfg *milter;         /* owned: the content filters; NULL or nep 0 = none */
};

#endif
