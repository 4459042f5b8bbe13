/* dnsres against a real DNS server on loopback (tests/lib/dnsstub.py, started by the group
 * setup on a free port): MX preference order with each exchange's A and AAAA, the implicit
 * MX (RFC 5321 §5.1), null MX (RFC 7505) and NXDOMAIN permanent, SERVFAIL and a silent server
 * temporary, exchanges without addresses, answers c-ares gives synchronously (/etc/hosts),
 * an IP literal as exchange, smart host lookups, and dnsres_free with lookups pending. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "node/delivery/dnsres.h"

/* The zone, in dnsstub's form (JSON; MX as [pref, exchange]). */
static const char ZONE[] =
    "{"
    "\"order.test.\": {\"MX\": [[20, \"b.order.test.\"], [30, \"c.order.test.\"],"
    "                          [10, \"a.order.test.\"]]},"
    "\"a.order.test.\": {\"A\": [\"127.0.0.11\"]},"
    "\"b.order.test.\": {\"A\": [\"127.0.0.12\"], \"AAAA\": [\"2001:db8::12\"]},"
    "\"c.order.test.\": {\"AAAA\": [\"2001:db8::13\"]},"
    "\"implicit.test.\": {\"A\": [\"127.0.0.21\"], \"AAAA\": [\"::1\"]},"
    "\"nullmx.test.\": {\"MX\": [[0, \".\"]]},"
    "\"broken.test.\": \"SERVFAIL\","
    "\"noaddr.test.\": {\"MX\": [[10, \"ghost.noaddr.test.\"]]},"
    "\"partial.test.\": {\"MX\": [[10, \"ghost.partial.test.\"], [20, \"good.partial.test.\"]]},"
    "\"good.partial.test.\": {\"A\": [\"127.0.0.31\"]},"
    "\"tempmx.test.\": {\"MX\": [[10, \"broken.test.\"]]},"
    "\"literal.test.\": {\"MX\": [[10, \"127.0.0.41.\"]]},"
    "\"smart.test.\": {\"A\": [\"127.0.0.51\"]},"
    "\"emptyname.test.\": {\"TXT\": [\"\\\"x\\\"\"]}"
    "}";

static const char RUNNER[] =
    "import json, sys\n"
    "sys.path.insert(0, sys.argv[1])\n"
    "import dnsstub\n"
    "zone = json.loads(sys.argv[2])\n"
    "for v in zone.values():\n"
    "    if isinstance(v, dict) and 'MX' in v:\n"
    "        v['MX'] = [tuple(x) for x in v['MX']]\n"
    "z = dnsstub.DnsStub(zone).start()\n"
    "print(z.port, flush=True)\n"
    "sys.stdin.read()\n"           /* until the test closes the pipe (or dies) */
    "z.stop()\n";

struct stub { pid_t pid; int to_child; char servers[64]; int silent_fd; char silent[64]; };
static struct stub stub;

/* ---- the loopback servers ---- */

static int group_setup(void **state)
{
    (void)state;
    signal(SIGPIPE, SIG_IGN);
    const char *root = getenv("RELAYNODE_ROOT");
    char lib[4096];
    snprintf(lib, sizeof lib, "%s/tests/lib", root && *root ? root : ".");
    int in[2], out[2];
    if (pipe(in) < 0 || pipe(out) < 0)
        return -1;
    stub.pid = fork();
    if (stub.pid < 0)
        return -1;
    if (stub.pid == 0) {
        dup2(in[0], 0);
        dup2(out[1], 1);
        close(in[1]);
        close(out[0]);
        execl("/usr/bin/python3", "python3", "-c", RUNNER, lib, ZONE, (char *)NULL);
        _exit(127);
    }
    close(in[0]);
    close(out[1]);
    stub.to_child = in[1];
    char line[32] = "";
    ssize_t k = 0, r;
    while (k < (ssize_t)sizeof line - 1 && (r = read(out[0], line + k, 1)) == 1 && line[k] != '\n')
        k++;
    close(out[0]);
    line[k] = '\0';
    int port = atoi(line);
    if (port <= 0) {
        fprintf(stderr, "dnsstub did not start (got '%s')\n", line);
        return -1;
    }
    snprintf(stub.servers, sizeof stub.servers, "127.0.0.1:%d", port);

    /* A server that never answers: a bound UDP socket nobody reads. */
    stub.silent_fd = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t sl = sizeof sa;
    if (stub.silent_fd < 0 || bind(stub.silent_fd, (struct sockaddr *)&sa, sizeof sa) < 0 ||
        getsockname(stub.silent_fd, (struct sockaddr *)&sa, &sl) < 0)
        return -1;
    snprintf(stub.silent, sizeof stub.silent, "127.0.0.1:%d", ntohs(sa.sin_port));
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    close(stub.to_child);
    close(stub.silent_fd);
    int st;
    waitpid(stub.pid, &st, 0);
    return 0;
}

