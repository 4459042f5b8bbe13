/* Unit tests for the policy stages: every reply of docs/permission-model.md §6 that policy.h
 * produces, in the §10 order, with the right and the ACE each verdict names. ACEs are written
 * as admins write them (ace_parse); tokens are the three shapes of token.h. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "directory/policy.h"
#include "directory/base/util.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))
#define MAXACE 6

#define ANON "NT AUTHORITY\\ANONYMOUS LOGON"
#define AUTHU "NT AUTHORITY\\Authenticated Users"
#define EXTSEC "MS Exchange\\Externally Secured Servers"
#define SUBMIT "ms-Exch-SMTP-Submit"
#define ANYRCPT "ms-Exch-SMTP-Accept-Any-Recipient"
#define ANYSND "ms-Exch-SMTP-Accept-Any-Sender"
#define AUTHDOM "ms-Exch-SMTP-Accept-Authoritative-Domain-Sender"
#define AUTHFLAG "ms-Exch-SMTP-Accept-Authentication-Flag"
#define BYPASS "ms-Exch-Bypass-Message-Size-Limit"

enum tok { T_ANON, T_USER, T_EXTSEC, T_PARTNER };

static struct rn_snapshot *snap;   /* accepted domains shared by every case */

static int setup(void **state)
{
    (void)state;
    static const struct { const char *d; enum rn_domain_type t; } doms[] = {
        {"example.com", DOMAIN_AUTHORITATIVE},
        {"*.corp.example.com", DOMAIN_INTERNAL_RELAY},
        {"partner.example.net", DOMAIN_EXTERNAL_RELAY},
        {"nobook.example.org", DOMAIN_AUTHORITATIVE},   /* AddressBookEnabled off below */
    };
    snap = snapshot_new();
    snap->domains = xcalloc(N(doms), sizeof *snap->domains);
    for (size_t i = 0; i < N(doms); i++) {
        snap->domains[i].dn = xasprintf("cn=%s,ou=domains", doms[i].d);
        snap->domains[i].domain = xstrdup(doms[i].d);
        snap->domains[i].type = doms[i].t;
    }
    snap->ndomains = N(doms);
    snap->domains[3].address_book_off = true;
    /* The directory's mail-enabled objects (the loader's recipient set). */
    static const char *const known[] = {"alice@example.com", "A.Smith@example.com",
                                        "\"bob smith\"@example.com", "a@example.com",
                                        "sales@example.com"};
    snap->recipients = rcptset_new();
    for (size_t i = 0; i < N(known); i++)
        rcptset_add(snap->recipients, known[i], strlen(known[i]));
    rcptset_freeze(snap->recipients);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    snapshot_unref(&snap);
    return 0;
}

static void conn_init(struct rn_connector *c, const char *const *aces)
{
    char err[RN_ERRLEN];
    connector_defaults(c);
    c->aces = xcalloc(MAXACE, sizeof *c->aces);
    for (size_t i = 0; i < MAXACE && aces && aces[i]; i++)
        if (ace_parse(aces[i], &c->aces[c->naces++], err, sizeof err) != 0)
            fail_msg("ace '%s': %s", aces[i], err);
}

static void token_make(struct token *t, enum tok k)
{
    static const char *groups[] = {"cn=staff,ou=groups,dc=example,dc=com"};
    switch (k) {
    case T_ANON: token_init_anonymous(t); break;
    case T_EXTSEC: token_init_externally_secured(t); break;
    case T_PARTNER: token_init_partner(t, "partner.example"); break;
    case T_USER:
        assert_int_equal(token_init_user(t, "alice", "uid=alice,ou=people,dc=example,dc=com",
                                         groups, 1), 0);
        break;
    }
}

struct want {
    bool ok;
    int code;
    const char *enh, *text;
    bool close;
    uint32_t right;
    int ace;
};

static void check(const char *name, const struct verdict *v, const struct want *w)
{
    if (v->ok != w->ok || v->code != w->code || strcmp(v->enh, w->enh) != 0 ||
        strcmp(v->text, w->text) != 0 || v->close != w->close || v->right != w->right ||
        v->ace != w->ace || !v->why || !*v->why)
        fail_msg("%s: got %s %d %s %s close=%d right=0x%x ace=%d (%s); want %s %d %s %s "
                 "close=%d right=0x%x ace=%d", name, v->ok ? "ok" : "refused", v->code, v->enh,
                 v->text, v->close, v->right, v->ace, v->why ? v->why : "no why",
                 w->ok ? "ok" : "refused", w->code, w->enh, w->text, w->close, w->right, w->ace);
}

