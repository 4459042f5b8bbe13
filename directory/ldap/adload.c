/* adload: the Active Directory profile's loader (docs/ad-profile.md). It reads an Exchange
 * organisation as Exchange's transport does and builds the same snapshot the relay profile
 * builds (model.h), so the engine, the replies, explain and audit cannot tell them apart:
 *   - the root DSE: configurationNamingContext, defaultNamingContext, schemaNamingContext and
 *     highestCommittedUSN (the version "usn:<N>", read before the data, as ldapload.c reads
 *     contextCSN first);
 *   - this node's msExchExchangeServer (cn = ad_server, else node) in the configuration NC,
 *     and its msExchSmtpReceiveConnector objects, with nTSecurityDescriptor read under the SD
 *     flags control (1.2.840.113556.1.4.801 = DACL only: READ_CONTROL is all it needs);
 *   - the controlAccessRight objects of CN=Extended-Rights, whose rightsGuid maps each ms-Exch-*
 *     right (right_lookup on the cn) to its R_* bit: the GUIDs are the directory's, never ours;
 *   - the schemaIDGUID of msExchSmtpReceiveConnector (object ACEs that name another class do
 *     not apply to a connector), and the objectSid of the per-forest groups Exchange Servers
 *     and ExchangeLegacyInterop (the ExchangeServers and ExchangeLegacyServers trustees);
 *   - the organisation's msExchAcceptedDomain and msExchRoutingSMTPConnector objects;
 *   - the recipients (mail and smtp: proxyAddresses under the domain NC) when an Authoritative
 *     domain looks them up.
 * Fail closed: an entry whose attributes do not parse is left out and named in the snapshot's
 * errors ("<dn>: <attribute>: <reason>"); a connector whose descriptor cannot be read or
 * parsed stays, with no ACEs, so its clients get no right and cannot fall through to a wider
 * connector, and the error names it. A directory that cannot be reached is DIR_TEMPFAIL. */
#include <lber.h>
#include <ldap.h>
#include "directory/ldap/ldapdir.h"
#include "directory/ldap/ldapdir-private.h"
#include "directory/adattr.h"
#include "directory/entry.h"
#include "directory/policy.h"
#include "directory/rights.h"
#include "directory/secdesc.h"
#include "directory/snapdelta.h"
#include "directory/validate.h"
#include "directory/base/util.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define AD_PAGE 1000              /* RFC 2696 page: Active Directory's MaxPageSize */
#define OID_SD_FLAGS "1.2.840.113556.1.4.801"

/* ---- small helpers ---- */

static void hash_bytes(uint64_t *h, const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        *h = (*h ^ b[i]) * 1099511628211ULL;
    *h = (*h ^ 0xff) * 1099511628211ULL;
}

/* Every entry of res (DN, attributes, values, binary ones included) into *h. */
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
        ber_free(ber, 0);
    }
}

/* A search with d's timeout and optional server controls; *res is set whatever the result. */
static int ad_search(struct ldapdir *d, const char *base, int scope, const char *filter,
                     char **attrs, LDAPControl **ctrls, LDAPMessage **res)
{
    struct timeval tv = d->timeout;
    *res = NULL;
    return ldap_search_ext_s(d->ld, base, scope, filter, attrs, 0, ctrls, NULL, &tv,
                             LDAP_NO_LIMIT, res);
}

char *addir_rootdse(struct ldapdir *d, const char *attr)
{
    char *attrs[] = {(char *)attr, NULL}, *out = NULL;
    LDAPMessage *res, *m;
    int rc = ldapdir_search(d, "", LDAP_SCOPE_BASE, "(objectClass=*)", attrs, 0, &res);
    if (rc == LDAP_SUCCESS && (m = ldap_first_entry(d->ld, res)) != NULL) {
        size_t n = 0;
        char **v = ldapdir_values(d->ld, m, attr, &n);
        if (n && *v[0])
            out = xstrdup(v[0]);
        ldapdir_values_free(v, n);
    }
    ldap_msgfree(res);
    return out;
}

