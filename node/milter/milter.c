/* milter: the filters asked in turn for one message, each over its own non-blocking
 * connection on the loop (docs/style.md 7: a slow filter delays only the session waiting for
 * it). Timers bound the connect and every reply awaited; an SMFIR_PROGRESS restarts the reply
 * timer (Sendmail and Postfix do the same). The bytes are the pure conversation's
 * (milter_conv.c); this file connects, moves bytes and times, and applies
 * milter_default_action to a filter that could not be asked. */
#include "node/milter/milter.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "directory/base/util.h"

struct milter_job {
    struct event_base *base;
    struct milter_cfg *cfg;            /* borrowed */
    const struct milter_msg *msg;      /* borrowed */
    milter_done_fn done;
    void *arg;
    size_t cur;                        /* filter being asked */
    struct milter_conv *conv;          /* owned: the current filter's conversation */
    struct bufferevent *bev;           /* owned: its connection */
    struct event *ev_timer, *ev_done;  /* owned */
    struct milter_verdict v;           /* built up across filters */
    bool finished;
    bool refused;                      /* the connect failed at once */
    bool connected;                    /* the current filter's connect completed */
};

const char *milter_endpoint_name(const struct milter_endpoint *e, char *buf, size_t len)
{
    if (e->unix_sock)
        snprintf(buf, len, "unix:%s", e->path);
    else if (strchr(e->host, ':'))
        snprintf(buf, len, "inet:[%s]:%u", e->host, e->port);
    else
        snprintf(buf, len, "inet:%s:%u", e->host, e->port);
    return buf;
}

static void job_next_filter(struct milter_job *j);

struct milter_cfg *milter_cfg_new(const char *spec, unsigned connect_timeout,
                                  unsigned command_timeout, enum milter_default dflt,
                                  char *err, size_t errlen)
{
    struct milter_cfg *c = xcalloc(1, sizeof *c);
    if (milter_endpoints_parse(spec ? spec : "", &c->ep, &c->nep, err, errlen) < 0) {
        free(c);
        return NULL;
    }
    c->connect_timeout = connect_timeout;
    c->command_timeout = command_timeout;
    c->dflt = dflt;
    return c;
}

void milter_cfg_free(struct milter_cfg **cp)
{
    if (!*cp)
        return;
    free((*cp)->ep);
    free(*cp);
    *cp = NULL;
}

bool milter_cfg_active(const struct milter_cfg *c)
{
    return c && c->nep > 0;
}

static void arm(struct milter_job *j, unsigned seconds)
{
    struct timeval tv = {.tv_sec = seconds, .tv_usec = 0};
    evtimer_add(j->ev_timer, &tv);
}

static void job_finish(struct milter_job *j)
{
    j->finished = true;
    event_del(j->ev_timer);
    event_active(j->ev_done, EV_TIMEOUT, 0);
}

static void job_count(struct milter_job *j)
{
    struct milter_stats *st = &j->cfg->stats;
    switch (j->v.r.action) {
    case MILTER_ACCEPT: st->accepted++; break;
    case MILTER_REJECT: st->rejected++; break;
    case MILTER_TEMPFAIL: st->tempfailed++; break;
    case MILTER_DISCARD: st->discarded++; break;
    case MILTER_FAILED: break;
    }
    if (j->v.r.action == MILTER_ACCEPT && j->v.r.quarantine)
        st->quarantined++;
    if (j->v.defaulted)
        st->defaulted++;
}

/* The current filter's conversation is over: fold its verdict in, then the next filter or
 * the end. */
static void filter_done(struct milter_job *j)
{
    struct milter_result *r = milter_conv_result(j->conv);
    if (j->bev) {
        bufferevent_free(j->bev);      /* QUIT may be unsent: the close says the same */
        j->bev = NULL;
    }
    event_del(j->ev_timer);
    enum milter_action a = r->action;
    if (a == MILTER_FAILED) {
        j->cfg->stats.failures++;
        j->v.defaulted = true;
        a = j->cfg->dflt == MILTER_DEFAULT_ACCEPT ? MILTER_ACCEPT
          : j->cfg->dflt == MILTER_DEFAULT_REJECT ? MILTER_REJECT : MILTER_TEMPFAIL;
        if (a != MILTER_ACCEPT || j->v.filter < 0) {
            j->v.filter = (int)j->cur;
            j->v.r.stage = r->stage;
            rn_strlcpy(j->v.r.text, r->text, sizeof j->v.r.text);   /* the reason, for logs */
        }
        milter_result_clear(r);
    } else if (a == MILTER_ACCEPT) {
        milter_result_merge_mods(&j->v.r, r);
        if (r->quarantine && !j->v.r.quarantine) {
            j->v.r.quarantine = true;
            rn_strlcpy(j->v.r.reason, r->reason, sizeof j->v.r.reason);
            j->v.filter = (int)j->cur;
        }
    } else {
        j->v.filter = (int)j->cur;
        j->v.r.stage = r->stage;
        rn_strlcpy(j->v.r.text, r->text, sizeof j->v.r.text);
        j->v.defaulted = false;
    }
    milter_conv_free(&j->conv);
    if (a != MILTER_ACCEPT) {
        milter_result_clear(&j->v.r);   /* a refused message takes no header changes */
        j->v.r.quarantine = false;
        j->v.r.action = a;
        job_finish(j);
        return;
    }
    j->v.r.action = MILTER_ACCEPT;
    j->cur++;
    job_next_filter(j);
}

