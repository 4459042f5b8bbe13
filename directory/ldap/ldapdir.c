/* ldapdir: the directory loader and user lookup, the only place the node talks to LDAP
 * through libldap. The loader turns the relay subtree into an immutable snapshot for one node:
 * its own connectors and its site's, the accepted domains and send connectors. Every entry goes
 * through the same table (connattr) and rules (validate) relayctl applies before a write; an
 * entry that fails is left out and named in the snapshot's errors, so one bad connector never
 * takes the others down, and an ambiguous pair is refused on both sides (fail closed).
 * A server that cannot be reached is DIR_TEMPFAIL (the node keeps its last snapshot and AUTH
 * answers 454); malformed configuration still yields a snapshot. Calls block: the node runs
 * them on a worker thread. Passwords are read, used and wiped here, never copied or logged. */
#include <ldap.h>
#include "directory/ldap/ldapdir.h"
#include "directory/ldap/ldapdir-private.h"
#include "directory/ace.h"
#include "directory/connattr.h"
#include "directory/policy.h"
#include "directory/base/util.h"
#include "directory/validate.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#define GROUP_DEPTH_MAX 16        /* nesting levels followed before a lookup is refused */
#define DEFAULT_USER_FILTER "(|(uid=%s)(mail=%s))"
#define DNBUF 2048

struct ldapdir {
    LDAP *ld;                     /* owned; bound */
    char *uri;                    /* owned; for messages */
    struct timeval timeout;       /* per operation */
    char *suffix_of, *suffix;     /* owned: the naming context holding suffix_of (a base),
                                   * found once per connection by version_read */
};

struct ldap *ldapdir_handle(struct ldapdir *d)
{
    return d->ld;
}

/* Errors that mean "the directory is not there right now" rather than "it said no". */
static bool rc_is_temporary(int rc)
{
    return rc == LDAP_SERVER_DOWN || rc == LDAP_CONNECT_ERROR || rc == LDAP_TIMEOUT ||
           rc == LDAP_UNAVAILABLE || rc == LDAP_BUSY || rc == LDAP_TIMELIMIT_EXCEEDED ||
           rc == LDAP_ADMINLIMIT_EXCEEDED || rc == LDAP_OTHER || rc == LDAP_NO_MEMORY;
}

/* "what: <libldap text> (<server diagnostic>)", and the result class of rc. */
static enum dir_result ld_error(struct ldapdir *d, int rc, const char *what, char *err,
                                size_t errlen)
{
    char *diag = NULL;
    if (d->ld)
        ldap_get_option(d->ld, LDAP_OPT_DIAGNOSTIC_MESSAGE, &diag);
    bool showdiag = diag && *diag && !rc_is_temporary(rc);
    rn_err(err, errlen, "%s: %s%s%s%s", what, ldap_err2string(rc), showdiag ? " (" : "",
           showdiag ? diag : "", showdiag ? ")" : "");
    ldap_memfree(diag);
    return rc_is_temporary(rc) ? DIR_TEMPFAIL : DIR_FAIL;
}

/* The first line of the password file, without its line end. -1 with err on failure. */
static int read_password(const char *path, char *pw, size_t pwlen, char *err, size_t errlen)
{
    FILE *f = fopen(path, "re");
    if (!f)
        return rn_err(err, errlen, "bind_password_file %s: %s", path, strerror(errno));
    bool got = fgets(pw, (int)pwlen, f) != NULL;
    fclose(f);
    if (!got)
        pw[0] = '\0';
    pw[strcspn(pw, "\r\n")] = '\0';
    return 0;
}

/* SASL EXTERNAL needs no interaction: the identity is the peer credential (ldapi://) or the
 * TLS client certificate, and libldap offers no prompt for it (no authzid is requested). */
static int sasl_noprompt(LDAP *ld, unsigned flags, void *defaults, void *in)
{
    (void)ld; (void)flags; (void)defaults; (void)in;
    return LDAP_SUCCESS;
}

LDAP *ldapdir_connect(const struct rn_bootstrap *b, char *err, size_t errlen)
{
    LDAP *ld = NULL;
    int rc = ldap_initialize(&ld, b->uri);
    if (rc != LDAP_SUCCESS) {
        rn_err(err, errlen, "uri %s: %s", b->uri, ldap_err2string(rc));
        return NULL;
    }
    struct timeval tv = {b->ldap_timeout, 0};
    int v3 = LDAP_VERSION3;
    ldap_set_option(ld, LDAP_OPT_PROTOCOL_VERSION, &v3);
    ldap_set_option(ld, LDAP_OPT_REFERRALS, LDAP_OPT_OFF);
    ldap_set_option(ld, LDAP_OPT_NETWORK_TIMEOUT, &tv);
    ldap_set_option(ld, LDAP_OPT_TIMEOUT, &tv);
    return ld;
}

