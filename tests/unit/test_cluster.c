/* Unit tests for cluster (schema/cluster-protocol.md §3, §4): three buses in one process on
 * free loopback ports, each with its own ZeroMQ context and CURVE keypair. A NOTICE from A
 * reaches B and C; heartbeats carry the applied version and the stale flag into status;
 * relayctl's one-shot NOTICE (XSUB upstream) reaches every node exactly once although
 * nodes republish it; a replayed frame is dropped; a rogue key receives nothing and its
 * ZAP refusal is counted, upstream and downstream; removing a key from the allow-list cuts
 * that node off; a heartbeat claiming another node's name is dropped. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>
#include "directory/base/util.h"
#include "node/cluster/cluster.h"
#include "node/cluster/cluster_client.h"
#include "node/cluster/cluster_wire.h"

#define CSN1 "20240501101010.000001Z#000000#000#000000"
#define CSN2 "20240501101010.000002Z#000000#000#000000"
#define NNODES 3

struct got {
    int notices;
    char notice_from[256], notice_version[1100], notice_origin[80];
    int heartbeats[NNODES];
    char hb_version[NNODES][1100];
    bool hb_stale[NNODES];
};

struct node {
    char name[16], endpoint[64], pub[41], sec[41];
    struct cluster *c;
    struct got got;
};

static struct event_base *base;
static struct node nodes[NNODES];
static char admin_pub[41], admin_sec[41];

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    close(fd);
    return ntohs(a.sin_port);
}

/* Whether [::1] can be bound here (then the last node of the mesh listens on IPv6). */
static bool have_ipv6_loopback(void)
{
    int fd = socket(AF_INET6, SOCK_STREAM, 0);
    if (fd < 0)
        return false;
    struct sockaddr_in6 a = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT};
    bool ok = bind(fd, (struct sockaddr *)&a, sizeof a) == 0;
    close(fd);
    return ok;
}

static int node_index(const char *name)
{
    for (int i = 0; i < NNODES; i++)
        if (strcmp(nodes[i].name, name) == 0)
            return i;
    return -1;
}

static void on_notice(void *arg, const char *from, const char *version, const char *origin)
{
    struct got *g = arg;
    g->notices++;
    rn_strlcpy(g->notice_from, from, sizeof g->notice_from);
    rn_strlcpy(g->notice_version, version, sizeof g->notice_version);
    rn_strlcpy(g->notice_origin, origin, sizeof g->notice_origin);
}

static void on_heartbeat(void *arg, const char *peer, const char *version, bool stale)
{
    struct got *g = arg;
    int i = node_index(peer);
    assert_true(i >= 0);
    g->heartbeats[i]++;
    rn_strlcpy(g->hb_version[i], version, sizeof g->hb_version[i]);
    g->hb_stale[i] = stale;
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    event_base_loopbreak(base);
}

/* Run the loop until pred() holds or ms pass; returns pred(). */
static bool run_until(bool (*pred)(void *), void *arg, int ms)
{
    struct timespec t0, now;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    struct event *tick = event_new(base, -1, EV_PERSIST, on_tick, NULL);
    struct timeval tv = {0, 5000};
    event_add(tick, &tv);
    bool ok;
    for (;;) {
        if ((ok = pred(arg)))
            break;
        clock_gettime(CLOCK_MONOTONIC, &now);
        if ((now.tv_sec - t0.tv_sec) * 1000 + (now.tv_nsec - t0.tv_nsec) / 1000000 > ms)
            break;
        event_base_loop(base, EVLOOP_ONCE);
    }
    event_free(tick);
    return ok;
}

static bool never(void *arg)
{
    return false;
}

/* Every node has heard a heartbeat from every other: all SUBs are connected. */
static bool all_meshed(void *arg)
{
    for (int i = 0; i < NNODES; i++)
        for (int k = 0; k < NNODES; k++)
            if (i != k && nodes[i].c && nodes[k].c && nodes[i].got.heartbeats[k] == 0)
                return false;
    return true;
}

static void peers_of(struct cluster_peer *p, bool with_admin)
{
    for (int i = 0; i < NNODES; i++)
        p[i] = (struct cluster_peer){nodes[i].name, nodes[i].endpoint, nodes[i].pub};
    if (with_admin)
        p[NNODES] = (struct cluster_peer){"relayctl", NULL, admin_pub};
}

