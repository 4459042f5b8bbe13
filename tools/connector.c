/* connector: `relayctl connector new|set|get|list|remove`, New-/Set-/Get-/Remove-
 * ReceiveConnector for a directory. Every connattr.c attribute is a flag named after its
 * Exchange property (MaxMessageSize -> --max-message-size). Permission groups are macros
 * (docs/permission-model.md §1): `new` expands the usage type's groups into ACEs (§1.6), `set
 * --permission-groups` strips every group's (principal, default rights) pairs and expands the
 * new ones (§1.5) so extra ACEs survive, and `get` derives the groups back, Custom included
 * (§1.4). Every write is checked by admin_check_connector before it is made or printed. */
#include "tools/relayctl.h"
#include "tools/admin.h"
#include "tools/output.h"
#include "directory/acl.h"
#include "directory/connattr.h"
#include "directory/validate.h"
#include "directory/base/util.h"
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define OPT_ATTR 2000            /* + index in connattr_table */
#define OPT_USAGE 3000
#define OPT_GROUPS 3001
#define OPT_SITE 3002

/* New-ReceiveConnector's defaults per usage type (docs/permission-model.md §1.6). Partner's
 * DomainSecureEnabled has no attribute here (no TLS domain security yet). */
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

/* "RemoteIPRanges" -> "remote-ip-ranges", "RequireTLS" -> "require-tls". */
static void flag_name(const char *exchange, char *out, size_t len)
{
    size_t w = 0;
    for (size_t i = 0; exchange[i] && w + 2 < len; i++) {
        char c = exchange[i];
        bool up = isupper((unsigned char)c);
        if (i && up && (islower((unsigned char)exchange[i - 1]) ||
                        (exchange[i + 1] && islower((unsigned char)exchange[i + 1]))))
            out[w++] = '-';
        out[w++] = (char)tolower((unsigned char)c);
    }
    out[w] = '\0';
}

struct flags {
    char names[64][48];
    struct option opts[64];
    char **values[64]; size_t nvalues[64]; bool set[64];
    const char *usage, *groups;
    bool site;
};

static void flags_init(struct flags *f, bool with_new)
{
    static const struct option common[] = {ADMIN_LONGOPTS, {0, 0, 0, 0}};
    memset(f, 0, sizeof *f);
    size_t k = 0;
    for (size_t i = 0; i < connattr_count && k < 50; i++) {
        if (connattr_table[i].type == CA_ACES)
            continue;
        flag_name(connattr_table[i].exchange, f->names[i], sizeof f->names[i]);
        f->opts[k++] = (struct option){f->names[i], connattr_table[i].type == CA_BOOL ?
                                       optional_argument : required_argument, 0,
                                       OPT_ATTR + (int)i};
    }
    f->opts[k++] = (struct option){"permission-groups", required_argument, 0, OPT_GROUPS};
    if (with_new) {
        f->opts[k++] = (struct option){"usage", required_argument, 0, OPT_USAGE};
        f->opts[k++] = (struct option){"site", no_argument, 0, OPT_SITE};
    }
    for (size_t i = 0; common[i].name; i++)
        f->opts[k++] = common[i];
}

static void flags_clear(struct flags *f)
{
    for (size_t i = 0; i < 64; i++)
        admin_strv_free(f->values[i], f->nvalues[i]);
}

/* Canonical auth mechanism names where known; unknown ones are kept for the validator to
 * name in its error. */
static void canon_auth(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        int bit = auth_mech_lookup(v[i]);
        if (bit < 0)
            continue;
        char buf[64];
        auth_mechs_format((unsigned)bit, buf, sizeof buf);
        free(v[i]);
        v[i] = xstrdup(buf);
    }
}

/* One attribute flag. Booleans take an optional =value; multi-valued flags take a comma
 * list and may repeat; "" clears an attribute back to its default. */
