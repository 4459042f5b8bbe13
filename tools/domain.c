/* domain: `relayctl domain new|set|list|remove`, New-/Set-/Get-/Remove-AcceptedDomain.
 * Accepted domains live under cn=Accepted Domains,<base> (schema/README.md); recipients in
 * them need no relay right and senders in them need Accept-Authoritative-Domain-Sender;
 * recipients in Authoritative ones are looked up unless AddressBookEnabled is off
 * (relayAddressBookEnabled). `set --default` is Set-AcceptedDomain -MakeDefault:
 * relayDefaultDomain, where a bare RCPT TO:<postmaster> goes (RFC 5321 §4.5.1). */
#include "tools/relayctl.h"
#include "tools/admin.h"
#include "tools/output.h"
#include "directory/dnsname.h"
#include "directory/entry.h"
#include "directory/ldap/ldapdir.h"
#include "directory/model.h"
#include "directory/base/util.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define OPT_DOMAIN 3200
#define OPT_TYPE 3201
#define OPT_DEFAULT 3202
#define OPT_ADDRESS_BOOK 3203

static const char help_text[] =
    "usage: relayctl domain new NAME --domain-name DOMAIN --type TYPE\n"
    "                 [--address-book-enabled true|false]\n"
    "       relayctl domain set NAME [--default[=BOOL]] [--address-book-enabled true|false]\n"
    "       relayctl domain list [--json]\n"
    "       relayctl domain remove NAME\n\n"
    "Accepted domains (New-AcceptedDomain). TYPE is Authoritative, InternalRelay or\n"
    "ExternalRelay; DOMAIN is example.com, or *.example.com for its subdomains only.\n"
    "Recipients in an accepted domain need no relay right; senders in Authoritative and\n"
    "InternalRelay domains need ms-Exch-SMTP-Accept-Authoritative-Domain-Sender.\n"
    "set --default (Set-AcceptedDomain -MakeDefault) makes NAME the default accepted domain,\n"
    "where a bare RCPT TO:<postmaster> is delivered, and clears the mark on every other\n"
    "domain; --default=false clears it on NAME (a bare postmaster is then refused). A\n"
    "*.example.com domain cannot be the default.\n"
    "--address-book-enabled (Exchange's AddressBookEnabled; default true): a recipient in\n"
    "an Authoritative domain must be the mail or relayMailAlias of a user or group under\n"
    "user_base, else 550 5.1.10 RESOLVER.ADR.RecipientNotFound; false accepts any local\n"
    "part. InternalRelay and ExternalRelay domains are never looked up.\n\n";

static const char *const types[] = {"Authoritative", "InternalRelay", "ExternalRelay"};

static char *container(const struct admin *a)
{
    return xasprintf("cn=Accepted Domains,%s", a->dc.boot.base_dn);
}

/* The accepted domains named `name` (cn) or with domain name dname. Caller frees. */
static char *domain_filter(const char *name, const char *dname)
{
    char nesc[600], esc[600];
    ldap_filter_escape(name, strlen(name), nesc, sizeof nesc);
    ldap_filter_escape(dname, strlen(dname), esc, sizeof esc);
    return xasprintf("(&(objectClass=relayAcceptedDomain)(|(cn=%s)(relayDomainName=%s)))",
                     nesc, esc);
}

/* Write the relayAcceptedDomain entry cn=<name> for domain d of type canon. */
static int domain_add(struct admin *a, const char *name, const char *d, const char *canon,
                      const char *book)
{
    char *base = container(a), *rdn = admin_rdn_escape(name);
    char *dn = xasprintf("cn=%s,%s", rdn, base);
    struct dir_entry e;
    dir_entry_init(&e, dn);
    dir_entry_add(&e, "objectClass", "relayAcceptedDomain");
    dir_entry_add(&e, "cn", name);
    dir_entry_add(&e, "relayDomainName", d);
    dir_entry_add(&e, "relayDomainType", canon);
    if (book)
        dir_entry_add(&e, "relayAddressBookEnabled", book);
    char err[RN_ERRLEN];
    struct rn_domain dom;
    int rc;
    if (domain_from_entry(&e, &dom, err, sizeof err) != 0)
        rc = admin_fail(a, 1, "%s: %s", e.dn, err);   /* what the loader would refuse */
    else
        rc = admin_add(a, &e, NULL);
    domain_clear(&dom);
    dir_entry_clear(&e);
    free(dn);
    free(rdn);
    free(base);
    return rc;
}

/* --address-book-enabled true|false (any case) as the directory's TRUE/FALSE; NULL if
 * neither. */
