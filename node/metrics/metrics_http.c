/* metrics_http: a deliberately small HTTP/1.x responder for the scrape endpoint
 * (metrics_http.h). libevent 2.1's evhttp (the version Debian ships) has neither a cap on
 * connections (evhttp_set_max_connections arrives in 2.2) nor a hook when one closes, and
 * keeps a connection for as long as a client trickles bytes; the endpoint must be bounded
 * (docs/style.md 9), so it reads one request head into a bounded buffer on a bufferevent,
 * classifies it with a pure function (metrics_http_classify), writes one response with
 * "Connection: close", and closes once it is flushed. RFC 9112 §3 (request line), RFC 9110
 * §15.5.6 (405 with Allow), RFC 6585 §5 (431). */
#include "node/metrics/metrics_http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>

#include "directory/base/util.h"
#include "node/metrics/metrics.h"

/* The listen backlog: above the connection cap, so connections past it reach on_accept (and
 * are closed there, in order) instead of waiting in a full kernel queue. */
#define METRICS_HTTP_BACKLOG 64

struct mconn {
    struct metrics_http *h;
    struct bufferevent *bev;         /* owned; closes the socket */
    struct event *deadline;          /* owned: the connection's whole life */
    bool answered;                   /* the response is queued: close once flushed */
    bool draining;                   /* sent and shut for writing: discard until EOF */
    bool peer_eof;                   /* the client shut its side after the request */
    struct mconn *prev, *next;
};

struct metrics_http {
    struct event_base *base;
    struct evconnlistener *evl;      /* owned; closes the socket */
    struct metrics *m;               /* borrowed */
    metrics_http_collect_fn *collect;
    void *arg;
    struct mconn *conns;             /* open connections */
    size_t nconns;
};

/* ---- the request head (pure) ---- */

/* The end of the head: the first empty line ("\r\n\r\n", or "\n\n" from a lax client). */
static bool head_complete(const char *buf, size_t len)
{
    for (size_t i = 0; i + 1 < len; i++)
        if (buf[i] == '\n' && (buf[i + 1] == '\n' ||
                               (buf[i + 1] == '\r' && i + 2 < len && buf[i + 2] == '\n')))
            return true;
    return false;
}

enum metrics_http_req metrics_http_classify(const char *buf, size_t len)
{
    if (!head_complete(buf, len))
        return len >= METRICS_HTTP_HEAD_MAX ? MHTTP_TOO_LARGE : MHTTP_INCOMPLETE;
    if (len > METRICS_HTTP_HEAD_MAX)
        return MHTTP_TOO_LARGE;
    size_t line = 0;
    while (line < len && buf[line] != '\n')
        line++;
    if (line && buf[line - 1] == '\r')
        line--;
    /* method SP request-target SP HTTP/1.x, each token without controls or spaces */
    const char *sp1 = memchr(buf, ' ', line);
    if (!sp1 || sp1 == buf)
        return MHTTP_BAD;
    const char *target = sp1 + 1;
    const char *sp2 = memchr(target, ' ', line - (size_t)(target - buf));
    if (!sp2 || sp2 == target)
        return MHTTP_BAD;
    const char *version = sp2 + 1;
    size_t vlen = line - (size_t)(version - buf);
    if (vlen != 8 || memcmp(version, "HTTP/1.", 7) != 0 || version[7] < '0' || version[7] > '9')
        return MHTTP_BAD;
    for (const char *p = buf; p < sp2; p++)
        if ((unsigned char)*p < 0x21 && p != sp1)
            return MHTTP_BAD;
    for (const char *p = buf; p < sp1; p++)
        if (*p < 'A' || *p > 'Z')
            return MHTTP_BAD;       /* methods are tokens; ours are upper case */
    if ((size_t)(sp1 - buf) != 3 || memcmp(buf, "GET", 3) != 0)
        return MHTTP_BAD_METHOD;
    size_t tlen = (size_t)(sp2 - target);
    static const char path[] = "/metrics";
    if (tlen >= sizeof path - 1 && memcmp(target, path, sizeof path - 1) == 0 &&
        (tlen == sizeof path - 1 || target[sizeof path - 1] == '?'))
        return MHTTP_METRICS;
    return MHTTP_NOT_FOUND;
}

