/* explain: `relayctl explain` answers "what would the node do with this client?" by loading
 * the snapshot exactly as the node does (ldapdir_load_snapshot) and asking the same policy_*
 * functions the SMTP session asks, stage by stage, so the answer cannot drift from the
 * enforcement (Exim's -bh is the model). It prints the connector chosen and why, the token,
 * the PermissionGroups the ACEs show as, every right with the ACE that granted or denied it,
 * and the exact SMTP reply of each stage. Exit 0: all accepted; 1: something refused;
 * 2: usage or directory error. Nothing here decides anything on its own. */
#include "tools/relayctl.h"
#include "tools/dirconf.h"
#include "directory/acl.h"
#include "directory/ipr.h"
#include "directory/ldap/ldapdir.h"
#include "directory/policy.h"
#include "directory/base/util.h"
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_RCPT 64

struct explain_args {
    const char *local, *remote, *user, *from, *header_from;
    const char *to[MAX_RCPT]; size_t nto;
    bool tls, json;
    uint64_t size;
};

/* One printed fact: text mode aligns "label  value", JSON mode collects the same facts. */
struct out { bool json; bool first; };

static void json_str(const char *s)
{
    putchar('"');
    for (const unsigned char *p = (const unsigned char *)(s ? s : ""); *p; p++) {
        if (*p == '"' || *p == '\\')
            printf("\\%c", *p);
        else if (*p < 0x20)
            printf("\\u%04x", *p);
        else
            putchar(*p);
    }
    putchar('"');
}

static void json_key(struct out *o, const char *k)
{
    printf("%s", o->first ? "" : ",");
    o->first = false;
    json_str(k);
    putchar(':');
}

static void text_line(const char *label, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void text_line(const char *label, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    printf("%-22s ", label);
    vprintf(fmt, ap);
    putchar('\n');
    va_end(ap);
}

static int usage(FILE *f)
{
    fprintf(f, "usage: relayctl explain --local IP:PORT --remote IP [--user NAME_OR_DN]\n"
               "         --from ADDR --to ADDR [--to ADDR]... [--tls] [--size N]\n"
               "         [--header-from ADDR] [--json] [directory options]\n\n"
               "Show the connector a client would get, its token and rights, and the exact SMTP\n"
               "reply of each stage, from the node's own snapshot and policy code.\n\n"
               "directory options:\n%s", dirconf_usage);
    return f == stdout ? 0 : 2;
}

static int parse_args(int argc, char **argv, struct explain_args *a, struct dirconf *dc)
{
    char err[RN_ERRLEN];
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i];
        int r = dirconf_option(dc, argc, argv, &i, err, sizeof err);
        if (r < 0) {
            fprintf(stderr, "relayctl explain: %s\n", err);
            return -1;
        }
        if (r > 0)
            continue;
        if (!strcmp(o, "--help") || !strcmp(o, "-h")) {
            usage(stdout);
            return 1;
        }
        if (!strcmp(o, "--tls")) { a->tls = true; continue; }
        if (!strcmp(o, "--json")) { a->json = true; continue; }
        const char **slot = !strcmp(o, "--local") ? &a->local : !strcmp(o, "--remote") ? &a->remote
                          : !strcmp(o, "--user") ? &a->user : !strcmp(o, "--from") ? &a->from
                          : !strcmp(o, "--header-from") ? &a->header_from : NULL;
        bool is_to = !strcmp(o, "--to"), is_size = !strcmp(o, "--size");
        if (!slot && !is_to && !is_size) {
            fprintf(stderr, "relayctl explain: unknown option '%s'\n", o);
            return -1;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "relayctl explain: %s needs a value\n", o);
            return -1;
        }
        const char *v = argv[++i];
        if (slot) {
            *slot = v;
        } else if (is_to) {
            if (a->nto == MAX_RCPT) {
                fprintf(stderr, "relayctl explain: at most %d --to\n", MAX_RCPT);
                return -1;
            }
            a->to[a->nto++] = v;
        } else {
            char *end = NULL;
            a->size = strtoull(v, &end, 10);
            if (!*v || *end || *v == '-') {
                fprintf(stderr, "relayctl explain: --size: '%s' is not a byte count\n", v);
                return -1;
            }
        }
    }
    if (!a->local || !a->remote || !a->from || a->nto == 0) {
        fprintf(stderr, "relayctl explain: --local, --remote, --from and --to are required\n");
        return -1;
    }
    return 0;
}

