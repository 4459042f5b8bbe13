/* smtp_auth: AUTH (RFC 4954) for the SMTP session, with Exchange's per-connector rules
 * (docs/permission-model.md §3.1, §3.3, §6; STARTTLS is in smtp_starttls.c): BasicAuth
 * offers AUTH PLAIN LOGIN (only while the directory link is protected, or
 * allow_cleartext_directory = yes), and with BasicAuthRequireTLS only after STARTTLS; Integrated
 * offers AUTH GSSAPI (Kerberos) when the node has a keytab (gssapi_keytab). A successful
 * AUTH replaces the anonymous token by the user's (user, groups, Authenticated Users,
 * Everyone) and the rights are recomputed; a token without Submit fails like a bad password.
 * The SASL steps (which bind to the directory) run on the auth worker pool, never on the
 * loop; each failure is answered after a timer, and failures are limited per session
 * (MaxLogonFailures) and per source address. Payloads and passwords are never logged. */
#include "node/smtp/smtp_auth.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>

#include "directory/rights.h"
#include "directory/base/util.h"
#include "node/smtp/conncount.h"
#include "node/common/log.h"
#include "node/smtp/saslauth.h"
#include "node/common/worker.h"
#include "node/metrics/relaymetrics.h"

#define AUTH_FAIL_PER_SOURCE 10     /* failures per source address per minute */
#define AUTH_DELAY_MAX_S 3          /* a failure is answered after min(failures, this) s */

unsigned smtp_auth_mechs(const struct smtp_session *s)
{
    if (s->tok.authenticated)
        return 0;
    unsigned m = 0;
    /* The password is checked by a bind: never over a directory link in clear unless the
     * bootstrap says so (allow_cleartext_directory; logged at start by the daemon). */
    bool dir_ok = bootstrap_directory_security(&s->n->boot) == BOOT_DIR_PROTECTED ||
                  s->n->boot.allow_cleartext_directory;
    if ((s->c->auth & AUTH_BASIC) && dir_ok &&
        (s->tls || !(s->c->auth & AUTH_BASIC_REQUIRE_TLS)))
        m |= SASLAUTH_BASIC;
    /* Integrated is Kerberos here (§3.1): GSSAPI. Exchange also offers NTLM under it, which
     * needs NT password hashes or a domain controller, so it is out of scope (README). */
    if ((s->c->auth & AUTH_INTEGRATED) && saslauth_gssapi_configured(&s->n->boot))
        m |= SASLAUTH_GSSAPI;
    return m;
}

bool smtp_auth_offered(const struct smtp_session *s)
{
    return smtp_auth_mechs(s) != 0;
}

bool smtp_auth_ehlo_line(const struct smtp_session *s, char *buf, size_t len)
{
    unsigned m = smtp_auth_mechs(s);
    char names[64];
    saslauth_mech_names(m, names, sizeof names);
    snprintf(buf, len, "%s%s", m ? "AUTH " : "", m ? names : "");
    return m != 0;
}

/* ---- AUTH ---- */

struct auth_job {
    struct smtp_session *s;
    char *mech;                  /* owned; NULL on a continuation */
    char *line;                  /* owned, wiped after use */
    size_t len;
    enum saslauth_rc rc;
    char challenge[SASLAUTH_LINE_MAX];
    char why[640];
};

static void auth_job_free(struct auth_job *j)
{
    free(j->mech);
    if (j->line) {
        explicit_bzero(j->line, j->len);
        free(j->line);
    }
    free(j);
}

static void auth_run(void *arg)
{
    struct auth_job *j = arg;
    j->rc = saslauth_step(j->s->auth, j->mech, j->line, j->len, j->challenge,
                          sizeof j->challenge, j->why, sizeof j->why);
}

static void auth_end(struct smtp_session *s)
{
    saslauth_free(&s->auth);
    if (s->state == S_AUTH)
        session_enter(s, S_READY);
}

static void auth_failed_reply(struct smtp_session *s)
{
    uint64_t max = s->c->max_logon_failures;     /* 0 = never disconnect (schema README) */
    if (max != RN_UNLIMITED && max != 0 && s->auth_failures > max) {
        session_reply(s, "421 4.7.0 Too many errors on this connection, closing transmission "
                         "channel");
        session_close(s, "logon-failures");
        return;
    }
    session_reply(s, "535 5.7.3 Authentication unsuccessful");
}

