/* aduser: who a user is in the Active Directory profile (docs/ad-profile.md), the way Windows
 * builds a token: the user's objectSid and its tokenGroups, the constructed attribute AD
 * computes on a BASE-scope read (every group the user is in, nested and primary, as SIDs),
 * matched against the SIDs of the connectors' ACEs. No group walk of our own: a walk could
 * miss a group AD counts (primary group, nesting across domains), and a missing group could be
 * the one a deny ACE names. The login is a userPrincipalName ("alice@rn.test"), a
 * sAMAccountName ("alice") or DOMAIN\sAMAccountName with DOMAIN the first label of the
 * domain naming context; it is only ever an escaped filter value (RFC 4515). Anything that
 * would leave the token short (tokenGroups unreadable, a SID that does not parse) is
 * DIR_TEMPFAIL: AUTH answers 454 4.7.0, never a grant. The password is checked by ldapbind.c
 * with a simple bind as the DN found here, over the same TLS the service connection uses. */
#include <ldap.h>
#include "directory/ldap/ldapdir.h"
#include "directory/ldap/ldapdir-private.h"
#include "directory/ace.h"
#include "directory/rights.h"
#include "directory/secdesc.h"
#include "directory/token.h"
#include "directory/base/util.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define AD_LOGIN_MAX 256          /* octets of a login (UPNs are at most 1024 in AD; ours less) */
#define AD_GROUPS_MAX 4096        /* tokenGroups values accepted (Windows' token limit is 1015) */

/* A binary SID (objectSid, tokenGroups) as "S-1-..."; -1 if it does not parse. */
static int sid_string(const struct berval *v, char out[SD_SID_STRMAX])
{
    struct sd_sid s;
    if (sd_sid_from_bytes(v->bv_val, v->bv_len, &s) != 0)
        return -1;
    return sd_sid_format(&s, out, SD_SID_STRMAX) > 0 ? 0 : -1;
}

/* The filter for a login: UPN or sAMAccountName, or DOMAIN\name. NULL (err set) when the
 * login cannot be one. Caller frees. */
static char *login_filter(const char *login, const char *domain_nc, char *err, size_t errlen)
{
    size_t len = strlen(login);
    if (len == 0 || len > AD_LOGIN_MAX) {
        rn_err(err, errlen, "login empty or longer than %d octets", AD_LOGIN_MAX);
        return NULL;
    }
    char esc[3 * AD_LOGIN_MAX + 1];
    const char *bs = strchr(login, '\\');
    if (bs) {
        /* DOMAIN\name: DOMAIN must be the domain's first DC label (the NetBIOS name of a
         * domain provisioned the usual way); another domain's user is none of ours. */
        size_t dl = (size_t)(bs - login);
        const char *dc = domain_nc && strncasecmp(domain_nc, "DC=", 3) == 0 ? domain_nc + 3 : "";
        size_t l1 = strcspn(dc, ",");
        if (dl == 0 || dl != l1 || strncasecmp(login, dc, dl) != 0) {
            rn_err(err, errlen, "%s: not a login of this domain", login);
            return NULL;
        }
        if (ldap_filter_escape(bs + 1, strlen(bs + 1), esc, sizeof esc) < 0 || !bs[1]) {
            rn_err(err, errlen, "%s: bad login", login);
            return NULL;
        }
        return xasprintf("(&(objectCategory=person)(objectClass=user)(sAMAccountName=%s))", esc);
    }
    if (ldap_filter_escape(login, len, esc, sizeof esc) < 0) {
        rn_err(err, errlen, "login too long");
        return NULL;
    }
    return xasprintf("(&(objectCategory=person)(objectClass=user)"
                     "(|(userPrincipalName=%s)(sAMAccountName=%s)))", esc, esc);
}

/* The user's own addresses: mail, and the smtp: values of proxyAddresses. Caller frees. */
static char **user_addresses(LDAP *ld, LDAPMessage *m, size_t *n)
{
    size_t nm = 0, np = 0;
    char **mail = ldapdir_values(ld, m, "mail", &nm);
    char **proxy = ldapdir_values(ld, m, "proxyAddresses", &np);
    char **out = xcalloc(nm + np + 1, sizeof *out);
    size_t k = 0;
    for (size_t i = 0; i < nm; i++)
        out[k++] = xstrdup(mail[i]);
    for (size_t i = 0; i < np; i++)
        if (strncasecmp(proxy[i], "smtp:", 5) == 0 && proxy[i][5])
            out[k++] = xstrdup(proxy[i] + 5);
    ldapdir_values_free(mail, nm);
    ldapdir_values_free(proxy, np);
    *n = k;
    return out;
}

