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

/* BDAT's line rule (smtp_data_line_check) agrees with DATA's (smtp_data's line_too_long) on
 * the same content, whatever the chunk boundaries: every split in two, and byte by byte. */
static int data_verdict(const char *content, size_t len)
{
    struct smtp_data d;
    smtp_data_init(&d, 1000, 0, NULL, NULL);
    size_t used;
    assert_int_equal(smtp_data_feed(&d, content, len, &used), SMTP_DATA_MORE);
    assert_int_equal(smtp_data_feed(&d, ".\r\n", 3, &used), SMTP_DATA_END);
    return d.line_too_long;
}

static void bdat_line_rule_matches_data(void **state)
{
    (void)state;
    static char buf[3000];
    const struct { const char *name; size_t pre, n, post; int over; } lcases[] = {
        {"998 + CRLF", 5, 998, 3, 0},
        {"999 + CRLF", 5, 999, 3, 1},
        {"1500 + CRLF", 0, 1500, 0, 1},
        {"first line 998", 0, 998, 10, 0},
        {"short lines only", 40, 10, 40, 0},
    };
    for (size_t k = 0; k < sizeof lcases / sizeof lcases[0]; k++) {
        size_t len = 0;
        for (size_t i = 0; i < lcases[k].pre; i++)
            buf[len++] = 'a';
        if (lcases[k].pre)
            buf[len++] = '\r', buf[len++] = '\n';
        for (size_t i = 0; i < lcases[k].n; i++)
            buf[len++] = 'L';
        buf[len++] = '\r', buf[len++] = '\n';
        for (size_t i = 0; i < lcases[k].post; i++)
            buf[len++] = 'z';
        if (lcases[k].post)
            buf[len++] = '\r', buf[len++] = '\n';
        assert_int_equal(data_verdict(buf, len), lcases[k].over);
        for (size_t cut = 0; cut <= len; cut++) {
            size_t ll = 0;
            int over = smtp_data_line_check(&ll, 1000, buf, cut);
            over |= smtp_data_line_check(&ll, 1000, buf + cut, len - cut);
            if (over != lcases[k].over)
                fail_msg("%s: split at %zu gives %d", lcases[k].name, cut, over);
            assert_int_equal(ll, 0);
        }
        size_t ll = 0;
        int over = 0;
        for (size_t i = 0; i < len; i++)
            over |= smtp_data_line_check(&ll, 1000, buf + i, 1);
        assert_int_equal(over, lcases[k].over);
    }
    size_t ll = 0;
    assert_int_equal(smtp_data_line_check(&ll, 0, buf, 1500), 0);    /* 0: no limit */
}

/* A random message for the differential test: text runs (some 8-bit), CRLFs, dots at line
 * starts, now and then a bare CR or LF, often the terminator; up to about 1,500 bytes. */
static size_t random_message(char *buf, size_t cap, uint32_t *x)
{
    size_t n = 0;
    while (n + 48 < cap) {
        *x ^= *x << 13, *x ^= *x >> 17, *x ^= *x << 5;
        unsigned r = *x % 100;
        if (r < 55) {
            size_t run = *x / 100 % 40;
            for (size_t i = 0; i < run; i++)
                buf[n++] = (char)(i % 7 == 3 && r < 5 ? 0xc3 : 'a' + (int)((*x >> (i % 32)) % 26));
        } else if (r < 85) {
            memcpy(buf + n, "\r\n", 2), n += 2;
        } else if (r < 93) {
            buf[n++] = '.';
        } else if (r < 95) {
            buf[n++] = r == 93 ? '\r' : '\n';
        } else if (r < 97) {
            memcpy(buf + n, "\r\n.\r\n", 5), n += 5;
        } else if (*x / 100 % 8 == 0) {
            break;
        }
    }
    return n;
}

/* The runs of text are taken whole (rn_text_end): random messages fed whole, one
 * byte at a time (which never takes a run) and in random steps give the same reply and bytes
 * consumed, and the same output and limit flags unless the message was refused for a bare
 * CR or LF (what went out before is then discarded, and how much depends on the pieces),
 * with and without line and size limits. */
static void random_whole_equals_bytewise(void **state)
{
    (void)state;
    static const size_t lines[] = {0, 8, 20, 1000};
    static const uint64_t sizes[] = {0, 50, 500};
    uint32_t x = 88172645u;
    char in[1600];
    for (int round = 0; round < 3000; round++) {
        size_t len = random_message(in, sizeof in, &x);
        size_t ml = lines[round % 4];
        uint64_t ms = sizes[round / 4 % 3];
        struct result whole, one, steps;
        run(in, len, 0, ml, ms, &whole);
        run(in, len, 1, ml, ms, &one);
        run(in, len, 2 + x % 16, ml, ms, &steps);
        const struct result *v[] = {&one, &steps};
        for (int k = 0; k < 2; k++) {
            if (v[k]->rc != whole.rc || v[k]->consumed != whole.consumed ||
                (whole.rc != SMTP_DATA_BARE &&   /* a refused message's bytes are dropped */
                 (v[k]->too_long != whole.too_long || v[k]->too_big != whole.too_big ||
                  v[k]->out.len != whole.out.len ||
                  memcmp(v[k]->out.buf, whole.out.buf, whole.out.len) != 0)))
                fail_msg("round %d (max_line %zu, max_size %llu, %s): rc %d/%d consumed "
                         "%zu/%zu out %zu/%zu", round, ml, (unsigned long long)ms,
                         k ? "steps" : "one byte", whole.rc, v[k]->rc, whole.consumed,
                         v[k]->consumed, whole.out.len, v[k]->out.len);
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(table_whole_and_bytewise),
        cmocka_unit_test(line_limit_discards_but_reads_to_end),
        cmocka_unit_test(size_limit_discards),
        cmocka_unit_test(bare_check_for_commands_and_bdat),
        cmocka_unit_test(bdat_line_rule_matches_data),
        cmocka_unit_test(random_whole_equals_bytewise),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
