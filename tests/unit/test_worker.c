/* Unit tests for worker: run() happens off the loop thread, done() on it, every job of a
 * large batch completes exactly once, jobs that finish together share one wake-up of the
 * loop, and worker_free while jobs are queued still runs them
 * all (and their done callbacks) before returning. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <event2/event.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "node/common/worker.h"

struct fixture {
    struct event_base *base;
    struct worker *w;
    pthread_t loop_thread;
    atomic_int ran, done_count;
    int target;                       /* break the loop after this many done() calls */
};

struct tjob {
    struct fixture *f;
    int i;
    pthread_t ran_on, done_on;
    bool ran, done;
    bool ran_before_done;
    unsigned sleep_us;
};

static void tjob_run(void *arg)
{
    struct tjob *j = arg;
    if (j->sleep_us)
        usleep(j->sleep_us);
    j->ran_on = pthread_self();
    j->ran = true;
    atomic_fetch_add(&j->f->ran, 1);
}

static void tjob_done(void *arg)
{
    struct tjob *j = arg;
    j->done_on = pthread_self();
    j->ran_before_done = j->ran;
    assert_false(j->done);            /* exactly once */
    j->done = true;
    if (atomic_fetch_add(&j->f->done_count, 1) + 1 == j->f->target)
        event_base_loopbreak(j->f->base);
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    f->base = event_base_new();
    f->w = worker_new(f->base, 2);
    f->loop_thread = pthread_self();
    *state = f;
    return f->base && f->w ? 0 : -1;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    worker_free(&f->w);
    event_base_free(f->base);
    free(f);
    return 0;
}

/* Run the loop until the target count of done() calls, with a 10 s guard. */
static void run_loop(struct fixture *f)
{
    struct timeval guard = {10, 0};
    event_base_loopexit(f->base, &guard);
    event_base_dispatch(f->base);
}

static void run_off_loop_done_on_loop(void **state)
{
    struct fixture *f = *state;
    struct tjob j = {.f = f, .i = 0};
    f->target = 1;
    worker_submit(f->w, tjob_run, tjob_done, &j);
    run_loop(f);
    assert_true(j.ran);
    assert_true(j.done);
    assert_true(j.ran_before_done);
    assert_false(pthread_equal(j.ran_on, f->loop_thread));
    assert_true(pthread_equal(j.done_on, f->loop_thread));
}

static void many_jobs_all_complete_once(void **state)
{
    struct fixture *f = *state;
    enum { N = 2000 };
    struct tjob *jobs = calloc(N, sizeof *jobs);
    f->target = N;
    for (int i = 0; i < N; i++) {
        jobs[i] = (struct tjob){.f = f, .i = i};
        worker_submit(f->w, tjob_run, tjob_done, &jobs[i]);
    }
    run_loop(f);
    assert_int_equal(atomic_load(&f->ran), N);
    assert_int_equal(atomic_load(&f->done_count), N);
    for (int i = 0; i < N; i++) {
        assert_true(jobs[i].done);
        assert_true(pthread_equal(jobs[i].done_on, f->loop_thread));
    }
    free(jobs);
}

/* Two slow jobs on two threads run concurrently: together they take about one job's time. */
static void jobs_run_in_parallel(void **state)
{
    struct fixture *f = *state;
    struct tjob a = {.f = f, .sleep_us = 500000}, b = {.f = f, .sleep_us = 500000};
    struct timespec t0, t1;
    f->target = 2;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    worker_submit(f->w, tjob_run, tjob_done, &a);
    worker_submit(f->w, tjob_run, tjob_done, &b);
    run_loop(f);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double s = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    assert_true(a.done && b.done);
    assert_true(s < 0.9);         /* serial would take 1.0 s */
}

/* The loop keeps serving while a job blocks: a 50 ms timer fires while the 400 ms job is
 * still running on a worker (it would fire only after it if the loop ran the job). */
static void timer_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd; (void)what;
    struct tjob *slow = arg;
    slow->i = slow->done ? 2 : 1;     /* 1: fired before the slow job's done() */
}

