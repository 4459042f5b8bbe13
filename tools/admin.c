/* admin: the shared half of relayctl's admin verbs. Validation reuses the loader's code
 * (connector_from_entry = connattr_apply per attribute, the unknown-attribute check,
 * validate_connector; then validate_conflict), so a write relayctl accepts is a connector
 * every node will load, and one it refuses is refused with the message the loader would have
 * logged. */
#include "tools/admin.h"
#include "tools/clusterbus.h"
#include "tools/output.h"
#include "directory/ldap/ldapdir.h"
#include "directory/base/util.h"
#include "directory/dnsname.h"
#include "directory/entry.h"
#include "directory/validate.h"
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *admin_help_options(void)
{
    static char *text;   /* built once, reachable until exit */
    if (!text)
        text = xasprintf("directory options (writes need the admin identity, e.g. --bind-dn\n"
                         "cn=admin,dc=example,dc=com --password-file FILE; passwords are never\n"
                         "taken on the command line; SASL EXTERNAL: sasl_mech = EXTERNAL in the\n"
                         "bootstrap file with an ldapi:// uri):\n%s"
                         "  --json                 print JSON instead of a table\n"
                         "  --ldif                 print a write as LDIF for ldapmodify\n"
                         "                         instead of writing it\n", dirconf_usage);
    return text;
}

void admin_init(struct admin *a, const char *verb)
{
    memset(a, 0, sizeof *a);
    a->verb = verb;
    dirconf_init(&a->dc);
}

void admin_init_sub(struct admin *a, const char *verb, const char *sub)
{
    admin_init(a, a->verb_buf);
    snprintf(a->verb_buf, sizeof a->verb_buf, "%s %s", verb, sub);
}

int admin_usage(const char *help_text, bool help)
{
    fputs(help_text, help ? stdout : stderr);
    if (help)
        fputs(admin_help_options(), stdout);
    return help ? 0 : 2;
}

int admin_getopt(struct admin *a, int argc, char **argv, const struct option *opts,
                 const char *help_text)
{
    int c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (c == 'h') {
            printf("%s%s", help_text, admin_help_options());
            return ADMIN_GETOPT_HELP;
        }
        if (!admin_option(a, c, optarg))
            return c;
    }
    return -1;
}

bool admin_option(struct admin *a, int opt, const char *arg)
{
    static const char *const flags[] = {"--config", "--uri", "--bind-dn", "--password-file",
                                        "--base", "--node"};
    if (opt >= ADMIN_OPT && opt < ADMIN_OPT + 6) {
        /* getopt found it; dirconf records it in command-line order */
        char *pair[2] = {(char *)flags[opt - ADMIN_OPT], (char *)arg};
        int i = 0;
        char err[RN_ERRLEN];
        a->opt[opt - ADMIN_OPT] = arg;
        dirconf_option(&a->dc, 2, pair, &i, err, sizeof err);
        return true;
    }
    if (opt == ADMIN_OPT + 6) {
        a->json = true;
        return true;
    }
    if (opt == ADMIN_OPT + 7) {
        a->ldif = true;
        return true;
    }
    return false;
}

int admin_fail(const struct admin *a, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    output_verror(a->verb, fmt, ap);
    va_end(ap);
    return code;
}

int admin_dir_fail(const struct admin *a, enum dir_result r, const char *err)
{
    return admin_fail(a, r == DIR_NOTFOUND ? 1 : 2, "%s", err);
}

/* Settings through dirconf (file, then flags). A bind DN without a password file is refused
 * rather than tried anonymously. */
static int admin_settings(struct admin *a)
{
    char err[RN_ERRLEN];
    if (a->opt[2] && !a->opt[3])
        return admin_fail(a, 2, "--bind-dn needs --password-file (passwords are never taken "
                                "on the command line)");
    if (dirconf_finish(&a->dc, err, sizeof err) != 0)
        return admin_fail(a, 2, "%s", err);
    /* The AD profile finds its objects from the root DSE (docs/ad-profile.md). */
    if (a->dc.boot.directory_profile != BOOT_PROFILE_AD &&
        (!a->dc.boot.base_dn || !*a->dc.boot.base_dn))
        return admin_fail(a, 2, "no relay subtree: give --base or base_dn in the bootstrap file");
    return 0;
}

