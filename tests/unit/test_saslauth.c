/* Unit tests for saslauth (SMTP AUTH through libsasl2), the parts that need no real
 * directory: mechanism selection, base64 and RFC 4954 edge cases ("=", "*", bad base64,
 * overlong lines), the LOGIN prompts, login validation before any directory contact, and
 * the failure classes when the directory is down (connection refused) or silent (accepts
 * the connection, never answers: a paused slapd) -- 454 material, within ldap_timeout.
 * "The directory was not touched" is observed on a listening socket the bootstrap points
 * at: any lookup would leave a connection in its backlog. No password ever reaches `why`. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "directory/bootstrap.h"
#include "node/smtp/saslauth.h"

#define SECRET "Pw-Secret-4711"

struct fx {
    int silent;                 /* listening, never accepts: a directory that does not answer */
    int dead;                   /* bound, not listening: connection refused */
    struct rn_bootstrap silent_b, dead_b;
};

static int bound_socket(bool listening, char *uri, size_t len)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &al) != 0 || (listening && listen(fd, 8) != 0))
        return -1;
    snprintf(uri, len, "ldap://127.0.0.1:%u", ntohs(a.sin_port));
    return fd;
}

static int boot(struct rn_bootstrap *b, const char *uri)
{
    char err[256];
    return bootstrap_load(NULL, b, err, sizeof err) == 0 &&
                   bootstrap_set(b, "uri", uri, err, sizeof err) == 0 &&
                   bootstrap_set(b, "base_dn", "ou=Relay,dc=example,dc=com", err,
                                 sizeof err) == 0 &&
                   bootstrap_set(b, "ldap_timeout", "1", err, sizeof err) == 0
               ? 0 : -1;
}

static int group_setup(void **state)
{
    static struct fx f;
    char uri[64], err[256];
    if (saslauth_init(NULL, err, sizeof err) != 0)
        return -1;
    if ((f.silent = bound_socket(true, uri, sizeof uri)) < 0 || boot(&f.silent_b, uri) != 0)
        return -1;
    if ((f.dead = bound_socket(false, uri, sizeof uri)) < 0 || boot(&f.dead_b, uri) != 0)
        return -1;
    *state = &f;
    return 0;
}

static int group_teardown(void **state)
{
    struct fx *f = *state;
    bootstrap_clear(&f->silent_b);
    bootstrap_clear(&f->dead_b);
    close(f->silent);
    close(f->dead);
    saslauth_done();
    return 0;
}

/* True when something connected to the silent directory; the connection is taken away. */
static bool touched(struct fx *f)
{
    struct pollfd p = {.fd = f->silent, .events = POLLIN};
    bool any = false;
    while (poll(&p, 1, 0) == 1) {
        int c = accept(f->silent, NULL, NULL);
        if (c < 0)
            break;
        close(c);
        any = true;
    }
    return any;
}

