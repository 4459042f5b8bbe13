/* connattr: the receive connector attribute table and its value parsers.
 * Defaults are Exchange's *schema* defaults (docs/permission-model.md §5: what transport assumes when
 * an attribute is absent), except that bindings and remote ranges are mandatory: a connector
 * without them is refused rather than silently listening on 0.0.0.0:25 for everyone, and
 * that the connection limits (MaxInboundConnection 5000, MaxInboundConnectionPerSource 20,
 * MaxProtocolErrors 5) take the values New-ReceiveConnector gives a new connector rather
 * than the schema's "unlimited": a limit nobody set must still bound what one client can hold
 * (secure by default). "unlimited" stays writable explicitly.
 * connattr_apply parses one attribute's raw values by its table type; errors name the
 * attribute ("relayMaxRecipientsPerMessage: 0 is below the minimum 1"). */
#include "directory/connattr.h"
#include "directory/base/util.h"
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#define F(field) offsetof(struct rn_connector, field)
#define U RN_UNLIMITED

const struct connattr connattr_table[] = {
    {"relayEnabled", "Enabled", CA_BOOL, false, 1, 0, 0, false, F(enabled),
     "whether the node listens for this connector"},
    {"relayBinding", "Bindings", CA_BINDINGS, true, 0, 0, 0, false, F(bindings),
     "local IP:port to listen on ([::]:25, 0.0.0.0:587); mandatory"},
    {"relayRemoteIPRange", "RemoteIPRanges", CA_RANGES, true, 0, 0, 0, false, F(ranges),
     "client ranges served: a.b.c.d, lo-hi, CIDR, a.b.c.d(mask), IPv6; mandatory"},
    {"relayAuthMechanism", "AuthMechanism", CA_AUTH, true, 29, 0, 0, false, F(auth),
     "None, Tls, Integrated, BasicAuth, BasicAuthRequireTLS, ExchangeServer, ExternalAuthoritative"},
    {"relayFqdn", "Fqdn", CA_STRING, false, 0, 0, 255, false, F(fqdn),
     "name in the banner and EHLO reply; default the node's host name"},
    {"relayBanner", "Banner", CA_STRING, false, 0, 0, 2000, false, F(banner),
     "custom 220 greeting, e.g. \"220 relay ready\""},
    {"description", "Comment", CA_STRING, false, 0, 0, 1024, false, F(comment),
     "free text"},
    {"relayRequireTLS", "RequireTLS", CA_BOOL, false, 0, 0, 0, false, F(require_tls),
     "refuse MAIL without STARTTLS (451 5.7.3)"},
    {"relayMaxMessageSize", "MaxMessageSize", CA_LIMIT, false, 36700160, 65536, 2147483647, true,
     F(max_message_size), "bytes; SIZE= and DATA/BDAT are checked (552 5.3.4)"},
    {"relayMaxHeaderSize", "MaxHeaderSize", CA_LIMIT, false, 131072, 32768, 2147483647, false,
     F(max_header_size), "bytes of message header (552 5.3.4)"},
    {"relayMaxRecipientsPerMessage", "MaxRecipientsPerMessage", CA_LIMIT, false, 200, 1, 512000,
     false, F(max_recipients), "RCPTs per message (452 4.5.3)"},
    {"relayMaxHopCount", "MaxHopCount", CA_LIMIT, false, 60, 1, 500, false, F(max_hop_count),
     "Received: headers allowed (554 5.4.6)"},
    {"relayMaxLocalHopCount", "MaxLocalHopCount", CA_LIMIT, false, 12, 0, 50, false,
     F(max_local_hop_count), "Received: headers naming this organisation; 0 = off"},
    {"relayConnectionTimeout", "ConnectionTimeout", CA_LIMIT, false, 600, 1, 86400, false,
     F(connection_timeout), "seconds a session may last (421 4.4.1)"},
    {"relayConnectionInactivityTimeout", "ConnectionInactivityTimeout", CA_LIMIT, false, 300, 1,
     86400, false, F(inactivity_timeout), "seconds of client silence (451 4.7.0)"},
    {"relayMaxInboundConnection", "MaxInboundConnection", CA_LIMIT, false, 5000, 1, 2147483647, true,
     F(max_inbound), "concurrent sessions on the connector (421 4.3.2)"},
    {"relayMaxInboundConnectionPerSource", "MaxInboundConnectionPerSource", CA_LIMIT, false, 20, 1,
     10000, true, F(max_inbound_per_source), "concurrent sessions per client IP (421 4.3.2)"},
    {"relayMaxInboundConnectionPercentagePerSource", "MaxInboundConnectionPercentagePerSource",
     CA_LIMIT, false, 2, 1, 100, false, F(max_inbound_pct_per_source),
     "share of the remaining MaxInboundConnection one IP may take"},
    {"relayMaxLogonFailures", "MaxLogonFailures", CA_LIMIT, false, 3, 0, 10, false,
     F(max_logon_failures), "AUTH failures before 421 4.7.0; 0 = never disconnect"},
    {"relayMaxProtocolErrors", "MaxProtocolErrors", CA_LIMIT, false, 5, 0, 2147483647, true,
     F(max_protocol_errors), "protocol errors before 421 4.7.0"},
    {"relayMessageRateLimit", "MessageRateLimit", CA_LIMIT, false, U, 1, 2147483647, true,
     F(message_rate_limit), "messages per minute per client IP (421 4.4.2)"},
    {"relayProtocolLoggingLevel", "ProtocolLoggingLevel", CA_LOGLEVEL, false, 0, 0, 0, false,
     F(protocol_logging), "None or Verbose (per-connector protocol log)"},
    {"relayAce", "(security descriptor)", CA_ACES, true, 0, 0, 0, false, F(aces),
     "allow|deny; principal; right[, right...] (see the ACE grammar)"},
    {"relayTlsCertificateName", "TlsCertificateName", CA_STRING, false, 0, 0, 64, false,
     F(tls_cert_name),
     "STARTTLS certificate tls_cert_dir/NAME.pem + NAME.key; default the node's"},
    {"relayTarpitInterval", "TarpitInterval", CA_LIMIT, false, 5, 0, 600, false,
     F(tarpit_interval), "seconds a 5xx reply to an anonymous session is delayed; 0 = off"},
    {"relayMilterEnabled", "MilterEnabled", CA_BOOL, false, 1, 0, 0, false,
     F(milter_enabled), "messages go through the node's milter filters (when it has any); "
     "sessions with ms-Exch-Bypass-Anti-Spam never do"},
    {"relayDomainSecureEnabled", "DomainSecureEnabled", CA_BOOL, false, 0, 0, 0, false,
     F(domain_secure),
     "a verified certificate naming a domain-secure partner domain gives Partner Servers"},
};
const size_t connattr_count = sizeof connattr_table / sizeof connattr_table[0];

