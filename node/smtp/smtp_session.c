/* smtp_session: one SMTP connection's life cycle on the event loop (docs/architecture.md §3,
 * docs/permission-model.md §10): connector selection and connection limits at accept, replies and
 * state changes, the snapshot a session runs with, socket events and timeouts, logs, and
 * freeing only at safe points (docs/style.md 11). The session's other files share
 * smtp_session-private.h: smtp_input.c reads the input (command lines, DATA and BDAT
 * content, RFC 2920 pipelining with replies in order), smtp_txn.c holds the transaction and
 * its spool commit on a worker before any 250. The verbs are above the session, in
 * smtp_verbs.c (with smtp_auth.c and smtp_starttls.c), reached through smtp_verbs_dispatch.
 *
 * Memory a client can make us hold is bounded: the input buffer by the read high-water mark
 * (tighter before AUTH), a command line by max_command_line, the header block by msgin, the
 * output by pausing command processing while the client does not read its replies. */
#include "node/smtp/smtp_session-private.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "directory/rights.h"
#include "directory/base/util.h"
#include "node/smtp/conncount.h"
#include "node/common/log.h"
#include "node/common/sockin.h"
#include "node/common/sockout.h"
#include "node/smtp/saslauth.h"
#include "node/metrics/relaymetrics.h"

#define IN_HIGH_ANON   (64u * 1024u)    /* read high-water mark before AUTH */
#define IN_HIGH_AUTH   (256u * 1024u)   /* ... and after */
#define LINGER_S       5                /* how long a closing session waits for its last reply */
#define REPLY_MAX      2048
#define SESSIONS_TEXT  "The maximum number of concurrent connections has exceeded a limit, " \
                       "closing transmission channel"

static const char *const state_names[S_COUNT] = {
    [S_GREETING] = "greeting", [S_READY] = "ready", [S_MAIL] = "mail", [S_RCPT] = "rcpt",
    [S_DATA] = "data", [S_CHUNKING] = "chunking", [S_BDAT] = "bdat",
    [S_QUEUEING] = "queueing", [S_AUTH] = "auth", [S_CLOSING] = "closing",
};

static void session_settle(struct smtp_session *s);
static void session_free(struct smtp_session *s);

const char *session_fqdn(const struct smtp_session *s)
{
    if (s->c && s->c->fqdn && *s->c->fqdn)
        return s->c->fqdn;
    return s->n->boot.hostname && *s->n->boot.hostname ? s->n->boot.hostname : "localhost";
}

static void session_protolog(struct smtp_session *s, char dir, const char *text)
{
    if (s->c && s->c->protocol_logging)
        protolog_write(s->c->name, s->id, dir, "%s", text);
}

void session_enter(struct smtp_session *s, enum smtp_state to)
{
    if (s->state == to)
        return;
    if (s->c && s->c->protocol_logging)
        protolog_write(s->c->name, s->id, '*', "state %s -> %s", state_names[s->state],
                       state_names[to]);
    s->state = to;
}

static void on_tarpit(evutil_socket_t fd, short what, void *arg);

/* Exchange's TarpitInterval: a 5xx reply to a session that is neither authenticated nor
 * Externally Secured is held back for the connector's interval, on a timer, so a harvester
 * or a spammer probing recipients pays for every refusal while the loop goes on serving
 * others. Authenticated and Externally Secured sessions are never delayed. */
static bool session_tarpit_applies(const struct smtp_session *s, const char *reply)
{
    return reply[0] == '5' && s->c && s->c->tarpit_interval > 0 && !s->tok.authenticated &&
           !(s->tok.wk & (1u << WK_EXTERNALLY_SECURED));
}

/* Start holding replies back; false (reply sent at once) when no timer can be made. */
static bool session_tarpit_start(struct smtp_session *s)
{
    if (!s->ev_tarpit)
        s->ev_tarpit = evtimer_new(s->n->base, on_tarpit, s);
    if (!s->tarpit_out)
        s->tarpit_out = evbuffer_new();
    if (!s->ev_tarpit || !s->tarpit_out)
        return false;
    uint64_t t = s->c->tarpit_interval;
    struct timeval tv = {(time_t)(t > 600 ? 600 : t), 0};
    evtimer_add(s->ev_tarpit, &tv);
    s->tarpitting = true;
    return true;
}

