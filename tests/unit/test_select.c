/* Unit tests for policy_select (docs/permission-model.md §4.1): the seed article's connectors,
 * IPv6, exact vs wildcard bindings and their ties, nested vs partial ranges, load-order ties,
 * disabled connectors, families, no match. Every case runs twice, by scan and through the
 * index policy_index builds, and a randomised comparison checks the two always agree. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "directory/policy.h"
#include "directory/base/util.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))
#define MAXL 4

struct cspec {
    const char *name;
    bool disabled;
    const char *binds[MAXL], *ranges[MAXL];
};

static struct rn_snapshot *snap_make(const struct cspec *cs, size_t n)
{
    char err[RN_ERRLEN];
    struct rn_snapshot *s = snapshot_new();
    s->connectors = xcalloc(n, sizeof *s->connectors);
    for (size_t i = 0; i < n; i++) {
        struct rn_connector *c = &s->connectors[s->nconnectors++];
        connector_defaults(c);
        c->name = xstrdup(cs[i].name);
        c->enabled = !cs[i].disabled;
        c->bindings = xcalloc(MAXL, sizeof *c->bindings);
        c->ranges = xcalloc(MAXL, sizeof *c->ranges);
        for (size_t k = 0; k < MAXL && cs[i].binds[k]; k++)
            if (ipr_binding_parse(cs[i].binds[k], &c->bindings[c->nbindings++], err,
                                  sizeof err) != 0)
                fail_msg("%s: %s", cs[i].binds[k], err);
        for (size_t k = 0; k < MAXL && cs[i].ranges[k]; k++)
            if (ipr_range_parse(cs[i].ranges[k], &c->ranges[c->nranges++], err, sizeof err) != 0)
                fail_msg("%s: %s", cs[i].ranges[k], err);
    }
    return s;
}

/* "ip:port" of the local end (any address, not a binding), the client, and the expected
 * connector name (NULL: 421). */
struct query { const char *name, *local, *remote, *want; };

static const char *select_name(const struct rn_snapshot *s, const char *local, const char *remote,
                               struct verdict *v)
{
    ipr_binding l;
    ipr_addr r;
    bool lv4 = false, rv4 = false;
    if (local[0] == '[' || strchr(local, '.')) {
        /* parse "ip:port" as a binding would be, but allow any address */
        const char *colon = strrchr(local, ':');
        char ip[64];
        size_t n = (size_t)(colon - local);
        if (local[0] == '[') {
            memcpy(ip, local + 1, n - 2);
            ip[n - 2] = '\0';
        } else {
            memcpy(ip, local, n);
            ip[n] = '\0';
        }
        assert_int_equal(ipr_addr_parse(ip, &l.ip, &lv4), 0);
        l.port = (uint16_t)atoi(colon + 1);
    } else {
        fail_msg("bad local %s", local);
    }
    assert_int_equal(ipr_addr_parse(remote, &r, &rv4), 0);
    assert_int_equal(lv4, rv4);
    const struct rn_connector *c = policy_select(s, &l.ip, l.port, &r, rv4, v);
    return c ? c->name : NULL;
}

static void run_queries(struct rn_snapshot *s, const struct query *q, size_t n)
{
    for (int pass = 0; pass < 2; pass++) {
        if (pass == 1)
            policy_index(s);
        for (size_t i = 0; i < n; i++) {
            struct verdict v;
            memset(&v, 0x5a, sizeof v);
            const char *got = select_name(s, q[i].local, q[i].remote, &v);
            if ((got == NULL) != (q[i].want == NULL) || (got && strcmp(got, q[i].want) != 0))
                fail_msg("%s (%s): got %s want %s", q[i].name, pass ? "index" : "scan",
                         got ? got : "none", q[i].want ? q[i].want : "none");
            if (got) {
                assert_true(v.ok);
                assert_non_null(v.why);
                assert_int_equal(v.ace, -1);
            } else {
                assert_false(v.ok);
                assert_int_equal(v.code, 421);
                assert_string_equal(v.enh, "4.3.2");
                assert_string_equal(v.text, "Service not available");
                assert_true(v.close);
                assert_int_equal(v.right, 0);
            }
        }
    }
}

/* The seed article: the default connector, the app servers' connector, a client connector. */
static const struct cspec article[] = {
    {"Default", false, {"0.0.0.0:25", "[::]:25"},
     {"0.0.0.0-255.255.255.255", "::-ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"}},
    {"CRM Application", false, {"0.0.0.0:25"}, {"192.168.2.55", "192.168.2.56"}},
    {"Client", false, {"0.0.0.0:587", "[::]:587"}, {"0.0.0.0/0", "::/0"}},
};

