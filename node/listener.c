/* listener: listening sockets that follow the snapshot (see listener.h).
 *
 * Sockets are made here rather than by evconnlistener_new_bind so the options are ours:
 * SO_REUSEADDR (a restart can bind while old connections sit in TIME_WAIT) and IPV6_V6ONLY on
 * IPv6 sockets, so "[::]:p" and "0.0.0.0:p" are two distinct bindings that coexist, exactly
 * as connector selection treats them (the families never match each other).
 * An accept error such as EMFILE leaves the pending connection in the backlog, so a level-
 * triggered listener would spin at 100% CPU; instead the listener is disabled and re-enabled
 * by a timer after a short pause (the nginx / libevent-recommended remedy). */
#include "node/listener.h"
#include <errno.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include "directory/model.h"
#include "directory/base/util.h"
#include "node/common/log.h"
#include "node/common/node.h"
#include "node/smtp/smtp_session.h"

#define ACCEPT_PAUSE_MS 200   /* how long a listener rests after EMFILE/ENFILE/ENOBUFS */
#define LISTEN_BACKLOG 1024

struct lsock {
    ipr_binding b;
    char name[64];                  /* "127.0.0.1:2525" for logs */
    struct evconnlistener *evl;     /* owned; closes the socket when freed */
    struct event *resume;           /* owned: re-enables after an accept error pause */
    struct listeners *set;
    bool seen;                      /* reconcile mark */
    uint64_t accept_errors;         /* since the last one logged */
    time_t accept_error_logged;     /* when; errors are logged at most every 10 s */
    struct lsock *next;
};

struct listeners {
    struct node *n;
    struct lsock *head;
    size_t count;
};

static bool binding_eq(const ipr_binding *a, const ipr_binding *b)
{
    return a->v4 == b->v4 && a->port == b->port && memcmp(&a->ip, &b->ip, sizeof a->ip) == 0;
}

static socklen_t binding_sockaddr(const ipr_binding *b, struct sockaddr_storage *ss)
{
    memset(ss, 0, sizeof *ss);
    if (b->v4) {
        struct sockaddr_in *sin = (struct sockaddr_in *)ss;
        sin->sin_family = AF_INET;
        sin->sin_port = htons(b->port);
        memcpy(&sin->sin_addr, b->ip.b + 12, 4);     /* stored IPv4-mapped (ipr.h) */
        return sizeof *sin;
    }
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
    sin6->sin6_family = AF_INET6;
    sin6->sin6_port = htons(b->port);
    memcpy(&sin6->sin6_addr, b->ip.b, 16);
    return sizeof *sin6;
}

static void on_accept(struct evconnlistener *evl, evutil_socket_t fd, struct sockaddr *remote,
                      int remlen, void *arg)
{
    struct lsock *ls = arg;
    struct node *n = ls->set->n;
    if (n->draining) {               /* no new sessions once SIGTERM arrived */
        close(fd);
        return;
    }
    struct sockaddr_storage local;
    socklen_t llen = sizeof local;
    if (getsockname(fd, (struct sockaddr *)&local, &llen) < 0) {
        log_fact("-", "listener", "getsockname-failed", "binding=%s error=%s", ls->name,
                 strerror(errno));
        close(fd);
        return;
    }
    smtp_session_start(n, fd, (struct sockaddr *)&local, remote);
}

static void on_resume(evutil_socket_t fd, short what, void *arg)
{
    struct lsock *ls = arg;
    if (!ls->set->n->draining)
        evconnlistener_enable(ls->evl);
}

static void on_accept_error(struct evconnlistener *evl, void *arg)
{
    struct lsock *ls = arg;
    int e = EVUTIL_SOCKET_ERROR();
    time_t now = time(NULL);
    ls->accept_errors++;
    if (now - ls->accept_error_logged >= 10) {      /* a pause every 200 ms: don't flood */
        log_fact("-", "listener", "accept-error", "binding=%s error=%s pause_ms=%d count=%llu",
                 ls->name, strerror(e), ACCEPT_PAUSE_MS, (unsigned long long)ls->accept_errors);
        ls->accept_errors = 0;
        ls->accept_error_logged = now;
    }
    evconnlistener_disable(evl);
    struct timeval tv = {0, ACCEPT_PAUSE_MS * 1000};
    evtimer_add(ls->resume, &tv);
}

