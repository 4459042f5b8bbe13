/* msgin: content assembly for one incoming message. The header block is held in memory only
 * until the empty line that ends it (bounded by MaxHeaderSize, or MSGIN_HEADER_HARD_MAX with
 * Bypass-Message-Size-Limit), because every end-of-headers decision of Exchange's
 * (docs/permission-model.md §9.1, §10 step 10) needs the whole block: hop count on the unfiltered
 * Received: fields, the header firewall, the P2 (header) sender. Nothing reaches the spool
 * before those checks pass, so a refused message never leaves a file behind; after them the
 * body streams to the spool file through a spool_writer: created and written on the worker
 * pool, never on the loop (docs/reliability.md §2.6). A write that fails there makes the
 * message refused (451 4.3.0) at its next byte or at the end, never a 250. */
#include "node/smtp/msgin.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "directory/base/util.h"

enum msgin_state { MSGIN_HEADERS, MSGIN_BODY, MSGIN_REFUSED };

struct msgin {
    struct msgin_params p;
    enum msgin_state state;
    char *hdr;                 /* owned: header bytes so far (MSGIN_HEADERS) */
    size_t hlen, hcap, hmax;   /* hmax: the most the block may reach before refusal */
    uint64_t size;             /* content bytes fed */
    struct spool_writer *wr;   /* owned: the spool file being written (MSGIN_BODY) */
    bool finishing;            /* msgin_finish was called */
    struct verdict v;          /* the refusal, once state is MSGIN_REFUSED */
    char bad_sender[512];      /* the sender address a send-as refusal was about */
    char *copy;                /* owned: what was spooled, up to p.copy_max (content filters) */
    size_t clen, ccap;
    bool cfull;                /* the content outgrew copy_max */
};

static void msgin_refuse(struct msgin *m, const struct verdict *v)
{
    m->v = *v;
    m->state = MSGIN_REFUSED;
    spool_writer_free(&m->wr);
    free(m->hdr);
    m->hdr = NULL;
    m->hlen = m->hcap = 0;
}

static void msgin_refuse_spool(struct msgin *m)
{
    struct verdict v = {.ok = false, .code = 451, .enh = "4.3.0",
                        .text = "Error writing the message to the queue, try again later",
                        .ace = -1, .why = "the spool write failed"};
    msgin_refuse(m, &v);
}

struct msgin *msgin_new(const struct msgin_params *p)
{
    struct msgin *m = xcalloc(1, sizeof *m);
    m->p = *p;
    uint64_t limit = p->c->max_header_size;
    if (limit == RN_UNLIMITED || (p->r->effective & R_BYPASS_SIZE_LIMIT) ||
        limit > MSGIN_HEADER_HARD_MAX)
        limit = MSGIN_HEADER_HARD_MAX;
    /* One byte past the limit is enough to know the block is too big; +4 lets the end-of-
     * headers marker ("\r\n\r\n") be seen when the block is exactly at the limit. */
    m->hmax = (size_t)limit + 4;
    m->hcap = 4096;
    m->hdr = xmalloc(m->hcap);
    return m;
}

void msgin_free(struct msgin **mp)
{
    struct msgin *m = *mp;
    if (!m)
        return;
    spool_writer_free(&m->wr);
    free(m->hdr);
    free(m->copy);
    free(m);
    *mp = NULL;
}

bool msgin_refused(const struct msgin *m)
{
    return m->state == MSGIN_REFUSED;
}

const char *msgin_bad_sender(const struct msgin *m)
{
    return m->bad_sender[0] ? m->bad_sender : NULL;
}

uint64_t msgin_size(const struct msgin *m)
{
    return m->size;
}

size_t msgin_backlog(const struct msgin *m)
{
    return m->wr ? spool_writer_backlog(m->wr) : 0;
}

/* Keep what is spooled for the content filters, bounded by copy_max. */
static void msgin_copy(struct msgin *m, const void *p, size_t n)
{
    if (!n || !m->p.copy_max || m->cfull)
        return;
    size_t take = n;
    if (take > m->p.copy_max - m->clen) {
        take = m->p.copy_max - m->clen;
        m->cfull = true;
    }
    if (m->clen + take > m->ccap) {
        size_t cap = m->ccap ? m->ccap : 65536;
        while (cap < m->clen + take)
            cap *= 2;
        if (cap > m->p.copy_max)
            cap = m->p.copy_max;
        m->copy = xrealloc(m->copy, cap);
        m->ccap = cap;
    }
    memcpy(m->copy + m->clen, p, take);
    m->clen += take;
}

