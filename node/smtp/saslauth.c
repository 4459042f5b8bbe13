/* saslauth: the libsasl2 server side. The only file that includes <sasl/sasl.h>.
 *
 * Configuration is given entirely through callbacks, so no /etc/sasl2 file or sasldb is
 * consulted: GETOPT pins mech_list to PLAIN LOGIN GSSAPI and names an auxprop plugin that
 * does not exist (no password store is ever read), CANON_USER keeps the login exactly as sent
 * (validated), and SERVER_USERDB_CHECKPASS does the directory lookup and bind. Each exchange
 * accepts only the mechanisms its connector offers (saslauth_new's set), checked before
 * libsasl2 sees the name.
 *
 * GSSAPI (gssapiv2 plugin, Debian libsasl2-modules-gssapi-mit) reads the service key from
 * the default keytab, which KRB5_KTNAME names: set from gssapi_keytab by saslauth_init,
 * before libsasl2 and any thread start, together with the node's Kerberos default realm.
 * After the plugin's SASL_OK its authid (the client's principal, without "@REALM" when that
 * is the node's Kerberos default realm) is mapped to a directory user here, on the worker
 * thread: only principals of gssapi_realm, by their local part and user_filter. */
#include "node/smtp/saslauth.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sasl/sasl.h>
#include <sasl/saslutil.h>
#include <krb5.h>

#include "directory/ldap/ldapdir.h"
#include "directory/base/util.h"

#define LOGIN_MAX 256
/* libsasl2 stores every callback as int (*)(void); the void (*)(void) step tells the compiler
 * the cast is deliberate. */
#define CB(f) ((int (*)(void))(void (*)(void))(f))

struct saslauth {
    const struct rn_bootstrap *b;
    struct rn_snapshot *snap;    /* own reference or NULL: the one the token will meet (the
                                  * AD profile maps its Exchange groups' SIDs) */
    sasl_conn_t *conn;
    unsigned mechs;              /* SASLAUTH_* accepted by this exchange */
    unsigned mech;               /* the one started */
    bool started;
    bool login_user_seen;        /* LOGIN: the username step has been checked */
    /* What the checkpass callback found (valid after SASL_OK). */
    bool have_identity;
    char login[LOGIN_MAX + 1];
    struct token tok;
    char **addrs; size_t naddrs;
    char why[640];               /* the callback's reason, for logs */
    bool tempfail;
    sasl_callback_t *cbs;        /* owned: libsasl2 keeps a pointer to it */
};

/* ---- process-wide ---- */

static int cb_getopt(void *context, const char *plugin, const char *option, const char **result,
                     unsigned *len)
{
    if (strcmp(option, "mech_list") == 0)
        *result = "PLAIN LOGIN GSSAPI";   /* each exchange narrows it (saslauth_new) */
    else if (strcmp(option, "auxprop_plugin") == 0)
        *result = "relaynode-none";
    else if (strcmp(option, "pwcheck_method") == 0)
        *result = "auxprop";       /* the checkpass callback runs before any method */
    else
        return SASL_FAIL;
    if (len)
        *len = (unsigned)strlen(*result);
    return SASL_OK;
}

static int cb_log(void *context, int level, const char *message)
{
    return SASL_OK;              /* libsasl2's messages may carry user names: not logged */
}

static void *mutex_alloc(void)
{
    pthread_mutex_t *m = xmalloc(sizeof *m);
    pthread_mutex_init(m, NULL);
    return m;
}
static int mutex_lock(void *m) { return pthread_mutex_lock(m) == 0 ? SASL_OK : SASL_FAIL; }
static int mutex_unlock(void *m) { return pthread_mutex_unlock(m) == 0 ? SASL_OK : SASL_FAIL; }
static void mutex_free(void *m)
{
    pthread_mutex_destroy(m);
    free(m);
}

static sasl_callback_t global_cbs[] = {
    {SASL_CB_GETOPT, CB(cb_getopt), NULL},
    {SASL_CB_LOG, CB(cb_log), NULL},
    {SASL_CB_LIST_END, NULL, NULL},
};

/* The node's Kerberos default realm (krb5.conf), read once by saslauth_init when GSSAPI is
 * configured: the gssapiv2 plugin names a client of that realm without "@REALM". "" when
 * there is none (such names are then refused). */