/* ---- lookup and value parsers ---- */

/* Multi-valued lists are stored as a pointer followed by its count (model.h); the parsers
 * rely on that layout, so check it at compile time rather than trust it. */
_Static_assert(offsetof(struct rn_connector, nbindings) ==
               offsetof(struct rn_connector, bindings) + sizeof(void *), "bindings layout");
_Static_assert(offsetof(struct rn_connector, nranges) ==
               offsetof(struct rn_connector, ranges) + sizeof(void *), "ranges layout");
_Static_assert(offsetof(struct rn_connector, naces) ==
               offsetof(struct rn_connector, aces) + sizeof(void *), "aces layout");

const struct connattr *connattr_lookup(const char *ldap_name)
{
    for (size_t i = 0; ldap_name && i < connattr_count; i++)
        if (rn_strieq(connattr_table[i].ldap, ldap_name))
            return &connattr_table[i];
    return NULL;
}

#define FIELD(c, a, T) ((T *)(void *)((char *)(c) + (a)->offset))
#define LIST_COUNT(c, a) ((size_t *)(void *)((char *)(c) + (a)->offset + sizeof(void *)))

/* Decimal without sign, spaces or garbage; overflow is an error, not a wrap. */
static int parse_limit(const struct connattr *a, const char *v, uint64_t *out, char *err,
                       size_t errlen)
{
    if (rn_strieq(v, "unlimited")) {
        if (!a->unlimited_ok)
            return rn_err(err, errlen, "%s: 'unlimited' is not allowed", a->ldap);
        *out = RN_UNLIMITED;
        return 0;
    }
    if (!*v)
        return rn_err(err, errlen, "%s: empty value", a->ldap);
    uint64_t n = 0;
    for (const char *p = v; *p; p++) {
        if (*p < '0' || *p > '9')
            return rn_err(err, errlen, "%s: '%.40s' is not a number", a->ldap, v);
        unsigned d = (unsigned)(*p - '0');
        if (n > (UINT64_MAX - d) / 10)
            return rn_err(err, errlen, "%s: '%.40s' is too large", a->ldap, v);
        n = n * 10 + d;
    }
    if (n < a->min)
        return rn_err(err, errlen, "%s: %llu is below the minimum %llu", a->ldap,
                      (unsigned long long)n, (unsigned long long)a->min);
    if (n > a->max)
        return rn_err(err, errlen, "%s: %llu is above the maximum %llu", a->ldap,
                      (unsigned long long)n, (unsigned long long)a->max);
    *out = n;
    return 0;
}

