/* domain: `relayctl domain new|list|remove`, New-/Get-/Remove-AcceptedDomain. Accepted
 * domains live under cn=Accepted Domains,<base> (schema/README.md); recipients in them need
 * no relay right and senders in them need Accept-Authoritative-Domain-Sender. */
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

#define OPT_DOMAIN 3200
#define OPT_TYPE 3201

static const char help_text[] =
    "usage: relayctl domain new NAME --domain-name DOMAIN --type TYPE\n"
    "       relayctl domain list [--json]\n"
    "       relayctl domain remove NAME\n\n"
    "Accepted domains (New-AcceptedDomain). TYPE is Authoritative, InternalRelay or\n"
    "ExternalRelay; DOMAIN is example.com, or *.example.com for its subdomains only.\n"
    "Recipients in an accepted domain need no relay right; senders in Authoritative and\n"
    "InternalRelay domains need ms-Exch-SMTP-Accept-Authoritative-Domain-Sender.\n\n";

static const char *const types[] = {"Authoritative", "InternalRelay", "ExternalRelay"};

static char *container(const struct admin *a)
{
    return xasprintf("cn=Accepted Domains,%s", a->dc.boot.base_dn);
}

static int domain_new(struct admin *a, const char *name, const char *dname, const char *type)
{
    if (!dname || !type)
        return admin_fail(a, 2, "--domain-name and --type are required");
    const char *canon = NULL;
    for (size_t i = 0; i < 3; i++)
        if (rn_strieq(type, types[i]))
            canon = types[i];
    if (!canon)
        return admin_fail(a, 2, "--type '%s': Authoritative, InternalRelay or ExternalRelay", type);
    char d[DNSNAME_BUFLEN];
    int rc = 0;
    if (domain_name_check(dname, DNSNAME_WILDCARD, d, sizeof d, NULL, 0) != 0)
        return admin_fail(a, 2, "--domain-name '%s' is not a domain (example.com or "
                          "*.example.com)", dname);
    if ((rc = admin_open(a)) != 0)
        return rc;
    char *base = container(a), err[RN_ERRLEN], esc[600], *filter;
    ldap_filter_escape(d, strlen(d), esc, sizeof esc);
    char nesc[600];
    ldap_filter_escape(name, strlen(name), nesc, sizeof nesc);
    filter = xasprintf("(&(objectClass=relayAcceptedDomain)(|(cn=%s)(relayDomainName=%s)))",
                       nesc, esc);
    struct dir_entries es;
    enum dir_result r = ldapadmin_search(a->d, base, LA_ONE, filter, &es, err, sizeof err);
    free(filter);
    if (r != DIR_FOUND) {
        rc = admin_fail(a, 2, "%s", err);
    } else if (es.n) {
        rc = admin_fail(a, 1, "accepted domain '%s' already exists (%s)",
                        dir_entry_first(&es.v[0], "relayDomainName"), es.v[0].dn);
        dir_entries_clear(&es);
    } else {
        dir_entries_clear(&es);
        char *rdn = admin_rdn_escape(name);
        char *dn = xasprintf("cn=%s,%s", rdn, base);
        struct dir_entry e;
        dir_entry_init(&e, dn);
        dir_entry_add(&e, "objectClass", "relayAcceptedDomain");
        dir_entry_add(&e, "cn", name);
        dir_entry_add(&e, "relayDomainName", d);
        dir_entry_add(&e, "relayDomainType", canon);
        struct rn_domain dom;
        if (domain_from_entry(&e, &dom, err, sizeof err) != 0) {
            rc = admin_fail(a, 1, "%s: %s", e.dn, err);   /* what the loader would refuse */
        } else {
            struct changeset *cs = changeset_new();
            changeset_add_entry(cs, &e);
            char *msg = xasprintf("created %s", dn);
            rc = admin_write(a, cs, msg);
            free(msg);
            changeset_free(&cs);
        }
        domain_clear(&dom);
        dir_entry_clear(&e);
        free(dn);
        free(rdn);
    }
    free(base);
    return rc;
}

