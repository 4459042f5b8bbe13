/* policy: Exchange's relay decisions (policy.h). Each check answers a verdict with the exact
 * reply from the SmtpResponse catalogue (docs/permission-model.md §6), in the order the 2013 code
 * meets them (§10), plus the right it turned on and the ACE that granted or denied that right
 * so `relayctl explain` can print why. Nothing here allocates: selection is a binary search in
 * the table policy_index (policyindex.c) builds once per snapshot at load time.
 * Checks that pass without a reply of their own (connect limits, message and header size,
 * sender) answer "250 2.0.0 OK" so a caller that prints every verdict prints something true. */
#include "directory/policy.h"
#include "directory/policy-private.h"
#include "directory/base/util.h"
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---- verdicts ---- */

static void verdict_set(struct verdict *v, bool ok, int code, const char *enh, const char *text,
                        bool close, uint32_t right, int ace, const char *why)
{
    v->ok = ok;
    v->code = code;
    v->enh = enh;
    v->text = text;
    v->close = close;
    v->right = right;
    v->ace = ace;
    v->why = why;
}

static void pass(struct verdict *v, uint32_t right, int ace, const char *why)
{
    verdict_set(v, true, 250, "2.0.0", "OK", false, right, ace, why);
}

static bool has(const struct rights_eval *r, uint32_t bit)
{
    return (r->effective & bit) != 0;
}

/* The ACE that decided `bit` for this token: the deny when one applies (deny wins), else the
 * first allow, else -1 (the right is simply absent). */
static int deciding_ace(const struct rights_eval *r, uint32_t bit)
{
    unsigned i = (unsigned)__builtin_ctz(bit);
    if (r->denied & bit)
        return r->deny_ace[i];
    return (r->allowed & bit) ? r->grant_ace[i] : -1;
}

/* Anonymous = ANONYMOUS LOGON alone and no AUTH. Externally Secured Servers and Partner
 * Servers are not anonymous (§3.3, §9.3). */
static bool token_anonymous(const struct token *t)
{
    return !t->authenticated && (t->wk & ~(1u << WK_ANONYMOUS)) == 0;
}

/* ---- connector selection (§4.1) ---- */

static const struct sel_group *group_find(const struct sel_index *x, bool v4, uint16_t port,
                                          bool wildcard, const ipr_addr *ip)
{
    size_t lo = 0, hi = x->ngroups;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = key_cmp(v4, port, wildcard, ip, &x->groups[mid]);
        if (c == 0)
            return &x->groups[mid];
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return NULL;
}

/* The winner of group g for remote address a: last segment starting at or below a. */
static const struct sel_seg *seg_find(const struct sel_index *x, const struct sel_group *g,
                                      const ipr_addr *a)
{
    const struct sel_seg *seg = x->segs + g->first;
    size_t lo = 0, hi = g->count;   /* segs[0].start is ::, so the answer exists */
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (memcmp(seg[mid].start.b, a->b, sizeof a->b) <= 0)
            lo = mid;
        else
            hi = mid;
    }
    return seg[lo].conn >= 0 ? &seg[lo] : NULL;
}

/* Selection by scan, exactly as §4.1 states it; used when no index was built. */
static void select_scan(const struct rn_snapshot *s, const ipr_addr *local, uint16_t port,
                        const ipr_addr *remote, bool v4, const struct rn_connector **ca,
                        const ipr_range **ra, const struct rn_connector **cb,
                        const ipr_range **rb)
{
    for (size_t i = 0; i < s->nconnectors; i++) {
        const struct rn_connector *c = &s->connectors[i];
        if (!c->enabled)
            continue;
        bool exact = false, wild = false;
        for (size_t k = 0; k < c->nbindings; k++) {
            const ipr_binding *b = &c->bindings[k];
            if (b->port != port || b->v4 != v4)
                continue;
            if (b->wildcard)
                wild = true;
            else if (memcmp(b->ip.b, local->b, sizeof local->b) == 0)
                exact = true;
        }
        if (!exact && !wild)
            continue;
        const ipr_range *best = NULL;
        for (size_t k = 0; k < c->nranges; k++)
            if (ipr_range_contains(&c->ranges[k], remote, v4) &&
                (!best || ipr_range_cmp_size(&c->ranges[k], best) < 0))
                best = &c->ranges[k];
        if (!best)
            continue;
        if (exact && (!*ca || ipr_range_cmp_size(best, *ra) < 0)) {
            *ca = c;
            *ra = best;
        }
        if (wild && (!*cb || ipr_range_cmp_size(best, *rb) < 0)) {
            *cb = c;
            *rb = best;
        }
    }
}

