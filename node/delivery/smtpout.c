/* smtpout: the delivery client's state machine (see smtpout.h). One reply is read at a
 * time; each state says what the reply answers and what to send next. With PIPELINING the
 * MAIL and every RCPT go in one write and their replies are taken in order (RFC 2920).
 * Commands made while a reply is handled leave together when it is done (node/common/sockout.h). */
#include "node/delivery/smtpout.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "directory/base/util.h"
#include "node/common/sockin.h"
#include "node/common/sockout.h"
#include "node/common/tlsctx.h"
#include "node/delivery/bodysrc.h"

#define LINE_MAX_OUT 2048
#define REPLY_LINES_MAX 100
/* While the body streams, the next 64 KiB piece is read once the output holds less than
 * this: a delivery holds at most about this plus one piece, whatever the message's size. */
#define BODY_LOW (128u * 1024u)

enum st { ST_BANNER, ST_EHLO, ST_HELO, ST_STARTTLS, ST_AUTH, ST_MAIL, ST_RCPT, ST_DATA,
          ST_BODY, ST_DOT, ST_QUIT, ST_IDLE };

struct smtpout {
    struct event_base *base;
    struct bufferevent *bev;
    struct sockin *in;           /* owned: reads bev's socket; NULL under TLS (the filter) */
    struct smtpout_opts o;
    smtpout_done_fn *done;
    void *arg;
    enum st st;
    bool verified;                    /* the next hop's certificate passed verify_store */
    bool tls, ext_pipelining, ext_8bit, ext_utf8, ext_starttls, ext_auth_plain, ext_size;
    unsigned long long size_max; /* SIZE's fixed maximum (RFC 1870); 0: none given */
    size_t rcpt_next;            /* replies to RCPT received so far */
    size_t accepted;             /* RCPTs answered 2xx */
    struct smtpout_rcpt_result *rr;
    const char **rcpts;          /* owned copy of the pointer array (strings borrowed) */
    struct smtpout_result res;
    bool finished;
    bool in_read;                /* on_read is on the stack: it frees, not finish() */
    size_t pend_len;             /* commands gathered for one direct send (pend_flush) */
    char pend[1200];
    smtpout_idle_fn *idle_lost;  /* ST_IDLE: the owner of an idle connection */
    void *idle_arg;
    struct event *ev_async;      /* finish from the loop when start fails early */
    bool body_busy;              /* ST_BODY: a piece is being read */
    /* the reply being read */
    int code;
    size_t nlines;
    char last[512];
};

static void smtpout_attach(struct smtpout *c);
static void smtpout_free(struct smtpout *c);

static void clean_copy(char *dst, size_t len, const char *src, size_t n)
{
    size_t k = 0;
    for (size_t i = 0; i < n && k + 1 < len; i++) {
        unsigned char c = (unsigned char)src[i];
        dst[k++] = c < 0x20 || c == 0x7f ? ' ' : (char)c;
    }
    dst[k] = '\0';
}

static void pend_flush(struct smtpout *c)
{
    sockout_send(c->bev, c->pend, c->pend_len);
    c->pend_len = 0;
}

static void finish(struct smtpout *c, enum smtpout_status st, const char *reply)
{
    if (c->finished)
        return;
    c->finished = true;
    c->res.status = st;
    if (reply && reply != c->res.reply)
        rn_strlcpy(c->res.reply, reply, sizeof c->res.reply);
    c->res.nrcpts = c->o.nrcpts;
    c->res.rcpts = c->rr;
    bodysrc_free(&c->o.body);    /* a body not sent to its end: the DATA never completes */
    pend_flush(c);               /* a QUIT made just before */
    sockin_bev_free(&c->in, &c->bev);
    c->done(c->arg, &c->res);
    if (!c->in_read)
        smtpout_free(c);
}

/* The connection's own references on its TLS context and trust store (smtpout.h): the node
 * replaces its own on SIGHUP, and the old ones live on until no connection holds them. */
