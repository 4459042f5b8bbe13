/* nodeproc: checks that the pid written into a spool's lock file is really the relaynode
 * holding that lock. The pid in the file is only a hint: the node that wrote it may be gone
 * and the number reused, or anyone able to write the file may have put another process's
 * pid there. Two facts from /proc must hold: the process is relaynode (its executable's
 * name, or its argv[0] for a binary replaced on disk by an upgrade), and it has the lock file
 * open with a write flock on that open file (fdinfo lists the locks held through each
 * descriptor; the flock follows the open file across the daemon's fork). */
#include "tools/nodeproc.h"
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "directory/base/util.h"

#define NODE_EXE "relaynode"

static bool basename_is(const char *path, const char *name)
{
    const char *b = strrchr(path, '/');
    b = b ? b + 1 : path;
    size_t n = strlen(name);
    /* readlink of an unlinked executable ends in " (deleted)" */
    return strncmp(b, name, n) == 0 && (b[n] == '\0' || strcmp(b + n, " (deleted)") == 0);
}

static bool is_relaynode(pid_t pid)
{
    char path[64], buf[4096];
    snprintf(path, sizeof path, "/proc/%ld/exe", (long)pid);
    ssize_t n = readlink(path, buf, sizeof buf - 1);
    if (n > 0) {
        buf[n] = '\0';
        if (basename_is(buf, NODE_EXE))
            return true;
    }
    snprintf(path, sizeof path, "/proc/%ld/cmdline", (long)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return false;
    buf[n] = '\0';                          /* argv[0] ends at its NUL */
    return basename_is(buf, NODE_EXE);
}

/* True when /proc/PID/fdinfo/FD lists a write flock (the "lock:" lines). */
static bool fd_has_flock(pid_t pid, const char *fd)
{
    char path[384], buf[4096];
    snprintf(path, sizeof path, "/proc/%ld/fdinfo/%s", (long)pid, fd);
    FILE *f = fopen(path, "re");
    if (!f)
        return false;
    bool held = false;
    while (!held && fgets(buf, sizeof buf, f))
        held = strncmp(buf, "lock:", 5) == 0 && strstr(buf, " FLOCK ") &&
               strstr(buf, " WRITE ");
    fclose(f);
    return held;
}

bool nodeproc_owns_lock(pid_t pid, const char *lockpath, char *why, size_t whylen)
{
    struct stat lk;
    if (pid <= 0 || stat(lockpath, &lk) < 0) {
        rn_err(why, whylen, "no lock file %s", lockpath);
        return false;
    }
    if (!is_relaynode(pid)) {
        rn_err(why, whylen, "pid %ld is not relaynode", (long)pid);
        return false;
    }
    char dpath[64];
    snprintf(dpath, sizeof dpath, "/proc/%ld/fd", (long)pid);
    DIR *dir = opendir(dpath);
    if (!dir) {
        rn_err(why, whylen, "%s: %s", dpath, strerror(errno));
        return false;
    }
    bool owns = false;
    struct dirent *de;
    while (!owns && (de = readdir(dir))) {
        if (de->d_name[0] == '.')
            continue;
        char fpath[384];
        struct stat st;
        snprintf(fpath, sizeof fpath, "%s/%s", dpath, de->d_name);
        if (stat(fpath, &st) == 0 && st.st_dev == lk.st_dev && st.st_ino == lk.st_ino)
            owns = fd_has_flock(pid, de->d_name);
    }
    closedir(dir);
    if (!owns)
        rn_err(why, whylen, "pid %ld does not hold %s", (long)pid, lockpath);
    return owns;
}
