/* connector: `relayctl connector new|set|get|list|remove`, New-/Set-/Get-/Remove-
 * ReceiveConnector for a directory. Every connattr.c attribute is a flag named after its
 * Exchange property (MaxMessageSize -> --max-message-size); connflags.c maps the flags onto
 * the entry and back. Permission groups are macros (docs/permission-model.md §1): `new` expands the
 * usage type's groups into ACEs (§1.6), `set --permission-groups` strips every group's
 * (principal, default rights) pairs and expands the new ones (§1.5) so extra ACEs survive,
 * and `get` derives the groups back, Custom included (§1.4). Every write is checked by
 * admin_check_connector before it is made or printed. */
#include "tools/relayctl.h"
#include "tools/admin.h"
#include "tools/connflags.h"
#include "tools/output.h"
#include "directory/acl.h"
#include "directory/connattr.h"
#include "directory/validate.h"
#include "directory/base/util.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* New-ReceiveConnector's defaults per usage type (docs/permission-model.md §1.6), Partner's
 * DomainSecureEnabled included. */
static const struct usage {
    const char *name;
    unsigned groups, auth;
    const char *binding, *range, *pct_per_source;
} usages[] = {
    {"Custom", GROUP_NONE, AUTH_TLS, NULL, NULL, NULL},
    {"Internet", GROUP_ANONYMOUS, AUTH_TLS, NULL, "0.0.0.0-255.255.255.255", NULL},
    {"Internal", GROUP_EXCHANGE_SERVERS | GROUP_LEGACY_SERVERS, AUTH_TLS | AUTH_EXCHANGE_SERVER,
     "0.0.0.0:25", NULL, "100"},
    {"Client", GROUP_EXCHANGE_USERS,
     AUTH_TLS | AUTH_INTEGRATED | AUTH_BASIC | AUTH_BASIC_REQUIRE_TLS, "0.0.0.0:587", NULL, NULL},
    {"Partner", GROUP_PARTNERS, AUTH_TLS, NULL, NULL, NULL},
};
/* No --usage on a non-Edge server. */
static const struct usage usage_none = {
    NULL, GROUP_EXCHANGE_USERS | GROUP_EXCHANGE_SERVERS | GROUP_LEGACY_SERVERS,
    AUTH_TLS | AUTH_INTEGRATED | AUTH_BASIC | AUTH_BASIC_REQUIRE_TLS | AUTH_EXCHANGE_SERVER,
    NULL, NULL, NULL};

/* The entry `connector new` writes: the usage type's defaults, the flags given, the
 * groups' ACEs. */
static void new_entry(const struct admin *a, const struct connflags *f, const struct usage *u,
                      unsigned groups, const char *name, struct dir_entry *e)
{
    char *rdn = admin_rdn_escape(name);
    char *dn = xasprintf("cn=%s,%s", rdn, f->site ? a->site_dn : a->node_dn);
    dir_entry_init(e, dn);
    free(dn);
    free(rdn);
    dir_entry_add(e, "objectClass", "relayReceiveConnector");
    dir_entry_add(e, "cn", name);
    dir_entry_add(e, "relayEnabled", "TRUE");
    if (u->binding)
        dir_entry_add(e, "relayBinding", u->binding);
    if (u->range)
        dir_entry_add(e, "relayRemoteIPRange", u->range);
    char auth[128];
    auth_mechs_format(u->auth, auth, sizeof auth);
    char **av = NULL;
    size_t an = 0;
    admin_split(auth, &av, &an);
    dir_entry_set(e, "relayAuthMechanism", (const char *const *)av, an);
    admin_strv_free(av, an);
    if (u->pct_per_source)
        dir_entry_add(e, "relayMaxInboundConnectionPercentagePerSource", u->pct_per_source);
    if (u->groups == GROUP_PARTNERS)   /* Partner: a partner is known by its certificate */
        dir_entry_add(e, "relayDomainSecureEnabled", "TRUE");
    connflags_apply(f, e);
    struct ace *aces = NULL;
    size_t naces = 0;
    acl_expand_groups(groups, &aces, &naces);
    connflags_set_aces(e, aces, naces);
    connflags_free_aces(aces, naces);
}