char *addir_version_read(struct ldapdir *d)
{
    char *usn = addir_rootdse(d, "highestCommittedUSN");
    uint64_t n;
    char *v = usn && adattr_int(usn, UINT64_MAX / 10, &n) == 0 ? xasprintf("usn:%s", usn) : NULL;
    free(usn);
    return v;
}

static enum dir_result search_error(struct ldapdir *d, int rc, const char *what,
                                    const char *base, char *err, size_t errlen)
{
    char w[LDAPDIR_DNBUF + 64];
    snprintf(w, sizeof w, "%s under %.1800s", what, base);
    return ldapdir_error(d, rc, w, err, errlen);
}

/* ---- what the descriptors are read with ---- */

struct adctx {
    struct sd_rightmap *rights; size_t nrights;   /* owned */
    struct sd_sidmap *sids; size_t nsids;         /* owned */
    struct sd_guid conn_class;
    bool have_class;
};

static void adctx_clear(struct adctx *x)
{
    free(x->rights);
    free(x->sids);
    memset(x, 0, sizeof *x);
}

/* controlAccessRight objects: cn -> right_lookup -> bit; rightsGuid -> GUID. A known right
 * whose rightsGuid does not parse is an error (its ACEs then match nothing). */
static enum dir_result rights_load(struct ldapdir *d, struct rn_snapshot *s, const char *config,
                                   struct adctx *x, char *err, size_t errlen)
{
    char *base = xasprintf("CN=Extended-Rights,%s", config);
    char *attrs[] = {"cn", "rightsGuid", NULL};
    LDAPMessage *res;
    int rc = ad_search(d, base, LDAP_SCOPE_ONELEVEL, "(objectClass=controlAccessRight)", attrs,
                       NULL, &res);
    if (rc != LDAP_SUCCESS) {
        enum dir_result r = search_error(d, rc, "search extended rights", base, err, errlen);
        ldap_msgfree(res);
        free(base);
        return r;
    }
    hash_entries(&s->content_hash, d->ld, res);
    for (LDAPMessage *m = ldap_first_entry(d->ld, res); m; m = ldap_next_entry(d->ld, m)) {
        size_t ncn = 0, ng = 0;
        char **cn = ldapdir_values(d->ld, m, "cn", &ncn);
        char **g = ldapdir_values(d->ld, m, "rightsGuid", &ng);
        struct sd_guid guid;
        /* Only the cn names the right (right_lookup also takes a GUID, which would be ours,
         * not the directory's). */
        const struct right_info *ri = ncn == 1 && sd_guid_parse(cn[0], &guid) != 0
                                      ? right_lookup(cn[0]) : NULL;
        if (ri) {
            if (ng != 1 || sd_guid_parse(g[0], &guid) != 0) {
                char *dn = ldap_get_dn(d->ld, m);
                snapshot_add_error(s, "%s: rightsGuid: %s", dn ? dn : cn[0],
                                   ng != 1 ? "not exactly one value" : "not a GUID");
                ldap_memfree(dn);
            } else {
                x->rights = xrealloc(x->rights, (x->nrights + 1) * sizeof *x->rights);
                x->rights[x->nrights].guid = guid;
                x->rights[x->nrights++].bit = ri->bit;
            }
        }
        ldapdir_values_free(cn, ncn);
        ldapdir_values_free(g, ng);
    }
    ldap_msgfree(res);
    free(base);
    return DIR_FOUND;
}

/* The schemaIDGUID of msExchSmtpReceiveConnector (binary, 16 octets). Missing: an error
 * (then secdesc_aces gets no class and object ACEs with an inherited object type never
 * apply, which only narrows). */
