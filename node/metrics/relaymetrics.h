/* relaymetrics: the node's own metric set, every family registered in one table
 * (relaymetrics.c; listed with labels and types in README.md "Metrics"). Series whose labels
 * are fixed words are resolved once here, so the session, committer and delivery paths only
 * add to an atomic; the per-connector series are looked up once per session. No label value
 * ever comes from a client: connectors come from the snapshot, mechanisms from the offered
 * set, rights from the rights table, filters from the bootstrap's milter key. Made by the daemon, shared by pointer (node.h). */
#ifndef RN_RELAYMETRICS_H
#define RN_RELAYMETRICS_H
#include <stdbool.h>
#include <stdint.h>
#include "node/metrics/metrics.h"

#define RM_CONNECTORS_MAX 256          /* connector series per family (then "_overflow") */

enum rm_delivery { RM_DELIVERED, RM_DEFERRED, RM_FAILED, RM_EXPIRED, RM_NDELIVERY };
enum rm_reload { RM_APPLIED, RM_UNCHANGED, RM_OLDER, RM_LOAD_FAILED, RM_NRELOAD };
enum rm_peer { RM_PEER_CURRENT, RM_PEER_AHEAD, RM_PEER_BEHIND, RM_PEER_STALE,
               RM_PEER_UNREACHABLE, RM_NPEER };
enum rm_auth { RM_AUTH_SUCCESS, RM_AUTH_FAILURE, RM_AUTH_TEMPFAIL, RM_NAUTH };
#define RM_MECHS 4                     /* PLAIN, LOGIN, GSSAPI, other */
#define RM_RIGHTS 26                   /* RIGHT_COUNT (directory/rights.h) */
enum rm_bypass { RM_BYPASS_ANTISPAM, RM_BYPASS_CONNECTOR, RM_NBYPASS };
#define RM_MILTERS 16                  /* filters the milter key takes (milter_proto.c) */

struct relay_metrics {
    struct metrics *reg;                                   /* owned */
    struct metric_family *sessions, *messages;             /* {connector} */
    struct metric_series *replies[4];                      /* {class} 2xx..5xx */
    struct metric_series *rights[RM_RIGHTS][2];            /* {right, outcome} deny, allow */
    struct metric_series *auth[RM_MECHS][RM_NAUTH];        /* {mechanism, outcome} */
    struct metric_series *queue_messages, *queue_oldest;   /* gauges, set at scrape */
    struct metric_series *deliveries[RM_NDELIVERY];        /* {outcome}, per recipient */
    struct metric_series *commit_batch, *commit_seconds;   /* histograms */
    struct metric_series *reloads[RM_NRELOAD];             /* {result} */
    struct metric_family *dir_version;                     /* info {version}, set at scrape */
    struct metric_series *dir_stale, *dir_stale_seconds;   /* gauges, set at scrape */
    struct metric_series *peers[RM_NPEER];                 /* {state}, set at scrape */
    /* The milter client's families: the {filter, ...} series are resolved once at start by
     * milter_cfg_metrics (node/milter/milter.h), the filter label being the configured
     * endpoint (bounded by the bootstrap: at most RM_MILTERS, never client input). */
    struct metric_family *milter_verdicts;     /* {filter, stage, verdict} */
    struct metric_family *milter_defaults;     /* {filter, stage, verdict}: the default's */
    struct metric_family *milter_latency;      /* histogram {filter} */
    struct metric_family *milter_errors;       /* {filter, reason} */
    struct metric_series *milter_bypassed[RM_NBYPASS];  /* {reason} */
    struct metric_series *milter_header_changes;
};

/* The node's registry with every family; caller frees with relay_metrics_free. */
struct relay_metrics *relay_metrics_new(void);
void relay_metrics_free(struct relay_metrics **rm);

/* Loop or any thread; every function is a no-op on a NULL rm. */
void relay_metrics_reply(struct relay_metrics *rm, const char *reply);   /* "250 ..." */
/* A policy verdict that turned on a right (bit 0: none, nothing counted). */
void relay_metrics_right(struct relay_metrics *rm, uint32_t right_bit, bool allowed);
void relay_metrics_auth(struct relay_metrics *rm, const char *mechanism, enum rm_auth outcome);
/* The {connector} series of a family (sessions or messages): NULL with a NULL rm. */
struct metric_series *relay_metrics_connector(struct relay_metrics *rm,
                                              struct metric_family *f, const char *connector);
#endif
