/* spool: the durable message store on disk (spool.h; docs/reliability.md G1/G2, §2).
 *
 * Layout under the spool directory: tmp/ (messages being written), queue/ (committed
 * messages, one file per queue id), quarantine/ (files that failed to decode), lock (flock'd
 * by the process that owns the spool, which writes its pid there; only it cleans tmp/ and
 * quarantines, so a second opener such as --list-spool never deletes a live node's in-flight
 * messages).
 *
 * Commit chain: END record -> fsync(file) -> close -> rename tmp/<id> -> queue/<id> without
 * replacing (RENAME_NOREPLACE, or link+unlink where the filesystem lacks it) -> fsync(queue
 * dir). Any failure unlinks what was written and leaves nothing in queue/; fsync is never
 * retried (fsyncgate, docs/reliability.md §2.5).
 *
 * Queue ids are 24 upper-case hex digits: 14 of microseconds since the epoch, 4 of a
 * per-process counter, 6 of the pid. (microseconds, counter) strictly increases within a
 * process even if the clock steps back, the pid separates processes, so ids are unique,
 * sort by time as strings and are safe file names.
 *
 * Reading messages back, the listing and the owner's start-up recovery are in spool_read.c,
 * delivery state and removal in spool_state.c (spool-private.h). */
#include "node/spool/spool.h"
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <sys/utsname.h>
#include <unistd.h>
#include "directory/base/util.h"
#include "node/common/fault.h"
#include "node/spool/spool_record.h"
#include "node/spool/spool-private.h"

#define SPOOL_BUF 8192               /* per-message write buffer */

int (*spool_test_fault)(enum spool_fault where);

struct spool_msg {
    struct spool *s;
    char id[SPOOL_ID_LEN + 1];
    int fd;                          /* -1 once closed */
    bool failed;                     /* a write failed: tmp file already unlinked */
    size_t used;                     /* bytes in buf */
    size_t rec;                      /* offset of the open DATA record's header, or SIZE_MAX */
    uint64_t total;
    uint32_t crc;                    /* of every byte written so far */
    char *err; size_t errlen;        /* where the sink reports (set per call) */
    uint8_t *env; size_t envlen, envcap;  /* owned: the encoded envelope until create */
    uint8_t buf[SPOOL_BUF];
};

/* A test hook or the real result: -1 with errno set if the step fails. */
int spool_fault(enum spool_fault where)
{
    int e = spool_test_fault ? spool_test_fault(where) : 0;
    if (e) {
        errno = e;
        return -1;
    }
    return 0;
}

bool spool_id_valid(const char *id)
{
    size_t n = strnlen(id, SPOOL_ID_LEN + 1);
    if (n != SPOOL_ID_LEN)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((id[i] >= '0' && id[i] <= '9') || (id[i] >= 'A' && id[i] <= 'F')))
            return false;
    return true;
}

static void id_new(struct spool *s, char out[SPOOL_ID_LEN + 1])
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    unsigned long long us = (unsigned long long)tv.tv_sec * 1000000ull + (unsigned)tv.tv_usec;
    pthread_mutex_lock(&s->mu);
    if (us > s->last_us) {
        s->last_us = us;
        s->counter = 0;
    } else if (++s->counter > 0xffff) {
        s->last_us++;
        s->counter = 0;
    }
    snprintf(out, SPOOL_ID_LEN + 1, "%014llX%04X%06X", s->last_us & 0xffffffffffffffull,
             s->counter, (unsigned)getpid() & 0xffffffu);
    pthread_mutex_unlock(&s->mu);
}

static int open_subdir(int dirfd, const char *name, int *out, char *err, size_t errlen)
{
    if (mkdirat(dirfd, name, 0700) < 0 && errno != EEXIST)
        return rn_err(err, errlen, "mkdir %s: %s", name, strerror(errno));
    *out = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
    if (*out < 0)
        return rn_err(err, errlen, "open %s: %s", name, strerror(errno));
    return 0;
}

/* The owner's pid, for spool_owner_pid (relayctl queue retry signals it). Best effort: a
 * node that cannot write it still owns the spool. */