static void opts_hold(struct smtpout_opts *o)
{
    if (o->ssl_ctx)
        tlsctx_client_ref(o->ssl_ctx);
    if (o->verify_store)
        tlsctx_store_ref(o->verify_store);
}

static void opts_release(struct smtpout_opts *o)
{
    tlsctx_client_free(o->ssl_ctx);
    tlsctx_store_free(o->verify_store);
    o->ssl_ctx = o->verify_store = NULL;
}

static void smtpout_free(struct smtpout *c)
{
    if (c->ev_async)
        event_free(c->ev_async);
    opts_release(&c->o);
    bodysrc_free(&c->o.body);
    free(c->rr);
    free(c->rcpts);
    free(c);
}

static void send_line(struct smtpout *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void send_line(struct smtpout *c, const char *fmt, ...)
{
    char buf[1100];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf - 2, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof buf - 2)
        n = (int)sizeof buf - 3;
    buf[n] = '\r', buf[n + 1] = '\n';
    size_t len = (size_t)n + 2;
    if (len <= sizeof c->pend - c->pend_len && (c->pend_len > 0 || sockout_direct(c->bev))) {
        memcpy(c->pend + c->pend_len, buf, len);
        c->pend_len += len;
        if (!c->in_read)
            pend_flush(c);
        return;
    }
    pend_flush(c);
    evbuffer_add(bufferevent_get_output(c->bev), buf, len);
}

/* ---- the body, streamed from the spool ---- */

static void body_pump(struct smtpout *c);

static void on_piece(void *arg, int rc, struct evbuffer *piece, const char *err)
{
    struct smtpout *c = arg;
    c->body_busy = false;
    if (rc < 0) {
        /* Unreadable, torn or corrupt (checksum) on the way: the final dot is never sent,
         * so closing the connection aborts the transaction at the next hop (RFC 5321
         * §4.1.1.4: only <CRLF>.<CRLF> completes it). */
        char why[sizeof c->res.reply];
        rn_strlcpy(why, err, sizeof why);
        finish(c, SMTPOUT_TEMPFAIL, why);
        return;
    }
    pend_flush(c);               /* the body after every command before it */
    sockout_send_buffer(c->bev, piece);   /* not through the output: two epoll_ctl less */
    if (rc > 0) {
        body_pump(c);
        return;
    }
    bodysrc_free(&c->o.body);    /* the final ".\r\n" is queued: wait for its reply */
    unsigned t = c->o.timeout_s ? c->o.timeout_s : 300;
    struct timeval tv = {t, 0};
    bufferevent_setwatermark(c->bev, EV_WRITE, 0, 0);
    sockin_bev_timeouts(c->in, c->bev, &tv, &tv);
    c->st = ST_DOT;
}

/* Read the next piece while the output is short (libevent calls on_write when it drains
 * below BODY_LOW): backpressure from the next hop bounds what is held. */
static void body_pump(struct smtpout *c)
{
    if (c->st != ST_BODY || c->body_busy || c->finished || !c->o.body)
        return;
    if (evbuffer_get_length(bufferevent_get_output(c->bev)) >= BODY_LOW)
        return;
    c->body_busy = true;
    bodysrc_pull(c->o.body, on_piece, c);
}

static void on_write(struct bufferevent *bev, void *arg)
{
    body_pump(arg);
}

static void send_body(struct smtpout *c)
{
    if (!c->o.body) {            /* a caller bug: never complete a DATA with nothing */
        finish(c, SMTPOUT_TEMPFAIL, "4.3.0 no message body to send");
        return;
    }
    c->st = ST_BODY;
    /* No reply is due before the final dot: only the write timeout applies meanwhile. */
    unsigned t = c->o.timeout_s ? c->o.timeout_s : 300;
    struct timeval tv = {t, 0};
    sockin_bev_timeouts(c->in, c->bev, NULL, &tv);
    bufferevent_setwatermark(c->bev, EV_WRITE, BODY_LOW, 0);
    body_pump(c);
}

