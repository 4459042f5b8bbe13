/* privdrop: a node started as root gives up root once the root-only work is done, keeping
 * only CAP_NET_BIND_SERVICE so listeners opened later (a directory change) can still bind
 * ports below 1024; and the secret files the node reads must not be readable by group or
 * others (like ssh). Library style: -1 with err, never logs or exits. Linux only. */
#ifndef RN_PRIVDROP_H
#define RN_PRIVDROP_H
#include <stddef.h>
#include <sys/types.h>

/* The identity to run as: user (name) and group (name; "" = the user's primary group). */
struct privdrop_id {
    uid_t uid;
    gid_t gid;
};

/* Resolve user / group names to ids. -1 with "user NAME: no such user" (or group). */
int privdrop_resolve(const char *user, const char *group, struct privdrop_id *id, char *err,
                     size_t errlen);
/* Path (and, when a directory, everything below it, symlinks not followed) chowned to id.
 * A missing path is not an error. -1 with "PATH: reason". */
int privdrop_chown_tree(const char *path, const struct privdrop_id *id, char *err,
                        size_t errlen);
/* Become id: KEEPCAPS, setgroups, setgid, setuid, then permitted = effective =
 * CAP_NET_BIND_SERVICE only, inheritable empty; verified by reading the ids back and by
 * setuid(0) failing. Call while the process has one thread (capabilities are per thread;
 * threads started afterwards inherit them). -1 with err: the caller must not go on. */
int privdrop_apply(const struct privdrop_id *id, char *err, size_t errlen);
/* A secret file path ("" or NULL: none) whose mode lets group or others in (mode & 077):
 * -1 with "PATH: permissions 0644 are too open (group or others can read it); chmod 600".
 * A file that cannot be stat'ed is left to its reader (0). */
int privdrop_secret_check(const char *path, char *err, size_t errlen);
#endif
