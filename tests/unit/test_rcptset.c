/* Unit tests for rcptset: the recipient set a snapshot holds for recipient lookup in
 * Authoritative domains (case, trailing dot, refused addresses, duplicates, growth). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "directory/rcptset.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

static void lookup_cases(void **state)
{
    (void)state;
    struct rcptset *s = rcptset_new();
    static const char *const add[] = {"Alice@Example.COM", "a.smith@example.com",
                                      "sales@example.com.", "alice@example.com"};
    for (size_t i = 0; i < N(add); i++)
        assert_int_equal(rcptset_add(s, add[i], strlen(add[i])), 0);
    rcptset_freeze(s);
    assert_int_equal(rcptset_count(s), 3);       /* alice twice, in two cases */
    static const struct { const char *addr; bool want; } t[] = {
        {"alice@example.com", true},   {"ALICE@EXAMPLE.COM", true},
        {"alice@example.com.", true},  {"A.Smith@example.com", true},
        {"sales@EXAMPLE.com", true},   {"bob@example.com", false},
        {"alice@example.org", false},  {"alice", false},
        {"", false},                   {"alice@example.co", false},
        {"lice@example.com", false},   {"alice@example.comx", false},
    };
    for (size_t i = 0; i < N(t); i++)
        if (rcptset_has(s, t[i].addr) != t[i].want)
            fail_msg("%s: want %d", t[i].addr, t[i].want);
    assert_false(rcptset_has(s, NULL));
    assert_int_equal(rcptset_add(s, "late@example.com", 16), -1);   /* frozen */
    assert_false(rcptset_has(s, "late@example.com"));
    assert_true(rcptset_bytes(s) > 0);
    rcptset_free(&s);
    assert_null(s);
    rcptset_free(&s);
}

static void refused_addresses(void **state)
{
    (void)state;
    struct rcptset *s = rcptset_new();
    char big[400];
    memset(big, 'a', sizeof big);
    memcpy(big + 300, "@example.com", 12);
    const struct { const char *v; size_t len; } t[] = {
        {"", 0}, {"noat", 4}, {"@example.com", 12}, {"alice@", 6},
        {"a\nb@example.com", 15}, {"a\0b@example.com", 15}, {".", 1},
        {big, 321},                       /* one over RCPTSET_ADDR_MAX */
    };
    for (size_t i = 0; i < N(t); i++)
        if (rcptset_add(s, t[i].v, t[i].len) != -1)
            fail_msg("case %zu added", i);
    assert_int_equal(rcptset_add(s, big, 312), 0);   /* a...a@example.com, 312 octets */
    rcptset_freeze(s);
    assert_int_equal(rcptset_count(s), 1);
    assert_false(rcptset_has(s, "a\nb@example.com"));
    rcptset_free(&s);
}

/* Before freeze nothing answers; an empty set answers no; a NULL set answers no. */
static void empty_and_unfrozen(void **state)
{
    (void)state;
    struct rcptset *s = rcptset_new();
    assert_int_equal(rcptset_add(s, "x@y.z", 5), 0);
    assert_false(rcptset_has(s, "x@y.z"));
    rcptset_freeze(s);
    assert_true(rcptset_has(s, "X@Y.Z"));
    rcptset_free(&s);
    s = rcptset_new();
    rcptset_freeze(s);
    assert_int_equal(rcptset_count(s), 0);
    assert_false(rcptset_has(s, "x@y.z"));
    rcptset_free(&s);
    assert_false(rcptset_has(NULL, "x@y.z"));
    assert_int_equal(rcptset_count(NULL), 0);
}

/* 100,000 addresses: every one found, none of another 100,000 found, and the memory stays
 * near the bytes of the addresses (table at 4 bytes a slot, load factor at most 1/2). */
static void many(void **state)
{
    (void)state;
    struct rcptset *s = rcptset_new();
    char a[64];
    size_t text = 0;
    for (int i = 0; i < 100000; i++) {
        int n = snprintf(a, sizeof a, "User%d@Example.com", i);
        assert_int_equal(rcptset_add(s, a, (size_t)n), 0);
        text += (size_t)n + 1;
    }
    rcptset_freeze(s);
    assert_int_equal(rcptset_count(s), 100000);
    for (int i = 0; i < 100000; i++) {
        snprintf(a, sizeof a, "user%d@example.com", i);
        if (!rcptset_has(s, a))
            fail_msg("%s missing", a);
        snprintf(a, sizeof a, "user%d@example.net", i);
        if (rcptset_has(s, a))
            fail_msg("%s found", a);
    }
    assert_true(rcptset_bytes(s) <= text + 262144 * 4 + 256);
    rcptset_free(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(lookup_cases),
        cmocka_unit_test(refused_addresses),
        cmocka_unit_test(empty_and_unfrozen),
        cmocka_unit_test(many),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