static void send_ehlo(struct smtpout *c)
{
    c->ext_pipelining = c->ext_8bit = c->ext_utf8 = c->ext_starttls = false;
    c->ext_auth_plain = c->ext_size = false;
    c->size_max = 0;
    send_line(c, "EHLO %s", c->o.helo);
    c->st = ST_EHLO;
}

static void send_envelope(struct smtpout *c)
{
    if ((c->o.needs_8bit && !c->ext_8bit) || (c->o.needs_smtputf8 && !c->ext_utf8)) {
        send_line(c, "QUIT");
        finish(c, SMTPOUT_PERMFAIL, c->o.needs_smtputf8 && !c->ext_utf8
                   ? "5.6.7 the next hop does not offer SMTPUTF8, which the message needs"
                   : "5.6.3 the next hop does not offer 8BITMIME, which the message needs");
        return;
    }
    if (c->ext_size && c->size_max && c->o.len > c->size_max) {
        /* RFC 1870 §6: a message over the server's fixed maximum is not sent. */
        char why[160];
        snprintf(why, sizeof why, "5.3.4 message of %zu octets exceeds the next hop's fixed "
                 "maximum message size of %llu", c->o.len, c->size_max);
        send_line(c, "QUIT");
        finish(c, SMTPOUT_PERMFAIL, why);
        return;
    }
    char params[96] = "";
    size_t k = 0;
    if (c->ext_size)
        k += (size_t)snprintf(params + k, sizeof params - k, " SIZE=%zu", c->o.len);
    if (c->o.needs_8bit && k < sizeof params)
        k += (size_t)snprintf(params + k, sizeof params - k, " BODY=8BITMIME");
    if (c->o.needs_smtputf8 && k < sizeof params)
        snprintf(params + k, sizeof params - k, " SMTPUTF8");
    send_line(c, "MAIL FROM:<%s>%s", c->o.sender, params);
    c->st = ST_MAIL;
    if (c->ext_pipelining)
        for (size_t i = 0; i < c->o.nrcpts; i++)
            send_line(c, "RCPT TO:<%s>", c->o.rcpts[i]);
}

static void start_tls(struct smtpout *c)
{
    pend_flush(c);               /* in clear, before the filter (nothing, normally) */
    sockin_free(&c->in);         /* the filter reads the socket from now on */
    if (tlsctx_client_upgrade(c->o.ssl_ctx, c->base, &c->bev) < 0) {
        finish(c, SMTPOUT_TEMPFAIL, "4.7.5 cannot start TLS");
        return;
    }
    c->tls = true;
    smtpout_attach(c);
    send_ehlo(c);
}

static void send_auth(struct smtpout *c)
{
    char raw[600], b64[820];
    int n = snprintf(raw, sizeof raw, "%c%s%c%s", 0, c->o.auth_user, 0, c->o.auth_pass);
    if (n < 0 || (size_t)n >= sizeof raw) {
        finish(c, SMTPOUT_PERMFAIL, "5.7.8 smart host credentials too long");
        return;
    }
    rn_base64_encode(raw, (size_t)n, b64, sizeof b64);
    explicit_bzero(raw, sizeof raw);
    send_line(c, "AUTH PLAIN %s", b64);
    explicit_bzero(b64, sizeof b64);
    c->st = ST_AUTH;
}