int admin_nodes(struct admin *a, struct ldapadmin_node **nodes, size_t *n)
{
    char err[RN_ERRLEN];
    enum dir_result r = ldapadmin_list_nodes(a->d, a->dc.boot.base_dn, nodes, n, err,
                                             sizeof err);
    return r == DIR_FOUND ? 0 : admin_fail(a, 2, "%s", err);
}

/* The node: --node / the bootstrap's node, or the only node there is. */
static int admin_find_node(struct admin *a)
{
    struct ldapadmin_node *nodes;
    size_t n;
    if (admin_nodes(a, &nodes, &n) != 0)
        return 2;
    const char *want = a->dc.boot.node && *a->dc.boot.node ? a->dc.boot.node : NULL;
    struct ldapadmin_node *hit = NULL;
    for (size_t i = 0; i < n; i++)
        if (want ? nodes[i].name && rn_strieq(nodes[i].name, want) : n == 1)
            hit = &nodes[i];
    int rc = 0;
    if (!hit && want)
        rc = admin_fail(a, 2, "node '%s' not found under %s", want, a->dc.boot.base_dn);
    else if (!hit)
        rc = admin_fail(a, 2, "%zu nodes under %s: say which with --node", n,
                        a->dc.boot.base_dn);
    else {
        a->node_name = xstrdup(hit->name);
        a->node_dn = xstrdup(hit->dn);
        a->site_dn = hit->site_dn ? xstrdup(hit->site_dn) : NULL;
    }
    ldapadmin_nodes_free(&nodes, n);
    return rc;
}

int admin_open_nodeless(struct admin *a)
{
    int rc = admin_settings(a);
    if (rc)
        return rc;
    char err[RN_ERRLEN];
    enum dir_result r = dirconf_connect(&a->dc, &a->d, err, sizeof err);
    if (r != DIR_FOUND)
        return admin_fail(a, 2, "%s", err);
    return 0;
}

int admin_open(struct admin *a)
{
    int rc = admin_open_nodeless(a);
    return rc ? rc : admin_find_node(a);
}

void admin_close(struct admin *a)
{
    ldapdir_free(&a->d);
    dirconf_clear(&a->dc);
    free(a->node_name);
    free(a->node_dn);
    free(a->site_dn);
    a->node_name = a->node_dn = a->site_dn = NULL;
}

int admin_write(struct admin *a, const struct changeset *cs, const char *done_msg)
{
    if (cs->nchanges == 0) {
        if (!a->ldif)
            fprintf(stderr, "relayctl %s: no change\n", a->verb);
        return 0;
    }
    if (a->ldif) {
        char *ldif = changeset_ldif(cs);
        fputs(ldif, stdout);
        free(ldif);
        return 0;
    }
    char err[RN_ERRLEN];
    enum dir_result r = ldapadmin_apply(a->d, cs, err, sizeof err);
    if (r != DIR_FOUND)
        return admin_fail(a, r == DIR_TEMPFAIL ? 2 : 1, "%s", err);
    if (done_msg && !a->json)
        printf("%s\n", done_msg);
    /* News for the cluster bus (schema/cluster-protocol.md §3), when relayctl has a key.
     * Nodes also watch the directory and exchange heartbeats, so a lost notice only delays
     * convergence: a warning, never a failed write. */
    const char *key = a->dc.boot.cluster_secret_key_file;
    if (key && *key) {
        fflush(stdout);
        if (clusterbus_notice(a->d, &a->dc.boot, 500, NULL, err, sizeof err) < 0)
            fprintf(stderr, "relayctl %s: warning: cluster notice not sent: %s\n", a->verb,
                    err);
    }
    return 0;
}

int admin_add(struct admin *a, const struct dir_entry *e, const char *note)
{
    struct changeset *cs = changeset_new();
    changeset_add_entry(cs, e);
    char *msg = xasprintf("created %s%s", e->dn, note ? note : "");
    int rc = admin_write(a, cs, msg);
    free(msg);
    changeset_free(&cs);
    return rc;
}

int admin_delete(struct admin *a, const char *dn)
{
    struct changeset *cs = changeset_new();
    changeset_delete_entry(cs, dn);
    char *msg = xasprintf("removed %s", dn);
    int rc = admin_write(a, cs, msg);
    free(msg);
    changeset_free(&cs);
    return rc;
}

