/* ldapload: the loader. It turns the relay subtree into an immutable snapshot for one node:
 * its own receive connectors and its site's, the accepted domains and the send connectors,
 * labelled with the directory's version (contextCSN) and a hash of every entry read. Each
 * entry is copied into a dir_entry and parsed by entry.h, the parser relayctl uses before a
 * write; an entry that fails is left out and named in the snapshot's errors, so one bad
 * connector never takes the others down, and an ambiguous pair (two connectors a client could
 * get, one domain with two types) is refused on both sides (fail closed). A server that
 * cannot be reached is DIR_TEMPFAIL; malformed configuration still yields a snapshot. */
#include <ldap.h>
#include "directory/ldap/ldapdir.h"
#include "directory/ldap/ldapdir-private.h"
#include "directory/entry.h"
#include "directory/policy.h"
#include "directory/validate.h"
#include "directory/base/util.h"
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- the content hash ---- */

/* Fold every entry of res (DN, attribute names, values, in the server's order) into the
 * FNV-1a hash *h: two loads that read the same entries get the same hash, so a change that
 * left contextCSN alone (no syncprov maintaining it, a directory without one) still shows. */
static void hash_bytes(uint64_t *h, const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        *h = (*h ^ b[i]) * 1099511628211ULL;
    *h = (*h ^ 0xff) * 1099511628211ULL;     /* a separator: "ab"+"c" differs from "a"+"bc" */
}

static void hash_entries(uint64_t *h, LDAP *ld, LDAPMessage *res)
{
    for (LDAPMessage *m = ldap_first_entry(ld, res); m; m = ldap_next_entry(ld, m)) {
        char *dn = ldap_get_dn(ld, m);
        if (dn)
            hash_bytes(h, dn, strlen(dn));
        ldap_memfree(dn);
        BerElement *ber = NULL;
        for (char *a = ldap_first_attribute(ld, m, &ber); a;
             a = ldap_next_attribute(ld, m, ber)) {
            hash_bytes(h, a, strlen(a));
            struct berval **vals = ldap_get_values_len(ld, m, a);
            for (size_t i = 0; vals && vals[i]; i++)
                hash_bytes(h, vals[i]->bv_val, vals[i]->bv_len);
            ldap_value_free_len(vals);
            ldap_memfree(a);
        }
        if (ber)
            ber_free(ber, 0);
    }
}

/* ---- receive connectors ---- */

static int connector_name_cmp(const void *a, const void *b)
{
    const struct rn_connector *x = a, *y = b;
    int r = strcmp(x->name, y->name);
    return r ? r : strcmp(x->dn, y->dn);
}

/* Connectors one level under `base` appended to *v (valid ones only; refusals recorded). */
static int connectors_load(struct ldapdir *d, struct rn_snapshot *s, const char *base,
                           bool site_scoped, struct rn_connector **v, size_t *n, char *err,
                           size_t errlen)
{
    LDAPMessage *res;
    int rc = ldapdir_search(d, base, LDAP_SCOPE_ONELEVEL, "(objectClass=relayReceiveConnector)",
                            NULL, LDAP_NO_LIMIT, &res);
    if (rc != LDAP_SUCCESS) {
        ldap_msgfree(res);
        char what[LDAPDIR_DNBUF + 64];
        snprintf(what, sizeof what, "search connectors under %s", base);
        return ldapdir_error(d, rc, what, err, errlen);
    }
    hash_entries(&s->content_hash, d->ld, res);
    size_t first = *n;
    for (LDAPMessage *m = ldap_first_entry(d->ld, res); m; m = ldap_next_entry(d->ld, m)) {
        struct dir_entry e;
        struct rn_connector c;
        char cerr[RN_ERRLEN];
        ldapdir_entry_from_msg(d->ld, m, &e);
        if (connector_from_entry(&e, site_scoped, &c, cerr, sizeof cerr) != 0) {
            snapshot_add_error(s, "%s: %s", e.dn, cerr);
            connector_clear(&c);
        } else {
            *v = xrealloc(*v, (*n + 1) * sizeof **v);
            (*v)[(*n)++] = c;
        }
        dir_entry_clear(&e);
    }
    ldap_msgfree(res);
    /* Deterministic load order (selection ties fall back to it): by name within a level. */
    qsort(*v + first, *n - first, sizeof **v, connector_name_cmp);
    return DIR_FOUND;
}

