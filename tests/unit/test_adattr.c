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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(connector_cases),
        cmocka_unit_test(connector_fields),
        cmocka_unit_test(domain_table),
        cmocka_unit_test(sendconn_table),
        cmocka_unit_test(sendconn_fields),
        cmocka_unit_test(attrs_list),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
