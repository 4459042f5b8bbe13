/* ldapadmin: relayctl's directory reads and writes through libldap, on the connection
 * ldapdir_open made (the loader and the tools share one way to connect and bind). Results map
 * to FOUND / NOTFOUND / TEMPFAIL / FAIL like the loader's: a server that is down is TEMPFAIL,
 * a refused write is FAIL with the server's own words. */
#include <ldap.h>
#include "directory/ldap/ldapadmin.h"
#include "directory/ldap/ldapdir-private.h"
#include "directory/base/util.h"
#include <stdlib.h>
#include <string.h>

static enum dir_result ld_fail(LDAP *ld, int rc, const char *what, char *err, size_t errlen)
{
    char *diag = NULL;
    ldap_get_option(ld, LDAP_OPT_DIAGNOSTIC_MESSAGE, &diag);
    rn_err(err, errlen, "%s: %s%s%s%s", what, ldap_err2string(rc), diag && *diag ? " (" : "",
           diag && *diag ? diag : "", diag && *diag ? ")" : "");
    ldap_memfree(diag);
    return rc == LDAP_SERVER_DOWN || rc == LDAP_TIMEOUT || rc == LDAP_CONNECT_ERROR ||
           rc == LDAP_BUSY || rc == LDAP_UNAVAILABLE ? DIR_TEMPFAIL : DIR_FAIL;
}

enum dir_result ldapadmin_search(struct ldapdir *d, const char *base, enum ldapadmin_scope scope,
                                 const char *filter, struct dir_entries *out, char *err,
                                 size_t errlen)
{
    LDAP *ld = ldapdir_handle(d);
    static const int scopes[] = {LDAP_SCOPE_BASE, LDAP_SCOPE_ONELEVEL, LDAP_SCOPE_SUBTREE};
    LDAPMessage *res = NULL;
    memset(out, 0, sizeof *out);
    int rc = ldap_search_ext_s(ld, base, scopes[scope], filter, NULL, 0, NULL, NULL, NULL,
                               LDAP_NO_LIMIT, &res);
    if (rc == LDAP_NO_SUCH_OBJECT) {
        ldap_msgfree(res);
        rn_err(err, errlen, "%s: no such entry", base);
        return DIR_NOTFOUND;
    }
    if (rc != LDAP_SUCCESS) {
        ldap_msgfree(res);
        char *what = xasprintf("search %s", base);
        enum dir_result r = ld_fail(ld, rc, what, err, errlen);
        free(what);
        return r;
    }
    int count = ldap_count_entries(ld, res);
    out->v = xcalloc(count > 0 ? (size_t)count : 1, sizeof *out->v);
    for (LDAPMessage *m = ldap_first_entry(ld, res); m; m = ldap_next_entry(ld, m))
        ldapdir_entry_from_msg(ld, m, &out->v[out->n++]);
    ldap_msgfree(res);
    return DIR_FOUND;
}

enum dir_result ldapadmin_read(struct ldapdir *d, const char *dn, struct dir_entry *out,
                               char *err, size_t errlen)
{
    struct dir_entries es;
    enum dir_result r = ldapadmin_search(d, dn, LA_BASE, "(objectClass=*)", &es, err, errlen);
    if (r != DIR_FOUND)
        return r;
    if (es.n != 1) {
        dir_entries_clear(&es);
        rn_err(err, errlen, "%s: no such entry", dn);
        return DIR_NOTFOUND;
    }
    *out = es.v[0];
    free(es.v);
    return DIR_FOUND;
}

enum dir_result ldapadmin_exists(struct ldapdir *d, const char *dn, char *err, size_t errlen)
{
    LDAP *ld = ldapdir_handle(d);
    LDAPMessage *res = NULL;
    char *attrs[] = {LDAP_NO_ATTRS, NULL};
    int rc = ldap_search_ext_s(ld, dn, LDAP_SCOPE_BASE, "(objectClass=*)", attrs, 0, NULL, NULL,
                               NULL, 1, &res);
    ldap_msgfree(res);
    if (rc == LDAP_SUCCESS)
        return DIR_FOUND;
    if (rc == LDAP_NO_SUCH_OBJECT || rc == LDAP_INVALID_DN_SYNTAX) {
        rn_err(err, errlen, "%s: no such entry", dn);
        return DIR_NOTFOUND;
    }
    char *what = xasprintf("read %s", dn);
    enum dir_result r = ld_fail(ld, rc, what, err, errlen);
    free(what);
    return r;
}

