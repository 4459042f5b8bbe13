/* spool_writer: one incoming message's bytes written to its spool file on the worker pool,
 * so the event loop never waits for the disk (docs/reliability.md §2.6, docs/style.md 7).
 * The loop appends bytes; a job writes what waits once SPOOL_WRITER_CHUNK has gathered (the
 * first one creates the file first: spool_msg_create), or the rest at the finish, and at
 * most one job runs per message, so bytes reach the file in the order they were appended
 * (a small message costs one job). The owner stops reading its client while
 * spool_writer_backlog() is over SPOOL_WRITER_BOUND and looks again at each notify.
 * spool_writer_finish waits for every byte before the message goes to the committer. The
 * first failure (ENOSPC, EIO, the pool stopping) is kept, later bytes are dropped, and
 * spool_writer_take reports it. Loop thread only. */
#ifndef RN_SPOOL_WRITER_H
#define RN_SPOOL_WRITER_H
#include <stdbool.h>
#include <stddef.h>

struct spool_msg;
struct worker;
struct spool_writer;

#define SPOOL_WRITER_BOUND (256u * 1024u)  /* backlog past which the owner stops reading */
#define SPOOL_WRITER_CHUNK (64u * 1024u)   /* a write job starts once this much waits */

typedef void spool_writer_fn(void *arg);

/* Take *m (from spool_msg_start, not created yet; *m = NULL). pool is the node's slot for
 * the worker pool (borrowed, read at every submit: NULL once the pool is freed, and then
 * the next step fails). notify(arg) runs on the loop after each job, as the caller's last
 * action, and never after spool_writer_free. Caller frees with spool_writer_free. */
struct spool_writer *spool_writer_new(struct worker **pool, struct spool_msg **m,
                                      spool_writer_fn *notify, void *arg);
/* Append n bytes (copied; dropped after a failure); may start a job. */
void spool_writer_append(struct spool_writer *w, const void *p, size_t n);
/* Bytes appended and not yet written (waiting, or in the job in flight). */
size_t spool_writer_backlog(const struct spool_writer *w);
/* Whether a step failed: the message can no longer be accepted. */
bool spool_writer_failed(const struct spool_writer *w);
/* Write everything appended: true once that is done (or a step failed), and then
 * spool_writer_take may be called; false while a job runs (ask again at notify). */
bool spool_writer_finish(struct spool_writer *w);
/* After finish returned true: 0 and *m the message, every byte written (the caller commits
 * or aborts it), or -1 with err and *m NULL. */
int spool_writer_take(struct spool_writer *w, struct spool_msg **m, char *err, size_t errlen);
/* Drop the writer and abort a message not taken (its tmp file removed on the worker when
 * the pool runs). With a job in flight the memory it uses is freed when it completes, on
 * the loop; notify never runs again. *w = NULL. */
void spool_writer_free(struct spool_writer **w);
#endif
