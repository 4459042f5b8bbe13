/* smtp_verbs: one handler per SMTP verb (RFC 5321 §4.1 with PIPELINING, SIZE, 8BITMIME,
 * ENHANCEDSTATUSCODES, SMTPUTF8 and CHUNKING), and the command table that says in which
 * states each verb is valid (docs/style.md 5). Every command line the session reads comes here,
 * the answers to an AUTH challenge included; STARTTLS and AUTH are in smtp_starttls.c and
 * smtp_auth.c. The permission decisions are policy_*() calls in Exchange's order
 * (docs/permission-model.md §10 steps 5-10) with its exact replies. */
#include "node/smtp/smtp_session-private.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <event2/bufferevent.h>

#include "directory/rights.h"
#include "directory/base/util.h"
#include "node/smtp/conncount.h"
#include "node/common/log.h"
#include "node/smtp/saslauth.h"
#include "node/smtp/smtp_auth.h"
#include "node/smtp/smtp_starttls.h"
#include "node/spool/spool.h"
#include "node/common/worker.h"
#include "node/metrics/relaymetrics.h"

#define ST(x) (1u << (x))
#define CMD_STATES (ST(S_GREETING) | ST(S_READY) | ST(S_MAIL) | ST(S_RCPT) | ST(S_CHUNKING))
/* Recipients are bounded even with Bypass-Message-Size-Limit, which lifts the connector's
 * MaxRecipientsPerMessage but must not let a client grow memory without bound. */
#define RCPT_HARD_MAX 10000

static bool has(const struct smtp_session *s, uint32_t right)
{
    return (s->rights.effective & right) != 0;
}

static const char *parse_error(int rc)
{
    return rc == SMTP_PARSE_BAD_ADDR ? "501 5.1.3 Invalid address"
                                     : "501 5.5.4 Invalid arguments";
}

/* ---- greeting ---- */

static bool greet(struct smtp_session *s, const char *args, size_t len)
{
    char name[SMTP_DOMAIN_MAX + 1];
    if (smtp_helo_parse(args, len, name, sizeof name) < 0) {
        session_protocol_error(s, "501 5.5.4 Invalid domain name");
        return false;
    }
    session_reset_transaction(s);
    rn_strlcpy(s->helo, name, sizeof s->helo);
    session_enter(s, S_READY);
    return true;
}

static void cmd_helo(struct smtp_session *s, const char *args, size_t len)
{
    if (!greet(s, args, len))
        return;
    s->esmtp = false;
    session_reply(s, "250 %s Hello [%s]", session_fqdn(s), s->client_ip);
}

static void cmd_ehlo(struct smtp_session *s, const char *args, size_t len)
{
    if (!greet(s, args, len))
        return;
    s->esmtp = true;
    char size[40];
    if (s->c->max_message_size == RN_UNLIMITED || has(s, R_BYPASS_SIZE_LIMIT))
        rn_strlcpy(size, "SIZE", sizeof size);
    else
        snprintf(size, sizeof size, "SIZE %llu", (unsigned long long)s->c->max_message_size);
    const char *ext[9] = {size, "PIPELINING", "8BITMIME", "ENHANCEDSTATUSCODES", "SMTPUTF8",
                          "CHUNKING"};
    size_t next = 6;
    if (smtp_starttls_offered(s))
        ext[next++] = "STARTTLS";
    char auth[80];
    if (smtp_auth_ehlo_line(s, auth, sizeof auth))
        ext[next++] = auth;
    session_reply(s, "250-%s Hello [%s]", session_fqdn(s), s->client_ip);
    for (size_t i = 0; i < next; i++)
        session_reply(s, "250%c%s", i + 1 == next ? ' ' : '-', ext[i]);
}

/* ---- transaction ---- */

struct mail_space_job {
    struct smtp_session *s;       /* busy until mail_space_done */
    struct spool *spool;
    struct smtp_mail m;
    int rc;
    uint64_t avail;
    char err[256];
};

static void mail_space_run(void *arg)
{
    struct mail_space_job *j = arg;
    j->rc = spool_free_bytes(j->spool, &j->avail, j->err, sizeof j->err);
}

