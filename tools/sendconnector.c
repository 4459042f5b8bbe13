/* sendconnector: `relayctl sendconnector new|set|list|remove`, New-/Set-/Get-/Remove-
 * SendConnector. Send connectors live under cn=Send Connectors,<base>: address spaces (domain
 * patterns, "*" for all), smart hosts (host[:port]; none = DNS MX), cost (lower wins),
 * enabled, RequireTLS. Values are checked here before they are written. */
#include "tools/relayctl.h"
#include "tools/admin.h"
#include "tools/output.h"
#include "directory/dnsname.h"
#include "directory/entry.h"
#include "directory/ldap/ldapdir.h"
#include "directory/base/util.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { OPT_SPACES = 3300, OPT_HOSTS, OPT_COST, OPT_ENABLED, OPT_TLS, OPT_COMMENT };

static const char help_text[] =
    "usage: relayctl sendconnector new NAME --address-spaces A[,B...] [options]\n"
    "       relayctl sendconnector set NAME [options]\n"
    "       relayctl sendconnector list [--json]\n"
    "       relayctl sendconnector remove NAME\n\n"
    "Send connectors (New-SendConnector).\n"
    "  --address-spaces A,B    domains delivered through it: example.net, *.example.net, * (all)\n"
    "  --smart-hosts H,H       host[:port] or [IPv6]:port relays; '' = DNS MX\n"
    "  --cost N                1..100, the lowest cost wins among matching address spaces\n"
    "  --enabled[=BOOL]        default true\n"
    "  --require-tls[=BOOL]    refuse to deliver without STARTTLS\n"
    "  --comment TEXT          description\n\n";

struct sc_flags {
    char **spaces; size_t nspaces; bool spaces_set;
    char **hosts; size_t nhosts; bool hosts_set;
    const char *cost, *enabled, *tls, *comment;
};

/* Flag values are checked by the rules the loader applies (dnsname.h), with the flag named. */
static int check_space(struct admin *a, const char *s)
{
    char norm[DNSNAME_BUFLEN];
    if (domain_name_check(s, DNSNAME_WILDCARD | DNSNAME_STAR, norm, sizeof norm, NULL, 0) != 0)
        return admin_fail(a, 2, "--address-spaces: '%s' is not a domain pattern", s);
    return 0;
}

static int check_host(struct admin *a, const char *s)
{
    char err[RN_ERRLEN];
    if (smarthost_check(s, err, sizeof err) != 0)
        return admin_fail(a, 2, "--smart-hosts: %s", err);
    return 0;
}

static int parse(struct admin *a, struct sc_flags *f, int argc, char **argv, int npos,
                 const char **name)
{
    static const struct option opts[] = {
        {"address-spaces", required_argument, 0, OPT_SPACES},
        {"smart-hosts", required_argument, 0, OPT_HOSTS},
        {"cost", required_argument, 0, OPT_COST},
        {"enabled", optional_argument, 0, OPT_ENABLED},
        {"require-tls", optional_argument, 0, OPT_TLS},
        {"comment", required_argument, 0, OPT_COMMENT},
        ADMIN_LONGOPTS, {0, 0, 0, 0}};
    optind = 0;
    int c;
    while ((c = admin_getopt(a, argc, argv, opts, help_text)) != -1) {
        switch (c) {
        case ADMIN_GETOPT_HELP: return -1;
        case OPT_SPACES: admin_split(optarg, &f->spaces, &f->nspaces); f->spaces_set = true; break;
        case OPT_HOSTS: admin_split(optarg, &f->hosts, &f->nhosts); f->hosts_set = true; break;
        case OPT_COST: f->cost = optarg; break;
        case OPT_COMMENT: f->comment = optarg; break;
        case OPT_ENABLED:
        case OPT_TLS: {
            const char *b = admin_bool(optarg ? optarg : "true");
            if (!b)
                return admin_fail(a, 2, "'%s' is not true or false", optarg);
            *(c == OPT_ENABLED ? &f->enabled : &f->tls) = b;
            break;
        }
        default: return 2;
        }
    }
    if (argc - optind != npos)
        return admin_fail(a, 2, npos ? "give exactly one NAME (see --help)" : "no NAME expected");
    if (npos)
        *name = argv[optind];
    for (size_t i = 0; i < f->nspaces; i++)
        if (check_space(a, f->spaces[i]))
            return 2;
    for (size_t i = 0; i < f->nhosts; i++)
        if (check_host(a, f->hosts[i]))
            return 2;
    if (f->cost) {
        char *end;
        long n = strtol(f->cost, &end, 10);
        if (!*f->cost || *end || n < 1 || n > 100)
            return admin_fail(a, 2, "--cost '%s': a number from 1 to 100", f->cost);
    }
    return 0;
}