/* ---- writes ---- */

/* LDAPMod array for n attributes (values as berval strings); freed with mods_free. */
static LDAPMod **mods_make(const struct dir_attr *const *attrs, const int *ops, size_t n)
{
    LDAPMod **mods = xcalloc(n + 1, sizeof *mods);
    for (size_t i = 0; i < n; i++) {
        LDAPMod *m = mods[i] = xcalloc(1, sizeof *m);
        m->mod_op = ops[i] | LDAP_MOD_BVALUES;
        m->mod_type = attrs[i]->name;
        if (attrs[i]->nvalues == 0)
            continue;                  /* delete or replace of the whole attribute */
        m->mod_bvalues = xcalloc(attrs[i]->nvalues + 1, sizeof *m->mod_bvalues);
        for (size_t k = 0; k < attrs[i]->nvalues; k++) {
            struct berval *bv = m->mod_bvalues[k] = xcalloc(1, sizeof *bv);
            bv->bv_val = attrs[i]->values[k];
            bv->bv_len = strlen(attrs[i]->values[k]);
        }
    }
    return mods;
}

static void mods_free(LDAPMod **mods)
{
    for (size_t i = 0; mods[i]; i++) {
        for (size_t k = 0; mods[i]->mod_bvalues && mods[i]->mod_bvalues[k]; k++)
            free(mods[i]->mod_bvalues[k]);
        free(mods[i]->mod_bvalues);
        free(mods[i]);
    }
    free(mods);
}

static int apply_one(LDAP *ld, const struct change *c)
{
    static const int opmap[] = {LDAP_MOD_ADD, LDAP_MOD_DELETE, LDAP_MOD_REPLACE};
    size_t n = c->kind == CHANGE_ADD ? c->nattrs : c->nmods;
    const struct dir_attr **attrs = xcalloc(n + 1, sizeof *attrs);
    int *ops = xcalloc(n + 1, sizeof *ops);
    for (size_t i = 0; i < n; i++) {
        attrs[i] = c->kind == CHANGE_ADD ? &c->attrs[i] : &c->mods[i].attr;
        ops[i] = c->kind == CHANGE_ADD ? LDAP_MOD_ADD : opmap[c->mods[i].op];
    }
    int rc;
    if (c->kind == CHANGE_DELETE) {
        rc = ldap_delete_ext_s(ld, c->dn, NULL, NULL);
    } else {
        LDAPMod **mods = mods_make(attrs, ops, n);
        rc = c->kind == CHANGE_ADD ? ldap_add_ext_s(ld, c->dn, mods, NULL, NULL)
                                   : ldap_modify_ext_s(ld, c->dn, mods, NULL, NULL);
        mods_free(mods);
    }
    free(attrs);
    free(ops);
    return rc;
}

enum dir_result ldapadmin_apply(struct ldapdir *d, const struct changeset *cs, char *err,
                                size_t errlen)
{
    LDAP *ld = ldapdir_handle(d);
    for (size_t i = 0; i < cs->nchanges; i++) {
        int rc = apply_one(ld, &cs->changes[i]);
        if (rc != LDAP_SUCCESS)
            return ld_fail(ld, rc, cs->changes[i].dn, err, errlen);
    }
    return DIR_FOUND;
}

/* ---- groups ---- */

struct strset { char **v; size_t n; };

static bool strset_add(struct strset *s, const char *x)
{
    for (size_t i = 0; i < s->n; i++)
        if (strcmp(s->v[i], x) == 0)
            return false;
    s->v = xrealloc(s->v, (s->n + 1) * sizeof *s->v);
    s->v[s->n++] = xstrdup(x);
    return true;
}

static void strset_clear(struct strset *s)
{
    for (size_t i = 0; i < s->n; i++)
        free(s->v[i]);
    free(s->v);
    memset(s, 0, sizeof *s);
}

/* Depth-first over member values; `seen` holds normalised DNs so a cycle or a group reached
 * twice is walked once. A member that cannot be read is skipped: it names nobody. */
