/* Unit tests for smtp_data: terminator, dot-unstuffing, bare CR/LF smuggling variants
 * (docs/reliability.md T01/T02), limits in discard mode, and whole-vs-one-byte equivalence. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>
#include "node/smtp/smtp_data.h"

struct sink {
    char buf[4096];
    size_t len;
};

static void sink_emit(void *arg, const char *b, size_t n)
{
    struct sink *s = arg;
    assert_true(s->len + n <= sizeof s->buf);
    memcpy(s->buf + s->len, b, n);
    s->len += n;
}

struct result {
    enum smtp_data_rc rc;
    size_t consumed;
    struct sink out;
    int too_long, too_big;
};

/* Feed in chunks of `step` bytes (0 = whole), stopping at END or BARE. */
static void run(const char *in, size_t len, size_t step, size_t max_line, uint64_t max_size,
                struct result *r)
{
    struct smtp_data d;
    memset(r, 0, sizeof *r);
    smtp_data_init(&d, max_line, max_size, sink_emit, &r->out);
    size_t off = 0;
    r->rc = SMTP_DATA_MORE;
    while (off < len) {
        size_t n = step ? (len - off < step ? len - off : step) : len - off;
        size_t used = 0;
        r->rc = smtp_data_feed(&d, in + off, n, &used);
        off += used;
        if (r->rc != SMTP_DATA_MORE)
            break;
        assert_int_equal(used, n);
    }
    r->consumed = off;
    r->too_long = d.line_too_long;
    r->too_big = d.too_big;
}

static const struct {
    const char *name;
    const char *in;
    enum smtp_data_rc rc;
    const char *out;   /* for END */
    size_t consumed;   /* for END: bytes up to and incl. the terminator */
} cases[] = {
    {"empty message", ".\r\n", SMTP_DATA_END, "", 3},
    {"one line", "hi\r\n.\r\n", SMTP_DATA_END, "hi\r\n", 7},
    {"pipelined tail untouched", "a\r\n.\r\nQUIT\r\n", SMTP_DATA_END, "a\r\n", 6},
    {"dot stuffing", "..x\r\n..\r\n.\r\n", SMTP_DATA_END, ".x\r\n.\r\n", 12},
    {"lone leading dot dropped", ".abc\r\n.\r\n", SMTP_DATA_END, "abc\r\n", 9},
    {"dot mid-line kept", "a.b\r\n.\r\n", SMTP_DATA_END, "a.b\r\n", 8},
    {"headers and body", "Subject: x\r\n\r\nbody\r\n.\r\n", SMTP_DATA_END,
     "Subject: x\r\n\r\nbody\r\n", 23},
    {"no terminator", "abc\r\n", SMTP_DATA_MORE, NULL, 0},
    {"T01 bare LF dot bare LF", "a\n.\nMAIL FROM:<x@y>\r\n", SMTP_DATA_BARE, NULL, 0},
    {"T01 CRLF dot LF", "a\r\n.\nRCPT\r\n.\r\n", SMTP_DATA_BARE, NULL, 0},
    {"T01 LF dot CRLF", "a\n.\r\n", SMTP_DATA_BARE, NULL, 0},
    {"T02 bare CR dot bare CR", "a\r.\rMAIL\r\n.\r\n", SMTP_DATA_BARE, NULL, 0},
    {"bare CR mid-line", "a\rb\r\n.\r\n", SMTP_DATA_BARE, NULL, 0},
    {"dot CR not LF", "a\r\n.\rX\r\n.\r\n", SMTP_DATA_BARE, NULL, 0},
    {"bare LF in first line", "x\ny\r\n.\r\n", SMTP_DATA_BARE, NULL, 0},
};

static void table_whole_and_bytewise(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t len = strlen(cases[i].in);
        struct result whole, bytes, threes;
        run(cases[i].in, len, 0, 1000, 0, &whole);
        run(cases[i].in, len, 1, 1000, 0, &bytes);
        run(cases[i].in, len, 3, 1000, 0, &threes);
        if (whole.rc != cases[i].rc)
            fail_msg("%s: rc %d want %d", cases[i].name, whole.rc, cases[i].rc);
        if (bytes.rc != whole.rc || threes.rc != whole.rc)
            fail_msg("%s: split feeds disagree", cases[i].name);
        if (whole.rc == SMTP_DATA_END) {
            if (whole.consumed != cases[i].consumed || whole.out.len != strlen(cases[i].out) ||
                memcmp(whole.out.buf, cases[i].out, whole.out.len) != 0)
                fail_msg("%s: consumed %zu out '%.*s'", cases[i].name, whole.consumed,
                         (int)whole.out.len, whole.out.buf);
        }
        if (whole.rc != SMTP_DATA_BARE) {
            if (bytes.consumed != whole.consumed || bytes.out.len != whole.out.len ||
                memcmp(bytes.out.buf, whole.out.buf, whole.out.len) != 0 ||
                threes.out.len != whole.out.len ||
                memcmp(threes.out.buf, whole.out.buf, whole.out.len) != 0)
                fail_msg("%s: split output differs", cases[i].name);
        }
    }
}

static void line_limit_discards_but_reads_to_end(void **state)
{
    (void)state;
    char in[64];
    /* 9 chars + CRLF = 11 > 10 */
    strcpy(in, "123456789\r\nok\r\n.\r\n");
    struct result r, b;
    run(in, strlen(in), 0, 10, 0, &r);
    run(in, strlen(in), 1, 10, 0, &b);
    assert_int_equal(r.rc, SMTP_DATA_END);
    assert_int_equal(r.consumed, strlen(in));
    assert_true(r.too_long);
    assert_true(b.too_long);
    /* exactly at the limit is fine */
    strcpy(in, "12345678\r\n.\r\n");
    run(in, strlen(in), 0, 10, 0, &r);
    assert_int_equal(r.rc, SMTP_DATA_END);
    assert_false(r.too_long);
    assert_int_equal(r.out.len, 10);
}

static void size_limit_discards(void **state)
{
    (void)state;
    const char *in = "abcd\r\nefgh\r\n.\r\n";
    struct result r, b;
    run(in, strlen(in), 0, 1000, 11, &r);
    run(in, strlen(in), 1, 1000, 11, &b);
    assert_int_equal(r.rc, SMTP_DATA_END);
    assert_true(r.too_big);
    assert_true(b.too_big);
    assert_int_equal(r.out.len, 11);
    assert_int_equal(b.out.len, 11);
    run(in, strlen(in), 0, 1000, 12, &r);
    assert_false(r.too_big);
    assert_int_equal(r.out.len, 12);
}

static void bare_check_for_commands_and_bdat(void **state)
{
    (void)state;
    int cr = 0;
    assert_int_equal(smtp_data_bare_check(&cr, "abc\r\ndef\r", 9), 0);
    assert_int_equal(cr, 1);
    assert_int_equal(smtp_data_bare_check(&cr, "\nx", 2), 0);
    cr = 0;
    assert_int_equal(smtp_data_bare_check(&cr, "a\nb", 3), 1);
    cr = 0;
    assert_int_equal(smtp_data_bare_check(&cr, "a\rb", 3), 1);
    cr = 0;
    assert_int_equal(smtp_data_bare_check(&cr, "a\r", 2), 0);
    assert_int_equal(smtp_data_bare_check(&cr, "b", 1), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(table_whole_and_bytewise),
        cmocka_unit_test(line_limit_discards_but_reads_to_end),
        cmocka_unit_test(size_limit_discards),
        cmocka_unit_test(bare_check_for_commands_and_bdat),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