/* ---- one lookup on a fresh loop ---- */

struct answer {
    bool done;
    int calls;
    enum dnsres_status st;
    char why[400];
    struct dnsres_addrs addrs;
};

static void on_answer(void *arg, enum dnsres_status st, const char *why,
                      const struct dnsres_addrs *addrs)
{
    struct answer *a = arg;
    a->calls++;
    a->done = true;
    a->st = st;
    snprintf(a->why, sizeof a->why, "%s", why ? why : "(null)");
    if (st == DNSRES_OK) {
        assert_non_null(addrs);
        a->addrs = *addrs;
    } else {
        assert_null(addrs);
    }
}

static void on_guard(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    *(bool *)arg = true;
}

enum kind { MAIL, HOST };

/* Runs one lookup to its answer (guard: 20 s) and returns the seconds it took. */
static double lookup(const char *servers, enum kind k, const char *name, unsigned port,
                     struct answer *a)
{
    memset(a, 0, sizeof *a);
    struct event_base *base = event_base_new();
    char err[256] = "";
    struct dnsres *r = dnsres_new(base, servers, err, sizeof err);
    if (!r)
        fail_msg("dnsres_new(%s): %s", servers, err);
    bool expired = false;
    struct event *guard = evtimer_new(base, on_guard, &expired);
    struct timeval tv = {20, 0};
    evtimer_add(guard, &tv);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    if (k == MAIL)
        dnsres_mail(r, name, port, on_answer, a);
    else
        dnsres_host(r, name, port, on_answer, a);
    while (!a->done && !expired)
        event_base_loop(base, EVLOOP_ONCE);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    dnsres_free(&r);
    assert_null(r);
    event_free(guard);
    event_base_free(base);
    if (expired)
        fail_msg("%s: no answer within 20 s", name);
    assert_int_equal(a->calls, 1);                 /* exactly once, also after dnsres_free */
    return (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
}

/* Address i as "host=ip:port" for compact assertions. */
static const char *addr_text(const struct dnsres_addrs *d, size_t i, char *buf, size_t len)
{
    char ip[INET6_ADDRSTRLEN] = "?";
    unsigned port = 0;
    const struct sockaddr_storage *ss = &d->addr[i];
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *s = (const struct sockaddr_in *)ss;
        inet_ntop(AF_INET, &s->sin_addr, ip, sizeof ip);
        port = ntohs(s->sin_port);
        assert_int_equal(d->len[i], sizeof *s);
    } else if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *s = (const struct sockaddr_in6 *)ss;
        inet_ntop(AF_INET6, &s->sin6_addr, ip, sizeof ip);
        port = ntohs(s->sin6_port);
        assert_int_equal(d->len[i], sizeof *s);
    }
    snprintf(buf, len, "%s=%s:%u", d->host[i], ip, port);
    return buf;
}

/* Rank of host in want[]: the index of the first entry for it. */
static size_t host_rank(const char *host, const char *const *want, size_t n)
{
    size_t hl = strlen(host);
    for (size_t w = 0; w < n; w++)
        if (strncmp(want[w], host, hl) == 0 && want[w][hl] == '=')
            return w;
    return n;
}

/* The answer holds exactly want[]; hosts come in want's order (addresses of one host in
 * any order: c-ares sorts them by RFC 6724). */
static void expect_addrs(const struct answer *a, const char *const *want, size_t n)
{
    if (a->st != DNSRES_OK)
        fail_msg("status %d (%s), want OK", a->st, a->why);
    assert_int_equal(a->addrs.n, n);
    bool used[DNSRES_MAX_ADDRS] = {false};
    size_t last_rank = 0;
    for (size_t i = 0; i < n; i++) {
        char got[400];
        addr_text(&a->addrs, i, got, sizeof got);
        bool found = false;
        for (size_t j = 0; j < n && !found; j++)
            if (!used[j] && strcmp(got, want[j]) == 0)
                used[j] = found = true;
        if (!found)
            fail_msg("unexpected address %s", got);
        size_t rank = host_rank(a->addrs.host[i], want, n);
        if (rank < last_rank)
            fail_msg("%s came after a less preferred host", got);
        last_rank = rank;
    }
}

