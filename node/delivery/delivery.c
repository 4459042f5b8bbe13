/* delivery: one attempt for one message. The message is first scanned from the spool on a
 * worker (verified end to end: a torn file is never sent; its size, whether it needs
 * 8BITMIME, whether it can go out unchanged), then each connection streams it from the
 * spool again (bodysrc), so no attempt holds more than 64 KiB of it (a message that small
 * is kept from the pre-scan and sent from memory). Recipients are
 * grouped by next hop (sendroute_pick: the send connector, and the domain when it routes by
 * MX), each group resolves its next hop (dnsres) and is handed to one SMTP client
 * connection (smtpout), trying the next address, then the next smart host, while the failure
 * is only about reaching the server. Results come back per recipient. */
#include "node/delivery/delivery.h"

#include <arpa/inet.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <errno.h>
#include <string.h>

#include <event2/event.h>

#include "directory/dnsname.h"
#include "directory/model.h"
#include "directory/base/util.h"
#include "node/delivery/bodysrc.h"
#include "node/delivery/dnsres.h"
#include "node/delivery/dotstuff.h"
#include "node/common/log.h"
#include "node/delivery/sendroute.h"
#include "node/common/node.h"
#include "node/delivery/smtpout.h"
#include "node/spool/spool.h"
#include "node/common/worker.h"

#define DEST_CONCURRENCY 20        /* connections at once to one next-hop address */
#define IDLE_S 5                   /* a connection waits this long for the next message */

/* A connection parked after a delivery, for the next message to the same destination with
 * the same TLS and AUTH settings (several messages per connection, issue #5). */
struct idle {
    char key[700];
    struct smtpout *c;
    struct delivery *d;
    struct idle *next;
};

struct delivery {
    struct node *n;
    struct dnsres *dns;
    size_t inflight;
    bool stopping;
    unsigned mx_port;
    struct group *active;
    struct group *waiting, *waiting_tail;   /* FIFO of groups held by the limit */
    unsigned per_dest;            /* connections at once to one destination */
    struct idle *idle;            /* parked connections */
    struct cred { char *host, *user, *pass; } *creds;   /* owned: smarthost_auth_file */
    size_t ncreds;         /* groups with an SMTP connection open (for shutdown) */
};

struct attempt {
    struct delivery *d;
    struct rn_snapshot *snap;     /* own reference: groups point at its send connectors */
    char id[64];
    char *sender;
    char **rcpts; size_t n;
    struct delivery_rcpt_result *res;
    size_t len;                   /* message octets (the pre-scan) */
    char *small; size_t small_len, small_cap; /* owned: the stuffed body if <= BODYSRC_SMALL_MAX */
    bool small_over;              /* it did not: each connection streams from the spool */
    const char *refuse;           /* static: why it cannot go out unchanged, or NULL */
    int needs_8bit, needs_smtputf8;
    size_t groups_left;
    delivery_done_fn *done;
    void *arg;
    char err[256];
    int rc;
};

struct group {
    struct attempt *a;
    size_t *idx; size_t n;        /* recipients (indexes into a->rcpts) */
    char domain[256];
    const struct rn_sendconn *sc;
    bool mx;
    size_t next_host;             /* smart hosts: the next to resolve */
    struct dnsres_addrs addrs;
    size_t next_addr;
    char last[512];               /* the last reason, for a temporary failure */
    char remote[300];
    struct smtpout *client;         /* the open connection, if any */
    struct smtpout *last_client;    /* the connection of the last transaction */
    struct group *prev, *next;    /* in d->active while client is set */
    struct group *wnext;          /* in d->waiting: held by the per-destination limit */
    char dest[300];               /* "host[ip]:port" this group connects to next */
    char key[700];                /* dest plus the TLS/AUTH settings: which idle ones fit */
    char verify[256];             /* the name the next hop's certificate must bear, if any */
};

static void group_try(struct group *g);

/* Which next hops must prove who they are (docs/permission-model.md §3.3): a domain-secure
 * partner domain needs TLS and a certificate verified against tls_ca_file that names the
 * domain (or a host within it), as Exchange's TLSSendDomainSecureList; a smart host of a
 * RequireTLS send connector needs one that names the smart host. Otherwise STARTTLS stays
 * opportunistic. The name is written to g->verify (g outlives the connection attempt). */
