/* Unit tests for cluster_probe (relayctl cluster status's listener) against real buses: two
 * cluster_new buses on free loopback ports publish heartbeats on the event loop (main
 * thread) while cluster_probe blocks on another thread, as relayctl would. It hears
 * each node's applied version, stale flag and uptime and returns as soon as all are heard;
 * a peer listed under another name (a heartbeat naming someone else), a closed port, a
 * wrongly pinned server key and a probe key outside the allow-list are never heard; a bad
 * secret key is an error. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include "directory/base/util.h"
#include "node/cluster/cluster.h"
#include "node/cluster/cluster_client.h"

#define CSN1 "20240501101010.000001Z#000000#000#000000"
#define CSN2 "20240501101010.000002Z#000000#000#000000"

struct node { char name[16], endpoint[64], pub[41], sec[41]; struct cluster *c; };

static struct event_base *base;
static struct node nodes[2];
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

static double mono_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

static uint64_t wall_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    return (uint64_t)t.tv_sec * 1000u + (uint64_t)t.tv_nsec / 1000000u;
}

static int setup(void **state)
{
    char err[RN_ERRLEN];
    base = event_base_new();
    assert_int_equal(cluster_keypair_new(admin_pub, admin_sec, err, sizeof err), 0);
    memset(nodes, 0, sizeof nodes);
    for (int i = 0; i < 2; i++) {
        struct node *n = &nodes[i];
        snprintf(n->name, sizeof n->name, "node%c", 'A' + i);
        snprintf(n->endpoint, sizeof n->endpoint, "tcp://127.0.0.1:%d", free_port());
        assert_int_equal(cluster_keypair_new(n->pub, n->sec, err, sizeof err), 0);
        struct cluster_opts o = {n->name, n->endpoint, n->sec, 100};
        struct cluster_callbacks cb = {0};
        n->c = cluster_new(base, &o, &cb, err, sizeof err);
        if (!n->c)
            fail_msg("cluster_new %s: %s", n->name, err);
    }
    struct cluster_peer p[3] = {{nodes[0].name, nodes[0].endpoint, nodes[0].pub},
                                {nodes[1].name, nodes[1].endpoint, nodes[1].pub},
                                {"relayctl", NULL, admin_pub}};
    for (int i = 0; i < 2; i++)
        assert_int_equal(cluster_set_peers(nodes[i].c, p, 3, err, sizeof err), 0);
    cluster_set_applied(nodes[0].c, CSN1, false);
    cluster_set_applied(nodes[1].c, CSN2, true);
    return 0;
}

static int teardown(void **state)
{
    for (int i = 0; i < 2; i++)
        cluster_free(&nodes[i].c);
    event_base_free(base);
    return 0;
}

struct probe {
    const struct cluster_peer *peers;
    size_t n;
    const char *secret;
    unsigned wait_ms;
    int rc;
    struct cluster_beat *out;
    size_t nout;
    char err[RN_ERRLEN];
    double took_ms;
    atomic_bool done;
};

static void *probe_thread(void *arg)
{
    struct probe *p = arg;
    double t0 = mono_ms();
    p->rc = cluster_probe(p->peers, p->n, p->secret, p->wait_ms, &p->out, &p->nout,
                                 p->err, sizeof p->err);
    p->took_ms = mono_ms() - t0;
    atomic_store(&p->done, true);
    return NULL;
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    event_base_loopbreak(base);
}

/* Run the probe on a thread while the buses' loop runs here (they answer ZAP and send
 * heartbeats on it); returns once the probe has returned. */
static void probe_run(struct probe *p)
{
    atomic_init(&p->done, false);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, probe_thread, p), 0);
    struct event *tick = event_new(base, -1, EV_PERSIST, on_tick, NULL);
    struct timeval tv = {0, 5000};
    event_add(tick, &tv);
    double t0 = mono_ms();
    while (!atomic_load(&p->done) && mono_ms() - t0 < 30000)
        event_base_loop(base, EVLOOP_ONCE);
    event_free(tick);
    pthread_join(th, NULL);
}

