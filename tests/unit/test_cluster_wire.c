/* Unit tests for cluster_wire (schema/cluster-protocol.md §2): NOTICE and HEARTBEAT round
 * trips with edge values, truncation at every byte, oversize and non-printable fields, bad
 * magic/protocol/type/flags, trailing bytes, the encoder's refusals. clusterver's tests are
 * in test_clusterver.c. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>
#include "directory/base/util.h"
#include "node/cluster/cluster_wire.h"

#define CSN1 "20240501101010.000001Z#000000#000#000000"

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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_layout),
        cmocka_unit_test(test_truncated_everywhere),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_encoder_rejects),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