static void tls_policy(struct group *g, struct smtpout_opts *o)
{
    const struct rn_snapshot *s = g->a->d->n->snap;
    unsigned port;
    char err[RN_ERRLEN];
    if (s && snapshot_partner_domain(s, g->domain)) {
        rn_strlcpy(g->verify, g->domain, sizeof g->verify);
        o->verify_subdomains = 1;
    } else if (!g->mx && g->sc->require_tls &&
               smarthost_parse(g->sc->smart_hosts[g->next_host - 1], g->verify,
                               sizeof g->verify, &port, err, sizeof err) == 0) {
        o->verify_subdomains = 0;
    } else {
        return;
    }
    o->tls_required = 1;
    o->verify_store = g->a->d->n->tls_ca;
    o->verify_name = g->verify;
}

static void group_activate(struct group *g, struct smtpout *c)
{
    struct delivery *d = g->a->d;
    g->client = c;
    g->last_client = c;
    g->prev = NULL;
    g->next = d->active;
    if (d->active)
        d->active->prev = g;
    d->active = g;
}

static void group_deactivate(struct group *g)
{
    struct delivery *d = g->a->d;
    if (!g->client)
        return;
    if (g->prev)
        g->prev->next = g->next;
    else
        d->active = g->next;
    if (g->next)
        g->next->prev = g->prev;
    g->client = NULL;
    g->prev = g->next = NULL;
}

/* smarthost_auth_file: "host[:port] user password" per line, '#' comments. The secrets stay
 * out of the directory's readable attributes (issue #5). */
static int creds_load(struct delivery *d, const char *path, char *err, size_t errlen)
{
    if (!path || !*path)
        return 0;
    FILE *f = fopen(path, "re");
    if (!f)
        return rn_err(err, errlen, "smarthost_auth_file %s: %s", path, strerror(errno));
    char line[1024];
    unsigned no = 0;
    while (fgets(line, sizeof line, f)) {
        no++;
        line[strcspn(line, "\r\n")] = '\0';
        char *save = NULL, *h = strtok_r(line, " \t", &save);
        if (!h || *h == '#')
            continue;
        char *u = strtok_r(NULL, " \t", &save), *p = strtok_r(NULL, " \t", &save);
        if (!u || !p || strtok_r(NULL, " \t", &save)) {
            fclose(f);
            return rn_err(err, errlen, "smarthost_auth_file %s:%u: want 'host user password'",
                          path, no);
        }
        d->creds = xrealloc(d->creds, (d->ncreds + 1) * sizeof *d->creds);
        d->creds[d->ncreds++] = (struct cred){xstrdup(h), xstrdup(u), xstrdup(p)};
    }
    explicit_bzero(line, sizeof line);
    fclose(f);
    return 0;
}

static const struct cred *creds_find(const struct delivery *d, const char *spec)
{
    for (size_t i = 0; i < d->ncreds; i++)
        if (rn_strieq(d->creds[i].host, spec))
            return &d->creds[i];
    return NULL;
}

static void creds_free(struct delivery *d)
{
    for (size_t i = 0; i < d->ncreds; i++) {
        explicit_bzero(d->creds[i].pass, strlen(d->creds[i].pass));
        free(d->creds[i].host);
        free(d->creds[i].user);
        free(d->creds[i].pass);
    }
    free(d->creds);
}

struct delivery *delivery_new(struct node *n, char *err, size_t errlen)
{
    struct delivery *d = xcalloc(1, sizeof *d);
    d->n = n;
    d->mx_port = n->boot.mx_port;
    d->per_dest = DEST_CONCURRENCY;
    if (creds_load(d, n->boot.smarthost_auth_file, err, errlen) < 0) {
        creds_free(d);
        free(d);
        return NULL;
    }
    d->dns = dnsres_new(n->base, n->boot.dns_server, err, errlen);
    if (!d->dns) {
        creds_free(d);
        free(d);
        return NULL;
    }
    return d;
}

