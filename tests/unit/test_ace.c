/* Unit tests for ace: the relayAce grammar (canonical round trips, normalisation of other
 * spellings, exact errors for malformed values) and RFC 4514 DN canonicalisation. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>
#include "directory/ace.h"
#include "directory/rights.h"
#include "directory/base/util.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

static const struct { const char *name; const char *value; } canonical_cases[] = {
    {"anonymous submit", "allow; NT AUTHORITY\\ANONYMOUS LOGON; ms-Exch-SMTP-Submit"},
    {"article option 2 extra ACE",
     "allow; NT AUTHORITY\\ANONYMOUS LOGON; ms-Exch-SMTP-Accept-Any-Recipient"},
    {"exchange users set", "allow; NT AUTHORITY\\Authenticated Users; ms-Exch-SMTP-Submit, "
     "ms-Exch-SMTP-Accept-Any-Recipient, ms-Exch-Bypass-Anti-Spam, ms-Exch-Accept-Headers-Routing"},
    {"legacy deny", "deny; MS Exchange\\ExchangeLegacyInterop; ms-Exch-Accept-Headers-Forest, "
     "ms-Exch-Accept-Headers-Organization"},
    {"everyone send-as", "allow; Everyone; Send-As"},
    {"externally secured", "allow; MS Exchange\\Externally Secured Servers; ms-Exch-SMTP-Submit"},
    {"partner", "allow; MS Exchange\\Partner Servers; ms-Exch-SMTP-Submit"},
    {"dn principal", "allow; uid=app1,ou=apps,dc=example,dc=com; ms-Exch-SMTP-Submit"},
    {"dn as written keeps case", "deny; CN=Staff,OU=Groups,DC=Example,DC=com; ms-Exch-Bypass-Anti-Spam"},
    {"dn with escaped semicolon", "allow; cn=a\\;b,dc=x; Send-As"},
    {"multi-valued RDN", "allow; cn=app+uid=7,dc=x; ms-Exch-SMTP-Submit"},
    {"xmc canonical", "allow; MS Exchange\\Hub Transport Servers; "
     "ms-Exch-SMTP-Accept-XMessageContext-ADRecipientCache"},
};

static void canonical_strings_round_trip(void **state)
{
    (void)state;
    for (size_t i = 0; i < N(canonical_cases); i++) {
        struct ace a;
        char err[RN_ERRLEN] = "", out[ACE_MAXLEN + 1];
        if (ace_parse(canonical_cases[i].value, &a, err, sizeof err) != 0)
            fail_msg("case '%s': %s", canonical_cases[i].name, err);
        size_t n = ace_format(&a, out, sizeof out);
        if (strcmp(out, canonical_cases[i].value) != 0 || n != strlen(out))
            fail_msg("case '%s': formatted '%s'", canonical_cases[i].name, out);
        ace_clear(&a);
    }
}

static const struct { const char *name; const char *in, *want; } normalise_cases[] = {
    {"action case and no spaces", "ALLOW;ANONYMOUS LOGON;MS-EXCH-SMTP-SUBMIT",
     "allow; NT AUTHORITY\\ANONYMOUS LOGON; ms-Exch-SMTP-Submit"},
    {"extra spaces", "  deny ;   Everyone   ;  Send-As  ",
     "deny; Everyone; Send-As"},
    {"SID principal", "allow; S-1-5-7; ms-Exch-SMTP-Submit",
     "allow; NT AUTHORITY\\ANONYMOUS LOGON; ms-Exch-SMTP-Submit"},
    {"exchange SID", "allow; S-1-9-1419165041-1139599005-3936102811-1022490595-23; ms-Exch-SMTP-Submit",
     "allow; MS Exchange\\Externally Secured Servers; ms-Exch-SMTP-Submit"},
    {"rights reordered to bit order",
     "allow; Authenticated Users; ms-Exch-Accept-Headers-Routing,ms-Exch-SMTP-Submit",
     "allow; NT AUTHORITY\\Authenticated Users; ms-Exch-SMTP-Submit, ms-Exch-Accept-Headers-Routing"},
    {"GUID right with braces", "allow; Everyone; {5C82F031-4E4C-4326-88E1-8C4F0CAD9DE5}",
     "allow; Everyone; ms-Exch-SMTP-Accept-Any-Recipient"},
    {"seed article alias", "allow; ANONYMOUS LOGON; ms-Exch-SMTP-Accept-Authoritative-Domain",
     "allow; NT AUTHORITY\\ANONYMOUS LOGON; ms-Exch-SMTP-Accept-Authoritative-Domain-Sender"},
    {"exch50 alias", "allow; Partner Servers; ms-Exch-Accept-Exch50",
     "allow; MS Exchange\\Partner Servers; ms-Exch-SMTP-Accept-Exch50"},
    {"send-xmc alias", "allow; Exchange Servers; ms-Exch-SMTP-Send-XMessageContext-FastIndex",
     "allow; MS Exchange\\Exchange Servers; ms-Exch-SMTP-Accept-XMessageContext-FastIndex"},
    {"dn trimmed, kept as written", "allow;   uid=Alice, ou=People ;ms-Exch-SMTP-Submit",
     "allow; uid=Alice, ou=People; ms-Exch-SMTP-Submit"},
};

static void non_canonical_inputs_normalise(void **state)
{
    (void)state;
    for (size_t i = 0; i < N(normalise_cases); i++) {
        struct ace a, b;
        char err[RN_ERRLEN] = "", out[ACE_MAXLEN + 1], again[ACE_MAXLEN + 1];
        if (ace_parse(normalise_cases[i].in, &a, err, sizeof err) != 0)
            fail_msg("case '%s': %s", normalise_cases[i].name, err);
        ace_format(&a, out, sizeof out);
        if (strcmp(out, normalise_cases[i].want) != 0)
            fail_msg("case '%s': formatted '%s'", normalise_cases[i].name, out);
        assert_int_equal(ace_parse(out, &b, err, sizeof err), 0);   /* canonical is stable */
        ace_format(&b, again, sizeof again);
        assert_string_equal(again, out);
        ace_clear(&a);
        ace_clear(&b);
    }
}

