/* smtpc: one message over one outbound SMTP connection (RFC 5321), as one explicit state
 * machine driven by bufferevent callbacks and one stage timer. Every entry point (read,
 * write, event, timer) does its work and then reaps: deep code only marks the client for
 * freeing (STYLE rule 11), so nothing is freed under a caller's feet. done() is called once
 * from finish(); after it the client only says QUIT and goes. Local refusals of the message
 * itself (bare CR/LF, long lines) are found before connecting, so nothing is ever sent that
 * would have to be corrupted or cut. */
#include "node/smtpc.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/util.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>

#include "directory/util.h"

#define SMTPC_LINE_MAX 2048        /* a reply line (RFC 5321 §4.5.3.1.5 says 512; be lenient) */
#define SMTPC_REPLY_LINES_MAX 100
#define SMTPC_TEXT_LINE_MAX 998     /* RFC 5321 §4.5.3.1.6: 1000 with the CRLF */
#define SMTPC_CHUNK (64 * 1024)     /* most message octets queued for output at once */
#define SMTPC_LOWAT (16 * 1024)     /* refill when the output drains to this */
#define SMTPC_QUIT_WAIT_S 5

enum smtpc_state {
    ST_CONNECT, ST_BANNER, ST_EHLO, ST_HELO, ST_STARTTLS, ST_HANDSHAKE, ST_AUTH,
    ST_MAIL, ST_RCPT, ST_DATA, ST_BODY, ST_DOT, ST_QUIT, ST_EARLY,
};
static const char *const state_names[] = {
    "connect", "banner", "EHLO", "HELO", "STARTTLS", "TLS handshake", "AUTH",
    "MAIL", "RCPT", "DATA", "message transfer", "end of data", "QUIT", "start",
};

enum {
    EXT_PIPELINING = 1 << 0, EXT_SIZE = 1 << 1, EXT_8BITMIME = 1 << 2, EXT_SMTPUTF8 = 1 << 3,
    EXT_STARTTLS = 1 << 4, EXT_AUTH = 1 << 5,
};

struct smtpc {
    struct event_base *base;
    struct bufferevent *bev;    /* owned; the TLS filter after STARTTLS (owning the socket one) */
    struct event *timer;        /* owned; the stage timeout, or the early failure */
    struct smtpc_opts o;        /* strings and data borrowed; o.rcpts points to rcpt_copy */
    const char **rcpt_copy;     /* owned array, borrowed strings */
    smtpc_done_fn *done;
    void *arg;
    enum smtpc_state state;
    unsigned ext;               /* EXT_* from the last EHLO */
    unsigned long size_max;     /* SIZE parameter; 0 = none stated */
    int tls, authed, need8, needutf8;
    int done_called, free_me;
    /* the reply being read */
    int rcode;
    size_t rlines;
    char rlast[512];
    size_t pending;             /* replies still owed to us */
    int pipelined;              /* MAIL and all RCPTs went in one write */
    size_t rcpt_sent, rcpt_answered, rcpt_ok;
    size_t off;                 /* next message octet to queue */
    int early_status;
    char early_reason[512];
    struct smtpc_result res;
};

static void on_read(struct bufferevent *bev, void *arg);
static void on_write(struct bufferevent *bev, void *arg);
static void on_event(struct bufferevent *bev, short what, void *arg);

static void smtpc_free(struct smtpc *c)
{
    if (c->bev)
        bufferevent_free(c->bev);
    if (c->timer)
        event_free(c->timer);
    free(c->res.rcpts);
    free(c->rcpt_copy);
    free(c);
}

/* End of every entry point: the one place the client is freed. */
static void smtpc_reap(struct smtpc *c)
{
    if (c->free_me)
        smtpc_free(c);
}

static void smtpc_arm(struct smtpc *c, unsigned secs)
{
    struct timeval tv = {secs, 0};
    evtimer_add(c->timer, &tv);
}

/* Copy text into a reply field, replacing control and non-ASCII bytes: the text ends up in
 * logs and DSNs. */
