/* tlsctx: OpenSSL for the receive side. Settings follow current practice for opportunistic
 * SMTP TLS (RFC 8314 §4.1 for the version floor; Postfix's smtpd_tls_* defaults for the rest):
 * no SSLv3/TLS 1.0/1.1, no compression (CRIME), no client-initiated renegotiation, server
 * cipher preference, session tickets off (the node keeps no ticket keys across restarts). */
#include "node/common/tlsctx.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <openssl/ssl.h>

#include "directory/model.h"
#include "directory/base/util.h"
#include "node/common/node.h"

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

/* Errors name the files by `what` ("tls_cert" / "tls_key" for the bootstrap's, "certificate"
 * / "key" for a named one), so the operator knows which setting to fix. */
static struct tlsctx *tlsctx_load(const char *cert_pem, const char *key_pem,
                                  const char *cert_what, const char *key_what, char *err,
                                  size_t errlen)
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
        snprintf(what, sizeof what, "%s %s", cert_what, cert_pem);
        tls_error(err, errlen, what);
        goto fail;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, key_pem, SSL_FILETYPE_PEM) != 1) {
        char what[600];
        snprintf(what, sizeof what, "%s %s", key_what, key_pem);
        tls_error(err, errlen, what);
        goto fail;
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
        char what[600];
        snprintf(what, sizeof what, "%s does not match %s", key_what, cert_what);
        tls_error(err, errlen, what);
        goto fail;
    }
    struct tlsctx *t = xcalloc(1, sizeof *t);
    t->ctx = ctx;
    return t;
fail:
    SSL_CTX_free(ctx);
    return NULL;
}

struct tlsctx *tlsctx_new(const char *cert_pem, const char *key_pem, char *err, size_t errlen)
{
    return tlsctx_load(cert_pem, key_pem, "tls_cert", "tls_key", err, errlen);
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

/* ---- named certificates (relayTlsCertificateName) ---- */

static const struct tlsctx_named *named_find(const struct tlsctx_named *set, size_t n,
                                             const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(set[i].name, name) == 0)      /* caseExactIA5Match, like the file name */
            return &set[i];
    return NULL;
}

int tlsctx_named_add(struct tlsctx_named **set, size_t *n, const char *dir, const char *name,
                     char *err, size_t errlen)
{
    if (named_find(*set, *n, name))
        return 0;
    *set = xrealloc(*set, (*n + 1) * sizeof **set);
    struct tlsctx_named *e = &(*set)[(*n)++];
    e->name = xstrdup(name);
    e->ctx = NULL;
    if (!dir || !*dir)
        return rn_err(err, errlen, "tls_cert_dir is not set");
    /* The loader allows only [A-Za-z0-9._-] without a leading '.', so the path stays in dir. */
    char *cert = xasprintf("%s/%s.pem", dir, name), *key = xasprintf("%s/%s.key", dir, name);
    e->ctx = tlsctx_load(cert, key, "certificate", "key", err, errlen);
    free(cert);
    free(key);
    return e->ctx ? 0 : -1;
}

int tlsctx_named_add_reuse(struct tlsctx_named **set, size_t *n, struct tlsctx_named *old,
                           size_t nold, const char *dir, const char *name, char *err,
                           size_t errlen)
{
    if (named_find(*set, *n, name))
        return 0;
    struct tlsctx_named *o = (struct tlsctx_named *)named_find(old, nold, name);
    if (!o || !o->ctx)
        return tlsctx_named_add(set, n, dir, name, err, errlen);
    *set = xrealloc(*set, (*n + 1) * sizeof **set);
    (*set)[(*n)++] = (struct tlsctx_named){xstrdup(name), o->ctx};
    o->ctx = NULL;                        /* moved */
    return 0;
}

void tlsctx_named_free(struct tlsctx_named **set, size_t *n)
{
    for (size_t i = 0; *set && i < *n; i++) {
        free((*set)[i].name);
        tlsctx_free(&(*set)[i].ctx);
    }
    free(*set);
    *set = NULL;
    *n = 0;
}

struct tlsctx *node_tls_for(const struct node *n, const struct rn_connector *c)
{
    if (!c->tls_cert_name)
        return n->tls;
    /* Fail closed: a connector that names a certificate presents that one or none. Falling
     * back to the node certificate would show clients a name they were not told to expect. */
    const struct tlsctx_named *e = named_find(n->tls_named, n->ntls_named, c->tls_cert_name);
    return e ? e->ctx : NULL;
}

