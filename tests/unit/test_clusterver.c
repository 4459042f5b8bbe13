/* Unit tests for clusterver (schema/cluster-protocol.md §1, §5): CSN normalisation and
 * per-sid comparison, what a version is, the convergence decisions (decide, accept) and
 * the lag of a node behind the current version. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>
#include "node/cluster/clusterver.h"

#define CSN1 "20240501101010.000001Z#000000#000#000000"
#define CSN2 "20240501101010.000002Z#000000#000#000000"
#define CSN3 "20240501101011.000000Z#000000#000#000000"

static void test_version_compare(void **state)
{
    struct { const char *a, *b; enum clusterver_order want; } cases[] = {
        {CSN1, CSN1, CV_EQUAL},
        {CSN2, CSN1, CV_NEWER},
        {CSN1, CSN2, CV_OLDER},
        {CSN3, CSN2, CV_NEWER},
        /* normalisation: fraction padding, short and lower-case hex fields */
        {"20240501101010.1Z#0#0#0", "20240501101010.100000Z#000000#000#000000", CV_EQUAL},
        {"20240501101010Z#000000#00#000000", "20240501101010.000000Z#000000#000#000000",
         CV_EQUAL},
        {"20240501101010.000001Z#00000a#000#000000",
         "20240501101010.000001Z#00000A#000#000000", CV_EQUAL},
        {"20240501101010.000001Z#00000a#000#000000", CSN1, CV_NEWER},
        {"20240501101010.000001Z#000000#000#000001", CSN1, CV_NEWER},
        /* per-sid vectors, in any order */
        {CSN1 ",20240501101010.000001Z#000000#001#000000",
         "20240501101010.000001Z#000000#001#000000," CSN1, CV_EQUAL},
        {CSN2 ",20240501101010.000001Z#000000#001#000000",
         CSN1 ",20240501101010.000001Z#000000#001#000000", CV_NEWER},
        {CSN2 ",20240501101010.000001Z#000000#001#000000", CSN1, CV_NEWER},
        {CSN1, CSN1 ",20240501101010.000001Z#000000#001#000000", CV_OLDER},
        {CSN2 ",20240501101010.000001Z#000000#001#000000",
         CSN1 ",20240501101011.000001Z#000000#001#000000", CV_CONCURRENT},
        {"20240501101010.000001Z#000000#001#000000", CSN1, CV_CONCURRENT},
        /* not versions */
        {"load-1714558210.000000001-1", CSN1, CV_INVALID},
        {CSN1, "", CV_INVALID},
        {NULL, CSN1, CV_INVALID},
        {CSN1 ",", CSN1, CV_INVALID},
        {CSN1 "," CSN2, CSN1, CV_INVALID},                    /* sid 000 twice */
        {"20240501101010.000001Z#000000#000#000000#1", CSN1, CV_INVALID},
        {"20240501101010.000001Z#000000#000", CSN1, CV_INVALID},
        {"20240501101010.0000001Z#000000#000#000000", CSN1, CV_INVALID},
        {"2024050110101.000001Z#000000#000#000000", CSN1, CV_INVALID},
        {"20240501101010.000001#000000#000#000000", CSN1, CV_INVALID},
        {"20240501101010.000001Z#0000000#000#000000", CSN1, CV_INVALID},
        {"20240501101010.000001Z#00000g#000#000000", CSN1, CV_INVALID},
        {"20240501101010.000001Z##000#000000", CSN1, CV_INVALID},
        /* the AD profile's USN versions: numeric order, never against a CSN */
        {"usn:4105", "usn:4105", CV_EQUAL},
        {"usn:10000", "usn:9999", CV_NEWER},
        {"usn:9", "usn:10", CV_OLDER},
        {"usn:4105", CSN1, CV_INVALID},
        {CSN1, "usn:4105", CV_INVALID},
        {"usn:", "usn:1", CV_INVALID},
        {"usn:01", "usn:1", CV_INVALID},
        {"usn:-1", "usn:1", CV_INVALID},
        {"usn:1x", "usn:1", CV_INVALID},
        {"usn:12345678901234567890", "usn:1", CV_INVALID},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        enum clusterver_order got = clusterver_compare(cases[i].a, cases[i].b);
        if (got != cases[i].want)
            fail_msg("case %zu: %s vs %s: %s, want %s", i, cases[i].a ? cases[i].a : "NULL",
                     cases[i].b, clusterver_order_name(got), clusterver_order_name(cases[i].want));
    }
    /* 32 sids are a version, 33 are not */
    char v[40 * 34] = "";
    for (int i = 0; i < 33; i++) {
        char c[48];
        snprintf(c, sizeof c, "%s20240501101010.000001Z#000000#%03x#000000", i ? "," : "", i);
        strcat(v, c);
        assert_int_equal(clusterver_valid(v), i < 32);
    }
}