/* The SIDs of user_dn's tokenGroups into *gsids (*ng of them; caller frees with
 * ldapdir_values_free). DIR_TEMPFAIL when they cannot all be read: a token without its
 * groups could miss a deny. */
static enum dir_result token_groups_read(struct ldapdir *d, const char *user_dn, char ***gsids,
                                         size_t *ng, char *err, size_t errlen)
{
    enum dir_result r = DIR_FOUND;
    LDAPMessage *res = NULL;
    char *tattrs[] = {"tokenGroups", NULL};
    int rc = ldapdir_search(d, user_dn, LDAP_SCOPE_BASE, "(objectClass=*)", tattrs, 1, &res);
    LDAPMessage *m = rc == LDAP_SUCCESS ? ldap_first_entry(d->ld, res) : NULL;
    if (!m) {
        char what[LDAPDIR_DNBUF];
        snprintf(what, sizeof what, "read tokenGroups of %.1800s", user_dn);
        ldapdir_error(d, rc == LDAP_SUCCESS ? LDAP_NO_RESULTS_RETURNED : rc, what, err, errlen);
        r = DIR_TEMPFAIL;
    }
    struct berval **v = m ? ldap_get_values_len(d->ld, m, "tokenGroups") : NULL;
    size_t nv = 0;
    while (v && v[nv])
        nv++;
    if (nv > AD_GROUPS_MAX) {
        rn_err(err, errlen, "%s: %zu groups, more than %d", user_dn, nv, AD_GROUPS_MAX);
        r = DIR_TEMPFAIL;
    }
    *gsids = xcalloc(nv + 1, sizeof **gsids);
    for (size_t i = 0; r == DIR_FOUND && i < nv; i++) {
        char sid[SD_SID_STRMAX];
        if (sid_string(v[i], sid) != 0) {
            rn_err(err, errlen, "%s: a tokenGroups value is not a SID", user_dn);
            r = DIR_TEMPFAIL;
        } else {
            (*gsids)[(*ng)++] = xstrdup(sid);
        }
    }
    ldap_value_free_len(v);
    ldap_msgfree(res);
    return r;
}

/* The per-forest Exchange groups (Exchange Servers, ExchangeLegacyInterop) a token holds, as
 * their WK_* principals: the loader (adload.c) turns an ACE naming either group's SID into
 * that principal, so a member must hold the principal too, or it would miss the group's
 * allows and, worse, its denies. The SIDs are the ones the snapshot's ACEs were mapped with
 * (snap->exchange_groups, read at each load), so no search per AUTH; a snapshot without
 * them (none given, or the load could not read one) is DIR_TEMPFAIL. */
static enum dir_result exchange_groups_map(const struct rn_snapshot *snap, struct token *t,
                                           char *err, size_t errlen)
{
    if (!snap || !snap->exchange_groups_ok) {
        rn_err(err, errlen, "the Exchange groups' SIDs were not read by the directory load");
        return DIR_TEMPFAIL;
    }
    if (token_map_sids(t, snap->exchange_groups, snap->nexchange_groups) != 0) {
        rn_err(err, errlen, "the Exchange groups' SIDs could not be matched");
        return DIR_TEMPFAIL;
    }
    return DIR_FOUND;
}