/* After EHLO: TLS, then AUTH, then the envelope. */
static void after_ehlo(struct smtpout *c)
{
    if (c->tls && c->o.verify_store && !c->verified) {
        char why[400], r[512];
        size_t m;
        const char *nm = c->o.verify_name;
        if (tlsctx_peer_check(c->bev, c->o.verify_store, &nm, 1, c->o.verify_subdomains, &m,
                              why, sizeof why) != 1) {
            send_line(c, "QUIT");
            snprintf(r, sizeof r, "4.7.5 the certificate of the next hop is not valid for %s "
                     "(%s)", nm, why);
            finish(c, SMTPOUT_TEMPFAIL, r);
            return;
        }
        c->verified = true;
    }
    if (!c->tls && c->o.ssl_ctx && c->ext_starttls) {
        send_line(c, "STARTTLS");
        c->st = ST_STARTTLS;
        return;
    }
    if (!c->tls && c->o.tls_required) {
        send_line(c, "QUIT");
        finish(c, SMTPOUT_TEMPFAIL, "4.7.4 TLS is required but the next hop does not offer it");
        return;
    }
    if (c->o.auth_user && c->o.auth_pass) {
        if (!c->tls) {            /* credentials never travel in clear text */
            send_line(c, "QUIT");
            finish(c, SMTPOUT_TEMPFAIL, "4.7.0 smart host credentials need TLS, not offered");
            return;
        }
        if (c->ext_auth_plain) {
            send_auth(c);
            return;
        }
    }
    send_envelope(c);
}

static void on_ehlo_line(struct smtpout *c, const char *line, size_t len)
{
    if (len <= 4 || c->nlines == 1)
        return;                   /* the first line is the greeting */
    const char *kw = line + 4;
    size_t kl = len - 4;
    if (kl >= 10 && strncasecmp(kw, "PIPELINING", 10) == 0)
        c->ext_pipelining = true;
    else if (kl >= 8 && strncasecmp(kw, "8BITMIME", 8) == 0)
        c->ext_8bit = true;
    else if (kl >= 8 && strncasecmp(kw, "SMTPUTF8", 8) == 0)
        c->ext_utf8 = true;
    else if (kl >= 8 && strncasecmp(kw, "STARTTLS", 8) == 0)
        c->ext_starttls = true;
    else if (kl >= 4 && strncasecmp(kw, "SIZE", 4) == 0 && (kl == 4 || kw[4] == ' ')) {
        c->ext_size = true;
        unsigned long long v = 0;
        size_t i = 5;
        for (; i < kl && i < 25 && kw[i] >= '0' && kw[i] <= '9'; i++)
            v = v * 10 + (unsigned long long)(kw[i] - '0');
        c->size_max = i < 25 ? v : 0;   /* absurdly long numbers: no limit we can hold */
    }
    else if (kl >= 5 && strncasecmp(kw, "AUTH", 4) == 0) {
        char tmp[256];
        clean_copy(tmp, sizeof tmp, kw, kl);
        for (char *p = tmp; *p; p++)
            *p = (char)(*p >= 'a' && *p <= 'z' ? *p - 32 : *p);
        c->ext_auth_plain = strstr(tmp, " PLAIN") != NULL;
    }
}

static void rcpt_reply(struct smtpout *c)
{
    size_t i = c->rcpt_next++;
    c->rr[i].code = c->code;
    rn_strlcpy(c->rr[i].reply, c->last, sizeof c->rr[i].reply);
    if (c->code / 100 == 2)
        c->accepted++;
    if (c->rcpt_next < c->o.nrcpts) {
        if (!c->ext_pipelining)
            send_line(c, "RCPT TO:<%s>", c->o.rcpts[c->rcpt_next]);
        return;
    }
    if (c->accepted == 0) {
        send_line(c, "QUIT");
        finish(c, SMTPOUT_DONE, "no recipient accepted");
        return;
    }
    send_line(c, "DATA");
    c->st = ST_DATA;
}