static void article_connectors(void **state)
{
    (void)state;
    struct rn_snapshot *s = snap_make(article, N(article));
    static const struct query q[] = {
        {"app server .55", "192.168.2.10:25", "192.168.2.55", "CRM Application"},
        {"app server .56", "192.168.2.10:25", "192.168.2.56", "CRM Application"},
        {"neighbour .57", "192.168.2.10:25", "192.168.2.57", "Default"},
        {"internet client", "192.168.2.10:25", "203.0.113.9", "Default"},
        {"IPv6 client", "[2001:db8::10]:25", "2001:db8::77", "Default"},
        {"IPv6 loopback", "[::1]:25", "::1", "Default"},
        {"submission port", "192.168.2.10:587", "192.168.2.55", "Client"},
        {"submission port v6", "[::1]:587", "::1", "Client"},
        {"no connector on 2525", "192.168.2.10:2525", "192.168.2.55", NULL},
        {"no connector on v6 2525", "[::1]:2525", "::1", NULL},
    };
    run_queries(s, q, N(q));
    snapshot_unref(&s);
}

static void exact_vs_wildcard(void **state)
{
    (void)state;
    static const struct cspec cs[] = {
        {"Wild10", false, {"0.0.0.0:25"}, {"10.0.0.0/8"}},
        {"Exact10", false, {"10.1.1.1:25"}, {"10.0.0.0/8"}},
        {"WildSmall", false, {"0.0.0.0:25"}, {"10.9.0.0/16"}},
        {"ExactHost", false, {"10.1.1.1:25"}, {"172.16.0.0/12", "172.16.5.5"}},
        {"WildHost", false, {"0.0.0.0:25"}, {"172.16.5.6"}},
        {"Both", false, {"10.1.1.2:25", "0.0.0.0:25"}, {"192.168.7.0/24"}},
    };
    struct rn_snapshot *s = snap_make(cs, N(cs));
    static const struct query q[] = {
        {"equal sizes: the exact binding wins", "10.1.1.1:25", "10.2.3.4", "Exact10"},
        {"equal sizes, load order reversed does not matter", "10.1.1.1:25", "10.200.0.1",
         "Exact10"},
        {"another local address: only wildcards", "10.1.1.3:25", "10.2.3.4", "Wild10"},
        {"a strictly smaller wildcard range wins", "10.1.1.1:25", "10.9.1.1", "WildSmall"},
        {"the exact connector's smallest range counts", "10.1.1.1:25", "172.16.5.5",
         "ExactHost"},
        {"single wildcard host vs exact /12", "10.1.1.1:25", "172.16.5.6", "WildHost"},
        {"exact /12 when the wildcard has nothing", "10.1.1.1:25", "172.16.9.9", "ExactHost"},
        {"connector with both bindings, via exact", "10.1.1.2:25", "192.168.7.1", "Both"},
        {"connector with both bindings, via wildcard", "10.1.1.9:25", "192.168.7.1", "Both"},
        {"nothing holds the client", "10.1.1.1:25", "8.8.8.8", NULL},
    };
    run_queries(s, q, N(q));
    snapshot_unref(&s);
}

static void ranges_and_ties(void **state)
{
    (void)state;
    static const struct cspec cs[] = {
        {"First", false, {"0.0.0.0:25"}, {"10.0.0.0/24"}},
        {"Second", false, {"0.0.0.0:25"}, {"10.0.0.0-10.0.0.255"}},   /* same size as First */
        {"Partial", false, {"0.0.0.0:25"}, {"10.0.0.100-10.0.1.5"}},
        {"Nested", false, {"0.0.0.0:25"}, {"10.0.0.16/28"}},
        {"Off", true, {"0.0.0.0:25"}, {"10.0.0.20"}},
        {"Netmask", false, {"0.0.0.0:25"}, {"10.0.0.40(255.255.255.252)"}},
        {"V6only", false, {"[::]:25"}, {"10.0.0.0/8", "2001:db8::/32"}},
        {"V6host", false, {"[::]:25"}, {"2001:db8::1"}},
        {"V6wide", false, {"[::]:25", "0.0.0.0:26"}, {"::/0"}},
        {"Empty26", false, {"0.0.0.0:26"}, {"::1"}},
    };
    struct rn_snapshot *s = snap_make(cs, N(cs));
    static const struct query q[] = {
        {"equal sizes: first loaded wins", "10.0.0.1:25", "10.0.0.5", "First"},
        {"nested smaller range wins", "10.0.0.1:25", "10.0.0.17", "Nested"},
        {"disabled connector ignored", "10.0.0.1:25", "10.0.0.20", "Nested"},
        {"partial overlap: the smaller (162 addresses) beats the /24", "10.0.0.1:25",
         "10.0.0.150", "Partial"},
        {"partial overlap: outside Partial the /24 wins", "10.0.0.1:25", "10.0.0.99", "First"},
        {"partial: only Partial holds it", "10.0.0.1:25", "10.0.1.2", "Partial"},
        {"netmask range is 4 addresses", "10.0.0.1:25", "10.0.0.43", "Netmask"},
        {"just outside the netmask range", "10.0.0.1:25", "10.0.0.44", "First"},
        {"v6 host", "[2001:db8::9]:25", "2001:db8::1", "V6host"},
        {"v6 /32", "[2001:db8::9]:25", "2001:db8::2", "V6only"},
        {"v6 anything", "[2001:db8::9]:25", "2001:dead::2", "V6wide"},
        {"v4 ranges of a v6 binding are ignored", "10.0.0.1:25", "10.200.0.1", NULL},
        {"v6 ranges of a v4 binding are ignored", "10.0.0.1:26", "10.0.0.1", NULL},
        {"v4 client never meets the v6 ::/0", "10.0.0.1:26", "10.0.0.1", NULL},
    };
    run_queries(s, q, N(q));
    snapshot_unref(&s);
}

