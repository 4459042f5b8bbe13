/* connattr: the receive connector attribute table and its value parsers.
 * Defaults are Exchange's *schema* defaults (exchange-model.md §5: what transport assumes when
 * an attribute is absent), except that bindings and remote ranges are mandatory: a connector
 * without them is refused rather than silently listening on 0.0.0.0:25 for everyone. */
#include "directory/connattr.h"
#include "directory/util.h"
#include <stddef.h>

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
    {"relayMaxInboundConnection", "MaxInboundConnection", CA_LIMIT, false, U, 1, 2147483647, true,
     F(max_inbound), "concurrent sessions on the connector (421 4.3.2)"},
    {"relayMaxInboundConnectionPerSource", "MaxInboundConnectionPerSource", CA_LIMIT, false, U, 1,
     10000, true, F(max_inbound_per_source), "concurrent sessions per client IP (421 4.3.2)"},
    {"relayMaxInboundConnectionPercentagePerSource", "MaxInboundConnectionPercentagePerSource",
     CA_LIMIT, false, 2, 1, 100, false, F(max_inbound_pct_per_source),
     "share of the remaining MaxInboundConnection one IP may take"},
    {"relayMaxLogonFailures", "MaxLogonFailures", CA_LIMIT, false, 3, 0, 10, false,
     F(max_logon_failures), "AUTH failures before 421 4.7.0; 0 = never disconnect"},
    {"relayMaxProtocolErrors", "MaxProtocolErrors", CA_LIMIT, false, U, 0, 2147483647, true,
     F(max_protocol_errors), "protocol errors before 421 4.7.0"},
    {"relayMessageRateLimit", "MessageRateLimit", CA_LIMIT, false, U, 1, 2147483647, true,
     F(message_rate_limit), "messages per minute per client IP (421 4.4.2)"},
    {"relayProtocolLoggingLevel", "ProtocolLoggingLevel", CA_LOGLEVEL, false, 0, 0, 0, false,
     F(protocol_logging), "None or Verbose (per-connector protocol log)"},
    {"relayAce", "(security descriptor)", CA_ACES, true, 0, 0, 0, false, F(aces),
     "allow|deny; principal; right[, right...] (see the ACE grammar)"},
};
const size_t connattr_count = sizeof connattr_table / sizeof connattr_table[0];