/* relayTlsCertificateName becomes a file name stem under tls_cert_dir, so it must not be able
 * to leave that directory ("../x", "/etc/...") or name a hidden file: a conservative portable
 * file name ([A-Za-z0-9._-], POSIX 3.282) that does not start with '.'. */
static int check_cert_name(const struct connattr *a, const char *v, char *err, size_t errlen)
{
    if (v[0] == '.')
        return rn_err(err, errlen, "%s: '%.64s' starts with '.'", a->ldap, v);
    for (size_t i = 0; v[i]; i++) {
        unsigned char ch = (unsigned char)v[i];
        if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
              ch == '.' || ch == '_' || ch == '-'))
            return rn_err(err, errlen, "%s: character 0x%02x at offset %zu is not A-Z, a-z, "
                          "0-9, '.', '_' or '-'", a->ldap, ch, i);
    }
    return 0;
}

/* CA_STRING values that are more than text get an extra check, found by their field. */
static const struct {
    size_t offset;
    int (*check)(const struct connattr *a, const char *v, char *err, size_t errlen);
} string_checks[] = {
    {F(tls_cert_name), check_cert_name},
};

static int parse_string(const struct connattr *a, const char *v, char *err, size_t errlen)
{
    size_t len = strlen(v);
    if (len == 0)
        return rn_err(err, errlen, "%s: empty value", a->ldap);
    if (len > a->max)
        return rn_err(err, errlen, "%s: value is %zu octets, longer than the maximum %llu",
                      a->ldap, len, (unsigned long long)a->max);
    /* No control characters anywhere: the banner and FQDN go out on the wire verbatim, and a
     * CR or LF there would let the directory inject SMTP replies. */
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)v[i];
        if (ch < 0x20 || ch == 0x7f)
            return rn_err(err, errlen, "%s: control character 0x%02x at offset %zu", a->ldap,
                          ch, i);
    }
    for (size_t i = 0; i < sizeof string_checks / sizeof string_checks[0]; i++)
        if (string_checks[i].offset == a->offset)
            return string_checks[i].check(a, v, err, errlen);
    return 0;
}

static int parse_auth(const struct connattr *a, const char *const *values, size_t n,
                      unsigned *out, char *err, size_t errlen)
{
    unsigned mechs = 0;
    bool none = false;
    for (size_t i = 0; i < n; i++) {
        int bit = auth_mech_lookup(values[i]);
        if (bit < 0)
            return rn_err(err, errlen, "%s: unknown mechanism '%.64s'", a->ldap, values[i]);
        if ((bit == 0 && none) || (bit && (mechs & (unsigned)bit)))
            return rn_err(err, errlen, "%s: duplicate mechanism '%.64s'", a->ldap, values[i]);
        if (bit == 0)
            none = true;
        mechs |= (unsigned)bit;
    }
    if (none && n > 1)
        return rn_err(err, errlen, "%s: None cannot be combined with other mechanisms", a->ldap);
    *out = mechs;
    return 0;
}

static void free_aces(struct ace *aces, size_t n)
{
    for (size_t i = 0; i < n; i++)
        ace_clear(&aces[i]);
    free(aces);
}

/* Lists are parsed into a fresh array and swapped in only when every value is good, so a
 * refused attribute leaves the connector as it was. */