void delivery_idle_drop(struct delivery *d)
{
    while (d && d->idle) {
        struct idle *e = d->idle;
        d->idle = e->next;
        smtpout_quit(e->c);
        free(e);
    }
}

void delivery_free(struct delivery **dp)
{
    struct delivery *d = *dp;
    if (!d)
        return;
    d->stopping = true;
    while (d->idle) {
        struct idle *e = d->idle;
        d->idle = e->next;
        smtpout_quit(e->c);
        free(e);
    }
    while (d->active)              /* each abort answers its group (temporary) */
        smtpout_abort(d->active->client);
    while (d->waiting) {           /* held groups end as temporary failures too */
        struct group *g = d->waiting;
        d->waiting = g->wnext;
        group_try(g);
    }
    d->waiting_tail = NULL;
    dnsres_free(&d->dns);          /* pending lookups end now as temporary failures */
    creds_free(d);
    free(d);
    *dp = NULL;
}

/* ---- finishing ---- */

static void attempt_free(struct attempt *a)
{
    free(a->sender);
    for (size_t i = 0; i < a->n; i++)
        free(a->rcpts[i]);
    free(a->rcpts);
    free(a->res);
    free(a->small);
    if (a->snap)
        snapshot_unref(&a->snap);
    free(a);
}

static void attempt_finish(struct attempt *a)
{
    a->d->inflight--;
    a->done(a->arg, a->res, a->n);
    attempt_free(a);
}

static void set_result(struct delivery_rcpt_result *r, enum delivery_class cls,
                       const char *reply, const char *remote)
{
    r->cls = cls;
    rn_strlcpy(r->reply, reply ? reply : "", sizeof r->reply);
    rn_strlcpy(r->remote, remote ? remote : "", sizeof r->remote);
}

static void group_done(struct group *g)
{
    struct attempt *a = g->a;
    free(g->idx);
    free(g);
    if (--a->groups_left == 0)
        attempt_finish(a);
}

static void group_fail(struct group *g, enum delivery_class cls, const char *why)
{
    for (size_t k = 0; k < g->n; k++)
        set_result(&g->a->res[g->idx[k]], cls, why, g->remote);
    group_done(g);
}

/* ---- the SMTP conversation ---- */

static void group_next_host(struct group *g);

static int code_class(int code)
{
    return code / 100;
}

static void group_wake(struct delivery *d, const char *dest);

/* A parked connection closed or idled out: forget it (it frees itself). */
static void idle_lost(void *arg, struct smtpout *c)
{
    struct idle *e = arg;
    for (struct idle **pp = &e->d->idle; *pp; pp = &(*pp)->next)
        if (*pp == e) {
            *pp = e->next;
            break;
        }
    free(e);
}

static void on_smtpout(void *arg, const struct smtpout_result *r)
{
    struct group *g = arg;
    struct attempt *a = g->a;
    struct delivery *d = a->d;
    char dest[sizeof g->dest];
    rn_strlcpy(dest, g->dest, sizeof dest);
    group_deactivate(g);
    /* Take everything from r first: once the connection is parked, the next message may
     * reuse it (and its result) at once. */
    bool reached_rcpt = r->data_code != 0;
    for (size_t k = 0; k < r->nrcpts && k < g->n; k++)
        reached_rcpt |= r->rcpts[k].code != 0;
    bool retry = r->status == SMTPOUT_TEMPFAIL && !reached_rcpt;
    if (retry) {
        /* Only the server was unreachable or unwilling: try the next address. */
        rn_strlcpy(g->last, r->reply, sizeof g->last);
    } else {
        for (size_t k = 0; k < g->n; k++) {
            struct delivery_rcpt_result *res = &a->res[g->idx[k]];
            const struct smtpout_rcpt_result *rr = k < r->nrcpts ? &r->rcpts[k] : NULL;
            int rc = rr ? rr->code : 0;
            if (code_class(rc) == 5)
                set_result(res, DELIVERY_PERM, rr->reply, g->remote);
            else if (r->status == SMTPOUT_PERMFAIL)
                set_result(res, DELIVERY_PERM, r->reply, g->remote);
            else if (r->status == SMTPOUT_TEMPFAIL || code_class(rc) != 2)
                set_result(res, DELIVERY_TEMP, rc && code_class(rc) != 2 ? rr->reply
                                                                          : r->reply, g->remote);
            else if (code_class(r->data_code) == 2)
                set_result(res, DELIVERY_OK, r->reply, g->remote);
            else if (code_class(r->data_code) == 5)
                set_result(res, DELIVERY_PERM, r->reply, g->remote);
            else
                set_result(res, DELIVERY_TEMP, r->reply, g->remote);
        }
    }
    if (r->reusable && !d->stopping) {
        struct idle *e = xcalloc(1, sizeof *e);
        rn_strlcpy(e->key, g->key, sizeof e->key);
        e->c = g->last_client;
        e->d = d;
        e->next = d->idle;
        d->idle = e;
        smtpout_park(e->c, idle_lost, e, IDLE_S);
    } else if (r->reusable) {
        smtpout_quit(g->last_client);
    }
    group_wake(d, dest);
    if (retry)
        group_try(g);
    else
        group_done(g);
}

