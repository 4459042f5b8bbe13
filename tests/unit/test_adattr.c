/* Unit tests for adattr: Exchange's attributes (as the AD fixture's org.ldif writes them)
 * into the model, as named table cases, good and bad. A bad case names the start of the
 * message the AD loader puts in the snapshot's errors: the Exchange attribute at fault. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "directory/adattr.h"
#include "directory/connattr.h"
#include "directory/rights.h"
#include "directory/secdesc.h"
#include "directory/base/util.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))
#define MAXA 8
#define MAXV 4

struct av { const char *name; const char *v[MAXV]; };

#define DN "CN=Case,CN=SMTP Receive Connectors,CN=Protocols,CN=EX1,CN=Servers,DC=rn,DC=test"
#define BIND {"msExchSmtpReceiveBindings", {"0.0.0.0:25"}}
#define RANGE {"msExchSmtpReceiveRemoteIPRanges", {"0.0.0.0-255.255.255.255"}}

static void entry_make(struct dir_entry *e, const char *cn, const struct av *attrs)
{
    dir_entry_init(e, DN);
    if (cn)
        dir_entry_add(e, "cn", cn);
    for (size_t i = 0; i < MAXA && attrs[i].name; i++)
        for (size_t k = 0; k < MAXV && attrs[i].v[k]; k++)
            dir_entry_add(e, attrs[i].name, attrs[i].v[k]);
}

static void expect(const char *name, int rc, const char *err, const char *want)
{
    if (want ? (rc != -1 || strncmp(err, want, strlen(want)) != 0) : rc != 0)
        fail_msg("%s: rc %d err '%s' want '%s'", name, rc, err, want ? want : "(valid)");
}

static const struct {
    const char *name;
    struct av a[MAXA];
    const char *want;
} conn_cases[] = {
    {"default connector", {{"msExchSmtpReceiveEnabled", {"TRUE"}},
                           {"msExchSmtpReceiveBindings", {"0.0.0.0:25", "[::]:25"}},
                           {"msExchSmtpReceiveRemoteIPRanges", {"0.0.0.0-255.255.255.255",
                                                               "::-ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"}},
                           {"msExchSMTPReceiveInboundSecurityFlag", {"29"}},
                           {"msExchSmtpReceiveMaxMessageSize", {"36700160"}},
                           {"msExchSmtpReceiveProtocolOptions", {"445"}}}, NULL},
    {"bad binding", {{"msExchSmtpReceiveBindings", {"0.0.0.0:0"}}, RANGE},
     "msExchSmtpReceiveBindings: "},
    {"bad range", {BIND, {"msExchSmtpReceiveRemoteIPRanges", {"10.0.0.0/40"}}},
     "msExchSmtpReceiveRemoteIPRanges: "},
    {"secflag not a number", {BIND, RANGE, {"msExchSMTPReceiveInboundSecurityFlag", {"Tls"}}},
     "msExchSMTPReceiveInboundSecurityFlag: 'Tls' is not an Integer"},
    {"secflag negative", {BIND, RANGE, {"msExchSMTPReceiveInboundSecurityFlag", {"-1"}}},
     "msExchSMTPReceiveInboundSecurityFlag: '-1' is not an Integer"},
    {"secflag unknown bits", {BIND, RANGE, {"msExchSMTPReceiveInboundSecurityFlag", {"64"}}},
     "msExchSMTPReceiveInboundSecurityFlag: 64 has bits"},
    {"secflag two values", {BIND, RANGE, {"msExchSMTPReceiveInboundSecurityFlag", {"1", "4"}}},
     "msExchSMTPReceiveInboundSecurityFlag: 2 values"},
    {"size not a number", {BIND, RANGE, {"msExchSmtpReceiveMaxMessageSize", {"10MB"}}},
     "msExchSmtpReceiveMaxMessageSize: '10MB' is not a number"},
    {"size overflow", {BIND, RANGE,
                       {"msExchSmtpReceiveMaxMessageSize", {"99999999999999999999999"}}},
     "msExchSmtpReceiveMaxMessageSize: "},
    {"recipients zero", {BIND, RANGE, {"msExchSmtpReceiveMaxRecipientsPerMessage", {"0"}}},
     "msExchSmtpReceiveMaxRecipientsPerMessage: 0 is below the minimum 1"},
    {"enabled not boolean", {BIND, RANGE, {"msExchSmtpReceiveEnabled", {"yes"}}},
     "msExchSmtpReceiveEnabled: 'yes' is not TRUE or FALSE"},
    {"banner with CR", {BIND, RANGE, {"msExchSmtpReceiveBanner", {"220 a\r\n250 b"}}},
     "msExchSmtpReceiveBanner: control character"},
    {"loglevel 2", {BIND, RANGE, {"msExchSmtpReceiveProtocolLoggingLevel", {"2"}}},
     "msExchSmtpReceiveProtocolLoggingLevel: 2 is not 0"},
    {"options garbage", {BIND, RANGE, {"msExchSmtpReceiveProtocolOptions", {"0x1"}}},
     "msExchSmtpReceiveProtocolOptions: '0x1' is not an Integer"},
    {"leading zero", {BIND, RANGE, {"msExchSMTPReceiveInboundSecurityFlag", {"01"}}},
     "msExchSMTPReceiveInboundSecurityFlag: '01' is not an Integer"},
};

static void connector_cases(void **state)
{
    for (size_t i = 0; i < N(conn_cases); i++) {
        struct dir_entry e;
        struct rn_connector c;
        char err[RN_ERRLEN] = "";
        entry_make(&e, "Case", conn_cases[i].a);
        int rc = adattr_connector(&e, &c, err, sizeof err);
        expect(conn_cases[i].name, rc, err, conn_cases[i].want);
        connector_clear(&c);
        dir_entry_clear(&e);
    }
}

static void connector_fields(void **state)
{
    static const struct av a[MAXA] = {
        BIND, RANGE, {"msExchSMTPReceiveInboundSecurityFlag", {"33"}},
        {"msExchSmtpReceiveProtocolRestrictions", {"8"}},
        {"msExchSmtpReceiveProtocolLoggingLevel", {"1"}},
        {"msExchSMTPReceiveConnectorFQDN", {"relay.example.com"}},
        {"msExchSmtpReceiveMaxRecipientsPerMessage", {"7"}},
        {"adminDescription", {"seed article"}}};
    struct dir_entry e;
    struct rn_connector c;
    char err[RN_ERRLEN] = "";
    entry_make(&e, "CRM Application", a);
    assert_int_equal(adattr_connector(&e, &c, err, sizeof err), 0);
    assert_string_equal(c.name, "CRM Application");
    assert_string_equal(c.dn, DN);
    assert_int_equal(c.auth, AUTH_TLS | AUTH_EXTERNAL_AUTHORITATIVE);
    assert_true(c.require_tls);
    assert_int_equal(c.protocol_logging, 1);
    assert_string_equal(c.fqdn, "relay.example.com");
    assert_string_equal(c.comment, "seed article");
    assert_int_equal(c.max_recipients, 7);
    assert_int_equal(c.nbindings, 1);
    assert_int_equal(c.nranges, 1);
    assert_int_equal(c.naces, 0);        /* ACEs come from the descriptor, never attributes */
    assert_true(c.enabled);
    connector_clear(&c);
    dir_entry_clear(&e);

    /* Absent attributes: the relay profile's defaults. */
    static const struct av b[MAXA] = {BIND, RANGE};
    entry_make(&e, "Bare", b);
    assert_int_equal(adattr_connector(&e, &c, err, sizeof err), 0);
    struct rn_connector d;
    connector_defaults(&d);
    assert_int_equal(c.max_message_size, d.max_message_size);
    assert_int_equal(c.max_inbound, d.max_inbound);
    assert_int_equal(c.auth, d.auth);
    assert_false(c.require_tls);
    connector_clear(&c);
    connector_clear(&d);
    dir_entry_clear(&e);

    /* No cn, or a cn too long: refused. */
    entry_make(&e, NULL, b);
    assert_int_equal(adattr_connector(&e, &c, err, sizeof err), -1);
    assert_string_equal(err, "cn: missing");
    connector_clear(&c);
    dir_entry_clear(&e);
    char longcn[80];
    memset(longcn, 'x', sizeof longcn - 1);
    longcn[sizeof longcn - 1] = '\0';
    entry_make(&e, longcn, b);
    assert_int_equal(adattr_connector(&e, &c, err, sizeof err), -1);
    connector_clear(&c);
    dir_entry_clear(&e);
}