static bool share_port(const struct rn_connector *a, const struct rn_connector *b)
{
    for (size_t i = 0; i < a->nbindings; i++)
        for (size_t k = 0; k < b->nbindings; k++)
            if (a->bindings[i].port == b->bindings[k].port)
                return true;
    return false;
}

/* §4.3 conflicts between enabled connectors of this node: both sides are refused, because
 * which one a client would get is ambiguous and an ambiguous relay decision must fail closed. */
static void connectors_check_conflicts(struct rn_snapshot *s, struct rn_connector *v, size_t *n)
{
    bool *bad = xcalloc(*n ? *n : 1, sizeof *bad);
    for (size_t i = 0; i < *n; i++)
        for (size_t k = i + 1; k < *n; k++) {
            if (!v[i].enabled || !v[k].enabled || !share_port(&v[i], &v[k]))
                continue;
            char cerr[RN_ERRLEN];
            if (validate_conflict(&v[i], &v[k], cerr, sizeof cerr) != 0) {
                snapshot_add_error(s, "%s: %s (conflicts with %s)", v[i].dn, cerr, v[k].dn);
                snapshot_add_error(s, "%s: %s (conflicts with %s)", v[k].dn, cerr, v[i].dn);
                bad[i] = bad[k] = true;
            }
        }
    size_t o = 0;
    for (size_t i = 0; i < *n; i++) {
        if (bad[i])
            connector_clear(&v[i]);
        else
            v[o++] = v[i];
    }
    *n = o;
    free(bad);
}

/* ---- accepted domains and send connectors ---- */

static bool has_class(const struct dir_entry *e, const char *cls)
{
    const struct dir_attr *oc = dir_entry_get(e, "objectClass");
    for (size_t i = 0; oc && i < oc->nvalues; i++)
        if (rn_strieq(oc->values[i], cls))
            return true;
    return false;
}

/* Two accepted-domain entries for the same name with different types: both are refused,
 * since which type applies would be ambiguous. */
static void domains_check_conflicts(struct rn_snapshot *s)
{
    bool *bad = xcalloc(s->ndomains ? s->ndomains : 1, sizeof *bad);
    for (size_t i = 0; i < s->ndomains; i++)
        for (size_t k = i + 1; k < s->ndomains; k++)
            if (strcmp(s->domains[i].domain, s->domains[k].domain) == 0 &&
                s->domains[i].type != s->domains[k].type) {
                snapshot_add_error(s, "%s: relayDomainType: %s is also accepted by %s with "
                                   "another type", s->domains[i].dn, s->domains[i].domain,
                                   s->domains[k].dn);
                snapshot_add_error(s, "%s: relayDomainType: %s is also accepted by %s with "
                                   "another type", s->domains[k].dn, s->domains[k].domain,
                                   s->domains[i].dn);
                bad[i] = bad[k] = true;
            }
    size_t o = 0;
    for (size_t i = 0; i < s->ndomains; i++) {
        if (bad[i])
            domain_clear(&s->domains[i]);
        else
            s->domains[o++] = s->domains[i];
    }
    s->ndomains = o;
    free(bad);
    /* Two defaults: which postmaster is meant is ambiguous, so neither is the default and a
     * bare RCPT TO:<postmaster> is refused (fail closed) until one is left. */
    size_t ndef = 0;
    for (size_t i = 0; i < s->ndomains; i++)
        ndef += s->domains[i].is_default;
    for (size_t i = 0; ndef > 1 && i < s->ndomains; i++)
        if (s->domains[i].is_default) {
            snapshot_add_error(s, "%s: relayDefaultDomain: %zu accepted domains are marked "
                               "default; none is used", s->domains[i].dn, ndef);
            s->domains[i].is_default = false;
        }
}

static int str_cmp(const void *a, const void *b);

/* Accepted domains, send connectors and node certificates anywhere under the relay subtree. Two accepted-domain
 * entries for the same name are refused on both sides when their types differ. */