#define SENDER_OK {true, 250, "2.1.0", "Sender OK", false, R_SUBMIT, 0}
#define NOT_AUTH(ace) {false, 530, "5.7.1", "Client was not authenticated", true, R_SUBMIT, ace}
#define NO_SUBMIT(ace) {false, 550, "5.7.1", \
    "Client does not have permissions to submit to this server", true, R_SUBMIT, ace}
#define STARTTLS_REQ {false, 451, "5.7.3", "STARTTLS is required to send mail", true, 0, -1}
#define TOO_BIG(ace) {false, 552, "5.3.4", "Message size exceeds fixed maximum message size", \
    false, R_BYPASS_SIZE_LIMIT, ace}

static const struct {
    const char *name;
    const char *aces[MAXACE];
    enum tok tok;
    bool require_tls, tls;
    uint64_t size;
    struct want w;
} mail_cases[] = {
    {"anonymous with Submit", {"allow; " ANON "; " SUBMIT}, T_ANON, false, false, 0, SENDER_OK},
    {"anonymous without Submit", {"allow; " ANON "; " ANYRCPT}, T_ANON, false, false, 0,
     NOT_AUTH(-1)},
    {"anonymous, Submit denied", {"allow; " ANON "; " SUBMIT, "deny; " ANON "; " SUBMIT}, T_ANON,
     false, false, 0, NOT_AUTH(1)},
    {"anonymous, no ACEs at all", {NULL}, T_ANON, false, false, 0, NOT_AUTH(-1)},
    {"authenticated without Submit", {"allow; " ANON "; " SUBMIT}, T_USER, false, false, 0,
     NO_SUBMIT(-1)},
    {"authenticated, Submit via Authenticated Users", {"allow; " AUTHU "; " SUBMIT}, T_USER,
     false, false, 0, SENDER_OK},
    {"authenticated, Submit via a group DN",
     {"allow; " ANON "; " ANYRCPT, "allow; cn=Staff,ou=groups,dc=example,dc=com; " SUBMIT},
     T_USER, false, false, 0, {true, 250, "2.1.0", "Sender OK", false, R_SUBMIT, 1}},
    {"authenticated, Submit denied for the user's DN",
     {"allow; " AUTHU "; " SUBMIT, "deny; uid=alice,ou=people,dc=example,dc=com; " SUBMIT},
     T_USER, false, false, 0, NO_SUBMIT(1)},
    {"externally secured without Submit is not anonymous", {"allow; " ANON "; " SUBMIT},
     T_EXTSEC, false, false, 0, NO_SUBMIT(-1)},
    {"externally secured with Submit", {"allow; " EXTSEC "; " SUBMIT}, T_EXTSEC, false, false, 0,
     SENDER_OK},
    {"RequireTLS without TLS comes first", {NULL}, T_ANON, true, false, 0, STARTTLS_REQ},
    {"RequireTLS with TLS", {"allow; " ANON "; " SUBMIT}, T_ANON, true, true, 0, SENDER_OK},
    {"SIZE= equal to the limit", {"allow; " ANON "; " SUBMIT}, T_ANON, false, false, 36700160,
     SENDER_OK},
    {"SIZE= above the limit", {"allow; " ANON "; " SUBMIT}, T_ANON, false, false, 36700161,
     TOO_BIG(-1)},
    {"SIZE= above the limit, bypass denied",
     {"allow; " ANON "; " SUBMIT ", " BYPASS, "deny; " ANON "; " BYPASS}, T_ANON, false, false,
     36700161, TOO_BIG(1)},
    {"SIZE= above the limit with Bypass-Message-Size-Limit",
     {"allow; " ANON "; " SUBMIT, "allow; " ANON "; " BYPASS}, T_ANON, false, false, 99999999,
     {true, 250, "2.1.0", "Sender OK", false, R_BYPASS_SIZE_LIMIT, 1}},
    {"Submit is checked before SIZE=", {NULL}, T_ANON, false, false, 99999999, NOT_AUTH(-1)},
};

static void mail_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < N(mail_cases); i++) {
        struct rn_connector c;
        struct token t;
        struct rights_eval r;
        struct verdict v;
        conn_init(&c, mail_cases[i].aces);
        c.require_tls = mail_cases[i].require_tls;
        token_make(&t, mail_cases[i].tok);
        acl_eval(c.aces, c.naces, &t, &r);
        policy_mail(&c, &r, &t, mail_cases[i].tls, mail_cases[i].size, &v);
        check(mail_cases[i].name, &v, &mail_cases[i].w);
        token_clear(&t);
        connector_clear(&c);
    }
}