static enum dir_result walk_members(struct ldapdir *d, const char *dn, struct strset *seen,
                                    struct strset *out, bool top, char *err, size_t errlen)
{
    char norm[1024], nerr[RN_ERRLEN];
    if (dn_normalize(dn, norm, sizeof norm, nerr, sizeof nerr) != 0)
        return top ? (rn_err(err, errlen, "%s: %s", dn, nerr), DIR_FAIL) : DIR_FOUND;
    if (!strset_add(seen, norm))
        return DIR_FOUND;
    struct dir_entry e;
    enum dir_result r = ldapadmin_read(d, dn, &e, err, errlen);
    if (r == DIR_NOTFOUND && !top)
        return DIR_FOUND;
    if (r != DIR_FOUND)
        return r;
    const struct dir_attr *m = dir_entry_get(&e, "member");
    bool group = m != NULL;
    const struct dir_attr *oc = dir_entry_get(&e, "objectClass");
    for (size_t i = 0; oc && i < oc->nvalues; i++)
        if (rn_strieq(oc->values[i], "groupOfNames") || rn_strieq(oc->values[i], "groupOfUniqueNames"))
            group = true;
    if (!group)
        strset_add(out, e.dn);
    for (size_t i = 0; m && r == DIR_FOUND && i < m->nvalues; i++)
        r = walk_members(d, m->values[i], seen, out, false, err, errlen);
    dir_entry_clear(&e);
    return r;
}

enum dir_result ldapadmin_group_members(struct ldapdir *d, const char *dn, char ***members,
                                        size_t *n, char *err, size_t errlen)
{
    struct strset seen = {0}, out = {0};
    enum dir_result r = walk_members(d, dn, &seen, &out, true, err, errlen);
    strset_clear(&seen);
    if (r != DIR_FOUND) {
        strset_clear(&out);
        *members = NULL;
        *n = 0;
        return r;
    }
    *members = out.v;
    *n = out.n;
    return DIR_FOUND;
}

/* ---- nodes ---- */

static char *dup_or_null(const char *s)
{
    return s ? xstrdup(s) : NULL;
}

static int node_cmp(const void *a, const void *b)
{
    const struct ldapadmin_node *x = a, *y = b;
    return strcmp(x->name ? x->name : "", y->name ? y->name : "");
}

enum dir_result ldapadmin_list_nodes(struct ldapdir *d, const char *base,
                                     struct ldapadmin_node **out, size_t *n, char *err,
                                     size_t errlen)
{
    struct dir_entries es;
    *out = NULL;
    *n = 0;
    enum dir_result r = ldapadmin_search(d, base, LA_SUB, "(objectClass=relayNode)", &es, err,
                                         errlen);
    if (r != DIR_FOUND)
        return r;
    *out = xcalloc(es.n ? es.n : 1, sizeof **out);
    for (size_t i = 0; i < es.n; i++) {
        struct ldapadmin_node *nd = &(*out)[i];
        const struct dir_entry *e = &es.v[i];
        nd->dn = xstrdup(e->dn);
        nd->name = dup_or_null(dir_entry_first(e, "cn"));
        nd->hostname = dup_or_null(dir_entry_first(e, "relayHostName"));
        nd->endpoint = dup_or_null(dir_entry_first(e, "relayClusterEndpoint"));
        nd->pubkey = dup_or_null(dir_entry_first(e, "relayCurvePublicKey"));
        LDAPDN parsed = NULL;   /* the site is the parent entry: cn=<node>,cn=<site>,... */
        if (ldap_str2dn(e->dn, &parsed, LDAP_DN_FORMAT_LDAPV3) == LDAP_SUCCESS && parsed &&
            parsed[0] && parsed[1]) {
            LDAPAVA *ava = parsed[1][0];
            nd->site = xstrndup(ava->la_value.bv_val, ava->la_value.bv_len);
            char *parent = NULL;
            LDAPDN tail = &parsed[1];
            if (ldap_dn2str(tail, &parent, LDAP_DN_FORMAT_LDAPV3) == LDAP_SUCCESS && parent) {
                nd->site_dn = xstrdup(parent);
                ldap_memfree(parent);
            }
        }
        ldap_dnfree(parsed);
    }
    *n = es.n;
    dir_entries_clear(&es);
    qsort(*out, *n, sizeof **out, node_cmp);
    return DIR_FOUND;
}

void ldapadmin_nodes_free(struct ldapadmin_node **nodes, size_t n)
{
    if (!nodes || !*nodes)
        return;
    for (size_t i = 0; i < n; i++) {
        struct ldapadmin_node *nd = &(*nodes)[i];
        free(nd->dn); free(nd->name); free(nd->site); free(nd->site_dn);
        free(nd->hostname); free(nd->endpoint); free(nd->pubkey);
    }
    free(*nodes);
    *nodes = NULL;
}
