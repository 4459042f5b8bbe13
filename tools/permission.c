/* permission: `relayctl permission add|remove|get`, Add-/Remove-/Get-ADPermission on a
 * receive connector's ACEs (relayAce values). add appends one ACE holding the rights the
 * principal does not already have from an ACE of the same kind (allow/deny); remove takes
 * exactly those rights out of that principal's ACEs of that kind, rewriting an ACE that keeps
 * other rights and deleting one left empty. Other values, malformed ones included, are never
 * touched: the change is value-level, as an admin would write it with ldapmodify. */
#include "tools/relayctl.h"
#include "tools/admin.h"
#include "tools/output.h"
#include "directory/ace.h"
#include "directory/rights.h"
#include "directory/base/util.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define OPT_USER 3100
#define OPT_RIGHTS 3101
#define OPT_DENY 3102

static const char help_text[] =
    "usage: relayctl permission add|remove CONNECTOR --user PRINCIPAL --extended-rights R[,R...]\n"
    "                                     [--deny]\n"
    "       relayctl permission get CONNECTOR [--user PRINCIPAL] [--json]\n\n"
    "Add-ADPermission / Remove-ADPermission / Get-ADPermission on a receive connector.\n"
    "PRINCIPAL is a well-known name ('NT AUTHORITY\\ANONYMOUS LOGON', 'MS Exchange\\Externally\n"
    "Secured Servers', ...), its SID, or the DN of a user or group that exists in the\n"
    "directory. Rights are ms-Exch-* names or rightsGuids (schema/README.md). --deny makes or\n"
    "removes a deny ACE (deny wins over allow). remove takes out exactly the rights given.\n"
    "get prints Identity, User, Deny, Inherited, ExtendedRights like Get-ADPermission;\n"
    "Inherited is always False: ACEs live on the connector entry itself and nothing is\n"
    "inherited from the node, site or organisation in this model.\n\n";

struct perm_args {
    const char *sub, *connector, *user, *rights;
    bool deny;
};

static int parse(struct admin *a, struct perm_args *p, int argc, char **argv)
{
    static const struct option opts[] = {
        {"user", required_argument, 0, OPT_USER},
        {"extended-rights", required_argument, 0, OPT_RIGHTS},
        {"deny", no_argument, 0, OPT_DENY},
        ADMIN_LONGOPTS, {0, 0, 0, 0}};
    optind = 0;
    int c;
    while ((c = admin_getopt(a, argc, argv, opts, help_text)) != -1) {
        if (c == ADMIN_GETOPT_HELP)
            return -1;
        if (c == OPT_USER)
            p->user = optarg;
        else if (c == OPT_RIGHTS)
            p->rights = optarg;
        else if (c == OPT_DENY)
            p->deny = true;
        else
            return 2;
    }
    if (argc - optind != 1)
        return admin_fail(a, 2, "give exactly one CONNECTOR name (see --help)");
    p->connector = argv[optind];
    bool write = strcmp(p->sub, "get") != 0;
    if (write && (!p->user || !p->rights))
        return admin_fail(a, 2, "--user and --extended-rights are required");
    if (!write && (p->rights || p->deny))
        return admin_fail(a, 2, "get takes only --user");
    return 0;
}

/* The principal as an ACE principal: a well-known name or SID, else a DN that must exist
 * (Add-ADPermission resolves the user; an ACE naming nobody is a mistake audit flags). */
static int principal(struct admin *a, const char *user, bool must_exist, struct ace *out)
{
    const struct principal_info *pi = principal_lookup(user);
    if (pi) {
        out->wk = pi->id;
        return 0;
    }
    char norm[1024], err[RN_ERRLEN];
    if (dn_normalize(user, norm, sizeof norm, err, sizeof err) != 0)
        return admin_fail(a, 2, "--user '%s' is neither a well-known principal nor a DN", user);
    if (must_exist) {
        enum dir_result r = ldapadmin_exists(a->d, user, err, sizeof err);
        if (r == DIR_NOTFOUND)
            return admin_fail(a, 1, "--user '%s': no such entry in the directory", user);
        if (r != DIR_FOUND)
            return admin_fail(a, 2, "%s", err);
    }
    out->wk = -1;
    out->dn = xstrdup(user);
    out->dn_norm = xstrdup(norm);
    return 0;
}