static int setup(void **state)
{
    char err[RN_ERRLEN];
    base = event_base_new();
    assert_int_equal(cluster_keypair_new(admin_pub, admin_sec, err, sizeof err), 0);
    memset(nodes, 0, sizeof nodes);
    for (int i = 0; i < NNODES; i++) {
        struct node *n = &nodes[i];
        snprintf(n->name, sizeof n->name, "node%c", 'A' + i);
        /* The last node on IPv6 loopback where there is one: the mesh (every test's setup)
         * then shows binding, subscribing and relayctl's XSUB over IPv6 too. */
        if (i == NNODES - 1 && have_ipv6_loopback())
            snprintf(n->endpoint, sizeof n->endpoint, "tcp://[::1]:%d", free_port());
        else
            snprintf(n->endpoint, sizeof n->endpoint, "tcp://127.0.0.1:%d", free_port());
        assert_int_equal(cluster_keypair_new(n->pub, n->sec, err, sizeof err), 0);
        struct cluster_opts o = {n->name, n->endpoint, n->sec, 100};
        struct cluster_callbacks cb = {on_notice, on_heartbeat, &n->got};
        n->c = cluster_new(base, &o, &cb, err, sizeof err);
        if (!n->c)
            fail_msg("cluster_new %s: %s", n->name, err);
        assert_string_equal(cluster_public_key(n->c), n->pub);
    }
    struct cluster_peer p[NNODES + 1];
    peers_of(p, true);
    for (int i = 0; i < NNODES; i++)
        assert_int_equal(cluster_set_peers(nodes[i].c, p, NNODES + 1, err, sizeof err), 0);
    assert_true(run_until(all_meshed, NULL, 5000));
    *state = NULL;
    return 0;
}

static int teardown(void **state)
{
    for (int i = 0; i < NNODES; i++)
        cluster_free(&nodes[i].c);
    event_base_free(base);
    return 0;
}

static bool bc_got_notice(void *arg)
{
    return nodes[1].got.notices >= 1 && nodes[2].got.notices >= 1;
}

static void test_notice_reaches_peers(void **state)
{
    char err[RN_ERRLEN];
    assert_int_equal(cluster_publish_notice(nodes[0].c, CSN1, "sync", err, sizeof err), 0);
    assert_true(run_until(bc_got_notice, NULL, 2000));
    for (int i = 1; i < NNODES; i++) {
        assert_int_equal(nodes[i].got.notices, 1);
        assert_string_equal(nodes[i].got.notice_from, "nodeA");
        assert_string_equal(nodes[i].got.notice_version, CSN1);
        assert_string_equal(nodes[i].got.notice_origin, "sync");
    }
    assert_int_equal(nodes[0].got.notices, 0);      /* a node does not hear itself */
    /* Not a version: refused before it reaches the wire. */
    assert_int_equal(cluster_publish_notice(nodes[0].c, "load-1-1", "sync", err, sizeof err),
                     -1);
}

static bool b_has_a_version(void *arg)
{
    return strcmp(nodes[1].got.hb_version[0], arg) == 0 && nodes[1].got.hb_stale[0];
}

static bool b_has_a_fresh(void *arg)
{
    return strcmp(nodes[1].got.hb_version[0], arg) == 0 && !nodes[1].got.hb_stale[0];
}

