/* Unit tests for connattr: the attribute table's own consistency, lookup, and
 * connattr_apply for every value type with the exact "<attr>: <reason>" errors. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>
#include "directory/connattr.h"
#include "directory/rights.h"
#include "directory/base/util.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))
#define MAXV 4

static void table_is_consistent(void **state)
{
    (void)state;
    assert_true(connattr_count >= 20);
    for (size_t i = 0; i < connattr_count; i++) {
        const struct connattr *a = &connattr_table[i];
        assert_ptr_equal(connattr_lookup(a->ldap), a);
        assert_true(a->offset < sizeof(struct rn_connector));
        assert_non_null(a->doc);
        if (a->type == CA_LIMIT) {
            assert_true(a->min <= a->max);
            if (a->def == RN_UNLIMITED)
                assert_true(a->unlimited_ok);
            else if (a->def < a->min || a->def > a->max)
                fail_msg("%s: default %llu outside [%llu,%llu]", a->ldap,
                         (unsigned long long)a->def, (unsigned long long)a->min,
                         (unsigned long long)a->max);
        }
        for (size_t j = 0; j < i; j++)
            assert_false(rn_strieq(connattr_table[j].ldap, a->ldap));
    }
    assert_ptr_equal(connattr_lookup("RELAYMAXMESSAGESIZE"), connattr_lookup("relayMaxMessageSize"));
    assert_null(connattr_lookup("relayNoSuchThing"));
    assert_null(connattr_lookup(""));
}

struct apply_case {
    const char *name;
    const char *attr;
    const char *values[MAXV];
    size_t n;
    const char *err;        /* NULL: must succeed */
};

static const struct apply_case bad_cases[] = {
    {"limit below minimum", "relayMaxRecipientsPerMessage", {"0"}, 1,
     "relayMaxRecipientsPerMessage: 0 is below the minimum 1"},
    {"limit above maximum", "relayMaxRecipientsPerMessage", {"512001"}, 1,
     "relayMaxRecipientsPerMessage: 512001 is above the maximum 512000"},
    {"unlimited refused", "relayMaxRecipientsPerMessage", {"unlimited"}, 1,
     "relayMaxRecipientsPerMessage: 'unlimited' is not allowed"},
    {"tarpit above 10 minutes", "relayTarpitInterval", {"601"}, 1,
     "relayTarpitInterval: 601 is above the maximum 600"},
    {"tarpit unlimited refused", "relayTarpitInterval", {"unlimited"}, 1,
     "relayTarpitInterval: 'unlimited' is not allowed"},
    {"sign", "relayMaxHopCount", {"+5"}, 1, "relayMaxHopCount: '+5' is not a number"},
    {"negative", "relayMaxHopCount", {"-1"}, 1, "relayMaxHopCount: '-1' is not a number"},
    {"leading space", "relayMaxHopCount", {" 5"}, 1, "relayMaxHopCount: ' 5' is not a number"},
    {"trailing garbage", "relayMaxHopCount", {"5k"}, 1, "relayMaxHopCount: '5k' is not a number"},
    {"empty limit", "relayMaxHopCount", {""}, 1, "relayMaxHopCount: empty value"},
    {"uint64 overflow", "relayMaxMessageSize", {"18446744073709551616"}, 1,
     "relayMaxMessageSize: '18446744073709551616' is too large"},
    {"uint64 max is merely above max", "relayMaxMessageSize", {"18446744073709551615"}, 1,
     "relayMaxMessageSize: 18446744073709551615 is above the maximum 2147483647"},
    {"bool lowercase", "relayEnabled", {"true"}, 1, "relayEnabled: 'true' is not TRUE or FALSE"},
    {"bool digit", "relayRequireTLS", {"1"}, 1, "relayRequireTLS: '1' is not TRUE or FALSE"},
    {"several values single-valued", "relayEnabled", {"TRUE", "FALSE"}, 2,
     "relayEnabled: 2 values for a single-valued attribute"},
    {"loglevel", "relayProtocolLoggingLevel", {"Debug"}, 1,
     "relayProtocolLoggingLevel: 'Debug' is not None or Verbose"},
    {"banner CRLF", "relayBanner", {"220 hi\r\n250 injected"}, 1,
     "relayBanner: control character 0x0d at offset 6"},
    {"fqdn tab", "relayFqdn", {"relay\t.example"}, 1, "relayFqdn: control character 0x09 at offset 5"},
    {"empty string", "description", {""}, 1, "description: empty value"},
    {"auth unknown", "relayAuthMechanism", {"Tls", "Kerberos"}, 2,
     "relayAuthMechanism: unknown mechanism 'Kerberos'"},
    {"auth duplicate", "relayAuthMechanism", {"Tls", "Tls"}, 2,
     "relayAuthMechanism: duplicate mechanism 'Tls'"},
    {"auth None combined", "relayAuthMechanism", {"None", "Tls"}, 2,
     "relayAuthMechanism: None cannot be combined with other mechanisms"},
    {"ace single bad", "relayAce", {"allow; Everyone; ms-Exch-Nope"}, 1,
     "relayAce: unknown right 'ms-Exch-Nope'"},
    {"ace second bad", "relayAce", {"allow; Everyone; Send-As", "allow; S-1-5-99x; Send-As"}, 2,
     "relayAce: value 2: malformed SID 'S-1-5-99x'"},
};

