/* Unit tests for entry: the one parser from a directory entry to the model, on in-memory
 * entries, with the refusals the integration tests otherwise need slapd for (unknown
 * attribute, bad binding, bad domain names, bad smart hosts, the TLS/auth rules of validate,
 * site-scoped connectors), as named table cases, good and bad. A bad case names the start of
 * the message the loader puts in the snapshot's errors (and relayctl prints). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "directory/acl.h"
#include "directory/entry.h"
#include "directory/base/util.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))
#define MAXA 8
#define MAXV 4

/* One attribute of a case: a name and up to MAXV values (NULL-terminated). */
struct av { const char *name; const char *v[MAXV]; };

#define BIND {"relayBinding", {"0.0.0.0:25"}}
#define RANGE {"relayRemoteIPRange", {"10.0.0.0/8"}}
#define DN "cn=Case,cn=node1,cn=Default-Site,cn=Sites,ou=Relay,dc=example,dc=com"

static void entry_make(struct dir_entry *e, const struct av *attrs)
{
    dir_entry_init(e, DN);
    dir_entry_add(e, "cn", "Case");
    for (size_t i = 0; i < MAXA && attrs[i].name; i++)
        for (size_t k = 0; k < MAXV && attrs[i].v[k]; k++)
            dir_entry_add(e, attrs[i].name, attrs[i].v[k]);
}

/* rc and err against want (NULL: valid; else the message must start with want). */
static void expect(const char *name, int rc, const char *err, const char *want)
{
    if (want ? (rc != -1 || strncmp(err, want, strlen(want)) != 0) : rc != 0)
        fail_msg("%s: rc %d err '%s' want '%s'", name, rc, err, want ? want : "(valid)");
}

/* ---- receive connectors ---- */