static void flush_out(struct milter_job *j)
{
    struct milter_out *o = milter_conv_output(j->conv);
    if (o->len && j->bev)
        bufferevent_write(j->bev, o->p, o->len);
    o->len = 0;
}

static void on_read(struct bufferevent *bev, void *arg)
{
    struct milter_job *j = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    char buf[16384];
    int n;
    bool got = false;
    while (!milter_conv_done(j->conv) && (n = evbuffer_remove(in, buf, sizeof buf)) > 0) {
        milter_conv_input(j->conv, buf, (size_t)n);
        got = true;
    }
    if (milter_conv_done(j->conv)) {
        flush_out(j);
        filter_done(j);
        return;
    }
    flush_out(j);
    if (got && milter_conv_waiting(j->conv))
        arm(j, j->cfg->command_timeout);   /* a reply (or progress) restarts the wait */
    milter_conv_progress(j->conv);
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
    struct milter_job *j = arg;
    if (what & BEV_EVENT_CONNECTED) {
        j->connected = true;
        flush_out(j);
        arm(j, j->cfg->command_timeout);
        return;
    }
    milter_conv_fail(j->conv, (what & BEV_EVENT_EOF) ? "the filter closed the connection"
                                                      : "connection failed");
    filter_done(j);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    struct milter_job *j = arg;
    if (j->finished || !j->conv)
        return;
    milter_conv_fail(j->conv, j->refused ? "connection refused"
                              : j->connected ? "timeout waiting for the filter"
                              : "timeout connecting to the filter");
    filter_done(j);
}

static void on_done(evutil_socket_t fd, short what, void *arg)
{
    struct milter_job *j = arg;
    job_count(j);
    j->done(j->arg, &j->v);
    milter_result_clear(&j->v.r);
    event_free(j->ev_timer);
    event_free(j->ev_done);
    free(j);
}

/* Connect to filter j->cur (or finish when there is none left). */
static void job_next_filter(struct milter_job *j)
{
    if (j->cur >= j->cfg->nep) {
        job_finish(j);
        return;
    }
    const struct milter_endpoint *e = &j->cfg->ep[j->cur];
    struct sockaddr_storage ss;
    socklen_t sl = 0;
    memset(&ss, 0, sizeof ss);
    if (e->unix_sock) {
        struct sockaddr_un *un = (struct sockaddr_un *)&ss;
        un->sun_family = AF_UNIX;
        rn_strlcpy(un->sun_path, e->path, sizeof un->sun_path);
        sl = sizeof *un;
    } else if (strchr(e->host, ':')) {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons(e->port);
        inet_pton(AF_INET6, e->host, &s6->sin6_addr);
        sl = sizeof *s6;
    } else {
        struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
        s4->sin_family = AF_INET;
        s4->sin_port = htons(e->port);
        inet_pton(AF_INET, e->host, &s4->sin_addr);
        sl = sizeof *s4;
    }
    j->conv = milter_conv_new(j->msg);
    j->refused = false;
    j->connected = false;
    j->bev = bufferevent_socket_new(j->base, -1, BEV_OPT_CLOSE_ON_FREE);
    bufferevent_setcb(j->bev, on_read, NULL, on_event, j);
    bufferevent_enable(j->bev, EV_READ | EV_WRITE);
    arm(j, j->cfg->connect_timeout);
    if (bufferevent_socket_connect(j->bev, (struct sockaddr *)&ss, (int)sl) < 0) {
        /* Refused at once (a unix socket that is not there): the same as a failed connect,
         * reported from the timer's callback path so done() never runs inside start. */
        bufferevent_free(j->bev);
        j->bev = NULL;
        j->refused = true;
        struct timeval now = {0, 0};
        evtimer_add(j->ev_timer, &now);
    }
}

struct milter_job *milter_job_start(struct event_base *base, struct milter_cfg *cfg,
                                    const struct milter_msg *msg, milter_done_fn done,
                                    void *arg)
{
    struct milter_job *j = xcalloc(1, sizeof *j);
    j->base = base;
    j->cfg = cfg;
    j->msg = msg;
    j->done = done;
    j->arg = arg;
    j->v.filter = -1;
    j->v.r.action = MILTER_ACCEPT;
    j->v.r.stage = "eom";
    j->ev_timer = evtimer_new(base, on_timer, j);
    j->ev_done = event_new(base, -1, 0, on_done, j);
    cfg->stats.messages++;
    job_next_filter(j);
    return j;
}

void milter_job_cancel(struct milter_job **jp)
{
    struct milter_job *j = *jp;
    if (!j)
        return;
    if (j->bev)
        bufferevent_free(j->bev);
    milter_conv_free(&j->conv);
    milter_result_clear(&j->v.r);
    event_free(j->ev_timer);
    event_free(j->ev_done);
    free(j);
    *jp = NULL;
}
