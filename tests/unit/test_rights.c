/* Unit tests for rights: the 26-right table, aliases, GUID lookup, well-known principals,
 * permission-group tables and their names (docs/permission-model.md §1.2, §2.1). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>
#include "directory/rights.h"
#include "directory/base/util.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

static const struct { const char *name; const char *input; uint32_t bit; } lookup_cases[] = {
    {"submit CN", "ms-Exch-SMTP-Submit", R_SUBMIT},
    {"CN case-insensitive", "MS-EXCH-SMTP-ACCEPT-ANY-RECIPIENT", R_ACCEPT_ANY_RECIPIENT},
    {"GUID lowercase", "5c82f031-4e4c-4326-88e1-8c4f0cad9de5", R_ACCEPT_ANY_RECIPIENT},
    {"GUID uppercase", "5C82F031-4E4C-4326-88E1-8C4F0CAD9DE5", R_ACCEPT_ANY_RECIPIENT},
    {"GUID braces", "{a18293f1-0685-4540-aa63-e32df421b3a2}", R_SUBMIT},
    {"Send-As", "Send-As", R_SEND_AS},
    {"Send-As GUID", "ab721a54-1e2f-11d0-9819-00aa0040529b", R_SEND_AS},
    {"seed article alias", "ms-Exch-SMTP-Accept-Authoritative-Domain", R_ACCEPT_AUTHDOM_SENDER},
    {"authdom canonical", "ms-Exch-SMTP-Accept-Authoritative-Domain-Sender", R_ACCEPT_AUTHDOM_SENDER},
    {"exch50 docs alias", "ms-Exch-Accept-Exch50", R_ACCEPT_EXCH50},
    {"xmc canonical", "ms-Exch-SMTP-Accept-XMessageContext-ADRecipientCache", R_XMC_ADRECIPIENTCACHE},
    {"xmc send alias 1", "ms-Exch-SMTP-Send-XMessageContext-ADRecipientCache", R_XMC_ADRECIPIENTCACHE},
    {"xmc send alias 2", "ms-Exch-SMTP-Send-XMessageContext-ExtendedProperties", R_XMC_EXTENDEDPROPERTIES},
    {"xmc send alias 3", "ms-Exch-SMTP-Send-XMessageContext-FastIndex", R_XMC_FASTINDEX},
    {"xsysprobe", "ms-Exch-SMTP-Accept-XSysProbe", R_ACCEPT_XSYSPROBE},
    {"unknown", "ms-Exch-SMTP-Relay", 0},
    {"empty", "", 0},
    {"GUID one brace", "{a18293f1-0685-4540-aa63-e32df421b3a2", 0},
    {"GUID truncated", "a18293f1-0685-4540-aa63-e32df421b3a", 0},
    {"prefix of CN", "ms-Exch-SMTP-Sub", 0},
};

static void right_lookup_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < N(lookup_cases); i++) {
        const struct right_info *r = right_lookup(lookup_cases[i].input);
        uint32_t got = r ? r->bit : 0;
        if (got != lookup_cases[i].bit)
            fail_msg("case '%s': got 0x%x want 0x%x", lookup_cases[i].name, got,
                     lookup_cases[i].bit);
    }
}

static void right_table_is_complete_and_consistent(void **state)
{
    (void)state;
    for (unsigned i = 0; i < RIGHT_COUNT; i++) {
        const struct right_info *r = right_by_index(i);
        assert_non_null(r);
        assert_int_equal(r->bit, 1u << i);
        assert_ptr_equal(right_by_bit(r->bit), r);
        assert_ptr_equal(right_lookup(r->name), r);
        assert_ptr_equal(right_lookup(r->guid), r);
        assert_int_equal(strlen(r->guid), 36);
        for (const char *g = r->guid; *g; g++)   /* rights.h: "rightsGuid, lowercase" */
            assert_false(*g >= 'A' && *g <= 'Z');
        assert_non_null(r->internal);
        for (unsigned j = 0; j < i; j++) {
            assert_string_not_equal(right_by_index(j)->name, r->name);
            assert_string_not_equal(right_by_index(j)->guid, r->guid);
            assert_string_not_equal(right_by_index(j)->internal, r->internal);
        }
    }
    assert_null(right_by_index(RIGHT_COUNT));
    assert_null(right_by_bit(0));
    assert_null(right_by_bit(3));
    assert_null(right_by_bit(1u << 26));
    assert_string_equal(right_by_bit(R_ACCEPT_XATTR)->name, "ms-Exch-SMTP-Accept-XAttr");
    assert_string_equal(right_by_bit(R_SEND_AS)->internal, "SendAs");
}

