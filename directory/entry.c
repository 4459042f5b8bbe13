/* entry: directory entries as values, and the single parser from an entry to the model.
 * Before it, a connector, an accepted domain and a send connector were each parsed twice or
 * three times (the loader over LDAPMessage, relayctl over its own copy of the entry, delivery
 * re-checking smart hosts), and the copies had drifted apart. Every rule now lives here or in
 * the modules it calls (connattr for connector attributes, validate for the write-time rules,
 * dnsname for names and smart hosts), and the loader's messages are the ones kept, because
 * operators and tests read them in the snapshot's errors. */
#include "directory/entry.h"
#include "directory/connattr.h"
#include "directory/dnsname.h"
#include "directory/validate.h"
#include "directory/base/util.h"
#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* ---- attributes and entries ---- */

void dir_entries_clear(struct dir_entries *es)
{
    for (size_t i = 0; i < es->n; i++)
        dir_entry_clear(&es->v[i]);
    free(es->v);
    es->v = NULL;
    es->n = 0;
}

void dir_attr_clear(struct dir_attr *a)
{
    for (size_t i = 0; i < a->nvalues; i++)
        free(a->values[i]);
    free(a->values);
    free(a->name);
    memset(a, 0, sizeof *a);
}

void dir_attr_set(struct dir_attr *a, const char *name, const char *const *values, size_t n)
{
    a->name = xstrdup(name);
    a->values = xcalloc(n ? n : 1, sizeof *a->values);
    a->nvalues = n;
    for (size_t i = 0; i < n; i++)
        a->values[i] = xstrdup(values[i]);
}

bool dir_attr_has(const struct dir_attr *a, const char *v)
{
    for (size_t i = 0; i < a->nvalues; i++)
        if (strcmp(a->values[i], v) == 0)
            return true;
    return false;
}

void dir_entry_init(struct dir_entry *e, const char *dn)
{
    memset(e, 0, sizeof *e);
    e->dn = xstrdup(dn ? dn : "");
}

void dir_entry_clear(struct dir_entry *e)
{
    for (size_t i = 0; i < e->nattrs; i++)
        dir_attr_clear(&e->attrs[i]);
    free(e->attrs);
    free(e->dn);
    memset(e, 0, sizeof *e);
}

void dir_entry_copy(struct dir_entry *dst, const struct dir_entry *src)
{
    dir_entry_init(dst, src->dn);
    dst->attrs = xcalloc(src->nattrs ? src->nattrs : 1, sizeof *dst->attrs);
    for (size_t i = 0; i < src->nattrs; i++)
        dir_attr_set(&dst->attrs[i], src->attrs[i].name,
                     (const char *const *)src->attrs[i].values, src->attrs[i].nvalues);
    dst->nattrs = src->nattrs;
}

static struct dir_attr *entry_find(const struct dir_entry *e, const char *name)
{
    for (size_t i = 0; i < e->nattrs; i++)
        if (rn_strieq(e->attrs[i].name, name))
            return &e->attrs[i];
    return NULL;
}

const struct dir_attr *dir_entry_get(const struct dir_entry *e, const char *name)
{
    const struct dir_attr *a = entry_find(e, name);
    return a && a->nvalues ? a : NULL;
}

const char *dir_entry_first(const struct dir_entry *e, const char *name)
{
    const struct dir_attr *a = dir_entry_get(e, name);
    return a ? a->values[0] : NULL;
}

static void entry_drop(struct dir_entry *e, struct dir_attr *a)
{
    size_t i = (size_t)(a - e->attrs);
    dir_attr_clear(a);
    memmove(&e->attrs[i], &e->attrs[i + 1], (e->nattrs - i - 1) * sizeof *e->attrs);
    e->nattrs--;
}

static struct dir_attr *entry_make(struct dir_entry *e, const char *name)
{
    struct dir_attr *a = entry_find(e, name);
    if (a)
        return a;
    e->attrs = xrealloc(e->attrs, (e->nattrs + 1) * sizeof *e->attrs);
    a = &e->attrs[e->nattrs++];
    dir_attr_set(a, name, NULL, 0);
    return a;
}

void dir_entry_set(struct dir_entry *e, const char *name, const char *const *values, size_t n)
{
    struct dir_attr *a = entry_find(e, name);
    if (n == 0) {
        if (a)
            entry_drop(e, a);
        return;
    }
    if (!a)
        a = entry_make(e, name);
    char *keep = xstrdup(a->name);   /* keep the spelling already there */
    dir_attr_clear(a);
    dir_attr_set(a, keep, values, n);
    free(keep);
}

