/* ldapuser: who a user is, for the permission engine: find the user by login (user_filter,
 * the value escaped per RFC 4515) or by DN, then walk the groups that contain them through
 * nested groupOfNames membership, and build the token (user, groups, Authenticated Users,
 * Everyone) with the user's own addresses. Exactly one entry must match; nesting deeper than
 * GROUP_DEPTH_MAX is refused rather than cut, because a truncated group list could drop the
 * group of a deny ACE. Calls block: the node runs them on a worker thread. */
#include <ldap.h>
#include "directory/ldap/ldapdir.h"
#include "directory/ldap/ldapdir-private.h"
#include "directory/ace.h"
#include "directory/base/util.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define GROUP_DEPTH_MAX 16        /* nesting levels followed before a lookup is refused */
#define DEFAULT_USER_FILTER "(|(uid=%s)(mail=%s))"

/* user_filter with every %s replaced by the escaped login ("%%" is a literal %). */
static char *user_filter_build(const char *tmpl, const char *esc)
{
    size_t cap = strlen(tmpl) + 1, len = 0;
    for (const char *p = tmpl; (p = strstr(p, "%s")) != NULL; p += 2)
        cap += strlen(esc);
    char *f = xmalloc(cap);
    for (const char *p = tmpl; *p; p++) {
        if (p[0] == '%' && p[1] == 's') {
            memcpy(f + len, esc, strlen(esc));
            len += strlen(esc);
            p++;
        } else if (p[0] == '%' && p[1] == '%') {
            f[len++] = '%';
            p++;
        } else {
            f[len++] = *p;
        }
    }
    f[len] = '\0';
    return f;
}

struct dnset { char **dn, **norm; size_t n; };

static void dnset_clear(struct dnset *s)
{
    ldapdir_values_free(s->dn, s->n);
    ldapdir_values_free(s->norm, s->n);
    memset(s, 0, sizeof *s);
}

/* Add gdn to the groups found (and to the next level) unless already seen; -1 with err when
 * gdn is missing or does not parse. Buffers are sized from the DN itself, never fixed: a
 * directory may hold DNs of any length (OpenLDAP up to 8 KiB, a cn up to 32768 octets by
 * core.schema), and a group that cannot be handled must fail the lookup, not vanish. */
static int groups_add(const char *gdn, struct dnset *groups, struct dnset *next, char *err,
                      size_t errlen)
{
    if (!gdn)
        return rn_err(err, errlen, "a group entry came back without a DN");
    size_t cap = 3 * strlen(gdn) + 1;
    char *norm = xmalloc(cap), nerr[RN_ERRLEN];
    if (dn_normalize(gdn, norm, cap, nerr, sizeof nerr) != 0) {
        rn_err(err, errlen, "group DN %.200s%s does not parse: %s", gdn,
               strlen(gdn) > 200 ? "..." : "", nerr);
        free(norm);
        return -1;
    }
    bool seen = false;
    for (size_t k = 0; !seen && k < groups->n; k++)
        seen = strcmp(groups->norm[k], norm) == 0;
    if (!seen) {
        groups->dn = xrealloc(groups->dn, (groups->n + 1) * sizeof *groups->dn);
        groups->norm = xrealloc(groups->norm, (groups->n + 1) * sizeof *groups->norm);
        groups->dn[groups->n] = xstrdup(gdn);
        groups->norm[groups->n++] = xstrdup(norm);
        next->dn = xrealloc(next->dn, (next->n + 1) * sizeof *next->dn);
        next->norm = xrealloc(next->norm, (next->n + 1) * sizeof *next->norm);
        next->dn[next->n] = xstrdup(gdn);
        next->norm[next->n++] = xstrdup(norm);
    }
    free(norm);
    return 0;
}