static void test_heartbeats_carry_versions(void **state)
{
    cluster_set_applied(nodes[1].c, CSN2, false);
    cluster_set_applied(nodes[0].c, CSN1, true);
    assert_true(run_until(b_has_a_version, CSN1, 2000));
    struct cluster_status *s = cluster_status(nodes[1].c);
    assert_string_equal(s->self, "nodeB");
    assert_string_equal(s->applied, CSN2);
    assert_int_equal(s->npeers, 3);                 /* A, C and the publish-only relayctl */
    assert_string_equal(s->peers[0].name, "nodeA");
    assert_string_equal(s->peers[2].name, "relayctl");
    assert_false(s->peers[2].heard);
    assert_null(s->peers[2].endpoint);
    assert_true(s->peers[0].heard);
    assert_true(s->peers[0].stale);
    assert_string_equal(s->peers[0].version, CSN1);
    assert_true(s->peers[0].age_s >= 0 && s->peers[0].age_s < 1.0);
    assert_true(s->peers[0].lag_s >= 0 && s->peers[0].order == 2 /* CV_OLDER */);
    assert_true(s->allowed_keys == NNODES + 1);
    assert_true(s->heartbeats_in > 0);
    cluster_status_free(&s);
    /* A lags behind B for as long as B keeps seeing its old version. */
    run_until(never, NULL, 300);
    s = cluster_status(nodes[1].c);
    assert_true(s->peers[0].lag_s >= 0.25);
    cluster_status_free(&s);
    cluster_set_applied(nodes[0].c, CSN2, false);
    assert_true(run_until(b_has_a_fresh, CSN2, 2000));
    s = cluster_status(nodes[1].c);
    assert_true(s->peers[0].lag_s == 0 && s->peers[0].order == 0 /* CV_EQUAL */);
    assert_false(s->peers[0].stale);
    cluster_status_free(&s);
}

struct send_job {
    const char *secret;
    const char *sender;
    const char *version;
    int rc;
    char err[RN_ERRLEN];
};

/* relayctl's send blocks until its linger ends, while the nodes must answer ZAP on the
 * loop: run it on a thread. */
static void *send_thread(void *arg)
{
    struct send_job *j = arg;
    struct cluster_peer p[NNODES];
    peers_of(p, false);
    j->rc = cluster_send_notice(p, NNODES, j->secret, j->sender, j->version, "relayctl", 1000,
                                j->err, sizeof j->err);
    return NULL;
}

static bool send_done;
static bool all_got_notice_and_done(void *arg)
{
    for (int i = 0; i < NNODES; i++)
        if (nodes[i].got.notices < 1)
            return false;
    return send_done;
}

static void run_send(struct send_job *j, bool (*pred)(void *), int ms)
{
    pthread_t t;
    send_done = false;
    assert_int_equal(pthread_create(&t, NULL, send_thread, j), 0);
    run_until(pred, NULL, ms);
    pthread_join(t, NULL);
    send_done = true;
    run_until(pred, NULL, ms);
}

static void test_relayctl_notice_once_everywhere(void **state)
{
    struct send_job j = {admin_sec, "relayctl@host", CSN2, 0, ""};
    run_send(&j, all_got_notice_and_done, 3000);
    assert_int_equal(j.rc, NNODES);
    /* Let the republished copies arrive: they must all be dropped as replays. */
    run_until(never, NULL, 300);
    uint64_t replays = 0;
    for (int i = 0; i < NNODES; i++) {
        assert_int_equal(nodes[i].got.notices, 1);
        assert_string_equal(nodes[i].got.notice_from, "relayctl@host");
        assert_string_equal(nodes[i].got.notice_origin, "relayctl");
        struct cluster_status *s = cluster_status(nodes[i].c);
        replays += s->replays;
        assert_int_equal(s->zap_refused, 0);
        cluster_status_free(&s);
    }
    /* The first node to hear relayctl republishes to the two others, which also had the
     * direct copy: at least two duplicates, all dropped (a node whose direct copy came
     * after a republished one treats it as the replay and does not republish it). */
    assert_true(replays >= NNODES - 1);
}

