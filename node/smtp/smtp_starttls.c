/* smtp_starttls: STARTTLS (RFC 3207) for the SMTP session, with Exchange's per-connector
 * rule (docs/permission-model.md §3.1, §6): Tls offers STARTTLS when a certificate is loaded for
 * the connector. The upgrade wraps the session's bufferevent in a TLS filter (tlsctx), and
 * nothing the client said before the handshake counts after it. */
#include "node/smtp/smtp_starttls.h"
#include "node/smtp/smtp_auth.h"

#include <stdio.h>
#include <string.h>

#include "node/common/log.h"
#include "node/common/tlsctx.h"
#include "directory/entry.h"

/* The connector's certificate (relayTlsCertificateName) or the node's; a named one that did
 * not load means no STARTTLS here, so RequireTLS and BasicAuthRequireTLS refuse as without
 * a certificate (fail closed). */
bool smtp_starttls_offered(const struct smtp_session *s)
{
    return (s->c->auth & AUTH_TLS) && !s->tls && node_tls_for(s->n, s->c) != NULL;
}

void smtp_cmd_starttls(struct smtp_session *s, const char *args, size_t len)
{
    if (s->tls) {
        session_protocol_error(s, "503 5.5.1 Bad sequence of commands");
        return;
    }
    if (!smtp_starttls_offered(s)) {
        session_protocol_error(s, "500 5.3.3 Unrecognized command");
        return;
    }
    if (len > 0) {
        session_protocol_error(s, "501 5.5.4 Invalid arguments");
        return;
    }
    session_reply(s, "220 2.0.0 SMTP server ready");
    session_out_flush(s);              /* in clear, on the socket, before the filter */
    char err[256];
    /* Looked up now, not kept: a reload frees the named contexts (the SSL keeps its own
     * reference on the SSL_CTX). smtp_starttls_offered checked it is not NULL. */
    bool ask = (s->c->auth & AUTH_EXCHANGE_SERVER) || s->c->domain_secure;
    session_detach_reader(s);
    if (tlsctx_upgrade(node_tls_for(s->n, s->c), s->n->base, &s->bev, ask, err,
                       sizeof err) < 0) {
        char qe[400];
        log_fact(s->id, "smtp", "starttls-failed", "error=%s", log_quote(err, qe, sizeof qe));
        session_close(s, "starttls-failed");
        return;
    }
    /* Nothing said before the handshake counts after it (RFC 3207 §4.2): not the greeting,
     * not the transaction, not the AUTH identity (and so not its larger input allowance,
     * which session_attach_bev sets from the token). */
    bool was_auth = s->tok.authenticated;
    session_reset_transaction(s);
    smtp_auth_forget(s);
    s->helo[0] = '\0';
    s->esmtp = false;
    session_attach_bev(s);
    s->tls = true;
    s->tls_identify = ask;
    session_enter(s, S_GREETING);
    log_fact(s->id, "smtp", "starttls", "client=%s auth_forgotten=%s", s->client_ip,
             was_auth ? "yes" : "no");
}

/* Domain Secure (§3.3): the certificate must verify against the trust store (tls_ca_file)
 * and name a listed partner domain, or a host within it. NULL with *t filled, else why. */
static const char *partner_identity(struct smtp_session *s, struct token *t, char *why,
                                    size_t whylen)
{
    if (s->snap->npartner_domains == 0) {
        snprintf(why, whylen, "no-domain-secure-list");
        return why;
    }
    size_t m = 0;
    const char *const *doms = (const char *const *)s->snap->partner_domains;
    int rc = tlsctx_peer_check(s->bev, s->n->tls_ca, doms, s->snap->npartner_domains, true, &m,
                               why, whylen);
    if (rc != 1)
        return why;
    token_init_partner(t, s->snap->partner_domains[m]);
    return NULL;
}

/* The node whose certificate the client presented, by the SHA-256 of the whole DER
 * certificate: the directory names the exact certificate, so no chain or name is involved
 * and a reissued certificate needs its new fingerprint in the entry (docs/operations.md).
 * Failing that, on a DomainSecureEnabled connector, a partner (partner_identity). */
void smtp_starttls_identify(struct smtp_session *s)
{
    s->tls_identify = false;
    if (s->tok.authenticated)
        return;
    unsigned char fp[32];
    int rc = tlsctx_peer_sha256(s->bev, fp);
    char hex[65] = "-", why[400] = "";
    if (rc == 1)
        cert_sha256_format(fp, hex);
    struct token t;
    const char *node_why = rc < 0 ? "certificate-unreadable"
                         : policy_tls_identity(s->snap, s->c, rc == 1 ? fp : NULL, &t);
    const char *fail = node_why;
    if (node_why && s->c->domain_secure)
        fail = partner_identity(s, &t, why, sizeof why);
    char qw[500];
    if (fail) {
        log_fact(s->id, "smtp", "tls-anonymous", "client=%s reason=%s sha256=%s",
                 s->client_ip, log_quote(fail, qw, sizeof qw), hex);
        return;
    }
    token_clear(&s->tok);
    s->tok = t;
    /* DirectTrustTLS for a node (§9.3); a partner is stamped by its AuthAs alone. */
    s->auth_mechanism = node_why ? NULL : "04";
    session_set_permissions(s, "tls-certificate");
    session_raise_limits(s);
    char qn[300], qd[700];
    if (!node_why)
        log_fact(s->id, "smtp", "tls-principal", "client=%s principal=exchange-server node=%s "
                 "dn=%s sha256=%s", s->client_ip, log_quote(s->tok.name, qn, sizeof qn),
                 log_quote(s->tok.user_dn, qd, sizeof qd), hex);
    else
        log_fact(s->id, "smtp", "tls-principal", "client=%s principal=partner domain=%s "
                 "sha256=%s", s->client_ip, log_quote(s->tok.name, qn, sizeof qn), hex);
}