static int domain_list(struct admin *a)
{
    struct dir_entries es;
    int rc = admin_list_container(a, "Accepted Domains", "relayAcceptedDomain", &es);
    if (rc)
        return rc;
    static const char *const hdr[] = {"Name", "DomainName", "DomainType"};
    struct table *t = table_new(3, hdr);
    struct json *j = a->json ? json_new(stdout) : NULL;
    if (j)
        json_begin_array(j, NULL);
    for (size_t i = 0; i < es.n; i++) {
        const char *row[3] = {dir_entry_first(&es.v[i], "cn"),
                              dir_entry_first(&es.v[i], "relayDomainName"),
                              dir_entry_first(&es.v[i], "relayDomainType")};
        if (j) {
            json_begin_object(j, NULL);
            json_string(j, "Name", row[0]);
            json_string(j, "Identity", es.v[i].dn);
            json_string(j, "DomainName", row[1]);
            json_string(j, "DomainType", row[2]);
            json_end_object(j);
        } else {
            table_row(t, row);
        }
    }
    if (j) {
        json_end_array(j);
        json_free(&j);
    } else {
        table_print(t, stdout);
    }
    table_free(&t);
    dir_entries_clear(&es);
    return 0;
}

static int domain_remove(struct admin *a, const char *name)
{
    int rc = admin_open(a);
    if (rc)
        return rc;
    char *base = container(a), err[RN_ERRLEN], esc[600];
    ldap_filter_escape(name, strlen(name), esc, sizeof esc);
    char *filter = xasprintf("(&(objectClass=relayAcceptedDomain)(|(cn=%s)(relayDomainName=%s)))",
                             esc, esc);
    struct dir_entries es;
    enum dir_result r = ldapadmin_search(a->d, base, LA_ONE, filter, &es, err, sizeof err);
    free(filter);
    free(base);
    if (r != DIR_FOUND)
        return admin_fail(a, 2, "%s", err);
    if (es.n != 1) {
        dir_entries_clear(&es);
        return admin_fail(a, 1, "accepted domain '%s' not found", name);
    }
    struct changeset *cs = changeset_new();
    changeset_delete_entry(cs, es.v[0].dn);
    char *msg = xasprintf("removed %s", es.v[0].dn);
    rc = admin_write(a, cs, msg);
    free(msg);
    changeset_free(&cs);
    dir_entries_clear(&es);
    return rc;
}

int relayctl_domain(int argc, char **argv)
{
    static const struct option opts[] = {
        {"domain-name", required_argument, 0, OPT_DOMAIN},
        {"type", required_argument, 0, OPT_TYPE},
        ADMIN_LONGOPTS, {0, 0, 0, 0}};
    const char *sub = argc >= 2 ? argv[1] : "";
    bool help = !strcmp(sub, "--help") || !strcmp(sub, "-h");
    if (help || (strcmp(sub, "new") && strcmp(sub, "list") && strcmp(sub, "remove"))) {
        fputs(help_text, help ? stdout : stderr);
        if (help)
            fputs(admin_help_options(), stdout);
        return help ? 0 : 2;
    }
    char verb[32];
    snprintf(verb, sizeof verb, "domain %s", sub);
    struct admin a;
    admin_init(&a, verb);
    const char *dname = NULL, *type = NULL;
    optind = 0;
    int c, rc = 0;
    argc--, argv++;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (c == 'h') {
            printf("%s%s", help_text, admin_help_options());
            return admin_close(&a), 0;
        }
        if (admin_option(&a, c, optarg))
            continue;
        if (c == OPT_DOMAIN && !strcmp(sub, "new"))
            dname = optarg;
        else if (c == OPT_TYPE && !strcmp(sub, "new"))
            type = optarg;
        else
            return admin_close(&a), admin_fail(&a, 2, "unexpected option (see --help)");
    }
    int npos = strcmp(sub, "list") ? 1 : 0;
    if (argc - optind != npos)
        return admin_close(&a),
               admin_fail(&a, 2, npos ? "give exactly one NAME" : "list takes no NAME");
    if (!strcmp(sub, "new"))
        rc = domain_new(&a, argv[optind], dname, type);
    else if (!strcmp(sub, "list"))
        rc = domain_list(&a);
    else
        rc = domain_remove(&a, argv[optind]);
    admin_close(&a);
    return rc;
}
