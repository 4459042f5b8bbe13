/* snapbuild: the snapshot a store describes (snapdelta.h). The order is fixed by content:
 * the node's receive connectors by name (then DN), then its site's the same way (selection
 * ties fall back to this order); accepted domains by name then DN, send connectors by name
 * then DN, node certificates and refusals by normalised DN, partner domains sorted. The
 * cross-entry refusals are the loader's, unchanged: two enabled connectors sharing a port
 * that validate_conflict rejects are both left out (which one a client would get is
 * ambiguous, and an ambiguous relay decision fails closed), one domain name with two types
 * is refused on both sides, and two defaults make neither the default. */
#include "directory/snapdelta.h"
#include "directory/snapdelta-private.h"
#include "directory/ace.h"
#include "directory/policy.h"
#include "directory/validate.h"
#include "directory/base/util.h"
#include <stdlib.h>
#include <string.h>

static char *dup_or_null(const char *p)
{
    return p ? xstrdup(p) : NULL;
}

static void *dup_mem(const void *p, size_t n)
{
    if (!p || !n)
        return NULL;
    void *q = xmalloc(n);
    memcpy(q, p, n);
    return q;
}

static char **dup_strv(char *const *v, size_t n)
{
    if (!n)
        return NULL;
    char **o = xcalloc(n, sizeof *o);
    for (size_t i = 0; i < n; i++)
        o[i] = xstrdup(v[i]);
    return o;
}

static void connector_copy(struct rn_connector *d, const struct rn_connector *c)
{
    *d = *c;
    d->dn = dup_or_null(c->dn);
    d->name = dup_or_null(c->name);
    d->bindings = dup_mem(c->bindings, c->nbindings * sizeof *c->bindings);
    d->ranges = dup_mem(c->ranges, c->nranges * sizeof *c->ranges);
    d->fqdn = dup_or_null(c->fqdn);
    d->banner = dup_or_null(c->banner);
    d->comment = dup_or_null(c->comment);
    d->tls_cert_name = dup_or_null(c->tls_cert_name);
    d->aces = c->naces ? xcalloc(c->naces, sizeof *d->aces) : NULL;
    for (size_t i = 0; i < c->naces; i++)
        ace_copy(&d->aces[i], &c->aces[i]);
}

static void sendconn_copy(struct rn_sendconn *d, const struct rn_sendconn *c)
{
    *d = *c;
    d->dn = dup_or_null(c->dn);
    d->name = dup_or_null(c->name);
    d->address_spaces = dup_strv(c->address_spaces, c->naddress_spaces);
    d->smart_hosts = dup_strv(c->smart_hosts, c->nsmart_hosts);
}

/* ---- order ---- */

static int by_ndn(const void *a, const void *b)
{
    return strcmp((*(struct sd_entry *const *)a)->ndn, (*(struct sd_entry *const *)b)->ndn);
}

static int connector_cmp(const void *a, const void *b)
{
    const struct rn_connector *x = a, *y = b;
    if (x->site_scoped != y->site_scoped)
        return x->site_scoped ? 1 : -1;          /* the node's own first */
    int r = strcmp(x->name, y->name);
    return r ? r : strcmp(x->dn, y->dn);
}

static int domain_cmp(const void *a, const void *b)
{
    const struct rn_domain *x = a, *y = b;
    int r = strcmp(x->domain, y->domain);
    return r ? r : strcmp(x->dn, y->dn);
}

static int sendconn_cmp(const void *a, const void *b)
{
    const struct rn_sendconn *x = a, *y = b;
    int r = strcmp(x->name ? x->name : "", y->name ? y->name : "");
    return r ? r : strcmp(x->dn, y->dn);
}

static int str_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* ---- cross-entry refusals (moved unchanged from the loader) ---- */

static bool share_port(const struct rn_connector *a, const struct rn_connector *b)
{
    for (size_t i = 0; i < a->nbindings; i++)
        for (size_t k = 0; k < b->nbindings; k++)
            if (a->bindings[i].port == b->bindings[k].port)
                return true;
    return false;
}