static char *b64(const char *in, size_t len)
{
    static const char tab[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char *out = malloc(4 * ((len + 2) / 3) + 1), *o = out;
    for (size_t i = 0; i < len; i += 3) {
        unsigned v = (unsigned char)in[i] << 16;
        if (i + 1 < len)
            v |= (unsigned char)in[i + 1] << 8;
        if (i + 2 < len)
            v |= (unsigned char)in[i + 2];
        *o++ = tab[v >> 18 & 63];
        *o++ = tab[v >> 12 & 63];
        *o++ = i + 1 < len ? tab[v >> 6 & 63] : '=';
        *o++ = i + 2 < len ? tab[v & 63] : '=';
    }
    *o = '\0';
    return out;
}

struct step {
    enum saslauth_rc rc;
    char challenge[256];
    char why[640];
};

/* One step; the line is given as text (NULL = no initial response). */
/* An exchange as on a BasicAuth connector (PLAIN and LOGIN). */
static struct saslauth *basic_new(const struct rn_bootstrap *b)
{
    return saslauth_new(b, NULL, "node1.example.com", SASLAUTH_BASIC, NULL, 0);
}

static struct step run(struct saslauth *a, const char *mech, const char *line)
{
    struct step s;
    s.rc = saslauth_step(a, mech, line, line ? strlen(line) : 0, s.challenge,
                         sizeof s.challenge, s.why, sizeof s.why);
    assert_null(strstr(s.why, SECRET));
    return s;
}

/* AUTH PLAIN with authzid \0 authcid \0 password given as raw bytes. */
static struct step plain(struct fx *f, const struct rn_bootstrap *b, const char *raw, size_t len)
{
    struct saslauth *a = basic_new(b);
    assert_non_null(a);
    char *enc = b64(raw, len);
    struct step s = run(a, "PLAIN", enc);
    free(enc);
    saslauth_free(&a);
    assert_null(a);
    return s;
}

static void offered_mechanisms(void **state)
{
    static const struct { unsigned mechs; const char *want; } t[] = {
        {0, ""}, {SASLAUTH_BASIC, "PLAIN LOGIN"}, {SASLAUTH_GSSAPI, "GSSAPI"},
        {SASLAUTH_BASIC | SASLAUTH_GSSAPI, "GSSAPI PLAIN LOGIN"}, {SASLAUTH_LOGIN, "LOGIN"},
    };
    for (size_t i = 0; i < sizeof t / sizeof *t; i++) {
        char buf[64];
        saslauth_mech_names(t[i].mechs, buf, sizeof buf);
        assert_string_equal(buf, t[i].want);
    }
    assert_int_equal(saslauth_mech_bit("gssapi"), SASLAUTH_GSSAPI);
    assert_int_equal(saslauth_mech_bit("Plain"), SASLAUTH_PLAIN);
    assert_int_equal(saslauth_mech_bit("LOGIN"), SASLAUTH_LOGIN);
    assert_int_equal(saslauth_mech_bit("NTLM"), 0);
    assert_int_equal(saslauth_mech_bit("GSSAPIX"), 0);
}

/* A mechanism the connector does not offer is refused before libsasl2 sees it: GSSAPI on a
 * BasicAuth-only exchange, PLAIN on an Integrated-only one, and GSSAPI asked for while the
 * node has no keytab (gssapi_keytab empty: never offered). */
static void mechanisms_outside_the_set_are_504(void **state)
{
    struct fx *f = *state;
    static const struct { unsigned mechs; const char *mech; } t[] = {
        {SASLAUTH_BASIC, "GSSAPI"}, {SASLAUTH_GSSAPI, "PLAIN"}, {SASLAUTH_GSSAPI, "LOGIN"},
        {SASLAUTH_GSSAPI, "GSSAPI"}, {SASLAUTH_PLAIN, "LOGIN"}, {0, "PLAIN"},
    };
    assert_false(saslauth_gssapi_configured(&f->silent_b));
    for (size_t i = 0; i < sizeof t / sizeof *t; i++) {
        struct saslauth *a = saslauth_new(&f->silent_b, NULL, "node1.example.com",
                                          t[i].mechs, NULL, 0);
        assert_non_null(a);
        struct step s = run(a, t[i].mech, NULL);
        assert_int_equal(s.rc, SASLAUTH_BADMECH);
        saslauth_free(&a);
    }
    assert_false(touched(f));
}

static void other_mechanisms_are_504(void **state)
{
    struct fx *f = *state;
    const char *mechs[] = {"CRAM-MD5", "DIGEST-MD5", "SCRAM-SHA-1", "SCRAM-SHA-256", "GSSAPI",
                           "ANONYMOUS", "EXTERNAL", "NTLM", "PLAINX", "", "PLAIN LOGIN"};
    for (size_t i = 0; i < sizeof mechs / sizeof *mechs; i++) {
        struct saslauth *a = basic_new(&f->silent_b);
        assert_non_null(a);
        struct step s = run(a, mechs[i], NULL);
        assert_int_equal(s.rc, SASLAUTH_BADMECH);
        saslauth_free(&a);
    }
    assert_false(touched(f));
}

static void plain_without_initial_response_asks_with_empty_challenge(void **state)
{
    struct fx *f = *state;
    struct saslauth *a = basic_new(&f->silent_b);
    struct step s = run(a, "plain", NULL);          /* case-insensitive, RFC 4954 §4 */
    assert_int_equal(s.rc, SASLAUTH_CONTINUE);
    assert_string_equal(s.challenge, "");
    s = run(a, NULL, "*");
    assert_int_equal(s.rc, SASLAUTH_CANCELLED);
    saslauth_free(&a);
    assert_false(touched(f));
}

static void login_prompts_without_the_directory(void **state)
{
    struct fx *f = *state;
    struct saslauth *a = basic_new(&f->silent_b);
    struct step s = run(a, "LOGIN", NULL);
    assert_int_equal(s.rc, SASLAUTH_CONTINUE);
    assert_string_equal(s.challenge, "VXNlcm5hbWU6");      /* "Username:" */
    char *u = b64("alice", 5);
    s = run(a, NULL, u);
    free(u);
    assert_int_equal(s.rc, SASLAUTH_CONTINUE);
    assert_string_equal(s.challenge, "UGFzc3dvcmQ6");      /* "Password:" */
    assert_false(touched(f));
    s = run(a, NULL, "*");
    assert_int_equal(s.rc, SASLAUTH_CANCELLED);
    saslauth_free(&a);
    assert_false(touched(f));
}

static void login_with_initial_response_skips_username_prompt(void **state)
{
    struct fx *f = *state;
    struct saslauth *a = basic_new(&f->silent_b);
    char *u = b64("alice", 5);
    struct step s = run(a, "LOGIN", u);
    free(u);
    assert_int_equal(s.rc, SASLAUTH_CONTINUE);
    assert_string_equal(s.challenge, "UGFzc3dvcmQ6");
    saslauth_free(&a);
    assert_false(touched(f));
}

/* Regression (tests/fuzz/fuzz_auth): Cyrus's LOGIN plugin leaks its password buffer when
 * the canon callback refuses the username at the password step, so a client could grow the
 * node's memory with AUTH LOGIN, a bad username and any password, again and again. A LOGIN
 * username that cannot be a login (empty, a blank or control byte) is refused at its own
 * step, as the initial response or as the reply to "Username:", before any password prompt
 * and before any lookup. (Before the fix: CONTINUE with "Password:", then a leak LSan
 * reports when this binary exits.) */
static void login_bad_username_refused_before_password(void **state)
{
    struct fx *f = *state;
    const char *users[] = {"", "a b", "a\tb", "x\001y"};
    for (size_t i = 0; i < sizeof users / sizeof *users; i++)
        for (int ir = 0; ir < 2; ir++) {
            struct saslauth *a = basic_new(&f->silent_b);
            char *u = b64(users[i], strlen(users[i]));
            struct step s = run(a, "LOGIN", ir ? (u[0] ? u : "=") : NULL);
            if (!ir) {
                assert_int_equal(s.rc, SASLAUTH_CONTINUE);
                assert_string_equal(s.challenge, "VXNlcm5hbWU6");
                s = run(a, NULL, u);
            }
            if (s.rc != SASLAUTH_BAD)
                fail_msg("user %zu ir %d: rc %d challenge '%s'", i, ir, s.rc, s.challenge);
            if (s.rc == SASLAUTH_CONTINUE)
                run(a, NULL, "eA==");
            free(u);
            saslauth_free(&a);
        }
    assert_false(touched(f));
}

static void bad_base64_is_501(void **state)
{
    struct fx *f = *state;
    const char *bad[] = {"!!!!", "AGFsaWNl$", "AGFs aWNl", "=", "a"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        struct saslauth *a = basic_new(&f->silent_b);
        /* As an initial response "=" means empty (tested below); as a continuation it is
         * not base64 of anything. */
        struct step s = run(a, "PLAIN", i < 3 ? bad[i] : NULL);
        if (i >= 3) {
            assert_int_equal(s.rc, SASLAUTH_CONTINUE);
            s = run(a, NULL, bad[i]);
        }
        assert_int_equal(s.rc, SASLAUTH_SYNTAX);
        saslauth_free(&a);
    }
    assert_false(touched(f));
}

static void overlong_line_is_501(void **state)
{
    struct fx *f = *state;
    size_t n = SASLAUTH_LINE_MAX + 4;
    char *line = malloc(n + 1);
    memset(line, 'A', n);
    line[n] = '\0';
    struct saslauth *a = basic_new(&f->silent_b);
    struct step s = run(a, "PLAIN", line);
    assert_int_equal(s.rc, SASLAUTH_SYNTAX);
    saslauth_free(&a);
    free(line);
    assert_false(touched(f));
}

static void empty_initial_response_is_a_failure_not_a_prompt(void **state)
{
    struct fx *f = *state;
    struct saslauth *a = basic_new(&f->silent_b);
    struct step s = run(a, "PLAIN", "=");
    assert_int_equal(s.rc, SASLAUTH_BAD);
    saslauth_free(&a);
    assert_false(touched(f));
}

static void continuation_without_an_exchange_fails(void **state)
{
    struct fx *f = *state;
    struct saslauth *a = basic_new(&f->silent_b);
    struct step s = run(a, NULL, "YWxpY2U=");
    assert_int_equal(s.rc, SASLAUTH_BAD);
    saslauth_free(&a);
    assert_false(touched(f));
}

/* Logins the node refuses before any lookup: empty, blanks, control bytes, DEL, over 256
 * bytes, an extra NUL (PLAIN has exactly three fields). */
static void invalid_logins_never_reach_the_directory(void **state)
{
    struct fx *f = *state;
    static const struct { const char *raw; size_t len; } cases[] = {
        {"\0\0" SECRET, 2 + sizeof SECRET - 1},
        {"\0ali ce\0" SECRET, 8 + sizeof SECRET - 1},
        {"\0ali\tce\0" SECRET, 8 + sizeof SECRET - 1},
        {"\0ali\x01" "ce\0" SECRET, 8 + sizeof SECRET - 1},
        {"\0alice\x7f\0" SECRET, 8 + sizeof SECRET - 1},
        {"\0alice\r\n\0" SECRET, 9 + sizeof SECRET - 1},
        {"\0ali\0ce\0" SECRET, 8 + sizeof SECRET - 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        struct step s = plain(f, &f->silent_b, cases[i].raw, cases[i].len);
        assert_int_equal(s.rc, SASLAUTH_BAD);
        assert_false(touched(f));
    }
    char raw[1100] = "";
    size_t n = 1 + 257;
    memset(raw + 1, 'a', 257);
    raw[n++] = '\0';
    memcpy(raw + n, SECRET, sizeof SECRET - 1);
    n += sizeof SECRET - 1;
    struct step s = plain(f, &f->silent_b, raw, n);
    assert_int_equal(s.rc, SASLAUTH_BAD);
    assert_false(touched(f));
    memset(raw + 1, 'a', 1024);                /* 1 KiB */
    raw[1025] = '\0';
    memcpy(raw + 1026, SECRET, sizeof SECRET - 1);
    s = plain(f, &f->silent_b, raw, 1026 + sizeof SECRET - 1);
    assert_int_equal(s.rc, SASLAUTH_BAD);
    assert_false(touched(f));
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void directory_down_is_temporary(void **state)
{
    struct fx *f = *state;
    const char raw[] = "\0alice\0" SECRET;
    double t0 = now();
    struct step s = plain(f, &f->dead_b, raw, sizeof raw - 1);
    assert_int_equal(s.rc, SASLAUTH_TEMP);
    assert_true(now() - t0 < 3.0);
    assert_true(s.why[0] != '\0');
}

/* The connection is accepted by the kernel but nobody answers (slapd under SIGSTOP):
 * ldap_timeout (1 s here) bounds the wait, and the answer is temporary. */
static void silent_directory_is_temporary_within_the_timeout(void **state)
{
    struct fx *f = *state;
    const char raw[] = "\0alice\0" SECRET;
    double t0 = now();
    struct step s = plain(f, &f->silent_b, raw, sizeof raw - 1);
    double took = now() - t0;
    assert_int_equal(s.rc, SASLAUTH_TEMP);
    assert_true(took >= 0.9);
    assert_true(took < 4.0);
    assert_true(touched(f));                  /* it did try the directory */
}

/* The filter metacharacters are valid login bytes: such a login is looked up (escaped),
 * so it reaches the directory, which is down here: temporary, never a success. */
static void filter_metacharacters_are_looked_up_not_refused(void **state)
{
    struct fx *f = *state;
    const char raw[] = "\0x)(uid=*\0" SECRET;
    struct step s = plain(f, &f->dead_b, raw, sizeof raw - 1);
    assert_int_equal(s.rc, SASLAUTH_TEMP);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(offered_mechanisms),
        cmocka_unit_test(mechanisms_outside_the_set_are_504),
        cmocka_unit_test(other_mechanisms_are_504),
        cmocka_unit_test(plain_without_initial_response_asks_with_empty_challenge),
        cmocka_unit_test(login_prompts_without_the_directory),
        cmocka_unit_test(login_with_initial_response_skips_username_prompt),
        cmocka_unit_test(login_bad_username_refused_before_password),
        cmocka_unit_test(bad_base64_is_501),
        cmocka_unit_test(overlong_line_is_501),
        cmocka_unit_test(empty_initial_response_is_a_failure_not_a_prompt),
        cmocka_unit_test(continuation_without_an_exchange_fails),
        cmocka_unit_test(invalid_logins_never_reach_the_directory),
        cmocka_unit_test(directory_down_is_temporary),
        cmocka_unit_test(silent_directory_is_temporary_within_the_timeout),
        cmocka_unit_test(filter_metacharacters_are_looked_up_not_refused),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
