/* dsnmsg: required RFC 3464 fields, status from the diagnostic, CRLF only, no line over 998
 * octets, and remote text that cannot inject header lines. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <stdio.h>

#include "node/delivery/dsnmsg.h"

static void fields(void **state)
{
    (void)state;
    char longdiag[3000];
    memset(longdiag, 'z', sizeof longdiag - 1);
    longdiag[sizeof longdiag - 1] = '\0';
    memcpy(longdiag, "550 5.7.1 ", 10);
    const struct dsnmsg_rcpt r[] = {
        {"fail@example.net", "550 5.1.1 <fail@example.net>: no such user", "mx.example.net[192.0.2.1]"},
        {"late@example.net", "4.4.7 message expired after 5 attempts; last reply: 451 4.3.0 busy", ""},
        {"evil@example.net", "550 5.0.0 bad\r\nX-Injected: yes\r\n\r\nbody", "mx[192.0.2.2]"},
        {"long@example.net", longdiag, "[192.0.2.9]"},
    };
    const char hdr[] = "From: <a@b.example>\r\nSubject: hello\r\nMessage-ID: <m1@b.example>\r\n";
    size_t len;
    char *m = dsnmsg_build("relay.example.com", "0123ABCD", "a@b.example", 1795000000,
                           1795000100, r, 4, hdr, sizeof hdr - 1, &len);
    assert_non_null(m);
    assert_int_equal(strlen(m), len);
    const char *want[] = {
        "From: Mail Delivery System <MAILER-DAEMON@relay.example.com>\r\n",
        "To: <a@b.example>\r\n", "Auto-Submitted: auto-replied\r\n",
        "Content-Type: multipart/report; report-type=delivery-status;",
        "Content-Type: message/delivery-status\r\n",
        "Reporting-MTA: dns; relay.example.com\r\n",
        "Final-Recipient: rfc822; fail@example.net\r\nAction: failed\r\nStatus: 5.1.1\r\n"
        "Remote-MTA: dns; mx.example.net\r\n"
        "Diagnostic-Code: smtp; 550 5.1.1 <fail@example.net>: no such user\r\n",
        "Final-Recipient: rfc822; late@example.net\r\nAction: failed\r\nStatus: 4.4.7\r\n",
        "Diagnostic-Code: x-local; 4.4.7 message expired",
        "Content-Type: text/rfc822-headers\r\n\r\nFrom: <a@b.example>\r\nSubject: hello\r\n",
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        if (!strstr(m, want[i]))
            fail_msg("missing: %s", want[i]);
    assert_null(strstr(m, "\r\nX-Injected"));
    assert_non_null(strstr(m, "Remote-MTA: dns; 192.0.2.9\r\n"));
    assert_null(strstr(m, "Remote-MTA: dns; \r\n"));
    /* CRLF only, no line over 998 octets */
    size_t line = 0;
    for (size_t i = 0; i < len; i++) {
        if (m[i] == '\n')
            assert_true(i > 0 && m[i - 1] == '\r');
        if (m[i] == '\r')
            assert_true(i + 1 < len && m[i + 1] == '\n');
        line = m[i] == '\n' ? 0 : line + 1;
        assert_true(line <= 998);
    }
    free(m);
}

/* RFC 2046 §5.1.1: at most 70 boundary characters, even with a long host name; every part
 * delimiter and the close delimiter present. */
static void boundary_bounded(void **state)
{
    (void)state;
    char fqdn[201];
    memset(fqdn, 'h', sizeof fqdn - 1);
    fqdn[sizeof fqdn - 1] = '\0';
    const struct dsnmsg_rcpt r[] = {{"x@example.net", "550 5.1.1 no", "mx.example.net[192.0.2.1]"}};
    const char hdr[] = "Subject: s\r\n";
    size_t len;
    char *m = dsnmsg_build(fqdn, "0123456789ABCDEF01234567", "a@b.example", 1795000000,
                           1795000100, r, 1, hdr, sizeof hdr - 1, &len);
    const char *p = strstr(m, "boundary=\"");
    assert_non_null(p);
    p += strlen("boundary=\"");
    size_t bl = strcspn(p, "\"");
    assert_true(bl >= 1 && bl <= 70);
    char delim[80], close[84];
    snprintf(delim, sizeof delim, "\r\n--%.*s\r\n", (int)bl, p);
    snprintf(close, sizeof close, "\r\n--%.*s--\r\n", (int)bl, p);
    int parts = 0;
    for (const char *q = m; (q = strstr(q, delim)); q++)
        parts++;
    assert_int_equal(parts, 3);
    assert_non_null(strstr(m, close));
    free(m);
}

/* A standard MIME parser (Python's email package) sees the report RFC 3464 describes. */
static void python_email_parses_it(void **state)
{
    (void)state;
    const struct dsnmsg_rcpt r[] = {
        {"fail@example.net", "550 5.1.1 <fail@example.net>: no such user", "mx.example.net[192.0.2.1]"},
        {"late@example.net", "4.4.7 message expired", ""},
    };
    const char hdr[] = "From: <a@b.example>\r\nSubject: hello\r\n";
    size_t len;
    char *m = dsnmsg_build("relay.example.com", "0123ABCD", "a@b.example", 1795000000,
                           1795000100, r, 2, hdr, sizeof hdr - 1, &len);
    char path[] = "/tmp/test_dsnmsg.XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, m, len), (ssize_t)len);
    close(fd);
    free(m);
    static const char script[] =
        "import email, email.policy, sys\n"
        "m = email.message_from_binary_file(open(sys.argv[1], 'rb'), policy=email.policy.compat32)\n"
        "assert m.get_content_type() == 'multipart/report', m.get_content_type()\n"
        "assert m.get_param('report-type') == 'delivery-status'\n"
        "assert m['Auto-Submitted'] == 'auto-replied' and m['Message-ID'] and m['Date']\n"
        "assert 'MAILER-DAEMON@relay.example.com' in m['From'] and m['To'] == '<a@b.example>'\n"
        "p = m.get_payload()\n"
        "assert [x.get_content_type() for x in p] == "
        "['text/plain', 'message/delivery-status', 'text/rfc822-headers'], p\n"
        "blocks = p[1].get_payload()\n"
        "assert len(blocks) == 3, len(blocks)\n"
        "assert blocks[0]['Reporting-MTA'] == 'dns; relay.example.com' and blocks[0]['Arrival-Date']\n"
        "r1, r2 = blocks[1], blocks[2]\n"
        "assert r1['Final-Recipient'] == 'rfc822; fail@example.net' and r1['Action'] == 'failed'\n"
        "assert r1['Status'] == '5.1.1' and r1['Remote-MTA'] == 'dns; mx.example.net'\n"
        "assert r1['Diagnostic-Code'].startswith('smtp; 550 5.1.1') and r1['Last-Attempt-Date']\n"
        "assert r2['Final-Recipient'] == 'rfc822; late@example.net' and r2['Status'] == '4.4.7'\n"
        "assert 'Subject: hello' in p[2].get_payload()\n";
    char cmd[512];
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 -c \"$DSN_CHECK\" %s", path);
    setenv("DSN_CHECK", script, 1);
    int rc = system(cmd);
    unlink(path);
    assert_int_equal(rc, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(fields), cmocka_unit_test(boundary_bounded),
                                       cmocka_unit_test(python_email_parses_it)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
