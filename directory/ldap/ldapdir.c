/* ldapdir: the connection to the directory, the only place the node's and relayctl's LDAP
 * sessions are opened and bound (simple bind with the bootstrap's password file, or SASL
 * EXTERNAL) over TLS when the bootstrap asks for it (ldaps://, StartTLS; ldapdir_connect), and the small libldap helpers the other files of directory/ldap share
 * (ldapdir-private.h): a search with the bootstrap timeout, the error text and its result
 * class, attribute values, a DN's parent, and a result entry as a dir_entry for the entry
 * parser. The loader is ldapload.c, the user and group lookups ldapuser.c.
 * A server that cannot be reached is DIR_TEMPFAIL (the node keeps its last snapshot and AUTH
 * answers 454); a refusal is DIR_FAIL. Calls block: the node runs them on a worker thread.
 * Passwords are read, used and wiped here, never copied or logged. */
#include <ldap.h>
#include "directory/ldap/ldapdir.h"
#include "directory/ldap/ldapdir-private.h"
#include "directory/base/util.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

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
enum dir_result ldapdir_error(struct ldapdir *d, int rc, const char *what, char *err,
                              size_t errlen)
{
    char *diag = NULL;
    if (d->ld)
        ldap_get_option(d->ld, LDAP_OPT_DIAGNOSTIC_MESSAGE, &diag);
    /* LDAP_CONNECT_ERROR's diagnostic is the TLS failure (certificate, host name). */
    bool showdiag = diag && *diag && (!rc_is_temporary(rc) || rc == LDAP_CONNECT_ERROR);
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

/* TLS for this handle only (LDAP_OPT_X_TLS_NEWCTX), whatever ldap.conf or LDAPTLS_*
 * say: the peer certificate must chain to ldap_ca_file (or the system store) and name the
 * host of the URI (libldap checks the name whenever a certificate is demanded), TLS 1.2 at
 * least. Applies to ldaps:// and to StartTLS. -1 with err. */
static int connect_tls_options(LDAP *ld, const struct rn_bootstrap *b, char *err, size_t errlen)
{
    int demand = LDAP_OPT_X_TLS_DEMAND, tls12 = LDAP_OPT_X_TLS_PROTOCOL_TLS1_2, client = 0;
    if (ldap_set_option(ld, LDAP_OPT_X_TLS_REQUIRE_CERT, &demand) != LDAP_OPT_SUCCESS ||
        ldap_set_option(ld, LDAP_OPT_X_TLS_PROTOCOL_MIN, &tls12) != LDAP_OPT_SUCCESS)
        return rn_err(err, errlen, "uri %s: cannot set the TLS options", b->uri);
    if (b->ldap_ca_file && *b->ldap_ca_file &&
        ldap_set_option(ld, LDAP_OPT_X_TLS_CACERTFILE, b->ldap_ca_file) != LDAP_OPT_SUCCESS)
        return rn_err(err, errlen, "ldap_ca_file %s: not accepted", b->ldap_ca_file);
    if (ldap_set_option(ld, LDAP_OPT_X_TLS_NEWCTX, &client) != LDAP_OPT_SUCCESS)
        return rn_err(err, errlen, "ldap_ca_file %s: cannot make a TLS context (unreadable, or "
                      "no PEM certificate in it)",
                      b->ldap_ca_file && *b->ldap_ca_file ? b->ldap_ca_file : "(system)");
    return 0;
}

enum dir_result ldapdir_connect(const struct rn_bootstrap *b, LDAP **out, char *err,
                                size_t errlen)
{
    *out = NULL;
    /* StartTLS mixed with ldaps:// or ldapi://, or an unknown scheme: ambiguous, refused. */
    if (bootstrap_directory_security(b) == BOOT_DIR_UNKNOWN) {
        rn_err(err, errlen, "uri %s: %s", b->uri, b->ldap_starttls
               ? "ldap_starttls = yes needs every URI to be ldap://"
               : "every URI must be ldap://, ldaps:// or ldapi://");
        return DIR_FAIL;
    }
    LDAP *ld = NULL;
    int rc = ldap_initialize(&ld, b->uri);
    if (rc != LDAP_SUCCESS) {
        rn_err(err, errlen, "uri %s: %s", b->uri, ldap_err2string(rc));
        return DIR_FAIL;
    }
    struct timeval tv = {b->ldap_timeout, 0};
    int v3 = LDAP_VERSION3;
    ldap_set_option(ld, LDAP_OPT_PROTOCOL_VERSION, &v3);
    ldap_set_option(ld, LDAP_OPT_REFERRALS, LDAP_OPT_OFF);
    ldap_set_option(ld, LDAP_OPT_NETWORK_TIMEOUT, &tv);
    ldap_set_option(ld, LDAP_OPT_TIMEOUT, &tv);
    if (connect_tls_options(ld, b, err, errlen) < 0) {
        ldap_unbind_ext_s(ld, NULL, NULL);
        return DIR_FAIL;
    }
    if (b->ldap_starttls) {
        /* RFC 4513 §3: before any bind, so no password or query crosses in clear. */
        rc = ldap_start_tls_s(ld, NULL, NULL);
        if (rc != LDAP_SUCCESS) {
            char *diag = NULL;
            ldap_get_option(ld, LDAP_OPT_DIAGNOSTIC_MESSAGE, &diag);
            /* "cannot reach" as for any bind when the server is not there (ldapdir_open). */
            rn_err(err, errlen, "%s %s: %s%s%s%s%s", rc_is_temporary(rc) && rc != LDAP_CONNECT_ERROR
                   ? "cannot reach" : "StartTLS to", b->uri, ldap_err2string(rc),
                   diag && *diag ? " (" : "", diag && *diag ? diag : "", diag && *diag ? ")" : "",
                   rc == LDAP_CONNECT_ERROR ? ": the certificate is not trusted (ldap_ca_file) "
                   "or does not name the URI's host" : "");
            ldap_memfree(diag);
            ldap_unbind_ext_s(ld, NULL, NULL);
            return rc_is_temporary(rc) ? DIR_TEMPFAIL : DIR_FAIL;
        }
    }
    *out = ld;
    return DIR_FOUND;
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
    enum dir_result cr = ldapdir_connect(b, &d->ld, err, errlen);
    if (cr != DIR_FOUND) {
        ldapdir_free(&d);
        return cr;
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
        enum dir_result r = ldapdir_error(d, rc, what, err, errlen);
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

int ldapdir_search(struct ldapdir *d, const char *base, int scope, const char *filter,
                   char **attrs, int sizelimit, LDAPMessage **res)
{
    struct timeval tv = d->timeout;
    *res = NULL;
    return ldap_search_ext_s(d->ld, base, scope, filter, attrs, 0, NULL, NULL, &tv, sizelimit,
                             res);
}

char **ldapdir_values(LDAP *ld, LDAPMessage *m, const char *a, size_t *n)
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

void ldapdir_values_free(char **v, size_t n)
{
    for (size_t i = 0; v && i < n; i++)
        free(v[i]);
    free(v);
}

char *ldapdir_dn_parent(const char *dn)
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

int ldapdir_entry_read(LDAP *ld, LDAPMessage *m, const char *skip, bool strict,
                       struct dir_entry *e, char *err, size_t errlen)
{
    char *dn = ldap_get_dn(ld, m);
    dir_entry_init(e, dn ? dn : "");
    ldap_memfree(dn);
    int rc = 0;
    BerElement *ber = NULL;
    for (char *a = ldap_first_attribute(ld, m, &ber); a; a = ldap_next_attribute(ld, m, ber)) {
        if (rc == 0 && !(skip && rn_strieq(a, skip))) {
            struct berval **vals = ldap_get_values_len(ld, m, a);
            for (size_t i = 0; vals && vals[i] && rc == 0; i++) {
                if (strict && vals[i]->bv_len > LDAPDIR_VALUE_MAX)
                    rc = rn_err(err, errlen, "%s: value of %lu octets, longer than %u", a,
                                (unsigned long)vals[i]->bv_len, LDAPDIR_VALUE_MAX);
                else if (strict && memchr(vals[i]->bv_val, '\0', vals[i]->bv_len))
                    rc = rn_err(err, errlen, "%s: value holds a NUL octet", a);
                else {
                    /* Not strict: the relay schema's attributes are strings, and a value is
                     * kept up to its first NUL, as the loader's own reads always did. */
                    char *v = xstrndup(vals[i]->bv_val, vals[i]->bv_len);
                    dir_entry_add(e, a, v);
                    free(v);
                }
            }
            ldap_value_free_len(vals);
        }
        ldap_memfree(a);
    }
    ber_free(ber, 0);
    return rc;
}

void ldapdir_entry_from_msg(LDAP *ld, LDAPMessage *m, struct dir_entry *e)
{
    ldapdir_entry_read(ld, m, NULL, false, e, NULL, 0);
}