static void mail_space_done(void *arg)
{
    struct mail_space_job *j = arg;
    struct smtp_session *s = j->s;
    s->busy = false;
    if (s->state == S_CLOSING || s->peer_gone) {
        free(j);
        session_resume(s);
        return;
    }
    if (j->rc == 0 && j->avail < s->n->spool_reserve + (j->m.has_size ? j->m.size : 0)) {
        session_reply(s, "452 4.3.1 Insufficient system resources");
        log_fact(s->id, "smtp", "refused", "stage=mail reply=\"452 4.3.1\" free=%llu "
                 "reserve=%llu", (unsigned long long)j->avail,
                 (unsigned long long)s->n->spool_reserve);
    } else if (!session_milter_mail(s, &j->m)) {
        s->mail = j->m;
        session_enter(s, S_MAIL);
        session_reply(s, "250 2.1.0 Sender OK");
    }
    free(j);
    session_resume(s);
}

static void cmd_mail(struct smtp_session *s, const char *args, size_t len)
{
    struct smtp_mail m;
    int rc = smtp_mail_parse(args, len, &m);
    if (rc != SMTP_PARSE_OK) {
        session_protocol_error(s, parse_error(rc));
        return;
    }
    /* A right revoked in the directory applies from the next MAIL (issue #3). */
    if (!session_refresh(s))
        return;
    if (s->n->snap_expired) {
        /* The directory has been unreachable for longer than max_stale: what the snapshot
         * allows may have been revoked since. Exchange's reply to a directory failure. */
        session_reply(s, "451 4.3.2 System not accepting network messages");
        log_fact(s->id, "smtp", "mail-refused", "reply=\"451 4.3.2\" why=%s",
                 "configuration-stale-beyond-max_stale");
        return;
    }
    struct verdict v;
    policy_mail(s->c, &s->rights, &s->tok, s->tls, m.has_size ? m.size : 0, &v);
    relay_metrics_right(s->n->metrics, v.right, v.ok);
    if (!v.ok) {
        session_reply_verdict(s, &v, "mail");
        return;
    }
    uint64_t limit = s->c->message_rate_limit;
    if (limit != RN_UNLIMITED && !has(s, R_BYPASS_SIZE_LIMIT)) {
        uint64_t k = conncount_msg_note(s->n->conns, s->client_ip, time(NULL));
        if (k > limit) {
            session_reply(s, "421 4.4.2 Message submission rate for this client has exceeded "
                             "the configured limit");
            log_fact(s->id, "smtp", "refused", "stage=mail reply=\"421 4.4.2\" rate=%llu "
                     "limit=%llu", (unsigned long long)k, (unsigned long long)limit);
            session_close(s, "rate-limit");
            return;
        }
    }
    /* Refuse early rather than fail mid-DATA: the message must fit with the reserve to
     * spare (a temporary condition: the client retries, nothing is lost). fstatvfs may wait
     * on the disk (docs/style.md 7): asked on the worker, the session waiting (busy). */
    struct mail_space_job *j = xcalloc(1, sizeof *j);
    j->s = s;
    j->spool = s->n->spool;
    j->m = m;
    s->busy = true;
    worker_submit(s->n->worker, mail_space_run, mail_space_done, j);
}

/* A bare <postmaster> (RFC 5321 §4.5.1) is the postmaster of the default accepted domain,
 * as Exchange routes it; without one nobody can take it: 550 5.1.1 and a log line. */
static const char *rcpt_postmaster(struct smtp_session *s, char *buf, size_t len)
{
    const struct rn_domain *d = snapshot_default_domain(s->snap);
    if (!d) {
        log_fact(s->id, "smtp", "rcpt-refused", "rcpt=<postmaster> reason=%s",
                 "no-default-accepted-domain");
        session_reply(s, "550 5.1.1 Recipient <postmaster> has no domain and no default "
                         "accepted domain is configured");
        return NULL;
    }
    snprintf(buf, len, "postmaster@%s", d->domain);
    return buf;
}

