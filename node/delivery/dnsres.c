/* dnsres: c-ares glued to libevent. c-ares tells us which sockets it wants watched
 * (ARES_OPT_SOCK_STATE_CB); each gets a persistent event, and one timer follows
 * ares_timeout(). A mail lookup is an MX query, then one ares_getaddrinfo per exchange (in
 * preference order, so the address list keeps that order), or one for the domain itself. */
#include "node/delivery/dnsres.h"

#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <netdb.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ares.h>
#include <event2/event.h>

#include "directory/base/util.h"

#define MAX_MX 8
#define MAX_SOCKS 16

struct sockwatch { ares_socket_t fd; struct event *ev; };

struct dnsres {
    struct event_base *base;
    ares_channel ch;
    struct event *timer;
    struct sockwatch socks[MAX_SOCKS];
};

struct lookup {
    struct dnsres *r;
    dnsres_fn *cb;
    void *arg;
    unsigned port;
    char domain[256];
    /* MX step */
    size_t nmx, next;
    char mx[MAX_MX][256];
    bool implicit;                 /* no MX: the domain itself */
    struct dnsres_addrs out;
    int last_temp;                 /* some exchange failed temporarily */
};

static void dnsres_rearm(struct dnsres *r)
{
    struct timeval max = {5, 0}, tv;
    struct timeval *t = ares_timeout(r->ch, &max, &tv);
    evtimer_add(r->timer, t);
}