static void empty_snapshot(void **state)
{
    (void)state;
    struct rn_snapshot *s = snapshot_new();
    static const struct query q[] = {{"nothing loaded", "10.0.0.1:25", "10.0.0.2", NULL}};
    run_queries(s, q, N(q));
    snapshot_unref(&s);
}

/* Random connectors over a small address space so ranges collide a lot: the index must give
 * exactly what the scan gives, connector and range alike. */
static void index_matches_scan(void **state)
{
    (void)state;
    srand(12345);
    for (int round = 0; round < 40; round++) {
        size_t n = 1 + (size_t)(rand() % 30);
        struct rn_snapshot *s = snapshot_new();
        s->connectors = xcalloc(n, sizeof *s->connectors);
        char err[RN_ERRLEN], buf[80];
        for (size_t i = 0; i < n; i++) {
            struct rn_connector *c = &s->connectors[s->nconnectors++];
            connector_defaults(c);
            c->name = xasprintf("c%zu", i);
            c->enabled = rand() % 8 != 0;
            c->nbindings = 1 + (size_t)(rand() % 2);
            c->bindings = xcalloc(c->nbindings, sizeof *c->bindings);
            for (size_t k = 0; k < c->nbindings; k++) {
                int kind = rand() % 4;
                snprintf(buf, sizeof buf, kind == 0 ? "0.0.0.0:%d" : kind == 1 ? "10.0.0.%d:25"
                                          : kind == 2 ? "[::]:%d" : "10.0.0.1:%d",
                         kind == 1 ? 1 + rand() % 2 : 25 + rand() % 2);
                assert_int_equal(ipr_binding_parse(buf, &c->bindings[k], err, sizeof err), 0);
            }
            c->nranges = 1 + (size_t)(rand() % 3);
            c->ranges = xcalloc(c->nranges, sizeof *c->ranges);
            for (size_t k = 0; k < c->nranges; k++) {
                int a = rand() % 64, b = a + rand() % 40;
                if (b > 255) b = 255;
                if (rand() % 5 == 0)
                    snprintf(buf, sizeof buf, "2001:db8::%x-2001:db8::%x", a, b);
                else if (rand() % 3 == 0)
                    snprintf(buf, sizeof buf, "192.168.0.%d/%d", a, 26 + rand() % 7);
                else
                    snprintf(buf, sizeof buf, "192.168.0.%d-192.168.0.%d", a, b);
                assert_int_equal(ipr_range_parse(buf, &c->ranges[k], err, sizeof err), 0);
            }
        }
        static const char *locals[] = {"10.0.0.1", "10.0.0.2", "10.0.0.3", "::1"};
        const struct rn_connector *want[4][2][110];
        for (int pass = 0; pass < 2; pass++) {
            if (pass)
                policy_index(s);
            for (int li = 0; li < 4; li++)
                for (int port = 0; port < 2; port++)
                    for (int ri = 0; ri < 110; ri++) {
                        ipr_addr l, r;
                        bool lv4, rv4;
                        assert_int_equal(ipr_addr_parse(locals[li], &l, &lv4), 0);
                        if (lv4)
                            snprintf(buf, sizeof buf, "192.168.0.%d", ri);
                        else
                            snprintf(buf, sizeof buf, "2001:db8::%x", ri);
                        assert_int_equal(ipr_addr_parse(buf, &r, &rv4), 0);
                        struct verdict v;
                        const struct rn_connector *c =
                            policy_select(s, &l, (uint16_t)(25 + port), &r, lv4, &v);
                        if (!pass)
                            want[li][port][ri] = c;
                        else if (c != want[li][port][ri])
                            fail_msg("round %d local %s port %d remote %s: scan %s index %s",
                                     round, locals[li], 25 + port, buf,
                                     want[li][port][ri] ? want[li][port][ri]->name : "-",
                                     c ? c->name : "-");
                    }
        }
        snapshot_unref(&s);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(article_connectors),
        cmocka_unit_test(exact_vs_wildcard),
        cmocka_unit_test(ranges_and_ties),
        cmocka_unit_test(empty_snapshot),
        cmocka_unit_test(index_matches_scan),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
