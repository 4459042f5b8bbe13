/* sendroute: address-space matching for send connectors (see sendroute.h). */
#include "node/delivery/sendroute.h"

#include <string.h>

#include "directory/dnsname.h"
#include "directory/base/util.h"

/* How specifically pattern matches domain: 0 = no match; exact > *.suffix (longer better)
 * > "*". Both lower-cased by the caller. */
static size_t match_score(const char *pattern, const char *domain)
{
    if (strcmp(pattern, "*") == 0)
        return 1;
    if (pattern[0] == '*' && pattern[1] == '.') {
        const char *suffix = pattern + 1;            /* ".example.com" */
        size_t sl = strlen(suffix), dl = strlen(domain);
        return dl > sl && strcmp(domain + dl - sl, suffix) == 0 ? 2 + sl : 0;
    }
    return strcmp(pattern, domain) == 0 ? 100000 + strlen(domain) : 0;
}

static void lower_copy(char *dst, size_t len, const char *src)
{
    rn_strlcpy(dst, src, len);
    rn_strlower(dst);
    size_t n = strlen(dst);
    if (n > 1 && dst[n - 1] == '.')
        dst[n - 1] = '\0';
}

void sendroute_pick(const struct rn_snapshot *s, const char *domain, struct sendroute *out)
{
    out->sc = NULL;
    out->mx = false;
    char dom[256];
    lower_copy(dom, sizeof dom, domain ? domain : "");
    if (!dom[0])
        return;
    size_t best = 0;
    for (size_t i = 0; i < s->nsendconns; i++) {
        const struct rn_sendconn *sc = &s->sendconns[i];
        if (!sc->enabled)
            continue;
        for (size_t k = 0; k < sc->naddress_spaces; k++) {
            char pat[256];
            lower_copy(pat, sizeof pat, sc->address_spaces[k]);
            size_t score = match_score(pat, dom);
            if (score == 0)
                continue;
            if (score > best || (score == best && out->sc && sc->cost < out->sc->cost)) {
                best = score;
                out->sc = sc;
            }
        }
    }
    if (out->sc)
        out->mx = out->sc->nsmart_hosts == 0;
}

int sendroute_parse_host(const char *spec, char *host, size_t hostlen, unsigned *port)
{
    /* The rule the loader and relayctl applied to the value before it was loaded. */
    return smarthost_parse(spec, host, hostlen, port, NULL, 0);
}