/* Replies in order (RFC 2920): the tarpit's held reply and anything unsent come first. */
void session_out_flush(struct smtp_session *s)
{
    if (!s->peer_gone && !s->tarpitting)
        sockout_send(s->bev, s->out, s->out_len);
    else if (!s->peer_gone && s->bev)
        evbuffer_add(bufferevent_get_output(s->bev), s->out, s->out_len);
    s->out_len = 0;
}

/* One reply line (or several, separated by "\r\n" in fmt's output), CRLF appended. Inside a
 * callback (a command line, a pipelined group) replies gather in s->out and leave in one
 * send() when it ends; outside one (a worker's answer, the greeting) at once. */
void session_reply(struct smtp_session *s, const char *fmt, ...)
{
    char buf[REPLY_MAX];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf - 2, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    size_t len = (size_t)n < sizeof buf - 2 ? (size_t)n : sizeof buf - 3;
    if (!s->peer_gone && s->bev) {
        buf[len] = '\r', buf[len + 1] = '\n';
        if (!s->tarpitting && session_tarpit_applies(s, buf))
            session_tarpit_start(s);
        if (s->tarpitting) {
            /* later replies queue behind the held one (RFC 2920 order) */
            session_out_flush(s);
            evbuffer_add(s->tarpit_out, buf, len + 2);
        } else if (len + 2 <= sizeof s->out - s->out_len &&
                   (s->out_len > 0 || sockout_direct(s->bev))) {
            memcpy(s->out + s->out_len, buf, len + 2);
            s->out_len = (uint16_t)(s->out_len + len + 2);
            if (!s->in_callback)
                session_out_flush(s);
        } else {
            session_out_flush(s);
            evbuffer_add(bufferevent_get_output(s->bev), buf, len + 2);
        }
    }
    buf[len] = '\0';
    relay_metrics_reply(s->n->metrics, buf);
    session_protolog(s, '>', buf);
}

void session_close(struct smtp_session *s, const char *reason)
{
    if (s->state == S_CLOSING)
        return;
    rn_strlcpy(s->close_reason, reason, sizeof s->close_reason);
    session_enter(s, S_CLOSING);
    if (s->bev)
        session_read_off(s);
}

void session_reply_verdict(struct smtp_session *s, const struct verdict *v, const char *stage)
{
    session_reply(s, "%d %s %s", v->code, v->enh, v->text);
    if (!v->ok) {
        const struct right_info *ri = v->right ? right_by_bit(v->right) : NULL;
        char qw[256];
        log_fact(s->id, "smtp", "refused", "stage=%s reply=\"%d %s\" right=%s ace=%d why=%s",
                 stage, v->code, v->enh, ri ? ri->name : "-", v->ace,
                 log_quote(v->why ? v->why : "-", qw, sizeof qw));
    }
    if (v->close)
        session_close(s, stage);
}

void session_protocol_error(struct smtp_session *s, const char *reply)
{
    s->protocol_errors++;
    uint64_t max = s->c->max_protocol_errors;
    if (max != RN_UNLIMITED && s->protocol_errors > max) {
        session_reply(s, "421 4.7.0 Too many errors on this connection, closing transmission "
                         "channel");
        log_fact(s->id, "smtp", "refused", "stage=protocol reply=\"421 4.7.0\" errors=%llu",
                 (unsigned long long)s->protocol_errors);
        session_close(s, "protocol-errors");
        return;
    }
    session_reply(s, "%s", reply);
}

void session_set_permissions(struct smtp_session *s, const char *why)
{
    acl_eval(s->c->aces, s->c->naces, &s->tok, &s->rights);
    if (!s->c->protocol_logging)
        return;
    char tok[1024], rights[2048];
    token_format(&s->tok, tok, sizeof tok);
    rights_format(s->rights.effective, " ", false, rights, sizeof rights);
    protolog_write(s->c->name, s->id, '*', "Set Session Permissions (%s): token=%s rights=%s",
                   why, tok, rights[0] ? rights : "none");
}

/* The connector this session's endpoints select in snapshot snap, or NULL with v set. */
static const struct rn_connector *session_select(struct smtp_session *s,
                                                 const struct rn_snapshot *snap,
                                                 struct verdict *v)
{
    return policy_select(snap, &s->local, s->local_port, &s->remote, s->v4, v);
}

