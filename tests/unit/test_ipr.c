/* Unit tests for ipr: range parsing in every form (IPv4 and IPv6) with exact bounds, bad
 * inputs with their messages, formatting round trips, sizes, overlap relations, bindings. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>
#include "directory/ipr.h"
#include "directory/base/util.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

static void addr_text(const ipr_addr *a, bool v4, char *buf, size_t len)
{
    ipr_addr_format(a, v4, buf, len);
}

static const struct {
    const char *name, *in;
    int form;
    bool v4;
    const char *lo, *hi, *out;   /* out: the round-trip form */
    unsigned prefix;
} good_ranges[] = {
    {"v4 single", "192.168.2.55", IPR_SINGLE, true, "192.168.2.55", "192.168.2.55",
     "192.168.2.55", 0},
    {"v4 lo-hi", "192.168.1.1-192.168.1.254", IPR_LOHI, true, "192.168.1.1", "192.168.1.254",
     "192.168.1.1-192.168.1.254", 0},
    {"v4 lo-hi one address", "10.0.0.1-10.0.0.1", IPR_LOHI, true, "10.0.0.1", "10.0.0.1",
     "10.0.0.1-10.0.0.1", 0},
    {"v4 everything", "0.0.0.0-255.255.255.255", IPR_LOHI, true, "0.0.0.0", "255.255.255.255",
     "0.0.0.0-255.255.255.255", 0},
    {"v4 CIDR network base", "10.0.0.0/8", IPR_CIDR, true, "10.0.0.0", "10.255.255.255",
     "10.0.0.0/8", 8},
    {"v4 CIDR host base", "192.168.1.77/24", IPR_CIDR, true, "192.168.1.0", "192.168.1.255",
     "192.168.1.77/24", 24},
    {"v4 CIDR /0", "1.2.3.4/0", IPR_CIDR, true, "0.0.0.0", "255.255.255.255", "1.2.3.4/0", 0},
    {"v4 CIDR /32", "1.2.3.4/32", IPR_CIDR, true, "1.2.3.4", "1.2.3.4", "1.2.3.4/32", 32},
    {"v4 CIDR /31", "1.2.3.5/31", IPR_CIDR, true, "1.2.3.4", "1.2.3.5", "1.2.3.5/31", 31},
    {"v4 netmask", "192.168.1.9(255.255.255.0)", IPR_NETMASK, true, "192.168.1.0",
     "192.168.1.255", "192.168.1.9(255.255.255.0)", 24},
    {"v4 netmask /20", "172.16.20.1(255.255.240.0)", IPR_NETMASK, true, "172.16.16.0",
     "172.16.31.255", "172.16.20.1(255.255.240.0)", 20},
    {"v4 netmask all ones", "10.1.1.1(255.255.255.255)", IPR_NETMASK, true, "10.1.1.1",
     "10.1.1.1", "10.1.1.1(255.255.255.255)", 32},
    {"v4 netmask zero", "10.1.1.1(0.0.0.0)", IPR_NETMASK, true, "0.0.0.0", "255.255.255.255",
     "10.1.1.1(0.0.0.0)", 0},
    {"v6 any single", "::", IPR_SINGLE, false, "::", "::", "::", 0},
    {"v6 loopback", "::1", IPR_SINGLE, false, "::1", "::1", "::1", 0},
    {"v6 single long form", "2001:0db8:0000:0000:0000:0000:0000:0001", IPR_SINGLE, false,
     "2001:db8::1", "2001:db8::1", "2001:db8::1", 0},
    {"v6 CIDR", "2001:db8::/32", IPR_CIDR, false, "2001:db8::",
     "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff", "2001:db8::/32", 32},
    {"v6 CIDR host base", "2001:db8::cd3/60", IPR_CIDR, false, "2001:db8::",
     "2001:db8:0:f:ffff:ffff:ffff:ffff", "2001:db8::cd3/60", 60},
    {"v6 CIDR /128", "fe80::1/128", IPR_CIDR, false, "fe80::1", "fe80::1", "fe80::1/128", 128},
    {"v6 CIDR /0", "::/0", IPR_CIDR, false, "::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
     "::/0", 0},
    {"v6 everything lo-hi", "::-ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", IPR_LOHI, false, "::",
     "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "::-ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 0},
    {"v6 lo-hi", "2001:db8::10-2001:db8::1f", IPR_LOHI, false, "2001:db8::10", "2001:db8::1f",
     "2001:db8::10-2001:db8::1f", 0},
    {"v6 spelled v4-mapped stays IPv6", "::ffff:10.0.0.1", IPR_SINGLE, false, "::ffff:10.0.0.1",
     "::ffff:10.0.0.1", "::ffff:10.0.0.1", 0},
};