#define RCPT_OK(right, ace) {true, 250, "2.1.5", "Recipient OK", false, right, ace}
#define NO_RELAY(ace) {false, 550, "5.7.1", "Unable to relay", false, R_ACCEPT_ANY_RECIPIENT, ace}
#define NOT_FOUND {false, 550, "5.1.10", \
    "RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address lookup", false, 0, -1}
#define TOO_MANY(ace) {false, 452, "4.5.3", "Too many recipients", false, R_BYPASS_SIZE_LIMIT, ace}
#define ANON_SUBMIT "allow; " ANON "; " SUBMIT

static const struct {
    const char *name;
    const char *aces[MAXACE];
    const char *rcpt;
    uint64_t nrcpt;
    struct want w;
} rcpt_cases[] = {
    {"authoritative domain", {ANON_SUBMIT}, "alice@example.com", 0, RCPT_OK(0, -1)},
    {"domain case-insensitive", {ANON_SUBMIT}, "alice@EXAMPLE.Com", 0, RCPT_OK(0, -1)},
    {"trailing dot ignored", {ANON_SUBMIT}, "alice@example.com.", 0, RCPT_OK(0, -1)},
    {"internal relay subdomain", {ANON_SUBMIT}, "bob@eu.corp.example.com", 0, RCPT_OK(0, -1)},
    {"external relay domain is accepted", {ANON_SUBMIT}, "x@partner.example.net", 0,
     RCPT_OK(0, -1)},
    {"outside domain without the right", {ANON_SUBMIT}, "bob@outside.example", 0, NO_RELAY(-1)},
    {"subdomain of an exact domain is outside", {ANON_SUBMIT}, "bob@sub.example.com", 0,
     NO_RELAY(-1)},
    {"outside domain with Accept-Any-Recipient", {ANON_SUBMIT, "allow; " ANON "; " ANYRCPT},
     "bob@outside.example", 0, RCPT_OK(R_ACCEPT_ANY_RECIPIENT, 1)},
    {"Accept-Any-Recipient denied",
     {"allow; " ANON "; " SUBMIT ", " ANYRCPT, "deny; " ANON "; " ANYRCPT},
     "bob@outside.example", 0, NO_RELAY(1)},
    {"address literal is never local", {ANON_SUBMIT}, "postmaster@[192.0.2.1]", 0, NO_RELAY(-1)},
    {"address literal relays with the right", {"allow; " ANON "; " ANYRCPT}, "x@[192.0.2.1]", 0,
     RCPT_OK(R_ACCEPT_ANY_RECIPIENT, 0)},
    {"bare postmaster is local", {ANON_SUBMIT}, "postmaster", 0, RCPT_OK(0, -1)},
    {"bare Postmaster any case", {ANON_SUBMIT}, "PostMaster", 0, RCPT_OK(0, -1)},
    {"bare local part other than postmaster", {ANON_SUBMIT}, "alice", 0, NO_RELAY(-1)},
    {"empty domain", {ANON_SUBMIT}, "alice@", 0, NO_RELAY(-1)},
    {"percent hack in an accepted domain", {ANON_SUBMIT}, "bob%outside.example@example.com", 0,
     NO_RELAY(-1)},
    {"bang path in an accepted domain", {ANON_SUBMIT}, "outside.example!bob@example.com", 0,
     NO_RELAY(-1)},
    {"quoted @ in an accepted domain", {ANON_SUBMIT}, "\"bob@outside.example\"@example.com", 0,
     NO_RELAY(-1)},
    {"quoted % in an accepted domain", {ANON_SUBMIT}, "\"bob%outside.example\"@example.com", 0,
     NO_RELAY(-1)},
    {"escaped @ in a quoted local part", {ANON_SUBMIT}, "\"bob\\@x\"@example.com", 0,
     NO_RELAY(-1)},
    {"quoted local part without routing", {ANON_SUBMIT}, "\"bob smith\"@example.com", 0,
     RCPT_OK(0, -1)},
    {"percent hack with Accept-Any-Recipient, then looked up", {ANON_SUBMIT, "allow; " ANON
     "; " ANYRCPT}, "bob%outside.example@example.com", 0, NOT_FOUND},
    {"percent hack with Accept-Any-Recipient, lookup off", {ANON_SUBMIT, "allow; " ANON "; "
     ANYRCPT}, "bob%outside.example@nobook.example.org", 0, RCPT_OK(0, -1)},
    {"unknown recipient in an Authoritative domain", {ANON_SUBMIT}, "bob@example.com", 0,
     NOT_FOUND},
    {"lookup is case-insensitive", {ANON_SUBMIT}, "ALICE@Example.COM", 0, RCPT_OK(0, -1)},
    {"an alias (relayMailAlias) is known", {ANON_SUBMIT}, "a.smith@example.com", 0,
     RCPT_OK(0, -1)},
    {"a group's address is known", {ANON_SUBMIT}, "Sales@example.com", 0, RCPT_OK(0, -1)},
    {"a near miss is unknown", {ANON_SUBMIT}, "alice2@example.com", 0, NOT_FOUND},
    {"postmaster@ an Authoritative domain", {ANON_SUBMIT}, "PostMaster@example.com", 0,
     RCPT_OK(0, -1)},
    {"AddressBookEnabled off: any local part", {ANON_SUBMIT}, "nobody@nobook.example.org", 0,
     RCPT_OK(0, -1)},
    {"InternalRelay: any local part", {ANON_SUBMIT}, "nobody@eu.corp.example.com", 0,
     RCPT_OK(0, -1)},
    {"ExternalRelay: any local part", {ANON_SUBMIT}, "nobody@partner.example.net", 0,
     RCPT_OK(0, -1)},
    {"Accept-Any-Recipient does not skip the lookup", {ANON_SUBMIT, "allow; " ANON "; "
     ANYRCPT}, "bob@example.com", 0, NOT_FOUND},
    {"a relay right still relays outside", {ANON_SUBMIT, "allow; " ANON "; " ANYRCPT},
     "bob@example.com.outside.example", 0, RCPT_OK(R_ACCEPT_ANY_RECIPIENT, 1)},
    {"bang path, Accept-Any-Recipient denied",
     {"allow; " ANON "; " SUBMIT ", " ANYRCPT, "deny; " ANON "; " ANYRCPT},
     "h!bob@example.com", 0, NO_RELAY(1)},
    {"199 accepted, the 200th is fine", {ANON_SUBMIT}, "a@example.com", 199, RCPT_OK(0, -1)},
    {"200 accepted: 452 4.5.3", {ANON_SUBMIT}, "a@example.com", 200, TOO_MANY(-1)},
    {"count limit comes before relay", {ANON_SUBMIT}, "a@outside.example", 200, TOO_MANY(-1)},
    {"bypass lifts the count limit", {ANON_SUBMIT, "allow; " ANON "; " BYPASS}, "a@example.com",
     5000, RCPT_OK(0, -1)},
    {"bypass denied keeps the limit", {ANON_SUBMIT ", " BYPASS, "deny; " ANON "; " BYPASS},
     "a@example.com", 200, TOO_MANY(1)},
};