static char default_realm[256];

int saslauth_init(const struct rn_bootstrap *b, char *err, size_t errlen)
{
    if (b && saslauth_gssapi_configured(b)) {
        if (setenv("KRB5_KTNAME", b->gssapi_keytab, 1) != 0)
            return rn_err(err, errlen, "setenv KRB5_KTNAME failed");
        krb5_context ctx = NULL;
        char *def = NULL;
        if (krb5_init_context(&ctx) == 0 && krb5_get_default_realm(ctx, &def) == 0)
            rn_strlcpy(default_realm, def, sizeof default_realm);
        if (def)
            krb5_free_default_realm(ctx, def);
        if (ctx)
            krb5_free_context(ctx);
    }
    sasl_set_mutex(mutex_alloc, mutex_lock, mutex_unlock, mutex_free);
    int rc = sasl_server_init(global_cbs, "relaynode");
    if (rc != SASL_OK)
        return rn_err(err, errlen, "sasl_server_init: %s", sasl_errstring(rc, NULL, NULL));
    return 0;
}

void saslauth_done(void)
{
    sasl_server_done();
}

bool saslauth_gssapi_configured(const struct rn_bootstrap *b)
{
    return b->gssapi_keytab && *b->gssapi_keytab;
}

static const struct {
    unsigned bit;
    const char *name;
} mech_names[] = {{SASLAUTH_GSSAPI, "GSSAPI"}, {SASLAUTH_PLAIN, "PLAIN"},
                  {SASLAUTH_LOGIN, "LOGIN"}};

unsigned saslauth_mech_bit(const char *name)
{
    for (size_t i = 0; i < sizeof mech_names / sizeof *mech_names; i++)
        if (rn_strieq(name, mech_names[i].name))
            return mech_names[i].bit;
    return 0;
}

void saslauth_mech_names(unsigned mechs, char *buf, size_t len)
{
    size_t n = 0;
    if (len)
        buf[0] = '\0';
    for (size_t i = 0; i < sizeof mech_names / sizeof *mech_names; i++) {
        if (!(mechs & mech_names[i].bit))
            continue;
        int w = snprintf(buf + n, len - n, "%s%s", n ? " " : "", mech_names[i].name);
        if (w < 0 || (size_t)w >= len - n)
            return;
        n += (size_t)w;
    }
}

/* ---- per exchange ---- */

/* A login may be a uid, an address or a principal name: printable, no NUL, bounded. */
static bool login_ok(const char *in, unsigned len)
{
    if (len == 0 || len > LOGIN_MAX)
        return false;
    for (unsigned i = 0; i < len; i++) {
        unsigned char c = (unsigned char)in[i];
        if (c < 0x21 || c == 0x7f)
            return false;
    }
    return true;
}

static int cb_canon(sasl_conn_t *conn, void *context, const char *in, unsigned inlen,
                    unsigned flags, const char *realm, char *out, unsigned out_max,
                    unsigned *out_len)
{
    if (!login_ok(in, inlen) || inlen >= out_max)
        return SASL_BADPROT;
    memcpy(out, in, inlen);
    out[inlen] = '\0';
    *out_len = inlen;
    return SASL_OK;
}

/* The identity a successful login found (token and the user's own addresses, both moved
 * into a), replacing any earlier one. */
static void identity_set(struct saslauth *a, struct token *t, char **addrs, size_t naddrs)
{
    token_clear(&a->tok);
    for (size_t i = 0; i < a->naddrs; i++)
        free(a->addrs[i]);
    free(a->addrs);
    a->tok = *t;
    a->addrs = addrs;
    a->naddrs = naddrs;
    a->have_identity = true;
}

