/* ldapdir-private: for directory/ldap*.c only (ldapadmin.c): the libldap handle behind a
 * struct ldapdir, so relayctl's writes use the connection and bind the loader made.
 * `struct ldap` is libldap's own tag (typedef struct ldap LDAP), so no <ldap.h> here. */
#ifndef RN_LDAPDIR_PRIVATE_H
#define RN_LDAPDIR_PRIVATE_H
#include "directory/ldap/ldapdir.h"

/* A string that changes with every write under base, for polling directories whose
 * contextCSN is absent or not maintained: Active Directory's highestCommittedUSN, else the
 * newest entryCSN and modifyTimestamp under base and the entry count. NULL if unreadable.
 * Caller frees. */
char *ldapdir_change_mark(struct ldapdir *d, const char *base);

struct ldap;
/* The bound handle; owned by d (valid until ldapdir_free). */
struct ldap *ldapdir_handle(struct ldapdir *d);
/* A new, unbound handle for b's URI list with the bootstrap timeouts (network and each
 * operation); NULL with err. Caller ldap_unbind_ext_s()s. */
struct ldap *ldapdir_connect(const struct rn_bootstrap *b, char *err, size_t errlen);
/* The version the loader stamps on a snapshot: every contextCSN value of the naming context
 * holding base, sorted, joined with ','. NULL when unreadable. Caller frees. (ldapsync.c) */
char *ldapdir_version_read(struct ldapdir *d, const char *base);
#endif
