/* daemon-private: the daemon's state and the functions its three files share, nothing else
 * includes it. daemon.c: the run loop, loads and their outcome (reload.h decides, daemon.c
 * acts), signals, the drain and teardown. daemon_setup.c: bootstrap values, log, spool, TLS
 * certificates, pid file, detach, the event base and its worker pools. daemon_cluster.c:
 * the cluster key, the change watcher, the bus and the news they bring. daemon_incr.c: the
 * watcher's changes applied incrementally. Loop thread only unless a comment says
 * otherwise. */
#ifndef RN_DAEMON_PRIVATE_H
#define RN_DAEMON_PRIVATE_H
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>
#include "directory/base/util.h"
#include "directory/ldap/ldapadmin.h"
#include "directory/ldap/ldapdir.h"
#include "directory/model.h"
#include "node/cluster/cluster_key.h"
#include "node/cluster/cluster_wire.h"
#include "node/common/node.h"
#include "node/daemon.h"
#include "node/privdrop.h"

#define WORKER_THREADS   2
#define AUTH_THREADS     4        /* AUTH binds may each wait ldap_timeout on a sick directory */
#define RELOAD_PERIOD_S  60     /* safety net behind the watcher and the bus */
#define WAIT_RETRY_S     1      /* a WAIT without a persist watcher is retried by a load */
#define PEER_WAIT_MS  2000      /* a peer's news, with a live persist watcher: how long the
                                 * node waits for its own watcher before a full load */
#define DRAIN_TICK_MS    100
#define LOOPLAT_REPORT_S 10     /* loop latency: a report period (node/common/looplat.h) ... */
#define LOOPLAT_THRESHOLD_MS 50 /* ... logged when its worst lateness reaches this */
#define QVER (CLUSTER_VERSION_MAX + 64)   /* a version quoted for the log, whole */

struct event;
struct looplat;
struct tlsctx;
struct tlsctx_named;
struct rn_snapshot;
struct node;
struct cluster;
struct ldapsync;
struct listeners;
struct metrics_http;
struct snapstore;
struct snapdelta_change;

#define DAEMON_SIGLEN 256
enum { DAEMON_SIG_CA, DAEMON_SIG_CLIENT };

struct daemon {
    struct node n;
    struct listeners *listeners;      /* owned */
    struct ldapdir *dir;              /* owned; touched only by the (single) load job */
    struct event *ev_hup, *ev_term, *ev_int, *ev_usr1;   /* owned signal events */
    struct event *ev_reload;          /* owned: periodic reload */
    struct event *ev_retry;           /* owned: retry after a failed load */
    struct event *ev_drain;           /* owned: drain progress tick */
    bool loading;                     /* a load job is in flight */
    bool reload_pending;              /* SIGHUP arrived during a load */
    bool stopping;                    /* teardown: load results are discarded */
    bool sasl;                        /* saslauth_init succeeded */
    bool drop;                        /* root with `user`: drop to run_as after setup */
    char tls_sig[2][DAEMON_SIGLEN];   /* tls_ca_file, tls_cert + tls_key as last loaded
                                       * (daemon_certs_sig): SIGHUP reads them only if changed */
    struct privdrop_id run_as;        /* valid when drop */
    unsigned backoff;                 /* seconds before the next retry */
    unsigned drain_timeout;           /* seconds */
    struct timespec drain_deadline;
    uint64_t loads_failed;
    /* cluster */
    struct cluster *bus;              /* owned; NULL: standalone (no key, or not bound yet) */
    char secret[CLUSTER_KEY_LEN + 1]; /* "" when no cluster_secret_key_file */
    unsigned heartbeat_ms;
    struct ldapsync *watch;           /* owned; NULL when directory_watch = off */
    bool watch_persist;               /* the watcher runs refreshAndPersist (not polling) */
    bool watch_up;                    /* ... and is connected (UP seen, no DOWN since) */
    char *replica;                    /* own server's version per the watcher; NULL unknown */
    char *announced;                  /* the last version this node sent a NOTICE for */
    char *wanted;                     /* announced version the replica lacks (WAIT) */
    char *load_floor;                 /* replica version when the in-flight load started */
    bool stale;                       /* the last load failed: serving the last good snapshot */
    struct timespec stale_since;      /* monotonic: the first failed load while stale */
    struct metrics_http *metrics_http;   /* owned: the scrape endpoint; NULL = off */
    long long older_since;            /* monotonic second of the first load discarded as
                                       * older (reload_decide keeps it); 0: none pending */
    unsigned max_stale;               /* seconds; 0 = a stale snapshot serves for ever */
    struct event *ev_expire;          /* owned: fires max_stale after the first failed load */
    struct looplat *lat;              /* owned: the loop-latency probe (looplat.h) */
    struct event *ev_watch;           /* owned: activated by the watcher thread */
    struct event *ev_wait;            /* owned: WAIT retry when the watcher is not persistent,
                                       * and the bound on waiting for a live one (PEER_WAIT_MS) */
    pthread_mutex_t watch_mu;         /* guards the w_* slot the watcher thread fills */
    char *w_version;                  /* latest VERSION not yet taken by the loop */
    char *w_mark;                     /* latest CHANGED mark not yet taken by the loop */
    bool w_down, w_up;
    char w_detail[256];
    /* incremental reloads (daemon_incr.c) */
    bool incr_on;                     /* RELAYNODE_INCREMENTAL is not off */
    bool incr_verify;                 /* RN_FAULTS: RELAYNODE_VERIFY_INCREMENTAL=1 */
    bool full_wanted;                 /* the next load is full: SIGHUP, period, retry */
    struct snapstore *store;          /* owned; touched only by the load job in flight when
                                       * it is incremental, else by the side job (and by
                                       * the loop when neither runs) */
    struct event *ev_incr;            /* owned: activated by the watcher thread */
    pthread_mutex_t incr_mu;          /* guards q, nq, q_overflow (the watcher fills them) */
    bool incr_mu_init;                /* daemon_incr_setup ran */
    struct snapdelta_change *q;       /* owned: changes no load has taken yet */
    size_t nq;
    bool q_overflow;                  /* changes were dropped: the next load is full */
    uint64_t incr_applied, verify_mismatches;
    /* changes applied beside a full load (daemon_incr.c): while a full load reads the whole
     * directory, a side job applies the watcher's batches to the last load's store and swaps
     * the result in at once; what it took is kept in replay and applied to the full load's
     * store before that one is used, so the full load never rolls them back */
    bool main_full;                   /* the load in flight started full: side jobs may run */
    struct load_job *side;            /* the side job in flight (owned by the worker), NULL */
    struct load_job *parked;          /* owned: the full load, done while a side job ran */
    struct ldapdir *side_dir;         /* owned; touched only by the side job */
    struct snapdelta_change *replay;  /* owned: what side jobs took during this full load */
    size_t nreplay;
};

