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
/* After the handshake, before the first command under TLS: a client certificate whose
 * SHA-256 is a relayNode's relayCertificateSha256 on an ExchangeServer connector makes the
 * session that node ({Exchange Servers}, docs/permission-model.md §3.3); otherwise it stays
 * anonymous and the reason is logged (smtp tls-anonymous). */
void smtp_starttls_identify(struct smtp_session *s);
#endif
