/* clusterctl: `relayctl cluster status` and `relayctl cluster notify`, relayctl's two looks
 * at the cluster bus (schema/cluster-protocol.md).
 *
 * status compares what every node says it runs (its HEARTBEAT, heard with cluster_probe as
 * an allowed admin key) with the directory's version as relayctl reads it: the directory
 * is the truth, the bus only says who has caught up with it. notify sends the NOTICE that
 * admin writes also send (admin_write), for changes made with other tools (ldapmodify,
 * --ldif); nodes converge without it, from their own watcher and from heartbeats, so it
 * only shortens the wait. The key, the version and the NOTICE itself are clusterbus.c's. */
#include "tools/relayctl.h"
#include "tools/admin.h"
#include "tools/clusterbus.h"
#include "tools/output.h"
#include "directory/base/util.h"
#include "node/cluster/cluster_client.h"
#include "node/cluster/cluster_key.h"
#include "node/cluster/cluster_wire.h"
#include "node/cluster/clusterver.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define WAIT_DEFAULT_MS 2500u     /* two heartbeat periods and a CURVE handshake */
#define WAIT_MAX_MS     60000u
#define NOTIFY_LINGER_MS 2000u    /* §3: relayctl closes with a linger so the frame leaves */

static const char help_text[] =
    "usage: relayctl cluster status [--wait MS] [--json]\n"
    "       relayctl cluster notify\n\n"
    "status: the directory's version (contextCSN) and, for every relay node, the version it\n"
    "runs as its last heartbeat on the cluster bus says (listening up to --wait ms, default\n"
    "2500, stopping once every node is heard). State:\n"
    "  current      runs the directory's version\n"
    "  behind       runs an older (or concurrent) version; Lag = seconds since the oldest\n"
    "               change it lacks\n"
    "  ahead        runs a newer version than the directory server relayctl reads (that\n"
    "               replica lags; the node is fine)\n"
    "  stale        its directory is unreachable: it serves its last good snapshot\n"
    "  unreachable  no heartbeat heard (node down, endpoint wrong, or relayctl's key not\n"
    "               in its allow-list)\n"
    "  no-key       has an endpoint but no valid relayCurvePublicKey: not on the bus\n"
    "  admin-key    a relayNode entry without an endpoint (relayctl's key): not probed\n"
    "Exit 0 when every probed node is current or ahead, 1 when any is behind, stale,\n"
    "unreachable or no-key, 2 on errors.\n\n"
    "notify: send a NOTICE of the directory's version to every node (after changes made\n"
    "with other tools; relayctl's own writes send one themselves). Prints\n"
    "\"notice for version V sent to N node(s)\"; delivery is not confirmed.\n\n"
    "Both need relayctl's CURVE key: cluster_secret_key_file in the bootstrap file (relayctl\n"
    "node keygen), its public key in a relayNode entry without relayClusterEndpoint.\n\n";

/* ---- status ---- */

static void duration(unsigned long long s, char *out, size_t len)
{
    if (s < 60)
        snprintf(out, len, "%llus", s);
    else if (s < 3600)
        snprintf(out, len, "%llum%02llus", s / 60, s % 60);
    else if (s < 86400)
        snprintf(out, len, "%lluh%02llum", s / 3600, s / 60 % 60);
    else
        snprintf(out, len, "%llud%02lluh", s / 86400, s / 3600 % 24);
}

struct row {
    const char *state;
    bool probed_bad;               /* counts towards exit 1 */
    unsigned long long lag;
};

static struct row row_state(const struct ldapadmin_node *nd, const struct cluster_beat *b,
                            const char *dirv, time_t now)
{
    if (!nd->endpoint || !*nd->endpoint)
        return (struct row){"admin-key", false, 0};
    if (!cluster_key_valid(nd->pubkey))
        return (struct row){"no-key", true, 0};
    if (!b->heard)
        return (struct row){"unreachable", true, 0};
    enum clusterver_order o = clusterver_compare(b->version, dirv);
    long long l = o == CV_EQUAL || o == CV_NEWER ? 0
                  : clusterver_lag_s(b->version, dirv, (long long)now);
    unsigned long long lag = l > 0 ? (unsigned long long)l : 0;
    if (b->stale)
        return (struct row){"stale", true, lag};
    if (o == CV_EQUAL)
        return (struct row){"current", false, 0};
    if (o == CV_NEWER)
        return (struct row){"ahead", false, 0};
    return (struct row){"behind", true, lag};
}

