/* clusterver: contextCSN versions and the convergence decisions (cluster-protocol.md §1, §5).
 *
 * A CSN is normalised into fixed-width fields (time with a 6-digit fraction, hex upper-case)
 * so that two CSNs of one sid compare lexicographically in chronological order, which is
 * how OpenLDAP itself orders them. Versions from multi-provider replication carry one CSN
 * per sid and compare per sid, like vector clocks: a node never treats a server that lacks
 * another provider's latest change as "newer". */
#include "node/cluster/clusterver.h"
#include <ctype.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define CV_MAX_SIDS 32
#define CSN_NORM    40    /* "YYYYmmddHHMMSS.ffffffZ#cccccc#sss#mmmmmm" */

struct csn {
    unsigned sid;
    char norm[CSN_NORM + 1];
};

struct vec {
    size_t n;
    struct csn v[CV_MAX_SIDS];
};

static bool all_digits(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!isdigit((unsigned char)s[i]))
            return false;
    return true;
}

static bool all_hex(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!isxdigit((unsigned char)s[i]))
            return false;
    return true;
}

/* Parse one CSN of s[0..n) into c; false when it is not one. Accepts the 2.4+ form with an
 * optional fraction (1..6 digits) and hex fields of up to 6/3/6 digits, left-padded. */
static bool csn_parse(const char *s, size_t n, struct csn *c)
{
    const char *f[4];
    size_t fl[4], k = 0;
    const char *p = s, *end = s + n;
    while (k < 4) {
        const char *h = memchr(p, '#', (size_t)(end - p));
        const char *e = h ? h : end;
        f[k] = p;
        fl[k++] = (size_t)(e - p);
        if (!h)
            break;
        p = h + 1;
    }
    if (k != 4 || f[3] + fl[3] != end)
        return false;
    /* time: 14 digits, optional "." + 1..6 digits, "Z" */
    if (fl[0] < 15 || f[0][fl[0] - 1] != 'Z' || !all_digits(f[0], 14))
        return false;
    char frac[7] = "000000";
    if (fl[0] > 15) {
        size_t nf = fl[0] - 16;
        if (f[0][14] != '.' || nf < 1 || nf > 6 || !all_digits(f[0] + 15, nf))
            return false;
        memcpy(frac, f[0] + 15, nf);
    }
    static const size_t width[4] = {0, 6, 3, 6};
    for (int i = 1; i < 4; i++)
        if (fl[i] < 1 || fl[i] > width[i] || !all_hex(f[i], fl[i]))
            return false;
    char *o = c->norm;
    memcpy(o, f[0], 14);
    o += 14;
    *o++ = '.';
    memcpy(o, frac, 6);
    o += 6;
    *o++ = 'Z';
    for (int i = 1; i < 4; i++) {
        *o++ = '#';
        for (size_t z = fl[i]; z < width[i]; z++)
            *o++ = '0';
        for (size_t j = 0; j < fl[i]; j++)
            *o++ = (char)toupper((unsigned char)f[i][j]);
    }
    *o = '\0';
    char sid[4] = {0};
    memcpy(sid, c->norm + 30, 3);
    c->sid = (unsigned)strtoul(sid, NULL, 16);
    return true;
}

static bool vec_parse(const char *s, struct vec *v)
{
    v->n = 0;
    if (!s || !*s)
        return false;
    const char *p = s;
    for (;;) {
        const char *comma = strchr(p, ',');
        size_t n = comma ? (size_t)(comma - p) : strlen(p);
        if (v->n == CV_MAX_SIDS)
            return false;
        struct csn c;
        if (!csn_parse(p, n, &c))
            return false;
        for (size_t i = 0; i < v->n; i++)
            if (v->v[i].sid == c.sid)
                return false;
        v->v[v->n++] = c;
        if (!comma)
            return true;
        p = comma + 1;
    }
}

static const struct csn *vec_find(const struct vec *v, unsigned sid)
{
    for (size_t i = 0; i < v->n; i++)
        if (v->v[i].sid == sid)
            return &v->v[i];
    return NULL;
}

/* Whether a >= b on every sid of b (a sid missing from a is older than any CSN). */
static bool vec_covers(const struct vec *a, const struct vec *b)
{
    for (size_t i = 0; i < b->n; i++) {
        const struct csn *x = vec_find(a, b->v[i].sid);
        if (!x || strcmp(x->norm, b->v[i].norm) < 0)
            return false;
    }
    return true;
}