static const struct {
    const char *name; uint32_t mask; const char *sep; bool internal; const char *want;
} format_cases[] = {
    {"empty", 0, ", ", false, "None"},
    {"anonymous set", 0x431, ", ", false,
     "ms-Exch-SMTP-Submit, ms-Exch-SMTP-Accept-Any-Sender, "
     "ms-Exch-SMTP-Accept-Authoritative-Domain-Sender, ms-Exch-Accept-Headers-Routing"},
    {"internal names", 0x445, " ", true,
     "SMTPSubmit SMTPAcceptAnyRecipient BypassAntiSpam AcceptRoutingHeaders"},
    {"bits beyond R_ALL ignored", 0x80000000u | R_SEND_AS, ",", false, "Send-As"},
};

static void rights_format_table(void **state)
{
    (void)state;
    char buf[2048];
    for (size_t i = 0; i < N(format_cases); i++) {
        size_t n = rights_format(format_cases[i].mask, format_cases[i].sep,
                                 format_cases[i].internal, buf, sizeof buf);
        if (strcmp(buf, format_cases[i].want) != 0 || n != strlen(format_cases[i].want))
            fail_msg("case '%s': got '%s'", format_cases[i].name, buf);
    }
}

static void rights_format_truncates_and_reports_length(void **state)
{
    (void)state;
    char small[10];
    size_t n = rights_format(R_SUBMIT, ",", false, small, sizeof small);
    assert_int_equal(n, strlen("ms-Exch-SMTP-Submit"));
    assert_string_equal(small, "ms-Exch-S");
}

static const struct { const char *name; const char *input; int id; } principal_cases[] = {
    {"anonymous canonical", "NT AUTHORITY\\ANONYMOUS LOGON", WK_ANONYMOUS},
    {"anonymous short", "ANONYMOUS LOGON", WK_ANONYMOUS},
    {"anonymous short lower", "anonymous logon", WK_ANONYMOUS},
    {"anonymous SID", "S-1-5-7", WK_ANONYMOUS},
    {"authenticated users", "nt authority\\authenticated users", WK_AUTHENTICATED_USERS},
    {"authenticated SID", "S-1-5-11", WK_AUTHENTICATED_USERS},
    {"everyone", "Everyone", WK_EVERYONE},
    {"everyone SID", "S-1-1-0", WK_EVERYONE},
    {"ext secured short", "Externally Secured Servers", WK_EXTERNALLY_SECURED},
    {"ext secured SID", "S-1-9-1419165041-1139599005-3936102811-1022490595-23", WK_EXTERNALLY_SECURED},
    {"hub SID", "S-1-9-1419165041-1139599005-3936102811-1022490595-21", WK_HUB_TRANSPORT},
    {"edge SID", "S-1-9-1419165041-1139599005-3936102811-1022490595-22", WK_EDGE_TRANSPORT},
    {"partner SID", "S-1-9-1419165041-1139599005-3936102811-1022490595-10", WK_PARTNER},
    {"partner name", "MS Exchange\\Partner Servers", WK_PARTNER},
    {"exchange servers short", "Exchange Servers", WK_EXCHANGE_SERVERS},
    {"legacy interop", "MS Exchange\\ExchangeLegacyInterop", WK_LEGACY_INTEROP},
    {"legacy short", "exchangelegacyinterop", WK_LEGACY_INTEROP},
    {"unknown SID", "S-1-5-99", -1},
    {"unknown name", "NT AUTHORITY\\SYSTEM", -1},
    {"empty", "", -1},
    {"backslash only", "\\", -1},
    {"wrong authority prefix is not a short form", "X\\ANONYMOUS LOGON", -1},
};

static void principal_lookup_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < N(principal_cases); i++) {
        const struct principal_info *p = principal_lookup(principal_cases[i].input);
        int got = p ? p->id : -1;
        if (got != principal_cases[i].id)
            fail_msg("case '%s': got %d want %d", principal_cases[i].name, got,
                     principal_cases[i].id);
    }
    for (int i = 0; i < WK_COUNT; i++) {
        assert_int_equal(principal_by_id(i)->id, i);
        assert_ptr_equal(principal_lookup(principal_by_id(i)->name), principal_by_id(i));
    }
    assert_null(principal_by_id(WK_COUNT));
    assert_null(principal_by_id(-1));
    assert_null(principal_by_id(WK_EXCHANGE_SERVERS)->sid);
}

static uint32_t grant_of(unsigned g, int principal, bool deny)
{
    struct group_grant gg[8];
    size_t n = group_grants(g, gg, 8);
    for (size_t i = 0; i < n; i++)
        if (gg[i].principal == principal && gg[i].deny == deny)
            return gg[i].rights;
    return 0;
}

