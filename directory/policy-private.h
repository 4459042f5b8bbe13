/* policy-private: the selection index's layout, shared by policy.c (the lookup) and
 * policyindex.c (the build). Nothing else includes it. */
#ifndef RN_POLICY_PRIVATE_H
#define RN_POLICY_PRIVATE_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include "directory/ipr.h"

struct sel_group {            /* one distinct binding: family, port, address or wildcard */
    ipr_addr ip;
    uint16_t port;
    uint8_t v4, wildcard;
    uint32_t first, count;    /* its segments */
};
struct sel_seg {              /* remote addresses from start up to the next segment's start */
    ipr_addr start;
    int32_t conn, range;      /* the winner there (connector and its range), -1 if none */
};
struct sel_index {            /* one allocation: header, groups, segments */
    size_t ngroups, nsegs;
    struct sel_group *groups;
    struct sel_seg *segs;
};

static inline int key_cmp(bool v4a, uint16_t pa, bool wa, const ipr_addr *ia, const struct sel_group *g)
{
    if (v4a != g->v4)
        return v4a ? -1 : 1;
    if (pa != g->port)
        return pa < g->port ? -1 : 1;
    if (wa != g->wildcard)
        return wa ? -1 : 1;
    return wa ? 0 : memcmp(ia->b, g->ip.b, sizeof ia->b);
}

#endif
