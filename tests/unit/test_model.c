/* Unit tests for model: auth mechanism names, connector defaults from the attribute table,
 * snapshot reference counting and errors, accepted-domain lookup (scan and index) and
 * connector lookup. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>
#include "directory/connattr.h"
#include "directory/model.h"
#include "directory/base/util.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

static void auth_mech_names(void **state)
{
    (void)state;
    static const struct { const char *name; int bit; } t[] = {
        {"None", AUTH_NONE}, {"Tls", AUTH_TLS}, {"Integrated", AUTH_INTEGRATED},
        {"BasicAuth", AUTH_BASIC}, {"BasicAuthRequireTLS", AUTH_BASIC_REQUIRE_TLS},
        {"ExchangeServer", AUTH_EXCHANGE_SERVER},
        {"ExternalAuthoritative", AUTH_EXTERNAL_AUTHORITATIVE},
        {"tls", AUTH_TLS}, {"EXTERNALAUTHORITATIVE", AUTH_EXTERNAL_AUTHORITATIVE},
        {"Kerberos", -1}, {"", -1}, {"Tls ", -1}, {NULL, -1},
    };
    for (size_t i = 0; i < N(t); i++)
        if (auth_mech_lookup(t[i].name) != t[i].bit)
            fail_msg("%s: %d want %d", t[i].name ? t[i].name : "(null)",
                     auth_mech_lookup(t[i].name), t[i].bit);
    char buf[200];
    static const struct { unsigned m; const char *want; } f[] = {
        {0, "None"},
        {AUTH_TLS, "Tls"},
        {29, "Tls, BasicAuth, BasicAuthRequireTLS, ExchangeServer"},
        {AUTH_TLS | AUTH_EXTERNAL_AUTHORITATIVE, "Tls, ExternalAuthoritative"},
        {63, "Tls, Integrated, BasicAuth, BasicAuthRequireTLS, ExchangeServer, "
             "ExternalAuthoritative"},
    };
    for (size_t i = 0; i < N(f); i++) {
        assert_int_equal(auth_mechs_format(f[i].m, buf, sizeof buf), strlen(f[i].want));
        assert_string_equal(buf, f[i].want);
    }
    assert_int_equal(auth_mechs_format(29, buf, 4), strlen(f[2].want));
    assert_string_equal(buf, "Tls");
}

static void defaults_follow_table(void **state)
{
    (void)state;
    struct rn_connector c;
    memset(&c, 0xa5, sizeof c);          /* the loader hands in uninitialised memory */
    connector_defaults(&c);
    assert_true(c.enabled);
    assert_null(c.dn);
    assert_null(c.name);
    assert_null(c.fqdn);
    assert_null(c.banner);
    assert_null(c.bindings);
    assert_int_equal(c.nbindings, 0);
    assert_int_equal(c.nranges, 0);
    assert_int_equal(c.naces, 0);
    assert_false(c.require_tls);
    assert_false(c.site_scoped);
    assert_int_equal(c.auth, 29);
    assert_int_equal(c.max_message_size, 36700160);
    assert_int_equal(c.max_header_size, 131072);
    assert_int_equal(c.max_recipients, 200);
    assert_int_equal(c.max_hop_count, 60);
    assert_int_equal(c.max_local_hop_count, 12);
    assert_int_equal(c.connection_timeout, 600);
    assert_int_equal(c.inactivity_timeout, 300);
    /* New-ReceiveConnector's limits, never "unlimited" by default (connattr.c) */
    assert_int_equal(c.max_inbound, 5000);
    assert_int_equal(c.max_inbound_per_source, 20);
    assert_int_equal(c.max_inbound_pct_per_source, 2);
    assert_int_equal(c.max_logon_failures, 3);
    assert_int_equal(c.max_protocol_errors, 5);
    assert_true(c.message_rate_limit == RN_UNLIMITED);
    assert_int_equal(c.protocol_logging, 0);
    /* Every scalar field holds exactly its table default. */
    for (size_t i = 0; i < connattr_count; i++) {
        const struct connattr *a = &connattr_table[i];
        const char *p = (const char *)&c + a->offset;
        if (a->type == CA_LIMIT && *(const uint64_t *)(const void *)p != a->def)
            fail_msg("%s: not its default", a->ldap);
        if (a->type == CA_STRING && *(char *const *)(const void *)p != NULL)
            fail_msg("%s: not NULL", a->ldap);
    }
    connector_clear(&c);
}