/* Seconds since the epoch of a normalised CSN's time field. */
static long long csn_epoch(const struct csn *c)
{
    struct tm tm = {0};
    int f[6] = {0};
    static const int w[6] = {4, 2, 2, 2, 2, 2};
    for (int i = 0, at = 0; i < 6; at += w[i++])
        for (int d = 0; d < w[i]; d++)
            f[i] = f[i] * 10 + (c->norm[at + d] - '0');
    tm.tm_year = f[0] - 1900;
    tm.tm_mon = f[1] - 1;
    tm.tm_mday = f[2];
    tm.tm_hour = f[3];
    tm.tm_min = f[4];
    tm.tm_sec = f[5];
    return (long long)timegm(&tm);
}

/* The Active Directory profile's version "usn:<N>" (directory/ldap/adwatch.c): the DC's
 * highestCommittedUSN, which only grows. 1..20 digits, no sign, no leading zero. */
static bool usn_parse(const char *s, unsigned long long *out)
{
    if (!s || strncmp(s, "usn:", 4) != 0)
        return false;
    const char *p = s + 4;
    size_t n = strlen(p);
    if (n == 0 || n > 19 || !all_digits(p, n) || (p[0] == '0' && n > 1))
        return false;
    *out = strtoull(p, NULL, 10);
    return true;
}

long long clusterver_lag_s(const char *applied, const char *current, long long now)
{
    unsigned long long uc;
    if (usn_parse(current, &uc))
        return 0;                         /* a USN carries no time: the lag is unknown */
    struct vec a, b;
    if (!vec_parse(current, &b))
        return -1;
    if (!vec_parse(applied, &a))
        a.n = 0;                           /* none applied: behind on every sid */
    long long oldest = -1;
    for (size_t i = 0; i < b.n; i++) {
        const struct csn *x = vec_find(&a, b.v[i].sid);
        if (x && strcmp(x->norm, b.v[i].norm) >= 0)
            continue;
        long long t = csn_epoch(&b.v[i]);
        if (oldest < 0 || t < oldest)
            oldest = t;
    }
    return oldest >= 0 && now > oldest ? now - oldest : 0;
}

bool clusterver_valid(const char *s)
{
    unsigned long long u;
    if (usn_parse(s, &u))
        return true;
    struct vec v;
    return vec_parse(s, &v);
}

enum clusterver_order clusterver_compare(const char *a, const char *b)
{
    /* USNs order by number; a USN and a CSN vector are two directories: not comparable. */
    unsigned long long ua, ub;
    bool isa = usn_parse(a, &ua), isb = usn_parse(b, &ub);
    if (isa || isb)
        return !isa || !isb ? CV_INVALID : ua == ub ? CV_EQUAL : ua > ub ? CV_NEWER : CV_OLDER;
    struct vec va, vb;
    if (!vec_parse(a, &va) || !vec_parse(b, &vb))
        return CV_INVALID;
    bool ab = vec_covers(&va, &vb), ba = vec_covers(&vb, &va);
    if (ab && ba)
        return CV_EQUAL;
    if (ab)
        return CV_NEWER;
    if (ba)
        return CV_OLDER;
    return CV_CONCURRENT;
}

enum clusterver_action clusterver_decide(const char *applied, const char *announced,
                                         const char *replica)
{
    if (!clusterver_valid(announced))
        return CV_IGNORE;
    if (clusterver_valid(applied)) {
        enum clusterver_order o = clusterver_compare(announced, applied);
        if (o == CV_EQUAL || o == CV_OLDER)
            return CV_IGNORE;
    }
    /* Reload only from a replica that has the announced change; an unknown replica version
     * is learned by loading (the load is then judged by clusterver_accept). */
    if (!clusterver_valid(replica))
        return CV_RELOAD;
    enum clusterver_order r = clusterver_compare(replica, announced);
    return r == CV_EQUAL || r == CV_NEWER ? CV_RELOAD : CV_WAIT;
}

bool clusterver_accept(const char *applied, const char *loaded)
{
    if (!clusterver_valid(applied))
        return true;
    enum clusterver_order o = clusterver_compare(loaded, applied);
    return o == CV_EQUAL || o == CV_NEWER;
}

const char *clusterver_order_name(enum clusterver_order o)
{
    static const char *const names[] = {"equal", "newer", "older", "concurrent", "invalid"};
    return (unsigned)o < sizeof names / sizeof names[0] ? names[o] : "?";
}

const char *clusterver_action_name(enum clusterver_action a)
{
    static const char *const names[] = {"ignore", "reload", "wait"};
    return (unsigned)a < sizeof names / sizeof names[0] ? names[a] : "?";
}