static const struct {
    const char *name;
    struct av a[MAXA];
    const char *want;
} connectors[] = {
    {"minimal: a binding and a range", {BIND, RANGE}, NULL},
    {"other schemas' attributes are not ours to refuse",
     {{"objectClass", {"relayReceiveConnector", "top"}}, {"description", {"scanners"}},
      {"entryUUID", {"4f0c"}}, BIND, RANGE}, NULL},
    {"attribute names in any case", {{"RELAYBINDING", {"0.0.0.0:25"}}, RANGE}, NULL},
    {"unknown relay attribute",
     {BIND, RANGE, {"relayFrobnicate", {"1"}}},
     "relayFrobnicate: not a receive connector attribute"},
    {"a send connector attribute on a receive connector",
     {BIND, {"relaySmartHost", {"smart.example.net"}}, RANGE},
     "relaySmartHost: not a receive connector attribute"},
    {"binding without a port", {{"relayBinding", {"10.0.0.1"}}, RANGE}, "relayBinding: "},
    {"binding on a multicast address", {{"relayBinding", {"224.0.0.1:25"}}, RANGE},
     "relayBinding: "},
    {"IPv6 binding without brackets", {{"relayBinding", {"::1:25"}}, RANGE}, "relayBinding: "},
    {"no binding", {RANGE},
     "relayBinding: at least one binding (IP:port) is required"},
    {"no range", {BIND},
     "relayRemoteIPRange: at least one remote IP range is required"},
    {"CIDR beyond the family", {BIND, {"relayRemoteIPRange", {"10.0.0.0/33"}}},
     "relayRemoteIPRange: "},
    {"limit below its minimum", {BIND, RANGE, {"relayMaxRecipientsPerMessage", {"0"}}},
     "relayMaxRecipientsPerMessage: 0 is below the minimum 1"},
    {"two values for a single-valued attribute",
     {BIND, RANGE, {"relayEnabled", {"TRUE", "FALSE"}}},
     "relayEnabled: 2 values for a single-valued attribute"},
    {"Tls and BasicAuthRequireTLS with BasicAuth",
     {BIND, RANGE, {"relayAuthMechanism", {"Tls", "BasicAuth", "BasicAuthRequireTLS"}}}, NULL},
    {"BasicAuthRequireTLS without BasicAuth",
     {BIND, RANGE, {"relayAuthMechanism", {"Tls", "BasicAuthRequireTLS"}}},
     "relayAuthMechanism: BasicAuthRequireTLS requires BasicAuth"},
    {"BasicAuthRequireTLS without Tls",
     {BIND, RANGE, {"relayAuthMechanism", {"BasicAuth", "BasicAuthRequireTLS"}}},
     "relayAuthMechanism: BasicAuthRequireTLS requires Tls"},
    {"RequireTLS without Tls",
     {BIND, RANGE, {"relayAuthMechanism", {"BasicAuth"}}, {"relayRequireTLS", {"TRUE"}}},
     "relayRequireTLS: RequireTLS requires the Tls auth mechanism"},
    {"RequireTLS with Tls",
     {BIND, RANGE, {"relayAuthMechanism", {"Tls"}}, {"relayRequireTLS", {"TRUE"}}}, NULL},
    {"DomainSecureEnabled without Tls",
     {BIND, RANGE, {"relayAuthMechanism", {"BasicAuth"}}, {"relayDomainSecureEnabled", {"TRUE"}}},
     "relayDomainSecureEnabled: DomainSecureEnabled requires the Tls auth mechanism"},
    {"DomainSecureEnabled with ExternalAuthoritative",
     {BIND, RANGE, {"relayAuthMechanism", {"Tls", "ExternalAuthoritative"}},
      {"relayDomainSecureEnabled", {"TRUE"}}},
     "relayDomainSecureEnabled: DomainSecureEnabled cannot be combined with ExternalAuthoritative"},
    {"DomainSecureEnabled with Tls",
     {BIND, RANGE, {"relayAuthMechanism", {"Tls"}}, {"relayDomainSecureEnabled", {"TRUE"}}}, NULL},
    {"DomainSecureEnabled not a boolean",
     {BIND, RANGE, {"relayDomainSecureEnabled", {"yes"}}}, "relayDomainSecureEnabled: "},
    {"None with another mechanism", {BIND, RANGE, {"relayAuthMechanism", {"None", "Tls"}}},
     "relayAuthMechanism: None cannot be combined with other mechanisms"},
    {"ExternalAuthoritative without the ExchangeServers group",
     {BIND, RANGE, {"relayAuthMechanism", {"Tls", "ExternalAuthoritative"}}},
     "relayAuthMechanism: ExternalAuthoritative requires the ExchangeServers permission group"},
    {"malformed ACE", {BIND, RANGE, {"relayAce", {"allow; Everyone; ms-Exch-SMTP-Frobnicate"}}},
     "relayAce: "},
    {"banner that is not a 220 reply", {BIND, RANGE, {"relayBanner", {"250 hello"}}},
     "relayBanner: line 1 is not a 220 reply"},
    {"inactivity timeout above the connection timeout",
     {BIND, RANGE, {"relayConnectionTimeout", {"600"}},
      {"relayConnectionInactivityTimeout", {"601"}}},
     "relayConnectionInactivityTimeout: 601 exceeds relayConnectionTimeout 600"},
    {"the first failure in entry order is the one reported",
     {{"relayMaxHopCount", {"many"}}, {"relayFrobnicate", {"1"}}, BIND, RANGE},
     "relayMaxHopCount: 'many' is not a number"},
};

static void connector_cases(void **state)
{
    (void)state;
    for (size_t i = 0; i < N(connectors); i++) {
        struct dir_entry e;
        struct rn_connector c;
        char err[RN_ERRLEN] = "";
        entry_make(&e, connectors[i].a);
        int rc = connector_from_entry(&e, false, &c, err, sizeof err);
        expect(connectors[i].name, rc, err, connectors[i].want);
        connector_clear(&c);
        dir_entry_clear(&e);
    }
}

/* The parts of a connector the cases above do not look at: the DN, the name, the scope,
 * defaults for absent attributes, values that parsed. */
