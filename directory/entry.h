/* entry: a directory entry as plain values (a DN and its attributes, in the order the
 * server sent them), and the one parser that turns an entry into the model: receive
 * connectors, accepted domains and send connectors. The loader (directory/ldap) converts each
 * search result to a dir_entry and calls these; relayctl calls the same functions on the
 * entry it is about to write, so it refuses exactly what the loader would refuse. Pure: no
 * I/O, no libldap. Parser messages are "<attr>: <reason>"; the caller prefixes the DN. */
#ifndef RN_ENTRY_H
#define RN_ENTRY_H
#include <stdbool.h>
#include <stddef.h>
#include "directory/model.h"

/* One attribute and its values, as read from or written to the directory. */
struct dir_attr {
    char *name;                   /* attribute type as written; owned */
    char **values; size_t nvalues;/* owned (each value and the array) */
};

/* One entry: a DN and its attributes (names compare case-insensitively, values exactly). */
struct dir_entry {
    char *dn;                     /* owned */
    struct dir_attr *attrs; size_t nattrs;   /* owned */
};

struct dir_entries { struct dir_entry *v; size_t n; };   /* owned */
void dir_entries_clear(struct dir_entries *es);

/* Set a to name with copies of values[0..n) (a's old contents are not freed). */
void dir_attr_set(struct dir_attr *a, const char *name, const char *const *values, size_t n);
void dir_attr_clear(struct dir_attr *a);                    /* frees members; reusable */
bool dir_attr_has(const struct dir_attr *a, const char *value);   /* exact match */

void dir_entry_init(struct dir_entry *e, const char *dn);
void dir_entry_clear(struct dir_entry *e);                  /* frees members; reusable */
void dir_entry_copy(struct dir_entry *dst, const struct dir_entry *src);   /* deep; dst owns */
/* The attribute by name (case-insensitive), or NULL when absent or without values. */
const struct dir_attr *dir_entry_get(const struct dir_entry *e, const char *name);
/* First value of name, or NULL. */
const char *dir_entry_first(const struct dir_entry *e, const char *name);
/* Replace every value of name with values[0..n) (n = 0 removes the attribute). */
void dir_entry_set(struct dir_entry *e, const char *name, const char *const *values, size_t n);
void dir_entry_set1(struct dir_entry *e, const char *name, const char *value);  /* NULL: remove */
/* Append one value (exact duplicates are not added twice). */
void dir_entry_add(struct dir_entry *e, const char *name, const char *value);
/* Remove one value (exact match); false when it was not there. */
bool dir_entry_remove(struct dir_entry *e, const char *name, const char *value);

/* ---- the parser: one function per entry kind ---- */

/* A relayReceiveConnector entry: defaults, then every attribute in entry order through the
 * connattr table (an unknown relay* attribute is refused), then validate_connector. -1 with
 * the first failure; c is filled with everything that did parse either way (relayctl audit
 * inspects a refused connector), and the caller connector_clear()s it in both cases. */
int connector_from_entry(const struct dir_entry *e, bool site_scoped, struct rn_connector *c,
                         char *err, size_t errlen);

/* A relayAcceptedDomain entry: exactly one relayDomainName (domain_name_check, "*." allowed)
 * and one relayDomainType (Authoritative, InternalRelay, ExternalRelay, any case), at most
 * one relayDefaultDomain TRUE/FALSE (TRUE refused on a "*." name), at most one
 * relayAddressBookEnabled TRUE/FALSE (absent = TRUE); no other relay* attribute. -1 with the first failure; the caller domain_clear()s dom either way. */
int domain_from_entry(const struct dir_entry *e, struct rn_domain *dom, char *err,
                      size_t errlen);

/* sc = a send connector named by e's cn, enabled, cost 1, nothing else set (both profiles'
 * loaders start here); sendconn_clear frees it. */
void sendconn_init(const struct dir_entry *e, struct rn_sendconn *sc);
/* A relaySendConnector entry: relayAddressSpace (one or more; domain_name_check with "*."
 * and "*"), relaySmartHost (smarthost_check; none = DNS MX), relayCost 1..100 (default 1),
 * relayEnabled (default TRUE) and relayRequireTLS as TRUE/FALSE; no other relay* attribute.
 * -1 at the first failure; the caller sendconn_clear()s sc either way. */
int sendconn_from_entry(const struct dir_entry *e, struct rn_sendconn *sc, char *err,
                        size_t errlen);

/* A certificate fingerprint as stored in relayCertificateSha256: 64 hex digits (any case),
 * optionally in colon-separated pairs (openssl x509 -fingerprint -sha256). -1 otherwise. */
int cert_sha256_parse(const char *text, unsigned char out[32]);
/* The lowercase 64-digit form relayctl writes; buf needs 65 bytes. */
void cert_sha256_format(const unsigned char sha256[32], char buf[65]);
/* A relayNode entry's relayCertificateSha256 values appended to *v (*n entries, grown here),
 * one per fingerprint with the entry's DN and cn. -1 at the first malformed value, and then
 * nothing of this entry is appended (a half-read node never authenticates). */
int nodecert_from_entry(const struct dir_entry *e, struct rn_node_cert **v, size_t *n,
                        char *err, size_t errlen);
/* The relayDomainSecureDomain values of a relayContainer entry appended to *v (*n, grown
 * here) in their stored form (domain_name_check: lowercase, no trailing dot, no wildcard).
 * -1 at the first malformed value, with the values before it kept: a value that is not a
 * domain can name no partner, so leaving it out grants nothing. */
int partner_domains_from_entry(const struct dir_entry *e, char ***v, size_t *n, char *err,
                               size_t errlen);
#endif
