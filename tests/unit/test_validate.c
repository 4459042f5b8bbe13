/* Unit tests for validate: each §3.2 rule with its exact message, and the §4.3 conflicts
 * (identical binding: equal or partial ranges refused; wildcard vs specific: partial refused,
 * equal allowed; nested always allowed; other families and ports never conflict). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>
#include "directory/acl.h"
#include "directory/validate.h"
#include "directory/base/util.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))
#define MAXL 4

/* A connector from text; NULL entries end the lists. Caller connector_clear()s. */
static void conn_make(struct rn_connector *c, const char *name, const char *const *binds,
                      const char *const *ranges, unsigned auth, unsigned groups)
{
    char err[RN_ERRLEN];
    connector_defaults(c);
    c->name = xstrdup(name);
    c->bindings = xcalloc(MAXL, sizeof *c->bindings);
    c->ranges = xcalloc(MAXL, sizeof *c->ranges);
    for (size_t i = 0; i < MAXL && binds && binds[i]; i++)
        if (ipr_binding_parse(binds[i], &c->bindings[c->nbindings++], err, sizeof err) != 0)
            fail_msg("binding %s: %s", binds[i], err);
    for (size_t i = 0; i < MAXL && ranges && ranges[i]; i++)
        if (ipr_range_parse(ranges[i], &c->ranges[c->nranges++], err, sizeof err) != 0)
            fail_msg("range %s: %s", ranges[i], err);
    c->auth = auth;
    acl_expand_groups(groups, &c->aces, &c->naces);
}

enum { NOBANNER, NOBIND, NORANGE, REQTLS, TIMEOUTS, BANNER };