/* Open one binding; NULL (logged) when the socket cannot be made, bound or listened on. */
static struct lsock *lsock_open(struct listeners *set, const ipr_binding *b)
{
    char name[64];
    ipr_binding_format(b, name, sizeof name);
    struct sockaddr_storage ss;
    socklen_t sl = binding_sockaddr(b, &ss);
    const char *step = "socket";
    int one = 1;
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        goto fail;
    step = "setsockopt";
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0)
        goto fail;
    if (!b->v4 && setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one) < 0)
        goto fail;
    step = "bind";
    if (bind(fd, (struct sockaddr *)&ss, sl) < 0)
        goto fail;
    step = "listen";
    if (listen(fd, LISTEN_BACKLOG) < 0)
        goto fail;

    struct lsock *ls = xcalloc(1, sizeof *ls);
    ls->b = *b;
    ls->set = set;
    rn_strlcpy(ls->name, name, sizeof ls->name);
    /* backlog 0: listen() was called above (-1 would re-listen with 128). */
    ls->evl = evconnlistener_new(set->n->base, on_accept, ls, LEV_OPT_CLOSE_ON_FREE, 0, fd);
    if (!ls->evl) {
        free(ls);
        step = "evconnlistener";
        errno = ENOMEM;
        goto fail;
    }
    evconnlistener_set_error_cb(ls->evl, on_accept_error);
    ls->resume = evtimer_new(set->n->base, on_resume, ls);
    log_fact("-", "listener", "open", "binding=%s", name);
    return ls;
fail:;
    int e = errno;
    if (fd >= 0)
        close(fd);
    log_fact("-", "listener", "open-failed", "binding=%s step=%s error=%s", name, step,
             strerror(e));
    return NULL;
}

static void lsock_close(struct lsock *ls)
{
    log_fact("-", "listener", "close", "binding=%s", ls->name);
    evconnlistener_free(ls->evl);
    event_free(ls->resume);
    free(ls);
}

struct listeners *listeners_new(struct node *n)
{
    struct listeners *l = xcalloc(1, sizeof *l);
    l->n = n;
    return l;
}

void listeners_free(struct listeners **lp)
{
    struct listeners *l = *lp;
    if (!l)
        return;
    while (l->head) {
        struct lsock *ls = l->head;
        l->head = ls->next;
        lsock_close(ls);
    }
    free(l);
    *lp = NULL;
}

static struct lsock *find(struct listeners *l, const ipr_binding *b)
{
    for (struct lsock *ls = l->head; ls; ls = ls->next)
        if (binding_eq(&ls->b, b))
            return ls;
    return NULL;
}

size_t listeners_reconcile(struct listeners *l, const struct rn_snapshot *snap)
{
    size_t failed = 0;
    for (struct lsock *ls = l->head; ls; ls = ls->next)
        ls->seen = false;
    for (size_t i = 0; snap && i < snap->nconnectors; i++) {
        const struct rn_connector *c = &snap->connectors[i];
        if (!c->enabled)
            continue;
        for (size_t j = 0; j < c->nbindings; j++) {
            struct lsock *ls = find(l, &c->bindings[j]);
            if (ls) {
                ls->seen = true;
                continue;
            }
            ls = lsock_open(l, &c->bindings[j]);
            if (!ls) {
                failed++;
                continue;
            }
            ls->seen = true;
            ls->next = l->head;
            l->head = ls;
            l->count++;
        }
    }
    /* Close what the snapshot no longer names; accepted sessions keep their own sockets. */
    for (struct lsock **pp = &l->head; *pp;) {
        struct lsock *ls = *pp;
        if (ls->seen) {
            pp = &ls->next;
            continue;
        }
        *pp = ls->next;
        l->count--;
        lsock_close(ls);
    }
    return failed;
}

size_t listeners_count(const struct listeners *l)
{
    return l ? l->count : 0;
}
