/* relaymetrics: the families relaynode exports (README.md "Metrics"), registered once at
 * start. Names follow Prometheus conventions: a relaynode_ prefix, base units in the name
 * (seconds, messages), _total on counters. Buckets: commit latency from 0.5 ms to 10 s
 * (an fsync on a healthy disk to a stalled one), batch sizes in powers of two up to the
 * committer's 256 (node/spool/committer.c). */
#include "node/metrics/relaymetrics.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "directory/base/util.h"
#include "directory/rights.h"

_Static_assert(RM_RIGHTS == RIGHT_COUNT, "one series pair per right");

static const char *const reply_classes[] = {"2xx", "3xx", "4xx", "5xx"};
static const char *const mechs[RM_MECHS] = {"PLAIN", "LOGIN", "GSSAPI", "other"};
static const char *const auth_outcomes[RM_NAUTH] = {"success", "failure", "tempfail"};
static const char *const delivery_outcomes[RM_NDELIVERY] = {"delivered", "deferred", "failed",
                                                            "expired"};
static const char *const reload_results[RM_NRELOAD] = {"applied", "unchanged", "older",
                                                       "failed"};
static const char *const peer_states[RM_NPEER] = {"current", "ahead", "behind", "stale",
                                                  "unreachable"};
static const char *const bypass_reasons[RM_NBYPASS] = {"bypass_antispam", "connector_off"};
static const double latency_bounds[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                        0.25, 0.5, 1, 2.5, 5, 10};
static const double batch_bounds[] = {1, 2, 4, 8, 16, 32, 64, 128, 256};

#define NB(a) (sizeof a / sizeof a[0])

static struct metric_family *reg(struct relay_metrics *rm, enum metric_kind k, const char *name,
                                 const char *help, const char *label1, const char *label2,
                                 size_t max, const double *bounds, size_t nbounds, double scale)
{
    const char *labels[] = {label1, label2, NULL};
    char err[RN_ERRLEN];
    struct metric_family *f = metrics_register(rm->reg, k, name, help, labels, max, bounds,
                                               nbounds, scale, err, sizeof err);
    if (!f) {                 /* the table below is fixed: a refusal is a programming error */
        fprintf(stderr, "relaymetrics: %s\n", err);
        abort();
    }
    return f;
}

static struct metric_series *one(struct metric_family *f, const char *v1, const char *v2)
{
    const char *values[] = {v1, v2};
    return metrics_series(f, values);
}

/* Each family with its labels, and the series whose label values are fixed words. */
static void families_smtp(struct relay_metrics *rm)
{
    rm->sessions = reg(rm, METRIC_COUNTER, "relaynode_smtp_sessions_total",
                       "SMTP sessions started, by receive connector", "connector", NULL,
                       RM_CONNECTORS_MAX, NULL, 0, 1);
    rm->messages = reg(rm, METRIC_COUNTER, "relaynode_smtp_messages_total",
                       "Messages accepted (250 after DATA or BDAT), by receive connector",
                       "connector", NULL, RM_CONNECTORS_MAX, NULL, 0, 1);
    struct metric_family *f = reg(rm, METRIC_COUNTER, "relaynode_smtp_replies_total",
                                  "SMTP replies sent, by class of the reply code", "class",
                                  NULL, 4, NULL, 0, 1);
    for (size_t i = 0; i < 4; i++)
        rm->replies[i] = one(f, reply_classes[i], NULL);
    f = reg(rm, METRIC_COUNTER, "relaynode_rights_decisions_total",
            "Policy decisions that turned on an extended right, by right and outcome", "right",
            "outcome", 2 * RM_RIGHTS, NULL, 0, 1);
    for (unsigned i = 0; i < RM_RIGHTS; i++)
        for (int a = 0; a < 2; a++)
            rm->rights[i][a] = one(f, right_by_index(i)->name, a ? "allow" : "deny");
    f = reg(rm, METRIC_COUNTER, "relaynode_smtp_auth_total",
            "AUTH attempts that ended, by mechanism and outcome", "mechanism", "outcome",
            RM_MECHS * RM_NAUTH, NULL, 0, 1);
    for (size_t i = 0; i < RM_MECHS; i++)
        for (size_t o = 0; o < RM_NAUTH; o++)
            rm->auth[i][o] = one(f, mechs[i], auth_outcomes[o]);
}

