/* ldapload: the loader. It turns the relay subtree into an immutable snapshot for one node:
 * its own receive connectors and its site's, the accepted domains and the send connectors,
 * labelled with the directory's version (contextCSN) and a hash of every entry read. Each
 * entry is copied into a dir_entry and put into a store (snapdelta.h), which parses it with
 * entry.h (the parser relayctl uses before a write) and builds the snapshot; the change
 * watcher's entries go through the same store (ldapincr.c), so a full load and an
 * incremental one cannot differ. An entry that fails is left out and named in the
 * snapshot's errors, so one bad connector never takes the others down, and an ambiguous pair
 * (two connectors a client could get, one domain with two types) is refused on both sides
 * (fail closed). A server that cannot be reached is DIR_TEMPFAIL; malformed configuration
 * still yields a snapshot. */
#include <ldap.h>
#include "directory/ldap/ldapdir.h"
#include "directory/ldap/ldapdir-private.h"
#include "directory/entry.h"
#include "directory/snapdelta.h"
#include "directory/base/util.h"
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- entries into the store ---- */

/* What every search asks for: the entry, and the two operational attributes that tell the
 * store which entry it is (entryUUID, as the watcher names it) and how new (entryCSN). */
static char *entry_attrs[] = {"*", "entryUUID", "entryCSN", NULL};

/* Each entry of res into the store, which classifies and parses it (snapdelta.h). */
static int entries_put(struct ldapdir *d, LDAPMessage *res, struct snapstore *st, char *err,
                       size_t errlen)
{
    int rc = DIR_FOUND;
    for (LDAPMessage *m = ldap_first_entry(d->ld, res); m && rc == DIR_FOUND;
         m = ldap_next_entry(d->ld, m)) {
        struct dir_entry e;
        char uuid[SNAPDELTA_UUIDLEN];
        ldapdir_entry_from_msg(d->ld, m, &e);
        const char *u = dir_entry_first(&e, "entryUUID");
        snapdelta_uuid_format(u ? u : "", u ? strlen(u) : 0, false, uuid);
        if (snapstore_put(st, &e, uuid, dir_entry_first(&e, "entryCSN"), err, errlen) != 0)
            rc = DIR_FAIL;
        dir_entry_clear(&e);
    }
    return rc;
}

/* One search into the store. */
static int search_put(struct ldapdir *d, const char *base, int scope, const char *filter,
                      struct snapstore *st, char *err, size_t errlen)
{
    LDAPMessage *res;
    int rc = ldapdir_search(d, base, scope, filter, entry_attrs, LDAP_NO_LIMIT, &res);
    if (rc != LDAP_SUCCESS) {
        ldap_msgfree(res);
        char what[LDAPDIR_DNBUF + 64];
        snprintf(what, sizeof what, "search %s", base);
        return ldapdir_error(d, rc, what, err, errlen);
    }
    rc = entries_put(d, res, st, err, errlen);
    ldap_msgfree(res);
    return rc;
}

/* The node's and its site's receive connectors (one level under each), then accepted
 * domains, send connectors, node certificates and partner-domain containers anywhere under
 * the relay subtree. */
static int relay_entries_load(struct ldapdir *d, const char *base, const char *node_dn,
                              const char *site_dn, struct snapstore *st, char *err,
                              size_t errlen)
{
    const char *conn = "(objectClass=relayReceiveConnector)";
    int r = search_put(d, node_dn, LDAP_SCOPE_ONELEVEL, conn, st, err, errlen);
    if (r == DIR_FOUND)
        r = search_put(d, site_dn, LDAP_SCOPE_ONELEVEL, conn, st, err, errlen);
    if (r == DIR_FOUND)
        r = search_put(d, base, LDAP_SCOPE_SUBTREE,
                       "(|(objectClass=relayAcceptedDomain)(objectClass=relaySendConnector)"
                       "(&(objectClass=relayNode)(relayCertificateSha256=*))"
                       "(&(objectClass=relayContainer)(relayDomainSecureDomain=*)))",
                       st, err, errlen);
    return r;
}