/* ---- connections ---- */

static void conn_free(struct mconn *c)
{
    struct metrics_http *h = c->h;
    if (c->prev)
        c->prev->next = c->next;
    else
        h->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    h->nconns--;
    if (c->bev)
        bufferevent_free(c->bev);
    if (c->deadline)
        event_free(c->deadline);
    free(c);
}

static void render_out(const char *p, size_t n, void *arg)
{
    evbuffer_add(arg, p, n);
}

/* Queue the whole response and stop reading; the write callback closes once it is out. */
static void conn_answer(struct mconn *c, enum metrics_http_req r)
{
    struct evbuffer *out = bufferevent_get_output(c->bev);
    struct evbuffer *body = evbuffer_new();
    if (!body) {
        conn_free(c);
        return;
    }
    const char *status = "400 Bad Request", *type = "text/plain; charset=utf-8", *extra = "";
    switch (r) {
    case MHTTP_METRICS:
        status = "200 OK";
        type = "text/plain; version=0.0.4; charset=utf-8";
        if (c->h->collect)
            c->h->collect(c->h->arg);
        metrics_render(c->h->m, render_out, body);
        break;
    case MHTTP_NOT_FOUND: status = "404 Not Found"; break;
    case MHTTP_BAD_METHOD: status = "405 Method Not Allowed"; extra = "Allow: GET\r\n"; break;
    case MHTTP_TOO_LARGE: status = "431 Request Header Fields Too Large"; break;
    default: break;
    }
    if (r != MHTTP_METRICS)
        evbuffer_add_printf(body, "%s\n", status);
    evbuffer_add_printf(out, "HTTP/1.1 %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n%s"
                        "Connection: close\r\n\r\n", status, type, evbuffer_get_length(body),
                        extra);
    evbuffer_add_buffer(out, body);
    evbuffer_free(body);
    c->answered = true;
    bufferevent_disable(c->bev, EV_READ);
}

static void on_read(struct bufferevent *bev, void *arg)
{
    struct mconn *c = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    if (c->draining) {
        evbuffer_drain(in, evbuffer_get_length(in));
        return;
    }
    size_t len = evbuffer_get_length(in);
    if (len > METRICS_HTTP_HEAD_MAX)
        len = METRICS_HTTP_HEAD_MAX;   /* the watermark keeps it there; never read past */
    const char *buf = (const char *)evbuffer_pullup(in, (ev_ssize_t)len);
    enum metrics_http_req r = buf ? metrics_http_classify(buf, len) : MHTTP_BAD;
    if (r == MHTTP_INCOMPLETE)
        return;
    conn_answer(c, r);
}

/* The response is out: shut the write side and discard what the client still sends until
 * it closes (or the deadline), so a client refused mid-request (431) reads its answer
 * instead of a reset (RFC 9112 §9.6, "lingering close"). */
static void on_write(struct bufferevent *bev, void *arg)
{
    struct mconn *c = arg;
    if (!c->answered || c->draining)
        return;
    if (c->peer_eof) {               /* nothing more can come: the answer was the end */
        conn_free(c);
        return;
    }
    c->draining = true;
    shutdown(bufferevent_getfd(bev), SHUT_WR);
    evbuffer_drain(bufferevent_get_input(bev), evbuffer_get_length(bufferevent_get_input(bev)));
    bufferevent_setwatermark(bev, EV_READ, 0, 0);
    bufferevent_enable(bev, EV_READ);
}

/* EOF, an error or the read timeout. A client that shut its side after the request
 * (printf ... | nc) still gets the answer queued for it. */
