/* saslauth: the libsasl2 server side. The only file that includes <sasl/sasl.h>.
 *
 * Configuration is given entirely through callbacks, so no /etc/sasl2 file or sasldb is
 * consulted: GETOPT pins mech_list to PLAIN LOGIN and names an auxprop plugin that does not
 * exist (no password store is ever read), CANON_USER keeps the login exactly as sent
 * (validated), and SERVER_USERDB_CHECKPASS does the directory lookup and bind. */
#include "node/saslauth.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sasl/sasl.h>
#include <sasl/saslutil.h>

#include "directory/ldapdir.h"
#include "directory/util.h"

#define LOGIN_MAX 256
/* libsasl2 stores every callback as int (*)(void); the void (*)(void) step tells the compiler
 * the cast is deliberate. */
#define CB(f) ((int (*)(void))(void (*)(void))(f))

struct saslauth {
    const struct rn_bootstrap *b;
    sasl_conn_t *conn;
    bool started;
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
        *result = "PLAIN LOGIN";
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

int saslauth_init(char *err, size_t errlen)
{
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
    r = ldapdir_login_token(d, a->b, user, &t, &addrs, &naddrs, err, sizeof err);
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
    token_clear(&a->tok);
    for (size_t i = 0; i < a->naddrs; i++)
        free(a->addrs[i]);
    free(a->addrs);
    a->tok = t;
    a->addrs = addrs;
    a->naddrs = naddrs;
    rn_strlcpy(a->login, user, sizeof a->login);
    a->have_identity = true;
    return SASL_OK;
}

struct saslauth *saslauth_new(const struct rn_bootstrap *b, const char *fqdn, char *err,
                              size_t errlen)
{
    struct saslauth *a = xcalloc(1, sizeof *a);
    a->b = b;
    a->cbs = xcalloc(3, sizeof *a->cbs);
    a->cbs[0] = (sasl_callback_t){SASL_CB_SERVER_USERDB_CHECKPASS,
                                  CB(cb_checkpass), a};
    a->cbs[1] = (sasl_callback_t){SASL_CB_CANON_USER, CB(cb_canon), a};
    a->cbs[2] = (sasl_callback_t){SASL_CB_LIST_END, NULL, NULL};
    int rc = sasl_server_new("smtp", fqdn, NULL, NULL, NULL, a->cbs, 0, &a->conn);
    if (rc != SASL_OK) {
        rn_err(err, errlen, "sasl_server_new: %s", sasl_errstring(rc, NULL, NULL));
        free(a->cbs);
        free(a);
        return NULL;
    }
    /* No security layer (TLS is the layer); no anonymous mechanism. */
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
    token_clear(&a->tok);
    for (size_t i = 0; i < a->naddrs; i++)
        free(a->addrs[i]);
    free(a->addrs);
    free(a->cbs);
    explicit_bzero(a, sizeof *a);
    free(a);
    *ap = NULL;
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
        if (!rn_strieq(mech, "PLAIN") && !rn_strieq(mech, "LOGIN")) {
            free(in);
            snprintf(why, whylen, "mechanism not offered");
            return SASLAUTH_BADMECH;
        }
        a->started = true;
        rc = sasl_server_start(a->conn, mech, have_in ? in : NULL, have_in ? inlen : 0, &out,
                               &outlen);
    } else {
        rc = a->started ? sasl_server_step(a->conn, in, inlen, &out, &outlen) : SASL_BADPROT;
    }
    explicit_bzero(in, len + 1);
    free(in);
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
