/* Unit tests for spool_writer (node/spool/spool_writer.h) with a real event loop, a real
 * worker pool of two threads and a real spool in /tmp: bytes appended in many pieces reach
 * the committed file whole and in order, never two jobs of one message at once (checked in
 * the write hook), the backlog falls to zero at the finish, a failed create or write is
 * reported at take and leaves nothing behind, a writer freed with a job in flight gets no
 * notify and its tmp file is removed, and a stopped pool fails the message instead of
 * aborting the process. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <dirent.h>
#include <errno.h>
#include <event2/event.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "directory/base/util.h"
#include "node/common/worker.h"
#include "node/spool/spool.h"
#include "node/spool/spool_writer.h"

static const char *rcpts[] = {"a@example.org"};
static const struct spool_envelope env = {"sender@example.com", rcpts, 1, "192.0.2.1",
                                          "client.example", "Default", NULL, "Anonymous",
                                          false, 1700000000};

struct fx {
    char dir[64];
    struct spool *s;
    struct event_base *base;
    struct worker *pool;
    struct spool_writer *w;
    int notifies;
    bool finish_wanted, finished;
};

static atomic_int in_write, max_in_write;
static int fail_at = -1, fail_errno;
static unsigned write_sleep_us;

static int hook(enum spool_fault where)
{
    if ((int)where == fail_at)
        return fail_errno;
    if (where == SPOOL_FAULT_WRITE) {
        int now = atomic_fetch_add(&in_write, 1) + 1;
        int max = atomic_load(&max_in_write);
        while (now > max && !atomic_compare_exchange_weak(&max_in_write, &max, now))
            ;
        if (write_sleep_us)
            usleep(write_sleep_us);
        atomic_fetch_sub(&in_write, 1);
    }
    return 0;
}

static int setup(void **state)
{
    struct fx *f = xcalloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/test_spool_writer.XXXXXX");
    char err[RN_ERRLEN];
    if (!mkdtemp(f->dir) || spool_open(f->dir, &f->s, err, sizeof err) < 0)
        return -1;
    f->base = event_base_new();
    f->pool = worker_new(f->base, 2);
    atomic_store(&in_write, 0);
    atomic_store(&max_in_write, 0);
    fail_at = -1, write_sleep_us = 0;
    spool_test_fault = hook;
    *state = f;
    return f->base && f->pool ? 0 : -1;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    worker_free(&f->pool);
    spool_test_fault = NULL;
    event_base_free(f->base);
    spool_free(&f->s);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->dir);
    int rc = system(cmd);
    free(f);
    return rc == 0 ? 0 : -1;
}

static int count(const struct fx *f, const char *sub)
{
    char p[128];
    snprintf(p, sizeof p, "%s/%s", f->dir, sub);
    DIR *d = opendir(p);
    if (!d)
        return -1;
    int n = 0;
    for (struct dirent *de; (de = readdir(d));)
        n += strcmp(de->d_name, ".") && strcmp(de->d_name, "..");
    closedir(d);
    return n;
}

static void on_notify(void *arg)
{
    struct fx *f = arg;
    f->notifies++;
    if (f->finish_wanted && spool_writer_finish(f->w)) {
        f->finished = true;
        event_base_loopbreak(f->base);
    }
}

/* Run the loop until the writer finished (10 s guard). */
static void finish(struct fx *f)
{
    f->finish_wanted = true;
    if (spool_writer_finish(f->w)) {
        f->finished = true;
        return;
    }
    struct timeval guard = {10, 0};
    event_base_loopexit(f->base, &guard);
    event_base_dispatch(f->base);
    assert_true(f->finished);
}

/* Run the loop a little: pending done() callbacks arrive. */
static void spin(struct fx *f, unsigned ms)
{
    struct timeval tv = {0, (suseconds_t)ms * 1000};
    event_base_loopexit(f->base, &tv);
    event_base_dispatch(f->base);
}

static struct spool_writer *start(struct fx *f, char *id, size_t idlen)
{
    char err[RN_ERRLEN];
    struct spool_msg *m = spool_msg_start(f->s, &env, err, sizeof err);
    assert_non_null(m);
    assert_int_equal(count(f, "tmp"), 0);      /* start touches no file */
    rn_strlcpy(id, spool_msg_id(m), idlen);
    struct spool_writer *w = spool_writer_new(&f->pool, &m, on_notify, f);
    assert_null(m);
    return w;
}

static int collect(void *arg, const void *p, size_t n)
{
    struct { uint8_t *b; size_t len; } *c = arg;
    memcpy(c->b + c->len, p, n);
    c->len += n;
    return 0;
}

