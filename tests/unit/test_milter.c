/* Unit tests for the milter protocol codec and conversation (node/milter/milter_proto.h):
 * framing whole and byte by byte, the negotiated steps, every verdict, header changes and
 * their application, endpoints, and hostile replies (oversized or zero lengths, unknown
 * commands, truncated packets, changes out of turn, bad strings): each ends as MILTER_FAILED,
 * which the node turns into milter_default_action, never a crash or an accept. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <cmocka.h>
#include "node/milter/milter_proto.h"

static const char *const rcpts[] = {"a@example.com", "b@example.com"};
static const char content[] =
    "Received: from x\r\n\tby y\r\nSubject: hi\r\nX-Dup: one\r\nX-Dup: two\r\n\r\nbody\r\n";

static struct milter_msg msg(void)
{
    return (struct milter_msg){.client_ip = "192.0.2.1", .client_port = 0, .helo = "client.test",
                               .sender = "s@example.org", .rcpts = rcpts, .nrcpts = 2,
                               .queue_id = "Q1", .myhostname = "relay.test", .auth_user = NULL,
                               .content = content, .len = sizeof content - 1};
}

/* A reply packet into buf; returns its length. */
static size_t pkt(char *buf, char cmd, const void *data, size_t len)
{
    uint32_t n = htonl((uint32_t)len + 1);
    memcpy(buf, &n, 4);
    buf[4] = cmd;
    memcpy(buf + 5, data, len);
    return len + 5;
}

static size_t optneg(char *buf, uint32_t version, uint32_t actions, uint32_t proto)
{
    uint32_t v[3] = {htonl(version), htonl(actions), htonl(proto)};
    return pkt(buf, 'O', v, sizeof v);
}

/* The commands in the conversation's output so far (consumed), as a string. */
static void sent(struct milter_conv *c, char *cmds, size_t cap)
{
    struct milter_out *o = milter_conv_output(c);
    size_t k = strlen(cmds);
    for (size_t i = 0; i + 5 <= o->len && k + 1 < cap; ) {
        uint32_t n;
        memcpy(&n, o->p + i, 4);
        n = ntohl(n);
        cmds[k++] = o->p[i + 4];
        i += 4 + n;
    }
    cmds[k] = '\0';
    o->len = 0;
}

/* Negotiate with every step unanswered (NR_*), so the MTA sends all up to end of message. */
#define NR_ALL (SMFIP_NR_CONN | SMFIP_NR_HELO | SMFIP_NR_MAIL | SMFIP_NR_RCPT | SMFIP_NR_DATA | \
                SMFIP_NR_HDR | SMFIP_NR_EOH | SMFIP_NR_BODY)

static struct milter_conv *to_eom(const struct milter_msg *m, uint32_t actions)
{
    struct milter_conv *c = milter_conv_new(m);
    char cmds[64] = "", b[64];
    sent(c, cmds, sizeof cmds);
    assert_string_equal(cmds, "O");
    assert_true(milter_conv_waiting(c));
    size_t n = optneg(b, 6, actions, NR_ALL);
    assert_int_equal(milter_conv_input(c, b, n), n);
    cmds[0] = '\0';
    sent(c, cmds, sizeof cmds);
    /* macros + connect, helo, macros + mail, 2 rcpt, data, 4 headers, eoh, body, eom */
    assert_string_equal(cmds, "DCHDMRRTLLLLNBE");
    assert_true(milter_conv_waiting(c));
    return c;
}