static void range_parse_good(void **state)
{
    (void)state;
    for (size_t i = 0; i < N(good_ranges); i++) {
        ipr_range r;
        char err[RN_ERRLEN] = "", lo[64], hi[64], out[160];
        if (ipr_range_parse(good_ranges[i].in, &r, err, sizeof err) != 0)
            fail_msg("%s: '%s' refused: %s", good_ranges[i].name, good_ranges[i].in, err);
        addr_text(&r.lo, r.v4, lo, sizeof lo);
        addr_text(&r.hi, r.v4, hi, sizeof hi);
        ipr_range_format(&r, out, sizeof out);
        if (r.form != good_ranges[i].form || r.v4 != good_ranges[i].v4 ||
            strcmp(lo, good_ranges[i].lo) || strcmp(hi, good_ranges[i].hi) ||
            strcmp(out, good_ranges[i].out) ||
            ((r.form == IPR_CIDR || r.form == IPR_NETMASK) && r.prefix != good_ranges[i].prefix))
            fail_msg("%s: form %d v4 %d lo %s hi %s out %s prefix %u", good_ranges[i].name,
                     r.form, r.v4, lo, hi, out, r.prefix);
        if (r.v4) {
            assert_true(ipr_addr_is_v4mapped(&r.lo));
            assert_true(ipr_addr_is_v4mapped(&r.hi));
        }
        /* Round trip: the formatted text parses to the same range. */
        ipr_range r2;
        assert_int_equal(ipr_range_parse(out, &r2, err, sizeof err), 0);
        assert_memory_equal(&r2.lo, &r.lo, sizeof r.lo);
        assert_memory_equal(&r2.hi, &r.hi, sizeof r.hi);
        assert_int_equal(r2.form, r.form);
    }
}

static const struct { const char *name, *in, *err; } bad_ranges[] = {
    {"empty", "", "empty range"},
    {"garbage", "hello", "'hello' is not an IP address"},
    {"v4 octet too big", "10.0.0.256", "'10.0.0.256' is not an IP address"},
    {"v4 short", "10.0.0", "'10.0.0' is not an IP address"},
    {"leading space", " 10.0.0.1", "' 10.0.0.1' is not an IP address"},
    {"zone id", "fe80::1%eth0", "'fe80::1%eth0' is not an IP address"},
    {"hostname", "relay.example.com", "'relay.example.com' is not an IP address"},
    {"lo-hi reversed", "10.0.0.9-10.0.0.1", "the low end is above the high end"},
    {"lo-hi mixed families", "10.0.0.1-::1", "the two ends are of different families (IPv4-IPv6)"},
    {"lo-hi mixed families v6 first", "::1-10.0.0.1",
     "the two ends are of different families (IPv6-IPv4)"},
    {"lo-hi empty high", "10.0.0.1-", "'' is not an IP address"},
    {"lo-hi empty low", "-10.0.0.1", "'' is not an IP address"},
    {"lo-hi twice", "10.0.0.1-10.0.0.2-10.0.0.3", "'10.0.0.2-10.0.0.3' is not an IP address"},
    {"CIDR v4 too long", "10.0.0.0/33", "prefix length 33 is above 32 for IPv4"},
    {"CIDR v6 too long", "2001:db8::/129", "prefix length 129 is above 128 for IPv6"},
    {"CIDR empty", "10.0.0.0/", "'' is not a prefix length"},
    {"CIDR sign", "10.0.0.0/-1", "'-1' is not a prefix length"},
    {"CIDR garbage", "10.0.0.0/24x", "'24x' is not a prefix length"},
    {"CIDR digits", "10.0.0.0/0024", "'0024' is not a prefix length"},
    {"netmask not contiguous", "10.0.0.0(255.0.255.0)", "netmask 255.0.255.0 is not contiguous"},
    {"netmask unclosed", "10.0.0.0(255.0.0.0", "netmask must be written a.b.c.d(m.m.m.m)"},
    {"netmask trailing", "10.0.0.0(255.0.0.0)x", "netmask must be written a.b.c.d(m.m.m.m)"},
    {"netmask v6", "2001:db8::(ffff::)", "the netmask form is for IPv4 only; use a/n for IPv6"},
    {"netmask not an address", "10.0.0.0(24)", "'24' is not an IPv4 netmask"},
    {"netmask v6 mask", "10.0.0.0(ffff::)", "'ffff::' is not an IPv4 netmask"},
};