static const struct {
    const char *name;
    struct av a[MAXA];
    int type;          /* enum rn_domain_type, or -1 with want */
    const char *want;
} domain_cases[] = {
    {"authoritative", {{"msExchAcceptedDomainName", {"example.com"}},
                       {"msExchAcceptedDomainFlags", {"0"}}}, DOMAIN_AUTHORITATIVE, NULL},
    {"flags absent", {{"msExchAcceptedDomainName", {"Example.COM."}}}, DOMAIN_AUTHORITATIVE, NULL},
    {"external", {{"msExchAcceptedDomainName", {"partner.example.net"}},
                  {"msExchAcceptedDomainFlags", {"1"}}}, DOMAIN_EXTERNAL_RELAY, NULL},
    {"internal", {{"msExchAcceptedDomainName", {"internal.example.com"}},
                  {"msExchAcceptedDomainFlags", {"2"}}}, DOMAIN_INTERNAL_RELAY, NULL},
    {"outbound only bit", {{"msExchAcceptedDomainName", {"*.example.org"}},
                           {"msExchAcceptedDomainFlags", {"257"}}}, DOMAIN_EXTERNAL_RELAY, NULL},
    {"type 3", {{"msExchAcceptedDomainName", {"example.com"}},
                {"msExchAcceptedDomainFlags", {"3"}}}, -1, "msExchAcceptedDomainFlags: 3: type 3"},
    {"flags text", {{"msExchAcceptedDomainName", {"example.com"}},
                    {"msExchAcceptedDomainFlags", {"Authoritative"}}}, -1,
     "msExchAcceptedDomainFlags: 'Authoritative' is not an Integer"},
    {"no name", {{"msExchAcceptedDomainFlags", {"0"}}}, -1, "msExchAcceptedDomainName: missing"},
    {"two names", {{"msExchAcceptedDomainName", {"a.example", "b.example"}}}, -1,
     "msExchAcceptedDomainName: several values"},
    {"bad name", {{"msExchAcceptedDomainName", {"under_score.example"}}}, -1,
     "msExchAcceptedDomainName: "},
};

