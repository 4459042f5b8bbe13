/* ipr: addresses, remote IP ranges and listener bindings (ipr.h, docs/permission-model.md §4.4).
 * Every address is 128 bits in network order; IPv4 lives at ::ffff:a.b.c.d so that ranges,
 * sizes and containment are one comparison whatever the family, while the v4 flag keeps the
 * family apart (an IPv4 binding never serves an IPv6 range). Range syntax follows Exchange's
 * IPRange.Parse: the first '-', '/' or '(' decides the form, a CIDR base need not be the
 * network address, a netmask must be contiguous. Messages say what is wrong with the value;
 * the caller names the attribute. */
#include "directory/ipr.h"
#include "directory/base/util.h"
#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

#define ADDR_MAX 64   /* longer than any textual address we accept (INET6_ADDRSTRLEN is 46) */

static const uint8_t v4mapped_prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

bool ipr_addr_is_v4mapped(const ipr_addr *a)
{
    return memcmp(a->b, v4mapped_prefix, sizeof v4mapped_prefix) == 0;
}

/* Parse exactly n bytes of s as an address (s need not be NUL-terminated there). */
static int addr_parse_n(const char *s, size_t n, ipr_addr *out, bool *v4)
{
    char buf[ADDR_MAX];
    if (n == 0 || n >= sizeof buf)
        return -1;
    memcpy(buf, s, n);
    buf[n] = '\0';
    if (memchr(buf, '%', n))      /* zone ids name an interface, not a range endpoint */
        return -1;
    struct in_addr a4;
    if (inet_pton(AF_INET, buf, &a4) == 1) {
        memcpy(out->b, v4mapped_prefix, 12);
        memcpy(out->b + 12, &a4, 4);
        *v4 = true;
        return 0;
    }
    if (inet_pton(AF_INET6, buf, out->b) == 1) {
        *v4 = false;
        return 0;
    }
    return -1;
}

int ipr_addr_parse(const char *s, ipr_addr *out, bool *v4)
{
    return s ? addr_parse_n(s, strlen(s), out, v4) : -1;
}

size_t ipr_addr_format(const ipr_addr *a, bool v4, char *buf, size_t len)
{
    char tmp[ADDR_MAX];
    if (v4 && ipr_addr_is_v4mapped(a))
        inet_ntop(AF_INET, a->b + 12, tmp, sizeof tmp);
    else
        inet_ntop(AF_INET6, a->b, tmp, sizeof tmp);
    return rn_strlcpy(buf, tmp, len);
}

static int addr_cmp(const ipr_addr *a, const ipr_addr *b)
{
    return memcmp(a->b, b->b, sizeof a->b);
}

/* Network mask of `bits` leading ones over the family's width, as a 128-bit mask. */
static void mask_make(unsigned prefix, bool v4, ipr_addr *m)
{
    unsigned ones = v4 ? 96 + prefix : prefix;
    for (unsigned i = 0; i < 16; i++) {
        unsigned have = ones > i * 8 ? ones - i * 8 : 0;
        m->b[i] = have >= 8 ? 0xff : (uint8_t)(0xff00u >> have);
    }
}

/* Number of leading one bits if the IPv4 mask is contiguous, else -1. */
static int mask_prefix_v4(const ipr_addr *m)
{
    uint32_t x = (uint32_t)m->b[12] << 24 | (uint32_t)m->b[13] << 16 | (uint32_t)m->b[14] << 8 |
                 m->b[15];
    int n = 0;
    while (n < 32 && (x & (0x80000000u >> n)))
        n++;
    uint32_t expect = n == 0 ? 0 : 0xffffffffu << (32 - n);
    return x == expect ? n : -1;
}

static void range_from_prefix(ipr_range *r, const ipr_addr *base, unsigned prefix, bool v4)
{
    ipr_addr m;
    mask_make(prefix, v4, &m);
    for (unsigned i = 0; i < 16; i++) {
        r->lo.b[i] = base->b[i] & m.b[i];
        r->hi.b[i] = base->b[i] | (uint8_t)~m.b[i];
    }
    if (v4)   /* the mask covered the ::ffff: prefix too; keep it mapped */
        memcpy(r->hi.b, v4mapped_prefix, 12);
}

static const char *family_name(bool v4)
{
    return v4 ? "IPv4" : "IPv6";
}

