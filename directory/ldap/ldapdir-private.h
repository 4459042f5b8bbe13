/* ldapdir-private: what the files of directory/ldap share and nothing outside should need:
 * the connection behind a struct ldapdir (ldapdir.c makes it; the loader ldapload.c, the
 * user lookups ldapuser.c, relayctl's writes ldapadmin.c, the watcher ldapsync.c and the
 * password check ldapbind.c use it) and the small libldap helpers they have in common.
 * `struct ldap` and `struct ldapmsg` are libldap's own tags (typedef struct ldap LDAP,
 * typedef struct ldapmsg LDAPMessage), so this header needs no <ldap.h>. */
#ifndef RN_LDAPDIR_PRIVATE_H
#define RN_LDAPDIR_PRIVATE_H
#include <stdbool.h>
#include <stddef.h>
#include <sys/time.h>
#include "directory/entry.h"
#include "directory/ldap/ldapdir.h"

#define LDAPDIR_DNBUF 2048        /* a DN or a filter built from one */

struct ldap;
struct ldapmsg;

struct ldapdir {
    struct ldap *ld;              /* owned; bound */
    char *uri;                    /* owned; for messages */
    struct timeval timeout;       /* per operation */
    char *suffix_of, *suffix;     /* owned: the naming context holding suffix_of (a base),
                                   * found once per connection by ldapdir_version_read */
};

/* A string that changes with every write under base, for polling directories whose
 * contextCSN is absent or not maintained: Active Directory's highestCommittedUSN, else the
 * newest entryCSN and modifyTimestamp under base and the entry count. NULL if unreadable.
 * Caller frees. (ldapload.c) */
char *ldapdir_change_mark(struct ldapdir *d, const char *base);

/* user_base, or by default the parent of the relay subtree (bootstrap.h). Caller frees.
 * (ldapuser.c) */
char *ldapdir_user_base(const struct rn_bootstrap *b);
/* The recipient set (ldaprcpt.c): every `mail` and `relayMailAlias` of the entries under
 * user_base, complete or not at all. DIR_FOUND and *out (frozen; caller rcptset_free()s),
 * the values folded into *hash (FNV-1a) and *refused = values that are no address; else
 * DIR_TEMPFAIL (unreachable, or a size or time limit cut the result) or DIR_FAIL with err. */
enum dir_result ldapdir_load_recipients(struct ldapdir *d, const struct rn_bootstrap *b,
                                        struct rcptset **out, uint64_t *hash, size_t *refused,
                                        char *err, size_t errlen);

/* The recipient set read (ldapdir_load_recipients) into store st and given to snap when its
 * domains need it (snapstore_attach_recipients). DIR_FOUND, else as the read. (ldapload.c) */
struct snapstore;
enum dir_result ldapdir_store_recipients(struct ldapdir *d, const struct rn_bootstrap *b,
                                         struct snapstore *st, struct rn_snapshot *snap,
                                         char *err, size_t errlen);

/* The bound handle; owned by d (valid until ldapdir_free). */
struct ldap *ldapdir_handle(struct ldapdir *d);
/* A new, unbound handle for b's URI list with the bootstrap timeouts (network and each
 * operation) and its own TLS context (certificate and host name always verified, CAs from
 * ldap_ca_file), StartTLS done when ldap_starttls = yes. Every connection the node and
 * relayctl open comes from here. DIR_FOUND and *out, which the caller ldap_unbind_ext_s()s;
 * DIR_TEMPFAIL (server unreachable) or DIR_FAIL (configuration, refused StartTLS) with err. */
enum dir_result ldapdir_connect(const struct rn_bootstrap *b, struct ldap **out, char *err,
                                size_t errlen);

/* ldap_search_ext_s on d's handle with d's timeout; *res is set (possibly NULL) whatever
 * the result, and the caller ldap_msgfree()s it. Returns the LDAP result code. */
int ldapdir_search(struct ldapdir *d, const char *base, int scope, const char *filter,
                   char **attrs, int sizelimit, struct ldapmsg **res);