static int domains_sendconns_load(struct ldapdir *d, struct rn_snapshot *s, const char *base,
                                  char *err, size_t errlen)
{
    LDAPMessage *res;
    int rc = ldapdir_search(d, base, LDAP_SCOPE_SUBTREE,
                            "(|(objectClass=relayAcceptedDomain)(objectClass=relaySendConnector)"
                            "(&(objectClass=relayNode)(relayCertificateSha256=*))"
                            "(&(objectClass=relayContainer)(relayDomainSecureDomain=*)))",
                            NULL, LDAP_NO_LIMIT, &res);
    if (rc != LDAP_SUCCESS) {
        ldap_msgfree(res);
        char what[LDAPDIR_DNBUF + 64];
        snprintf(what, sizeof what, "search %s", base);
        return ldapdir_error(d, rc, what, err, errlen);
    }
    hash_entries(&s->content_hash, d->ld, res);
    for (LDAPMessage *m = ldap_first_entry(d->ld, res); m; m = ldap_next_entry(d->ld, m)) {
        struct dir_entry e;
        char eerr[RN_ERRLEN];
        ldapdir_entry_from_msg(d->ld, m, &e);
        if (has_class(&e, "relayContainer")) {
            /* The organisation's domain-secure partner list (Domain Secure, §3.3). */
            if (partner_domains_from_entry(&e, &s->partner_domains, &s->npartner_domains,
                                           eerr, sizeof eerr) != 0)
                snapshot_add_error(s, "%s: %s", e.dn, eerr);
        } else if (has_class(&e, "relayNode")) {
            /* Node certificates (ExchangeServer over TLS): a malformed value leaves that
             * node unable to authenticate, never another node able to. */
            if (nodecert_from_entry(&e, &s->node_certs, &s->nnode_certs, eerr,
                                    sizeof eerr) != 0)
                snapshot_add_error(s, "%s: %s", e.dn, eerr);
        } else if (has_class(&e, "relayAcceptedDomain")) {
            struct rn_domain dom;
            if (domain_from_entry(&e, &dom, eerr, sizeof eerr) != 0) {
                snapshot_add_error(s, "%s: %s", e.dn, eerr);
                domain_clear(&dom);
            } else {
                s->domains = xrealloc(s->domains, (s->ndomains + 1) * sizeof *s->domains);
                s->domains[s->ndomains++] = dom;
            }
        } else {
            struct rn_sendconn sc;
            if (sendconn_from_entry(&e, &sc, eerr, sizeof eerr) != 0) {
                snapshot_add_error(s, "%s: %s", e.dn, eerr);
                sendconn_clear(&sc);
            } else {
                s->sendconns = xrealloc(s->sendconns, (s->nsendconns + 1) * sizeof *s->sendconns);
                s->sendconns[s->nsendconns++] = sc;
            }
        }
        dir_entry_clear(&e);
    }
    ldap_msgfree(res);
    domains_check_conflicts(s);
    if (s->npartner_domains)
        qsort(s->partner_domains, s->npartner_domains, sizeof *s->partner_domains, str_cmp);
    return DIR_FOUND;
}

/* ---- version ---- */

