/* sendroute: address-space matching for send connectors (see sendroute.h). */
#include "node/delivery/sendroute.h"

#include <stdlib.h>
#include <string.h>

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
    *port = 25;
    const char *p = spec, *end;
    if (*p == '[') {
        end = strchr(p, ']');
        if (!end || end == p + 1)
            return -1;
        if ((size_t)(end - p - 1) >= hostlen)
            return -1;
        memcpy(host, p + 1, (size_t)(end - p - 1));
        host[end - p - 1] = '\0';
        p = end + 1;
    } else {
        end = strchr(p, ':');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        if (n == 0 || n >= hostlen)
            return -1;
        memcpy(host, p, n);
        host[n] = '\0';
        p += n;
    }
    if (*p == '\0')
        return 0;
    if (*p != ':' || !(p[1] >= '0' && p[1] <= '9'))
        return -1;            /* strtoul alone would take "+25" or " 25" */
    char *e;
    unsigned long v = strtoul(p + 1, &e, 10);
    if (*e || v == 0 || v > 65535)
        return -1;
    *port = (unsigned)v;
    return 0;
}
