/* sendroute: which send connector carries mail for a recipient domain (issue #5; Exchange's
 * send connector address spaces): the enabled connector whose address space matches most
 * specifically ("example.com" exactly, then the longest "*.suffix" (subdomains only), then
 * "*"), then the lowest relayCost, then load order. Authoritative and InternalRelay domains
 * route the same way: give the internal mailbox server a send connector for them. Pure. */
#ifndef RN_SENDROUTE_H
#define RN_SENDROUTE_H
#include <stdbool.h>
#include <stddef.h>
#include "directory/model.h"

struct sendroute {
    const struct rn_sendconn *sc;   /* NULL: no send connector covers the domain */
    bool mx;                        /* no smart hosts: deliver by the domain's MX */
};

void sendroute_pick(const struct rn_snapshot *s, const char *domain, struct sendroute *out);
/* "host", "host:port", "[v6 or v4]" or "[v6]:port" -> host and port (default 25). -1 if
 * malformed: directory/dnsname.h's smarthost_parse, the rule every smart host is loaded by. */
int sendroute_parse_host(const char *spec, char *host, size_t hostlen, unsigned *port);
#endif
