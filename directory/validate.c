/* validate: Exchange's write-time rules for receive connectors (docs/permission-model.md §3.2) and
 * the binding/range conflicts New-/Set-ReceiveConnector refuse (§4.3). The loader refuses a
 * connector that breaks them and relayctl refuses to write one, so a node never runs a
 * configuration Exchange itself would not accept. Each message names the attribute at fault
 * and says what to do; the caller prefixes the entry DN. */
#include "directory/validate.h"
#include "directory/acl.h"
#include "directory/base/util.h"
#include <stdio.h>
#include <string.h>

#define BANNER_MAX_LINES 50
#define BANNER_MAX_LINE  2000
#define AUTH_KNOWN (AUTH_TLS | AUTH_INTEGRATED | AUTH_BASIC | AUTH_BASIC_REQUIRE_TLS | \
                    AUTH_EXCHANGE_SERVER | AUTH_EXTERNAL_AUTHORITATIVE)

/* Rule 11: a non-empty banner is an SMTP reply with code 220 (every line "220" followed by
 * a space, a hyphen or nothing), at most 50 lines of at most 2000 characters. Lines end in
 * LF or CRLF; connattr already refuses control characters in what the directory holds, but
 * relayctl may validate a banner built by hand. */
static int banner_check(const char *banner, char *err, size_t errlen)
{
    if (!banner || !*banner)
        return 0;
    size_t line = 0;
    for (const char *p = banner; *p;) {
        size_t len = strcspn(p, "\n");
        size_t text = len && p[len - 1] == '\r' ? len - 1 : len;
        line++;
        if (line > BANNER_MAX_LINES)
            return rn_err(err, errlen, "relayBanner: more than %d lines", BANNER_MAX_LINES);
        if (text > BANNER_MAX_LINE)
            return rn_err(err, errlen, "relayBanner: line %zu is %zu characters, more than %d",
                          line, text, BANNER_MAX_LINE);
        if (text < 3 || strncmp(p, "220", 3) != 0 ||
            (text > 3 && p[3] != ' ' && p[3] != '-'))
            return rn_err(err, errlen, "relayBanner: line %zu is not a 220 reply "
                          "(write \"220 <text>\")", line);
        p += len;
        if (*p == '\n')
            p++;
    }
    return 0;
}

int validate_connector(const struct rn_connector *c, char *err, size_t errlen)
{
    if (c->nbindings == 0)
        return rn_err(err, errlen, "relayBinding: at least one binding (IP:port) is required");
    if (c->nranges == 0)
        return rn_err(err, errlen, "relayRemoteIPRange: at least one remote IP range is required");
    unsigned a = c->auth;
    /* Rule 10 ("None" alone) is a property of the written values, not of the bit set (None
     * is 0): connattr refuses "None" next to another mechanism when it parses them. */
    if (a & ~(unsigned)AUTH_KNOWN)
        return rn_err(err, errlen, "relayAuthMechanism: unknown mechanism bits 0x%x",
                      a & ~(unsigned)AUTH_KNOWN);
    if ((a & AUTH_BASIC_REQUIRE_TLS) && !(a & AUTH_BASIC))
        return rn_err(err, errlen, "relayAuthMechanism: BasicAuthRequireTLS requires BasicAuth");
    if ((a & AUTH_BASIC_REQUIRE_TLS) && !(a & AUTH_TLS))
        return rn_err(err, errlen, "relayAuthMechanism: BasicAuthRequireTLS requires Tls");
    if (c->require_tls && !(a & AUTH_TLS))
        return rn_err(err, errlen, "relayRequireTLS: RequireTLS requires the Tls auth mechanism");
    /* Rule 6: Domain Secure is decided on the certificate STARTTLS brings, and an
     * ExternalAuthoritative connector's identity is fixed at connect. */
    if (c->domain_secure && !(a & AUTH_TLS))
        return rn_err(err, errlen, "relayDomainSecureEnabled: DomainSecureEnabled requires the "
                      "Tls auth mechanism");
    if (c->domain_secure && (a & AUTH_EXTERNAL_AUTHORITATIVE))
        return rn_err(err, errlen, "relayDomainSecureEnabled: DomainSecureEnabled cannot be "
                      "combined with ExternalAuthoritative");
    if (a & AUTH_EXTERNAL_AUTHORITATIVE) {
        if (a & ~(unsigned)(AUTH_EXTERNAL_AUTHORITATIVE | AUTH_TLS))
            return rn_err(err, errlen,
                          "relayAuthMechanism: ExternalAuthoritative can only be combined with Tls");
        /* Rule 5: trust comes from the IP range alone, so Exchange insists the connector's
         * descriptor grants Externally Secured Servers the ExchangeServers group's rights. */
        if (!(acl_derive_groups(c->aces, c->naces) & GROUP_EXCHANGE_SERVERS))
            return rn_err(err, errlen, "relayAuthMechanism: ExternalAuthoritative requires the "
                          "ExchangeServers permission group (grant it first)");
    }
    if (banner_check(c->banner, err, errlen) < 0)
        return -1;
    if (c->inactivity_timeout > c->connection_timeout)
        return rn_err(err, errlen, "relayConnectionInactivityTimeout: %llu exceeds "
                      "relayConnectionTimeout %llu (it must be less than or equal)",
                      (unsigned long long)c->inactivity_timeout,
                      (unsigned long long)c->connection_timeout);
    return 0;
}

static bool same_address(const ipr_binding *x, const ipr_binding *y)
{
    return x->wildcard == y->wildcard && memcmp(&x->ip, &y->ip, sizeof x->ip) == 0;
}

/* §4.3: the first conflicting (binding, range) pair of a against b, described from a's side
 * and naming b. */
int validate_conflict(const struct rn_connector *a, const struct rn_connector *b,
                      char *err, size_t errlen)
{
    for (size_t i = 0; i < a->nbindings; i++)
        for (size_t k = 0; k < b->nbindings; k++) {
            const ipr_binding *ba = &a->bindings[i], *bb = &b->bindings[k];
            if (!ipr_binding_overlaps(ba, bb))
                continue;
            bool identical = same_address(ba, bb);
            for (size_t x = 0; x < a->nranges; x++)
                for (size_t y = 0; y < b->nranges; y++) {
                    const ipr_range *ra = &a->ranges[x], *rb = &b->ranges[y];
                    if (ra->v4 != ba->v4 || rb->v4 != bb->v4)
                        continue;   /* a binding only serves ranges of its family (§4.1) */
                    enum ipr_overlap o = ipr_range_overlap(ra, rb);
                    if (o == IPR_PARTIAL || (identical && o == IPR_EQUAL)) {
                        char sra[160], srb[160], sba[80], sbb[80];
                        ipr_range_format(ra, sra, sizeof sra);
                        ipr_range_format(rb, srb, sizeof srb);
                        ipr_binding_format(ba, sba, sizeof sba);
                        ipr_binding_format(bb, sbb, sizeof sbb);
                        const char *what = o == IPR_EQUAL ? "equals" : "partially overlaps";
                        if (identical)
                            return rn_err(err, errlen, "relayRemoteIPRange: %s %s %s of "
                                          "connector \"%s\" on the same binding %s", sra, what,
                                          srb, b->name ? b->name : "", sba);
                        return rn_err(err, errlen, "relayRemoteIPRange: %s partially overlaps "
                                      "%s of connector \"%s\" (bindings %s and %s overlap); "
                                      "ranges must be equal, nested or disjoint", sra, srb,
                                      b->name ? b->name : "", sba, sbb);
                    }
                }
        }
    return 0;
}