int admin_modify(struct admin *a, const struct dir_entry *old, const struct dir_entry *e,
                 const char *const *by_value, const char *done)
{
    struct changeset *cs = changeset_new();
    changeset_diff(cs, old, e, by_value);
    char *msg = xasprintf("%s %s", done, e->dn);
    int rc = admin_write(a, cs, msg);
    free(msg);
    changeset_free(&cs);
    return rc;
}

char *admin_rdn_escape(const char *value)
{
    size_t n = strlen(value);
    char *out = xmalloc(3 * n + 1), *w = out;
    for (size_t i = 0; i < n; i++) {
        char c = value[i];
        bool esc = strchr(",+\"\\<>;=", c) != NULL || (i == 0 && (c == '#' || c == ' ')) ||
                   (i == n - 1 && c == ' ');
        if (esc)
            *w++ = '\\';
        *w++ = c;
    }
    *w = '\0';
    return out;
}

/* ---- connectors ---- */

static void entries_append(struct dir_entries *dst, bool **site, struct dir_entries *src,
                           bool is_site)
{
    dst->v = xrealloc(dst->v, (dst->n + src->n + 1) * sizeof *dst->v);
    *site = xrealloc(*site, (dst->n + src->n + 1) * sizeof **site);
    for (size_t i = 0; i < src->n; i++) {
        (*site)[dst->n] = is_site;
        dst->v[dst->n++] = src->v[i];
    }
    free(src->v);
    src->v = NULL;
    src->n = 0;
}

static int connectors_under(struct admin *a, const char *base, struct dir_entries *out,
                            bool **site, bool is_site)
{
    char err[RN_ERRLEN];
    struct dir_entries es;
    enum dir_result r = ldapadmin_search(a->d, base, LA_ONE,
                                         "(objectClass=relayReceiveConnector)", &es, err,
                                         sizeof err);
    if (r != DIR_FOUND)
        return admin_fail(a, 2, "%s", err);
    entries_append(out, site, &es, is_site);
    return 0;
}

int admin_connectors(struct admin *a, struct dir_entries *out, bool **site)
{
    memset(out, 0, sizeof *out);
    *site = NULL;
    int rc = connectors_under(a, a->node_dn, out, site, false);
    if (!rc && a->site_dn)
        rc = connectors_under(a, a->site_dn, out, site, true);
    if (rc) {
        dir_entries_clear(out);
        free(*site);
        *site = NULL;
    }
    return rc;
}

int admin_lookup_connector(struct admin *a, const char *name, struct dir_entry *out,
                           bool *site_scoped)
{
    struct dir_entries es;
    bool *site;
    int rc = admin_connectors(a, &es, &site);
    if (rc)
        return rc;
    rc = 1;
    for (size_t i = 0; i < es.n; i++) {
        const char *cn = dir_entry_first(&es.v[i], "cn");
        if (rc && cn && rn_strieq(cn, name)) {
            dir_entry_copy(out, &es.v[i]);
            *site_scoped = site[i];
            rc = 0;
        }
    }
    dir_entries_clear(&es);
    free(site);
    return rc;
}

int admin_find_connector(struct admin *a, const char *name, struct dir_entry *out,
                         bool *site_scoped)
{
    int rc = admin_lookup_connector(a, name, out, site_scoped);
    if (rc == 1)
        admin_fail(a, 1, "connector '%s' not found on node %s or its site", name, a->node_name);
    return rc;
}

/* The connectors a site-scoped connector must not conflict with: the site's and every
 * node's of that site (each node loads the site's connectors beside its own). */
static int conflict_peers(struct admin *a, bool site_scoped, struct dir_entries *out,
                          bool **site)
{
    if (!site_scoped || !a->site_dn)
        return admin_connectors(a, out, site);
    memset(out, 0, sizeof *out);
    *site = NULL;
    char err[RN_ERRLEN];
    struct dir_entries nodes;
    enum dir_result r = ldapadmin_search(a->d, a->site_dn, LA_ONE, "(objectClass=relayNode)",
                                         &nodes, err, sizeof err);
    if (r != DIR_FOUND)
        return admin_fail(a, 2, "%s", err);
    int rc = connectors_under(a, a->site_dn, out, site, true);
    for (size_t i = 0; !rc && i < nodes.n; i++)
        rc = connectors_under(a, nodes.v[i].dn, out, site, false);
    dir_entries_clear(&nodes);
    return rc;
}