static void test_decide(void **state)
{
    struct { const char *name, *applied, *announced, *replica; enum clusterver_action want; }
    cases[] = {
        {"replayed same version", CSN2, CSN2, CSN2, CV_IGNORE},
        {"older notice", CSN2, CSN1, CSN2, CV_IGNORE},
        {"older notice, replica unknown", CSN2, CSN1, NULL, CV_IGNORE},
        {"garbage announced", CSN1, "bogus", CSN2, CV_IGNORE},
        {"stamp announced", CSN1, "load-1-1", NULL, CV_IGNORE},
        {"newer, replica has it", CSN1, CSN2, CSN2, CV_RELOAD},
        {"newer, replica further ahead", CSN1, CSN2, CSN3, CV_RELOAD},
        {"newer, replica unknown", CSN1, CSN2, NULL, CV_RELOAD},
        {"newer, replica lags", CSN1, CSN3, CSN2, CV_WAIT},
        {"newer, replica lags on a sid", CSN1,
         CSN2 ",20240501101010.000001Z#000000#001#000000", CSN2, CV_WAIT},
        {"concurrent announced", CSN2 ",20240501101010.000001Z#000000#001#000000",
         CSN1 ",20240501101011.000001Z#000000#001#000000",
         CSN2 ",20240501101011.000001Z#000000#001#000000", CV_RELOAD},
        {"nothing applied yet", NULL, CSN1, CSN1, CV_RELOAD},
        {"applied is a stamp", "load-1-1", CSN1, NULL, CV_RELOAD},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        enum clusterver_action got = clusterver_decide(cases[i].applied, cases[i].announced,
                                                       cases[i].replica);
        if (got != cases[i].want)
            fail_msg("%s: %s, want %s", cases[i].name, clusterver_action_name(got),
                     clusterver_action_name(cases[i].want));
    }
}

static void test_accept(void **state)
{
    assert_true(clusterver_accept(NULL, CSN1));
    assert_true(clusterver_accept("load-1-1", CSN1));
    assert_true(clusterver_accept("load-1-1", "load-2-2"));
    assert_true(clusterver_accept(CSN1, CSN1));
    assert_true(clusterver_accept(CSN1, CSN2));
    assert_false(clusterver_accept(CSN2, CSN1));           /* never backwards */
    assert_false(clusterver_accept(CSN2, "load-2-2"));     /* unreadable after a good one */
    assert_false(clusterver_accept(CSN2 ",20240501101010.000001Z#000000#001#000000",
                                   CSN3));                  /* lost sid 001: a lagging replica */
    assert_false(clusterver_accept(CSN2 ",20240501101010.000001Z#000000#001#000000",
                                   CSN1 ",20240501101011.000001Z#000000#001#000000"));
}

/* clusterver_lag_s: seconds since the oldest uncovered CSN of the current version. */
static void test_lag(void **state)
{
    (void)state;
    /* 2026-11-29 06:00:00Z = 1795932000 */
    const long long t0 = 1795932000;
    const char *cur = "20261129060000.000000Z#000000#001#000000,"
                      "20261129060010Z#000000#002#000000";
    assert_int_equal(clusterver_lag_s(cur, cur, t0 + 100), 0);            /* covered */
    /* behind on sid 1 only: lag counts from sid 1's CSN */
    assert_int_equal(clusterver_lag_s("20261129055900Z#000000#001#000000,"
                                      "20261129060010Z#000000#002#000000", cur, t0 + 30), 30);
    /* behind on both: the older CSN counts */
    assert_int_equal(clusterver_lag_s("20261129055900Z#000000#001#000000", cur, t0 + 30), 30);
    /* behind on sid 2 only (a sid missing from applied is behind) */
    assert_int_equal(clusterver_lag_s("20261129060000Z#000000#001#000000", cur, t0 + 30), 20);
    assert_int_equal(clusterver_lag_s(NULL, cur, t0 + 5), 5);             /* none applied */
    assert_int_equal(clusterver_lag_s("load-1-1", cur, t0 + 5), 5);       /* not a version */
    assert_int_equal(clusterver_lag_s(cur, "load-1-1", t0), -1);
    assert_int_equal(clusterver_lag_s(NULL, cur, t0 - 10), 0);            /* clock behind */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_version_compare),
        cmocka_unit_test(test_decide),
        cmocka_unit_test(test_accept),
        cmocka_unit_test(test_lag),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
