/* libFuzzer target for the cluster bus codec and versions (schema/cluster-protocol.md).
 * Beyond "no crash, no sanitizer report" it checks the contracts: an accepted frame is
 * canonical (re-encoding the decoded message gives the input byte for byte), decoded text
 * fields are printable ASCII within their limits, and the version order is consistent
 * (a version equals itself; compare(a, b) and compare(b, a) are mirror images).
 *
 *   clang -std=gnu11 -g -O1 -I. -D_GNU_SOURCE -fsanitize=fuzzer,address,undefined \
 *     -o /tmp/fuzz_cluster_wire tests/fuzz/fuzz_cluster_wire.c node/cluster/cluster_wire.c \
 *     node/cluster/clusterver.c directory/base/util.c -lpthread
 *   mkdir -p /tmp/cluster-corpus && /tmp/fuzz_cluster_wire -max_total_time=60 \
 *     -max_len=4200 /tmp/cluster-corpus
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "directory/base/util.h"
#include "node/cluster/cluster_wire.h"
#include "node/cluster/clusterver.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_text(const char *s, size_t max)
{
    size_t n = strlen(s);
    if (n > max)
        abort();
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] > 0x7e)
            abort();
}

static enum clusterver_order mirror(enum clusterver_order o)
{
    return o == CV_NEWER ? CV_OLDER : o == CV_OLDER ? CV_NEWER : o;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct cluster_msg m;
    char err[RN_ERRLEN];
    if (cluster_wire_decode(data, size, &m, err, sizeof err) == 0) {
        check_text(m.node, CLUSTER_NODE_MAX);
        check_text(m.version, CLUSTER_VERSION_MAX);
        check_text(m.origin, CLUSTER_ORIGIN_MAX);
        if (!m.node[0])
            abort();
        uint8_t out[CLUSTER_FRAME_MAX];
        int n = cluster_wire_encode(&m, out, sizeof out, err, sizeof err);
        if (n < 0 || (size_t)n != size || memcmp(out, data, size) != 0)
            abort();
        /* The version and the origin as two versions: the order must be consistent. */
        enum clusterver_order ab = clusterver_compare(m.version, m.origin);
        enum clusterver_order ba = clusterver_compare(m.origin, m.version);
        if (ba != mirror(ab))
            abort();
        if (clusterver_valid(m.version) && clusterver_compare(m.version, m.version) != CV_EQUAL)
            abort();
        (void)clusterver_decide(m.origin, m.version, m.node);
        (void)clusterver_accept(m.origin, m.version);
    }
    /* The raw input as a version string too (NUL-terminated copy, bounded). */
    char v[2048];
    size_t n = size < sizeof v - 1 ? size : sizeof v - 1;
    memcpy(v, data, n);
    v[n] = '\0';
    if (clusterver_valid(v) && clusterver_compare(v, v) != CV_EQUAL)
        abort();
    return 0;
}