/* err = "what: <libldap text> (<server diagnostic>)" (the diagnostic only for a refusal);
 * returns DIR_TEMPFAIL when rc means the server is not there now, else DIR_FAIL. */
enum dir_result ldapdir_error(struct ldapdir *d, int rc, const char *what, char *err,
                              size_t errlen);
/* The values of attribute a of m as NUL-terminated strings, *n of them; the caller frees
 * them with ldapdir_values_free. */
char **ldapdir_values(struct ldap *ld, struct ldapmsg *m, const char *a, size_t *n);
void ldapdir_values_free(char **v, size_t n);
/* The parent of dn (RFC 4514), or NULL when dn has a single RDN or does not parse. Caller
 * frees. */
char *ldapdir_dn_parent(const char *dn);
/* Copy one search result entry into e (DN, then every attribute but skip (NULL: none) with
 * its values in the server's order), for the entry parsers (entry.h, adattr.h). strict (the
 * AD profile): a value longer than LDAPDIR_VALUE_MAX octets or holding a NUL ends the copy,
 * -1 with err = "<attr>: <reason>" (a value cut short could read as another, valid one);
 * otherwise every value is kept up to its first NUL, 0. Caller dir_entry_clear()s e either
 * way. */
#define LDAPDIR_VALUE_MAX 8192
int ldapdir_entry_read(struct ldap *ld, struct ldapmsg *m, const char *skip, bool strict,
                       struct dir_entry *e, char *err, size_t errlen);
/* ldapdir_entry_read, nothing skipped, not strict (the relay profile's loader). */
void ldapdir_entry_from_msg(struct ldap *ld, struct ldapmsg *m, struct dir_entry *e);

/* ---- the Active Directory profile (directory_profile = ad, docs/ad-profile.md) ---- */

/* The snapshot from an Exchange organisation (adload.c): this server's receive connectors
 * with their ACEs from nTSecurityDescriptor, the accepted domains and SMTP connectors; the
 * version "usn:<highestCommittedUSN>" read before the data. Same contract as
 * ldapdir_load_snapshot, which calls it for the ad profile. */
enum dir_result addir_load_snapshot(struct ldapdir *d, const struct rn_bootstrap *b,
                                    struct rn_snapshot **out, char *err, size_t errlen);
/* A user's token from AD (aduser.c): the one user whose userPrincipalName or sAMAccountName
 * is the login (escaped; allow_dn: a DN is taken as one), its objectSid and tokenGroups
 * (every nested group SID), token_init_sids, then the Exchange groups mapped with snap's
 * exchange_groups (DIR_TEMPFAIL when snap is NULL or lacks them); the addresses are mail and
 * the smtp: proxyAddresses. Same results as ldapdir_user_token, which calls it for the ad
 * profile. */
enum dir_result addir_user_token(struct ldapdir *d, const struct rn_bootstrap *b,
                                 const struct rn_snapshot *snap, const char *login_or_dn,
                                 bool allow_dn, struct token *t,
                                 char ***addresses, size_t *naddresses, char *err,
                                 size_t errlen);
/* The AD profile's version: "usn:<highestCommittedUSN>" of the root DSE; NULL when
 * unreadable. Caller frees. (adload.c) */
char *addir_version_read(struct ldapdir *d);
/* A root DSE attribute's first value (configurationNamingContext, defaultNamingContext,
 * schemaNamingContext, ...); NULL when absent or unreadable. Caller frees. (adload.c) */
char *addir_rootdse(struct ldapdir *d, const char *attr);
/* The AD profile's change watcher body (adwatch.c), run by ldapsync's thread on a bound
 * connection: a change-notification search (1.2.840.113556.1.4.528) on the configuration
 * naming context and a poll of highestCommittedUSN every b->directory_ad_poll_ms; version()
 * is called with each new "usn:<N>". Returns 0 when stop_fd becomes readable, -1 with why
 * when the connection fails. */
int adwatch_run(struct ldapdir *d, const struct rn_bootstrap *b, int stop_fd,
                void (*version)(void *arg, const char *v), void *arg, char *why, size_t len);
#endif