static void apply(const struct sc_flags *f, struct dir_entry *e)
{
    if (f->spaces_set)
        dir_entry_set(e, "relayAddressSpace", (const char *const *)f->spaces, f->nspaces);
    if (f->hosts_set)
        dir_entry_set(e, "relaySmartHost", (const char *const *)f->hosts, f->nhosts);
    if (f->cost)
        dir_entry_set1(e, "relayCost", f->cost);
    if (f->enabled)
        dir_entry_set1(e, "relayEnabled", f->enabled);
    if (f->tls)
        dir_entry_set1(e, "relayRequireTLS", f->tls);
    if (f->comment)
        dir_entry_set1(e, "description", *f->comment ? f->comment : NULL);
}

static char *container(const struct admin *a)
{
    return xasprintf("cn=Send Connectors,%s", a->dc.boot.base_dn);
}

/* The entry about to be written, through the loader's parser: 0, or 1 (refused) after saying
 * why, so relayctl never writes a send connector the nodes would leave out. */
static int check_entry(struct admin *a, const struct dir_entry *e)
{
    struct rn_sendconn sc;
    char err[RN_ERRLEN];
    int rc = 0;
    if (sendconn_from_entry(e, &sc, err, sizeof err) != 0)
        rc = admin_fail(a, 1, "%s: %s", e->dn, err);
    sendconn_clear(&sc);
    return rc;
}

/* The send connector by cn: 0 found, 1 not found, 2 error (messages printed). */
static int find(struct admin *a, const char *name, struct dir_entries *es)
{
    char esc[600];
    ldap_filter_escape(name, strlen(name), esc, sizeof esc);
    char *filter = xasprintf("(&(objectClass=relaySendConnector)(cn=%s))", esc);
    int rc = admin_search_in(a, "Send Connectors", filter, es);
    free(filter);
    if (rc)
        return rc;
    if (es->n == 0) {
        dir_entries_clear(es);
        return 1;
    }
    return 0;
}

static int sc_new(struct admin *a, const char *name, const struct sc_flags *f)
{
    if (!f->nspaces)
        return admin_fail(a, 2, "--address-spaces is required (e.g. --address-spaces '*')");
    int rc = admin_open(a);
    if (rc)
        return rc;
    struct dir_entries es;
    if ((rc = find(a, name, &es)) != 1) {
        if (rc == 0) {
            dir_entries_clear(&es);
            return admin_fail(a, 1, "send connector '%s' already exists", name);
        }
        return rc;
    }
    char *base = container(a), *rdn = admin_rdn_escape(name);
    char *dn = xasprintf("cn=%s,%s", rdn, base);
    struct dir_entry e;
    dir_entry_init(&e, dn);
    dir_entry_add(&e, "objectClass", "relaySendConnector");
    dir_entry_add(&e, "cn", name);
    dir_entry_add(&e, "relayEnabled", "TRUE");
    dir_entry_add(&e, "relayCost", "1");
    apply(f, &e);
    if ((rc = check_entry(a, &e)) == 0)
        rc = admin_add(a, &e, NULL);
    dir_entry_clear(&e);
    free(dn);
    free(rdn);
    free(base);
    return rc;
}