static void domain_table(void **state)
{
    for (size_t i = 0; i < N(domain_cases); i++) {
        struct dir_entry e;
        struct rn_domain d;
        char err[RN_ERRLEN] = "";
        entry_make(&e, "d", domain_cases[i].a);
        int rc = adattr_domain(&e, &d, err, sizeof err);
        expect(domain_cases[i].name, rc, err, domain_cases[i].want);
        if (rc == 0 && (int)d.type != domain_cases[i].type)
            fail_msg("%s: type %d want %d", domain_cases[i].name, d.type, domain_cases[i].type);
        domain_clear(&d);
        dir_entry_clear(&e);
    }
}

static const struct {
    const char *name;
    struct av a[MAXA];
    const char *want;
} send_cases[] = {
    {"seed internet", {{"routingList", {"SMTP:*;1"}}, {"msExchSmtpSendEnabled", {"TRUE"}},
                       {"msExchSmtpSmartHost", {"127.0.0.1"}}, {"msExchSmtpSendPort", {"25"}},
                       {"msExchSmtpOutboundSecurityFlag", {"0"}}}, NULL},
    {"x400 skipped", {{"routingList", {"X400:c=US;a= ;p=Org;1", "SMTP:example.org;5"}}}, NULL},
    {"only x400", {{"routingList", {"X400:c=US;1"}}}, "routingList: no SMTP address space"},
    {"no routing list", {{"msExchSmtpSmartHost", {"127.0.0.1"}}}, "routingList: no SMTP"},
    {"bad cost", {{"routingList", {"SMTP:*;0"}}}, "routingList: 'SMTP:*;0': the cost"},
    {"bad cost text", {{"routingList", {"SMTP:*;x"}}}, "routingList: 'SMTP:*;x': the cost"},
    {"bad space", {{"routingList", {"SMTP:bad_name;1"}}}, "routingList: "},
    {"garbage", {{"routingList", {"nonsense"}}}, "routingList: 'nonsense' is not"},
    {"bad port", {{"routingList", {"SMTP:*;1"}}, {"msExchSmtpSendPort", {"70000"}}},
     "msExchSmtpSendPort: '70000' is not an Integer"},
    {"bad smart host", {{"routingList", {"SMTP:*;1"}}, {"msExchSmtpSmartHost", {"a b"}}},
     "msExchSmtpSmartHost: "},
    {"bad enabled", {{"routingList", {"SMTP:*;1"}}, {"msExchSmtpSendEnabled", {"1"}}},
     "msExchSmtpSendEnabled: not exactly one TRUE or FALSE"},
};

