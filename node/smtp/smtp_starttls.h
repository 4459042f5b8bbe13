/* smtp_starttls: the STARTTLS verb of the SMTP session (RFC 3207; smtp_starttls.c), for
 * smtp_verbs.c; session internals only. */
#ifndef RN_SMTP_STARTTLS_H
#define RN_SMTP_STARTTLS_H
#include <stdbool.h>
#include <stddef.h>
#include "node/smtp/smtp_session-private.h"

/* Whether EHLO advertises STARTTLS now: the connector has Tls, a certificate is loaded for
 * it (its named one, else the node's), and the session is not under TLS yet. */
bool smtp_starttls_offered(const struct smtp_session *s);
/* STARTTLS: 220, the handshake, and a session that starts over at the greeting. */
void smtp_cmd_starttls(struct smtp_session *s, const char *args, size_t len);
#endif