static void test_hears_every_node(void **state)
{
    struct cluster_peer peers[3] = {{nodes[0].name, nodes[0].endpoint, nodes[0].pub},
                                    {"relayctl", NULL, admin_pub},
                                    {nodes[1].name, nodes[1].endpoint, nodes[1].pub}};
    struct probe p = {.peers = peers, .n = 3, .secret = admin_sec, .wait_ms = 10000};
    uint64_t before = wall_ms();
    probe_run(&p);
    assert_int_equal(p.rc, 0);
    assert_int_equal(p.nout, 3);
    assert_true(p.took_ms < 5000);             /* returned once both were heard */
    struct cluster_beat *a = &p.out[0], *r = &p.out[1], *b = &p.out[2];
    assert_string_equal(a->name, "nodeA");
    assert_true(a->probed && a->heard);
    assert_string_equal(a->version, CSN1);
    assert_false(a->stale);
    assert_true(a->uptime_s < 60);
    assert_true(a->time_ms + 5000 >= before && a->time_ms <= wall_ms() + 5000);
    assert_true(a->received_ms >= before && a->received_ms <= wall_ms());
    assert_string_equal(b->name, "nodeB");
    assert_true(b->heard && b->stale);
    assert_string_equal(b->version, CSN2);
    assert_string_equal(r->name, "relayctl");  /* an admin key: listed, never probed */
    assert_false(r->probed || r->heard);
    assert_null(r->version);
    cluster_probe_free(&p.out, p.nout);
    assert_null(p.out);
}

static void test_unheard_peers(void **state)
{
    char other_pub[41], other_sec[41], err[RN_ERRLEN], closed[64];
    assert_int_equal(cluster_keypair_new(other_pub, other_sec, err, sizeof err), 0);
    snprintf(closed, sizeof closed, "tcp://127.0.0.1:%d", free_port());
    struct cluster_peer peers[4] = {
        {nodes[0].name, nodes[0].endpoint, nodes[0].pub},
        {"ghost", nodes[1].endpoint, nodes[1].pub},     /* nodeB's heartbeats name nodeB */
        {"closed", closed, other_pub},                   /* nobody listens */
        {"pinned", nodes[1].endpoint, other_pub},        /* the wrong server key */
    };
    struct probe p = {.peers = peers, .n = 4, .secret = admin_sec, .wait_ms = 1500};
    probe_run(&p);
    assert_int_equal(p.rc, 0);
    assert_true(p.out[0].heard);
    for (int i = 1; i < 4; i++) {
        assert_true(p.out[i].probed);
        assert_false(p.out[i].heard);
        assert_null(p.out[i].version);
    }
    assert_true(p.took_ms >= 1400);            /* waited the whole time for the others */
    cluster_probe_free(&p.out, p.nout);

    /* A probe key outside the allow-list: ZAP refuses it, nothing is heard. */
    struct probe q = {.peers = peers, .n = 1, .secret = other_sec, .wait_ms = 1200};
    probe_run(&q);
    assert_int_equal(q.rc, 0);
    assert_true(q.out[0].probed);
    assert_false(q.out[0].heard);
    cluster_probe_free(&q.out, q.nout);
}

static void test_errors(void **state)
{
    char err[RN_ERRLEN] = "";
    struct cluster_beat *out = (void *)1;
    size_t n = 9;
    struct cluster_peer peer = {"x", "tcp://127.0.0.1:1", admin_pub};
    assert_int_equal(cluster_probe(&peer, 1, "not a key", 100, &out, &n, err,
                                          sizeof err), -1);
    assert_null(out);
    assert_int_equal(n, 0);
    assert_non_null(strstr(err, "secret key"));
    /* Nothing to probe: returns at once with every entry unheard. */
    struct cluster_peer none[2] = {{"a", NULL, admin_pub}, {"b", "tcp://127.0.0.1:1", "bad"}};
    double t0 = mono_ms();
    assert_int_equal(cluster_probe(none, 2, admin_sec, 5000, &out, &n, err, sizeof err),
                     0);
    assert_true(mono_ms() - t0 < 1000);
    assert_int_equal(n, 2);
    assert_false(out[0].probed || out[1].probed || out[0].heard || out[1].heard);
    assert_string_equal(out[1].name, "b");
    cluster_probe_free(&out, n);
    assert_int_equal(cluster_probe(NULL, 0, admin_sec, 5000, &out, &n, err, sizeof err),
                     0);
    assert_int_equal(n, 0);
    cluster_probe_free(&out, n);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_hears_every_node, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unheard_peers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_errors, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
