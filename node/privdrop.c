/* privdrop: giving up root (see privdrop.h). The order matters: PR_SET_KEEPCAPS keeps the
 * permitted set across setuid, the supplementary groups and the gid go while still root,
 * then the uid; capset (raw syscall, no libcap) narrows permitted and effective to
 * CAP_NET_BIND_SERVICE; KEEPCAPS is cleared again. Every step is checked, and the result is
 * read back, because a half-dropped process must never serve. */
#include "node/privdrop.h"
#include "directory/base/util.h"
#include <errno.h>
#include <ftw.h>
#include <grp.h>
#include <linux/capability.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

int privdrop_resolve(const char *user, const char *group, struct privdrop_id *id, char *err,
                     size_t errlen)
{
    struct passwd *pw = getpwnam(user);
    if (!pw)
        return rn_err(err, errlen, "user %s: no such user", user);
    id->uid = pw->pw_uid;
    id->gid = pw->pw_gid;
    if (group && *group) {
        struct group *gr = getgrnam(group);
        if (!gr)
            return rn_err(err, errlen, "group %s: no such group", group);
        id->gid = gr->gr_gid;
    }
    return 0;
}

/* nftw has no user argument: the walk is single-threaded setup code, so a file-scope slot
 * carries the target ids and the first failure. */
static struct privdrop_id walk_id;
static char walk_err[RN_ERRLEN];

static int chown_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st; (void)flag; (void)ftw;
    if (lchown(path, walk_id.uid, walk_id.gid) != 0) {
        snprintf(walk_err, sizeof walk_err, "chown %s: %s", path, strerror(errno));
        return 1;
    }
    return 0;
}

int privdrop_chown_tree(const char *path, const struct privdrop_id *id, char *err,
                        size_t errlen)
{
    struct stat st;
    if (!path || !*path || lstat(path, &st) != 0)
        return 0;
    walk_id = *id;
    walk_err[0] = '\0';
    int r = nftw(path, chown_one, 16, FTW_PHYS);
    if (r != 0)
        return rn_err(err, errlen, "%s", walk_err[0] ? walk_err : strerror(errno));
    return 0;
}

int privdrop_apply(const struct privdrop_id *id, char *err, size_t errlen)
{
    if (prctl(PR_SET_KEEPCAPS, 1L, 0L, 0L, 0L) != 0)
        return rn_err(err, errlen, "prctl(PR_SET_KEEPCAPS): %s", strerror(errno));
    if (setgroups(1, &id->gid) != 0)
        return rn_err(err, errlen, "setgroups(%ld): %s", (long)id->gid, strerror(errno));
    if (setgid(id->gid) != 0)
        return rn_err(err, errlen, "setgid(%ld): %s", (long)id->gid, strerror(errno));
    if (setuid(id->uid) != 0)
        return rn_err(err, errlen, "setuid(%ld): %s", (long)id->uid, strerror(errno));
    struct __user_cap_header_struct hdr = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3];
    memset(data, 0, sizeof data);
    data[0].permitted = data[0].effective = 1u << CAP_NET_BIND_SERVICE;
    if (syscall(SYS_capset, &hdr, data) != 0)
        return rn_err(err, errlen, "capset(CAP_NET_BIND_SERVICE): %s", strerror(errno));
    if (prctl(PR_SET_KEEPCAPS, 0L, 0L, 0L, 0L) != 0)
        return rn_err(err, errlen, "prctl(PR_SET_KEEPCAPS, 0): %s", strerror(errno));
    if (getuid() != id->uid || geteuid() != id->uid || getgid() != id->gid ||
        getegid() != id->gid)
        return rn_err(err, errlen, "privilege drop did not take: uid=%ld euid=%ld gid=%ld "
                      "egid=%ld", (long)getuid(), (long)geteuid(), (long)getgid(),
                      (long)getegid());
    if (id->uid != 0 && (setuid(0) == 0 || seteuid(0) == 0))
        return rn_err(err, errlen, "privilege drop did not take: setuid(0) succeeded");
    memset(data, 0, sizeof data);
    if (syscall(SYS_capget, &hdr, data) != 0)
        return rn_err(err, errlen, "capget: %s", strerror(errno));
    if (data[0].effective != 1u << CAP_NET_BIND_SERVICE || data[1].effective ||
        data[0].permitted != 1u << CAP_NET_BIND_SERVICE || data[1].permitted ||
        data[0].inheritable || data[1].inheritable)
        return rn_err(err, errlen, "privilege drop left capabilities %08x%08x",
                      data[1].effective, data[0].effective);
    return 0;
}

int privdrop_secret_check(const char *path, char *err, size_t errlen)
{
    struct stat st;
    if (!path || !*path || stat(path, &st) != 0)
        return 0;
    if (st.st_mode & 077)
        return rn_err(err, errlen, "%s: permissions %04o are too open (group or others can "
                      "read it); chmod 600", path, (unsigned)(st.st_mode & 07777));
    return 0;
}