static void connector_fields(void **state)
{
    (void)state;
    for (int site = 0; site < 2; site++) {
        struct av a[MAXA] = {BIND, {"relayRemoteIPRange", {"10.0.0.0/8", "192.168.1.5"}},
                             {"relayMaxMessageSize", {"unlimited"}},
                             {"relayAuthMechanism", {"Tls", "BasicAuth"}}};
        struct dir_entry e;
        struct rn_connector c;
        char err[RN_ERRLEN] = "";
        entry_make(&e, a);
        assert_int_equal(connector_from_entry(&e, site, &c, err, sizeof err), 0);
        assert_string_equal(c.dn, DN);
        assert_string_equal(c.name, "Case");
        assert_int_equal(c.site_scoped, site);
        assert_int_equal(c.nbindings, 1);
        assert_int_equal(c.nranges, 2);
        assert_int_equal(c.auth, AUTH_TLS | AUTH_BASIC);
        assert_true(c.max_message_size == RN_UNLIMITED);
        assert_true(c.max_recipients == 200);           /* the schema default */
        connector_clear(&c);
        dir_entry_clear(&e);
    }
}

/* relayctl audit inspects a refused connector: every attribute that parses is applied even
 * after a failure, so a bad ACE ahead of the ranges still leaves the ranges visible. */
static void connector_refused_still_filled(void **state)
{
    (void)state;
    struct av a[MAXA] = {{"relayAce", {"allow; Everyone; ms-Exch-SMTP-Frobnicate"}}, BIND,
                         {"relayRemoteIPRange", {"0.0.0.0/0"}},
                         {"relayAuthMechanism", {"Tls", "ExternalAuthoritative"}}};
    struct dir_entry e;
    struct rn_connector c;
    char err[RN_ERRLEN] = "";
    entry_make(&e, a);
    assert_int_equal(connector_from_entry(&e, false, &c, err, sizeof err), -1);
    assert_true(strncmp(err, "relayAce: ", 10) == 0);
    assert_int_equal(c.nranges, 1);
    assert_int_equal(c.nbindings, 1);
    assert_true(c.auth & AUTH_EXTERNAL_AUTHORITATIVE);
    connector_clear(&c);
    dir_entry_clear(&e);
}

/* ExternalAuthoritative is valid once the ACEs grant the ExchangeServers group (the ACE
 * values are the ones relayctl writes for the group). */
static void connector_external_authoritative(void **state)
{
    (void)state;
    struct av a[MAXA] = {BIND, RANGE, {"relayAuthMechanism", {"Tls", "ExternalAuthoritative"}}};
    struct dir_entry e;
    entry_make(&e, a);
    struct ace *aces = NULL;
    size_t n = 0;
    acl_expand_groups(GROUP_EXCHANGE_SERVERS, &aces, &n);
    assert_true(n > 0);
    for (size_t i = 0; i < n; i++) {
        char buf[ACE_MAXLEN];
        ace_format(&aces[i], buf, sizeof buf);
        dir_entry_add(&e, "relayAce", buf);
        ace_clear(&aces[i]);
    }
    free(aces);
    struct rn_connector c;
    char err[RN_ERRLEN] = "";
    int rc = connector_from_entry(&e, true, &c, err, sizeof err);
    expect("ExternalAuthoritative with ExchangeServers", rc, err, NULL);
    assert_true(c.site_scoped);
    connector_clear(&c);
    dir_entry_clear(&e);
}

/* ---- accepted domains ---- */

