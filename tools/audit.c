/* audit: `relayctl audit`, who can relay where, and the mistakes that make open relays.
 * For every receive connector of every node (or --node), loaded or refused, it evaluates
 * the ACEs with the engine the node uses (acl_eval) for each principal they name, directory
 * groups expanded to their members (a member's token holds every ACE group it belongs to),
 * and lists who may relay (Accept-Any-Recipient), bypass anti-spam and size limits, and send
 * as anyone (Accept-Any-Sender). Findings carry a severity, a message and the connector DN;
 * any finding makes the exit status 1 so admins can gate pipelines on it.
 * A node's bootstrap file is not in the directory, so audit judges only the bootstrap files
 * it is given (--config or $RELAYNODE_CONFIG, and each --bootstrap FILE), read as the node
 * reads them, and says which those were: allow_cleartext_directory = yes over a directory
 * link in clear means AUTH PLAIN/LOGIN passwords reach the directory unencrypted
 * (docs/operations.md). */
#include "tools/relayctl.h"
#include "tools/admin.h"
#include "tools/output.h"
#include "directory/acl.h"
#include "directory/bootstrap.h"
#include "directory/ipr.h"
#include "directory/ldap/ldapdir.h"
#include "directory/base/util.h"
#include "directory/validate.h"
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { OPT_BOOTSTRAP = 3400 };

static const char help_text[] =
    "usage: relayctl audit [--node NAME] [--bootstrap FILE]... [--json]\n\n"
    "For every receive connector (of every node, or of --node and its site), loaded or\n"
    "refused: who can relay (ms-Exch-SMTP-Accept-Any-Recipient), who bypasses anti-spam and\n"
    "message size limits, who may send as anyone (ms-Exch-SMTP-Accept-Any-Sender), with\n"
    "directory groups expanded to their members. Findings:\n"
    "  critical  anonymous relay from everywhere (0.0.0.0/0 or ::/0)\n"
    "  critical  ExternalAuthoritative from everywhere\n"
    "  high      anonymous relay or ExternalAuthoritative on a range wider than /24 (/64)\n"
    "  high      connectors that conflict (same binding, equal or partly overlapping ranges)\n"
    "  high      relayAce values that are malformed or name unknown rights\n"
    "  high      connectors the loader refuses (the node does not serve them)\n"
    "  medium    shadowed connectors (another has identical bindings and ranges)\n"
    "  medium    ACEs naming DNs that do not exist\n"
    "  medium    Partners granted while no client can be a partner (DomainSecureEnabled off,\n"
    "            or no relayDomainSecureDomain in the organisation)\n"
    "  medium    ExchangeServer on while no relayNode has relayCertificateSha256\n"
    "The directory holds no node's bootstrap file: audit reads the --config file (or\n"
    "$RELAYNODE_CONFIG) and each --bootstrap FILE (a node's relaynode.conf) as the node\n"
    "named in it reads it, and lists the files it read:\n"
    "  high      allow_cleartext_directory = yes over a directory link in clear (not\n"
    "            ldaps://, StartTLS or ldapi://): each BasicAuth connector of that node\n"
    "            sends AUTH PLAIN/LOGIN passwords to the directory unencrypted; a file\n"
    "            naming no node of the directory\n"
    "  medium    the same setting on a node with no BasicAuth connector yet\n"
    "Exit 0 when clean, 1 when there are findings, 2 on usage or connection errors (a\n"
    "bootstrap file that cannot be read: file:line reason).\n\n";

struct finding { const char *severity; char *dn, *message; };

struct bootfile {
    const char *path;                      /* borrowed (argv or the environment) */
    struct rn_bootstrap b;                 /* as the node reads it; owned */
    bool matched;                          /* its node was audited */
};

struct audit {
    struct admin *a;
    struct bootfile *bf; size_t nbf;
    struct finding *f; size_t nf;
    char **done; size_t ndone;             /* normalised DNs of connectors already reported */
    struct json *j;                        /* --json: the "connectors" array is open */
    size_t node_certs, partner_domains;    /* relayNode entries with a certificate, and
                                            * containers with domain-secure domains */
};

static const char *const sev_order[] = {"critical", "high", "medium"};