bool session_refresh(struct smtp_session *s)
{
    if (s->generation == s->n->snap_generation || !s->n->snap)
        return true;
    struct verdict v;
    const struct rn_connector *c = session_select(s, s->n->snap, &v);
    if (!c) {
        session_reply_verdict(s, &v, "reselect");
        session_close(s, "no-connector-after-reload");
        return false;
    }
    bool renamed = strcmp(c->name, s->c->name) != 0;
    snapshot_unref(&s->snap);      /* s->c pointed into it */
    s->snap = snapshot_ref(s->n->snap);
    s->generation = s->n->snap_generation;
    s->c = c;
    if (renamed)
        s->m_messages = relay_metrics_connector(s->n->metrics, s->n->metrics ?
                                                s->n->metrics->messages : NULL, c->name);
    if (!s->tok.authenticated) {   /* the anonymous identity depends on the connector (§3.3) */
        token_clear(&s->tok);
        policy_initial_token(c, &s->tok);
    }
    session_set_permissions(s, "reload");
    char qc[256];
    log_fact(s->id, "smtp", "reload", "connector=%s changed=%s generation=%llu",
             log_quote(c->name, qc, sizeof qc), renamed ? "yes" : "no",
             (unsigned long long)s->generation);
    return true;
}

void session_resume(struct smtp_session *s)
{
    if (s->bev && !s->peer_gone && s->state != S_CLOSING && !s->out_paused)
        session_read_on(s);
    s->in_callback = true;
    session_process(s);
    s->in_callback = false;
    session_settle(s);
}

void session_raise_limits(struct smtp_session *s)
{
    if (s->in)
        sockin_set_high(s->in, IN_HIGH_AUTH);
    else
        bufferevent_setwatermark(s->bev, EV_READ, 0, IN_HIGH_AUTH);
}

void session_read_on(struct smtp_session *s)
{
    sockin_bev_read(s->in, s->bev, true);
}

void session_read_off(struct smtp_session *s)
{
    sockin_bev_read(s->in, s->bev, false);
}

/* ---- events ---- */

void session_arm_idle(struct smtp_session *s)
{
    uint64_t t = s->c->inactivity_timeout;
    if (t == RN_UNLIMITED || t == 0) {
        evtimer_del(s->ev_idle);
        return;
    }
    struct timeval tv = {(time_t)(t > 86400 * 7 ? 86400 * 7 : t), 0};
    evtimer_add(s->ev_idle, &tv);
}

static void on_read(struct bufferevent *bev, void *arg)
{
    struct smtp_session *s = arg;
    /* Content bytes are progress; in the command states only a complete line is
     * (smtp_input.c), so a byte every few seconds does not hold a session forever. */
    if (s->state == S_DATA || s->state == S_BDAT)
        session_arm_idle(s);
    s->in_callback = true;
    session_process(s);
    s->in_callback = false;
    session_settle(s);
}

static void on_write(struct bufferevent *bev, void *arg)
{
    struct smtp_session *s = arg;
    if (s->out_paused && s->state != S_CLOSING) {
        s->out_paused = false;
        bufferevent_setwatermark(bev, EV_WRITE, 0, 0);
        if (!s->busy)
            session_read_on(s);
        s->in_callback = true;
        session_process(s);
        s->in_callback = false;
    }
    session_settle(s);
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
    struct smtp_session *s = arg;
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
        s->peer_gone = true;
        if (s->state != S_CLOSING)
            session_close(s, what & BEV_EVENT_EOF ? "client-eof" : "client-error");
    }
    session_settle(s);
}

/* A timeout fired: answer it and close, unless a worker holds the session (our own disk or
 * directory is slow, not the client): then look again later. */
static void session_timeout(struct smtp_session *s, struct event *ev, const char *reply,
                            const char *kind, uint64_t seconds)
{
    if (s->busy || s->tarpitting || s->disk_paused) {
        struct timeval tv = {1, 0};
        evtimer_add(ev, &tv);
        return;
    }
    if (s->state != S_CLOSING) {
        session_reply(s, "%s", reply);
        log_fact(s->id, "smtp", "timeout", "kind=%s seconds=%llu", kind,
                 (unsigned long long)seconds);
        char reason[64];
        snprintf(reason, sizeof reason, "%s-timeout", kind);
        session_close(s, reason);
    }
    session_settle(s);
}

static void on_idle(evutil_socket_t fd, short what, void *arg)
{
    struct smtp_session *s = arg;
    session_timeout(s, s->ev_idle, "451 4.7.0 Timeout waiting for client input", "inactivity",
                    s->c->inactivity_timeout);
}

static void on_life(evutil_socket_t fd, short what, void *arg)
{
    struct smtp_session *s = arg;
    session_timeout(s, s->ev_life, "421 4.4.1 Connection timed out", "connection",
                    s->c->connection_timeout);
}

