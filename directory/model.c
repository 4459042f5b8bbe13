/* model: the configuration snapshot and its parts (model.h). A snapshot is built by one
 * thread (the loader), then shared read-only by sessions on any thread, so the only mutable
 * field is the reference count, changed atomically. Connector defaults come from the
 * attribute table in connattr.c so the schema README, the loader and this file cannot
 * disagree. Accepted-domain lookup allocates nothing: it runs on every RCPT. */
#include "directory/model.h"
#include "directory/connattr.h"
#include "directory/base/util.h"
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- auth mechanisms (§3.1) ---- */

static const struct { const char *name; unsigned bit; } auth_mechs[] = {
    {"None", AUTH_NONE},
    {"Tls", AUTH_TLS},
    {"Integrated", AUTH_INTEGRATED},
    {"BasicAuth", AUTH_BASIC},
    {"BasicAuthRequireTLS", AUTH_BASIC_REQUIRE_TLS},
    {"ExchangeServer", AUTH_EXCHANGE_SERVER},
    {"ExternalAuthoritative", AUTH_EXTERNAL_AUTHORITATIVE},
};
#define NMECHS (sizeof auth_mechs / sizeof auth_mechs[0])

int auth_mech_lookup(const char *name)
{
    for (size_t i = 0; name && i < NMECHS; i++)
        if (rn_strieq(auth_mechs[i].name, name))
            return (int)auth_mechs[i].bit;
    return -1;
}

size_t auth_mechs_format(unsigned mechs, char *buf, size_t len)
{
    char out[160] = "";
    size_t pos = 0;
    for (size_t i = 1; i < NMECHS; i++)
        if (mechs & auth_mechs[i].bit)
            pos += (size_t)snprintf(out + pos, sizeof out - pos, "%s%s", pos ? ", " : "",
                                    auth_mechs[i].name);
    if (pos == 0)
        snprintf(out, sizeof out, "None");
    return rn_strlcpy(buf, out, len);
}

/* ---- snapshot ---- */

struct rn_snapshot *snapshot_new(void)
{
    struct rn_snapshot *s = xcalloc(1, sizeof *s);
    s->refs = 1;
    return s;
}

struct rn_snapshot *snapshot_ref(struct rn_snapshot *s)
{
    __atomic_add_fetch(&s->refs, 1, __ATOMIC_RELAXED);
    return s;
}

static void snapshot_free(struct rn_snapshot *s)
{
    free(s->version);
    if (s->same) {                     /* a relabel: every other part is s->same's */
        snapshot_unref(&s->same);
        free(s);
        return;
    }
    free(s->node_name);
    free(s->node_dn);
    free(s->site_dn);
    for (size_t i = 0; i < s->nconnectors; i++)
        if (s->connector_bodies)
            connector_body_release(&s->connector_bodies[i]);
        else
            connector_clear(&s->connectors[i]);
    free(s->connector_bodies);
    free(s->connectors);
    for (size_t i = 0; i < s->ndomains; i++)
        domain_clear(&s->domains[i]);
    free(s->domains);
    for (size_t i = 0; i < s->nsendconns; i++)
        sendconn_clear(&s->sendconns[i]);
    free(s->sendconns);
    for (size_t i = 0; i < s->nnode_certs; i++) {
        free(s->node_certs[i].dn);
        free(s->node_certs[i].name);
    }
    free(s->node_certs);
    for (size_t i = 0; i < s->npartner_domains; i++)
        free(s->partner_domains[i]);
    free(s->partner_domains);
    for (size_t i = 0; i < s->nerrors; i++)
        free(s->errors[i]);
    free(s->errors);
    rcptset_free(&s->recipients);
    free(s->select_index);
    free(s->domain_index);
    free(s);
}

struct rn_snapshot *snapshot_relabel(struct rn_snapshot *s, const char *version)
{
    struct rn_snapshot *base = s->same ? s->same : s;
    struct rn_snapshot *r = xmalloc(sizeof *r);
    *r = *base;
    r->refs = 1;
    r->version = xstrdup(version ? version : "");
    r->same = snapshot_ref(base);
    return r;
}

void snapshot_unref(struct rn_snapshot **sp)
{
    struct rn_snapshot *s = *sp;
    *sp = NULL;
    /* Release so the last holder sees every other holder's reads finished (acquire below). */
    if (s && __atomic_sub_fetch(&s->refs, 1, __ATOMIC_ACQ_REL) == 0)
        snapshot_free(s);
}