/* Number of addresses in a range, as text ("1", "256", "2^128"). */
static void range_size(const ipr_range *r, char *buf, size_t len)
{
    unsigned __int128 lo = 0, hi = 0;
    for (int i = 0; i < 16; i++) {
        lo = lo << 8 | r->lo.b[i];
        hi = hi << 8 | r->hi.b[i];
    }
    unsigned __int128 span = hi - lo;
    if (span == ~(unsigned __int128)0) {
        snprintf(buf, len, "2^128");
    } else if (span < (unsigned __int128)UINT64_MAX) {
        snprintf(buf, len, "%llu", (unsigned long long)(span + 1));
    } else {
        int bits = 0;
        for (unsigned __int128 x = span + 1; x > 1; x >>= 1)
            bits++;
        snprintf(buf, len, "~2^%d", bits);
    }
}

/* For display: the binding of c that serves local:port, and c's smallest range holding the
 * client (policy_select made the choice; this only says which pieces matched). */
static bool connector_match(const struct rn_connector *c, const ipr_addr *local, uint16_t port,
                            const ipr_addr *remote, bool v4, const ipr_binding **b,
                            const ipr_range **r)
{
    *b = NULL;
    *r = NULL;
    for (size_t i = 0; i < c->nbindings; i++) {
        const ipr_binding *x = &c->bindings[i];
        if (x->port != port || x->v4 != v4)
            continue;
        if (!x->wildcard && memcmp(&x->ip, local, sizeof *local) != 0)
            continue;
        if (!*b || !x->wildcard)
            *b = x;
    }
    for (size_t i = 0; i < c->nranges; i++)
        if (ipr_range_contains(&c->ranges[i], remote, v4) &&
            (!*r || ipr_range_cmp_size(&c->ranges[i], *r) < 0))
            *r = &c->ranges[i];
    return *b && *r;
}

struct stage { const char *name; char arg[600]; struct verdict v; bool reached; };

static void verdict_text(const struct verdict *v, char *buf, size_t len)
{
    snprintf(buf, len, "%d %s %s", v->code, v->enh ? v->enh : "", v->text ? v->text : "");
}

