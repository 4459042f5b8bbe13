/* libFuzzer target for SMTP AUTH input decoding (node/smtp/saslauth.c through the real
 * libsasl2 PLAIN and LOGIN mechanisms): the initial response and each client line as
 * RFC 4954 sends them (base64, "=" for an empty initial response, "*" to cancel, lines up to
 * SASLAUTH_LINE_MAX and beyond), then the decoded PLAIN triple / LOGIN user and password
 * and the login check before any directory contact. The directory is a loopback port that
 * refuses connections, so no input can authenticate. Contracts beyond "no crash, no
 * sanitizer report": the verdict is one of enum saslauth_rc and never OK; a challenge is
 * NUL-terminated base64 inside its buffer; `why` is NUL-terminated; an over-long line is a
 * syntax error; "*" after the first step cancels; GSSAPI (not offered) is never started.
 *   clang -std=gnu11 -g -O1 -I. -D_GNU_SOURCE -fsanitize=fuzzer,address,undefined \
 *     -o /tmp/fuzz_auth tests/fuzz/fuzz_auth.c <the libraries of make fuzz> -lsasl2 ...
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include "directory/bootstrap.h"
#include "node/smtp/saslauth.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct rn_bootstrap fuzz_boot;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    /* Bound, never listening: every directory contact is refused at once. */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    char uri[64], err[256];
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &al) != 0)
        abort();
    snprintf(uri, sizeof uri, "ldap://127.0.0.1:%u", ntohs(a.sin_port));
    if (bootstrap_load(NULL, &fuzz_boot, err, sizeof err) != 0 ||
        bootstrap_set(&fuzz_boot, "uri", uri, err, sizeof err) != 0 ||
        bootstrap_set(&fuzz_boot, "base_dn", "ou=Relay,dc=example,dc=com", err, sizeof err) ||
        bootstrap_set(&fuzz_boot, "ldap_timeout", "1", err, sizeof err) != 0 ||
        saslauth_init(NULL, err, sizeof err) != 0) {
        fprintf(stderr, "fuzz_auth: %s\n", err);
        abort();
    }
    return 0;
}

static void fuzz_check_b64(const char *s, size_t cap)
{
    size_t n = strnlen(s, cap);
    if (n >= cap)
        abort();
    for (size_t i = 0; i < n; i++)
        if (!strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=", s[i]))
            abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    static const char *const mechs[] = {"PLAIN", "LOGIN", "login", "GSSAPI"};
    const char *mech = mechs[data[0] & 3];
    bool initial = data[0] & 4;
    size_t chlen = (size_t)data[1] % 64 + 1, whylen = 128;
    struct saslauth *a = saslauth_new(&fuzz_boot, NULL, "node1.example.com", SASLAUTH_BASIC,
                                      NULL, 0);
    if (!a)
        abort();
    const char *p = (const char *)data + 2, *end = (const char *)data + size;
    char *challenge = malloc(chlen), why[128];
    enum saslauth_rc rc = SASLAUTH_CONTINUE;
    for (int step = 0; rc == SASLAUTH_CONTINUE && step < 8; step++) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t len = nl ? (size_t)(nl - p) : (size_t)(end - p);
        char *line = malloc(len + 1);             /* exact size: an overread is a report */
        memcpy(line, p, len);
        line[len] = '\0';
        if (step == 0)
            rc = saslauth_step(a, mech, initial ? line : NULL, initial ? len : 0, challenge,
                               chlen, why, whylen);
        else
            rc = saslauth_step(a, NULL, line, len, challenge, chlen, why, whylen);
        if (rc > SASLAUTH_CANCELLED || rc == SASLAUTH_OK)
            abort();
        if (!memchr(why, '\0', whylen))
            abort();
        if (rc == SASLAUTH_CONTINUE)
            fuzz_check_b64(challenge, chlen);
        if (len > SASLAUTH_LINE_MAX && !(step == 0 && !initial) && rc != SASLAUTH_SYNTAX)
            abort();
        if (step > 0 && len == 1 && line[0] == '*' && rc != SASLAUTH_CANCELLED)
            abort();
        if (step == 0 && !strcmp(mech, "GSSAPI") && rc != SASLAUTH_BADMECH &&
            rc != SASLAUTH_SYNTAX)
            abort();                              /* not offered: no keytab, not in mechs */
        free(line);
        if (!nl)
            break;
        p = nl + 1;
    }
    free(challenge);
    saslauth_free(&a);
    return 0;
}
