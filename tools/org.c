/* org: `relayctl org domain-secure list|add|remove`, the organisation-wide settings Exchange
 * keeps on Set-TransportConfig. domain-secure is -TLSReceiveDomainSecureList and
 * -TLSSendDomainSecureList in one: relayDomainSecureDomain on the relay base's containers
 * (schema/README.md, docs/permission-model.md §3.3). The loader reads the union of the values
 * on every relayContainer under the relay base; `add` writes to cn=Sites, `remove` deletes the
 * domain wherever it is stored. A value is checked with the loader's own rule
 * (partner_domains_from_entry), so what relayctl writes the nodes load. */
#include "tools/relayctl.h"
#include "tools/admin.h"
#include "tools/output.h"
#include "directory/dnsname.h"
#include "directory/entry.h"
#include "directory/ldap/ldapadmin.h"
#include "directory/base/util.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ORG_ATTR "relayDomainSecureDomain"

static const char help_text[] =
    "usage: relayctl org domain-secure list [--json]\n"
    "       relayctl org domain-secure add DOMAIN\n"
    "       relayctl org domain-secure remove DOMAIN\n\n"
    "The organisation's domain-secure partner domains (Exchange's Set-TransportConfig\n"
    "-TLSReceiveDomainSecureList and -TLSSendDomainSecureList in one list; stored as\n"
    "relayDomainSecureDomain on cn=Sites). Inbound, a client on a DomainSecureEnabled\n"
    "connector whose certificate verifies against tls_ca_file and names DOMAIN (or a host\n"
    "in it) acts as Partner Servers; outbound, mail to DOMAIN needs STARTTLS to a next hop\n"
    "whose certificate verifies and names DOMAIN, else it is deferred (4.7.5).\n"
    "DOMAIN is a domain name (partner.example; no wildcard), stored lowercase without a\n"
    "trailing dot. add of a listed domain changes nothing; remove of an unlisted one exits 1.\n\n";

/* The containers holding a value, anywhere under the relay base (the loader's search). */
static int org_containers(struct admin *a, struct dir_entries *out)
{
    char err[RN_ERRLEN];
    enum dir_result r = ldapadmin_search(a->d, a->dc.boot.base_dn, LA_SUB,
                                         "(&(objectClass=relayContainer)(" ORG_ATTR "=*))",
                                         out, err, sizeof err);
    return r == DIR_FOUND ? 0 : admin_fail(a, 2, "%s", err);
}

/* Whether stored value v names domain d (stored form): compared in the loader's form. */
static bool org_same(const char *v, const char *d)
{
    char norm[DNSNAME_BUFLEN];
    if (domain_name_check(v, 0, norm, sizeof norm, NULL, 0) != 0)
        return rn_strieq(v, d);
    return strcmp(norm, d) == 0;
}

static int org_list(struct admin *a)
{
    struct dir_entries es;
    int rc = org_containers(a, &es);
    if (rc)
        return rc;
    static const char *const hdr[] = {"Domain", "Container"};
    struct listing l;
    listing_begin(&l, a->json, 2, hdr);
    for (size_t i = 0; i < es.n; i++) {
        const struct dir_attr *v = dir_entry_get(&es.v[i], ORG_ATTR);
        for (size_t k = 0; v && k < v->nvalues; k++) {
            if (l.j) {
                json_begin_object(l.j, NULL);
                json_string(l.j, "Domain", v->values[k]);
                json_string(l.j, "Container", es.v[i].dn);
                json_end_object(l.j);
            } else {
                const char *row[2] = {v->values[k], es.v[i].dn};
                table_row(l.t, row);
            }
        }
    }
    listing_end(&l);
    dir_entries_clear(&es);
    return 0;
}

/* DOMAIN checked by the loader's rule: 0 with its stored form in d, or 1 with the loader's
 * message ("<dn>: relayDomainSecureDomain: '<in>' is not a domain name"). */
static int org_check(struct admin *a, const char *dn, const char *in, char *d, size_t dlen)
{
    struct dir_entry e;
    dir_entry_init(&e, dn);
    dir_entry_add(&e, ORG_ATTR, in);
    char **v = NULL, err[RN_ERRLEN];
    size_t n = 0;
    int rc = partner_domains_from_entry(&e, &v, &n, err, sizeof err);
    if (rc != 0 || n != 1)
        rc = admin_fail(a, 1, "%s: %s", dn, rc != 0 ? err : "no value");
    else
        snprintf(d, dlen, "%s", v[0]);
    admin_strv_free(v, n);
    dir_entry_clear(&e);
    return rc;
}