static int flag_attr(struct admin *a, struct flags *f, size_t i, const char *arg)
{
    const struct connattr *ca = &connattr_table[i];
    f->set[i] = true;
    if (ca->type == CA_BOOL) {
        const char *b = admin_bool(arg ? arg : "true");
        if (!b)
            return admin_fail(a, 2, "--%s: '%s' is not true or false", f->names[i], arg);
        admin_strv_free(f->values[i], f->nvalues[i]);
        f->values[i] = NULL;
        f->nvalues[i] = 0;
        admin_split(b, &f->values[i], &f->nvalues[i]);
        return 0;
    }
    if (!ca->multi) {
        admin_strv_free(f->values[i], f->nvalues[i]);
        f->values[i] = NULL;
        f->nvalues[i] = 0;
        if (*arg) {
            f->values[i] = xcalloc(1, sizeof *f->values[i]);
            f->values[i][0] = xstrdup(arg);
            f->nvalues[i] = 1;
        }
        return 0;
    }
    admin_split(arg, &f->values[i], &f->nvalues[i]);
    if (ca->type == CA_AUTH)
        canon_auth(f->values[i], f->nvalues[i]);
    return 0;
}

static void put_help(const char *sub)
{
    printf("usage: relayctl connector %s NAME [options]\n\n", sub);
    if (!strcmp(sub, "new"))
        printf("Create a receive connector (New-ReceiveConnector). Defaults per --usage\n"
               "(docs/permission-model.md 1.6): Custom: Tls, no groups; Internet: AnonymousUsers, Tls,\n"
               "ranges 0.0.0.0-255.255.255.255; Internal: ExchangeServers, ExchangeLegacyServers,\n"
               "Tls, ExchangeServer, binding 0.0.0.0:25; Client: ExchangeUsers, Tls, Integrated,\n"
               "BasicAuth, BasicAuthRequireTLS, binding 0.0.0.0:587; Partner: Partners, Tls.\n"
               "Without --usage: ExchangeUsers, ExchangeServers, ExchangeLegacyServers.\n"
               "  --usage U                Custom|Internet|Internal|Client|Partner\n"
               "  --site                   create it under the node's site (every node of it)\n");
    else
        printf("Change a receive connector (Set-ReceiveConnector). Only the flags given change;\n"
               "an empty value (--banner '') returns an attribute to its default.\n");
    printf("  --permission-groups G    AnonymousUsers, ExchangeUsers, ExchangeServers,\n"
           "                           ExchangeLegacyServers, Partners or None (comma list;\n"
           "                           Custom is derived, never set). On set, every group's\n"
           "                           ACEs are replaced and other ACEs are kept.\n");
    for (size_t i = 0; i < connattr_count; i++) {
        const struct connattr *ca = &connattr_table[i];
        if (ca->type == CA_ACES)
            continue;
        char name[48], flag[64];
        flag_name(ca->exchange, name, sizeof name);
        snprintf(flag, sizeof flag, "--%s%s", name, ca->type == CA_BOOL ? "[=BOOL]" :
                 ca->multi ? " A,B" : " V");
        printf("  %-24s %s\n", flag, ca->doc);
    }
    printf("Writes are validated first (auth mechanism rules, banner, timeouts, binding and\n"
           "range conflicts with the node's and site's other connectors); a refusal exits 1.\n\n%s",
           admin_help_options());
}

/* Parse flags for new/set; *name gets the positional NAME. */
static int parse_flags(struct admin *a, struct flags *f, int argc, char **argv, bool is_new,
                       const char **name)
{
    flags_init(f, is_new);
    optind = 0;
    int c;
    while ((c = getopt_long(argc, argv, "h", f->opts, NULL)) != -1) {
        if (c == 'h') {
            put_help(is_new ? "new" : "set");
            return -1;
        }
        if (admin_option(a, c, optarg))
            continue;
        if (c >= OPT_ATTR && c < OPT_ATTR + (int)connattr_count) {
            if (flag_attr(a, f, (size_t)(c - OPT_ATTR), optarg))
                return 2;
        } else if (c == OPT_USAGE) {
            f->usage = optarg;
        } else if (c == OPT_GROUPS) {
            f->groups = optarg;
        } else if (c == OPT_SITE) {
            f->site = true;
        } else {
            return 2;                  /* getopt printed the reason */
        }
    }
    if (optind + 1 != argc)
        return admin_fail(a, 2, "give exactly one connector NAME (see --help)");
    *name = argv[optind];
    return 0;
}

static void apply_flags(const struct flags *f, struct dir_entry *e)
{
    for (size_t i = 0; i < connattr_count; i++)
        if (f->set[i])
            dir_entry_set(e, connattr_table[i].ldap, (const char *const *)f->values[i],
                          f->nvalues[i]);
}