static bool same_principal(const struct ace *x, const struct ace *y)
{
    if (x->wk >= 0 || y->wk >= 0)
        return x->wk == y->wk;
    if (x->sid || y->sid)
        return x->sid && y->sid && strcmp(x->sid, y->sid) == 0;
    return x->dn_norm && y->dn_norm && strcmp(x->dn_norm, y->dn_norm) == 0;
}

static int parse_rights(struct admin *a, const char *list, uint32_t *out)
{
    char **v = NULL;
    size_t n = 0;
    admin_split(list, &v, &n);
    *out = 0;
    int rc = 0;
    for (size_t i = 0; i < n && !rc; i++) {
        const struct right_info *r = right_lookup(v[i]);
        if (!r)
            rc = admin_fail(a, 2, "unknown extended right '%s' (see schema/README.md)", v[i]);
        else
            *out |= r->bit;
    }
    admin_strv_free(v, n);
    if (!rc && !*out)
        rc = admin_fail(a, 2, "--extended-rights is empty");
    return rc;
}

static char *fmt_ace(bool deny, const struct ace *who, uint32_t rights)
{
    struct ace x = *who;
    x.deny = deny;
    x.rights = rights;
    char buf[ACE_MAXLEN];
    ace_format(&x, buf, sizeof buf);
    return xstrdup(buf);
}

/* Compute the new relayAce values in e for add/remove; 1 (message printed) when remove
 * finds nothing to take away. */
static int edit_aces(struct admin *a, const struct perm_args *p, const struct ace *who,
                     uint32_t rights, struct dir_entry *e)
{
    const struct dir_attr *cur = dir_entry_get(e, "relayAce");
    size_t n = cur ? cur->nvalues : 0;
    char **vals = xcalloc(n + 1, sizeof *vals);
    for (size_t i = 0; i < n; i++)
        vals[i] = xstrdup(cur->values[i]);
    uint32_t have = 0;
    bool add = strcmp(p->sub, "add") == 0;
    for (size_t i = 0; i < n; i++) {
        struct ace x;
        char err[RN_ERRLEN];
        if (ace_parse(vals[i], &x, err, sizeof err) != 0)
            continue;                        /* malformed values are left as they are */
        if (x.deny == p->deny && same_principal(&x, who) && (x.rights & rights)) {
            have |= x.rights & rights;
            if (!add) {
                dir_entry_remove(e, "relayAce", vals[i]);
                if (x.rights & ~rights) {
                    char *nv = fmt_ace(x.deny, &x, x.rights & ~rights);
                    dir_entry_add(e, "relayAce", nv);
                    free(nv);
                }
            }
        }
        ace_clear(&x);
    }
    admin_strv_free(vals, n);
    if (add && (rights & ~have)) {
        char *nv = fmt_ace(p->deny, who, rights & ~have);
        dir_entry_add(e, "relayAce", nv);
        free(nv);
    }
    if (!add && !have) {
        char r[1024];
        rights_format(rights, ", ", false, r, sizeof r);
        return admin_fail(a, 1, "no %s ACE on '%s' gives %s to '%s'", p->deny ? "deny" : "allow",
                          p->connector, r, p->user);
    }
    return 0;
}

