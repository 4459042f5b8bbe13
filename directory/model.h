/* model: the configuration one node runs with, as loaded from the directory: receive
 * connectors (with their ACEs), accepted domains, send connectors, the node and its site.
 * A snapshot is immutable once built and reference-counted: sessions keep the one they
 * started with while a reload swaps in the next (docs/architecture.md §3). */
#ifndef RN_MODEL_H
#define RN_MODEL_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "directory/ace.h"
#include "directory/ipr.h"
#include "directory/rcptset.h"
#include "directory/secdesc.h"

#define RN_UNLIMITED UINT64_MAX   /* a limit attribute that is absent or "unlimited" */

/* Auth mechanisms (msExchSMTPReceiveInboundSecurityFlag bits, §3.1). */
enum {
    AUTH_NONE = 0, AUTH_TLS = 1, AUTH_INTEGRATED = 2, AUTH_BASIC = 4,
    AUTH_BASIC_REQUIRE_TLS = 8, AUTH_EXCHANGE_SERVER = 16, AUTH_EXTERNAL_AUTHORITATIVE = 32
};
int auth_mech_lookup(const char *name);                 /* bit, or -1 if unknown */
size_t auth_mechs_format(unsigned mechs, char *buf, size_t len);   /* "Tls, BasicAuth" / "None" */

struct rn_connector {
    char *dn, *name;               /* owned */
    bool site_scoped;              /* hangs under the site (all its nodes) rather than the node */
    bool enabled;
    ipr_binding *bindings; size_t nbindings;   /* owned */
    ipr_range *ranges; size_t nranges;         /* owned */
    unsigned auth;                 /* AUTH_* bits */
    char *fqdn;                    /* NULL: the node's host name */
    char *banner;                  /* NULL: default "220 <fqdn> ..." banner */
    char *comment;
    bool require_tls;
    bool milter_enabled;           /* relayMilterEnabled: messages go through the node's milters */
    bool domain_secure;            /* DomainSecureEnabled: partners by certificate (§3.3) */
    uint64_t max_message_size;     /* bytes */
    uint64_t max_header_size;      /* bytes */
    uint64_t max_recipients;
    uint64_t max_hop_count, max_local_hop_count;
    uint64_t connection_timeout;   /* seconds, absolute session lifetime */
    uint64_t inactivity_timeout;   /* seconds */
    uint64_t max_inbound, max_inbound_per_source, max_inbound_pct_per_source;
    uint64_t max_logon_failures, max_protocol_errors;
    uint64_t message_rate_limit;   /* messages per minute per source */
    uint64_t tarpit_interval;      /* seconds a 5xx to an anonymous session waits; 0 = off */
    unsigned protocol_logging;     /* 0 None, 1 Verbose */
    struct ace *aces; size_t naces;  /* owned: the security descriptor */
    char *tls_cert_name;           /* owned; NULL: the node certificate. A file name stem in
                                    * tls_cert_dir ([A-Za-z0-9._-], no leading '.') */
};

/* A parsed connector shared by successive snapshots (snapdelta.h keeps one per entry): a
 * snapshot that lists it holds a reference and a shallow copy of c, so an unchanged
 * connector is neither copied nor freed per build. Immutable once shared; the last
 * connector_body_release frees c's parts. */
struct rn_connector_body {
    int refs;                      /* atomic */
    struct rn_connector c;         /* owned */
};
/* A body owning *c's parts (moved: *c is left empty), one reference. */
struct rn_connector_body *connector_body_new(struct rn_connector *c);
struct rn_connector_body *connector_body_ref(struct rn_connector_body *b);   /* +1, b */
void connector_body_release(struct rn_connector_body **b);   /* -1, frees at 0; *b = NULL */

enum rn_domain_type { DOMAIN_AUTHORITATIVE, DOMAIN_INTERNAL_RELAY, DOMAIN_EXTERNAL_RELAY };

struct rn_domain {
    char *dn;
    char *domain;                  /* lowercase; "*.example.com" matches subdomains only */
    enum rn_domain_type type;
    bool is_default;               /* relayDefaultDomain TRUE: bare postmaster goes here */
    bool address_book_off;         /* relayAddressBookEnabled FALSE (Exchange's
                                    * AddressBookEnabled); default on: an Authoritative
                                    * domain's recipients are looked up (domain_lookup_on) */
};

struct rn_sendconn {
    char *dn, *name;
    bool enabled;
    char **address_spaces; size_t naddress_spaces;   /* domain patterns ("*" = all) */
    char **smart_hosts; size_t nsmart_hosts;         /* host[:port]; none = DNS MX */
    uint64_t cost;
    bool require_tls;
};

/* A relayNode of the organisation with the SHA-256 of its certificate (relayCertificateSha256):
 * a client presenting that certificate during STARTTLS on an ExchangeServer connector is
 * that node (docs/permission-model.md §3.3). One per fingerprint (a node may list several,
 * for a certificate rollover). */
