/* Unit tests for queue's scheduling: a message is attempted as soon as a delivery slot is
 * free, not at the queue's next one-second tick (issue 18: a backlog of 100 KB messages was
 * delivered at exactly delivery_concurrency messages per second), and never more than
 * max_inflight attempts run at once, and a message's state file is unlinked at its removal
 * only when one was written.
 *
 * The queue runs for real (its spool, worker and event loop); delivery is replaced by the
 * delivery_start below, which records each attempt so the test answers it when it chooses.
 * The static libraries are linked after this file, so the linker takes this definition and
 * never pulls node/delivery/delivery.o (queue.o needs nothing else from it; a duplicate
 * definition would fail the link, loudly).
 *
 * Nothing here waits on a clock: after an answer the loop runs one non-blocking pass, which
 * runs the callbacks made active so far and no timer that has not expired. On a machine so
 * slow that the one-second tick expires meanwhile, the tick may start the attempt instead,
 * so such a run cannot catch a queue that waits for its tick; a correct queue never fails. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <dirent.h>
#include <errno.h>
#include <stdatomic.h>
#include <unistd.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "directory/base/util.h"
#include "directory/model.h"
#include "node/common/log.h"
#include "node/common/node.h"
#include "node/common/worker.h"
#include "node/delivery/delivery.h"
#include "node/delivery/queue.h"
#include "node/metrics/relaymetrics.h"
#include "node/spool/spool.h"

#define MSGS 5

/* An attempt the queue started and the test has not answered yet. */
struct call {
    char id[64];
    size_t n;
    delivery_done_fn *done;
    void *arg;
};

static struct call calls[MSGS * 2];
static size_t ncalls;

void delivery_start(struct delivery *d, const char *id, const char *sender,
                    const char *const *rcpts, size_t n, delivery_done_fn *done, void *arg)
{
    assert_true(ncalls < sizeof calls / sizeof calls[0]);
    struct call *c = &calls[ncalls++];
    rn_strlcpy(c->id, id, sizeof c->id);
    c->n = n;
    c->done = done;
    c->arg = arg;
}

struct fx {
    char dir[64];
    struct node n;
    struct queue *q;
};

/* Message i is received received_ago[i] seconds before now (0: now); its id and receive
 * time are kept in added_id / added_at. */
static time_t received_ago[MSGS];
static char added_id[MSGS][64];
static time_t added_at[MSGS];

static void add_messages(struct fx *f, size_t count)
{
    static const char *to[] = {"alice@example.com"};
    struct spool_envelope env = {.sender = "app@example.com", .rcpts = to, .nrcpts = 1,
                                 .auth_as = "Anonymous", .received = time(NULL)};
    char err[RN_ERRLEN];
    time_t now = env.received;
    for (size_t i = 0; i < count; i++) {
        env.received = now - (i < MSGS ? received_ago[i] : 0);
        struct spool_msg *m = spool_msg_new(f->n.spool, &env, err, sizeof err);
        assert_non_null(m);
        if (i < MSGS) {
            rn_strlcpy(added_id[i], spool_msg_id(m), sizeof added_id[i]);
            added_at[i] = env.received;
        }
        assert_int_equal(spool_msg_write(m, "Subject: x\r\n\r\nbody\r\n", 20, err, sizeof err), 0);
        assert_int_equal(spool_msg_commit(&m, err, sizeof err), 0);
    }
}

/* MSGS committed messages in a fresh spool; the queue loads them (all due now). */
static struct fx *fx_new(unsigned max_inflight)
{
    struct fx *f = xcalloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/test_queue.XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    char err[RN_ERRLEN], logpath[128];
    snprintf(logpath, sizeof logpath, "%s/relaynode.log", f->dir);
    assert_int_equal(log_open(logpath, err, sizeof err), 0);
    assert_int_equal(spool_open(f->dir, &f->n.spool, err, sizeof err), 0);
    f->n.base = event_base_new();
    assert_non_null(f->n.base);
    f->n.worker = worker_new(f->n.base, 1);
    assert_non_null(f->n.worker);
    f->n.snap = snapshot_new();              /* the queue only checks that there is one */
    add_messages(f, MSGS);
    memset(calls, 0, sizeof calls);
    ncalls = 0;
    struct queue_opts o = {.lifetime = 3600, .retry_min = 60, .retry_max = 60,
                           .max_inflight = max_inflight};
    f->q = queue_new(&f->n, NULL, &o, err, sizeof err);
    assert_non_null(f->q);
    return f;
}