static const struct {
    const char *name;
    struct av a[MAXA];
    const char *stored;     /* the domain as loaded, when valid */
    enum rn_domain_type type;
    const char *want;
} domains[] = {
    {"authoritative", {{"relayDomainName", {"example.com"}},
                       {"relayDomainType", {"Authoritative"}}}, "example.com",
     DOMAIN_AUTHORITATIVE, NULL},
    {"lowercased, trailing dot dropped, type in any case",
     {{"relayDomainName", {"Contoso.COM."}}, {"relayDomainType", {"internalrelay"}}},
     "contoso.com", DOMAIN_INTERNAL_RELAY, NULL},
    {"subdomains only", {{"relayDomainName", {"*.example.net"}},
                         {"relayDomainType", {"ExternalRelay"}}}, "*.example.net",
     DOMAIN_EXTERNAL_RELAY, NULL},
    {"underscore", {{"relayDomainName", {"bad_domain.example"}},
                    {"relayDomainType", {"Authoritative"}}}, NULL, 0,
     "relayDomainName: 'bad_domain.example' is not a domain name"},
    {"empty label", {{"relayDomainName", {"bad_domain.."}},
                     {"relayDomainType", {"Authoritative"}}}, NULL, 0,
     "relayDomainName: 'bad_domain..' is not a domain name"},
    {"label ending in a hyphen", {{"relayDomainName", {"example-.com"}},
                                  {"relayDomainType", {"Authoritative"}}}, NULL, 0,
     "relayDomainName: 'example-.com' is not a domain name"},
    {"last label ending in a hyphen", {{"relayDomainName", {"example.com-"}},
                                       {"relayDomainType", {"Authoritative"}}}, NULL, 0,
     "relayDomainName: 'example.com-' is not a domain name"},
    {"a bare star is for address spaces", {{"relayDomainName", {"*"}},
                                           {"relayDomainType", {"Authoritative"}}}, NULL, 0,
     "relayDomainName: '*' is not a domain name"},
    {"no name", {{"relayDomainType", {"Authoritative"}}}, NULL, 0, "relayDomainName: missing"},
    {"two names", {{"relayDomainName", {"a.example", "b.example"}},
                   {"relayDomainType", {"Authoritative"}}}, NULL, 0,
     "relayDomainName: several values for a single-valued attribute"},
    {"no type", {{"relayDomainName", {"example.com"}}}, NULL, 0, "relayDomainType: missing"},
    {"unknown type", {{"relayDomainName", {"example.com"}}, {"relayDomainType", {"Weird"}}},
     NULL, 0, "relayDomainType: 'Weird' is not Authoritative, InternalRelay or ExternalRelay"},
    {"a send connector attribute", {{"relayDomainName", {"example.com"}},
                                    {"relayDomainType", {"Authoritative"}},
                                    {"relayCost", {"1"}}}, NULL, 0,
     "relayCost: not an accepted domain attribute"},
};

static void domain_cases(void **state)
{
    (void)state;
    for (size_t i = 0; i < N(domains); i++) {
        struct dir_entry e;
        struct rn_domain d;
        char err[RN_ERRLEN] = "";
        entry_make(&e, domains[i].a);
        int rc = domain_from_entry(&e, &d, err, sizeof err);
        expect(domains[i].name, rc, err, domains[i].want);
        if (!domains[i].want &&
            (strcmp(d.domain, domains[i].stored) != 0 || d.type != domains[i].type ||
             strcmp(d.dn, DN) != 0))
            fail_msg("%s: loaded as '%s' type %d", domains[i].name, d.domain, (int)d.type);
        domain_clear(&d);
        dir_entry_clear(&e);
    }
}

/* relayDefaultDomain (Exchange's Default accepted domain): TRUE/FALSE, single, never on a
 * wildcard. */
static void domain_default_cases(void **state)
{
    (void)state;
    static const struct {
        const char *name;
        struct av a[MAXA];
        bool is_default;
        const char *want;
    } t[] = {
        {"absent: not the default", {{"relayDomainName", {"example.com"}},
                                     {"relayDomainType", {"Authoritative"}}}, false, NULL},
        {"TRUE", {{"relayDomainName", {"example.com"}}, {"relayDomainType", {"Authoritative"}},
                  {"relayDefaultDomain", {"TRUE"}}}, true, NULL},
        {"FALSE", {{"relayDomainName", {"example.com"}}, {"relayDomainType", {"Authoritative"}},
                   {"relayDefaultDomain", {"FALSE"}}}, false, NULL},
        {"not a boolean", {{"relayDomainName", {"example.com"}},
                           {"relayDomainType", {"Authoritative"}},
                           {"relayDefaultDomain", {"yes"}}}, false,
         "relayDefaultDomain: 'yes' is not TRUE or FALSE"},
        {"two values", {{"relayDomainName", {"example.com"}},
                        {"relayDomainType", {"Authoritative"}},
                        {"relayDefaultDomain", {"TRUE", "FALSE"}}}, false,
         "relayDefaultDomain: several values for a single-valued attribute"},
        {"a wildcard cannot be the default", {{"relayDomainName", {"*.example.com"}},
                                              {"relayDomainType", {"Authoritative"}},
                                              {"relayDefaultDomain", {"TRUE"}}}, false,
         "relayDefaultDomain: *.example.com is a wildcard and cannot be the default accepted "
         "domain"},
    };
    for (size_t i = 0; i < N(t); i++) {
        struct dir_entry e;
        struct rn_domain d;
        char err[RN_ERRLEN] = "";
        entry_make(&e, t[i].a);
        int rc = domain_from_entry(&e, &d, err, sizeof err);
        expect(t[i].name, rc, err, t[i].want);
        if (!t[i].want && d.is_default != t[i].is_default)
            fail_msg("%s: is_default %d", t[i].name, (int)d.is_default);
        domain_clear(&d);
        dir_entry_clear(&e);
    }
}

