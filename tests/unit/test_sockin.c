/* Unit tests for sockin (node/common/sockin.h, issue #17): the socket read into the
 * bufferevent's input without ioctl(FIONREAD), keeping libevent's bounds. On a socketpair:
 * bytes arrive in the input and the read callback runs; at most SOCKIN_READ_MAX a read; the
 * input bound stops reading (the rest stays in the kernel) until the input drains; a
 * disabled reader leaves the bytes in the kernel and an enable reads them; EOF and the read
 * timeout come as events, once. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>
#include "node/common/sockin.h"

struct fix {
    struct event_base *base;
    struct bufferevent *bev;
    struct sockin *in;
    int peer;
    int reads;
    size_t seen, max_step;                     /* input length at the last read, largest read */
    int events;
    short last_what;
};

static void on_read(struct bufferevent *bev, void *arg)
{
    struct fix *f = arg;
    size_t len = evbuffer_get_length(bufferevent_get_input(bev));
    f->reads++;
    if (len - f->seen > f->max_step)
        f->max_step = len - f->seen;
    f->seen = len;
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
    struct fix *f = arg;
    f->events++;
    f->last_what = what;
}

static int setup(void **state)
{
    struct fix *f = calloc(1, sizeof *f);
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    assert_int_equal(evutil_make_socket_nonblocking(sv[0]), 0);
    int big = 256 * 1024;
    setsockopt(sv[1], SOL_SOCKET, SO_SNDBUF, &big, sizeof big);
    f->base = event_base_new();
    f->bev = bufferevent_socket_new(f->base, sv[0], BEV_OPT_CLOSE_ON_FREE);
    f->peer = sv[1];
    assert_non_null(f->base);
    assert_non_null(f->bev);
    f->in = sockin_new(f->bev, 0, on_read, on_event, f);
    assert_non_null(f->in);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fix *f = *state;
    sockin_free(&f->in);
    assert_null(f->in);
    bufferevent_free(f->bev);
    if (f->peer >= 0)
        close(f->peer);
    event_base_free(f->base);
    free(f);
    return 0;
}

static void send_n(struct fix *f, size_t n)
{
    char *buf = malloc(n);
    memset(buf, 'x', n);
    assert_int_equal(write(f->peer, buf, n), (ssize_t)n);
    free(buf);
}

/* One turn of the loop: what is ready runs, nothing waits. */
static void turn(struct fix *f)
{
    assert_true(event_base_loop(f->base, EVLOOP_NONBLOCK) >= 0);   /* 1: nothing pending */
}

static size_t in_len(struct fix *f)
{
    return evbuffer_get_length(bufferevent_get_input(f->bev));
}

static int in_kernel(struct fix *f)
{
    int n = -1;
    assert_int_equal(ioctl(bufferevent_getfd(f->bev), FIONREAD, &n), 0);
    return n;
}

static void bytes_reach_the_input(void **state)
{
    struct fix *f = *state;
    assert_int_equal(write(f->peer, "EHLO a\r\n", 8), 8);
    turn(f);
    assert_int_equal(f->reads, 0);             /* reading starts disabled */
    sockin_enable(f->in);
    turn(f);
    assert_int_equal(f->reads, 1);
    assert_int_equal(in_len(f), 8);
    assert_memory_equal(evbuffer_pullup(bufferevent_get_input(f->bev), 8), "EHLO a\r\n", 8);
    assert_int_equal(f->events, 0);
}

static void one_read_takes_at_most_the_cap(void **state)
{
    struct fix *f = *state;
    send_n(f, 3 * SOCKIN_READ_MAX + 1);
    sockin_enable(f->in);
    for (int i = 0; i < 10 && in_len(f) < 3 * SOCKIN_READ_MAX + 1; i++)
        turn(f);
    assert_int_equal(in_len(f), 3 * SOCKIN_READ_MAX + 1);
    assert_int_equal(f->max_step, SOCKIN_READ_MAX);
    assert_int_equal(f->reads, 4);
}

static void the_bound_stops_reading_until_the_input_drains(void **state)
{
    struct fix *f = *state;
    sockin_set_high(f->in, 100);
    send_n(f, 1000);
    sockin_enable(f->in);
    turn(f);
    assert_int_equal(in_len(f), 100);          /* never past the bound */
    turn(f);
    turn(f);
    assert_int_equal(in_len(f), 100);
    assert_int_equal(f->reads, 1);
    assert_int_equal(in_kernel(f), 900);
    evbuffer_drain(bufferevent_get_input(f->bev), 30);
    f->seen -= 30;
    turn(f);
    assert_int_equal(in_len(f), 100);          /* 30 more, up to the bound again */
    assert_int_equal(in_kernel(f), 870);
    sockin_set_high(f->in, 500);               /* a larger bound resumes at once */
    turn(f);
    assert_int_equal(in_len(f), 500);
    assert_int_equal(f->events, 0);
}

static void disabled_leaves_bytes_in_the_kernel(void **state)
{
    struct fix *f = *state;
    sockin_enable(f->in);
    turn(f);
    sockin_disable(f->in);
    send_n(f, 10);
    turn(f);
    turn(f);
    assert_int_equal(f->reads, 0);
    assert_int_equal(in_kernel(f), 10);
    sockin_enable(f->in);
    turn(f);
    assert_int_equal(f->reads, 1);
    assert_int_equal(in_len(f), 10);
}

static void eof_is_one_event(void **state)
{
    struct fix *f = *state;
    send_n(f, 5);
    close(f->peer);
    f->peer = -1;
    sockin_enable(f->in);
    turn(f);
    turn(f);
    turn(f);
    assert_int_equal(f->reads, 1);
    assert_int_equal(in_len(f), 5);
    assert_int_equal(f->events, 1);
    assert_int_equal(f->last_what, BEV_EVENT_READING | BEV_EVENT_EOF);
}

static void read_timeout_is_one_event(void **state)
{
    struct fix *f = *state;
    struct timeval tv = {0, 20 * 1000};
    sockin_set_timeout(f->in, &tv);
    sockin_enable(f->in);
    assert_int_equal(event_base_loop(f->base, EVLOOP_ONCE), 0);   /* waits for the timeout */
    assert_int_equal(f->events, 1);
    assert_int_equal(f->last_what, BEV_EVENT_READING | BEV_EVENT_TIMEOUT);
    send_n(f, 3);                              /* reading is off after it, as libevent's */
    turn(f);
    assert_int_equal(f->reads, 0);
    sockin_set_timeout(f->in, NULL);
    sockin_enable(f->in);
    turn(f);
    assert_int_equal(f->reads, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(bytes_reach_the_input, setup, teardown),
        cmocka_unit_test_setup_teardown(one_read_takes_at_most_the_cap, setup, teardown),
        cmocka_unit_test_setup_teardown(the_bound_stops_reading_until_the_input_drains, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(disabled_leaves_bytes_in_the_kernel, setup, teardown),
        cmocka_unit_test_setup_teardown(eof_is_one_event, setup, teardown),
        cmocka_unit_test_setup_teardown(read_timeout_is_one_event, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
