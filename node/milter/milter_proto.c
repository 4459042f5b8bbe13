/* milter_proto: packet framing, the resumable reply reader, endpoint parsing and the header
 * changes applied to a message (milter_proto.h). The conversation itself is milter_conv.c.
 * Every length a filter sends is checked against what is left before anything is read. */
#include "node/milter/milter_proto.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "directory/base/util.h"

int milter_rd_feed(struct milter_rd *r, const char *buf, size_t len, size_t *used,
                   struct milter_packet *p, char *err, size_t errlen)
{
    size_t i = 0;
    while (r->hlen < 4 && i < len)
        r->hdr[r->hlen++] = (unsigned char)buf[i++];
    if (r->hlen < 4) {
        *used = i;
        return 0;
    }
    if (r->have == 0 && r->want == 0) {
        uint32_t n = (uint32_t)r->hdr[0] << 24 | (uint32_t)r->hdr[1] << 16 |
                     (uint32_t)r->hdr[2] << 8 | r->hdr[3];
        if (n == 0 || n > MILTER_REPLY_MAX) {
            *used = i;
            return rn_err(err, errlen, "reply length %u out of range (1..%u)", n,
                          MILTER_REPLY_MAX);
        }
        r->want = n;
        if (!r->buf)
            r->buf = xmalloc(MILTER_REPLY_MAX);
    }
    size_t take = len - i;
    if (take > r->want - r->have)
        take = r->want - r->have;
    memcpy(r->buf + r->have, buf + i, take);
    r->have += (uint32_t)take;
    i += take;
    *used = i;
    if (r->have < r->want)
        return 0;
    p->cmd = r->buf[0];
    p->data = r->buf + 1;
    p->len = r->want - 1;
    r->want = 0;
    r->have = 0;
    r->hlen = 0;
    return 1;
}

void milter_rd_clear(struct milter_rd *r)
{
    free(r->buf);
    memset(r, 0, sizeof *r);
}

static void out_reserve(struct milter_out *o, size_t more)
{
    if (o->len + more <= o->cap)
        return;
    size_t cap = o->cap ? o->cap : 1024;
    while (cap < o->len + more)
        cap *= 2;
    o->p = xrealloc(o->p, cap);
    o->cap = cap;
}

void milter_out_packet(struct milter_out *o, char cmd, const void *data, size_t len)
{
    if (len > UINT32_MAX - 1)
        abort();    /* callers send at most a body chunk */
    out_reserve(o, 5 + len);
    uint32_t n = htonl((uint32_t)len + 1);
    memcpy(o->p + o->len, &n, 4);
    o->p[o->len + 4] = cmd;
    if (len)
        memcpy(o->p + o->len + 5, data, len);
    o->len += 5 + len;
}

void milter_out_clear(struct milter_out *o)
{
    free(o->p);
    memset(o, 0, sizeof *o);
}

const char *milter_action_name(enum milter_action a)
{
    switch (a) {
    case MILTER_ACCEPT: return "accept";
    case MILTER_REJECT: return "reject";
    case MILTER_TEMPFAIL: return "tempfail";
    case MILTER_DISCARD: return "discard";
    case MILTER_FAILED: return "failed";
    }
    return "?";
}

void milter_result_clear(struct milter_result *r)
{
    for (size_t i = 0; i < r->nmods; i++) {
        free(r->mods[i].name);
        free(r->mods[i].value);
    }
    free(r->mods);
    r->mods = NULL;
    r->nmods = 0;
}

void milter_result_merge_mods(struct milter_result *dst, struct milter_result *src)
{
    if (!src->nmods)
        return;
    dst->mods = xrealloc(dst->mods, (dst->nmods + src->nmods) * sizeof *dst->mods);
    memcpy(dst->mods + dst->nmods, src->mods, src->nmods * sizeof *src->mods);
    dst->nmods += src->nmods;
    free(src->mods);
    src->mods = NULL;
    src->nmods = 0;
}

/* The fields of a header block: start offsets of each field (folded lines included). */
static size_t hdr_fields(const char *h, size_t n, size_t *starts, size_t max)
{
    size_t k = 0;
    for (size_t i = 0; i < n; ) {
        if (h[i] != ' ' && h[i] != '\t' && k < max)
            starts[k++] = i;
        const char *nl = memchr(h + i, '\n', n - i);
        i = nl ? (size_t)(nl - h) + 1 : n;
    }
    return k;
}

static bool field_is(const char *f, size_t flen, const char *name)
{
    size_t nl = strlen(name);
    return flen > nl && f[nl] == ':' && strncasecmp(f, name, nl) == 0;
}

/* A field "Name: value\r\n" appended to o. */
static void put_field(struct milter_out *o, const struct milter_mod *m)
{
    size_t nl = strlen(m->name), vl = strlen(m->value);
    out_reserve(o, nl + vl + 4);
    memcpy(o->p + o->len, m->name, nl);
    o->len += nl;
    o->p[o->len++] = ':';
    o->p[o->len++] = ' ';
    memcpy(o->p + o->len, m->value, vl);
    o->len += vl;
    o->p[o->len++] = '\r';
    o->p[o->len++] = '\n';
}