/* relayAddressBookEnabled (Exchange's AddressBookEnabled): absent = on, TRUE/FALSE, single. */
static void domain_address_book_cases(void **state)
{
    (void)state;
#define AUTH_DOM {"relayDomainName", {"example.com"}}, {"relayDomainType", {"Authoritative"}}
    static const struct {
        const char *name;
        struct av a[MAXA];
        bool off;
        const char *want;
    } t[] = {
        {"absent: lookup on", {AUTH_DOM}, false, NULL},
        {"TRUE", {AUTH_DOM, {"relayAddressBookEnabled", {"TRUE"}}}, false, NULL},
        {"FALSE", {AUTH_DOM, {"relayAddressBookEnabled", {"FALSE"}}}, true, NULL},
        {"FALSE on InternalRelay", {{"relayDomainName", {"example.com"}},
                                    {"relayDomainType", {"InternalRelay"}},
                                    {"relayAddressBookEnabled", {"FALSE"}}}, true, NULL},
        {"lower case is no boolean", {AUTH_DOM, {"relayAddressBookEnabled", {"false"}}}, false,
         "relayAddressBookEnabled: 'false' is not TRUE or FALSE"},
        {"two values", {AUTH_DOM, {"relayAddressBookEnabled", {"TRUE", "FALSE"}}}, false,
         "relayAddressBookEnabled: several values for a single-valued attribute"},
    };
#undef AUTH_DOM
    for (size_t i = 0; i < N(t); i++) {
        struct dir_entry e;
        struct rn_domain d;
        char err[RN_ERRLEN] = "";
        entry_make(&e, t[i].a);
        int rc = domain_from_entry(&e, &d, err, sizeof err);
        expect(t[i].name, rc, err, t[i].want);
        if (!t[i].want && d.address_book_off != t[i].off)
            fail_msg("%s: address_book_off %d", t[i].name, (int)d.address_book_off);
        domain_clear(&d);
        dir_entry_clear(&e);
    }
}

/* ---- send connectors ---- */

#define SPACE {"relayAddressSpace", {"*"}}