/* The groups whose member is dn (one search), added by groups_add. */
static enum dir_result groups_of(struct ldapdir *d, const char *base, const char *dn,
                                 struct dnset *groups, struct dnset *next, char *err,
                                 size_t errlen)
{
    size_t len = strlen(dn), cap = 3 * len + 1;   /* RFC 4515: at most \xx per octet */
    char *esc = xmalloc(cap);
    if (ldap_filter_escape(dn, len, esc, cap) < 0) {
        free(esc);
        rn_err(err, errlen, "group walk: cannot escape %.200s", dn);
        return DIR_TEMPFAIL;
    }
    char *filter = xasprintf("(&(objectClass=groupOfNames)(member=%s))", esc);
    free(esc);
    char *attrs[] = {"1.1", NULL};
    LDAPMessage *res;
    int rc = ldapdir_search(d, base, LDAP_SCOPE_SUBTREE, filter, attrs, LDAP_NO_LIMIT, &res);
    free(filter);
    enum dir_result r = DIR_FOUND;
    if (rc != LDAP_SUCCESS) {
        char what[320];
        snprintf(what, sizeof what, "search groups of %.200s%s", dn, len > 200 ? "..." : "");
        r = ldapdir_error(d, rc, what, err, errlen);
        /* Whatever the error class, the token would lack groups: never a refusal (535). */
        r = DIR_TEMPFAIL;
    }
    for (LDAPMessage *m = r == DIR_FOUND ? ldap_first_entry(d->ld, res) : NULL;
         m && r == DIR_FOUND; m = ldap_next_entry(d->ld, m)) {
        char *gdn = ldap_get_dn(d->ld, m);
        if (groups_add(gdn, groups, next, err, errlen) < 0)
            r = DIR_TEMPFAIL;
        ldap_memfree(gdn);
    }
    ldap_msgfree(res);
    return r;
}

/* Groups containing any of the DNs in `level`, transitively; cycles are cut by the set of
 * groups already seen. Fails closed (DIR_TEMPFAIL, AUTH answers 454 4.7.0) on anything
 * that would leave a group out: a search that fails, a group DN that cannot be escaped or
 * parsed. Nesting deeper than GROUP_DEPTH_MAX is refused rather than cut, for the same
 * reason: a silently truncated group list could drop a deny ACE's group. */
static enum dir_result groups_walk(struct ldapdir *d, const char *base, const char *user_dn,
                                   struct dnset *groups, char *err, size_t errlen)
{
    struct dnset level = {0};
    level.dn = xcalloc(1, sizeof *level.dn);
    level.norm = xcalloc(1, sizeof *level.norm);
    level.dn[0] = xstrdup(user_dn);
    level.norm[0] = xstrdup(user_dn);
    level.n = 1;
    enum dir_result r = DIR_FOUND;
    for (int depth = 0; level.n && r == DIR_FOUND; depth++) {
        if (depth == GROUP_DEPTH_MAX) {
            rn_err(err, errlen, "%s: groups nested deeper than %d levels", user_dn,
                   GROUP_DEPTH_MAX);
            r = DIR_FAIL;
            break;
        }
        struct dnset next = {0};
        for (size_t i = 0; i < level.n && r == DIR_FOUND; i++)
            r = groups_of(d, base, level.dn[i], groups, &next, err, errlen);
        dnset_clear(&level);
        level = next;
    }
    dnset_clear(&level);
    return r;
}

char *ldapdir_user_base(const struct rn_bootstrap *b)
{
    if (b->user_base && *b->user_base)
        return xstrdup(b->user_base);
    char *p = ldapdir_dn_parent(b->base_dn ? b->base_dn : "");
    return p ? p : xstrdup(b->base_dn ? b->base_dn : "");
}

/* ldapdir_user_token and ldapdir_login_token; allow_dn says whether a name that parses as a
 * DN is taken as one (base search) or is only ever a value for user_filter. */