static void expect_fail(const struct answer *a, enum dnsres_status st, const char *why_part)
{
    if (a->st != st)
        fail_msg("status %d (%s), want %d", a->st, a->why, st);
    if (!strstr(a->why, why_part))
        fail_msg("reason '%s' lacks '%s'", a->why, why_part);
}

/* ---- cases ---- */

static void mx_preference_order_with_a_and_aaaa(void **state)
{
    (void)state;
    struct answer a;
    lookup(stub.servers, MAIL, "order.test", 2525, &a);
    const char *want[] = {"a.order.test=127.0.0.11:2525", "b.order.test=127.0.0.12:2525",
                          "b.order.test=2001:db8::12:2525", "c.order.test=2001:db8::13:2525"};
    expect_addrs(&a, want, 4);
    /* a trailing dot and upper case name the same domain */
    lookup(stub.servers, MAIL, "ORDER.test.", 25, &a);
    assert_int_equal(a.addrs.n, 4);
    /* (DNS name compression hands back the question's spelling) */
    assert_int_equal(strcasecmp(a.addrs.host[0], "a.order.test"), 0);
}

static void no_mx_falls_back_to_the_domain(void **state)
{
    (void)state;
    struct answer a;
    lookup(stub.servers, MAIL, "implicit.test", 25, &a);
    const char *want[] = {"implicit.test=127.0.0.21:25", "implicit.test=::1:25"};
    expect_addrs(&a, want, 2);
    /* a name with neither MX nor address records: permanent */
    lookup(stub.servers, MAIL, "emptyname.test", 25, &a);
    expect_fail(&a, DNSRES_PERM, "no address for the domain");
}

static void null_mx_and_nxdomain_are_permanent(void **state)
{
    (void)state;
    struct answer a;
    lookup(stub.servers, MAIL, "nullmx.test", 25, &a);
    expect_fail(&a, DNSRES_PERM, "null MX");
    lookup(stub.servers, MAIL, "nosuch.test", 25, &a);
    expect_fail(&a, DNSRES_PERM, "nosuch.test");
    lookup(stub.servers, HOST, "nosuch.test", 25, &a);
    expect_fail(&a, DNSRES_PERM, "nosuch.test");
}

static void servfail_is_temporary(void **state)
{
    (void)state;
    struct answer a;
    lookup(stub.servers, MAIL, "broken.test", 25, &a);
    expect_fail(&a, DNSRES_TEMP, "broken.test");
    /* the only exchange's address lookup fails temporarily: the whole answer is temporary */
    lookup(stub.servers, MAIL, "tempmx.test", 25, &a);
    expect_fail(&a, DNSRES_TEMP, "tempmx.test");
}

static void exchanges_without_addresses(void **state)
{
    (void)state;
    struct answer a;
    lookup(stub.servers, MAIL, "noaddr.test", 25, &a);
    expect_fail(&a, DNSRES_PERM, "no address for any MX host");
    lookup(stub.servers, MAIL, "partial.test", 25, &a);
    const char *want[] = {"good.partial.test=127.0.0.31:25"};
    expect_addrs(&a, want, 1);
}

/* c-ares answers /etc/hosts names inside the ares_getaddrinfo call itself: the lookup is
 * finished (and freed) before that call returns (a use after free until the fix). An MX
 * naming an IP literal, which RFC 5321 forbids but sites publish, is used as given. */
static void synchronous_answers(void **state)
{
    (void)state;
    struct answer a;
    lookup(stub.servers, MAIL, "literal.test", 25, &a);
    const char *want_lit[] = {"127.0.0.41=127.0.0.41:25"};
    expect_addrs(&a, want_lit, 1);
    lookup(stub.servers, HOST, "localhost", 587, &a);
    assert_int_equal(a.st, DNSRES_OK);
    assert_true(a.addrs.n >= 1);
    char buf[400];
    bool v4 = false;
    for (size_t i = 0; i < a.addrs.n; i++)
        v4 |= strcmp(addr_text(&a.addrs, i, buf, sizeof buf), "localhost=127.0.0.1:587") == 0;
    assert_true(v4);
}