void snapshot_add_error(struct rn_snapshot *s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *msg = NULL;
    if (vasprintf(&msg, fmt, ap) < 0)
        msg = xstrdup("(error message lost: out of memory)");
    va_end(ap);
    s->errors = xrealloc(s->errors, (s->nerrors + 1) * sizeof *s->errors);
    s->errors[s->nerrors++] = msg;
}

/* ---- parts ---- */

#define FIELD(c, a, T) ((T *)(void *)((char *)(c) + (a)->offset))

void connector_defaults(struct rn_connector *c)
{
    memset(c, 0, sizeof *c);
    for (size_t i = 0; i < connattr_count; i++) {
        const struct connattr *a = &connattr_table[i];
        switch (a->type) {
        case CA_BOOL: *FIELD(c, a, bool) = a->def != 0; break;
        case CA_LIMIT: *FIELD(c, a, uint64_t) = a->def; break;
        case CA_AUTH: case CA_LOGLEVEL: *FIELD(c, a, unsigned) = (unsigned)a->def; break;
        case CA_STRING: case CA_BINDINGS: case CA_RANGES: case CA_ACES: break;  /* NULL, 0 */
        }
    }
    c->enabled = true;
}

void connector_clear(struct rn_connector *c)
{
    free(c->dn);
    free(c->name);
    free(c->bindings);
    free(c->ranges);
    free(c->fqdn);
    free(c->banner);
    free(c->comment);
    free(c->tls_cert_name);
    for (size_t i = 0; i < c->naces; i++)
        ace_clear(&c->aces[i]);
    free(c->aces);
    memset(c, 0, sizeof *c);
}

struct rn_connector_body *connector_body_new(struct rn_connector *c)
{
    struct rn_connector_body *b = xcalloc(1, sizeof *b);
    b->refs = 1;
    b->c = *c;
    memset(c, 0, sizeof *c);
    return b;
}

struct rn_connector_body *connector_body_ref(struct rn_connector_body *b)
{
    __atomic_add_fetch(&b->refs, 1, __ATOMIC_RELAXED);
    return b;
}

void connector_body_release(struct rn_connector_body **bp)
{
    struct rn_connector_body *b = *bp;
    *bp = NULL;
    /* As snapshot_unref: snapshots on other threads may drop the last reference. */
    if (b && __atomic_sub_fetch(&b->refs, 1, __ATOMIC_ACQ_REL) == 0) {
        connector_clear(&b->c);
        free(b);
    }
}

void domain_clear(struct rn_domain *d)
{
    free(d->dn);
    free(d->domain);
    memset(d, 0, sizeof *d);
}

static void strv_free(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

void sendconn_clear(struct rn_sendconn *sc)
{
    free(sc->dn);
    free(sc->name);
    strv_free(sc->address_spaces, sc->naddress_spaces);
    strv_free(sc->smart_hosts, sc->nsmart_hosts);
    memset(sc, 0, sizeof *sc);
}

/* ---- lookups ---- */

/* The accepted-domain index: exact names, and the ".suffix" of every "*.suffix" name, each in
 * an open-addressing table of domain numbers + 1 (0 = empty) at load factor <= 1/2. Hashing
 * and comparing ignore ASCII case as the scan does (strncasecmp). */
struct domain_index {
    size_t mask;                   /* slots - 1 */
    uint32_t *exact, *wild;        /* slots each, in this block */
};

#define DOMAIN_INDEX_MAX_QUERY 255 /* longer queries (no DNS name is) take the scan */

static uint64_t domain_hash(const char *p, size_t n)
{
    uint64_t h = 1469598103934665603ULL;                 /* FNV-1a */
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)tolower((unsigned char)p[i]);
        h *= 1099511628211ULL;
    }
    return h;
}

/* The slot holding `key` (n bytes) or the empty slot where it would go. A slot's key is the
 * whole name (exact table, skip 0) or the name without its '*' (wild table, skip 1). */
static size_t domain_slot(const struct rn_snapshot *s, const uint32_t *t, size_t mask,
                          size_t skip, const char *key, size_t n)
{
    for (size_t h = (size_t)domain_hash(key, n) & mask;; h = (h + 1) & mask) {
        if (t[h] == 0)
            return h;
        const char *k = s->domains[t[h] - 1].domain + skip;
        if (strlen(k) == n && rn_strnieq(k, key, n))
            return h;
    }
}

static const struct rn_domain *domain_get(const struct rn_snapshot *s, const uint32_t *t,
                                          size_t mask, size_t skip, const char *key, size_t n)
{
    size_t h = domain_slot(s, t, mask, skip, key, n);
    return t[h] ? &s->domains[t[h] - 1] : NULL;
}

