/* adattr: Exchange's receive connector, accepted domain and SMTP connector attributes into the
 * model (adattr.h, docs/ad-profile.md). Exchange writes bindings ("0.0.0.0:25", "[::]:25") and
 * remote IP ranges ("a.b.c.d", "lo-hi", CIDR) in the same text forms the relay schema uses,
 * and its limits as plain Integers, so most attributes are the relay profile's connattr
 * entries under Exchange's names and share its parsers, bounds and defaults. The others are
 * Integers whose meaning is a bit set (InboundSecurityFlag = Exchange's AuthMechanisms enum,
 * the same values as model.h AUTH_*; ProtocolRestrictions 0x8 = RequireTLS) or an enum
 * (ProtocolLoggingLevel 0/1). An absent limit takes the relay profile's default, which for
 * the connection limits is New-ReceiveConnector's value rather than the schema's "unlimited"
 * (connattr.c says why). A value of the wrong syntax, out of range or too long refuses the
 * entry: never a default in its place. */
#include "directory/adattr.h"
#include "directory/connattr.h"
#include "directory/dnsname.h"
#include "directory/entry.h"
#include "directory/secdesc.h"
#include "directory/validate.h"
#include "directory/base/util.h"
#include <stdlib.h>
#include <string.h>

#define INT32_MAXV 2147483647u    /* AD Integer syntax (2.5.5.9) is a signed 32-bit value */
#define AD_SD_MAX (1u << 20)      /* octets of one descriptor (AD's ACLs stop at 64 KiB) */

const struct adattr adattr_table[] = {
    {"msExchSmtpReceiveEnabled", ADA_SAME, "relayEnabled", "Enabled (Boolean)"},
    {"msExchSmtpReceiveBindings", ADA_SAME, "relayBinding", "Bindings, IP:port (mandatory)"},
    {"msExchSmtpReceiveRemoteIPRanges", ADA_SAME, "relayRemoteIPRange",
     "RemoteIPRanges (mandatory)"},
    {"msExchSMTPReceiveInboundSecurityFlag", ADA_SECFLAG, "relayAuthMechanism",
     "AuthMechanism bits: 1 Tls, 2 Integrated, 4 BasicAuth, 8 BasicAuthRequireTLS, "
     "16 ExchangeServer, 32 ExternalAuthoritative"},
    {"msExchSMTPReceiveConnectorFQDN", ADA_SAME, "relayFqdn", "Fqdn"},
    {"msExchSmtpReceiveBanner", ADA_SAME, "relayBanner", "Banner"},
    {"adminDescription", ADA_SAME, "description", "Comment"},
    {"msExchSmtpReceiveProtocolRestrictions", ADA_RESTRICTIONS, "relayRequireTLS",
     "bit 0x8 = RequireTLS"},
    {"msExchSmtpReceiveMaxMessageSize", ADA_SAME, "relayMaxMessageSize", "bytes"},
    {"msExchSmtpReceiveMaxHeaderSize", ADA_SAME, "relayMaxHeaderSize", "bytes"},
    {"msExchSmtpReceiveMaxRecipientsPerMessage", ADA_SAME, "relayMaxRecipientsPerMessage", ""},
    {"msExchSmtpReceiveMaxHopCount", ADA_SAME, "relayMaxHopCount", ""},
    {"msExchSmtpReceiveMaxLocalHopCount", ADA_SAME, "relayMaxLocalHopCount", ""},
    {"msExchSmtpReceiveConnectionTimeout", ADA_SAME, "relayConnectionTimeout", "seconds"},
    {"msExchSmtpReceiveConnectionInactivityTimeout", ADA_SAME,
     "relayConnectionInactivityTimeout", "seconds"},
    {"msExchSmtpReceiveMaxInboundConnections", ADA_SAME, "relayMaxInboundConnection", ""},
    {"msExchSmtpReceiveMaxInboundConnectionsPerSource", ADA_SAME,
     "relayMaxInboundConnectionPerSource", ""},
    {"msExchSMTPReceiveMaxInboundConnectionsPercPerSource", ADA_SAME,
     "relayMaxInboundConnectionPercentagePerSource", "percent"},
    {"msExchSmtpReceiveMaxLogonFailures", ADA_SAME, "relayMaxLogonFailures", ""},
    {"msExchSmtpReceiveMaxProtocolErrors", ADA_SAME, "relayMaxProtocolErrors", ""},
    {"msExchSMTPReceiveRelayControl", ADA_SAME, "relayMessageRateLimit",
     "MessageRateLimit, messages per minute"},
    {"msExchSmtpReceiveTarpitInterval", ADA_SAME, "relayTarpitInterval", "seconds"},
    {"msExchSmtpReceiveProtocolLoggingLevel", ADA_LOGLEVEL, "relayProtocolLoggingLevel",
     "0 None, 1 Verbose"},
    /* Read and checked, no behaviour behind them yet (docs/ad-profile.md). */
    {"msExchSmtpReceiveProtocolOptions", ADA_INTEGER, NULL, "ProtocolOptions"},
    {"msExchSmtpReceiveRole", ADA_INTEGER, NULL, "TransportRole"},
    {"msExchSMTPExtendedProtectionPolicy", ADA_INTEGER, NULL, "ExtendedProtectionPolicy"},
    {"msExchSMTPReceiveMessageRateSource", ADA_INTEGER, NULL, "MessageRateSource"},
    {"msExchSmtpReceiveMaxAcknowledgementDelay", ADA_INTEGER, NULL, "seconds"},
};
const size_t adattr_count = sizeof adattr_table / sizeof adattr_table[0];

