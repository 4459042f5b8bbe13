/* spool_state: per-message delivery state and message removal (spool.h). The state file is
 * a short text file, so an operator can read it:
 *     RNST 1
 *     attempts 3
 *     next 1795000000
 *     D 250 2.0.0 Ok: queued as 4F1A
 *     P 451 4.3.0 try again later
 * one status line per envelope recipient, in envelope order. It is replaced whole (tmp,
 * fsync, rename, fsync state/), so a crash leaves the old state or the new one; if it is
 * lost the message is retried for every recipient not known to be done: duplicates are
 * possible, losses are not (docs/reliability.md §2). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "directory/base/util.h"
#include "node/spool/spool-private.h"

#define STATE_MAX (64u * 1024u * 1024u)

void spool_state_init(struct spool_state *st, size_t nrcpts)
{
    memset(st, 0, sizeof *st);
    st->nrcpts = nrcpts;
    st->status = xmalloc(nrcpts ? nrcpts : 1);
    memset(st->status, SPOOL_RCPT_PENDING, nrcpts);
    st->diag = xcalloc(nrcpts ? nrcpts : 1, sizeof *st->diag);
}

void spool_state_clear(struct spool_state *st)
{
    for (size_t i = 0; st->diag && i < st->nrcpts; i++)
        free(st->diag[i]);
    free(st->diag);
    free(st->status);
    memset(st, 0, sizeof *st);
}

void spool_state_set(struct spool_state *st, size_t i, enum spool_rcpt_status status,
                     const char *diag)
{
    if (i >= st->nrcpts)
        return;
    st->status[i] = (char)status;
    free(st->diag[i]);
    st->diag[i] = NULL;
    if (!diag)
        return;
    size_t n = strnlen(diag, SPOOL_DIAG_MAX);
    char *d = xmalloc(n + 1);
    for (size_t k = 0; k < n; k++) {
        unsigned char c = (unsigned char)diag[k];
        d[k] = c < 0x20 || c > 0x7e ? ' ' : (char)c;
    }
    d[n] = '\0';
    st->diag[i] = d;
}

int spool_state_write(struct spool *s, const char *id, const struct spool_state *st, char *err,
                      size_t errlen)
{
    if (!spool_id_valid(id))
        return rn_err(err, errlen, "state: bad queue id");
    char tmp[SPOOL_ID_LEN + 8];
    snprintf(tmp, sizeof tmp, ".%s.tmp", id);
    int fd = openat(s->statefd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW,
                    0600);
    if (fd < 0)
        return rn_err(err, errlen, "state %s: create: %s", id, strerror(errno));
    FILE *f = fdopen(fd, "w");
    if (!f) {
        close(fd);
        unlinkat(s->statefd, tmp, 0);
        return rn_err(err, errlen, "state %s: %s", id, strerror(errno));
    }
    fprintf(f, "RNST 1\nattempts %u\nnext %lld\n", st->attempts, (long long)st->next_attempt);
    for (size_t i = 0; i < st->nrcpts; i++)
        fprintf(f, "%c %s\n", st->status[i], st->diag[i] ? st->diag[i] : "");
    int e = 0;
    if (fflush(f) != 0 || ferror(f))
        e = errno ? errno : EIO;
    else if (fsync(fd) < 0)
        e = errno;
    if (fclose(f) != 0 && !e)
        e = errno;
    if (!e && renameat(s->statefd, tmp, s->statefd, id) < 0)
        e = errno;
    if (!e && fsync(s->statefd) < 0)
        e = errno;
    if (e) {
        unlinkat(s->statefd, tmp, 0);
        return rn_err(err, errlen, "state %s: write: %s", id, strerror(e));
    }
    return 0;
}

static int state_parse(char *buf, size_t nrcpts, struct spool_state *st, char *err,
                       size_t errlen)
{
    char *save = NULL;
    char *line = strtok_r(buf, "\n", &save);
    if (!line || strcmp(line, "RNST 1") != 0)
        return rn_err(err, errlen, "not a state file");
    unsigned attempts;
    long long next;
    line = strtok_r(NULL, "\n", &save);
    if (!line || sscanf(line, "attempts %u", &attempts) != 1)
        return rn_err(err, errlen, "bad attempts line");
    line = strtok_r(NULL, "\n", &save);
    if (!line || sscanf(line, "next %lld", &next) != 1)
        return rn_err(err, errlen, "bad next line");
    st->attempts = attempts;
    st->next_attempt = (time_t)next;
    size_t i = 0;
    while ((line = strtok_r(NULL, "\n", &save))) {
        char c = line[0];
        if (i >= nrcpts || (c != SPOOL_RCPT_PENDING && c != SPOOL_RCPT_DONE &&
                            c != SPOOL_RCPT_FAILED) || line[1] != ' ')
            return rn_err(err, errlen, "bad recipient line %zu", i + 1);
        spool_state_set(st, i, (enum spool_rcpt_status)c, line[2] ? line + 2 : NULL);
        i++;
    }
    if (i != nrcpts)
        return rn_err(err, errlen, "%zu recipient lines for %zu recipients", i, nrcpts);
    return 0;
}

int spool_state_read(struct spool *s, const char *id, size_t nrcpts, struct spool_state *st,
                     char *err, size_t errlen)
{
    spool_state_init(st, nrcpts);
    if (!spool_id_valid(id))
        return rn_err(err, errlen, "state: bad queue id");
    int fd = openat(s->statefd, id, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
        if (errno == ENOENT)
            return 1;
        return rn_err(err, errlen, "state %s: %s", id, strerror(errno));
    }
    struct stat sb;
    if (fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode) || (size_t)sb.st_size > STATE_MAX) {
        close(fd);
        return rn_err(err, errlen, "state %s: not a regular file of sane size", id);
    }
    char *buf = xmalloc((size_t)sb.st_size + 1);
    size_t got = 0;
    while (got < (size_t)sb.st_size) {
        ssize_t r = read(fd, buf + got, (size_t)sb.st_size - got);
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    close(fd);
    buf[got] = '\0';
    int rc = got == (size_t)sb.st_size ? state_parse(buf, nrcpts, st, err, errlen)
                                       : rn_err(err, errlen, "short read");
    free(buf);
    if (rc < 0) {
        spool_state_clear(st);
        spool_state_init(st, nrcpts);
    }
    return rc;
}

int spool_remove(struct spool *s, const char *id, bool state, char *err, size_t errlen)
{
    if (!spool_id_valid(id))
        return rn_err(err, errlen, "remove: bad queue id");
    if (unlinkat(s->queuefd, id, 0) < 0 && errno != ENOENT)
        return rn_err(err, errlen, "remove %s: %s", id, strerror(errno));
    if (state && (spool_fault(SPOOL_FAULT_STATE_UNLINK) < 0 || unlinkat(s->statefd, id, 0) < 0))
        (void)0;                     /* an orphan state file is dropped at the next start */
    /* No directory fsync: an unlink lost in a crash brings the message back, and it is
     * delivered again (at least once, never lost); the next commit's directory fsync makes
     * earlier unlinks durable anyway. Postfix deletes queue files the same way. */
    return 0;
}

void spool_state_recover(struct spool *s)
{
    int fd = dup(s->statefd);
    DIR *d = fd < 0 ? NULL : fdopendir(fd);
    if (!d) {
        if (fd >= 0)
            close(fd);
        return;
    }
    rewinddir(d);
    for (struct dirent *de; (de = readdir(d));) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
            continue;
        struct stat st;
        bool orphan = !spool_id_valid(de->d_name) ||
                      fstatat(s->queuefd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0;
        if (orphan)
            unlinkat(s->statefd, de->d_name, 0);
    }
    closedir(d);
}