static int sc_set_or_remove(struct admin *a, const char *name, const struct sc_flags *f,
                            bool remove)
{
    int rc = admin_open(a);
    if (rc)
        return rc;
    struct dir_entries es;
    if ((rc = find(a, name, &es)) != 0)
        return rc == 1 ? admin_fail(a, 1, "send connector '%s' not found", name) : rc;
    if (remove) {
        rc = admin_delete(a, es.v[0].dn);
    } else {
        struct dir_entry e;
        dir_entry_copy(&e, &es.v[0]);
        apply(f, &e);
        if (!dir_entry_get(&e, "relayAddressSpace"))
            rc = admin_fail(a, 2, "a send connector needs at least one address space");
        else if ((rc = check_entry(a, &e)) == 0)
            rc = admin_modify(a, &es.v[0], &e, NULL, "changed");
        dir_entry_clear(&e);
    }
    dir_entries_clear(&es);
    return rc;
}

static int sc_list(struct admin *a)
{
    struct dir_entries es;
    int rc = admin_list_container(a, "Send Connectors", "relaySendConnector", &es);
    if (rc)
        return rc;
    static const char *const hdr[] = {"Name", "Enabled", "AddressSpaces", "SmartHosts", "Cost",
                                      "RequireTLS"};
    struct listing l;
    listing_begin(&l, a->json, 6, hdr);
    struct json *j = l.j;
    for (size_t i = 0; i < es.n; i++) {
        const struct dir_entry *e = &es.v[i];
        char *spaces = admin_join_values(e, "relayAddressSpace"), *hosts = admin_join_values(e, "relaySmartHost");
        const char *en = dir_entry_first(e, "relayEnabled");
        const char *tls = dir_entry_first(e, "relayRequireTLS");
        const char *cost = dir_entry_first(e, "relayCost");
        const char *row[6] = {dir_entry_first(e, "cn"), en ? en : "TRUE", spaces,
                              *hosts ? hosts : "(DNS MX)", cost ? cost : "1",
                              tls ? tls : "FALSE"};
        if (j) {
            json_begin_object(j, NULL);
            json_string(j, "Name", row[0]);
            json_string(j, "Identity", e->dn);
            json_bool(j, "Enabled", rn_strieq(row[1], "TRUE"));
            json_list(j, "AddressSpaces", spaces);
            json_list(j, "SmartHosts", hosts);
            json_uint(j, "Cost", strtoull(row[4], NULL, 10));
            json_bool(j, "RequireTLS", rn_strieq(row[5], "TRUE"));
            json_end_object(j);
        } else {
            table_row(l.t, row);
        }
        free(spaces);
        free(hosts);
    }
    listing_end(&l);
    dir_entries_clear(&es);
    return 0;
}

int relayctl_sendconnector(int argc, char **argv)
{
    const char *sub = argc >= 2 ? argv[1] : "";
    bool help = !strcmp(sub, "--help") || !strcmp(sub, "-h");
    static const char *const subs[] = {"new", "set", "list", "remove"};
    bool known = false;
    for (size_t i = 0; i < 4; i++)
        known |= !strcmp(sub, subs[i]);
    if (!known)
        return admin_usage(help_text, help);
    struct admin a;
    admin_init_sub(&a, "sendconnector", sub);
    struct sc_flags f;
    memset(&f, 0, sizeof f);
    const char *name = NULL;
    int rc = parse(&a, &f, argc - 1, argv + 1, strcmp(sub, "list") ? 1 : 0, &name);
    if (rc == 0) {
        if (!strcmp(sub, "new"))
            rc = sc_new(&a, name, &f);
        else if (!strcmp(sub, "list"))
            rc = sc_list(&a);
        else if (!strcmp(sub, "set") && !f.spaces_set && !f.hosts_set && !f.cost && !f.enabled &&
                 !f.tls && !f.comment)
            rc = admin_fail(&a, 2, "nothing to set (see --help)");
        else
            rc = sc_set_or_remove(&a, name, &f, !strcmp(sub, "remove"));
    }
    admin_strv_free(f.spaces, f.nspaces);
    admin_strv_free(f.hosts, f.nhosts);
    admin_close(&a);
    return rc < 0 ? 0 : rc;
}
