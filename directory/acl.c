/* acl: the connector's security descriptor as an ordered ACE list (acl.h). Evaluation is the
 * Windows access check reduced to what relayAce can express (docs/permission-model.md §7.2): every
 * ACE whose principal is in the token contributes, a deny beats an allow for the same right
 * whatever the order. Permission groups are macros (§1.2): expansion appends the group's
 * ACEs, stripping removes each (principal, default set) pair (§1.5), and derivation
 * reproduces Get-ReceiveConnector's PermissionGroups including Custom (§1.4). */
#include "directory/acl.h"
#include "directory/base/util.h"
#include <stdint.h>
#include <string.h>

void acl_eval(const struct ace *aces, size_t n, const struct token *t, struct rights_eval *out)
{
    memset(out, 0, sizeof *out);
    for (unsigned i = 0; i < RIGHT_COUNT; i++)
        out->grant_ace[i] = out->deny_ace[i] = -1;
    for (size_t k = 0; k < n; k++) {
        const struct ace *a = &aces[k];
        if (!token_holds_ace(t, a))
            continue;
        int16_t *first = a->deny ? out->deny_ace : out->grant_ace;
        /* An ACE list longer than int16 can index is reported at the last index it can hold;
         * the rights themselves are still exact. */
        int16_t idx = k > INT16_MAX ? INT16_MAX : (int16_t)k;
        for (unsigned i = 0; i < RIGHT_COUNT; i++)
            if ((a->rights & (1u << i)) && first[i] < 0)
                first[i] = idx;
        if (a->deny)
            out->denied |= a->rights;
        else
            out->allowed |= a->rights;
    }
    out->effective = out->allowed & ~out->denied;
}

#define MAX_GRANTS 8
static const unsigned group_bits[] = {
    GROUP_ANONYMOUS, GROUP_EXCHANGE_USERS, GROUP_EXCHANGE_SERVERS, GROUP_LEGACY_SERVERS,
    GROUP_PARTNERS,
};
#define NGROUPS (sizeof group_bits / sizeof group_bits[0])

void acl_expand_groups(unsigned groups, struct ace **aces, size_t *n)
{
    for (size_t g = 0; g < NGROUPS; g++) {
        if (!(groups & group_bits[g]))
            continue;
        struct group_grant gg[MAX_GRANTS];
        size_t ng = group_grants(group_bits[g], gg, MAX_GRANTS);
        *aces = xrealloc(*aces, (*n + ng) * sizeof **aces);
        for (size_t i = 0; i < ng; i++) {
            struct ace *a = &(*aces)[(*n)++];
            memset(a, 0, sizeof *a);
            a->deny = gg[i].deny;
            a->wk = gg[i].principal;
            a->rights = gg[i].rights;
        }
    }
}

void acl_strip_groups(struct ace **aces, size_t *n)
{
    for (size_t g = 0; g < NGROUPS; g++) {
        struct group_grant gg[MAX_GRANTS];
        size_t ng = group_grants(group_bits[g], gg, MAX_GRANTS);
        for (size_t i = 0; i < ng; i++)
            for (size_t k = 0; k < *n; k++) {
                struct ace *a = &(*aces)[k];
                if (a->wk == gg[i].principal && a->deny == gg[i].deny)
                    a->rights &= ~gg[i].rights;
            }
    }
    size_t w = 0;
    for (size_t k = 0; k < *n; k++) {
        if ((*aces)[k].rights == 0)
            ace_clear(&(*aces)[k]);
        else
            (*aces)[w++] = (*aces)[k];
    }
    *n = w;
}

/* §1.4 step 1: rights that are never part of a receive group (E15: Accept-XShadow counts). */
#define NEVER_IN_GROUP (R_SUBMIT_FOR_MLS | R_SEND_EXCH50 | R_SEND_ROUTING_HEADERS | \
                        R_SEND_FOREST_HEADERS | R_SEND_ORG_HEADERS | R_SEND_AS | R_SEND_XSHADOW)

/* Effective rights of one trustee (a well-known id, or the DN or SID in key: the two forms
 * never collide, see token_holds) from the ACEs naming exactly it (no group expansion). */
static uint32_t trustee_rights(const struct ace *aces, size_t n, int wk, const char *key)
{
    uint32_t allowed = 0, denied = 0;
    for (size_t k = 0; k < n; k++) {
        const struct ace *a = &aces[k];
        const char *akey = a->sid ? a->sid : a->dn_norm;
        bool same = wk >= 0 ? a->wk == wk
                            : a->wk < 0 && akey && key && strcmp(akey, key) == 0;
        if (!same)
            continue;
        if (a->deny)
            denied |= a->rights;
        else
            allowed |= a->rights;
    }
    return allowed & ~denied & ~NEVER_IN_GROUP;
}

/* The rights a well-known principal gets from its group, or 0 when it is no group's. */
static uint32_t group_default(int wk)
{
    for (size_t g = 0; g < NGROUPS; g++) {
        struct group_grant gg[MAX_GRANTS];
        size_t ng = group_grants(group_bits[g], gg, MAX_GRANTS);
        for (size_t i = 0; i < ng; i++)
            if (gg[i].principal == wk && !gg[i].deny)
                return gg[i].rights;
    }
    return 0;
}

static bool is_predefined_set(uint32_t r)
{
    static const uint32_t sets[] = {0x431, 0x445, 0x6FD, 0x1EFD, 0x41EFD, 0x3FC1EFD, 0x401};
    for (size_t i = 0; i < sizeof sets / sizeof sets[0]; i++)
        if (r == sets[i])
            return true;
    return false;
}

unsigned acl_derive_groups(const struct ace *aces, size_t n)
{
    unsigned groups = 0;
    for (size_t g = 0; g < NGROUPS; g++) {   /* step 2: every principal has its default set */
        struct group_grant gg[MAX_GRANTS];
        size_t ng = group_grants(group_bits[g], gg, MAX_GRANTS);
        bool present = true;
        for (size_t i = 0; i < ng; i++) {
            if (gg[i].deny)
                continue;
            uint32_t want = gg[i].rights & ~NEVER_IN_GROUP;
            if ((trustee_rights(aces, n, gg[i].principal, NULL) & want) != want)
                present = false;
        }
        if (present)
            groups |= group_bits[g];
    }
    for (int wk = 0; wk < WK_COUNT; wk++) {   /* step 3: group principals off their default */
        uint32_t def = group_default(wk);
        if (!def)
            continue;
        uint32_t r = trustee_rights(aces, n, wk, NULL);
        if (r && r != (def & ~NEVER_IN_GROUP))
            return groups | GROUP_CUSTOM;
    }
    for (size_t k = 0; k < n; k++) {   /* step 4: other trustees holding a non-standard set */
        const struct ace *a = &aces[k];
        if (a->wk >= 0 && group_default(a->wk))
            continue;
        uint32_t r = trustee_rights(aces, n, a->wk, a->sid ? a->sid : a->dn_norm);
        if (r && !is_predefined_set(r))
            return groups | GROUP_CUSTOM;
    }
    return groups;
}
