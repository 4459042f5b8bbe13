/* Unit tests for reload_decide (node/reload.h), the daemon's decision on a finished snapshot
 * load, as a table of named cases: each of the four outcomes (failed, unchanged, older,
 * apply) and the edges: the same version with another content hash, an equal CSN vector
 * written in another order, an older load discarded and the clock it starts, the
 * RELOAD_BACKWARDS_S (300 s) version-reset rule on both sides of its bound, unreadable
 * versions. Also reload_covers and the retry backoff. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>
#include "node/reload.h"

#define CSN1 "20240501101010.000001Z#000000#000#000000"
#define CSN2 "20240501101010.000002Z#000000#000#000000"
#define SID1 "20240501101010.000001Z#000000#001#000000"
#define SID1B "20240501101011.000001Z#000000#001#000000"

#define H1 0x1111u
#define H2 0x2222u
#define NOW 5000

struct reload_case {
    const char *name;
    struct reload_input in;
    enum reload_action want;
    long long want_older_since;
};

static const struct reload_case cases[] = {
    /* failed: whatever the versions say, and the older-since clock is left alone */
    {"load failed, a snapshot runs",
     {false, true, CSN1, H1, NULL, 0, NOW, 0}, RELOAD_FAILED, 0},
    {"load failed, nothing runs yet",
     {false, false, NULL, 0, NULL, 0, NOW, 0}, RELOAD_FAILED, 0},
    {"load failed while an older clock runs: clock kept",
     {false, true, CSN2, H1, NULL, 0, NOW, NOW - 100}, RELOAD_FAILED, NOW - 100},

    /* unchanged: same version and same content; clears the older clock */
    {"same version, same hash",
     {true, true, CSN1, H1, CSN1, H1, NOW, 0}, RELOAD_UNCHANGED, 0},
    {"same version, same hash, older clock cleared",
     {true, true, CSN1, H1, CSN1, H1, NOW, NOW - 10}, RELOAD_UNCHANGED, 0},
    {"equal CSN vector written in another order, same hash",
     {true, true, CSN1 "," SID1, H1, SID1 "," CSN1, H1, NOW, 0}, RELOAD_UNCHANGED, 0},
    {"same load stamp (no contextCSN), same hash",
     {true, true, "load-1-1", H1, "load-1-1", H1, NOW, 0}, RELOAD_UNCHANGED, 0},

    /* apply */
    {"first load: nothing runs",
     {true, false, NULL, 0, CSN1, H1, NOW, 0}, RELOAD_APPLY, 0},
    {"the running snapshot has no version",
     {true, true, NULL, H1, CSN1, H1, NOW, 0}, RELOAD_APPLY, 0},
    {"newer version",
     {true, true, CSN1, H1, CSN2, H2, NOW, 0}, RELOAD_APPLY, 0},
    {"newer version, same hash (only the CSN moved)",
     {true, true, CSN1, H1, CSN2, H1, NOW, 0}, RELOAD_APPLY, 0},
    {"newer on one sid",
     {true, true, CSN1 "," SID1, H1, CSN1 "," SID1B, H2, NOW, 0}, RELOAD_APPLY, 0},
    {"newer while the older clock runs: clock cleared",
     {true, true, CSN1, H1, CSN2, H2, NOW, NOW - 200}, RELOAD_APPLY, 0},
    {"another load stamp over a stamp",
     {true, true, "load-1-1", H1, "load-2-2", H2, NOW, 0}, RELOAD_APPLY, 0},
    {"same version, other content hash",
     {true, true, CSN1, H1, CSN1, H2, NOW, 0}, RELOAD_APPLY_SAME_VERSION, 0},
    {"same load stamp, other content hash",
     {true, true, "load-1-1", H1, "load-1-1", H2, NOW, 0}, RELOAD_APPLY_SAME_VERSION, 0},
    {"equal CSN vector in another order, other hash: applied, not the same text",
     {true, true, CSN1 "," SID1, H1, SID1 "," CSN1, H2, NOW, 0}, RELOAD_APPLY, 0},

    /* older: discarded, and the first one starts the clock */
    {"older version, first refusal starts the clock",
     {true, true, CSN2, H2, CSN1, H1, NOW, 0}, RELOAD_OLDER, NOW},
    {"older version, first refusal at monotonic second 0",
     {true, true, CSN2, H2, CSN1, H1, 0, 0}, RELOAD_OLDER, 1},
    {"older version, refused 1 s ago",
     {true, true, CSN2, H2, CSN1, H1, NOW, NOW - 1}, RELOAD_OLDER, NOW - 1},
    {"older version, refused 299 s ago: still discarded",
     {true, true, CSN2, H2, CSN1, H1, NOW, NOW - 299}, RELOAD_OLDER, NOW - 299},
    {"older version, same hash as the running one",
     {true, true, CSN2, H1, CSN1, H1, NOW, 0}, RELOAD_OLDER, NOW},
    {"concurrent version (a sid behind, another ahead)",
     {true, true, CSN2 "," SID1, H1, CSN1 "," SID1B, H2, NOW, 0}, RELOAD_OLDER, NOW},
    {"a sid lost (lagging replica)",
     {true, true, CSN1 "," SID1, H1, CSN2, H2, NOW, 0}, RELOAD_OLDER, NOW},
    {"unreadable version after a good one",
     {true, true, CSN2, H1, "load-2-2", H2, NOW, 0}, RELOAD_OLDER, NOW},

    /* the version-reset rule: older for RELOAD_BACKWARDS_S is the truth */
    {"older for exactly 300 s: version reset",
     {true, true, CSN2, H2, CSN1, H1, NOW, NOW - 300}, RELOAD_APPLY_RESET, 0},
    {"older for 1000 s: version reset",
     {true, true, CSN2, H2, CSN1, H1, NOW, NOW - 1000}, RELOAD_APPLY_RESET, 0},
    {"unreadable version for 300 s: reset",
     {true, true, CSN2, H1, "load-2-2", H2, NOW, NOW - 300}, RELOAD_APPLY_RESET, 0},
};