static int cluster_status_run(struct admin *a, unsigned wait_ms)
{
    char err[RN_ERRLEN], secret[CLUSTER_KEY_LEN + 1];
    if (clusterbus_key_load(&a->dc.boot, secret, err, sizeof err) != 0)
        return admin_fail(a, 2, "%s", err);
    char *dirv = clusterbus_version_read(a->d, &a->dc.boot, err, sizeof err);
    struct ldapadmin_node *nodes = NULL;
    size_t n = 0;
    struct cluster_peer *peers = NULL;
    struct cluster_beat *beats = NULL;
    size_t nbeats = 0;
    int rc = 2;
    if (!dirv ||
        clusterbus_peers_read(a->d, &a->dc.boot, &nodes, &n, &peers, err, sizeof err) != 0 ||
        cluster_probe(peers, n, secret, wait_ms, &beats, &nbeats, err,
                             sizeof err) != 0) {
        explicit_bzero(secret, sizeof secret);
        admin_fail(a, 2, "%s", err);
        goto out;
    }
    explicit_bzero(secret, sizeof secret);
    time_t now = time(NULL);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    unsigned long long now_ms = (unsigned long long)ts.tv_sec * 1000u +
                                (unsigned long long)ts.tv_nsec / 1000000u;
    static const char *hdr[] = {"Node", "Site", "Endpoint", "Applied", "State", "Lag", "Uptime"};
    struct table *t = table_new(7, hdr);
    struct json *j = a->json ? json_new(stdout) : NULL;
    if (j) {
        json_begin_object(j, NULL);
        json_string(j, "DirectoryVersion", dirv);
        json_begin_array(j, "Nodes");
    }
    rc = 0;
    for (size_t i = 0; i < n; i++) {
        const struct cluster_beat *b = &beats[i];
        struct row r = row_state(&nodes[i], b, dirv, now);
        if (r.probed_bad)
            rc = 1;
        const char *applied = b->heard && b->version && *b->version ? b->version : NULL;
        if (j) {
            json_begin_object(j, NULL);
            json_string(j, "Name", nodes[i].name);
            json_string(j, "Site", nodes[i].site);
            json_string(j, "Endpoint", nodes[i].endpoint && *nodes[i].endpoint
                                           ? nodes[i].endpoint : NULL);
            json_string(j, "Applied", applied);
            json_string(j, "State", r.state);
            json_bool(j, "Stale", b->heard && b->stale);
            json_uint(j, "LagSeconds", r.lag);
            if (b->heard) {
                json_uint(j, "UptimeSeconds", b->uptime_s);
                json_uint(j, "HeardSecondsAgo", now_ms > b->received_ms
                                                    ? (now_ms - b->received_ms) / 1000u : 0);
            } else {
                json_string(j, "UptimeSeconds", NULL);
                json_string(j, "HeardSecondsAgo", NULL);
            }
            json_end_object(j);
            continue;
        }
        char lag[32] = "-", up[32] = "-";
        if (b->heard) {
            snprintf(lag, sizeof lag, "%llus", r.lag);
            duration(b->uptime_s, up, sizeof up);
        }
        const char *cells[7] = {nodes[i].name, nodes[i].site,
                                nodes[i].endpoint && *nodes[i].endpoint ? nodes[i].endpoint : "-",
                                applied ? applied : "-", r.state, lag, up};
        table_row(t, cells);
    }
    if (j) {
        json_end_array(j);
        json_end_object(j);
        json_free(&j);
    } else {
        printf("Directory version: %s\n\n", dirv);
        table_print(t, stdout);
    }
    table_free(&t);
out:
    cluster_probe_free(&beats, nbeats);
    free(peers);
    ldapadmin_nodes_free(&nodes, n);
    free(dirv);
    return rc;
}

static int cluster_notify_run(struct admin *a)
{
    char err[RN_ERRLEN], *version = NULL;
    int n = clusterbus_notice(a->d, &a->dc.boot, NOTIFY_LINGER_MS, &version, err, sizeof err);
    if (n < 0)
        return admin_fail(a, 2, "%s", err);
    printf("notice for version %s sent to %d node(s)\n", version, n);
    free(version);
    return 0;
}

int relayctl_cluster(int argc, char **argv)
{
    static const struct option opts[] = {ADMIN_LONGOPTS, {"wait", required_argument, 0, 'w'},
                                         {0, 0, 0, 0}};
    const char *sub = argc >= 2 ? argv[1] : "";
    bool help = !strcmp(sub, "--help") || !strcmp(sub, "-h");
    bool status = !strcmp(sub, "status");
    if (!status && strcmp(sub, "notify")) {
        if (!help && *sub)
            fprintf(stderr, "relayctl cluster: unknown sub-verb '%s'\n", sub);
        return admin_usage(help_text, help);
    }
    struct admin a;
    admin_init(&a, status ? "cluster status" : "cluster notify");
    unsigned wait_ms = WAIT_DEFAULT_MS;
    optind = 0;
    int c;
    while ((c = admin_getopt(&a, argc - 1, argv + 1, opts, help_text)) != -1) {
        if (c == ADMIN_GETOPT_HELP)
            return admin_close(&a), 0;
        if (c == 'w') {
            char *end;
            unsigned long v = strtoul(optarg, &end, 10);
            if (!status || !*optarg || *end || optarg[0] == '-' || v > WAIT_MAX_MS)
                return admin_close(&a),
                       admin_fail(&a, 2, status ? "--wait takes milliseconds, 0..%u"
                                                : "--wait is for status (max %u)", WAIT_MAX_MS);
            wait_ms = (unsigned)v;
            continue;
        }
        return admin_close(&a), 2;
    }
    if (optind != argc - 1)
        return admin_close(&a), admin_fail(&a, 2, "%s takes no arguments", sub);
    if (a.ldif)
        return admin_close(&a), admin_fail(&a, 2, "--ldif does not apply to cluster");
    int rc = admin_open_nodeless(&a);
    if (rc == 0)
        rc = status ? cluster_status_run(&a, wait_ms) : cluster_notify_run(&a);
    admin_close(&a);
    return rc;
}