static void group_try(struct group *g)
{
    struct attempt *a = g->a;
    struct delivery *d = a->d;
    if (d->stopping) {
        group_fail(g, DELIVERY_TEMP, "4.3.2 node shutting down");
        return;
    }
    if (g->next_addr >= g->addrs.n) {
        if (g->mx || g->next_host >= g->sc->nsmart_hosts) {
            group_fail(g, DELIVERY_TEMP, g->last[0] ? g->last : "4.4.1 no answer from any host");
            return;
        }
        group_next_host(g);
        return;
    }
    size_t i = g->next_addr;
    char ip[64] = "";
    const struct sockaddr *sa = (const struct sockaddr *)&g->addrs.addr[i];
    if (sa->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, ip, sizeof ip);
    else
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, ip, sizeof ip);
    snprintf(g->remote, sizeof g->remote, "%s[%s]", g->addrs.host[i], ip);
    unsigned port = ntohs(sa->sa_family == AF_INET ? ((const struct sockaddr_in *)sa)->sin_port
                                                   : ((const struct sockaddr_in6 *)sa)->sin6_port);
    snprintf(g->dest, sizeof g->dest, "%s:%u", ip, port);
    /* Per-destination limit: wait for a connection to that address to end. */
    size_t open = 0;
    for (struct group *o = d->active; o; o = o->next)
        open += strcmp(o->dest, g->dest) == 0;
    if (open >= d->per_dest) {
        g->wnext = NULL;
        if (d->waiting_tail)
            d->waiting_tail->wnext = g;
        else
            d->waiting = g;
        d->waiting_tail = g;
        return;
    }
    g->next_addr++;
    const char **rcpts = xcalloc(g->n, sizeof *rcpts);
    for (size_t k = 0; k < g->n; k++)
        rcpts[k] = a->rcpts[g->idx[k]];
    struct smtpout_opts o = {
        .helo = d->n->boot.hostname && *d->n->boot.hostname ? d->n->boot.hostname : "localhost",
        .sender = a->sender, .rcpts = rcpts, .nrcpts = g->n, .len = a->len,
        .body = a->small ? bodysrc_new_bytes(d->n, a->small, a->small_len)
                         : bodysrc_new(d->n, a->id),
        .refuse = a->refuse,
        .needs_8bit = a->needs_8bit, .needs_smtputf8 = a->needs_smtputf8,
        .timeout_s = 60, .ssl_ctx = d->n->tls_client, .tls_required = g->sc->require_tls,
    };
    o.keep_open = 1;
    tls_policy(g, &o);
    const struct cred *cr = g->mx ? NULL : creds_find(d, g->sc->smart_hosts[g->next_host - 1]);
    if (cr) {
        o.auth_user = cr->user;
        o.auth_pass = cr->pass;
    }
    snprintf(g->key, sizeof g->key, "%s|%s|%d|%s", g->dest, cr ? cr->user : "", o.tls_required,
             o.verify_name ? o.verify_name : "");
    for (struct idle **pp = &d->idle; *pp; pp = &(*pp)->next) {
        struct idle *e = *pp;
        if (strcmp(e->key, g->key) != 0)
            continue;
        *pp = e->next;
        struct smtpout *c = e->c;
        free(e);
        group_activate(g, c);
        smtpout_reuse(c, &o, on_smtpout, g);
        free(rcpts);
        return;
    }
    struct smtpout *c = smtpout_start(d->n->base, sa, g->addrs.len[i], &o, on_smtpout, g);
    free(rcpts);
    if (c)
        group_activate(g, c);
    if (!c) {
        snprintf(g->last, sizeof g->last, "4.4.1 cannot create a socket for %s", g->remote);
        group_try(g);
    }
}

