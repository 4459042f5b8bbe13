/* sockout: bytes for a peer written straight to its socket when the bufferevent has nothing
 * else to send, instead of through the bufferevent's output (issue #17: that path turns the
 * write event on and off, two epoll_ctl and a loop turn per write). Loop thread only. */
#ifndef RN_SOCKOUT_H
#define RN_SOCKOUT_H
#include <stdbool.h>
#include <stddef.h>

struct bufferevent;
struct evbuffer;

/* Whether bev is a plain socket bufferevent (no filter, e.g. TLS, on top of another) whose
 * output is empty: only then may bytes bypass it without overtaking earlier ones. */
bool sockout_direct(struct bufferevent *bev);
/* Send buf[0..len) with one send() when sockout_direct; what the socket does not take (or
 * everything, otherwise) goes to bev's output, in order. An error is left for the
 * bufferevent to report, as it always did. */
void sockout_send(struct bufferevent *bev, const char *buf, size_t len);
/* The same for a buffer (a piece of a message body): written with one writev() when
 * sockout_direct, the rest (or all) moved to bev's output; buf is left empty. */
void sockout_send_buffer(struct bufferevent *bev, struct evbuffer *buf);
#endif
