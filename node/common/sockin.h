/* sockin: a plain socket read into its bufferevent's input with one recv() per wake-up,
 * in place of libevent's read, whose evbuffer_read asks ioctl(FIONREAD) before
 * every readv (issue #17: one system call a read, nine a relayed message). The bufferevent
 * keeps the writes, its write timeout and its events; sockin owns only the read side, with
 * the bounds libevent kept: at most SOCKIN_READ_MAX bytes a read (libevent's default), none
 * while the input holds `high` bytes or more, reading resumed when it drains below. Not for a
 * filter (TLS): its reads stay libevent's. Loop thread only. */
#ifndef RN_SOCKIN_H
#define RN_SOCKIN_H
#include <stdbool.h>
#include <stddef.h>

struct bufferevent;
struct timeval;
struct sockin;

#define SOCKIN_READ_MAX 16384u          /* bytes per read, libevent's MAX_TO_READ_EVER */

/* Called after bytes were added to the input (read), or once with BEV_EVENT_READING and
 * BEV_EVENT_EOF, BEV_EVENT_ERROR or BEV_EVENT_TIMEOUT (event), reading then disabled, as
 * libevent's own callbacks would be. Either may free the sockin (and the bufferevent). */
typedef void (*sockin_read_fn)(struct bufferevent *bev, void *arg);
typedef void (*sockin_event_fn)(struct bufferevent *bev, short what, void *arg);

/* Read bev's socket (a plain socket bufferevent with its fd set; its own EV_READ must stay
 * disabled) into bev's input; reading starts disabled. high = 0: no input bound. NULL when
 * out of memory or bev has no socket. The caller frees it (sockin_free) before bev. */
struct sockin *sockin_new(struct bufferevent *bev, size_t high, sockin_read_fn on_read,
                          sockin_event_fn on_event, void *arg);
void sockin_free(struct sockin **r);
/* Reading wanted or not. Disabling is lazy: the registration stays until the socket next
 * becomes readable (then dropped, the bytes left in the kernel), so a disable followed by an
 * enable before the peer sends anything costs no epoll_ctl. */
void sockin_enable(struct sockin *r);
void sockin_disable(struct sockin *r);
/* A new input bound (0 = none), as bufferevent_setwatermark(EV_READ, 0, high). */
void sockin_set_high(struct sockin *r, size_t high);
/* The read timeout, restarted by each read and each enable (NULL = none), as
 * bufferevent_set_timeouts' first argument. */
void sockin_set_timeout(struct sockin *r, const struct timeval *tv);

/* For an owner that reads through r while it has one (plain socket) and through bev itself
 * otherwise (r NULL: TLS): reading on or off, bufferevent_set_timeouts, and the close
 * (r freed before bev, both set to NULL) on whichever reads. */
void sockin_bev_read(struct sockin *r, struct bufferevent *bev, bool on);
void sockin_bev_timeouts(struct sockin *r, struct bufferevent *bev, const struct timeval *rd,
                         const struct timeval *wr);
void sockin_bev_free(struct sockin **r, struct bufferevent **bev);
#endif
