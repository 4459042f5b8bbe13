/* ldapdir: everything that talks to the directory through OpenLDAP libldap (only the files
 * of directory/ldap include <ldap.h>): the connection (ldapdir.c), the snapshot loader
 * (ldapload.c), the user and group lookups (ldapuser.c), the password check (ldapbind.c).
 * Calls block; the node runs them on a worker thread, never on the event loop. Results are
 * FOUND / NOTFOUND / TEMPFAIL so an outage becomes a 4xx. */
#ifndef RN_LDAPDIR_H
#define RN_LDAPDIR_H
#include <stdbool.h>
#include <stddef.h>
#include "directory/bootstrap.h"
#include "directory/model.h"
#include "directory/token.h"

enum dir_result { DIR_FOUND = 0, DIR_NOTFOUND = 1, DIR_TEMPFAIL = 2, DIR_FAIL = 3 };

struct ldapdir;

/* Connect and bind as the bootstrap's service identity (simple bind with the password file,
 * or SASL EXTERNAL). DIR_TEMPFAIL when the server is unreachable, DIR_FAIL on bad config or
 * credentials; err says which. */
enum dir_result ldapdir_open(const struct rn_bootstrap *b, struct ldapdir **out, char *err,
                             size_t errlen);
void ldapdir_free(struct ldapdir **d);

/* Load the snapshot for node b->node: its connectors and its site's, accepted domains, send
 * connectors, the contextCSN as version. Entries that fail to parse or validate are left out
 * and listed in (*out)->errors; a missing node entry or an unreadable relay subtree fails the
 * whole load. Caller snapshot_unref()s. */
enum dir_result ldapdir_load_snapshot(struct ldapdir *d, const struct rn_bootstrap *b,
                                      struct rn_snapshot **out, char *err, size_t errlen);
/* The same, keeping the store the snapshot was built from in *store (NULL: not wanted; the
 * caller snapstore_free()s it) for ldapdir_apply_changes to continue from. */
struct snapstore;
struct snapdelta_change;
enum dir_result ldapdir_load_store(struct ldapdir *d, const struct rn_bootstrap *b,
                                   struct snapstore **store, struct rn_snapshot **out,
                                   char *err, size_t errlen);
/* Incremental load (ldapincr.c): the watcher's changes v[0..n) applied to store (from
 * ldapdir_load_store or an earlier call) and the next snapshot built from it, labelled with
 * the version read first. Only what the changes touch is parsed again; the recipient set is
 * read again only when a change may have touched it. DIR_FOUND and *out; DIR_NOTFOUND with
 * err when only a full load can tell (the store must then be dropped); DIR_TEMPFAIL or
 * DIR_FAIL as for a load. *nodes_dirty: a relayNode (a cluster peer) may have changed. */
enum dir_result ldapdir_apply_changes(struct ldapdir *d, const struct rn_bootstrap *b,
                                      struct snapstore *store,
                                      const struct snapdelta_change *v, size_t n,
                                      struct rn_snapshot **out, bool *nodes_dirty, char *err,
                                      size_t errlen);

/* Find a user by login (user_filter, value escaped per RFC 4515) or by DN; exactly one match
 * or NOTFOUND. Fills the token (user, transitive groups, Authenticated Users, Everyone) and
 * the user's own addresses (mail and relayMailAlias; caller frees each and the array).
 * snap (borrowed; may be NULL for the relay profile) is the snapshot whose ACEs the token
 * will meet: the ad profile maps the Exchange groups with its exchange_groups, and is
 * DIR_TEMPFAIL without them. */
enum dir_result ldapdir_user_token(struct ldapdir *d, const struct rn_bootstrap *b,
                                   const struct rn_snapshot *snap, const char *login_or_dn,
                                   struct token *t, char ***addresses, size_t *naddresses,
                                   char *err, size_t errlen);
/* The same for a login typed by a client (SMTP AUTH): only ever a user_filter value under
 * user_base, never taken as a DN, so a client cannot name an entry the filter (and the
 * administrator's restrictions in it) would not select. */
enum dir_result ldapdir_login_token(struct ldapdir *d, const struct rn_bootstrap *b,
                                    const struct rn_snapshot *snap, const char *login,
                                    struct token *t, char ***addresses, size_t *naddresses,
                                    char *err, size_t errlen);

/* Check a user's password by a simple bind as dn on a connection of its own (the password
 * is verified by the directory; no hash is ever read). DIR_FOUND = the password is right;
 * DIR_NOTFOUND = wrong password, no such entry, or a bind the server refuses; DIR_TEMPFAIL
 * = the directory cannot answer now. An empty password is refused before any bind (it would
 * be an unauthenticated bind, RFC 4513 §5.1.2). err never holds the password. */
enum dir_result ldapdir_check_password(const struct rn_bootstrap *b, const char *dn,
                                       const char *password, size_t pwlen, char *err,
                                       size_t errlen);

/* Escape a value for an LDAP filter (RFC 4515 §3: * ( ) \ NUL and non-ASCII as \xx).
 * Returns -1 if out is too small. Pure. */
int ldap_filter_escape(const char *in, size_t inlen, char *out, size_t outlen);
/* The version the loader stamps on a snapshot: every contextCSN value of the naming context
 * holding base, sorted, joined with ','. NULL when unreadable. Caller frees. (ldapload.c) */
char *ldapdir_version_read(struct ldapdir *d, const char *base);
#endif
