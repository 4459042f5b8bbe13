/* Unit tests for cluster_wire (schema/cluster-protocol.md §2) and clusterver (§1, §5):
 * NOTICE and HEARTBEAT round trips with edge values, truncation at every byte, oversize
 * and non-printable fields, bad magic/protocol/type/flags, trailing bytes, the encoder's
 * refusals; CSN normalisation and per-sid comparison; the convergence decisions. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>
#include "directory/base/util.h"
#include "node/cluster/cluster_wire.h"
#include "node/cluster/clusterver.h"

#define CSN1 "20240501101010.000001Z#000000#000#000000"
#define CSN2 "20240501101010.000002Z#000000#000#000000"
#define CSN3 "20240501101011.000000Z#000000#000#000000"

static struct cluster_msg notice(void)
{
    struct cluster_msg m = {.type = CLUSTER_NOTICE, .seq = 1714558210000001ULL};
    strcpy(m.node, "node1");
    strcpy(m.version, CSN1);
    strcpy(m.origin, "sync");
    return m;
}

static struct cluster_msg heartbeat(void)
{
    struct cluster_msg m = {.type = CLUSTER_HEARTBEAT, .seq = UINT64_MAX, .stale = true,
                            .time_ms = 1714558210123ULL, .uptime_s = 42};
    strcpy(m.node, "node 2");
    strcpy(m.version, CSN1 "," "20240501101010.000001Z#000000#001#000000");
    return m;
}

static void assert_msg_equal(const struct cluster_msg *a, const struct cluster_msg *b)
{
    assert_int_equal(a->type, b->type);
    assert_string_equal(a->node, b->node);
    assert_string_equal(a->version, b->version);
    assert_string_equal(a->origin, b->origin);
    assert_true(a->seq == b->seq);
    assert_int_equal(a->stale, b->stale);
    assert_true(a->time_ms == b->time_ms);
    assert_true(a->uptime_s == b->uptime_s);
}

static int enc(const struct cluster_msg *m, uint8_t *buf)
{
    char err[RN_ERRLEN];
    int n = cluster_wire_encode(m, buf, CLUSTER_FRAME_MAX, err, sizeof err);
    if (n < 0)
        fail_msg("encode: %s", err);
    return n;
}

static void test_round_trip(void **state)
{
    struct cluster_msg in[4] = {notice(), heartbeat(), notice(), heartbeat()};
    /* edge values: empty version and origin, maximal fields, zero integers */
    in[2].version[0] = '\0';
    in[2].origin[0] = '\0';
    in[2].seq = 0;
    memset(in[3].node, 'n', CLUSTER_NODE_MAX);
    in[3].node[CLUSTER_NODE_MAX] = '\0';
    memset(in[3].version, '~', CLUSTER_VERSION_MAX);
    in[3].version[CLUSTER_VERSION_MAX] = '\0';
    in[3].stale = false;
    in[3].time_ms = in[3].uptime_s = 0;
    for (size_t i = 0; i < 4; i++) {
        uint8_t buf[CLUSTER_FRAME_MAX];
        int n = enc(&in[i], buf);
        assert_true(n > 4);
        struct cluster_msg out;
        char err[RN_ERRLEN] = "";
        assert_int_equal(cluster_wire_decode(buf, (size_t)n, &out, err, sizeof err), 0);
        assert_msg_equal(&in[i], &out);
    }
}

static void test_layout(void **state)
{
    /* The exact bytes of §2 for a small NOTICE: a contract with other implementations. */
    struct cluster_msg m = {.type = CLUSTER_NOTICE, .seq = 0x0102030405060708ULL};
    strcpy(m.node, "a");
    strcpy(m.version, "v");
    strcpy(m.origin, "o");
    uint8_t buf[CLUSTER_FRAME_MAX];
    static const uint8_t want[] = {'R', 'N', 1, 1, 0, 1, 'a', 0, 1, 'v', 0, 1, 'o',
                                   1, 2, 3, 4, 5, 6, 7, 8};
    assert_int_equal(enc(&m, buf), sizeof want);
    assert_memory_equal(buf, want, sizeof want);
}

static void test_truncated_everywhere(void **state)
{
    struct cluster_msg ms[2] = {notice(), heartbeat()};
    for (size_t k = 0; k < 2; k++) {
        uint8_t buf[CLUSTER_FRAME_MAX];
        int n = enc(&ms[k], buf);
        for (int len = 0; len < n; len++) {
            struct cluster_msg out;
            char err[RN_ERRLEN] = "";
            if (cluster_wire_decode(buf, (size_t)len, &out, err, sizeof err) != -1)
                fail_msg("type %d accepted at length %d of %d", ms[k].type, len, n);
            assert_non_null(strstr(err, "truncated"));
        }
    }
}

