/* snapdelta: the store of parsed entries behind a snapshot, and the build (snapdelta.h).
 *
 * Each entry is classified the way the full loader's searches select it (a receive
 * connector one level under the node or its site; anywhere in the subtree an accepted
 * domain, a send connector, a relayNode with relayCertificateSha256, a relayContainer with
 * relayDomainSecureDomain), parsed once by entry.h, and kept under its entryUUID (its DN when
 * the server gives none) with its parse result or refusal. The build walks the store in a
 * fixed order (connectors by name within node then site, the others by normalised DN),
 * shares the parsed connectors (reference-counted bodies) and copies the other parts, applies the cross-entry refusals the loader always applied (two
 * connectors a client could not tell apart, one domain with two types, two defaults) and
 * sums the per-entry hashes, so its result depends on the set of entries, never on the order
 * they arrived. entryCSN orders two versions of one entry: the watcher's copy of a change the
 * full load already read must not take the entry back. */
#include "directory/snapdelta.h"
#include "directory/snapdelta-private.h"
#include "directory/ace.h"
#include "directory/policy.h"
#include "directory/validate.h"
#include "directory/base/util.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- hashing ---- */

uint64_t snapdelta_hash_str(const char *p, size_t n)
{
    uint64_t h = 14695981039346656037ULL;        /* FNV-1a */
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)p[i]) * 1099511628211ULL;
    return (h ^ 0xff) * 1099511628211ULL;
}

uint64_t snapdelta_mix(uint64_t h)          /* splitmix64's finaliser: sums do not cancel */
{
    h ^= h >> 30;
    h *= 0xbf58476d1ce4e5b9ULL;
    h ^= h >> 27;
    h *= 0x94d049bb133111ebULL;
    return h ^ (h >> 31);
}

static bool bookkeeping_attr(const char *name)
{
    return rn_strieq(name, "entryUUID") || rn_strieq(name, "entryCSN");
}

/* DN, then each attribute (its name lowercased, its values in order) hashed alone and the
 * attributes summed: a server may send them in another order over the sync search. */
static uint64_t entry_hash(const struct dir_entry *e)
{
    uint64_t h = snapdelta_mix(snapdelta_hash_str(e->dn, strlen(e->dn)));
    for (size_t i = 0; i < e->nattrs; i++) {
        const struct dir_attr *a = &e->attrs[i];
        if (bookkeeping_attr(a->name))
            continue;
        char lname[128];
        rn_strlcpy(lname, a->name, sizeof lname);
        rn_strlower(lname);
        uint64_t ha = snapdelta_hash_str(lname, strlen(lname));
        for (size_t k = 0; k < a->nvalues; k++)
            for (const char *p = a->values[k];; p++) {
                ha = (ha ^ (unsigned char)*p) * 1099511628211ULL;   /* the NUL separates */
                if (!*p)
                    break;
            }
        h += snapdelta_mix(ha);
    }
    return h;
}

/* ---- changes ---- */

void snapdelta_changes_free(struct snapdelta_change **vp, size_t n)
{
    struct snapdelta_change *v = *vp;
    *vp = NULL;
    for (size_t i = 0; v && i < n; i++) {
        free(v[i].csn);
        free(v[i].version);
        dir_entry_clear(&v[i].e);
    }
    free(v);
}