static const char *book_value(const char *v)
{
    return !v ? NULL : rn_strieq(v, "true") ? "TRUE" : rn_strieq(v, "false") ? "FALSE" : NULL;
}

static int domain_new(struct admin *a, const char *name, const char *dname, const char *type,
                      const char *book)
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
    char *filter = domain_filter(name, d);
    struct dir_entries es;
    rc = admin_search_in(a, "Accepted Domains", filter, &es);
    free(filter);
    if (rc == 0) {
        if (es.n)
            rc = admin_fail(a, 1, "accepted domain '%s' already exists (%s)",
                            dir_entry_first(&es.v[0], "relayDomainName"), es.v[0].dn);
        else
            rc = domain_add(a, name, d, canon, book);
        dir_entries_clear(&es);
    }
    return rc;
}

/* relayDefaultDomain TRUE (absent is FALSE: schema/README.md). */
static bool is_default(const struct dir_entry *e)
{
    const char *v = dir_entry_first(e, "relayDefaultDomain");
    return v && rn_strieq(v, "TRUE");
}

/* The changes of `domain set NAME [--default=def] [--address-book-enabled=book]` over the
 * domains es, target es->v[t] (def, book NULL: unchanged): the target's change first, then
 * (def TRUE) the other marks cleared. Written in that order, the instant
 * between them holds two defaults, which every node treats as none (docs/operations.md);
 * a write cut short there leaves that visible (`config refused` in the node's log) and the
 * same command completes it. 0, or 1 when the loader would refuse the entry. */
static int domain_set_changes(struct admin *a, const struct dir_entries *es, size_t t,
                              const char *def_v, const char *book, struct changeset *cs)
{
    bool def = def_v && rn_strieq(def_v, "TRUE");
    struct dir_entry e;
    dir_entry_copy(&e, &es->v[t]);
    if (def_v)
        dir_entry_set1(&e, "relayDefaultDomain", def ? "TRUE" : NULL);
    if (book)
        dir_entry_set1(&e, "relayAddressBookEnabled", book);
    char err[RN_ERRLEN];
    struct rn_domain dom;
    int rc = domain_from_entry(&e, &dom, err, sizeof err);
    domain_clear(&dom);
    if (rc != 0)
        rc = admin_fail(a, 1, "%s: %s", e.dn, err);   /* what the loader would refuse */
    else
        changeset_diff(cs, &es->v[t], &e, NULL);
    dir_entry_clear(&e);
    for (size_t i = 0; rc == 0 && def && i < es->n; i++)
        if (i != t && dir_entry_get(&es->v[i], "relayDefaultDomain"))
            changeset_modify(cs, es->v[i].dn, MOD_DELETE, "relayDefaultDomain", NULL, 0);
    return rc;
}

static int domain_set(struct admin *a, const char *name, const char *def, const char *book)
{
    if (!def && !book)
        return admin_fail(a, 2, "nothing to set (see --help)");
    int rc = admin_open(a);
    if (rc)
        return rc;
    struct dir_entries es;
    if ((rc = admin_search_in(a, "Accepted Domains", "(objectClass=relayAcceptedDomain)",
                              &es)) != 0)
        return rc;
    size_t t = es.n, hits = 0;
    for (size_t i = 0; i < es.n; i++) {
        const char *cn = dir_entry_first(&es.v[i], "cn");
        const char *dn = dir_entry_first(&es.v[i], "relayDomainName");
        if ((cn && rn_strieq(cn, name)) || (dn && rn_strieq(dn, name)))
            t = i, hits++;
    }
    if (hits == 0) {
        rc = admin_fail(a, 1, "accepted domain '%s' not found", name);
    } else if (hits > 1) {
        rc = admin_fail(a, 1, "'%s' names %zu accepted domains: give the cn", name, hits);
    } else {
        struct changeset *cs = changeset_new();
        rc = domain_set_changes(a, &es, t, def, book, cs);
        if (rc == 0) {
            char *msg = xasprintf("changed %s", es.v[t].dn);
            rc = admin_write(a, cs, msg);
            free(msg);
        }
        changeset_free(&cs);
    }
    dir_entries_clear(&es);
    return rc;
}

