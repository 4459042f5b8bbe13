/* sockin: see sockin.h. libevent 2.1's bufferevent_readcb -> evbuffer_read always calls
 * ioctl(FIONREAD) to size its read and offers no way to skip it; this reads with one recv()
 * and adds the bytes to the same input buffer, so everything above the bufferevent
 * (evbuffer_readln, the content parser, the delivery client's reply parser) reads the
 * input as before. */
#include "node/common/sockin.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/time.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "directory/base/util.h"

struct sockin {
    struct bufferevent *bev;           /* not owned */
    struct evbuffer *in;               /* bev's input, not owned */
    struct event *ev;                  /* owned: EV_READ | EV_PERSIST on bev's socket */
    struct evbuffer_cb_entry *drain;   /* on in: resumes reading below `high` */
    sockin_read_fn on_read;
    sockin_event_fn on_event;
    void *arg;
    size_t high;
    struct timeval timeout;
    bool has_timeout;
    bool want;                         /* reading enabled by the owner */
    bool added;                        /* ev is registered with the base */
    bool full;                         /* not reading: the input holds `high` bytes */
};

static void sockin_arm(struct sockin *r)
{
    if (!r->added || r->has_timeout)   /* re-adding only restarts the timeout */
        event_add(r->ev, r->has_timeout ? &r->timeout : NULL);
    r->added = true;
}

static void sockin_unarm(struct sockin *r)
{
    if (r->added)
        event_del(r->ev);
    r->added = false;
}

/* The input drained: below the bound again, read again (libevent's bufferevent_inbuf_wm_cb). */
static void sockin_on_drain(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg)
{
    struct sockin *r = arg;
    if (!r->full || (r->high && evbuffer_get_length(buf) >= r->high))
        return;
    r->full = false;
    evbuffer_cb_clear_flags(buf, r->drain, EVBUFFER_CB_ENABLED);
    if (r->want)
        sockin_arm(r);
}

/* Reading stops for good until the owner enables it again; then tell the owner. */
static void sockin_fail(struct sockin *r, short what, int err)
{
    r->want = false;
    sockin_unarm(r);
    errno = err;                       /* for the owner, as libevent leaves it */
    r->on_event(r->bev, (short)(BEV_EVENT_READING | what), r->arg);
}

static void sockin_on_ready(evutil_socket_t fd, short what, void *arg)
{
    struct sockin *r = arg;
    if (!r->want) {                    /* disabled since: drop the registration now */
        sockin_unarm(r);
        return;
    }
    if (what & EV_TIMEOUT) {
        sockin_fail(r, BEV_EVENT_TIMEOUT, 0);
        return;
    }
    size_t room = SOCKIN_READ_MAX, len = evbuffer_get_length(r->in);
    if (r->high) {
        if (len >= r->high) {
            r->full = true;
            sockin_unarm(r);
            evbuffer_cb_set_flags(r->in, r->drain, EVBUFFER_CB_ENABLED);
            return;
        }
        if (r->high - len < room)
            room = r->high - len;
    }
    /* Read on the stack, then add what came: the input grows by what arrived (as with
     * libevent's FIONREAD-sized read), not by a 16 KiB chain a read, which a session
     * holding a partial line would keep. */
    char buf[SOCKIN_READ_MAX];
    ssize_t n = recv(fd, buf, room, 0);
    int err = errno;
    if (n <= 0) {
        if (n < 0 && (err == EAGAIN || err == EWOULDBLOCK || err == EINTR))
            return;
        sockin_fail(r, n == 0 ? BEV_EVENT_EOF : BEV_EVENT_ERROR, n == 0 ? 0 : err);
        return;
    }
    evbuffer_unfreeze(r->in, 0);       /* a socket bufferevent's input end is frozen */
    int rc = evbuffer_add(r->in, buf, (size_t)n);
    evbuffer_freeze(r->in, 0);
    if (rc < 0) {
        sockin_fail(r, BEV_EVENT_ERROR, ENOMEM);
        return;
    }
    r->on_read(r->bev, r->arg);
}

struct sockin *sockin_new(struct bufferevent *bev, size_t high, sockin_read_fn on_read,
                          sockin_event_fn on_event, void *arg)
{
    evutil_socket_t fd = bev ? bufferevent_getfd(bev) : -1;
    if (fd < 0 || bufferevent_get_underlying(bev))
        return NULL;
    struct sockin *r = xcalloc(1, sizeof *r);
    r->bev = bev;
    r->in = bufferevent_get_input(bev);
    r->on_read = on_read;
    r->on_event = on_event;
    r->arg = arg;
    r->high = high;
    r->ev = event_new(bufferevent_get_base(bev), fd, EV_READ | EV_PERSIST, sockin_on_ready, r);
    r->drain = r->ev ? evbuffer_add_cb(r->in, sockin_on_drain, r) : NULL;
    if (!r->drain) {
        if (r->ev)
            event_free(r->ev);
        free(r);
        return NULL;
    }
    evbuffer_cb_clear_flags(r->in, r->drain, EVBUFFER_CB_ENABLED);
    return r;
}

void sockin_free(struct sockin **rp)
{
    struct sockin *r = *rp;
    if (!r)
        return;
    event_free(r->ev);
    evbuffer_remove_cb_entry(r->in, r->drain);
    free(r);
    *rp = NULL;
}

void sockin_enable(struct sockin *r)
{
    r->want = true;
    if (!r->full)
        sockin_arm(r);
}

void sockin_disable(struct sockin *r)
{
    r->want = false;                   /* lazily: sockin_on_ready drops the registration */
}

void sockin_set_high(struct sockin *r, size_t high)
{
    r->high = high;
    if (r->full)                       /* a larger bound may let reading resume at once */
        sockin_on_drain(r->in, NULL, r);
}

void sockin_set_timeout(struct sockin *r, const struct timeval *tv)
{
    r->has_timeout = tv != NULL;
    if (tv)
        r->timeout = *tv;
    if (r->added) {                    /* as bufferevent_set_timeouts: re-add as it stands */
        if (r->has_timeout)
            event_add(r->ev, &r->timeout);
        else
            event_remove_timer(r->ev);
    }
}

void sockin_bev_read(struct sockin *r, struct bufferevent *bev, bool on)
{
    if (r && on)
        sockin_enable(r);
    else if (r)
        sockin_disable(r);
    else if (on)
        bufferevent_enable(bev, EV_READ);
    else
        bufferevent_disable(bev, EV_READ);
}

void sockin_bev_timeouts(struct sockin *r, struct bufferevent *bev, const struct timeval *rd,
                         const struct timeval *wr)
{
    if (r)
        sockin_set_timeout(r, rd);
    bufferevent_set_timeouts(bev, r ? NULL : rd, wr);
}

void sockin_bev_free(struct sockin **r, struct bufferevent **bev)
{
    sockin_free(r);
    if (*bev)
        bufferevent_free(*bev);
    *bev = NULL;
}
