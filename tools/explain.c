/* explain: `relayctl explain` answers "what would the node do with this client?" by loading
 * the snapshot exactly as the node does (ldapdir_load_snapshot) and asking the same policy_*
 * functions the SMTP session asks, stage by stage, so the answer cannot drift from the
 * enforcement (Exim's -bh is the model). explain_build gathers the answer as data (explain.h):
 * the connector chosen and why, the token, the PermissionGroups the ACEs show as, every right
 * with the ACE that granted or denied it, and the exact SMTP reply of each stage;
 * explain_render.c prints it. Exit 0: all accepted; 1: something refused; 2: usage or
 * directory error. Nothing here decides anything on its own. */
#include "tools/relayctl.h"
#include "tools/dirconf.h"
#include "tools/explain.h"
#include "directory/acl.h"
#include "directory/ipr.h"
#include "directory/ldap/ldapdir.h"
#include "directory/policy.h"
#include "directory/base/util.h"
#include "node/common/tlsctx.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int usage(FILE *f)
{
    fprintf(f, "usage: relayctl explain --local IP:PORT --remote IP [--user NAME_OR_DN]\n"
               "         --from ADDR --to ADDR [--to ADDR]... [--tls] [--size N]\n"
               "         [--client-cert PEM] [--header-from ADDR] [--json]\n"
               "         [directory options]\n\n"
               "Show the connector a client would get, its token and rights, and the exact SMTP\n"
               "reply of each stage, from the node's own snapshot and policy code.\n"
               "--client-cert: the client presents this certificate on STARTTLS (implies --tls):\n"
               "a relay node's (ExchangeServer) or a partner's (DomainSecureEnabled, checked\n"
               "against the bootstrap's tls_ca_file).\n\n"
               "directory options:\n%s", dirconf_usage);
    return f == stdout ? 0 : 2;
}

