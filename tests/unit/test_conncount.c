/* Unit tests for conncount: per-connector and per-source session counts, and the sliding
 * one-minute message rate per source. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include "node/smtp/conncount.h"

static void sessions_counted_and_released(void **state)
{
    (void)state;
    struct conncount *cc = conncount_new();
    uint64_t t, s;
    conncount_add(cc, "c1", "192.0.2.1");
    conncount_add(cc, "c1", "192.0.2.1");
    conncount_add(cc, "c1", "192.0.2.2");
    conncount_add(cc, "c2", "192.0.2.1");
    conncount_get(cc, "c1", "192.0.2.1", &t, &s);
    assert_int_equal(t, 3);
    assert_int_equal(s, 2);
    conncount_get(cc, "c2", "192.0.2.1", &t, &s);
    assert_int_equal(t, 1);
    assert_int_equal(s, 1);
    conncount_del(cc, "c1", "192.0.2.1");
    conncount_del(cc, "c1", "192.0.2.2");
    conncount_get(cc, "c1", "192.0.2.2", &t, &s);
    assert_int_equal(t, 1);
    assert_int_equal(s, 0);
    conncount_free(&cc);
    assert_null(cc);
}

static void message_rate_slides(void **state)
{
    (void)state;
    struct conncount *cc = conncount_new();
    time_t t0 = 1000000;
    assert_int_equal(conncount_msg_note(cc, "a", t0), 1);
    assert_int_equal(conncount_msg_note(cc, "a", t0), 2);
    assert_int_equal(conncount_msg_note(cc, "b", t0 + 1), 1);
    assert_int_equal(conncount_msg_note(cc, "a", t0 + 59), 3);
    /* t0's two have aged out at t0 + 60 */
    assert_int_equal(conncount_msg_note(cc, "a", t0 + 60), 2);
    /* a slot reused a minute later starts from zero */
    assert_int_equal(conncount_msg_note(cc, "a", t0 + 200), 1);
    assert_int_equal(conncount_msg_note(cc, "b", t0 + 200), 1);
    conncount_free(&cc);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(sessions_counted_and_released),
        cmocka_unit_test(message_rate_slides),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