int relayctl_explain(int argc, char **argv)
{
    struct explain_args a = {0};
    struct dirconf dc;
    dirconf_init(&dc);
    int pr = parse_args(argc, argv, &a, &dc);
    if (pr != 0) {
        dirconf_clear(&dc);
        return pr > 0 ? 0 : usage(stderr);
    }
    char err[RN_ERRLEN];
    ipr_binding local;
    ipr_addr remote;
    bool rv4;
    if (ipr_binding_parse(a.local, &local, err, sizeof err) != 0) {
        fprintf(stderr, "relayctl explain: --local %s: %s\n", a.local, err);
        dirconf_clear(&dc);
        return 2;
    }
    if (ipr_addr_parse(a.remote, &remote, &rv4) != 0) {
        fprintf(stderr, "relayctl explain: --remote %s: not an IP address\n", a.remote);
        dirconf_clear(&dc);
        return 2;
    }
    bool v4 = rv4 || ipr_addr_is_v4mapped(&remote);
    if (v4 != local.v4) {
        fprintf(stderr, "relayctl explain: --local and --remote must be of one family\n");
        dirconf_clear(&dc);
        return 2;
    }
    if (dirconf_finish(&dc, err, sizeof err) != 0) {
        fprintf(stderr, "relayctl: %s\n", err);
        dirconf_clear(&dc);
        return 2;
    }
    struct ldapdir *d = NULL;
    struct rn_snapshot *s = NULL;
    enum dir_result dr = dirconf_connect(&dc, &d, err, sizeof err);
    if (dr == DIR_FOUND)
        dr = ldapdir_load_snapshot(d, &dc.boot, &s, err, sizeof err);
    if (dr != DIR_FOUND) {
        fprintf(stderr, "relayctl: %s\n", err);
        ldapdir_free(&d);
        dirconf_clear(&dc);
        return 2;
    }

    struct out o = {a.json, true};
    int rc = 0;
    if (o.json) {
        putchar('{');
        json_key(&o, "version"); json_str(s->version);
        json_key(&o, "node"); json_str(s->node_dn);
        json_key(&o, "warnings"); putchar('[');
        for (size_t i = 0; i < s->nerrors; i++) {
            if (i) putchar(',');
            json_str(s->errors[i]);
        }
        putchar(']');
    } else {
        text_line("snapshot", "%s (node %s, %zu connectors)", s->version, s->node_dn,
                  s->nconnectors);
        for (size_t i = 0; i < s->nerrors; i++)
            text_line("warning", "%s", s->errors[i]);
    }

    struct verdict sel;
    const struct rn_connector *c = policy_select(s, &local.ip, local.port, &remote, v4, &sel);
    char buf[4096], reply[700];
    if (!c) {
        verdict_text(&sel, reply, sizeof reply);
        if (o.json) {
            json_key(&o, "connector"); printf("null");
            json_key(&o, "connect"); json_str(reply);
            json_key(&o, "result"); json_str("refused");
            printf("}\n");
        } else {
            text_line("connector", "none: no enabled connector serves %s from %s", a.local,
                      a.remote);
            text_line("connect", "%s", reply);
            text_line("result", "refused");
        }
        snapshot_unref(&s);
        ldapdir_free(&d);
        dirconf_clear(&dc);
        return 1;
    }

    /* Why this connector: the matched pieces, and every other candidate that also held the
     * client on this endpoint. */
    const ipr_binding *mb;
    const ipr_range *mr;
    char bstr[128] = "?", rstr[128] = "?", rsize[64] = "?";
    if (connector_match(c, &local.ip, local.port, &remote, v4, &mb, &mr)) {
        ipr_binding_format(mb, bstr, sizeof bstr);
        ipr_range_format(mr, rstr, sizeof rstr);
        range_size(mr, rsize, sizeof rsize);
    }
    if (o.json) {
        json_key(&o, "connector"); putchar('{');
        struct out oc = {true, true};
        json_key(&oc, "name"); json_str(c->name);
        json_key(&oc, "dn"); json_str(c->dn);
        json_key(&oc, "binding"); json_str(bstr);
        json_key(&oc, "wildcard"); printf(mb && mb->wildcard ? "true" : "false");
        json_key(&oc, "range"); json_str(rstr);
        json_key(&oc, "range_size"); json_str(rsize);
        json_key(&oc, "candidates"); putchar('[');
    } else {
        text_line("connector", "%s (%s)", c->name, c->dn);
        text_line("  binding matched", "%s%s", bstr, mb && mb->wildcard ? " (wildcard)" : " (exact)");
        text_line("  range matched", "%s (%s address%s: the smallest holding %s)", rstr, rsize,
                  strcmp(rsize, "1") ? "es" : "", a.remote);
    }
    bool firstcand = true;
    for (size_t i = 0; i < s->nconnectors; i++) {
        const struct rn_connector *x = &s->connectors[i];
        const ipr_binding *xb;
        const ipr_range *xr;
        if (x == c || !x->enabled || !connector_match(x, &local.ip, local.port, &remote, v4, &xb, &xr))
            continue;
        char xbs[128], xrs[128], xsz[64];
        ipr_binding_format(xb, xbs, sizeof xbs);
        ipr_range_format(xr, xrs, sizeof xrs);
        range_size(xr, xsz, sizeof xsz);
        if (o.json) {
            printf("%s{", firstcand ? "" : ",");
            struct out ox = {true, true};
            json_key(&ox, "name"); json_str(x->name);
            json_key(&ox, "binding"); json_str(xbs);
            json_key(&ox, "range"); json_str(xrs);
            json_key(&ox, "range_size"); json_str(xsz);
            putchar('}');
        } else {
            text_line(firstcand ? "  also considered" : "", "%s: %s, range %s (%s address%s)",
                      x->name, xbs, xrs, xsz, strcmp(xsz, "1") ? "es" : "");
        }
        firstcand = false;
    }
    if (o.json)
        printf("]}");
    else if (firstcand)
        text_line("  also considered", "no other connector serves this client here");

    /* The token: the connector's initial one, or the directory user's after AUTH. */
    struct token t = {0};
    char **addrs = NULL;
    size_t naddrs = 0;
    if (a.user) {
        dr = ldapdir_user_token(d, &dc.boot, a.user, &t, &addrs, &naddrs, err, sizeof err);
        if (dr != DIR_FOUND) {
            const char *r = dr == DIR_NOTFOUND ? "535 5.7.3 Authentication unsuccessful"
                                               : "454 4.7.0 Temporary authentication failure";
            if (o.json) {
                json_key(&o, "auth"); json_str(r);
                json_key(&o, "auth_error"); json_str(err);
                json_key(&o, "result"); json_str(dr == DIR_NOTFOUND ? "refused" : "error");
                printf("}\n");
            } else {
                text_line("AUTH", "%s", r);
                text_line("  because", "%s", err);
                text_line("result", dr == DIR_NOTFOUND ? "refused" : "directory error");
            }
            if (dr != DIR_NOTFOUND)
                fprintf(stderr, "relayctl: %s\n", err);
            snapshot_unref(&s);
            ldapdir_free(&d);
            dirconf_clear(&dc);
            return dr == DIR_NOTFOUND ? 1 : 2;
        }
    } else {
        policy_initial_token(c, &t);
    }
    struct rights_eval re;
    acl_eval(c->aces, c->naces, &t, &re);
    token_format(&t, buf, sizeof buf);
    char groups[256];
    groups_format(acl_derive_groups(c->aces, c->naces), groups, sizeof groups);
    if (o.json) {
        json_key(&o, "token"); json_str(buf);
        json_key(&o, "addresses"); putchar('[');
        for (size_t i = 0; i < naddrs; i++) {
            if (i) putchar(',');
            json_str(addrs[i]);
        }
        putchar(']');
        json_key(&o, "permission_groups"); json_str(groups);
        json_key(&o, "rights"); putchar('{');
    } else {
        text_line("token", "%s", buf);
        if (naddrs) {
            text_line("  addresses", "%s", addrs[0]);
            for (size_t i = 1; i < naddrs; i++)
                text_line("", "%s", addrs[i]);
        }
        text_line("permission groups", "%s", groups);
        text_line("rights", "%s", "");
    }
    for (unsigned i = 0; i < RIGHT_COUNT; i++) {
        const struct right_info *ri = right_by_index(i);
        const char *state = re.effective & ri->bit ? "allowed" : re.denied & ri->bit ? "denied"
                                                                                     : "absent";
        int idx = re.denied & ri->bit ? re.deny_ace[i] : re.grant_ace[i];
        char acebuf[ACE_MAXLEN] = "";
        if ((re.denied | re.allowed) & ri->bit && idx >= 0 && (size_t)idx < c->naces)
            ace_format(&c->aces[idx], acebuf, sizeof acebuf);
        if (o.json) {
            printf("%s", i ? "," : "");
            json_str(ri->name);
            printf(":{\"state\":");
            json_str(state);
            printf(",\"ace\":");
            if (*acebuf) json_str(acebuf); else printf("null");
            putchar('}');
        } else {
            printf("  %-54s %-8s %s\n", ri->name, state, acebuf);
        }
    }
    if (o.json)
        putchar('}');

    /* The stages, in the order the session meets them. A refusal at AUTH or MAIL ends the
     * transaction: later stages are shown as not reached. */
    struct stage st[MAX_RCPT + 6];
    size_t ns = 0;
    bool stop = false, refused = false;
    if (a.user) {
        st[ns] = (struct stage){.name = "AUTH", .reached = true};
        snprintf(st[ns].arg, sizeof st[ns].arg, "%s", a.user);
        policy_auth_result(&re, &st[ns].v);
        stop = !st[ns].v.ok;
        ns++;
    }
    st[ns] = (struct stage){.name = "MAIL FROM", .reached = !stop};
    snprintf(st[ns].arg, sizeof st[ns].arg, "<%s>", a.from);
    if (!stop) {
        policy_mail(c, &re, &t, a.tls, a.size, &st[ns].v);
        stop = !st[ns].v.ok;
    }
    ns++;
    uint64_t accepted = 0;
    for (size_t i = 0; i < a.nto; i++, ns++) {
        st[ns] = (struct stage){.name = "RCPT TO", .reached = !stop};
        snprintf(st[ns].arg, sizeof st[ns].arg, "<%s>", a.to[i]);
        if (!stop) {
            policy_rcpt(s, c, &re, a.to[i], accepted, &st[ns].v);
            accepted += st[ns].v.ok;
        }
    }
    const char *const *owned = (const char *const *)addrs;
    st[ns] = (struct stage){.name = "sender (P1)", .reached = !stop};
    snprintf(st[ns].arg, sizeof st[ns].arg, "%s", a.from);
    if (!stop)
        policy_sender(s, &re, &t, a.from, owned, naddrs, &st[ns].v);
    ns++;
    if (a.header_from) {
        st[ns] = (struct stage){.name = "sender (P2)", .reached = !stop};
        snprintf(st[ns].arg, sizeof st[ns].arg, "%s", a.header_from);
        if (!stop)
            policy_sender(s, &re, &t, a.header_from, owned, naddrs, &st[ns].v);
        ns++;
    }
    for (size_t i = 0; i < ns; i++)
        refused = refused || !st[i].reached || !st[i].v.ok;
    const char *auth_as = policy_auth_as(&re, &t);
    bool bypass_spam = re.effective & R_BYPASS_ANTISPAM;
    bool bypass_size = re.effective & R_BYPASS_SIZE_LIMIT;

    if (o.json) {
        json_key(&o, "stages"); putchar('[');
        for (size_t i = 0; i < ns; i++) {
            printf("%s{", i ? "," : "");
            struct out os = {true, true};
            json_key(&os, "stage"); json_str(st[i].name);
            json_key(&os, "arg"); json_str(st[i].arg);
            json_key(&os, "reached"); printf(st[i].reached ? "true" : "false");
            if (st[i].reached) {
                verdict_text(&st[i].v, reply, sizeof reply);
                json_key(&os, "ok"); printf(st[i].v.ok ? "true" : "false");
                json_key(&os, "reply"); json_str(reply);
                json_key(&os, "why"); json_str(st[i].v.why);
                const struct right_info *ri = st[i].v.right ? right_by_bit(st[i].v.right) : NULL;
                json_key(&os, "right"); if (ri) json_str(ri->name); else printf("null");
            }
            putchar('}');
        }
        putchar(']');
        json_key(&o, "auth_as"); json_str(auth_as);
        json_key(&o, "bypass_anti_spam"); printf(bypass_spam ? "true" : "false");
        json_key(&o, "bypass_size_limits"); printf(bypass_size ? "true" : "false");
        json_key(&o, "result"); json_str(refused ? "refused" : "accepted");
        printf("}\n");
    } else {
        for (size_t i = 0; i < ns; i++) {
            char label[700];
            snprintf(label, sizeof label, "%s %s", st[i].name, st[i].arg);
            if (!st[i].reached) {
                text_line(label, "not reached");
                continue;
            }
            verdict_text(&st[i].v, reply, sizeof reply);
            const struct right_info *ri = st[i].v.right ? right_by_bit(st[i].v.right) : NULL;
            printf("%-40s %s", label, reply);
            if (st[i].v.why || ri)
                printf("  (%s%s%s)", st[i].v.why ? st[i].v.why : "",
                       st[i].v.why && ri ? ": " : "", ri ? ri->name : "");
            putchar('\n');
        }
        text_line("auth as", "%s", auth_as);
        text_line("anti-spam", "%s", bypass_spam ? "bypassed" : "applies");
        text_line("size limits", "%s", bypass_size ? "bypassed" : "apply");
        text_line("result", "%s", refused ? "refused" : "accepted");
    }
    rc = refused ? 1 : 0;
    for (size_t i = 0; i < naddrs; i++)
        free(addrs[i]);
    free(addrs);
    token_clear(&t);
    snapshot_unref(&s);
    ldapdir_free(&d);
    dirconf_clear(&dc);
    return rc;
}