/* The refusal of one pair (both enabled): the same messages whichever way pairs are found. */
static void conflict_pair(struct rn_snapshot *s, size_t i, size_t k, bool *bad)
{
    struct rn_connector *v = s->connectors;
    if (!v[i].enabled || !v[k].enabled || !share_port(&v[i], &v[k]))
        return;
    char cerr[RN_ERRLEN];
    if (validate_conflict(&v[i], &v[k], cerr, sizeof cerr) != 0) {
        snapshot_add_error(s, "%s: %s (conflicts with %s)", v[i].dn, cerr, v[k].dn);
        snapshot_add_error(s, "%s: %s (conflicts with %s)", v[k].dn, cerr, v[i].dn);
        bad[i] = bad[k] = true;
    }
}

struct range_item { const ipr_range *r; size_t conn; };
struct conn_pair { size_t a, b; };

static int range_item_cmp(const void *x, const void *y)
{
    const struct range_item *a = x, *b = y;
    int c = memcmp(&a->r->lo, &b->r->lo, sizeof a->r->lo);
    if (c == 0)
        c = memcmp(&b->r->hi, &a->r->hi, sizeof a->r->hi);
    return c ? c : (a->conn > b->conn) - (a->conn < b->conn);
}

static int conn_pair_cmp(const void *x, const void *y)
{
    const struct conn_pair *a = x, *b = y;
    if (a->a != b->a)
        return (a->a > b->a) - (a->a < b->a);
    return (a->b > b->b) - (a->b < b->b);
}

#define CONFLICT_PAIRS_MAX 4000000   /* beyond: the plain pairwise loop (no extra memory) */

/* The pairs of enabled connectors with some remote ranges that intersect, sorted, each once:
 * validate_conflict refuses only a partial or an equal overlap, so no other pair can
 * conflict. A sweep over the ranges sorted by their low end keeps the ranges still open.
 * NULL when there would be more than CONFLICT_PAIRS_MAX (nested ranges by the thousand). */
static struct conn_pair *intersecting_pairs(const struct rn_snapshot *s, size_t *np)
{
    const struct rn_connector *v = s->connectors;
    size_t ni = 0;
    for (size_t i = 0; i < s->nconnectors; i++)
        if (v[i].enabled)
            ni += v[i].nranges;
    struct range_item *it = xcalloc(ni ? ni : 1, sizeof *it);
    ni = 0;
    for (size_t i = 0; i < s->nconnectors; i++)
        for (size_t r = 0; v[i].enabled && r < v[i].nranges; r++)
            it[ni++] = (struct range_item){&v[i].ranges[r], i};
    qsort(it, ni, sizeof *it, range_item_cmp);
    size_t *open = xcalloc(ni ? ni : 1, sizeof *open), nopen = 0, cap = 0;
    struct conn_pair *p = NULL;
    bool overflow = false;
    *np = 0;
    for (size_t j = 0; j < ni && !overflow; j++) {
        size_t keep = 0;
        for (size_t o = 0; o < nopen; o++) {
            const struct range_item *a = &it[open[o]];
            if (memcmp(&a->r->hi, &it[j].r->lo, sizeof a->r->hi) < 0)
                continue;                     /* ends before this one starts: closed */
            open[keep++] = open[o];
            if (a->conn == it[j].conn)
                continue;
            if (*np == CONFLICT_PAIRS_MAX) {
                overflow = true;
                break;
            }
            if (*np == cap) {
                cap = cap ? 2 * cap : 1024;
                p = xrealloc(p, cap * sizeof *p);
            }
            size_t lo = a->conn < it[j].conn ? a->conn : it[j].conn;
            size_t hi = a->conn < it[j].conn ? it[j].conn : a->conn;
            p[(*np)++] = (struct conn_pair){lo, hi};
        }
        nopen = keep;
        open[nopen++] = j;
    }
    free(open);
    free(it);
    if (overflow) {
        free(p);
        return NULL;
    }
    if (*np)
        qsort(p, *np, sizeof *p, conn_pair_cmp);
    size_t u = 0;
    for (size_t i = 0; i < *np; i++)
        if (u == 0 || conn_pair_cmp(&p[u - 1], &p[i]) != 0)
            p[u++] = p[i];
    *np = u;
    if (!p)
        p = xcalloc(1, sizeof *p);
    return p;
}