static const struct {
    const char *name;
    struct av a[MAXA];
    const char *want;
} sendconns[] = {
    {"every domain by MX", {SPACE}, NULL},
    {"domains, subdomains, smart hosts of each form",
     {{"relayAddressSpace", {"Partner.Example.NET", "*.partner.example.net"}},
      {"relaySmartHost", {"relay.partner.example.net:2525", "[2001:db8::1]:587", "192.0.2.7",
                          "[192.0.2.8]"}}}, NULL},
    {"no address space", {{"relayCost", {"1"}}},
     "relayAddressSpace: missing (the connector would route nothing)"},
    {"address space with an underscore", {{"relayAddressSpace", {"bad_domain.example"}}},
     "relayAddressSpace: 'bad_domain.example' is not a domain name"},
    {"address space with an empty label", {{"relayAddressSpace", {"a..example"}}},
     "relayAddressSpace: 'a..example' is not a domain name"},
    {"smart host port out of range", {SPACE, {"relaySmartHost", {"host:99999"}}},
     "relaySmartHost: 'host:99999' has a bad port"},
    {"smart host port with a sign", {SPACE, {"relaySmartHost", {"host:+25"}}},
     "relaySmartHost: 'host:+25' has a bad port"},
    {"smart host port zero", {SPACE, {"relaySmartHost", {"host:0"}}},
     "relaySmartHost: 'host:0' has a bad port"},
    {"smart host without a host", {SPACE, {"relaySmartHost", {":25"}}},
     "relaySmartHost: ':25' has no host"},
    {"smart host with an underscore", {SPACE, {"relaySmartHost", {"bad_host.example"}}},
     "relaySmartHost: 'bad_host.example' is not host[:port]"},
    {"smart host name in brackets", {SPACE, {"relaySmartHost", {"[relay.example.net]"}}},
     "relaySmartHost: '[relay.example.net]' is not host[:port]"},
    {"smart host empty brackets", {SPACE, {"relaySmartHost", {"[]:25"}}},
     "relaySmartHost: '[]:25' is not host[:port]"},
    {"smart host wildcard", {SPACE, {"relaySmartHost", {"*.example.net"}}},
     "relaySmartHost: '*.example.net' is not host[:port]"},
    {"cost 0", {SPACE, {"relayCost", {"0"}}}, "relayCost: '0' is not a number in 1..100"},
    {"cost 101", {SPACE, {"relayCost", {"101"}}}, "relayCost: '101' is not a number in 1..100"},
    {"negative cost", {SPACE, {"relayCost", {"-5"}}}, "relayCost: '-5' is not a number in 1..100"},
    {"two costs", {SPACE, {"relayCost", {"1", "2"}}},
     "relayCost: several values for a single-valued attribute"},
    {"enabled not a boolean", {SPACE, {"relayEnabled", {"yes"}}},
     "relayEnabled: 'yes' is not TRUE or FALSE"},
    {"RequireTLS not a boolean", {SPACE, {"relayRequireTLS", {"true"}}},
     "relayRequireTLS: 'true' is not TRUE or FALSE"},
    {"an accepted domain attribute", {SPACE, {"relayDomainName", {"example.com"}}},
     "relayDomainName: not a send connector attribute"},
};

static void sendconn_cases(void **state)
{
    (void)state;
    for (size_t i = 0; i < N(sendconns); i++) {
        struct dir_entry e;
        struct rn_sendconn sc;
        char err[RN_ERRLEN] = "";
        entry_make(&e, sendconns[i].a);
        int rc = sendconn_from_entry(&e, &sc, err, sizeof err);
        expect(sendconns[i].name, rc, err, sendconns[i].want);
        sendconn_clear(&sc);
        dir_entry_clear(&e);
    }
}

static void sendconn_fields(void **state)
{
    (void)state;
    struct dir_entry e;
    struct rn_sendconn sc;
    char err[RN_ERRLEN] = "";
    struct av defaults[MAXA] = {SPACE};
    entry_make(&e, defaults);
    assert_int_equal(sendconn_from_entry(&e, &sc, err, sizeof err), 0);
    assert_true(sc.enabled && !sc.require_tls && sc.cost == 1 && sc.nsmart_hosts == 0);
    assert_string_equal(sc.name, "Case");
    assert_string_equal(sc.dn, DN);
    sendconn_clear(&sc);
    dir_entry_clear(&e);

    struct av set[MAXA] = {{"relayAddressSpace", {"Partner.Example.NET.", "*.Example.ORG"}},
                           {"relaySmartHost", {"Relay.Partner.example.net:2525"}},
                           {"relayCost", {"7"}}, {"relayEnabled", {"FALSE"}},
                           {"relayRequireTLS", {"TRUE"}}};
    entry_make(&e, set);
    assert_int_equal(sendconn_from_entry(&e, &sc, err, sizeof err), 0);
    assert_int_equal(sc.naddress_spaces, 2);
    assert_string_equal(sc.address_spaces[0], "partner.example.net");
    assert_string_equal(sc.address_spaces[1], "*.example.org");
    assert_int_equal(sc.nsmart_hosts, 1);
    assert_string_equal(sc.smart_hosts[0], "Relay.Partner.example.net:2525");   /* as written */
    assert_true(sc.cost == 7 && !sc.enabled && sc.require_tls);
    sendconn_clear(&sc);
    dir_entry_clear(&e);
}

/* relayCertificateSha256: the forms accepted, and a node with one bad value contributes
 * nothing (a half-read node never authenticates). */