void snapdelta_uuid_format(const char *in, size_t len, bool raw, char out[SNAPDELTA_UUIDLEN])
{
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;
    out[0] = '\0';
    if (raw) {
        if (len != 16)
            return;
        for (size_t i = 0; i < 16; i++) {
            out[o++] = hex[(unsigned char)in[i] >> 4];
            out[o++] = hex[(unsigned char)in[i] & 15];
        }
    } else {
        for (size_t i = 0; i < len; i++) {
            char c = in[i];
            if (c == '-')
                continue;
            if (o == 32 || !((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') ||
                             (c >= 'A' && c <= 'F'))) {
                out[0] = '\0';
                return;
            }
            out[o++] = c >= 'A' && c <= 'F' ? (char)(c + 32) : c;
        }
        if (o != 32) {
            out[0] = '\0';
            return;
        }
    }
    out[o] = '\0';
}

/* ---- the store ---- */

static char *ndn_of(const char *dn)
{
    char buf[2048], err[RN_ERRLEN];
    if (!dn || dn_normalize(dn, buf, sizeof buf, err, sizeof err) != 0)
        return NULL;
    return xstrdup(buf);
}

struct snapstore *snapstore_new(const char *node_name, const char *node_dn, const char *site_dn,
                                const char *user_base)
{
    struct snapstore *s = xcalloc(1, sizeof *s);
    s->node_name = xstrdup(node_name ? node_name : "");
    s->node_dn = xstrdup(node_dn ? node_dn : "");
    s->site_dn = xstrdup(site_dn ? site_dn : "");
    s->node_ndn = ndn_of(node_dn);
    s->site_ndn = ndn_of(site_dn);
    s->user_ndn = ndn_of(user_base);
    if (!s->node_ndn)
        s->node_ndn = xstrdup(s->node_dn);
    if (!s->site_ndn)
        s->site_ndn = xstrdup(s->site_dn);
    s->nbuckets = 256;
    s->buckets = xcalloc(s->nbuckets, sizeof *s->buckets);
    return s;
}

static void sd_entry_free(struct sd_entry *x)
{
    free(x->key);
    free(x->dn);
    free(x->ndn);
    free(x->csn);
    free(x->error);
    connector_body_release(&x->conn);
    domain_clear(&x->dom);
    sendconn_clear(&x->sc);
    for (size_t i = 0; i < x->ncerts; i++) {
        free(x->certs[i].dn);
        free(x->certs[i].name);
    }
    free(x->certs);
    for (size_t i = 0; i < x->npartners; i++)
        free(x->partners[i]);
    free(x->partners);
    free(x);
}

void snapstore_free(struct snapstore **sp)
{
    struct snapstore *s = *sp;
    *sp = NULL;
    if (!s)
        return;
    for (size_t b = 0; b < s->nbuckets; b++)
        for (struct sd_entry *x = s->buckets[b], *nx; x; x = nx) {
            nx = x->next;
            sd_entry_free(x);
        }
    free(s->buckets);
    snapbuild_last_clear(&s->last);
    free(s->conns);
    free(s->node_name);
    free(s->node_dn);
    free(s->site_dn);
    free(s->node_ndn);
    free(s->site_ndn);
    free(s->user_ndn);
    rcptset_free(&s->rcpt);
    free(s->rcpt_label);
    free(s->version);
    free(s);
}

const char *snapstore_version(const struct snapstore *s)
{
    return s->version;
}

/* The newest CSN of a version ("csn[,csn...]"), for ordering two versions of one server
 * set: CSNs begin with their time, so the text order is the time order. */
static const char *newest_csn(const char *v, size_t *len)
{
    const char *best = "";
    *len = 0;
    while (v && *v) {
        const char *e = strchr(v, ',');
        size_t l = e ? (size_t)(e - v) : strlen(v);
        size_t m = l < *len ? l : *len;
        int c = strncmp(v, best, m);
        if (c > 0 || (c == 0 && l > *len)) {
            best = v;
            *len = l;
        }
        v = e ? e + 1 : NULL;
    }
    return best;
}

void snapstore_set_version(struct snapstore *s, const char *version)
{
    if (!version)
        return;
    if (s->version) {
        size_t la, lb;
        const char *a = newest_csn(s->version, &la), *b = newest_csn(version, &lb);
        size_t m = la < lb ? la : lb;
        int c = strncmp(b, a, m);
        if (c < 0 || (c == 0 && lb <= la))
            return;                   /* not newer: a change the full load had already */
    }
    free(s->version);
    s->version = xstrdup(version);
}

size_t snapstore_count(const struct snapstore *s)
{
    return s->n;
}

static struct sd_entry **slot_of(const struct snapstore *s, const char *key)
{
    size_t b = snapdelta_hash_str(key, strlen(key)) & (s->nbuckets - 1);
    struct sd_entry **p = &s->buckets[b];
    while (*p && strcmp((*p)->key, key) != 0)
        p = &(*p)->next;
    return p;
}

static void grow(struct snapstore *s)
{
    size_t nb = s->nbuckets * 2;
    struct sd_entry **v = xcalloc(nb, sizeof *v);
    for (size_t b = 0; b < s->nbuckets; b++)
        for (struct sd_entry *x = s->buckets[b], *nx; x; x = nx) {
            nx = x->next;
            size_t k = snapdelta_hash_str(x->key, strlen(x->key)) & (nb - 1);
            x->next = v[k];
            v[k] = x;
        }
    free(s->buckets);
    s->buckets = v;
    s->nbuckets = nb;
}

static void unlink_entry(struct snapstore *s, struct sd_entry **p)
{
    struct sd_entry *x = *p;
    *p = x->next;
    s->gen++;
    if (x->conn)
        snapbuild_conn_remove(s, x);
    if (strncmp(x->key, "dn:", 3) == 0)
        s->nbydn--;
    s->n--;
    sd_entry_free(x);
}

/* The entry with normalised DN ndn (a scan: only deletes without entryUUID need it). */
static struct sd_entry **find_by_ndn(const struct snapstore *s, const char *ndn)
{
    for (size_t b = 0; b < s->nbuckets; b++)
        for (struct sd_entry **p = &s->buckets[b]; *p; p = &(*p)->next)
            if (strcmp((*p)->ndn, ndn) == 0)
                return p;
    return NULL;
}

/* ndn is at or below base (both normalised). */
static bool dn_under(const char *ndn, const char *base)
{
    size_t l = strlen(ndn), bl = strlen(base);
    return bl && l >= bl && strcmp(ndn + l - bl, base) == 0 && (l == bl || ndn[l - bl - 1] == ',');
}

static bool has_descendants(const struct snapstore *s, const char *ndn)
{
    for (size_t b = 0; b < s->nbuckets; b++)
        for (const struct sd_entry *x = s->buckets[b]; x; x = x->next)
            if (x->kind != K_NONE && strcmp(x->ndn, ndn) != 0 && dn_under(x->ndn, ndn))
                return true;
    return false;
}

/* ---- classification and parsing ---- */

static bool has_class(const struct dir_entry *e, const char *cls)
{
    const struct dir_attr *oc = dir_entry_get(e, "objectClass");
    for (size_t i = 0; oc && i < oc->nvalues; i++)
        if (rn_strieq(oc->values[i], cls))
            return true;
    return false;
}

static const char *parent_of(const char *ndn)
{
    for (const char *p = ndn; *p; p++) {
        if (*p == '\\' && p[1])
            p++;
        else if (*p == ',')
            return p + 1;
    }
    return "";
}

/* What the full loader's searches would read this entry as. */
static enum kind classify(const struct snapstore *s, const struct dir_entry *e, const char *ndn)
{
    if (has_class(e, "relayReceiveConnector")) {
        const char *parent = parent_of(ndn);
        if (strcmp(parent, s->node_ndn) == 0)
            return K_CONN_NODE;
        if (strcmp(parent, s->site_ndn) == 0)
            return K_CONN_SITE;
    }
    bool container = has_class(e, "relayContainer");
    bool node = has_class(e, "relayNode");
    bool match = has_class(e, "relayAcceptedDomain") || has_class(e, "relaySendConnector") ||
                 (node && dir_entry_get(e, "relayCertificateSha256")) ||
                 (container && dir_entry_get(e, "relayDomainSecureDomain"));
    if (!match)
        return K_NONE;
    /* The loader's own order of tests on a matching entry. */
    return container ? K_PARTNER : node ? K_NODECERT
         : has_class(e, "relayAcceptedDomain") ? K_DOMAIN : K_SENDCONN;
}

static void parse_into(struct sd_entry *x, const struct dir_entry *e)
{
    char err[RN_ERRLEN] = "";
    int rc = 0;
    struct rn_connector conn;
    memset(&conn, 0, sizeof conn);
    switch (x->kind) {
    case K_CONN_NODE:
    case K_CONN_SITE:
        rc = connector_from_entry(e, x->kind == K_CONN_SITE, &conn, err, sizeof err);
        if (rc == 0)
            x->conn = connector_body_new(&conn);
        break;
    case K_DOMAIN: rc = domain_from_entry(e, &x->dom, err, sizeof err); break;
    case K_SENDCONN: rc = sendconn_from_entry(e, &x->sc, err, sizeof err); break;
    case K_NODECERT: rc = nodecert_from_entry(e, &x->certs, &x->ncerts, err, sizeof err); break;
    case K_PARTNER:
        rc = partner_domains_from_entry(e, &x->partners, &x->npartners, err, sizeof err);
        break;
    case K_NONE: break;
    }
    x->ok = rc == 0;
    if (rc != 0) {
        x->error = xasprintf("%s: %s", e->dn, err);
        connector_clear(&conn);      /* a refused one is left out (partners keep theirs) */
        domain_clear(&x->dom);
        sendconn_clear(&x->sc);
    }
}

static bool cn_is(const struct dir_entry *e, const char *name)
{
    const struct dir_attr *cn = dir_entry_get(e, "cn");
    for (size_t i = 0; cn && i < cn->nvalues; i++)
        if (rn_strieq(cn->values[i], name))
            return true;
    return false;
}

int snapstore_put(struct snapstore *s, const struct dir_entry *e, const char *uuid,
                  const char *csn, char *why, size_t whylen)
{
    char *ndn = ndn_of(e->dn);
    if (!ndn) {
        rn_err(why, whylen, "%s: the DN does not parse", e->dn);
        return 1;
    }
    /* What the full loader checks before reading anything: the node is one relayNode with
     * its cn, under a relaySite. */
    bool is_node = strcmp(ndn, s->node_ndn) == 0, is_site = strcmp(ndn, s->site_ndn) == 0;
    if ((is_node && (!has_class(e, "relayNode") || !cn_is(e, s->node_name))) ||
        (is_site && !has_class(e, "relaySite")) ||
        (!is_node && has_class(e, "relayNode") && cn_is(e, s->node_name))) {
        rn_err(why, whylen, "%s: the node's own entry or its site changed", e->dn);
        free(ndn);
        return 1;
    }
    char key[SNAPDELTA_UUIDLEN + 8];
    char *dnkey = NULL;
    if (uuid && *uuid)
        rn_strlcpy(key, uuid, sizeof key);
    const char *k = uuid && *uuid ? key : (dnkey = xasprintf("dn:%s", ndn));
    struct sd_entry **p = slot_of(s, k);
    if (*p && csn && (*p)->csn && strcmp((*p)->csn, csn) > 0) {
        free(ndn);                    /* older than what the store holds: already superseded */
        free(dnkey);
        return 0;
    }
    if (*p && strcmp((*p)->ndn, ndn) != 0) {
        /* A rename: the entries beneath moved too, and no message says so. */
        if (has_descendants(s, (*p)->ndn) || dn_under(s->node_ndn, (*p)->ndn) ||
            dn_under(s->site_ndn, (*p)->ndn)) {
            rn_err(why, whylen, "%s: renamed to %s with entries beneath", (*p)->dn, e->dn);
            free(ndn);
            free(dnkey);
            return 1;
        }
    }
    bool known = *p != NULL;
    if (*p)
        unlink_entry(s, p);
    enum kind kd = classify(s, e, ndn);
    if (kd == K_NONE && !known) {
        free(ndn);
        free(dnkey);
        return 0;
    }
    /* An entry that moved out of the snapshot's scope stays as a tombstone (K_NONE, its
     * entryCSN only): a late copy of its older self must not bring it back. */
    struct sd_entry *x = xcalloc(1, sizeof *x);
    x->key = xstrdup(k);
    free(dnkey);
    x->dn = xstrdup(e->dn);
    x->ndn = ndn;
    x->csn = csn ? xstrdup(csn) : NULL;
    x->kind = kd;
    x->hash = kd == K_NONE ? 0 : entry_hash(e);
    parse_into(x, e);
    if (s->n + 1 > s->nbuckets)
        grow(s);
    p = slot_of(s, x->key);
    x->next = *p;
    *p = x;
    if (x->conn)
        snapbuild_conn_add(s, x);
    s->n++;
    s->gen++;
    if (strncmp(x->key, "dn:", 3) == 0)
        s->nbydn++;
    return 0;
}

int snapstore_delete(struct snapstore *s, const char *uuid, const char *dn, char *why,
                     size_t whylen)
{
    char *ndn = dn && *dn ? ndn_of(dn) : NULL;
    if (ndn && (dn_under(s->node_ndn, ndn) || dn_under(s->site_ndn, ndn))) {
        rn_err(why, whylen, "%s: deleted: the node's own entry or above", dn);
        free(ndn);
        return 1;
    }
    struct sd_entry **p = NULL;
    if (uuid && *uuid && *(p = slot_of(s, uuid)) == NULL)
        p = NULL;
    if (!p && (s->nbydn || !uuid || !*uuid)) {
        /* Entries read without entryUUID, and a delete without one, meet by DN. */
        if (!ndn && (!uuid || !*uuid)) {
            rn_err(why, whylen, "a delete without entryUUID or DN");
            return 1;
        }
        p = ndn ? find_by_ndn(s, ndn) : NULL;
    }
    if (p)
        unlink_entry(s, p);      /* else: nothing the snapshot uses */
    free(ndn);
    return 0;
}

/* A container the store does not hold, modified: a rename would have moved entries beneath
 * it that the store does hold, and RFC 4533 sends no message for those. */
static bool unknown_container(const struct snapstore *s, const struct snapdelta_change *c)
{
    static const char *const containers[] = {"organizationalUnit", "relayContainer",
                                             "relaySite", "container", "organization",
                                             "dcObject", "domain", "locality"};
    if (c->added || (c->uuid[0] && *slot_of(s, c->uuid)))
        return false;
    bool container = false;
    for (size_t i = 0; i < sizeof containers / sizeof *containers && !container; i++)
        container = has_class(&c->e, containers[i]);
    if (!container)
        return false;
    char *ndn = ndn_of(c->e.dn);
    bool r = !ndn || classify(s, &c->e, ndn) == K_NONE;
    free(ndn);
    return r;
}

/* An entry of the relay schema's own structure, never a mail recipient. */
static bool relay_class(const struct dir_entry *e)
{
    static const char *const classes[] = {"relayReceiveConnector", "relayAcceptedDomain",
                                          "relaySendConnector", "relayNode", "relayContainer",
                                          "relaySite"};
    for (size_t i = 0; i < sizeof classes / sizeof *classes; i++)
        if (has_class(e, classes[i]))
            return true;
    return false;
}

static bool under_user_base(const struct snapstore *s, const char *dn)
{
    if (!s->user_ndn || !dn || !*dn)
        return false;
    char *ndn = ndn_of(dn);
    bool r = ndn && dn_under(ndn, s->user_ndn);
    free(ndn);
    return r;
}

int snapdelta_apply(struct snapstore *s, const struct snapdelta_change *v, size_t n,
                    bool *rcpt_dirty, bool *nodes_dirty, char *why, size_t whylen)
{
    for (size_t i = 0; i < n; i++) {
        const struct snapdelta_change *c = &v[i];
        switch (c->op) {
        case SNAPDELTA_RESYNC:
            rn_err(why, whylen, "the watcher started over: changes may have been missed");
            return 1;
        case SNAPDELTA_OUTSIDE:
            *rcpt_dirty = true;
            snapstore_set_version(s, c->version);
            break;
        case SNAPDELTA_PUT:
            if (!c->e.dn) {
                rn_err(why, whylen, "a changed entry without a DN");
                return 1;
            }
            if (dir_entry_get(&c->e, "mail") || dir_entry_get(&c->e, "relayMailAlias") ||
                (!relay_class(&c->e) && under_user_base(s, c->e.dn)))
                *rcpt_dirty = true;       /* a user or group (maybe one that lost its mail) */
            if (has_class(&c->e, "relayNode"))
                *nodes_dirty = true;
            if (unknown_container(s, c)) {
                rn_err(why, whylen, "%s: a container changed (a rename moves what is beneath)",
                       c->e.dn);
                return 1;
            }
            if (snapstore_put(s, &c->e, c->uuid, c->csn, why, whylen) != 0)
                return 1;
            snapstore_set_version(s, c->version);
            break;
        case SNAPDELTA_DELETE:
            /* A deleted entry's class is unknown unless the store holds it: anything else
             * under user_base may have been a user, and anything a peer. */
            if (!(c->uuid[0] && *slot_of(s, c->uuid) && (*slot_of(s, c->uuid))->kind != K_NONE))
                *rcpt_dirty = *rcpt_dirty || !c->e.dn || !*c->e.dn ||
                              under_user_base(s, c->e.dn);
            *nodes_dirty = true;
            if (snapstore_delete(s, c->uuid, c->e.dn, why, whylen) != 0)
                return 1;
            snapstore_set_version(s, c->version);
            break;
        }
    }
    return 0;
}

/* ---- recipients ---- */

bool snapstore_has_recipients(const struct snapstore *s)
{
    return s->rcpt != NULL;
}

void snapstore_set_recipients(struct snapstore *s, struct rcptset *set, uint64_t hash,
                              size_t refused, const char *label)
{
    rcptset_free(&s->rcpt);
    free(s->rcpt_label);
    s->gen++;
    s->rcpt = rcptset_ref(set);
    s->rcpt_hash = hash;
    s->rcpt_refused = refused;
    s->rcpt_label = xstrdup(label ? label : "user_base");
}
