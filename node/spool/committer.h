/* committer: group commit of spool messages (issue #5, docs/reliability.md G1). Commits requested
 * while a batch is being synced wait and form the next batch, which is made durable with
 * shared syncs (spool_msg_commit_batch), so throughput grows with concurrency while every
 * caller still learns about its own message only after its data is on stable storage. One
 * dedicated thread, so directory work on the shared worker pool can never delay a 250.
 * Loop thread only. */
#ifndef RN_COMMITTER_H
#define RN_COMMITTER_H
#include <stddef.h>

struct event_base;
struct spool;
struct spool_msg;
struct committer;
struct metric_series;

/* done() runs on the loop thread: rc 0 = durable (answer 250), -1 = not (answer 451 4.3.0;
 * nothing is left in queue/), err says why. */
typedef void committer_done_fn(void *arg, int rc, const char *err);

struct committer *committer_new(struct event_base *base);      /* NULL if no thread */
/* Finish every pending commit (their done() runs), then stop the thread; *c = NULL. */
void committer_free(struct committer **c);
/* Take ownership of *m (set NULL) and commit it with the next batch. */
void committer_submit(struct committer *c, struct spool_msg **m, committer_done_fn *done,
                      void *arg);
/* Observe every batch's size (messages) and duration (nanoseconds) into these histogram
 * series (node/metrics/metrics.h; borrowed, NULL = not observed). Before any submit. */
void committer_set_metrics(struct committer *c, struct metric_series *batch,
                           struct metric_series *duration);
/* Batches and messages committed so far (for logs and the benchmark). */
void committer_stats(const struct committer *c, unsigned long long *batches,
                     unsigned long long *messages);
#endif
