/* Unit tests for spool_record: envelopes with edge values round-trip through the encoder and
 * the resumable decoder (whole or one byte at a time), and the decoder rejects every
 * malformed form: truncation at every byte offset, bad magic or version, unknown type,
 * order, oversized fields, NUL/CR/LF in text, bad checksum, trailing bytes. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "directory/base/util.h"
#include "node/spool/spool_record.h"

struct buf {
    uint8_t *p;
    size_t n, cap;
};

static int buf_sink(void *arg, const void *p, size_t n)
{
    struct buf *b = arg;
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2;
        b->p = xrealloc(b->p, b->cap);
    }
    memcpy(b->p + b->n, p, n);
    b->n += n;
    return 0;
}

static void buf_rec(struct buf *b, uint8_t type, const void *p, size_t n)
{
    uint8_t h[SPOOL_REC_HDR];
    spool_rec_put_header(h, type, (uint32_t)n);
    buf_sink(b, h, sizeof h);
    if (n)
        buf_sink(b, p, n);
}

static void buf_end(struct buf *b, uint64_t total)
{
    uint8_t e[SPOOL_REC_HDR + SPOOL_REC_END_LEN];
    spool_rec_put_end(e, total, spool_rec_crc32(0, b->p, b->n));
    buf_sink(b, e, sizeof e);
}

/* A whole file: envelope, data in records of at most chunk bytes, END. */
static struct buf encode(const struct spool_envelope *env, const char *data, size_t len,
                         size_t chunk)
{
    struct buf b = {0};
    char err[RN_ERRLEN];
    assert_int_equal(spool_rec_encode_envelope(env, buf_sink, &b, err, sizeof err), 0);
    for (size_t off = 0; off < len; off += chunk)
        buf_rec(&b, SPOOL_REC_DATA, data + off, len - off < chunk ? len - off : chunk);
    buf_end(&b, len);
    return b;
}

struct collect {
    struct buf data;
};

static int collect_data(void *arg, const void *p, size_t n)
{
    return buf_sink(&((struct collect *)arg)->data, p, n);
}

/* Decode in pieces of `step` bytes (0 = whole). */
static int decode(const struct buf *b, size_t step, struct spool_entry *e, struct collect *c,
                  char *err, size_t errlen)
{
    struct spool_rec_dec d;
    memset(e, 0, sizeof *e);
    spool_rec_dec_init(&d, e, c ? collect_data : NULL, c);
    size_t off = 0;
    while (off < b->n) {
        size_t k = step && b->n - off > step ? step : b->n - off;
        if (spool_rec_dec_feed(&d, b->p + off, k, err, errlen) < 0) {
            spool_rec_dec_finish(&d, NULL, 0);
            return -1;
        }
        off += k;
    }
    return spool_rec_dec_finish(&d, err, errlen);
}

static char *repeat(char c, size_t n)
{
    char *s = xmalloc(n + 1);
    memset(s, c, n);
    s[n] = '\0';
    return s;
}

static void assert_same(const struct spool_envelope *env, const struct spool_entry *e)
{
    assert_string_equal(e->sender, env->sender);
    assert_int_equal(e->nrcpts, env->nrcpts);
    for (size_t i = 0; i < env->nrcpts; i++)
        assert_string_equal(e->rcpts[i], env->rcpts[i]);
    assert_string_equal(e->client_ip, env->client_ip ? env->client_ip : "");
    assert_string_equal(e->helo, env->helo ? env->helo : "");
    assert_string_equal(e->connector, env->connector ? env->connector : "");
    assert_string_equal(e->auth_as, env->auth_as ? env->auth_as : "");
    if (env->auth_user)
        assert_string_equal(e->auth_user, env->auth_user);
    else
        assert_null(e->auth_user);
    assert_int_equal(e->antispam_bypass, env->antispam_bypass);
    assert_true(e->received == env->received);
}

