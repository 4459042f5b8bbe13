/* Unit tests for smtp_parse: verbs, paths (RFC 5321 syntax, limits, smuggling), MAIL/RCPT
 * parameters, BDAT and HELO arguments. Table-driven with named cases. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>
#include "node/smtp/smtp_parse.h"

static void verbs_case_insensitive(void **state)
{
    (void)state;
    static const struct {
        const char *line;
        enum smtp_verb verb;
        const char *args;
    } t[] = {
        {"EHLO a.example", SMTP_VERB_EHLO, "a.example"},
        {"ehlo   a", SMTP_VERB_EHLO, "a"},
        {"HeLo x", SMTP_VERB_HELO, "x"},
        {"MAIL FROM:<a@b>", SMTP_VERB_MAIL, "FROM:<a@b>"},
        {"rcpt TO:<a@b>", SMTP_VERB_RCPT, "TO:<a@b>"},
        {"DATA", SMTP_VERB_DATA, ""},
        {"BDAT 10 LAST", SMTP_VERB_BDAT, "10 LAST"},
        {"RSET", SMTP_VERB_RSET, ""},
        {"NOOP", SMTP_VERB_NOOP, ""},
        {"QUIT", SMTP_VERB_QUIT, ""},
        {"VRFY x", SMTP_VERB_VRFY, "x"},
        {"HELP", SMTP_VERB_HELP, ""},
        {"STARTTLS", SMTP_VERB_STARTTLS, ""},
        {"AUTH PLAIN", SMTP_VERB_AUTH, "PLAIN"},
        {"DATAX", SMTP_VERB_UNKNOWN, ""},
        {"", SMTP_VERB_UNKNOWN, ""},
        {"GET / HTTP/1.0", SMTP_VERB_UNKNOWN, "/ HTTP/1.0"},
        {"MAI", SMTP_VERB_UNKNOWN, ""},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        const char *args = NULL;
        enum smtp_verb v = smtp_cmd_verb(t[i].line, strlen(t[i].line), &args);
        if (v != t[i].verb || strcmp(args, t[i].args) != 0)
            fail_msg("case %zu '%s': verb %d args '%s'", i, t[i].line, (int)v, args);
    }
    assert_string_equal(smtp_verb_name(SMTP_VERB_BDAT), "BDAT");
}

static void rcpt_paths(void **state)
{
    (void)state;
    static const struct {
        const char *name;
        const char *args;
        int utf8;
        int rc;
        const char *addr;
        int literal;
    } t[] = {
        {"plain", "TO:<user@example.com>", 0, SMTP_PARSE_OK, "user@example.com", 0},
        {"lowercase kw", "to:<u@d>", 0, SMTP_PARSE_OK, "u@d", 0},
        {"space after colon", "TO: <u@d>", 0, SMTP_PARSE_OK, "u@d", 0},
        {"trailing space", "TO:<u@d>  ", 0, SMTP_PARSE_OK, "u@d", 0},
        {"quoted local", "TO:<\"a b\"@d.example>", 0, SMTP_PARSE_OK, "\"a b\"@d.example", 0},
        {"quoted with escaped quote and >", "TO:<\"a\\\">\"@d>", 0, SMTP_PARSE_OK, "\"a\\\">\"@d", 0},
        {"literal v4", "TO:<u@[192.0.2.1]>", 0, SMTP_PARSE_OK, "u@[192.0.2.1]", 1},
        {"literal v6", "TO:<u@[IPv6:2001:db8::1]>", 0, SMTP_PARSE_OK, "u@[IPv6:2001:db8::1]", 1},
        {"atext specials", "TO:<a.b+c=d!#$%&'*/?^_`{|}~-@x.y>", 0, SMTP_PARSE_OK,
         "a.b+c=d!#$%&'*/?^_`{|}~-@x.y", 0},
        {"null refused for rcpt", "TO:<>", 0, SMTP_PARSE_BAD_ADDR, NULL, 0},
        {"no brackets", "TO:u@d", 0, SMTP_PARSE_BAD_ADDR, NULL, 0},
        {"no colon", "TO<u@d>", 0, SMTP_PARSE_BAD_ARGS, NULL, 0},
        {"wrong keyword", "FROM:<u@d>", 0, SMTP_PARSE_BAD_ARGS, NULL, 0},
        {"no domain", "TO:<user>", 0, SMTP_PARSE_BAD_ADDR, NULL, 0},
        {"bare postmaster (RFC 5321 4.5.1)", "TO:<postmaster>", 0, SMTP_PARSE_OK, "postmaster", 0},
        {"bare Postmaster any case", "to:<PostMaster>  ", 0, SMTP_PARSE_OK, "PostMaster", 0},
        {"bare postmaster then junk", "TO:<postmaster>x", 0, SMTP_PARSE_BAD_ARGS, NULL, 0},
        {"bare postmaster with a parameter", "TO:<postmaster> NOTIFY=NEVER", 0,
         SMTP_PARSE_BAD_ARGS, NULL, 0},
        {"other bare local part", "TO:<postmasters>", 0, SMTP_PARSE_BAD_ADDR, NULL, 0},
        {"postmaster with a domain", "TO:<postmaster@d.example>", 0, SMTP_PARSE_OK,
         "postmaster@d.example", 0},
        {"empty domain", "TO:<user@>", 0, SMTP_PARSE_BAD_ADDR, NULL, 0},
        {"empty local", "TO:<@d>", 0, SMTP_PARSE_BAD_ADDR, NULL, 0},
        {"source route", "TO:<@relay.example:u@d>", 0, SMTP_PARSE_BAD_ADDR, NULL, 0},
        {"source route list", "TO:<@a,@b:u@d>", 0, SMTP_PARSE_BAD_ADDR, NULL, 0},
        {"two ats", "TO:<a@b@c>", 0, SMTP_PARSE_BAD_ADDR, NULL, 0},
        {"leading dot", "TO:<.a@d>", 0, SMTP_PARSE_BAD_ADDR, NULL, 0},
        {"double dot", "TO:<a..b@d>", 0, SMTP_PARSE_BAD_ADDR, NULL, 0},
        {"trailing dot local", "TO:<a.@d>", 0, SMTP_PARSE_BAD_ADDR, NULL, 0},
        {"domain trailing dot", "TO:<a@d.>", 0, SMTP_PARSE_BAD_ADDR, NULL, 0},
        {"domain hyphen edge", "TO:<a@-d.example>", 0, SMTP_PARSE_BAD_ADDR, NULL, 0},
        {"domain underscore", "TO:<a@d_x.example>", 0, SMTP_PARSE_BAD_ADDR, NULL, 0},
        {"space in local", "TO:<a b@d>", 0, SMTP_PARSE_BAD_ADDR, NULL, 0},
        {"CR inside (T01)", "TO:<a\r@d>", 0, SMTP_PARSE_BAD_ADDR, NULL, 0},
        {"LF inside (T01)", "TO:<a@d\nRCPT TO:<x@y>>", 0, SMTP_PARSE_BAD_ADDR, NULL, 0},
        {"tab inside", "TO:<a\t@d>", 0, SMTP_PARSE_BAD_ADDR, NULL, 0},
        {"DEL inside", "TO:<a\x7f@d>", 0, SMTP_PARSE_BAD_ADDR, NULL, 0},
        {"quoted CR", "TO:<\"a\r\"@d>", 0, SMTP_PARSE_BAD_ADDR, NULL, 0},
        {"8bit without SMTPUTF8", "TO:<j\xc3\xb6rg@d>", 0, SMTP_PARSE_BAD_ADDR, NULL, 0},
        {"8bit with SMTPUTF8", "TO:<j\xc3\xb6rg@d\xc3\xa9.example>", 1, SMTP_PARSE_OK,
         "j\xc3\xb6rg@d\xc3\xa9.example", 0},
        {"unterminated", "TO:<a@d", 0, SMTP_PARSE_BAD_ADDR, NULL, 0},
        {"junk after", "TO:<a@d>x", 0, SMTP_PARSE_BAD_ARGS, NULL, 0},
        {"rcpt params refused", "TO:<a@d> NOTIFY=NEVER", 0, SMTP_PARSE_BAD_ARGS, NULL, 0},
        {"literal bad char", "TO:<a@[1.2.3.4\\]>", 0, SMTP_PARSE_BAD_ADDR, NULL, 0},
        {"literal empty", "TO:<a@[]>", 0, SMTP_PARSE_BAD_ADDR, NULL, 0},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        struct smtp_path p;
        int rc = smtp_rcpt_parse(t[i].args, strlen(t[i].args), t[i].utf8, &p);
        if (rc != t[i].rc)
            fail_msg("%s: rc %d want %d", t[i].name, rc, t[i].rc);
        if (rc == SMTP_PARSE_OK) {
            if (strcmp(p.addr, t[i].addr) != 0 || p.literal != t[i].literal)
                fail_msg("%s: addr '%s' literal %d", t[i].name, p.addr, p.literal);
            /* only the bare postmaster has no domain: the session supplies the default */
            if ((p.domain[0] == '\0') != (strchr(t[i].addr, '@') == NULL))
                fail_msg("%s: domain '%s'", t[i].name, p.domain);
        }
    }
}

