/* ldaprcpt: the recipient set for recipient lookup (Exchange's "recipient not found by SMTP
 * address lookup", docs/permission-model.md §6). One subtree search under user_base for the
 * mail-enabled objects, users and groups alike (`mail` or `relayMailAlias` present), read in
 * pages of 1000 (RFC 2696; Active Directory's MaxPageSize) so neither a server's page limit
 * nor one operation's timeout bounds the directory's size. Only complete results are used:
 * a search that ends early (size or time limit, refusal, outage) fails the whole load and the
 * node keeps the set it has, because a partial set would answer 5xx for real users. Group
 * members are not expanded: a group's own address is a recipient, and the relay never
 * expands lists. */
#include <ldap.h>
#include "directory/ldap/ldapdir.h"
#include "directory/ldap/ldapdir-private.h"
#include "directory/base/util.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PAGE_SIZE 1000

/* Every value of attribute a of m into set; the FNV-1a fold of the values into *h. */
static void add_values(LDAP *ld, LDAPMessage *m, const char *a, struct rcptset *set,
                       uint64_t *h, size_t *refused)
{
    struct berval **vals = ldap_get_values_len(ld, m, a);
    for (size_t i = 0; vals && vals[i]; i++) {
        for (size_t k = 0; k < vals[i]->bv_len; k++)
            *h = (*h ^ (unsigned char)vals[i]->bv_val[k]) * 1099511628211ULL;
        *h = (*h ^ 0xff) * 1099511628211ULL;
        /* A value that is no address (no '@', too long) is nobody's: leaving it out can only
         * refuse mail to it, never accept mail for an unknown one. */
        if (rcptset_add(set, vals[i]->bv_val, vals[i]->bv_len) != 0)
            (*refused)++;
    }
    ldap_value_free_len(vals);
}

/* One page: the search with the paged-results control carrying *cookie; the entries go into
 * set and *cookie is replaced by the server's (empty: that was the last page). */
static int page_read(struct ldapdir *d, const char *base, struct berval *cookie,
                     struct rcptset *set, uint64_t *h, size_t *refused)
{
    LDAP *ld = ldapdir_handle(d);
    LDAPControl *pc = NULL, **rctrls = NULL;
    int rc = ldap_create_page_control(ld, PAGE_SIZE, cookie->bv_len ? cookie : NULL, 0, &pc);
    if (rc != LDAP_SUCCESS)
        return rc;
    LDAPControl *ctrls[2] = {pc, NULL};
    char *attrs[] = {"mail", "relayMailAlias", NULL};
    LDAPMessage *res = NULL;
    struct timeval tv = d->timeout;
    rc = ldap_search_ext_s(ld, base, LDAP_SCOPE_SUBTREE, "(|(mail=*)(relayMailAlias=*))", attrs,
                           0, ctrls, NULL, &tv, LDAP_NO_LIMIT, &res);
    ldap_control_free(pc);
    if (rc == LDAP_SUCCESS) {
        for (LDAPMessage *m = ldap_first_entry(ld, res); m; m = ldap_next_entry(ld, m)) {
            add_values(ld, m, "mail", set, h, refused);
            add_values(ld, m, "relayMailAlias", set, h, refused);
        }
        int code = LDAP_SUCCESS;
        rc = ldap_parse_result(ld, res, &code, NULL, NULL, NULL, &rctrls, 0);
        if (rc == LDAP_SUCCESS)
            rc = code;
    }
    free(cookie->bv_val);
    cookie->bv_val = NULL;
    cookie->bv_len = 0;
    LDAPControl *resp = rc == LDAP_SUCCESS && rctrls
        ? ldap_control_find(LDAP_CONTROL_PAGEDRESULTS, rctrls, NULL) : NULL;
    struct berval c = {0, NULL};
    ber_int_t estimate;
    if (resp && ldap_parse_pageresponse_control(ld, resp, &estimate, &c) == LDAP_SUCCESS &&
        c.bv_len) {
        cookie->bv_val = xmalloc(c.bv_len);
        memcpy(cookie->bv_val, c.bv_val, c.bv_len);
        cookie->bv_len = c.bv_len;
    }
    ber_memfree(c.bv_val);
    ldap_controls_free(rctrls);
    ldap_msgfree(res);
    return rc;
}

enum dir_result ldapdir_load_recipients(struct ldapdir *d, const struct rn_bootstrap *b,
                                        struct rcptset **out, uint64_t *hash, size_t *refused,
                                        char *err, size_t errlen)
{
    *out = NULL;
    *refused = 0;
    char *base = ldapdir_user_base(b);
    struct rcptset *set = rcptset_new();
    struct berval cookie = {0, NULL};
    int rc;
    /* A server that ignores the (non-critical) control answers everything in one page and
     * no cookie: the loop then ends after it, as after a last page. */
    do
        rc = page_read(d, base, &cookie, set, hash, refused);
    while (rc == LDAP_SUCCESS && cookie.bv_len);
    free(cookie.bv_val);
    if (rc != LDAP_SUCCESS) {
        char what[LDAPDIR_DNBUF + 64];
        snprintf(what, sizeof what, "search recipients under %s", base);
        enum dir_result r = ldapdir_error(d, rc, what, err, errlen);
        rcptset_free(&set);
        free(base);
        /* A size or time limit is the directory's configuration, but the set would be
         * partial: keep the last one (DIR_TEMPFAIL) rather than refuse real users. */
        return rc == LDAP_SIZELIMIT_EXCEEDED || rc == LDAP_TIMELIMIT_EXCEEDED ||
               rc == LDAP_ADMINLIMIT_EXCEEDED ? DIR_TEMPFAIL : r;
    }
    free(base);
    rcptset_freeze(set);
    *out = set;
    return DIR_FOUND;
}
