/* cluster_wire: encode and decode the cluster bus frames (schema/cluster-protocol.md §2).
 * Every read checks the remaining length first (docs/style.md rule 16); strings are copied into
 * the message's own bounded buffers, so nothing points into the frame after decoding. */
#include "node/cluster/cluster_wire.h"
#include <string.h>
#include "directory/base/util.h"

static const uint8_t magic[2] = {0x52, 0x4E};   /* "RN" */

struct wbuf { uint8_t *p; size_t n, cap; bool full; };
struct rbuf { const uint8_t *p; size_t n, off; };

static bool text_ok(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] > 0x7e)
            return false;
    return true;
}

static void put(struct wbuf *w, const void *p, size_t n)
{
    if (w->full || w->cap - w->n < n) {
        w->full = true;
        return;
    }
    memcpy(w->p + w->n, p, n);
    w->n += n;
}

static void put_u8(struct wbuf *w, uint8_t v)
{
    put(w, &v, 1);
}

static void put_u64(struct wbuf *w, uint64_t v)
{
    uint8_t b[8];
    for (int i = 7; i >= 0; i--, v >>= 8)
        b[i] = (uint8_t)v;
    put(w, b, 8);
}

static int put_str(struct wbuf *w, const char *name, const char *s, size_t max, char *err,
                   size_t errlen)
{
    size_t n = strnlen(s, max + 1);
    if (n > max)
        return rn_err(err, errlen, "%s longer than %zu bytes", name, max);
    if (!text_ok(s, n))
        return rn_err(err, errlen, "%s holds a byte outside 0x20..0x7e", name);
    uint8_t b[2] = {(uint8_t)(n >> 8), (uint8_t)n};
    put(w, b, 2);
    put(w, s, n);
    return 0;
}

int cluster_wire_encode(const struct cluster_msg *m, uint8_t *out, size_t cap, char *err,
                        size_t errlen)
{
    struct wbuf w = {out, 0, cap < CLUSTER_FRAME_MAX ? cap : CLUSTER_FRAME_MAX, false};
    if (m->type != CLUSTER_NOTICE && m->type != CLUSTER_HEARTBEAT)
        return rn_err(err, errlen, "unknown message type %d", (int)m->type);
    if (!m->node[0])
        return rn_err(err, errlen, "node is empty");
    put(&w, magic, sizeof magic);
    put_u8(&w, CLUSTER_PROTOCOL);
    put_u8(&w, (uint8_t)m->type);
    if (put_str(&w, "node", m->node, CLUSTER_NODE_MAX, err, errlen) < 0 ||
        put_str(&w, "version", m->version, CLUSTER_VERSION_MAX, err, errlen) < 0)
        return -1;
    if (m->type == CLUSTER_NOTICE) {
        if (put_str(&w, "origin", m->origin, CLUSTER_ORIGIN_MAX, err, errlen) < 0)
            return -1;
        put_u64(&w, m->seq);
    } else {
        put_u8(&w, m->stale ? CLUSTER_FLAG_STALE : 0);
        put_u64(&w, m->seq);
        put_u64(&w, m->time_ms);
        put_u64(&w, m->uptime_s);
    }
    if (w.full)
        return rn_err(err, errlen, "frame does not fit in %zu bytes", w.cap);
    return (int)w.n;
}

static int get(struct rbuf *r, void *p, size_t n, const char *what, char *err, size_t errlen)
{
    if (r->n - r->off < n)
        return rn_err(err, errlen, "truncated at offset %zu (%s)", r->off, what);
    memcpy(p, r->p + r->off, n);
    r->off += n;
    return 0;
}

static int get_u64(struct rbuf *r, uint64_t *v, const char *what, char *err, size_t errlen)
{
    uint8_t b[8];
    if (get(r, b, 8, what, err, errlen) < 0)
        return -1;
    *v = 0;
    for (int i = 0; i < 8; i++)
        *v = *v << 8 | b[i];
    return 0;
}

/* A length-prefixed string into out (max bytes + NUL); the length is checked against the
 * field's limit and the bytes left before anything is copied. */
static int get_str(struct rbuf *r, char *out, size_t max, const char *what, char *err,
                   size_t errlen)
{
    uint8_t b[2];
    if (get(r, b, 2, what, err, errlen) < 0)
        return -1;
    size_t n = (size_t)b[0] << 8 | b[1];
    if (n > max)
        return rn_err(err, errlen, "%s length %zu over %zu", what, n, max);
    if (get(r, out, n, what, err, errlen) < 0)
        return -1;
    out[n] = '\0';
    if (!text_ok(out, n))
        return rn_err(err, errlen, "%s holds a byte outside 0x20..0x7e", what);
    return 0;
}

int cluster_wire_decode(const uint8_t *frame, size_t len, struct cluster_msg *m, char *err,
                        size_t errlen)
{
    memset(m, 0, sizeof *m);
    if (len > CLUSTER_FRAME_MAX)
        return rn_err(err, errlen, "frame of %zu bytes over %d", len, CLUSTER_FRAME_MAX);
    struct rbuf r = {frame, len, 0};
    uint8_t hdr[4];
    if (get(&r, hdr, sizeof hdr, "header", err, errlen) < 0)
        return -1;
    if (hdr[0] != magic[0] || hdr[1] != magic[1])
        return rn_err(err, errlen, "bad magic 0x%02x%02x", hdr[0], hdr[1]);
    if (hdr[2] != CLUSTER_PROTOCOL)
        return rn_err(err, errlen, "unknown protocol %u", hdr[2]);
    if (hdr[3] != CLUSTER_NOTICE && hdr[3] != CLUSTER_HEARTBEAT)
        return rn_err(err, errlen, "unknown message type %u", hdr[3]);
    m->type = hdr[3];
    if (get_str(&r, m->node, CLUSTER_NODE_MAX, "node", err, errlen) < 0 ||
        get_str(&r, m->version, CLUSTER_VERSION_MAX, "version", err, errlen) < 0)
        return -1;
    if (!m->node[0])
        return rn_err(err, errlen, "node is empty");
    if (m->type == CLUSTER_NOTICE) {
        if (get_str(&r, m->origin, CLUSTER_ORIGIN_MAX, "origin", err, errlen) < 0 ||
            get_u64(&r, &m->seq, "seq", err, errlen) < 0)
            return -1;
    } else {
        uint8_t flags = 0;
        if (get(&r, &flags, 1, "flags", err, errlen) < 0)
            return -1;
        if (flags & ~CLUSTER_FLAG_STALE)
            return rn_err(err, errlen, "unknown flags 0x%02x", flags);
        m->stale = flags & CLUSTER_FLAG_STALE;
        if (get_u64(&r, &m->seq, "seq", err, errlen) < 0 ||
            get_u64(&r, &m->time_ms, "time", err, errlen) < 0 ||
            get_u64(&r, &m->uptime_s, "uptime", err, errlen) < 0)
            return -1;
    }
    if (r.off != len)
        return rn_err(err, errlen, "%zu trailing bytes", len - r.off);
    return 0;
}
