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
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "directory/base/util.h"
#include "node/metrics/relaymetrics.h"

/* Why a filter could not be asked (relaynode_milter_errors_total{reason}). */
enum filt_why { WHY_PROTOCOL, WHY_CONNECT, WHY_TIMEOUT, WHY_CLOSED, WHY_N };
static const char *const why_names[WHY_N] = {"protocol", "connect", "timeout", "closed"};
/* The verdict label: the four actions, and quarantine (an accept that holds the message). */
enum { V_ACCEPT, V_REJECT, V_TEMPFAIL, V_DISCARD, V_QUARANTINE, V_N };
static const char *const verdict_names[V_N] = {"accept", "reject", "tempfail", "discard",
                                               "quarantine"};
static const char *const stage_names[3] = {"mail", "rcpt", "eom"};

/* One filter's series, resolved at start (milter_cfg_metrics). */
struct milter_series {
    struct metric_series *verdict[3][V_N], *dflt[3][V_N], *latency, *error[WHY_N];
};

/* One filter's connection for the transaction. */
struct filt {
    struct milter_job *j;
    size_t k;                          /* index in cfg->ep */
    struct milter_conv *conv;          /* owned: live conversation, NULL until first asked */
    struct bufferevent *bev;           /* owned */
    bool out;                          /* done with this transaction (accepted, failed open) */
    bool dead;                         /* failed, default not accept: every later stage of
                                        * the transaction gets the default action too */
    bool refused, connected;
    enum filt_why why;                 /* set where a failure is seen; protocol otherwise */
    uint64_t t0;                       /* ns, monotonic: when this stage was asked of it */
};

struct milter_job {
    struct event_base *base;
    struct milter_cfg *cfg;            /* borrowed */
    const struct milter_msg *msg;      /* borrowed */
    milter_done_fn done;
    void *arg;
    struct filt *f;                    /* owned: cfg->nep of them */
    size_t cur;                        /* filter being asked for the current stage */
    enum { STAGE_MAIL, STAGE_RCPT, STAGE_EOM } stage;
    const char *rcpt;                  /* STAGE_RCPT: the recipient (borrowed) */
    struct event *ev_timer, *ev_done;  /* owned */
    struct milter_verdict v;           /* the current stage's verdict */
    bool discard;                      /* a filter said discard before the end */
    bool open;                         /* a stage is being decided (begun, not finished) */
    bool in_done, cancelled;           /* done() running; milter_job_cancel from inside it */
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
    free((*cp)->ms);
    free(*cp);
    *cp = NULL;
}