const char *const *adattr_connector_attrs(void)
{
    static const char *names[sizeof adattr_table / sizeof adattr_table[0] + 3];
    static int made;
    if (!__atomic_load_n(&made, __ATOMIC_ACQUIRE)) {
        /* Same content whichever thread writes it first. */
        names[0] = "cn";
        for (size_t i = 0; i < adattr_count; i++)
            names[i + 1] = adattr_table[i].ad;
        names[adattr_count + 1] = NULL;
        __atomic_store_n(&made, 1, __ATOMIC_RELEASE);
    }
    return names;
}

int adattr_int(const char *v, uint64_t max, uint64_t *out)
{
    if (!v || !*v || (v[0] == '0' && v[1]))
        return -1;
    uint64_t n = 0;
    for (const char *p = v; *p; p++) {
        if (*p < '0' || *p > '9')
            return -1;
        n = n * 10 + (unsigned)(*p - '0');
        if (n > max)
            return -1;
    }
    *out = n;
    return 0;
}

/* "<ad>: <reason>" from connattr's "<relay>: <reason>". */
static int rename_err(const char *ad, const char *cerr, char *err, size_t errlen)
{
    const char *colon = strstr(cerr, ": ");
    return rn_err(err, errlen, "%s: %s", ad, colon ? colon + 2 : cerr);
}

/* The single Integer of attribute a (0..max). */
static int one_int(const struct dir_attr *a, uint64_t max, uint64_t *out, char *err,
                   size_t errlen)
{
    if (a->nvalues != 1)
        return rn_err(err, errlen, "%s: %zu values for a single-valued attribute", a->name,
                      a->nvalues);
    if (adattr_int(a->values[0], max, out) != 0)
        return rn_err(err, errlen, "%s: '%.40s' is not an Integer in 0..%llu", a->name,
                      a->values[0], (unsigned long long)max);
    return 0;
}

static int apply_one(struct rn_connector *c, const struct adattr *t, const struct dir_attr *a,
                     char *err, size_t errlen)
{
    const struct connattr *ca = t->relay ? connattr_lookup(t->relay) : NULL;
    char cerr[RN_ERRLEN];
    uint64_t n;
    switch (t->kind) {
    case ADA_SAME:
        if (connattr_apply(c, ca, (const char *const *)a->values, a->nvalues, cerr,
                           sizeof cerr) != 0)
            return rename_err(t->ad, cerr, err, errlen);
        return 0;
    case ADA_SECFLAG:
        if (one_int(a, INT32_MAXV, &n, err, errlen) != 0)
            return -1;
        if (n & ~(uint64_t)63)
            return rn_err(err, errlen, "%s: %llu has bits no auth mechanism uses", t->ad,
                          (unsigned long long)n);
        c->auth = (unsigned)n;
        return 0;
    case ADA_LOGLEVEL:
        if (one_int(a, INT32_MAXV, &n, err, errlen) != 0)
            return -1;
        if (n > 1)
            return rn_err(err, errlen, "%s: %llu is not 0 (None) or 1 (Verbose)", t->ad,
                          (unsigned long long)n);
        c->protocol_logging = (unsigned)n;
        return 0;
    case ADA_RESTRICTIONS:
        if (one_int(a, INT32_MAXV, &n, err, errlen) != 0)
            return -1;
        c->require_tls = (n & 0x8) != 0;
        return 0;
    case ADA_INTEGER:
        return one_int(a, INT32_MAXV, &n, err, errlen);
    }
    return rn_err(err, errlen, "%s: unknown kind", t->ad);
}

