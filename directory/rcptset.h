/* rcptset: the addresses of the directory's mail-enabled objects (users and groups: `mail`
 * and `relayMailAlias`), as an immutable hash set of ASCII-lower-cased addresses. The loader
 * builds one per snapshot (rcptset_add, then rcptset_freeze); sessions on any thread then
 * only call rcptset_has, which allocates nothing and never touches the directory
 * (docs/permission-model.md §6, recipient lookup). */
#ifndef RN_RCPTSET_H
#define RN_RCPTSET_H
#include <stdbool.h>
#include <stddef.h>

#define RCPTSET_ADDR_MAX 320   /* longest address kept: RFC 5321 local part 64 + @ + 255 */

struct rcptset;

struct rcptset *rcptset_new(void);            /* empty, open for rcptset_add; caller frees */
/* Drop one reference (the last frees); NULL-safe; sets *s = NULL. */
void rcptset_free(struct rcptset **s);
/* One more holder of a frozen set (a snapshot built from an unchanged user base shares the
 * previous one's set); returns s. */
struct rcptset *rcptset_ref(struct rcptset *s);
/* Add one address (len bytes, lower-cased on the way in; a trailing dot on the domain is
 * dropped). 0 added or already there, -1 refused: empty, no '@', over RCPTSET_ADDR_MAX, or
 * holding a NUL or control byte. Only before rcptset_freeze. */
int rcptset_add(struct rcptset *s, const char *addr, size_t len);
/* Build the lookup table; after this the set is read-only and may be shared by threads. */
void rcptset_freeze(struct rcptset *s);
/* Is addr (any case; a trailing dot on the domain ignored) in the set? False for anything
 * rcptset_add would refuse. Only after rcptset_freeze. */
bool rcptset_has(const struct rcptset *s, const char *addr);
size_t rcptset_count(const struct rcptset *s);   /* distinct addresses */
size_t rcptset_bytes(const struct rcptset *s);   /* heap held: table, strings and the struct */
#endif