void dir_entry_set1(struct dir_entry *e, const char *name, const char *value)
{
    dir_entry_set(e, name, &value, value ? 1 : 0);
}

void dir_entry_add(struct dir_entry *e, const char *name, const char *value)
{
    struct dir_attr *a = entry_make(e, name);
    if (dir_attr_has(a, value))
        return;
    a->values = xrealloc(a->values, (a->nvalues + 1) * sizeof *a->values);
    a->values[a->nvalues++] = xstrdup(value);
}

bool dir_entry_remove(struct dir_entry *e, const char *name, const char *value)
{
    struct dir_attr *a = entry_find(e, name);
    if (!a)
        return false;
    for (size_t i = 0; i < a->nvalues; i++) {
        if (strcmp(a->values[i], value) != 0)
            continue;
        free(a->values[i]);
        memmove(&a->values[i], &a->values[i + 1], (a->nvalues - i - 1) * sizeof *a->values);
        if (--a->nvalues == 0)
            entry_drop(e, a);
        return true;
    }
    return false;
}

/* ---- the parser ---- */

/* Our schema's attributes all start with "relay": any other such name on an entry is a typo
 * or a value meant for another kind of entry, and is refused rather than ignored. */
static bool is_relay_attr(const char *a)
{
    return rn_strnieq(a, "relay", 5);
}

int connector_from_entry(const struct dir_entry *e, bool site_scoped, struct rn_connector *c,
                         char *err, size_t errlen)
{
    connector_defaults(c);
    c->dn = xstrdup(e->dn);
    const char *cn = dir_entry_first(e, "cn");
    c->name = xstrdup(cn ? cn : "");
    c->site_scoped = site_scoped;
    int rc = 0;
    /* Every attribute is applied even after a failure, so c shows all that parses; the
     * message is the first failure in entry order, the one the loader has always given. */
    for (size_t i = 0; i < e->nattrs; i++) {
        const struct dir_attr *a = &e->attrs[i];
        const struct connattr *ca = connattr_lookup(a->name);
        char aerr[RN_ERRLEN];
        int arc = 0;
        if (a->nvalues == 0)
            continue;
        if (ca)
            arc = connattr_apply(c, ca, (const char *const *)a->values, a->nvalues, aerr,
                                 sizeof aerr);
        else if (is_relay_attr(a->name))
            arc = rn_err(aerr, sizeof aerr, "%s: not a receive connector attribute", a->name);
        if (arc != 0 && rc == 0)
            rc = rn_err(err, errlen, "%s", aerr);
    }
    if (rc == 0)
        rc = validate_connector(c, err, errlen);
    return rc;
}

/* The single value of name, or -1 with "<name>: ..." when absent or multi-valued. */
static int single_value(const struct dir_entry *e, const char *name, const char **out,
                        char *err, size_t errlen)
{
    const struct dir_attr *a = dir_entry_get(e, name);
    *out = NULL;
    if (!a || a->nvalues > 1)
        return rn_err(err, errlen, "%s: %s", name,
                      a ? "several values for a single-valued attribute" : "missing");
    *out = a->values[0];
    return 0;
}

