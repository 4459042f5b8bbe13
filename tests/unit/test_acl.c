/* Unit tests for acl: evaluation (deny wins, first granting/denying ACE per right), group
 * expansion and stripping, and PermissionGroups derivation with Custom (docs/permission-model.md
 * §1.2, §1.4, §1.5; the seed article's Option 1 and Option 2). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>
#include "directory/acl.h"
#include "directory/base/util.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))
#define MAXACES 8

/* Build an ACE list from relayAce strings (NULL-terminated), optionally after expanding groups. */
static size_t build(unsigned groups, const char *const *values, struct ace **aces)
{
    size_t n = 0;
    *aces = NULL;
    acl_expand_groups(groups, aces, &n);
    for (size_t i = 0; values && values[i]; i++) {
        char err[RN_ERRLEN];
        *aces = xrealloc(*aces, (n + 1) * sizeof **aces);
        if (ace_parse(values[i], &(*aces)[n], err, sizeof err) != 0)
            fail_msg("bad fixture '%s': %s", values[i], err);
        n++;
    }
    return n;
}

static void free_aces(struct ace *aces, size_t n)
{
    for (size_t i = 0; i < n; i++)
        ace_clear(&aces[i]);
    free(aces);
}

static const struct {
    const char *name;
    unsigned groups;
    const char *values[MAXACES];
    unsigned want;
} derive_cases[] = {
    {"empty", 0, {NULL}, GROUP_NONE},
    {"article option 1: ExchangeServers", GROUP_EXCHANGE_SERVERS, {NULL}, GROUP_EXCHANGE_SERVERS},
    {"article option 2: AnonymousUsers + Accept-Any-Recipient", GROUP_ANONYMOUS,
     {"allow; NT AUTHORITY\\ANONYMOUS LOGON; ms-Exch-SMTP-Accept-Any-Recipient", NULL},
     GROUP_ANONYMOUS | GROUP_CUSTOM},
    {"anonymous set written by hand", 0,
     {"allow; ANONYMOUS LOGON; ms-Exch-SMTP-Submit, ms-Exch-SMTP-Accept-Any-Sender, "
      "ms-Exch-SMTP-Accept-Authoritative-Domain-Sender, ms-Exch-Accept-Headers-Routing", NULL},
     GROUP_ANONYMOUS},
    {"anonymous set split over ACEs", 0,
     {"allow; ANONYMOUS LOGON; ms-Exch-SMTP-Submit, ms-Exch-SMTP-Accept-Any-Sender",
      "allow; S-1-5-7; ms-Exch-SMTP-Accept-Authoritative-Domain-Sender, ms-Exch-Accept-Headers-Routing",
      NULL}, GROUP_ANONYMOUS},
    {"masked rights do not make Custom", GROUP_ANONYMOUS,
     {"allow; ANONYMOUS LOGON; Send-As, ms-Exch-SMTP-Submit-For-MLS", NULL}, GROUP_ANONYMOUS},
    {"anonymous subset: not present, Custom", 0,
     {"allow; ANONYMOUS LOGON; ms-Exch-SMTP-Submit", NULL}, GROUP_CUSTOM},
    {"deny removes a default right", GROUP_ANONYMOUS,
     {"deny; ANONYMOUS LOGON; ms-Exch-SMTP-Submit", NULL}, GROUP_CUSTOM},
    {"ExchangeServers missing one principal", 0,
     {"allow; Hub Transport Servers; ms-Exch-SMTP-Submit, ms-Exch-SMTP-Accept-Any-Recipient", NULL},
     GROUP_CUSTOM},
    {"externally secured alone with its set", 0,
     {"allow; Externally Secured Servers; ms-Exch-SMTP-Submit, ms-Exch-SMTP-Accept-Any-Recipient, "
      "ms-Exch-SMTP-Accept-Authentication-Flag, ms-Exch-SMTP-Accept-Any-Sender, "
      "ms-Exch-SMTP-Accept-Authoritative-Domain-Sender, ms-Exch-Bypass-Anti-Spam, "
      "ms-Exch-Bypass-Message-Size-Limit, ms-Exch-SMTP-Accept-Exch50, "
      "ms-Exch-Accept-Headers-Routing", NULL}, GROUP_NONE},
    {"legacy without its deny is still present", 0,
     {"allow; ExchangeLegacyInterop; ms-Exch-SMTP-Submit, ms-Exch-SMTP-Accept-Any-Recipient, "
      "ms-Exch-SMTP-Accept-Authentication-Flag, ms-Exch-SMTP-Accept-Any-Sender, "
      "ms-Exch-SMTP-Accept-Authoritative-Domain-Sender, ms-Exch-Bypass-Anti-Spam, "
      "ms-Exch-Bypass-Message-Size-Limit, ms-Exch-SMTP-Accept-Exch50, "
      "ms-Exch-Accept-Headers-Routing", NULL}, GROUP_LEGACY_SERVERS},
    {"legacy deny alone shows nothing", 0,
     {"deny; ExchangeLegacyInterop; ms-Exch-Accept-Headers-Forest", NULL}, GROUP_NONE},
    {"DN trustee with a predefined set", GROUP_PARTNERS,
     {"allow; uid=app,dc=x; ms-Exch-SMTP-Submit, ms-Exch-SMTP-Accept-Any-Recipient, "
      "ms-Exch-Bypass-Anti-Spam, ms-Exch-Accept-Headers-Routing", NULL}, GROUP_PARTNERS},
    {"DN trustee with a custom set", GROUP_PARTNERS,
     {"allow; uid=app,dc=x; ms-Exch-SMTP-Submit", NULL}, GROUP_PARTNERS | GROUP_CUSTOM},
    {"same DN spelled twice adds up", 0,
     {"allow; uid=App,dc=X; ms-Exch-SMTP-Submit, ms-Exch-Accept-Headers-Routing",
      "allow; uid=app, dc=x; ms-Exch-SMTP-Accept-Any-Recipient, ms-Exch-Bypass-Anti-Spam", NULL},
     GROUP_NONE},
    {"DN trustee fully denied is empty", 0,
     {"allow; uid=app,dc=x; ms-Exch-SMTP-Submit", "deny; uid=app,dc=x; ms-Exch-SMTP-Submit", NULL},
     GROUP_NONE},
    {"Everyone with E12 set", 0,
     {"allow; Everyone; ms-Exch-SMTP-Submit, ms-Exch-SMTP-Accept-Any-Recipient, "
      "ms-Exch-SMTP-Accept-Authentication-Flag, ms-Exch-SMTP-Accept-Any-Sender, "
      "ms-Exch-SMTP-Accept-Authoritative-Domain-Sender, ms-Exch-Bypass-Anti-Spam, "
      "ms-Exch-Bypass-Message-Size-Limit, ms-Exch-SMTP-Accept-Exch50, "
      "ms-Exch-Accept-Headers-Routing, ms-Exch-Accept-Headers-Forest, "
      "ms-Exch-Accept-Headers-Organization", NULL}, GROUP_NONE},
    {"Everyone with Send-As only (masked)", 0, {"allow; Everyone; Send-As", NULL}, GROUP_NONE},
    {"Everyone with one receive right", 0,
     {"allow; Everyone; ms-Exch-SMTP-Submit", NULL}, GROUP_CUSTOM},
};