static void rcpt_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < N(rcpt_cases); i++) {
        struct rn_connector c;
        struct token t;
        struct rights_eval r;
        struct verdict v;
        conn_init(&c, rcpt_cases[i].aces);
        token_make(&t, T_ANON);
        acl_eval(c.aces, c.naces, &t, &r);
        policy_rcpt(snap, &c, &r, rcpt_cases[i].rcpt, rcpt_cases[i].nrcpt, &v);
        check(rcpt_cases[i].name, &v, &rcpt_cases[i].w);
        token_clear(&t);
        connector_clear(&c);
    }
}

/* A snapshot whose set was never loaded knows nobody: every lookup fails closed. */
static void rcpt_without_set(void **state)
{
    (void)state;
    struct rn_snapshot *bare = snapshot_new();
    bare->domains = xcalloc(1, sizeof *bare->domains);
    bare->domains[0].dn = xstrdup("cn=example.com");
    bare->domains[0].domain = xstrdup("example.com");
    bare->domains[0].type = DOMAIN_AUTHORITATIVE;
    bare->ndomains = 1;
    assert_true(snapshot_needs_recipients(bare));
    static const char *const aces[MAXACE] = {ANON_SUBMIT};
    struct rn_connector c;
    struct token t;
    struct rights_eval r;
    struct verdict v;
    conn_init(&c, aces);
    token_make(&t, T_ANON);
    acl_eval(c.aces, c.naces, &t, &r);
    policy_rcpt(bare, &c, &r, "alice@example.com", 0, &v);
    static const struct want nf = NOT_FOUND;
    check("no recipient set loaded", &v, &nf);
    bare->domains[0].address_book_off = true;
    assert_false(snapshot_needs_recipients(bare));
    policy_rcpt(bare, &c, &r, "alice@example.com", 0, &v);
    static const struct want ok = RCPT_OK(0, -1);
    check("lookup off, no set needed", &v, &ok);
    bare->domains[0].address_book_off = false;
    bare->domains[0].type = DOMAIN_INTERNAL_RELAY;
    assert_false(snapshot_needs_recipients(bare));
    token_clear(&t);
    connector_clear(&c);
    snapshot_unref(&bare);
}

