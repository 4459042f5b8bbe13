/* Unit tests for change: entry editing, diffs, and LDIF rendering (RFC 2849): each change
 * type, base64 for unsafe values (leading space/colon/less-than, trailing space, non-ASCII,
 * CR/LF), line folding at 76 columns, golden outputs. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>
#include "directory/change.h"
#include "directory/base/util.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

static void safe_values(void **state)
{
    (void)state;
    static const struct { const char *name, *v; bool safe; } cases[] = {
        {"plain", "Tls", true},
        {"empty", "", true},
        {"inner space", "CRM Application", true},
        {"backslash", "NT AUTHORITY\\ANONYMOUS LOGON", true},
        {"inner colon", "0.0.0.0:25", true},
        {"leading space", " x", false},
        {"leading colon", ":x", false},
        {"leading less-than", "<file:///etc/passwd", false},
        {"trailing space", "x ", false},
        {"newline", "a\nb", false},
        {"carriage return", "a\rb", false},
        {"non-ascii", "caf\xc3\xa9", false},
        {"inner less-than", "a<b", true},
    };
    for (size_t i = 0; i < N(cases); i++)
        if (ldif_value_safe(cases[i].v, strlen(cases[i].v)) != cases[i].safe)
            fail_msg("case '%s': expected %s", cases[i].name, cases[i].safe ? "safe" : "unsafe");
}

static void ldif_each_change_type(void **state)
{
    (void)state;
    struct changeset *cs = changeset_new();
    struct dir_entry e;
    dir_entry_init(&e, "cn=Scanner,cn=node1,ou=Relay,dc=example,dc=com");
    dir_entry_add(&e, "objectClass", "relayReceiveConnector");
    dir_entry_add(&e, "cn", "Scanner");
    dir_entry_add(&e, "relayBinding", "0.0.0.0:25");
    dir_entry_add(&e, "relayBinding", "[::]:25");
    dir_entry_add(&e, "relayBinding", "0.0.0.0:25");    /* duplicate: ignored */
    changeset_add_entry(cs, &e);
    const char *ace = "allow; NT AUTHORITY\\ANONYMOUS LOGON; ms-Exch-SMTP-Submit";
    changeset_modify(cs, e.dn, MOD_ADD, "relayAce", &ace, 1);
    changeset_modify(cs, e.dn, MOD_DELETE, "relayBanner", NULL, 0);
    const char *fq = "relay.example.com";
    changeset_modify(cs, e.dn, MOD_REPLACE, "relayFqdn", &fq, 1);
    changeset_modify(cs, e.dn, MOD_REPLACE, "description", NULL, 0);
    changeset_delete_entry(cs, e.dn);
    char *ldif = changeset_ldif(cs);
    assert_string_equal(ldif,
        "dn: cn=Scanner,cn=node1,ou=Relay,dc=example,dc=com\n"
        "changetype: add\n"
        "objectClass: relayReceiveConnector\n"
        "cn: Scanner\n"
        "relayBinding: 0.0.0.0:25\n"
        "relayBinding: [::]:25\n"
        "\n"
        "dn: cn=Scanner,cn=node1,ou=Relay,dc=example,dc=com\n"
        "changetype: modify\n"
        "add: relayAce\n"
        "relayAce: allow; NT AUTHORITY\\ANONYMOUS LOGON; ms-Exch-SMTP-Submit\n"
        "-\n"
        "delete: relayBanner\n"
        "-\n"
        "replace: relayFqdn\n"
        "relayFqdn: relay.example.com\n"
        "-\n"
        "replace: description\n"
        "-\n"
        "\n"
        "dn: cn=Scanner,cn=node1,ou=Relay,dc=example,dc=com\n"
        "changetype: delete\n");
    assert_int_equal(cs->nchanges, 3);      /* consecutive modifies of one DN share a record */
    free(ldif);
    dir_entry_clear(&e);
    changeset_free(&cs);
    assert_null(cs);
}

static void ldif_base64(void **state)
{
    (void)state;
    static const struct { const char *v, *line; } cases[] = {
        {" lead", "description:: IGxlYWQ=\n"},
        {"trail ", "description:: dHJhaWwg\n"},
        {":x", "description:: Ong=\n"},
        {"<x", "description:: PHg=\n"},
        {"caf\xc3\xa9", "description:: Y2Fmw6k=\n"},
        {"a\nb", "description:: YQpi\n"},
        {"", "description:\n"},
    };
    for (size_t i = 0; i < N(cases); i++) {
        struct changeset *cs = changeset_new();
        changeset_modify(cs, "cn=x", MOD_ADD, "description", &cases[i].v, 1);
        char *ldif = changeset_ldif(cs);
        char *want = xasprintf("dn: cn=x\nchangetype: modify\nadd: description\n%s-\n",
                               cases[i].line);
        assert_string_equal(ldif, want);
        free(want);
        free(ldif);
        changeset_free(&cs);
    }
    /* an unsafe DN is base64 too (dn::) */
    struct changeset *cs = changeset_new();
    changeset_delete_entry(cs, "cn=Caf\xc3\xa9,dc=example,dc=com");
    char *ldif = changeset_ldif(cs);
    assert_string_equal(ldif, "dn:: Y249Q2Fmw6ksZGM9ZXhhbXBsZSxkYz1jb20=\nchangetype: delete\n");
    free(ldif);
    changeset_free(&cs);
}