static void test_round_trip(void **state)
{
    char *a256 = repeat('a', SPOOL_MAX_ADDR), *h512 = repeat('h', SPOOL_MAX_HELO);
    char *u1024 = repeat('u', SPOOL_MAX_AUTH_USER);
    const char *one[] = {"rcpt@example.org"};
    const char *edge[] = {a256, "x", "b@c"};
    char data[70000];
    for (size_t i = 0; i < sizeof data; i++)
        data[i] = (char)(i * 7);
    const struct {
        const char *name;
        struct spool_envelope env;
        size_t len, chunk;
    } cases[] = {
        {"minimal, null sender, no data",
         {"", one, 1, "127.0.0.1", "h", "c", NULL, "Anonymous", false, 0}, 0, 1},
        {"NULL optional strings stored as empty",
         {"s@x", one, 1, NULL, NULL, NULL, NULL, NULL, false, 1}, 1, 1},
        {"max lengths, auth user, bypass, max time",
         {a256, edge, 3, "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255", h512, "Conn", u1024,
          "Partner", true, (time_t)INT64_MAX}, 65536, 65536},
        {"empty auth user, min time, many small chunks",
         {"s@x", edge, 3, "::1", "", "", "", "Internal", false, (time_t)INT64_MIN}, 70000, 777},
        {"bytes of every value in data", {"s@x", one, 1, "1.2.3.4", "h", "c", NULL, "Anonymous",
                                          true, -1}, 256, 3},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct buf b = encode(&cases[i].env, data, cases[i].len, cases[i].chunk);
        for (size_t step = 0; step < 3; step++) {
            struct spool_entry e;
            struct collect c = {0};
            char err[RN_ERRLEN] = "";
            int rc = decode(&b, step == 2 ? 4096 : step, &e, &c, err, sizeof err);
            if (rc != 0)
                fail_msg("%s (step %zu): %s", cases[i].name, step, err);
            assert_same(&cases[i].env, &e);
            assert_int_equal(e.size, cases[i].len);
            assert_int_equal(c.data.n, cases[i].len);
            assert_memory_equal(c.data.p ? (void *)c.data.p : (void *)data, data, cases[i].len);
            spool_entry_clear(&e);
            free(c.data.p);
        }
        free(b.p);
    }
    free(a256), free(h512), free(u1024);
}

static void test_many_recipients(void **state)
{
    size_t n = SPOOL_MAX_RCPTS;
    const char **r = xcalloc(n + 1, sizeof *r);
    for (size_t i = 0; i <= n; i++)
        r[i] = "r@x";
    struct spool_envelope env = {"s@x", r, n, "::1", "h", "c", NULL, "Anonymous", false, 5};
    struct buf b = encode(&env, "", 0, 1);
    struct spool_entry e;
    char err[RN_ERRLEN];
    assert_int_equal(decode(&b, 0, &e, NULL, err, sizeof err), 0);
    assert_int_equal(e.nrcpts, n);
    spool_entry_clear(&e);
    free(b.p);
    env.nrcpts = n + 1;              /* the encoder refuses one more */
    assert_int_equal(spool_rec_envelope_check(&env, err, sizeof err), -1);
    assert_non_null(strstr(err, "recipients"));
    free(r);
}

static void test_truncated_everywhere(void **state)
{
    const char *r[] = {"a@b", "c@d"};
    struct spool_envelope env = {"s@x", r, 2, "10.0.0.1", "helo", "conn", "user", "Internal",
                                 true, 1700000000};
    struct buf b = encode(&env, "Subject: x\r\n\r\nbody\r\n", 20, 7);
    for (size_t len = 0; len < b.n; len++) {
        struct buf t = {b.p, len, len};
        struct spool_entry e;
        char err[RN_ERRLEN] = "";
        if (decode(&t, 0, &e, NULL, err, sizeof err) != -1)
            fail_msg("truncated at %zu of %zu accepted", len, b.n);
        assert_true(err[0] != '\0');
        assert_null(e.sender);       /* cleared on error */
        assert_int_equal(e.nrcpts, 0);
    }
    free(b.p);
}

/* Malformed files built record by record. */
enum mutation {
    M_BAD_MAGIC, M_BAD_VERSION, M_UNKNOWN_TYPE, M_BAD_CRC, M_TRAILING, M_SENDER_257,
    M_RCPT_257, M_RCPT_EMPTY, M_NUL_HELO, M_CR_SENDER, M_LF_RCPT, M_NO_SENDER, M_NO_RCPT,
    M_TWICE_HELO, M_OUT_OF_ORDER, M_UNKNOWN_FLAGS, M_EMPTY_DATA, M_TOTAL_MISMATCH,
    M_DATA_TOO_BIG, M_RECORD_AFTER_END, M_DATA_BEFORE_ENVELOPE, M_FLAGS_LEN, M_LEN_PAST_END,
};