const struct rn_connector *policy_select(const struct rn_snapshot *s, const ipr_addr *local,
                                         uint16_t local_port, const ipr_addr *remote, bool v4,
                                         struct verdict *v)
{
    const struct rn_connector *ca = NULL, *cb = NULL;
    const ipr_range *ra = NULL, *rb = NULL;
    const struct sel_index *x = s->select_index;
    if (x) {
        static const ipr_addr none;
        const struct sel_group *g = group_find(x, v4, local_port, false, local);
        const struct sel_seg *sa = g ? seg_find(x, g, remote) : NULL;
        g = group_find(x, v4, local_port, true, &none);
        const struct sel_seg *sb = g ? seg_find(x, g, remote) : NULL;
        if (sa) {
            ca = &s->connectors[sa->conn];
            ra = &ca->ranges[sa->range];
        }
        if (sb) {
            cb = &s->connectors[sb->conn];
            rb = &cb->ranges[sb->range];
        }
    } else {
        select_scan(s, local, local_port, remote, v4, &ca, &ra, &cb, &rb);
    }
    const struct rn_connector *c;
    const char *why;
    if (ca && (!cb || ipr_range_cmp_size(ra, rb) <= 0)) {
        c = ca;
        why = cb ? "exact local address binding; its range is no larger than the wildcard's"
                 : "exact local address binding";
    } else if (cb) {
        c = cb;
        why = ca ? "wildcard binding with a strictly smaller remote range"
                 : "wildcard binding";
    } else {
        verdict_set(v, false, 421, "4.3.2", "Service not available", true, 0, -1,
                    "no enabled connector binds this endpoint with a range holding the client");
        return NULL;
    }
    verdict_set(v, true, 250, "2.0.0", "OK", false, 0, -1, why);
    return c;
}

/* ---- session stages ---- */

void policy_initial_token(const struct rn_connector *c, struct token *t)
{
    if (c->auth & AUTH_EXTERNAL_AUTHORITATIVE)
        token_init_externally_secured(t);
    else
        token_init_anonymous(t);
}

const char *policy_tls_identity(const struct rn_snapshot *s, const struct rn_connector *c,
                                const unsigned char *sha256, struct token *t)
{
    if (!(c->auth & AUTH_EXCHANGE_SERVER))
        return "connector-without-ExchangeServer";
    if (!sha256)
        return "no-certificate";
    const struct rn_node_cert *nc = snapshot_find_node_cert(s, sha256);
    if (!nc)
        return "not-a-node-certificate";
    return token_init_exchange_server(t, nc->name, nc->dn) == 0 ? NULL : "node-dn-invalid";
}

static const char TOTAL_TEXT[] = "The maximum number of concurrent server connections has "
                                 "exceeded a limit, closing transmission channel";
static const char SOURCE_TEXT[] = "The maximum number of concurrent connections has exceeded "
                                  "a limit, closing transmission channel";

void policy_connect_limits(const struct rn_connector *c, uint64_t total, uint64_t from_source,
                           struct verdict *v)
{
    /* The counts exclude the new session, so it is one too many when count + 1 > limit. */
    if (c->max_inbound != RN_UNLIMITED && total >= c->max_inbound) {
        verdict_set(v, false, 421, "4.3.2", TOTAL_TEXT, true, 0, -1,
                    "MaxInboundConnection reached on this connector");
        return;
    }
    if (c->max_inbound_per_source != RN_UNLIMITED && from_source >= c->max_inbound_per_source) {
        verdict_set(v, false, 421, "4.3.2", SOURCE_TEXT, true, 0, -1,
                    "MaxInboundConnectionPerSource reached for this client");
        return;
    }
    /* §4.2 percentage rule: one source may hold at most ceil(remaining x pct / 100) of what
     * is left of MaxInboundConnection (remaining = limit - sessions already open). */
    if (c->max_inbound != RN_UNLIMITED) {
        uint64_t pct = c->max_inbound_pct_per_source;
        uint64_t remaining = c->max_inbound - total;
        uint64_t allowed = pct == 0 ? 0 : (remaining * pct + 99) / 100;
        if (from_source + 1 > allowed) {
            verdict_set(v, false, 421, "4.3.2", SOURCE_TEXT, true, 0, -1,
                        "MaxInboundConnectionPercentagePerSource of the remaining connections "
                        "reached for this client");
            return;
        }
    }
    pass(v, 0, -1, "within the connection limits");
}