int adattr_connector(const struct dir_entry *e, struct rn_connector *c, char *err,
                     size_t errlen)
{
    connector_defaults(c);
    c->dn = xstrdup(e->dn);
    const struct dir_attr *cn = dir_entry_get(e, "cn");
    if (!cn || cn->nvalues != 1 || !*cn->values[0])
        return rn_err(err, errlen, "cn: %s", cn ? "not exactly one value" : "missing");
    if (strlen(cn->values[0]) > 64)
        /* Exchange's connector names are at most 64 characters (ADObjectNameStringLength). */
        return rn_err(err, errlen, "cn: longer than 64 characters");
    c->name = xstrdup(cn->values[0]);
    for (size_t i = 0; i < adattr_count; i++) {
        const struct dir_attr *a = dir_entry_get(e, adattr_table[i].ad);
        if (a && apply_one(c, &adattr_table[i], a, err, errlen) != 0)
            return -1;
    }
    return 0;
}

int adattr_domain(const struct dir_entry *e, struct rn_domain *dom, char *err, size_t errlen)
{
    memset(dom, 0, sizeof *dom);
    dom->dn = xstrdup(e->dn);
    const struct dir_attr *name = dir_entry_get(e, "msExchAcceptedDomainName");
    if (!name || name->nvalues != 1)
        return rn_err(err, errlen, "msExchAcceptedDomainName: %s",
                      name ? "several values for a single-valued attribute" : "missing");
    char norm[DNSNAME_BUFLEN], derr[RN_ERRLEN];
    if (domain_name_check(name->values[0], DNSNAME_WILDCARD, norm, sizeof norm, derr,
                          sizeof derr) != 0)
        return rn_err(err, errlen, "msExchAcceptedDomainName: %s", derr);
    dom->domain = xstrdup(norm);
    uint64_t flags = 0;
    const struct dir_attr *f = dir_entry_get(e, "msExchAcceptedDomainFlags");
    if (f && one_int(f, INT32_MAXV, &flags, err, errlen) != 0)
        return -1;
    /* AcceptedDomain.InitializeDomainType: (AcceptedDomainType)(flags & 3). */
    switch (flags & 3) {
    case 0: dom->type = DOMAIN_AUTHORITATIVE; break;
    case 1: dom->type = DOMAIN_EXTERNAL_RELAY; break;
    case 2: dom->type = DOMAIN_INTERNAL_RELAY; break;
    default:
        return rn_err(err, errlen, "msExchAcceptedDomainFlags: %llu: type 3 is not "
                      "Authoritative (0), ExternalRelay (1) or InternalRelay (2)",
                      (unsigned long long)flags);
    }
    return 0;
}

/* "SMTP:<space>;<cost>" (the type case-insensitive, cost 1..100) into sc. 0 = added,
 * 1 = another address type (skipped), -1 = malformed. */
static int routing_entry(struct rn_sendconn *sc, const char *v, char *err, size_t errlen)
{
    if (strncasecmp(v, "SMTP:", 5) != 0)
        return strchr(v, ':') ? 1 : rn_err(err, errlen, "routingList: '%.60s' is not "
                                           "TYPE:space;cost", v);
    const char *space = v + 5, *semi = strrchr(space, ';');
    size_t slen = semi ? (size_t)(semi - space) : strlen(space);
    uint64_t cost = 1;
    if (semi && adattr_int(semi + 1, 100, &cost) != 0)
        return rn_err(err, errlen, "routingList: '%.60s': the cost is not 1..100", v);
    if (cost == 0)
        return rn_err(err, errlen, "routingList: '%.60s': the cost is not 1..100", v);
    if (slen == 0 || slen >= DNSNAME_BUFLEN)
        return rn_err(err, errlen, "routingList: '%.60s': bad address space", v);
    char in[DNSNAME_BUFLEN], norm[DNSNAME_BUFLEN], derr[RN_ERRLEN];
    memcpy(in, space, slen);
    in[slen] = '\0';
    if (domain_name_check(in, DNSNAME_WILDCARD | DNSNAME_STAR, norm, sizeof norm, derr,
                          sizeof derr) != 0)
        return rn_err(err, errlen, "routingList: %s", derr);
    sc->address_spaces = xrealloc(sc->address_spaces,
                                  (sc->naddress_spaces + 1) * sizeof *sc->address_spaces);
    sc->address_spaces[sc->naddress_spaces++] = xstrdup(norm);
    /* One cost per connector in the model: the lowest any SMTP space gives. */
    if (sc->naddress_spaces == 1 || cost < sc->cost)
        sc->cost = cost;
    return 0;
}

static int bool_value(const struct dir_attr *a, bool *out, char *err, size_t errlen)
{
    if (a->nvalues != 1 || (strcmp(a->values[0], "TRUE") && strcmp(a->values[0], "FALSE")))
        return rn_err(err, errlen, "%s: not exactly one TRUE or FALSE", a->name);
    *out = a->values[0][0] == 'T';
    return 0;
}