static void apply_refuses_bad_values(void **state)
{
    (void)state;
    for (size_t i = 0; i < N(bad_cases); i++) {
        struct rn_connector c;
        memset(&c, 0, sizeof c);
        char err[RN_ERRLEN] = "";
        const struct connattr *a = connattr_lookup(bad_cases[i].attr);
        assert_non_null(a);
        if (connattr_apply(&c, a, bad_cases[i].values, bad_cases[i].n, err, sizeof err) != -1)
            fail_msg("case '%s': accepted", bad_cases[i].name);
        if (strcmp(err, bad_cases[i].err) != 0)
            fail_msg("case '%s': error '%s'", bad_cases[i].name, err);
        connector_clear(&c);
    }
}

static void apply_overlong_strings(void **state)
{
    (void)state;
    struct rn_connector c;
    memset(&c, 0, sizeof c);
    char err[RN_ERRLEN];
    char v[2002];
    memset(v, 'a', sizeof v - 1);
    v[sizeof v - 1] = '\0';
    const char *vals[] = {v};
    assert_int_equal(connattr_apply(&c, connattr_lookup("relayBanner"), vals, 1, err, sizeof err), -1);
    assert_string_equal(err, "relayBanner: value is 2001 octets, longer than the maximum 2000");
    v[2000] = '\0';
    assert_int_equal(connattr_apply(&c, connattr_lookup("relayBanner"), vals, 1, err, sizeof err), 0);
    assert_int_equal(strlen(c.banner), 2000);
    v[256] = '\0';
    assert_int_equal(connattr_apply(&c, connattr_lookup("relayFqdn"), vals, 1, err, sizeof err), -1);
    assert_string_equal(err, "relayFqdn: value is 256 octets, longer than the maximum 255");
    connector_clear(&c);
}

static void apply_scalars(void **state)
{
    (void)state;
    struct rn_connector c;
    memset(&c, 0, sizeof c);
    char err[RN_ERRLEN] = "";
#define APPLY(attr, ...) do { \
        const char *v_[] = {__VA_ARGS__}; \
        if (connattr_apply(&c, connattr_lookup(attr), v_, N(v_), err, sizeof err) != 0) \
            fail_msg("%s: %s", attr, err); \
    } while (0)
    APPLY("relayEnabled", "TRUE");
    assert_true(c.enabled);
    APPLY("relayEnabled", "FALSE");
    assert_false(c.enabled);
    APPLY("relayRequireTLS", "TRUE");
    assert_true(c.require_tls);
    APPLY("relayMaxRecipientsPerMessage", "00200");
    assert_int_equal(c.max_recipients, 200);
    APPLY("relayMaxRecipientsPerMessage", "512000");
    assert_int_equal(c.max_recipients, 512000);
    APPLY("relayMaxMessageSize", "UNLIMITED");
    assert_true(c.max_message_size == RN_UNLIMITED);
    APPLY("relayMaxMessageSize", "2147483647");
    assert_int_equal(c.max_message_size, 2147483647);
    APPLY("relayMaxLocalHopCount", "0");
    assert_int_equal(c.max_local_hop_count, 0);
    APPLY("relayMaxInboundConnectionPerSource", "unlimited");
    assert_true(c.max_inbound_per_source == RN_UNLIMITED);
    APPLY("relayTarpitInterval", "0");
    assert_int_equal(c.tarpit_interval, 0);
    APPLY("relayTarpitInterval", "600");
    assert_int_equal(c.tarpit_interval, 600);
    APPLY("relayProtocolLoggingLevel", "Verbose");
    assert_int_equal(c.protocol_logging, 1);
    APPLY("relayProtocolLoggingLevel", "none");
    assert_int_equal(c.protocol_logging, 0);
    APPLY("relayFqdn", "relay.example.com");
    assert_string_equal(c.fqdn, "relay.example.com");
    APPLY("relayFqdn", "relay2.example.com");        /* replaced, old freed (ASan leaks) */
    assert_string_equal(c.fqdn, "relay2.example.com");
    APPLY("relayBanner", "220 relay ready \xc3\xa9");
    assert_string_equal(c.banner, "220 relay ready \xc3\xa9");
    APPLY("description", "app servers");
    assert_string_equal(c.comment, "app servers");
    APPLY("relayAuthMechanism", "Tls", "BasicAuth", "ExternalAuthoritative");
    assert_int_equal(c.auth, AUTH_TLS | AUTH_BASIC | AUTH_EXTERNAL_AUTHORITATIVE);
    APPLY("relayAuthMechanism", "None");
    assert_int_equal(c.auth, AUTH_NONE);