char *msgin_take_copy(struct msgin *m, size_t *len, bool *whole)
{
    char *c = m->copy;
    *len = m->clen;
    *whole = !m->cfull;
    m->copy = NULL;
    m->clen = m->ccap = 0;
    if (!c && m->p.copy_max)
        c = xmalloc(1);
    return c;
}

/* Bytes for the spool file, in order (and into the filters' copy); -1 once a spool step has
 * failed (the message is then refused and the rest of its content dropped). */
static int msgin_write(struct msgin *m, const void *p, size_t n)
{
    if (spool_writer_failed(m->wr)) {
        msgin_refuse_spool(m);
        return -1;
    }
    msgin_copy(m, p, n);
    spool_writer_append(m->wr, p, n);
    return 0;
}

/* A spool job completed (on the loop): a failure refuses the message now, so the session
 * discards the rest of the content; then the owner looks at the backlog or the finish. */
static void msgin_on_spool(void *arg)
{
    struct msgin *m = arg;
    if (m->state == MSGIN_BODY && !m->finishing && spool_writer_failed(m->wr))
        msgin_refuse_spool(m);
    m->p.progress(m->p.arg);           /* last: the owner may free m */
}

/* The end-of-headers pipeline on the block hdr[0..blen) (CRLF-terminated fields, no empty
 * line), in Exchange's order. On success the spool file exists and holds our stamp and the
 * firewalled block; the caller then writes the empty line and the body. */
static void msgin_end_of_headers(struct msgin *m, size_t blen)
{
    const struct msgin_params *p = &m->p;
    struct verdict v;
    policy_headers(p->c, p->r, blen, headers_count_received(m->hdr, blen), &v);
    if (!v.ok) {
        msgin_refuse(m, &v);
        return;
    }
    policy_sender(p->snap, p->r, p->t, p->env->sender, p->owned, p->nowned, &v);
    if (!v.ok) {
        v.why = "envelope (P1) sender refused";
        rn_strlcpy(m->bad_sender, p->env->sender, sizeof m->bad_sender);
        msgin_refuse(m, &v);
        return;
    }
    char hsender[512];
    if (headers_sender(m->hdr, blen, hsender, sizeof hsender) == 0) {
        policy_sender(p->snap, p->r, p->t, hsender, p->owned, p->nowned, &v);
        if (!v.ok) {
            v.why = "header (P2) sender refused";
            rn_strlcpy(m->bad_sender, hsender, sizeof m->bad_sender);
            msgin_refuse(m, &v);
            return;
        }
    }
    /* The id and the envelope in memory now; the file is made on a worker (spool_writer). */
    char err[256];
    struct spool_msg *msg = spool_msg_start(p->spool, p->env, err, sizeof err);
    if (!msg) {
        msgin_refuse_spool(m);
        return;
    }
    struct headers_stamp st = p->stamp;
    st.queueid = spool_msg_id(msg);
    char stamp[2048];
    int slen = headers_stamp_format(&st, time(NULL), stamp, sizeof stamp);
    if (slen < 0) {
        spool_msg_abort(&msg);
        msgin_refuse_spool(m);
        return;
    }
    m->wr = spool_writer_new(p->pool, &msg, msgin_on_spool, m);
    struct headers_accept acc = {
        .routing = (p->r->effective & R_ACCEPT_ROUTING_HEADERS) != 0,
        .organization = (p->r->effective & R_ACCEPT_ORG_HEADERS) != 0,
        .forest = (p->r->effective & R_ACCEPT_FOREST_HEADERS) != 0,
    };
    char *kept = xmalloc(blen ? blen : 1);
    size_t klen = headers_firewall(m->hdr, blen, &acc, kept);
    int rc = msgin_write(m, stamp, (size_t)slen);
    if (rc == 0)
        rc = msgin_write(m, kept, klen);
    free(kept);
    if (rc == 0)
        m->state = MSGIN_BODY;
}

/* Grow the header buffer to hold `need` bytes (need <= hmax). */
static void msgin_reserve(struct msgin *m, size_t need)
{
    if (need <= m->hcap)
        return;
    size_t cap = m->hcap;
    while (cap < need)
        cap *= 2;
    if (cap > m->hmax)
        cap = m->hmax;
    m->hdr = xrealloc(m->hdr, cap);
    m->hcap = cap;
}