static void test_decide_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const struct reload_case *c = &cases[i];
        struct reload_decision r = reload_decide(&c->in);
        if (r.action != c->want)
            fail_msg("%s: %s, want %s", c->name, reload_action_name(r.action),
                     reload_action_name(c->want));
        if (r.older_since != c->want_older_since)
            fail_msg("%s: older_since %lld, want %lld", c->name, r.older_since,
                     c->want_older_since);
    }
}

/* The bound itself: RELOAD_BACKWARDS_S is 300 s, as the daemon's log line says. */
static void test_backwards_bound(void **state)
{
    (void)state;
    assert_int_equal(RELOAD_BACKWARDS_S, 300);
    /* A sequence the daemon lives through: refused at t, kept refusing, reset at t + 300. */
    struct reload_input in = {true, true, CSN2, H2, CSN1, H1, 1000, 0};
    struct reload_decision r = reload_decide(&in);
    assert_int_equal(r.action, RELOAD_OLDER);
    for (long long t = 1001; t < 1300; t += 37) {
        in.now = t;
        in.older_since = r.older_since;
        r = reload_decide(&in);
        assert_int_equal(r.action, RELOAD_OLDER);
        assert_int_equal(r.older_since, 1000);
    }
    in.now = 1300;
    in.older_since = r.older_since;
    r = reload_decide(&in);
    assert_int_equal(r.action, RELOAD_APPLY_RESET);
    assert_int_equal(r.older_since, 0);
}

static void test_covers(void **state)
{
    (void)state;
    assert_true(reload_covers(CSN1, CSN1));
    assert_true(reload_covers(CSN2, CSN1));
    assert_false(reload_covers(CSN1, CSN2));
    assert_true(reload_covers(CSN2 "," SID1, CSN1));
    assert_false(reload_covers(CSN2, CSN1 "," SID1));          /* sid 001 missing */
    assert_false(reload_covers(NULL, CSN1));
    assert_false(reload_covers("load-1-1", "load-1-1"));       /* not versions */
}

static void test_backoff(void **state)
{
    (void)state;
    unsigned b = RELOAD_BACKOFF_MIN_S, seen[8];
    for (int i = 0; i < 8; i++) {
        seen[i] = b;
        b = reload_backoff_next(b);
    }
    unsigned want[8] = {1, 2, 4, 8, 16, 30, 30, 30};
    assert_memory_equal(seen, want, sizeof want);
}

/* The safety net's period is spread a quarter either way: the bounds are reached, never
 * passed, and nodes drawing different numbers land at different times. */
static void test_period_jitter(void **state)
{
    (void)state;
    assert_int_equal(reload_period_ms(60, 0), 45000);
    assert_int_equal(reload_period_ms(60, 30000), 75000);
    assert_int_equal(reload_period_ms(60, 30001), 45000);
    assert_int_equal(reload_period_ms(60, UINT32_MAX), 45000 + UINT32_MAX % 30001);
    assert_int_equal(reload_period_ms(0, 12345), 0);
    unsigned lo = UINT32_MAX, hi = 0, x = 2463534242u;
    for (int i = 0; i < 10000; i++) {
        x ^= x << 13;                 /* xorshift32: a spread of inputs */
        x ^= x >> 17;
        x ^= x << 5;
        unsigned ms = reload_period_ms(60, x);
        assert_true(ms >= 45000 && ms <= 75000);
        lo = ms < lo ? ms : lo;
        hi = ms > hi ? ms : hi;
    }
    assert_true(lo < 46000 && hi > 74000);   /* the whole window is used */
}

static void test_names(void **state)
{
    (void)state;
    assert_string_equal(reload_action_name(RELOAD_FAILED), "failed");
    assert_string_equal(reload_action_name(RELOAD_UNCHANGED), "unchanged");
    assert_string_equal(reload_action_name(RELOAD_OLDER), "older");
    assert_string_equal(reload_action_name(RELOAD_APPLY), "apply");
    assert_string_equal(reload_action_name(RELOAD_APPLY_SAME_VERSION), "apply-same-version");
    assert_string_equal(reload_action_name(RELOAD_APPLY_RESET), "apply-reset");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_decide_table),
        cmocka_unit_test(test_backwards_bound),
        cmocka_unit_test(test_covers),
        cmocka_unit_test(test_backoff),
        cmocka_unit_test(test_period_jitter),
        cmocka_unit_test(test_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
