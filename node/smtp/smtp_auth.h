/* smtp_auth: the AUTH verb of the SMTP session (smtp_auth.c), for smtp_verbs.c; session
 * internals only. */
#ifndef RN_SMTP_AUTH_H
#define RN_SMTP_AUTH_H
#include <stdbool.h>
#include <stddef.h>
#include "node/smtp/smtp_session-private.h"

/* What EHLO advertises as AUTH now: PLAIN LOGIN with BasicAuth (after STARTTLS with
 * BasicAuthRequireTLS), GSSAPI with Integrated when the node has a keytab; nothing once
 * authenticated. */
/* The SASLAUTH_* set offered now; 0 = no AUTH. */
unsigned smtp_auth_mechs(const struct smtp_session *s);
bool smtp_auth_offered(const struct smtp_session *s);
/* The EHLO line "AUTH <mechs>" in buf; false (buf "") when nothing is offered. */
bool smtp_auth_ehlo_line(const struct smtp_session *s, char *buf, size_t len);
void smtp_cmd_auth(struct smtp_session *s, const char *args, size_t len);
/* Forget the AUTH identity (RFC 3207 §4.2, after STARTTLS): back to the connector's
 * initial token (anonymous or externally secured) and its rights, the user's addresses
 * freed, no AuthMechanism stamp, any exchange in progress dropped. Failures stay counted. */
void smtp_auth_forget(struct smtp_session *s);
/* S_AUTH: the client's answer to a 334 challenge (never logged). */
void smtp_auth_continue(struct smtp_session *s, const char *line, size_t len);
#endif