#define PARTNER "MS Exchange\\Partner Servers"
#define PASS(right, ace) {true, 250, "2.0.0", "OK", false, right, ace}
#define SEND_AS(right, ace) {false, 550, "5.7.1", \
    "Client does not have permissions to send as this sender", false, right, ace}
#define ANON_SEND_AS(right, ace) {false, 550, "5.7.1", \
    "Anonymous client does not have permissions to send as this sender", false, right, ace}

static const struct {
    const char *name;
    const char *aces[MAXACE];
    enum tok tok;
    const char *sender;
    struct want w;
} sender_cases[] = {
    {"null reverse path", {NULL}, T_ANON, "", PASS(0, -1)},
    {"anonymous default group: internal sender",
     {"allow; " ANON "; " SUBMIT ", " ANYSND ", " AUTHDOM}, T_ANON, "ceo@example.com",
     PASS(R_ACCEPT_AUTHDOM_SENDER, 0)},
    {"anonymous default group: outside sender",
     {"allow; " ANON "; " SUBMIT ", " ANYSND ", " AUTHDOM}, T_ANON, "x@outside.example",
     PASS(R_ACCEPT_ANY_SENDER, 0)},
    {"anonymous without Authoritative-Domain-Sender claims an internal sender",
     {"allow; " ANON "; " SUBMIT ", " ANYSND}, T_ANON, "ceo@example.com",
     ANON_SEND_AS(R_ACCEPT_AUTHDOM_SENDER, -1)},
    {"Accept-Any-Sender does not cover internal relay domains",
     {"allow; " ANON "; " SUBMIT ", " ANYSND}, T_ANON, "a@x.corp.example.com",
     ANON_SEND_AS(R_ACCEPT_AUTHDOM_SENDER, -1)},
    {"an external relay domain is not internal", {"allow; " ANON "; " ANYSND}, T_ANON,
     "a@partner.example.net", PASS(R_ACCEPT_ANY_SENDER, 0)},
    {"Authoritative-Domain-Sender does not cover outside senders",
     {"allow; " ANON "; " SUBMIT ", " AUTHDOM}, T_ANON, "x@outside.example",
     ANON_SEND_AS(R_ACCEPT_ANY_SENDER, -1)},
    {"Authoritative-Domain-Sender denied",
     {"allow; " ANON "; " AUTHDOM, "deny; " ANON "; " AUTHDOM}, T_ANON, "ceo@Example.COM.",
     ANON_SEND_AS(R_ACCEPT_AUTHDOM_SENDER, 1)},
    {"address literal sender is outside", {"allow; " ANON "; " ANYSND}, T_ANON, "a@[10.0.0.1]",
     PASS(R_ACCEPT_ANY_SENDER, 0)},
    {"sender without a domain is invalid", {"allow; " ANON "; " ANYSND ", " AUTHDOM}, T_ANON,
     "postmaster", ANON_SEND_AS(0, -1)},
    {"sender with an empty local part is invalid", {"allow; " ANON "; " ANYSND}, T_ANON,
     "@example.com", ANON_SEND_AS(0, -1)},
    {"authenticated user sends as her own address", {"allow; " AUTHU "; " SUBMIT}, T_USER,
     "alice@example.com", PASS(0, -1)},
    {"authenticated user: own alias, any case", {"allow; " AUTHU "; " SUBMIT}, T_USER,
     "A.Smith@example.com", PASS(0, -1)},
    {"authenticated user claims someone else", {"allow; " AUTHU "; " SUBMIT}, T_USER,
     "bob@example.com", SEND_AS(R_ACCEPT_AUTHDOM_SENDER, -1)},
    {"authenticated user claims an outside sender", {"allow; " AUTHU "; " SUBMIT}, T_USER,
     "bob@outside.example", SEND_AS(R_ACCEPT_ANY_SENDER, -1)},
    {"externally secured may send as anyone internal",
     {"allow; " EXTSEC "; " SUBMIT ", " ANYSND ", " AUTHDOM}, T_EXTSEC, "ceo@example.com",
     PASS(R_ACCEPT_AUTHDOM_SENDER, 0)},
    {"externally secured without the right gets the authenticated text",
     {"allow; " EXTSEC "; " SUBMIT}, T_EXTSEC, "ceo@example.com",
     SEND_AS(R_ACCEPT_AUTHDOM_SENDER, -1)},
    {"owned addresses do not help an anonymous session", {"allow; " ANON "; " SUBMIT}, T_ANON,
     "alice@example.com", ANON_SEND_AS(R_ACCEPT_AUTHDOM_SENDER, -1)},
    {"a partner sends from its own domain", {"allow; " PARTNER "; " SUBMIT}, T_PARTNER,
     "sales@Partner.Example", PASS(0, -1)},
    {"a partner sends from a host within its domain", {"allow; " PARTNER "; " SUBMIT},
     T_PARTNER, "x@mail.partner.example", PASS(0, -1)},
    {"a partner claims another domain", {"allow; " PARTNER "; " SUBMIT}, T_PARTNER,
     "x@otherpartner.example", SEND_AS(R_ACCEPT_ANY_SENDER, -1)},
    {"a partner claims an internal sender", {"allow; " PARTNER "; " SUBMIT}, T_PARTNER,
     "ceo@example.com", SEND_AS(R_ACCEPT_AUTHDOM_SENDER, -1)},
};