static void group_grants_match_the_table(void **state)
{
    (void)state;
    struct group_grant gg[8];
    assert_int_equal(group_grants(GROUP_ANONYMOUS, gg, 8), 1);
    assert_int_equal(grant_of(GROUP_ANONYMOUS, WK_ANONYMOUS, false), 0x431);
    assert_int_equal(group_grants(GROUP_EXCHANGE_USERS, gg, 8), 1);
    assert_int_equal(grant_of(GROUP_EXCHANGE_USERS, WK_AUTHENTICATED_USERS, false), 0x445);
    assert_int_equal(group_grants(GROUP_EXCHANGE_SERVERS, gg, 8), 4);
    assert_int_equal(grant_of(GROUP_EXCHANGE_SERVERS, WK_EDGE_TRANSPORT, false), 0x3FC1EFD);
    assert_int_equal(grant_of(GROUP_EXCHANGE_SERVERS, WK_EXTERNALLY_SECURED, false), 0x6FD);
    assert_int_equal(grant_of(GROUP_EXCHANGE_SERVERS, WK_HUB_TRANSPORT, false), 0x3FC1EFD);
    assert_int_equal(grant_of(GROUP_EXCHANGE_SERVERS, WK_EXCHANGE_SERVERS, false), 0x3FC1EFD);
    assert_int_equal(group_grants(GROUP_LEGACY_SERVERS, gg, 8), 2);
    assert_int_equal(grant_of(GROUP_LEGACY_SERVERS, WK_LEGACY_INTEROP, false), 0x6FD);
    assert_int_equal(grant_of(GROUP_LEGACY_SERVERS, WK_LEGACY_INTEROP, true), 0x1800);
    assert_int_equal(group_grants(GROUP_PARTNERS, gg, 8), 1);
    assert_int_equal(grant_of(GROUP_PARTNERS, WK_PARTNER, false), 0x401);
    assert_int_equal(group_grants(GROUP_CUSTOM, gg, 8), 0);
    assert_int_equal(group_grants(GROUP_EXCHANGE_SERVERS, gg, 2), 2);   /* max respected */
}

static const struct {
    const char *name; const char *input; int rc; unsigned groups; const char *err;
} parse_cases[] = {
    {"single", "AnonymousUsers", 0, GROUP_ANONYMOUS, NULL},
    {"comma list", "AnonymousUsers, ExchangeServers", 0, GROUP_ANONYMOUS | GROUP_EXCHANGE_SERVERS, NULL},
    {"space list, any case", "exchangeusers partners", 0, GROUP_EXCHANGE_USERS | GROUP_PARTNERS, NULL},
    {"all settable", "AnonymousUsers,ExchangeUsers,ExchangeServers,ExchangeLegacyServers,Partners",
     0, GROUP_SETTABLE, NULL},
    {"none alone", "None", 0, 0, NULL},
    {"custom refused", "Custom", -1, 0, "Custom is derived from the ACEs and cannot be set"},
    {"unknown", "AnonymousUsers, Admins", -1, 0, "unknown permission group 'Admins'"},
    {"none with others", "None, Partners", -1, 0, "None cannot be combined with other permission groups"},
    {"duplicate", "Partners Partners", -1, 0, "permission group 'Partners' given twice"},
    {"empty", " , ", -1, 0, "empty permission group list (use None)"},
};

static void groups_parse_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < N(parse_cases); i++) {
        char err[RN_ERRLEN] = "";
        unsigned g = 999;
        int rc = groups_parse(parse_cases[i].input, &g, err, sizeof err);
        if (rc != parse_cases[i].rc)
            fail_msg("case '%s': rc %d (%s)", parse_cases[i].name, rc, err);
        if (rc == 0 && g != parse_cases[i].groups)
            fail_msg("case '%s': groups %u want %u", parse_cases[i].name, g, parse_cases[i].groups);
        if (rc != 0 && strcmp(err, parse_cases[i].err) != 0)
            fail_msg("case '%s': err '%s'", parse_cases[i].name, err);
    }
}

static void groups_format_and_round_trip(void **state)
{
    (void)state;
    char buf[256];
    groups_format(0, buf, sizeof buf);
    assert_string_equal(buf, "None");
    groups_format(GROUP_ANONYMOUS | GROUP_CUSTOM, buf, sizeof buf);
    assert_string_equal(buf, "AnonymousUsers, Custom");
    for (unsigned g = 0; g <= GROUP_SETTABLE; g++) {
        unsigned back = 999;
        char err[RN_ERRLEN];
        groups_format(g, buf, sizeof buf);
        assert_int_equal(groups_parse(buf, &back, err, sizeof err), 0);
        assert_int_equal(back, g);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(right_lookup_table),
        cmocka_unit_test(right_table_is_complete_and_consistent),
        cmocka_unit_test(rights_format_table),
        cmocka_unit_test(rights_format_truncates_and_reports_length),
        cmocka_unit_test(principal_lookup_table),
        cmocka_unit_test(group_grants_match_the_table),
        cmocka_unit_test(groups_parse_table),
        cmocka_unit_test(groups_format_and_round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
