/* snapbuild: the snapshot a store describes (snapdelta.h). The order is fixed by content:
 * the node's receive connectors by name (then DN), then its site's the same way (selection
 * ties fall back to this order); accepted domains by name then DN, send connectors by name
 * then DN, node certificates and refusals by normalised DN, partner domains sorted. The
 * cross-entry refusals are the loader's, unchanged: two enabled connectors sharing a port
 * that validate_conflict rejects are both left out (which one a client would get is
 * ambiguous, and an ambiguous relay decision fails closed), one domain name with two types
 * is refused on both sides, and two defaults make neither the default. A build costs what
 * changed more than what the store holds (issue 17): connectors are shared with the store,
 * which keeps them in order, and when they are the same for the conflict sweep and the
 * selection index as the last build's, that build's refusals and index are taken over. */
#include "directory/snapdelta.h"
#include "directory/snapdelta-private.h"
#include "directory/policy.h"
#include "directory/validate.h"
#include "directory/base/util.h"
#include <endian.h>
#include <stdlib.h>
#include <string.h>

static char *dup_or_null(const char *p)
{
    return p ? xstrdup(p) : NULL;
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

/* Entries holding a connector, in the snapshot's connector order. */
static int entry_conn_cmp(const struct sd_entry *x, const struct sd_entry *y)
{
    int r = connector_cmp(&x->conn->c, &y->conn->c);
    return r ? r : strcmp(x->key, y->key);    /* one DN held twice: still one order */
}

/* Where x is in s->conns, or goes. */
static size_t conn_pos(const struct snapstore *s, const struct sd_entry *x)
{
    size_t lo = 0, hi = s->nconns;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (entry_conn_cmp(s->conns[mid], x) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

void snapbuild_conn_add(struct snapstore *s, struct sd_entry *x)
{
    if (s->nconns == s->capconns) {
        s->capconns = s->capconns ? 2 * s->capconns : 64;
        s->conns = xrealloc(s->conns, s->capconns * sizeof *s->conns);
    }
    size_t i = conn_pos(s, x);
    memmove(&s->conns[i + 1], &s->conns[i], (s->nconns - i) * sizeof *s->conns);
    s->conns[i] = x;
    s->nconns++;
}

void snapbuild_conn_remove(struct snapstore *s, const struct sd_entry *x)
{
    size_t i = conn_pos(s, x);
    if (i == s->nconns || s->conns[i] != x)
        abort();                      /* the list lost an entry: an impossible state */
    memmove(&s->conns[i], &s->conns[i + 1], (s->nconns - i - 1) * sizeof *s->conns);
    s->nconns--;
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

/* The pair (both enabled) conflicts: what conflict_pair refuses, without the messages. */
static bool pair_conflicts(const struct rn_snapshot *s, size_t i, size_t k)
{
    const struct rn_connector *v = s->connectors;
    char cerr[RN_ERRLEN];
    return v[i].enabled && v[k].enabled && share_port(&v[i], &v[k]) &&
           validate_conflict(&v[i], &v[k], cerr, sizeof cerr) != 0;
}

/* A remote range with its bounds as 128-bit numbers (big-endian bytes read as one integer
 * keep their order), so the sort compares integers. */
typedef unsigned __int128 u128;
struct range_item { u128 lo, hi; size_t conn; };
struct conn_pair { size_t a, b; };

static u128 addr_key(const ipr_addr *a)
{
    uint64_t hi, lo;                  /* network order: the first byte is the highest */
    memcpy(&hi, a->b, 8);
    memcpy(&lo, a->b + 8, 8);
    return (u128)be64toh(hi) << 64 | be64toh(lo);
}

static int range_item_cmp(const void *x, const void *y)
{
    const struct range_item *a = x, *b = y;
    if (a->lo != b->lo)
        return a->lo < b->lo ? -1 : 1;
    if (a->hi != b->hi)
        return a->hi > b->hi ? -1 : 1;
    return (a->conn > b->conn) - (a->conn < b->conn);
}

static int conn_pair_cmp(const void *x, const void *y)
{
    const struct conn_pair *a = x, *b = y;
    if (a->a != b->a)
        return (a->a > b->a) - (a->a < b->a);
    return (a->b > b->b) - (a->b < b->b);
}

#define CONFLICT_PAIRS_MAX 4000000   /* beyond: the plain pairwise loop (no extra memory) */

/* The pairs of connectors that conflict, sorted, each once. validate_conflict refuses only
 * a partial or an equal overlap, so only pairs with some remote ranges that intersect are
 * tried: a sweep over the ranges sorted by their low end keeps the ranges still open. A
 * catch-all range intersects every other, so most pairs tried are fine and none of those is
 * kept. NULL when more than CONFLICT_PAIRS_MAX conflict (equal ranges by the thousand). */
static struct conn_pair *conflicting_pairs(const struct rn_snapshot *s, size_t *np)
{
    const struct rn_connector *v = s->connectors;
    size_t ni = 0;
    for (size_t i = 0; i < s->nconnectors; i++)
        if (v[i].enabled)
            ni += v[i].nranges;
    struct range_item *it = xmalloc((ni ? ni : 1) * sizeof *it);
    ni = 0;
    for (size_t i = 0; i < s->nconnectors; i++)
        for (size_t r = 0; v[i].enabled && r < v[i].nranges; r++)
            it[ni++] = (struct range_item){addr_key(&v[i].ranges[r].lo),
                                           addr_key(&v[i].ranges[r].hi), i};
    qsort(it, ni, sizeof *it, range_item_cmp);
    size_t *open = xcalloc(ni ? ni : 1, sizeof *open), nopen = 0, cap = 0;
    struct conn_pair *p = NULL;
    bool overflow = false;
    *np = 0;
    for (size_t j = 0; j < ni && !overflow; j++) {
        size_t keep = 0;
        for (size_t o = 0; o < nopen; o++) {
            const struct range_item *a = &it[open[o]];
            if (a->hi < it[j].lo)
                continue;                     /* ends before this one starts: closed */
            open[keep++] = open[o];
            if (a->conn == it[j].conn || !pair_conflicts(s, a->conn, it[j].conn))
                continue;
            if (*np == CONFLICT_PAIRS_MAX) {
                overflow = true;
                break;
            }
            if (*np == cap) {
                cap = cap ? 2 * cap : 64;
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

/* Mark in bad[] the connectors some other one conflicts with, adding the refusals. */
static void conflicts_find(struct rn_snapshot *s, bool *bad)
{
    size_t n = s->nconnectors;
    /* Pairs in the order of the pairwise loop (i < k, i then k ascending), so the
     * refusals read the same; the loop itself when the pairs would not fit. */
    size_t np = 0;
    struct conn_pair *p = conflicting_pairs(s, &np);
    if (p) {
        for (size_t x = 0; x < np; x++)
            conflict_pair(s, p[x].a, p[x].b, bad);
        free(p);
    } else {
        for (size_t i = 0; i < n; i++)
            for (size_t k = i + 1; k < n; k++)
                conflict_pair(s, i, k, bad);
    }
}

/* Leave the connectors marked bad out (their parts, or their bodies' references, go). */
static void connectors_drop(struct rn_snapshot *s, const bool *bad)
{
    struct rn_connector *v = s->connectors;
    size_t o = 0;
    for (size_t i = 0; i < s->nconnectors; i++) {
        if (!bad[i]) {
            v[o] = v[i];
            if (s->connector_bodies)
                s->connector_bodies[o] = s->connector_bodies[i];
            o++;
        } else if (s->connector_bodies) {
            connector_body_release(&s->connector_bodies[i]);
        } else {
            connector_clear(&v[i]);
        }
    }
    s->nconnectors = o;
}

static void connectors_check_conflicts(struct rn_snapshot *s)
{
    bool *bad = xcalloc(s->nconnectors ? s->nconnectors : 1, sizeof *bad);
    conflicts_find(s, bad);
    connectors_drop(s, bad);
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

/* One entry other than a connector the snapshot lists (those come in connectors_share). */
static void add_entry(struct rn_snapshot *snap, const struct sd_entry *x, size_t *cap_d,
                      size_t *cap_s)
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
    case K_CONN_NODE:
    case K_CONN_SITE:
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

/* The connector entries (sorted) as the snapshot's connectors: shallow copies of the
 * store's bodies, each with a reference. */
static void connectors_share(struct rn_snapshot *snap, struct sd_entry *const *v, size_t n)
{
    snap->connectors = xmalloc((n ? n : 1) * sizeof *snap->connectors);   /* all written */
    snap->connector_bodies = xmalloc((n ? n : 1) * sizeof *snap->connector_bodies);
    for (size_t i = 0; i < n; i++) {
        snap->connector_bodies[i] = connector_body_ref(v[i]->conn);
        snap->connectors[i] = v[i]->conn->c;
    }
    snap->nconnectors = n;
}

static bool same_str(const char *a, const char *b)
{
    return a == b || (a && b && strcmp(a, b) == 0);
}

/* What the conflict sweep and the selection index read of a connector is the same. */
static bool same_for_selection(const struct rn_connector *a, const struct rn_connector *b)
{
    if (a == b || (a->bindings == b->bindings && a->ranges == b->ranges && a->name == b->name &&
                   a->dn == b->dn && a->enabled == b->enabled))
        return true;                  /* one body: one content */
    return a->enabled == b->enabled && a->nbindings == b->nbindings &&
           a->nranges == b->nranges && same_str(a->name, b->name) && same_str(a->dn, b->dn) &&
           (!a->nbindings || memcmp(a->bindings, b->bindings,
                                    a->nbindings * sizeof *a->bindings) == 0) &&
           (!a->nranges || memcmp(a->ranges, b->ranges, a->nranges * sizeof *a->ranges) == 0);
}

void snapbuild_last_clear(struct sd_last *l)
{
    for (size_t i = 0; i < l->npre; i++)
        connector_body_release(&l->pre[i]);
    free(l->pre);
    free(l->bad);
    for (size_t i = 0; i < l->nerrors; i++)
        free(l->errors[i]);
    free(l->errors);
    snapshot_unref(&l->snap);
    memset(l, 0, sizeof *l);
}

bool snapstore_last_reused(const struct snapstore *s)
{
    return s->last.reused;
}

/* The conflict sweep of snap's sorted connectors, or the last build's when they are the same
 * for it (then true: its selection index fits snap too). Remembers this one for the next. */
static bool connectors_sweep(struct snapstore *s, struct rn_snapshot *snap)
{
    struct sd_last *l = &s->last;
    size_t n = snap->nconnectors;
    bool known = l->snap && l->npre == n;
    for (size_t i = 0; known && i < n; i++)
        known = same_for_selection(&l->pre[i]->c, &snap->connectors[i]);
    bool *bad = xcalloc(n ? n : 1, sizeof *bad);
    size_t e0 = snap->nerrors;
    if (known) {
        memcpy(bad, l->bad, n * sizeof *bad);
        for (size_t i = 0; i < l->nerrors; i++)
            snapshot_add_error(snap, "%s", l->errors[i]);
    } else {
        conflicts_find(snap, bad);
    }
    struct rn_snapshot *prev = l->snap;
    l->snap = NULL;
    snapbuild_last_clear(l);
    l->snap = prev;                   /* until the build is done: its index may be copied */
    l->pre = xcalloc(n ? n : 1, sizeof *l->pre);
    for (size_t i = 0; i < n; i++)
        l->pre[i] = connector_body_ref(snap->connector_bodies[i]);
    l->npre = n;
    l->bad = bad;
    l->nerrors = snap->nerrors - e0;
    l->errors = xcalloc(l->nerrors ? l->nerrors : 1, sizeof *l->errors);
    for (size_t i = 0; i < l->nerrors; i++)
        l->errors[i] = xstrdup(snap->errors[e0 + i]);
    l->reused = known;
    connectors_drop(snap, bad);
    return known;
}

/* The store's entries other than those holding a connector (refused connectors are here:
 * their refusals) by normalised DN into *others. Returns the content hash's sum over all
 * entries. Caller frees *others. */
static uint64_t entries_sorted(const struct snapstore *s, struct sd_entry ***others,
                               size_t *nothers)
{
    uint64_t h = 0;
    *others = xcalloc(s->n ? s->n : 1, sizeof **others);
    *nothers = 0;
    for (size_t b = 0; b < s->nbuckets; b++)
        for (struct sd_entry *x = s->buckets[b]; x; x = x->next) {
            if (!x->conn)
                (*others)[(*nothers)++] = x;
            h += x->hash;
        }
    qsort(*others, *nothers, sizeof **others, by_ndn);
    return h;
}

struct rn_snapshot *snapstore_build(struct snapstore *s, const char *version)
{
    /* Nothing a build reads changed since the last one (the batch was another node's): the
     * same snapshot under the new version. Not when the last one still waits for its
     * recipient set (the caller attaches it to what this returns). */
    s->last.relabelled = s->last.snap && s->last.gen == s->gen &&
                         (s->rcpt || !snapshot_needs_recipients(s->last.snap));
    if (s->last.relabelled)
        return snapshot_relabel(s->last.snap, version);
    struct rn_snapshot *snap = snapshot_new();
    snap->version = xstrdup(version ? version : "");
    snap->node_name = xstrdup(s->node_name);
    snap->node_dn = xstrdup(s->node_dn);
    snap->site_dn = xstrdup(s->site_dn);
    snap->content_hash = snapdelta_mix(snapdelta_hash_str(s->node_dn, strlen(s->node_dn)));
    struct sd_entry **others;
    size_t nothers;
    snap->content_hash += entries_sorted(s, &others, &nothers);
    size_t cap_d = 0, cap_s = 0;
    for (size_t i = 0; i < nothers; i++)     /* the refusals in DN order, as before */
        add_entry(snap, others[i], &cap_d, &cap_s);
    free(others);
    connectors_share(snap, s->conns, s->nconns);   /* kept in order by the store */
    if (snap->ndomains)
        qsort(snap->domains, snap->ndomains, sizeof *snap->domains, domain_cmp);
    if (snap->nsendconns)
        qsort(snap->sendconns, snap->nsendconns, sizeof *snap->sendconns, sendconn_cmp);
    if (snap->npartner_domains)
        qsort(snap->partner_domains, snap->npartner_domains, sizeof(char *), str_cmp);
    bool known = connectors_sweep(s, snap);
    domains_check_conflicts(snap);
    snapstore_attach_recipients(s, snap);
    /* The connector list is final: the selection index, the last build's when it fits. */
    if (known)
        policy_index_copy(snap, s->last.snap);
    else
        policy_index(snap);
    snapshot_index_domains(snap);   /* and the domain list: the accepted-domain index */
    snapshot_unref(&s->last.snap);
    s->last.snap = snapshot_ref(snap);
    s->last.gen = s->gen;
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

bool snapstore_last_relabelled(const struct snapstore *s)
{
    return s->last.relabelled;
}