/* relayAce values of aces[0..n) in canonical form. */
static void set_aces(struct dir_entry *e, const struct ace *aces, size_t n)
{
    char **v = xcalloc(n ? n : 1, sizeof *v);
    for (size_t i = 0; i < n; i++) {
        char buf[ACE_MAXLEN];
        ace_format(&aces[i], buf, sizeof buf);
        v[i] = xstrdup(buf);
    }
    dir_entry_set(e, "relayAce", (const char *const *)v, n);
    admin_strv_free(v, n);
}

static void free_aces(struct ace *aces, size_t n)
{
    for (size_t i = 0; i < n; i++)
        ace_clear(&aces[i]);
    free(aces);
}

/* Parse every relayAce value; -1 with the value and reason on the first bad one. */
static int parse_aces(const struct dir_entry *e, struct ace **aces, size_t *n, char *err,
                      size_t errlen, bool skip_bad)
{
    const struct dir_attr *v = dir_entry_get(e, "relayAce");
    *aces = xcalloc(v ? v->nvalues + 1 : 1, sizeof **aces);
    *n = 0;
    for (size_t i = 0; v && i < v->nvalues; i++) {
        char aerr[RN_ERRLEN];
        if (ace_parse(v->values[i], &(*aces)[*n], aerr, sizeof aerr) == 0)
            (*n)++;
        else if (!skip_bad) {
            free_aces(*aces, *n);
            *aces = NULL;
            *n = 0;
            return rn_err(err, errlen, "relayAce value '%s' is malformed: %s", v->values[i], aerr);
        }
    }
    return 0;
}

static int connector_new_run(struct admin *a, int argc, char **argv)
{
    struct flags f;
    const char *name = NULL;
    int rc = parse_flags(a, &f, argc, argv, true, &name);
    if (rc) {
        flags_clear(&f);
        return rc < 0 ? 0 : rc;
    }
    const struct usage *u = &usage_none;
    if (f.usage) {
        u = NULL;
        for (size_t i = 0; i < sizeof usages / sizeof usages[0]; i++)
            if (rn_strieq(f.usage, usages[i].name))
                u = &usages[i];
        if (!u) {
            flags_clear(&f);
            return admin_fail(a, 2, "unknown --usage '%s' (Custom, Internet, Internal, Client, "
                                     "Partner)", f.usage);
        }
    }
    unsigned groups = u->groups;
    char err[RN_ERRLEN];
    if (f.groups && groups_parse(f.groups, &groups, err, sizeof err) != 0) {
        flags_clear(&f);
        return admin_fail(a, 2, "--permission-groups: %s", err);
    }
    if ((rc = admin_open(a)) != 0) {
        flags_clear(&f);
        admin_close(a);
        return rc;
    }
    struct dir_entry e, old;
    bool old_site;
    if ((rc = admin_lookup_connector(a, name, &old, &old_site)) != 1) {
        if (rc == 2) {
            flags_clear(&f);
            admin_close(a);
            return rc;
        }
        dir_entry_clear(&old);
        flags_clear(&f);
        admin_close(a);
        return admin_fail(a, 1, "connector '%s' already exists", name);
    }
    if (f.site && !a->site_dn) {
        flags_clear(&f);
        admin_close(a);
        return admin_fail(a, 2, "node %s has no site entry above it", a->node_name);
    }
    char *rdn = admin_rdn_escape(name);
    char *dn = xasprintf("cn=%s,%s", rdn, f.site ? a->site_dn : a->node_dn);
    dir_entry_init(&e, dn);
    free(dn);
    free(rdn);
    dir_entry_add(&e, "objectClass", "relayReceiveConnector");
    dir_entry_add(&e, "cn", name);
    dir_entry_add(&e, "relayEnabled", "TRUE");
    if (u->binding)
        dir_entry_add(&e, "relayBinding", u->binding);
    if (u->range)
        dir_entry_add(&e, "relayRemoteIPRange", u->range);
    char auth[128];
    auth_mechs_format(u->auth, auth, sizeof auth);
    char **av = NULL;
    size_t an = 0;
    admin_split(auth, &av, &an);
    dir_entry_set(&e, "relayAuthMechanism", (const char *const *)av, an);
    admin_strv_free(av, an);
    if (u->pct_per_source)
        dir_entry_add(&e, "relayMaxInboundConnectionPercentagePerSource", u->pct_per_source);
    apply_flags(&f, &e);
    struct ace *aces = NULL;
    size_t naces = 0;
    acl_expand_groups(groups, &aces, &naces);
    set_aces(&e, aces, naces);
    free_aces(aces, naces);
    if (!dir_entry_get(&e, "relayBinding"))
        rc = admin_fail(a, 2, "--bindings is required (e.g. --bindings 0.0.0.0:25)");
    else if (!dir_entry_get(&e, "relayRemoteIPRange"))
        rc = admin_fail(a, 2, "--remote-ip-ranges is required (e.g. --remote-ip-ranges "
                               "192.168.2.55,192.168.2.56)");
    else
        rc = admin_check_connector(a, &e, f.site);
    if (rc == 0) {
        struct changeset *cs = changeset_new();
        changeset_add_entry(cs, &e);
        char *msg = xasprintf("created %s", e.dn);
        rc = admin_write(a, cs, msg);
        free(msg);
        changeset_free(&cs);
    }
    dir_entry_clear(&e);
    flags_clear(&f);
    admin_close(a);
    return rc;
}