static enum dir_result class_load(struct ldapdir *d, struct rn_snapshot *s, struct adctx *x,
                                  char *err, size_t errlen)
{
    char *schema = addir_rootdse(d, "schemaNamingContext");
    if (!schema) {
        snapshot_add_error(s, "root DSE: schemaNamingContext: missing");
        return DIR_FOUND;
    }
    char *attrs[] = {"schemaIDGUID", NULL};
    LDAPMessage *res;
    int rc = ad_search(d, schema, LDAP_SCOPE_ONELEVEL,
                       "(&(objectClass=classSchema)(lDAPDisplayName=msExchSmtpReceiveConnector))",
                       attrs, NULL, &res);
    if (rc != LDAP_SUCCESS) {
        enum dir_result r = search_error(d, rc, "search the connector class", schema, err,
                                         errlen);
        ldap_msgfree(res);
        free(schema);
        return r;
    }
    hash_entries(&s->content_hash, d->ld, res);
    LDAPMessage *m = ldap_first_entry(d->ld, res);
    struct berval **v = m ? ldap_get_values_len(d->ld, m, "schemaIDGUID") : NULL;
    if (v && v[0] && !v[1] && sd_guid_from_bytes(v[0]->bv_val, v[0]->bv_len, &x->conn_class) == 0)
        x->have_class = true;
    else
        snapshot_add_error(s, "%s: msExchSmtpReceiveConnector: schemaIDGUID: missing or not "
                           "16 octets", schema);
    ldap_value_free_len(v);
    ldap_msgfree(res);
    free(schema);
    return DIR_FOUND;
}

/* objectSid of the per-forest groups (Exchange creates them in OU=Microsoft Exchange Security
 * Groups; matched by sAMAccountName, which is unique in a domain), into x for the descriptors
 * and into s->exchange_groups for AUTH (aduser.c), which fails closed unless every group found
 * had a SID that parses. */
static enum dir_result groups_load(struct ldapdir *d, struct rn_snapshot *s, const char *dom,
                                   struct adctx *x, char *err, size_t errlen)
{
    static const struct { const char *name; int wk; } want[] = {
        {"Exchange Servers", WK_EXCHANGE_SERVERS}, {"ExchangeLegacyInterop", WK_LEGACY_INTEROP},
    };
    char *attrs[] = {"sAMAccountName", "objectSid", NULL};
    LDAPMessage *res;
    int rc = ad_search(d, dom, LDAP_SCOPE_SUBTREE,
                       "(&(objectClass=group)(|(sAMAccountName=Exchange Servers)"
                       "(sAMAccountName=ExchangeLegacyInterop)))", attrs, NULL, &res);
    if (rc != LDAP_SUCCESS) {
        enum dir_result r = search_error(d, rc, "search the Exchange groups", dom, err, errlen);
        ldap_msgfree(res);
        return r;
    }
    hash_entries(&s->content_hash, d->ld, res);
    bool ok = true;
    for (LDAPMessage *m = ldap_first_entry(d->ld, res); m; m = ldap_next_entry(d->ld, m)) {
        size_t nn = 0;
        char **name = ldapdir_values(d->ld, m, "sAMAccountName", &nn);
        struct berval **sid = ldap_get_values_len(d->ld, m, "objectSid");
        for (size_t i = 0; nn == 1 && i < sizeof want / sizeof want[0]; i++) {
            if (!rn_strieq(name[0], want[i].name))
                continue;
            struct sd_sid ss;
            struct sd_sidmap sm = {"", want[i].wk};
            if (!sid || !sid[0] || sid[1] ||
                sd_sid_from_bytes(sid[0]->bv_val, sid[0]->bv_len, &ss) != 0 ||
                sd_sid_format(&ss, sm.sid, sizeof sm.sid) == 0) {
                char *dn = ldap_get_dn(d->ld, m);
                snapshot_add_error(s, "%s: objectSid: missing or malformed", dn ? dn : name[0]);
                ldap_memfree(dn);
                ok = false;
                continue;
            }
            x->sids = xrealloc(x->sids, (x->nsids + 1) * sizeof *x->sids);
            x->sids[x->nsids++] = sm;
        }
        ldap_value_free_len(sid);
        ldapdir_values_free(name, nn);
    }
    ldap_msgfree(res);
    size_t cap = sizeof s->exchange_groups / sizeof s->exchange_groups[0];
    if (x->nsids > cap) {
        snapshot_add_error(s, "%s: %zu Exchange Servers or ExchangeLegacyInterop groups, more "
                           "than %zu", dom, x->nsids, cap);
        ok = false;
    }
    if (ok && x->nsids)
        memcpy(s->exchange_groups, x->sids, x->nsids * sizeof *x->sids);
    s->nexchange_groups = ok ? x->nsids : 0;
    s->exchange_groups_ok = ok;
    return DIR_FOUND;
}