static const struct {
    const char *name;
    unsigned auth, groups;
    int tweak;
    const char *banner;
    const char *err;   /* NULL: valid */
} rules[] = {
    {"defaults are valid", 29, GROUP_ANONYMOUS, NOBANNER, NULL, NULL},
    {"Tls alone", AUTH_TLS, 0, NOBANNER, NULL, NULL},
    {"None (0) is valid", AUTH_NONE, GROUP_ANONYMOUS, NOBANNER, NULL, NULL},
    {"no binding", AUTH_TLS, 0, NOBIND, NULL,
     "relayBinding: at least one binding (IP:port) is required"},
    {"no range", AUTH_TLS, 0, NORANGE, NULL,
     "relayRemoteIPRange: at least one remote IP range is required"},
    {"BasicAuthRequireTLS without BasicAuth", AUTH_TLS | AUTH_BASIC_REQUIRE_TLS, 0, NOBANNER, NULL,
     "relayAuthMechanism: BasicAuthRequireTLS requires BasicAuth"},
    {"BasicAuthRequireTLS without Tls", AUTH_BASIC | AUTH_BASIC_REQUIRE_TLS, 0, NOBANNER, NULL,
     "relayAuthMechanism: BasicAuthRequireTLS requires Tls"},
    {"BasicAuthRequireTLS with both", AUTH_TLS | AUTH_BASIC | AUTH_BASIC_REQUIRE_TLS, 0, NOBANNER,
     NULL, NULL},
    {"RequireTLS without Tls", AUTH_BASIC, 0, REQTLS, NULL,
     "relayRequireTLS: RequireTLS requires the Tls auth mechanism"},
    {"RequireTLS with Tls", AUTH_TLS, 0, REQTLS, NULL, NULL},
    {"ExternalAuthoritative with ExchangeServers", AUTH_EXTERNAL_AUTHORITATIVE,
     GROUP_EXCHANGE_SERVERS, NOBANNER, NULL, NULL},
    {"ExternalAuthoritative + Tls", AUTH_EXTERNAL_AUTHORITATIVE | AUTH_TLS,
     GROUP_EXCHANGE_SERVERS, NOBANNER, NULL, NULL},
    {"ExternalAuthoritative without the group", AUTH_EXTERNAL_AUTHORITATIVE | AUTH_TLS,
     GROUP_ANONYMOUS, NOBANNER, NULL,
     "relayAuthMechanism: ExternalAuthoritative requires the ExchangeServers permission group "
     "(grant it first)"},
    {"ExternalAuthoritative with no ACEs", AUTH_EXTERNAL_AUTHORITATIVE, 0, NOBANNER, NULL,
     "relayAuthMechanism: ExternalAuthoritative requires the ExchangeServers permission group "
     "(grant it first)"},
    {"ExternalAuthoritative + BasicAuth", AUTH_EXTERNAL_AUTHORITATIVE | AUTH_BASIC,
     GROUP_EXCHANGE_SERVERS, NOBANNER, NULL,
     "relayAuthMechanism: ExternalAuthoritative can only be combined with Tls"},
    {"ExternalAuthoritative + ExchangeServer", AUTH_EXTERNAL_AUTHORITATIVE | AUTH_EXCHANGE_SERVER,
     GROUP_EXCHANGE_SERVERS, NOBANNER, NULL,
     "relayAuthMechanism: ExternalAuthoritative can only be combined with Tls"},
    {"ExternalAuthoritative + Integrated", AUTH_EXTERNAL_AUTHORITATIVE | AUTH_INTEGRATED,
     GROUP_EXCHANGE_SERVERS, NOBANNER, NULL,
     "relayAuthMechanism: ExternalAuthoritative can only be combined with Tls"},
    {"unknown auth bits", AUTH_TLS | 64, 0, NOBANNER, NULL,
     "relayAuthMechanism: unknown mechanism bits 0x40"},
    {"banner 220", AUTH_TLS, 0, BANNER, "220 relay.example.com ready", NULL},
    {"banner bare 220", AUTH_TLS, 0, BANNER, "220", NULL},
    {"banner multi-line", AUTH_TLS, 0, BANNER, "220-first\r\n220 last", NULL},
    {"banner empty is the default", AUTH_TLS, 0, BANNER, "", NULL},
    {"banner 250", AUTH_TLS, 0, BANNER, "250 hello",
     "relayBanner: line 1 is not a 220 reply (write \"220 <text>\")"},
    {"banner without code", AUTH_TLS, 0, BANNER, "Welcome to the relay",
     "relayBanner: line 1 is not a 220 reply (write \"220 <text>\")"},
    {"banner 2200", AUTH_TLS, 0, BANNER, "2200 hi",
     "relayBanner: line 1 is not a 220 reply (write \"220 <text>\")"},
    {"banner second line bad", AUTH_TLS, 0, BANNER, "220-ok\n221 bye",
     "relayBanner: line 2 is not a 220 reply (write \"220 <text>\")"},
    {"inactivity above connection timeout", AUTH_TLS, 0, TIMEOUTS, NULL,
     "relayConnectionInactivityTimeout: 601 exceeds relayConnectionTimeout 600 (it must be less "
     "than or equal)"},
};

static void rules_table(void **state)
{
    (void)state;
    const char *binds[] = {"0.0.0.0:25", NULL}, *ranges[] = {"10.0.0.0/8", NULL};
    for (size_t i = 0; i < N(rules); i++) {
        struct rn_connector c;
        conn_make(&c, "c", binds, ranges, rules[i].auth, rules[i].groups);
        switch (rules[i].tweak) {
        case NOBIND: c.nbindings = 0; break;
        case NORANGE: c.nranges = 0; break;
        case REQTLS: c.require_tls = true; break;
        case TIMEOUTS: c.connection_timeout = 600; c.inactivity_timeout = 601; break;
        case BANNER: c.banner = xstrdup(rules[i].banner); break;
        default: break;
        }
        char err[RN_ERRLEN] = "";
        int rc = validate_connector(&c, err, sizeof err);
        if (rules[i].err ? (rc != -1 || strcmp(err, rules[i].err) != 0) : rc != 0)
            fail_msg("%s: rc %d err '%s' want '%s'", rules[i].name, rc, err,
                     rules[i].err ? rules[i].err : "(valid)");
        connector_clear(&c);
    }
}

