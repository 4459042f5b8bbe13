/* sockout: see sockout.h. Replies and commands are small (one send() takes them whole
 * unless the peer stopped reading); a body piece goes straight only while nothing is unsent,
 * so the bufferevent stays the path for TLS, for what the socket does not take at once and
 * for a peer that is slow to read (its output then bounds what is held, as before). */
#include "node/common/sockout.h"
#include <sys/socket.h>
#include <sys/types.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>

bool sockout_direct(struct bufferevent *bev)
{
    return bev && !bufferevent_get_underlying(bev) && bufferevent_getfd(bev) >= 0 &&
           evbuffer_get_length(bufferevent_get_output(bev)) == 0;
}

void sockout_send(struct bufferevent *bev, const char *buf, size_t len)
{
    size_t off = 0;
    if (len == 0 || !bev)
        return;
    if (sockout_direct(bev)) {
        ssize_t w = send(bufferevent_getfd(bev), buf, len, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w > 0)
            off = (size_t)w;             /* EAGAIN or an error: the bufferevent takes over */
    }
    if (off < len)
        evbuffer_add(bufferevent_get_output(bev), buf + off, len - off);
}

void sockout_send_buffer(struct bufferevent *bev, struct evbuffer *buf)
{
    if (!bev || evbuffer_get_length(buf) == 0)
        return;
    /* SIGPIPE is ignored by the daemon (daemon_setup.c), as libevent's own writev needs. */
    if (sockout_direct(bev))
        (void)evbuffer_write(buf, bufferevent_getfd(bev));   /* EAGAIN, error: see below */
    evbuffer_add_buffer(bufferevent_get_output(bev), buf);
}
