/* Unit tests for util: bounded copies and error filling. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>
#include "directory/util.h"

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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(strlcpy_truncates),
        cmocka_unit_test(err_fills_and_returns_minus_one),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
