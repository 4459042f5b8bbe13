/* spool_read: reading the spool back (spool.h): a message's envelope, its data streamed
 * and verified through the record decoder (a torn or malformed file is never taken for a
 * message), the listing of committed messages in id order, and the start-up recovery of the
 * process that owns the spool: tmp/ emptied, and every file in queue/ that is not a message
 * moved to quarantine/ (spool-private.h). Calls block on the disk. */
#include <dirent.h>
#include <stdbool.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "directory/base/util.h"
#include "node/spool/spool_record.h"
#include "node/spool/spool-private.h"

#define SPOOL_READ_BUF 65536

/* ---- reading ---- */

/* A message read in steps (spool.h): the file, the record decoder and where data goes now. */
struct spool_reader {
    int fd;
    char id[64];
    struct spool_entry e;
    struct spool_rec_dec d;
    bool finished;                  /* the decoder was finished (its state freed) */
    int (*fn)(void *, const void *, size_t);
    void *arg;
    uint8_t buf[SPOOL_READ_BUF];
};

static int reader_data(void *arg, const void *p, size_t n)
{
    struct spool_reader *r = arg;
    return r->fn ? r->fn(r->arg, p, n) : 0;
}

struct spool_reader *spool_reader_open(struct spool *s, const char *id, char *err,
                                       size_t errlen)
{
    if (!spool_id_valid(id)) {
        rn_err(err, errlen, "%.64s: not a queue id", id);
        return NULL;
    }
    int fd = spool_fault(SPOOL_FAULT_LOOKUP) < 0
                 ? -1 : openat(s->queuefd, id, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
        rn_err(err, errlen, "%s: %s", id, strerror(errno));
        return NULL;
    }
    struct spool_reader *r = xcalloc(1, sizeof *r);
    r->fd = fd;
    rn_strlcpy(r->id, id, sizeof r->id);
    spool_rec_dec_init(&r->d, &r->e, reader_data, r);
    return r;
}

static int reader_fail(struct spool_reader *r, char *err, size_t errlen, const char *what)
{
    char derr[RN_ERRLEN];
    if (!r->finished)
        spool_rec_dec_finish(&r->d, derr, sizeof derr);     /* frees decoder state */
    r->finished = true;
    return rn_err(err, errlen, "%s: %s", r->id, what);
}

int spool_reader_step(struct spool_reader *r, int (*fn)(void *arg, const void *p, size_t n),
                      void *arg, char *err, size_t errlen)
{
    if (r->finished)
        return rn_err(err, errlen, "%s: read after the end", r->id);
    r->fn = fn, r->arg = arg;
    ssize_t n;
    do
        n = read(r->fd, r->buf, sizeof r->buf);
    while (n < 0 && errno == EINTR);
    char derr[RN_ERRLEN], what[RN_ERRLEN + 16];
    if (n < 0) {
        snprintf(what, sizeof what, "read: %s", strerror(errno));
        return reader_fail(r, err, errlen, what);
    }
    if (n == 0) {
        r->finished = true;
        if (spool_rec_dec_finish(&r->d, derr, sizeof derr) < 0)
            return rn_err(err, errlen, "%s: %s", r->id, derr);
        return 0;
    }
    if (spool_rec_dec_feed(&r->d, r->buf, (size_t)n, derr, sizeof derr) < 0) {
        r->finished = true;                                  /* the decoder freed itself */
        return rn_err(err, errlen, "%s: %s", r->id, derr);
    }
    return 1;
}

const struct spool_entry *spool_reader_entry(const struct spool_reader *r)
{
    return &r->e;
}

void spool_reader_free(struct spool_reader **rp)
{
    struct spool_reader *r = *rp;
    if (!r)
        return;
    if (!r->finished) {
        char derr[RN_ERRLEN];
        spool_rec_dec_finish(&r->d, derr, sizeof derr);
    }
    spool_entry_clear(&r->e);
    close(r->fd);
    free(r);
    *rp = NULL;
}

/* Decode the whole of queue/<id> into *e (cleared on error) and stream data to fn. */
static int read_file(struct spool *s, const char *id, struct spool_entry *e,
                     int (*fn)(void *, const void *, size_t), void *arg, char *err,
                     size_t errlen)
{
    memset(e, 0, sizeof *e);
    struct spool_reader *r = spool_reader_open(s, id, err, errlen);
    if (!r)
        return -1;
    int rc;
    while ((rc = spool_reader_step(r, fn, arg, err, errlen)) > 0)
        ;
    if (rc == 0) {
        *e = r->e;                      /* moved out: the reader no longer owns it */
        memset(&r->e, 0, sizeof r->e);
        rn_strlcpy(e->id, id, sizeof e->id);
    }
    spool_reader_free(&r);
    return rc;
}

int spool_read(struct spool *s, const char *id, struct spool_entry *e, char *err, size_t errlen)
{
    return read_file(s, id, e, NULL, NULL, err, errlen);
}

int spool_read_data(struct spool *s, const char *id, int (*fn)(void *arg, const void *p, size_t n),
                    void *arg, char *err, size_t errlen)
{
    struct spool_entry e;
    int rc = read_file(s, id, &e, fn, arg, err, errlen);
    spool_entry_clear(&e);
    return rc;
}