enum dir_result ldapdir_open(const struct rn_bootstrap *b, struct ldapdir **out, char *err,
                             size_t errlen)
{
    *out = NULL;
    if (!b->uri || !*b->uri) {
        rn_err(err, errlen, "no directory uri configured");
        return DIR_FAIL;
    }
    struct ldapdir *d = xcalloc(1, sizeof *d);
    d->uri = xstrdup(b->uri);
    d->timeout.tv_sec = b->ldap_timeout;
    d->ld = ldapdir_connect(b, err, errlen);
    if (!d->ld) {
        ldapdir_free(&d);
        return DIR_FAIL;
    }
    int rc;

    char what[512];
    snprintf(what, sizeof what, "cannot reach %s", b->uri);
    if (b->sasl_mech == BOOT_SASL_EXTERNAL) {
        rc = ldap_sasl_interactive_bind_s(d->ld, NULL, "EXTERNAL", NULL, NULL, LDAP_SASL_QUIET,
                                          sasl_noprompt, NULL);
    } else {
        char pw[1024] = "";
        if (b->bind_dn && *b->bind_dn) {
            if (!b->bind_password_file || !*b->bind_password_file) {
                rn_err(err, errlen, "bind_dn is set but bind_password_file is not");
                ldapdir_free(&d);
                return DIR_FAIL;
            }
            if (read_password(b->bind_password_file, pw, sizeof pw, err, errlen) != 0) {
                ldapdir_free(&d);
                return DIR_FAIL;
            }
        }
        struct berval cred = {strlen(pw), pw};
        rc = ldap_sasl_bind_s(d->ld, b->bind_dn && *b->bind_dn ? b->bind_dn : NULL,
                              LDAP_SASL_SIMPLE, &cred, NULL, NULL, NULL);
        explicit_bzero(pw, sizeof pw);
    }
    if (rc != LDAP_SUCCESS) {
        if (!rc_is_temporary(rc))
            snprintf(what, sizeof what, "bind to %s as %s", b->uri,
                     b->bind_dn && *b->bind_dn ? b->bind_dn
                     : b->sasl_mech == BOOT_SASL_EXTERNAL ? "EXTERNAL" : "anonymous");
        enum dir_result r = ld_error(d, rc, what, err, errlen);
        ldapdir_free(&d);
        return r;
    }
    *out = d;
    return DIR_FOUND;
}

void ldapdir_free(struct ldapdir **d)
{
    if (!d || !*d)
        return;
    if ((*d)->ld)
        ldap_unbind_ext_s((*d)->ld, NULL, NULL);
    free((*d)->uri);
    free((*d)->suffix_of);
    free((*d)->suffix);
    free(*d);
    *d = NULL;
}

/* ---- small libldap helpers ---- */

static int search(struct ldapdir *d, const char *base, int scope, const char *filter,
                  char **attrs, int sizelimit, LDAPMessage **res)
{
    struct timeval tv = d->timeout;
    *res = NULL;
    return ldap_search_ext_s(d->ld, base, scope, filter, attrs, 0, NULL, NULL, &tv, sizelimit,
                             res);
}

/* Fold every entry of res (DN, attribute names, values, in the server's order) into the
 * FNV-1a hash *h: two loads that read the same entries get the same hash, so a change that
 * left contextCSN alone (no syncprov maintaining it, a directory without one) still shows. */
static void hash_bytes(uint64_t *h, const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        *h = (*h ^ b[i]) * 1099511628211ULL;
    *h = (*h ^ 0xff) * 1099511628211ULL;     /* a separator: "ab"+"c" differs from "a"+"bc" */
}

static void hash_entries(uint64_t *h, LDAP *ld, LDAPMessage *res)
{
    for (LDAPMessage *m = ldap_first_entry(ld, res); m; m = ldap_next_entry(ld, m)) {
        char *dn = ldap_get_dn(ld, m);
        if (dn)
            hash_bytes(h, dn, strlen(dn));
        ldap_memfree(dn);
        BerElement *ber = NULL;
        for (char *a = ldap_first_attribute(ld, m, &ber); a;
             a = ldap_next_attribute(ld, m, ber)) {
            hash_bytes(h, a, strlen(a));
            struct berval **vals = ldap_get_values_len(ld, m, a);
            for (size_t i = 0; vals && vals[i]; i++)
                hash_bytes(h, vals[i]->bv_val, vals[i]->bv_len);
            ldap_value_free_len(vals);
            ldap_memfree(a);
        }
        if (ber)
            ber_free(ber, 0);
    }
}

/* The values of attribute a as NUL-terminated strings (caller frees each and the array). */
static char **values_get(LDAP *ld, LDAPMessage *m, const char *a, size_t *n)
{
    struct berval **vals = ldap_get_values_len(ld, m, a);
    size_t k = 0;
    while (vals && vals[k])
        k++;
    char **out = xcalloc(k + 1, sizeof *out);
    for (size_t i = 0; i < k; i++)
        out[i] = xstrndup(vals[i]->bv_val, vals[i]->bv_len);
    ldap_value_free_len(vals);
    *n = k;
    return out;
}

static void values_free(char **v, size_t n)
{
    for (size_t i = 0; v && i < n; i++)
        free(v[i]);
    free(v);
}

static char *value_first(LDAP *ld, LDAPMessage *m, const char *a)
{
    size_t n;
    char **v = values_get(ld, m, a, &n);
    char *s = n ? xstrdup(v[0]) : NULL;
    values_free(v, n);
    return s;
}

/* The parent of dn (RFC 4514), or NULL when dn has a single RDN or does not parse. */
static char *dn_parent(const char *dn)
{
    LDAPDN parsed = NULL;
    char *out = NULL;
    if (ldap_str2dn(dn, &parsed, LDAP_DN_FORMAT_LDAPV3) == LDAP_SUCCESS && parsed && parsed[0] &&
        parsed[1]) {
        char *s = NULL;
        if (ldap_dn2str(&parsed[1], &s, LDAP_DN_FORMAT_LDAPV3) == LDAP_SUCCESS && s)
            out = xstrdup(s);
        ldap_memfree(s);
    }
    ldap_dnfree(parsed);
    return out;
}

static bool has_class(LDAP *ld, LDAPMessage *m, const char *cls)
{
    size_t n;
    char **v = values_get(ld, m, "objectClass", &n);
    bool yes = false;
    for (size_t i = 0; i < n; i++)
        yes = yes || rn_strieq(v[i], cls);
    values_free(v, n);
    return yes;
}

static bool is_relay_attr(const char *a)
{
    return rn_strnieq(a, "relay", 5);
}

/* ---- receive connectors ---- */