#undef APPLY
    /* a refused value leaves the field as it was */
    const char *bad[] = {"0"};
    assert_int_equal(connattr_apply(&c, connattr_lookup("relayMaxRecipientsPerMessage"), bad, 1,
                                    err, sizeof err), -1);
    assert_int_equal(c.max_recipients, 512000);
    connector_clear(&c);
}

static void apply_no_values_restores_defaults(void **state)
{
    (void)state;
    struct rn_connector c;
    memset(&c, 0, sizeof c);
    char err[RN_ERRLEN];
    c.fqdn = xstrdup("x");
    c.max_recipients = 7;
    c.auth = 0;
    for (size_t i = 0; i < connattr_count; i++)
        assert_int_equal(connattr_apply(&c, &connattr_table[i], NULL, 0, err, sizeof err), 0);
    assert_null(c.fqdn);
    assert_int_equal(c.max_recipients, 200);
    assert_int_equal(c.max_message_size, 36700160);
    assert_int_equal(c.max_inbound, 5000);          /* New-ReceiveConnector, not unlimited */
    assert_int_equal(c.tarpit_interval, 5);
    assert_true(c.enabled);
    assert_int_equal(c.auth, 29);   /* Tls|BasicAuth|BasicAuthRequireTLS|ExchangeServer */
    assert_int_equal(c.nbindings, 0);
    assert_int_equal(c.naces, 0);
    connector_clear(&c);
}

static void apply_lists(void **state)
{
    (void)state;
    struct rn_connector c;
    memset(&c, 0, sizeof c);
    char err[RN_ERRLEN] = "";
    const char *binds[] = {"0.0.0.0:25", "[::]:587"};
    assert_int_equal(connattr_apply(&c, connattr_lookup("relayBinding"), binds, 2, err, sizeof err), 0);
    assert_int_equal(c.nbindings, 2);
    assert_int_equal(c.bindings[0].port, 25);
    assert_true(c.bindings[0].v4);
    assert_int_equal(c.bindings[1].port, 587);
    assert_false(c.bindings[1].v4);
    const char *badb[] = {"10.0.0.1:25", "10.0.0.1:0"};
    assert_int_equal(connattr_apply(&c, connattr_lookup("relayBinding"), badb, 2, err, sizeof err), -1);
    assert_true(strncmp(err, "relayBinding: '10.0.0.1:0': ", 28) == 0);
    assert_int_equal(c.nbindings, 2);                  /* unchanged */
    assert_int_equal(c.bindings[1].port, 587);

    const char *ranges[] = {"192.168.2.55", "192.168.2.56", "10.0.0.0/8", "2001:db8::/32"};
    assert_int_equal(connattr_apply(&c, connattr_lookup("relayRemoteIPRange"), ranges, 4, err,
                                    sizeof err), 0);
    assert_int_equal(c.nranges, 4);
    assert_true(c.ranges[2].v4);
    assert_false(c.ranges[3].v4);
    const char *badr[] = {"10.0.0.0/33"};
    assert_int_equal(connattr_apply(&c, connattr_lookup("relayRemoteIPRange"), badr, 1, err,
                                    sizeof err), -1);
    assert_true(strncmp(err, "relayRemoteIPRange: '10.0.0.0/33': ", 35) == 0);
    assert_int_equal(c.nranges, 4);

    const char *aces[] = {"allow; ANONYMOUS LOGON; ms-Exch-SMTP-Submit",
                          "deny; uid=app,dc=x; ms-Exch-SMTP-Accept-Any-Recipient"};
    assert_int_equal(connattr_apply(&c, connattr_lookup("relayAce"), aces, 2, err, sizeof err), 0);
    assert_int_equal(c.naces, 2);
    assert_int_equal(c.aces[0].wk, WK_ANONYMOUS);
    assert_string_equal(c.aces[1].dn_norm, "uid=app,dc=x");
    assert_int_equal(connattr_apply(&c, connattr_lookup("relayAce"), aces, 1, err, sizeof err), 0);
    assert_int_equal(c.naces, 1);                      /* replaced; the old DN ACE freed */
    assert_int_equal(connattr_apply(&c, connattr_lookup("relayAce"), NULL, 0, err, sizeof err), 0);
    assert_int_equal(c.naces, 0);
    connector_clear(&c);
}