/* Unfold RFC 2849 continuation lines (newline + one space) to check nothing was lost. */
static char *unfold(const char *s)
{
    char *out = xstrdup(s), *w = out;
    for (const char *p = s; *p; p++) {
        if (p[0] == '\n' && p[1] == ' ') {
            p++;
            continue;
        }
        *w++ = *p;
    }
    *w = '\0';
    return out;
}

static void ldif_folding(void **state)
{
    (void)state;
    char value[301];
    for (size_t i = 0; i < 300; i++)
        value[i] = (char)('a' + i % 26);
    value[300] = '\0';
    const char *v = value;
    struct changeset *cs = changeset_new();
    changeset_modify(cs, "cn=x", MOD_REPLACE, "relayBanner", &v, 1);
    char *ldif = changeset_ldif(cs);
    /* every physical line is at most 76 columns, continuations start with one space */
    size_t lines = 0, cont = 0;
    for (char *p = ldif; *p;) {
        char *nl = strchr(p, '\n');
        assert_non_null(nl);
        assert_true(nl - p <= 76);
        if (*p == ' ')
            cont++;
        lines++;
        p = nl + 1;
    }
    assert_int_equal(cont, 4);   /* "relayBanner: " + 300 = 313 chars: 76 + 3*75 + 12 */
    assert_int_equal(lines, 5 + cont);   /* dn, changetype, replace, value, "-" */
    char *flat = unfold(ldif);
    char *want = xasprintf("dn: cn=x\nchangetype: modify\nreplace: relayBanner\n"
                           "relayBanner: %s\n-\n", value);
    assert_string_equal(flat, want);
    free(want);
    free(flat);
    free(ldif);
    changeset_free(&cs);
}

static void entry_editing(void **state)
{
    (void)state;
    struct dir_entry e, c;
    dir_entry_init(&e, "cn=a");
    assert_null(dir_entry_get(&e, "relayAce"));
    dir_entry_add(&e, "relayAce", "allow; Everyone; ms-Exch-SMTP-Submit");
    dir_entry_add(&e, "RELAYACE", "deny; Everyone; ms-Exch-SMTP-Submit");
    assert_int_equal(dir_entry_get(&e, "relayace")->nvalues, 2);
    assert_string_equal(dir_entry_get(&e, "relayace")->name, "relayAce");
    assert_true(dir_entry_remove(&e, "relayAce", "allow; Everyone; ms-Exch-SMTP-Submit"));
    assert_false(dir_entry_remove(&e, "relayAce", "allow; Everyone; ms-Exch-SMTP-Submit"));
    dir_entry_set1(&e, "relayFqdn", "x.example.com");
    dir_entry_copy(&c, &e);
    dir_entry_set1(&e, "relayFqdn", NULL);
    assert_null(dir_entry_first(&e, "relayFqdn"));
    assert_string_equal(dir_entry_first(&c, "relayFqdn"), "x.example.com");
    assert_true(dir_entry_remove(&c, "relayAce", "deny; Everyone; ms-Exch-SMTP-Submit"));
    assert_null(dir_entry_get(&c, "relayAce"));   /* last value gone: attribute gone */
    dir_entry_clear(&e);
    dir_entry_clear(&c);
}

static void diff_replace_and_by_value(void **state)
{
    (void)state;
    struct dir_entry o, n;
    dir_entry_init(&o, "cn=a");
    dir_entry_add(&o, "relayFqdn", "old.example.com");
    dir_entry_add(&o, "description", "gone");
    dir_entry_add(&o, "relayAce", "A");
    dir_entry_add(&o, "relayAce", "B");
    dir_entry_add(&o, "relayBinding", "0.0.0.0:25");
    dir_entry_copy(&n, &o);
    struct changeset *cs = changeset_new();
    static const char *const by_value[] = {"relayAce", NULL};
    assert_int_equal(changeset_diff(cs, &o, &n, by_value), 0);
    assert_int_equal(cs->nchanges, 0);
    dir_entry_set1(&n, "relayFqdn", "new.example.com");
    dir_entry_set1(&n, "description", NULL);
    dir_entry_remove(&n, "relayAce", "A");
    dir_entry_add(&n, "relayAce", "C");
    dir_entry_add(&n, "relayRequireTLS", "TRUE");
    assert_int_equal(changeset_diff(cs, &o, &n, by_value), 5);
    char *ldif = changeset_ldif(cs);
    assert_string_equal(ldif,
        "dn: cn=a\nchangetype: modify\n"
        "replace: relayFqdn\nrelayFqdn: new.example.com\n-\n"
        "replace: description\n-\n"
        "delete: relayAce\nrelayAce: A\n-\n"
        "add: relayAce\nrelayAce: C\n-\n"
        "replace: relayRequireTLS\nrelayRequireTLS: TRUE\n-\n");
    free(ldif);
    changeset_free(&cs);
    dir_entry_clear(&o);
    dir_entry_clear(&n);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(safe_values),
        cmocka_unit_test(ldif_each_change_type),
        cmocka_unit_test(ldif_base64),
        cmocka_unit_test(ldif_folding),
        cmocka_unit_test(entry_editing),
        cmocka_unit_test(diff_replace_and_by_value),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