static void connectors_check_conflicts(struct rn_snapshot *s)
{
    struct rn_connector *v = s->connectors;
    size_t n = s->nconnectors;
    bool *bad = xcalloc(n ? n : 1, sizeof *bad);
    /* Pairs in the order of the pairwise loop (i < k, i then k ascending), so the
     * refusals read the same; the loop itself when the pairs would not fit. */
    size_t np = 0;
    struct conn_pair *p = intersecting_pairs(s, &np);
    if (p) {
        for (size_t x = 0; x < np; x++)
            conflict_pair(s, p[x].a, p[x].b, bad);
        free(p);
    } else {
        for (size_t i = 0; i < n; i++)
            for (size_t k = i + 1; k < n; k++)
                conflict_pair(s, i, k, bad);
    }
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (bad[i])
            connector_clear(&v[i]);
        else
            v[o++] = v[i];
    }
    s->nconnectors = o;
    free(bad);
}

static void domains_check_conflicts(struct rn_snapshot *s)
{
    bool *bad = xcalloc(s->ndomains ? s->ndomains : 1, sizeof *bad);
    /* Sorted by name: entries for one name are neighbours. */
    for (size_t i = 0; i < s->ndomains; i++)
        for (size_t k = i + 1; k < s->ndomains &&
             strcmp(s->domains[i].domain, s->domains[k].domain) == 0; k++)
            if (s->domains[i].type != s->domains[k].type) {
                snapshot_add_error(s, "%s: relayDomainType: %s is also accepted by %s with "
                                   "another type", s->domains[i].dn, s->domains[i].domain,
                                   s->domains[k].dn);
                snapshot_add_error(s, "%s: relayDomainType: %s is also accepted by %s with "
                                   "another type", s->domains[k].dn, s->domains[k].domain,
                                   s->domains[i].dn);
                bad[i] = bad[k] = true;
            }
    size_t o = 0;
    for (size_t i = 0; i < s->ndomains; i++) {
        if (bad[i])
            domain_clear(&s->domains[i]);
        else
            s->domains[o++] = s->domains[i];
    }
    s->ndomains = o;
    free(bad);
    /* Two defaults: which postmaster is meant is ambiguous, so neither is the default and a
     * bare RCPT TO:<postmaster> is refused (fail closed) until one is left. */
    size_t ndef = 0;
    for (size_t i = 0; i < s->ndomains; i++)
        ndef += s->domains[i].is_default;
    for (size_t i = 0; ndef > 1 && i < s->ndomains; i++)
        if (s->domains[i].is_default) {
            snapshot_add_error(s, "%s: relayDefaultDomain: %zu accepted domains are marked "
                               "default; none is used", s->domains[i].dn, ndef);
            s->domains[i].is_default = false;
        }
}

/* ---- the build ---- */

static void add_entry(struct rn_snapshot *snap, const struct sd_entry *x, size_t *cap_c,
                      size_t *cap_d, size_t *cap_s)
{
    if (x->error)
        snapshot_add_error(snap, "%s", x->error);
    if (x->kind == K_PARTNER)       /* the values before a malformed one count */
        for (size_t i = 0; i < x->npartners; i++) {
            snap->partner_domains = xrealloc(snap->partner_domains,
                                             (snap->npartner_domains + 1) * sizeof(char *));
            snap->partner_domains[snap->npartner_domains++] = xstrdup(x->partners[i]);
        }
    if (!x->ok)
        return;
    switch (x->kind) {
    case K_CONN_NODE:
    case K_CONN_SITE:
        if (snap->nconnectors == *cap_c)
            snap->connectors = xrealloc(snap->connectors,
                                        (*cap_c = *cap_c * 2 + 16) * sizeof *snap->connectors);
        connector_copy(&snap->connectors[snap->nconnectors++], &x->conn);
        break;
    case K_DOMAIN:
        if (snap->ndomains == *cap_d)
            snap->domains = xrealloc(snap->domains,
                                     (*cap_d = *cap_d * 2 + 16) * sizeof *snap->domains);
        snap->domains[snap->ndomains++] = (struct rn_domain){
            xstrdup(x->dom.dn), xstrdup(x->dom.domain), x->dom.type, x->dom.is_default,
            x->dom.address_book_off};
        break;
    case K_SENDCONN:
        if (snap->nsendconns == *cap_s)
            snap->sendconns = xrealloc(snap->sendconns,
                                       (*cap_s = *cap_s * 2 + 16) * sizeof *snap->sendconns);
        sendconn_copy(&snap->sendconns[snap->nsendconns++], &x->sc);
        break;
    case K_NODECERT:
        snap->node_certs = xrealloc(snap->node_certs, (snap->nnode_certs + x->ncerts) *
                                    sizeof *snap->node_certs);
        for (size_t i = 0; i < x->ncerts; i++) {
            struct rn_node_cert *c = &snap->node_certs[snap->nnode_certs++];
            *c = x->certs[i];
            c->dn = dup_or_null(x->certs[i].dn);
            c->name = dup_or_null(x->certs[i].name);
        }
        break;
    case K_PARTNER:
    case K_NONE:
        break;
    }
}

