/* sendroute: address-space specificity, cost, disabled connectors, host:port parsing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "node/delivery/sendroute.h"

static char *as_all[] = {"*"}, *as_ex[] = {"example.com"}, *as_sub[] = {"*.example.com"},
            *as_deep[] = {"*.eu.example.com"}, *as_mx[] = {"mx.test", "other.test"};
static char *hosts1[] = {"smart1.example.net:2525"}, *hosts2[] = {"[192.0.2.7]"};

static struct rn_sendconn conns[] = {
    {.name = "default", .enabled = true, .address_spaces = as_all, .naddress_spaces = 1,
     .smart_hosts = hosts1, .nsmart_hosts = 1, .cost = 10},
    {.name = "cheap default", .enabled = true, .address_spaces = as_all, .naddress_spaces = 1,
     .smart_hosts = hosts2, .nsmart_hosts = 1, .cost = 5},
    {.name = "exact", .enabled = true, .address_spaces = as_ex, .naddress_spaces = 1,
     .smart_hosts = hosts2, .nsmart_hosts = 1, .cost = 50},
    {.name = "subdomains", .enabled = true, .address_spaces = as_sub, .naddress_spaces = 1,
     .smart_hosts = hosts1, .nsmart_hosts = 1, .cost = 50},
    {.name = "deeper", .enabled = true, .address_spaces = as_deep, .naddress_spaces = 1,
     .smart_hosts = hosts1, .nsmart_hosts = 1, .cost = 99},
    {.name = "by mx", .enabled = true, .address_spaces = as_mx, .naddress_spaces = 2,
     .cost = 1},
    {.name = "disabled exact", .enabled = false, .address_spaces = as_mx, .naddress_spaces = 1,
     .smart_hosts = hosts1, .nsmart_hosts = 1, .cost = 0},
};

static void picks(void **state)
{
    (void)state;
    struct rn_snapshot s = {.sendconns = conns, .nsendconns = sizeof conns / sizeof conns[0]};
    const struct { const char *domain, *want; int mx; } t[] = {
        {"example.com", "exact", 0},
        {"EXAMPLE.COM.", "exact", 0},
        {"sales.example.com", "subdomains", 0},
        {"a.eu.example.com", "deeper", 0},
        {"eu.example.com", "subdomains", 0},
        {"example.com.evil.test", "cheap default", 0},
        {"mx.test", "by mx", 1},
        {"other.test", "by mx", 1},
        {"elsewhere.org", "cheap default", 0},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        struct sendroute r;
        sendroute_pick(&s, t[i].domain, &r);
        assert_non_null(r.sc);
        if (strcmp(r.sc->name, t[i].want) != 0)
            fail_msg("%s: got %s, want %s", t[i].domain, r.sc->name, t[i].want);
        assert_int_equal(r.mx, t[i].mx);
    }
    struct sendroute r;
    sendroute_pick(&s, "", &r);
    assert_null(r.sc);
    struct rn_snapshot only = {.sendconns = &conns[2], .nsendconns = 1};
    sendroute_pick(&only, "other.org", &r);
    assert_null(r.sc);
}

static void hosts(void **state)
{
    (void)state;
    char h[64];
    unsigned port;
    assert_int_equal(sendroute_parse_host("smart.example.net", h, sizeof h, &port), 0);
    assert_string_equal(h, "smart.example.net");
    assert_int_equal(port, 25);
    assert_int_equal(sendroute_parse_host("127.0.0.1:2525", h, sizeof h, &port), 0);
    assert_string_equal(h, "127.0.0.1");
    assert_int_equal(port, 2525);
    assert_int_equal(sendroute_parse_host("[2001:db8::1]:587", h, sizeof h, &port), 0);
    assert_string_equal(h, "2001:db8::1");
    assert_int_equal(port, 587);
    assert_int_equal(sendroute_parse_host("[192.0.2.7]", h, sizeof h, &port), 0);
    assert_int_equal(port, 25);
    const char *bad[] = {"", ":25", "host:", "host:0", "host:70000", "host:2x", "[]", "[::1",
                         "[::1]x", "host:+25", "host: 25"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (sendroute_parse_host(bad[i], h, sizeof h, &port) != -1)
            fail_msg("'%s' accepted", bad[i]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(picks), cmocka_unit_test(hosts)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
