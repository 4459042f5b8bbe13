/* spool_writer: an incoming message's file created and written on the worker pool
 * (spool_writer.h). Two buffers: `pend` collects what the loop appends, `fly` is what the
 * job in flight writes; a job starts by swapping them, so the loop never touches bytes a
 * worker reads. While a job runs, the worker alone touches msg, fly and the job's result;
 * the loop reads them in done(), after the pool's own locking. A writer freed with a job in
 * flight is only marked (orphan) and released by that job's done(), so a session may close
 * at any moment (docs/style.md 11). */
#include "node/spool/spool_writer.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "directory/base/util.h"
#include "node/common/worker.h"
#include "node/spool/spool.h"

struct spool_writer {
    struct worker **pool;              /* borrowed: the node's slot */
    spool_writer_fn *notify;
    void *arg;
    struct spool_msg *msg;             /* owned until taken; the job's while busy */
    uint8_t *pend; size_t plen, pcap;  /* owned: appended, waiting (loop) */
    uint8_t *fly; size_t flen, fcap;   /* owned: the job's bytes while busy */
    bool busy;                         /* a job in flight */
    bool created;                      /* the file exists (a create job succeeded) */
    bool finishing;                    /* write everything, however little */
    bool orphan;                       /* freed by the owner while busy */
    bool failed;
    char err[256];                     /* the first failure */
    /* The job in flight: set before submit, results read in done(). */
    bool jcreate;
    int jrc;
    char jerr[256];
};

static void wr_run(void *arg)
{
    struct spool_writer *w = arg;
    w->jrc = 0;
    if (w->jcreate)
        w->jrc = spool_msg_create(w->msg, w->jerr, sizeof w->jerr);
    if (w->jrc == 0 && w->flen > 0)
        w->jrc = spool_msg_write(w->msg, w->fly, w->flen, w->jerr, sizeof w->jerr);
}

static void wr_abort_run(void *arg)
{
    struct spool_msg *m = arg;
    spool_msg_abort(&m);
}

/* Free everything; the message, if still owned, is aborted (unlink) off the loop when the
 * pool takes the job, here when it is gone (the node stopping). */
static void wr_release(struct spool_writer *w)
{
    if (w->msg) {
        struct worker *pool = *w->pool;
        if (!pool || worker_try_submit(pool, wr_abort_run, NULL, w->msg) < 0)
            spool_msg_abort(&w->msg);
        w->msg = NULL;
    }
    free(w->pend);
    free(w->fly);
    free(w);
}

static void wr_fail(struct spool_writer *w, const char *err)
{
    if (!w->failed) {
        w->failed = true;
        rn_strlcpy(w->err, err, sizeof w->err);
    }
    w->plen = 0;                       /* never written now */
}

static void wr_done(void *arg);

/* Start the next job if none runs and there is work: a chunk, or at the finish the rest
 * (and the file, if no job made it yet). The first job also creates the file, so a small
 * message costs one job: created and written at once. */
static void wr_kick(struct spool_writer *w)
{
    if (w->busy || w->failed)
        return;
    if (w->plen < SPOOL_WRITER_CHUNK && !w->finishing)
        return;
    if (w->created && w->plen == 0)
        return;
    uint8_t *b = w->fly;
    size_t cap = w->fcap;
    w->fly = w->pend, w->fcap = w->pcap, w->flen = w->plen;
    w->pend = b, w->pcap = cap, w->plen = 0;
    w->jcreate = !w->created;
    w->busy = true;
    struct worker *pool = *w->pool;
    if (!pool || worker_try_submit(pool, wr_run, wr_done, w) < 0) {
        w->busy = false;
        w->flen = 0;
        wr_fail(w, "the worker pool has stopped");
    }
}

static void wr_done(void *arg)
{
    struct spool_writer *w = arg;
    w->busy = false;
    w->flen = 0;
    if (w->jrc == 0 && w->jcreate)
        w->created = true;
    if (w->jrc < 0)
        wr_fail(w, w->jerr);
    if (w->orphan) {
        wr_release(w);
        return;
    }
    wr_kick(w);
    w->notify(w->arg);                 /* last: the owner may free w */
}

struct spool_writer *spool_writer_new(struct worker **pool, struct spool_msg **m,
                                      spool_writer_fn *notify, void *arg)
{
    struct spool_writer *w = xcalloc(1, sizeof *w);
    w->pool = pool;
    w->msg = *m;
    *m = NULL;
    w->notify = notify;
    w->arg = arg;
    return w;
}

void spool_writer_append(struct spool_writer *w, const void *p, size_t n)
{
    if (w->failed || n == 0)
        return;
    if (w->pcap - w->plen < n) {
        size_t cap = w->pcap ? w->pcap : 16384;
        while (cap - w->plen < n)
            cap *= 2;
        w->pend = xrealloc(w->pend, cap);
        w->pcap = cap;
    }
    memcpy(w->pend + w->plen, p, n);
    w->plen += n;
    wr_kick(w);
}

size_t spool_writer_backlog(const struct spool_writer *w)
{
    return w->plen + (w->busy ? w->flen : 0);
}

bool spool_writer_failed(const struct spool_writer *w)
{
    return w->failed;
}

bool spool_writer_finish(struct spool_writer *w)
{
    w->finishing = true;
    wr_kick(w);
    return !w->busy;
}

int spool_writer_take(struct spool_writer *w, struct spool_msg **m, char *err, size_t errlen)
{
    *m = NULL;
    if (w->busy || !w->finishing)
        abort();                       /* a caller bug: finish first, until it says done */
    if (w->failed)
        return rn_err(err, errlen, "%s", w->err);
    *m = w->msg;
    w->msg = NULL;
    return 0;
}

void spool_writer_free(struct spool_writer **wp)
{
    struct spool_writer *w = *wp;
    if (!w)
        return;
    *wp = NULL;
    if (w->busy) {
        w->orphan = true;
        return;
    }
    wr_release(w);
}