static const struct { const char *name; const char *in, *err; } malformed_cases[] = {
    {"empty", "", "expected 'allow|deny; principal; rights'"},
    {"one field", "allow", "expected 'allow|deny; principal; rights'"},
    {"two fields", "allow; Everyone", "expected 'allow|deny; principal; rights'"},
    {"empty action", " ; Everyone; Send-As", "empty action"},
    {"bad action", "permit; Everyone; Send-As", "unknown action 'permit' (expected allow or deny)"},
    {"empty principal", "allow;  ; Send-As", "empty principal"},
    {"no rights", "allow; Everyone;  ", "no rights"},
    {"empty right in list", "allow; Everyone; Send-As,", "empty right in list"},
    {"double comma", "allow; Everyone; Send-As,,ms-Exch-SMTP-Submit", "empty right in list"},
    {"unknown right", "allow; Everyone; ms-Exch-SMTP-Relay", "unknown right 'ms-Exch-SMTP-Relay'"},
    {"duplicate right", "allow; Everyone; Send-As, send-as", "duplicate right 'send-as'"},
    {"duplicate via GUID", "allow; Everyone; ms-Exch-SMTP-Submit, a18293f1-0685-4540-aa63-e32df421b3a2",
     "duplicate right 'a18293f1-0685-4540-aa63-e32df421b3a2'"},
    {"duplicate via alias", "allow; Everyone; ms-Exch-SMTP-Accept-Authoritative-Domain-Sender, "
     "ms-Exch-SMTP-Accept-Authoritative-Domain", "duplicate right 'ms-Exch-SMTP-Accept-Authoritative-Domain'"},
    {"malformed SID", "allow; S-1-5-32-x; Send-As", "malformed SID 'S-1-5-32-x'"},
    {"SID with 16 sub-authorities", "allow; S-1-5-1-2-3-4-5-6-7-8-9-10-11-12-13-14-15-16; Send-As",
     "malformed SID 'S-1-5-1-2-3-4-5-6-7-8-9-10-11-12-13-14-15-16'"},
    {"SID sub-authority over 32 bits", "allow; S-1-5-4294967296; Send-As",
     "malformed SID 'S-1-5-4294967296'"},
    {"unknown principal", "allow; Domain Admins; Send-As",
     "unknown principal 'Domain Admins' (not a well-known name or SID, and not a DN: "
     "expected attribute=value at 'Domain Admins')"},
    {"bad DN escape", "allow; cn=a\\zz,dc=x; Send-As",
     "unknown principal 'cn=a\\zz,dc=x' (not a well-known name or SID, and not a DN: bad escape '\\z')"},
    {"newline", "allow; Everyone;\nSend-As", "control character 0x0a at offset 16"},
    {"tab", "allow;\tEveryone; Send-As", "control character 0x09 at offset 6"},
    {"DEL", "allow; Every\x7fone; Send-As", "control character 0x7f at offset 12"},
};

static void malformed_values_give_exact_errors(void **state)
{
    (void)state;
    for (size_t i = 0; i < N(malformed_cases); i++) {
        struct ace a;
        char err[RN_ERRLEN] = "";
        if (ace_parse(malformed_cases[i].in, &a, err, sizeof err) != -1)
            fail_msg("case '%s': accepted", malformed_cases[i].name);
        if (strcmp(err, malformed_cases[i].err) != 0)
            fail_msg("case '%s': error '%s'", malformed_cases[i].name, err);
        assert_null(a.dn);
        assert_null(a.dn_norm);
    }
}