static void connector_clear_frees_everything(void **state)
{
    (void)state;
    struct rn_connector c;
    connector_defaults(&c);
    c.dn = xstrdup("cn=a,dc=x");
    c.name = xstrdup("a");
    c.fqdn = xstrdup("relay.example.com");
    c.banner = xstrdup("220 hi");
    c.comment = xstrdup("note");
    c.bindings = xcalloc(2, sizeof *c.bindings);
    c.nbindings = 2;
    c.ranges = xcalloc(1, sizeof *c.ranges);
    c.nranges = 1;
    c.aces = xcalloc(1, sizeof *c.aces);
    c.naces = 1;
    c.aces[0].wk = -1;
    c.aces[0].dn = xstrdup("uid=a,dc=x");
    c.aces[0].dn_norm = xstrdup("uid=a,dc=x");
    connector_clear(&c);                  /* ASan reports anything left behind */
    assert_null(c.dn);
    assert_int_equal(c.naces, 0);
    connector_clear(&c);                  /* idempotent */
}

static struct rn_snapshot *domains_snapshot(void)
{
    static const struct { const char *d; enum rn_domain_type t; } doms[] = {
        {"example.com", DOMAIN_AUTHORITATIVE},
        {"*.example.com", DOMAIN_INTERNAL_RELAY},
        {"*.eu.example.com", DOMAIN_EXTERNAL_RELAY},
        {"partner.example.net", DOMAIN_EXTERNAL_RELAY},
        {"x.eu.example.com", DOMAIN_AUTHORITATIVE},
    };
    struct rn_snapshot *s = snapshot_new();
    s->domains = xcalloc(N(doms), sizeof *s->domains);
    for (size_t i = 0; i < N(doms); i++) {
        s->domains[i].dn = xasprintf("cn=%s,dc=x", doms[i].d);
        s->domains[i].domain = xstrdup(doms[i].d);
        s->domains[i].type = doms[i].t;
    }
    s->ndomains = N(doms);
    return s;
}

/* The same table with and without the accepted-domain index. */
static void find_domain_with(bool indexed)
{
    struct rn_snapshot *s = domains_snapshot();
    if (indexed) {
        snapshot_index_domains(s);
        assert_non_null(s->domain_index);
    }
    static const struct { const char *q, *want; } t[] = {
        {"example.com", "example.com"},
        {"EXAMPLE.com", "example.com"},
        {"example.com.", "example.com"},
        {"a.example.com", "*.example.com"},
        {"a.b.example.com", "*.example.com"},
        {"A.B.Example.Com.", "*.example.com"},
        {"fr.eu.example.com", "*.eu.example.com"},         /* longest wildcard wins */
        {"eu.example.com", "*.example.com"},
        {"x.eu.example.com", "x.eu.example.com"},          /* exact beats any wildcard */
        {"partner.example.net", "partner.example.net"},
        {"a.partner.example.net", NULL},
        {"xexample.com", NULL},                            /* not a label boundary */
        {"example.co", NULL},
        {"com", NULL},
        {"", NULL},
        {".", NULL},
        {NULL, NULL},
    };
    for (size_t i = 0; i < N(t); i++) {
        const struct rn_domain *d = snapshot_find_domain(s, t[i].q);
        const char *got = d ? d->domain : NULL;
        if ((got == NULL) != (t[i].want == NULL) || (got && strcmp(got, t[i].want) != 0))
            fail_msg("%s (index %d): got %s want %s", t[i].q ? t[i].q : "(null)", indexed,
                     got ? got : "NULL", t[i].want ? t[i].want : "NULL");
    }
    snapshot_unref(&s);
    assert_null(s);
}