int ipr_range_parse(const char *s, ipr_range *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    if (!s || !*s)
        return rn_err(err, errlen, "empty range");
    size_t len = strlen(s);
    if (len > 2 * ADDR_MAX)
        return rn_err(err, errlen, "range is too long");
    size_t sep = strcspn(s, "-/(");
    bool v4;
    if (addr_parse_n(s, sep, &out->base, &v4) < 0)
        return rn_err(err, errlen, "'%.*s' is not an IP address", (int)sep, s);
    out->v4 = v4;
    const char *rest = s + sep + (s[sep] ? 1 : 0);
    switch (s[sep]) {
    case '\0':
        out->form = IPR_SINGLE;
        out->lo = out->hi = out->base;
        return 0;
    case '-': {
        bool hv4;
        out->form = IPR_LOHI;
        out->lo = out->base;
        if (addr_parse_n(rest, strlen(rest), &out->hi, &hv4) < 0)
            return rn_err(err, errlen, "'%s' is not an IP address", rest);
        if (hv4 != v4)
            return rn_err(err, errlen, "the two ends are of different families (%s-%s)",
                          family_name(v4), family_name(hv4));
        if (addr_cmp(&out->lo, &out->hi) > 0)
            return rn_err(err, errlen, "the low end is above the high end");
        memset(&out->base, 0, sizeof out->base);
        return 0;
    }
    case '/': {
        unsigned max = v4 ? 32 : 128, n = 0;
        size_t digits = strspn(rest, "0123456789");
        if (digits == 0 || digits > 3 || rest[digits] != '\0')
            return rn_err(err, errlen, "'%s' is not a prefix length", rest);
        for (size_t i = 0; i < digits; i++)
            n = n * 10 + (unsigned)(rest[i] - '0');
        if (n > max)
            return rn_err(err, errlen, "prefix length %u is above %u for %s", n, max,
                          family_name(v4));
        out->form = IPR_CIDR;
        out->prefix = (uint8_t)n;
        range_from_prefix(out, &out->base, n, v4);
        return 0;
    }
    default: {   /* '(' */
        size_t mlen = strlen(rest);
        if (mlen == 0 || rest[mlen - 1] != ')')
            return rn_err(err, errlen, "netmask must be written a.b.c.d(m.m.m.m)");
        if (!v4)
            return rn_err(err, errlen, "the netmask form is for IPv4 only; use a/n for IPv6");
        ipr_addr m;
        bool mv4;
        if (addr_parse_n(rest, mlen - 1, &m, &mv4) < 0 || !mv4)
            return rn_err(err, errlen, "'%.*s' is not an IPv4 netmask", (int)(mlen - 1), rest);
        int p = mask_prefix_v4(&m);
        if (p < 0)
            return rn_err(err, errlen, "netmask %.*s is not contiguous", (int)(mlen - 1), rest);
        out->form = IPR_NETMASK;
        out->prefix = (uint8_t)p;
        range_from_prefix(out, &out->base, (unsigned)p, true);
        return 0;
    }
    }
}

size_t ipr_range_format(const ipr_range *r, char *buf, size_t len)
{
    char a[ADDR_MAX], b[ADDR_MAX], out[3 * ADDR_MAX];
    switch (r->form) {
    case IPR_LOHI:
        ipr_addr_format(&r->lo, r->v4, a, sizeof a);
        ipr_addr_format(&r->hi, r->v4, b, sizeof b);
        snprintf(out, sizeof out, "%s-%s", a, b);
        break;
    case IPR_CIDR:
        ipr_addr_format(&r->base, r->v4, a, sizeof a);
        snprintf(out, sizeof out, "%s/%u", a, (unsigned)r->prefix);
        break;
    case IPR_NETMASK: {
        ipr_addr m;
        mask_make(r->prefix, true, &m);
        memcpy(m.b, v4mapped_prefix, 12);
        ipr_addr_format(&r->base, true, a, sizeof a);
        ipr_addr_format(&m, true, b, sizeof b);
        snprintf(out, sizeof out, "%s(%s)", a, b);
        break;
    }
    default:
        ipr_addr_format(&r->lo, r->v4, out, sizeof out);
        break;
    }
    return rn_strlcpy(buf, out, len);
}

bool ipr_range_contains(const ipr_range *r, const ipr_addr *a, bool v4)
{
    return r->v4 == v4 && addr_cmp(&r->lo, a) <= 0 && addr_cmp(a, &r->hi) <= 0;
}

static unsigned __int128 addr_u128(const ipr_addr *a)
{
    unsigned __int128 x = 0;
    for (unsigned i = 0; i < 16; i++)
        x = x << 8 | a->b[i];
    return x;
}