int admin_check_connector(struct admin *a, const struct dir_entry *e, bool site_scoped)
{
    char err[RN_ERRLEN], norm[1024], onorm[1024];
    struct rn_connector c;
    memset(&c, 0, sizeof c);
    int rc = 0;
    if (connector_from_entry(e, site_scoped, &c, err, sizeof err) != 0) {
        connector_clear(&c);
        return admin_fail(a, 1, "%s: %s", e->dn, err);
    }
    if (dn_normalize(e->dn, norm, sizeof norm, err, sizeof err) != 0) {
        connector_clear(&c);
        return admin_fail(a, 2, "%s: %s", e->dn, err);
    }
    struct dir_entries peers = {0};
    bool *site = NULL;
    rc = conflict_peers(a, site_scoped, &peers, &site);
    for (size_t i = 0; !rc && i < peers.n; i++) {
        if (dn_normalize(peers.v[i].dn, onorm, sizeof onorm, err, sizeof err) == 0 &&
            strcmp(norm, onorm) == 0)
            continue;                                    /* the connector being changed */
        struct rn_connector o;
        memset(&o, 0, sizeof o);
        /* A peer the loader refuses is never loaded, so it cannot conflict. */
        if (connector_from_entry(&peers.v[i], site[i], &o, err, sizeof err) == 0 &&
            validate_conflict(&c, &o, err, sizeof err) != 0)
            rc = admin_fail(a, 1, "%s: conflicts with %s: %s", e->dn, peers.v[i].dn, err);
        connector_clear(&o);
    }
    dir_entries_clear(&peers);
    free(site);
    connector_clear(&c);
    return rc;
}

/* ---- small parsers ---- */

void admin_split(const char *s, char ***v, size_t *n)
{
    while (s && *s) {
        size_t len = strcspn(s, ",");
        const char *p = s, *q = s + len;
        while (p < q && (*p == ' ' || *p == '\t'))
            p++;
        while (q > p && (q[-1] == ' ' || q[-1] == '\t'))
            q--;
        if (q > p) {
            *v = xrealloc(*v, (*n + 1) * sizeof **v);
            (*v)[(*n)++] = xstrndup(p, (size_t)(q - p));
        }
        s += len;
        if (*s == ',')
            s++;
    }
}

void admin_strv_free(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

const char *admin_bool(const char *s)
{
    static const char *const yes[] = {"true", "$true", "yes", "1", "on"};
    static const char *const no[] = {"false", "$false", "no", "0", "off"};
    for (size_t i = 0; s && i < 5; i++) {
        if (rn_strieq(s, yes[i]))
            return "TRUE";
        if (rn_strieq(s, no[i]))
            return "FALSE";
    }
    return NULL;
}

/* domain_name_check's rule (the loader's); the stored form is never longer than d. */
bool admin_domain_ok(char *d)
{
    char norm[DNSNAME_BUFLEN];
    if (domain_name_check(d, DNSNAME_WILDCARD, norm, sizeof norm, NULL, 0) != 0)
        return false;
    memcpy(d, norm, strlen(norm) + 1);
    return true;
}

char *admin_join_values(const struct dir_entry *e, const char *attr)
{
    const struct dir_attr *v = dir_entry_get(e, attr);
    size_t len = 1;
    for (size_t i = 0; v && i < v->nvalues; i++)
        len += strlen(v->values[i]) + 2;
    char *s = xcalloc(1, len), *p = s;
    for (size_t i = 0; v && i < v->nvalues; i++)
        p += sprintf(p, "%s%s", i ? ", " : "", v->values[i]);   /* len sized above */
    return s;
}

int admin_search_in(struct admin *a, const char *container, const char *filter,
                    struct dir_entries *out)
{
    char *base = xasprintf("cn=%s,%s", container, a->dc.boot.base_dn), err[RN_ERRLEN];
    enum dir_result r = ldapadmin_search(a->d, base, LA_ONE, filter, out, err, sizeof err);
    free(base);
    return r == DIR_FOUND ? 0 : admin_fail(a, 2, "%s", err);
}

int admin_list_container(struct admin *a, const char *container, const char *oc,
                         struct dir_entries *out)
{
    int rc = admin_open(a);
    if (rc)
        return rc;
    char *filter = xasprintf("(objectClass=%s)", oc);
    rc = admin_search_in(a, container, filter, out);
    free(filter);
    return rc;
}