static void auth_on_delay(evutil_socket_t fd, short what, void *arg)
{
    struct smtp_session *s = arg;
    s->busy = false;
    auth_failed_reply(s);
    session_resume(s);
}

/* A failed attempt: counted for the session and the source, answered after a delay. */
static void auth_failure(struct smtp_session *s, const char *why)
{
    s->auth_failures++;
    relay_metrics_auth(s->n->metrics, s->auth_mech, RM_AUTH_FAILURE);
    char key[96], qw[700];
    snprintf(key, sizeof key, "auth-failure %s", s->client_ip);
    uint64_t per_source = conncount_msg_note(s->n->conns, key, time(NULL));
    log_fact(s->id, "smtp", "auth-failed", "client=%s failures=%u source_failures_1m=%llu "
             "why=%s", s->client_ip, s->auth_failures, (unsigned long long)per_source,
             log_quote(why, qw, sizeof qw));
    auth_end(s);
    if (per_source > AUTH_FAIL_PER_SOURCE) {
        session_reply(s, "421 4.7.0 Too many errors on this connection, closing transmission "
                         "channel");
        session_close(s, "source-logon-failures");
        return;
    }
    /* The delay timer is the session's, made at its first failure (the session frees it). */
    if (!s->ev_authdelay)
        s->ev_authdelay = evtimer_new(s->n->base, auth_on_delay, s);
    if (!s->ev_authdelay) {       /* no memory for a timer: answer at once */
        auth_failed_reply(s);
        return;
    }
    unsigned delay = s->auth_failures < AUTH_DELAY_MAX_S ? s->auth_failures : AUTH_DELAY_MAX_S;
    struct timeval tv = {delay, 0};
    s->busy = true;               /* pipelined input waits until the answer is out */
    evtimer_add(s->ev_authdelay, &tv);
}

/* The user's identity arrived: adopt it if its rights hold Submit (§2.2). */
static void auth_success(struct smtp_session *s, const char *mech)
{
    struct token t;
    char **addrs;
    size_t naddrs;
    char login[300];
    saslauth_take(s->auth, login, sizeof login, &t, &addrs, &naddrs);
    auth_end(s);
    struct rights_eval r;
    acl_eval(s->c->aces, s->c->naces, &t, &r);
    struct verdict v;
    policy_auth_result(&r, &v);
    if (!v.ok) {
        token_clear(&t);
        for (size_t i = 0; i < naddrs; i++)
            free(addrs[i]);
        free(addrs);
        auth_failure(s, "authenticated, but the token has no ms-Exch-SMTP-Submit");
        return;
    }
    token_clear(&s->tok);
    s->tok = t;
    for (size_t i = 0; i < s->nowned; i++)
        free(s->owned[i]);
    free(s->owned);
    s->owned = addrs;
    s->nowned = naddrs;
    /* GSSAPI / TLSAuthLogin / Login (§9.3) */
    s->auth_mechanism = !strcmp(mech, "GSSAPI") ? "0b" : s->tls ? "06" : "07";
    session_set_permissions(s, "auth");
    session_raise_limits(s);
    relay_metrics_auth(s->n->metrics, mech, RM_AUTH_SUCCESS);
    char ql[400], qu[700];
    log_fact(s->id, "smtp", "auth", "login=%s mechanism=%s user=%s tls=%s groups=%zu",
             log_quote(login, ql, sizeof ql), mech,
             log_quote(s->tok.user_dn ? s->tok.user_dn : "", qu, sizeof qu),
             s->tls ? "yes" : "no", s->tok.ngroups);
    session_reply(s, "235 2.7.0 Authentication successful");
}

