/* Unit tests for the loop-latency probe (node/common/looplat.h, issue 13): a callback that
 * blocks the loop shows as lateness of about its length; an idle loop shows little; the
 * report line is logged when a period's worst reaches the threshold, and only then. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "directory/base/util.h"
#include "node/common/log.h"
#include "node/common/looplat.h"

static void block_ms(evutil_socket_t fd, short what, void *arg)
{
    usleep((useconds_t)(*(int *)arg) * 1000);
}

static void stop(evutil_socket_t fd, short what, void *arg)
{
    event_base_loopbreak(arg);
}

/* Run base for total_ms; a callback blocks it for block ms at about the middle (0: none). */
static void run(struct event_base *base, int total_ms, int block)
{
    struct event *b = evtimer_new(base, block_ms, &block);
    struct event *s = evtimer_new(base, stop, base);
    struct timeval mid = {0, total_ms * 500}, end = {total_ms / 1000, (total_ms % 1000) * 1000};
    if (block)
        evtimer_add(b, &mid);
    evtimer_add(s, &end);
    assert_int_equal(event_base_dispatch(base), 0);
    event_free(b);
    event_free(s);
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    static char buf[65536];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

static void blocked_loop_is_measured_and_logged(void **state)
{
    char dir[] = "/tmp/test_looplat.XXXXXX", path[64], err[RN_ERRLEN];
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/log", dir);
    assert_int_equal(log_open(path, err, sizeof err), 0);
    struct event_base *base = event_base_new();
    struct looplat *l = looplat_new(base, 1, 100);
    assert_non_null(l);
    run(base, 600, 0);
    double idle = looplat_max_ms(l);
    run(base, 1600, 250);                     /* the report period ends after the block */
    double blocked = looplat_max_ms(l);
    looplat_free(&l);
    assert_null(l);
    event_base_free(base);
    log_close();
    char *log = slurp(path);
    fprintf(stderr, "idle max %.1f ms, blocked max %.1f ms\n%s", idle, blocked, log);
    assert_true(blocked >= 200.0);            /* at most one 20 ms period short of 250 */
    assert_true(blocked < 1000.0);
    assert_true(idle < blocked);
    assert_non_null(strstr(log, "- node loop-latency max_ms="));
    assert_non_null(strstr(log, "- node loop-stats max_ms="));
    unlink(path);
    rmdir(dir);
}

static void below_threshold_is_not_logged(void **state)
{
    char dir[] = "/tmp/test_looplat.XXXXXX", path[64], err[RN_ERRLEN];
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/log", dir);
    assert_int_equal(log_open(path, err, sizeof err), 0);
    struct event_base *base = event_base_new();
    struct looplat *l = looplat_new(base, 1, 5000);   /* nothing on an idle loop is 5 s late */
    run(base, 1300, 0);
    looplat_free(&l);
    event_base_free(base);
    log_close();
    char *log = slurp(path);
    assert_null(strstr(log, "loop-latency"));
    assert_non_null(strstr(log, "loop-stats"));
    unlink(path);
    rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(blocked_loop_is_measured_and_logged),
        cmocka_unit_test(below_threshold_is_not_logged),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
