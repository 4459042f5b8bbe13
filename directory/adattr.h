/* adattr: the Active Directory profile's attribute mapping (docs/ad-profile.md): Exchange's
 * own attributes of msExchSmtpReceiveConnector, msExchAcceptedDomain and
 * msExchRoutingSMTPConnector, as read from the configuration naming context, into the same
 * model the relay profile loads (model.h). One declarative table {Exchange attribute, kind,
 * model field (through connattr.h), doc}; values of the relay profile's form go through
 * connattr_apply, so both profiles accept and refuse the same values. Pure: no I/O, no
 * libldap. Messages are "<Exchange attribute>: <reason>"; the caller prefixes the DN.
 * The permissions are not attributes: the loader reads them from nTSecurityDescriptor. */
#ifndef RN_ADATTR_H
#define RN_ADATTR_H
#include <stddef.h>
#include "directory/entry.h"
#include "directory/model.h"

enum adattr_kind {
    ADA_SAME,          /* the relay profile's syntax: connattr_apply on `relay` */
    ADA_SECFLAG,       /* msExchSMTPReceiveInboundSecurityFlag: Integer, the AUTH_* bits */
    ADA_LOGLEVEL,      /* Integer 0 (None) or 1 (Verbose) */
    ADA_RESTRICTIONS,  /* msExchSmtpReceiveProtocolRestrictions: Integer, 0x8 = RequireTLS */
    ADA_INTEGER,       /* an Integer read and range-checked (0..2^31-1) but with no model field */
};

struct adattr {
    const char *ad;          /* Exchange's lDAPDisplayName */
    enum adattr_kind kind;
    const char *relay;       /* ADA_SAME and the others with a field: the connattr it fills */
    const char *doc;
};

extern const struct adattr adattr_table[];
extern const size_t adattr_count;

/* The attribute names the loader asks for on a receive connector (NULL-ended; cn,
 * adminDescription and the table's names). Static storage. */
const char *const *adattr_connector_attrs(void);

/* An msExchSmtpReceiveConnector entry into c: defaults (connector_defaults), DN, name (cn),
 * then every attribute of the table. No ACEs and no validate_connector: the caller adds the
 * ACEs from the security descriptor, then validates. -1 with the first failure; the caller
 * connector_clear()s c either way. */
int adattr_connector(const struct dir_entry *e, struct rn_connector *c, char *err,
                     size_t errlen);

/* An msExchAcceptedDomain: msExchAcceptedDomainName (one value, "*." allowed) and
 * msExchAcceptedDomainFlags (Integer; & 3 = 0 Authoritative, 1 ExternalRelay, 2 InternalRelay,
 * 3 refused; absent = 0). -1 with the first failure; the caller domain_clear()s dom. */
int adattr_domain(const struct dir_entry *e, struct rn_domain *dom, char *err, size_t errlen);

/* An msExchRoutingSMTPConnector: routingList values "SMTP:<space>;<cost>" (other address
 * types skipped; at least one SMTP space), msExchSmtpSmartHost (hosts separated by ';' or
 * ','; none = DNS MX), msExchSmtpSendPort (1..65535, added to a smart host written without a
 * port), msExchSmtpSendEnabled (TRUE/FALSE), msExchSmtpOutboundSecurityFlag (Integer; bit 0x20
 * = require TLS). -1 with the first failure; the caller sendconn_clear()s sc. */
int adattr_sendconn(const struct dir_entry *e, struct rn_sendconn *sc, char *err,
                    size_t errlen);

/* What a connector's descriptor is read with: the rights of CN=Extended-Rights, the SIDs of
 * the per-forest groups, the connector class's schemaIDGUID (NULL if unknown). */
struct sd_rightmap;
struct sd_sidmap;
struct sd_guid;
struct adsd_ctx {
    const struct sd_rightmap *rights; size_t nrights;
    const struct sd_sidmap *sids; size_t nsids;
    const struct sd_guid *conn_class;
};

/* The connector's ACEs from its nTSecurityDescriptor (sd, len octets; NULL when unreadable),
 * then validate_connector. 1: c holds its ACEs and is valid. 0: the descriptor is unusable
 * (absent, too large, does not parse): c keeps NO ACE, so it still takes its clients and
 * grants them nothing (fail closed, never a fall-through to a wider connector); err says
 * why. -1: c is refused (validation, or no binding/range); err says why. */
int adattr_connector_acl(struct rn_connector *c, const void *sd, size_t len,
                         const struct adsd_ctx *x, char *err, size_t errlen);

/* An Integer value of AD (RFC 4517 INTEGER, here 0..max): -1 on a sign, garbage, leading
 * zeros or overflow. */
int adattr_int(const char *v, uint64_t max, uint64_t *out);
#endif