void milter_cfg_metrics(struct milter_cfg *c, struct relay_metrics *rm)
{
    if (!c || !rm || c->ms || !c->nep)
        return;
    c->ms = xcalloc(c->nep, sizeof *c->ms);
    for (size_t k = 0; k < c->nep; k++) {
        struct milter_series *ms = &c->ms[k];
        char name[160];
        milter_endpoint_name(&c->ep[k], name, sizeof name);
        for (int st = 0; st < 3; st++)
            for (int v = 0; v < V_N; v++) {
                const char *values[] = {name, stage_names[st], verdict_names[v]};
                ms->verdict[st][v] = metrics_series(rm->milter_verdicts, values);
                ms->dflt[st][v] = metrics_series(rm->milter_defaults, values);
            }
        const char *one[] = {name};
        ms->latency = metrics_series(rm->milter_latency, one);
        for (int w = 0; w < WHY_N; w++) {
            const char *values[] = {name, why_names[w]};
            ms->error[w] = metrics_series(rm->milter_errors, values);
        }
    }
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Filter k's answer a for the current stage (quarantine: an accept that holds), and whether
 * milter_default_action gave it. Atomics only (node/metrics/metrics.h). */
static void filt_count(struct milter_job *j, size_t k, enum milter_action a, bool quarantine,
                       bool defaulted)
{
    if (!j->cfg->ms)
        return;
    int v = a == MILTER_REJECT ? V_REJECT : a == MILTER_TEMPFAIL ? V_TEMPFAIL
          : a == MILTER_DISCARD ? V_DISCARD : quarantine ? V_QUARANTINE : V_ACCEPT;
    metrics_inc(j->cfg->ms[k].verdict[j->stage][v], 1);
    if (defaulted)
        metrics_inc(j->cfg->ms[k].dflt[j->stage][v], 1);
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

static void stage_run(struct milter_job *j);

/* The stage has its verdict: done() runs from the loop, never inside a caller's call. */
static void stage_finish(struct milter_job *j)
{
    j->open = false;
    event_del(j->ev_timer);
    if (j->stage == STAGE_EOM && j->v.r.action == MILTER_ACCEPT && j->discard)
        j->v.r.action = MILTER_DISCARD;
    if (j->v.r.action != MILTER_ACCEPT) {
        milter_result_clear(&j->v.r);   /* a refused message takes no header changes */
        j->v.r.quarantine = false;
    }
    event_active(j->ev_done, EV_TIMEOUT, 0);
}

static void filt_close(struct filt *f)
{
    if (f->bev) {
        bufferevent_free(f->bev);      /* QUIT may be unsent: the close says the same */
        f->bev = NULL;
    }
}

static void flush_out(struct filt *f)
{
    struct milter_out *o = milter_conv_output(f->conv);
    if (o->len && f->bev)
        bufferevent_write(f->bev, o->p, o->len);
    o->len = 0;
}

/* Where filter f stands after something happened: over (its verdict folded in), held (this
 * stage passed), or still waiting. true when the stage may go on to the next filter. */
static bool filt_settle(struct milter_job *j, struct filt *f)
{
    struct milter_conv *c = f->conv;
    if (milter_conv_done(c)) {
        struct milter_result *r = milter_conv_result(c);
        enum milter_action a = r->action;
        flush_out(f);
        filt_close(f);
        f->out = true;
        bool failed = a == MILTER_FAILED;
        if (failed) {
            if (j->cfg->ms)
                metrics_inc(j->cfg->ms[f->k].error[f->why], 1);
            a = j->cfg->dflt == MILTER_DEFAULT_ACCEPT ? MILTER_ACCEPT
              : j->cfg->dflt == MILTER_DEFAULT_REJECT ? MILTER_REJECT : MILTER_TEMPFAIL;
            j->v.defaulted = true;
            f->dead = a != MILTER_ACCEPT;
            if (a == MILTER_ACCEPT && j->v.filter < 0) {   /* logged with its reason */
                j->v.filter = (int)f->k;
                j->v.r.stage = r->stage;
                rn_strlcpy(j->v.r.text, r->text, sizeof j->v.r.text);
            }
        } else if (a != MILTER_ACCEPT && a != MILTER_DISCARD) {
            j->v.defaulted = false;
        }
        filt_count(j, f->k, a, r->quarantine, failed);
        if (!failed && j->cfg->ms)
            metrics_observe(j->cfg->ms[f->k].latency, now_ns() - f->t0);
        if (a == MILTER_DISCARD && j->stage != STAGE_EOM) {
            j->discard = true;         /* the message is dropped at its end */
            a = MILTER_ACCEPT;
        }
        if (a == MILTER_ACCEPT) {
            milter_result_merge_mods(&j->v.r, r);
            if (r->quarantine && !j->v.r.quarantine) {
                j->v.r.quarantine = true;
                rn_strlcpy(j->v.r.reason, r->reason, sizeof j->v.r.reason);
                j->v.filter = (int)f->k;
            }
            milter_conv_free(&f->conv);
            return true;
        }
        j->v.r.action = a;
        j->v.filter = (int)f->k;
        j->v.r.stage = r->stage;
        rn_strlcpy(j->v.r.text, r->text, sizeof j->v.r.text);
        milter_conv_free(&f->conv);
        stage_finish(j);
        return false;
    }
    flush_out(f);
    if (milter_conv_held(c)) {
        event_del(j->ev_timer);
        const char *text;
        enum milter_action a = j->stage == STAGE_RCPT ? milter_conv_rcpt_verdict(c, &text)
                                                      : MILTER_ACCEPT;
        if (a != MILTER_ACCEPT) {      /* this recipient refused, the rest goes on */
            filt_count(j, f->k, a, false, false);
            if (j->cfg->ms)
                metrics_observe(j->cfg->ms[f->k].latency, now_ns() - f->t0);
            j->v.r.action = a;
            j->v.filter = (int)f->k;
            j->v.r.stage = "rcpt";
            rn_strlcpy(j->v.r.text, text, sizeof j->v.r.text);
            stage_finish(j);
            return false;
        }
        return true;
    }
    if (milter_conv_progress(c) || milter_conv_waiting(c))
        arm(j, f->connected ? j->cfg->command_timeout : j->cfg->connect_timeout);
    return false;
}

/* A filter not being asked right now (it passed this stage, or no stage is open) closed or
 * sent what it had no reason to send: it is out of the transaction, and unless the default
 * action is accept every later stage gets the default (dead). The stage another filter is
 * deciding is left alone: settling it here would skip that filter's verdict, or answer it
 * twice. */
static void filt_aside(struct milter_job *j, struct filt *f)
{
    if (!f->conv || !milter_conv_done(f->conv))
        return;
    struct milter_result *r = milter_conv_result(f->conv);
    bool failed = r->action == MILTER_FAILED;
    if (!failed)
        f->why = WHY_PROTOCOL;         /* a verdict nobody asked for */
    if (j->cfg->ms)
        metrics_inc(j->cfg->ms[f->k].error[f->why], 1);
    filt_close(f);
    f->out = true;
    f->dead = j->cfg->dflt != MILTER_DEFAULT_ACCEPT;
    milter_conv_free(&f->conv);
}

static void after_event(struct milter_job *j, struct filt *f)
{
    if (!j->open || j->cur >= j->cfg->nep || f != &j->f[j->cur]) {
        filt_aside(j, f);
        return;
    }
    if (filt_settle(j, f)) {
        j->cur++;
        stage_run(j);
    }
}

static void on_read(struct bufferevent *bev, void *arg)
{
    struct filt *f = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    char buf[16384];
    int n;
    while (!milter_conv_done(f->conv) && (n = evbuffer_remove(in, buf, sizeof buf)) > 0)
        milter_conv_input(f->conv, buf, (size_t)n);
    after_event(f->j, f);
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
    struct filt *f = arg;
    if (what & BEV_EVENT_CONNECTED) {
        f->connected = true;
        flush_out(f);
        arm(f->j, f->j->cfg->command_timeout);
        return;
    }
    f->why = f->connected ? WHY_CLOSED : WHY_CONNECT;
    milter_conv_fail(f->conv, (what & BEV_EVENT_EOF) ? "the filter closed the connection"
                                                      : "connection failed");
    after_event(f->j, f);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    struct milter_job *j = arg;
    if (j->cur >= j->cfg->nep || !j->f[j->cur].conv)
        return;
    struct filt *f = &j->f[j->cur];
    f->why = f->connected && !f->refused ? WHY_TIMEOUT : WHY_CONNECT;
    milter_conv_fail(f->conv, f->refused ? "connection refused"
                              : f->connected ? "timeout waiting for the filter"
                              : "timeout connecting to the filter");
    after_event(j, f);
}

static void on_done(evutil_socket_t fd, short what, void *arg)
{
    struct milter_job *j = arg;
    int stage = j->stage;
    /* The verdict moves out first: done() may start the next stage (a pipelined RCPT). */
    struct milter_verdict v = j->v;
    j->v.r.mods = NULL;
    j->v.r.nmods = 0;
    j->in_done = true;
    j->done(j->arg, &v);
    j->in_done = false;
    milter_result_clear(&v.r);
    if (j->cancelled || stage == STAGE_EOM) {
        j->cancelled = false;
        milter_job_cancel(&j);
    }
}

/* Connect filter f and start its live conversation (it runs to MAIL by itself). */
static void filt_start(struct milter_job *j, struct filt *f)
{
    const struct milter_endpoint *e = &j->cfg->ep[f->k];
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
    f->conv = milter_conv_new_live(j->msg);
    f->bev = bufferevent_socket_new(j->base, -1, BEV_OPT_CLOSE_ON_FREE);
    bufferevent_setcb(f->bev, on_read, NULL, on_event, f);
    bufferevent_enable(f->bev, EV_READ | EV_WRITE);
    arm(j, j->cfg->connect_timeout);
    int rc = bufferevent_socket_connect(f->bev, (struct sockaddr *)&ss, (int)sl);
    if (rc == 0 && !e->unix_sock) {
        /* Small steps the filter does not answer (SMFIP_NR_*) followed by more: without
         * TCP_NODELAY, Nagle holds the next write until the filter's delayed ACK (40 ms). */
        int one = 1;
        setsockopt(bufferevent_getfd(f->bev), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    if (rc < 0) {
        /* Refused at once (a unix socket that is not there): reported from the timer so
         * done() never runs inside a caller's call. */
        filt_close(f);
        f->refused = true;
        struct timeval now = {0, 0};
        evtimer_add(j->ev_timer, &now);
    }
}

/* Ask the filters, from j->cur on, about the current stage. */
static void stage_run(struct milter_job *j)
{
    for (; j->cur < j->cfg->nep; j->cur++) {
        struct filt *f = &j->f[j->cur];
        if (f->dead) {
            /* It failed at an earlier recipient: the rest of the transaction cannot pass
             * unfiltered (fail closed), so every later stage gets the default action. */
            j->v.r.action = j->cfg->dflt == MILTER_DEFAULT_REJECT ? MILTER_REJECT
                                                                  : MILTER_TEMPFAIL;
            j->v.defaulted = true;
            j->v.filter = (int)f->k;
            rn_strlcpy(j->v.r.text, "the filter failed earlier in this transaction",
                       sizeof j->v.r.text);
            filt_count(j, f->k, j->v.r.action, false, true);
            stage_finish(j);
            return;
        }
        if (f->out)
            continue;
        f->t0 = now_ns();
        if (!f->conv) {
            filt_start(j, f);
            return;                    /* after_event picks it up */
        }
        if (j->stage == STAGE_RCPT)
            milter_conv_rcpt(f->conv, j->rcpt);
        else if (j->stage == STAGE_EOM)
            milter_conv_content(f->conv);
        if (!filt_settle(j, f))
            return;
    }
    stage_finish(j);
}

static void stage_begin(struct milter_job *j, int stage)
{
    j->stage = stage;
    j->cur = 0;
    j->open = true;
    milter_result_clear(&j->v.r);
    memset(&j->v, 0, sizeof j->v);
    j->v.filter = -1;
    j->v.r.action = MILTER_ACCEPT;
    j->v.r.stage = stage == STAGE_MAIL ? "mail" : stage == STAGE_RCPT ? "rcpt" : "eom";
    /* The stage's work starts from the loop too, so done() is never called inside. */
    stage_run(j);
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
    j->f = xcalloc(cfg->nep ? cfg->nep : 1, sizeof *j->f);
    for (size_t k = 0; k < cfg->nep; k++)
        j->f[k] = (struct filt){.j = j, .k = k};
    j->ev_timer = evtimer_new(base, on_timer, j);
    j->ev_done = event_new(base, -1, 0, on_done, j);
    stage_begin(j, STAGE_MAIL);
    return j;
}

void milter_job_rcpt(struct milter_job *j, const char *rcpt)
{
    j->rcpt = rcpt;
    stage_begin(j, STAGE_RCPT);
}

void milter_job_eom(struct milter_job *j)
{
    stage_begin(j, STAGE_EOM);
}

void milter_job_cancel(struct milter_job **jp)
{
    struct milter_job *j = *jp;
    if (!j)
        return;
    *jp = NULL;
    if (j->in_done) {                  /* freed when done() returns */
        j->cancelled = true;
        return;
    }
    for (size_t k = 0; k < j->cfg->nep; k++) {
        filt_close(&j->f[k]);
        milter_conv_free(&j->f[k].conv);
    }
    free(j->f);
    milter_result_clear(&j->v.r);
    event_free(j->ev_timer);
    event_free(j->ev_done);
    free(j);
}