int domain_from_entry(const struct dir_entry *e, struct rn_domain *dom, char *err,
                      size_t errlen)
{
    memset(dom, 0, sizeof *dom);
    dom->dn = xstrdup(e->dn);
    for (size_t i = 0; i < e->nattrs; i++) {
        const char *a = e->attrs[i].name;
        if (is_relay_attr(a) && !rn_strieq(a, "relayDomainName") &&
            !rn_strieq(a, "relayDomainType") && !rn_strieq(a, "relayDefaultDomain") &&
            !rn_strieq(a, "relayAddressBookEnabled"))
            return rn_err(err, errlen, "%s: not an accepted domain attribute", a);
    }
    const char *name, *type;
    char norm[DNSNAME_BUFLEN], derr[RN_ERRLEN];
    if (single_value(e, "relayDomainName", &name, err, errlen) != 0)
        return -1;
    if (domain_name_check(name, DNSNAME_WILDCARD, norm, sizeof norm, derr, sizeof derr) != 0)
        return rn_err(err, errlen, "relayDomainName: %s", derr);
    dom->domain = xstrdup(norm);
    if (single_value(e, "relayDomainType", &type, err, errlen) != 0)
        return -1;
    if (rn_strieq(type, "Authoritative"))
        dom->type = DOMAIN_AUTHORITATIVE;
    else if (rn_strieq(type, "InternalRelay"))
        dom->type = DOMAIN_INTERNAL_RELAY;
    else if (rn_strieq(type, "ExternalRelay"))
        dom->type = DOMAIN_EXTERNAL_RELAY;
    else
        return rn_err(err, errlen, "relayDomainType: '%s' is not Authoritative, InternalRelay "
                      "or ExternalRelay", type);
    const struct dir_attr *def = dir_entry_get(e, "relayDefaultDomain");
    if (def) {
        const char *v;
        if (single_value(e, "relayDefaultDomain", &v, err, errlen) != 0)
            return -1;
        if (strcmp(v, "TRUE") != 0 && strcmp(v, "FALSE") != 0)
            return rn_err(err, errlen, "relayDefaultDomain: '%s' is not TRUE or FALSE", v);
        dom->is_default = strcmp(v, "TRUE") == 0;
        /* Exchange refuses a wildcard default domain too: postmaster@*.x is no address. */
        if (dom->is_default && dom->domain[0] == '*')
            return rn_err(err, errlen, "relayDefaultDomain: %s is a wildcard and cannot be "
                          "the default accepted domain", dom->domain);
    }
    if (dir_entry_get(e, "relayAddressBookEnabled")) {
        const char *v;
        if (single_value(e, "relayAddressBookEnabled", &v, err, errlen) != 0)
            return -1;
        if (strcmp(v, "TRUE") != 0 && strcmp(v, "FALSE") != 0)
            return rn_err(err, errlen, "relayAddressBookEnabled: '%s' is not TRUE or FALSE", v);
        dom->address_book_off = strcmp(v, "FALSE") == 0;
    }
    return 0;
}

static int parse_bool(const char *a, const char *v, bool *out, char *err, size_t errlen)
{
    if (strcmp(v, "TRUE") == 0)
        *out = true;
    else if (strcmp(v, "FALSE") == 0)
        *out = false;
    else
        return rn_err(err, errlen, "%s: '%s' is not TRUE or FALSE", a, v);
    return 0;
}

static int parse_cost(const char *v, uint64_t *out, char *err, size_t errlen)
{
    char *end = NULL;
    errno = 0;
    unsigned long long cost = strtoull(v, &end, 10);
    *out = cost;
    if (!*v || *end || errno || v[0] == '-' || cost < 1 || cost > 100)
        return rn_err(err, errlen, "relayCost: '%s' is not a number in 1..100", v);
    return 0;
}

/* One attribute of a send connector entry into sc. */
static int sendconn_attr(struct rn_sendconn *sc, const struct dir_attr *at, char *err,
                         size_t errlen)
{
    const char *a = at->name;
    char *const *v = at->values;
    size_t n = at->nvalues;
    bool single = rn_strieq(a, "relayEnabled") || rn_strieq(a, "relayCost") ||
                  rn_strieq(a, "relayRequireTLS");
    if (single && n != 1)
        return rn_err(err, errlen, "%s: several values for a single-valued attribute", a);
    if (rn_strieq(a, "relayEnabled"))
        return parse_bool(a, v[0], &sc->enabled, err, errlen);
    if (rn_strieq(a, "relayRequireTLS"))
        return parse_bool(a, v[0], &sc->require_tls, err, errlen);
    if (rn_strieq(a, "relayCost"))
        return parse_cost(v[0], &sc->cost, err, errlen);
    if (rn_strieq(a, "relayAddressSpace")) {
        sc->address_spaces = xcalloc(n + 1, sizeof *sc->address_spaces);
        for (size_t i = 0; i < n; i++) {
            char norm[DNSNAME_BUFLEN], derr[RN_ERRLEN];
            if (domain_name_check(v[i], DNSNAME_WILDCARD | DNSNAME_STAR, norm, sizeof norm,
                                  derr, sizeof derr) != 0)
                return rn_err(err, errlen, "relayAddressSpace: %s", derr);
            sc->address_spaces[sc->naddress_spaces++] = xstrdup(norm);
        }
        return 0;
    }
    if (rn_strieq(a, "relaySmartHost")) {
        sc->smart_hosts = xcalloc(n + 1, sizeof *sc->smart_hosts);
        for (size_t i = 0; i < n; i++) {
            char herr[RN_ERRLEN];
            if (smarthost_check(v[i], herr, sizeof herr) != 0)
                return rn_err(err, errlen, "relaySmartHost: %s", herr);
            sc->smart_hosts[sc->nsmart_hosts++] = xstrdup(v[i]);
        }
        return 0;
    }
    if (is_relay_attr(a))
        return rn_err(err, errlen, "%s: not a send connector attribute", a);
    return 0;
}