static void sender_table(void **state)
{
    (void)state;
    static const char *const owned[] = {"alice@example.com", "a.smith@example.com"};
    for (size_t i = 0; i < N(sender_cases); i++) {
        struct rn_connector c;
        struct token t;
        struct rights_eval r;
        struct verdict v;
        conn_init(&c, sender_cases[i].aces);
        token_make(&t, sender_cases[i].tok);
        acl_eval(c.aces, c.naces, &t, &r);
        policy_sender(snap, &r, &t, sender_cases[i].sender, owned, N(owned), &v);
        check(sender_cases[i].name, &v, &sender_cases[i].w);
        token_clear(&t);
        connector_clear(&c);
    }
}

static void auth_result(void **state)
{
    (void)state;
    const char *aces[] = {"allow; " AUTHU "; " SUBMIT ", " ANYRCPT,
                          "deny; uid=mallory,ou=people,dc=example,dc=com; " SUBMIT, NULL};
    struct rn_connector c;
    conn_init(&c, aces);
    struct token t;
    struct rights_eval r;
    struct verdict v;
    token_make(&t, T_USER);
    acl_eval(c.aces, c.naces, &t, &r);
    policy_auth_result(&r, &v);
    check("user with Submit", &v,
          &(struct want){true, 235, "2.7.0", "Authentication successful", false, R_SUBMIT, 0});
    token_clear(&t);
    assert_int_equal(token_init_user(&t, "mallory", "uid=mallory,ou=people,dc=example,dc=com",
                                     NULL, 0), 0);
    acl_eval(c.aces, c.naces, &t, &r);
    policy_auth_result(&r, &v);
    check("Submit denied for the user", &v,
          &(struct want){false, 535, "5.7.3", "Authentication unsuccessful", false, R_SUBMIT, 1});
    token_clear(&t);
    connector_clear(&c);
    conn_init(&c, (const char *[]){"allow; " ANON "; " SUBMIT, NULL});
    token_make(&t, T_USER);
    acl_eval(c.aces, c.naces, &t, &r);
    policy_auth_result(&r, &v);
    check("valid credentials, no Submit for the user's token", &v,
          &(struct want){false, 535, "5.7.3", "Authentication unsuccessful", false, R_SUBMIT, -1});
    token_clear(&t);
    connector_clear(&c);
}

static const char TOTAL[] = "The maximum number of concurrent server connections has exceeded "
                            "a limit, closing transmission channel";
static const char SOURCE[] = "The maximum number of concurrent connections has exceeded a "
                             "limit, closing transmission channel";

