/* daemon_metrics: the node's metrics (node/metrics/relaymetrics.h) and its scrape endpoint
 * (bootstrap metrics_listen; off when unset). Counters are bumped where things happen (the
 * session, the committer, the queue, the reload decision); the gauges below are read from
 * the daemon's state on the loop, at each scrape, so nothing polls in between. */
#include <stdlib.h>
#include <time.h>

#include "node/cluster/cluster.h"
#include "node/cluster/clusterver.h"
#include "node/common/log.h"
#include "node/daemon-private.h"
#include "node/delivery/queue.h"
#include "node/metrics/metrics_http.h"
#include "node/metrics/relaymetrics.h"
#include "node/milter/milter.h"
#include "node/spool/committer.h"

/* A peer whose last heartbeat is older than this many heartbeat periods is unreachable, as
 * relayctl cluster status would find it. */
#define PEER_SILENT_PERIODS 3

static void collect_peers(struct daemon *d, struct relay_metrics *rm)
{
    size_t count[RM_NPEER] = {0};
    if (d->bus) {
        struct cluster_status *st = cluster_status(d->bus);
        double silent = PEER_SILENT_PERIODS * (d->heartbeat_ms ? d->heartbeat_ms : 1000) / 1e3;
        for (size_t i = 0; i < st->npeers; i++) {
            const struct cluster_peer_status *p = &st->peers[i];
            if (!p->endpoint || !*p->endpoint)
                continue;          /* a publish-only key (relayctl): never a peer */
            enum rm_peer s = !p->heard || p->age_s > silent ? RM_PEER_UNREACHABLE
                             : p->stale                     ? RM_PEER_STALE
                             : p->order == CV_EQUAL         ? RM_PEER_CURRENT
                             : p->order == CV_NEWER         ? RM_PEER_AHEAD
                                                            : RM_PEER_BEHIND;
            count[s]++;
        }
        cluster_status_free(&st);
    }
    for (size_t i = 0; i < RM_NPEER; i++)
        metrics_set(rm->peers[i], (double)count[i]);
}

static void daemon_metrics_collect(void *arg)
{
    struct daemon *d = arg;
    struct relay_metrics *rm = d->n.metrics;
    time_t now = time(NULL);
    if (d->n.queue) {
        size_t ready, waiting, busy;
        queue_counts(d->n.queue, &ready, &waiting, &busy);
        metrics_set(rm->queue_messages, (double)(ready + waiting + busy));
        time_t oldest = queue_oldest(d->n.queue);
        metrics_set(rm->queue_oldest, oldest && now > oldest ? (double)(now - oldest) : 0);
    }
    metrics_clear(rm->dir_version);
    const char *v = daemon_applied_version(d);
    if (v) {
        const char *values[] = {v};
        metrics_set(metrics_series(rm->dir_version, values), 1);
    }
    metrics_set(rm->dir_stale, d->stale ? 1 : 0);
    double stale_s = 0;
    if (d->stale) {
        struct timespec t;
        clock_gettime(CLOCK_MONOTONIC, &t);
        stale_s = (double)(t.tv_sec - d->stale_since.tv_sec) +
                  (double)(t.tv_nsec - d->stale_since.tv_nsec) / 1e9;
    }
    metrics_set(rm->dir_stale_seconds, stale_s > 0 ? stale_s : 0);
    collect_peers(d, rm);
}

int daemon_metrics_setup(struct daemon *d, char *err, size_t errlen)
{
    struct node *n = &d->n;
    n->metrics = relay_metrics_new();
    committer_set_metrics(n->committer, n->metrics->commit_batch, n->metrics->commit_seconds);
    milter_cfg_metrics(n->milter, n->metrics);
    const struct boot_endpoint *e = &n->boot.metrics_listen;
    if (!e->port)
        return 0;
    char herr[RN_ERRLEN];
    d->metrics_http = metrics_http_new(n->base, e->host, e->port, n->metrics->reg,
                                       daemon_metrics_collect, d, herr, sizeof herr);
    if (!d->metrics_http)
        return rn_err(err, errlen, "%s", herr);
    log_fact("-", "metrics", "listen", "address=%s port=%u path=/metrics", e->host, e->port);
    return 0;
}

void daemon_metrics_stop(struct daemon *d)
{
    metrics_http_free(&d->metrics_http);
}

void daemon_metrics_free(struct daemon *d)
{
    relay_metrics_free(&d->n.metrics);
}