static void overlong_value_is_refused(void **state)
{
    (void)state;
    char *s = malloc(ACE_MAXLEN + 2);
    char err[RN_ERRLEN];
    struct ace a;
    memset(s, 'a', ACE_MAXLEN + 1);
    s[ACE_MAXLEN + 1] = '\0';
    memcpy(s, "allow; cn=", 10);
    assert_int_equal(ace_parse(s, &a, err, sizeof err), -1);
    assert_string_equal(err, "value longer than 4096 bytes");
    /* exactly ACE_MAXLEN is allowed by the length check (then fails for another reason) */
    s[ACE_MAXLEN] = '\0';
    assert_int_equal(ace_parse(s, &a, err, sizeof err), -1);
    assert_string_equal(err, "expected 'allow|deny; principal; rights'");
    free(s);
}

static void dn_principal_is_normalised_and_copied(void **state)
{
    (void)state;
    struct ace a, b;
    char err[RN_ERRLEN];
    assert_int_equal(ace_parse("deny; uid=Alice, ou=People,dc=Example,dc=com; Send-As, "
                               "ms-Exch-SMTP-Submit", &a, err, sizeof err), 0);
    assert_true(a.deny);
    assert_int_equal(a.wk, -1);
    assert_string_equal(a.dn, "uid=Alice, ou=People,dc=Example,dc=com");
    assert_string_equal(a.dn_norm, "uid=alice,ou=people,dc=example,dc=com");
    assert_int_equal(a.rights, R_SUBMIT | R_SEND_AS);
    ace_copy(&b, &a);
    assert_ptr_not_equal(b.dn, a.dn);
    assert_string_equal(b.dn_norm, a.dn_norm);
    ace_clear(&a);
    assert_null(a.dn);
    assert_int_equal(a.wk, -1);
    assert_string_equal(b.dn, "uid=Alice, ou=People,dc=Example,dc=com");
    ace_clear(&b);
    assert_int_equal(ace_parse("allow; anonymous logon; ms-Exch-SMTP-Submit", &a, err, sizeof err), 0);
    assert_int_equal(a.wk, WK_ANONYMOUS);
    assert_null(a.dn);
    ace_clear(&a);
}

/* An AD account or group's SID (the AD profile's principals): canonical, copied, formatted. */
static void sid_principal_is_canonical_and_copied(void **state)
{
    (void)state;
    static const struct { const char *in, *sid, *canon; } cases[] = {
        {"deny; S-1-5-21-3566121368-2833235078-3374141506-1107; ms-Exch-SMTP-Submit",
         "S-1-5-21-3566121368-2833235078-3374141506-1107",
         "deny; S-1-5-21-3566121368-2833235078-3374141506-1107; ms-Exch-SMTP-Submit"},
        {"allow;  s-1-5-18 ; Send-As", "S-1-5-18", "allow; S-1-5-18; Send-As"},
        {"allow; S-1-0x000000000005-32-544; Send-As", "S-1-5-32-544", "allow; S-1-5-32-544; Send-As"},
    };
    for (size_t i = 0; i < N(cases); i++) {
        struct ace a, b;
        char err[RN_ERRLEN], out[512], again[512];
        if (ace_parse(cases[i].in, &a, err, sizeof err) != 0)
            fail_msg("'%s': %s", cases[i].in, err);
        assert_int_equal(a.wk, -1);
        assert_null(a.dn);
        assert_null(a.dn_norm);
        assert_string_equal(a.sid, cases[i].sid);
        ace_format(&a, out, sizeof out);
        assert_string_equal(out, cases[i].canon);
        ace_copy(&b, &a);
        assert_ptr_not_equal(b.sid, a.sid);
        ace_clear(&a);
        assert_null(a.sid);
        ace_format(&b, again, sizeof again);
        assert_string_equal(again, cases[i].canon);
        ace_clear(&b);
    }
    /* A well-known SID in another spelling is still the well-known principal. */
    struct ace a;
    char err[RN_ERRLEN];
    assert_int_equal(ace_parse("allow; s-1-5-7; ms-Exch-SMTP-Submit", &a, err, sizeof err), 0);
    assert_int_equal(a.wk, WK_ANONYMOUS);
    assert_null(a.sid);
    ace_clear(&a);
}

