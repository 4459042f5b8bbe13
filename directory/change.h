/* change: LDAP entries as plain values and change sets (add entry; modify with add, delete
 * or replace of values; delete entry), with their LDIF rendering (RFC 2849), so relayctl can
 * either apply a change through libldap (ldapadmin.h) or print exactly what `ldapmodify`
 * would need to reach the same state. Pure: no I/O, no libldap. */
#ifndef RN_CHANGE_H
#define RN_CHANGE_H
#include <stdbool.h>
#include <stddef.h>
#include "directory/entry.h"

enum change_kind { CHANGE_ADD, CHANGE_MODIFY, CHANGE_DELETE };
enum change_modop { MOD_ADD, MOD_DELETE, MOD_REPLACE };

/* One modification of a modify change. A delete without values removes the attribute; a
 * replace without values removes it if present (RFC 4511 §4.6). */
struct change_mod {
    enum change_modop op;
    struct dir_attr attr;         /* owned */
};

struct change {
    enum change_kind kind;
    char *dn;                     /* owned */
    struct dir_attr *attrs; size_t nattrs;      /* CHANGE_ADD: the new entry's attributes */
    struct change_mod *mods; size_t nmods;      /* CHANGE_MODIFY: in order */
};

/* An ordered list of changes, applied (or printed) first to last. */
struct changeset {
    struct change *changes; size_t nchanges;    /* owned */
};

struct changeset *changeset_new(void);           /* empty; caller changeset_free()s */
void changeset_free(struct changeset **cs);      /* sets *cs = NULL */
/* Add an entry with e's attributes (copied). */
void changeset_add_entry(struct changeset *cs, const struct dir_entry *e);
void changeset_delete_entry(struct changeset *cs, const char *dn);
/* Append a modification to the modify change for dn (made if the last change is not one). */
void changeset_modify(struct changeset *cs, const char *dn, enum change_modop op,
                      const char *attr, const char *const *values, size_t n);
/* The modify change that turns old into new (same DN): a replace for each changed attribute,
 * but value-level delete/add for attributes named in `by_value` (NULL-terminated, e.g.
 * relayAce) so concurrent edits of other values survive. Nothing is added when equal.
 * Returns the number of modifications added. */
size_t changeset_diff(struct changeset *cs, const struct dir_entry *old_e,
                      const struct dir_entry *new_e, const char *const *by_value);

/* RFC 2849 LDIF of the change records (version line omitted, records separated by blank
 * lines, lines folded at 76 columns, unsafe values base64). Caller frees. */
char *changeset_ldif(const struct changeset *cs);
/* True when a value may be written as a SAFE-STRING (RFC 2849 §3: no NUL, CR, LF, only
 * 7-bit, not starting with space, ':' or '<'); we also base64 a trailing space, which the
 * RFC recommends, so ldapmodify cannot strip it. */
bool ldif_value_safe(const char *v, size_t len);
#endif