static void rcpt_nul_refused(void **state)
{
    (void)state;
    static const char a[] = "TO:<a\0b@d>";
    struct smtp_path p;
    assert_int_equal(smtp_rcpt_parse(a, sizeof a - 1, 0, &p), SMTP_PARSE_BAD_ADDR);
}

static void path_limits(void **state)
{
    (void)state;
    char buf[600], local[80], dom[300];
    struct smtp_path p;
    /* local part: 64 ok, 65 refused */
    memset(local, 'a', 64);
    local[64] = '\0';
    snprintf(buf, sizeof buf, "TO:<%s@d.example>", local);
    assert_int_equal(smtp_rcpt_parse(buf, strlen(buf), 0, &p), SMTP_PARSE_OK);
    local[64] = 'a';
    local[65] = '\0';
    snprintf(buf, sizeof buf, "TO:<%s@d.example>", local);
    assert_int_equal(smtp_rcpt_parse(buf, strlen(buf), 0, &p), SMTP_PARSE_BAD_ADDR);
    /* domain of 4 labels of 63 = 255 ok; path a@<255> = 257 > 256 refused */
    size_t n = 0;
    for (int l = 0; l < 4; l++) {
        if (l)
            dom[n++] = '.';
        memset(dom + n, 'b', 63);
        n += 63;
    }
    dom[n] = '\0';
    assert_int_equal((int)n, 255);
    snprintf(buf, sizeof buf, "TO:<a@%s>", dom);
    assert_int_equal(smtp_rcpt_parse(buf, strlen(buf), 0, &p), SMTP_PARSE_BAD_ADDR);
    /* path of exactly 256: local 0 -> shorten domain by one label char */
    dom[n - 1] = '\0';
    dom[n - 2] = 'c';
    snprintf(buf, sizeof buf, "TO:<a@%s>", dom); /* 1+1+254 = 256 */
    assert_int_equal(smtp_rcpt_parse(buf, strlen(buf), 0, &p), SMTP_PARSE_OK);
    assert_int_equal((int)strlen(p.addr), 256);
    /* label of 64 refused */
    memset(dom, 'x', 64);
    strcpy(dom + 64, ".example");
    snprintf(buf, sizeof buf, "TO:<a@%s>", dom);
    assert_int_equal(smtp_rcpt_parse(buf, strlen(buf), 0, &p), SMTP_PARSE_BAD_ADDR);
}