int ipr_range_cmp_size(const ipr_range *a, const ipr_range *b)
{
    unsigned __int128 sa = addr_u128(&a->hi) - addr_u128(&a->lo);
    unsigned __int128 sb = addr_u128(&b->hi) - addr_u128(&b->lo);
    return sa < sb ? -1 : sa > sb;
}

enum ipr_overlap ipr_range_overlap(const ipr_range *a, const ipr_range *b)
{
    if (a->v4 != b->v4)
        return IPR_DISJOINT;
    int lo = addr_cmp(&a->lo, &b->lo), hi = addr_cmp(&a->hi, &b->hi);
    if (lo == 0 && hi == 0)
        return IPR_EQUAL;
    if (addr_cmp(&a->hi, &b->lo) < 0 || addr_cmp(&b->hi, &a->lo) < 0)
        return IPR_DISJOINT;
    if ((lo <= 0 && hi >= 0) || (lo >= 0 && hi <= 0))
        return IPR_NESTED;
    return IPR_PARTIAL;
}

/* §3.2 rule 12: a listener on a multicast or broadcast address makes no sense. */
static const char *binding_refusal(const ipr_addr *a, bool v4)
{
    if (v4) {
        if ((a->b[12] & 0xf0) == 0xe0)
            return "multicast";
        if (a->b[12] == 255 && a->b[13] == 255 && a->b[14] == 255 && a->b[15] == 255)
            return "broadcast";
        return NULL;
    }
    return a->b[0] == 0xff ? "multicast" : NULL;
}

int ipr_binding_parse(const char *s, ipr_binding *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    if (!s || !*s)
        return rn_err(err, errlen, "empty binding");
    const char *addr = s, *colon;
    size_t alen;
    if (s[0] == '[') {
        const char *close = strchr(s, ']');
        if (!close || close[1] != ':')
            return rn_err(err, errlen, "expected [IPv6]:port");
        addr = s + 1;
        alen = (size_t)(close - addr);
        colon = close + 1;
    } else {
        colon = strrchr(s, ':');
        if (!colon)
            return rn_err(err, errlen, "expected IP:port");
        if (memchr(s, ':', (size_t)(colon - s)))
            return rn_err(err, errlen, "an IPv6 binding needs brackets, e.g. [::]:25");
        alen = (size_t)(colon - s);
    }
    bool v4;
    if (addr_parse_n(addr, alen, &out->ip, &v4) < 0)
        return rn_err(err, errlen, "'%.*s' is not an IP address", (int)alen, addr);
    if (s[0] == '[' && v4)
        return rn_err(err, errlen, "brackets are for IPv6 addresses");
    const char *p = colon + 1;
    size_t digits = strspn(p, "0123456789");
    unsigned long port = 0;
    if (digits == 0 || digits > 5 || p[digits] != '\0')
        return rn_err(err, errlen, "'%s' is not a port number", p);
    for (size_t i = 0; i < digits; i++)
        port = port * 10 + (unsigned long)(p[i] - '0');
    if (port < 1 || port > 65535)
        return rn_err(err, errlen, "port %lu is outside 1-65535", port);
    const char *why = binding_refusal(&out->ip, v4);
    if (why)
        return rn_err(err, errlen, "a %s address cannot be a binding", why);
    out->port = (uint16_t)port;
    out->v4 = v4;
    static const ipr_addr zero;
    ipr_addr any4 = {{0}};
    memcpy(any4.b, v4mapped_prefix, 12);
    out->wildcard = addr_cmp(&out->ip, v4 ? &any4 : &zero) == 0;
    return 0;
}

size_t ipr_binding_format(const ipr_binding *b, char *buf, size_t len)
{
    char a[ADDR_MAX], out[ADDR_MAX + 16];
    ipr_addr_format(&b->ip, b->v4, a, sizeof a);
    if (b->v4)
        snprintf(out, sizeof out, "%s:%u", a, (unsigned)b->port);
    else
        snprintf(out, sizeof out, "[%s]:%u", a, (unsigned)b->port);
    return rn_strlcpy(buf, out, len);
}

bool ipr_binding_overlaps(const ipr_binding *a, const ipr_binding *b)
{
    if (a->v4 != b->v4 || a->port != b->port)
        return false;
    return a->wildcard || b->wildcard || addr_cmp(&a->ip, &b->ip) == 0;
}