static void whole_conversation_accept_with_changes(void **state)
{
    (void)state;
    struct milter_msg m = msg();
    struct milter_conv *c = to_eom(&m, SMFIF_ADDHDRS | SMFIF_CHGHDRS | SMFIF_QUARANTINE);
    char b[512];
    size_t n = pkt(b, 'h', "X-Spam\0No", 10);
    n += pkt(b + n, 'i', "\0\0\0\0X-First\0top\n\tfolded", 24);
    n += pkt(b + n, 'm', "\0\0\0\2X-Dup\0", 11);
    n += pkt(b + n, 'p', "", 0);
    n += pkt(b + n, 'a', "", 0);
    /* one byte at a time: the same result as whole (docs/style.md 10) */
    for (size_t i = 0; i < n; i++)
        assert_int_equal(milter_conv_input(c, b + i, 1), 1);
    assert_true(milter_conv_done(c));
    struct milter_result *r = milter_conv_result(c);
    assert_int_equal(r->action, MILTER_ACCEPT);
    assert_int_equal(r->nmods, 3);
    assert_string_equal(r->mods[1].value, "top\r\n\tfolded");
    size_t len;
    char *h = milter_apply_mods(content, strlen(content) - 8, r->mods, r->nmods, &len);
    const char *want = "X-First: top\r\n\tfolded\r\nReceived: from x\r\n\tby y\r\nSubject: hi\r\n"
                       "X-Dup: one\r\nX-Spam: No\r\n";
    assert_int_equal(len, strlen(want));
    assert_memory_equal(h, want, len);
    free(h);
    milter_conv_free(&c);
}