static struct buf build(enum mutation m)
{
    struct buf b = {0};
    uint8_t flags[4] = {0, 0, 0, m == M_UNKNOWN_FLAGS ? 2 : 1}, recv[8] = {0};
    uint8_t fh[5] = {'R', 'N', 'Q', m == M_BAD_MAGIC ? '2' : '1',
                     m == M_BAD_VERSION ? 2 : SPOOL_REC_VERSION};
    buf_sink(&b, fh, sizeof fh);
    char *big = repeat('a', 257);
    if (m != M_NO_SENDER)
        buf_rec(&b, SPOOL_REC_SENDER, m == M_CR_SENDER ? "a\rb" : m == M_SENDER_257 ? big : "s",
                m == M_CR_SENDER ? 3 : m == M_SENDER_257 ? 257 : 1);
    if (m == M_DATA_BEFORE_ENVELOPE)
        buf_rec(&b, SPOOL_REC_DATA, "x", 1);
    if (m != M_NO_RCPT)
        buf_rec(&b, SPOOL_REC_RCPT, m == M_LF_RCPT ? "a\nb" : m == M_RCPT_257 ? big : "r",
                m == M_RCPT_EMPTY ? 0 : m == M_LF_RCPT ? 3 : m == M_RCPT_257 ? 257 : 1);
    if (m == M_OUT_OF_ORDER) {
        buf_rec(&b, SPOOL_REC_HELO, "h", 1);
        buf_rec(&b, SPOOL_REC_CLIENT_IP, "1", 1);
    } else {
        buf_rec(&b, SPOOL_REC_CLIENT_IP, "1", 1);
        buf_rec(&b, SPOOL_REC_HELO, m == M_NUL_HELO ? "h\0x" : "h", m == M_NUL_HELO ? 3 : 1);
    }
    if (m == M_TWICE_HELO)
        buf_rec(&b, SPOOL_REC_HELO, "h", 1);
    if (m == M_UNKNOWN_TYPE)
        buf_rec(&b, 42, "?", 1);
    buf_rec(&b, SPOOL_REC_CONNECTOR, "c", 1);
    buf_rec(&b, SPOOL_REC_AUTH_AS, "Anonymous", 9);
    buf_rec(&b, SPOOL_REC_FLAGS, flags, m == M_FLAGS_LEN ? 3 : 4);
    buf_rec(&b, SPOOL_REC_RECEIVED, recv, 8);
    buf_rec(&b, SPOOL_REC_DATA, "hello", 5);
    if (m == M_EMPTY_DATA)
        buf_rec(&b, SPOOL_REC_DATA, "", 0);
    if (m == M_DATA_TOO_BIG) {
        char *d = repeat('d', SPOOL_REC_DATA_MAX + 1);
        buf_rec(&b, SPOOL_REC_DATA, d, SPOOL_REC_DATA_MAX + 1);
        free(d);
    }
    if (m == M_LEN_PAST_END) {
        uint8_t h[SPOOL_REC_HDR];
        spool_rec_put_header(h, SPOOL_REC_DATA, 1000);
        buf_sink(&b, h, sizeof h);
        buf_sink(&b, "short", 5);
    }
    size_t total = 5 + (m == M_DATA_TOO_BIG ? SPOOL_REC_DATA_MAX + 1 : 0);
    buf_end(&b, m == M_TOTAL_MISMATCH ? total + 1 : total);
    if (m == M_BAD_CRC)
        b.p[b.n - SPOOL_REC_END_LEN - SPOOL_REC_HDR - 2] ^= 0x20;    /* "hello" -> "helLo" */
    if (m == M_TRAILING)
        buf_sink(&b, "\n", 1);
    if (m == M_RECORD_AFTER_END)
        buf_rec(&b, SPOOL_REC_DATA, "x", 1);
    free(big);
    return b;
}

static void test_malformed(void **state)
{
    const struct {
        enum mutation m;
        const char *want;            /* substring of the error */
    } cases[] = {
        {M_BAD_MAGIC, "bad magic"},
        {M_BAD_VERSION, "unsupported version 2"},
        {M_UNKNOWN_TYPE, "unknown record type 42"},
        {M_BAD_CRC, "checksum mismatch"},
        {M_TRAILING, "trailing bytes"},
        {M_SENDER_257, "sender record length 257"},
        {M_RCPT_257, "recipient record length 257"},
        {M_RCPT_EMPTY, "recipient record length 0"},
        {M_NUL_HELO, "helo contains NUL"},
        {M_CR_SENDER, "sender contains NUL, CR or LF"},
        {M_LF_RCPT, "recipient contains NUL, CR or LF"},
        {M_NO_SENDER, "sender record missing"},
        {M_NO_RCPT, "recipient record missing"},
        {M_TWICE_HELO, "helo record out of order or repeated"},
        {M_OUT_OF_ORDER, "client ip record missing before type 4"},
        {M_UNKNOWN_FLAGS, "unknown bits 0x2"},
        {M_EMPTY_DATA, "data record length 0"},
        {M_TOTAL_MISMATCH, "does not match"},
        {M_DATA_TOO_BIG, "data record length 65537"},
        {M_RECORD_AFTER_END, "trailing bytes"},
        {M_DATA_BEFORE_ENVELOPE, "before the envelope is complete"},
        {M_FLAGS_LEN, "flags record length 3"},
        {M_LEN_PAST_END, "truncated data record"},
    };
    /* The builder itself makes valid files: a control case that must decode. */
    struct buf ok = build((enum mutation)-1);
    struct spool_entry e;
    char err[RN_ERRLEN];
    if (decode(&ok, 0, &e, NULL, err, sizeof err) != 0)
        fail_msg("control file rejected: %s", err);
    assert_int_equal(e.size, 5);
    spool_entry_clear(&e);
    free(ok.p);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct buf b = build(cases[i].m);
        for (size_t step = 0; step < 2; step++) {
            err[0] = '\0';
            if (decode(&b, step, &e, NULL, err, sizeof err) != -1)
                fail_msg("case %zu (%s) accepted", i, cases[i].want);
            if (!strstr(err, cases[i].want))
                fail_msg("case %zu: want \"%s\", got \"%s\"", i, cases[i].want, err);
            assert_null(e.sender);
        }
        free(b.p);
    }
}