static int connector_new(int argc, char **argv)
{
    struct admin a;
    admin_init(&a, "connector new");
    int rc = connector_new_run(&a, argc, argv);
    admin_close(&a);
    return rc;
}

static int connector_set_run(struct admin *a, int argc, char **argv)
{
    struct flags f;
    const char *name = NULL;
    int rc = parse_flags(a, &f, argc, argv, false, &name);
    if (rc) {
        flags_clear(&f);
        return rc < 0 ? 0 : rc;
    }
    bool any = f.groups != NULL;
    for (size_t i = 0; i < connattr_count; i++)
        any |= f.set[i];
    unsigned groups = 0;
    char err[RN_ERRLEN];
    if (!any)
        rc = admin_fail(a, 2, "nothing to set (see --help)");
    else if (f.groups && groups_parse(f.groups, &groups, err, sizeof err) != 0)
        rc = admin_fail(a, 2, "--permission-groups: %s", err);
    if (rc || (rc = admin_open(a)) != 0) {
        flags_clear(&f);
        admin_close(a);
        return rc;
    }
    struct dir_entry old, e;
    bool site;
    if ((rc = admin_find_connector(a, name, &old, &site)) != 0) {
        flags_clear(&f);
        admin_close(a);
        return rc;
    }
    dir_entry_copy(&e, &old);
    apply_flags(&f, &e);
    if (f.groups) {
        struct ace *aces;
        size_t naces;
        if (parse_aces(&e, &aces, &naces, err, sizeof err, false) != 0) {
            rc = admin_fail(a, 1, "%s: cannot rewrite permission groups: %s", e.dn, err);
        } else {
            acl_strip_groups(&aces, &naces);
            acl_expand_groups(groups, &aces, &naces);
            set_aces(&e, aces, naces);
            free_aces(aces, naces);
        }
    }
    if (rc == 0)
        rc = admin_check_connector(a, &e, site);
    if (rc == 0) {
        struct changeset *cs = changeset_new();
        static const char *const by_value[] = {"relayAce", NULL};
        changeset_diff(cs, &old, &e, by_value);
        char *msg = xasprintf("changed %s", e.dn);
        rc = admin_write(a, cs, msg);
        free(msg);
        changeset_free(&cs);
    }
    dir_entry_clear(&old);
    dir_entry_clear(&e);
    flags_clear(&f);
    admin_close(a);
    return rc;
}

static int connector_set(int argc, char **argv)
{
    struct admin a;
    admin_init(&a, "connector set");
    int rc = connector_set_run(&a, argc, argv);
    admin_close(&a);
    return rc;
}

/* What get and list show for an attribute: the directory's values, or the default the
 * node assumes when it is absent (connattr.c). */