static void put_bytes(struct milter_out *o, const char *p, size_t n)
{
    out_reserve(o, n + 1);
    memcpy(o->p + o->len, p, n);
    o->len += n;
}

/* One modification applied to the block in *cur, the result replacing it. */
static void apply_one(struct milter_out *cur, const struct milter_mod *m)
{
    size_t max = cur->len / 2 + 2;
    size_t *st = xmalloc(max * sizeof *st);
    size_t nf = hdr_fields(cur->p, cur->len, st, max);
    struct milter_out o = {0};
    size_t at = SIZE_MAX, skip_to = SIZE_MAX;   /* insert before offset at; skip [at, skip_to) */
    if (m->op == MILTER_HDR_ADD) {
        at = cur->len;
    } else if (m->op == MILTER_HDR_INSERT) {
        at = m->index < nf ? st[m->index] : cur->len;
    } else {
        uint32_t seen = 0;
        for (size_t i = 0; i < nf && at == SIZE_MAX; i++) {
            size_t end = i + 1 < nf ? st[i + 1] : cur->len;
            if (field_is(cur->p + st[i], end - st[i], m->name) && ++seen == m->index)
                at = st[i], skip_to = end;
        }
        if (at == SIZE_MAX && m->value[0] == '\0') {   /* delete what is not there */
            free(st);
            return;
        }
        if (at == SIZE_MAX)
            at = cur->len;
    }
    put_bytes(&o, cur->p, at);
    if (!(m->op == MILTER_HDR_CHANGE && m->value[0] == '\0'))
        put_field(&o, m);
    size_t rest = skip_to != SIZE_MAX ? skip_to : at;
    put_bytes(&o, cur->p + rest, cur->len - rest);
    free(st);
    milter_out_clear(cur);
    *cur = o;
}

char *milter_apply_mods(const char *hdr, size_t hlen, const struct milter_mod *mods,
                        size_t nmods, size_t *outlen)
{
    struct milter_out cur = {0};
    put_bytes(&cur, hdr, hlen);
    for (size_t i = 0; i < nmods; i++)
        apply_one(&cur, &mods[i]);
    *outlen = cur.len;
    if (!cur.p)
        cur.p = xmalloc(1);
    return cur.p;
}

static int endpoint_parse(const char *w, size_t wl, struct milter_endpoint *e, char *err,
                          size_t errlen)
{
    char s[256];
    if (wl >= sizeof s)
        return rn_err(err, errlen, "endpoint too long (%zu octets)", wl);
    memcpy(s, w, wl);
    s[wl] = '\0';
    memset(e, 0, sizeof *e);
    if (strncmp(s, "unix:", 5) == 0) {
        if (s[5] != '/' || strlen(s + 5) >= sizeof e->path)
            return rn_err(err, errlen, "%s: unix: needs an absolute path under 108 octets", s);
        e->unix_sock = true;
        rn_strlcpy(e->path, s + 5, sizeof e->path);
        return 0;
    }
    if (strncmp(s, "inet:", 5) != 0)
        return rn_err(err, errlen, "%s: expected unix:/path or inet:IP:port", s);
    char *host = s + 5, *port;
    if (*host == '[') {
        char *close = strchr(host, ']');
        if (!close || close[1] != ':')
            return rn_err(err, errlen, "%s: expected inet:[IPv6]:port", s);
        *close = '\0';
        host++;
        port = close + 2;
    } else {
        char *colon = strrchr(host, ':');
        if (!colon)
            return rn_err(err, errlen, "%s: expected inet:IP:port", s);
        *colon = '\0';
        port = colon + 1;
    }
    unsigned char a[16];
    if (inet_pton(AF_INET, host, a) != 1 && inet_pton(AF_INET6, host, a) != 1)
        return rn_err(err, errlen, "%s: the host must be an IP address (no DNS at connect)", w);
    char *end;
    unsigned long p = strtoul(port, &end, 10);
    if (!*port || *end || p == 0 || p > 65535)
        return rn_err(err, errlen, "%s: port must be 1..65535", w);
    rn_strlcpy(e->host, host, sizeof e->host);
    e->port = (uint16_t)p;
    return 0;
}

int milter_endpoints_parse(const char *spec, struct milter_endpoint **out, size_t *n,
                           char *err, size_t errlen)
{
    *out = NULL;
    *n = 0;
    struct milter_endpoint *v = NULL;
    size_t k = 0;
    for (const char *p = spec; *p; ) {
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        size_t wl = strcspn(p, " \t,");
        if (!wl)
            break;
        if (k == 16) {
            free(v);
            return rn_err(err, errlen, "more than 16 milters");
        }
        v = xrealloc(v, (k + 1) * sizeof *v);
        if (endpoint_parse(p, wl, &v[k], err, errlen) < 0) {
            free(v);
            return -1;
        }
        k++;
        p += wl;
    }
    *out = v;
    *n = k;
    return 0;
}