static void mail_params(void **state)
{
    (void)state;
    static const struct {
        const char *name;
        const char *args;
        int rc;
        const char *addr;
        int null, has_size;
        uint64_t size;
        enum smtp_body body;
        int utf8;
        const char *auth;
    } t[] = {
        {"plain", "FROM:<a@b.example>", 0, "a@b.example", 0, 0, 0, SMTP_BODY_NONE, 0, ""},
        {"null sender", "FROM:<>", 0, "", 1, 0, 0, SMTP_BODY_NONE, 0, ""},
        {"size", "FROM:<a@b> SIZE=12345", 0, "a@b", 0, 1, 12345, SMTP_BODY_NONE, 0, ""},
        {"all params", "from:<a@b> size=1 body=8bitmime smtputf8 auth=<>", 0, "a@b", 0, 1, 1,
         SMTP_BODY_8BITMIME, 1, "<>"},
        {"7bit", "FROM:<a@b> BODY=7BIT", 0, "a@b", 0, 0, 0, SMTP_BODY_7BIT, 0, ""},
        {"utf8 path with SMTPUTF8", "FROM:<\xc3\xa9@b> SMTPUTF8", 0, "\xc3\xa9@b", 0, 0, 0,
         SMTP_BODY_NONE, 1, ""},
        {"utf8 path without", "FROM:<\xc3\xa9@b>", SMTP_PARSE_BAD_ADDR, NULL, 0, 0, 0, 0, 0, NULL},
        {"space before colon", "FROM :<a@b>", SMTP_PARSE_BAD_ARGS, NULL, 0, 0, 0, 0, 0, NULL},
        {"size not number", "FROM:<a@b> SIZE=12x", SMTP_PARSE_BAD_ARGS, NULL, 0, 0, 0, 0, 0, NULL},
        {"size empty", "FROM:<a@b> SIZE=", SMTP_PARSE_BAD_ARGS, NULL, 0, 0, 0, 0, 0, NULL},
        {"size twice", "FROM:<a@b> SIZE=1 SIZE=2", SMTP_PARSE_BAD_ARGS, NULL, 0, 0, 0, 0, 0, NULL},
        {"size huge", "FROM:<a@b> SIZE=99999999999999999999", SMTP_PARSE_BAD_ARGS, NULL, 0, 0, 0,
         0, 0, NULL},
        {"body bad", "FROM:<a@b> BODY=BINARYMIME", SMTP_PARSE_BAD_ARGS, NULL, 0, 0, 0, 0, 0, NULL},
        {"unknown param", "FROM:<a@b> RET=HDRS", SMTP_PARSE_BAD_ARGS, NULL, 0, 0, 0, 0, 0, NULL},
        {"smtputf8 with value", "FROM:<a@b> SMTPUTF8=1", SMTP_PARSE_BAD_ARGS, NULL, 0, 0, 0, 0, 0,
         NULL},
        {"junk glued", "FROM:<a@b>SIZE=1", SMTP_PARSE_BAD_ARGS, NULL, 0, 0, 0, 0, 0, NULL},
        {"source route", "FROM:<@x:a@b>", SMTP_PARSE_BAD_ADDR, NULL, 0, 0, 0, 0, 0, NULL},
        {"CR smuggle", "FROM:<a@b>\rRCPT TO:<c@d>", SMTP_PARSE_BAD_ADDR, NULL, 0, 0, 0, 0, 0, NULL},
        {"missing path", "FROM:", SMTP_PARSE_BAD_ADDR, NULL, 0, 0, 0, 0, 0, NULL},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        struct smtp_mail m;
        int rc = smtp_mail_parse(t[i].args, strlen(t[i].args), &m);
        if (rc != t[i].rc)
            fail_msg("%s: rc %d want %d", t[i].name, rc, t[i].rc);
        if (rc != SMTP_PARSE_OK)
            continue;
        if (strcmp(m.path.addr, t[i].addr) != 0 || m.path.null != t[i].null ||
            m.has_size != t[i].has_size || m.size != t[i].size || m.body != t[i].body ||
            m.smtputf8 != t[i].utf8 || strcmp(m.auth, t[i].auth) != 0)
            fail_msg("%s: fields differ (addr '%s' size %llu body %d utf8 %d auth '%s')",
                     t[i].name, m.path.addr, (unsigned long long)m.size, (int)m.body,
                     m.smtputf8, m.auth);
    }
}

