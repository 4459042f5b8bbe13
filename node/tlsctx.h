/* tlsctx: the node's STARTTLS server side (RFC 3207) with OpenSSL through libevent's OpenSSL
 * bufferevents: one server context from the bootstrap's tls_cert / tls_key (TLS 1.2 and
 * later, no compression, no renegotiation, the server's cipher order), and the upgrade of a
 * session's plaintext bufferevent to TLS. Loop thread. */
#ifndef RN_TLSCTX_H
#define RN_TLSCTX_H
#include <stddef.h>

struct bufferevent;
struct event_base;
struct tlsctx;

/* Load and check the certificate chain and key (they must match). NULL with err. */
struct tlsctx *tlsctx_new(const char *cert_pem, const char *key_pem, char *err, size_t errlen);
void tlsctx_free(struct tlsctx **t);

/* Replace *bev (a socket bufferevent that has just queued "220 Ready to start TLS") by a
 * TLS filter over it, accepting. Input already buffered is discarded first: it arrived
 * before the handshake and must never be taken as protected (CVE-2011-0411). The old
 * bufferevent now belongs to the filter (freed with it). -1 with err (bev unchanged). */
int tlsctx_upgrade(struct tlsctx *t, struct event_base *base, struct bufferevent **bev,
                   char *err, size_t errlen);

/* "TLSv1.3:TLS_AES_256_GCM_SHA384" for a TLS bufferevent after its handshake; "" otherwise. */
void tlsctx_describe(struct bufferevent *bev, char *buf, size_t len);
/* A client SSL_CTX (as void *, so callers need no OpenSSL headers) for opportunistic
 * STARTTLS to next hops: TLS 1.2+, the peer not verified. NULL with err. */
void *tlsctx_client_new(char *err, size_t errlen);
void tlsctx_client_free(void *ctx);
#endif