static void connect_limits(void **state)
{
    (void)state;
    static const struct {
        const char *name;
        uint64_t max, per_source, pct, total, from;
        const char *text;   /* NULL: accepted */
    } t[] = {
        {"unlimited", RN_UNLIMITED, RN_UNLIMITED, 2, 100000, 5000, NULL},
        {"below MaxInboundConnection", 3, RN_UNLIMITED, 100, 2, 0, NULL},
        {"MaxInboundConnection 3, fourth session", 3, RN_UNLIMITED, 100, 3, 0, TOTAL},
        {"total checked before per source", 3, 1, 100, 3, 5, TOTAL},
        {"per source 2, third from one client", RN_UNLIMITED, 2, 2, 10, 2, SOURCE},
        {"per source 2, second from one client", RN_UNLIMITED, 2, 2, 10, 1, NULL},
        {"percentage: 2% of 5000 = 100 per source", 5000, RN_UNLIMITED, 2, 0, 99, NULL},
        {"percentage: the 101st from one source", 5000, RN_UNLIMITED, 2, 0, 100, SOURCE},
        {"percentage rounds up: ceil(3 x 2%) = 1", 3, RN_UNLIMITED, 2, 0, 0, NULL},
        {"percentage rounds up, second from one source", 3, RN_UNLIMITED, 2, 1, 1, SOURCE},
        {"percentage of what remains: ceil(50 x 2%) = 1", 100, RN_UNLIMITED, 2, 50, 1, SOURCE},
        {"100%: a source may hold what remains", 10, RN_UNLIMITED, 100, 5, 4, NULL},
        {"100%: but not more than what remains", 10, RN_UNLIMITED, 100, 5, 5, SOURCE},
        {"0% refuses everyone", 10, RN_UNLIMITED, 0, 0, 0, SOURCE},
        {"percentage needs a total limit", RN_UNLIMITED, RN_UNLIMITED, 1, 1000, 999, NULL},
    };
    for (size_t i = 0; i < N(t); i++) {
        struct rn_connector c;
        connector_defaults(&c);
        c.max_inbound = t[i].max;
        c.max_inbound_per_source = t[i].per_source;
        c.max_inbound_pct_per_source = t[i].pct;
        struct verdict v;
        policy_connect_limits(&c, t[i].total, t[i].from, &v);
        struct want w = {true, 250, "2.0.0", "OK", false, 0, -1};
        if (t[i].text)
            w = (struct want){false, 421, "4.3.2", t[i].text, true, 0, -1};
        check(t[i].name, &v, &w);
    }
}

static void size_and_headers(void **state)
{
    (void)state;
    struct rn_connector c, cb;
    conn_init(&c, (const char *[]){ANON_SUBMIT, NULL});
    conn_init(&cb, (const char *[]){ANON_SUBMIT, "allow; " ANON "; " BYPASS, NULL});
    struct token t;
    struct rights_eval r, rb;
    struct verdict v;
    token_make(&t, T_ANON);
    acl_eval(c.aces, c.naces, &t, &r);
    acl_eval(cb.aces, cb.naces, &t, &rb);
    const struct want ok = {true, 250, "2.0.0", "OK", false, 0, -1};

    policy_message_size(&c, &r, 36700160, &v);
    check("message at the limit", &v, &ok);
    policy_message_size(&c, &r, 36700161, &v);
    check("message above the limit", &v, &(struct want)TOO_BIG(-1));
    policy_message_size(&cb, &rb, 36700161, &v);
    check("message above the limit, bypass", &v,
          &(struct want){true, 250, "2.0.0", "OK", false, R_BYPASS_SIZE_LIMIT, 1});
    c.max_message_size = RN_UNLIMITED;
    policy_message_size(&c, &r, UINT64_MAX - 1, &v);
    check("unlimited message size", &v, &ok);

    const struct want hdr = {false, 552, "5.3.4", "Header size exceeds fixed maximum size", false,
                             R_BYPASS_SIZE_LIMIT, -1};
    const struct want hop = {false, 554, "5.4.6", "Hop count exceeded - possible mail loop",
                             false, 0, -1};
    policy_headers(&c, &r, 131072, 60, &v);
    check("header and hops at their limits", &v, &ok);
    policy_headers(&c, &r, 131073, 0, &v);
    check("header above MaxHeaderSize", &v, &hdr);
    policy_headers(&c, &r, 100, 61, &v);
    check("61 Received: headers", &v, &hop);
    policy_headers(&c, &r, 131073, 61, &v);
    check("header size is checked before hops", &v, &hdr);
    policy_headers(&cb, &rb, 131073, 1, &v);
    check("bypass lifts MaxHeaderSize", &v,
          &(struct want){true, 250, "2.0.0", "OK", false, R_BYPASS_SIZE_LIMIT, 1});
    policy_headers(&cb, &rb, 131073, 61, &v);
    check("bypass does not lift MaxHopCount", &v, &hop);
    token_clear(&t);
    connector_clear(&c);
    connector_clear(&cb);
}