static void auth_done(void *arg)
{
    struct auth_job *j = arg;
    struct smtp_session *s = j->s;
    s->busy = false;
    if (s->state == S_CLOSING || s->peer_gone) {
        auth_job_free(j);
        auth_end(s);
        session_resume(s);
        return;
    }
    switch (j->rc) {
    case SASLAUTH_CONTINUE:
        session_enter(s, S_AUTH);
        session_reply(s, "334 %s", j->challenge);
        break;
    case SASLAUTH_OK:
        auth_success(s, s->auth_mech);
        break;
    case SASLAUTH_BAD:
        auth_failure(s, j->why);
        break;
    case SASLAUTH_TEMP: {
        char qw[700];
        log_fact(s->id, "smtp", "auth-tempfail", "why=%s", log_quote(j->why, qw, sizeof qw));
        relay_metrics_auth(s->n->metrics, s->auth_mech, RM_AUTH_TEMPFAIL);
        auth_end(s);
        session_reply(s, "454 4.7.0 Temporary authentication failure");
        break;
    }
    case SASLAUTH_BADMECH:
        auth_end(s);
        session_reply(s, "504 5.7.4 Unrecognized authentication type");
        break;
    case SASLAUTH_SYNTAX:
        auth_end(s);
        session_protocol_error(s, "501 5.5.2 Cannot Base64-decode Client responses");
        break;
    case SASLAUTH_CANCELLED:
        auth_end(s);
        session_reply(s, "501 5.0.0 Authentication cancelled");
        break;
    }
    auth_job_free(j);
    session_resume(s);
}

static void auth_submit(struct smtp_session *s, const char *mech, const char *line, size_t len)
{
    struct auth_job *j = xcalloc(1, sizeof *j);
    j->s = s;
    j->mech = mech ? xstrdup(mech) : NULL;
    if (line) {
        j->line = xstrndup(line, len);
        j->len = len;
    }
    s->busy = true;
    worker_submit(s->n->authworker, auth_run, auth_done, j);
}

void smtp_cmd_auth(struct smtp_session *s, const char *args, size_t len)
{
    if (s->tok.authenticated) {
        session_protocol_error(s, "503 5.5.2 Auth command already specified");
        return;
    }
    unsigned offered = smtp_auth_mechs(s);
    if (!offered) {
        session_reply(s, "504 5.7.4 Unrecognized authentication type");
        return;
    }
    /* "AUTH mech [initial-response]" */
    size_t mlen = 0;
    while (mlen < len && args[mlen] != ' ')
        mlen++;
    char mech[16];
    if (mlen == 0 || mlen >= sizeof mech) {
        session_reply(s, "504 5.7.4 Unrecognized authentication type");
        return;
    }
    memcpy(mech, args, mlen);
    mech[mlen] = '\0';
    if (!(saslauth_mech_bit(mech) & offered)) {
        session_reply(s, "504 5.7.4 Unrecognized authentication type");
        return;
    }
    const char *ir = NULL;
    size_t irlen = 0;
    if (mlen < len) {
        ir = args + mlen + 1;
        irlen = len - mlen - 1;
        if (irlen == 0 || memchr(ir, ' ', irlen)) {
            session_protocol_error(s, "501 5.5.4 Invalid arguments");
            return;
        }
    }
    char err[256];
    s->auth = saslauth_new(&s->n->boot, s->snap, session_fqdn(s), offered, err, sizeof err);
    if (!s->auth) {
        char qe[400];
        log_fact(s->id, "smtp", "auth-tempfail", "why=%s", log_quote(err, qe, sizeof qe));
        session_reply(s, "454 4.7.0 Temporary authentication failure");
        return;
    }
    for (size_t i = 0; i <= mlen; i++)
        s->auth_mech[i] = (char)(mech[i] >= 'a' && mech[i] <= 'z' ? mech[i] - 32 : mech[i]);
    auth_submit(s, s->auth_mech, ir, irlen);
}

void smtp_auth_forget(struct smtp_session *s)
{
    saslauth_free(&s->auth);
    token_clear(&s->tok);
    policy_initial_token(s->c, &s->tok);
    s->auth_mechanism = (s->tok.wk & (1u << WK_EXTERNALLY_SECURED)) ? "10" : NULL;
    for (size_t i = 0; i < s->nowned; i++)
        free(s->owned[i]);
    free(s->owned);
    s->owned = NULL;
    s->nowned = 0;
    session_set_permissions(s, "starttls");
}

void smtp_auth_continue(struct smtp_session *s, const char *line, size_t len)
{
    auth_submit(s, NULL, line, len);
}