static void verdicts(void **state)
{
    (void)state;
    static const struct { char cmd; const char *data; size_t len; enum milter_action a;
                          const char *text; } cases[] = {
        {'y', "554 5.7.1 Gtube pattern", 24, MILTER_REJECT, "Gtube pattern"},
        {'y', "451 4.7.1 Try again later", 26, MILTER_TEMPFAIL, "Try again later"},
        {'y', "550 go away\r\ninjected", 22, MILTER_REJECT, "go away"},
        {'r', "", 0, MILTER_REJECT, ""},
        {'t', "", 0, MILTER_TEMPFAIL, ""},
        {'d', "", 0, MILTER_DISCARD, ""},
        {'c', "", 0, MILTER_ACCEPT, ""},
        {'a', "", 0, MILTER_ACCEPT, ""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct milter_conv *c;
        struct milter_msg m = msg();
        c = to_eom(&m, SMFIF_ADDHDRS);
        char b[256];
        size_t n = pkt(b, cases[i].cmd, cases[i].data, cases[i].len);
        milter_conv_input(c, b, n);
        assert_true(milter_conv_done(c));
        struct milter_result *r = milter_conv_result(c);
        assert_int_equal(r->action, cases[i].a);
        assert_string_equal(r->text, cases[i].text);
        assert_string_equal(r->stage, "eom");
        milter_conv_free(&c);
    }
}

/* Hostile or broken replies at end of message: each is MILTER_FAILED. */
static void hostile_replies(void **state)
{
    (void)state;
    static const struct { const char *name; char cmd; const char *data; size_t len; } cases[] = {
        {"unknown command", 'Z', "", 0},
        {"add recipient (not offered)", '+', "<x@y>", 6},
        {"replace body (not offered)", 'b', "new", 3},
        {"header without NUL", 'h', "X-A\0val", 7},
        {"header name with colon", 'h', "X:A\0v", 6},
        {"empty header name", 'h', "\0v", 3},
        {"value with a bare line break", 'h', "X-A\0a\nb", 8},
        {"insert header without index", 'i', "\0\0", 2},
        {"replycode not 4xx/5xx", 'y', "250 ok", 7},
        {"replycode without NUL", 'y', "550 no", 6},
        {"skip outside the body", 's', "", 0},
        {"change a header when only adds were negotiated", 'm', "\0\0\0\1X-A\0v", 10},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct milter_msg m = msg();
        struct milter_conv *c = to_eom(&m, SMFIF_ADDHDRS);
        char b[256];
        size_t n = pkt(b, cases[i].cmd, cases[i].data, cases[i].len);
        milter_conv_input(c, b, n);
        if (!milter_conv_done(c) || milter_conv_result(c)->action != MILTER_FAILED)
            fail_msg("case %s: not failed", cases[i].name);
        assert_int_equal(milter_conv_result(c)->nmods, 0);
        milter_conv_free(&c);
    }
}

static void hostile_lengths_and_negotiation(void **state)
{
    (void)state;
    struct milter_msg m = msg();
    char b[64];
    /* an oversized length: refused before anything is read or allocated for it */
    struct milter_conv *c = milter_conv_new(&m);
    uint32_t big = htonl(0x7fffffff);
    milter_conv_input(c, (const char *)&big, 4);
    assert_true(milter_conv_done(c));
    assert_int_equal(milter_conv_result(c)->action, MILTER_FAILED);
    assert_string_equal(milter_conv_result(c)->stage, "negotiate");
    milter_conv_free(&c);
    /* a zero length */
    c = milter_conv_new(&m);
    uint32_t zero = 0;
    milter_conv_input(c, (const char *)&zero, 4);
    assert_int_equal(milter_conv_result(c)->action, MILTER_FAILED);
    milter_conv_free(&c);
    /* a truncated packet, then the connection closes: the caller fails it */
    c = milter_conv_new(&m);
    size_t n = optneg(b, 6, 0, 0);
    milter_conv_input(c, b, n - 3);
    assert_false(milter_conv_done(c));
    milter_conv_fail(c, "the filter closed the connection");
    assert_int_equal(milter_conv_result(c)->action, MILTER_FAILED);
    milter_conv_free(&c);
    /* steps not offered (RCPT_REJ 0x800), a version from the future, a non-OPTNEG first */
    struct { uint32_t v, a, p; char cmd; } bad[] = {{6, 0, 0x800, 'O'}, {7, 0, 0, 'O'},
                                                    {1, 0, 0, 'O'}, {6, 0, 0, 'c'}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        c = milter_conv_new(&m);
        n = optneg(b, bad[i].v, bad[i].a, bad[i].p);
        b[4] = bad[i].cmd;
        milter_conv_input(c, b, n);
        assert_true(milter_conv_done(c));
        assert_int_equal(milter_conv_result(c)->action, MILTER_FAILED);
        milter_conv_free(&c);
    }
    /* actions beyond the offer are masked, not fatal (rspamd asks for 0x3f) */
    c = milter_conv_new(&m);
    n = optneg(b, 6, 0x3f, 0);
    milter_conv_input(c, b, n);
    assert_false(milter_conv_done(c));
    milter_conv_free(&c);
}

/* Steps answered one by one; a reject at RCPT ends it there; SMFIP_NO* skips. */
static void stepwise_and_skips(void **state)
{
    (void)state;
    struct milter_msg m = msg();
    struct milter_conv *c = milter_conv_new(&m);
    char cmds[64] = "", b[64];
    sent(c, cmds, sizeof cmds);
    size_t n = optneg(b, 6, 0, SMFIP_NOHELO);
    milter_conv_input(c, b, n);
    cmds[0] = '\0';
    sent(c, cmds, sizeof cmds);
    assert_string_equal(cmds, "DC");
    n = pkt(b, 'c', "", 0);
    milter_conv_input(c, b, n);
    cmds[0] = '\0';
    sent(c, cmds, sizeof cmds);
    assert_string_equal(cmds, "DM");     /* no HELO */
    milter_conv_input(c, b, n);
    cmds[0] = '\0';
    sent(c, cmds, sizeof cmds);
    assert_string_equal(cmds, "R");
    n = pkt(b, 'r', "", 0);
    milter_conv_input(c, b, n);
    assert_true(milter_conv_done(c));
    assert_int_equal(milter_conv_result(c)->action, MILTER_REJECT);
    assert_string_equal(milter_conv_result(c)->stage, "rcpt");
    cmds[0] = '\0';
    sent(c, cmds, sizeof cmds);
    assert_string_equal(cmds, "Q");
    milter_conv_free(&c);

    /* SKIP during the body goes straight to end of message */
    static char big[200000];
    memset(big, 'x', sizeof big);
    memcpy(big, "S: x\r\n\r\n", 8);
    m.content = big;
    m.len = sizeof big;
    c = milter_conv_new(&m);
    cmds[0] = '\0';
    sent(c, cmds, sizeof cmds);
    n = optneg(b, 6, 0, (NR_ALL & ~(uint32_t)SMFIP_NR_BODY) | SMFIP_SKIP);
    milter_conv_input(c, b, n);
    cmds[0] = '\0';
    sent(c, cmds, sizeof cmds);
    assert_string_equal(cmds, "DCHDMRRTLNB");
    n = pkt(b, 's', "", 0);
    milter_conv_input(c, b, n);
    cmds[0] = '\0';
    sent(c, cmds, sizeof cmds);
    assert_string_equal(cmds, "E");
    milter_conv_free(&c);
}

/* Live mode: held at MAIL until a recipient comes; a refused recipient ends nothing; the
 * content comes last, with the queue id macro before end of message. */
static void live_stages(void **state)
{
    (void)state;
    struct milter_msg m = msg();
    m.content = NULL;
    m.len = 0;
    m.queue_id = NULL;
    struct milter_conv *c = milter_conv_new_live(&m);
    char cmds[64] = "", b[128];
    sent(c, cmds, sizeof cmds);
    size_t n = optneg(b, 6, SMFIF_ADDHDRS, SMFIP_NR_CONN | SMFIP_NR_HELO | SMFIP_NR_HDR |
                      SMFIP_NR_EOH | SMFIP_NR_BODY | SMFIP_NR_DATA);
    milter_conv_input(c, b, n);
    cmds[0] = '\0';
    sent(c, cmds, sizeof cmds);
    assert_string_equal(cmds, "DCHDM");
    n = pkt(b, 'c', "", 0);
    milter_conv_input(c, b, n);
    assert_true(milter_conv_held(c));          /* MAIL passed; nothing more to send */
    cmds[0] = '\0';
    sent(c, cmds, sizeof cmds);
    assert_string_equal(cmds, "");
    milter_conv_rcpt(c, "bad@example.com");
    cmds[0] = '\0';
    sent(c, cmds, sizeof cmds);
    assert_string_equal(cmds, "R");
    assert_true(milter_conv_waiting(c));
    n = pkt(b, 'y', "550 5.1.1 No such user\0", 24);
    milter_conv_input(c, b, n);
    const char *text;
    assert_false(milter_conv_done(c));         /* that recipient alone */
    assert_true(milter_conv_held(c));
    assert_int_equal(milter_conv_rcpt_verdict(c, &text), MILTER_REJECT);
    assert_string_equal(text, "No such user");
    milter_conv_rcpt(c, "good@example.com");
    n = pkt(b, 'c', "", 0);
    milter_conv_input(c, b, n);
    assert_int_equal(milter_conv_rcpt_verdict(c, &text), MILTER_ACCEPT);
    cmds[0] = '\0';
    sent(c, cmds, sizeof cmds);
    assert_string_equal(cmds, "R");
    m.content = content;
    m.len = sizeof content - 1;
    m.queue_id = "Q9";
    milter_conv_content(c);
    cmds[0] = '\0';
    sent(c, cmds, sizeof cmds);
    assert_string_equal(cmds, "TLLLLNBDE");    /* the queue id macro, then end of message */
    n = pkt(b, 'a', "", 0);
    milter_conv_input(c, b, n);
    assert_true(milter_conv_done(c));
    assert_int_equal(milter_conv_result(c)->action, MILTER_ACCEPT);
    milter_conv_free(&c);

    /* a refusal at MAIL ends it there */
    c = milter_conv_new_live(&m);
    cmds[0] = '\0';
    sent(c, cmds, sizeof cmds);
    n = optneg(b, 6, 0, SMFIP_NR_CONN | SMFIP_NR_HELO);
    milter_conv_input(c, b, n);
    n = pkt(b, 't', "", 0);
    milter_conv_input(c, b, n);
    assert_true(milter_conv_done(c));
    assert_int_equal(milter_conv_result(c)->action, MILTER_TEMPFAIL);
    assert_string_equal(milter_conv_result(c)->stage, "mail");
    milter_conv_free(&c);
}

static void reader_whole_and_split(void **state)
{
    (void)state;
    char b[256];
    size_t n = pkt(b, 'y', "550 5.7.1 no\0", 13);
    n += pkt(b + n, 'a', "", 0);
    struct milter_rd r = {0};
    struct milter_packet p;
    char err[128];
    size_t used, off = 0;
    int got = 0;
    while (off < n) {   /* byte by byte */
        int rc = milter_rd_feed(&r, b + off, 1, &used, &p, err, sizeof err);
        assert_true(rc >= 0);
        off += used;
        if (rc == 1) {
            got++;
            assert_int_equal(p.cmd, got == 1 ? 'y' : 'a');
            assert_int_equal(p.len, got == 1 ? 13 : 0);
        }
    }
    assert_int_equal(got, 2);
    off = 0;
    got = 0;
    while (off < n) {   /* whole */
        int rc = milter_rd_feed(&r, b + off, n - off, &used, &p, err, sizeof err);
        off += used;
        got += rc == 1;
    }
    assert_int_equal(got, 2);
    milter_rd_clear(&r);
}

static void apply_mods_table(void **state)
{
    (void)state;
    const char *h = "A: 1\r\nB: 2\r\n\tcont\r\nA: 3\r\n";
    struct { struct milter_mod mod; const char *want; } cases[] = {
        {{MILTER_HDR_ADD, 0, "C", "4"}, "A: 1\r\nB: 2\r\n\tcont\r\nA: 3\r\nC: 4\r\n"},
        {{MILTER_HDR_INSERT, 0, "C", "4"}, "C: 4\r\nA: 1\r\nB: 2\r\n\tcont\r\nA: 3\r\n"},
        {{MILTER_HDR_INSERT, 2, "C", "4"}, "A: 1\r\nB: 2\r\n\tcont\r\nC: 4\r\nA: 3\r\n"},
        {{MILTER_HDR_INSERT, 99, "C", "4"}, "A: 1\r\nB: 2\r\n\tcont\r\nA: 3\r\nC: 4\r\n"},
        {{MILTER_HDR_CHANGE, 2, "a", "x"}, "A: 1\r\nB: 2\r\n\tcont\r\na: x\r\n"},
        {{MILTER_HDR_CHANGE, 1, "B", ""}, "A: 1\r\nA: 3\r\n"},
        {{MILTER_HDR_CHANGE, 3, "A", ""}, "A: 1\r\nB: 2\r\n\tcont\r\nA: 3\r\n"},
        {{MILTER_HDR_CHANGE, 1, "D", "5"}, "A: 1\r\nB: 2\r\n\tcont\r\nA: 3\r\nD: 5\r\n"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t len;
        char *o = milter_apply_mods(h, strlen(h), &cases[i].mod, 1, &len);
        if (len != strlen(cases[i].want) || memcmp(o, cases[i].want, len) != 0)
            fail_msg("case %zu: got %.*s", i, (int)len, o);
        free(o);
    }
}

static void endpoints(void **state)
{
    (void)state;
    struct milter_endpoint *e;
    size_t n;
    char err[256];
    assert_int_equal(milter_endpoints_parse("unix:/run/f.sock inet:127.0.0.1:11332,"
                                            "inet:[::1]:25", &e, &n, err, sizeof err), 0);
    assert_int_equal(n, 3);
    assert_true(e[0].unix_sock);
    assert_string_equal(e[0].path, "/run/f.sock");
    assert_string_equal(e[1].host, "127.0.0.1");
    assert_int_equal(e[1].port, 11332);
    assert_string_equal(e[2].host, "::1");
    free(e);
    assert_int_equal(milter_endpoints_parse("", &e, &n, err, sizeof err), 0);
    assert_int_equal(n, 0);
    const char *bad[] = {"inet:localhost:25", "inet:127.0.0.1", "inet:127.0.0.1:0",
                         "inet:127.0.0.1:65536", "unix:relative", "tcp:1.2.3.4:5",
                         "inet:[::1:25", "inet:127.0.0.1:25x"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (milter_endpoints_parse(bad[i], &e, &n, err, sizeof err) != -1)
            fail_msg("%s accepted", bad[i]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(whole_conversation_accept_with_changes),
        cmocka_unit_test(verdicts),
        cmocka_unit_test(hostile_replies),
        cmocka_unit_test(hostile_lengths_and_negotiation),
        cmocka_unit_test(stepwise_and_skips),
        cmocka_unit_test(live_stages),
        cmocka_unit_test(reader_whole_and_split),
        cmocka_unit_test(apply_mods_table),
        cmocka_unit_test(endpoints),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