static int id_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int spool_foreach(struct spool *s, int (*fn)(const struct spool_entry *e, void *arg), void *arg,
                  char *err, size_t errlen)
{
    int fd = dup(s->queuefd);
    DIR *d = fd < 0 ? NULL : fdopendir(fd);
    if (!d) {
        if (fd >= 0)
            close(fd);
        return rn_err(err, errlen, "read queue: %s", strerror(errno));
    }
    rewinddir(d);
    char **ids = NULL;
    size_t n = 0, cap = 0;
    for (struct dirent *de; (de = readdir(d));) {
        if (!spool_id_valid(de->d_name))
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            ids = xrealloc(ids, cap * sizeof *ids);
        }
        ids[n++] = xstrdup(de->d_name);
    }
    closedir(d);
    if (n > 1)
        qsort(ids, n, sizeof *ids, id_cmp);
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        struct spool_entry e;
        char rerr[RN_ERRLEN];
        /* Gone (delivered meanwhile) or undecodable: never listed; spool_open quarantines. */
        if (rc == 0 && read_file(s, ids[i], &e, NULL, NULL, rerr, sizeof rerr) == 0) {
            rc = fn(&e, arg);
            spool_entry_clear(&e);
        }
        free(ids[i]);
    }
    free(ids);
    return rc;
}

/* ---- recovery (the owner, at spool_open) ---- */

static void quarantine_add(struct spool *s, const char *name, const char *reason)
{
    s->quar = xrealloc(s->quar, (s->nquar + 1) * sizeof *s->quar);
    s->quar[s->nquar].name = xstrdup(name);
    s->quar[s->nquar].reason = xstrdup(reason);
    s->nquar++;
}

/* Move queue/<name> to quarantine/<name>, never replacing an earlier quarantined file. */
static void quarantine_move(struct spool *s, const char *name, const char *why)
{
    char dst[300], reason[RN_ERRLEN + 64];
    int rc = -1;
    for (int i = 0; i < 100 && rc < 0; i++) {
        if (i == 0)
            snprintf(dst, sizeof dst, "%s", name);
        else
            snprintf(dst, sizeof dst, "%s.%d", name, i);
        rc = renameat2(s->queuefd, name, s->quarfd, dst, RENAME_NOREPLACE);
        if (rc < 0 && errno != EEXIST)
            break;
    }
    if (rc == 0)
        snprintf(reason, sizeof reason, "%s (moved to quarantine/%s)", why, dst);
    else
        snprintf(reason, sizeof reason, "%s (not moved: %s)", why, strerror(errno));
    quarantine_add(s, name, reason);
}

/* Owner-only start-up work: empty tmp/, quarantine what in queue/ is not a message. */
int spool_recover(struct spool *s, char *err, size_t errlen)
{
    int fd = dup(s->tmpfd);
    DIR *d = fd < 0 ? NULL : fdopendir(fd);
    if (!d) {
        if (fd >= 0)
            close(fd);
        return rn_err(err, errlen, "read tmp: %s", strerror(errno));
    }
    rewinddir(d);
    for (struct dirent *de; (de = readdir(d));)
        if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..") &&
            unlinkat(s->tmpfd, de->d_name, 0) < 0 && errno != ENOENT) {
            rn_err(err, errlen, "unlink tmp/%s: %s", de->d_name, strerror(errno));
            closedir(d);
            return -1;
        }
    closedir(d);
    fd = dup(s->queuefd);
    d = fd < 0 ? NULL : fdopendir(fd);
    if (!d) {
        if (fd >= 0)
            close(fd);
        return rn_err(err, errlen, "read queue: %s", strerror(errno));
    }
    rewinddir(d);
    size_t before = s->nquar;
    for (struct dirent *de; (de = readdir(d));) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
            continue;
        struct stat st;
        char rerr[RN_ERRLEN];
        struct spool_entry e;
        if (!spool_id_valid(de->d_name)) {
            quarantine_move(s, de->d_name, "not a queue id");
        } else if (fstatat(s->queuefd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
            continue;                /* vanished */
        } else if (!S_ISREG(st.st_mode)) {
            quarantine_move(s, de->d_name, "not a regular file");
        } else if (read_file(s, de->d_name, &e, NULL, NULL, rerr, sizeof rerr) < 0) {
            quarantine_move(s, de->d_name, rerr);
        } else {
            spool_entry_clear(&e);
        }
    }
    closedir(d);
    spool_state_recover(s);
    if (s->nquar > before) {
        fsync(s->quarfd);            /* best effort: the files were already complete */
        fsync(s->queuefd);
    }
    return 0;
}

int spool_exists(struct spool *s, const char *id, char *err, size_t errlen)
{
    if (!spool_id_valid(id))
        return rn_err(err, errlen, "%.64s: not a queue id", id);
    struct stat st;
    if (spool_fault(SPOOL_FAULT_LOOKUP) < 0 ||
        fstatat(s->queuefd, id, &st, AT_SYMLINK_NOFOLLOW) < 0) {
        if (errno == ENOENT)
            return 0;
        return rn_err(err, errlen, "%s: %s", id, strerror(errno));
    }
    return 1;
}