/* The tarpit interval is over: send what was held back, then run what the client sent
 * meanwhile (or free the session if it closed). */
static void on_tarpit(evutil_socket_t fd, short what, void *arg)
{
    struct smtp_session *s = arg;
    s->tarpitting = false;
    if (!s->peer_gone && s->bev)
        evbuffer_add_buffer(bufferevent_get_output(s->bev), s->tarpit_out);
    else
        evbuffer_drain(s->tarpit_out, evbuffer_get_length(s->tarpit_out));
    if (s->state != S_CLOSING)
        session_arm_idle(s);       /* the client was waiting for us, not idle */
    s->in_callback = true;
    session_process(s);
    s->in_callback = false;
    session_settle(s);
}

static void on_linger(evutil_socket_t fd, short what, void *arg)
{
    struct smtp_session *s = arg;
    if (time(NULL) >= s->linger_until)
        s->peer_gone = true;       /* it never read its last reply: give up on it */
    session_settle(s);
}

/* Bytes of ours not yet handed to the kernel: the session's output and, under TLS, the
 * records the filter has passed to the socket bufferevent below it. */
static size_t session_unsent(struct smtp_session *s)
{
    size_t n = s->out_len + evbuffer_get_length(bufferevent_get_output(s->bev));
    struct bufferevent *under = bufferevent_get_underlying(s->bev);
    if (under)
        n += evbuffer_get_length(bufferevent_get_output(under));
    return n;
}

/* The one place a session is freed: a closing session whose last reply is flushed (or whose
 * peer is gone), never while a worker holds it or a callback is still on the stack. */
static void session_settle(struct smtp_session *s)
{
    if (!s->in_callback)
        session_out_flush(s);
    if (s->state != S_CLOSING || s->busy || s->in_callback || s->tarpitting)
        return;
    if (!s->peer_gone && session_unsent(s) > 0) {
        bufferevent_setwatermark(s->bev, EV_WRITE, 0, 0);
        bufferevent_enable(s->bev, EV_WRITE);
        if (!s->linger_until)
            s->linger_until = time(NULL) + LINGER_S;
        if (!evtimer_pending(s->ev_linger, NULL)) {
            /* The write callback covers plain sockets; under TLS the socket below the
             * filter has no callback of ours, so look again shortly. */
            struct timeval tv = {0, 20 * 1000};
            evtimer_add(s->ev_linger, &tv);
        }
        return;
    }
    session_free(s);
}

static void session_free(struct smtp_session *s)
{
    struct node *n = s->n;
    log_fact(s->id, "smtp", "close", "reason=%s messages=%llu errors=%llu seconds=%ld",
             s->close_reason[0] ? s->close_reason : "-", (unsigned long long)s->messages,
             (unsigned long long)s->protocol_errors, (long)(time(NULL) - s->started));
    session_protolog(s, '-', "disconnect");
    if (s->prev)
        s->prev->next = s->next;
    else
        n->sessions = s->next;
    if (s->next)
        s->next->prev = s->prev;
    n->nsessions--;
    if (s->count_connector)
        conncount_del(n->conns, s->count_connector, s->client_ip);
    session_reset_transaction(s);
    free(s->rcpts);
    for (size_t i = 0; i < s->nowned; i++)
        free(s->owned[i]);
    free(s->owned);
    token_clear(&s->tok);
    sockin_bev_free(&s->in, &s->bev);
    struct event *evs[] = {s->ev_idle, s->ev_life, s->ev_linger, s->ev_authdelay,
                           s->ev_tarpit};
    for (size_t i = 0; i < sizeof evs / sizeof evs[0]; i++)
        if (evs[i])
            event_free(evs[i]);
    if (s->tarpit_out)
        evbuffer_free(s->tarpit_out);
    saslauth_free(&s->auth);
    if (s->snap)
        snapshot_unref(&s->snap);
    free(s->count_connector);
    free(s->line);
    free(s);
}