static void find_domain(void **state)
{
    (void)state;
    find_domain_with(false);
    find_domain_with(true);
}

/* The index keeps the scan's choices: the first of two names equal but for case, a query
 * naming a wildcard entry literally, a domain of more than 255 characters (scanned), and
 * rebuilding after the list changed. */
static void domain_index_edges(void **state)
{
    (void)state;
    static const char *doms[] = {"Mixed.Example.org", "mixed.example.org", "*.w.example.org",
                                 "*.W.example.org", "*.", "*"};
    struct rn_snapshot *s = snapshot_new();
    s->domains = xcalloc(N(doms) + 1, sizeof *s->domains);
    for (size_t i = 0; i < N(doms); i++) {
        s->domains[i].dn = xasprintf("cn=%zu,dc=x", i);
        s->domains[i].domain = xstrdup(doms[i]);
    }
    s->ndomains = N(doms);
    snapshot_index_domains(s);
    assert_ptr_equal(snapshot_find_domain(s, "MIXED.example.ORG."), &s->domains[0]);
    assert_ptr_equal(snapshot_find_domain(s, "a.b.W.Example.Org"), &s->domains[2]);
    assert_ptr_equal(snapshot_find_domain(s, "*.w.example.org"), &s->domains[2]);  /* exact */
    assert_null(snapshot_find_domain(s, "w.example.org"));
    assert_null(snapshot_find_domain(s, "anything"));      /* "*" and "*." cover nothing */
    assert_ptr_equal(snapshot_find_domain(s, "*"), &s->domains[5]);
    char longq[400];
    memset(longq, 'a', sizeof longq);
    memcpy(longq + sizeof longq - 17, ".w.example.org", 15);   /* 383 a's, then the suffix */
    longq[sizeof longq - 2] = '\0';
    assert_ptr_equal(snapshot_find_domain(s, longq), &s->domains[2]);
    /* the list changes, the index is rebuilt */
    s->domains[N(doms)].dn = xstrdup("cn=new,dc=x");
    s->domains[N(doms)].domain = xstrdup("*.x.w.example.org");
    s->ndomains++;
    snapshot_index_domains(s);
    assert_ptr_equal(snapshot_find_domain(s, "a.x.w.example.org"), &s->domains[N(doms)]);
    assert_ptr_equal(snapshot_find_domain(s, "a.y.w.example.org"), &s->domains[2]);
    snapshot_unref(&s);
}

/* Random domain lists (exact and wildcard names over a small alphabet of labels, so names
 * collide, nest and repeat) and random queries: the index answers what the scan answers. */
static void domain_index_matches_scan(void **state)
{
    (void)state;
    static const char *labels[] = {"a", "b", "ex", "Ex", "mail", "corp", "com", "org"};
    unsigned seed = 17;
    for (int round = 0; round < 200; round++) {
        size_t nd = (size_t)(rand_r(&seed) % 40);
        struct rn_snapshot *s = snapshot_new();
        s->domains = xcalloc(nd ? nd : 1, sizeof *s->domains);
        for (size_t i = 0; i < nd; i++) {
            char name[128] = "";
            size_t nl = 1 + (size_t)(rand_r(&seed) % 4);
            if (rand_r(&seed) % 3 == 0)
                strcat(name, "*.");
            for (size_t l = 0; l < nl; l++) {
                strcat(name, labels[rand_r(&seed) % N(labels)]);
                if (l + 1 < nl)
                    strcat(name, ".");
            }
            s->domains[i].dn = xasprintf("cn=%zu,dc=x", i);
            s->domains[i].domain = xstrdup(name);
        }
        s->ndomains = nd;
        for (int q = 0; q < 200; q++) {
            char query[160] = "";
            size_t nl = 1 + (size_t)(rand_r(&seed) % 6);
            for (size_t l = 0; l < nl; l++) {
                strcat(query, labels[rand_r(&seed) % N(labels)]);
                if (l + 1 < nl)
                    strcat(query, ".");
            }
            if (rand_r(&seed) % 5 == 0)
                strcat(query, ".");
            const struct rn_domain *scan = snapshot_find_domain(s, query);
            snapshot_index_domains(s);
            const struct rn_domain *idx = snapshot_find_domain(s, query);
            free(s->domain_index);
            s->domain_index = NULL;
            if (scan != idx)
                fail_msg("round %d, %s: scan %s, index %s", round, query,
                         scan ? scan->domain : "NULL", idx ? idx->domain : "NULL");
        }
        snapshot_unref(&s);
    }
}