static void derive_groups_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < N(derive_cases); i++) {
        struct ace *aces;
        size_t n = build(derive_cases[i].groups, derive_cases[i].values, &aces);
        unsigned got = acl_derive_groups(aces, n);
        if (got != derive_cases[i].want) {
            char g[128], w[128];
            groups_format(got, g, sizeof g);
            groups_format(derive_cases[i].want, w, sizeof w);
            fail_msg("case '%s': derived '%s' want '%s'", derive_cases[i].name, g, w);
        }
        free_aces(aces, n);
    }
}

static void expansion_round_trips_for_every_settable_combination(void **state)
{
    (void)state;
    for (unsigned g = 0; g <= GROUP_SETTABLE; g++) {
        struct ace *aces = NULL;
        size_t n = 0;
        acl_expand_groups(g, &aces, &n);
        assert_int_equal(acl_derive_groups(aces, n), g);
        acl_strip_groups(&aces, &n);   /* nothing but group pairs: all gone */
        assert_int_equal(n, 0);
        free_aces(aces, n);
    }
    struct ace *none = NULL;   /* Custom is derived only: it expands to nothing */
    size_t nn = 0;
    acl_expand_groups(GROUP_CUSTOM, &none, &nn);
    assert_int_equal(nn, 0);
    free(none);
}