static const struct { const char *name; const char *in, *want; } dn_cases[] = {
    {"brief example", "uid=Alice, ou=People,dc=Example,dc=com", "uid=alice,ou=people,dc=example,dc=com"},
    {"spaces around = and ,", "  CN = Bob Smith ,  DC = x  ", "cn=bob smith,dc=x"},
    {"interior spaces kept", "cn=Bob  Smith", "cn=bob  smith"},
    {"multi-valued RDN order kept", "CN=B + UID=a,dc=x", "cn=b+uid=a,dc=x"},
    {"escaped comma", "cn=Smith\\, Bob,dc=x", "cn=smith\\, bob,dc=x"},
    {"hex escape of comma", "cn=Smith\\2C Bob,dc=x", "cn=smith\\, bob,dc=x"},
    {"hex escape of letter lowercased", "cn=\\41bc", "cn=abc"},
    {"escaped specials", "cn=a\\+b\\;c\\<d\\>e\\\"f\\\\g", "cn=a\\+b\\;c\\<d\\>e\\\"f\\\\g"},
    {"leading hash and space escaped", "cn=\\#x,cn=\\ y", "cn=\\#x,cn=\\ y"},
    {"escaped trailing space kept", "cn=a\\ ", "cn=a\\ "},
    {"unescaped trailing space dropped", "cn=a   ", "cn=a"},
    {"control byte re-escaped", "cn=a\\0Ab", "cn=a\\0ab"},
    {"equals escaped uniformly", "cn=a=b", "cn=a\\=b"},
    {"utf-8 kept", "cn=J\xc3\xb6rg", "cn=j\xc3\xb6rg"},
    {"utf-8 hex escaped form", "cn=J\\C3\\B6rg", "cn=j\xc3\xb6rg"},
    {"hexstring value", "cn=#04024869", "cn=#04024869"},
    {"hexstring uppercase", "CN=#0402AB", "cn=#0402ab"},
    {"numeric oid type", "2.5.4.3=x", "2.5.4.3=x"},
    {"empty value", "cn=,dc=x", "cn=,dc=x"},
};

static void dn_normalize_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < N(dn_cases); i++) {
        char out[512], again[512], err[RN_ERRLEN] = "";
        if (dn_normalize(dn_cases[i].in, out, sizeof out, err, sizeof err) != 0)
            fail_msg("case '%s': %s", dn_cases[i].name, err);
        if (strcmp(out, dn_cases[i].want) != 0)
            fail_msg("case '%s': got '%s'", dn_cases[i].name, out);
        assert_int_equal(dn_normalize(out, again, sizeof again, err, sizeof err), 0);
        if (strcmp(again, out) != 0)   /* idempotent */
            fail_msg("case '%s': not idempotent '%s'", dn_cases[i].name, again);
    }
}

static const struct { const char *name; const char *in, *err; } dn_bad_cases[] = {
    {"empty", "", "empty DN"},
    {"spaces", "   ", "empty DN"},
    {"no equals", "Alice", "expected attribute=value at 'Alice'"},
    {"trailing comma", "cn=a,", "empty RDN"},
    {"leading comma", ",cn=a", "empty RDN"},
    {"empty type", "=a", "expected attribute=value at '=a'"},
    {"bad escape", "cn=a\\q", "bad escape '\\q'"},
    {"escape at end", "cn=a\\", "bad escape '\\'"},
    {"unescaped quote", "cn=\"a\"", "unescaped '\"' in value"},
    {"unescaped semicolon", "cn=a;b", "unescaped ';' in value"},
    {"unescaped angle", "cn=<a>", "unescaped '<' in value"},
    {"odd hexstring", "cn=#abc", "malformed #hex value"},
    {"hexstring garbage", "cn=#ab x", "malformed #hex value"},
    {"type with space inside", "c n=a", "expected attribute=value at 'c n=a'"},
};

static void dn_normalize_refuses_malformed(void **state)
{
    (void)state;
    for (size_t i = 0; i < N(dn_bad_cases); i++) {
        char out[512], err[RN_ERRLEN] = "";
        if (dn_normalize(dn_bad_cases[i].in, out, sizeof out, err, sizeof err) != -1)
            fail_msg("case '%s': accepted as '%s'", dn_bad_cases[i].name, out);
        if (strcmp(err, dn_bad_cases[i].err) != 0)
            fail_msg("case '%s': error '%s'", dn_bad_cases[i].name, err);
    }
    char small[8], err[RN_ERRLEN];
    assert_int_equal(dn_normalize("cn=abcdefgh", small, sizeof small, err, sizeof err), -1);
    assert_string_equal(err, "DN too long");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(canonical_strings_round_trip),
        cmocka_unit_test(non_canonical_inputs_normalise),
        cmocka_unit_test(malformed_values_give_exact_errors),
        cmocka_unit_test(overlong_value_is_refused),
        cmocka_unit_test(dn_principal_is_normalised_and_copied),
        cmocka_unit_test(sid_principal_is_canonical_and_copied),
        cmocka_unit_test(dn_normalize_table),
        cmocka_unit_test(dn_normalize_refuses_malformed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