static char *attr_display(const struct dir_entry *e, const struct connattr *ca)
{
    if (dir_entry_get(e, ca->ldap))
        return admin_join_values(e, ca->ldap);
    char buf[128];
    switch (ca->type) {
    case CA_BOOL: return xstrdup(ca->def ? "TRUE" : "FALSE");
    case CA_LIMIT:
        if (ca->def == RN_UNLIMITED)
            return xstrdup("unlimited");
        return xasprintf("%llu", (unsigned long long)ca->def);
    case CA_AUTH: auth_mechs_format((unsigned)ca->def, buf, sizeof buf); return xstrdup(buf);
    case CA_LOGLEVEL: return xstrdup("None");
    default: return xstrdup("");
    }
}

static void derived_groups(const struct dir_entry *e, char *buf, size_t len)
{
    struct ace *aces;
    size_t n;
    parse_aces(e, &aces, &n, NULL, 0, true);
    groups_format(acl_derive_groups(aces, n), buf, len);
    free_aces(aces, n);
}

static int sub_help(const char *usage, const char *what)
{
    printf("usage: relayctl connector %s\n\n%s\n\n%s", usage, what, admin_help_options());
    return 0;
}

/* get/list/remove share one parse: the common options and at most `npos` positionals. */
static int parse_simple(struct admin *a, int argc, char **argv, int npos, const char *usage,
                        const char *what, const char **pos)
{
    static const struct option opts[] = {ADMIN_LONGOPTS, {0, 0, 0, 0}};
    optind = 0;
    int c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (c == 'h')
            return sub_help(usage, what), -1;
        if (!admin_option(a, c, optarg))
            return 2;
    }
    if (argc - optind != npos)
        return admin_fail(a, 2, "usage: relayctl connector %s", usage);
    if (npos)
        *pos = argv[optind];
    return 0;
}

static int connector_get_run(struct admin *a, int argc, char **argv)
{
    const char *name = NULL;
    int rc = parse_simple(a, argc, argv, 1, "get NAME [--json]",
                          "Show every attribute of a receive connector (defaults for absent ones)\n"
                          "and its PermissionGroups derived from the ACEs, Custom included.",
                          &name);
    if (rc || (rc = admin_open(a)) != 0) {
        admin_close(a);
        return rc < 0 ? 0 : rc;
    }
    struct dir_entry e;
    bool site;
    if ((rc = admin_find_connector(a, name, &e, &site)) != 0) {
        admin_close(a);
        return rc;
    }
    char groups[256], err[RN_ERRLEN] = "";
    derived_groups(&e, groups, sizeof groups);
    struct rn_connector c;
    memset(&c, 0, sizeof c);
    bool valid = ldapadmin_connector_build(&e, site, &c, err, sizeof err) == 0 &&
                 validate_connector(&c, err, sizeof err) == 0;
    connector_clear(&c);
    const char *scope = site ? "Site" : "Node";
    if (a->json) {
        struct json *j = json_new(stdout);
        json_begin_object(j, NULL);
        json_string(j, "Name", dir_entry_first(&e, "cn"));
        json_string(j, "Identity", e.dn);
        json_string(j, "Scope", scope);
        json_list(j, "PermissionGroups", groups);
        for (size_t i = 0; i < connattr_count; i++) {
            const struct connattr *ca = &connattr_table[i];
            if (ca->type == CA_ACES)
                continue;
            char *v = attr_display(&e, ca);
            if (ca->multi)
                json_list(j, ca->exchange, v);
            else
                json_string(j, ca->exchange, v);
            free(v);
        }
        const struct dir_attr *aces = dir_entry_get(&e, "relayAce");
        json_begin_array(j, "Aces");
        for (size_t i = 0; aces && i < aces->nvalues; i++)
            json_string(j, NULL, aces->values[i]);
        json_end_array(j);
        json_string(j, "Error", valid ? NULL : err);
        json_end_object(j);
        json_free(&j);
    } else {
        static const char *const hdr[] = {"Property", "Value"};
        struct table *t = table_new(2, hdr);
        const char *rows[][2] = {{"Name", dir_entry_first(&e, "cn")}, {"Identity", e.dn},
                                 {"Scope", scope}, {"PermissionGroups", groups}};
        for (size_t i = 0; i < 4; i++)
            table_row(t, rows[i]);
        for (size_t i = 0; i < connattr_count; i++) {
            const struct connattr *ca = &connattr_table[i];
            if (ca->type == CA_ACES)
                continue;
            char *v = attr_display(&e, ca);
            const char *row[2] = {ca->exchange, v};
            table_row(t, row);
            free(v);
        }
        const struct dir_attr *aces = dir_entry_get(&e, "relayAce");
        for (size_t i = 0; aces && i < aces->nvalues; i++) {
            const char *row[2] = {"Ace", aces->values[i]};
            table_row(t, row);
        }
        if (!valid) {
            const char *row[2] = {"Error", err};
            table_row(t, row);
        }
        table_print(t, stdout);
        table_free(&t);
    }
    dir_entry_clear(&e);
    admin_close(a);
    return 0;
}