static void sendconn_table(void **state)
{
    for (size_t i = 0; i < N(send_cases); i++) {
        struct dir_entry e;
        struct rn_sendconn sc;
        char err[RN_ERRLEN] = "";
        entry_make(&e, "Internet", send_cases[i].a);
        int rc = adattr_sendconn(&e, &sc, err, sizeof err);
        expect(send_cases[i].name, rc, err, send_cases[i].want);
        sendconn_clear(&sc);
        dir_entry_clear(&e);
    }
}

static void sendconn_fields(void **state)
{
    static const struct av a[MAXA] = {
        {"routingList", {"SMTP:*;3", "smtp:example.org;2"}},
        {"msExchSmtpSmartHost", {"[10.0.0.1]; relay.example.net , 10.0.0.2:2526"}},
        {"msExchSmtpSendPort", {"2525"}}, {"msExchSmtpOutboundSecurityFlag", {"32"}},
        {"msExchSmtpSendEnabled", {"FALSE"}}};
    struct dir_entry e;
    struct rn_sendconn sc;
    char err[RN_ERRLEN] = "";
    entry_make(&e, "Internet", a);
    assert_int_equal(adattr_sendconn(&e, &sc, err, sizeof err), 0);
    assert_int_equal(sc.naddress_spaces, 2);
    assert_string_equal(sc.address_spaces[0], "*");
    assert_string_equal(sc.address_spaces[1], "example.org");
    assert_int_equal(sc.cost, 2);
    assert_int_equal(sc.nsmart_hosts, 3);
    assert_string_equal(sc.smart_hosts[0], "[10.0.0.1]:2525");
    assert_string_equal(sc.smart_hosts[1], "relay.example.net:2525");
    assert_string_equal(sc.smart_hosts[2], "10.0.0.2:2526");
    assert_true(sc.require_tls);
    assert_false(sc.enabled);
    sendconn_clear(&sc);
    dir_entry_clear(&e);
}

static void attrs_list(void **state)
{
    const char *const *n = adattr_connector_attrs();
    size_t k = 0;
    while (n[k])
        k++;
    assert_int_equal(k, adattr_count + 1);
    assert_string_equal(n[0], "cn");
    uint64_t v;
    assert_int_equal(adattr_int("2147483647", 2147483647u, &v), 0);
    assert_int_equal(adattr_int("2147483648", 2147483647u, &v), -1);
    assert_int_equal(adattr_int("", 10, &v), -1);
    assert_int_equal(adattr_int("0", 10, &v), 0);
}

/* ---- the descriptor step: a hand-made self-relative descriptor (MS-DTYP 2.4.6) ---- */

/* Deliberately not Exchange's rightsGuid: the profile maps whatever GUID the directory's
 * controlAccessRight carries (here through the rights map), never a compiled-in one. */
#define ANY_RCPT_GUID "a54d0226-ea8f-4b44-bc2e-00b9d1b2b4b0"

/* SD header (20) + ACL header (8) + one ACCESS_ALLOWED_OBJECT ACE (40): CONTROL_ACCESS on
 * guid for S-1-5-7 (ANONYMOUS LOGON). Returns the length. */
static size_t sd_make(unsigned char *b, const char *guid)
{
    memset(b, 0, 68);
    b[0] = 1;                                   /* revision */
    b[2] = 0x04; b[3] = 0x80;                   /* DACL_PRESENT | SELF_RELATIVE */
    b[16] = 20;                                 /* DACL offset */
    unsigned char *acl = b + 20;
    acl[0] = 4; acl[2] = 48; acl[4] = 1;        /* rev 4, size 48, one ACE */
    unsigned char *a = acl + 8;
    a[0] = 0x05; a[1] = 0x02; a[2] = 40;        /* allowed object, CONTAINER_INHERIT */
    a[5] = 0x01;                                /* mask 0x100 CONTROL_ACCESS */
    a[8] = 0x01;                                /* ObjectType present */
    struct sd_guid g;
    assert_int_equal(sd_guid_parse(guid, &g), 0);
    memcpy(a + 12, g.b, 16);
    static const unsigned char anon[12] = {1, 1, 0, 0, 0, 0, 0, 5, 7, 0, 0, 0};
    memcpy(a + 28, anon, 12);
    return 68;
}