static int cb_checkpass(sasl_conn_t *conn, void *context, const char *user, const char *pass,
                        unsigned passlen, struct propctx *propctx)
{
    struct saslauth *a = context;
    if (!login_ok(user, (unsigned)strlen(user))) {
        snprintf(a->why, sizeof a->why, "login refused before any lookup (length or bytes)");
        return SASL_NOUSER;
    }
    char err[512];
    struct ldapdir *d;
    enum dir_result r = ldapdir_open(a->b, &d, err, sizeof err);
    if (r != DIR_FOUND) {
        snprintf(a->why, sizeof a->why, "directory: %s", err);
        a->tempfail = true;
        return SASL_UNAVAIL;
    }
    struct token t = {0};
    char **addrs = NULL;
    size_t naddrs = 0;
    r = ldapdir_login_token(d, a->b, a->snap, user, &t, &addrs, &naddrs, err, sizeof err);
    ldapdir_free(&d);
    if (r != DIR_FOUND) {
        snprintf(a->why, sizeof a->why, "lookup: %s", err);
        a->tempfail = r == DIR_TEMPFAIL;
        return r == DIR_TEMPFAIL ? SASL_UNAVAIL : SASL_NOUSER;
    }
    r = ldapdir_check_password(a->b, t.user_dn, pass, passlen, err, sizeof err);
    if (r != DIR_FOUND) {
        snprintf(a->why, sizeof a->why, "%s", err);
        a->tempfail = r == DIR_TEMPFAIL;
        token_clear(&t);
        for (size_t i = 0; i < naddrs; i++)
            free(addrs[i]);
        free(addrs);
        return r == DIR_TEMPFAIL ? SASL_UNAVAIL : SASL_BADAUTH;
    }
    identity_set(a, &t, addrs, naddrs);
    rn_strlcpy(a->login, user, sizeof a->login);
    return SASL_OK;
}

struct saslauth *saslauth_new(const struct rn_bootstrap *b, struct rn_snapshot *snap,
                              const char *fqdn, unsigned mechs, char *err, size_t errlen)
{
    if (!saslauth_gssapi_configured(b))
        mechs &= ~(unsigned)SASLAUTH_GSSAPI;
    const char *service = b->gssapi_service && *b->gssapi_service ? b->gssapi_service : "smtp";
    struct saslauth *a = xcalloc(1, sizeof *a);
    a->b = b;
    a->snap = snap ? snapshot_ref(snap) : NULL;
    a->mechs = mechs;
    a->cbs = xcalloc(3, sizeof *a->cbs);
    a->cbs[0] = (sasl_callback_t){SASL_CB_SERVER_USERDB_CHECKPASS,
                                  CB(cb_checkpass), a};
    a->cbs[1] = (sasl_callback_t){SASL_CB_CANON_USER, CB(cb_canon), a};
    a->cbs[2] = (sasl_callback_t){SASL_CB_LIST_END, NULL, NULL};
    int rc = sasl_server_new(service, fqdn, NULL, NULL, NULL, a->cbs, 0, &a->conn);
    if (rc != SASL_OK) {
        rn_err(err, errlen, "sasl_server_new: %s", sasl_errstring(rc, NULL, NULL));
        snapshot_unref(&a->snap);
        free(a->cbs);
        free(a);
        return NULL;
    }
    /* No security layer (TLS is the layer): GSSAPI's RFC 4752 §3.1 final message offers
     * "no security layer" only, so the session stays plain or under STARTTLS after AUTH.
     * No anonymous mechanism. */
    sasl_security_properties_t sp = {.min_ssf = 0, .max_ssf = 0, .maxbufsize = 0,
                                     .security_flags = SASL_SEC_NOANONYMOUS};
    sasl_setprop(a->conn, SASL_SEC_PROPS, &sp);
    return a;
}

void saslauth_free(struct saslauth **ap)
{
    struct saslauth *a = *ap;
    if (!a)
        return;
    if (a->conn)
        sasl_dispose(&a->conn);
    snapshot_unref(&a->snap);
    token_clear(&a->tok);
    for (size_t i = 0; i < a->naddrs; i++)
        free(a->addrs[i]);
    free(a->addrs);
    free(a->cbs);
    explicit_bzero(a, sizeof *a);
    free(a);
    *ap = NULL;
}

/* After GSSAPI's SASL_OK: principal user@REALM -> the directory user "user" (user_filter,
 * exactly one match), only for REALM == gssapi_realm; a principal with an instance
 * ("a/b@R") or escapes is no user. Sets the identity or why (tempfail for the directory). */