static void families_queue(struct relay_metrics *rm)
{
    rm->queue_messages = one(reg(rm, METRIC_GAUGE, "relaynode_queue_messages",
                                 "Messages in the delivery queue (due, waiting or in flight)",
                                 NULL, NULL, 1, NULL, 0, 1), NULL, NULL);
    rm->queue_oldest = one(reg(rm, METRIC_GAUGE, "relaynode_queue_oldest_message_age_seconds",
                               "Age of the oldest message in the queue; 0 when it is empty",
                               NULL, NULL, 1, NULL, 0, 1), NULL, NULL);
    struct metric_family *f = reg(rm, METRIC_COUNTER, "relaynode_deliveries_total",
                                  "Delivery results per recipient, by outcome", "outcome",
                                  NULL, RM_NDELIVERY, NULL, 0, 1);
    for (size_t i = 0; i < RM_NDELIVERY; i++)
        rm->deliveries[i] = one(f, delivery_outcomes[i], NULL);
    rm->commit_batch = one(reg(rm, METRIC_HISTOGRAM, "relaynode_spool_commit_batch_messages",
                               "Messages made durable together by one group commit", NULL,
                               NULL, 1, batch_bounds, NB(batch_bounds), 1), NULL, NULL);
    rm->commit_seconds = one(reg(rm, METRIC_HISTOGRAM, "relaynode_spool_commit_duration_seconds",
                                 "Time one group commit took to make its batch durable", NULL,
                                 NULL, 1, latency_bounds, NB(latency_bounds), 1e-9),
                             NULL, NULL);
}

static void families_directory(struct relay_metrics *rm)
{
    struct metric_family *f = reg(rm, METRIC_COUNTER, "relaynode_directory_reloads_total",
                                  "Directory loads, by result (applied, unchanged, older: "
                                  "discarded as behind what runs, failed)", "result", NULL,
                                  RM_NRELOAD, NULL, 0, 1);
    for (size_t i = 0; i < RM_NRELOAD; i++)
        rm->reloads[i] = one(f, reload_results[i], NULL);
    rm->dir_version = reg(rm, METRIC_GAUGE, "relaynode_directory_applied_version_info",
                          "The directory version (contextCSN) the node enforces; always 1",
                          "version", NULL, 1, NULL, 0, 1);
    rm->dir_stale = one(reg(rm, METRIC_GAUGE, "relaynode_directory_stale",
                            "1 while the directory is unreachable and the last good "
                            "configuration serves, else 0", NULL, NULL, 1, NULL, 0, 1),
                        NULL, NULL);
    rm->dir_stale_seconds = one(reg(rm, METRIC_GAUGE, "relaynode_directory_stale_seconds",
                                    "Seconds since the first failed load while stale; 0 when "
                                    "fresh", NULL, NULL, 1, NULL, 0, 1), NULL, NULL);
    f = reg(rm, METRIC_GAUGE, "relaynode_cluster_peers",
            "Cluster peers by state as this node's bus sees them (no bus: all 0)", "state",
            NULL, RM_NPEER, NULL, 0, 1);
    for (size_t i = 0; i < RM_NPEER; i++)
        rm->peers[i] = one(f, peer_states[i], NULL);
}

/* The filter label set is fixed at start (the milter key): at most RM_MILTERS filters, 3
 * stages, 5 verdicts, 4 error reasons; the latency buckets are the commit's (a local filter
 * answers in a millisecond, a scanning one in seconds, the command timeout bounds it). */