static void initial_token_and_auth_as(void **state)
{
    (void)state;
    struct rn_connector c;
    connector_defaults(&c);
    struct token t;
    c.auth = AUTH_TLS;
    policy_initial_token(&c, &t);
    assert_int_equal(t.wk, 1u << WK_ANONYMOUS);
    assert_false(t.authenticated);
    token_clear(&t);
    c.auth = AUTH_TLS | AUTH_EXTERNAL_AUTHORITATIVE;
    policy_initial_token(&c, &t);
    assert_int_equal(t.wk, 1u << WK_EXTERNALLY_SECURED);
    token_clear(&t);
    connector_clear(&c);

    static const struct {
        const char *name;
        enum tok tok;
        const char *aces[MAXACE];
        const char *want;
    } as[] = {
        {"anonymous, default group", T_ANON, {"allow; " ANON "; " SUBMIT ", " ANYSND ", " AUTHDOM},
         "Anonymous"},
        {"anonymous holding nothing is still anonymous", T_ANON, {NULL}, "Anonymous"},
        {"externally secured (ExchangeServers)", T_EXTSEC,
         {"allow; " EXTSEC "; " SUBMIT ", " ANYSND ", " AUTHDOM ", " AUTHFLAG}, "Internal"},
        {"externally secured without the authentication flag", T_EXTSEC,
         {"allow; " EXTSEC "; " SUBMIT ", " ANYSND}, "Anonymous"},
        {"externally secured holding no sender rights", T_EXTSEC, {"allow; " EXTSEC "; " SUBMIT},
         "Internal"},
        {"user (MUA submission)", T_USER, {"allow; " AUTHU "; " SUBMIT ", " ANYRCPT}, "Internal"},
        {"user with Accept-Any-Sender, no flag", T_USER, {"allow; " AUTHU "; " SUBMIT ", " ANYSND},
         "Anonymous"},
        {"user with Accept-Any-Sender and the flag", T_USER,
         {"allow; " AUTHU "; " SUBMIT ", " ANYSND ", " AUTHFLAG}, "Internal"},
        {"partner", T_PARTNER, {"allow; MS Exchange\\Partner Servers; " SUBMIT}, "Partner"},
    };
    for (size_t i = 0; i < N(as); i++) {
        struct rights_eval r;
        conn_init(&c, as[i].aces);
        token_make(&t, as[i].tok);
        acl_eval(c.aces, c.naces, &t, &r);
        const char *got = policy_auth_as(&r, &t);
        if (strcmp(got, as[i].want) != 0)
            fail_msg("%s: %s want %s", as[i].name, got, as[i].want);
        token_clear(&t);
        connector_clear(&c);
    }
}

/* policy_tls_identity: a node's certificate on an ExchangeServer connector, and every way
 * of staying anonymous. */
static void tls_identity(void **state)
{
    (void)state;
    struct rn_snapshot *s = snapshot_new();
    s->node_certs = calloc(1, sizeof *s->node_certs);
    s->nnode_certs = 1;
    s->node_certs[0].dn = strdup("cn=node2,cn=Default-Site,cn=Sites,ou=Relay,dc=example,dc=com");
    s->node_certs[0].name = strdup("node2");
    memset(s->node_certs[0].sha256, 0xab, 32);
    unsigned char node[32], other[32];
    memset(node, 0xab, 32);
    memset(other, 0xcd, 32);
    struct rn_connector c;
    connector_defaults(&c);
    struct token t = {0};
    c.auth = AUTH_TLS | AUTH_EXCHANGE_SERVER;
    assert_null(policy_tls_identity(s, &c, node, &t));
    assert_true(t.authenticated);
    assert_int_equal(t.wk, 1u << WK_EXCHANGE_SERVERS | 1u << WK_HUB_TRANSPORT |
                           1u << WK_AUTHENTICATED_USERS | 1u << WK_EVERYONE);
    assert_string_equal(t.name, "node2");
    assert_true(token_holds(&t, -1, "cn=node2,cn=default-site,cn=sites,ou=relay,dc=example,dc=com"));
    token_clear(&t);
    assert_string_equal(policy_tls_identity(s, &c, other, &t), "not-a-node-certificate");
    assert_string_equal(policy_tls_identity(s, &c, NULL, &t), "no-certificate");
    c.auth = AUTH_TLS;
    assert_string_equal(policy_tls_identity(s, &c, node, &t),
                        "connector-without-ExchangeServer");
    assert_null(t.name);                       /* untouched on every refusal */
    connector_clear(&c);
    snapshot_unref(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(tls_identity),
        cmocka_unit_test(mail_table),
        cmocka_unit_test(rcpt_table),
        cmocka_unit_test(rcpt_without_set),
        cmocka_unit_test(sender_table),
        cmocka_unit_test(auth_result),
        cmocka_unit_test(connect_limits),
        cmocka_unit_test(size_and_headers),
        cmocka_unit_test(initial_token_and_auth_as),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