static void on_sock(evutil_socket_t fd, short what, void *arg)
{
    struct dnsres *r = arg;
    ares_process_fd(r->ch, (what & EV_READ) ? fd : ARES_SOCKET_BAD,
                    (what & EV_WRITE) ? fd : ARES_SOCKET_BAD);
    dnsres_rearm(r);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    struct dnsres *r = arg;
    ares_process_fd(r->ch, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
    dnsres_rearm(r);
}

static void sock_state(void *data, ares_socket_t fd, int readable, int writable)
{
    struct dnsres *r = data;
    struct sockwatch *w = NULL, *free_slot = NULL;
    for (size_t i = 0; i < MAX_SOCKS; i++) {
        if (r->socks[i].ev && r->socks[i].fd == fd)
            w = &r->socks[i];
        else if (!r->socks[i].ev && !free_slot)
            free_slot = &r->socks[i];
    }
    if (w) {
        event_free(w->ev);
        w->ev = NULL;
    }
    if (!readable && !writable)
        return;
    if (!w)
        w = free_slot;
    if (!w)
        return;                    /* more than MAX_SOCKS sockets: c-ares times them out */
    w->fd = fd;
    w->ev = event_new(r->base, fd, (readable ? EV_READ : 0) | (writable ? EV_WRITE : 0) |
                      EV_PERSIST, on_sock, r);
    if (w->ev)
        event_add(w->ev, NULL);
}

struct dnsres *dnsres_new(struct event_base *base, const char *servers, char *err,
                          size_t errlen)
{
    static bool lib;
    if (!lib) {
        if (ares_library_init(ARES_LIB_INIT_ALL) != ARES_SUCCESS) {
            rn_err(err, errlen, "c-ares: library init failed");
            return NULL;
        }
        lib = true;
    }
    struct dnsres *r = xcalloc(1, sizeof *r);
    r->base = base;
    struct ares_options o = {0};
    o.sock_state_cb = sock_state;
    o.sock_state_cb_data = r;
    o.timeout = 2000;
    o.tries = 2;
    int rc = ares_init_options(&r->ch, &o, ARES_OPT_SOCK_STATE_CB | ARES_OPT_TIMEOUTMS |
                                               ARES_OPT_TRIES);
    if (rc != ARES_SUCCESS) {
        rn_err(err, errlen, "c-ares: %s", ares_strerror(rc));
        free(r);
        return NULL;
    }
    if (servers && *servers && (rc = ares_set_servers_ports_csv(r->ch, servers)) != ARES_SUCCESS) {
        rn_err(err, errlen, "dns_server '%s': %s", servers, ares_strerror(rc));
        ares_destroy(r->ch);
        free(r);
        return NULL;
    }
    r->timer = evtimer_new(base, on_timer, r);
    return r;
}

void dnsres_free(struct dnsres **rp)
{
    struct dnsres *r = *rp;
    if (!r)
        return;
    ares_destroy(r->ch);           /* pending callbacks run with ARES_EDESTRUCTION */
    for (size_t i = 0; i < MAX_SOCKS; i++)
        if (r->socks[i].ev)
            event_free(r->socks[i].ev);
    event_free(r->timer);
    free(r);
    *rp = NULL;
}

static enum dnsres_status classify(int status)
{
    switch (status) {
    case ARES_ENOTFOUND: case ARES_ENODATA: case ARES_EFORMERR: case ARES_EBADNAME:
        return DNSRES_PERM;
    default:
        return DNSRES_TEMP;
    }
}

static void lookup_finish(struct lookup *l, enum dnsres_status st, const char *why)
{
    l->cb(l->arg, st, why, st == DNSRES_OK ? &l->out : NULL);
    free(l);
}

static void addrinfo_next(struct lookup *l);

static void on_addrinfo(void *arg, int status, int timeouts, struct ares_addrinfo *res)
{
    struct lookup *l = arg;
    const char *host = l->implicit ? l->domain : l->mx[l->next];
    if (status == ARES_SUCCESS && res) {
        for (struct ares_addrinfo_node *n = res->nodes; n && l->out.n < DNSRES_MAX_ADDRS;
             n = n->ai_next) {
            if (n->ai_family != AF_INET && n->ai_family != AF_INET6)
                continue;
            size_t k = l->out.n++;
            memcpy(&l->out.addr[k], n->ai_addr, n->ai_addrlen);
            l->out.len[k] = n->ai_addrlen;
            rn_strlcpy(l->out.host[k], host, sizeof l->out.host[k]);
            if (n->ai_family == AF_INET)
                ((struct sockaddr_in *)&l->out.addr[k])->sin_port = htons((uint16_t)l->port);
            else
                ((struct sockaddr_in6 *)&l->out.addr[k])->sin6_port = htons((uint16_t)l->port);
        }
    } else if (classify(status) == DNSRES_TEMP) {
        l->last_temp = status;
    }
    if (res)
        ares_freeaddrinfo(res);
    if (status == ARES_EDESTRUCTION) {
        lookup_finish(l, DNSRES_TEMP, "resolver shut down");
        return;
    }
    l->next++;
    addrinfo_next(l);
}

static void addrinfo_next(struct lookup *l)
{
    size_t total = l->implicit ? 1 : l->nmx;
    if (l->next >= total || l->out.n >= DNSRES_MAX_ADDRS) {
        char why[320];
        if (l->out.n > 0) {
            lookup_finish(l, DNSRES_OK, "");
        } else if (l->last_temp) {
            snprintf(why, sizeof why, "%s: address lookup failed: %s", l->domain,
                     ares_strerror(l->last_temp));
            lookup_finish(l, DNSRES_TEMP, why);
        } else {
            snprintf(why, sizeof why, "%s: no address for %s", l->domain,
                     l->implicit ? "the domain" : "any MX host");
            lookup_finish(l, DNSRES_PERM, why);
        }
        return;
    }
    /* c-ares can answer inside this call (names in /etc/hosts): l may be freed before it
     * returns, so only r is used after it. */
    struct dnsres *r = l->r;
    struct ares_addrinfo_hints h = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    ares_getaddrinfo(r->ch, l->implicit ? l->domain : l->mx[l->next], NULL, &h, on_addrinfo, l);
    dnsres_rearm(r);
}

static int mx_cmp(const void *a, const void *b)
{
    const struct ares_mx_reply *x = *(const struct ares_mx_reply *const *)a;
    const struct ares_mx_reply *y = *(const struct ares_mx_reply *const *)b;
    return (int)x->priority - (int)y->priority;
}

static void on_mx(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
    struct lookup *l = arg;
    char why[320];
    if (status == ARES_EDESTRUCTION) {
        lookup_finish(l, DNSRES_TEMP, "resolver shut down");
        return;
    }
    if (status == ARES_ENODATA) {          /* the name exists without MX: the domain itself */
        l->implicit = true;
        addrinfo_next(l);
        return;
    }
    if (status != ARES_SUCCESS) {
        snprintf(why, sizeof why, "%s: MX lookup: %s", l->domain, ares_strerror(status));
        lookup_finish(l, classify(status), why);
        return;
    }
    struct ares_mx_reply *mx = NULL;
    int rc = ares_parse_mx_reply(abuf, alen, &mx);
    if (rc == ARES_ENODATA || (rc == ARES_SUCCESS && !mx)) {
        if (mx)
            ares_free_data(mx);
        l->implicit = true;
        addrinfo_next(l);
        return;
    }
    if (rc != ARES_SUCCESS) {
        snprintf(why, sizeof why, "%s: bad MX answer: %s", l->domain, ares_strerror(rc));
        lookup_finish(l, DNSRES_TEMP, why);
        return;
    }
    struct ares_mx_reply *v[MAX_MX];
    size_t n = 0;
    bool null_mx = false;
    for (struct ares_mx_reply *m = mx; m && n < MAX_MX; m = m->next) {
        if (!m->host[0] || strcmp(m->host, ".") == 0)
            null_mx = true;         /* RFC 7505: "0 ." says the domain takes no mail */
        else
            v[n++] = m;
    }
    /* Stable order by preference (ties keep the answer's order). */
    for (size_t i = 1; i < n; i++)
        for (size_t j = i; j > 0 && mx_cmp(&v[j - 1], &v[j]) > 0; j--) {
            struct ares_mx_reply *t = v[j];
            v[j] = v[j - 1];
            v[j - 1] = t;
        }
    for (size_t i = 0; i < n; i++)
        rn_strlcpy(l->mx[i], v[i]->host, sizeof l->mx[i]);
    l->nmx = n;
    ares_free_data(mx);
    if (null_mx && n == 0) {
        snprintf(why, sizeof why, "%s: the domain accepts no mail (null MX)", l->domain);
        lookup_finish(l, DNSRES_PERM, why);
        return;
    }
    addrinfo_next(l);
}

static struct lookup *lookup_new(struct dnsres *r, const char *name, unsigned port,
                                 dnsres_fn *cb, void *arg)
{
    struct lookup *l = xcalloc(1, sizeof *l);
    l->r = r, l->cb = cb, l->arg = arg, l->port = port;
    rn_strlcpy(l->domain, name, sizeof l->domain);
    size_t n = strlen(l->domain);
    if (n > 1 && l->domain[n - 1] == '.')
        l->domain[n - 1] = '\0';
    return l;
}

void dnsres_mail(struct dnsres *r, const char *domain, unsigned port, dnsres_fn *cb, void *arg)
{
    struct lookup *l = lookup_new(r, domain, port, cb, arg);
    ares_query(r->ch, l->domain, ns_c_in, ns_t_mx, on_mx, l);
    dnsres_rearm(r);
}

void dnsres_host(struct dnsres *r, const char *host, unsigned port, dnsres_fn *cb, void *arg)
{
    struct lookup *l = lookup_new(r, host, port, cb, arg);
    struct in_addr a4;
    struct in6_addr a6;
    if (inet_pton(AF_INET, l->domain, &a4) == 1 || inet_pton(AF_INET6, l->domain, &a6) == 1) {
        bool v4 = inet_pton(AF_INET, l->domain, &a4) == 1;
        l->out.n = 1;
        rn_strlcpy(l->out.host[0], l->domain, sizeof l->out.host[0]);
        if (v4) {
            struct sockaddr_in *s = (struct sockaddr_in *)&l->out.addr[0];
            s->sin_family = AF_INET;
            s->sin_addr = a4;
            s->sin_port = htons((uint16_t)port);
            l->out.len[0] = sizeof *s;
        } else {
            struct sockaddr_in6 *s = (struct sockaddr_in6 *)&l->out.addr[0];
            s->sin6_family = AF_INET6;
            s->sin6_addr = a6;
            s->sin6_port = htons((uint16_t)port);
            l->out.len[0] = sizeof *s;
        }
        lookup_finish(l, DNSRES_OK, "");
        return;
    }
    l->implicit = true;
    addrinfo_next(l);
}