static void range_parse_bad(void **state)
{
    (void)state;
    for (size_t i = 0; i < N(bad_ranges); i++) {
        ipr_range r;
        char err[RN_ERRLEN] = "";
        if (ipr_range_parse(bad_ranges[i].in, &r, err, sizeof err) != -1)
            fail_msg("%s: '%s' accepted", bad_ranges[i].name, bad_ranges[i].in);
        if (strcmp(err, bad_ranges[i].err) != 0)
            fail_msg("%s: got '%s', want '%s'", bad_ranges[i].name, err, bad_ranges[i].err);
    }
    ipr_range r;
    char err[RN_ERRLEN] = "";
    char longs[300];
    memset(longs, '1', sizeof longs - 1);
    longs[sizeof longs - 1] = '\0';
    assert_int_equal(ipr_range_parse(longs, &r, err, sizeof err), -1);
    assert_string_equal(err, "range is too long");
}

static ipr_range R(const char *s)
{
    ipr_range r;
    char err[RN_ERRLEN];
    if (ipr_range_parse(s, &r, err, sizeof err) != 0)
        fail_msg("R(%s): %s", s, err);
    return r;
}

static ipr_addr A(const char *s, bool *v4)
{
    ipr_addr a;
    bool f;
    if (ipr_addr_parse(s, &a, &f) != 0)
        fail_msg("A(%s)", s);
    if (v4)
        *v4 = f;
    return a;
}

static void addr_parse_and_format(void **state)
{
    (void)state;
    bool v4;
    ipr_addr a = A("192.0.2.1", &v4);
    char buf[64];
    assert_true(v4);
    assert_true(ipr_addr_is_v4mapped(&a));
    ipr_addr_format(&a, true, buf, sizeof buf);
    assert_string_equal(buf, "192.0.2.1");
    ipr_addr_format(&a, false, buf, sizeof buf);
    assert_string_equal(buf, "::ffff:192.0.2.1");
    a = A("2001:DB8::A", &v4);
    assert_false(v4);
    assert_false(ipr_addr_is_v4mapped(&a));
    ipr_addr_format(&a, false, buf, sizeof buf);
    assert_string_equal(buf, "2001:db8::a");
    assert_int_equal(ipr_addr_format(&a, false, buf, 4), strlen("2001:db8::a"));
    assert_string_equal(buf, "200");                 /* truncated, terminated */
    assert_int_equal(ipr_addr_parse("", &a, &v4), -1);
    assert_int_equal(ipr_addr_parse(NULL, &a, &v4), -1);
    assert_int_equal(ipr_addr_parse("1.2.3.4/8", &a, &v4), -1);
    assert_int_equal(ipr_addr_parse("fe80::1%lo", &a, &v4), -1);
}

static void contains_and_family(void **state)
{
    (void)state;
    bool v4;
    ipr_range r = R("10.0.0.0/8");
    ipr_addr in = A("10.200.3.4", &v4), out = A("11.0.0.0", &v4), edge = A("10.255.255.255", &v4);
    assert_true(ipr_range_contains(&r, &in, true));
    assert_true(ipr_range_contains(&r, &edge, true));
    assert_false(ipr_range_contains(&r, &out, true));
    /* The same 128-bit value asked as IPv6 (a v4-mapped client on a v6-only view) is not in an
     * IPv4 range: families never mix. */
    assert_false(ipr_range_contains(&r, &in, false));
    ipr_range all6 = R("::/0");
    assert_true(ipr_range_contains(&all6, &out, false));
    assert_false(ipr_range_contains(&all6, &out, true));
}