/* Certificates read on the worker for the loop to swap in (daemon_certs.c). */
/* What stat says of the files behind tls_ca_file (which = DAEMON_SIG_CA) or tls_cert and
 * tls_key (DAEMON_SIG_CLIENT): device, inode, size, mtime; "" when unset. Disk work. */
void daemon_certs_sig(const struct rn_bootstrap *b, int which, char *out, size_t len);

struct certs_job {
    bool reread;                      /* SIGHUP: every file again */
    bool node_wanted;                 /* read the node certificate (tls_cert) too */
    struct rn_snapshot *snap;         /* owned reference or NULL: whose names (SIGHUP job) */
    char **have; size_t nhave;        /* owned: names loaded already, not read again */
    struct tlsctx *node;              /* owned: the node certificate read, NULL if it failed */
    char node_err[RN_ERRLEN];
    void *ca, *client;                /* owned (SIGHUP): tls_ca_file's store and the delivery
                                       * client context (tls_cert), NULL if they failed */
    char ca_err[RN_ERRLEN], client_err[RN_ERRLEN];
    char sig[2][DAEMON_SIGLEN];       /* in: as last loaded; out: as read now */
    bool changed[2];                  /* out: the files differ, so ca / client were read */
    struct tlsctx_named *named;       /* owned: the names read */
    size_t nnamed;
};

struct load_job {
    struct daemon *d;
    struct certs_job certs;           /* the new snapshot's certificates not loaded yet */
    struct rn_snapshot *snap;         /* result, owned until swapped in */
    enum dir_result rc;
    char err[RN_ERRLEN];
    struct ldapadmin_node *nodes;     /* the relayNode entries (cluster peers), with the bus */
    size_t nnodes;
    bool want_nodes;
    struct snapdelta_change *changes; /* owned: the watcher's changes this load applies */
    size_t nchanges;
    bool incremental;                 /* in: try the store; out: it was incremental */
    char why_full[RN_ERRLEN];         /* why an incremental load fell back ("" asked) */
    struct snapstore *store;          /* owned: a full load's new store, installed by the
                                       * loop (d->store may serve a side job meanwhile) */
    bool side;                        /* a side job (beside a full load) */
    bool replay;                      /* a full load applying the side jobs' changes */
    double load_ms;
    enum { VERIFY_OFF, VERIFY_OK, VERIFY_MISMATCH, VERIFY_SKIPPED } verify;
    char verify_diff[1024];
};

/* daemon.c */
/* Start a snapshot load on the worker pool, or remember one for when the load in flight
 * ends; nothing while stopping or draining. */
void daemon_load_start(struct daemon *d);
/* A watcher batch arrived: when a full load is in flight (and the store, the watcher and
 * the queue allow it), apply the queued changes beside it at once; else nothing. */
void daemon_side_start(struct daemon *d);
/* The version of the snapshot that runs; NULL when none (or it has none). */
const char *daemon_applied_version(const struct daemon *d);
/* Replace *slot by a copy of v (NULL: none). */
void daemon_set_str(char **slot, const char *v);
/* Create and arm the signal events (SIGHUP, SIGUSR1, SIGTERM, SIGINT), the periodic reload,
 * the retry, drain and max_stale timers. -1 with err. */