static void nodecert_cases(void **state)
{
    static const char hex[] =
        "00112233445566778899aabbccddeeff00112233445566778899AABBCCDDEEFF";
    static const char colons[] = "00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:"
                                 "00:11:22:33:44:55:66:77:88:99:aa:bb:cc:dd:ee:ff";
    static const struct { const char *name, *value; int rc; } cases[] = {
        {"64 hex digits, mixed case", hex, 0},
        {"openssl -fingerprint colon form", colons, 0},
        {"63 digits", "00112233445566778899aabbccddeeff00112233445566778899aabbccddeef", -1},
        {"65 digits", "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff0",
         -1},
        {"a non-hex digit", "g0112233445566778899aabbccddeeff00112233445566778899aabbccddeeff",
         -1},
        {"colon form with a dash", "00-11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:"
                                   "00:11:22:33:44:55:66:77:88:99:aa:bb:cc:dd:ee:ff", -1},
        {"empty", "", -1},
    };
    unsigned char want[32];
    for (int i = 0; i < 32; i++)
        want[i] = (unsigned char)((i % 16) * 0x11);
    for (size_t i = 0; i < N(cases); i++) {
        unsigned char out[32];
        int rc = cert_sha256_parse(cases[i].value, out);
        if (rc != cases[i].rc)
            fail_msg("case '%s': rc %d, want %d", cases[i].name, rc, cases[i].rc);
        if (rc == 0 && memcmp(out, want, 32) != 0)
            fail_msg("case '%s': wrong bytes", cases[i].name);
    }
    char back[65];
    cert_sha256_format(want, back);
    assert_string_equal(back, "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff");

    struct dir_entry e;
    struct rn_node_cert *v = NULL;
    size_t n = 0;
    char err[RN_ERRLEN];
    struct av two[MAXA] = {{"relayCertificateSha256", {hex, colons}}};
    entry_make(&e, two);
    assert_int_equal(nodecert_from_entry(&e, &v, &n, err, sizeof err), 0);
    assert_int_equal(n, 2);
    assert_string_equal(v[0].name, "Case");
    assert_string_equal(v[1].dn, DN);
    assert_memory_equal(v[1].sha256, want, 32);
    dir_entry_clear(&e);
    struct av bad[MAXA] = {{"relayCertificateSha256", {hex, "not-a-fingerprint"}}};
    entry_make(&e, bad);
    assert_int_equal(nodecert_from_entry(&e, &v, &n, err, sizeof err), -1);
    assert_int_equal(n, 2);                       /* nothing of the bad node was added */
    assert_non_null(strstr(err, "relayCertificateSha256"));
    dir_entry_clear(&e);
    for (size_t i = 0; i < n; i++) {
        free(v[i].dn);
        free(v[i].name);
    }
    free(v);
}

/* relayDomainSecureDomain: stored lowercase without the trailing dot; a value that is not a
 * domain (or a wildcard) stops the entry with the values before it kept. */
static void partner_domain_cases(void **state)
{
    struct dir_entry e;
    char **v = NULL;
    size_t n = 0;
    char err[RN_ERRLEN];
    struct av good[MAXA] = {{"relayDomainSecureDomain", {"Partner.Example.", "b.example"}}};
    entry_make(&e, good);
    assert_int_equal(partner_domains_from_entry(&e, &v, &n, err, sizeof err), 0);
    assert_int_equal(n, 2);
    assert_string_equal(v[0], "partner.example");
    assert_string_equal(v[1], "b.example");
    dir_entry_clear(&e);
    struct av bad[MAXA] = {{"relayDomainSecureDomain", {"c.example", "*.wild.example", "d.ex"}}};
    entry_make(&e, bad);
    assert_int_equal(partner_domains_from_entry(&e, &v, &n, err, sizeof err), -1);
    assert_int_equal(n, 3);
    assert_non_null(strstr(err, "relayDomainSecureDomain"));
    dir_entry_clear(&e);
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(connector_cases),
        cmocka_unit_test(connector_fields),
        cmocka_unit_test(connector_refused_still_filled),
        cmocka_unit_test(connector_external_authoritative),
        cmocka_unit_test(domain_cases),
        cmocka_unit_test(domain_default_cases),
        cmocka_unit_test(domain_address_book_cases),
        cmocka_unit_test(sendconn_cases),
        cmocka_unit_test(sendconn_fields),
        cmocka_unit_test(nodecert_cases),
        cmocka_unit_test(partner_domain_cases),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