enum dir_result addir_user_token(struct ldapdir *d, const struct rn_bootstrap *b,
                                 const struct rn_snapshot *snap, const char *login_or_dn,
                                 bool allow_dn, struct token *t,
                                 char ***addresses, size_t *naddresses, char *err,
                                 size_t errlen)
{
    *addresses = NULL;
    *naddresses = 0;
    char *domain = addir_rootdse(d, "defaultNamingContext");
    if (!domain) {
        rn_err(err, errlen, "%s: the root DSE has no defaultNamingContext", d->uri);
        return DIR_TEMPFAIL;
    }
    const char *base = b->user_base && *b->user_base ? b->user_base : domain;
    char *attrs[] = {"objectSid", "mail", "proxyAddresses", NULL};
    LDAPMessage *res = NULL;
    int rc;
    char *filter = NULL;
    size_t dlen = strlen(login_or_dn);
    char *norm = xmalloc(3 * dlen + 1), nerr[RN_ERRLEN];
    bool by_dn = allow_dn && strchr(login_or_dn, '=') &&
                 dn_normalize(login_or_dn, norm, 3 * dlen + 1, nerr, sizeof nerr) == 0;
    free(norm);
    if (by_dn) {
        rc = ldapdir_search(d, login_or_dn, LDAP_SCOPE_BASE, "(objectClass=user)", attrs, 2, &res);
    } else {
        filter = login_filter(login_or_dn, domain, err, errlen);
        if (!filter) {
            free(domain);
            return DIR_NOTFOUND;
        }
        rc = ldapdir_search(d, base, LDAP_SCOPE_SUBTREE, filter, attrs, 2, &res);
    }
    enum dir_result r = DIR_FOUND;
    int count = rc == LDAP_SUCCESS ? ldap_count_entries(d->ld, res) : 0;
    if (rc == LDAP_NO_SUCH_OBJECT || rc == LDAP_SIZELIMIT_EXCEEDED ||
        (rc == LDAP_SUCCESS && count != 1)) {
        rn_err(err, errlen, "%s: %s", login_or_dn, rc == LDAP_SIZELIMIT_EXCEEDED || count > 1
               ? "more than one directory entry matches" : "no such user");
        r = DIR_NOTFOUND;
    } else if (rc != LDAP_SUCCESS) {
        char what[LDAPDIR_DNBUF];
        snprintf(what, sizeof what, "search %.900s %.900s", by_dn ? login_or_dn : base,
                 filter ? filter : "");
        r = ldapdir_error(d, rc, what, err, errlen);
    }
    free(filter);
    char *user_dn = NULL, user_sid[SD_SID_STRMAX] = "";
    if (r == DIR_FOUND) {
        LDAPMessage *m = ldap_first_entry(d->ld, res);
        char *dn = ldap_get_dn(d->ld, m);
        user_dn = dn ? xstrdup(dn) : NULL;
        ldap_memfree(dn);
        struct berval **sid = ldap_get_values_len(d->ld, m, "objectSid");
        if (!user_dn || !sid || !sid[0] || sid[1] || sid_string(sid[0], user_sid) != 0) {
            rn_err(err, errlen, "%s: objectSid missing or malformed", login_or_dn);
            r = DIR_TEMPFAIL;
        }
        ldap_value_free_len(sid);
        if (r == DIR_FOUND)
            *addresses = user_addresses(d->ld, m, naddresses);
    }
    ldap_msgfree(res);
    res = NULL;
    /* tokenGroups: constructed, so only on a BASE-scope read of the user itself. */
    char **gsids = NULL;
    size_t ng = 0;
    if (r == DIR_FOUND)
        r = token_groups_read(d, user_dn, &gsids, &ng, err, errlen);
    if (r == DIR_FOUND &&
        token_init_sids(t, login_or_dn, user_sid, (const char *const *)gsids, ng) != 0) {
        rn_err(err, errlen, "%s: the token could not be built from its SIDs", user_dn);
        r = DIR_TEMPFAIL;
    }
    if (r == DIR_FOUND) {
        r = exchange_groups_map(snap, t, err, errlen);
        if (r != DIR_FOUND)
            token_clear(t);
    }
    if (r == DIR_FOUND && !t->user_dn) {
        /* ldapbind.c binds as the DN; explain and the logs show it. */
        size_t cap = 3 * strlen(user_dn) + 1;
        t->user_dn = xmalloc(cap);
        if (dn_normalize(user_dn, t->user_dn, cap, nerr, sizeof nerr) != 0) {
            token_clear(t);
            rn_err(err, errlen, "%.200s: the directory returned a DN that does not parse",
                   user_dn);
            r = DIR_TEMPFAIL;
        }
    }
    if (r != DIR_FOUND) {
        for (size_t i = 0; *addresses && i < *naddresses; i++)
            free((*addresses)[i]);
        free(*addresses);
        *addresses = NULL;
        *naddresses = 0;
    }
    ldapdir_values_free(gsids, ng);
    free(user_dn);
    free(domain);
    return r;
}