static int apply_list(struct rn_connector *c, const struct connattr *a,
                      const char *const *values, size_t n, char *err, size_t errlen)
{
    char why[RN_ERRLEN];
    void **field = FIELD(c, a, void *);
    size_t *count = LIST_COUNT(c, a);
    if (a->type == CA_BINDINGS || a->type == CA_RANGES) {
        size_t sz = a->type == CA_BINDINGS ? sizeof(ipr_binding) : sizeof(ipr_range);
        char *arr = xcalloc(n ? n : 1, sz);
        for (size_t i = 0; i < n; i++) {
            int rc = a->type == CA_BINDINGS
                         ? ipr_binding_parse(values[i], (ipr_binding *)(void *)(arr + i * sz),
                                             why, sizeof why)
                         : ipr_range_parse(values[i], (ipr_range *)(void *)(arr + i * sz),
                                           why, sizeof why);
            if (rc < 0) {
                free(arr);
                return rn_err(err, errlen, "%s: '%.64s': %s", a->ldap, values[i], why);
            }
        }
        free(*field);
        *field = arr;
        *count = n;
        return 0;
    }
    struct ace *aces = xcalloc(n ? n : 1, sizeof *aces);
    for (size_t i = 0; i < n; i++)
        if (ace_parse(values[i], &aces[i], why, sizeof why) < 0) {
            free_aces(aces, i);
            if (n > 1)
                return rn_err(err, errlen, "%s: value %zu: %s", a->ldap, i + 1, why);
            return rn_err(err, errlen, "%s: %s", a->ldap, why);
        }
    free_aces(*field, *count);
    *field = aces;
    *count = n;
    return 0;
}

/* No values: the attribute is absent, so the field takes the table default. */
static void apply_default(struct rn_connector *c, const struct connattr *a)
{
    switch (a->type) {
    case CA_BOOL: *FIELD(c, a, bool) = a->def != 0; break;
    case CA_LIMIT: *FIELD(c, a, uint64_t) = a->def; break;
    case CA_STRING: free(*FIELD(c, a, char *)); *FIELD(c, a, char *) = NULL; break;
    case CA_AUTH: *FIELD(c, a, unsigned) = (unsigned)a->def; break;
    case CA_LOGLEVEL: *FIELD(c, a, unsigned) = (unsigned)a->def; break;
    case CA_BINDINGS: case CA_RANGES: case CA_ACES: break;   /* handled as an empty list */
    }
}

int connattr_apply(struct rn_connector *c, const struct connattr *a,
                   const char *const *values, size_t nvalues, char *err, size_t errlen)
{
    if (!a->multi && nvalues > 1)
        return rn_err(err, errlen, "%s: %zu values for a single-valued attribute", a->ldap,
                      nvalues);
    if (a->type == CA_BINDINGS || a->type == CA_RANGES || a->type == CA_ACES)
        return apply_list(c, a, values, nvalues, err, errlen);
    if (a->type == CA_AUTH && nvalues > 0)
        return parse_auth(a, values, nvalues, FIELD(c, a, unsigned), err, errlen);
    if (nvalues == 0) {
        apply_default(c, a);
        return 0;
    }
    const char *v = values[0];
    switch (a->type) {
    case CA_BOOL:
        /* LDAP Boolean syntax (RFC 4517 §3.3.3) is exactly TRUE or FALSE. */
        if (strcmp(v, "TRUE") != 0 && strcmp(v, "FALSE") != 0)
            return rn_err(err, errlen, "%s: '%.40s' is not TRUE or FALSE", a->ldap, v);
        *FIELD(c, a, bool) = v[0] == 'T';
        return 0;
    case CA_LIMIT:
        return parse_limit(a, v, FIELD(c, a, uint64_t), err, errlen);
    case CA_STRING:
        if (parse_string(a, v, err, errlen) < 0)
            return -1;
        free(*FIELD(c, a, char *));
        *FIELD(c, a, char *) = xstrdup(v);
        return 0;
    case CA_LOGLEVEL:
        if (rn_strieq(v, "None"))
            *FIELD(c, a, unsigned) = 0;
        else if (rn_strieq(v, "Verbose"))
            *FIELD(c, a, unsigned) = 1;
        else
            return rn_err(err, errlen, "%s: '%.40s' is not None or Verbose", a->ldap, v);
        return 0;
    case CA_AUTH: case CA_BINDINGS: case CA_RANGES: case CA_ACES:
        break;
    }
    return rn_err(err, errlen, "%s: unsupported attribute type", a->ldap);
}
