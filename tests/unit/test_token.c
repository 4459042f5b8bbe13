/* Unit tests for token: the three token shapes, DN matching, copies and formatting. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "directory/rights.h"
#include "directory/secdesc.h"
#include "directory/token.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

static void anonymous_holds_anonymous_logon_only(void **state)
{
    (void)state;
    struct token t;
    token_init_anonymous(&t);
    for (int i = 0; i < WK_COUNT; i++)
        assert_int_equal(token_holds(&t, i, NULL), i == WK_ANONYMOUS);
    assert_false(t.authenticated);
    assert_false(token_holds(&t, -1, "uid=alice,dc=x"));
    assert_string_equal(t.name, "anonymous");
    token_clear(&t);
}

static void externally_secured_holds_that_sid_only(void **state)
{
    (void)state;
    struct token t;
    token_init_externally_secured(&t);
    for (int i = 0; i < WK_COUNT; i++)
        assert_int_equal(token_holds(&t, i, NULL), i == WK_EXTERNALLY_SECURED);
    assert_false(t.authenticated);
    token_clear(&t);
}

static void user_token_holds_user_groups_and_wellknowns(void **state)
{
    (void)state;
    struct token t;
    const char *groups[] = {"CN=Staff, OU=Groups,DC=Example,DC=com",
                            "cn=staff,ou=groups,dc=example,dc=com", "cn=Apps,dc=example,dc=com"};
    assert_int_equal(token_init_user(&t, "alice", "uid=Alice, ou=People,dc=Example,dc=com",
                                     groups, N(groups)), 0);
    assert_true(t.authenticated);
    assert_string_equal(t.user_dn, "uid=alice,ou=people,dc=example,dc=com");
    assert_int_equal(t.ngroups, 2);   /* duplicate collapsed */
    static const struct { const char *name; int wk; const char *dn; bool want; } cases[] = {
        {"authenticated users", WK_AUTHENTICATED_USERS, NULL, true},
        {"everyone", WK_EVERYONE, NULL, true},
        {"not anonymous", WK_ANONYMOUS, NULL, false},
        {"not externally secured", WK_EXTERNALLY_SECURED, NULL, false},
        {"own DN", -1, "uid=alice,ou=people,dc=example,dc=com", true},
        {"group DN", -1, "cn=staff,ou=groups,dc=example,dc=com", true},
        {"second group", -1, "cn=apps,dc=example,dc=com", true},
        {"other DN", -1, "uid=bob,ou=people,dc=example,dc=com", false},
        {"parent DN is not membership", -1, "ou=people,dc=example,dc=com", false},
        {"NULL dn", -1, NULL, false},
        {"out of range wk", WK_COUNT, NULL, false},
    };
    for (size_t i = 0; i < N(cases); i++)
        if (token_holds(&t, cases[i].wk, cases[i].dn) != cases[i].want)
            fail_msg("case '%s'", cases[i].name);
    char buf[512];
    size_t n = token_format(&t, buf, sizeof buf);
    assert_string_equal(buf, "NT AUTHORITY\\Authenticated Users, Everyone, "
                             "uid=alice,ou=people,dc=example,dc=com, "
                             "cn=staff,ou=groups,dc=example,dc=com, cn=apps,dc=example,dc=com");
    assert_int_equal(n, strlen(buf));
    char small[5];
    assert_int_equal(token_format(&t, small, sizeof small), n);
    assert_string_equal(small, "NT A");

    struct token c;
    token_copy(&c, &t);
    token_clear(&t);
    assert_null(t.user_dn);
    assert_int_equal(t.ngroups, 0);
    assert_true(token_holds(&c, -1, "cn=apps,dc=example,dc=com"));
    assert_string_equal(c.name, "alice");
    token_clear(&c);
}

static void user_token_refuses_bad_user_dn(void **state)
{
    (void)state;
    struct token t;
    assert_int_equal(token_init_user(&t, "x", "alice", NULL, 0), -1);
    assert_null(t.user_dn);
    token_clear(&t);   /* safe after failure */
    assert_int_equal(token_init_user(&t, "x", "uid=x", NULL, 0), 0);
    assert_int_equal(t.ngroups, 0);
    token_clear(&t);
}

/* A group DN that does not parse fails the whole token: skipping it could drop the group
 * a deny ACE names (directory/ldap/ldapuser.c fails the AUTH with 454 4.7.0). */
static void user_token_refuses_bad_group_dn(void **state)
{
    (void)state;
    static const struct { const char *name, *dn; } c[] = {
        {"not a dn", "not a dn"},
        {"bad escape", "cn=a\\qb,dc=example,dc=com"},
        {"unescaped quote", "cn=a\"b,dc=example,dc=com"},
        {"empty RDN", "cn=a,,dc=example,dc=com"},
        {"NULL", NULL},
    };
    for (size_t i = 0; i < N(c); i++) {
        struct token t;
        const char *groups[] = {"cn=Staff,ou=Groups,dc=example,dc=com", c[i].dn};
        if (token_init_user(&t, "alice", "uid=alice,dc=example,dc=com", groups, 2) != -1)
            fail_msg("%s: token made without the group", c[i].name);
        assert_int_equal(t.ngroups, 0);
        assert_false(t.authenticated);
        token_clear(&t);
    }
}

/* DNs as long as the directory holds them (a cn may have 32768 octets by core.schema,
 * OpenLDAP takes DNs up to 8 KiB): normalised and kept, never cut or dropped. */
