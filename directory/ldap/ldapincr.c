/* ldapincr: the incremental load (ldapdir.h, issue 17). The change watcher hands over the
 * entries RFC 4533 sent (ldapsync.c); they are applied to the store the last load left
 * (snapdelta.h), which parses only them and builds the next snapshot. One search replaces the
 * full load's ten: the version, read first for the same reason the full loader reads it
 * first (a snapshot labelled V holds at least what the watcher delivered before V). The
 * recipient set is the one part still read whole, and only when a change may have touched
 * it (a user or group outside the relay subtree, or under user_base). Anything the store
 * cannot place is DIR_NOTFOUND: the caller reloads in full. */
#include "directory/ldap/ldapdir.h"
#include "directory/ldap/ldapdir-private.h"
#include "directory/snapdelta.h"
#include "directory/base/util.h"
#include <stdlib.h>

enum dir_result ldapdir_apply_changes(struct ldapdir *d, const struct rn_bootstrap *b,
                                      struct snapstore *store,
                                      const struct snapdelta_change *v, size_t n,
                                      struct rn_snapshot **out, bool *nodes_dirty, char *err,
                                      size_t errlen)
{
    *out = NULL;
    char *version = ldapdir_version_read(d, b->base_dn);
    if (!version) {
        /* Without a contextCSN every snapshot needs a stamp of its own and the content hash
         * decides; the full loader does that. */
        rn_err(err, errlen, "the directory's version is unreadable");
        return DIR_NOTFOUND;
    }
    bool rcpt_dirty = false;
    if (snapdelta_apply(store, v, n, &rcpt_dirty, nodes_dirty, err, errlen) != 0) {
        free(version);
        return DIR_NOTFOUND;
    }
    if (rcpt_dirty)
        snapstore_set_recipients(store, NULL, 0, 0, NULL);
    struct rn_snapshot *s = snapstore_build(store, version);
    free(version);
    if (snapshot_needs_recipients(s) && !snapstore_has_recipients(store)) {
        enum dir_result r = ldapdir_store_recipients(d, b, store, s, err, errlen);
        if (r != DIR_FOUND) {
            snapshot_unref(&s);
            return r;
        }
    }
    *out = s;
    return DIR_FOUND;
}