/* Build one connector from its entry: defaults, every attribute through the table, then the
 * write-time rules. -1 with "<attr>: <reason>" (the caller prefixes the DN). */
static int connector_from_entry(LDAP *ld, LDAPMessage *m, const char *dn, bool site_scoped,
                                struct rn_connector *c, char *err, size_t errlen)
{
    connector_defaults(c);
    c->dn = xstrdup(dn);
    c->name = value_first(ld, m, "cn");
    if (!c->name)
        c->name = xstrdup("");
    c->site_scoped = site_scoped;
    BerElement *ber = NULL;
    int rc = 0;
    /* Stop at the first bad attribute; the loop condition must not fetch (and leak) the
     * next name after a failure. */
    for (char *a = ldap_first_attribute(ld, m, &ber); a; a = ldap_next_attribute(ld, m, ber)) {
        const struct connattr *ca = connattr_lookup(a);
        if (ca) {
            size_t n;
            char **v = values_get(ld, m, a, &n);
            rc = connattr_apply(c, ca, (const char *const *)v, n, err, errlen);
            values_free(v, n);
        } else if (is_relay_attr(a)) {
            rc = rn_err(err, errlen, "%s: not a receive connector attribute", a);
        }
        ldap_memfree(a);
        if (rc != 0)
            break;
    }
    ber_free(ber, 0);
    if (rc == 0)
        rc = validate_connector(c, err, errlen);
    return rc;
}

static int connector_name_cmp(const void *a, const void *b)
{
    const struct rn_connector *x = a, *y = b;
    int r = strcmp(x->name, y->name);
    return r ? r : strcmp(x->dn, y->dn);
}

/* Connectors one level under `base` appended to *v (valid ones only; refusals recorded). */
static int connectors_load(struct ldapdir *d, struct rn_snapshot *s, const char *base,
                           bool site_scoped, struct rn_connector **v, size_t *n, char *err,
                           size_t errlen)
{
    LDAPMessage *res;
    int rc = search(d, base, LDAP_SCOPE_ONELEVEL, "(objectClass=relayReceiveConnector)", NULL,
                    LDAP_NO_LIMIT, &res);
    if (rc != LDAP_SUCCESS) {
        ldap_msgfree(res);
        char what[DNBUF + 64];
        snprintf(what, sizeof what, "search connectors under %s", base);
        return ld_error(d, rc, what, err, errlen);
    }
    hash_entries(&s->content_hash, d->ld, res);
    size_t first = *n;
    for (LDAPMessage *m = ldap_first_entry(d->ld, res); m; m = ldap_next_entry(d->ld, m)) {
        char *dn = ldap_get_dn(d->ld, m);
        struct rn_connector c;
        char cerr[RN_ERRLEN];
        if (connector_from_entry(d->ld, m, dn ? dn : "", site_scoped, &c, cerr,
                                 sizeof cerr) != 0) {
            snapshot_add_error(s, "%s: %s", dn ? dn : "", cerr);
            connector_clear(&c);
        } else {
            *v = xrealloc(*v, (*n + 1) * sizeof **v);
            (*v)[(*n)++] = c;
        }
        ldap_memfree(dn);
    }
    ldap_msgfree(res);
    /* Deterministic load order (selection ties fall back to it): by name within a level. */
    qsort(*v + first, *n - first, sizeof **v, connector_name_cmp);
    return DIR_FOUND;
}

static bool share_port(const struct rn_connector *a, const struct rn_connector *b)
{
    for (size_t i = 0; i < a->nbindings; i++)
        for (size_t k = 0; k < b->nbindings; k++)
            if (a->bindings[i].port == b->bindings[k].port)
                return true;
    return false;
}

/* §4.3 conflicts between enabled connectors of this node: both sides are refused, because
 * which one a client would get is ambiguous and an ambiguous relay decision must fail closed. */
static void connectors_check_conflicts(struct rn_snapshot *s, struct rn_connector *v, size_t *n)
{
    bool *bad = xcalloc(*n ? *n : 1, sizeof *bad);
    for (size_t i = 0; i < *n; i++)
        for (size_t k = i + 1; k < *n; k++) {
            if (!v[i].enabled || !v[k].enabled || !share_port(&v[i], &v[k]))
                continue;
            char cerr[RN_ERRLEN];
            if (validate_conflict(&v[i], &v[k], cerr, sizeof cerr) != 0) {
                snapshot_add_error(s, "%s: %s (conflicts with %s)", v[i].dn, cerr, v[k].dn);
                snapshot_add_error(s, "%s: %s (conflicts with %s)", v[k].dn, cerr, v[i].dn);
                bad[i] = bad[k] = true;
            }
        }
    size_t o = 0;
    for (size_t i = 0; i < *n; i++) {
        if (bad[i])
            connector_clear(&v[i]);
        else
            v[o++] = v[i];
    }
    *n = o;
    free(bad);
}

/* ---- accepted domains and send connectors ---- */

/* A domain name as the model stores it: lowercase, no trailing dot, LDH labels, and an
 * optional leading "*." (subdomains only). `star_ok` also allows a bare "*" (address spaces). */
static int domain_check(const char *in, bool star_ok, char **out, char *err, size_t errlen)
{
    char *s = xstrdup(in);
    rn_strlower(s);
    size_t len = strlen(s);
    if (len > 1 && s[len - 1] == '.')
        s[--len] = '\0';
    if (star_ok && strcmp(s, "*") == 0) {
        *out = s;
        return 0;
    }
    const char *p = strncmp(s, "*.", 2) == 0 ? s + 2 : s;
    size_t label = 0;
    bool ok = *p != '\0' && len <= 253;
    for (const char *q = p; ok && *q; q++) {
        if (*q == '.') {
            ok = label > 0 && q[-1] != '-';
            label = 0;
        } else if ((*q >= 'a' && *q <= 'z') || (*q >= '0' && *q <= '9') ||
                   (*q == '-' && label > 0) || *q == '_') {
            ok = ++label <= 63;
        } else {
            ok = false;
        }
    }
    ok = ok && label > 0;
    if (!ok) {
        free(s);
        return rn_err(err, errlen, "'%s' is not a domain name", in);
    }
    *out = s;
    return 0;
}