/* Messages still in the spool's queue/ directory. */
static int queued(const struct fx *f)
{
    char p[128];
    snprintf(p, sizeof p, "%s/queue", f->dir);
    DIR *d = opendir(p);
    if (!d)
        return -1;
    int n = 0;
    for (struct dirent *de; (de = readdir(d));)
        n += de->d_name[0] != '.';
    closedir(d);
    return n;
}

/* Shutdown in queue.h's order: worker_free finishes the pending removals (their done()
 * included) before it returns. */
static void fx_stop(struct fx *f)
{
    queue_stop(f->q);
    worker_free(&f->n.worker);
}

static void fx_free(struct fx *f)
{
    if (f->n.worker)
        fx_stop(f);
    queue_free(&f->q);
    snapshot_unref(&f->n.snap);
    spool_free(&f->n.spool);
    event_base_free(f->n.base);
    log_close();
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->dir);
    assert_int_equal(system(cmd), 0);
    free(f);
}

static void pass(struct fx *f)
{
    assert_int_equal(event_base_loop(f->n.base, EVLOOP_NONBLOCK), 0);
}

/* Answer attempt i: every recipient delivered. */
static void answer_ok(size_t i)
{
    struct delivery_rcpt_result r[1];
    memset(r, 0, sizeof r);
    r[0].cls = DELIVERY_OK;
    rn_strlcpy(r[0].reply, "250 2.0.0 Ok", sizeof r[0].reply);
    rn_strlcpy(r[0].remote, "sink.test[127.0.0.1]", sizeof r[0].remote);
    assert_int_equal(calls[i].n, 1);
    calls[i].done(calls[i].arg, r, 1);
}

/* One slot: each answer starts the next message in the same loop pass. */
static void next_attempt_starts_when_a_slot_frees(void **state)
{
    struct fx *f = fx_new(1);
    pass(f);
    assert_int_equal(ncalls, 1);
    for (size_t i = 0; i < MSGS; i++) {
        answer_ok(i);
        pass(f);
        assert_int_equal(ncalls, i + 1 < MSGS ? i + 2 : MSGS);
    }
    for (size_t i = 0; i < MSGS; i++)         /* each message attempted once */
        for (size_t k = 0; k < i; k++)
            assert_string_not_equal(calls[i].id, calls[k].id);
    fx_free(f);
}

/* Two slots: two attempts at first, one more per answer, never three at once. */
static void never_more_than_max_inflight(void **state)
{
    struct fx *f = fx_new(2);
    pass(f);
    assert_int_equal(ncalls, 2);
    pass(f);
    assert_int_equal(ncalls, 2);
    answer_ok(1);
    pass(f);
    assert_int_equal(ncalls, 3);
    answer_ok(0);
    answer_ok(2);
    pass(f);
    assert_int_equal(ncalls, 5);
    answer_ok(3);
    answer_ok(4);
    pass(f);
    assert_int_equal(ncalls, MSGS);
    fx_stop(f);
    assert_int_equal(queued(f), 0);           /* every message delivered, then removed */
    fx_free(f);
}

/* Answer attempt i: every recipient deferred (451), so the message waits for a retry. */
static void answer_defer(size_t i)
{
    struct delivery_rcpt_result r[1];
    memset(r, 0, sizeof r);
    r[0].cls = DELIVERY_TEMP;
    rn_strlcpy(r[0].reply, "451 4.3.0 try later", sizeof r[0].reply);
    calls[i].done(calls[i].arg, r, 1);
}