/* --permission-groups into *groups (left as it is when not given), then open the
 * directory: 0, or the exit code after printing why. */
static int groups_open(struct admin *a, const struct connflags *f, unsigned *groups)
{
    char err[RN_ERRLEN];
    if (f->groups && groups_parse(f->groups, groups, err, sizeof err) != 0)
        return admin_fail(a, 2, "--permission-groups: %s", err);
    return admin_open(a);
}

static int new_run(struct admin *a, const struct connflags *f, const char *name)
{
    const struct usage *u = &usage_none;
    if (f->usage) {
        u = NULL;
        for (size_t i = 0; i < sizeof usages / sizeof usages[0]; i++)
            if (rn_strieq(f->usage, usages[i].name))
                u = &usages[i];
        if (!u)
            return admin_fail(a, 2, "unknown --usage '%s' (Custom, Internet, Internal, Client, "
                                    "Partner)", f->usage);
    }
    unsigned groups = u->groups;
    int rc = groups_open(a, f, &groups);
    if (rc)
        return rc;
    struct dir_entry e, old;
    bool old_site;
    if ((rc = admin_lookup_connector(a, name, &old, &old_site)) != 1) {
        if (rc == 2)
            return rc;
        dir_entry_clear(&old);
        return admin_fail(a, 1, "connector '%s' already exists", name);
    }
    if (f->site && !a->site_dn)
        return admin_fail(a, 2, "node %s has no site entry above it", a->node_name);
    new_entry(a, f, u, groups, name, &e);
    if (!dir_entry_get(&e, "relayBinding"))
        rc = admin_fail(a, 2, "--bindings is required (e.g. --bindings 0.0.0.0:25)");
    else if (!dir_entry_get(&e, "relayRemoteIPRange"))
        rc = admin_fail(a, 2, "--remote-ip-ranges is required (e.g. --remote-ip-ranges "
                               "192.168.2.55,192.168.2.56)");
    else
        rc = admin_check_connector(a, &e, f->site);
    if (rc == 0)
        rc = admin_add(a, &e, NULL);
    dir_entry_clear(&e);
    return rc;
}

/* set --permission-groups: every group's ACEs replaced, other ACEs kept (§1.5). */
static int set_groups(struct admin *a, struct dir_entry *e, unsigned groups)
{
    struct ace *aces;
    size_t naces;
    char err[RN_ERRLEN];
    if (connflags_parse_aces(e, &aces, &naces, err, sizeof err, false) != 0)
        return admin_fail(a, 1, "%s: cannot rewrite permission groups: %s", e->dn, err);
    acl_strip_groups(&aces, &naces);
    acl_expand_groups(groups, &aces, &naces);
    connflags_set_aces(e, aces, naces);
    connflags_free_aces(aces, naces);
    return 0;
}

static int set_run(struct admin *a, const struct connflags *f, const char *name)
{
    unsigned groups = 0;
    if (!connflags_any(f))
        return admin_fail(a, 2, "nothing to set (see --help)");
    int rc = groups_open(a, f, &groups);
    if (rc)
        return rc;
    struct dir_entry old, e;
    bool site;
    if ((rc = admin_find_connector(a, name, &old, &site)) != 0)
        return rc;
    dir_entry_copy(&e, &old);
    connflags_apply(f, &e);
    if (f->groups)
        rc = set_groups(a, &e, groups);
    if (rc == 0)
        rc = admin_check_connector(a, &e, site);
    if (rc == 0) {
        static const char *const by_value[] = {"relayAce", NULL};
        rc = admin_modify(a, &old, &e, by_value, "changed");
    }
    dir_entry_clear(&old);
    dir_entry_clear(&e);
    return rc;
}