static void bdat_args(void **state)
{
    (void)state;
    static const struct {
        const char *args;
        int rc;
        uint64_t size;
        int last;
    } t[] = {
        {"0", 0, 0, 0},           {"100", 0, 100, 0},      {"100 LAST", 0, 100, 1},
        {"7 last", 0, 7, 1},      {"7  LAST ", 0, 7, 1},   {"", SMTP_PARSE_BAD_ARGS, 0, 0},
        {"x", SMTP_PARSE_BAD_ARGS, 0, 0},  {"-1", SMTP_PARSE_BAD_ARGS, 0, 0},
        {"10 FIRST", SMTP_PARSE_BAD_ARGS, 0, 0}, {"10 LAST x", SMTP_PARSE_BAD_ARGS, 0, 0},
        {"99999999999999999999", SMTP_PARSE_BAD_ARGS, 0, 0},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        uint64_t size = 42;
        int last = -1;
        int rc = smtp_bdat_parse(t[i].args, strlen(t[i].args), &size, &last);
        if (rc != t[i].rc || (rc == 0 && (size != t[i].size || last != t[i].last)))
            fail_msg("bdat '%s': rc %d size %llu last %d", t[i].args, rc,
                     (unsigned long long)size, last);
    }
}

static void helo_args(void **state)
{
    (void)state;
    char out[256];
    assert_int_equal(smtp_helo_parse("mx.example", 10, out, sizeof out), 0);
    assert_string_equal(out, "mx.example");
    assert_int_equal(smtp_helo_parse("[192.0.2.1] ", 12, out, sizeof out), 0);
    assert_string_equal(out, "[192.0.2.1]");
    assert_int_equal(smtp_helo_parse("", 0, out, sizeof out), SMTP_PARSE_BAD_ARGS);
    assert_int_equal(smtp_helo_parse("a b", 3, out, sizeof out), SMTP_PARSE_BAD_ARGS);
    assert_int_equal(smtp_helo_parse("a\rb", 3, out, sizeof out), SMTP_PARSE_BAD_ARGS);
    char big[300];
    memset(big, 'a', 256);
    assert_int_equal(smtp_helo_parse(big, 256, out, sizeof out), SMTP_PARSE_BAD_ARGS);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(verbs_case_insensitive), cmocka_unit_test(rcpt_paths),
        cmocka_unit_test(rcpt_nul_refused),       cmocka_unit_test(path_limits),
        cmocka_unit_test(mail_params),            cmocka_unit_test(bdat_args),
        cmocka_unit_test(helo_args),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