static int domain_list(struct admin *a)
{
    struct dir_entries es;
    int rc = admin_list_container(a, "Accepted Domains", "relayAcceptedDomain", &es);
    if (rc)
        return rc;
    static const char *const hdr[] = {"Name", "DomainName", "DomainType", "Default",
                                      "AddressBookEnabled"};
    struct listing l;
    listing_begin(&l, a->json, 5, hdr);
    for (size_t i = 0; i < es.n; i++) {
        bool def = is_default(&es.v[i]);
        /* The effective value, as the loader reads it (entry.h, domain_lookup_on): absent
         * means on, and only Authoritative domains are looked up (Exchange's default is
         * False for InternalRelay and ExternalRelay). */
        const char *book = dir_entry_first(&es.v[i], "relayAddressBookEnabled");
        const char *type = dir_entry_first(&es.v[i], "relayDomainType");
        bool on = (!book || strcmp(book, "FALSE") != 0) && type &&
                  rn_strieq(type, "Authoritative");
        const char *row[5] = {dir_entry_first(&es.v[i], "cn"),
                              dir_entry_first(&es.v[i], "relayDomainName"),
                              dir_entry_first(&es.v[i], "relayDomainType"),
                              def ? "True" : "False", on ? "True" : "False"};
        if (l.j) {
            json_begin_object(l.j, NULL);
            json_string(l.j, "Name", row[0]);
            json_string(l.j, "Identity", es.v[i].dn);
            json_string(l.j, "DomainName", row[1]);
            json_string(l.j, "DomainType", row[2]);
            json_bool(l.j, "Default", def);
            json_bool(l.j, "AddressBookEnabled", on);
            json_end_object(l.j);
        } else {
            table_row(l.t, row);
        }
    }
    listing_end(&l);
    dir_entries_clear(&es);
    return 0;
}

static int domain_remove(struct admin *a, const char *name)
{
    int rc = admin_open(a);
    if (rc)
        return rc;
    char *filter = domain_filter(name, name);
    struct dir_entries es;
    rc = admin_search_in(a, "Accepted Domains", filter, &es);
    free(filter);
    if (rc)
        return rc;
    if (es.n != 1)
        rc = admin_fail(a, 1, "accepted domain '%s' not found", name);
    else
        rc = admin_delete(a, es.v[0].dn);
    dir_entries_clear(&es);
    return rc;
}

int relayctl_domain(int argc, char **argv)
{
    static const struct option opts[] = {
        {"domain-name", required_argument, 0, OPT_DOMAIN},
        {"type", required_argument, 0, OPT_TYPE},
        {"default", optional_argument, 0, OPT_DEFAULT},
        {"address-book-enabled", required_argument, 0, OPT_ADDRESS_BOOK},
        ADMIN_LONGOPTS, {0, 0, 0, 0}};
    const char *sub = argc >= 2 ? argv[1] : "";
    bool help = !strcmp(sub, "--help") || !strcmp(sub, "-h");
    if (help || (strcmp(sub, "new") && strcmp(sub, "set") && strcmp(sub, "list") &&
                 strcmp(sub, "remove")))
        return admin_usage(help_text, help);
    struct admin a;
    admin_init_sub(&a, "domain", sub);
    const char *dname = NULL, *type = NULL, *def = NULL, *book = NULL;
    optind = 0;
    int c, rc = 0;
    argc--, argv++;
    while ((c = admin_getopt(&a, argc, argv, opts, help_text)) != -1) {
        if (c == ADMIN_GETOPT_HELP)
            return admin_close(&a), 0;
        if (c == OPT_DOMAIN && !strcmp(sub, "new"))
            dname = optarg;
        else if (c == OPT_TYPE && !strcmp(sub, "new"))
            type = optarg;
        else if (c == OPT_DEFAULT && !strcmp(sub, "set")) {
            if (!(def = admin_bool(optarg ? optarg : "true")))
                return admin_close(&a), admin_fail(&a, 2, "--default '%s' is not true or false",
                                                   optarg);
        }
        else if (c == OPT_ADDRESS_BOOK && (!strcmp(sub, "new") || !strcmp(sub, "set"))) {
            if (!(book = book_value(optarg)))
                return admin_close(&a), admin_fail(&a, 2, "--address-book-enabled '%s': "
                                                   "true or false", optarg);
        }
        else
            return admin_close(&a), admin_fail(&a, 2, "unexpected option (see --help)");
    }
    int npos = strcmp(sub, "list") ? 1 : 0;
    if (argc - optind != npos)
        return admin_close(&a),
               admin_fail(&a, 2, npos ? "give exactly one NAME" : "list takes no NAME");
    if (!strcmp(sub, "new"))
        rc = domain_new(&a, argv[optind], dname, type, book);
    else if (!strcmp(sub, "set"))
        rc = domain_set(&a, argv[optind], def, book);
    else if (!strcmp(sub, "list"))
        rc = domain_list(&a);
    else
        rc = domain_remove(&a, argv[optind]);
    admin_close(&a);
    return rc;
}