static void cmd_rcpt(struct smtp_session *s, const char *args, size_t len)
{
    struct smtp_path p;
    int rc = smtp_rcpt_parse(args, len, s->mail.smtputf8, &p);
    if (rc != SMTP_PARSE_OK) {
        session_protocol_error(s, parse_error(rc));
        return;
    }
    if (s->nrcpts >= RCPT_HARD_MAX) {
        session_reply(s, "452 4.5.3 Too many recipients");
        return;
    }
    char pm[16 + SMTP_DOMAIN_MAX];
    const char *addr = p.domain[0] ? p.addr : rcpt_postmaster(s, pm, sizeof pm);
    if (!addr)
        return;
    struct verdict v;
    policy_rcpt(s->snap, s->c, &s->rights, addr, s->nrcpts, &v);
    relay_metrics_right(s->n->metrics, v.right, v.ok);
    if (!v.ok && v.enh && strcmp(v.enh, "5.1.10") == 0) {
        /* Recipient lookup (docs/permission-model.md §6): which address was unknown. */
        char q[2 * SMTP_DOMAIN_MAX + 600];
        log_fact(s->id, "smtp", "rcpt-refused", "rcpt=%s reason=recipient-not-found",
                 log_quote(addr, q, sizeof q));
    }
    if (!v.ok) {
        session_reply_verdict(s, &v, "rcpt");
        return;
    }
    if (session_milter_rcpt(s, addr))
        return;                        /* the content filters answer (smtp_milter.c) */
    session_rcpt_accept(s, addr);
}

void session_rcpt_accept(struct smtp_session *s, const char *addr)
{
    if (s->nrcpts == s->rcap) {
        s->rcap = s->rcap ? s->rcap * 2 : 8;
        s->rcpts = xrealloc(s->rcpts, s->rcap * sizeof *s->rcpts);
    }
    s->rcpts[s->nrcpts++] = xstrdup(addr);
    session_enter(s, S_RCPT);
    session_reply(s, "250 2.1.5 Recipient OK");
}

static void cmd_data(struct smtp_session *s, const char *args, size_t len)
{
    if (len > 0) {
        session_protocol_error(s, "501 5.5.4 Invalid arguments");
        return;
    }
    session_begin_content(s);
    smtp_data_init(&s->data, s->n->max_text_line, 0, session_data_emit, s);
    session_enter(s, S_DATA);
    session_reply(s, "354 Start mail input; end with <CRLF>.<CRLF>");
}

/* BDAT's bytes follow the command whatever we answer, so a refused BDAT still reads them
 * (RFC 3030 §2) and answers after them. */
static void cmd_bdat(struct smtp_session *s, const char *args, size_t len)
{
    uint64_t size;
    int last;
    if (smtp_bdat_parse(args, len, &size, &last) != SMTP_PARSE_OK) {
        session_protocol_error(s, "501 5.5.4 Invalid arguments");
        return;
    }
    s->chunk_left = size;
    s->chunk_last = last != 0;
    if (s->state == S_RCPT) {
        session_begin_content(s);
        s->chunk_prev_cr = 0;
        s->chunk_line_len = 0;
        s->chunk_line_too_long = false;
    } else if (s->state != S_CHUNKING) {
        s->chunk_error = s->state == S_GREETING ? "503 5.5.2 Send hello first"
                         : s->state == S_READY  ? "503 5.5.2 Need mail command"
                                                : "503 5.5.2 Need rcpt command";
    }
    session_enter(s, S_BDAT);
}

static void cmd_rset(struct smtp_session *s, const char *args, size_t len)
{
    session_reset_transaction(s);
    session_reply(s, "250 2.0.0 Resetting");
}

static void cmd_noop(struct smtp_session *s, const char *args, size_t len)
{
    session_reply(s, "250 2.0.0 OK");
}

static void cmd_vrfy(struct smtp_session *s, const char *args, size_t len)
{
    session_reply(s, "252 2.1.5 Cannot VRFY user, but will accept message for delivery");
}

static void cmd_help(struct smtp_session *s, const char *args, size_t len)
{
    session_reply(s, "214-2.0.0 Commands: HELO EHLO MAIL RCPT DATA BDAT RSET NOOP QUIT VRFY");
    session_reply(s, "214 2.0.0 HELP");
}

static void cmd_quit(struct smtp_session *s, const char *args, size_t len)
{
    session_reply(s, "221 2.0.0 Service closing transmission channel");
    session_close(s, "quit");
}

