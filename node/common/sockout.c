/* sockout: see sockout.h. Replies and commands are small (one send() takes them whole
 * unless the peer stopped reading), so the bufferevent stays the path for bulk data, TLS and
 * a peer that is slow to read. */
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