/* A whole reply has arrived: c->code and c->last. */
static void on_reply(struct smtpout *c)
{
    int cls = c->code / 100;
    switch (c->st) {
    case ST_BANNER:
        if (cls != 2) {
            send_line(c, "QUIT");
            finish(c, cls == 5 ? SMTPOUT_PERMFAIL : SMTPOUT_TEMPFAIL, c->last);
            return;
        }
        send_ehlo(c);
        return;
    case ST_EHLO:
        if (cls == 2) {
            after_ehlo(c);
        } else if (cls == 5 && !c->tls) {
            send_line(c, "HELO %s", c->o.helo);
            c->st = ST_HELO;
        } else {
            finish(c, cls == 5 ? SMTPOUT_PERMFAIL : SMTPOUT_TEMPFAIL, c->last);
        }
        return;
    case ST_HELO:
        if (cls != 2) {
            finish(c, cls == 5 ? SMTPOUT_PERMFAIL : SMTPOUT_TEMPFAIL, c->last);
            return;
        }
        after_ehlo(c);
        return;
    case ST_STARTTLS:
        if (cls != 2) {
            if (c->o.tls_required) {
                finish(c, SMTPOUT_TEMPFAIL, c->last);
                return;
            }
            c->ext_starttls = false;          /* go on in plaintext (opportunistic) */
            tlsctx_client_free(c->o.ssl_ctx);
            c->o.ssl_ctx = NULL;
            after_ehlo(c);
            return;
        }
        start_tls(c);
        return;
    case ST_AUTH:
        if (cls != 2) {
            finish(c, cls == 5 ? SMTPOUT_PERMFAIL : SMTPOUT_TEMPFAIL, c->last);
            return;
        }
        send_envelope(c);
        return;
    case ST_MAIL:
        if (cls != 2) {
            if (!c->ext_pipelining)
                send_line(c, "QUIT");
            /* pipelined RCPT replies would follow: the connection is dropped instead */
            finish(c, cls == 5 ? SMTPOUT_PERMFAIL : SMTPOUT_TEMPFAIL, c->last);
            return;
        }
        c->st = ST_RCPT;
        if (!c->ext_pipelining)
            send_line(c, "RCPT TO:<%s>", c->o.rcpts[0]);
        return;
    case ST_RCPT:
        rcpt_reply(c);
        return;
    case ST_DATA:
        if (c->code != 354) {
            send_line(c, "QUIT");
            finish(c, cls == 5 ? SMTPOUT_PERMFAIL : SMTPOUT_TEMPFAIL, c->last);
            return;
        }
        send_body(c);
        return;
    case ST_DOT:
        c->res.data_code = c->code;
        rn_strlcpy(c->res.reply, c->last, sizeof c->res.reply);
        if (cls == 2 && c->o.keep_open) {
            /* The next message may use this connection (smtpout_reuse). */
            c->st = ST_IDLE;
            c->res.status = SMTPOUT_DONE;
            c->res.reusable = true;
            c->res.nrcpts = c->o.nrcpts;
            c->res.rcpts = c->rr;
            c->done(c->arg, &c->res);
            return;
        }
        send_line(c, "QUIT");
        c->st = ST_QUIT;
        /* The message's fate is known: do not wait for the 221. */
        finish(c, cls == 5 ? SMTPOUT_PERMFAIL : SMTPOUT_DONE, c->last);
        return;
    case ST_BODY:
        /* A reply before the final dot: the next hop gave up on the message. */
        finish(c, cls == 5 ? SMTPOUT_PERMFAIL : SMTPOUT_TEMPFAIL, c->last);
        return;
    case ST_QUIT: case ST_IDLE:
        return;
    }
}

static void smtpout_read(struct smtpout *c, struct evbuffer *in);
static void on_event(struct bufferevent *bev, short what, void *arg);

static void on_read(struct bufferevent *bev, void *arg)
{
    struct smtpout *c = arg;
    if (c->st == ST_IDLE) {       /* a parked connection speaks only when it closes */
        on_event(bev, BEV_EVENT_EOF, c);
        return;
    }
    c->in_read = true;
    smtpout_read(c, bufferevent_get_input(bev));
    c->in_read = false;
    pend_flush(c);
    if (c->finished)
        smtpout_free(c);
}

