/* ldapadmin: what relayctl's admin verbs need from the directory beyond the node's snapshot:
 * raw entries (so a refused connector can still be shown and audited), existence checks,
 * transitive group members, the nodes, and applying a change set (change.h) as the admin
 * identity. Uses the connection ldapdir_open made (ldapdir-private.h); blocking calls, meant
 * for tools. Errors are DIR_* results (ldapdir.h) with err filled; nothing is logged. */
#ifndef RN_LDAPADMIN_H
#define RN_LDAPADMIN_H
#include <stddef.h>
#include "directory/change.h"
#include "directory/entry.h"
#include "directory/ldap/ldapdir.h"
#include "directory/model.h"

enum ldapadmin_scope { LA_BASE, LA_ONE, LA_SUB };

/* Every entry under base matching filter (all user attributes). DIR_NOTFOUND when base does
 * not exist; DIR_FOUND otherwise, even with no entries. Caller dir_entries_clear()s. */
enum dir_result ldapadmin_search(struct ldapdir *d, const char *base, enum ldapadmin_scope scope,
                                 const char *filter, struct dir_entries *out, char *err,
                                 size_t errlen);
/* Read one entry; DIR_NOTFOUND when it does not exist. Caller dir_entry_clear()s. */
enum dir_result ldapadmin_read(struct ldapdir *d, const char *dn, struct dir_entry *out,
                               char *err, size_t errlen);

/* Whether dn exists: DIR_FOUND or DIR_NOTFOUND (TEMPFAIL/FAIL on errors). */
enum dir_result ldapadmin_exists(struct ldapdir *d, const char *dn, char *err, size_t errlen);

/* Apply the changes in order, stopping at the first failure: DIR_FAIL when the server refused
 * (err: "<dn>: <LDAP error> (<server diagnostic>)"), DIR_TEMPFAIL when it could not be
 * reached; changes before it stay applied (LDAP has no transactions here). DIR_FOUND = done. */
enum dir_result ldapadmin_apply(struct ldapdir *d, const struct changeset *cs, char *err,
                                size_t errlen);

/* The non-group entries reachable from dn through `member` (groupOfNames nesting, cycles
 * cut); a DN that is not a group yields itself. Missing members are skipped. DIR_NOTFOUND
 * when dn itself does not exist. Caller frees each string and the array. */
enum dir_result ldapadmin_group_members(struct ldapdir *d, const char *dn, char ***members,
                                        size_t *n, char *err, size_t errlen);

/* A node entry (relayNode) with its site (the parent entry's cn). */
struct ldapadmin_node {
    char *dn, *name, *site, *site_dn, *hostname, *endpoint, *pubkey;   /* owned; may be NULL */
};
/* Every relayNode under base, sorted by name. Caller ldapadmin_nodes_free()s. */
enum dir_result ldapadmin_list_nodes(struct ldapdir *d, const char *base,
                                     struct ldapadmin_node **out, size_t *n, char *err,
                                     size_t errlen);
void ldapadmin_nodes_free(struct ldapadmin_node **nodes, size_t n);

/* Entries read here are parsed with entry.h (connector_from_entry, domain_from_entry,
 * sendconn_from_entry), the functions the loader uses, so a write relayctl checks with them
 * is one every node will load. */
#endif
