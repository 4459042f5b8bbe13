/* libFuzzer target for smtp_data: feeding the input whole and split at a fuzzer-chosen
 * stride must give the same verdict, consumed count, flags and output; output never holds a
 * bare CR or LF. Build: clang -std=gnu11 -g -O1 -I. -D_GNU_SOURCE \
 *   -fsanitize=fuzzer,address,undefined -o /tmp/fuzz_smtp_data tests/fuzz/fuzz_smtp_data.c node/smtp/smtp_data.c */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "node/smtp/smtp_data.h"

struct fuzz_sink {
    char *buf;
    size_t len, cap;
};

static void fuzz_emit(void *arg, const char *b, size_t n)
{
    struct fuzz_sink *s = arg;
    if (s->len + n > s->cap)
        abort();
    memcpy(s->buf + s->len, b, n);
    s->len += n;
}

static enum smtp_data_rc fuzz_run(const char *in, size_t len, size_t step, struct fuzz_sink *s,
                                  size_t *consumed, struct smtp_data *d)
{
    smtp_data_init(d, 20, 64, fuzz_emit, s);
    size_t off = 0;
    enum smtp_data_rc rc = SMTP_DATA_MORE;
    while (off < len) {
        size_t n = len - off < step ? len - off : step;
        size_t used;
        rc = smtp_data_feed(d, in + off, n, &used);
        off += used;
        if (rc != SMTP_DATA_MORE)
            break;
        if (used != n)
            abort();
    }
    *consumed = off;
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t step = (size_t)(data[0] % 7) + 1;
    const char *in = (const char *)data + 1;
    size_t len = size - 1;
    char *b1 = malloc(len + 2), *b2 = malloc(len + 2);
    struct fuzz_sink s1 = {b1, 0, len + 2}, s2 = {b2, 0, len + 2};
    struct smtp_data d1, d2;
    size_t c1, c2;
    enum smtp_data_rc r1 = fuzz_run(in, len, len ? len : 1, &s1, &c1, &d1);
    enum smtp_data_rc r2 = fuzz_run(in, len, step, &s2, &c2, &d2);
    if (r1 != r2)
        abort();
    if (r1 != SMTP_DATA_BARE) {
        if (c1 != c2 || s1.len != s2.len || memcmp(b1, b2, s1.len) != 0 ||
            d1.line_too_long != d2.line_too_long || d1.too_big != d2.too_big ||
            d1.size != d2.size)
            abort();
        int cr = 0;
        if (smtp_data_bare_check(&cr, b1, s1.len))
            abort();
    }
    /* BDAT's line rule: the same verdict whole and in steps of `step` octets. */
    size_t l1 = 0, l2 = 0;
    int o1 = smtp_data_line_check(&l1, 1000, in, len), o2 = 0;
    for (size_t off = 0; off < len; off += step)
        o2 |= smtp_data_line_check(&l2, 1000, in + off, len - off < step ? len - off : step);
    if (o1 != o2 || l1 != l2)
        abort();
    free(b1);
    free(b2);
    return 0;
}