static enum saslauth_rc gssapi_identity(struct saslauth *a, char *why, size_t whylen)
{
    /* The plugin's authid (canonicalised by cb_canon): "user@REALM", or "user" when REALM is
     * the node's default realm. An authzid other than the authid was already refused by
     * libsasl2's default proxy policy. */
    const void *v = NULL;
    if (sasl_getprop(a->conn, SASL_AUTHUSER, &v) != SASL_OK || !v) {
        snprintf(why, whylen, "GSSAPI: no authentication identity");
        return SASLAUTH_BAD;
    }
    const char *realm = a->b->gssapi_realm ? a->b->gssapi_realm : "";
    if (!*realm) {
        snprintf(why, whylen, "GSSAPI: gssapi_realm is not set, every principal is refused");
        return SASLAUTH_BAD;
    }
    char principal[LOGIN_MAX + 1];
    rn_strlcpy(principal, v, sizeof principal);
    char *at = strrchr(principal, '@');
    if (at) {
        if (strcmp(at + 1, realm) != 0) {
            snprintf(why, whylen, "GSSAPI: principal %.300s is not in realm %.100s",
                     principal, realm);
            return SASLAUTH_BAD;
        }
        *at = '\0';
    } else {
        if (!default_realm[0]) {
            snprintf(why, whylen, "GSSAPI: the node has no Kerberos default realm");
            return SASLAUTH_BAD;
        }
        if (strcmp(default_realm, realm) != 0) {
            snprintf(why, whylen, "GSSAPI: principal %.300s of the default realm, which is not "
                     "%.100s", principal, realm);
            return SASLAUTH_BAD;
        }
    }
    /* A user is name@REALM: an instance ("host/x@R") or an escaped character is no user. */
    if (!login_ok(principal, (unsigned)strlen(principal)) || strpbrk(principal, "/\\@")) {
        snprintf(why, whylen, "GSSAPI: principal refused before any lookup (instance or bytes)");
        return SASLAUTH_BAD;
    }
    char err[512];
    struct ldapdir *d;
    enum dir_result r = ldapdir_open(a->b, &d, err, sizeof err);
    if (r != DIR_FOUND) {
        snprintf(why, whylen, "directory: %s", err);
        return SASLAUTH_TEMP;
    }
    struct token t = {0};
    char **addrs = NULL;
    size_t naddrs = 0;
    r = ldapdir_login_token(d, a->b, a->snap, principal, &t, &addrs, &naddrs, err, sizeof err);
    ldapdir_free(&d);
    if (r != DIR_FOUND) {
        snprintf(why, whylen, "GSSAPI %.200s@%.100s: lookup: %s", principal, realm, err);
        return r == DIR_TEMPFAIL ? SASLAUTH_TEMP : SASLAUTH_BAD;
    }
    identity_set(a, &t, addrs, naddrs);
    snprintf(a->login, sizeof a->login, "%.200s@%.54s", principal, realm);
    return SASLAUTH_OK;
}

static enum saslauth_rc map_rc(struct saslauth *a, int rc, char *why, size_t whylen)
{
    switch (rc) {
    case SASL_OK:
        if (!a->have_identity) {      /* never without our own check having run */
            snprintf(why, whylen, "mechanism finished without the directory check");
            return SASLAUTH_BAD;
        }
        return SASLAUTH_OK;
    case SASL_CONTINUE:
        return SASLAUTH_CONTINUE;
    default:
        break;
    }
    /* Our directory check ran and said no (libsasl2 may then try its own password checks
     * and report their failure, e.g. SASL_NOMECH for the absent auxprop store): its answer
     * is the one that counts. */
    if (a->why[0]) {
        snprintf(why, whylen, "%s", a->why);
        return a->tempfail ? SASLAUTH_TEMP : SASLAUTH_BAD;
    }
    /* The password was right but libsasl2 refused what followed, i.e. a PLAIN authzid
     * other than the user (no proxy authorization here): a failed AUTH (535), not an
     * unknown mechanism, and the identity found is not kept. */
    if (a->have_identity) {
        a->have_identity = false;
        snprintf(why, whylen, "authorization identity refused: %s",
                 sasl_errstring(rc, NULL, NULL));
        return SASLAUTH_BAD;
    }
    switch (rc) {
    case SASL_NOMECH: case SASL_TOOWEAK: case SASL_ENCRYPT:
        snprintf(why, whylen, "mechanism not available");
        return SASLAUTH_BADMECH;
    case SASL_UNAVAIL: case SASL_TRYAGAIN:
        snprintf(why, whylen, "%s", a->why[0] ? a->why : "directory unavailable");
        return SASLAUTH_TEMP;
    default:
        if (a->tempfail) {
            snprintf(why, whylen, "%s", a->why);
            return SASLAUTH_TEMP;
        }
        snprintf(why, whylen, "%s", a->why[0] ? a->why : sasl_errstring(rc, NULL, NULL));
        return SASLAUTH_BAD;
    }
}