void policy_auth_result(const struct rights_eval *r, struct verdict *v)
{
    if (has(r, R_SUBMIT))
        verdict_set(v, true, 235, "2.7.0", "Authentication successful", false, R_SUBMIT,
                    deciding_ace(r, R_SUBMIT), "credentials accepted and the token holds Submit");
    else
        verdict_set(v, false, 535, "5.7.3", "Authentication unsuccessful", false, R_SUBMIT,
                    deciding_ace(r, R_SUBMIT),
                    "the authenticated token lacks ms-Exch-SMTP-Submit on this connector");
}

void policy_mail(const struct rn_connector *c, const struct rights_eval *r,
                 const struct token *t, bool tls, uint64_t size, struct verdict *v)
{
    if (c->require_tls && !tls) {
        verdict_set(v, false, 451, "5.7.3", "STARTTLS is required to send mail", true, 0, -1,
                    "the connector has RequireTLS and the session is not encrypted");
        return;
    }
    int sub = deciding_ace(r, R_SUBMIT);
    if (!has(r, R_SUBMIT)) {
        if (token_anonymous(t))
            verdict_set(v, false, 530, "5.7.1", "Client was not authenticated", true, R_SUBMIT,
                        sub, "anonymous session without ms-Exch-SMTP-Submit");
        else
            verdict_set(v, false, 550, "5.7.1",
                        "Client does not have permissions to submit to this server", true,
                        R_SUBMIT, sub, "the token lacks ms-Exch-SMTP-Submit");
        return;
    }
    if (size > 0 && c->max_message_size != RN_UNLIMITED && size > c->max_message_size) {
        if (!has(r, R_BYPASS_SIZE_LIMIT)) {
            verdict_set(v, false, 552, "5.3.4", "Message size exceeds fixed maximum message size",
                        false, R_BYPASS_SIZE_LIMIT, deciding_ace(r, R_BYPASS_SIZE_LIMIT),
                        "SIZE= is above MaxMessageSize");
            return;
        }
        verdict_set(v, true, 250, "2.1.0", "Sender OK", false, R_BYPASS_SIZE_LIMIT,
                    deciding_ace(r, R_BYPASS_SIZE_LIMIT),
                    "SIZE= is above MaxMessageSize; ms-Exch-Bypass-Message-Size-Limit lifts it");
        return;
    }
    verdict_set(v, true, 250, "2.1.0", "Sender OK", false, R_SUBMIT, sub,
                "ms-Exch-SMTP-Submit granted");
}

/* The domain of an address (after the last '@'), or NULL when there is none. */
static const char *addr_domain(const char *addr)
{
    const char *at = strrchr(addr, '@');
    return at ? at + 1 : NULL;
}

bool policy_rcpt_routed(const char *addr)
{
    const char *at = strrchr(addr, '@');
    size_t len = at ? (size_t)(at - addr) : strlen(addr);
    bool quoted = false;
    for (size_t i = 0; i < len; i++) {
        char ch = addr[i];
        if (quoted && ch == '\\' && i + 1 < len) {
            ch = addr[++i];            /* an escaped byte counts as itself */
        } else if (ch == '"') {
            quoted = !quoted;
            continue;
        }
        if (ch == '@' || ch == '%' || ch == '!')
            return true;
    }
    return false;
}

/* Recipient lookup in an Authoritative domain with AddressBookEnabled (§6): the address
 * must be one of the directory's mail-enabled objects, held in the snapshot (never a
 * directory call here). postmaster@ an accepted domain is always accepted (RFC 5321
 * §4.5.1). A snapshot without a set (none loaded) knows nobody: fail closed. */
