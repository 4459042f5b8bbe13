/* dsnmsg: required RFC 3464 fields, status from the diagnostic, CRLF only, no line over 998
 * octets, and remote text that cannot inject header lines. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "node/dsnmsg.h"

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

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(fields)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
