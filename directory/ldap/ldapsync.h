/* ldapsync: a change watcher on the relay subtree (schema/cluster-protocol.md §5). RFC 4533
 * refreshAndPersist where the server offers it (OpenLDAP syncprov), otherwise polling the
 * suffix's contextCSN every poll_s seconds. Runs on its own thread (the search blocks) and
 * reports through a callback *on that thread*: the daemon must hand events to its loop. */
#ifndef RN_LDAPSYNC_H
#define RN_LDAPSYNC_H
#include <stddef.h>
#include "directory/bootstrap.h"

enum ldapsync_mode { LDAPSYNC_AUTO, LDAPSYNC_PERSIST, LDAPSYNC_POLL };

enum ldapsync_event {
    LDAPSYNC_VERSION,    /* the directory's version (contextCSN, as the loader reads it)
                          * differs from the last one reported: at (re)connect and after a
                          * batch of changes under base_dn */
    LDAPSYNC_DOWN,       /* the directory cannot be reached or the search ended: detail says
                          * why; retried with backoff (1 s doubling to 30 s) */
    LDAPSYNC_UP,         /* connected again (after DOWN, or first); detail: "persist" or "poll" */
    LDAPSYNC_CHANGED,    /* polling: something under base changed although the version did
                          * not (no contextCSN, or one nobody maintains); version = the new
                          * change mark (ldapdir_change_mark), not a cluster version */
};

struct snapdelta_change;
/* Called on the watcher thread, before the VERSION event they lead to, with the changes the
 * persist stage delivered (snapdelta.h), in the server's order; the callee owns v (it
 * snapdelta_changes_free()s it). Each persistent search starts with a SNAPDELTA_RESYNC
 * (changes may have been missed while it was not running). */
typedef void (*ldapsync_batch_fn)(void *arg, struct snapdelta_change *v, size_t n);

struct ldapsync_opts {
    enum ldapsync_mode mode;     /* AUTO: persist, or poll if the Sync control is refused */
    unsigned poll_s;             /* polling period; 0 = 10 */
    ldapsync_batch_fn batch;     /* NULL: entries are news only, never delivered */
};

/* Called on the watcher thread, never concurrently with itself. version is set for
 * LDAPSYNC_VERSION, detail for the others; both are valid during the call only. */
typedef void (*ldapsync_fn)(void *arg, enum ldapsync_event ev, const char *version,
                            const char *detail);

struct ldapsync;

/* Start watching b->base_dn with b's URI and service identity; b is not copied and must
 * outlive the watcher. NULL with err when the thread cannot start; a directory that is down
 * is not an error (DOWN, then retries). */
struct ldapsync *ldapsync_start(const struct rn_bootstrap *b, const struct ldapsync_opts *o,
                                ldapsync_fn fn, void *arg, char *err, size_t errlen);
/* Stop the thread (within about 100 ms, or one ldap_timeout while connecting) and free. */
void ldapsync_stop(struct ldapsync **s);
#endif
