/* policy: the relay decisions of the Exchange model as data (docs/permission-model.md §2.2, §2.3,
 * §4, §6, §10). Every function answers a verdict carrying the exact SMTP reply, the right the
 * decision turned on, and the ACE that granted or denied it, so the node and `relayctl
 * explain` run the same code and can say why. Pure; no allocation on these paths. */
#ifndef RN_POLICY_H
#define RN_POLICY_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "directory/acl.h"
#include "directory/ipr.h"
#include "directory/model.h"
#include "directory/token.h"

struct verdict {
    bool ok;
    int code;            /* SMTP reply code */
    const char *enh;     /* enhanced status, e.g. "5.7.1" */
    const char *text;    /* exact reply text, e.g. "Unable to relay" */
    bool close;          /* the server disconnects after this reply */
    uint32_t right;      /* the right the decision turned on (one R_* bit), 0 if none */
    int ace;             /* index in the connector's aces of the deciding ACE, -1 if none */
    const char *why;     /* short reason for logs and explain (static string) */
};

/* Connector selection (§4.1): among enabled connectors with a binding on local_port whose
 * address is local (exact) or the wildcard of the family, the one whose smallest remote range
 * containing `remote` is smallest; ties favour the exact binding, then load order. NULL and
 * "421 4.3.2 Service not available" (close) when none matches. v4 is the family of both
 * addresses (an IPv4-mapped client on a v6 socket counts as IPv4). */
const struct rn_connector *policy_select(const struct rn_snapshot *s, const ipr_addr *local,
                                         uint16_t local_port, const ipr_addr *remote, bool v4,
                                         struct verdict *v);
/* Build s->select_index from the final connector list (the loader calls it once, before the
 * snapshot is shared): a sorted table per binding so policy_select is two binary searches
 * instead of a scan. Without it policy_select scans; both answer the same. */
void policy_index(struct rn_snapshot *s);
/* Give dst (replacing any) a copy of src's selection index. Only valid when dst's connectors
 * are src's as far as selection goes: the same enabled, bindings and ranges, in the same
 * order (the index names connectors and ranges by position). */
void policy_index_copy(struct rn_snapshot *dst, const struct rn_snapshot *src);

/* The token a session starts with on connector c: ANONYMOUS LOGON, or Externally Secured
 * Servers when c has ExternalAuthoritative (§3.3). Caller token_clear()s. */
void policy_initial_token(const struct rn_connector *c, struct token *t);
/* The identity a client certificate proves after STARTTLS on connector c (§3.3): with
 * ExchangeServer in c's mechanisms, a certificate whose SHA-256 (sha256; NULL = none was
 * presented) is a relayNode's relayCertificateSha256 in s gives that node's token
 * (token_init_exchange_server): NULL is returned and *t filled (caller token_clear()s).
 * Otherwise the reason it does not, for the log ("no-certificate", ...), and t untouched. */
const char *policy_tls_identity(const struct rn_snapshot *s, const struct rn_connector *c,
                                const unsigned char *sha256, struct token *t);

/* Connection limits at accept (§4.2). `total` and `from_source` count sessions already open
 * on this connector (excluding the new one). */
void policy_connect_limits(const struct rn_connector *c, uint64_t total, uint64_t from_source,
                           struct verdict *v);

/* After AUTH: a token whose rights lack Submit fails with 535 5.7.3 (§2.2). */
void policy_auth_result(const struct rights_eval *r, struct verdict *v);

/* MAIL FROM, in Exchange's order (§10 step 8): RequireTLS without TLS (451 5.7.3, close) ->
 * Submit (530 5.7.1 anonymous / 550 5.7.1 authenticated, close) -> SIZE= against
 * MaxMessageSize unless Bypass-Message-Size-Limit (552 5.3.4). size 0 = no SIZE=. */
void policy_mail(const struct rn_connector *c, const struct rights_eval *r,
                 const struct token *t, bool tls, uint64_t size, struct verdict *v);

/* Sender-specified routing: the local part of addr (quotes and backslash escapes undone)
 * holds '%', '!' or '@' (user%host@domain, host!user@domain, "user@host"@domain). */
bool policy_rcpt_routed(const char *addr);
/* RCPT TO (§10 step 9): nrcpt recipients already accepted; MaxRecipientsPerMessage unless
 * Bypass-Message-Size-Limit (452 4.5.3); then a routed local part (policy_rcpt_routed) or a
 * recipient whose domain is not an accepted domain needs Accept-Any-Recipient (550 5.7.1
 * Unable to relay). A recipient in an Authoritative domain with AddressBookEnabled must be
 * in s->recipients (postmaster excepted), else 550 5.1.10 RESOLVER.ADR.RecipientNotFound;
 * InternalRelay and ExternalRelay domains are not looked up (Exchange's recipient lookup).
 * `rcpt` is the address (local@domain); a bare postmaster has no domain
 * and is always local (the session rewrites it to the default domain's postmaster first). */
void policy_rcpt(const struct rn_snapshot *s, const struct rn_connector *c,
                 const struct rights_eval *r, const char *rcpt, uint64_t nrcpt,
                 struct verdict *v);

/* Message bytes so far against MaxMessageSize unless Bypass-Message-Size-Limit. */
void policy_message_size(const struct rn_connector *c, const struct rights_eval *r,
                         uint64_t bytes, struct verdict *v);
/* End of headers: header bytes against MaxHeaderSize (552 5.3.4 Header size exceeds fixed
 * maximum size) unless Bypass-Message-Size-Limit; Received: count against MaxHopCount
 * (554 5.4.6). */
void policy_headers(const struct rn_connector *c, const struct rights_eval *r,
                    uint64_t header_bytes, uint64_t received_count, struct verdict *v);

/* Sender check (§2.3) for the envelope (P1) or header (P2) sender; "" (null path) passes.
 * internal = the domain is Authoritative or InternalRelay. Accept-Any-Sender covers only
 * non-internal domains; Accept-Authoritative-Domain-Sender covers internal ones; an
 * authenticated token holding neither may use the addresses it owns (owned[], its mail and
 * aliases, case-insensitive). Refusal: 550 5.7.1 (Anonymous) client does not have
 * permissions to send as this sender. */
void policy_sender(const struct rn_snapshot *s, const struct rights_eval *r,
                   const struct token *t, const char *sender, const char *const *owned,
                   size_t nowned, struct verdict *v);

/* Auth category stamped on the message (§9.3): "Anonymous", "Internal" or "Partner". */
const char *policy_auth_as(const struct rights_eval *r, const struct token *t);
#endif