static void expansion_emits_one_ace_per_principal_and_group(void **state)
{
    (void)state;
    struct ace *aces = NULL;
    size_t n = 0;
    char buf[ACE_MAXLEN];
    acl_expand_groups(GROUP_LEGACY_SERVERS | GROUP_PARTNERS, &aces, &n);
    assert_int_equal(n, 3);
    static const char *want[] = {
        "allow; MS Exchange\\ExchangeLegacyInterop; ms-Exch-SMTP-Submit, "
        "ms-Exch-SMTP-Accept-Any-Recipient, ms-Exch-SMTP-Accept-Authentication-Flag, "
        "ms-Exch-SMTP-Accept-Any-Sender, ms-Exch-SMTP-Accept-Authoritative-Domain-Sender, "
        "ms-Exch-Bypass-Anti-Spam, ms-Exch-Bypass-Message-Size-Limit, ms-Exch-SMTP-Accept-Exch50, "
        "ms-Exch-Accept-Headers-Routing",
        ("deny; MS Exchange\\ExchangeLegacyInterop; ms-Exch-Accept-Headers-Forest, "
         "ms-Exch-Accept-Headers-Organization"),
        "allow; MS Exchange\\Partner Servers; ms-Exch-SMTP-Submit, ms-Exch-Accept-Headers-Routing",
    };
    for (size_t i = 0; i < n; i++) {
        ace_format(&aces[i], buf, sizeof buf);
        assert_string_equal(buf, want[i]);
    }
    free_aces(aces, n);
    aces = NULL;
    n = 0;
    acl_expand_groups(GROUP_EXCHANGE_SERVERS, &aces, &n);
    assert_int_equal(n, 4);
    free_aces(aces, n);
}

static void strip_keeps_rights_outside_the_default_set(void **state)
{
    (void)state;
    const char *extra[] = {
        "allow; NT AUTHORITY\\ANONYMOUS LOGON; ms-Exch-SMTP-Submit, ms-Exch-SMTP-Accept-Any-Recipient",
        "allow; uid=app,dc=x; ms-Exch-SMTP-Submit",
        "deny; Partner Servers; ms-Exch-SMTP-Submit",
        NULL,
    };
    struct ace *aces;
    size_t n = build(GROUP_ANONYMOUS | GROUP_EXCHANGE_SERVERS, extra, &aces);
    acl_strip_groups(&aces, &n);
    assert_int_equal(n, 3);
    char buf[ACE_MAXLEN];
    ace_format(&aces[0], buf, sizeof buf);
    assert_string_equal(buf, "allow; NT AUTHORITY\\ANONYMOUS LOGON; ms-Exch-SMTP-Accept-Any-Recipient");
    ace_format(&aces[1], buf, sizeof buf);
    assert_string_equal(buf, "allow; uid=app,dc=x; ms-Exch-SMTP-Submit");
    ace_format(&aces[2], buf, sizeof buf);   /* a deny is not the Partners group's allow pair */
    assert_string_equal(buf, "deny; MS Exchange\\Partner Servers; ms-Exch-SMTP-Submit");
    /* re-setting the group after a strip gives Option 2 back */
    acl_expand_groups(GROUP_ANONYMOUS, &aces, &n);
    assert_int_equal(acl_derive_groups(aces, n), GROUP_ANONYMOUS | GROUP_CUSTOM);
    free_aces(aces, n);
}

static void eval_option2_anonymous_relay(void **state)
{
    (void)state;
    const char *extra[] = {
        "allow; NT AUTHORITY\\ANONYMOUS LOGON; ms-Exch-SMTP-Accept-Any-Recipient", NULL};
    struct ace *aces;
    size_t n = build(GROUP_ANONYMOUS | GROUP_EXCHANGE_USERS, extra, &aces);
    struct token anon, user;
    struct rights_eval ev;
    token_init_anonymous(&anon);
    acl_eval(aces, n, &anon, &ev);
    assert_int_equal(ev.effective, 0x431 | R_ACCEPT_ANY_RECIPIENT);
    assert_int_equal(ev.denied, 0);
    assert_int_equal(ev.grant_ace[0], 0);                       /* Submit from the group ACE */
    assert_int_equal(ev.grant_ace[2], 2);                       /* Any-Recipient from the extra */
    assert_int_equal(ev.grant_ace[6], -1);                      /* no Bypass-Anti-Spam */
    for (unsigned i = 0; i < RIGHT_COUNT; i++)
        assert_int_equal(ev.deny_ace[i], -1);
    assert_int_equal(token_init_user(&user, "alice", "uid=alice,dc=x", NULL, 0), 0);
    acl_eval(aces, n, &user, &ev);                              /* user rights replace anon */
    assert_int_equal(ev.effective, 0x445);
    assert_int_equal(ev.grant_ace[6], 1);
    token_clear(&anon);
    token_clear(&user);
    free_aces(aces, n);
}

