/* queue: the node's delivery queue (issue #5, docs/architecture.md §5). Every committed message stays
 * in the spool until each recipient is delivered or has failed; failures are reported to the
 * sender with an RFC 3464 DSN (never for the null sender) committed before the original is
 * removed, so a crash at any moment loses nothing (docs/reliability.md §2: at least once).
 * Temporary failures retry with exponential backoff until the message lifetime ends. Each
 * event is a tracking log line: receive, send, defer, fail, expire, dsn, done. Loop thread. */
#ifndef RN_QUEUE_H
#define RN_QUEUE_H
#include <stddef.h>
#include <time.h>

struct node;
struct delivery;
struct queue;

struct queue_opts {
    unsigned lifetime;      /* seconds a message may stay (default 2 days) */
    unsigned retry_min;     /* first retry delay, doubled per attempt ... */
    unsigned retry_max;     /* ... up to this */
    unsigned max_inflight;  /* messages being delivered at once */
    int hold;               /* queue everything, attempt nothing (bootstrap queue_hold) */
};

/* Load every committed message of n->spool with its delivery state (blocking reads: call
 * before the loop runs) and start delivering what is due. NULL with err. */
struct queue *queue_new(struct node *n, struct delivery *d, const struct queue_opts *o,
                        char *err, size_t errlen);
/* Shutdown, in this order: queue_stop (no new attempts; from now on results are recorded
 * synchronously), then delivery_free and committer_free (in-flight attempts and bounces
 * finish), then queue_free. */
void queue_stop(struct queue *q);
void queue_free(struct queue **q);
/* A message the node has just committed (strings are copied). */
void queue_add(struct queue *q, const char *id, const char *sender, const char *const *rcpts,
               size_t n, time_t received);
/* relayctl queue retry (SIGUSR1): re-read the state of every waiting message and deliver
 * what is due now; drop messages removed from the spool meanwhile. */
void queue_rescan(struct queue *q);
/* True while a rescan still has messages to check (tests wait for it to end). */
int queue_rescanning(const struct queue *q);
/* When the oldest message still queued was received; 0 when the queue is empty. O(1). */
time_t queue_oldest(const struct queue *q);
/* How many messages are due now, waiting for a later attempt, and in flight. */
void queue_counts(const struct queue *q, size_t *ready, size_t *waiting, size_t *busy);
#endif