static void loop_not_blocked(void **state)
{
    struct fixture *f = *state;
    struct tjob slow = {.f = f, .sleep_us = 400000};
    f->target = 1;
    worker_submit(f->w, tjob_run, tjob_done, &slow);
    struct event *t = evtimer_new(f->base, timer_cb, &slow);
    struct timeval tv = {0, 50000};
    evtimer_add(t, &tv);
    run_loop(f);
    event_free(t);
    assert_true(slow.done);
    assert_int_equal(slow.i, 1);
}

/* Free while busy: queued jobs still run and their done() is delivered by worker_free. */
static void free_while_busy(void **state)
{
    struct fixture *f = *state;
    enum { N = 40 };
    struct tjob jobs[N];
    for (int i = 0; i < N; i++) {
        jobs[i] = (struct tjob){.f = f, .i = i, .sleep_us = 5000};
        worker_submit(f->w, tjob_run, tjob_done, &jobs[i]);
    }
    worker_free(&f->w);
    assert_null(f->w);
    assert_int_equal(atomic_load(&f->ran), N);
    assert_int_equal(atomic_load(&f->done_count), N);
    for (int i = 0; i < N; i++) {
        assert_true(jobs[i].done);
        assert_true(jobs[i].ran_before_done);
        assert_true(pthread_equal(jobs[i].done_on, f->loop_thread));
    }
}

/* A done() that chains the next job (a delivery streaming a body) while worker_free runs:
 * worker_try_submit refuses with -1 instead of aborting, and nothing more runs. */
struct chain { struct worker *w; int tried, refused, ran; };

static void chain_run(void *arg)
{
    ((struct chain *)arg)->ran++;
}

static void chain_done(void *arg)
{
    struct chain *c = arg;
    c->tried++;
    if (worker_try_submit(c->w, chain_run, chain_done, c) < 0)
        c->refused++;
}

static void try_submit_refused_while_stopping(void **state)
{
    struct fixture *f = *state;
    struct chain c = {.w = f->w};
    assert_int_equal(worker_try_submit(f->w, chain_run, chain_done, &c), 0);
    worker_free(&f->w);               /* runs chain_done, whose resubmit is refused */
    assert_int_equal(c.ran, 1);
    assert_int_equal(c.tried, 1);
    assert_int_equal(c.refused, 1);
}

/* Jobs that finish while the loop is busy elsewhere share one wake-up of the loop (one
 * eventfd write, not one per job); once the loop has taken them, the next job wakes it again. */
static void finished_jobs_share_one_wakeup(void **state)
{
    struct fixture *f = *state;
    enum { N = 50 };
    struct tjob jobs[N + 1];
    assert_int_equal(worker_wakeups(f->w), 0);
    for (int i = 0; i < N; i++) {
        jobs[i] = (struct tjob){.f = f, .i = i};
        worker_submit(f->w, tjob_run, tjob_done, &jobs[i]);
    }
    while (atomic_load(&f->ran) < N)  /* the loop does not run: nothing is taken */
        usleep(1000);
    assert_int_equal(worker_wakeups(f->w), 1);
    f->target = N;
    run_loop(f);
    assert_int_equal(atomic_load(&f->done_count), N);
    assert_int_equal(worker_wakeups(f->w), 1);
    jobs[N] = (struct tjob){.f = f, .i = N};
    f->target = N + 1;
    worker_submit(f->w, tjob_run, tjob_done, &jobs[N]);
    run_loop(f);
    assert_true(jobs[N].done);
    assert_int_equal(worker_wakeups(f->w), 2);
}

static void new_refuses_zero_threads(void **state)
{
    struct fixture *f = *state;
    assert_null(worker_new(f->base, 0));
    assert_null(worker_new(NULL, 2));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(run_off_loop_done_on_loop, setup, teardown),
        cmocka_unit_test_setup_teardown(many_jobs_all_complete_once, setup, teardown),
        cmocka_unit_test_setup_teardown(jobs_run_in_parallel, setup, teardown),
        cmocka_unit_test_setup_teardown(loop_not_blocked, setup, teardown),
        cmocka_unit_test_setup_teardown(free_while_busy, setup, teardown),
        cmocka_unit_test_setup_teardown(try_submit_refused_while_stopping, setup, teardown),
        cmocka_unit_test_setup_teardown(finished_jobs_share_one_wakeup, setup, teardown),
        cmocka_unit_test_setup_teardown(new_refuses_zero_threads, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