static enum dir_result user_token(struct ldapdir *d, const struct rn_bootstrap *b,
                                  const struct rn_snapshot *snap, const char *login_or_dn,
                                  bool allow_dn, struct token *t,
                                  char ***addresses, size_t *naddresses, char *err,
                                  size_t errlen)
{
    *addresses = NULL;
    *naddresses = 0;
    if (b->directory_profile == BOOT_PROFILE_AD)       /* aduser.c */
        return addir_user_token(d, b, snap, login_or_dn, allow_dn, t, addresses, naddresses,
                                err, errlen);
    char *norm = xmalloc(3 * strlen(login_or_dn) + 1), nerr[RN_ERRLEN];
    bool by_dn = allow_dn && strchr(login_or_dn, '=') &&
                 dn_normalize(login_or_dn, norm, 3 * strlen(login_or_dn) + 1, nerr,
                              sizeof nerr) == 0;
    free(norm);
    char *base = ldapdir_user_base(b), *filter;
    char *attrs[] = {"mail", "relayMailAlias", NULL};
    LDAPMessage *res;
    int rc;
    if (by_dn) {
        filter = xstrdup("(objectClass=*)");
        rc = ldapdir_search(d, login_or_dn, LDAP_SCOPE_BASE, filter, attrs, 2, &res);
    } else {
        char esc[1024];
        if (ldap_filter_escape(login_or_dn, strlen(login_or_dn), esc, sizeof esc) < 0) {
            free(base);
            rn_err(err, errlen, "login too long");
            return DIR_NOTFOUND;
        }
        filter = user_filter_build(b->user_filter && *b->user_filter ? b->user_filter
                                                                     : DEFAULT_USER_FILTER, esc);
        rc = ldapdir_search(d, base, LDAP_SCOPE_SUBTREE, filter, attrs, 2, &res);
    }
    enum dir_result r = DIR_FOUND;
    if (rc == LDAP_NO_SUCH_OBJECT || rc == LDAP_SIZELIMIT_EXCEEDED ||
        (rc == LDAP_SUCCESS && ldap_count_entries(d->ld, res) != 1)) {
        rn_err(err, errlen, "%s: %s", login_or_dn, rc == LDAP_SIZELIMIT_EXCEEDED ||
               (rc == LDAP_SUCCESS && ldap_count_entries(d->ld, res) > 1)
               ? "more than one directory entry matches" : "no such user");
        r = DIR_NOTFOUND;
    } else if (rc != LDAP_SUCCESS) {
        char what[LDAPDIR_DNBUF];
        snprintf(what, sizeof what, "search %s %s", by_dn ? login_or_dn : base, filter);
        r = ldapdir_error(d, rc, what, err, errlen);
    }
    free(filter);
    if (r != DIR_FOUND) {
        ldap_msgfree(res);
        free(base);
        return r;
    }
    LDAPMessage *m = ldap_first_entry(d->ld, res);
    char *user_dn = ldap_get_dn(d->ld, m);
    size_t nmail, nalias;
    char **mail = ldapdir_values(d->ld, m, "mail", &nmail);
    char **alias = ldapdir_values(d->ld, m, "relayMailAlias", &nalias);
    ldap_msgfree(res);

    struct dnset groups = {0};
    if (!user_dn) {
        rn_err(err, errlen, "%s: the directory returned an entry without a DN", login_or_dn);
        r = DIR_TEMPFAIL;
    } else {
        r = groups_walk(d, base, user_dn, &groups, err, errlen);
    }
    if (r == DIR_FOUND &&
        token_init_user(t, login_or_dn, user_dn, (const char *const *)groups.dn, groups.n) != 0) {
        /* Fail closed, as a temporary failure (454 4.7.0): never a token short of a group. */
        rn_err(err, errlen, "%.200s: the directory returned a DN that does not parse", user_dn);
        r = DIR_TEMPFAIL;
    }
    if (r == DIR_FOUND) {
        char **addr = xcalloc(nmail + nalias + 1, sizeof *addr);
        for (size_t i = 0; i < nmail; i++)
            addr[i] = mail[i];
        for (size_t i = 0; i < nalias; i++)
            addr[nmail + i] = alias[i];
        free(mail);
        free(alias);
        *addresses = addr;
        *naddresses = nmail + nalias;
    } else {
        ldapdir_values_free(mail, nmail);
        ldapdir_values_free(alias, nalias);
    }
    dnset_clear(&groups);
    ldap_memfree(user_dn);
    free(base);
    return r;
}

enum dir_result ldapdir_user_token(struct ldapdir *d, const struct rn_bootstrap *b,
                                   const struct rn_snapshot *snap, const char *login_or_dn,
                                   struct token *t, char ***addresses, size_t *naddresses,
                                   char *err, size_t errlen)
{
    return user_token(d, b, snap, login_or_dn, true, t, addresses, naddresses, err, errlen);
}

enum dir_result ldapdir_login_token(struct ldapdir *d, const struct rn_bootstrap *b,
                                    const struct rn_snapshot *snap, const char *login,
                                    struct token *t, char ***addresses, size_t *naddresses,
                                    char *err, size_t errlen)
{
    return user_token(d, b, snap, login, false, t, addresses, naddresses, err, errlen);
}
