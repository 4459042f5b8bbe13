/* libFuzzer target for the remote-range and binding parsers (ipr.h). Beyond "no crash, no
 * sanitizer report" it checks the contracts: an accepted range has lo <= hi, contains both
 * ends, keeps v4 ranges v4-mapped, formats to text that parses back to the same bounds and
 * form and formats identically; overlap is symmetric and a range is EQUAL to itself; an
 * accepted binding formats and parses back to the same binding.
 *     clang -std=gnu11 -g -O1 -I. -D_GNU_SOURCE -fsanitize=fuzzer,address,undefined \
 *       -o /tmp/fuzz_ipr tests/fuzz/fuzz_ipr.c directory/ipr.c directory/base/util.c
 *     mkdir -p /tmp/ipr-corpus && /tmp/fuzz_ipr -max_total_time=60 -max_len=256 /tmp/ipr-corpus */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "directory/ipr.h"
#include "directory/base/util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_range(const char *s)
{
    ipr_range r, r2;
    char err[RN_ERRLEN], out[256], again[256];
    if (ipr_range_parse(s, &r, err, sizeof err) != 0)
        return;
    if (memcmp(r.lo.b, r.hi.b, 16) > 0 || !ipr_range_contains(&r, &r.lo, r.v4) ||
        !ipr_range_contains(&r, &r.hi, r.v4) || ipr_range_contains(&r, &r.lo, !r.v4))
        abort();
    if (r.v4 && (!ipr_addr_is_v4mapped(&r.lo) || !ipr_addr_is_v4mapped(&r.hi)))
        abort();
    if (ipr_range_overlap(&r, &r) != IPR_EQUAL || ipr_range_cmp_size(&r, &r) != 0)
        abort();
    if (ipr_range_format(&r, out, sizeof out) >= sizeof out)
        abort();
    if (ipr_range_parse(out, &r2, err, sizeof err) != 0)
        abort();   /* our own output must parse */
    ipr_range_format(&r2, again, sizeof again);
    if (strcmp(out, again) != 0 || memcmp(&r.lo, &r2.lo, sizeof r.lo) != 0 ||
        memcmp(&r.hi, &r2.hi, sizeof r.hi) != 0 || r.form != r2.form || r.v4 != r2.v4)
        abort();
    /* Against a fixed neighbour: the relation must not depend on the order. */
    static const char *others[] = {"10.0.0.0/8", "10.0.0.5-10.0.1.7", "2001:db8::/32", "::"};
    for (size_t i = 0; i < sizeof others / sizeof others[0]; i++) {
        ipr_range o;
        if (ipr_range_parse(others[i], &o, err, sizeof err) != 0)
            abort();
        if (ipr_range_overlap(&r, &o) != ipr_range_overlap(&o, &r) ||
            ipr_range_cmp_size(&r, &o) != -ipr_range_cmp_size(&o, &r))
            abort();
    }
}

static void check_binding(const char *s)
{
    ipr_binding b, b2;
    char err[RN_ERRLEN], out[128];
    if (ipr_binding_parse(s, &b, err, sizeof err) != 0)
        return;
    if (b.port == 0 || ipr_binding_format(&b, out, sizeof out) >= sizeof out)
        abort();
    if (ipr_binding_parse(out, &b2, err, sizeof err) != 0 ||
        memcmp(&b.ip, &b2.ip, sizeof b.ip) != 0 || b.port != b2.port || b.v4 != b2.v4 ||
        b.wildcard != b2.wildcard || !ipr_binding_overlaps(&b, &b2))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 512)
        return 0;
    char *s = xstrndup((const char *)data, size);
    check_range(s);
    check_binding(s);
    ipr_addr a;
    bool v4;
    if (ipr_addr_parse(s, &a, &v4) == 0 && v4 && !ipr_addr_is_v4mapped(&a))
        abort();
    free(s);
    return 0;
}