static void smtpc_sanitize(char *dst, size_t dstlen, const char *src, size_t n)
{
    size_t i;
    for (i = 0; i < n && i + 1 < dstlen; i++) {
        unsigned char ch = (unsigned char)src[i];
        dst[i] = (ch < 0x20 || ch >= 0x7f) ? '?' : (char)ch;
    }
    dst[i] = '\0';
}

static void smtpc_send(struct smtpc *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void smtpc_send(struct smtpc *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    evbuffer_add_vprintf(bufferevent_get_output(c->bev), fmt, ap);
    va_end(ap);
    c->pending++;
}

static void smtpc_enter(struct smtpc *c, enum smtpc_state s)
{
    c->state = s;
    smtpc_arm(c, c->o.timeout_s);
}

/* Decide the result, tell the caller, then QUIT (when the connection is still in step and
 * not closed by a 421) or mark the client for freeing. */
static void smtpc_finish(struct smtpc *c, int status, int quit, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void smtpc_finish(struct smtpc *c, int status, int quit, const char *fmt, ...)
{
    if (c->done_called)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->res.reply, sizeof c->res.reply, fmt, ap);
    va_end(ap);
    c->res.status = status;
    c->done_called = 1;
    c->done(c->arg, &c->res);
    if (quit && c->bev) {
        smtpc_send(c, "QUIT\r\n");
        c->state = ST_QUIT;
        smtpc_arm(c, c->o.timeout_s < SMTPC_QUIT_WAIT_S ? c->o.timeout_s : SMTPC_QUIT_WAIT_S);
    } else {
        c->free_me = 1;
    }
}

/* A non-2xx reply that ends the transaction: 5xx permanent, anything else temporary; after a
 * 421 the server is gone (RFC 5321 §3.8), so no QUIT. */
static void smtpc_fail_reply(struct smtpc *c)
{
    smtpc_finish(c, c->rcode / 100 == 5 ? SMTPC_PERMFAIL : SMTPC_TEMPFAIL, c->rcode != 421,
                 "%s", c->rlast);
}

static void smtpc_ext_parse(struct smtpc *c, const char *kw)
{
    size_t n = strcspn(kw, " ");
    const char *param = kw[n] ? kw + n + 1 : "";
    if (n == 10 && rn_strnieq(kw, "PIPELINING", n))
        c->ext |= EXT_PIPELINING;
    else if (n == 8 && rn_strnieq(kw, "8BITMIME", n))
        c->ext |= EXT_8BITMIME;
    else if (n == 8 && rn_strnieq(kw, "SMTPUTF8", n))
        c->ext |= EXT_SMTPUTF8;
    else if (n == 8 && rn_strnieq(kw, "STARTTLS", n))
        c->ext |= EXT_STARTTLS;
    else if (n == 4 && rn_strnieq(kw, "AUTH", n))
        c->ext |= EXT_AUTH;
    else if (n == 4 && rn_strnieq(kw, "SIZE", n)) {
        c->ext |= EXT_SIZE;
        char *end;
        errno = 0;
        unsigned long v = strtoul(param, &end, 10);
        c->size_max = (errno || end == param || *param == '-') ? 0 : v;
    }
}

/* Read one complete reply into rcode/rlast: 1 done, 0 need more, -1 malformed or too long
 * (reason in why). EHLO extension lines are parsed as they pass. */
static int smtpc_reply_read(struct smtpc *c, char *why, size_t whylen)
{
    struct evbuffer *in = bufferevent_get_input(c->bev);
    for (;;) {
        size_t eol_len = 0;
        struct evbuffer_ptr p = evbuffer_search_eol(in, NULL, &eol_len, EVBUFFER_EOL_CRLF);
        if (p.pos < 0) {
            if (evbuffer_get_length(in) > SMTPC_LINE_MAX)
                return rn_err(why, whylen, "reply line over %d octets", SMTPC_LINE_MAX);
            return 0;
        }
        if ((size_t)p.pos > SMTPC_LINE_MAX)
            return rn_err(why, whylen, "reply line over %d octets", SMTPC_LINE_MAX);
        char line[SMTPC_LINE_MAX + 1];
        size_t n = (size_t)p.pos;
        evbuffer_remove(in, line, n);
        evbuffer_drain(in, eol_len);
        line[n] = '\0';
        if (n < 3 || line[0] < '2' || line[0] > '5' || line[1] < '0' || line[1] > '9' ||
            line[2] < '0' || line[2] > '9' || (n > 3 && line[3] != ' ' && line[3] != '-')) {
            char shown[80];
            smtpc_sanitize(shown, sizeof shown, line, n);
            return rn_err(why, whylen, "malformed reply \"%s\"", shown);
        }
        if (++c->rlines > SMTPC_REPLY_LINES_MAX)
            return rn_err(why, whylen, "reply over %d lines", SMTPC_REPLY_LINES_MAX);
        if (c->rlines == 1)
            c->rcode = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
        smtpc_sanitize(c->rlast, sizeof c->rlast, line, n);
        /* The first EHLO line greets; the others name extensions (RFC 5321 §4.1.1.1). */
        if (c->state == ST_EHLO && c->rlines > 1 && n > 4)
            smtpc_ext_parse(c, line + 4);
        if (n == 3 || line[3] == ' ') {
            c->rlines = 0;
            return 1;
        }
    }
}

static void smtpc_mail(struct smtpc *c)
{
    if (c->need8 && !(c->ext & EXT_8BITMIME)) {
        smtpc_finish(c, SMTPC_PERMFAIL, 1,
                     "5.6.3 8-bit message and the next hop does not offer 8BITMIME");
        return;
    }
    if (c->needutf8 && !(c->ext & EXT_SMTPUTF8)) {
        smtpc_finish(c, SMTPC_PERMFAIL, 1,
                     "5.6.7 internationalized message and the next hop does not offer SMTPUTF8");
        return;
    }
    if ((c->ext & EXT_SIZE) && c->size_max && c->o.len > c->size_max) {
        smtpc_finish(c, SMTPC_PERMFAIL, 1,
                     "5.3.4 message size %zu exceeds the next hop's limit %lu", c->o.len,
                     c->size_max);
        return;
    }
    char size[40] = "";
    if (c->ext & EXT_SIZE)
        snprintf(size, sizeof size, " SIZE=%zu", c->o.len);
    smtpc_send(c, "MAIL FROM:<%s>%s%s%s\r\n", c->o.sender, size,
               c->need8 ? " BODY=8BITMIME" : "", c->needutf8 ? " SMTPUTF8" : "");
    /* RFC 2920: MAIL and RCPTs may go as one group; DATA waits for their answers, since it is
     * only sent when some recipient was accepted. */
    c->pipelined = (c->ext & EXT_PIPELINING) != 0;
    if (c->pipelined)
        for (; c->rcpt_sent < c->o.nrcpts; c->rcpt_sent++)
            smtpc_send(c, "RCPT TO:<%s>\r\n", c->o.rcpts[c->rcpt_sent]);
    smtpc_enter(c, ST_MAIL);
}

static void smtpc_auth(struct smtpc *c)
{
    size_t ul = strlen(c->o.auth_user), pl = strlen(c->o.auth_pass);
    size_t n = ul + pl + 2;
    unsigned char *raw = xmalloc(n);
    raw[0] = '\0';
    memcpy(raw + 1, c->o.auth_user, ul);
    raw[1 + ul] = '\0';
    memcpy(raw + 2 + ul, c->o.auth_pass, pl);
    unsigned char *b64 = xmalloc(4 * ((n + 2) / 3) + 1);
    EVP_EncodeBlock(b64, raw, (int)n);
    smtpc_send(c, "AUTH PLAIN %s\r\n", (char *)b64);
    OPENSSL_cleanse(raw, n);
    OPENSSL_cleanse(b64, strlen((char *)b64));
    free(raw);
    free(b64);
    smtpc_enter(c, ST_AUTH);
}

/* After a 2xx to EHLO or HELO: TLS first, then AUTH, then the transaction. */
static void smtpc_after_ehlo(struct smtpc *c)
{
    if (!c->tls && c->o.ssl_ctx && (c->ext & EXT_STARTTLS)) {
        smtpc_send(c, "STARTTLS\r\n");
        smtpc_enter(c, ST_STARTTLS);
        return;
    }
    if (!c->tls && c->o.tls_required) {
        smtpc_finish(c, SMTPC_TEMPFAIL, 1,
                     "4.7.10 TLS required but the next hop does not offer STARTTLS");
        return;
    }
    if (c->o.auth_user && c->o.auth_pass && !c->authed) {
        /* Credentials never travel in clear text. */
        if (!c->tls) {
            smtpc_finish(c, SMTPC_TEMPFAIL, 1,
                         "4.7.10 AUTH configured but no TLS with the next hop");
            return;
        }
        if (c->ext & EXT_AUTH) {
            smtpc_auth(c);
            return;
        }
    }
    smtpc_mail(c);
}

static void smtpc_starttls(struct smtpc *c)
{
    SSL *ssl = SSL_new(c->o.ssl_ctx);
    if (!ssl) {
        ERR_clear_error();
        smtpc_finish(c, SMTPC_TEMPFAIL, 0, "4.7.5 TLS: SSL_new failed");
        return;
    }
    /* Anything that arrived after the 220 came before the handshake: never take it as
     * protected (RFC 3207 §6, CVE-2011-0411). */
    struct evbuffer *in = bufferevent_get_input(c->bev);
    evbuffer_drain(in, evbuffer_get_length(in));
    struct bufferevent *f = bufferevent_openssl_filter_new(c->base, c->bev, ssl,
                                                           BUFFEREVENT_SSL_CONNECTING,
                                                           BEV_OPT_CLOSE_ON_FREE);
    if (!f) {
        SSL_free(ssl);
        smtpc_finish(c, SMTPC_TEMPFAIL, 0, "4.7.5 TLS: filter creation failed");
        return;
    }
    bufferevent_openssl_set_allow_dirty_shutdown(f, 1);
    c->bev = f;
    bufferevent_setcb(f, on_read, on_write, on_event, c);
    bufferevent_enable(f, EV_READ | EV_WRITE);
    smtpc_enter(c, ST_HANDSHAKE);
}

/* Queue message octets, dot-stuffed (RFC 5321 §4.5.2), until SMTPC_CHUNK are waiting; after
 * the last ones, the final dot. The data was checked for CRLF-only line ends at start. */
static void smtpc_body_fill(struct smtpc *c)
{
    struct evbuffer *out = bufferevent_get_output(c->bev);
    const char *d = c->o.data;
    size_t len = c->o.len;
    while (c->off < len && evbuffer_get_length(out) < SMTPC_CHUNK) {
        if ((c->off == 0 || d[c->off - 1] == '\n') && d[c->off] == '.')
            evbuffer_add(out, ".", 1);
        size_t lim = len - c->off < SMTPC_CHUNK ? len : c->off + SMTPC_CHUNK;
        const char *hit = memmem(d + c->off, lim - c->off, "\n.", 2);
        size_t end = hit ? (size_t)(hit - d) + 1 : lim;
        evbuffer_add(out, d + c->off, end - c->off);
        c->off = end;
    }
    if (c->off < len) {
        smtpc_arm(c, c->o.timeout_s);   /* progress: a new stage timeout per chunk */
        return;
    }
    if (len > 0 && d[len - 1] != '\n')
        evbuffer_add(out, "\r\n", 2);
    smtpc_send(c, ".\r\n");
    bufferevent_setwatermark(c->bev, EV_WRITE, 0, 0);
    smtpc_enter(c, ST_DOT);
}

static void smtpc_on_reply(struct smtpc *c)
{
    int code = c->rcode, ok = code / 100 == 2;
    if (c->pending > 0)
        c->pending--;
    switch (c->state) {
    case ST_BANNER:
        if (!ok) {
            smtpc_fail_reply(c);
            return;
        }
        smtpc_send(c, "EHLO %s\r\n", c->o.helo);
        c->ext = 0;
        c->size_max = 0;
        smtpc_enter(c, ST_EHLO);
        return;
    case ST_EHLO:
        if (ok) {
            smtpc_after_ehlo(c);
        } else if (code / 100 == 5 && code != 421) {
            c->ext = 0;     /* RFC 5321 §3.2: fall back to HELO, no extensions */
            smtpc_send(c, "HELO %s\r\n", c->o.helo);
            smtpc_enter(c, ST_HELO);
        } else {
            smtpc_fail_reply(c);
        }
        return;
    case ST_HELO:
        if (ok)
            smtpc_after_ehlo(c);
        else
            smtpc_fail_reply(c);
        return;
    case ST_STARTTLS:
        if (code == 220)
            smtpc_starttls(c);
        else
            smtpc_finish(c, SMTPC_TEMPFAIL, code != 421, "%s", c->rlast);
        return;
    case ST_AUTH:
        if (ok) {
            c->authed = 1;
            smtpc_mail(c);
        } else if (code / 100 == 3) {   /* a challenge we did not ask for: out of step */
            smtpc_finish(c, SMTPC_TEMPFAIL, 0, "unexpected AUTH reply: %s", c->rlast);
        } else {
            smtpc_fail_reply(c);
        }
        return;
    case ST_MAIL:
        if (!ok) {
            /* Under PIPELINING the RCPT replies still come: QUIT's wait absorbs them. */
            smtpc_fail_reply(c);
            return;
        }
        if (!c->pipelined)
            smtpc_send(c, "RCPT TO:<%s>\r\n", c->o.rcpts[c->rcpt_sent++]);
        smtpc_enter(c, ST_RCPT);
        return;
    case ST_RCPT: {
        struct smtpc_rcpt_result *r = &c->res.rcpts[c->rcpt_answered++];
        r->code = code;
        rn_strlcpy(r->reply, c->rlast, sizeof r->reply);
        if (code == 421) {
            smtpc_fail_reply(c);
            return;
        }
        if (ok)
            c->rcpt_ok++;
        if (c->rcpt_answered < c->o.nrcpts) {
            if (!c->pipelined)
                smtpc_send(c, "RCPT TO:<%s>\r\n", c->o.rcpts[c->rcpt_sent++]);
            smtpc_enter(c, ST_RCPT);
            return;
        }
        if (c->rcpt_ok == 0) {  /* nobody to send to: each recipient's code decides */
            smtpc_finish(c, SMTPC_DONE, 1, "%s", c->rlast);
            return;
        }
        smtpc_send(c, "DATA\r\n");
        smtpc_enter(c, ST_DATA);
        return;
    }
    case ST_DATA:
        if (code == 354) {
            /* The dot's reply is owed once the dot is queued (smtpc_body_fill). */
            bufferevent_setwatermark(c->bev, EV_WRITE, SMTPC_LOWAT, 0);
            smtpc_enter(c, ST_BODY);
            smtpc_body_fill(c);
        } else if (ok) {
            smtpc_finish(c, SMTPC_TEMPFAIL, 0, "unexpected DATA reply: %s", c->rlast);
        } else {
            smtpc_fail_reply(c);
        }
        return;
    case ST_DOT:
        c->res.data_code = code;
        if (ok)
            smtpc_finish(c, SMTPC_DONE, 1, "%s", c->rlast);
        else
            smtpc_fail_reply(c);
        return;
    case ST_BODY:   /* a reply in the middle of the message: the server gave up on it */
        smtpc_finish(c, code / 100 == 5 ? SMTPC_PERMFAIL : SMTPC_TEMPFAIL, 0, "%s", c->rlast);
        return;
    case ST_QUIT:
        if (c->pending == 0)
            c->free_me = 1;
        return;
    case ST_CONNECT:
    case ST_HANDSHAKE:
    case ST_EARLY:
        smtpc_finish(c, SMTPC_TEMPFAIL, 0, "reply before the server's turn: %s", c->rlast);
        return;
    }
}

static void on_read(struct bufferevent *bev, void *arg)
{
    struct smtpc *c = arg;
    while (!c->free_me) {
        char why[256];
        int r = smtpc_reply_read(c, why, sizeof why);
        if (r == 0)
            break;
        if (r < 0) {
            if (c->state == ST_QUIT)
                c->free_me = 1;
            else
                smtpc_finish(c, SMTPC_TEMPFAIL, 0, "%s in state %s", why, state_names[c->state]);
            break;
        }
        smtpc_on_reply(c);
    }
    smtpc_reap(c);
}

static void on_write(struct bufferevent *bev, void *arg)
{
    struct smtpc *c = arg;
    if (c->state == ST_BODY)
        smtpc_body_fill(c);
    smtpc_reap(c);
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
    struct smtpc *c = arg;
    if (what & BEV_EVENT_CONNECTED) {
        if (c->state == ST_CONNECT) {
            smtpc_enter(c, ST_BANNER);
        } else if (c->state == ST_HANDSHAKE) {
            c->tls = 1;
            c->ext = 0;     /* RFC 3207 §4.2: forget what was learnt before TLS */
            c->size_max = 0;
            smtpc_send(c, "EHLO %s\r\n", c->o.helo);
            smtpc_enter(c, ST_EHLO);
        }
    } else if (c->state == ST_QUIT) {
        c->free_me = 1;
    } else {
        char why[256] = "connection closed";
        if (what & BEV_EVENT_ERROR) {
            unsigned long e = bufferevent_get_openssl_error(bev);
            int se = EVUTIL_SOCKET_ERROR();
            if (e) {
                char buf[200];
                ERR_error_string_n(e, buf, sizeof buf);
                snprintf(why, sizeof why, "TLS error: %s", buf);
                while (bufferevent_get_openssl_error(bev))
                    ;
            } else if (se) {
                snprintf(why, sizeof why, "%s", evutil_socket_error_to_string(se));
            } else {
                snprintf(why, sizeof why, "connection error");
            }
        }
        smtpc_finish(c, SMTPC_TEMPFAIL, 0, "4.4.2 %s in state %s", why, state_names[c->state]);
    }
    smtpc_reap(c);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    struct smtpc *c = arg;
    if (c->state == ST_EARLY)
        smtpc_finish(c, c->early_status, 0, "%s", c->early_reason);
    else if (c->state == ST_QUIT)
        c->free_me = 1;
    else
        smtpc_finish(c, SMTPC_TEMPFAIL, 0, "4.4.2 timeout in state %s", state_names[c->state]);
    smtpc_reap(c);
}

static int smtpc_bad_addr(const char *s, int *utf8)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p < 0x20 || *p == 0x7f || *p == '<' || *p == '>')
            return 1;
        if (*p >= 0x80)
            *utf8 = 1;
    }
    return 0;
}