void snapstore_attach_recipients(const struct snapstore *s, struct rn_snapshot *snap)
{
    if (snap->recipients || !s->rcpt || !snapshot_needs_recipients(snap))
        return;
    snap->recipients = rcptset_ref(s->rcpt);
    snap->content_hash += s->rcpt_hash;
    if (s->rcpt_refused)
        snapshot_add_error(snap, "%s: %zu mail or relayMailAlias values are not addresses "
                           "and match no recipient", s->rcpt_label, s->rcpt_refused);
}

struct rn_snapshot *snapstore_build(const struct snapstore *s, const char *version)
{
    struct rn_snapshot *snap = snapshot_new();
    snap->version = xstrdup(version ? version : "");
    snap->node_name = xstrdup(s->node_name);
    snap->node_dn = xstrdup(s->node_dn);
    snap->site_dn = xstrdup(s->site_dn);
    snap->content_hash = snapdelta_mix(snapdelta_hash_str(s->node_dn, strlen(s->node_dn)));
    struct sd_entry **all = xcalloc(s->n ? s->n : 1, sizeof *all);
    size_t n = 0;
    for (size_t b = 0; b < s->nbuckets; b++)
        for (struct sd_entry *x = s->buckets[b]; x; x = x->next) {
            all[n++] = x;
            snap->content_hash += x->hash;
        }
    qsort(all, n, sizeof *all, by_ndn);
    size_t cap_c = 0, cap_d = 0, cap_s = 0;
    for (size_t i = 0; i < n; i++)
        add_entry(snap, all[i], &cap_c, &cap_d, &cap_s);
    free(all);
    if (snap->nconnectors)
        qsort(snap->connectors, snap->nconnectors, sizeof *snap->connectors, connector_cmp);
    if (snap->ndomains)
        qsort(snap->domains, snap->ndomains, sizeof *snap->domains, domain_cmp);
    if (snap->nsendconns)
        qsort(snap->sendconns, snap->nsendconns, sizeof *snap->sendconns, sendconn_cmp);
    if (snap->npartner_domains)
        qsort(snap->partner_domains, snap->npartner_domains, sizeof(char *), str_cmp);
    connectors_check_conflicts(snap);
    domains_check_conflicts(snap);
    snapstore_attach_recipients(s, snap);
    policy_index(snap);   /* the connector list is final: build the selection index */
    snapshot_index_domains(snap);   /* and the domain list: the accepted-domain index */
    return snap;
}

void snapshot_finish(struct rn_snapshot *snap)
{
    if (snap->nconnectors)
        qsort(snap->connectors, snap->nconnectors, sizeof *snap->connectors, connector_cmp);
    if (snap->ndomains)
        qsort(snap->domains, snap->ndomains, sizeof *snap->domains, domain_cmp);
    if (snap->nsendconns)
        qsort(snap->sendconns, snap->nsendconns, sizeof *snap->sendconns, sendconn_cmp);
    connectors_check_conflicts(snap);
    domains_check_conflicts(snap);
    policy_index(snap);
}