void session_attach_bev(struct smtp_session *s)
{
    size_t high = s->tok.authenticated ? IN_HIGH_AUTH : IN_HIGH_ANON;
    bufferevent_setcb(s->bev, on_read, on_write, on_event, s);
    if (!bufferevent_get_underlying(s->bev) && !s->in)
        s->in = sockin_new(s->bev, high, on_read, on_event, s);
    if (s->in) {
        /* A new socket bufferevent has writing enabled without its event registered (it
         * is added when output is queued); enabling it again would register the event, have
         * it fire once on the idle socket and drop it: two epoll_ctl and a loop turn. */
        if (!(bufferevent_get_enabled(s->bev) & EV_WRITE))
            bufferevent_enable(s->bev, EV_WRITE);
        sockin_enable(s->in);
    } else {
        bufferevent_setwatermark(s->bev, EV_READ, 0, high);
        bufferevent_enable(s->bev, EV_READ | EV_WRITE);
    }
}

void session_detach_reader(struct smtp_session *s)
{
    sockin_free(&s->in);
}

/* ---- accept ---- */

static void sockaddr_to_ipr(const struct sockaddr *sa, ipr_addr *a, uint16_t *port, bool *v4,
                            char *text, size_t textlen)
{
    memset(a, 0, sizeof *a);
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        a->b[10] = a->b[11] = 0xff;
        memcpy(a->b + 12, &in->sin_addr, 4);
        *port = ntohs(in->sin_port);
        *v4 = true;
    } else {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        memcpy(a->b, &in6->sin6_addr, 16);
        *port = ntohs(in6->sin6_port);
        *v4 = ipr_addr_is_v4mapped(a);   /* an IPv4 client on a v6 socket counts as IPv4 */
    }
    ipr_addr_format(a, *v4, text, textlen);
}

/* Refuse before any session exists: one reply written straight to the socket (it is small
 * and the socket is fresh, so a non-blocking send takes it whole or the client is gone). */
