/* saslauth: SMTP AUTH (RFC 4954) through Cyrus SASL (libsasl2). PLAIN and LOGIN have the
 * password checked by the directory: the login is looked up with the bootstrap's user_filter
 * (value escaped per RFC 4515, exactly one match) and the password verified by binding as
 * that entry (ldapdir_check_password). GSSAPI (Kerberos, RFC 4752) is available when the
 * bootstrap names a keytab (gssapi_keytab): the client's principal user@REALM is accepted
 * only if REALM is gssapi_realm, and its local part is looked up with user_filter the same
 * way; no password is involved. No SASL security layer is ever negotiated (max_ssf 0): the
 * session goes on in plaintext or under STARTTLS. Mechanisms that need the password or a
 * hash on our side (CRAM-MD5, DIGEST-MD5, SCRAM) cannot be backed by a bind and are never
 * offered.
 * Steps may block on the directory: saslauth_step runs on a worker thread, one step of one
 * exchange at a time. Nothing here logs, and err strings never hold a password. */
#ifndef RN_SASLAUTH_H
#define RN_SASLAUTH_H
#include <stdbool.h>
#include <stddef.h>
#include "directory/bootstrap.h"
#include "directory/model.h"
#include "directory/token.h"

/* Mechanism set, one bit each: what a connector offers and an exchange accepts. */
enum {
    SASLAUTH_PLAIN = 1, SASLAUTH_LOGIN = 2, SASLAUTH_GSSAPI = 4,
    SASLAUTH_BASIC = SASLAUTH_PLAIN | SASLAUTH_LOGIN,
};
#define SASLAUTH_LINE_MAX 12288           /* RFC 4954 §4: AUTH lines may be this long */

enum saslauth_rc {
    SASLAUTH_CONTINUE,   /* send "334 <challenge>" and pass the client's next line */
    SASLAUTH_OK,         /* authenticated: take the identity */
    SASLAUTH_BAD,        /* 535 5.7.3 Authentication unsuccessful */
    SASLAUTH_TEMP,       /* 454 4.7.0 Temporary authentication failure */
    SASLAUTH_BADMECH,    /* 504 5.7.4 Unrecognized authentication type */
    SASLAUTH_SYNTAX,     /* 501 5.5.2 Cannot decode response */
    SASLAUTH_CANCELLED,  /* 501 5.0.0 Authentication cancelled ("*") */
};

/* Once per process, before any thread and any saslauth_new: with gssapi_keytab set in b
 * (NULL: no GSSAPI), KRB5_KTNAME is set and the Kerberos default realm read. -1 with err. */
int saslauth_init(const struct rn_bootstrap *b, char *err, size_t errlen);
void saslauth_done(void);

/* Whether the node can offer GSSAPI at all: b names a keytab (gssapi_keytab not empty). */
bool saslauth_gssapi_configured(const struct rn_bootstrap *b);
/* The SASLAUTH_* bit of a mechanism name (case-insensitive); 0 for any other name. */
unsigned saslauth_mech_bit(const char *name);
/* The mechanism names of a set, space-separated ("GSSAPI PLAIN LOGIN"), for the EHLO AUTH
 * line; "" for the empty set. Truncated to len. */
void saslauth_mech_names(unsigned mechs, char *buf, size_t len);

struct saslauth;
/* One exchange accepting the mechanisms in mechs (others: BADMECH). b (borrowed, outlives
 * it) gives the directory, user_filter and the gssapi_* keys; snap (the session's, NULL for
 * none) is referenced until saslauth_free: the AD profile maps the user's Exchange groups
 * with its SIDs (ldapdir_login_token) and fails the login as TEMP without them. fqdn is the
 * host part of the service principal gssapi_service/fqdn. NULL with err. */
struct saslauth *saslauth_new(const struct rn_bootstrap *b, struct rn_snapshot *snap,
                              const char *fqdn, unsigned mechs, char *err, size_t errlen);
void saslauth_free(struct saslauth **a);

/* First step: mech and the initial response as sent (base64, "=" for empty; NULL for none).
 * Later steps: mech NULL and the client's line. On CONTINUE, challenge holds the base64 text
 * for the 334 reply. Blocking (directory): run on a worker. why says what failed, for logs. */
enum saslauth_rc saslauth_step(struct saslauth *a, const char *mech, const char *line,
                               size_t len, char *challenge, size_t chlen, char *why,
                               size_t whylen);

/* After OK: the login (the principal for GSSAPI), the user's token (user, transitive groups, Authenticated Users,
 * Everyone) and the user's own addresses (mail and aliases) move to the caller. */
void saslauth_take(struct saslauth *a, char *login, size_t loginlen, struct token *t,
                   char ***addresses, size_t *naddresses);
#endif