/* Offset of the empty line ending the header block, searching from `from`; SIZE_MAX if none
 * yet. A message that starts with an empty line has no header fields at all. */
static size_t msgin_find_eoh(const struct msgin *m, size_t from)
{
    if (m->hlen >= 2 && m->hdr[0] == '\r' && m->hdr[1] == '\n')
        return 0;
    for (size_t i = from; i + 4 <= m->hlen; i++)
        if (m->hdr[i] == '\r' && memcmp(m->hdr + i, "\r\n\r\n", 4) == 0)
            return i + 2;
    return SIZE_MAX;
}

static void msgin_feed_headers(struct msgin *m, const char *buf, size_t len)
{
    size_t room = m->hmax - m->hlen;
    size_t take = len < room ? len : room;
    size_t from = m->hlen > 3 ? m->hlen - 3 : 0;
    msgin_reserve(m, m->hlen + take);
    memcpy(m->hdr + m->hlen, buf, take);
    m->hlen += take;
    size_t eoh = msgin_find_eoh(m, from);
    if (eoh == SIZE_MAX) {
        if (m->hlen >= m->hmax) {   /* no end in sight within the limit */
            struct verdict v;
            policy_headers(m->p.c, m->p.r, UINT64_MAX - 1, 0, &v);
            if (v.ok)               /* bypass, but past the hard cap: refuse the same way */
                v = (struct verdict){.code = 552, .enh = "5.3.4",
                                     .text = "Header size exceeds fixed maximum size",
                                     .ace = -1, .why = "the header is above the hard cap"};
            msgin_refuse(m, &v);
        }
        return;
    }
    /* The block is hdr[0..eoh) (fields with their CRLFs); the empty line follows. */
    size_t after = eoh + 2;
    size_t have = m->hlen;
    msgin_end_of_headers(m, eoh);
    if (m->state != MSGIN_BODY)
        return;
    if (msgin_write(m, "\r\n", 2) < 0)
        return;
    /* Content after the empty line: what was buffered past it, then the rest of buf. */
    if (have > after && msgin_write(m, m->hdr + after, have - after) < 0)
        return;
    free(m->hdr);
    m->hdr = NULL;
    m->hlen = m->hcap = 0;
    if (take < len)
        msgin_write(m, buf + take, len - take);
}

void msgin_feed(struct msgin *m, const char *buf, size_t len)
{
    m->size += len;
    if (m->state == MSGIN_REFUSED)
        return;
    if (m->p.max_size && m->size > m->p.max_size) {
        struct verdict v;
        policy_message_size(m->p.c, m->p.r, m->size, &v);
        if (!v.ok) {
            msgin_refuse(m, &v);
            return;
        }
    }
    if (m->state == MSGIN_HEADERS)
        msgin_feed_headers(m, buf, len);
    else
        msgin_write(m, buf, len);
}

bool msgin_finish(struct msgin *m)
{
    if (m->finishing)
        return m->state != MSGIN_BODY || spool_writer_finish(m->wr);
    m->finishing = true;
    if (m->state == MSGIN_HEADERS) {
        /* Content ended inside the header block (no empty line, maybe no final CRLF): the
         * whole content is the block. */
        if (m->hlen < 2 || memcmp(m->hdr + m->hlen - 2, "\r\n", 2) != 0) {
            msgin_reserve(m, m->hlen + 2);
            if (m->hlen + 2 <= m->hcap) {
                memcpy(m->hdr + m->hlen, "\r\n", 2);
                m->hlen += 2;
            }
        }
        msgin_end_of_headers(m, m->hlen);
    }
    return m->state != MSGIN_BODY || spool_writer_finish(m->wr);
}

void msgin_result(struct msgin *m, struct verdict *v, struct spool_msg **out)
{
    *out = NULL;
    char err[256];
    if (m->state == MSGIN_BODY && spool_writer_take(m->wr, out, err, sizeof err) < 0)
        msgin_refuse_spool(m);
    if (m->state == MSGIN_REFUSED) {
        *v = m->v;
        return;
    }
    *v = (struct verdict){.ok = true, .code = 250, .enh = "2.6.0", .text = "Queued mail for delivery",
                          .ace = -1, .why = "accepted"};
}