static void rcpt_lookup(const struct rn_snapshot *s, const char *rcpt, const char *dom,
                        struct verdict *v)
{
    size_t local_len = (size_t)(dom - 1 - rcpt);
    if (local_len == 10 && rn_strnieq(rcpt, "postmaster", 10))
        verdict_set(v, true, 250, "2.1.5", "Recipient OK", false, 0, -1,
                    "postmaster is always accepted");
    else if (rcptset_has(s->recipients, rcpt))
        verdict_set(v, true, 250, "2.1.5", "Recipient OK", false, 0, -1,
                    "Authoritative domain: the recipient is a mail-enabled object in the "
                    "directory");
    else
        verdict_set(v, false, 550, "5.1.10", "RESOLVER.ADR.RecipientNotFound; Recipient not "
                    "found by SMTP address lookup", false, 0, -1,
                    "Authoritative domain with AddressBookEnabled: no mail-enabled object in "
                    "the directory has this address");
}

void policy_rcpt(const struct rn_snapshot *s, const struct rn_connector *c,
                 const struct rights_eval *r, const char *rcpt, uint64_t nrcpt,
                 struct verdict *v)
{
    if (c->max_recipients != RN_UNLIMITED && nrcpt >= c->max_recipients &&
        !has(r, R_BYPASS_SIZE_LIMIT)) {
        verdict_set(v, false, 452, "4.5.3", "Too many recipients", false, R_BYPASS_SIZE_LIMIT,
                    deciding_ace(r, R_BYPASS_SIZE_LIMIT),
                    "MaxRecipientsPerMessage reached");
        return;
    }
    int ace = deciding_ace(r, R_ACCEPT_ANY_RECIPIENT);
    if (policy_rcpt_routed(rcpt) && !has(r, R_ACCEPT_ANY_RECIPIENT)) {
        /* user%host@accepted, host!user@accepted, "user@host"@accepted: a next hop that
         * honours the route would relay for anyone (Postfix reject_unauth_destination with
         * allow_untrusted_routing = no refuses them the same way). */
        verdict_set(v, false, 550, "5.7.1", "Unable to relay", false, R_ACCEPT_ANY_RECIPIENT,
                    ace, "sender-specified routing (%, ! or @ in the local part) needs "
                    "ms-Exch-SMTP-Accept-Any-Recipient");
        return;
    }
    const char *dom = addr_domain(rcpt);
    const struct rn_domain *ad = NULL;
    bool local;
    if (!dom)
        local = rn_strieq(rcpt, "postmaster");   /* RFC 5321 §4.5.1: always accepted */
    else
        local = *dom && *dom != '[' && (ad = snapshot_find_domain(s, dom)) != NULL;
    if (ad && domain_lookup_on(ad)) {
        rcpt_lookup(s, rcpt, dom, v);
        return;
    }
    if (local) {
        verdict_set(v, true, 250, "2.1.5", "Recipient OK", false, 0, -1,
                    dom ? "the recipient's domain is an accepted domain"
                        : "postmaster is always accepted");
        return;
    }
    if (has(r, R_ACCEPT_ANY_RECIPIENT))
        verdict_set(v, true, 250, "2.1.5", "Recipient OK", false, R_ACCEPT_ANY_RECIPIENT, ace,
                    "relay granted by ms-Exch-SMTP-Accept-Any-Recipient");
    else
        verdict_set(v, false, 550, "5.7.1", "Unable to relay", false, R_ACCEPT_ANY_RECIPIENT, ace,
                    "the recipient's domain is not accepted and the token lacks "
                    "ms-Exch-SMTP-Accept-Any-Recipient");
}

void policy_message_size(const struct rn_connector *c, const struct rights_eval *r,
                         uint64_t bytes, struct verdict *v)
{
    int ace = deciding_ace(r, R_BYPASS_SIZE_LIMIT);
    if (c->max_message_size == RN_UNLIMITED || bytes <= c->max_message_size)
        pass(v, 0, -1, "within MaxMessageSize");
    else if (has(r, R_BYPASS_SIZE_LIMIT))
        pass(v, R_BYPASS_SIZE_LIMIT, ace,
             "above MaxMessageSize; ms-Exch-Bypass-Message-Size-Limit lifts it");
    else
        verdict_set(v, false, 552, "5.3.4", "Message size exceeds fixed maximum message size",
                    false, R_BYPASS_SIZE_LIMIT, ace, "the message is above MaxMessageSize");
}

