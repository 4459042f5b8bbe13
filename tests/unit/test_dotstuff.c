/* dotstuff: the body as the delivery client sends it. Table of named cases, each fed whole,
 * split at every position, and one byte at a time: the same output and verdict every way
 * (docs/style.md 10). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "node/delivery/dotstuff.h"

struct out { char buf[4096]; size_t len; };

static void emit(void *arg, const char *p, size_t n)
{
    struct out *o = arg;
    assert_true(o->len + n <= sizeof o->buf);
    memcpy(o->buf + o->len, p, n);
    o->len += n;
}

/* Feed in[0..len) in pieces cut at cut1 and cut2 (or byte by byte when bytewise). */
static int run(const char *in, size_t len, size_t cut1, size_t cut2, int bytewise,
               struct out *o, struct dotstuff *d)
{
    memset(o, 0, sizeof *o);
    dotstuff_init(d, emit, o);
    int rc = 0;
    if (bytewise) {
        for (size_t i = 0; i < len && rc == 0; i++)
            rc = dotstuff_feed(d, in + i, 1);
    } else {
        rc = dotstuff_feed(d, in, cut1);
        if (rc == 0)
            rc = dotstuff_feed(d, in + cut1, cut2 - cut1);
        if (rc == 0)
            rc = dotstuff_feed(d, in + cut2, len - cut2);
    }
    return rc == 0 ? dotstuff_end(d) : rc;
}

static char long_line[1100];

static void table_whole_split_bytewise(void **state)
{
    (void)state;
    memset(long_line, 'x', sizeof long_line);
    memcpy(long_line + 998, "\r\n", 2);          /* 998 + CRLF: the longest allowed */
    char too_long[1002];
    memset(too_long, 'y', sizeof too_long);
    memcpy(too_long + 999, "\r\n", 2);           /* 999 + CRLF */
    const struct {
        const char *name, *in; size_t len;
        const char *want; size_t wlen;             /* NULL: refused with bad_prefix */
        const char *bad; int eight;
    } t[] = {
        {"empty", "", 0, ".\r\n", 3, NULL, 0},
        {"one line", "a\r\n", 3, "a\r\n.\r\n", 6, NULL, 0},
        {"no final CRLF", "a\r\nb", 4, "a\r\nb\r\n.\r\n", 9, NULL, 0},
        {"dot lines", ".a\r\n..\r\n.\r\nb.c\r\n", 16,
         "..a\r\n...\r\n..\r\nb.c\r\n.\r\n", 22, NULL, 0},
        {"dot only at line start", "x.\r\n.\r\n", 7, "x.\r\n..\r\n.\r\n", 11, NULL, 0},
        {"8-bit", "caf\xc3\xa9\r\n", 7, "caf\xc3\xa9\r\n.\r\n", 10, NULL, 1},
        {"998 + CRLF", long_line, 1000, NULL, 0, NULL, 0},
        {"999 + CRLF", too_long, 1001, NULL, 0, "5.6.0 message has a line over 998", 0},
        {"bare LF", "a\nb\r\n", 5, NULL, 0, "5.6.0 message has a bare LF", 0},
        {"bare CR", "a\rb\r\n", 5, NULL, 0, "5.6.0 message has a bare CR", 0},
        {"CR at the end", "a\r\nb\r", 6, NULL, 0, "5.6.0 message has a bare CR", 0},
        {"LF first", "\nb", 2, NULL, 0, "5.6.0 message has a bare LF", 0},
    };
    for (size_t k = 0; k < sizeof t / sizeof t[0]; k++) {
        size_t len = t[k].len;
        for (size_t c1 = 0; c1 <= len; c1 += len > 64 ? 97 : 1) {
            for (size_t c2 = c1; c2 <= len; c2 += len > 64 ? 89 : 1) {
                for (int bw = 0; bw < 2; bw++) {
                    struct out o;
                    struct dotstuff d;
                    int rc = run(t[k].in, len, c1, c2, bw, &o, &d);
                    if (t[k].bad) {
                        if (rc != -1 || !d.bad || strncmp(d.bad, t[k].bad, strlen(t[k].bad)))
                            fail_msg("%s (%zu/%zu/%d): rc %d bad '%s'", t[k].name, c1, c2,
                                     bw, rc, d.bad ? d.bad : "");
                        continue;
                    }
                    if (rc != 0)
                        fail_msg("%s (%zu/%zu/%d): refused: %s", t[k].name, c1, c2, bw,
                                 d.bad ? d.bad : "?");
                    assert_int_equal(d.size, len);
                    assert_int_equal(d.eight_bit, t[k].eight);
                    if (t[k].want) {
                        assert_int_equal(o.len, t[k].wlen);
                        assert_memory_equal(o.buf, t[k].want, t[k].wlen);
                    } else {          /* long_line: itself, then the dot */
                        assert_int_equal(o.len, len + 3);
                        assert_memory_equal(o.buf, t[k].in, len);
                    }
                    if (bw)
                        break;
                }
            }
        }
    }
}

