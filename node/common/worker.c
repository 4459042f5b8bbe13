/* worker: N pthreads taking jobs from a mutex+condvar FIFO, with completions handed back to
 * the event-loop thread through an eventfd (docs/style.md 7: nothing blocking runs on the loop).
 *
 * A job's run() executes on some worker thread; when it returns the job moves to the done
 * list; the loop's read callback takes the whole done list and calls each done() in the order
 * the runs finished. The eventfd is bumped only by the job that finds no wake-up pending (the
 * loop has taken the list since the last bump): jobs that finish before the loop gets to
 * them share one wake-up (issue #17: a write per job was a system call and a context switch
 * per message on the committer's and the writers' paths). The eventfd needs no libevent locking, so
 * the pool works whether or not evthread_use_pthreads() was called. worker_free finishes every
 * queued job (their done() runs on the caller, which must be the loop thread), then joins.
 * Worker threads block all signals so SIGHUP/SIGTERM reach the loop's signal events. */
#include "node/common/worker.h"
#include <errno.h>
#include <event2/event.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>
#include "directory/base/util.h"

struct job {
    worker_fn run, done;
    void *arg;
    struct job *next;
};

struct job_list { struct job *head, *tail; };

struct worker {
    struct event_base *base;
    pthread_t *threads; size_t nthreads;   /* owned */
    pthread_mutex_t mu;
    pthread_cond_t cond;                   /* signalled when jobs arrive or on stop */
    struct job_list queue;                 /* waiting to run; under mu */
    struct job_list done;                  /* ran, waiting for done() on the loop; under mu */
    bool stopping;                         /* under mu */
    bool wake_pending;                     /* efd bumped, done list not yet taken; under mu */
    unsigned long long wakeups;            /* efd bumps so far; under mu */
    int efd;                               /* eventfd: done list became non-empty */
    struct event *ev;                      /* owned: read event on efd */
};

static void list_push(struct job_list *l, struct job *j)
{
    j->next = NULL;
    if (l->tail) l->tail->next = j; else l->head = j;
    l->tail = j;
}

static struct job *list_take_all(struct job_list *l)
{
    struct job *h = l->head;
    l->head = l->tail = NULL;
    return h;
}

static void *worker_thread(void *arg)
{
    struct worker *w = arg;
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, NULL);

    pthread_mutex_lock(&w->mu);
    for (;;) {
        while (!w->queue.head && !w->stopping)
            pthread_cond_wait(&w->cond, &w->mu);
        struct job *j = w->queue.head;
        if (!j)
            break;                          /* stopping and the queue is empty */
        w->queue.head = j->next;
        if (!w->queue.head) w->queue.tail = NULL;
        pthread_mutex_unlock(&w->mu);

        j->run(j->arg);

        pthread_mutex_lock(&w->mu);
        list_push(&w->done, j);
        if (!w->wake_pending) {
            w->wake_pending = true;
            w->wakeups++;
            pthread_mutex_unlock(&w->mu);
            uint64_t one = 1;
            /* The counter cannot overflow in practice; EAGAIN would still leave it readable. */
            ssize_t r = write(w->efd, &one, sizeof one);
            (void)r;
            pthread_mutex_lock(&w->mu);
        }
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

/* Run the done() of every finished job, on the calling (loop) thread. */
static void worker_run_done(struct worker *w)
{
    pthread_mutex_lock(&w->mu);
    struct job *j = list_take_all(&w->done);
    w->wake_pending = false;               /* the next finished job bumps efd again */
    pthread_mutex_unlock(&w->mu);
    while (j) {
        struct job *next = j->next;
        if (j->done)
            j->done(j->arg);
        free(j);
        j = next;
    }
}

static void worker_on_event(evutil_socket_t fd, short what, void *arg)
{
    struct worker *w = arg;
    uint64_t n;
    ssize_t r = read(fd, &n, sizeof n);   /* resets the counter; EAGAIN is harmless */
    (void)r;
    worker_run_done(w);
}

struct worker *worker_new(struct event_base *base, size_t nthreads)
{
    if (!base || nthreads == 0)
        return NULL;
    struct worker *w = xcalloc(1, sizeof *w);
    w->base = base;
    w->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (w->efd < 0)
        goto fail_efd;
    w->ev = event_new(base, w->efd, EV_READ | EV_PERSIST, worker_on_event, w);
    if (!w->ev || event_add(w->ev, NULL) < 0)
        goto fail_ev;
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cond, NULL);
    w->threads = xcalloc(nthreads, sizeof *w->threads);
    for (size_t i = 0; i < nthreads; i++) {
        if (pthread_create(&w->threads[i], NULL, worker_thread, w) != 0)
            break;
        w->nthreads++;
    }
    if (w->nthreads == nthreads)
        return w;
    worker_free(&w);                       /* joins the threads that did start */
    return NULL;
fail_ev:
    if (w->ev) event_free(w->ev);
    close(w->efd);
fail_efd:
    free(w);
    return NULL;
}

int worker_try_submit(struct worker *w, worker_fn run, worker_fn done, void *arg)
{
    pthread_mutex_lock(&w->mu);
    if (w->stopping) {
        pthread_mutex_unlock(&w->mu);
        return -1;
    }
    struct job *j = xmalloc(sizeof *j);
    j->run = run;
    j->done = done;
    j->arg = arg;
    list_push(&w->queue, j);
    pthread_mutex_unlock(&w->mu);
    /* Signalled after the unlock: a thread woken under the lock would block on it at once
     * (a futex wait and a wake more per job, issue #17). A thread that is between its
     * empty-queue check and its wait holds mu, so it sees the job or gets this signal. */
    pthread_cond_signal(&w->cond);
    return 0;
}

void worker_submit(struct worker *w, worker_fn run, worker_fn done, void *arg)
{
    if (worker_try_submit(w, run, done, arg) < 0)
        abort();                           /* submit after free began: a caller bug */
}

void worker_free(struct worker **wp)
{
    struct worker *w = *wp;
    if (!w)
        return;
    pthread_mutex_lock(&w->mu);
    w->stopping = true;
    pthread_cond_broadcast(&w->cond);
    pthread_mutex_unlock(&w->mu);
    for (size_t i = 0; i < w->nthreads; i++)
        pthread_join(w->threads[i], NULL);
    worker_run_done(w);                    /* every queued job ran; deliver the rest */
    event_free(w->ev);
    close(w->efd);
    pthread_cond_destroy(&w->cond);
    pthread_mutex_destroy(&w->mu);
    free(w->threads);
    free(w);
    *wp = NULL;
}

unsigned long long worker_wakeups(struct worker *w)
{
    pthread_mutex_lock(&w->mu);
    unsigned long long n = w->wakeups;
    pthread_mutex_unlock(&w->mu);
    return n;
}