static void families_milter(struct relay_metrics *rm)
{
    const char *vlabels[] = {"filter", "stage", "verdict", NULL};
    char err[RN_ERRLEN];
    rm->milter_verdicts = metrics_register(rm->reg, METRIC_COUNTER,
        "relaynode_milter_verdicts_total", "Content filter verdicts (accept, reject, tempfail, "
        "discard, quarantine), by filter and by stage (mail, rcpt, eom) they answered",
        vlabels, RM_MILTERS * 3 * 5, NULL, 0, 1, err, sizeof err);
    rm->milter_defaults = metrics_register(rm->reg, METRIC_COUNTER,
        "relaynode_milter_default_verdicts_total", "The verdicts of milter_verdicts_total that "
        "came from milter_default_action (the filter could not be asked)", vlabels,
        RM_MILTERS * 3 * 5, NULL, 0, 1, err, sizeof err);
    if (!rm->milter_verdicts || !rm->milter_defaults) {
        fprintf(stderr, "relaymetrics: %s\n", err);
        abort();
    }
    rm->milter_latency = reg(rm, METRIC_HISTOGRAM, "relaynode_milter_latency_seconds",
                             "Time from asking a filter a step to its answer that decided "
                             "its part (a refusal, or its verdict on the message)", "filter",
                             NULL, RM_MILTERS, latency_bounds, NB(latency_bounds), 1e-9);
    rm->milter_errors = reg(rm, METRIC_COUNTER, "relaynode_milter_errors_total",
                            "Filters that could not be asked, by filter and reason (connect, "
                            "timeout, closed, protocol)", "filter", "reason", RM_MILTERS * 4,
                            NULL, 0, 1);
    struct metric_family *f = reg(rm, METRIC_COUNTER, "relaynode_milter_bypassed_total",
                                  "Transactions (at MAIL) that no filter saw, by reason "
                                  "(bypass_antispam, connector_off)", "reason", NULL,
                                  RM_NBYPASS, NULL, 0, 1);
    for (size_t i = 0; i < RM_NBYPASS; i++)
        rm->milter_bypassed[i] = one(f, bypass_reasons[i], NULL);
    rm->milter_header_changes = one(reg(rm, METRIC_COUNTER,
                                        "relaynode_milter_header_changes_total",
                                        "Header changes from the filters written into spooled "
                                        "messages", NULL, NULL, 1, NULL, 0, 1), NULL, NULL);
}

struct relay_metrics *relay_metrics_new(void)
{
    struct relay_metrics *rm = xcalloc(1, sizeof *rm);
    rm->reg = metrics_new();
    families_smtp(rm);
    families_queue(rm);
    families_directory(rm);
    families_milter(rm);
    return rm;
}

void relay_metrics_free(struct relay_metrics **rmp)
{
    struct relay_metrics *rm = *rmp;
    if (!rm)
        return;
    metrics_free(&rm->reg);
    free(rm);
    *rmp = NULL;
}

void relay_metrics_reply(struct relay_metrics *rm, const char *reply)
{
    /* one count per reply: the last line of a multi-line one ("250-" continues) */
    if (!rm || reply[0] < '2' || reply[0] > '5' || reply[1] == '\0' || reply[2] == '\0' ||
        reply[3] == '-')
        return;
    metrics_inc(rm->replies[reply[0] - '2'], 1);
}

void relay_metrics_right(struct relay_metrics *rm, uint32_t right_bit, bool allowed)
{
    if (!rm || !right_bit)
        return;
    for (unsigned i = 0; i < RM_RIGHTS; i++)
        if (right_by_index(i)->bit == right_bit) {
            metrics_inc(rm->rights[i][allowed ? 1 : 0], 1);
            return;
        }
}

void relay_metrics_auth(struct relay_metrics *rm, const char *mechanism, enum rm_auth outcome)
{
    if (!rm || outcome >= RM_NAUTH)
        return;
    size_t i = 0;
    while (i < RM_MECHS - 1 && strcmp(mechs[i], mechanism ? mechanism : "") != 0)
        i++;
    metrics_inc(rm->auth[i][outcome], 1);
}

struct metric_series *relay_metrics_connector(struct relay_metrics *rm,
                                              struct metric_family *f, const char *connector)
{
    if (!rm)
        return NULL;
    const char *values[] = {connector};
    return metrics_series(f, values);
}