void sendconn_init(const struct dir_entry *e, struct rn_sendconn *sc)
{
    memset(sc, 0, sizeof *sc);
    sc->dn = xstrdup(e->dn);
    const char *cn = dir_entry_first(e, "cn");
    sc->name = xstrdup(cn ? cn : "");
    sc->enabled = true;
    sc->cost = 1;
}

int sendconn_from_entry(const struct dir_entry *e, struct rn_sendconn *sc, char *err,
                        size_t errlen)
{
    sendconn_init(e, sc);
    for (size_t i = 0; i < e->nattrs; i++)
        if (e->attrs[i].nvalues && sendconn_attr(sc, &e->attrs[i], err, errlen) != 0)
            return -1;
    if (sc->naddress_spaces == 0)
        return rn_err(err, errlen, "relayAddressSpace: missing (the connector would route "
                      "nothing)");
    return 0;
}

/* ---- domain-secure partner domains (relayDomainSecureDomain) ---- */

int partner_domains_from_entry(const struct dir_entry *e, char ***v, size_t *n, char *err,
                               size_t errlen)
{
    const struct dir_attr *a = dir_entry_get(e, "relayDomainSecureDomain");
    for (size_t i = 0; a && i < a->nvalues; i++) {
        char dom[DNSNAME_BUFLEN], derr[RN_ERRLEN];
        if (domain_name_check(a->values[i], 0, dom, sizeof dom, derr, sizeof derr) != 0)
            return rn_err(err, errlen, "relayDomainSecureDomain: %s", derr);
        *v = xrealloc(*v, (*n + 1) * sizeof **v);
        (*v)[(*n)++] = xstrdup(dom);
    }
    return 0;
}

/* ---- node certificates (relayCertificateSha256) ---- */

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int cert_sha256_parse(const char *text, unsigned char out[32])
{
    size_t len = strlen(text);
    bool colons = len == 95;
    if (len != 64 && !colons)
        return -1;
    for (size_t i = 0, p = 0; i < 32; i++) {
        int hi = hexval(text[p]), lo = hexval(text[p + 1]);
        if (hi < 0 || lo < 0)
            return -1;
        out[i] = (unsigned char)(hi << 4 | lo);
        p += 2;
        if (colons && i < 31 && text[p++] != ':')
            return -1;
    }
    return 0;
}

void cert_sha256_format(const unsigned char sha256[32], char buf[65])
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < 32; i++) {
        buf[2 * i] = digits[sha256[i] >> 4];
        buf[2 * i + 1] = digits[sha256[i] & 15];
    }
    buf[64] = '\0';
}

int nodecert_from_entry(const struct dir_entry *e, struct rn_node_cert **v, size_t *n,
                        char *err, size_t errlen)
{
    const struct dir_attr *a = dir_entry_get(e, "relayCertificateSha256");
    unsigned char (*fp)[32] = xcalloc(a && a->nvalues ? a->nvalues : 1, sizeof *fp);
    for (size_t i = 0; a && i < a->nvalues; i++)
        if (cert_sha256_parse(a->values[i], fp[i]) != 0) {
            free(fp);
            return rn_err(err, errlen, "relayCertificateSha256: '%.80s' is not a SHA-256 "
                          "fingerprint (64 hex digits)", a->values[i]);
        }
    const char *cn = dir_entry_first(e, "cn");
    for (size_t i = 0; a && i < a->nvalues; i++) {
        *v = xrealloc(*v, (*n + 1) * sizeof **v);
        struct rn_node_cert *c = &(*v)[(*n)++];
        c->dn = xstrdup(e->dn);
        c->name = xstrdup(cn ? cn : "");
        memcpy(c->sha256, fp[i], 32);
    }
    free(fp);
    return 0;
}