/* The single value of a, or -1 with "<a>: ..." when absent or multi-valued. */
static int single_value(LDAP *ld, LDAPMessage *m, const char *a, bool required, char **out,
                        char *err, size_t errlen)
{
    size_t n;
    char **v = values_get(ld, m, a, &n);
    *out = NULL;
    if (n > 1 || (n == 0 && required)) {
        values_free(v, n);
        return rn_err(err, errlen, "%s: %s", a, n ? "several values for a single-valued attribute"
                                                  : "missing");
    }
    if (n == 1)
        *out = xstrdup(v[0]);
    values_free(v, n);
    return 0;
}

static int domain_from_entry(LDAP *ld, LDAPMessage *m, struct rn_domain *dom, char *err,
                             size_t errlen)
{
    char *name = NULL, *type = NULL, derr[RN_ERRLEN];
    int rc = 0;
    BerElement *ber = NULL;
    for (char *a = ldap_first_attribute(ld, m, &ber); a; a = ldap_next_attribute(ld, m, ber)) {
        if (rc == 0 && is_relay_attr(a) && !rn_strieq(a, "relayDomainName") &&
            !rn_strieq(a, "relayDomainType"))
            rc = rn_err(err, errlen, "%s: not an accepted domain attribute", a);
        ldap_memfree(a);
    }
    ber_free(ber, 0);
    if (rc == 0)
        rc = single_value(ld, m, "relayDomainName", true, &name, err, errlen);
    if (rc == 0 && domain_check(name, false, &dom->domain, derr, sizeof derr) != 0)
        rc = rn_err(err, errlen, "relayDomainName: %s", derr);
    if (rc == 0)
        rc = single_value(ld, m, "relayDomainType", true, &type, err, errlen);
    if (rc == 0) {
        if (rn_strieq(type, "Authoritative"))
            dom->type = DOMAIN_AUTHORITATIVE;
        else if (rn_strieq(type, "InternalRelay"))
            dom->type = DOMAIN_INTERNAL_RELAY;
        else if (rn_strieq(type, "ExternalRelay"))
            dom->type = DOMAIN_EXTERNAL_RELAY;
        else
            rc = rn_err(err, errlen, "relayDomainType: '%s' is not Authoritative, InternalRelay "
                        "or ExternalRelay", type);
    }
    free(name);
    free(type);
    return rc;
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

/* host or host:port or [v6]:port; the host is a name or an address, the port 1..65535. */
static int smarthost_check(const char *v, char *err, size_t errlen)
{
    const char *port = NULL, *host_end;
    if (v[0] == '[') {
        host_end = strchr(v, ']');
        if (!host_end || host_end == v + 1)
            return rn_err(err, errlen, "relaySmartHost: '%s' is not host[:port]", v);
        if (host_end[1] == ':')
            port = host_end + 2;
        else if (host_end[1])
            return rn_err(err, errlen, "relaySmartHost: '%s' is not host[:port]", v);
    } else {
        const char *c = strchr(v, ':');
        host_end = c ? c : v + strlen(v);
        port = c ? c + 1 : NULL;
        for (const char *q = v; q < host_end; q++)
            if (!((*q >= 'a' && *q <= 'z') || (*q >= 'A' && *q <= 'Z') ||
                  (*q >= '0' && *q <= '9') || *q == '-' || *q == '.' || *q == '_'))
                return rn_err(err, errlen, "relaySmartHost: '%s' is not host[:port]", v);
        if (host_end == v)
            return rn_err(err, errlen, "relaySmartHost: '%s' has no host", v);
    }
    if (port) {
        char *end = NULL;
        errno = 0;
        long p = strtol(port, &end, 10);
        if (!*port || *end || errno || p < 1 || p > 65535)
            return rn_err(err, errlen, "relaySmartHost: '%s' has a bad port", v);
    }
    return 0;
}

static int sendconn_from_entry(LDAP *ld, LDAPMessage *m, const char *dn, struct rn_sendconn *sc,
                               char *err, size_t errlen)
{
    memset(sc, 0, sizeof *sc);
    sc->dn = xstrdup(dn);
    sc->name = value_first(ld, m, "cn");
    if (!sc->name)
        sc->name = xstrdup("");
    sc->enabled = true;
    sc->cost = 1;
    int rc = 0;
    BerElement *ber = NULL;
    for (char *a = ldap_first_attribute(ld, m, &ber); a; a = ldap_next_attribute(ld, m, ber)) {
        size_t n;
        char **v = values_get(ld, m, a, &n), derr[RN_ERRLEN];
        bool single = rn_strieq(a, "relayEnabled") || rn_strieq(a, "relayCost") ||
                      rn_strieq(a, "relayRequireTLS");
        if (single && n != 1) {
            rc = rn_err(err, errlen, "%s: several values for a single-valued attribute", a);
        } else if (rn_strieq(a, "relayEnabled")) {
            rc = parse_bool(a, v[0], &sc->enabled, err, errlen);
        } else if (rn_strieq(a, "relayRequireTLS")) {
            rc = parse_bool(a, v[0], &sc->require_tls, err, errlen);
        } else if (rn_strieq(a, "relayCost")) {
            char *end = NULL;
            errno = 0;
            unsigned long long cost = strtoull(v[0], &end, 10);
            if (!*v[0] || *end || errno || v[0][0] == '-' || cost < 1 || cost > 100)
                rc = rn_err(err, errlen, "relayCost: '%s' is not a number in 1..100", v[0]);
            sc->cost = cost;
        } else if (rn_strieq(a, "relayAddressSpace")) {
            sc->address_spaces = xcalloc(n + 1, sizeof *sc->address_spaces);
            for (size_t i = 0; i < n && rc == 0; i++) {
                if (domain_check(v[i], true, &sc->address_spaces[i], derr, sizeof derr) != 0)
                    rc = rn_err(err, errlen, "relayAddressSpace: %s", derr);
                else
                    sc->naddress_spaces++;
            }
        } else if (rn_strieq(a, "relaySmartHost")) {
            sc->smart_hosts = xcalloc(n + 1, sizeof *sc->smart_hosts);
            for (size_t i = 0; i < n && rc == 0; i++) {
                rc = smarthost_check(v[i], err, errlen);
                if (rc == 0)
                    sc->smart_hosts[sc->nsmart_hosts++] = xstrdup(v[i]);
            }
        } else if (is_relay_attr(a)) {
            rc = rn_err(err, errlen, "%s: not a send connector attribute", a);
        }
        values_free(v, n);
        ldap_memfree(a);
        if (rc != 0)
            break;
    }
    ber_free(ber, 0);
    if (rc == 0 && sc->naddress_spaces == 0)
        rc = rn_err(err, errlen, "relayAddressSpace: missing (the connector would route nothing)");
    return rc;
}

/* Accepted domains and send connectors anywhere under the relay subtree. Two accepted-domain
 * entries for the same name are refused on both sides when their types differ. */
static int domains_sendconns_load(struct ldapdir *d, struct rn_snapshot *s, const char *base,
                                  char *err, size_t errlen)
{
    LDAPMessage *res;
    int rc = search(d, base, LDAP_SCOPE_SUBTREE,
                    "(|(objectClass=relayAcceptedDomain)(objectClass=relaySendConnector))", NULL,
                    LDAP_NO_LIMIT, &res);
    if (rc != LDAP_SUCCESS) {
        ldap_msgfree(res);
        char what[DNBUF + 64];
        snprintf(what, sizeof what, "search %s", base);
        return ld_error(d, rc, what, err, errlen);
    }
    hash_entries(&s->content_hash, d->ld, res);
    for (LDAPMessage *m = ldap_first_entry(d->ld, res); m; m = ldap_next_entry(d->ld, m)) {
        char *dn = ldap_get_dn(d->ld, m), eerr[RN_ERRLEN];
        if (has_class(d->ld, m, "relayAcceptedDomain")) {
            struct rn_domain dom = {0};
            if (domain_from_entry(d->ld, m, &dom, eerr, sizeof eerr) != 0) {
                snapshot_add_error(s, "%s: %s", dn, eerr);
                domain_clear(&dom);
            } else {
                dom.dn = xstrdup(dn);
                s->domains = xrealloc(s->domains, (s->ndomains + 1) * sizeof *s->domains);
                s->domains[s->ndomains++] = dom;
            }
        } else {
            struct rn_sendconn sc;
            if (sendconn_from_entry(d->ld, m, dn, &sc, eerr, sizeof eerr) != 0) {
                snapshot_add_error(s, "%s: %s", dn, eerr);
                sendconn_clear(&sc);
            } else {
                s->sendconns = xrealloc(s->sendconns, (s->nsendconns + 1) * sizeof *s->sendconns);
                s->sendconns[s->nsendconns++] = sc;
            }
        }
        ldap_memfree(dn);
    }
    ldap_msgfree(res);

    bool *bad = xcalloc(s->ndomains ? s->ndomains : 1, sizeof *bad);
    for (size_t i = 0; i < s->ndomains; i++)
        for (size_t k = i + 1; k < s->ndomains; k++)
            if (strcmp(s->domains[i].domain, s->domains[k].domain) == 0 &&
                s->domains[i].type != s->domains[k].type) {
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
    return DIR_FOUND;
}

/* ---- version ---- */

static int str_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The naming context (from the root DSE's namingContexts) holding base; NULL if none. */
static char *suffix_find(struct ldapdir *d, const char *base)
{
    LDAPMessage *res;
    char *attrs[] = {"namingContexts", NULL};
    if (search(d, "", LDAP_SCOPE_BASE, "(objectClass=*)", attrs, 0, &res) != LDAP_SUCCESS) {
        ldap_msgfree(res);
        return NULL;
    }
    char nbase[DNBUF], nerr[RN_ERRLEN], *suffix = NULL;
    size_t nblen = 0;
    if (dn_normalize(base, nbase, sizeof nbase, nerr, sizeof nerr) == 0)
        nblen = strlen(nbase);
    LDAPMessage *m = ldap_first_entry(d->ld, res);
    size_t n = 0;
    char **ctx = m ? values_get(d->ld, m, "namingContexts", &n) : NULL;
    for (size_t i = 0; i < n && !suffix && nblen; i++) {
        char nc[DNBUF];
        if (dn_normalize(ctx[i], nc, sizeof nc, nerr, sizeof nerr) != 0)
            continue;
        size_t l = strlen(nc);
        if (l <= nblen && strcmp(nbase + nblen - l, nc) == 0 &&
            (l == nblen || nbase[nblen - l - 1] == ','))
            suffix = xstrdup(ctx[i]);
    }
    values_free(ctx, n);
    ldap_msgfree(res);
    return suffix;
}

/* contextCSN of the naming context holding base (syncprov keeps it current; with several
 * providers there is one value per server id, joined in order). NULL when unreadable. */
static char *version_read(struct ldapdir *d, const char *base)
{
    LDAPMessage *res, *m;
    char *version = NULL;
    size_t n = 0;
    if (!d->suffix || strcmp(d->suffix_of, base) != 0) {
        free(d->suffix_of);
        free(d->suffix);
        d->suffix_of = d->suffix = NULL;
        char *s = suffix_find(d, base);
        if (!s)
            return NULL;
        d->suffix = s;                    /* a connection's server keeps its naming contexts */
        d->suffix_of = xstrdup(base);
    }
    const char *suffix = d->suffix;
    char *cattrs[] = {"contextCSN", NULL};
    if (search(d, suffix, LDAP_SCOPE_BASE, "(objectClass=*)", cattrs, 0, &res) == LDAP_SUCCESS &&
        (m = ldap_first_entry(d->ld, res)) != NULL) {
        char **csn = values_get(d->ld, m, "contextCSN", &n);
        if (n) {
            qsort(csn, n, sizeof *csn, str_cmp);
            size_t len = 1;
            for (size_t i = 0; i < n; i++)
                len += strlen(csn[i]) + 1;
            version = xcalloc(len, 1);
            for (size_t i = 0; i < n; i++) {
                if (i)
                    strcat(version, ",");
                strcat(version, csn[i]);
            }
        }
        values_free(csn, n);
    }
    ldap_msgfree(res);
    return version;
}

char *ldapdir_change_mark(struct ldapdir *d, const char *base)
{
    LDAPMessage *res, *m;
    char *rattrs[] = {"highestCommittedUSN", NULL}, *mark = NULL;
    size_t n = 0;
    /* Active Directory: the DC's update sequence number moves with every write. */
    if (search(d, "", LDAP_SCOPE_BASE, "(objectClass=*)", rattrs, 0, &res) == LDAP_SUCCESS &&
        (m = ldap_first_entry(d->ld, res)) != NULL) {
        char **usn = values_get(d->ld, m, "highestCommittedUSN", &n);
        if (n)
            mark = xasprintf("usn:%s", usn[0]);
        values_free(usn, n);
    }
    ldap_msgfree(res);
    if (mark)
        return mark;
    /* Otherwise the newest entryCSN (OpenLDAP keeps one per entry, microseconds) and
     * modifyTimestamp under base, and the entry count (a delete changes only that). */
    char *attrs[] = {"entryCSN", "modifyTimestamp", NULL};
    if (search(d, base, LDAP_SCOPE_SUBTREE, "(objectClass=*)", attrs, LDAP_NO_LIMIT, &res) !=
        LDAP_SUCCESS) {
        ldap_msgfree(res);
        return NULL;
    }
    char csn[128] = "", ts[64] = "";
    size_t count = 0;
    for (m = ldap_first_entry(d->ld, res); m; m = ldap_next_entry(d->ld, m), count++) {
        char **v = values_get(d->ld, m, "entryCSN", &n);
        if (n && strlen(v[0]) < sizeof csn && strcmp(v[0], csn) > 0)
            rn_strlcpy(csn, v[0], sizeof csn);
        values_free(v, n);
        v = values_get(d->ld, m, "modifyTimestamp", &n);
        if (n && strlen(v[0]) < sizeof ts && strcmp(v[0], ts) > 0)
            rn_strlcpy(ts, v[0], sizeof ts);
        values_free(v, n);
    }
    ldap_msgfree(res);
    return xasprintf("mark:%s|%s|%zu", csn, ts, count);
}

char *ldapdir_version_read(struct ldapdir *d, const char *base)
{
    return version_read(d, base);
}

/* A version that differs from every other load: the daemon skips a reload whose version it
 * already runs, so an unreadable contextCSN must never look unchanged. */
static char *version_stamp(void)
{
    static unsigned long seq;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return xasprintf("load-%lld.%09ld-%lu", (long long)ts.tv_sec, ts.tv_nsec,
                     __atomic_add_fetch(&seq, 1, __ATOMIC_RELAXED));
}

/* ---- the snapshot ---- */

enum dir_result ldapdir_load_snapshot(struct ldapdir *d, const struct rn_bootstrap *b,
                                      struct rn_snapshot **out, char *err, size_t errlen)
{
    *out = NULL;
    if (!b->base_dn || !*b->base_dn || !b->node || !*b->node) {
        rn_err(err, errlen, "base_dn and node must be configured");
        return DIR_FAIL;
    }
    char esc[1024], filter[1200];
    if (ldap_filter_escape(b->node, strlen(b->node), esc, sizeof esc) < 0) {
        rn_err(err, errlen, "node name too long");
        return DIR_FAIL;
    }
    snprintf(filter, sizeof filter, "(&(objectClass=relayNode)(cn=%s))", esc);
    char *attrs[] = {"cn", NULL};
    LDAPMessage *res;
    int rc = search(d, b->base_dn, LDAP_SCOPE_SUBTREE, filter, attrs, LDAP_NO_LIMIT, &res);
    if (rc != LDAP_SUCCESS) {
        ldap_msgfree(res);
        char what[DNBUF];
        snprintf(what, sizeof what, "search %s for node %s", b->base_dn, b->node);
        return ld_error(d, rc, what, err, errlen);
    }
    int count = ldap_count_entries(d->ld, res);
    if (count != 1) {
        ldap_msgfree(res);
        rn_err(err, errlen, count == 0 ? "node %s: no relayNode entry under %s"
                                       : "node %s: several relayNode entries under %s",
               b->node, b->base_dn);
        return DIR_FAIL;
    }
    char *node_dn = ldap_get_dn(d->ld, ldap_first_entry(d->ld, res));
    ldap_msgfree(res);

    struct rn_snapshot *s = snapshot_new();
    /* The version is read before the data: a snapshot labelled V then holds at least V's
     * changes. Read after, a change landing between the two reads would label old data
     * with the new version, and every later reload of that version would be skipped. */
    s->version = version_read(d, b->base_dn);
    if (!s->version)
        s->version = version_stamp();
    s->content_hash = 14695981039346656037ULL;
    hash_bytes(&s->content_hash, node_dn ? node_dn : "", node_dn ? strlen(node_dn) : 0);
    s->node_name = xstrdup(b->node);
    s->node_dn = xstrdup(node_dn ? node_dn : "");
    ldap_memfree(node_dn);
    s->site_dn = dn_parent(s->node_dn);
    enum dir_result r = DIR_FOUND;
    if (!s->site_dn) {
        r = DIR_FAIL;
        rn_err(err, errlen, "%s: a node must be the child of a relaySite", s->node_dn);
    } else {
        rc = search(d, s->site_dn, LDAP_SCOPE_BASE, "(objectClass=relaySite)", attrs, 0, &res);
        int sites = rc == LDAP_SUCCESS ? ldap_count_entries(d->ld, res) : 0;
        ldap_msgfree(res);
        if (rc != LDAP_SUCCESS && rc != LDAP_NO_SUCH_OBJECT) {
            char what[DNBUF];
            snprintf(what, sizeof what, "read site %s", s->site_dn);
            r = ld_error(d, rc, what, err, errlen);
        } else if (sites != 1) {
            r = DIR_FAIL;
            rn_err(err, errlen, "%s: the parent of node %s is not a relaySite", s->site_dn,
                   s->node_dn);
        }
    }
    struct rn_connector *v = NULL;
    size_t n = 0;
    if (r == DIR_FOUND)
        r = connectors_load(d, s, s->node_dn, false, &v, &n, err, errlen);
    if (r == DIR_FOUND)
        r = connectors_load(d, s, s->site_dn, true, &v, &n, err, errlen);
    if (r == DIR_FOUND) {
        connectors_check_conflicts(s, v, &n);
        s->connectors = v;
        s->nconnectors = n;
        v = NULL;
        r = domains_sendconns_load(d, s, b->base_dn, err, errlen);
    }
    for (size_t i = 0; v && i < n; i++)
        connector_clear(&v[i]);
    free(v);
    if (r != DIR_FOUND) {
        snapshot_unref(&s);
        return r;
    }
    policy_index(s);   /* the connector list is final: build the selection index */
    *out = s;
    return DIR_FOUND;
}

/* ---- users ---- */

/* user_filter with every %s replaced by the escaped login ("%%" is a literal %). */
static char *user_filter_build(const char *tmpl, const char *esc)
{
    size_t cap = strlen(tmpl) + 1, len = 0;
    for (const char *p = tmpl; (p = strstr(p, "%s")) != NULL; p += 2)
        cap += strlen(esc);
    char *f = xmalloc(cap);
    for (const char *p = tmpl; *p; p++) {
        if (p[0] == '%' && p[1] == 's') {
            memcpy(f + len, esc, strlen(esc));
            len += strlen(esc);
            p++;
        } else if (p[0] == '%' && p[1] == '%') {
            f[len++] = '%';
            p++;
        } else {
            f[len++] = *p;
        }
    }
    f[len] = '\0';
    return f;
}

struct dnset { char **dn, **norm; size_t n; };

static void dnset_clear(struct dnset *s)
{
    values_free(s->dn, s->n);
    values_free(s->norm, s->n);
    memset(s, 0, sizeof *s);
}

/* Groups containing any of the DNs in `level`, transitively; cycles are cut by the set of
 * groups already seen, and nesting deeper than GROUP_DEPTH_MAX is refused rather than cut,
 * because a silently truncated group list could drop a deny ACE's group. */
static enum dir_result groups_walk(struct ldapdir *d, const char *base, const char *user_dn,
                                   struct dnset *groups, char *err, size_t errlen)
{
    struct dnset level = {0};
    level.dn = xcalloc(1, sizeof *level.dn);
    level.norm = xcalloc(1, sizeof *level.norm);
    level.dn[0] = xstrdup(user_dn);
    level.norm[0] = xstrdup(user_dn);
    level.n = 1;
    enum dir_result r = DIR_FOUND;
    char *attrs[] = {"1.1", NULL};
    for (int depth = 0; level.n && r == DIR_FOUND; depth++) {
        if (depth == GROUP_DEPTH_MAX) {
            rn_err(err, errlen, "%s: groups nested deeper than %d levels", user_dn,
                   GROUP_DEPTH_MAX);
            r = DIR_FAIL;
            break;
        }
        struct dnset next = {0};
        for (size_t i = 0; i < level.n && r == DIR_FOUND; i++) {
            char esc[DNBUF * 3], filter[DNBUF * 3 + 64];
            if (ldap_filter_escape(level.dn[i], strlen(level.dn[i]), esc, sizeof esc) < 0)
                continue;
            snprintf(filter, sizeof filter, "(&(objectClass=groupOfNames)(member=%s))", esc);
            LDAPMessage *res;
            int rc = search(d, base, LDAP_SCOPE_SUBTREE, filter, attrs, LDAP_NO_LIMIT, &res);
            if (rc != LDAP_SUCCESS) {
                ldap_msgfree(res);
                char what[DNBUF + 64];
                snprintf(what, sizeof what, "search groups of %s", level.dn[i]);
                r = ld_error(d, rc, what, err, errlen);
                break;
            }
            for (LDAPMessage *m = ldap_first_entry(d->ld, res); m; m = ldap_next_entry(d->ld, m)) {
                char *gdn = ldap_get_dn(d->ld, m), norm[DNBUF], nerr[RN_ERRLEN];
                bool seen = !gdn || dn_normalize(gdn, norm, sizeof norm, nerr, sizeof nerr) != 0;
                for (size_t k = 0; !seen && k < groups->n; k++)
                    seen = strcmp(groups->norm[k], norm) == 0;
                if (!seen) {
                    groups->dn = xrealloc(groups->dn, (groups->n + 1) * sizeof *groups->dn);
                    groups->norm = xrealloc(groups->norm, (groups->n + 1) * sizeof *groups->norm);
                    groups->dn[groups->n] = xstrdup(gdn);
                    groups->norm[groups->n++] = xstrdup(norm);
                    next.dn = xrealloc(next.dn, (next.n + 1) * sizeof *next.dn);
                    next.norm = xrealloc(next.norm, (next.n + 1) * sizeof *next.norm);
                    next.dn[next.n] = xstrdup(gdn);
                    next.norm[next.n++] = xstrdup(norm);
                }
                ldap_memfree(gdn);
            }
            ldap_msgfree(res);
        }
        dnset_clear(&level);
        level = next;
    }
    dnset_clear(&level);
    return r;
}

/* user_base, or by default the parent of the relay subtree (bootstrap.h). */
static char *user_base_get(const struct rn_bootstrap *b)
{
    if (b->user_base && *b->user_base)
        return xstrdup(b->user_base);
    char *p = dn_parent(b->base_dn ? b->base_dn : "");
    return p ? p : xstrdup(b->base_dn ? b->base_dn : "");
}

/* ldapdir_user_token and ldapdir_login_token; allow_dn says whether a name that parses as a
 * DN is taken as one (base search) or is only ever a value for user_filter. */
static enum dir_result user_token(struct ldapdir *d, const struct rn_bootstrap *b,
                                  const char *login_or_dn, bool allow_dn, struct token *t,
                                  char ***addresses, size_t *naddresses, char *err,
                                  size_t errlen)
{
    *addresses = NULL;
    *naddresses = 0;
    char norm[DNBUF], nerr[RN_ERRLEN];
    bool by_dn = allow_dn && strchr(login_or_dn, '=') &&
                 dn_normalize(login_or_dn, norm, sizeof norm, nerr, sizeof nerr) == 0;
    char *base = user_base_get(b), *filter;
    char *attrs[] = {"mail", "relayMailAlias", NULL};
    LDAPMessage *res;
    int rc;
    if (by_dn) {
        filter = xstrdup("(objectClass=*)");
        rc = search(d, login_or_dn, LDAP_SCOPE_BASE, filter, attrs, 2, &res);
    } else {
        char esc[1024];
        if (ldap_filter_escape(login_or_dn, strlen(login_or_dn), esc, sizeof esc) < 0) {
            free(base);
            rn_err(err, errlen, "login too long");
            return DIR_NOTFOUND;
        }
        filter = user_filter_build(b->user_filter && *b->user_filter ? b->user_filter
                                                                     : DEFAULT_USER_FILTER, esc);
        rc = search(d, base, LDAP_SCOPE_SUBTREE, filter, attrs, 2, &res);
    }
    enum dir_result r = DIR_FOUND;
    if (rc == LDAP_NO_SUCH_OBJECT || rc == LDAP_SIZELIMIT_EXCEEDED ||
        (rc == LDAP_SUCCESS && ldap_count_entries(d->ld, res) != 1)) {
        rn_err(err, errlen, "%s: %s", login_or_dn, rc == LDAP_SIZELIMIT_EXCEEDED ||
               (rc == LDAP_SUCCESS && ldap_count_entries(d->ld, res) > 1)
               ? "more than one directory entry matches" : "no such user");
        r = DIR_NOTFOUND;
    } else if (rc != LDAP_SUCCESS) {
        char what[DNBUF];
        snprintf(what, sizeof what, "search %s %s", by_dn ? login_or_dn : base, filter);
        r = ld_error(d, rc, what, err, errlen);
    }
    free(filter);
    if (r != DIR_FOUND) {
        ldap_msgfree(res);
        free(base);
        return r;
    }
    LDAPMessage *m = ldap_first_entry(d->ld, res);
    char *user_dn = ldap_get_dn(d->ld, m);
    size_t nmail, nalias;
    char **mail = values_get(d->ld, m, "mail", &nmail);
    char **alias = values_get(d->ld, m, "relayMailAlias", &nalias);
    ldap_msgfree(res);

    struct dnset groups = {0};
    r = groups_walk(d, base, user_dn, &groups, err, errlen);
    if (r == DIR_FOUND &&
        token_init_user(t, login_or_dn, user_dn, (const char *const *)groups.dn, groups.n) != 0) {
        rn_err(err, errlen, "%s: the directory returned a DN that does not parse", user_dn);
        r = DIR_FAIL;
    }
    if (r == DIR_FOUND) {
        char **addr = xcalloc(nmail + nalias + 1, sizeof *addr);
        for (size_t i = 0; i < nmail; i++)
            addr[i] = mail[i];
        for (size_t i = 0; i < nalias; i++)
            addr[nmail + i] = alias[i];
        free(mail);
        free(alias);
        *addresses = addr;
        *naddresses = nmail + nalias;
    } else {
        values_free(mail, nmail);
        values_free(alias, nalias);
    }
    dnset_clear(&groups);
    ldap_memfree(user_dn);
    free(base);
    return r;
}

enum dir_result ldapdir_user_token(struct ldapdir *d, const struct rn_bootstrap *b,
                                   const char *login_or_dn, struct token *t, char ***addresses,
                                   size_t *naddresses, char *err, size_t errlen)
{
    return user_token(d, b, login_or_dn, true, t, addresses, naddresses, err, errlen);
}

enum dir_result ldapdir_login_token(struct ldapdir *d, const struct rn_bootstrap *b,
                                    const char *login, struct token *t, char ***addresses,
                                    size_t *naddresses, char *err, size_t errlen)
{
    return user_token(d, b, login, false, t, addresses, naddresses, err, errlen);
}