static void expect_refused(const uint8_t *buf, size_t n, const char *what)
{
    struct cluster_msg out;
    char err[RN_ERRLEN] = "";
    assert_int_equal(cluster_wire_decode(buf, n, &out, err, sizeof err), -1);
    if (!strstr(err, what))
        fail_msg("error '%s' does not mention '%s'", err, what);
}

static void test_malformed(void **state)
{
    uint8_t buf[CLUSTER_FRAME_MAX + 16], b2[CLUSTER_FRAME_MAX + 16];
    struct cluster_msg hb = heartbeat();
    int n = enc(&hb, buf);

    memcpy(b2, buf, (size_t)n); b2[0] = 'X';
    expect_refused(b2, (size_t)n, "magic");
    memcpy(b2, buf, (size_t)n); b2[2] = 2;
    expect_refused(b2, (size_t)n, "protocol");
    memcpy(b2, buf, (size_t)n); b2[3] = 3;
    expect_refused(b2, (size_t)n, "type");
    memcpy(b2, buf, (size_t)n); b2[3] = 0;
    expect_refused(b2, (size_t)n, "type");
    /* trailing bytes */
    memcpy(b2, buf, (size_t)n); b2[n] = 0;
    expect_refused(b2, (size_t)n + 1, "trailing");
    /* unknown flag bits: the flags byte follows node and version */
    size_t flags_at = 4 + 2 + strlen(hb.node) + 2 + strlen(hb.version);
    memcpy(b2, buf, (size_t)n); b2[flags_at] = 0x03;
    expect_refused(b2, (size_t)n, "flags");
    /* a control byte and a high byte inside the node name */
    memcpy(b2, buf, (size_t)n); b2[6] = '\n';
    expect_refused(b2, (size_t)n, "node");
    memcpy(b2, buf, (size_t)n); b2[6] = 0xC3;
    expect_refused(b2, (size_t)n, "node");
    memcpy(b2, buf, (size_t)n); b2[6] = 0;
    expect_refused(b2, (size_t)n, "node");
    /* empty node */
    static const uint8_t empty_node[] = {'R', 'N', 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                                         0, 0, 0};
    expect_refused(empty_node, sizeof empty_node, "node is empty");
    /* oversize lengths, declared bigger than the limit (and than the frame) */
    static const uint8_t big_node[] = {'R', 'N', 1, 1, 0x01, 0x00, 'a'};
    expect_refused(big_node, sizeof big_node, "node length 256");
    static const uint8_t big_version[] = {'R', 'N', 1, 1, 0, 1, 'a', 0x04, 0x01};
    expect_refused(big_version, sizeof big_version, "version length 1025");
    static const uint8_t big_origin[] = {'R', 'N', 1, 1, 0, 1, 'a', 0, 0, 0, 65};
    expect_refused(big_origin, sizeof big_origin, "origin length 65");
    /* a frame over the maximum, even if its fields would parse */
    memset(b2, 0, sizeof b2);
    expect_refused(b2, CLUSTER_FRAME_MAX + 1, "over");
    /* NULL-free zero-length input */
    expect_refused(buf, 0, "truncated");
}

static void test_encoder_rejects(void **state)
{
    uint8_t buf[CLUSTER_FRAME_MAX];
    char err[RN_ERRLEN];
    struct cluster_msg m = notice();
    m.node[0] = '\0';
    assert_int_equal(cluster_wire_encode(&m, buf, sizeof buf, err, sizeof err), -1);
    m = notice();
    strcpy(m.origin, "tab\there");
    assert_int_equal(cluster_wire_encode(&m, buf, sizeof buf, err, sizeof err), -1);
    assert_non_null(strstr(err, "origin"));
    m = notice();
    memset(m.origin, 'o', sizeof m.origin);     /* no NUL within the limit */
    assert_int_equal(cluster_wire_encode(&m, buf, sizeof buf, err, sizeof err), -1);
    assert_non_null(strstr(err, "longer"));
    m = notice();
    m.type = 7;
    assert_int_equal(cluster_wire_encode(&m, buf, sizeof buf, err, sizeof err), -1);
    m = notice();
    assert_int_equal(cluster_wire_encode(&m, buf, 10, err, sizeof err), -1);
    assert_non_null(strstr(err, "fit"));
    int n = cluster_wire_encode(&m, buf, sizeof buf, err, sizeof err);
    assert_int_equal(cluster_wire_encode(&m, buf, (size_t)n, err, sizeof err), n);
}

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
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_layout),
        cmocka_unit_test(test_truncated_everywhere),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_encoder_rejects),
        cmocka_unit_test(test_version_compare),
        cmocka_unit_test(test_decide),
        cmocka_unit_test(test_accept),
        cmocka_unit_test(test_lag),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