static void refusal_is_sticky(void **state)
{
    (void)state;
    struct out o = {0};
    struct dotstuff d;
    dotstuff_init(&d, emit, &o);
    assert_int_equal(dotstuff_feed(&d, "a\nb", 3), -1);
    assert_int_equal(dotstuff_feed(&d, "\r\n", 2), -1);
    assert_int_equal(dotstuff_end(&d), -1);
    size_t before = o.len;
    assert_int_equal(dotstuff_end(&d), -1);
    assert_int_equal(o.len, before);              /* no final dot after a refusal */
}

static void count_only(void **state)
{
    (void)state;
    struct dotstuff d;
    dotstuff_init(&d, NULL, NULL);
    assert_int_equal(dotstuff_feed(&d, ".x\r\n", 4), 0);
    assert_int_equal(dotstuff_end(&d), 0);
    assert_int_equal(d.size, 4);
}

/* The rest of a line is taken at once (rn_text_end): random bodies (text runs,
 * some 8-bit, CRLFs, dots, lines near the 998-octet limit, now and then a bare CR or LF) fed
 * whole and one byte at a time give the same verdict, reason, output, size and 8-bit flag. */
static void random_whole_equals_bytewise(void **state)
{
    (void)state;
    static char in[2200];
    uint32_t x = 2654435761u;
    for (int round = 0; round < 2000; round++) {
        size_t len = 0;
        while (len + 1010 < sizeof in) {
            x ^= x << 13, x ^= x >> 17, x ^= x << 5;
            unsigned r = x % 100;
            if (r < 50) {
                size_t run = r < 3 ? 990 + x / 100 % 12 : x / 100 % 50;
                for (size_t i = 0; i < run; i++)
                    in[len++] = (char)(r == 4 && i == 7 ? 0xe9 : 'a' + (int)(i % 26));
            } else if (r < 85) {
                memcpy(in + len, "\r\n", 2), len += 2;
            } else if (r < 95) {
                in[len++] = '.';
            } else if (r < 96) {
                in[len++] = x / 100 % 2 ? '\r' : '\n';
            } else if (x / 100 % 4 == 0) {
                break;
            }
        }
        struct out ow, ob;
        struct dotstuff dw, db;
        int rw = run(in, len, len, len, 0, &ow, &dw);
        int rb = run(in, len, 0, 0, 1, &ob, &db);
        if (rw != rb || (dw.bad == NULL) != (db.bad == NULL) ||
            (dw.bad && strcmp(dw.bad, db.bad) != 0) ||
            (rw == 0 && (ow.len != ob.len || memcmp(ow.buf, ob.buf, ow.len) != 0 ||
                         dw.size != db.size || dw.eight_bit != db.eight_bit)))
            fail_msg("round %d: whole rc %d (%s) out %zu, one byte rc %d (%s) out %zu", round,
                     rw, dw.bad ? dw.bad : "-", ow.len, rb, db.bad ? db.bad : "-", ob.len);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(table_whole_split_bytewise),
        cmocka_unit_test(refusal_is_sticky),
        cmocka_unit_test(count_only),
        cmocka_unit_test(random_whole_equals_bytewise),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