static void smart_host_lookups(void **state)
{
    (void)state;
    struct answer a;
    lookup(stub.servers, HOST, "smart.test", 2526, &a);
    const char *want[] = {"smart.test=127.0.0.51:2526"};
    expect_addrs(&a, want, 1);
    /* IP literals never reach DNS (the silent server would time out) */
    double s = lookup(stub.silent, HOST, "192.0.2.9", 25, &a);
    const char *want4[] = {"192.0.2.9=192.0.2.9:25"};
    expect_addrs(&a, want4, 1);
    assert_true(s < 0.5);
    lookup(stub.silent, HOST, "2001:db8::9", 465, &a);
    const char *want6[] = {"2001:db8::9=2001:db8::9:465"};
    expect_addrs(&a, want6, 1);
}

static void silent_server_times_out_temporarily(void **state)
{
    (void)state;
    struct answer a;
    double s = lookup(stub.silent, MAIL, "order.test", 25, &a);
    expect_fail(&a, DNSRES_TEMP, "order.test");
    assert_true(s < 15.0);
}

/* dnsres_free answers every pending lookup (TEMP "resolver shut down") before it returns,
 * so a caller may free its contexts right after. */
static void free_answers_pending_lookups(void **state)
{
    (void)state;
    struct event_base *base = event_base_new();
    char err[256];
    struct dnsres *r = dnsres_new(base, stub.silent, err, sizeof err);
    assert_non_null(r);
    struct answer a[3];
    memset(a, 0, sizeof a);
    dnsres_mail(r, "order.test", 25, on_answer, &a[0]);
    dnsres_mail(r, "implicit.test", 25, on_answer, &a[1]);
    dnsres_host(r, "smart.test", 25, on_answer, &a[2]);
    event_base_loop(base, EVLOOP_NONBLOCK);
    for (size_t i = 0; i < 3; i++)
        assert_false(a[i].done);
    dnsres_free(&r);
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(a[i].calls, 1);
        expect_fail(&a[i], DNSRES_TEMP, "resolver shut down");
    }
    event_base_free(base);
}

/* Many lookups in flight at once on one resolver each get their own answer. */
static void concurrent_lookups(void **state)
{
    (void)state;
    struct event_base *base = event_base_new();
    char err[256];
    struct dnsres *r = dnsres_new(base, stub.servers, err, sizeof err);
    assert_non_null(r);
    enum { N = 40 };
    static struct answer a[N];
    memset(a, 0, sizeof a);
    const char *names[] = {"order.test", "implicit.test", "nullmx.test", "partial.test"};
    for (size_t i = 0; i < N; i++)
        dnsres_mail(r, names[i % 4], 25, on_answer, &a[i]);
    bool expired = false;
    struct event *guard = evtimer_new(base, on_guard, &expired);
    struct timeval tv = {10, 0};
    evtimer_add(guard, &tv);
    size_t left = N;
    while (left && !expired) {
        event_base_loop(base, EVLOOP_ONCE);
        left = 0;
        for (size_t i = 0; i < N; i++)
            left += !a[i].done;
    }
    assert_false(expired);
    for (size_t i = 0; i < N; i++) {
        assert_int_equal(a[i].calls, 1);
        switch (i % 4) {
        case 0: assert_int_equal(a[i].st, DNSRES_OK); assert_int_equal(a[i].addrs.n, 4); break;
        case 1: assert_int_equal(a[i].st, DNSRES_OK); assert_int_equal(a[i].addrs.n, 2); break;
        case 2: expect_fail(&a[i], DNSRES_PERM, "null MX"); break;
        case 3: assert_int_equal(a[i].st, DNSRES_OK); assert_int_equal(a[i].addrs.n, 1); break;
        }
    }
    dnsres_free(&r);
    event_free(guard);
    event_base_free(base);
}

static void bad_server_list(void **state)
{
    (void)state;
    struct event_base *base = event_base_new();
    char err[256] = "";
    struct dnsres *r = dnsres_new(base, "not an address", err, sizeof err);
    assert_null(r);
    assert_non_null(strstr(err, "dns_server"));
    event_base_free(base);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(mx_preference_order_with_a_and_aaaa),
        cmocka_unit_test(no_mx_falls_back_to_the_domain),
        cmocka_unit_test(null_mx_and_nxdomain_are_permanent),
        cmocka_unit_test(servfail_is_temporary),
        cmocka_unit_test(exchanges_without_addresses),
        cmocka_unit_test(synchronous_answers),
        cmocka_unit_test(smart_host_lookups),
        cmocka_unit_test(silent_server_times_out_temporarily),
        cmocka_unit_test(free_answers_pending_lookups),
        cmocka_unit_test(concurrent_lookups),
        cmocka_unit_test(bad_server_list),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