static void test_encoder_rejects(void **state)
{
    char *a257 = repeat('a', 257);
    const char *one[] = {"r@x"}, *bad_lf[] = {"r@x\n"}, *empty[] = {""}, *null[] = {NULL};
    const struct {
        struct spool_envelope env;
        const char *want;
    } cases[] = {
        {{a257, one, 1, "", "", "", NULL, "", false, 0}, "sender: longer than 256"},
        {{NULL, one, 1, "", "", "", NULL, "", false, 0}, "sender: missing"},
        {{"s", one, 0, "", "", "", NULL, "", false, 0}, "no recipients"},
        {{"s", bad_lf, 1, "", "", "", NULL, "", false, 0}, "recipient 1: contains CR or LF"},
        {{"s", empty, 1, "", "", "", NULL, "", false, 0}, "recipient 1: empty"},
        {{"s", null, 1, "", "", "", NULL, "", false, 0}, "recipient 1: missing"},
        {{"s", one, 1, "", "bad\rhelo", "", NULL, "", false, 0}, "helo: contains CR"},
        {{"s", one, 1, a257, "", "", NULL, "", false, 0}, "client ip: longer than 64"},
        {{"s", one, 1, "", "", "", "u\n", "", false, 0}, "auth user: contains"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct buf b = {0};
        char err[RN_ERRLEN] = "";
        assert_int_equal(spool_rec_encode_envelope(&cases[i].env, buf_sink, &b, err, sizeof err),
                         -1);
        if (!strstr(err, cases[i].want))
            fail_msg("case %zu: want \"%s\", got \"%s\"", i, cases[i].want, err);
        assert_int_equal(b.n, 0);    /* nothing emitted */
        free(b.p);
    }
    free(a257);
}

static void test_crc32_known(void **state)
{
    /* The standard check value of CRC-32/ISO-HDLC, and split feeding. */
    assert_int_equal(spool_rec_crc32(0, "123456789", 9), 0xCBF43926u);
    assert_int_equal(spool_rec_crc32(spool_rec_crc32(0, "1234", 4), "56789", 5), 0xCBF43926u);
}

/* The reference: one byte a step, the textbook table-driven CRC-32. */
static uint32_t crc32_bytewise(uint32_t crc, const uint8_t *b, size_t n)
{
    static uint32_t t[256];
    if (!t[1])
        for (uint32_t i = 0; i < 256; i++) {
            uint32_t c = i;
            for (int k = 0; k < 8; k++)
                c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
            t[i] = c;
        }
    crc = ~crc;
    while (n--)
        crc = t[(crc ^ *b++) & 0xff] ^ (crc >> 8);
    return ~crc;
}

/* Eight bytes a step gives the byte-wise values: every length up to 300 at every alignment,
 * fed whole and split at a random point, and one megabyte. */
static void test_crc32_slices_match_bytewise(void **state)
{
    (void)state;
    enum { BIG = 1 << 20 };
    uint8_t *buf = malloc(BIG + 8);
    assert_non_null(buf);
    uint32_t x = 2463534242u;
    for (size_t i = 0; i < BIG + 8; i++) {
        x ^= x << 13, x ^= x >> 17, x ^= x << 5;
        buf[i] = (uint8_t)x;
    }
    for (size_t off = 0; off < 8; off++)
        for (size_t n = 0; n <= 300; n++) {
            const uint8_t *b = buf + off;
            uint32_t want = crc32_bytewise(0, b, n);
            assert_int_equal(spool_rec_crc32(0, b, n), want);
            size_t cut = n ? (x = x * 1103515245u + 12345u) % (n + 1) : 0;
            assert_int_equal(spool_rec_crc32(spool_rec_crc32(0, b, cut), b + cut, n - cut), want);
            assert_int_equal(spool_rec_crc32(0x12345678u, b, n),
                             crc32_bytewise(0x12345678u, b, n));
        }
    assert_int_equal(spool_rec_crc32(0, buf + 3, BIG), crc32_bytewise(0, buf + 3, BIG));
    free(buf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_many_recipients),
        cmocka_unit_test(test_truncated_everywhere),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_encoder_rejects),
        cmocka_unit_test(test_crc32_known),
        cmocka_unit_test(test_crc32_slices_match_bytewise),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