static int org_add(struct admin *a, const char *in)
{
    char *sites = xasprintf("cn=Sites,%s", a->dc.boot.base_dn), d[DNSNAME_BUFLEN];
    struct dir_entries es = {0};
    int rc = org_check(a, sites, in, d, sizeof d);
    if (rc == 0)
        rc = org_containers(a, &es);
    struct changeset *cs = changeset_new();
    bool listed = false;
    for (size_t i = 0; rc == 0 && i < es.n; i++) {
        const struct dir_attr *v = dir_entry_get(&es.v[i], ORG_ATTR);
        for (size_t k = 0; v && k < v->nvalues; k++)
            listed = listed || org_same(v->values[k], d);
    }
    if (rc == 0) {
        const char *vals[1] = {d};
        if (!listed)
            changeset_modify(cs, sites, MOD_ADD, ORG_ATTR, vals, 1);
        char *msg = xasprintf("added %s to %s", d, sites);
        rc = admin_write(a, cs, msg);
        free(msg);
    }
    changeset_free(&cs);
    dir_entries_clear(&es);
    free(sites);
    return rc;
}

static int org_remove(struct admin *a, const char *in)
{
    char d[DNSNAME_BUFLEN];
    struct dir_entries es;
    int rc = org_check(a, a->dc.boot.base_dn, in, d, sizeof d);
    if (rc || (rc = org_containers(a, &es)) != 0)
        return rc;
    struct changeset *cs = changeset_new();
    for (size_t i = 0; i < es.n; i++) {
        const struct dir_attr *v = dir_entry_get(&es.v[i], ORG_ATTR);
        for (size_t k = 0; v && k < v->nvalues; k++)
            if (org_same(v->values[k], d)) {
                const char *vals[1] = {v->values[k]};   /* the value as stored */
                changeset_modify(cs, es.v[i].dn, MOD_DELETE, ORG_ATTR, vals, 1);
            }
    }
    if (cs->nchanges == 0) {
        rc = admin_fail(a, 1, "%s is not a domain-secure domain", d);
    } else {
        char *msg = xasprintf("removed %s", d);
        rc = admin_write(a, cs, msg);
        free(msg);
    }
    changeset_free(&cs);
    dir_entries_clear(&es);
    return rc;
}

int relayctl_org(int argc, char **argv)
{
    static const struct option opts[] = {ADMIN_LONGOPTS, {0, 0, 0, 0}};
    const char *area = argc >= 2 ? argv[1] : "", *sub = argc >= 3 ? argv[2] : "";
    bool help = !strcmp(area, "--help") || !strcmp(area, "-h") ||
                (!strcmp(area, "domain-secure") && (!strcmp(sub, "--help") ||
                                                    !strcmp(sub, "-h")));
    if (help || strcmp(area, "domain-secure") ||
        (strcmp(sub, "list") && strcmp(sub, "add") && strcmp(sub, "remove")))
        return admin_usage(help_text, help);
    struct admin a;
    admin_init_sub(&a, "org domain-secure", sub);
    optind = 0;
    int c, rc = 0;
    argc -= 2, argv += 2;
    while ((c = admin_getopt(&a, argc, argv, opts, help_text)) != -1) {
        if (c == ADMIN_GETOPT_HELP)
            return admin_close(&a), 0;
        return admin_close(&a), admin_fail(&a, 2, "unexpected option (see --help)");
    }
    int npos = strcmp(sub, "list") ? 1 : 0;
    if (argc - optind != npos)
        return admin_close(&a),
               admin_fail(&a, 2, npos ? "give exactly one DOMAIN" : "list takes no DOMAIN");
    if ((rc = admin_open_nodeless(&a)) == 0) {
        if (!strcmp(sub, "list"))
            rc = org_list(&a);
        else if (!strcmp(sub, "add"))
            rc = org_add(&a, argv[optind]);
        else
            rc = org_remove(&a, argv[optind]);
    }
    admin_close(&a);
    return rc;
}
