/* Unit tests for ldap_filter_escape (RFC 4515 §3): specials, NUL inside the value, non-ASCII,
 * exact buffer sizes and a 1 KiB value. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>
#include "directory/ldap/ldapdir.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

static const struct { const char *name; const char *in; size_t inlen; const char *want; } cases[] = {
    {"plain", "alice", 5, "alice"},
    {"empty", "", 0, ""},
    {"star", "*", 1, "\\2a"},
    {"filter injection", "x)(uid=*", 8, "x\\29\\28uid=\\2a"},
    {"backslash", "a\\b", 3, "a\\5cb"},
    {"embedded NUL counted by inlen", "ab\0*cd", 6, "ab\\00\\2acd"},
    {"utf-8 bytes", "J\xc3\xb6rg", 5, "J\\c3\\b6rg"},
    {"byte 0xff", "\xff", 1, "\\ff"},
    {"other punctuation kept", "a=b&c|d!e~f", 11, "a=b&c|d!e~f"},
};

static void escape_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < N(cases); i++) {
        char out[128];
        int n = ldap_filter_escape(cases[i].in, cases[i].inlen, out, sizeof out);
        if (n != (int)strlen(cases[i].want) || strcmp(out, cases[i].want) != 0)
            fail_msg("case '%s': rc %d out '%s'", cases[i].name, n, n >= 0 ? out : "");
    }
}

static void escape_needs_room_for_everything_and_the_nul(void **state)
{
    (void)state;
    char out[16];
    assert_int_equal(ldap_filter_escape("*", 1, out, 4), 3);   /* exactly fits */
    assert_string_equal(out, "\\2a");
    assert_int_equal(ldap_filter_escape("*", 1, out, 3), -1);
    assert_int_equal(ldap_filter_escape("ab", 2, out, 2), -1);
    assert_int_equal(ldap_filter_escape("ab", 2, out, 3), 2);
    assert_int_equal(ldap_filter_escape("", 0, out, 0), -1);
    assert_int_equal(ldap_filter_escape("", 0, out, 1), 0);
    assert_string_equal(out, "");
}

static void escape_one_kib(void **state)
{
    (void)state;
    char in[1024], out[3 * 1024 + 1];
    for (size_t i = 0; i < sizeof in; i++)
        in[i] = (i % 2) ? '(' : 'a';
    int n = ldap_filter_escape(in, sizeof in, out, sizeof out);
    assert_int_equal(n, 512 + 512 * 3);
    assert_memory_equal(out, "a\\28a\\28", 8);
    for (size_t i = 0; i < sizeof in; i++)
        in[i] = '*';
    assert_int_equal(ldap_filter_escape(in, sizeof in, out, sizeof out), 3 * 1024);
    assert_int_equal(ldap_filter_escape(in, sizeof in, out, sizeof out - 1), -1);
    assert_string_equal(out, "");   /* no truncated value is left to splice into a filter */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(escape_table),
        cmocka_unit_test(escape_needs_room_for_everything_and_the_nul),
        cmocka_unit_test(escape_one_kib),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