/* Refusals decided before connecting: 0 = none, else the status with the reason in
 * early_reason. Also notes 8-bit data and non-ASCII addresses (the needs they imply). */
static int smtpc_precheck(struct smtpc *c)
{
    char *r = c->early_reason;
    size_t rl = sizeof c->early_reason;
    if (c->o.nrcpts == 0) {
        rn_err(r, rl, "5.5.1 no recipients");
        return SMTPC_PERMFAIL;
    }
    if (c->o.tls_required && !c->o.ssl_ctx) {
        rn_err(r, rl, "4.7.10 TLS required but no TLS client context");
        return SMTPC_TEMPFAIL;
    }
    int helo8 = 0;
    int bad = !*c->o.helo || smtpc_bad_addr(c->o.helo, &helo8) || helo8 ||
              smtpc_bad_addr(c->o.sender, &c->needutf8);
    for (size_t i = 0; i < c->o.nrcpts && !bad; i++)
        bad = smtpc_bad_addr(c->o.rcpts[i], &c->needutf8);
    if (bad) {
        rn_err(r, rl, "5.1.3 empty HELO name, or control characters or angle brackets in an "
                      "address");
        return SMTPC_PERMFAIL;
    }
    const char *d = c->o.data;
    size_t line = 0;
    for (size_t i = 0; i < c->o.len; i++) {
        unsigned char ch = (unsigned char)d[i];
        if ((ch == '\r' && (i + 1 == c->o.len || d[i + 1] != '\n')) ||
            (ch == '\n' && (i == 0 || d[i - 1] != '\r'))) {
            rn_err(r, rl, "5.6.0 message has bare CR/LF");
            return SMTPC_PERMFAIL;
        }
        if (ch == '\n') {
            line = 0;
            continue;
        }
        if (ch >= 0x80)
            c->need8 = 1;
        if (ch != '\r' && ++line > SMTPC_TEXT_LINE_MAX) {
            rn_err(r, rl, "5.6.0 message has a line over %d octets", SMTPC_TEXT_LINE_MAX);
            return SMTPC_PERMFAIL;
        }
    }
    return 0;
}