void policy_headers(const struct rn_connector *c, const struct rights_eval *r,
                    uint64_t header_bytes, uint64_t received_count, struct verdict *v)
{
    int ace = deciding_ace(r, R_BYPASS_SIZE_LIMIT);
    bool big = c->max_header_size != RN_UNLIMITED && header_bytes > c->max_header_size;
    if (big && !has(r, R_BYPASS_SIZE_LIMIT)) {
        verdict_set(v, false, 552, "5.3.4", "Header size exceeds fixed maximum size", false,
                    R_BYPASS_SIZE_LIMIT, ace, "the header is above MaxHeaderSize");
        return;
    }
    if (c->max_hop_count != RN_UNLIMITED && received_count > c->max_hop_count) {
        verdict_set(v, false, 554, "5.4.6", "Hop count exceeded - possible mail loop", false, 0,
                    -1, "more Received: headers than MaxHopCount");
        return;
    }
    if (big)
        pass(v, R_BYPASS_SIZE_LIMIT, ace,
             "above MaxHeaderSize; ms-Exch-Bypass-Message-Size-Limit lifts it");
    else
        pass(v, 0, -1, "header size and hop count within limits");
}

static bool owns(const char *sender, const char *const *owned, size_t nowned)
{
    for (size_t i = 0; owned && i < nowned; i++)
        if (owned[i] && rn_strieq(owned[i], sender))
            return true;
    return false;
}

/* dom is d or a host within it (case-insensitive). */
static bool in_domain(const char *dom, const char *d)
{
    size_t n = strlen(dom), k = strlen(d);
    return n >= k && strcasecmp(dom + n - k, d) == 0 && (n == k || dom[n - k - 1] == '.');
}

void policy_sender(const struct rn_snapshot *s, const struct rights_eval *r,
                   const struct token *t, const char *sender, const char *const *owned,
                   size_t nowned, struct verdict *v)
{
    if (!sender || !*sender) {
        pass(v, 0, -1, "null reverse path: nothing to check");
        return;
    }
    const char *text = token_anonymous(t)
        ? "Anonymous client does not have permissions to send as this sender"
        : "Client does not have permissions to send as this sender";
    const char *dom = addr_domain(sender);
    if (!dom || !*dom || dom == sender + 1) {
        verdict_set(v, false, 550, "5.7.1", text, false, 0, -1,
                    "the sender address is not valid");
        return;
    }
    const struct rn_domain *d = *dom == '[' ? NULL : snapshot_find_domain(s, dom);
    bool internal = d && (d->type == DOMAIN_AUTHORITATIVE || d->type == DOMAIN_INTERNAL_RELAY);
    if (!internal && has(r, R_ACCEPT_ANY_SENDER)) {
        pass(v, R_ACCEPT_ANY_SENDER, deciding_ace(r, R_ACCEPT_ANY_SENDER),
             "a sender outside the internal domains, allowed by ms-Exch-SMTP-Accept-Any-Sender");
        return;
    }
    if (internal && has(r, R_ACCEPT_AUTHDOM_SENDER)) {
        pass(v, R_ACCEPT_AUTHDOM_SENDER, deciding_ace(r, R_ACCEPT_AUTHDOM_SENDER),
             "an internal sender, allowed by ms-Exch-SMTP-Accept-Authoritative-Domain-Sender");
        return;
    }
    /* Exchange's Send-As check on the authenticated account (§2.3): a user may always send
     * as an address that is its own, and a domain-secure partner as its own domain. */
    if (t->authenticated && owns(sender, owned, nowned)) {
        pass(v, 0, -1, "the sender is one of the authenticated user's own addresses");
        return;
    }
    if ((t->wk & (1u << WK_PARTNER)) && t->name && in_domain(dom, t->name)) {
        pass(v, 0, -1, "a domain-secure partner sending from its own domain");
        return;
    }
    uint32_t right = internal ? R_ACCEPT_AUTHDOM_SENDER : R_ACCEPT_ANY_SENDER;
    verdict_set(v, false, 550, "5.7.1", text, false, right, deciding_ace(r, right),
                internal ? "an internal sender domain needs "
                           "ms-Exch-SMTP-Accept-Authoritative-Domain-Sender"
                         : "a sender outside the internal domains needs "
                           "ms-Exch-SMTP-Accept-Any-Sender");
}

const char *policy_auth_as(const struct rights_eval *r, const struct token *t)
{
    if (t->wk & (1u << WK_PARTNER))
        return "Partner";
    if (!token_anonymous(t) &&
        (!has(r, R_ACCEPT_ANY_SENDER | R_ACCEPT_AUTHDOM_SENDER) || has(r, R_ACCEPT_AUTH_FLAG)))
        return "Internal";
    return "Anonymous";
}