void spool_write_pid(struct spool *s)
{
    if (!s->owner)
        return;
    char pid[24];
    int n = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
    if (ftruncate(s->lockfd, 0) < 0 || pwrite(s->lockfd, pid, (size_t)n, 0) != n)
        (void)0;
}

bool spool_syncfs_trusted(const char *release)
{
    char *end;
    long major = strtol(release, &end, 10);
    if (end == release || *end != '.')
        return false;
    const char *p = end + 1;
    long minor = strtol(p, &end, 10);
    if (end == p)
        return false;
    return major > 5 || (major == 5 && minor >= 8);
}

/* syncfs reports a writeback error to its caller only since Linux 5.8 (syncfs(2): before,
 * it fails only with EBADF); on an older kernel a failed writeback under a batch would
 * still be answered 250. Test builds may pretend another
 * kernel (RELAYNODE_FAULT_KERNEL) so the fallback can be exercised here. */
static void spool_decide_sync(struct spool *s)
{
    struct utsname u;
    const char *rel = uname(&u) == 0 ? u.release : "";
#ifdef RN_FAULTS
    const char *fake = getenv("RELAYNODE_FAULT_KERNEL");
    if (fake)
        rel = fake;
#endif
    rn_strlcpy(s->kernel, rel, sizeof s->kernel);
    s->syncfs_ok = spool_syncfs_trusted(s->kernel);
}

const char *spool_sync_mode(const struct spool *s, const char **release)
{
    if (release)
        *release = s->kernel;
    return s->syncfs_ok ? "syncfs" : "fsync-per-file";
}