/* ---- receive connectors ---- */

static enum dir_result connectors_load(struct ldapdir *d, struct rn_snapshot *s,
                                       const char *server_dn, const struct adctx *x,
                                       char *err, size_t errlen)
{
    /* SD flags = DACL_SECURITY_INFORMATION (4): the owner, group and SACL need rights a
     * service account does not have, and the DACL is all the permissions are. */
    static const char sdval[] = {0x30, 0x03, 0x02, 0x01, 0x04};
    LDAPControl sdc = {OID_SD_FLAGS, {sizeof sdval, (char *)sdval}, 1};
    LDAPControl *ctrls[] = {&sdc, NULL};
    const char *const *names = adattr_connector_attrs();
    size_t na = 0;
    while (names[na])
        na++;
    char **attrs = xcalloc(na + 2, sizeof *attrs);
    for (size_t i = 0; i < na; i++)
        attrs[i] = (char *)names[i];
    attrs[na] = "nTSecurityDescriptor";
    LDAPMessage *res;
    int rc = ad_search(d, server_dn, LDAP_SCOPE_SUBTREE,
                       "(objectClass=msExchSmtpReceiveConnector)", attrs, ctrls, &res);
    free(attrs);
    if (rc != LDAP_SUCCESS) {
        enum dir_result r = search_error(d, rc, "search receive connectors", server_dn, err,
                                         errlen);
        ldap_msgfree(res);
        return r;
    }
    hash_entries(&s->content_hash, d->ld, res);
    struct adsd_ctx actx = {x->rights, x->nrights, x->sids, x->nsids,
                            x->have_class ? &x->conn_class : NULL};
    struct rn_connector *v = NULL;
    size_t n = 0;
    for (LDAPMessage *m = ldap_first_entry(d->ld, res); m; m = ldap_next_entry(d->ld, m)) {
        struct dir_entry e;
        struct rn_connector c;
        char cerr[RN_ERRLEN];
        memset(&c, 0, sizeof c);
        int ok = ldapdir_entry_read(d->ld, m, "nTSecurityDescriptor", true, &e, cerr,
                                    sizeof cerr) == 0 &&
                 adattr_connector(&e, &c, cerr, sizeof cerr) == 0;
        if (ok) {
            struct berval **sd = ldap_get_values_len(d->ld, m, "nTSecurityDescriptor");
            bool one = sd && sd[0] && !sd[1];
            int acl = adattr_connector_acl(&c, one ? sd[0]->bv_val : NULL,
                                           one ? sd[0]->bv_len : 0, &actx, cerr, sizeof cerr);
            ldap_value_free_len(sd);
            if (acl == 0)        /* kept with no ACE: fail closed, named */
                snapshot_add_error(s, "%s: %s (the connector grants nothing)", e.dn, cerr);
            else if (acl < 0) {
                snapshot_add_error(s, "%s: %s", e.dn, cerr);
                ok = 0;
            }
        } else {
            snapshot_add_error(s, "%s: %s", e.dn, cerr);
        }
        if (ok) {
            v = xrealloc(v, (n + 1) * sizeof *v);
            v[n++] = c;
        } else {
            connector_clear(&c);
        }
        dir_entry_clear(&e);
    }
    ldap_msgfree(res);
    s->connectors = v;
    s->nconnectors = n;
    return DIR_FOUND;
}

/* ---- accepted domains and SMTP connectors ---- */