static void sizes(void **state)
{
    (void)state;
    ipr_range single = R("10.0.0.1"), c24 = R("10.0.0.0/24"), lohi = R("10.0.0.0-10.0.0.255"),
              nm = R("10.0.0.7(255.255.255.0)"), c16 = R("10.0.0.0/16"), all6 = R("::/0"),
              all6b = R("::-ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"), h6 = R("::1");
    assert_int_equal(ipr_range_cmp_size(&single, &c24), -1);
    assert_int_equal(ipr_range_cmp_size(&c24, &single), 1);
    assert_int_equal(ipr_range_cmp_size(&c24, &lohi), 0);   /* CIDR and lo-hi are the same */
    assert_int_equal(ipr_range_cmp_size(&c24, &nm), 0);
    assert_int_equal(ipr_range_cmp_size(&c16, &c24), 1);
    assert_int_equal(ipr_range_cmp_size(&all6, &all6b), 0); /* 2^128-1 needs all 128 bits */
    assert_int_equal(ipr_range_cmp_size(&h6, &single), 0);  /* sizes ignore the family */
    assert_int_equal(ipr_range_cmp_size(&all6, &c16), 1);
}

static const struct { const char *name, *a, *b; enum ipr_overlap want; } overlaps[] = {
    {"equal", "10.0.0.0/24", "10.0.0.0-10.0.0.255", IPR_EQUAL},
    {"equal netmask vs CIDR", "10.0.0.9(255.255.255.0)", "10.0.0.0/24", IPR_EQUAL},
    {"nested inner", "10.0.0.5", "10.0.0.0/24", IPR_NESTED},
    {"nested outer", "10.0.0.0/8", "10.1.0.0/16", IPR_NESTED},
    {"nested sharing lo", "10.0.0.0-10.0.0.9", "10.0.0.0/24", IPR_NESTED},
    {"nested sharing hi", "10.0.0.0/24", "10.0.0.200-10.0.0.255", IPR_NESTED},
    {"partial", "10.0.0.0-10.0.0.200", "10.0.0.100-10.0.1.5", IPR_PARTIAL},
    {"partial reversed", "10.0.0.100-10.0.1.5", "10.0.0.0-10.0.0.200", IPR_PARTIAL},
    {"partial touching one address", "10.0.0.0-10.0.0.10", "10.0.0.10-10.0.0.20", IPR_PARTIAL},
    {"disjoint adjacent", "10.0.0.0/25", "10.0.0.128/25", IPR_DISJOINT},
    {"disjoint far", "10.0.0.0/8", "192.168.0.0/16", IPR_DISJOINT},
    {"families never overlap", "0.0.0.0-255.255.255.255", "::/0", IPR_DISJOINT},
    {"v6 nested", "2001:db8::/32", "2001:db8:1::/48", IPR_NESTED},
    {"v6 partial", "2001:db8::1-2001:db8::9", "2001:db8::5-2001:db8::20", IPR_PARTIAL},
    {"v6 equal", "2001:db8::/127", "2001:db8::-2001:db8::1", IPR_EQUAL},
};

static void overlap_relations(void **state)
{
    (void)state;
    for (size_t i = 0; i < N(overlaps); i++) {
        ipr_range a = R(overlaps[i].a), b = R(overlaps[i].b);
        enum ipr_overlap got = ipr_range_overlap(&a, &b), rev = ipr_range_overlap(&b, &a);
        if (got != overlaps[i].want || rev != overlaps[i].want)
            fail_msg("%s: got %d/%d want %d", overlaps[i].name, got, rev, overlaps[i].want);
    }
}

static const struct {
    const char *name, *in, *err, *out;
    bool v4, wildcard;
    unsigned port;
} bindings[] = {
    {"v4 wildcard", "0.0.0.0:25", NULL, "0.0.0.0:25", true, true, 25},
    {"v4 specific", "192.168.2.10:587", NULL, "192.168.2.10:587", true, false, 587},
    {"v6 wildcard", "[::]:25", NULL, "[::]:25", false, true, 25},
    {"v6 specific", "[2001:db8::1]:2525", NULL, "[2001:db8::1]:2525", false, false, 2525},
    {"v6 long form", "[2001:0db8::0001]:65535", NULL, "[2001:db8::1]:65535", false, false, 65535},
    {"port 0", "10.0.0.1:0", "port 0 is outside 1-65535", NULL, false, false, 0},
    {"port too big", "10.0.0.1:65536", "port 65536 is outside 1-65535", NULL, false, false, 0},
    {"port six digits", "10.0.0.1:000025", "'000025' is not a port number", NULL, 0, 0, 0},
    {"no port", "10.0.0.1", "expected IP:port", NULL, false, false, 0},
    {"empty port", "10.0.0.1:", "'' is not a port number", NULL, false, false, 0},
    {"bad port", "10.0.0.1:smtp", "'smtp' is not a port number", NULL, false, false, 0},
    {"v6 without brackets", "::1:25", "an IPv6 binding needs brackets, e.g. [::]:25", NULL, 0, 0,
     0},
    {"unclosed bracket", "[::1:25", "expected [IPv6]:port", NULL, false, false, 0},
    {"bracket no port", "[::1]", "expected [IPv6]:port", NULL, false, false, 0},
    {"v4 in brackets", "[10.0.0.1]:25", "brackets are for IPv6 addresses", NULL, 0, 0, 0},
    {"bad address", "10.0.0:25", "'10.0.0' is not an IP address", NULL, false, false, 0},
    {"v4 multicast", "224.0.0.1:25", "a multicast address cannot be a binding", NULL, 0, 0, 0},
    {"v4 multicast high", "239.255.255.255:25", "a multicast address cannot be a binding", NULL,
     0, 0, 0},
    {"v4 broadcast", "255.255.255.255:25", "a broadcast address cannot be a binding", NULL, 0, 0,
     0},
    {"v6 multicast", "[ff02::1]:25", "a multicast address cannot be a binding", NULL, 0, 0, 0},
    {"empty", "", "empty binding", NULL, false, false, 0},
};