static void user_token_long_dns(void **state)
{
    (void)state;
    static const size_t lens[] = {4095, 4096, 5000, 32768};
    for (size_t i = 0; i < N(lens); i++) {
        size_t n = lens[i];
        char *v = malloc(n + 1), *dn = malloc(n + 64), *want = malloc(n + 64);
        memset(v, 'X', n);
        v[n] = '\0';
        snprintf(dn, n + 64, "CN=%s,ou=Groups,dc=example,dc=com", v);
        memset(v, 'x', n);
        snprintf(want, n + 64, "cn=%s,ou=groups,dc=example,dc=com", v);
        const char *groups[] = {dn};
        struct token t;
        if (token_init_user(&t, "alice", dn, groups, 1) != 0)
            fail_msg("a %zu-octet cn was refused", n);
        assert_int_equal(t.ngroups, 1);
        assert_string_equal(t.group_dns[0], want);
        assert_string_equal(t.user_dn, want);
        token_clear(&t);
        free(v), free(dn), free(want);
    }
}

/* An AD user: its SID, its tokenGroups, Authenticated Users and Everyone. */
static void sid_token_holds_user_groups_and_wellknowns(void **state)
{
    (void)state;
    const char *groups[] = {"S-1-5-21-1-2-3-1108", "s-1-5-21-1-2-3-1107", "S-1-5-21-1-2-3-1108",
                            "S-1-5-32-545", "S-1-5-11"};
    struct token t, c;
    assert_int_equal(token_init_sids(&t, "bob", "S-1-5-21-1-2-3-1104", groups, N(groups)), 0);
    assert_true(t.authenticated);
    assert_string_equal(t.name, "bob");
    assert_int_equal(t.nsids, 4);                      /* duplicate and well-known folded */
    assert_true(token_holds(&t, WK_AUTHENTICATED_USERS, NULL));
    assert_true(token_holds(&t, WK_EVERYONE, NULL));
    assert_false(token_holds(&t, WK_ANONYMOUS, NULL));
    assert_false(token_holds(&t, WK_EXCHANGE_SERVERS, NULL));
    assert_true(token_holds(&t, -1, "S-1-5-21-1-2-3-1104"));
    assert_true(token_holds(&t, -1, "S-1-5-21-1-2-3-1107"));   /* canonicalised */
    assert_true(token_holds(&t, -1, "S-1-5-32-545"));
    assert_false(token_holds(&t, -1, "S-1-5-21-1-2-3-1105"));
    assert_false(token_holds(&t, -1, "s-1-5-21-1-2-3-1104"));  /* keys are canonical */
    assert_false(token_holds(&t, -1, "uid=bob,dc=x"));
    char buf[512];
    token_format(&t, buf, sizeof buf);
    assert_string_equal(buf, "NT AUTHORITY\\Authenticated Users, Everyone, S-1-5-21-1-2-3-1104, "
                        "S-1-5-21-1-2-3-1108, S-1-5-21-1-2-3-1107, S-1-5-32-545");
    token_copy(&c, &t);
    token_clear(&t);
    assert_int_equal(t.nsids, 0);
    assert_null(t.sids);
    assert_true(token_holds(&c, -1, "S-1-5-21-1-2-3-1108"));
    /* The per-forest groups by their SIDs (the loader's map, as secdesc_aces uses it). */
    struct sd_sidmap map[] = {{"S-1-5-21-1-2-3-1107", WK_LEGACY_INTEROP},
                              {"S-1-5-21-1-2-3-9999", WK_EXCHANGE_SERVERS}};
    assert_int_equal(token_map_sids(&c, map, N(map)), 0);
    assert_true(token_holds(&c, WK_LEGACY_INTEROP, NULL));
    assert_false(token_holds(&c, WK_EXCHANGE_SERVERS, NULL));
    struct sd_sidmap bad[] = {{"S-1-x", WK_EXCHANGE_SERVERS}};
    assert_int_equal(token_map_sids(&c, bad, 1), -1);
    token_clear(&c);
}

static void sid_token_refuses_malformed_sids(void **state)
{
    (void)state;
    struct token t;
    const char *ok[] = {"S-1-5-21-1-2-3-513"};
    const char *bad[] = {"S-1-5-21-1-2-3-513", "S-1-5-21-x"};
    assert_int_equal(token_init_sids(&t, "bob", "cn=bob,dc=x", ok, 1), -1);
    assert_int_equal(t.wk, 0);
    assert_null(t.sids);
    assert_null(t.name);
    assert_int_equal(token_init_sids(&t, "bob", "S-1-5-21-1-2-3-1104", bad, 2), -1);
    assert_int_equal(t.wk, 0);
    assert_int_equal(t.nsids, 0);
    assert_null(t.sids);
    assert_false(t.authenticated);
    assert_int_equal(token_init_sids(&t, "bob", NULL, NULL, 0), -1);
    assert_int_equal(token_init_sids(&t, NULL, "S-1-5-21-1-2-3-1104", NULL, 0), 0);
    assert_string_equal(t.name, "S-1-5-21-1-2-3-1104");
    token_clear(&t);
}

static void anonymous_format(void **state)
{
    (void)state;
    struct token t;
    char buf[128];
    token_init_anonymous(&t);
    token_format(&t, buf, sizeof buf);
    assert_string_equal(buf, "NT AUTHORITY\\ANONYMOUS LOGON");
    token_clear(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(anonymous_holds_anonymous_logon_only),
        cmocka_unit_test(externally_secured_holds_that_sid_only),
        cmocka_unit_test(user_token_holds_user_groups_and_wellknowns),
        cmocka_unit_test(user_token_refuses_bad_user_dn),
        cmocka_unit_test(user_token_refuses_bad_group_dn),
        cmocka_unit_test(user_token_long_dns),
        cmocka_unit_test(sid_token_holds_user_groups_and_wellknowns),
        cmocka_unit_test(sid_token_refuses_malformed_sids),
        cmocka_unit_test(anonymous_format),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