static int str_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The naming context (from the root DSE's namingContexts) holding base; NULL if none. */
static char *suffix_find(struct ldapdir *d, const char *base)
{
    LDAPMessage *res;
    char *attrs[] = {"namingContexts", NULL};
    int rc = ldapdir_search(d, "", LDAP_SCOPE_BASE, "(objectClass=*)", attrs, 0, &res);
    if (rc != LDAP_SUCCESS) {
        ldap_msgfree(res);
        return NULL;
    }
    char nbase[LDAPDIR_DNBUF], nerr[RN_ERRLEN], *suffix = NULL;
    size_t nblen = 0;
    if (dn_normalize(base, nbase, sizeof nbase, nerr, sizeof nerr) == 0)
        nblen = strlen(nbase);
    LDAPMessage *m = ldap_first_entry(d->ld, res);
    size_t n = 0;
    char **ctx = m ? ldapdir_values(d->ld, m, "namingContexts", &n) : NULL;
    for (size_t i = 0; i < n && !suffix && nblen; i++) {
        char nc[LDAPDIR_DNBUF];
        if (dn_normalize(ctx[i], nc, sizeof nc, nerr, sizeof nerr) != 0)
            continue;
        size_t l = strlen(nc);
        if (l <= nblen && strcmp(nbase + nblen - l, nc) == 0 &&
            (l == nblen || nbase[nblen - l - 1] == ','))
            suffix = xstrdup(ctx[i]);
    }
    ldapdir_values_free(ctx, n);
    ldap_msgfree(res);
    return suffix;
}

/* contextCSN of the naming context holding base (syncprov keeps it current; with several
 * providers there is one value per server id, joined in order). NULL when unreadable. */
static char *version_read(struct ldapdir *d, const char *base)
{
    LDAPMessage *res, *m;
    char *version = NULL;
    size_t n = 0;
    if (!d->suffix || strcmp(d->suffix_of, base) != 0) {
        free(d->suffix_of);
        free(d->suffix);
        d->suffix_of = d->suffix = NULL;
        char *s = suffix_find(d, base);
        if (!s)
            return NULL;
        d->suffix = s;                    /* a connection's server keeps its naming contexts */
        d->suffix_of = xstrdup(base);
    }
    const char *suffix = d->suffix;
    char *cattrs[] = {"contextCSN", NULL};
    int rc = ldapdir_search(d, suffix, LDAP_SCOPE_BASE, "(objectClass=*)", cattrs, 0, &res);
    if (rc == LDAP_SUCCESS && (m = ldap_first_entry(d->ld, res)) != NULL) {
        char **csn = ldapdir_values(d->ld, m, "contextCSN", &n);
        if (n) {
            qsort(csn, n, sizeof *csn, str_cmp);
            size_t len = 1;
            for (size_t i = 0; i < n; i++)
                len += strlen(csn[i]) + 1;
            version = xcalloc(len, 1);
            for (size_t i = 0; i < n; i++) {
                if (i)
                    strcat(version, ",");
                strcat(version, csn[i]);
            }
        }
        ldapdir_values_free(csn, n);
    }
    ldap_msgfree(res);
    return version;
}

char *ldapdir_change_mark(struct ldapdir *d, const char *base)
{
    LDAPMessage *res, *m;
    char *rattrs[] = {"highestCommittedUSN", NULL}, *mark = NULL;
    size_t n = 0;
    /* Active Directory: the DC's update sequence number moves with every write. */
    int rc = ldapdir_search(d, "", LDAP_SCOPE_BASE, "(objectClass=*)", rattrs, 0, &res);
    if (rc == LDAP_SUCCESS && (m = ldap_first_entry(d->ld, res)) != NULL) {
        char **usn = ldapdir_values(d->ld, m, "highestCommittedUSN", &n);
        if (n)
            mark = xasprintf("usn:%s", usn[0]);
        ldapdir_values_free(usn, n);
    }
    ldap_msgfree(res);
    if (mark)
        return mark;
    /* Otherwise the newest entryCSN (OpenLDAP keeps one per entry, microseconds) and
     * modifyTimestamp under base, and the entry count (a delete changes only that). */
    char *attrs[] = {"entryCSN", "modifyTimestamp", NULL};
    rc = ldapdir_search(d, base, LDAP_SCOPE_SUBTREE, "(objectClass=*)", attrs, LDAP_NO_LIMIT,
                        &res);
    if (rc != LDAP_SUCCESS) {
        ldap_msgfree(res);
        return NULL;
    }
    char csn[128] = "", ts[64] = "";
    size_t count = 0;
    for (m = ldap_first_entry(d->ld, res); m; m = ldap_next_entry(d->ld, m), count++) {
        char **v = ldapdir_values(d->ld, m, "entryCSN", &n);
        if (n && strlen(v[0]) < sizeof csn && strcmp(v[0], csn) > 0)
            rn_strlcpy(csn, v[0], sizeof csn);
        ldapdir_values_free(v, n);
        v = ldapdir_values(d->ld, m, "modifyTimestamp", &n);
        if (n && strlen(v[0]) < sizeof ts && strcmp(v[0], ts) > 0)
            rn_strlcpy(ts, v[0], sizeof ts);
        ldapdir_values_free(v, n);
    }
    ldap_msgfree(res);
    return xasprintf("mark:%s|%s|%zu", csn, ts, count);
}

char *ldapdir_version_read(struct ldapdir *d, const char *base)
{
    return version_read(d, base);
}

/* A version that differs from every other load: the daemon skips a reload whose version it
 * already runs, so an unreadable contextCSN must never look unchanged. */
static char *version_stamp(void)
{
    static unsigned long seq;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return xasprintf("load-%lld.%09ld-%lu", (long long)ts.tv_sec, ts.tv_nsec,
                     __atomic_add_fetch(&seq, 1, __ATOMIC_RELAXED));
}

/* ---- the snapshot ---- */

enum dir_result ldapdir_load_snapshot(struct ldapdir *d, const struct rn_bootstrap *b,
                                      struct rn_snapshot **out, char *err, size_t errlen)
{
    *out = NULL;
    if (!b->base_dn || !*b->base_dn || !b->node || !*b->node) {
        rn_err(err, errlen, "base_dn and node must be configured");
        return DIR_FAIL;
    }
    char esc[1024], filter[1200];
    if (ldap_filter_escape(b->node, strlen(b->node), esc, sizeof esc) < 0) {
        rn_err(err, errlen, "node name too long");
        return DIR_FAIL;
    }
    snprintf(filter, sizeof filter, "(&(objectClass=relayNode)(cn=%s))", esc);
    char *attrs[] = {"cn", NULL};
    LDAPMessage *res;
    int rc = ldapdir_search(d, b->base_dn, LDAP_SCOPE_SUBTREE, filter, attrs, LDAP_NO_LIMIT,
                            &res);
    if (rc != LDAP_SUCCESS) {
        ldap_msgfree(res);
        char what[LDAPDIR_DNBUF];
        snprintf(what, sizeof what, "search %s for node %s", b->base_dn, b->node);
        return ldapdir_error(d, rc, what, err, errlen);
    }
    int count = ldap_count_entries(d->ld, res);
    if (count != 1) {
        ldap_msgfree(res);
        rn_err(err, errlen, count == 0 ? "node %s: no relayNode entry under %s"
                                       : "node %s: several relayNode entries under %s",
               b->node, b->base_dn);
        return DIR_FAIL;
    }
    char *node_dn = ldap_get_dn(d->ld, ldap_first_entry(d->ld, res));
    ldap_msgfree(res);

    struct rn_snapshot *s = snapshot_new();
    /* The version is read before the data: a snapshot labelled V then holds at least V's
     * changes. Read after, a change landing between the two reads would label old data
     * with the new version, and every later reload of that version would be skipped. */
    s->version = version_read(d, b->base_dn);
    if (!s->version)
        s->version = version_stamp();
    s->content_hash = 14695981039346656037ULL;
    hash_bytes(&s->content_hash, node_dn ? node_dn : "", node_dn ? strlen(node_dn) : 0);
    s->node_name = xstrdup(b->node);
    s->node_dn = xstrdup(node_dn ? node_dn : "");
    ldap_memfree(node_dn);
    s->site_dn = ldapdir_dn_parent(s->node_dn);
    enum dir_result r = DIR_FOUND;
    if (!s->site_dn) {
        r = DIR_FAIL;
        rn_err(err, errlen, "%s: a node must be the child of a relaySite", s->node_dn);
    } else {
        rc = ldapdir_search(d, s->site_dn, LDAP_SCOPE_BASE, "(objectClass=relaySite)", attrs, 0,
                            &res);
        int sites = rc == LDAP_SUCCESS ? ldap_count_entries(d->ld, res) : 0;
        ldap_msgfree(res);
        if (rc != LDAP_SUCCESS && rc != LDAP_NO_SUCH_OBJECT) {
            char what[LDAPDIR_DNBUF];
            snprintf(what, sizeof what, "read site %s", s->site_dn);
            r = ldapdir_error(d, rc, what, err, errlen);
        } else if (sites != 1) {
            r = DIR_FAIL;
            rn_err(err, errlen, "%s: the parent of node %s is not a relaySite", s->site_dn,
                   s->node_dn);
        }
    }
    struct rn_connector *v = NULL;
    size_t n = 0;
    if (r == DIR_FOUND)
        r = connectors_load(d, s, s->node_dn, false, &v, &n, err, errlen);
    if (r == DIR_FOUND)
        r = connectors_load(d, s, s->site_dn, true, &v, &n, err, errlen);
    if (r == DIR_FOUND) {
        connectors_check_conflicts(s, v, &n);
        s->connectors = v;
        s->nconnectors = n;
        v = NULL;
        r = domains_sendconns_load(d, s, b->base_dn, err, errlen);
    }
    for (size_t i = 0; v && i < n; i++)
        connector_clear(&v[i]);
    free(v);
    if (r == DIR_FOUND && snapshot_needs_recipients(s)) {
        /* Only when some Authoritative domain looks recipients up: a relay-only
         * configuration never reads the users. */
        size_t refused = 0;
        r = ldapdir_load_recipients(d, b, &s->recipients, &s->content_hash, &refused, err,
                                    errlen);
        if (refused)
            snapshot_add_error(s, "%s: %zu mail or relayMailAlias values are not addresses "
                               "and match no recipient", b->user_base && *b->user_base
                               ? b->user_base : "user_base", refused);
    }
    if (r != DIR_FOUND) {
        snapshot_unref(&s);
        return r;
    }
    policy_index(s);   /* the connector list is final: build the selection index */
    snapshot_index_domains(s);   /* and the domain list: the accepted-domain index */
    *out = s;
    return DIR_FOUND;
}