/* Run the loop (blocking for worker results) until pred holds; bounded. */
static void run_until(struct fx *f, int (*pred)(struct fx *))
{
    for (int i = 0; i < 10000 && !pred(f); i++)
        assert_int_equal(event_base_loop(f->n.base, EVLOOP_ONCE), 0);
    assert_true(pred(f));
}

static int all_waiting(struct fx *f)
{
    size_t r, w, b;
    queue_counts(f->q, &r, &w, &b);
    return w == MSGS && b == 0;
}

static int all_waiting_but_two(struct fx *f)
{
    size_t r, w, b;
    queue_counts(f->q, &r, &w, &b);
    return w == MSGS - 2 && b == 0;
}

static int rescan_over(struct fx *f)
{
    return !queue_rescanning(f->q);
}

static int lookup_errno;
static int fail_lookup(enum spool_fault where)
{
    return where == SPOOL_FAULT_LOOKUP ? lookup_errno : 0;
}

/* issue 13: a rescan drops a message only when its file is gone (ENOENT). Any other error
 * while checking it (EMFILE: out of descriptors) keeps it, with its state, for later; the
 * next rescan, with the error gone, drops the removed one and starts the others. */
static void rescan_drops_only_what_is_gone(void **state)
{
    struct fx *f = fx_new(MSGS);
    pass(f);
    assert_int_equal(ncalls, MSGS);
    for (size_t i = 0; i < MSGS; i++)
        answer_defer(i);
    run_until(f, all_waiting);               /* state written: next attempt in a minute */
    spool_test_fault = fail_lookup;           /* out of descriptors: nothing can be checked */
    lookup_errno = EMFILE;
    queue_rescan(f->q);
    run_until(f, rescan_over);
    spool_test_fault = NULL;
    size_t r, w, b;
    queue_counts(f->q, &r, &w, &b);
    assert_int_equal(r + w + b, MSGS);       /* every message kept */
    assert_int_equal(w, MSGS);               /* with its state: still waiting */
    char p[256];
    snprintf(p, sizeof p, "%s/queue/%s", f->dir, calls[0].id);
    assert_int_equal(unlink(p), 0);          /* relayctl queue remove, say */
    /* relayctl queue retry: the state says "due now"; a clean rescan starts each survivor. */
    char err[RN_ERRLEN];
    for (size_t i = 1; i < MSGS; i++) {
        struct spool_state st;
        assert_int_equal(spool_state_read(f->n.spool, calls[i].id, 1, &st, err, sizeof err), 0);
        st.next_attempt = 0;
        assert_int_equal(spool_state_write(f->n.spool, calls[i].id, &st, err, sizeof err), 0);
        spool_state_clear(&st);
    }
    queue_rescan(f->q);
    run_until(f, rescan_over);
    pass(f);
    queue_counts(f->q, &r, &w, &b);
    assert_int_equal(r + w + b, MSGS - 1);   /* the removed one dropped (ENOENT) */
    assert_int_equal(ncalls, 2 * MSGS - 1);  /* the others due now and attempted */
    for (size_t i = MSGS; i < ncalls; i++)
        assert_string_not_equal(calls[i].id, calls[0].id);
    fx_free(f);
}

static size_t want_queued;
static int queued_is(struct fx *f)           /* removed from the spool and freed */
{
    size_t r, w, b;
    queue_counts(f->q, &r, &w, &b);
    return queued(f) == (int)want_queued && r + w + b == want_queued;
}

/* What the queue feeds the metrics: the oldest message's receive time whatever order the
 * spool lists them in (received 30, 300, 10, 120 and 0 seconds ago), following each removal
 * (from anywhere in the age order), 0 once empty; each delivered recipient counted once. */