/* 1.5 MiB in pieces of 1 to 70000 bytes, while the loop runs jobs between appends. */
static void test_order_and_one_job(void **state)
{
    struct fx *f = *state;
    write_sleep_us = 2000;
    char id[64];
    f->w = start(f, id, sizeof id);
    size_t total = 1536 * 1024, off = 0;
    uint8_t *want = xmalloc(total);
    for (size_t i = 0; i < total; i++)
        want[i] = (uint8_t)(i * 131 + (i >> 11));
    unsigned seed = 7;
    size_t max_backlog = 0;
    while (off < total) {
        size_t n = 1 + (size_t)(rand_r(&seed) % 70000);
        if (n > total - off)
            n = total - off;
        spool_writer_append(f->w, want + off, n);
        off += n;
        size_t b = spool_writer_backlog(f->w);
        if (b > max_backlog)
            max_backlog = b;
        assert_true(b <= off);
        if (b > SPOOL_WRITER_BOUND)            /* as the session does: wait for the disk */
            while (spool_writer_backlog(f->w) > SPOOL_WRITER_BOUND)
                event_base_loop(f->base, EVLOOP_ONCE);
    }
    finish(f);
    assert_int_equal(spool_writer_backlog(f->w), 0);
    assert_true(f->notifies >= 2);
    struct spool_msg *m;
    char err[RN_ERRLEN];
    assert_int_equal(spool_writer_take(f->w, &m, err, sizeof err), 0);
    spool_writer_free(&f->w);
    assert_int_equal(spool_msg_commit(&m, err, sizeof err), 0);
    struct { uint8_t *b; size_t len; } got = {xmalloc(total), 0};
    assert_int_equal(spool_read_data(f->s, id, collect, &got, err, sizeof err), 0);
    assert_int_equal(got.len, total);
    assert_memory_equal(got.b, want, total);
    assert_int_equal(atomic_load(&max_in_write), 1);   /* one job per message at a time */
    assert_true(max_backlog > SPOOL_WRITER_CHUNK);     /* bytes did wait for the worker */
    free(got.b);
    free(want);
}

static void failing(struct fx *f, enum spool_fault where, int e, const char *needle)
{
    fail_at = (int)where, fail_errno = e;
    char id[64];
    f->w = start(f, id, sizeof id);
    static uint8_t buf[200 * 1024];
    memset(buf, 'x', sizeof buf);
    spool_writer_append(f->w, buf, sizeof buf);
    finish(f);
    assert_true(spool_writer_failed(f->w));
    struct spool_msg *m = (struct spool_msg *)1;
    char err[RN_ERRLEN];
    assert_int_equal(spool_writer_take(f->w, &m, err, sizeof err), -1);
    assert_null(m);
    assert_non_null(strstr(err, needle));
    spool_writer_append(f->w, buf, 10);         /* dropped after the failure */
    assert_int_equal(spool_writer_backlog(f->w), 0);
    spool_writer_free(&f->w);
    worker_free(&f->pool);                      /* every job and abort has run */
    assert_int_equal(count(f, "tmp"), 0);
    assert_int_equal(count(f, "queue"), 0);
}

static void test_write_enospc(void **state)
{
    failing(*state, SPOOL_FAULT_WRITE, ENOSPC, strerror(ENOSPC));
}

static void test_create_emfile(void **state)
{
    failing(*state, SPOOL_FAULT_CREATE, EMFILE, strerror(EMFILE));
}

/* Freed with a job in flight: no notify afterwards, the memory is released by the job's
 * done() (ASan would see a leak or a use after free), the tmp file is removed. */
static void test_free_in_flight(void **state)
{
    struct fx *f = *state;
    write_sleep_us = 100 * 1000;
    char id[64];
    f->w = start(f, id, sizeof id);
    static uint8_t buf[100 * 1024];
    memset(buf, 'y', sizeof buf);
    spool_writer_append(f->w, buf, sizeof buf);
    spin(f, 150);                               /* created, the write job now sleeping */
    spool_writer_append(f->w, buf, sizeof buf);
    assert_true(spool_writer_backlog(f->w) > 0);
    int before = f->notifies;
    spool_writer_free(&f->w);
    assert_null(f->w);
    spin(f, 400);
    assert_int_equal(f->notifies, before);
    worker_free(&f->pool);
    assert_int_equal(count(f, "tmp"), 0);
}

/* The pool is gone (the node stopping): the message fails, nothing aborts the process. */
static void test_pool_gone(void **state)
{
    struct fx *f = *state;
    worker_free(&f->pool);
    char id[64];
    f->w = start(f, id, sizeof id);
    spool_writer_append(f->w, "abc", 3);          /* under a chunk: no job yet */
    assert_false(spool_writer_failed(f->w));
    assert_true(spool_writer_finish(f->w));       /* the job cannot start: failed */
    assert_true(spool_writer_failed(f->w));
    struct spool_msg *m;
    char err[RN_ERRLEN];
    assert_int_equal(spool_writer_take(f->w, &m, err, sizeof err), -1);
    spool_writer_free(&f->w);
    assert_int_equal(count(f, "tmp"), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_order_and_one_job, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write_enospc, setup, teardown),
        cmocka_unit_test_setup_teardown(test_create_emfile, setup, teardown),
        cmocka_unit_test_setup_teardown(test_free_in_flight, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pool_gone, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