static bool has_class(LDAP *ld, LDAPMessage *m, const char *cls)
{
    size_t n = 0;
    char **oc = ldapdir_values(ld, m, "objectClass", &n);
    bool has = false;
    for (size_t i = 0; i < n && !has; i++)
        has = rn_strieq(oc[i], cls);
    ldapdir_values_free(oc, n);
    return has;
}

static enum dir_result routing_load(struct ldapdir *d, struct rn_snapshot *s, const char *org,
                                    char *err, size_t errlen)
{
    char *attrs[] = {"objectClass", "cn", "msExchAcceptedDomainName", "msExchAcceptedDomainFlags",
                     "routingList", "msExchSmtpSmartHost", "msExchSmtpSendPort",
                     "msExchSmtpSendEnabled", "msExchSmtpOutboundSecurityFlag", NULL};
    LDAPMessage *res;
    int rc = ad_search(d, org, LDAP_SCOPE_SUBTREE,
                       "(|(objectClass=msExchAcceptedDomain)(objectClass=msExchRoutingSMTPConnector))",
                       attrs, NULL, &res);
    if (rc != LDAP_SUCCESS) {
        enum dir_result r = search_error(d, rc, "search accepted domains", org, err, errlen);
        ldap_msgfree(res);
        return r;
    }
    hash_entries(&s->content_hash, d->ld, res);
    for (LDAPMessage *m = ldap_first_entry(d->ld, res); m; m = ldap_next_entry(d->ld, m)) {
        struct dir_entry e;
        char eerr[RN_ERRLEN];
        if (ldapdir_entry_read(d->ld, m, NULL, true, &e, eerr, sizeof eerr) != 0) {
            snapshot_add_error(s, "%s: %s", e.dn, eerr);
        } else if (has_class(d->ld, m, "msExchAcceptedDomain")) {
            struct rn_domain dom;
            if (adattr_domain(&e, &dom, eerr, sizeof eerr) != 0) {
                snapshot_add_error(s, "%s: %s", e.dn, eerr);
                domain_clear(&dom);
            } else {
                s->domains = xrealloc(s->domains, (s->ndomains + 1) * sizeof *s->domains);
                s->domains[s->ndomains++] = dom;
            }
        } else {
            struct rn_sendconn sc;
            if (adattr_sendconn(&e, &sc, eerr, sizeof eerr) != 0) {
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
    return DIR_FOUND;
}

/* ---- recipients ---- */

/* Every mail value and every smtp: proxyAddresses value (the prefix removed; X400:, SIP: and
 * the others are no SMTP address) into set. */
static void rcpt_add_entry(LDAP *ld, LDAPMessage *m, struct rcptset *set, uint64_t *h,
                           size_t *refused)
{
    static const char *const names[] = {"mail", "proxyAddresses"};
    for (size_t a = 0; a < 2; a++) {
        struct berval **v = ldap_get_values_len(ld, m, names[a]);
        for (size_t i = 0; v && v[i]; i++) {
            const char *p = v[i]->bv_val;
            size_t len = v[i]->bv_len;
            hash_bytes(h, p, len);
            if (a == 1) {
                if (len < 5 || strncasecmp(p, "smtp:", 5) != 0)
                    continue;
                p += 5;
                len -= 5;
            }
            if (rcptset_add(set, p, len) != 0)
                (*refused)++;
        }
        ldap_value_free_len(v);
    }
}

/* Complete or not at all, in pages (as ldaprcpt.c, with AD's attributes). */
static enum dir_result recipients_load(struct ldapdir *d, const char *base, struct rn_snapshot *s,
                                       size_t *refused, char *err, size_t errlen)
{
    struct rcptset *set = rcptset_new();
    struct berval cookie = {0, NULL};
    char *attrs[] = {"mail", "proxyAddresses", NULL};
    int rc;
    do {
        LDAPControl *pc = NULL, **rctrls = NULL;
        rc = ldap_create_page_control(d->ld, AD_PAGE, cookie.bv_len ? &cookie : NULL, 0, &pc);
        if (rc != LDAP_SUCCESS)
            break;
        LDAPControl *ctrls[2] = {pc, NULL};
        LDAPMessage *res = NULL;
        rc = ad_search(d, base, LDAP_SCOPE_SUBTREE, "(|(mail=*)(proxyAddresses=smtp:*))", attrs,
                       ctrls, &res);
        ldap_control_free(pc);
        if (rc == LDAP_SUCCESS) {
            for (LDAPMessage *m = ldap_first_entry(d->ld, res); m; m = ldap_next_entry(d->ld, m))
                rcpt_add_entry(d->ld, m, set, &s->content_hash, refused);
            int code = LDAP_SUCCESS;
            rc = ldap_parse_result(d->ld, res, &code, NULL, NULL, NULL, &rctrls, 0);
            if (rc == LDAP_SUCCESS)
                rc = code;
        }
        free(cookie.bv_val);
        cookie.bv_val = NULL;
        cookie.bv_len = 0;
        LDAPControl *resp = rc == LDAP_SUCCESS && rctrls
            ? ldap_control_find(LDAP_CONTROL_PAGEDRESULTS, rctrls, NULL) : NULL;
        struct berval c = {0, NULL};
        ber_int_t estimate;
        if (resp && ldap_parse_pageresponse_control(d->ld, resp, &estimate, &c) == LDAP_SUCCESS &&
            c.bv_len) {
            cookie.bv_val = xmalloc(c.bv_len);
            memcpy(cookie.bv_val, c.bv_val, c.bv_len);
            cookie.bv_len = c.bv_len;
        }
        ber_memfree(c.bv_val);
        ldap_controls_free(rctrls);
        ldap_msgfree(res);
    } while (rc == LDAP_SUCCESS && cookie.bv_len);
    free(cookie.bv_val);
    if (rc != LDAP_SUCCESS) {
        enum dir_result r = search_error(d, rc, "search recipients", base, err, errlen);
        rcptset_free(&set);
        /* A partial set would refuse real users: keep the last one. */
        return rc == LDAP_SIZELIMIT_EXCEEDED || rc == LDAP_TIMELIMIT_EXCEEDED ||
               rc == LDAP_ADMINLIMIT_EXCEEDED ? DIR_TEMPFAIL : r;
    }
    rcptset_freeze(set);
    s->recipients = set;
    return DIR_FOUND;
}

/* ---- the snapshot ---- */

/* This node's msExchExchangeServer: exactly one under the configuration NC. */
static enum dir_result server_find(struct ldapdir *d, const struct rn_bootstrap *b,
                                   const char *config, char **dn, char *err, size_t errlen)
{
    const char *name = b->ad_server && *b->ad_server ? b->ad_server : b->node;
    char esc[512];
    *dn = NULL;
    if (!name || !*name || ldap_filter_escape(name, strlen(name), esc, sizeof esc) < 0) {
        rn_err(err, errlen, "ad_server/node: missing or too long");
        return DIR_FAIL;
    }
    char *filter = xasprintf("(&(objectClass=msExchExchangeServer)(cn=%s))", esc);
    char *attrs[] = {"1.1", NULL};
    LDAPMessage *res;
    int rc = ad_search(d, config, LDAP_SCOPE_SUBTREE, filter, attrs, NULL, &res);
    free(filter);
    if (rc != LDAP_SUCCESS) {
        enum dir_result r = search_error(d, rc, "search the Exchange server", config, err, errlen);
        ldap_msgfree(res);
        return r;
    }
    int count = ldap_count_entries(d->ld, res);
    if (count != 1) {
        ldap_msgfree(res);
        rn_err(err, errlen, "server %s: %s msExchExchangeServer named so under %s", name,
               count == 0 ? "no" : "more than one", config);
        return DIR_FAIL;
    }
    char *s = ldap_get_dn(d->ld, ldap_first_entry(d->ld, res));
    *dn = s ? xstrdup(s) : NULL;
    ldap_memfree(s);
    ldap_msgfree(res);
    if (!*dn) {
        rn_err(err, errlen, "server %s: the directory returned no DN", name);
        return DIR_TEMPFAIL;
    }
    return DIR_FOUND;
}

/* The organisation holding the server: the DN under CN=Microsoft Exchange,CN=Services
 * (two RDNs above "CN=Microsoft Exchange"); the configuration NC if it cannot be told. */
static char *org_of(const char *server_dn, const char *config)
{
    const char *p = strcasestr(server_dn, ",CN=Microsoft Exchange,CN=Services,");
    if (!p)
        return xstrdup(config);
    /* Walk back to the RDN just before ",CN=Microsoft Exchange": the organisation. */
    const char *start = p;
    while (start > server_dn) {
        if (start[-1] == ',' && (start - 1 == server_dn || start[-2] != '\\'))
            break;
        start--;
    }
    return xstrdup(start);
}

enum dir_result addir_load_snapshot(struct ldapdir *d, const struct rn_bootstrap *b,
                                    struct rn_snapshot **out, char *err, size_t errlen)
{
    *out = NULL;
    char *config = addir_rootdse(d, "configurationNamingContext");
    char *domain = addir_rootdse(d, "defaultNamingContext");
    if (!config || !domain) {
        free(config);
        free(domain);
        /* The root DSE is readable by anyone: its absence means no usable server. */
        rn_err(err, errlen, "%s: the root DSE has no configurationNamingContext or "
               "defaultNamingContext (not Active Directory, or unreachable)", d->uri);
        return DIR_TEMPFAIL;
    }
    struct rn_snapshot *s = snapshot_new();
    /* Read before the data: a snapshot labelled usn:N holds at least N's changes. */
    s->version = addir_version_read(d);
    if (!s->version) {
        /* Unique per load, as ldapload.c's stamp: an unreadable USN never looks unchanged. */
        static unsigned long seq;
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        s->version = xasprintf("load-%lld.%09ld-%lu", (long long)ts.tv_sec, ts.tv_nsec,
                               __atomic_add_fetch(&seq, 1, __ATOMIC_RELAXED));
    }
    s->content_hash = 14695981039346656037ULL;
    char *server_dn = NULL;
    struct adctx x;
    memset(&x, 0, sizeof x);
    enum dir_result r = server_find(d, b, config, &server_dn, err, errlen);
    if (r == DIR_FOUND) {
        hash_bytes(&s->content_hash, server_dn, strlen(server_dn));
        s->node_name = xstrdup(b->node);
        s->node_dn = xstrdup(server_dn);
        s->site_dn = ldapdir_dn_parent(server_dn);    /* CN=Servers: no site in this profile */
        r = rights_load(d, s, config, &x, err, errlen);
    }
    if (r == DIR_FOUND)
        r = class_load(d, s, &x, err, errlen);
    if (r == DIR_FOUND)
        r = groups_load(d, s, domain, &x, err, errlen);
    if (r == DIR_FOUND)
        r = connectors_load(d, s, server_dn, &x, err, errlen);
    if (r == DIR_FOUND) {
        char *org = org_of(server_dn, config);
        r = routing_load(d, s, org, err, errlen);
        free(org);
    }
    if (r == DIR_FOUND && snapshot_needs_recipients(s)) {
        size_t refused = 0;
        const char *base = b->user_base && *b->user_base ? b->user_base : domain;
        r = recipients_load(d, base, s, &refused, err, errlen);
        if (refused)
            snapshot_add_error(s, "%s: %zu mail or smtp: proxyAddresses values are not "
                               "addresses and match no recipient", base, refused);
    }
    adctx_clear(&x);
    free(server_dn);
    free(config);
    free(domain);
    if (r != DIR_FOUND) {
        snapshot_unref(&s);
        return r;
    }
    snapshot_finish(s);    /* sorted, cross-entry refusals, the selection index */
    *out = s;
    return DIR_FOUND;
}
