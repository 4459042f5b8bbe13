/* tlsctx: OpenSSL for the receive side. Settings follow current practice for opportunistic
 * SMTP TLS (RFC 8314 §4.1 for the version floor; Postfix's smtpd_tls_* defaults for the rest):
 * no SSLv3/TLS 1.0/1.1, no compression (CRIME), no client-initiated renegotiation, server
 * cipher preference, session tickets off (the node keeps no ticket keys across restarts). */
#include "node/tlsctx.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "directory/util.h"

struct tlsctx {
    SSL_CTX *ctx;
};

static int tls_error(char *err, size_t errlen, const char *what)
{
    unsigned long e = ERR_get_error();
    char buf[256] = "";
    if (e)
        ERR_error_string_n(e, buf, sizeof buf);
    ERR_clear_error();
    return rn_err(err, errlen, "%s%s%s", what, *buf ? ": " : "", buf);
}

struct tlsctx *tlsctx_new(const char *cert_pem, const char *key_pem, char *err, size_t errlen)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx) {
        tls_error(err, errlen, "SSL_CTX_new");
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION |
                             SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_TICKET);
    if (SSL_CTX_set_cipher_list(ctx, "HIGH:!aNULL:!MD5:!RC4:!3DES") != 1) {
        tls_error(err, errlen, "cipher list");
        goto fail;
    }
    if (SSL_CTX_use_certificate_chain_file(ctx, cert_pem) != 1) {
        char what[600];
        snprintf(what, sizeof what, "tls_cert %s", cert_pem);
        tls_error(err, errlen, what);
        goto fail;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, key_pem, SSL_FILETYPE_PEM) != 1) {
        char what[600];
        snprintf(what, sizeof what, "tls_key %s", key_pem);
        tls_error(err, errlen, what);
        goto fail;
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
        tls_error(err, errlen, "tls_key does not match tls_cert");
        goto fail;
    }
    struct tlsctx *t = xcalloc(1, sizeof *t);
    t->ctx = ctx;
    return t;
fail:
    SSL_CTX_free(ctx);
    return NULL;
}

void tlsctx_free(struct tlsctx **tp)
{
    struct tlsctx *t = *tp;
    if (!t)
        return;
    SSL_CTX_free(t->ctx);
    free(t);
    *tp = NULL;
}

int tlsctx_upgrade(struct tlsctx *t, struct event_base *base, struct bufferevent **bev,
                   char *err, size_t errlen)
{
    SSL *ssl = SSL_new(t->ctx);
    if (!ssl)
        return tls_error(err, errlen, "SSL_new");
    struct evbuffer *in = bufferevent_get_input(*bev);
    evbuffer_drain(in, evbuffer_get_length(in));
    struct bufferevent *f = bufferevent_openssl_filter_new(
        base, *bev, ssl, BUFFEREVENT_SSL_ACCEPTING,
        BEV_OPT_CLOSE_ON_FREE);
    if (!f) {
        SSL_free(ssl);
        return rn_err(err, errlen, "bufferevent_openssl_filter_new failed");
    }
    /* A client that closes without close_notify is common and harmless for SMTP (the
     * protocol has its own end); do not turn it into an error event. */
    bufferevent_openssl_set_allow_dirty_shutdown(f, 1);
    *bev = f;
    return 0;
}

void tlsctx_describe(struct bufferevent *bev, char *buf, size_t len)
{
    SSL *ssl = bufferevent_openssl_get_ssl(bev);
    if (!ssl) {
        if (len)
            buf[0] = '\0';
        return;
    }
    snprintf(buf, len, "%s:%s", SSL_get_version(ssl), SSL_get_cipher_name(ssl));
}

void *tlsctx_client_new(char *err, size_t errlen)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx) {
        tls_error(err, errlen, "SSL_CTX_new (client)");
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
    /* Opportunistic TLS (RFC 7435): encrypt when offered, no authentication of the peer,
     * like Postfix's smtp_tls_security_level = may. */
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    return ctx;
}

void tlsctx_client_free(void *ctx)
{
    SSL_CTX_free(ctx);
}