static void on_event(struct bufferevent *bev, short what, void *arg)
{
    struct mconn *c = arg;
    if ((what & BEV_EVENT_EOF) && !(what & BEV_EVENT_ERROR) && c->answered && !c->draining &&
        evbuffer_get_length(bufferevent_get_output(bev)) > 0) {
        c->peer_eof = true;
        return;
    }
    conn_free(c);
}

static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
    conn_free(arg);
}

static void on_accept(struct evconnlistener *evl, evutil_socket_t fd, struct sockaddr *sa,
                      int salen, void *arg)
{
    struct metrics_http *h = arg;
    if (h->nconns >= METRICS_HTTP_CONNS_MAX) {
        close(fd);           /* bounded: the scraper retries at its next interval */
        return;
    }
    struct mconn *c = xcalloc(1, sizeof *c);
    c->h = h;
    c->next = h->conns;
    if (c->next)
        c->next->prev = c;
    h->conns = c;
    h->nconns++;
    c->bev = bufferevent_socket_new(h->base, fd, BEV_OPT_CLOSE_ON_FREE);
    c->deadline = evtimer_new(h->base, on_deadline, c);
    struct timeval tv = {METRICS_HTTP_TIMEOUT_S, 0};
    if (!c->bev || !c->deadline || evtimer_add(c->deadline, &tv) < 0) {
        if (!c->bev)
            close(fd);
        conn_free(c);
        return;
    }
    bufferevent_setcb(c->bev, on_read, on_write, on_event, c);
    bufferevent_setwatermark(c->bev, EV_READ, 0, METRICS_HTTP_HEAD_MAX);
    bufferevent_set_timeouts(c->bev, &tv, &tv);
    bufferevent_enable(c->bev, EV_READ | EV_WRITE);
}

/* The address to bind from an IPv4 or IPv6 literal and a port; -1 when host is neither. */
static int addr_make(const char *host, unsigned port, struct sockaddr_storage *ss,
                     socklen_t *len)
{
    memset(ss, 0, sizeof *ss);
    struct sockaddr_in *v4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)ss;
    if (inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons((uint16_t)port);
        *len = sizeof *v4;
        return 0;
    }
    if (inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons((uint16_t)port);
        *len = sizeof *v6;
        return 0;
    }
    return -1;
}

struct metrics_http *metrics_http_new(struct event_base *base, const char *host, unsigned port,
                                      struct metrics *m, metrics_http_collect_fn *collect,
                                      void *arg, char *err, size_t errlen)
{
    struct sockaddr_storage ss;
    socklen_t sl;
    if (port < 1 || port > 65535 || addr_make(host, port, &ss, &sl) < 0) {
        rn_err(err, errlen, "metrics_listen: '%s' port %u is not an address to bind", host,
               port);
        return NULL;
    }
    struct metrics_http *h = xcalloc(1, sizeof *h);
    h->base = base;
    h->m = m;
    h->collect = collect;
    h->arg = arg;
    h->evl = evconnlistener_new_bind(base, on_accept, h,
                                     LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC |
                                     LEV_OPT_REUSEABLE, METRICS_HTTP_BACKLOG,
                                     (struct sockaddr *)&ss, (int)sl);
    if (!h->evl) {
        rn_err(err, errlen, "metrics_listen: cannot listen on %s%s%s:%u: %s",
               ss.ss_family == AF_INET6 ? "[" : "", host, ss.ss_family == AF_INET6 ? "]" : "",
               port, strerror(errno));
        free(h);
        return NULL;
    }
    return h;
}

void metrics_http_free(struct metrics_http **hp)
{
    struct metrics_http *h = *hp;
    if (!h)
        return;
    while (h->conns)
        conn_free(h->conns);
    if (h->evl)
        evconnlistener_free(h->evl);
    free(h);
    *hp = NULL;
}