int adattr_sendconn(const struct dir_entry *e, struct rn_sendconn *sc, char *err,
                    size_t errlen)
{
    sendconn_init(e, sc);
    const struct dir_attr *a = dir_entry_get(e, "routingList");
    for (size_t i = 0; a && i < a->nvalues; i++)
        if (routing_entry(sc, a->values[i], err, errlen) < 0)
            return -1;
    if (sc->naddress_spaces == 0)
        return rn_err(err, errlen, "routingList: no SMTP address space (the connector would "
                      "route nothing)");
    if ((a = dir_entry_get(e, "msExchSmtpSendEnabled")) && bool_value(a, &sc->enabled, err,
                                                                       errlen) != 0)
        return -1;
    uint64_t port = 25, flags = 0;
    if ((a = dir_entry_get(e, "msExchSmtpSendPort")) && one_int(a, 65535, &port, err,
                                                                 errlen) != 0)
        return -1;
    if (port == 0)
        return rn_err(err, errlen, "msExchSmtpSendPort: 0 is not a port");
    if ((a = dir_entry_get(e, "msExchSmtpOutboundSecurityFlag")) &&
        one_int(a, INT32_MAXV, &flags, err, errlen) != 0)
        return -1;
    sc->require_tls = (flags & 0x20) != 0;
    a = dir_entry_get(e, "msExchSmtpSmartHost");
    if (a && a->nvalues != 1)
        return rn_err(err, errlen, "msExchSmtpSmartHost: several values for a single-valued "
                      "attribute");
    if (a) {
        const char *v = a->values[0];
        if (strlen(v) > 2048)
            return rn_err(err, errlen, "msExchSmtpSmartHost: longer than 2048 octets");
        char *copy = xstrdup(v), *save = NULL;
        for (char *h = strtok_r(copy, ";,", &save); h; h = strtok_r(NULL, ";,", &save)) {
            while (*h == ' ')
                h++;
            size_t hl = strlen(h);
            while (hl && h[hl - 1] == ' ')
                h[--hl] = '\0';
            if (!hl)
                continue;
            /* A host without a port takes msExchSmtpSendPort: "host" or "[addr]". */
            bool has_port = h[hl - 1] != ']' && strchr(h, ':') != NULL;
            char *spec = has_port || port == 25 ? xstrdup(h)
                                                : xasprintf("%s:%llu", h, (unsigned long long)port);
            char serr[RN_ERRLEN];
            if (smarthost_check(spec, serr, sizeof serr) != 0) {
                free(spec);
                free(copy);
                return rn_err(err, errlen, "msExchSmtpSmartHost: %s", serr);
            }
            sc->smart_hosts = xrealloc(sc->smart_hosts,
                                       (sc->nsmart_hosts + 1) * sizeof *sc->smart_hosts);
            sc->smart_hosts[sc->nsmart_hosts++] = spec;
        }
        free(copy);
    }
    return 0;
}

int adattr_connector_acl(struct rn_connector *c, const void *sd, size_t len,
                         const struct adsd_ctx *x, char *err, size_t errlen)
{
    int rc = 1;
    if (!sd)
        rc = rn_err(err, errlen, "nTSecurityDescriptor: not readable (no READ_CONTROL, or "
                    "absent)");
    else if (len > AD_SD_MAX)
        rc = rn_err(err, errlen, "nTSecurityDescriptor: %zu octets, more than %u", len,
                    AD_SD_MAX);
    if (rc == 1) {
        struct secdesc d;
        char serr[RN_ERRLEN];
        memset(&d, 0, sizeof d);
        if (secdesc_parse(sd, len, &d, serr, sizeof serr) != 0 ||
            secdesc_aces(&d, x->rights, x->nrights, x->sids, x->nsids, x->conn_class,
                         &c->aces, &c->naces, serr, sizeof serr) != 0)
            rc = rn_err(err, errlen, "nTSecurityDescriptor: %s", serr);
        secdesc_clear(&d);
    }
    if (rc != 1) {
        for (size_t i = 0; i < c->naces; i++)
            ace_clear(&c->aces[i]);
        free(c->aces);
        c->aces = NULL;
        c->naces = 0;
        /* validate_connector would refuse an ExternalAuthoritative connector without its
         * ExchangeServers ACEs, and a refused connector lets its clients reach a wider one:
         * kept, granting nothing, as long as it can select its clients at all. */
        if (c->nbindings == 0 || c->nranges == 0) {
            char why[RN_ERRLEN];
            rn_strlcpy(why, err, sizeof why);
            return rn_err(err, errlen, "msExchSmtpReceive%s: missing (and %s)",
                          c->nbindings ? "RemoteIPRanges" : "Bindings", why);
        }
        return 0;
    }
    return validate_connector(c, err, errlen) == 0 ? 1 : -1;
}
