/* tlsctx: the node's STARTTLS server side (RFC 3207) with OpenSSL through libevent's OpenSSL
 * bufferevents: one server context from the bootstrap's tls_cert / tls_key (TLS 1.2 and
 * later, no compression, no renegotiation, the server's cipher order), the named contexts of
 * connectors with relayTlsCertificateName (tls_cert_dir/NAME.pem + NAME.key), and the upgrade
 * of a session's plaintext bufferevent to TLS. Loop thread. */
#ifndef RN_TLSCTX_H
#define RN_TLSCTX_H
#include <stdbool.h>
#include <stddef.h>

struct bufferevent;
struct event_base;
struct node;
struct rn_connector;
struct tlsctx;

/* One named certificate (relayTlsCertificateName). Both fields owned by the set holding it. */
struct tlsctx_named {
    char *name;
    struct tlsctx *ctx;            /* NULL: it failed to load (the connector gets no STARTTLS) */
};

/* Load and check the certificate chain and key (they must match). NULL with err. */
struct tlsctx *tlsctx_new(const char *cert_pem, const char *key_pem, char *err, size_t errlen);
void tlsctx_free(struct tlsctx **t);

/* Replace *bev (a socket bufferevent that has just queued "220 Ready to start TLS") by a
 * TLS filter over it, accepting. Input already buffered is discarded first: it arrived
 * before the handshake and must never be taken as protected (CVE-2011-0411). The old
 * bufferevent now belongs to the filter (freed with it). The connection keeps no pointer to
 * t (its SSL holds its own reference on the SSL_CTX), so t may be freed while it runs.
 * ask_client_cert: request a client certificate, accepting any or none at the handshake
 * (the caller decides who the client is afterwards). -1 with err (bev unchanged). */
int tlsctx_upgrade(struct tlsctx *t, struct event_base *base, struct bufferevent **bev,
                   bool ask_client_cert, char *err, size_t errlen);
/* SHA-256 of the DER certificate the peer of a TLS bufferevent presented: 1 with out
 * filled, 0 when it presented none (or bev is not TLS), -1 on an OpenSSL failure. */
int tlsctx_peer_sha256(struct bufferevent *bev, unsigned char out[32]);
/* SHA-256 of the DER form of the first certificate in a PEM file (relayctl, explain): the
 * value of relayCertificateSha256. -1 with err. */
int tlsctx_cert_file_sha256(const char *pem_path, unsigned char out[32], char *err,
                            size_t errlen);

/* Add `name` to the set *set (*n entries, grown here): load dir/NAME.pem and dir/NAME.key.
 * A name already in the set is left as it is (0). On failure the name is still added, without
 * a context, so lookups fail closed; -1 with err (also when dir is NULL or empty). */
int tlsctx_named_add(struct tlsctx_named **set, size_t *n, const char *dir, const char *name,
                     char *err, size_t errlen);
/* The same, but a name whose context loaded in *old (nold entries) takes it from there
 * (moved: old keeps the name without a context) instead of reading the files again. */
int tlsctx_named_add_reuse(struct tlsctx_named **set, size_t *n, struct tlsctx_named *old,
                           size_t nold, const char *dir, const char *name, char *err,
                           size_t errlen);
/* Free every entry and the array; *set = NULL, *n = 0. */
void tlsctx_named_free(struct tlsctx_named **set, size_t *n);

/* The context a session on connector c upgrades with: its named certificate when it has
 * relayTlsCertificateName (NULL when that did not load or no tls_cert_dir is set: never the
 * node certificate instead), else n->tls (NULL without tls_cert). Borrowed: valid until the
 * next snapshot swap, so callers use it at once and keep no pointer. */
struct tlsctx *node_tls_for(const struct node *n, const struct rn_connector *c);

/* "TLSv1.3:TLS_AES_256_GCM_SHA384" for a TLS bufferevent after its handshake; "" otherwise. */
void tlsctx_describe(struct bufferevent *bev, char *buf, size_t len);
/* A client SSL_CTX (as void *, so callers need no OpenSSL headers) for opportunistic
 * STARTTLS to next hops: TLS 1.2+, the peer not verified. With cert_pem (and key_pem), the
 * node's certificate is presented to a next hop that asks for one. NULL with err. */
void *tlsctx_client_new(const char *cert_pem, const char *key_pem, char *err, size_t errlen);
void tlsctx_client_free(void *ctx);
/* One more reference on a client context (tlsctx_client_free drops one): a connection that
 * keeps using a context the node has since replaced (SIGHUP) holds its own. */
void tlsctx_client_ref(void *ctx);
/* Replace *bev (a connected socket bufferevent after "220 Ready to start TLS") by a TLS
 * client filter over it using ctx (from tlsctx_client_new); the old one belongs to the
 * filter. -1 when OpenSSL refuses (bev unchanged). */
int tlsctx_client_upgrade(void *ctx, struct event_base *base, struct bufferevent **bev);
/* A trust store: the CA certificates in ca_file, or the system's trust store when ca_file
 * is NULL or empty (as void *, so callers need no OpenSSL headers). NULL with err. */
void *tlsctx_store_new(const char *ca_file, char *err, size_t errlen);
void tlsctx_store_free(void *store);
/* One more reference on a store (tlsctx_store_free drops one), as tlsctx_client_ref. */
void tlsctx_store_ref(void *store);
/* After the handshake of a TLS bufferevent (either side): verify the certificate the peer
 * presented, with the chain it sent, against store (validity dates included), then check
 * that it names one of names[0..n) (RFC 6125 rules through X509_check_host, or an IP
 * address name against the certificate's addresses; with subdomains, a host within a
 * listed domain matches too). 1 with *matched the index of the name; 0 when the peer
 * presented no certificate; -1 with why ("untrusted: certificate has expired",
 * "name-mismatch", each followed by " subject=<subject>"). */
int tlsctx_peer_check(struct bufferevent *bev, void *store, const char *const *names,
                      size_t n, bool subdomains, size_t *matched, char *why, size_t whylen);
/* The same checks on a certificate in a PEM file (its first certificate, the ones after it
 * as the chain), as a client presenting it would get them (relayctl explain). 1 with
 * *matched; -1 with why. */
int tlsctx_cert_file_check(const char *pem_path, void *store, const char *const *names,
                           size_t n, bool subdomains, size_t *matched, char *why,
                           size_t whylen);
/* SHA-256 of len bytes (relayctl's key fingerprints); -1 on an OpenSSL failure. */
int tlsctx_sha256(const void *data, size_t len, unsigned char out[32]);
#endif