struct rn_node_cert {
    char *dn, *name;               /* owned */
    unsigned char sha256[32];
};

struct rn_snapshot {
    int refs;                      /* atomic; snapshot_ref/snapshot_unref */
    char *version;                 /* the directory's contextCSN (or a load stamp); owned */
    uint64_t content_hash;         /* FNV-1a of every entry the load read (DNs, attributes,
                                    * values): tells a change the version missed */
    char *node_name, *node_dn, *site_dn;
    struct rn_connector *connectors; size_t nconnectors;  /* loaded, valid ones only */
    struct rn_connector_body **connector_bodies;  /* owned references, NULL or one per
                                    * connector: then connectors[i] is a shallow copy of
                                    * connector_bodies[i]->c and owns none of its parts */
    struct rn_domain *domains; size_t ndomains;
    struct rn_sendconn *sendconns; size_t nsendconns;
    struct rn_node_cert *node_certs; size_t nnode_certs;   /* owned; every relayNode's */
    char **partner_domains; size_t npartner_domains;       /* owned; relayDomainSecureDomain
                                    * of the relay base's containers, lowercase, sorted */
    char **errors; size_t nerrors; /* why entries were refused ("<dn>: <attr>: <reason>") */
    struct rcptset *recipients;    /* owned, frozen: every mail and relayMailAlias under
                                    * user_base; NULL when no domain has lookup on */
    void *select_index;            /* owned, one block: policy_index() builds it once the
                                    * connectors are final; NULL = policy_select scans */
    void *domain_index;            /* owned, one block: snapshot_index_domains() builds it
                                    * once the domains are final; NULL = snapshot_find_domain
                                    * scans */
    /* AD profile (adload.c): the per-forest Exchange groups' objectSids (Exchange Servers,
     * ExchangeLegacyInterop) the ACEs were mapped with, so AUTH maps a user's tokenGroups
     * with the same map (aduser.c) without reading them again. exchange_groups_ok: the load
     * read them (every group found has a SID that parses); false (the relay profile, or a
     * malformed objectSid) makes an AD AUTH fail closed. */
    struct sd_sidmap exchange_groups[2]; size_t nexchange_groups;
    bool exchange_groups_ok;
    struct rn_snapshot *same;      /* a reference, or NULL: this snapshot is `same` under
                                    * another version (snapshot_relabel), every part but
                                    * refs, version and same a shallow copy owned by it */
};

struct rn_snapshot *snapshot_new(void);                  /* refs = 1, empty */
struct rn_snapshot *snapshot_ref(struct rn_snapshot *s); /* +1, returns s */
void snapshot_unref(struct rn_snapshot **s);             /* -1, frees at 0, sets *s = NULL */
/* A snapshot with s's content under version: a directory change that left everything this
 * node uses as it was (another node's connector) moves the version on without a rebuild.
 * Shares s's parts (holds a reference to s, or to what s shares); refs = 1. */
struct rn_snapshot *snapshot_relabel(struct rn_snapshot *s, const char *version);
void snapshot_add_error(struct rn_snapshot *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Default values (schema README); used by the loader for absent attributes. */
void connector_defaults(struct rn_connector *c);
void connector_clear(struct rn_connector *c);
void domain_clear(struct rn_domain *d);
void sendconn_clear(struct rn_sendconn *s);

/* The accepted domain that covers `domain` (exact match first, then the longest "*." one),
 * or NULL. Case-insensitive; a trailing dot is ignored. With s->domain_index it costs one
 * hash probe per label of `domain`, else a scan of every domain; the answer is the same. */
const struct rn_domain *snapshot_find_domain(const struct rn_snapshot *s, const char *domain);
/* Build s->domain_index (replacing any) from s->domains: two open-addressing hash tables,
 * exact names and the suffixes of "*." names, each holding the first of equal names as the
 * scan would find it. Call once the domain list is final (the loader does, before the
 * snapshot is shared); any later change to s->domains must call it again. */
void snapshot_index_domains(struct rn_snapshot *s);
/* The default accepted domain (relayDefaultDomain, at most one after the loader's checks),
 * or NULL when none is marked. */
const struct rn_domain *snapshot_default_domain(const struct rn_snapshot *s);
/* Recipient lookup applies to d (Exchange: Authoritative and AddressBookEnabled). */
bool domain_lookup_on(const struct rn_domain *d);
/* Some accepted domain of s has recipient lookup on: the loader must load s->recipients. */
bool snapshot_needs_recipients(const struct rn_snapshot *s);
/* Whether domain (any case, a trailing dot ignored) is a domain-secure partner domain. */
bool snapshot_partner_domain(const struct rn_snapshot *s, const char *domain);
/* The node whose relayCertificateSha256 is sha256, or NULL. */
const struct rn_node_cert *snapshot_find_node_cert(const struct rn_snapshot *s,
                                                   const unsigned char sha256[32]);
const struct rn_connector *snapshot_find_connector(const struct rn_snapshot *s, const char *name);
#endif