static void smtpout_read(struct smtpout *c, struct evbuffer *in)
{
    while (!c->finished) {
        size_t avail = evbuffer_get_length(in);
        if (avail == 0)
            return;
        size_t peek = avail < LINE_MAX_OUT ? avail : LINE_MAX_OUT;
        const char *p = (const char *)evbuffer_pullup(in, (ssize_t)peek);
        const char *nl = memchr(p, '\n', peek);
        if (!nl) {
            if (avail >= LINE_MAX_OUT)
                finish(c, SMTPOUT_TEMPFAIL, "4.4.2 reply line too long");
            return;
        }
        size_t len = (size_t)(nl - p);
        if (len && p[len - 1] == '\r')
            len--;
        int code = len >= 3 && p[0] >= '2' && p[0] <= '5' && p[1] >= '0' && p[1] <= '9' &&
                   p[2] >= '0' && p[2] <= '9' ? (p[0] - '0') * 100 + (p[1] - '0') * 10 +
                                                (p[2] - '0') : 0;
        bool more = len > 3 && p[3] == '-';
        if (code == 0 || (len > 3 && p[3] != ' ' && p[3] != '-') ||
            (c->nlines > 0 && code != c->code)) {
            finish(c, SMTPOUT_TEMPFAIL, "4.4.2 malformed reply from the next hop");
            return;
        }
        c->code = code;
        c->nlines++;
        if (c->st == ST_EHLO)
            on_ehlo_line(c, p, len);
        clean_copy(c->last, sizeof c->last, p, len);
        evbuffer_drain(in, (size_t)(nl - p) + 1);
        if (c->nlines > REPLY_LINES_MAX) {
            finish(c, SMTPOUT_TEMPFAIL, "4.4.2 reply with too many lines");
            return;
        }
        if (!more) {
            c->nlines = 0;
            on_reply(c);
        }
    }
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
    struct smtpout *c = arg;
    if (what & BEV_EVENT_CONNECTED)
        return;
    if (c->st == ST_IDLE) {       /* closed or timed out while parked: nothing was pending */
        if (c->idle_lost)
            c->idle_lost(c->idle_arg, c);
        sockin_bev_free(&c->in, &c->bev);
        smtpout_free(c);
        return;
    }
    char why[200];
    if (what & BEV_EVENT_TIMEOUT)
        snprintf(why, sizeof why, "4.4.2 timeout waiting for the next hop");
    else if (what & BEV_EVENT_EOF)
        snprintf(why, sizeof why, "4.4.2 connection closed by the next hop");
    else {
        int e = EVUTIL_SOCKET_ERROR();
        snprintf(why, sizeof why, "4.4.1 connection failed: %s",
                 e ? evutil_socket_error_to_string(e) : (c->tls ? "TLS error" : "error"));
    }
    finish(c, SMTPOUT_TEMPFAIL, why);
}

static void smtpout_attach(struct smtpout *c)
{
    unsigned t = c->o.timeout_s ? c->o.timeout_s : 300;
    struct timeval tv = {t, 0};
    bufferevent_setcb(c->bev, on_read, on_write, on_event, c);
    if (!c->tls && !c->in)
        c->in = sockin_new(c->bev, 0, on_read, on_event, c);
    sockin_bev_timeouts(c->in, c->bev, &tv, &tv);
    bufferevent_enable(c->bev, EV_WRITE);
    sockin_bev_read(c->in, c->bev, true);
}

/* Nagle off on the connection to the next hop. libevent writes at most 16 KB per call, so a
 * body leaves in several writes; with Nagle on, the last, short one (with the final dot)
 * waited for the ACK of the one before, which the receiver may delay by up to 40 ms: about
 * 43 ms more per message, measured (issue 18). Commands still leave together: what is queued
 * before the loop writes goes in one write. A failure here only costs speed. */