/* 0, 1 after printing --help, -1 after printing a usage error. */
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
                          : !strcmp(o, "--header-from") ? &a->header_from
                          : !strcmp(o, "--client-cert") ? &a->client_cert : NULL;
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
            if (a->nto == EXPLAIN_MAX_RCPT) {
                fprintf(stderr, "relayctl explain: at most %d --to\n", EXPLAIN_MAX_RCPT);
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

/* The matched pieces of c for the client, formatted; false when c does not serve it. */
static bool match_fill(const struct rn_connector *c, const struct explain_args *a,
                       struct explain_match *m)
{
    const ipr_binding *mb;
    const ipr_range *mr;
    *m = (struct explain_match){.name = c->name, .dn = c->dn};
    rn_strlcpy(m->binding, "?", sizeof m->binding);
    rn_strlcpy(m->range, "?", sizeof m->range);
    rn_strlcpy(m->range_size, "?", sizeof m->range_size);
    bool hit = connector_match(c, &a->local_ep.ip, a->local_ep.port, &a->remote_ip, a->v4,
                               &mb, &mr);
    if (hit) {
        ipr_binding_format(mb, m->binding, sizeof m->binding);
        ipr_range_format(mr, m->range, sizeof m->range);
        range_size(mr, m->range_size, sizeof m->range_size);
    }
    m->wildcard = mb && mb->wildcard;
    return hit;
}

/* Every other enabled connector that also holds the client on this endpoint. */
static void candidates_fill(const struct rn_connector *c, struct explanation *x)
{
    const struct rn_snapshot *s = x->s;
    const struct explain_args *a = x->args;
    x->cands = xcalloc(s->nconnectors + 1, sizeof *x->cands);
    for (size_t i = 0; i < s->nconnectors; i++) {
        const struct rn_connector *o = &s->connectors[i];
        if (o != c && o->enabled && match_fill(o, a, &x->cands[x->ncands]))
            x->ncands++;
    }
}

/* Each right: allowed, denied or absent, and the ACE that decided it. */
static void rights_fill(const struct rn_connector *c, const struct rights_eval *re,
                        struct explanation *x)
{
    for (unsigned i = 0; i < RIGHT_COUNT; i++) {
        const struct right_info *ri = right_by_index(i);
        struct explain_right *r = &x->rights[i];
        r->name = ri->name;
        r->state = re->effective & ri->bit ? "allowed" : re->denied & ri->bit ? "denied"
                                                                                : "absent";
        int idx = re->denied & ri->bit ? re->deny_ace[i] : re->grant_ace[i];
        if ((re->denied | re->allowed) & ri->bit && idx >= 0 && (size_t)idx < c->naces) {
            char buf[ACE_MAXLEN];
            ace_format(&c->aces[idx], buf, sizeof buf);
            r->ace = *buf ? xstrdup(buf) : NULL;
        }
    }
}

/* The next stage: name, its argument (an address in angle brackets when angle) and whether
 * the session gets there (no earlier refusal ended the transaction). */
static struct explain_stage *stage_add(struct explanation *x, const char *name, bool reached,
                                       const char *arg, bool angle)
{
    struct explain_stage *st = &x->stages[x->nstages++];
    *st = (struct explain_stage){.name = name, .reached = reached};
    snprintf(st->arg, sizeof st->arg, "%s%s%s", angle ? "<" : "", arg, angle ? ">" : "");
    return st;
}

/* The stages, in the order the session meets them. A refusal at AUTH or MAIL ends the
 * transaction: later stages are shown as not reached. */
static void stages_fill(const struct rn_connector *c, const struct rights_eval *re,
                        const struct token *t, struct explanation *x)
{
    const struct explain_args *a = x->args;
    const struct rn_snapshot *s = x->s;
    const char *const *owned = (const char *const *)x->addrs;
    struct explain_stage *st;
    bool stop = false;
    x->stages = xcalloc(EXPLAIN_MAX_RCPT + 6, sizeof *x->stages);
    if (a->user) {
        st = stage_add(x, "AUTH", true, a->user, false);
        policy_auth_result(re, &st->v);
        stop = !st->v.ok;
    }
    st = stage_add(x, "MAIL FROM", !stop, a->from, true);
    if (!stop) {
        policy_mail(c, re, t, a->tls, a->size, &st->v);
        stop = !st->v.ok;
    }
    uint64_t accepted = 0;
    for (size_t i = 0; i < a->nto; i++) {
        st = stage_add(x, "RCPT TO", !stop, a->to[i], true);
        if (!stop) {
            policy_rcpt(s, c, re, a->to[i], accepted, &st->v);
            accepted += st->v.ok;
        }
    }
    st = stage_add(x, "sender (P1)", !stop, a->from, false);
    if (!stop)
        policy_sender(s, re, t, a->from, owned, x->naddrs, &st->v);
    if (a->header_from) {
        st = stage_add(x, "sender (P2)", !stop, a->header_from, false);
        if (!stop)
            policy_sender(s, re, t, a->header_from, owned, x->naddrs, &st->v);
    }
    for (size_t i = 0; i < x->nstages; i++) {
        st = &x->stages[i];
        x->refused = x->refused || !st->reached || !st->v.ok;
        if (!st->reached)
            continue;
        snprintf(st->reply, sizeof st->reply, "%d %s %s", st->v.code, st->v.enh ? st->v.enh : "",
                 st->v.text ? st->v.text : "");
        const struct right_info *ri = st->v.right ? right_by_bit(st->v.right) : NULL;
        st->right = ri ? ri->name : NULL;
    }
}

/* Domain Secure (docs/permission-model.md §3.3) for --client-cert, with the node's checks
 * (tlsctx_cert_file_check against tls_ca_file): 0 with *t a partner's token, else -1 and why. */
static int partner_fill(const struct rn_bootstrap *b, const struct rn_connector *c,
                        struct token *t, struct explanation *x, char *why, size_t whylen)
{
    const struct rn_snapshot *s = x->s;
    if (!s->npartner_domains) {
        snprintf(why, whylen, "no-domain-secure-list");
        return -1;
    }
    void *store = tlsctx_store_new(b->tls_ca_file, why, whylen);
    size_t m = 0;
    int rc = store ? tlsctx_cert_file_check(x->args->client_cert, store,
                                            (const char *const *)s->partner_domains,
                                            s->npartner_domains, true, &m, why, whylen) : -1;
    tlsctx_store_free(store);
    if (rc != 1)
        return -1;
    token_init_partner(t, s->partner_domains[m]);
    snprintf(x->tls_identity, sizeof x->tls_identity, "partner %s (certificate)", t->name);
    return 0;
}

/* The token: the connector's initial one, or the directory user's after AUTH. -1 when the
 * user lookup failed (x->end and x->status say how). */
static int token_fill(struct ldapdir *d, const struct rn_bootstrap *b,
                      const struct rn_connector *c, struct token *t, struct explanation *x)
{
    const struct explain_args *a = x->args;
    if (!a->user && a->client_cert) {    /* what the session decides after STARTTLS */
        const char *why = policy_tls_identity(x->s, c, a->cert_sha256, t);
        if (!why) {
            snprintf(x->tls_identity, sizeof x->tls_identity, "node %s (certificate)", t->name);
            return 0;
        }
        char pw[300];
        if (c->domain_secure && partner_fill(b, c, t, x, pw, sizeof pw) == 0)
            return 0;
        snprintf(x->tls_identity, sizeof x->tls_identity, "anonymous (%s)",
                 c->domain_secure ? pw : why);
    }
    if (!a->user) {
        policy_initial_token(c, t);
        return 0;
    }
    enum dir_result dr = ldapdir_user_token(d, b, x->s, a->user, t, &x->addrs, &x->naddrs,
                                            x->auth_error, sizeof x->auth_error);
    if (dr == DIR_FOUND)
        return 0;
    x->end = EXPLAIN_AUTH_FAILED;
    x->auth_tempfail = dr != DIR_NOTFOUND;
    x->auth_reply = x->auth_tempfail ? "454 4.7.0 Temporary authentication failure"
                                     : "535 5.7.3 Authentication unsuccessful";
    x->status = x->auth_tempfail ? 2 : 1;
    return -1;
}

void explain_build(struct ldapdir *d, const struct rn_bootstrap *b, struct rn_snapshot *s,
                   const struct explain_args *args, struct explanation *x)
{
    memset(x, 0, sizeof *x);
    x->args = args;
    x->s = snapshot_ref(s);
    struct verdict sel;
    const struct rn_connector *c = policy_select(s, &args->local_ep.ip, args->local_ep.port,
                                                 &args->remote_ip, args->v4, &sel);
    if (!c) {
        x->end = EXPLAIN_NO_CONNECTOR;
        snprintf(x->connect_reply, sizeof x->connect_reply, "%d %s %s", sel.code,
                 sel.enh ? sel.enh : "", sel.text ? sel.text : "");
        x->refused = true;
        x->status = 1;
        return;
    }
    match_fill(c, args, &x->chosen);
    candidates_fill(c, x);
    struct token t = {0};
    if (token_fill(d, b, c, &t, x) != 0) {
        token_clear(&t);
        return;
    }
    struct rights_eval re;
    acl_eval(c->aces, c->naces, &t, &re);
    token_format(&t, x->token, sizeof x->token);
    groups_format(acl_derive_groups(c->aces, c->naces), x->groups, sizeof x->groups);
    rights_fill(c, &re, x);
    stages_fill(c, &re, &t, x);
    x->auth_as = policy_auth_as(&re, &t);
    x->bypass_spam = re.effective & R_BYPASS_ANTISPAM;
    x->bypass_size = re.effective & R_BYPASS_SIZE_LIMIT;
    x->status = x->refused ? 1 : 0;
    token_clear(&t);
}

void explanation_clear(struct explanation *x)
{
    for (size_t i = 0; i < x->naddrs; i++)
        free(x->addrs[i]);
    free(x->addrs);
    for (unsigned i = 0; i < RIGHT_COUNT; i++)
        free(x->rights[i].ace);
    free(x->cands);
    free(x->stages);
    snapshot_unref(&x->s);
    memset(x, 0, sizeof *x);
}

/* Parse --local and --remote (one family); 2 after printing why. */
static int endpoints_parse(struct explain_args *a)
{
    char err[RN_ERRLEN];
    bool rv4;
    if (ipr_binding_parse(a->local, &a->local_ep, err, sizeof err) != 0) {
        fprintf(stderr, "relayctl explain: --local %s: %s\n", a->local, err);
        return 2;
    }
    if (ipr_addr_parse(a->remote, &a->remote_ip, &rv4) != 0) {
        fprintf(stderr, "relayctl explain: --remote %s: not an IP address\n", a->remote);
        return 2;
    }
    a->v4 = rv4 || ipr_addr_is_v4mapped(&a->remote_ip);
    if (a->v4 != a->local_ep.v4) {
        fprintf(stderr, "relayctl explain: --local and --remote must be of one family\n");
        return 2;
    }
    return 0;
}

/* The node's snapshot, loaded as the node loads it: 0, or 2 after printing why. */
static int snapshot_open(struct dirconf *dc, struct ldapdir **d, struct rn_snapshot **s)
{
    char err[RN_ERRLEN];
    if (dirconf_finish(dc, err, sizeof err) != 0) {
        fprintf(stderr, "relayctl: %s\n", err);
        return 2;
    }
    enum dir_result dr = dirconf_connect(dc, d, err, sizeof err);
    if (dr == DIR_FOUND)
        dr = ldapdir_load_snapshot(*d, &dc->boot, s, err, sizeof err);
    if (dr != DIR_FOUND) {
        fprintf(stderr, "relayctl: %s\n", err);
        return 2;
    }
    return 0;
}

int relayctl_explain(int argc, char **argv)
{
    struct explain_args a = {0};
    struct dirconf dc;
    dirconf_init(&dc);
    int rc = parse_args(argc, argv, &a, &dc);
    if (rc != 0) {
        dirconf_clear(&dc);
        return rc > 0 ? 0 : usage(stderr);
    }
    struct ldapdir *d = NULL;
    struct rn_snapshot *s = NULL;
    rc = endpoints_parse(&a);
    if (rc == 0 && a.client_cert) {
        char err[RN_ERRLEN];
        a.tls = true;
        if (tlsctx_cert_file_sha256(a.client_cert, a.cert_sha256, err, sizeof err) != 0) {
            fprintf(stderr, "relayctl explain: --client-cert: %s\n", err);
            rc = 2;
        }
    }
    if (rc == 0)
        rc = snapshot_open(&dc, &d, &s);
    if (rc == 0) {
        struct explanation x;
        explain_build(d, &dc.boot, s, &a, &x);
        if (a.json)
            explain_print_json(&x, stdout);
        else
            explain_print_text(&x, stdout);
        if (x.end == EXPLAIN_AUTH_FAILED && x.auth_tempfail)
            fprintf(stderr, "relayctl: %s\n", x.auth_error);
        rc = x.status;
        explanation_clear(&x);
    }
    snapshot_unref(&s);
    ldapdir_free(&d);
    dirconf_clear(&dc);
    return rc;
}