enum dir_result ldapdir_store_recipients(struct ldapdir *d, const struct rn_bootstrap *b,
                                         struct snapstore *st, struct rn_snapshot *snap,
                                         char *err, size_t errlen)
{
    struct rcptset *set = NULL;
    uint64_t h = 14695981039346656037ULL;
    size_t refused = 0;
    enum dir_result r = ldapdir_load_recipients(d, b, &set, &h, &refused, err, errlen);
    if (r != DIR_FOUND)
        return r;
    snapstore_set_recipients(st, set, snapdelta_mix(h), refused,
                             b->user_base && *b->user_base ? b->user_base : "user_base");
    rcptset_free(&set);
    snapstore_attach_recipients(st, snap);
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

/* The node's entry (exactly one relayNode with its cn under base) and its site (the
 * parent, a relaySite). DIR_FOUND with *node_dn and *site_dn (caller frees). */
static enum dir_result node_site_find(struct ldapdir *d, const struct rn_bootstrap *b,
                                      char **node_dn, char **site_dn, char *err, size_t errlen)
{
    *node_dn = *site_dn = NULL;
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
    char *dn = ldap_get_dn(d->ld, ldap_first_entry(d->ld, res));
    ldap_msgfree(res);
    *node_dn = xstrdup(dn ? dn : "");
    ldap_memfree(dn);
    *site_dn = ldapdir_dn_parent(*node_dn);
    if (!*site_dn) {
        rn_err(err, errlen, "%s: a node must be the child of a relaySite", *node_dn);
        return DIR_FAIL;
    }
    rc = ldapdir_search(d, *site_dn, LDAP_SCOPE_BASE, "(objectClass=relaySite)", attrs, 0, &res);
    int sites = rc == LDAP_SUCCESS ? ldap_count_entries(d->ld, res) : 0;
    ldap_msgfree(res);
    if (rc != LDAP_SUCCESS && rc != LDAP_NO_SUCH_OBJECT) {
        char what[LDAPDIR_DNBUF];
        snprintf(what, sizeof what, "read site %s", *site_dn);
        return ldapdir_error(d, rc, what, err, errlen);
    }
    if (sites != 1) {
        rn_err(err, errlen, "%s: the parent of node %s is not a relaySite", *site_dn, *node_dn);
        return DIR_FAIL;
    }
    return DIR_FOUND;
}

enum dir_result ldapdir_load_store(struct ldapdir *d, const struct rn_bootstrap *b,
                                   struct snapstore **store, struct rn_snapshot **out,
                                   char *err, size_t errlen)
{
    *out = NULL;
    if (store)
        *store = NULL;
    if (b->directory_profile == BOOT_PROFILE_AD)       /* adload.c: no store, full loads */
        return addir_load_snapshot(d, b, out, err, errlen);
    /* The version is read before the data: a snapshot labelled V then holds at least V's
     * changes. Read after, a change landing between the two reads would label old data
     * with the new version, and every later reload of that version would be skipped. */
    char *node_dn = NULL, *site_dn = NULL, *version = NULL;
    enum dir_result r = node_site_find(d, b, &node_dn, &site_dn, err, errlen);
    if (r == DIR_FOUND) {
        version = version_read(d, b->base_dn);
        if (!version)
            version = version_stamp();
    }
    char *user_base = ldapdir_user_base(b);
    struct snapstore *st = r == DIR_FOUND ? snapstore_new(b->node, node_dn, site_dn, user_base)
                                          : NULL;
    free(user_base);
    if (r == DIR_FOUND)
        r = relay_entries_load(d, b->base_dn, node_dn, site_dn, st, err, errlen);
    if (st)
        snapstore_set_version(st, version);
    struct rn_snapshot *s = r == DIR_FOUND ? snapstore_build(st, version) : NULL;
    /* Only when some Authoritative domain looks recipients up: a relay-only configuration
     * never reads the users. */
    if (r == DIR_FOUND && snapshot_needs_recipients(s))
        r = ldapdir_store_recipients(d, b, st, s, err, errlen);
    free(node_dn);
    free(site_dn);
    free(version);
    if (r != DIR_FOUND) {
        snapshot_unref(&s);
        snapstore_free(&st);
        return r;
    }
    *out = s;
    if (store)
        *store = st;
    else
        snapstore_free(&st);
    return DIR_FOUND;
}

enum dir_result ldapdir_load_snapshot(struct ldapdir *d, const struct rn_bootstrap *b,
                                      struct rn_snapshot **out, char *err, size_t errlen)
{
    return ldapdir_load_store(d, b, NULL, out, err, errlen);
}