static void banner_limits(void **state)
{
    (void)state;
    const char *binds[] = {"0.0.0.0:25", NULL}, *ranges[] = {"10.0.0.0/8", NULL};
    struct rn_connector c;
    conn_make(&c, "c", binds, ranges, AUTH_TLS, 0);
    char err[RN_ERRLEN] = "";
    /* 50 lines pass, 51 fail. */
    size_t cap = 51 * 8 + 1;
    char *b = xcalloc(1, cap);
    for (int i = 0; i < 50; i++)
        strcat(b, i < 49 ? "220-x\r\n" : "220 x");
    c.banner = b;
    assert_int_equal(validate_connector(&c, err, sizeof err), 0);
    strcat(b, "\r\n220 y");
    assert_int_equal(validate_connector(&c, err, sizeof err), -1);
    assert_string_equal(err, "relayBanner: more than 50 lines");
    free(b);
    /* A line of 2000 characters passes, 2001 fails (CR not counted). */
    b = xcalloc(1, 2100);
    memcpy(b, "220 ", 4);
    memset(b + 4, 'a', 1996);
    c.banner = b;
    assert_int_equal(validate_connector(&c, err, sizeof err), 0);
    strcat(b, "\r\n");
    assert_int_equal(validate_connector(&c, err, sizeof err), 0);
    b[2000] = 'a';
    b[2001] = '\0';
    assert_int_equal(validate_connector(&c, err, sizeof err), -1);
    assert_string_equal(err, "relayBanner: line 1 is 2001 characters, more than 2000");
    free(b);
    c.banner = NULL;
    c.connection_timeout = c.inactivity_timeout = 300;   /* equality is allowed (§3.2 rule 8) */
    assert_int_equal(validate_connector(&c, err, sizeof err), 0);
    connector_clear(&c);
}

