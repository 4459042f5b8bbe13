/* snapdelta: the relay subtree's entries one node's snapshot is made of, kept between loads
 * so that a directory change rebuilds only what it touches (issue 17). The full loader
 * (ldapload.c) puts every entry it reads into a new store and builds the snapshot from it;
 * the change watcher's entries (RFC 4533, ldapsync.c) are applied to the running store,
 * which then builds the next snapshot. Both paths classify and parse entries through this
 * one module, each entry is parsed once when it arrives, and the build sorts what it
 * assembles and hashes entries commutatively, so a store holding the same entries builds the
 * same snapshot whatever order they came in (snapdump.h prints it for comparison). What the
 * store cannot place (the node's own entry or its site changing, a rename with entries
 * beneath, a delete of nothing it can name) is answered "reload in full". Pure: no I/O. */
#ifndef RN_SNAPDELTA_H
#define RN_SNAPDELTA_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "directory/entry.h"
#include "directory/model.h"
#include "directory/rcptset.h"

#define SNAPDELTA_UUIDLEN 33      /* entryUUID as 32 lowercase hex digits and a NUL */

enum snapdelta_op {
    SNAPDELTA_PUT,                /* the entry as it is now (added, modified or renamed) */
    SNAPDELTA_DELETE,             /* the entry named by uuid (else by DN) is gone */
    SNAPDELTA_OUTSIDE,            /* something changed outside the relay subtree: users and
                                   * groups, the recipient set's source */
    SNAPDELTA_RESYNC,             /* the watcher (re)started: what happened before is unknown */
};

struct snapdelta_change {
    enum snapdelta_op op;
    char uuid[SNAPDELTA_UUIDLEN]; /* "" when unknown */
    char *csn;                    /* owned: entryCSN of a PUT; NULL when unknown */
    bool added;                   /* a PUT of a new entry (RFC 4533 state add), not a modify
                                   * or rename */
    char *version;                /* owned: the directory's version once this change is in
                                   * (the sync cookie's CSNs, as the loader writes versions);
                                   * NULL when the server sent none */
    struct dir_entry e;           /* owned: PUT: the whole entry; DELETE: its DN, maybe "" */
};
/* Free v[0..n) and v; sets *v = NULL. */
void snapdelta_changes_free(struct snapdelta_change **v, size_t n);
/* An entryUUID in any form (RFC 4122 text, or 16 raw bytes when raw) as 32 lowercase hex
 * digits into out; "" when it is neither. */
void snapdelta_uuid_format(const char *in, size_t len, bool raw, char out[SNAPDELTA_UUIDLEN]);

struct snapstore;

/* An empty store for node node_name whose entry is node_dn under site_dn; entries under
 * user_base (NULL: none in the subtree) touch the recipient set. Caller snapstore_free()s. */
struct snapstore *snapstore_new(const char *node_name, const char *node_dn, const char *site_dn,
                                const char *user_base);
void snapstore_free(struct snapstore **s);   /* NULL-safe; sets *s = NULL */

/* Put one entry as read now (uuid "" or NULL: keyed by DN; csn NULL: unknown). An entry
 * older than the stored one (entryCSN) is skipped, one the snapshot does not use is dropped.
 * 0 done; 1 with why when only a full reload can say what it means. */
int snapstore_put(struct snapstore *s, const struct dir_entry *e, const char *uuid,
                  const char *csn, char *why, size_t whylen);
/* Forget the entry uuid (else the one at dn). 0 done (or nothing of ours); 1 with why. */
int snapstore_delete(struct snapstore *s, const char *uuid, const char *dn, char *why,
                     size_t whylen);
/* Apply a watcher batch in order. 0 applied; 1 with why: reload in full (the store is then
 * unusable). *rcpt_dirty is set when the recipient set may have changed, *nodes_dirty when
 * a relayNode entry (a cluster peer) may have. */
int snapdelta_apply(struct snapstore *s, const struct snapdelta_change *v, size_t n,
                    bool *rcpt_dirty, bool *nodes_dirty, char *why, size_t whylen);

/* Some accepted domain the store holds has recipient lookup on (model.h). */
bool snapstore_needs_recipients(const struct snapstore *s);
bool snapstore_has_recipients(const struct snapstore *s);
/* The recipient set to build with (a reference is taken; NULL drops it), the hash of its
 * values and how many were refused, reported against label (user_base). */
void snapstore_set_recipients(struct snapstore *s, struct rcptset *set, uint64_t hash,
                              size_t refused, const char *label);
size_t snapstore_count(const struct snapstore *s);   /* entries held */
/* The directory version the store holds everything of: the full load's, then moved on by
 * the versions of the changes applied (never backwards). NULL before any. */
const char *snapstore_version(const struct snapstore *s);
void snapstore_set_version(struct snapstore *s, const char *version);

/* The snapshot the store describes now, labelled version, its selection index built.
 * Connectors are shared with the store (model.h, struct rn_connector_body), the other parts
 * copied from their parsed form; the recipient set is shared. When the connectors are the
 * same as the last build's as far as conflicts and selection go (names, DNs, enabled,
 * bindings, ranges, in order), that build's conflict refusals and selection index are taken
 * over (the store keeps a reference to it). When nothing the build reads changed since
 * the last build, that snapshot relabelled (snapshot_relabel). Caller snapshot_unref()s. */
struct rn_snapshot *snapstore_build(struct snapstore *s, const char *version);
/* The last snapstore_build took the previous build's conflict sweep and selection index. */
bool snapstore_last_reused(const struct snapstore *s);
/* The last snapstore_build found nothing changed since the build before it and returned
 * that snapshot relabelled (snapshot_relabel). */
bool snapstore_last_relabelled(const struct snapstore *s);

/* What snapstore_build does once the entries are in, for a loader without a store (the AD
 * profile, directory/ldap/adload.c): the load order (sorted), the cross-entry refusals
 * (conflicting connectors, one domain with two types, several defaults: both sides out,
 * named in snap's errors) and the selection index. */
void snapshot_finish(struct rn_snapshot *snap);

/* Give snap the store's recipient set when snap's domains need one and it has none yet (the
 * build does this too; a loader that read the set after building calls it). */
void snapstore_attach_recipients(const struct snapstore *s, struct rn_snapshot *snap);

/* The content hash's parts, for the loader's and ldaprcpt's callers: the seed for a DN (the
 * node's own) and the order-independent fold of one value into a set hash. */
uint64_t snapdelta_hash_str(const char *p, size_t n);
uint64_t snapdelta_mix(uint64_t h);
#endif
