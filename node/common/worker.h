/* worker: a small pool of threads for blocking work (directory loads and binds, fsync), with
 * each result delivered back on the event-loop thread. docs/style.md rule 7: never block the loop. */
#ifndef RN_WORKER_H
#define RN_WORKER_H
#include <stddef.h>

struct event_base;
struct worker;

/* run() executes on a worker thread; done() then runs on the loop thread with the same arg. */
typedef void (*worker_fn)(void *arg);

struct worker *worker_new(struct event_base *base, size_t nthreads);  /* NULL on failure */
/* Stop accepting jobs, finish queued ones (their done() still runs), join threads, free. */
void worker_free(struct worker **w);
void worker_submit(struct worker *w, worker_fn run, worker_fn done, void *arg);
/* The same, for a caller that may run while the pool stops (a done() that chains the next
 * job, e.g. a delivery streaming a message): -1 and nothing queued once worker_free began. */
int worker_try_submit(struct worker *w, worker_fn run, worker_fn done, void *arg);
/* How many times finished jobs woke the loop: one wake-up covers every job that finished
 * before the loop took them (for tests and statistics). */
unsigned long long worker_wakeups(struct worker *w);
#endif