int spool_open(const char *dir, struct spool **out, char *err, size_t errlen)
{
    *out = NULL;
    if (mkdir(dir, 0700) < 0 && errno != EEXIST)
        return rn_err(err, errlen, "mkdir %s: %s", dir, strerror(errno));
    struct spool *s = xcalloc(1, sizeof *s);
    s->dir = xstrdup(dir);
    s->tmpfd = s->queuefd = s->quarfd = s->statefd = s->lockfd = -1;
    pthread_mutex_init(&s->mu, NULL);
    spool_decide_sync(s);
    s->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (s->dirfd < 0) {
        rn_err(err, errlen, "open %s: %s", dir, strerror(errno));
        goto fail;
    }
    if (open_subdir(s->dirfd, "tmp", &s->tmpfd, err, errlen) < 0 ||
        open_subdir(s->dirfd, "queue", &s->queuefd, err, errlen) < 0 ||
        open_subdir(s->dirfd, "quarantine", &s->quarfd, err, errlen) < 0 ||
        open_subdir(s->dirfd, "state", &s->statefd, err, errlen) < 0)
        goto fail;
    /* The new directory entries must be durable before the first commit relies on them. */
    if (fsync(s->dirfd) < 0) {
        rn_err(err, errlen, "fsync %s: %s", dir, strerror(errno));
        goto fail;
    }
    s->lockfd = openat(s->dirfd, "lock", O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (s->lockfd < 0) {
        rn_err(err, errlen, "open %s/lock: %s", dir, strerror(errno));
        goto fail;
    }
    if (flock(s->lockfd, LOCK_EX | LOCK_NB) == 0) {
        s->owner = true;
        spool_write_pid(s);
        if (spool_recover(s, err, errlen) < 0)
            goto fail;
    } else if (errno != EWOULDBLOCK) {
        rn_err(err, errlen, "lock %s/lock: %s", dir, strerror(errno));
        goto fail;
    }
    *out = s;
    return 0;
fail:
    spool_free(&s);
    return -1;
}

int spool_free_bytes(struct spool *s, uint64_t *out, char *err, size_t errlen)
{
    struct statvfs v;
    fault_sleep("spool-statvfs");
    if (fstatvfs(s->dirfd, &v) < 0)
        return rn_err(err, errlen, "statvfs %s: %s", s->dir, strerror(errno));
    *out = (uint64_t)v.f_bavail * (uint64_t)v.f_frsize;
    return 0;
}

bool spool_is_owner(const struct spool *s)
{
    return s->owner;
}

pid_t spool_owner_pid(const char *dir)
{
    char path[4096], buf[32];
    if ((size_t)snprintf(path, sizeof path, "%s/lock", dir) >= sizeof path)
        return 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return 0;
    ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
    buf[n > 0 ? n : 0] = '\0';
    char *end;
    long pid = strtol(buf, &end, 10);
    bool held = false;
    if (n > 0 && end != buf && *end == '\n' && pid > 0 && pid <= INT32_MAX &&
        (kill((pid_t)pid, 0) == 0 || errno == EPERM)) {
        /* This open file description is our own, so the lock conflicts with the owner's
         * (even when the owner is this process); taking it means nobody holds it. */
        if (flock(fd, LOCK_EX | LOCK_NB) == 0)
            flock(fd, LOCK_UN);
        else
            held = errno == EWOULDBLOCK;
    }
    close(fd);
    return held ? (pid_t)pid : 0;
}

void spool_free(struct spool **sp)
{
    struct spool *s = *sp;
    if (!s)
        return;
    int fds[] = {s->dirfd, s->tmpfd, s->queuefd, s->quarfd, s->statefd, s->lockfd};
    for (size_t i = 0; i < sizeof fds / sizeof fds[0]; i++)
        if (fds[i] >= 0)
            close(fds[i]);
    for (size_t i = 0; i < s->nquar; i++) {
        free(s->quar[i].name);
        free(s->quar[i].reason);
    }
    free(s->quar);
    pthread_mutex_destroy(&s->mu);
    free(s->dir);
    free(s);
    *sp = NULL;
}

size_t spool_quarantine_list(const struct spool *s, const struct spool_quarantined **list)
{
    *list = s->quar;
    return s->nquar;
}

/* ---- writing ---- */

static int write_all(int fd, const struct iovec *iov0, int n)
{
    struct iovec iov[2];
    memcpy(iov, iov0, (size_t)n * sizeof *iov);
    struct iovec *v = iov;
    while (n > 0) {
        fault_sleep("spool-write");
        if (spool_fault(SPOOL_FAULT_WRITE) < 0)
            return -1;
        ssize_t w = writev(fd, v, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        while (n > 0 && (size_t)w >= v->iov_len) {
            w -= (ssize_t)v->iov_len;
            v++, n--;
        }
        if (n > 0) {
            v->iov_base = (char *)v->iov_base + w;
            v->iov_len -= (size_t)w;
        }
    }
    return 0;
}

/* The message can no longer succeed: drop the tmp file now so nothing torn remains. */
static int msg_fail(struct spool_msg *m, const char *what, int e, char *err, size_t errlen)
{
    if (!m->failed) {
        if (m->fd >= 0) {
            close(m->fd);
            m->fd = -1;
        }
        unlinkat(m->s->tmpfd, m->id, 0);
        m->failed = true;
    }
    return rn_err(err, errlen, "%s: %s %s", m->id, what, strerror(e));
}

/* Close the open DATA record (fill its header, or drop an empty one). */
static void msg_close_record(struct spool_msg *m)
{
    if (m->rec == SIZE_MAX)
        return;
    size_t len = m->used - m->rec - SPOOL_REC_HDR;
    if (len == 0)
        m->used = m->rec;
    else
        spool_rec_put_header(m->buf + m->rec, SPOOL_REC_DATA, (uint32_t)len);
    m->rec = SIZE_MAX;
}

static int msg_flush(struct spool_msg *m)
{
    msg_close_record(m);
    if (m->used == 0)
        return 0;
    m->crc = spool_rec_crc32(m->crc, m->buf, m->used);
    struct iovec v = {m->buf, m->used};
    if (write_all(m->fd, &v, 1) < 0)
        return msg_fail(m, "write", errno, m->err, m->errlen);
    m->used = 0;
    return 0;
}

/* Sink for the envelope encoder: records are small, so they go through the buffer. */
static int msg_sink(void *arg, const void *p, size_t n)
{
    struct spool_msg *m = arg;
    const uint8_t *b = p;
    while (n > 0) {
        if (m->used == SPOOL_BUF && msg_flush(m) < 0)
            return -1;
        size_t k = SPOOL_BUF - m->used < n ? SPOOL_BUF - m->used : n;
        memcpy(m->buf + m->used, b, k);
        m->used += k, b += k, n -= k;
    }
    return 0;
}

/* Sink for the envelope encoder at start: the records go to memory (no file yet). */
static int env_sink(void *arg, const void *p, size_t n)
{
    struct spool_msg *m = arg;
    if (m->envcap - m->envlen < n) {
        size_t cap = m->envcap ? m->envcap : 1024;
        while (cap - m->envlen < n)
            cap *= 2;
        m->env = xrealloc(m->env, cap);
        m->envcap = cap;
    }
    memcpy(m->env + m->envlen, p, n);
    m->envlen += n;
    return 0;
}

struct spool_msg *spool_msg_start(struct spool *s, const struct spool_envelope *env, char *err,
                                  size_t errlen)
{
    if (spool_rec_envelope_check(env, err, errlen) < 0)
        return NULL;
    struct spool_msg *m = xcalloc(1, sizeof *m);
    m->s = s;
    m->fd = -1;
    m->rec = SIZE_MAX;
    id_new(s, m->id);
    if (spool_rec_encode_envelope(env, env_sink, m, err, errlen) < 0) {
        free(m->env);
        free(m);
        return NULL;
    }
    return m;
}

int spool_msg_create(struct spool_msg *m, char *err, size_t errlen)
{
    if (m->failed || m->fd >= 0 || !m->env)
        return rn_err(err, errlen, "%s: create: not a started message", m->id);
    m->err = err, m->errlen = errlen;
    fault_sleep("spool-create");
    m->fd = spool_fault(SPOOL_FAULT_CREATE) < 0 ? -1
            : openat(m->s->tmpfd, m->id, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW,
                     0600);
    if (m->fd < 0) {
        m->failed = true;              /* nothing to remove */
        return rn_err(err, errlen, "%s: create tmp file: %s", m->id, strerror(errno));
    }
    int rc = msg_sink(m, m->env, m->envlen);
    free(m->env);
    m->env = NULL;
    m->envlen = m->envcap = 0;
    return rc;
}

struct spool_msg *spool_msg_new(struct spool *s, const struct spool_envelope *env, char *err,
                                size_t errlen)
{
    struct spool_msg *m = spool_msg_start(s, env, err, errlen);
    if (m && spool_msg_create(m, err, errlen) < 0)
        spool_msg_abort(&m);
    return m;
}

const char *spool_msg_id(const struct spool_msg *m)
{
    return m->id;
}

int spool_msg_write(struct spool_msg *m, const void *data, size_t len, char *err, size_t errlen)
{
    if (m->failed)
        return rn_err(err, errlen, "%s: an earlier write failed", m->id);
    if (m->fd < 0)
        return rn_err(err, errlen, "%s: write before the file was created", m->id);
    m->err = err, m->errlen = errlen;
    const uint8_t *b = data;
    while (len > 0) {
        /* Large writes skip the buffer: one record of up to SPOOL_REC_DATA_MAX per writev. */
        if (m->rec == SIZE_MAX && len >= SPOOL_BUF) {
            if (msg_flush(m) < 0)
                return -1;
            size_t k = len < SPOOL_REC_DATA_MAX ? len : SPOOL_REC_DATA_MAX;
            uint8_t h[SPOOL_REC_HDR];
            spool_rec_put_header(h, SPOOL_REC_DATA, (uint32_t)k);
            struct iovec v[2] = {{h, sizeof h}, {(void *)b, k}};
            m->crc = spool_rec_crc32(spool_rec_crc32(m->crc, h, sizeof h), b, k);
            if (write_all(m->fd, v, 2) < 0)
                return msg_fail(m, "write", errno, err, errlen);
            m->total += k, b += k, len -= k;
            continue;
        }
        if (m->rec == SIZE_MAX) {
            if (SPOOL_BUF - m->used < SPOOL_REC_HDR + 1 && msg_flush(m) < 0)
                return -1;
            m->rec = m->used;
            m->used += SPOOL_REC_HDR;
        }
        size_t k = SPOOL_BUF - m->used < len ? SPOOL_BUF - m->used : len;
        memcpy(m->buf + m->used, b, k);
        m->used += k, m->total += k, b += k, len -= k;
        if (m->used == SPOOL_BUF && msg_flush(m) < 0)
            return -1;
    }
    return 0;
}

static void msg_free(struct spool_msg **mp)
{
    struct spool_msg *m = *mp;
    if (m->fd >= 0)
        close(m->fd);
    free(m->env);
    free(m);
    *mp = NULL;
}

/* Seal: the END record with the whole-file checksum, written (not yet synced). */
static int msg_seal(struct spool_msg *m, char *err, size_t errlen)
{
    if (m->failed)
        return rn_err(err, errlen, "%s: an earlier write failed", m->id);
    m->err = err, m->errlen = errlen;
    msg_close_record(m);
    if (SPOOL_BUF - m->used < SPOOL_REC_HDR + SPOOL_REC_END_LEN && msg_flush(m) < 0)
        return -1;
    uint32_t crc = spool_rec_crc32(m->crc, m->buf, m->used);
    spool_rec_put_end(m->buf + m->used, m->total, crc);
    m->used += SPOOL_REC_HDR + SPOOL_REC_END_LEN;
    struct iovec v = {m->buf, m->used};
    if (write_all(m->fd, &v, 1) < 0)
        return msg_fail(m, "write", errno, err, errlen);
    return 0;
}

/* Close after the sync, then rename into queue/ without replacing. */
static int msg_publish(struct spool_msg *m, char *err, size_t errlen)
{
    struct spool *s = m->s;
    /* A close error after a good fsync still fails the message (Postfix mail_stream.c: some
     * filesystems write out on close). */
    int fd = m->fd;
    m->fd = -1;
    int cerr = spool_fault(SPOOL_FAULT_CLOSE) < 0 ? errno : 0;
    if (close(fd) < 0 && !cerr)
        cerr = errno;
    if (cerr)
        return msg_fail(m, "close", cerr, err, errlen);
    int r = spool_fault(SPOOL_FAULT_RENAME);
    if (r == 0) {
        r = renameat2(s->tmpfd, m->id, s->queuefd, m->id, RENAME_NOREPLACE);
        if (r < 0 && (errno == EINVAL || errno == ENOSYS)) {
            /* No RENAME_NOREPLACE here: link refuses to replace too; a crash between link
             * and unlink leaves a tmp/ leftover that spool_open removes. */
            r = linkat(s->tmpfd, m->id, s->queuefd, m->id, 0);
            if (r == 0)
                unlinkat(s->tmpfd, m->id, 0);
        }
    }
    if (r < 0)
        return msg_fail(m, "rename into queue", errno, err, errlen);
    return 0;
}

/* The data of every sealed file reaches stable storage: one fsync for a lone message; for a
 * batch, one syncfs where the kernel reports its errors (spool_sync_mode), else an fsync of
 * each file. A failed sync fails the messages it covered (syncfs: all of them). */
static void batch_sync(struct spool *s, struct spool_msg **msgs, size_t n, int *rcs,
                       char *errs, size_t errlen, size_t *live, size_t last)
{
    if (*live > 1 && !s->syncfs_ok) {
        for (size_t i = 0; i < n; i++) {
            if (rcs[i] != 0)
                continue;
            if (spool_fault(SPOOL_FAULT_FSYNC) < 0 || fsync(msgs[i]->fd) < 0) {
                rcs[i] = msg_fail(msgs[i], "fsync", errno, errs + i * errlen, errlen);
                (*live)--;
            }
        }
        return;
    }
    int r = spool_fault(SPOOL_FAULT_FSYNC);
    if (r == 0)
        r = *live == 1 ? fsync(msgs[last]->fd) : syncfs(s->queuefd);
    if (r < 0) {
        int e = errno;
        for (size_t i = 0; i < n; i++)
            if (rcs[i] == 0)
                rcs[i] = msg_fail(msgs[i], *live == 1 ? "fsync" : "syncfs", e,
                                  errs + i * errlen, errlen);
        *live = 0;
    }
}

void spool_msg_commit_batch(struct spool_msg **msgs, size_t n, int *rcs, char *errs,
                            size_t errlen)
{
    if (n == 0)
        return;
    struct spool *s = msgs[0]->s;
    size_t live = 0, last = 0;
    for (size_t i = 0; i < n; i++) {
        rcs[i] = msg_seal(msgs[i], errs + i * errlen, errlen);
        if (rcs[i] == 0)
            live++, last = i;
    }
    if (live > 0)
        batch_sync(s, msgs, n, rcs, errs, errlen, &live, last);
    size_t published = 0;
    for (size_t i = 0; i < n && live > 0; i++)
        if (rcs[i] == 0) {
            rcs[i] = msg_publish(msgs[i], errs + i * errlen, errlen);
            published += rcs[i] == 0;
        }
    /* One directory fsync makes every rename of the batch durable. */
    if (published > 0 && (spool_fault(SPOOL_FAULT_DIRSYNC) < 0 || fsync(s->queuefd) < 0)) {
        /* The entries may not be durable and the callers answer 451: take them back. If an
         * unlink is lost too, a crash can resurrect it: a duplicate, never a loss. */
        int e = errno;
        for (size_t i = 0; i < n; i++)
            if (rcs[i] == 0) {
                unlinkat(s->queuefd, msgs[i]->id, 0);
                msgs[i]->failed = true;
                rcs[i] = rn_err(errs + i * errlen, errlen, "%s: fsync queue directory: %s",
                                msgs[i]->id, strerror(e));
            }
    }
    for (size_t i = 0; i < n; i++)
        msg_free(&msgs[i]);
}

int spool_msg_commit(struct spool_msg **mp, char *err, size_t errlen)
{
    int rc;
    spool_msg_commit_batch(mp, 1, &rc, err, errlen);
    return rc;
}

void spool_msg_abort(struct spool_msg **mp)
{
    struct spool_msg *m = *mp;
    if (!m)
        return;
    if (!m->failed && m->fd >= 0) {     /* started but never created: nothing on disk */
        close(m->fd);
        m->fd = -1;
        unlinkat(m->s->tmpfd, m->id, 0);
    }
    msg_free(mp);
}

int spool_msg_restart(struct spool_msg *m, const struct spool_envelope *env, char *err,
                      size_t errlen)
{
    if (m->failed)
        return rn_err(err, errlen, "%s: an earlier write failed", m->id);
    m->err = err, m->errlen = errlen;
    if (lseek(m->fd, 0, SEEK_SET) < 0 || ftruncate(m->fd, 0) < 0)
        return msg_fail(m, "truncate", errno, err, errlen);
    m->used = 0;
    m->rec = SIZE_MAX;
    m->total = 0;
    m->crc = 0;
    if (spool_rec_encode_envelope(env, msg_sink, m, err, errlen) < 0) {
        if (!m->failed)
            msg_fail(m, "envelope", EINVAL, err, errlen);
        return -1;
    }
    return 0;
}

int spool_msg_quarantine(struct spool_msg **mp, char *err, size_t errlen)
{
    struct spool_msg *m = *mp;
    struct spool *s = m->s;
    int rc = msg_seal(m, err, errlen);
    if (rc == 0 && (spool_fault(SPOOL_FAULT_FSYNC) < 0 || fsync(m->fd) < 0))
        rc = msg_fail(m, "fsync", errno, err, errlen);
    if (rc == 0) {
        int fd = m->fd;
        m->fd = -1;
        if (close(fd) < 0)
            rc = msg_fail(m, "close", errno, err, errlen);
    }
    if (rc == 0 && renameat2(s->tmpfd, m->id, s->quarfd, m->id, RENAME_NOREPLACE) < 0)
        rc = msg_fail(m, "rename into quarantine", errno, err, errlen);
    if (rc == 0 && fsync(s->quarfd) < 0) {
        int e = errno;
        unlinkat(s->quarfd, m->id, 0);
        m->failed = true;
        rc = rn_err(err, errlen, "%s: fsync quarantine directory: %s", m->id, strerror(e));
    }
    if (rc < 0 && !m->failed)
        spool_msg_abort(mp);
    else
        msg_free(mp);
    return rc;
}