static void binding_parse_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < N(bindings); i++) {
        ipr_binding b;
        char err[RN_ERRLEN] = "", out[80];
        int rc = ipr_binding_parse(bindings[i].in, &b, err, sizeof err);
        if (bindings[i].err) {
            if (rc != -1 || strcmp(err, bindings[i].err) != 0)
                fail_msg("%s: rc %d err '%s' want '%s'", bindings[i].name, rc, err,
                         bindings[i].err);
            continue;
        }
        if (rc != 0)
            fail_msg("%s: refused: %s", bindings[i].name, err);
        ipr_binding_format(&b, out, sizeof out);
        if (strcmp(out, bindings[i].out) || b.v4 != bindings[i].v4 ||
            b.wildcard != bindings[i].wildcard || b.port != bindings[i].port)
            fail_msg("%s: out %s v4 %d wildcard %d port %u", bindings[i].name, out, b.v4,
                     b.wildcard, b.port);
    }
}

static ipr_binding B(const char *s)
{
    ipr_binding b;
    char err[RN_ERRLEN];
    if (ipr_binding_parse(s, &b, err, sizeof err) != 0)
        fail_msg("B(%s): %s", s, err);
    return b;
}

static void binding_overlap(void **state)
{
    (void)state;
    static const struct { const char *a, *b; bool want; } t[] = {
        {"10.0.0.1:25", "10.0.0.1:25", true},
        {"10.0.0.1:25", "10.0.0.2:25", false},
        {"10.0.0.1:25", "10.0.0.1:587", false},
        {"0.0.0.0:25", "10.0.0.1:25", true},
        {"10.0.0.1:25", "0.0.0.0:25", true},
        {"0.0.0.0:25", "0.0.0.0:25", true},
        {"0.0.0.0:25", "[::]:25", false},
        {"[::]:25", "[2001:db8::1]:25", true},
        {"[::]:25", "[::]:587", false},
        {"0.0.0.0:25", "[::1]:25", false},
    };
    for (size_t i = 0; i < N(t); i++) {
        ipr_binding a = B(t[i].a), b = B(t[i].b);
        if (ipr_binding_overlaps(&a, &b) != t[i].want || ipr_binding_overlaps(&b, &a) != t[i].want)
            fail_msg("%s vs %s: want %d", t[i].a, t[i].b, t[i].want);
    }
}

static void format_truncates(void **state)
{
    (void)state;
    ipr_range r = R("2001:db8::/32");
    char small[6];
    assert_int_equal(ipr_range_format(&r, small, sizeof small), strlen("2001:db8::/32"));
    assert_string_equal(small, "2001:");
    ipr_binding b = B("[::]:25");
    assert_int_equal(ipr_binding_format(&b, small, sizeof small), strlen("[::]:25"));
    assert_string_equal(small, "[::]:");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(range_parse_good),
        cmocka_unit_test(range_parse_bad),
        cmocka_unit_test(addr_parse_and_format),
        cmocka_unit_test(contains_and_family),
        cmocka_unit_test(sizes),
        cmocka_unit_test(overlap_relations),
        cmocka_unit_test(binding_parse_table),
        cmocka_unit_test(binding_overlap),
        cmocka_unit_test(format_truncates),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