/* new and set: parse the flags, then write. */
static int connector_write(struct admin *a, int argc, char **argv, bool is_new)
{
    struct connflags f;
    const char *name = NULL;
    int rc = connflags_parse(a, &f, argc, argv, is_new, &name);
    if (rc == 0)
        rc = is_new ? new_run(a, &f, name) : set_run(a, &f, name);
    connflags_clear(&f);
    return rc < 0 ? 0 : rc;
}

static int connector_new(struct admin *a, int argc, char **argv)
{
    return connector_write(a, argc, argv, true);
}

static int connector_set(struct admin *a, int argc, char **argv)
{
    return connector_write(a, argc, argv, false);
}

/* get/list/remove share one parse: the common options and exactly `npos` positionals.
 * 0; -1 after printing --help; 2 after printing a usage error. */
static int parse_simple(struct admin *a, int argc, char **argv, int npos, const char *usage,
                        const char *what, const char **pos)
{
    static const struct option opts[] = {ADMIN_LONGOPTS, {0, 0, 0, 0}};
    char *help = xasprintf("usage: relayctl connector %s\n\n%s\n\n", usage, what);
    optind = 0;
    int c = admin_getopt(a, argc, argv, opts, help);
    free(help);
    if (c != -1)
        return c == ADMIN_GETOPT_HELP ? -1 : 2;
    if (argc - optind != npos)
        return admin_fail(a, 2, "usage: relayctl connector %s", usage);
    if (npos)
        *pos = argv[optind];
    return 0;
}

/* connector get's output: every property (defaults for absent ones), the ACEs, and why
 * the loader would refuse the connector (error, NULL when it loads). */
static void get_print(const struct admin *a, const struct dir_entry *e, const char *scope,
                      const char *groups, const char *error)
{
    const struct dir_attr *aces = dir_entry_get(e, "relayAce");
    struct json *j = a->json ? json_new(stdout) : NULL;
    static const char *const hdr[] = {"Property", "Value"};
    struct table *t = j ? NULL : table_new(2, hdr);
    const char *rows[][2] = {{"Name", dir_entry_first(e, "cn")}, {"Identity", e->dn},
                             {"Scope", scope}, {"PermissionGroups", groups}};
    if (j) {
        json_begin_object(j, NULL);
        json_string(j, "Name", rows[0][1]);
        json_string(j, "Identity", e->dn);
        json_string(j, "Scope", scope);
        json_list(j, "PermissionGroups", groups);
    } else {
        for (size_t i = 0; i < 4; i++)
            table_row(t, rows[i]);
    }
    for (size_t i = 0; i < connattr_count; i++) {
        const struct connattr *ca = &connattr_table[i];
        if (ca->type == CA_ACES)
            continue;
        char *v = connflags_display(e, ca);
        const char *row[2] = {ca->exchange, v};
        if (j && ca->multi)
            json_list(j, ca->exchange, v);
        else if (j)
            json_string(j, ca->exchange, v);
        else
            table_row(t, row);
        free(v);
    }
    if (j) {
        json_begin_array(j, "Aces");
        for (size_t i = 0; aces && i < aces->nvalues; i++)
            json_string(j, NULL, aces->values[i]);
        json_end_array(j);
        json_string(j, "Error", error);
        json_end_object(j);
        json_free(&j);
        return;
    }
    for (size_t i = 0; aces && i < aces->nvalues; i++) {
        const char *row[2] = {"Ace", aces->values[i]};
        table_row(t, row);
    }
    if (error) {
        const char *row[2] = {"Error", error};
        table_row(t, row);
    }
    table_print(t, stdout);
    table_free(&t);
}

static int connector_get(struct admin *a, int argc, char **argv)
{
    const char *name = NULL;
    int rc = parse_simple(a, argc, argv, 1, "get NAME [--json]",
                          "Show every attribute of a receive connector (defaults for absent ones)\n"
                          "and its PermissionGroups derived from the ACEs, Custom included.",
                          &name);
    if (rc || (rc = admin_open(a)) != 0)
        return rc < 0 ? 0 : rc;
    struct dir_entry e;
    bool site;
    if ((rc = admin_find_connector(a, name, &e, &site)) != 0)
        return rc;
    char groups[256], err[RN_ERRLEN] = "";
    connflags_groups(&e, groups, sizeof groups);
    struct rn_connector c;
    memset(&c, 0, sizeof c);
    bool valid = connector_from_entry(&e, site, &c, err, sizeof err) == 0;
    connector_clear(&c);
    get_print(a, &e, site ? "Site" : "Node", groups, valid ? NULL : err);
    dir_entry_clear(&e);
    return 0;
}

