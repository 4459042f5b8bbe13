/* libFuzzer target for the header firewall and header-sender extraction (node/smtp/headers.c,
 * docs/permission-model.md §9.1). Beyond "no crash, no sanitizer report" it checks the
 * contracts: the output is never longer than the input (out holds exactly len bytes, so an
 * overrun is an ASan report); with every right the block passes unchanged; filtering is
 * idempotent (a second pass over the output changes nothing, so no dropped field can be
 * rebuilt from what is left); without the routing right no Received: field survives; more
 * rights never remove more; the sender, when found, is NUL-terminated inside its buffer and
 * holds an '@'.
 *   clang -std=gnu11 -g -O1 -I. -D_GNU_SOURCE -fsanitize=fuzzer,address,undefined \
 *     -o /tmp/fuzz_headers tests/fuzz/fuzz_headers.c node/smtp/headers.c
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "node/smtp/headers.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static size_t fuzz_filter(const char *in, size_t len, const struct headers_accept *acc,
                          char **out)
{
    *out = malloc(len ? len : 1);
    if (!*out)
        abort();
    size_t w = headers_firewall(in, len, acc, *out);
    if (w > len)
        abort();
    return w;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    unsigned sel = data[0];
    size_t addrlen = (size_t)data[1] % 300 + 1;
    size_t len = size - 2;
    char *in = malloc(len ? len : 1);
    if (!in)
        abort();
    memcpy(in, data + 2, len);
    struct headers_accept acc = {sel & 1, (sel >> 1) & 1, (sel >> 2) & 1};
    struct headers_accept all = {1, 1, 1};

    char *o1, *o2, *oall;
    size_t w1 = fuzz_filter(in, len, &acc, &o1);
    size_t w2 = fuzz_filter(o1, w1, &acc, &o2);
    size_t wall = fuzz_filter(in, len, &all, &oall);
    if (w2 != w1 || memcmp(o1, o2, w1) != 0)
        abort();                                 /* not idempotent */
    if (wall != len || memcmp(oall, in, len) != 0)
        abort();                                 /* every right: unchanged */
    if (!acc.routing && headers_count_received(o1, w1) != 0)
        abort();                                 /* a Received: survived */
    if (headers_count_received(o1, w1) > headers_count_received(in, len))
        abort();

    char *addr = malloc(addrlen);
    if (!addr)
        abort();
    if (headers_sender(in, len, addr, addrlen) == 0) {
        size_t n = strnlen(addr, addrlen);
        if (n == 0 || n >= addrlen || !memchr(addr, '@', n))
            abort();
    }
    free(addr);
    free(o1);
    free(o2);
    free(oall);
    free(in);
    return 0;
}