static void oldest_and_deliveries(void **state)
{
    static const time_t ago[MSGS] = {30, 300, 10, 120, 0};
    memcpy(received_ago, ago, sizeof received_ago);
    struct fx *f = fx_new(1);
    memset(received_ago, 0, sizeof received_ago);
    f->n.metrics = relay_metrics_new();
    bool gone[MSGS] = {false};
    pass(f);
    for (size_t i = 0; i < MSGS; i++) {
        time_t want = 0;                     /* the oldest message not yet delivered */
        for (size_t k = 0; k < MSGS; k++)
            if (!gone[k] && (!want || added_at[k] < want))
                want = added_at[k];
        assert_int_equal(queue_oldest(f->q), want);
        assert_int_equal(ncalls, i + 1);
        for (size_t k = 0; k < MSGS; k++)
            if (!strcmp(added_id[k], calls[i].id))
                gone[k] = true;
        answer_ok(i);
        want_queued = MSGS - i - 1;
        run_until(f, queued_is);
        pass(f);
    }
    assert_int_equal(queue_oldest(f->q), 0);
    assert_int_equal(metrics_value(f->n.metrics->deliveries[RM_DELIVERED]), MSGS);
    assert_int_equal(metrics_value(f->n.metrics->deliveries[RM_DEFERRED]), 0);
    struct relay_metrics *rm = f->n.metrics;
    fx_free(f);
    relay_metrics_free(&rm);
}

static atomic_int state_unlinks;
static int count_state_unlink(enum spool_fault where)
{
    if (where == SPOOL_FAULT_STATE_UNLINK)
        atomic_fetch_add(&state_unlinks, 1);
    return 0;
}

static int state_files(const struct fx *f)
{
    char p[128];
    snprintf(p, sizeof p, "%s/state", f->dir);
    DIR *d = opendir(p);
    if (!d)
        return -1;
    int n = 0;
    for (struct dirent *de; (de = readdir(d));)
        n += de->d_name[0] != '.';
    closedir(d);
    return n;
}

/* issue 17: a message delivered at its first attempt never had a state file, so its removal
 * does not try to unlink one; a message deferred first (its state written) has it removed
 * with it. Two delivered at once, three deferred, then retried and delivered. */
static void state_unlinked_only_when_written(void **state)
{
    struct fx *f = fx_new(MSGS);
    atomic_store(&state_unlinks, 0);
    spool_test_fault = count_state_unlink;
    pass(f);
    assert_int_equal(ncalls, MSGS);
    answer_ok(0);
    answer_ok(1);
    for (size_t i = 2; i < MSGS; i++)
        answer_defer(i);
    want_queued = MSGS - 2;
    run_until(f, queued_is);
    run_until(f, all_waiting_but_two);
    assert_int_equal(atomic_load(&state_unlinks), 0);
    assert_int_equal(state_files(f), MSGS - 2);
    char err[RN_ERRLEN];
    for (size_t i = 2; i < MSGS; i++) {       /* relayctl queue retry: due now */
        struct spool_state st;
        assert_int_equal(spool_state_read(f->n.spool, calls[i].id, 1, &st, err, sizeof err), 0);
        st.next_attempt = 0;
        assert_int_equal(spool_state_write(f->n.spool, calls[i].id, &st, err, sizeof err), 0);
        spool_state_clear(&st);
    }
    queue_rescan(f->q);
    run_until(f, rescan_over);
    pass(f);
    assert_int_equal(ncalls, 2 * MSGS - 2);
    for (size_t i = MSGS; i < ncalls; i++)
        answer_ok(i);
    want_queued = 0;
    run_until(f, queued_is);
    spool_test_fault = NULL;
    assert_int_equal(atomic_load(&state_unlinks), MSGS - 2);
    assert_int_equal(state_files(f), 0);
    fx_free(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(next_attempt_starts_when_a_slot_frees),
        cmocka_unit_test(never_more_than_max_inflight),
        cmocka_unit_test(oldest_and_deliveries),
        cmocka_unit_test(state_unlinked_only_when_written),
        cmocka_unit_test(rescan_drops_only_what_is_gone),   /* last: its attempts stay open */
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