static void smtpout_nodelay(struct smtpout *c)
{
    int one = 1;
    evutil_socket_t fd = bufferevent_getfd(c->bev);
    if (fd >= 0)
        (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

static void on_async(evutil_socket_t fd, short what, void *arg)
{
    struct smtpout *c = arg;
    finish(c, c->res.status, c->res.reply);
}

struct smtpout *smtpout_start(struct event_base *base, const struct sockaddr *addr,
                              socklen_t alen, const struct smtpout_opts *o,
                              smtpout_done_fn *done, void *arg)
{
    struct smtpout *c = xcalloc(1, sizeof *c);
    c->base = base;
    c->o = *o;
    opts_hold(&c->o);
    c->done = done;
    c->arg = arg;
    c->rr = xcalloc(o->nrcpts ? o->nrcpts : 1, sizeof *c->rr);
    c->rcpts = xcalloc(o->nrcpts ? o->nrcpts : 1, sizeof *c->rcpts);
    for (size_t i = 0; i < o->nrcpts; i++)
        c->rcpts[i] = o->rcpts[i];
    c->o.rcpts = c->rcpts;
    c->st = ST_BANNER;
    c->ev_async = evtimer_new(base, on_async, c);
    const char *bad = o->refuse;
    c->bev = bad ? NULL : bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
    if (!bad && (!c->bev || bufferevent_socket_connect(c->bev, addr, (int)alen) < 0)) {
        c->res.status = SMTPOUT_TEMPFAIL;
        snprintf(c->res.reply, sizeof c->res.reply, "4.4.1 cannot connect");
    } else if (bad) {
        c->res.status = SMTPOUT_PERMFAIL;
        rn_strlcpy(c->res.reply, bad, sizeof c->res.reply);
    } else {
        smtpout_nodelay(c);
        smtpout_attach(c);
        return c;
    }
    /* Answer from the loop, never inside this call. */
    struct timeval now = {0, 0};
    if (!c->ev_async || evtimer_add(c->ev_async, &now) < 0) {
        sockin_bev_free(&c->in, &c->bev);
        if (c->ev_async)
            event_free(c->ev_async);
        opts_release(&c->o);
        bodysrc_free(&c->o.body);
        free(c->rr);
        free(c->rcpts);
        free(c);
        return NULL;
    }
    return c;
}

void smtpout_abort(struct smtpout *c)
{
    finish(c, SMTPOUT_TEMPFAIL, "4.3.2 aborted");
}

void smtpout_park(struct smtpout *c, smtpout_idle_fn *lost, void *arg, unsigned idle_s)
{
    c->idle_lost = lost;
    c->idle_arg = arg;
    struct timeval tv = {idle_s, 0};
    sockin_bev_timeouts(c->in, c->bev, &tv, NULL);
}

void smtpout_reuse(struct smtpout *c, const struct smtpout_opts *o, smtpout_done_fn *done,
                   void *arg)
{
    bodysrc_free(&c->o.body);    /* NULL after the last transaction; never sent twice */
    opts_release(&c->o);
    c->o = *o;
    opts_hold(&c->o);
    c->done = done;
    c->arg = arg;
    c->idle_lost = NULL;
    free(c->rr);
    free(c->rcpts);
    c->rr = xcalloc(o->nrcpts ? o->nrcpts : 1, sizeof *c->rr);
    c->rcpts = xcalloc(o->nrcpts ? o->nrcpts : 1, sizeof *c->rcpts);
    for (size_t i = 0; i < o->nrcpts; i++)
        c->rcpts[i] = o->rcpts[i];
    c->o.rcpts = c->rcpts;
    c->rcpt_next = c->accepted = 0;
    memset(&c->res, 0, sizeof c->res);
    c->nlines = 0;
    const char *bad = c->o.refuse;
    unsigned t = c->o.timeout_s ? c->o.timeout_s : 300;
    struct timeval tv = {t, 0};
    sockin_bev_timeouts(c->in, c->bev, &tv, &tv);
    if (bad) {
        /* Answer from the loop, as smtpout_start does; the connection is not reused. */
        send_line(c, "QUIT");
        c->res.status = SMTPOUT_PERMFAIL;
        rn_strlcpy(c->res.reply, bad, sizeof c->res.reply);
        c->st = ST_QUIT;
        struct timeval now = {0, 0};
        evtimer_add(c->ev_async, &now);
        return;
    }
    send_envelope(c);
}

void smtpout_quit(struct smtpout *c)
{
    send_line(c, "QUIT");
    sockin_bev_free(&c->in, &c->bev);          /* the 221 is not awaited */
    smtpout_free(c);
}
