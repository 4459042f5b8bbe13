/* connflags: relayctl connector's flags and the entry they describe (connflags.h). The flags
 * are generated from connattr_table, so an attribute added there is a flag here, documented
 * by its row; values are stored as given (auth mechanisms canonicalised) and checked later by
 * admin_check_connector, the loader's own validation. */
#include "tools/connflags.h"
#include "directory/acl.h"
#include "directory/base/util.h"
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define OPT_ATTR 2000            /* + index in connattr_table */
#define OPT_USAGE 3000
#define OPT_GROUPS 3001
#define OPT_SITE 3002

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

static void flags_init(struct connflags *f, bool with_new)
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

void connflags_clear(struct connflags *f)
{
    for (size_t i = 0; i < CONNFLAGS_MAX; i++)
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
static int flag_attr(struct admin *a, struct connflags *f, size_t i, const char *arg)
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

int connflags_parse(struct admin *a, struct connflags *f, int argc, char **argv, bool is_new,
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

bool connflags_any(const struct connflags *f)
{
    bool any = f->groups != NULL;
    for (size_t i = 0; i < connattr_count; i++)
        any |= f->set[i];
    return any;
}

void connflags_apply(const struct connflags *f, struct dir_entry *e)
{
    for (size_t i = 0; i < connattr_count; i++)
        if (f->set[i])
            dir_entry_set(e, connattr_table[i].ldap, (const char *const *)f->values[i],
                          f->nvalues[i]);
}

void connflags_set_aces(struct dir_entry *e, const struct ace *aces, size_t n)
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

void connflags_free_aces(struct ace *aces, size_t n)
{
    for (size_t i = 0; i < n; i++)
        ace_clear(&aces[i]);
    free(aces);
}

int connflags_parse_aces(const struct dir_entry *e, struct ace **aces, size_t *n, char *err,
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
            connflags_free_aces(*aces, *n);
            *aces = NULL;
            *n = 0;
            return rn_err(err, errlen, "relayAce value '%s' is malformed: %s", v->values[i], aerr);
        }
    }
    return 0;
}

char *connflags_display(const struct dir_entry *e, const struct connattr *ca)
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

void connflags_groups(const struct dir_entry *e, char *buf, size_t len)
{
    struct ace *aces;
    size_t n;
    connflags_parse_aces(e, &aces, &n, NULL, 0, true);
    groups_format(acl_derive_groups(aces, n), buf, len);
    connflags_free_aces(aces, n);
}