struct smtpc *smtpc_start(struct event_base *base, const struct sockaddr *addr, socklen_t alen,
                          const struct smtpc_opts *o, smtpc_done_fn *done, void *arg)
{
    int fd = socket(addr->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return NULL;
    struct smtpc *c = xcalloc(1, sizeof *c);
    c->base = base;
    c->o = *o;
    if (!c->o.timeout_s)
        c->o.timeout_s = 300;
    if (!c->o.helo)
        c->o.helo = "";
    if (!c->o.sender)
        c->o.sender = "";
    c->rcpt_copy = xcalloc(o->nrcpts ? o->nrcpts : 1, sizeof *c->rcpt_copy);
    for (size_t i = 0; i < o->nrcpts; i++)
        c->rcpt_copy[i] = o->rcpts[i];
    c->o.rcpts = c->rcpt_copy;
    c->done = done;
    c->arg = arg;
    c->need8 = o->needs_8bit != 0;
    c->needutf8 = o->needs_smtputf8 != 0;
    c->res.nrcpts = o->nrcpts;
    c->res.rcpts = xcalloc(o->nrcpts ? o->nrcpts : 1, sizeof *c->res.rcpts);
    c->timer = evtimer_new(base, on_timer, c);
    if (!c->timer)
        abort();
    int early = smtpc_precheck(c);
    if (!early) {
        c->bev = bufferevent_socket_new(base, fd, BEV_OPT_CLOSE_ON_FREE);
        if (!c->bev)
            abort();
        fd = -1;
        bufferevent_setcb(c->bev, on_read, on_write, on_event, c);
        bufferevent_enable(c->bev, EV_READ | EV_WRITE);
        c->state = ST_CONNECT;
        if (bufferevent_socket_connect(c->bev, addr, (int)alen) < 0) {
            snprintf(c->early_reason, sizeof c->early_reason, "4.4.1 connect: %s",
                     strerror(errno));
            early = SMTPC_TEMPFAIL;
            bufferevent_free(c->bev);
            c->bev = NULL;
        }
    }
    if (fd >= 0)
        close(fd);
    if (early) {
        /* done() must come from the loop, never inside this call. */
        c->state = ST_EARLY;
        c->early_status = early;
        struct timeval zero = {0, 0};
        evtimer_add(c->timer, &zero);
    } else {
        smtpc_arm(c, c->o.timeout_s);
    }
    return c;
}

void smtpc_abort(struct smtpc *c)
{
    if (!c)
        return;
    smtpc_finish(c, SMTPC_TEMPFAIL, 0, "aborted");
    smtpc_free(c);
}