static void finding(struct audit *au, const char *sev, const char *dn, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void finding(struct audit *au, const char *sev, const char *dn, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *msg = NULL;
    if (vasprintf(&msg, fmt, ap) < 0)
        abort();
    va_end(ap);
    for (size_t i = 0; i < au->nf; i++)
        if (!strcmp(au->f[i].dn, dn) && !strcmp(au->f[i].message, msg)) {
            free(msg);
            return;                        /* a site connector seen from a second node */
        }
    au->f = xrealloc(au->f, (au->nf + 1) * sizeof *au->f);
    au->f[au->nf++] = (struct finding){sev, xstrdup(dn), xstrdup(msg)};
    free(msg);
}

/* ---- range width ---- */

static ipr_range ref_range(const char *s)
{
    ipr_range r;
    char err[RN_ERRLEN];
    if (ipr_range_parse(s, &r, err, sizeof err) != 0)
        abort();                           /* constant input */
    return r;
}

/* 2 = the whole family, 1 = wider than a /24 (v4) or /64 (v6), 0 = narrow. */
static int range_width(const ipr_range *r)
{
    ipr_range all = ref_range(r->v4 ? "0.0.0.0/0" : "::/0");
    ipr_range wide = ref_range(r->v4 ? "10.0.0.0/24" : "2001:db8::/64");
    if (ipr_range_cmp_size(r, &all) >= 0)
        return 2;
    return ipr_range_cmp_size(r, &wide) > 0 ? 1 : 0;
}

/* The widest range of c and its width class; buf gets it formatted. */
static int widest(const struct rn_connector *c, char *buf, size_t len)
{
    int w = -1;
    for (size_t i = 0; i < c->nranges; i++) {
        int x = range_width(&c->ranges[i]);
        if (x > w) {
            w = x;
            ipr_range_format(&c->ranges[i], buf, len);
        }
    }
    return w;
}

/* ---- who holds what ---- */

struct who { char **names; size_t n; };

static void who_add(struct who *w, const char *name)
{
    for (size_t i = 0; i < w->n; i++)
        if (!strcmp(w->names[i], name))
            return;
    w->names = xrealloc(w->names, (w->n + 1) * sizeof *w->names);
    w->names[w->n++] = xstrdup(name);
}

enum { W_RELAY, W_ANTISPAM, W_SIZE, W_SENDAS, W_COUNT };
static const uint32_t w_right[W_COUNT] = {R_ACCEPT_ANY_RECIPIENT, R_BYPASS_ANTISPAM,
                                          R_BYPASS_SIZE_LIMIT, R_ACCEPT_ANY_SENDER};
static const char *const w_label[W_COUNT] = {"Relay", "BypassAntiSpam", "BypassSizeLimit",
                                             "SendAsAnyone"};

static void holds(struct who *w, const struct ace *aces, size_t n, const struct token *t,
                  const char *label)
{
    struct rights_eval ev;
    acl_eval(aces, n, t, &ev);
    for (int k = 0; k < W_COUNT; k++)
        if (ev.effective & w_right[k])
            who_add(&w[k], label);
}

/* Group DN -> its members, for the ACEs' DN principals. */
struct member_map { char *group_norm; char **members; size_t n; bool exists; };

static void analyse_principals(struct audit *au, const struct dir_entry *e,
                               const struct ace *aces, size_t n, struct who *w)
{
    struct admin *a = au->a;
    struct member_map *mm = xcalloc(n + 1, sizeof *mm);
    size_t nmm = 0;
    for (size_t i = 0; i < n; i++) {              /* well-known principals, each alone */
        if (aces[i].wk < 0)
            continue;
        struct token t;
        memset(&t, 0, sizeof t);
        t.wk = 1u << aces[i].wk;
        if (aces[i].wk == WK_AUTHENTICATED_USERS || aces[i].wk == WK_EVERYONE) {
            t.wk = 1u << WK_AUTHENTICATED_USERS | 1u << WK_EVERYONE;   /* always together */
            t.authenticated = true;
        }
        holds(w, aces, n, &t, principal_by_id(aces[i].wk)->name);
    }
    for (size_t i = 0; i < n; i++) {              /* directory DNs: existence, members */
        if (aces[i].wk >= 0 || !aces[i].dn_norm)
            continue;                             /* well-known, or a SID principal (AD) */
        bool seen = false;
        for (size_t k = 0; k < nmm && !seen; k++)
            seen = !strcmp(mm[k].group_norm, aces[i].dn_norm);
        if (seen)
            continue;
        struct member_map *m = &mm[nmm++];
        m->group_norm = xstrdup(aces[i].dn_norm);
        char err[RN_ERRLEN];
        enum dir_result r = ldapadmin_group_members(a->d, aces[i].dn, &m->members, &m->n, err,
                                                    sizeof err);
        m->exists = r == DIR_FOUND;
        if (r == DIR_NOTFOUND)
            finding(au, "medium", e->dn, "ACE names %s, which does not exist", aces[i].dn);
        else if (r != DIR_FOUND)
            finding(au, "medium", e->dn, "ACE principal %s: %s", aces[i].dn, err);
    }
    for (size_t g = 0; g < nmm; g++) {            /* each member with every ACE group it is in */
        for (size_t u = 0; u < mm[g].n; u++) {
            const char *user = mm[g].members[u];
            const char **groups = xcalloc(nmm + 1, sizeof *groups);
            size_t ng = 0;
            char unorm[1024], err[RN_ERRLEN];
            if (dn_normalize(user, unorm, sizeof unorm, err, sizeof err) != 0) {
                free(groups);
                continue;
            }
            for (size_t k = 0; k < nmm; k++)
                for (size_t x = 0; x < mm[k].n; x++) {
                    char xn[1024];
                    if (strcmp(mm[k].group_norm, unorm) != 0 &&
                        dn_normalize(mm[k].members[x], xn, sizeof xn, err, sizeof err) == 0 &&
                        !strcmp(xn, unorm))
                        groups[ng++] = mm[k].group_norm;
                }
            struct token t;
            if (token_init_user(&t, user, user, groups, ng) == 0) {
                holds(w, aces, n, &t, user);
                token_clear(&t);
            }
            free(groups);
        }
    }
    for (size_t g = 0; g < nmm; g++) {
        admin_strv_free(mm[g].members, mm[g].n);
        free(mm[g].group_norm);
    }
    free(mm);
}

/* One connector: raw ACE check, build (tolerant: a refused connector is still audited),
 * principals, anonymous relay and ExternalAuthoritative width. */
static void audit_connector(struct audit *au, const struct dir_entry *e, bool site,
                            const char *node)
{
    char norm[1024], err[RN_ERRLEN];
    if (dn_normalize(e->dn, norm, sizeof norm, err, sizeof err) != 0)
        rn_strlcpy(norm, e->dn, sizeof norm);
    for (size_t i = 0; i < au->ndone; i++)
        if (!strcmp(au->done[i], norm))
            return;
    au->done = xrealloc(au->done, (au->ndone + 1) * sizeof *au->done);
    au->done[au->ndone++] = xstrdup(norm);

    const struct dir_attr *raw = dir_entry_get(e, "relayAce");
    struct ace *aces = xcalloc(raw ? raw->nvalues + 1 : 1, sizeof *aces);
    size_t n = 0;
    for (size_t i = 0; raw && i < raw->nvalues; i++) {
        if (ace_parse(raw->values[i], &aces[n], err, sizeof err) == 0)
            n++;
        else
            finding(au, "high", e->dn, "relayAce value '%s' is malformed: %s", raw->values[i],
                    err);
    }
    struct rn_connector c;
    memset(&c, 0, sizeof c);
    connector_from_entry(e, site, &c, err, sizeof err);   /* c holds what parsed either way */
    struct who w[W_COUNT];
    memset(w, 0, sizeof w);
    analyse_principals(au, e, aces, n, w);

    char range[128] = "";
    int width = widest(&c, range, sizeof range);
    if (c.auth & AUTH_EXTERNAL_AUTHORITATIVE) {
        if (width == 2)
            finding(au, "critical", e->dn, "ExternalAuthoritative from everywhere (%s): every "
                    "client is an Externally Secured Server and may relay and send as anyone",
                    range);
        else if (width == 1)
            finding(au, "high", e->dn, "ExternalAuthoritative on a wide range (%s): every "
                    "client there may relay and send as anyone", range);
    } else {
        struct token t;
        token_init_anonymous(&t);
        struct rights_eval ev;
        acl_eval(aces, n, &t, &ev);
        token_clear(&t);
        if ((ev.effective & R_ACCEPT_ANY_RECIPIENT) && width == 2)
            finding(au, "critical", e->dn, "open relay: anonymous clients from everywhere (%s) "
                    "may relay", range);
        else if ((ev.effective & R_ACCEPT_ANY_RECIPIENT) && width == 1)
            finding(au, "high", e->dn, "anonymous relay on a wide range (%s)", range);
    }

    /* TLS principals (docs/permission-model.md §3.3): a door nobody can walk through is a
     * configuration mistake, usually a forgotten step. */
    if ((acl_derive_groups(aces, n) & GROUP_PARTNERS) && !c.domain_secure)
        finding(au, "medium", e->dn, "grants Partners but DomainSecureEnabled is off: no "
                "client is ever a partner here");
    else if ((acl_derive_groups(aces, n) & GROUP_PARTNERS) && !au->partner_domains)
        finding(au, "medium", e->dn, "grants Partners without a domain-secure list (no "
                "relayDomainSecureDomain in the organisation): no client is ever a partner");
    if ((c.auth & AUTH_EXCHANGE_SERVER) && !au->node_certs)
        finding(au, "medium", e->dn, "ExchangeServer without any node certificate in the "
                "directory (relayCertificateSha256): no node can authenticate here");

    if (au->j) {
        json_begin_object(au->j, NULL);
        json_string(au->j, "Name", c.name);
        json_string(au->j, "Identity", e->dn);
        json_string(au->j, "Node", site ? NULL : node);
        json_string(au->j, "Scope", site ? "Site" : "Node");
        for (int k = 0; k < W_COUNT; k++) {
            json_begin_array(au->j, w_label[k]);
            for (size_t i = 0; i < w[k].n; i++)
                json_string(au->j, NULL, w[k].names[i]);
            json_end_array(au->j);
        }
        json_end_object(au->j);
    } else {
        static const char *const text[W_COUNT] = {"Relay (Accept-Any-Recipient)",
                                                  "Bypass anti-spam", "Bypass size limits",
                                                  "Send as anyone (Accept-Any-Sender)"};
        printf("Connector %s (%s)\n", c.name, e->dn);
        for (int k = 0; k < W_COUNT; k++) {
            printf("  %-36s", text[k]);
            if (!w[k].n)
                printf(" nobody");
            for (size_t i = 0; i < w[k].n; i++)
                printf("%s %s", i ? ";" : "", w[k].names[i]);
            printf("\n");
        }
        printf("\n");
    }
    for (int k = 0; k < W_COUNT; k++)
        admin_strv_free(w[k].names, w[k].n);
    for (size_t i = 0; i < n; i++)
        ace_clear(&aces[i]);
    free(aces);
    connector_clear(&c);
}

/* Same bindings (as sets) and every range of b equal to one of a's: one of the two can
 * never be chosen (selection ties go to load order). */
static bool shadows(const struct rn_connector *x, const struct rn_connector *y)
{
    if (x->nbindings != y->nbindings)
        return false;
    for (size_t i = 0; i < y->nbindings; i++) {
        bool hit = false;
        char bi[80], bj[80];
        ipr_binding_format(&y->bindings[i], bi, sizeof bi);
        for (size_t k = 0; k < x->nbindings && !hit; k++) {
            ipr_binding_format(&x->bindings[k], bj, sizeof bj);
            hit = !strcmp(bi, bj);
        }
        if (!hit)
            return false;
    }
    for (size_t i = 0; i < y->nranges; i++) {
        bool hit = false;
        for (size_t k = 0; k < x->nranges && !hit; k++)
            hit = ipr_range_overlap(&x->ranges[k], &y->ranges[i]) == IPR_EQUAL;
        if (!hit)
            return false;
    }
    return true;
}

/* Conflicts and shadowing among the connectors one node loads. */
static void audit_pairs(struct audit *au, const struct dir_entries *es, const bool *site)
{
    struct rn_connector *c = xcalloc(es->n + 1, sizeof *c);
    bool *ok = xcalloc(es->n + 1, sizeof *ok);
    char err[RN_ERRLEN];
    for (size_t i = 0; i < es->n; i++)
        ok[i] = connector_from_entry(&es->v[i], site[i], &c[i], err, sizeof err) == 0;
    for (size_t i = 0; i < es->n; i++)
        for (size_t k = i + 1; k < es->n; k++) {
            if (!ok[i] || !ok[k])
                continue;
            if (validate_conflict(&c[k], &c[i], err, sizeof err) != 0)
                finding(au, "high", es->v[k].dn, "conflicts with %s: %s", es->v[i].dn, err);
            if (c[i].enabled && c[k].enabled && shadows(&c[i], &c[k]))
                finding(au, "medium", es->v[k].dn, "shadowed by %s: identical bindings and "
                        "ranges, so only one of them can ever be selected", es->v[i].dn);
        }
    for (size_t i = 0; i < es->n; i++)
        connector_clear(&c[i]);
    free(c);
    free(ok);
}

/* ---- bootstrap files ---- */

/* Read path as the node would (no relayctl override applies): 0, or 2 after "file:line:
 * reason". */
static int audit_boot_add(struct audit *au, const char *path)
{
    char err[RN_ERRLEN];
    struct rn_bootstrap b;
    if (bootstrap_load(path, &b, err, sizeof err) != 0)
        return admin_fail(au->a, 2, "%s", err);
    au->bf = xrealloc(au->bf, (au->nbf + 1) * sizeof *au->bf);
    au->bf[au->nbf++] = (struct bootfile){path, b, false};
    return 0;
}

/* A node reading b offers AUTH PLAIN/LOGIN with the directory link in clear
 * (smtp_auth_mechs: protected link, or allow_cleartext_directory). */
static bool boot_cleartext_basic(const struct rn_bootstrap *b)
{
    return b->allow_cleartext_directory &&
           bootstrap_directory_security(b) != BOOT_DIR_PROTECTED;
}

/* Findings for node `node` (snapshot s) from the bootstrap files naming it. */
static void audit_boot_node(struct audit *au, const char *node, const struct rn_snapshot *s)
{
    for (size_t i = 0; i < au->nbf; i++) {
        struct bootfile *f = &au->bf[i];
        if (!f->b.node || !rn_strieq(f->b.node, node))
            continue;
        f->matched = true;
        if (!boot_cleartext_basic(&f->b))
            continue;
        size_t hits = 0;
        for (size_t k = 0; k < s->nconnectors; k++) {
            const struct rn_connector *c = &s->connectors[k];
            if (!c->enabled || !(c->auth & AUTH_BASIC))
                continue;
            hits++;
            finding(au, "high", c->dn, "BasicAuth with the directory link in clear: %s sets "
                    "allow_cleartext_directory = yes and uri %s is not ldaps://, StartTLS or "
                    "ldapi://, so AUTH PLAIN/LOGIN passwords reach the directory unencrypted",
                    f->path, f->b.uri);
        }
        if (!hits)
            finding(au, "medium", s->node_dn ? s->node_dn : node, "%s sets "
                    "allow_cleartext_directory = yes with uri %s in clear: no BasicAuth "
                    "connector of node %s now, one added later sends passwords unencrypted",
                    f->path, f->b.uri, node);
    }
}

/* Files whose node was not audited, although --node (if any) names it: a finding, never a
 * file silently passed over. */
static void audit_boot_unmatched(struct audit *au, const char *only)
{
    for (size_t i = 0; i < au->nbf; i++) {
        const struct bootfile *f = &au->bf[i];
        const char *node = f->b.node ? f->b.node : "";
        if (f->matched || !boot_cleartext_basic(&f->b) || (only && !rn_strieq(only, node)))
            continue;
        finding(au, "high", f->path, "allow_cleartext_directory = yes with uri %s in clear, "
                "for node '%s', which is not in the directory", f->b.uri, node);
    }
}

/* The loader's verdict for one node: every refused entry is a finding. */
static int audit_loader(struct audit *au, const char *node)
{
    struct admin *a = au->a;
    char *saved = a->dc.boot.node, err[RN_ERRLEN];
    a->dc.boot.node = (char *)node;
    struct rn_snapshot *s = NULL;
    enum dir_result r = ldapdir_load_snapshot(a->d, &a->dc.boot, &s, err, sizeof err);
    a->dc.boot.node = saved;
    if (r != DIR_FOUND)
        return admin_fail(a, 2, "loading node %s: %s", node, err);
    for (size_t i = 0; i < s->nerrors; i++) {
        const char *msg = s->errors[i];
        char dn[1024] = "";
        const char *sep = strstr(msg, ": ");
        if (sep && (size_t)(sep - msg) < sizeof dn)
            memcpy(dn, msg, (size_t)(sep - msg)), dn[sep - msg] = '\0';
        finding(au, "high", dn, "refused by the loader (node %s does not serve it): %s", node,
                sep ? sep + 2 : msg);
    }
    audit_boot_node(au, node, s);
    snapshot_unref(&s);
    return 0;
}

static int sev_rank(const char *s)
{
    for (int i = 0; i < 3; i++)
        if (!strcmp(s, sev_order[i]))
            return i;
    return 3;
}

static int finding_cmp(const void *x, const void *y)
{
    const struct finding *a = x, *b = y;
    int d = sev_rank(a->severity) - sev_rank(b->severity);
    return d ? d : strcmp(a->dn, b->dn);
}

static void audit_print(struct audit *au)
{
    if (au->j) {
        json_end_array(au->j);
        json_begin_array(au->j, "Findings");
        for (size_t i = 0; i < au->nf; i++) {
            json_begin_object(au->j, NULL);
            json_string(au->j, "Severity", au->f[i].severity);
            json_string(au->j, "Connector", au->f[i].dn);
            json_string(au->j, "Message", au->f[i].message);
            json_end_object(au->j);
        }
        json_end_array(au->j);
        json_begin_array(au->j, "BootstrapFiles");
        for (size_t i = 0; i < au->nbf; i++)
            json_string(au->j, NULL, au->bf[i].path);
        json_end_array(au->j);
        json_end_object(au->j);
        return;
    }
    static const char *const hdr[] = {"Severity", "Connector", "Finding"};
    struct table *t = table_new(3, hdr);
    for (size_t i = 0; i < au->nf; i++) {
        const char *row[3] = {au->f[i].severity, au->f[i].dn, au->f[i].message};
        table_row(t, row);
    }
    if (au->nf)
        table_print(t, stdout);
    else
        printf("No findings.\n");
    table_free(&t);
    printf("Bootstrap files audited:");
    for (size_t i = 0; i < au->nbf; i++)
        printf("%s %s", i ? "," : "", au->bf[i].path);
    printf("%s\n", au->nbf ? "" : " none (the directory holds no node's bootstrap file: "
           "give --bootstrap FILE)");
}

/* Options: the shared ones and --bootstrap FILE (repeatable); then the --config file
 * (or $RELAYNODE_CONFIG) joins the bootstrap files. 0, -1 after --help, or the exit code. */
static int audit_options(struct audit *au, int argc, char **argv)
{
    static const struct option opts[] = {
        {"bootstrap", required_argument, 0, OPT_BOOTSTRAP}, ADMIN_LONGOPTS, {0, 0, 0, 0}};
    struct admin *a = au->a;
    optind = 0;
    int c, rc = 0;
    while (!rc && (c = admin_getopt(a, argc, argv, opts, help_text)) != -1) {
        if (c == ADMIN_GETOPT_HELP)
            return -1;
        rc = c == OPT_BOOTSTRAP ? audit_boot_add(au, optarg) : 2;
    }
    if (rc)
        return rc;
    if (optind != argc)
        return admin_fail(a, 2, "audit takes no arguments (see --help)");
    const char *conf = a->opt[0] && *a->opt[0] ? a->opt[0] : getenv("RELAYNODE_CONFIG");
    return conf && *conf ? audit_boot_add(au, conf) : 0;
}

/* What the organisation holds for TLS principals: node certificates and domain-secure
 * partner domains (counted, for the findings of audit_connector). */
static int audit_org(struct audit *au)
{
    static const char *const filt[2] = {"(&(objectClass=relayNode)(relayCertificateSha256=*))",
                                        "(&(objectClass=relayContainer)"
                                        "(relayDomainSecureDomain=*))"};
    size_t *count[2] = {&au->node_certs, &au->partner_domains};
    for (int i = 0; i < 2; i++) {
        struct dir_entries es;
        char err[RN_ERRLEN];
        enum dir_result r = ldapadmin_search(au->a->d, au->a->dc.boot.base_dn, LA_SUB, filt[i],
                                             &es, err, sizeof err);
        if (r != DIR_FOUND && r != DIR_NOTFOUND)
            return admin_dir_fail(au->a, r, err);
        *count[i] = r == DIR_FOUND ? es.n : 0;
        if (r == DIR_FOUND)
            dir_entries_clear(&es);
    }
    return 0;
}

int relayctl_audit(int argc, char **argv)
{
    struct admin a;
    admin_init(&a, "audit");
    struct audit au = {.a = &a};
    int rc = audit_options(&au, argc, argv);
    if (!rc)
        rc = admin_open_nodeless(&a);
    struct ldapadmin_node *nodes = NULL;
    size_t nn = 0;
    /* The AD profile has no relay entries to inspect: its audit is what the loader refuses
     * for the one server named by --node (or the bootstrap's), docs/ad-profile.md. */
    bool ad = !rc && a.dc.boot.directory_profile == BOOT_PROFILE_AD;
    if (!rc && !ad)
        rc = admin_nodes(&a, &nodes, &nn);
    if (!rc && !ad && a.opt[5] && !nn)
        rc = admin_fail(&a, 2, "no nodes under %s", a.dc.boot.base_dn);
    if (!rc && !ad)
        rc = audit_org(&au);
    if (!rc && a.json) {
        au.j = json_new(stdout);
        json_begin_object(au.j, NULL);
        json_begin_array(au.j, "Connectors");
    }
    size_t audited = 0;
    for (size_t i = 0; !rc && i < nn; i++) {
        if (a.opt[5] && !rn_strieq(nodes[i].name, a.opt[5]))
            continue;
        audited++;
        free(a.node_name); free(a.node_dn); free(a.site_dn);
        a.node_name = xstrdup(nodes[i].name);
        a.node_dn = xstrdup(nodes[i].dn);
        a.site_dn = nodes[i].site_dn ? xstrdup(nodes[i].site_dn) : NULL;
        struct dir_entries es;
        bool *site;
        if ((rc = admin_connectors(&a, &es, &site)) != 0)
            break;
        for (size_t k = 0; k < es.n; k++)
            audit_connector(&au, &es.v[k], site[k], nodes[i].name);
        audit_pairs(&au, &es, site);
        dir_entries_clear(&es);
        free(site);
        rc = audit_loader(&au, nodes[i].name);
    }
    if (!rc && ad) {
        audited++;
        rc = audit_loader(&au, a.opt[5] && *a.opt[5] ? a.opt[5] : a.dc.boot.node);
    }
    if (!rc && a.opt[5] && !audited)
        rc = admin_fail(&a, 2, "node '%s' not found under %s", a.opt[5], a.dc.boot.base_dn);
    if (!rc)
        audit_boot_unmatched(&au, a.opt[5]);
    if (au.nf)
        qsort(au.f, au.nf, sizeof *au.f, finding_cmp);
    if (!rc)
        audit_print(&au);
    json_free(&au.j);
    if (!rc)
        rc = au.nf ? 1 : 0;
    for (size_t i = 0; i < au.nf; i++) {
        free(au.f[i].dn);
        free(au.f[i].message);
    }
    free(au.f);
    for (size_t i = 0; i < au.nbf; i++)
        bootstrap_clear(&au.bf[i].b);
    free(au.bf);
    admin_strv_free(au.done, au.ndone);
    ldapadmin_nodes_free(&nodes, nn);
    admin_close(&a);
    return rc < 0 ? 0 : rc;
}
