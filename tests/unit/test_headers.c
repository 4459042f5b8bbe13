/* Unit tests for headers: Received: count, header firewall per right (folded lines go with
 * their field), header sender extraction (Sender: over From:, display names, comments). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>
#include "node/smtp/headers.h"

static const char block[] =
    "Received: from a by b;\r\n\tSat, 1 Jan 2000 00:00:00 +0000\r\n"
    "Subject: hi\r\n"
    "Resent-From: x@y\r\n"
    "X-Relaynode-Organization-AuthAs: Internal\r\n"
    "X-MS-Exchange-Organization-SCL: -1\r\n"
    "X-Relaynode-Forest-X: 1\r\n"
    "X-MS-Exchange-Forest-Y: 2\r\n"
    "received: second\r\n"
    "X-Received-Not: kept\r\n"
    "From: A <a@example.com>\r\n";

static void received_counted(void **state)
{
    (void)state;
    assert_int_equal(headers_count_received(block, sizeof block - 1), 2);
}

static void firewall_by_rights(void **state)
{
    (void)state;
    char out[sizeof block];
    struct headers_accept none = {0, 0, 0};
    size_t n = headers_firewall(block, sizeof block - 1, &none, out);
    out[n] = '\0';
    assert_string_equal(out, "Subject: hi\r\nX-Received-Not: kept\r\nFrom: A <a@example.com>\r\n");
    struct headers_accept all = {1, 1, 1};
    n = headers_firewall(block, sizeof block - 1, &all, out);
    assert_int_equal(n, sizeof block - 1);
    struct headers_accept org = {0, 1, 0};
    n = headers_firewall(block, sizeof block - 1, &org, out);
    out[n] = '\0';
    assert_non_null(strstr(out, "X-Relaynode-Organization-AuthAs"));
    assert_non_null(strstr(out, "X-MS-Exchange-Organization-SCL"));
    assert_null(strstr(out, "Forest"));
    assert_null(strstr(out, "Received:"));
    assert_null(strstr(out, "\tSat")); /* continuation went with its field */
}

static void sender_extraction(void **state)
{
    (void)state;
    static const struct {
        const char *hdr;
        int rc;
        const char *addr;
    } t[] = {
        {"From: A <a@example.com>\r\n", 0, "a@example.com"},
        {"From: a@example.com\r\n", 0, "a@example.com"},
        {"From: a@example.com (Comment)\r\n", 0, "a@example.com"},
        {"From: \"Last, First\" <f@x.example>\r\n", 0, "f@x.example"},
        {"From: A <a@x>\r\nSender: s@y\r\n", 0, "s@y"},
        {"From:\r\n <folded@x>\r\n", 0, "folded@x"},
        {"Subject: none\r\n", -1, NULL},
        {"From: no address\r\n", -1, NULL},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        char addr[300];
        int rc = headers_sender(t[i].hdr, strlen(t[i].hdr), addr, sizeof addr);
        if (rc != t[i].rc || (rc == 0 && strcmp(addr, t[i].addr) != 0))
            fail_msg("case %zu: rc %d addr '%s'", i, rc, rc == 0 ? addr : "");
    }
}

static void stamp_exact(void **state)
{
    (void)state;
    char out[1024];
    struct headers_stamp st = {"client.example", "192.0.2.7", "relay.example", "192.0.2.1",
                               "ESMTPS", "0123456789AB", "Internal", "10", 1};
    int n = headers_stamp_format(&st, 946684800, out, sizeof out);
    assert_true(n > 0);
    assert_string_equal(out,
        "Received: from client.example ([192.0.2.7]) by relay.example ([192.0.2.1]) with ESMTPS "
        "id 0123456789AB; Sat, 1 Jan 2000 00:00:00 +0000\r\n"
        "X-Relaynode-Organization-AuthAs: Internal\r\n"
        "X-Relaynode-Organization-AuthSource: relay.example\r\n"
        "X-Relaynode-Organization-AuthMechanism: 10\r\n"
        "X-Relaynode-Organization-AntispamBypass: true\r\n");
    st.mechanism = NULL;
    st.auth_as = "Anonymous";
    st.antispam_bypass = 0;
    n = headers_stamp_format(&st, 946684800, out, sizeof out);
    assert_null(strstr(out, "AuthMechanism"));
    assert_non_null(strstr(out, "AntispamBypass: false\r\n"));
    assert_int_equal(headers_stamp_format(&st, 946684800, out, 40), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(received_counted),
        cmocka_unit_test(firewall_by_rights),
        cmocka_unit_test(sender_extraction),
        cmocka_unit_test(stamp_exact),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