static int connector_get(int argc, char **argv)
{
    struct admin a;
    admin_init(&a, "connector get");
    int rc = connector_get_run(&a, argc, argv);
    admin_close(&a);
    return rc;
}

static int connector_list_run(struct admin *a, int argc, char **argv)
{
    int rc = parse_simple(a, argc, argv, 0, "list [--json]",
                          "List the receive connectors of the node and its site.", NULL);
    if (rc || (rc = admin_open(a)) != 0) {
        admin_close(a);
        return rc < 0 ? 0 : rc;
    }
    struct dir_entries es;
    bool *site;
    if ((rc = admin_connectors(a, &es, &site)) != 0) {
        admin_close(a);
        return rc;
    }
    static const char *const hdr[] = {"Name", "Scope", "Enabled", "Bindings", "RemoteIPRanges",
                                      "AuthMechanism", "PermissionGroups"};
    static const char *const attrs[] = {"relayEnabled", "relayBinding", "relayRemoteIPRange",
                                        "relayAuthMechanism"};
    struct table *t = table_new(7, hdr);
    struct json *j = a->json ? json_new(stdout) : NULL;
    if (j)
        json_begin_array(j, NULL);
    for (size_t i = 0; i < es.n; i++) {
        char groups[256];
        derived_groups(&es.v[i], groups, sizeof groups);
        char *v[4];
        for (size_t k = 0; k < 4; k++)
            v[k] = attr_display(&es.v[i], connattr_lookup(attrs[k]));
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
            table_row(t, row);
        }
        for (size_t k = 0; k < 4; k++)
            free(v[k]);
    }
    if (j) {
        json_end_array(j);
        json_free(&j);
    } else {
        table_print(t, stdout);
    }
    table_free(&t);
    dir_entries_clear(&es);
    free(site);
    admin_close(a);
    return 0;
}

static int connector_list(int argc, char **argv)
{
    struct admin a;
    admin_init(&a, "connector list");
    int rc = connector_list_run(&a, argc, argv);
    admin_close(&a);
    return rc;
}

static int connector_remove_run(struct admin *a, int argc, char **argv)
{
    const char *name = NULL;
    int rc = parse_simple(a, argc, argv, 1, "remove NAME [--ldif]",
                          "Delete a receive connector (Remove-ReceiveConnector).", &name);
    if (rc || (rc = admin_open(a)) != 0) {
        admin_close(a);
        return rc < 0 ? 0 : rc;
    }
    struct dir_entry e;
    bool site;
    if ((rc = admin_find_connector(a, name, &e, &site)) == 0) {
        struct changeset *cs = changeset_new();
        changeset_delete_entry(cs, e.dn);
        char *msg = xasprintf("removed %s", e.dn);
        rc = admin_write(a, cs, msg);
        free(msg);
        changeset_free(&cs);
        dir_entry_clear(&e);
    }
    admin_close(a);
    return rc;
}

static int connector_remove(int argc, char **argv)
{
    struct admin a;
    admin_init(&a, "connector remove");
    int rc = connector_remove_run(&a, argc, argv);
    admin_close(&a);
    return rc;
}

int relayctl_connector(int argc, char **argv)
{
    static const struct { const char *name; int (*run)(int, char **); } subs[] = {
        {"new", connector_new}, {"set", connector_set}, {"get", connector_get},
        {"list", connector_list}, {"remove", connector_remove},
    };
    if (argc >= 2)
        for (size_t i = 0; i < sizeof subs / sizeof subs[0]; i++)
            if (!strcmp(argv[1], subs[i].name))
                return subs[i].run(argc - 1, argv + 1);
    FILE *out = argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) ? stdout
                                                                                   : stderr;
    fprintf(out, "usage: relayctl connector new|set|get|list|remove ... (each has --help)\n");
    return out == stdout ? 0 : 2;
}
