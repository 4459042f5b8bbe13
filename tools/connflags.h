/* connflags: the mapping between relayctl connector's command line and a receive connector
 * entry. Every connattr.c attribute is a flag named after its Exchange property
 * (MaxMessageSize -> --max-message-size); new and set parse them here and apply them to the
 * entry. Also the entry's relayAce values as ACEs, and how get and list show an attribute. */
#ifndef RN_CONNFLAGS_H
#define RN_CONNFLAGS_H
#include <stdbool.h>
#include <stddef.h>
#include <getopt.h>
#include "directory/ace.h"
#include "directory/connattr.h"
#include "directory/model.h"
#include "tools/admin.h"

#define CONNFLAGS_MAX 64             /* attribute flags (connattr_table rows) at most */

/* What new or set was given. values[i], nvalues[i] and set[i] belong to connattr_table[i]. */
struct connflags {
    char names[CONNFLAGS_MAX][48];   /* the flag of each attribute, without "--" */
    struct option opts[CONNFLAGS_MAX];
    char **values[CONNFLAGS_MAX]; size_t nvalues[CONNFLAGS_MAX]; bool set[CONNFLAGS_MAX];
    const char *usage, *groups;      /* --usage (new only), --permission-groups; argv's */
    bool site;                       /* --site (new only) */
};

/* Parse `connector new` (is_new) or `connector set` arguments; *name gets the positional
 * NAME. 0; -1 after printing --help; 2 after printing a usage error. Always
 * connflags_clear() afterwards. */
int connflags_parse(struct admin *a, struct connflags *f, int argc, char **argv, bool is_new,
                    const char **name);
void connflags_clear(struct connflags *f);
/* Whether any attribute flag or --permission-groups was given. */
bool connflags_any(const struct connflags *f);
/* Set every attribute given on e ("" given: the attribute removed, back to its default). */
void connflags_apply(const struct connflags *f, struct dir_entry *e);

/* Replace e's relayAce values with aces[0..n) in canonical form. */
void connflags_set_aces(struct dir_entry *e, const struct ace *aces, size_t n);
/* e's relayAce values as ACEs (*aces allocated, caller connflags_free_aces()). A malformed
 * value is skipped with skip_bad, else -1 with the value and reason in err. */
int connflags_parse_aces(const struct dir_entry *e, struct ace **aces, size_t *n, char *err,
                         size_t errlen, bool skip_bad);
void connflags_free_aces(struct ace *aces, size_t n);

/* What get and list show for an attribute: the directory's values joined with ", ", or the
 * default the node assumes when it is absent (connattr.c). Caller frees. */
char *connflags_display(const struct dir_entry *e, const struct connattr *ca);
/* The PermissionGroups e's ACEs show as (malformed values skipped), Custom included. */
void connflags_groups(const struct dir_entry *e, char *buf, size_t len);
#endif
