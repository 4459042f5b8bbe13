/* ldapincr: the incremental load (ldapdir.h, issue 17). The change watcher hands over the
 * entries RFC 4533 sent (ldapsync.c); they are applied to the store the last load left
 * (snapdelta.h), which parses only them and builds the next snapshot. One search replaces the
 * full load's ten (none at all unless the recipients must be read again). The snapshot's
 * version comes from the sync cookies of the changes themselves (RFC 4533 §2.4): reading
 * contextCSN here could label the store with a change the watcher has not delivered yet,
 * and a later load of that version would then be skipped as unchanged. The
 * recipient set is the one part still read whole, and only when a change may have touched
 * it (a user or group outside the relay subtree, or under user_base). Anything the store
 * cannot place is DIR_NOTFOUND: the caller reloads in full. */
#include "directory/ldap/ldapdir.h"
#include "directory/ldap/ldapdir-private.h"
#include "directory/snapdelta.h"
#include "directory/base/util.h"
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* syncprov may announce a change outside base (a newCookie) before a search on another
 * connection sees it: wait, a bounded while, until the directory's version shows it, so the
 * recipient set read next holds the change its cookie names. */
static void recipients_settle(struct ldapdir *d, const struct rn_bootstrap *b, const char *want)
{
    for (int i = 0; want && i < 50; i++) {
        char *have = ldapdir_version_read(d, b->base_dn);
        bool there = have && strcmp(have, want) >= 0;
        free(have);
        if (there)
            return;
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
}

enum dir_result ldapdir_apply_changes(struct ldapdir *d, const struct rn_bootstrap *b,
                                      struct snapstore *store,
                                      const struct snapdelta_change *v, size_t n,
                                      struct rn_snapshot **out, bool *nodes_dirty, char *err,
                                      size_t errlen)
{
    *out = NULL;
    const char *version = snapstore_version(store);
    if (!version || strncmp(version, "load-", 5) == 0) {
        /* Without a contextCSN every snapshot needs a stamp of its own and the content hash
         * decides; the full loader does that. */
        rn_err(err, errlen, "the directory's version is unreadable");
        return DIR_NOTFOUND;
    }
    bool rcpt_dirty = false;
    if (snapdelta_apply(store, v, n, &rcpt_dirty, nodes_dirty, err, errlen) != 0)
        return DIR_NOTFOUND;
    if (rcpt_dirty) {
        snapstore_set_recipients(store, NULL, 0, 0, NULL);
        recipients_settle(d, b, snapstore_version(store));
    }
    struct rn_snapshot *s = snapstore_build(store, snapstore_version(store));
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