/* Insert domain i under its key; the first of equal names stays, as the scan finds it. */
static void domain_put(const struct rn_snapshot *s, uint32_t *t, size_t mask, size_t skip,
                       size_t i)
{
    const char *key = s->domains[i].domain + skip;
    size_t h = domain_slot(s, t, mask, skip, key, strlen(key));
    if (t[h] == 0)
        t[h] = (uint32_t)i + 1;
}

static bool domain_wild(const char *d)
{
    return d[0] == '*' && d[1] == '.' && d[2] != '\0';
}

void snapshot_index_domains(struct rn_snapshot *s)
{
    free(s->domain_index);
    s->domain_index = NULL;
    if (s->ndomains == 0 || s->ndomains > UINT32_MAX / 4)
        return;                        /* nothing to index, or beyond the slot type: scan */
    size_t slots = 4;
    while (slots < 2 * (s->ndomains + 1))
        slots <<= 1;
    struct domain_index *ix = xcalloc(1, sizeof *ix + 2 * slots * sizeof(uint32_t));
    ix->mask = slots - 1;
    ix->exact = (uint32_t *)(void *)(ix + 1);
    ix->wild = ix->exact + slots;
    for (size_t i = 0; i < s->ndomains; i++) {
        const char *d = s->domains[i].domain;
        if (!d)
            continue;
        domain_put(s, ix->exact, ix->mask, 0, i);
        if (domain_wild(d))
            domain_put(s, ix->wild, ix->mask, 1, i);
    }
    s->domain_index = ix;
}

const struct rn_domain *snapshot_find_domain(const struct rn_snapshot *s, const char *domain)
{
    if (!domain)
        return NULL;
    size_t n = strlen(domain);
    if (n && domain[n - 1] == '.')
        n--;
    if (n == 0)
        return NULL;
    const struct domain_index *ix = s->domain_index;
    if (ix && n <= DOMAIN_INDEX_MAX_QUERY) {
        const struct rn_domain *d = domain_get(s, ix->exact, ix->mask, 0, domain, n);
        if (d)
            return d;
        /* The longest "*." name first: the leftmost dot that is not the first character. */
        for (size_t p = 1; p < n; p++)
            if (domain[p] == '.' &&
                (d = domain_get(s, ix->wild, ix->mask, 1, domain + p, n - p)) != NULL)
                return d;
        return NULL;
    }
    const struct rn_domain *best = NULL;
    size_t best_len = 0;
    for (size_t i = 0; i < s->ndomains; i++) {
        const char *d = s->domains[i].domain;
        size_t dl = strlen(d);
        if (dl == n && rn_strnieq(d, domain, n))
            return &s->domains[i];
        /* "*.example.com" covers a.example.com and a.b.example.com, not example.com. */
        if (dl > 2 && d[0] == '*' && d[1] == '.' && n > dl - 1 && dl > best_len &&
            rn_strnieq(domain + n - (dl - 1), d + 1, dl - 1)) {
            best = &s->domains[i];
            best_len = dl;
        }
    }
    return best;
}

const struct rn_domain *snapshot_default_domain(const struct rn_snapshot *s)
{
    for (size_t i = 0; i < s->ndomains; i++)
        if (s->domains[i].is_default)
            return &s->domains[i];
    return NULL;
}

bool domain_lookup_on(const struct rn_domain *d)
{
    return d->type == DOMAIN_AUTHORITATIVE && !d->address_book_off;
}

bool snapshot_needs_recipients(const struct rn_snapshot *s)
{
    for (size_t i = 0; i < s->ndomains; i++)
        if (domain_lookup_on(&s->domains[i]))
            return true;
    return false;
}

const struct rn_connector *snapshot_find_connector(const struct rn_snapshot *s, const char *name)
{
    for (size_t i = 0; name && i < s->nconnectors; i++)
        if (s->connectors[i].name && rn_strieq(s->connectors[i].name, name))
            return &s->connectors[i];
    return NULL;
}

const struct rn_node_cert *snapshot_find_node_cert(const struct rn_snapshot *s,
                                                   const unsigned char sha256[32])
{
    for (size_t i = 0; s && i < s->nnode_certs; i++)
        if (memcmp(s->node_certs[i].sha256, sha256, 32) == 0)
            return &s->node_certs[i];
    return NULL;
}

bool snapshot_partner_domain(const struct rn_snapshot *s, const char *domain)
{
    size_t len = strlen(domain);
    if (len && domain[len - 1] == '.')
        len--;
    for (size_t i = 0; i < s->npartner_domains; i++)
        if (strlen(s->partner_domains[i]) == len &&
            strncasecmp(s->partner_domains[i], domain, len) == 0)
            return true;
    return false;
}