int daemon_events_new(struct daemon *d, char *err, size_t errlen);

/* daemon_setup.c */
/* Bootstrap, limits, log, the spool (waiting a little for its lock), TLS, SASL. -1 with err;
 * the log is open once it returns 0. */
int daemon_node_setup(struct daemon *d, const struct daemon_opts *o, char *err, size_t errlen);
/* Started as root: refuse without `user` (unless --allow-root), else resolve user/group;
 * any start: refuse secret files group or others can read. -1 with err. */
int daemon_privileges_check(struct daemon *d, const struct daemon_opts *o, char *err,
                            size_t errlen);
/* Started as root with `user`: hand the spool, log file and protocol log directory to the
 * user, then drop to it keeping only CAP_NET_BIND_SERVICE. Before any thread starts. */
int daemon_privileges_drop(struct daemon *d, char *err, size_t errlen);
/* Double fork and detach (the original process exits 0). -1 with err. */
int daemon_daemonize(char *err, size_t errlen);
int daemon_write_pidfile(const char *path, char *err, size_t errlen);
/* After the detach: the event base, worker pools, listeners, committer, events, delivery
 * and queue. -1 with err. */
int daemon_loop_setup(struct daemon *d, char *err, size_t errlen);

/* daemon_certs.c: certificates read on the worker (issue 13). */
/* Loop: start a read; reread (SIGHUP) reads the node certificate and every name again,
 * otherwise only names not loaded yet are read. */
void daemon_certs_begin(struct daemon *d, struct certs_job *c, bool reread);
/* Worker: read what c asks for the connectors of snap (failures logged, never fatal). */
void daemon_certs_read(struct daemon *d, struct certs_job *c, const struct rn_snapshot *snap);
/* Loop: the named certificates snap's connectors use, from c (NULL: none read), else those
 * already loaded, else (a name nobody read) read here. The old set goes. */
void daemon_certs_load(struct node *n, const struct rn_snapshot *snap, struct certs_job *c);
/* Free what c still holds. */
void daemon_certs_end(struct certs_job *c);
/* SIGHUP: a worker job reads the node certificate, the named ones, tls_ca_file and the
 * delivery client context again; a node certificate, CA file or client context that no
 * longer loads keeps the one in use (logged). */
void daemon_certs_reread(struct daemon *d);

/* daemon_cluster.c */
/* The cluster key (a configured key that cannot be read fails the start) and the change
 * watcher; the bus starts later, with daemon_bus_update. -1 with err. */
int daemon_cluster_setup(struct daemon *d, char *err, size_t errlen);
/* After a load that succeeded: start the bus once the directory says where this node
 * listens, then keep its peers and heartbeat in step with the snapshot that runs. */
void daemon_bus_update(struct daemon *d, const struct load_job *j);

/* daemon_incr.c */
/* Read RELAYNODE_INCREMENTAL (and, with RN_FAULTS, RELAYNODE_VERIFY_INCREMENTAL) and create
 * the queue's event; true when the watcher should deliver entries (daemon_incr_batch). */
bool daemon_incr_setup(struct daemon *d);
/* Watcher thread: the ldapsync batch callback (arg = d); takes v. */
void daemon_incr_batch(void *arg, struct snapdelta_change *v, size_t n);
/* Free the queue, the store and the event (teardown, after the watcher and workers). */
void daemon_incr_teardown(struct daemon *d);
/* Loop, when a load starts: the queued changes go to j, which is incremental when the
 * store, the watcher and the reason allow it. */
void daemon_incr_take(struct daemon *d, struct load_job *j);
/* Worker: the load itself, incremental or full (the fallback). d->dir is open. */
enum dir_result daemon_incr_load(struct daemon *d, struct load_job *j);
/* Loop, when the load is done: log what it was (and the verification). */
void daemon_incr_done(struct daemon *d, const struct load_job *j);
/* Loop, a batch arrived during a full load: the queued changes go to j (a side job); false
 * (nothing taken) when none wait or some were dropped (the next load is full anyway). */
bool daemon_incr_take_side(struct daemon *d, struct load_job *j);
/* Worker: a side job, applying j's changes to d->store on d->side_dir. */
void daemon_incr_side(struct daemon *d, struct load_job *j);
/* Worker: a full load done, applying j->changes (the side jobs') to its store j->store and
 * building its snapshot again from it. */
void daemon_incr_replay(struct daemon *d, struct load_job *j);
/* Loop: keep the side job's changes for the full load in flight (takes them from j). */
void daemon_incr_keep(struct daemon *d, struct load_job *j);

/* daemon_metrics.c */
/* The node's metrics (n->metrics) and, when metrics_listen is set, the scrape endpoint on
 * the loop. After daemon_loop_setup. -1 with err when the endpoint cannot listen. */
int daemon_metrics_setup(struct daemon *d, char *err, size_t errlen);
/* Close the endpoint (teardown, first). */
void daemon_metrics_stop(struct daemon *d);
/* Free the registry (teardown, last: the committer and the queue hold its series). */
void daemon_metrics_free(struct daemon *d);
#endif
