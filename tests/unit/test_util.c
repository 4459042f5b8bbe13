/* Unit tests for util: bounded copies, error filling, base64. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>
#include "directory/base/util.h"

static void strlcpy_truncates(void **state)
{
    (void)state;
    char buf[4];
    assert_int_equal(rn_strlcpy(buf, "abcdef", sizeof buf), 6);
    assert_string_equal(buf, "abc");
}

static void err_fills_and_returns_minus_one(void **state)
{
    (void)state;
    char err[8];
    assert_int_equal(rn_err(err, sizeof err, "%s", "a long message"), -1);
    assert_string_equal(err, "a long ");
}

/* RFC 4648 section 10 vectors, a NUL-carrying AUTH PLAIN payload, and the size check. */
static void base64_vectors(void **state)
{
    (void)state;
    static const struct { const char *in, *out; } t[] = {
        {"", ""}, {"f", "Zg=="}, {"fo", "Zm8="}, {"foo", "Zm9v"}, {"foob", "Zm9vYg=="},
        {"fooba", "Zm9vYmE="}, {"foobar", "Zm9vYmFy"},
    };
    char out[32];
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        assert_int_equal(rn_base64_encode(t[i].in, strlen(t[i].in), out, sizeof out),
                         strlen(t[i].out));
        assert_string_equal(out, t[i].out);
    }
    assert_int_equal(rn_base64_encode("\0relay\0s3cret", 13, out, sizeof out), 20);
    assert_string_equal(out, "AHJlbGF5AHMzY3JldA==");
    assert_int_equal(rn_base64_encode("foobar", 6, out, 8), 0);   /* needs 9 */
    assert_int_equal(rn_base64_encode("foobar", 6, out, 9), 8);
    assert_int_equal(rn_base64_encode("\xff\xfe\xfd", 3, out, sizeof out), 4);
    assert_string_equal(out, "//79");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(strlcpy_truncates),
        cmocka_unit_test(err_fills_and_returns_minus_one),
        cmocka_unit_test(base64_vectors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