static const struct {
    const char *name;
    const char *ba[MAXL], *ra[MAXL], *bb[MAXL], *rb[MAXL];
    const char *err;   /* NULL: no conflict */
} conflicts[] = {
    {"identical binding, equal ranges", {"0.0.0.0:25"}, {"192.168.2.55"}, {"0.0.0.0:25"},
     {"192.168.2.55"},
     "relayRemoteIPRange: 192.168.2.55 equals 192.168.2.55 of connector \"B\" on the same "
     "binding 0.0.0.0:25"},
    {"identical binding, equal ranges written differently", {"10.0.0.1:25"}, {"10.0.0.0/24"},
     {"10.0.0.1:25"}, {"10.0.0.0-10.0.0.255"},
     "relayRemoteIPRange: 10.0.0.0/24 equals 10.0.0.0-10.0.0.255 of connector \"B\" on the same "
     "binding 10.0.0.1:25"},
    {"identical binding, partial", {"0.0.0.0:25"}, {"10.0.0.0-10.0.0.200"}, {"0.0.0.0:25"},
     {"10.0.0.100-10.0.1.5"},
     "relayRemoteIPRange: 10.0.0.0-10.0.0.200 partially overlaps 10.0.0.100-10.0.1.5 of "
     "connector \"B\" on the same binding 0.0.0.0:25"},
    {"identical binding, nested", {"0.0.0.0:25"}, {"0.0.0.0-255.255.255.255"}, {"0.0.0.0:25"},
     {"192.168.2.55"}, NULL},
    {"identical binding, disjoint", {"0.0.0.0:25"}, {"10.0.0.0/8"}, {"0.0.0.0:25"},
     {"192.168.0.0/16"}, NULL},
    {"wildcard vs specific, equal is allowed", {"0.0.0.0:25"}, {"10.0.0.0/8"}, {"10.1.1.1:25"},
     {"10.0.0.0/8"}, NULL},
    {"wildcard vs specific, partial", {"0.0.0.0:25"}, {"10.0.0.0-10.0.0.200"}, {"10.1.1.1:25"},
     {"10.0.0.100-10.0.1.5"},
     "relayRemoteIPRange: 10.0.0.0-10.0.0.200 partially overlaps 10.0.0.100-10.0.1.5 of "
     "connector \"B\" (bindings 0.0.0.0:25 and 10.1.1.1:25 overlap); ranges must be equal, "
     "nested or disjoint"},
    {"wildcard vs specific, nested", {"10.1.1.1:25"}, {"10.0.0.5"}, {"0.0.0.0:25"},
     {"10.0.0.0/24"}, NULL},
    {"different specific addresses", {"10.1.1.1:25"}, {"10.0.0.0/8"}, {"10.1.1.2:25"},
     {"10.0.0.0/8"}, NULL},
    {"different ports", {"0.0.0.0:25"}, {"10.0.0.0/8"}, {"0.0.0.0:587"}, {"10.0.0.0/8"}, NULL},
    {"different families", {"0.0.0.0:25"}, {"10.0.0.0/8"}, {"[::]:25"}, {"::/0"}, NULL},
    {"v6 identical, equal", {"[::]:25"}, {"2001:db8::/32"}, {"[::]:25"},
     {"2001:db8::-2001:db8:ffff:ffff:ffff:ffff:ffff:ffff"},
     "relayRemoteIPRange: 2001:db8::/32 equals 2001:db8::-2001:db8:ffff:ffff:ffff:ffff:ffff:ffff "
     "of connector \"B\" on the same binding [::]:25"},
    {"v6 wildcard vs specific, partial", {"[2001:db8::1]:25"}, {"2001:db8::1-2001:db8::9"},
     {"[::]:25"}, {"2001:db8::5-2001:db8::20"},
     "relayRemoteIPRange: 2001:db8::1-2001:db8::9 partially overlaps 2001:db8::5-2001:db8::20 of "
     "connector \"B\" (bindings [2001:db8::1]:25 and [::]:25 overlap); ranges must be equal, "
     "nested or disjoint"},
    {"v6 ranges on a v4 binding are ignored", {"0.0.0.0:25"}, {"10.0.0.0/8", "::/0"},
     {"0.0.0.0:25"}, {"192.168.0.0/16", "::/0"}, NULL},
    {"second binding and second range", {"10.9.9.9:25", "0.0.0.0:2525"},
     {"10.0.0.0/8", "172.16.0.0-172.16.0.9"}, {"0.0.0.0:2525"}, {"172.16.0.5-172.16.0.20"},
     "relayRemoteIPRange: 172.16.0.0-172.16.0.9 partially overlaps 172.16.0.5-172.16.0.20 of "
     "connector \"B\" on the same binding 0.0.0.0:2525"},
};

static void conflicts_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < N(conflicts); i++) {
        struct rn_connector a, b;
        conn_make(&a, "A", conflicts[i].ba, conflicts[i].ra, AUTH_TLS, 0);
        conn_make(&b, "B", conflicts[i].bb, conflicts[i].rb, AUTH_TLS, 0);
        char err[RN_ERRLEN] = "", rev[RN_ERRLEN] = "";
        int rc = validate_conflict(&a, &b, err, sizeof err);
        int rrc = validate_conflict(&b, &a, rev, sizeof rev);
        if (conflicts[i].err ? (rc != -1 || strcmp(err, conflicts[i].err) != 0) : rc != 0)
            fail_msg("%s: rc %d err '%s' want '%s'", conflicts[i].name, rc, err,
                     conflicts[i].err ? conflicts[i].err : "(no conflict)");
        if (rrc != rc)   /* a conflict is symmetric; the reverse message names A */
            fail_msg("%s: reverse rc %d", conflicts[i].name, rrc);
        if (rc && !strstr(rev, "connector \"A\""))
            fail_msg("%s: reverse message does not name A: %s", conflicts[i].name, rev);
        connector_clear(&a);
        connector_clear(&b);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(rules_table),
        cmocka_unit_test(banner_limits),
        cmocka_unit_test(conflicts_table),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