static int perm_write(struct admin *a, const struct perm_args *p)
{
    struct ace who;
    memset(&who, 0, sizeof who);
    uint32_t rights;
    int rc = parse_rights(a, p->rights, &rights);
    if (rc || (rc = admin_open(a)) != 0)
        return rc;
    if ((rc = principal(a, p->user, strcmp(p->sub, "add") == 0, &who)) != 0)
        return rc;
    struct dir_entry old, e;
    bool site;
    if ((rc = admin_find_connector(a, p->connector, &old, &site)) != 0) {
        ace_clear(&who);
        return rc;
    }
    dir_entry_copy(&e, &old);
    rc = edit_aces(a, p, &who, rights, &e);
    if (!rc)
        rc = admin_check_connector(a, &e, site);
    if (!rc) {
        static const char *const by_value[] = {"relayAce", NULL};
        rc = admin_modify(a, &old, &e, by_value,
                          strcmp(p->sub, "add") == 0 ? "added to" : "removed from");
    }
    ace_clear(&who);
    dir_entry_clear(&old);
    dir_entry_clear(&e);
    return rc;
}

static int perm_get(struct admin *a, const struct perm_args *p)
{
    struct ace who;
    memset(&who, 0, sizeof who);
    int rc = admin_open(a);
    if (rc || (p->user && (rc = principal(a, p->user, false, &who)) != 0))
        return rc;
    struct dir_entry e;
    bool site;
    if ((rc = admin_find_connector(a, p->connector, &e, &site)) != 0) {
        ace_clear(&who);
        return rc;
    }
    const char *name = dir_entry_first(&e, "cn");
    static const char *const hdr[] = {"Identity", "User", "Deny", "Inherited", "ExtendedRights"};
    struct listing l;
    listing_begin(&l, a->json, 5, hdr);
    struct json *j = l.j;
    const struct dir_attr *v = dir_entry_get(&e, "relayAce");
    for (size_t i = 0; v && i < v->nvalues; i++) {
        struct ace x;
        char err[RN_ERRLEN];
        if (ace_parse(v->values[i], &x, err, sizeof err) != 0) {
            fprintf(stderr, "relayctl permission get: %s: relayAce value '%s' is malformed: %s\n",
                    e.dn, v->values[i], err);
            continue;
        }
        if (p->user && !same_principal(&x, &who)) {
            ace_clear(&x);
            continue;
        }
        const struct principal_info *pi = x.wk >= 0 ? principal_by_id(x.wk) : NULL;
        const char *user = pi ? pi->name : x.sid ? x.sid : x.dn;
        char rights[2048];
        rights_format(x.rights, ", ", false, rights, sizeof rights);
        if (j) {
            json_begin_object(j, NULL);
            json_string(j, "Identity", name);
            json_string(j, "User", user);
            json_bool(j, "Deny", x.deny);
            json_bool(j, "Inherited", false);
            json_list(j, "ExtendedRights", rights);
            json_end_object(j);
        } else {
            /* One row per right, as Get-ADPermission lists one ACE per extended right. */
            for (unsigned b = 0; b < RIGHT_COUNT; b++) {
                const struct right_info *ri = right_by_index(b);
                if (!(x.rights & ri->bit))
                    continue;
                const char *row[5] = {name, user, x.deny ? "True" : "False", "False", ri->name};
                table_row(l.t, row);
            }
        }
        ace_clear(&x);
    }
    listing_end(&l);
    ace_clear(&who);
    dir_entry_clear(&e);
    return 0;
}

int relayctl_permission(int argc, char **argv)
{
    if (argc < 2 || (strcmp(argv[1], "add") && strcmp(argv[1], "remove") &&
                     strcmp(argv[1], "get"))) {
        bool help = argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"));
        return admin_usage(help_text, help);
    }
    struct admin a;
    struct perm_args p = {.sub = argv[1]};
    admin_init_sub(&a, "permission", argv[1]);
    int rc = parse(&a, &p, argc - 1, argv + 1);
    if (rc == 0)
        rc = strcmp(p.sub, "get") == 0 ? perm_get(&a, &p) : perm_write(&a, &p);
    admin_close(&a);
    return rc < 0 ? 0 : rc;
}