static void connector_make(struct rn_connector *c, unsigned auth, bool ranges)
{
    connector_defaults(c);
    c->dn = xstrdup(DN);
    c->name = xstrdup("Case");
    char err[RN_ERRLEN];
    const char *const bind[] = {"0.0.0.0:25"}, *const range[] = {"127.0.2.57"};
    assert_int_equal(connattr_apply(c, connattr_lookup("relayBinding"), bind, 1, err,
                                    sizeof err), 0);
    if (ranges)
        assert_int_equal(connattr_apply(c, connattr_lookup("relayRemoteIPRange"), range, 1, err,
                                        sizeof err), 0);
    c->auth = auth;
}

static void descriptor_step(void **state)
{
    struct sd_rightmap rm;
    assert_int_equal(sd_guid_parse(ANY_RCPT_GUID, &rm.guid), 0);
    rm.bit = R_ACCEPT_ANY_RECIPIENT;
    struct adsd_ctx x = {&rm, 1, NULL, 0, NULL};
    unsigned char sd[68];
    size_t len = sd_make(sd, ANY_RCPT_GUID);
    struct rn_connector c;
    char err[RN_ERRLEN] = "";

    /* A good descriptor: its one object ACE, on the right the directory's map names. */
    connector_make(&c, AUTH_TLS, true);
    assert_int_equal(adattr_connector_acl(&c, sd, len, &x, err, sizeof err), 1);
    assert_int_equal(c.naces, 1);
    assert_false(c.aces[0].deny);
    assert_int_equal(c.aces[0].wk, WK_ANONYMOUS);
    assert_int_equal(c.aces[0].rights, R_ACCEPT_ANY_RECIPIENT);
    connector_clear(&c);

    /* A right the directory does not define (not in the map): nothing granted. */
    struct adsd_ctx none = {NULL, 0, NULL, 0, NULL};
    connector_make(&c, AUTH_TLS, true);
    int r = adattr_connector_acl(&c, sd, len, &none, err, sizeof err);
    assert_true(r == 1 || r == 0);
    for (size_t i = 0; i < c.naces; i++)
        assert_int_equal(c.aces[i].rights & R_ACCEPT_ANY_RECIPIENT, 0);
    connector_clear(&c);

    /* Unusable descriptors: kept, with no ACE, and named (fail closed). */
    unsigned char bad[68];
    static const struct { const char *name; size_t len; int off, val; } cases[] = {
        {"truncated", 30, -1, 0}, {"ACE cut", 60, -1, 0}, {"empty", 0, -1, 0},
        {"DACL offset past the end", 68, 16, 200}, {"huge ACE count", 68, 24, 0xff},
        {"ACE size past the ACL", 68, 30, 0xf0},
    };
    for (size_t i = 0; i < N(cases); i++) {
        memcpy(bad, sd, sizeof bad);
        if (cases[i].off >= 0)
            bad[cases[i].off] = (unsigned char)cases[i].val;
        if (cases[i].off == 24)
            bad[25] = 0xff;
        connector_make(&c, AUTH_TLS | AUTH_EXTERNAL_AUTHORITATIVE, true);
        err[0] = '\0';
        r = adattr_connector_acl(&c, bad, cases[i].len, &x, err, sizeof err);
        if (r != 0 || c.naces != 0 || strncmp(err, "nTSecurityDescriptor: ", 22) != 0)
            fail_msg("%s: r %d naces %zu err '%s'", cases[i].name, r, c.naces, err);
        connector_clear(&c);
    }
    connector_make(&c, AUTH_TLS, true);
    assert_int_equal(adattr_connector_acl(&c, NULL, 0, &x, err, sizeof err), 0);
    assert_int_equal(c.naces, 0);
    connector_clear(&c);

    /* Unusable and unable to select its clients: refused. */
    connector_make(&c, AUTH_TLS, false);
    assert_int_equal(adattr_connector_acl(&c, sd, 30, &x, err, sizeof err), -1);
    assert_non_null(strstr(err, "msExchSmtpReceiveRemoteIPRanges: missing"));
    connector_clear(&c);

    /* A good descriptor on a connector validation refuses (ExternalAuthoritative without the
     * ExchangeServers group's ACEs). */
    connector_make(&c, AUTH_TLS | AUTH_EXTERNAL_AUTHORITATIVE, true);
    assert_int_equal(adattr_connector_acl(&c, sd, len, &x, err, sizeof err), -1);
    connector_clear(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(connector_cases),
        cmocka_unit_test(connector_fields),
        cmocka_unit_test(domain_table),
        cmocka_unit_test(sendconn_table),
        cmocka_unit_test(sendconn_fields),
        cmocka_unit_test(attrs_list),
        cmocka_unit_test(descriptor_step),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