/* ---- sessions ---- */

/* Any client certificate, or none, passes the handshake: who the client is gets decided
 * after it (tlsctx_peer_sha256), so a client without an acceptable certificate carries on
 * anonymous instead of being cut off. */
static int verify_accept_any(int preverify_ok, X509_STORE_CTX *x)
{
    return 1;
}

int tlsctx_upgrade(struct tlsctx *t, struct event_base *base, struct bufferevent **bev,
                   bool ask_client_cert, char *err, size_t errlen)
{
    /* SSL_new takes its own reference on the SSL_CTX (released by SSL_free with the filter),
     * and nothing below keeps t: a reload may free t while this connection lives. */
    SSL *ssl = SSL_new(t->ctx);
    if (!ssl)
        return tls_error(err, errlen, "SSL_new");
    if (ask_client_cert)
        SSL_set_verify(ssl, SSL_VERIFY_PEER, verify_accept_any);
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

void *tlsctx_client_new(const char *cert_pem, const char *key_pem, char *err, size_t errlen)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx) {
        tls_error(err, errlen, "SSL_CTX_new (client)");
        return NULL;
    }
    /* The node's own certificate, shown to a next hop that asks for one: that is how a
     * relay node proves itself to another node's ExchangeServer connector. */
    if (cert_pem && *cert_pem &&
        (SSL_CTX_use_certificate_chain_file(ctx, cert_pem) != 1 ||
         SSL_CTX_use_PrivateKey_file(ctx, key_pem, SSL_FILETYPE_PEM) != 1 ||
         SSL_CTX_check_private_key(ctx) != 1)) {
        tls_error(err, errlen, "client certificate (tls_cert / tls_key)");
        SSL_CTX_free(ctx);
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

void tlsctx_client_ref(void *ctx)
{
    SSL_CTX_up_ref(ctx);
}

int tlsctx_client_upgrade(void *ctx, struct event_base *base, struct bufferevent **bev)
{
    SSL *ssl = SSL_new(ctx);
    struct bufferevent *f = ssl ? bufferevent_openssl_filter_new(
        base, *bev, ssl, BUFFEREVENT_SSL_CONNECTING, BEV_OPT_CLOSE_ON_FREE) : NULL;
    if (!f) {
        if (ssl)
            SSL_free(ssl);
        return -1;
    }
    /* Next hops often close without close_notify after QUIT; that is not an error here. */
    bufferevent_openssl_set_allow_dirty_shutdown(f, 1);
    *bev = f;
    return 0;
}

int tlsctx_sha256(const void *data, size_t len, unsigned char out[32])
{
    unsigned int n = 0;
    return EVP_Digest(data, len, out, &n, EVP_sha256(), NULL) && n == 32 ? 0 : -1;
}

/* ---- certificates as identities ---- */

static int x509_sha256(X509 *x, unsigned char out[32])
{
    unsigned int n = 0;
    return X509_digest(x, EVP_sha256(), out, &n) == 1 && n == 32 ? 0 : -1;
}

int tlsctx_peer_sha256(struct bufferevent *bev, unsigned char out[32])
{
    SSL *ssl = bufferevent_openssl_get_ssl(bev);
    if (!ssl)
        return 0;
    X509 *x = SSL_get1_peer_certificate(ssl);
    if (!x)
        return 0;
    int rc = x509_sha256(x, out) == 0 ? 1 : -1;
    X509_free(x);
    return rc;
}

int tlsctx_cert_file_sha256(const char *pem_path, unsigned char out[32], char *err,
                            size_t errlen)
{
    FILE *f = fopen(pem_path, "r");
    if (!f)
        return rn_err(err, errlen, "%s: cannot open", pem_path);
    X509 *x = PEM_read_X509(f, NULL, NULL, NULL);
    fclose(f);
    if (!x) {
        char what[600];
        snprintf(what, sizeof what, "%s: not a PEM certificate", pem_path);
        return tls_error(err, errlen, what);
    }
    int rc = x509_sha256(x, out);
    X509_free(x);
    return rc == 0 ? 0 : rn_err(err, errlen, "%s: SHA-256 failed", pem_path);
}

/* ---- verified peers (Domain Secure, RequireTLS smart hosts) ---- */

void *tlsctx_store_new(const char *ca_file, char *err, size_t errlen)
{
    X509_STORE *st = X509_STORE_new();
    if (!st) {
        tls_error(err, errlen, "X509_STORE_new");
        return NULL;
    }
    int ok = ca_file && *ca_file ? X509_STORE_load_file(st, ca_file)
                                 : X509_STORE_set_default_paths(st);
    if (ok != 1) {
        char what[600];
        snprintf(what, sizeof what, "%s: no CA certificate loaded", ca_file ? ca_file : "");
        tls_error(err, errlen, what);
        X509_STORE_free(st);
        return NULL;
    }
    return st;
}

void tlsctx_store_free(void *store)
{
    X509_STORE_free(store);
}

void tlsctx_store_ref(void *store)
{
    X509_STORE_up_ref(store);
}

static bool peer_names(X509 *x, const char *name, bool subdomains)
{
    if (X509_check_ip_asc(x, name, 0) == 1 || X509_check_host(x, name, 0, 0, NULL) == 1)
        return true;
    char dot[300];
    /* A leading dot asks OpenSSL for any host within the domain. */
    return subdomains && snprintf(dot, sizeof dot, ".%s", name) < (int)sizeof dot &&
           X509_check_host(x, dot, 0, 0, NULL) == 1;
}

/* Verify leaf (with the untrusted chain) against store, then match names: as
 * tlsctx_peer_check. */
static int cert_check(X509 *leaf, STACK_OF(X509) *chain, void *store, const char *const *names,
                      size_t n, bool subdomains, size_t *matched, char *why, size_t whylen)
{
    char subject[256];
    X509_NAME_oneline(X509_get_subject_name(leaf), subject, sizeof subject);
    X509_STORE_CTX *x = X509_STORE_CTX_new();
    int rc = -1;
    if (!x || !store || X509_STORE_CTX_init(x, store, leaf, chain) != 1) {
        snprintf(why, whylen, "untrusted: no trust store subject=%s", subject);
    } else if (X509_verify_cert(x) != 1) {
        snprintf(why, whylen, "untrusted: %s subject=%s",
                 X509_verify_cert_error_string(X509_STORE_CTX_get_error(x)), subject);
    } else {
        snprintf(why, whylen, "name-mismatch subject=%s", subject);
        for (size_t i = 0; rc < 0 && i < n; i++)
            if (peer_names(leaf, names[i], subdomains)) {
                *matched = i;
                rc = 1;
            }
    }
    X509_STORE_CTX_free(x);
    ERR_clear_error();
    return rc;
}

int tlsctx_peer_check(struct bufferevent *bev, void *store, const char *const *names,
                      size_t n, bool subdomains, size_t *matched, char *why, size_t whylen)
{
    SSL *ssl = bufferevent_openssl_get_ssl(bev);
    X509 *leaf = ssl ? SSL_get1_peer_certificate(ssl) : NULL;
    if (!leaf) {
        snprintf(why, whylen, "no-certificate");
        return 0;
    }
    int rc = cert_check(leaf, SSL_get_peer_cert_chain(ssl), store, names, n, subdomains,
                        matched, why, whylen);
    X509_free(leaf);
    return rc;
}

int tlsctx_cert_file_check(const char *pem_path, void *store, const char *const *names,
                           size_t n, bool subdomains, size_t *matched, char *why,
                           size_t whylen)
{
    FILE *f = fopen(pem_path, "r");
    X509 *leaf = f ? PEM_read_X509(f, NULL, NULL, NULL) : NULL;
    STACK_OF(X509) *chain = sk_X509_new_null();
    for (X509 *c; leaf && chain && (c = PEM_read_X509(f, NULL, NULL, NULL)) != NULL;)
        if (!sk_X509_push(chain, c))
            X509_free(c);
    if (f)
        fclose(f);
    int rc = -1;
    if (!leaf)
        snprintf(why, whylen, "%s: not a PEM certificate", pem_path);
    else
        rc = cert_check(leaf, chain, store, names, n, subdomains, matched, why, whylen);
    sk_X509_pop_free(chain, X509_free);
    X509_free(leaf);
    ERR_clear_error();
    return rc;
}
