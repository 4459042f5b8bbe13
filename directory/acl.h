/* acl: evaluation of a connector's ACE list for a token, and permission groups as macros
 * over ACEs (docs/permission-model.md §1.2, §1.4, §1.5, §7.2). ACEs are the truth; groups are
 * expanded into ACEs when set and derived back (Custom included) for display. Pure. */
#ifndef RN_ACL_H
#define RN_ACL_H
#include <stddef.h>
#include <stdint.h>
#include "directory/ace.h"
#include "directory/rights.h"
#include "directory/token.h"

struct rights_eval {
    uint32_t allowed;                  /* union of allow ACEs that apply to the token */
    uint32_t denied;                   /* union of deny ACEs that apply */
    uint32_t effective;                /* allowed & ~denied: deny wins */
    int16_t grant_ace[RIGHT_COUNT];    /* per right (bit index): first allow ACE, or -1 */
    int16_t deny_ace[RIGHT_COUNT];     /* per right: first deny ACE, or -1 */
};

/* Effective rights of token t under aces[0..n). */
void acl_eval(const struct ace *aces, size_t n, const struct token *t, struct rights_eval *out);

/* Append the ACEs that `groups` (GROUP_* bits, no Custom) expand to, §1.2 table, to the
 * growing array *aces, *n (xrealloc'd; caller owns). */
void acl_expand_groups(unsigned groups, struct ace **aces, size_t *n);
/* Remove every (principal, default rights) pair of every group from the list (§1.5 first
 * step): rights outside a group's default set survive. */
void acl_strip_groups(struct ace **aces, size_t *n);
/* The PermissionGroups an ACE list shows as (§1.4), GROUP_CUSTOM included. */
unsigned acl_derive_groups(const struct ace *aces, size_t n);
#endif