static void test_rogue_refused(void **state)
{
    char rpub[41], rsec[41], err[RN_ERRLEN];
    assert_int_equal(cluster_keypair_new(rpub, rsec, err, sizeof err), 0);
    /* A rogue subscriber that knows A's public key and endpoint. */
    void *ctx = zmq_ctx_new();
    void *sub = zmq_socket(ctx, ZMQ_SUB);
    int zero = 0, tmo = 50;
    zmq_setsockopt(sub, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(sub, ZMQ_RCVTIMEO, &tmo, sizeof tmo);
    zmq_setsockopt(sub, ZMQ_CURVE_SERVERKEY, nodes[0].pub, 40);
    zmq_setsockopt(sub, ZMQ_CURVE_PUBLICKEY, rpub, 40);
    zmq_setsockopt(sub, ZMQ_CURVE_SECRETKEY, rsec, 40);
    zmq_setsockopt(sub, ZMQ_SUBSCRIBE, "", 0);
    assert_int_equal(zmq_connect(sub, nodes[0].endpoint), 0);
    int received = 0;
    for (int round = 0; round < 10; round++) {
        cluster_publish_notice(nodes[0].c, CSN2, "sync", err, sizeof err);
        run_until(never, NULL, 50);
        char buf[CLUSTER_FRAME_MAX];
        while (zmq_recv(sub, buf, sizeof buf, ZMQ_DONTWAIT) >= 0)
            received++;
    }
    zmq_close(sub);
    zmq_ctx_term(ctx);
    assert_int_equal(received, 0);
    struct cluster_status *s = cluster_status(nodes[0].c);
    assert_true(s->zap_refused >= 1);
    assert_string_equal(s->last_refused_key, rpub);
    cluster_status_free(&s);
    /* The honest peers did get those notices. */
    assert_true(nodes[1].got.notices >= 1);

    /* Upstream with a rogue key: nobody hears it. */
    for (int i = 0; i < NNODES; i++)
        nodes[i].got.notices = 0;
    struct send_job j = {rsec, "rogue", CSN2, 0, ""};
    run_send(&j, never, 200);
    run_until(never, NULL, 200);
    for (int i = 0; i < NNODES; i++) {
        assert_int_equal(nodes[i].got.notices, 0);
        s = cluster_status(nodes[i].c);
        assert_true(s->zap_refused >= 1);
        cluster_status_free(&s);
    }
}

/* A replayed frame (same node and seq) and an older seq are dropped; a newer one passes. */
static void test_replay_dropped(void **state)
{
    void *ctx = zmq_ctx_new();
    void *x = zmq_socket(ctx, ZMQ_XSUB);
    int zero = 0;
    zmq_setsockopt(x, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(x, ZMQ_CURVE_SERVERKEY, nodes[1].pub, 40);
    zmq_setsockopt(x, ZMQ_CURVE_PUBLICKEY, admin_pub, 40);
    zmq_setsockopt(x, ZMQ_CURVE_SECRETKEY, admin_sec, 40);
    assert_int_equal(zmq_connect(x, nodes[1].endpoint), 0);
    struct cluster_msg m = {.type = CLUSTER_NOTICE, .seq = 1000};
    strcpy(m.node, "replayer");
    strcpy(m.version, CSN1);
    uint8_t f[CLUSTER_FRAME_MAX];
    char err[RN_ERRLEN];
    nodes[1].got.notices = 0;
    int n = cluster_wire_encode(&m, f, sizeof f, err, sizeof err);
    zmq_send(x, f, (size_t)n, 0);
    zmq_send(x, f, (size_t)n, 0);                    /* the same frame again */
    m.seq = 999;
    n = cluster_wire_encode(&m, f, sizeof f, err, sizeof err);
    zmq_send(x, f, (size_t)n, 0);                    /* an older seq */
    zmq_send(x, "RN\x01\x09garbage", 11, 0);         /* a bad frame */
    m.seq = 1001;
    strcpy(m.version, CSN2);
    n = cluster_wire_encode(&m, f, sizeof f, err, sizeof err);
    zmq_send(x, f, (size_t)n, 0);
    struct cluster_status *s0 = cluster_status(nodes[1].c);
    run_until(never, NULL, 500);
    struct cluster_status *s1 = cluster_status(nodes[1].c);
    assert_int_equal(nodes[1].got.notices, 2);
    assert_string_equal(nodes[1].got.notice_version, CSN2);
    assert_true(s1->replays - s0->replays == 2);
    assert_true(s1->bad_frames - s0->bad_frames == 1);
    cluster_status_free(&s0);
    cluster_status_free(&s1);
    zmq_close(x);
    zmq_ctx_term(ctx);
}

static bool c_silent_from_a(void *arg)
{
    int *before = arg;
    return nodes[2].got.heartbeats[0] == *before;
}

/* A takes C off its list: C's open connection is cut (A rebinds) and C's reconnect is
 * refused, so C hears nothing more from A while B still does. */
static void test_revoked_key_cut_off(void **state)
{
    char err[RN_ERRLEN];
    struct cluster_peer p[NNODES];
    peers_of(p, false);
    assert_int_equal(cluster_set_peers(nodes[0].c, p, NNODES - 1, err, sizeof err), 0);
    run_until(never, NULL, 300);                     /* frames already in flight land */
    int c_before = nodes[2].got.heartbeats[0], b_before = nodes[1].got.heartbeats[0];
    run_until(never, NULL, 700);
    assert_int_equal(nodes[2].got.heartbeats[0], c_before);
    assert_true(c_silent_from_a(&c_before));
    assert_true(nodes[1].got.heartbeats[0] > b_before);
    struct cluster_status *s = cluster_status(nodes[0].c);
    assert_int_equal(s->npeers, 1);                 /* B only: C and relayctl are gone */
    assert_true(s->zap_refused >= 1);
    assert_string_equal(s->last_refused_key, nodes[2].pub);
    cluster_status_free(&s);
    /* Bad entries are skipped and named. */
    struct cluster_peer bad[2] = {{"nodeB", nodes[1].endpoint, nodes[1].pub},
                                  {"nodeX", "tcp://127.0.0.1:1", "short"}};
    assert_int_equal(cluster_set_peers(nodes[0].c, bad, 2, err, sizeof err), 1);
    assert_non_null(strstr(err, "nodeX"));
}

/* B subscribes to "nodeC" at A's endpoint with A's key: A's heartbeats arrive on the socket
 * for nodeC and must be dropped, not credited to C. */
static void test_forged_heartbeat_dropped(void **state)
{
    char err[RN_ERRLEN];
    struct cluster_peer p[3] = {{"nodeB", nodes[1].endpoint, nodes[1].pub},
                                {"nodeC", nodes[0].endpoint, nodes[0].pub},
                                {"relayctl", NULL, admin_pub}};
    assert_int_equal(cluster_set_peers(nodes[1].c, p, 3, err, sizeof err), 0);
    struct cluster_status *s0 = cluster_status(nodes[1].c);
    run_until(never, NULL, 600);
    struct cluster_status *s1 = cluster_status(nodes[1].c);
    assert_true(s1->forged > s0->forged);
    cluster_status_free(&s0);
    cluster_status_free(&s1);
}

static void test_keys(void **state)
{
    char pub[41], sec[41], p2[41], s2[41], err[RN_ERRLEN];
    char path[] = "/tmp/test_cluster_keyXXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(cluster_keypair_new(pub, sec, err, sizeof err), 0);
    assert_true(cluster_key_valid(pub) && cluster_key_valid(sec));
    assert_false(cluster_key_valid("abc"));
    assert_false(cluster_key_valid(NULL));
    dprintf(fd, "%s\n", sec);
    close(fd);
    assert_int_equal(cluster_key_load(path, s2, p2, err, sizeof err), 0);
    assert_string_equal(s2, sec);
    assert_string_equal(p2, pub);
    FILE *f = fopen(path, "w");
    fputs("not a key\n", f);
    fclose(f);
    assert_int_equal(cluster_key_load(path, s2, p2, err, sizeof err), -1);
    assert_non_null(strstr(err, "Z85"));
    unlink(path);
    assert_int_equal(cluster_key_load(path, s2, p2, err, sizeof err), -1);
    base = event_base_new();
    struct cluster_opts o = {"n", "tcp://127.0.0.1:1", "bad", 0};
    assert_null(cluster_new(base, &o, NULL, err, sizeof err));
    o.secret_key = sec;
    o.bind = "bogus://x";
    assert_null(cluster_new(base, &o, NULL, err, sizeof err));
    assert_non_null(strstr(err, "bind"));
    event_base_free(base);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_keys),
        cmocka_unit_test_setup_teardown(test_notice_reaches_peers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_heartbeats_carry_versions, setup, teardown),
        cmocka_unit_test_setup_teardown(test_relayctl_notice_once_everywhere, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rogue_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_replay_dropped, setup, teardown),
        cmocka_unit_test_setup_teardown(test_revoked_key_cut_off, setup, teardown),
        cmocka_unit_test_setup_teardown(test_forged_heartbeat_dropped, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