/* A connection to dest ended: the first group waiting for dest tries now. */
static void group_wake(struct delivery *d, const char *dest)
{
    for (struct group **pp = &d->waiting, *prev = NULL; *pp; prev = *pp, pp = &(*pp)->wnext) {
        struct group *g = *pp;
        if (strcmp(g->dest, dest) != 0)
            continue;
        *pp = g->wnext;
        if (d->waiting_tail == g)
            d->waiting_tail = prev;
        g->wnext = NULL;
        group_try(g);
        return;
    }
}

static void on_resolved(void *arg, enum dnsres_status st, const char *why,
                        const struct dnsres_addrs *addrs)
{
    struct group *g = arg;
    if (st == DNSRES_OK) {
        g->addrs = *addrs;
        g->next_addr = 0;
        group_try(g);
        return;
    }
    snprintf(g->last, sizeof g->last, "%s %s", st == DNSRES_PERM ? "5.1.2" : "4.4.3", why);
    if (g->mx) {
        group_fail(g, st == DNSRES_PERM ? DELIVERY_PERM : DELIVERY_TEMP, g->last);
        return;
    }
    g->addrs.n = g->next_addr = 0;
    group_try(g);                  /* the next smart host, or give up */
}

static void group_next_host(struct group *g)
{
    const char *spec = g->sc->smart_hosts[g->next_host++];
    char host[256];
    unsigned port;
    if (sendroute_parse_host(spec, host, sizeof host, &port) < 0) {
        snprintf(g->last, sizeof g->last, "4.4.3 bad smart host '%s'", spec);
        g->addrs.n = g->next_addr = 0;
        group_try(g);
        return;
    }
    dnsres_host(g->a->d->dns, host, port, on_resolved, g);
}

/* ---- start ---- */

static const char *rcpt_domain(const char *rcpt)
{
    const char *at = strrchr(rcpt, '@');
    return at ? at + 1 : "";
}

static void attempt_route(struct attempt *a)
{
    struct group **groups = xcalloc(a->n, sizeof *groups);
    size_t ng = 0;
    for (size_t i = 0; i < a->n; i++) {
        const char *dom = rcpt_domain(a->rcpts[i]);
        struct sendroute nh;
        sendroute_pick(a->snap, dom, &nh);
        if (!nh.sc) {
            char why[400];
            snprintf(why, sizeof why, "4.4.4 no send connector for domain '%s'", dom);
            set_result(&a->res[i], DELIVERY_TEMP, why, "");
            continue;
        }
        struct group *g = NULL;
        for (size_t k = 0; k < ng && !g; k++)
            if (groups[k]->sc == nh.sc && groups[k]->mx == nh.mx &&
                (!nh.mx || rn_strieq(groups[k]->domain, dom)))
                g = groups[k];
        if (!g) {
            g = groups[ng++] = xcalloc(1, sizeof *g);
            g->a = a;
            g->sc = nh.sc;
            g->mx = nh.mx;
            g->idx = xcalloc(a->n, sizeof *g->idx);
            rn_strlcpy(g->domain, dom, sizeof g->domain);
        }
        g->idx[g->n++] = i;
    }
    a->groups_left = ng;
    if (ng == 0) {
        free(groups);
        attempt_finish(a);
        return;
    }
    /* Start every group; the last one to end finishes the attempt. */
    for (size_t k = 0; k < ng; k++) {
        struct group *g = groups[k];
        if (g->mx)
            dnsres_mail(a->d->dns, g->domain, a->d->mx_port, on_resolved, g);
        else if (g->sc->nsmart_hosts == 0)
            group_fail(g, DELIVERY_TEMP, "4.4.3 send connector has no smart host");
        else
            group_next_host(g);
    }
    free(groups);
}