static const struct smtp_command {
    enum smtp_verb verb;
    unsigned states;           /* ST() bits in which the verb is valid */
    void (*run)(struct smtp_session *s, const char *args, size_t len);
} commands[] = {
    {SMTP_VERB_HELO, CMD_STATES, cmd_helo},
    {SMTP_VERB_EHLO, CMD_STATES, cmd_ehlo},
    {SMTP_VERB_MAIL, ST(S_READY), cmd_mail},
    {SMTP_VERB_RCPT, ST(S_MAIL) | ST(S_RCPT), cmd_rcpt},
    {SMTP_VERB_DATA, ST(S_RCPT), cmd_data},
    {SMTP_VERB_BDAT, CMD_STATES, cmd_bdat},
    {SMTP_VERB_RSET, CMD_STATES, cmd_rset},
    {SMTP_VERB_NOOP, CMD_STATES, cmd_noop},
    {SMTP_VERB_QUIT, CMD_STATES, cmd_quit},
    {SMTP_VERB_VRFY, CMD_STATES, cmd_vrfy},
    {SMTP_VERB_HELP, CMD_STATES, cmd_help},
    {SMTP_VERB_STARTTLS, ST(S_GREETING) | ST(S_READY), smtp_cmd_starttls},
    {SMTP_VERB_AUTH, ST(S_READY), smtp_cmd_auth},
};

/* The reply to a verb given in the wrong state (Exchange's texts, docs/permission-model.md §6). */
static const char *sequence_error(const struct smtp_session *s, enum smtp_verb verb)
{
    if (s->state == S_GREETING)
        return "503 5.5.2 Send hello first";
    switch (verb) {
    case SMTP_VERB_MAIL:
        return "503 5.5.2 Sender already specified";
    case SMTP_VERB_RCPT: case SMTP_VERB_DATA:
        return s->state == S_READY ? "503 5.5.2 Need mail command"
               : s->state == S_MAIL ? "503 5.5.2 Need rcpt command"
                                    : "503 5.5.1 Bad sequence of commands";
    default:
        return "503 5.5.1 Bad sequence of commands";
    }
}

/* Whether a command line is an AUTH however it is spelt: first word (after any blanks) AUTH,
 * followed by a blank or the end. Looser than smtp_cmd_verb on purpose, so a malformed AUTH
 * ("AUTH<TAB>PLAIN ...", " AUTH ...") that runs as an unknown verb is still masked. */
static bool line_is_auth(const char *line, size_t len)
{
    size_t i = 0;
    while (i < len && (line[i] == ' ' || line[i] == '\t'))
        i++;
    if (len - i < 4 || strncasecmp(line + i, "AUTH", 4) != 0)
        return false;
    return len - i == 4 || line[i + 4] == ' ' || line[i + 4] == '\t';
}

void smtp_verbs_dispatch(struct smtp_session *s, const char *line, size_t len)
{
    if (s->state == S_AUTH) {            /* the answer to a 334 challenge, not a command */
        if (s->c->protocol_logging)      /* it carries credentials */
            protolog_write(s->c->name, s->id, '<', "****");
        smtp_auth_continue(s, line, len);
        return;
    }
    if (s->tls_identify)                 /* the handshake is over: a line came through it */
        smtp_starttls_identify(s);
    const char *args;
    enum smtp_verb verb = smtp_cmd_verb(line, len, &args);
    if (s->c->protocol_logging) {
        if (line_is_auth(line, len))     /* payloads and passwords never reach a log */
            protolog_write(s->c->name, s->id, '<', "AUTH ****");
        else
            protolog_write(s->c->name, s->id, '<', "%.*s", (int)len, line);
    }
    if (s->n->draining && (s->state == S_GREETING || s->state == S_READY) &&
        verb != SMTP_VERB_QUIT) {
        session_reply(s, "421 4.3.2 Service not available");
        session_close(s, "drain");
        return;
    }
    const struct smtp_command *cmd = NULL;
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (commands[i].verb == verb)
            cmd = &commands[i];
    if (!cmd) {
        session_protocol_error(s, "500 5.3.3 Unrecognized command");
        return;
    }
    if (!(cmd->states & ST(s->state))) {
        session_protocol_error(s, sequence_error(s, verb));
        return;
    }
    size_t alen = len - (size_t)(args - line);
    cmd->run(s, args, alen);
}
