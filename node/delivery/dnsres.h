/* dnsres: asynchronous DNS for delivery (issue #5) with c-ares on the node's libevent loop:
 * where to send mail for a domain (MX by preference, each exchange's A and AAAA; the
 * domain's own A/AAAA when it has no MX, RFC 5321 §5.1; a null MX, RFC 7505, is a permanent
 * failure) and the addresses of a smart host. The resolver address is configurable
 * (bootstrap dns_server, e.g. "127.0.0.1:5353"), so tests answer from a loopback server.
 * Loop thread only. */
#ifndef RN_DNSRES_H
#define RN_DNSRES_H
#include <stddef.h>
#include <sys/socket.h>

struct event_base;
struct dnsres;

#define DNSRES_MAX_ADDRS 16

enum dnsres_status { DNSRES_OK, DNSRES_TEMP, DNSRES_PERM };

struct dnsres_addrs {
    size_t n;
    struct sockaddr_storage addr[DNSRES_MAX_ADDRS];   /* with the port set */
    socklen_t len[DNSRES_MAX_ADDRS];
    char host[DNSRES_MAX_ADDRS][256];                 /* the name each address is for */
};

/* st OK: addrs holds at least one address, in the order to try; otherwise why says what
 * failed (NXDOMAIN and null MX are PERM; SERVFAIL, timeouts and refusals TEMP). */
typedef void dnsres_fn(void *arg, enum dnsres_status st, const char *why,
                       const struct dnsres_addrs *addrs);

/* Every dnsres_mail/dnsres_host answers exactly once, possibly before it returns (IP
 * literals, /etc/hosts names). There is no cancel: arg must stay valid until the answer,
 * and dnsres_free is the way to end lookups early. Never call dnsres_free from a callback. */

/* servers "" or NULL = the system's resolv.conf; else "ip[:port],..." NULL with err. */
struct dnsres *dnsres_new(struct event_base *base, const char *servers, char *err,
                          size_t errlen);
/* Pending queries are answered with TEMP "resolver shut down" before this returns. */
void dnsres_free(struct dnsres **r);
void dnsres_mail(struct dnsres *r, const char *domain, unsigned port, dnsres_fn *cb, void *arg);
/* A host name or an IP literal (answered at once, without DNS). */
void dnsres_host(struct dnsres *r, const char *host, unsigned port, dnsres_fn *cb, void *arg);
#endif