static void refuse_early(struct node *node, int fd, const char *reply)
{
    relay_metrics_reply(node->metrics, reply);
    char buf[256];
    int n = snprintf(buf, sizeof buf, "%s\r\n", reply);
    if (n > 0 && send(fd, buf, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
        (void)errno;
    close(fd);
}

void smtp_session_start(struct node *n, int fd, const struct sockaddr *local,
                        const struct sockaddr *remote)
{
    static uint32_t seq;
    ipr_addr la, ra;
    uint16_t lport, rport;
    bool lv4, rv4;
    char lip[64], rip[64];
    sockaddr_to_ipr(local, &la, &lport, &lv4, lip, sizeof lip);
    sockaddr_to_ipr(remote, &ra, &rport, &rv4, rip, sizeof rip);
    char id[24];
    snprintf(id, sizeof id, "S%08lX%06X", (unsigned long)time(NULL), ++seq & 0xffffff);

    /* Node-wide cap (max_sessions, fitted below RLIMIT_NOFILE): refuse at once with
     * Exchange's text, so the accept loop never stalls on a full descriptor table. */
    if (n->max_sessions && n->nsessions >= n->max_sessions) {
        log_fact(id, "smtp", "connect-refused", "client=%s local=%s:%u reply=\"421 4.3.2\" "
                 "why=max_sessions sessions=%llu", rip, lip, lport,
                 (unsigned long long)n->nsessions);
        refuse_early(n, fd, "421 4.3.2 " SESSIONS_TEXT);
        return;
    }
    struct verdict v;
    const struct rn_connector *c = NULL;
    if (n->draining || !n->snap || n->snap_expired)
        v = (struct verdict){.code = 421, .enh = "4.3.2", .text = "Service not available",
                             .why = n->draining ? "draining"
                                    : n->snap ? "configuration stale beyond max_stale"
                                              : "no configuration loaded"};
    else
        c = policy_select(n->snap, &la, lport, &ra, rv4 && lv4, &v);
    if (!c) {
        log_fact(id, "smtp", "connect-refused", "client=%s local=%s:%u reply=\"421 4.3.2\" "
                 "why=\"%s\"", rip, lip, lport, v.why ? v.why : "no connector");
        refuse_early(n, fd, "421 4.3.2 Service not available");
        return;
    }
    uint64_t total, from_source;
    conncount_get(n->conns, c->name, rip, &total, &from_source);
    policy_connect_limits(c, total, from_source, &v);
    if (!v.ok) {
        char reply[512], qc[256];
        snprintf(reply, sizeof reply, "%d %s %s", v.code, v.enh, v.text);
        log_fact(id, "smtp", "connect-refused", "client=%s connector=%s reply=\"%d %s\" "
                 "total=%llu from_source=%llu", rip, log_quote(c->name, qc, sizeof qc), v.code,
                 v.enh, (unsigned long long)total, (unsigned long long)from_source);
        refuse_early(n, fd, reply);
        return;
    }

    struct smtp_session *s = xcalloc(1, sizeof *s);
    s->n = n;
    memcpy(s->id, id, sizeof s->id);
    s->started = time(NULL);
    s->local = la, s->remote = ra, s->local_port = lport, s->v4 = rv4 && lv4;
    rn_strlcpy(s->client_ip, rip, sizeof s->client_ip);
    rn_strlcpy(s->local_ip, lip, sizeof s->local_ip);
    s->snap = snapshot_ref(n->snap);
    s->generation = n->snap_generation;
    s->c = c;
    /* Sized for an ordinary command; an AUTH line longer than that (up to SASLAUTH_LINE_MAX)
     * grows it in session_read_command. An idle session so holds 513 bytes, not 12 KiB
     * (README, Benchmarks: sessions_bench). */
    s->line_cap = (size_t)n->max_command_line + 1;
    s->line = xmalloc(s->line_cap);
    s->count_connector = xstrdup(c->name);
    if (n->metrics) {          /* looked up once: the hot path only adds (relaymetrics.h) */
        metrics_inc(relay_metrics_connector(n->metrics, n->metrics->sessions, c->name), 1);
        s->m_messages = relay_metrics_connector(n->metrics, n->metrics->messages, c->name);
    }
    conncount_add(n->conns, c->name, rip);
    policy_initial_token(c, &s->tok);
    if (s->tok.wk & (1u << WK_EXTERNALLY_SECURED))
        s->auth_mechanism = "10";    /* SecureExternalSubmit (§9.3) */
    s->next = n->sessions;
    if (s->next)
        s->next->prev = s;
    n->sessions = s;
    n->nsessions++;

    s->bev = bufferevent_socket_new(n->base, fd, BEV_OPT_CLOSE_ON_FREE);
    s->ev_idle = evtimer_new(n->base, on_idle, s);
    s->ev_life = evtimer_new(n->base, on_life, s);
    s->ev_linger = evtimer_new(n->base, on_linger, s);
    if (!s->bev || !s->ev_idle || !s->ev_life || !s->ev_linger) {
        if (!s->bev)
            close(fd);
        log_fact(id, "smtp", "connect-failed", "client=%s why=\"cannot create events\"", rip);
        s->peer_gone = true;
        s->state = S_CLOSING;
        session_free(s);
        return;
    }
    session_attach_bev(s);
    session_arm_idle(s);
    if (c->connection_timeout != RN_UNLIMITED && c->connection_timeout > 0) {
        uint64_t t = c->connection_timeout > 86400 * 7 ? 86400 * 7 : c->connection_timeout;
        struct timeval tv = {(time_t)t, 0};
        evtimer_add(s->ev_life, &tv);
    }

    char qc[256];
    log_fact(s->id, "smtp", "connect", "client=%s:%u local=%s:%u connector=%s sessions=%llu",
             rip, rport, lip, lport, log_quote(c->name, qc, sizeof qc),
             (unsigned long long)n->nsessions);
    if (c->protocol_logging)
        protolog_write(c->name, s->id, '+', "connect %s:%u -> %s:%u", rip, rport, lip, lport);
    session_set_permissions(s, "connect");
    if (c->banner && *c->banner) {
        /* relayBanner is a whole 220 reply (validate.c rule 11); lines may end in LF. */
        const char *p = c->banner;
        while (*p) {
            size_t len = strcspn(p, "\n");
            size_t text = len && p[len - 1] == '\r' ? len - 1 : len;
            session_reply(s, "%.*s", (int)text, p);
            p += len;
            if (*p == '\n')
                p++;
        }
    } else {
        session_reply(s, "220 %s Relaynode ESMTP service ready", session_fqdn(s));
    }
}

/* ---- node-wide ---- */

void smtp_session_drain(struct node *n)
{
    for (struct smtp_session *s = n->sessions, *next; s; s = next) {
        next = s->next;
        if (s->busy || (s->state != S_GREETING && s->state != S_READY))
            continue;              /* mid-transaction: closed when its transaction ends */
        session_reply(s, "421 4.3.2 Service not available");
        session_close(s, "drain");
        session_settle(s);
    }
}

void smtp_session_free_all(struct node *n)
{
    while (n->sessions) {
        struct smtp_session *s = n->sessions;
        s->busy = false;
        s->tarpitting = false;
        s->in_callback = false;
        s->peer_gone = true;
        if (s->state != S_CLOSING)
            session_close(s, "shutdown");
        session_free(s);
    }
}