static int connector_list(struct admin *a, int argc, char **argv)
{
    int rc = parse_simple(a, argc, argv, 0, "list [--json]",
                          "List the receive connectors of the node and its site.", NULL);
    if (rc || (rc = admin_open(a)) != 0)
        return rc < 0 ? 0 : rc;
    struct dir_entries es;
    bool *site;
    if ((rc = admin_connectors(a, &es, &site)) != 0)
        return rc;
    static const char *const hdr[] = {"Name", "Scope", "Enabled", "Bindings", "RemoteIPRanges",
                                      "AuthMechanism", "PermissionGroups"};
    static const char *const attrs[] = {"relayEnabled", "relayBinding", "relayRemoteIPRange",
                                        "relayAuthMechanism"};
    struct listing l;
    listing_begin(&l, a->json, 7, hdr);
    struct json *j = l.j;
    for (size_t i = 0; i < es.n; i++) {
        char groups[256];
        connflags_groups(&es.v[i], groups, sizeof groups);
        char *v[4];
        for (size_t k = 0; k < 4; k++)
            v[k] = connflags_display(&es.v[i], connattr_lookup(attrs[k]));
        const char *row[7] = {dir_entry_first(&es.v[i], "cn"), site[i] ? "Site" : "Node",
                              v[0], v[1], v[2], v[3], groups};
        if (j) {
            json_begin_object(j, NULL);
            json_string(j, "Name", row[0]);
            json_string(j, "Identity", es.v[i].dn);
            json_string(j, "Scope", row[1]);
            json_bool(j, "Enabled", strcmp(v[0], "TRUE") == 0);
            json_list(j, "Bindings", v[1]);
            json_list(j, "RemoteIPRanges", v[2]);
            json_list(j, "AuthMechanism", v[3]);
            json_list(j, "PermissionGroups", groups);
            json_end_object(j);
        } else {
            table_row(l.t, row);
        }
        for (size_t k = 0; k < 4; k++)
            free(v[k]);
    }
    listing_end(&l);
    dir_entries_clear(&es);
    free(site);
    return 0;
}

static int connector_remove(struct admin *a, int argc, char **argv)
{
    const char *name = NULL;
    int rc = parse_simple(a, argc, argv, 1, "remove NAME [--ldif]",
                          "Delete a receive connector (Remove-ReceiveConnector).", &name);
    if (rc || (rc = admin_open(a)) != 0)
        return rc < 0 ? 0 : rc;
    struct dir_entry e;
    bool site;
    if ((rc = admin_find_connector(a, name, &e, &site)) == 0) {
        rc = admin_delete(a, e.dn);
        dir_entry_clear(&e);
    }
    return rc;
}

int relayctl_connector(int argc, char **argv)
{
    static const struct {
        const char *name;
        int (*run)(struct admin *a, int argc, char **argv);
    } subs[] = {
        {"new", connector_new}, {"set", connector_set}, {"get", connector_get},
        {"list", connector_list}, {"remove", connector_remove},
    };
    for (size_t i = 0; argc >= 2 && i < sizeof subs / sizeof subs[0]; i++) {
        if (strcmp(argv[1], subs[i].name))
            continue;
        struct admin a;
        admin_init_sub(&a, "connector", subs[i].name);
        int rc = subs[i].run(&a, argc - 1, argv + 1);
        admin_close(&a);
        return rc;
    }
    FILE *out = argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) ? stdout
                                                                                   : stderr;
    fprintf(out, "usage: relayctl connector new|set|get|list|remove ... (each has --help)\n");
    return out == stdout ? 0 : 2;
}