static int scan_chunk(void *arg, const void *p, size_t n)
{
    dotstuff_feed(arg, p, n);       /* a refusal is kept in ds.bad; the file is still verified */
    return 0;
}

/* The stuffed body, kept while it stays small: a small message then goes out from memory
 * (bytes the pre-scan verified) without a second read of the file per connection. */
static void scan_keep(void *arg, const char *p, size_t n)
{
    struct attempt *a = arg;
    if (a->small_over)
        return;
    if (a->small_len + n > BODYSRC_SMALL_MAX) {
        a->small_over = true;
        free(a->small);
        a->small = NULL;
        return;
    }
    if (a->small_len + n > a->small_cap) {
        a->small_cap = a->small_len + n < 4096 ? 4096 : (a->small_len + n) * 2;
        if (a->small_cap > BODYSRC_SMALL_MAX)
            a->small_cap = BODYSRC_SMALL_MAX;
        a->small = xrealloc(a->small, a->small_cap);
    }
    memcpy(a->small + a->small_len, p, n);
    a->small_len += n;
}

/* Worker thread: the pre-scan. The whole file is read and verified (a torn or corrupt file
 * fails here, before any connection), and dotstuff notes the size, 8-bit bytes, and whether
 * the message can be sent unchanged; only a small message's stuffed body is kept (at most
 * BODYSRC_SMALL_MAX: it then needs neither a second read nor a worker job per connection). */
static void read_run(void *arg)
{
    struct attempt *a = arg;
    struct dotstuff ds;
    dotstuff_init(&ds, scan_keep, a);
    a->rc = spool_read_data(a->d->n->spool, a->id, scan_chunk, &ds, a->err, sizeof a->err);
    if (a->rc == 0)
        dotstuff_end(&ds);          /* a message ending in a bare CR sets ds.bad */
    if (a->rc < 0 || ds.bad || !a->small) {
        free(a->small);             /* not sent, or not kept whole */
        a->small = NULL;
    }
    a->len = (size_t)ds.size;
    a->needs_8bit = ds.eight_bit;
    a->refuse = ds.bad;
}

static void read_done(void *arg)
{
    struct attempt *a = arg;
    if (a->d->stopping) {
        attempt_finish(a);          /* every recipient still "not attempted": temporary */
        return;
    }
    if (a->rc < 0) {
        char why[400];
        snprintf(why, sizeof why, "4.3.0 cannot read the queued message: %s", a->err);
        for (size_t i = 0; i < a->n; i++)
            set_result(&a->res[i], DELIVERY_TEMP, why, "");
        attempt_finish(a);
        return;
    }
    for (size_t i = 0; i < a->n && !a->needs_smtputf8; i++)
        for (const char *p = a->rcpts[i]; *p; p++)
            a->needs_smtputf8 |= (unsigned char)*p >= 0x80;
    for (const char *p = a->sender; *p; p++)
        a->needs_smtputf8 |= (unsigned char)*p >= 0x80;
    attempt_route(a);
}

void delivery_start(struct delivery *d, const char *id, const char *sender,
                    const char *const *rcpts, size_t n, delivery_done_fn *done, void *arg)
{
    struct attempt *a = xcalloc(1, sizeof *a);
    a->d = d;
    rn_strlcpy(a->id, id, sizeof a->id);
    a->sender = xstrdup(sender ? sender : "");
    a->rcpts = xcalloc(n ? n : 1, sizeof *a->rcpts);
    for (size_t i = 0; i < n; i++)
        a->rcpts[i] = xstrdup(rcpts[i]);
    a->n = n;
    a->res = xcalloc(n ? n : 1, sizeof *a->res);
    for (size_t i = 0; i < n; i++)
        set_result(&a->res[i], DELIVERY_TEMP, "4.3.0 not attempted", "");
    a->snap = snapshot_ref(d->n->snap);
    a->done = done;
    a->arg = arg;
    d->inflight++;
    worker_submit(d->n->worker, read_run, read_done, a);
}