static void find_connector_and_refs(void **state)
{
    (void)state;
    struct rn_snapshot *s = snapshot_new();
    assert_int_equal(s->refs, 1);
    s->connectors = xcalloc(2, sizeof *s->connectors);
    s->nconnectors = 2;
    connector_defaults(&s->connectors[0]);
    s->connectors[0].name = xstrdup("Default node1");
    connector_defaults(&s->connectors[1]);
    s->connectors[1].name = xstrdup("CRM Application");
    assert_ptr_equal(snapshot_find_connector(s, "CRM Application"), &s->connectors[1]);
    assert_ptr_equal(snapshot_find_connector(s, "crm application"), &s->connectors[1]);
    assert_null(snapshot_find_connector(s, "CRM"));
    assert_null(snapshot_find_connector(s, NULL));

    snapshot_add_error(s, "%s: %s", "cn=bad,dc=x", "relayBinding: missing");
    snapshot_add_error(s, "second %d", 2);
    assert_int_equal(s->nerrors, 2);
    assert_string_equal(s->errors[0], "cn=bad,dc=x: relayBinding: missing");
    assert_string_equal(s->errors[1], "second 2");

    struct rn_snapshot *held = snapshot_ref(s);
    assert_ptr_equal(held, s);
    assert_int_equal(s->refs, 2);
    snapshot_unref(&s);
    assert_null(s);
    assert_int_equal(held->refs, 1);
    assert_string_equal(held->connectors[0].name, "Default node1");   /* still alive */
    snapshot_unref(&held);
    assert_null(held);
    snapshot_unref(&held);                 /* NULL is fine */
}

static void sendconn_and_domain_clear(void **state)
{
    (void)state;
    struct rn_sendconn sc = {0};
    sc.dn = xstrdup("cn=out,dc=x");
    sc.name = xstrdup("out");
    sc.address_spaces = xcalloc(2, sizeof(char *));
    sc.address_spaces[0] = xstrdup("*");
    sc.address_spaces[1] = xstrdup("example.org");
    sc.naddress_spaces = 2;
    sc.smart_hosts = xcalloc(1, sizeof(char *));
    sc.smart_hosts[0] = xstrdup("smarthost:25");
    sc.nsmart_hosts = 1;
    sendconn_clear(&sc);
    assert_null(sc.address_spaces);
    assert_int_equal(sc.nsmart_hosts, 0);
    struct rn_domain d = {xstrdup("cn=d"), xstrdup("example.com"), DOMAIN_AUTHORITATIVE, false,
                          false};
    domain_clear(&d);
    assert_null(d.domain);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(auth_mech_names),
        cmocka_unit_test(defaults_follow_table),
        cmocka_unit_test(connector_clear_frees_everything),
        cmocka_unit_test(find_domain),
        cmocka_unit_test(domain_index_edges),
        cmocka_unit_test(domain_index_matches_scan),
        cmocka_unit_test(find_connector_and_refs),
        cmocka_unit_test(sendconn_and_domain_clear),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