static void eval_deny_wins_whatever_the_order(void **state)
{
    (void)state;
    const char *values[] = {
        "deny; cn=blocked,dc=x; ms-Exch-SMTP-Accept-Any-Recipient",
        "allow; Authenticated Users; ms-Exch-SMTP-Submit, ms-Exch-SMTP-Accept-Any-Recipient",
        "allow; uid=alice,dc=x; ms-Exch-Bypass-Anti-Spam",
        "deny; Everyone; ms-Exch-Bypass-Anti-Spam",
        "allow; Everyone; ms-Exch-Bypass-Anti-Spam, ms-Exch-SMTP-Submit",
        "deny; cn=other,dc=x; ms-Exch-SMTP-Submit",
        NULL,
    };
    struct ace *aces;
    size_t n = build(0, values, &aces);
    const char *groups[] = {"CN=Blocked, DC=X"};
    struct token t;
    struct rights_eval ev;
    assert_int_equal(token_init_user(&t, "alice", "UID=Alice,DC=x", groups, 1), 0);
    acl_eval(aces, n, &t, &ev);
    assert_int_equal(ev.allowed, R_SUBMIT | R_ACCEPT_ANY_RECIPIENT | R_BYPASS_ANTISPAM);
    assert_int_equal(ev.denied, R_ACCEPT_ANY_RECIPIENT | R_BYPASS_ANTISPAM);
    assert_int_equal(ev.effective, R_SUBMIT);
    assert_int_equal(ev.grant_ace[0], 1);
    assert_int_equal(ev.grant_ace[2], 1);
    assert_int_equal(ev.deny_ace[2], 0);
    assert_int_equal(ev.grant_ace[6], 2);
    assert_int_equal(ev.deny_ace[6], 3);
    assert_int_equal(ev.deny_ace[0], -1);                       /* cn=other is not alice's */
    token_clear(&t);

    struct token es;                                            /* holds none of these */
    token_init_externally_secured(&es);
    acl_eval(aces, n, &es, &ev);
    assert_int_equal(ev.allowed | ev.denied | ev.effective, 0);
    token_clear(&es);
    free_aces(aces, n);
}

static void eval_legacy_deny_beats_other_grant(void **state)
{
    (void)state;
    struct ace *aces;
    size_t n = build(GROUP_LEGACY_SERVERS, (const char *[]){
        "allow; ExchangeLegacyInterop; ms-Exch-Accept-Headers-Forest", NULL}, &aces);
    struct token t;
    struct rights_eval ev;
    token_init_anonymous(&t);
    t.wk |= 1u << WK_LEGACY_INTEROP;
    acl_eval(aces, n, &t, &ev);
    assert_int_equal(ev.effective, 0x6FD);
    assert_int_equal(ev.deny_ace[11], 1);
    assert_int_equal(ev.grant_ace[11], 2);
    token_clear(&t);
    free_aces(aces, n);
}

/* SID principals (the AD profile): a deny for a nested group's SID beats an allow for
 * Authenticated Users; SID and DN principals never match each other; a SID trustee holding
 * a non-standard set makes the groups Custom. */
static void eval_sid_deny_beats_authenticated_users(void **state)
{
    (void)state;
    struct ace *aces;
    size_t n = build(GROUP_EXCHANGE_USERS, (const char *[]){
        "deny; S-1-5-21-1-2-3-1107; ms-Exch-SMTP-Submit",
        "allow; S-1-5-21-1-2-3-1104; ms-Exch-Bypass-Anti-Spam",
        "deny; cn=s-1-5-21-1-2-3-1104; ms-Exch-Bypass-Anti-Spam", NULL}, &aces);
    const char *groups[] = {"S-1-5-21-1-2-3-1108", "S-1-5-21-1-2-3-1107"};
    struct token t;
    struct rights_eval ev;
    assert_int_equal(token_init_sids(&t, "bob", "S-1-5-21-1-2-3-1104", groups, 2), 0);
    acl_eval(aces, n, &t, &ev);
    assert_int_equal(ev.allowed, 0x445 | R_BYPASS_ANTISPAM);
    assert_int_equal(ev.denied, R_SUBMIT);
    assert_int_equal(ev.effective, (0x445 | R_BYPASS_ANTISPAM) & ~R_SUBMIT);
    token_clear(&t);
    const char *none[] = {"S-1-5-21-1-2-3-1108"};
    assert_int_equal(token_init_sids(&t, "carol", "S-1-5-21-1-2-3-1110", none, 1), 0);
    acl_eval(aces, n, &t, &ev);
    assert_int_equal(ev.effective, 0x445);
    token_clear(&t);
    assert_int_equal(acl_derive_groups(aces, n), GROUP_EXCHANGE_USERS | GROUP_CUSTOM);
    free_aces(aces, n);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(derive_groups_table),
        cmocka_unit_test(expansion_round_trips_for_every_settable_combination),
        cmocka_unit_test(expansion_emits_one_ace_per_principal_and_group),
        cmocka_unit_test(strip_keeps_rights_outside_the_default_set),
        cmocka_unit_test(eval_option2_anonymous_relay),
        cmocka_unit_test(eval_deny_wins_whatever_the_order),
        cmocka_unit_test(eval_legacy_deny_beats_other_grant),
        cmocka_unit_test(eval_sid_deny_beats_authenticated_users),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