/* Cyrus's LOGIN plugin leaks its password buffer when cb_canon refuses the username at the
 * password step (found by tests/fuzz/fuzz_auth), so a client could grow the node with AUTH
 * LOGIN, a bad username and any password, over and over. The LOGIN username (the initial
 * response, else the reply to "Username:") is checked here, at its own step: true when it
 * cannot be a login and the exchange must fail before any password is asked for. */
static bool login_user_refused(struct saslauth *a, bool first, bool have_in, const char *in,
                               unsigned inlen)
{
    if (a->mech != SASLAUTH_LOGIN || a->login_user_seen || (first && !have_in))
        return false;
    a->login_user_seen = true;
    return !login_ok(in, inlen);
}

enum saslauth_rc saslauth_step(struct saslauth *a, const char *mech, const char *line,
                               size_t len, char *challenge, size_t chlen, char *why,
                               size_t whylen)
{
    if (whylen)
        why[0] = '\0';
    if (chlen)
        challenge[0] = '\0';
    if (!mech && len == 1 && line[0] == '*') {
        snprintf(why, whylen, "cancelled by the client");
        return SASLAUTH_CANCELLED;
    }
    /* Decode the client's base64 ("=" is an empty initial response, RFC 4954 §4). */
    char *in = xmalloc(len + 1);
    unsigned inlen = 0;
    bool have_in = line != NULL;
    if (have_in && !(mech && len == 1 && line[0] == '=')) {
        if (len > SASLAUTH_LINE_MAX ||
            sasl_decode64(line, (unsigned)len, in, (unsigned)len + 1, &inlen) != SASL_OK) {
            free(in);
            snprintf(why, whylen, "response is not base64");
            return SASLAUTH_SYNTAX;
        }
    }
    const char *out = NULL;
    unsigned outlen = 0;
    int rc;
    if (mech) {
        unsigned bit = saslauth_mech_bit(mech);
        if (!bit || !(a->mechs & bit)) {
            free(in);
            snprintf(why, whylen, "mechanism not offered");
            return SASLAUTH_BADMECH;
        }
        a->started = true;
        a->mech = bit;
    }
    if (login_user_refused(a, mech != NULL, have_in, in, inlen)) {
        explicit_bzero(in, len + 1);
        free(in);
        snprintf(why, whylen, "login refused before any lookup (length or bytes)");
        return SASLAUTH_BAD;
    }
    if (mech) {
        rc = sasl_server_start(a->conn, mech, have_in ? in : NULL, have_in ? inlen : 0, &out,
                               &outlen);
    } else {
        rc = a->started ? sasl_server_step(a->conn, in, inlen, &out, &outlen) : SASL_BADPROT;
    }
    explicit_bzero(in, len + 1);
    free(in);
    /* GSSAPI never calls checkpass: the identity is mapped here, before map_rc's check. */
    if (rc == SASL_OK && a->mech == SASLAUTH_GSSAPI) {
        enum saslauth_rc g = gssapi_identity(a, why, whylen);
        if (g != SASLAUTH_OK)
            return g;
    }
    enum saslauth_rc r = map_rc(a, rc, why, whylen);
    if (r == SASLAUTH_CONTINUE) {
        unsigned n = 0;
        if (sasl_encode64(out ? out : "", outlen, challenge, (unsigned)chlen, &n) != SASL_OK) {
            snprintf(why, whylen, "challenge too long");
            return SASLAUTH_BAD;
        }
    }
    return r;
}

void saslauth_take(struct saslauth *a, char *login, size_t loginlen, struct token *t,
                   char ***addresses, size_t *naddresses)
{
    rn_strlcpy(login, a->login, loginlen);
    *t = a->tok;
    memset(&a->tok, 0, sizeof a->tok);
    *addresses = a->addrs;
    *naddresses = a->naddrs;
    a->addrs = NULL;
    a->naddrs = 0;
    a->have_identity = false;
}
