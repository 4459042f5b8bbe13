/* policyindex: the selection index (policy.h policy_index), built once per snapshot when its
 * connector list is final, so that policy_select is two binary searches instead of a scan of
 * every connector (§4.1). Per distinct binding (family, port, address or wildcard) the remote
 * address line is cut at every range edge and each piece holds the connector a scan would
 * pick there. Positions in the snapshot's connector list name the winners, which is why an
 * index can be copied to a snapshot whose connectors are the same for selection. */
#include "directory/policy.h"
#include "directory/policy-private.h"
#include "directory/base/util.h"
#include <endian.h>
#include <stdlib.h>
#include <string.h>

struct build_bind { ipr_binding b; uint32_t conn; };
/* One remote range of a group, its size and bounds as 128-bit numbers (big-endian bytes read
 * as one integer keep their order), so the sorts compare integers, not bytes. */
typedef unsigned __int128 u128;
struct build_entry { u128 size, lo, hi; uint32_t conn, range; };

static u128 addr_key(const ipr_addr *a)
{
    uint64_t hi, lo;                  /* network order: the first byte is the highest */
    memcpy(&hi, a->b, 8);
    memcpy(&lo, a->b + 8, 8);
    return (u128)be64toh(hi) << 64 | be64toh(lo);
}

static ipr_addr key_addr(u128 x)
{
    ipr_addr a;
    for (int i = 15; i >= 0; i--, x >>= 8)
        a.b[i] = (uint8_t)x;
    return a;
}

static int bind_cmp(const void *pa, const void *pb)
{
    const struct build_bind *a = pa, *b = pb;
    struct sel_group g = {b->b.ip, b->b.port, b->b.v4, b->b.wildcard, 0, 0};
    int c = key_cmp(a->b.v4, a->b.port, a->b.wildcard, &a->b.ip, &g);
    if (c)
        return c;
    return a->conn < b->conn ? -1 : a->conn > b->conn;
}

/* Smallest range first (ipr_range_cmp_size), ties by load order, then range order. */
static int entry_cmp(const void *pa, const void *pb)
{
    const struct build_entry *a = pa, *b = pb;
    if (a->size != b->size)
        return a->size < b->size ? -1 : 1;
    if (a->conn != b->conn)
        return a->conn < b->conn ? -1 : 1;
    return a->range < b->range ? -1 : a->range > b->range;
}

static int key_qcmp(const void *pa, const void *pb)
{
    u128 a = *(const u128 *)pa, b = *(const u128 *)pb;
    return a < b ? -1 : a > b;
}