/* relayTlsCertificateName becomes tls_cert_dir/NAME.pem: only names that stay in that
 * directory and are not hidden files are accepted; a refused value leaves the field unset. */
static void apply_tls_certificate_name(void **state)
{
    (void)state;
#define NOT_ALLOWED " is not A-Z, a-z, 0-9, '.', '_' or '-'"
    static const char c64[] = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    static const char c65[] = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    static const struct { const char *name, *value, *err; } t[] = {
        {"plain", "crm", NULL},
        {"every allowed character", "CRM-app_2024.v2", NULL},
        {"host-like", "mail.example.com", NULL},
        {"trailing dot", "crm.", NULL},
        {"64 characters", c64, NULL},
        {"parent directory", "../x", "relayTlsCertificateName: '../x' starts with '.'"},
        {"hidden file", ".hidden", "relayTlsCertificateName: '.hidden' starts with '.'"},
        {"absolute path", "/etc", "relayTlsCertificateName: character 0x2f at offset 0" NOT_ALLOWED},
        {"slash inside", "a/b", "relayTlsCertificateName: character 0x2f at offset 1" NOT_ALLOWED},
        {"backslash", "a\\b", "relayTlsCertificateName: character 0x5c at offset 1" NOT_ALLOWED},
        {"space", "crm app", "relayTlsCertificateName: character 0x20 at offset 3" NOT_ALLOWED},
        {"non-ASCII", "cr\xc3\xa9", "relayTlsCertificateName: character 0xc3 at offset 2"
                                     NOT_ALLOWED},
        {"control character", "crm\n", "relayTlsCertificateName: control character 0x0a at "
                                        "offset 3"},
        {"65 characters", c65, "relayTlsCertificateName: value is 65 octets, longer than the "
                               "maximum 64"},
        {"empty", "", "relayTlsCertificateName: empty value"},
    };
#undef NOT_ALLOWED
    const struct connattr *a = connattr_lookup("relayTlsCertificateName");
    assert_non_null(a);
    assert_false(a->multi);
    assert_string_equal(a->exchange, "TlsCertificateName");
    for (size_t i = 0; i < N(t); i++) {
        struct rn_connector c;
        memset(&c, 0, sizeof c);
        char err[RN_ERRLEN] = "";
        const char *v[] = {t[i].value};
        int rc = connattr_apply(&c, a, v, 1, err, sizeof err);
        if (!t[i].err && (rc != 0 || !c.tls_cert_name || strcmp(c.tls_cert_name, t[i].value)))
            fail_msg("case '%s': refused: %s", t[i].name, err);
        if (t[i].err && (rc != -1 || strcmp(err, t[i].err) != 0 || c.tls_cert_name))
            fail_msg("case '%s': rc %d error '%s'", t[i].name, rc, err);
        connector_clear(&c);
    }
    /* Replaced by a good value, kept on a bad one, cleared when absent. */
    struct rn_connector c;
    memset(&c, 0, sizeof c);
    char err[RN_ERRLEN];
    const char *good[] = {"crm"}, *other[] = {"billing"}, *bad[] = {"../x"};
    assert_int_equal(connattr_apply(&c, a, good, 1, err, sizeof err), 0);
    assert_int_equal(connattr_apply(&c, a, other, 1, err, sizeof err), 0);
    assert_string_equal(c.tls_cert_name, "billing");
    assert_int_equal(connattr_apply(&c, a, bad, 1, err, sizeof err), -1);
    assert_string_equal(c.tls_cert_name, "billing");
    assert_int_equal(connattr_apply(&c, a, NULL, 0, err, sizeof err), 0);
    assert_null(c.tls_cert_name);
    connector_clear(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(table_is_consistent),
        cmocka_unit_test(apply_refuses_bad_values),
        cmocka_unit_test(apply_overlong_strings),
        cmocka_unit_test(apply_scalars),
        cmocka_unit_test(apply_no_values_restores_defaults),
        cmocka_unit_test(apply_lists),
        cmocka_unit_test(apply_tls_certificate_name),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
