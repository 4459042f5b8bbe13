/* conncount: the counters behind MaxInboundConnection, MaxInboundConnectionPerSource and
 * MessageRateLimit. Entries are kept in short linked lists (one per open (connector, source)
 * pair, one per recently active source) and removed when they fall to zero, so memory follows
 * the number of open sessions. The minute rate uses 60 one-second buckets per source. */
#include "node/smtp/conncount.h"

#include <stdlib.h>
#include <string.h>

#include "directory/base/util.h"

struct cc_pair {
    struct cc_pair *next;
    char *connector; /* owned */
    char *source;    /* owned */
    uint64_t n;
};

struct cc_rate {
    struct cc_rate *next;
    char *source; /* owned */
    time_t sec[60];
    uint32_t count[60];
};

struct conncount {
    struct cc_pair *pairs;
    struct cc_rate *rates;
};

struct conncount *conncount_new(void)
{
    return xcalloc(1, sizeof(struct conncount));
}

void conncount_free(struct conncount **ccp)
{
    struct conncount *cc = *ccp;
    if (!cc)
        return;
    for (struct cc_pair *p = cc->pairs, *nx; p; p = nx) {
        nx = p->next;
        free(p->connector);
        free(p->source);
        free(p);
    }
    for (struct cc_rate *r = cc->rates, *nx; r; r = nx) {
        nx = r->next;
        free(r->source);
        free(r);
    }
    free(cc);
    *ccp = NULL;
}

void conncount_get(const struct conncount *cc, const char *connector, const char *source,
                   uint64_t *total, uint64_t *from_source)
{
    *total = 0;
    *from_source = 0;
    for (const struct cc_pair *p = cc->pairs; p; p = p->next) {
        if (strcmp(p->connector, connector) != 0)
            continue;
        *total += p->n;
        if (strcmp(p->source, source) == 0)
            *from_source += p->n;
    }
}

void conncount_add(struct conncount *cc, const char *connector, const char *source)
{
    for (struct cc_pair *p = cc->pairs; p; p = p->next)
        if (strcmp(p->connector, connector) == 0 && strcmp(p->source, source) == 0) {
            p->n++;
            return;
        }
    struct cc_pair *p = xcalloc(1, sizeof *p);
    p->connector = xstrdup(connector);
    p->source = xstrdup(source);
    p->n = 1;
    p->next = cc->pairs;
    cc->pairs = p;
}

void conncount_del(struct conncount *cc, const char *connector, const char *source)
{
    for (struct cc_pair **pp = &cc->pairs; *pp; pp = &(*pp)->next) {
        struct cc_pair *p = *pp;
        if (strcmp(p->connector, connector) != 0 || strcmp(p->source, source) != 0)
            continue;
        if (--p->n == 0) {
            *pp = p->next;
            free(p->connector);
            free(p->source);
            free(p);
        }
        return;
    }
    abort(); /* a del without its add is a session bookkeeping bug */
}

uint64_t conncount_msg_note(struct conncount *cc, const char *source, time_t now)
{
    struct cc_rate *r = NULL;
    /* drop sources idle for a minute while looking */
    for (struct cc_rate **rp = &cc->rates; *rp;) {
        struct cc_rate *x = *rp;
        int live = 0;
        for (int i = 0; i < 60; i++)
            if (x->count[i] && now - x->sec[i] < 60)
                live = 1;
        if (strcmp(x->source, source) == 0) {
            r = x;
            rp = &x->next;
        } else if (!live) {
            *rp = x->next;
            free(x->source);
            free(x);
        } else {
            rp = &x->next;
        }
    }
    if (!r) {
        r = xcalloc(1, sizeof *r);
        r->source = xstrdup(source);
        r->next = cc->rates;
        cc->rates = r;
    }
    int slot = (int)(((now % 60) + 60) % 60);
    if (r->sec[slot] != now) {
        r->sec[slot] = now;
        r->count[slot] = 0;
    }
    r->count[slot]++;
    uint64_t total = 0;
    for (int i = 0; i < 60; i++)
        if (r->count[i] && now - r->sec[i] < 60 && r->sec[i] <= now)
            total += r->count[i];
    return total;
}