static size_t key_index(const u128 *v, size_t n, u128 a)
{
    size_t lo = 0, hi = n;   /* exact position of a, which is present */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (v[mid] < a)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static size_t dsu_find(size_t *next, size_t i)
{
    while (next[i] != i) {
        next[i] = next[next[i]];
        i = next[i];
    }
    return i;
}

/* The group's ranges of family v4 into e[] and their edges (each low end, and the address
 * after each high end unless it is the last address) into cut[], sorted and unique; cut[0]
 * is ::. Returns the number of ranges; *ncut the number of cuts. */
static size_t group_edges(const struct rn_snapshot *s, const struct build_bind *bb, size_t nb,
                          bool v4, struct build_entry *e, u128 *cut, size_t *ncut)
{
    size_t ne = 0, nc = 0;
    cut[nc++] = 0;
    for (size_t i = 0; i < nb; i++) {
        if (i && bb[i].conn == bb[i - 1].conn)
            continue;   /* the same binding written twice on one connector */
        const struct rn_connector *c = &s->connectors[bb[i].conn];
        for (size_t k = 0; k < c->nranges; k++) {
            if (c->ranges[k].v4 != v4)
                continue;
            u128 lo = addr_key(&c->ranges[k].lo), hi = addr_key(&c->ranges[k].hi);
            e[ne++] = (struct build_entry){hi - lo, lo, hi, bb[i].conn, (uint32_t)k};
            cut[nc++] = lo;
            if (hi != ~(u128)0)
                cut[nc++] = hi + 1;
        }
    }
    qsort(cut, nc, sizeof *cut, key_qcmp);
    size_t u = 0;
    for (size_t i = 0; i < nc; i++)
        if (u == 0 || cut[u - 1] != cut[i])
            cut[u++] = cut[i];
    *ncut = u;
    return ne;
}

/* Segments of one group from its connectors: cut the address line at every range edge, then
 * paint ranges smallest first (ties: load order, then range order) onto segments nobody has
 * painted yet, so each segment keeps the §4.1 winner. Appends to *segs. */
static void group_build(const struct rn_snapshot *s, const struct build_bind *bb, size_t nb,
                        bool v4, struct sel_seg **segs, size_t *nsegs, size_t *cap)
{
    size_t ne = 0, ncut = 0;
    for (size_t i = 0; i < nb; i++)
        ne += s->connectors[bb[i].conn].nranges;
    struct build_entry *e = xcalloc(ne ? ne : 1, sizeof *e);
    u128 *cut = xcalloc(2 * ne + 1, sizeof *cut);
    ne = group_edges(s, bb, nb, v4, e, cut, &ncut);
    qsort(e, ne, sizeof *e, entry_cmp);
    int32_t *win_c = xmalloc(ncut * sizeof *win_c), *win_r = xmalloc(ncut * sizeof *win_r);
    size_t *next = xmalloc((ncut + 1) * sizeof *next);
    for (size_t i = 0; i <= ncut; i++)
        next[i] = i;
    for (size_t i = 0; i < ncut; i++)
        win_c[i] = win_r[i] = -1;
    for (size_t i = 0; i < ne; i++) {
        size_t lo = key_index(cut, ncut, e[i].lo);
        size_t end = e[i].hi != ~(u128)0 ? key_index(cut, ncut, e[i].hi + 1) : ncut;
        for (size_t j = dsu_find(next, lo); j < end; j = dsu_find(next, j)) {
            win_c[j] = (int32_t)e[i].conn;
            win_r[j] = (int32_t)e[i].range;
            next[j] = j + 1;
        }
    }
    for (size_t i = 0; i < ncut; i++) {
        if (i && win_c[i] == win_c[i - 1] && win_r[i] == win_r[i - 1])
            continue;   /* same winner as the segment before: one segment */
        if (*nsegs == *cap) {
            *cap = *cap ? *cap * 2 : 64;
            *segs = xrealloc(*segs, *cap * sizeof **segs);
        }
        (*segs)[(*nsegs)++] = (struct sel_seg){key_addr(cut[i]), win_c[i], win_r[i]};
    }
    free(next);
    free(win_c);
    free(win_r);
    free(cut);
    free(e);
}

void policy_index(struct rn_snapshot *s)
{
    free(s->select_index);
    s->select_index = NULL;
    size_t nb = 0;
    for (size_t i = 0; i < s->nconnectors; i++)
        if (s->connectors[i].enabled)
            nb += s->connectors[i].nbindings;
    struct build_bind *bb = xcalloc(nb ? nb : 1, sizeof *bb);
    nb = 0;
    for (size_t i = 0; i < s->nconnectors; i++)
        for (size_t k = 0; s->connectors[i].enabled && k < s->connectors[i].nbindings; k++) {
            bb[nb].b = s->connectors[i].bindings[k];
            if (bb[nb].b.wildcard)
                memset(&bb[nb].b.ip, 0, sizeof bb[nb].b.ip);   /* one key per family */
            bb[nb++].conn = (uint32_t)i;
        }
    qsort(bb, nb, sizeof *bb, bind_cmp);
    struct sel_group *groups = xcalloc(nb ? nb : 1, sizeof *groups);
    struct sel_seg *segs = NULL;
    size_t ng = 0, nsegs = 0, cap = 0;
    for (size_t i = 0; i < nb;) {
        size_t j = i + 1;
        while (j < nb && bind_cmp(&(struct build_bind){bb[i].b, 0},
                                  &(struct build_bind){bb[j].b, 0}) == 0)
            j++;
        struct sel_group *g = &groups[ng++];
        g->ip = bb[i].b.ip;
        g->port = bb[i].b.port;
        g->v4 = bb[i].b.v4;
        g->wildcard = bb[i].b.wildcard;
        g->first = (uint32_t)nsegs;
        group_build(s, bb + i, j - i, bb[i].b.v4, &segs, &nsegs, &cap);
        g->count = (uint32_t)(nsegs - g->first);
        i = j;
    }
    size_t size = sizeof(struct sel_index) + ng * sizeof *groups + nsegs * sizeof *segs;
    struct sel_index *x = xmalloc(size);
    x->ngroups = ng;
    x->nsegs = nsegs;
    x->groups = (struct sel_group *)(void *)(x + 1);
    x->segs = (struct sel_seg *)(void *)(x->groups + ng);
    if (ng)
        memcpy(x->groups, groups, ng * sizeof *groups);
    if (nsegs)
        memcpy(x->segs, segs, nsegs * sizeof *segs);
    s->select_index = x;
    free(segs);
    free(groups);
    free(bb);
}

void policy_index_copy(struct rn_snapshot *dst, const struct rn_snapshot *src)
{
    free(dst->select_index);
    dst->select_index = NULL;
    const struct sel_index *x = src->select_index;
    if (!x)
        return;
    size_t size = sizeof *x + x->ngroups * sizeof *x->groups + x->nsegs * sizeof *x->segs;
    struct sel_index *y = xmalloc(size);
    memcpy(y, x, size);
    y->groups = (struct sel_group *)(void *)(y + 1);   /* the one block's own pointers */
    y->segs = (struct sel_seg *)(void *)(y->groups + y->ngroups);
    dst->select_index = y;
}
