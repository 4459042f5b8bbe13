/* dirconf: how every relayctl verb finds and reaches the directory. The bootstrap file
 * (--config FILE, else $RELAYNODE_CONFIG, else defaults only) is read first; then --uri,
 * --bind-dn, --password-file, --base and --node override its keys, in the order given.
 * Errors are returned in err (the verb prints them and exits 2). */
#ifndef RN_DIRCONF_H
#define RN_DIRCONF_H
#include <stddef.h>
#include "directory/bootstrap.h"
#include "directory/ldap/ldapdir.h"

struct dirconf {
    struct rn_bootstrap boot;   /* valid after dirconf_finish; owned */
    char *config;               /* --config value (not owned: points into argv) */
    const char **keys, **values; size_t noverrides;   /* arrays owned; strings are argv's */
};

/* One line per option, for a verb's --help. */
extern const char dirconf_usage[];

void dirconf_init(struct dirconf *dc);
/* If argv[*i] is a directory option ("--uri X" or "--uri=X"), record it, advance *i past its
 * value and return 1; 0 when it is not ours; -1 (err set) when its value is missing. */
int dirconf_option(struct dirconf *dc, int argc, char **argv, int *i, char *err, size_t errlen);
/* Load the bootstrap file, apply the overrides. -1 with err ("file:line: reason"). */
int dirconf_finish(struct dirconf *dc, char *err, size_t errlen);
/* ldapdir_open with the finished bootstrap (see ldapdir.h for the results). */
enum dir_result dirconf_connect(struct dirconf *dc, struct ldapdir **out, char *err,
                                size_t errlen);
void dirconf_clear(struct dirconf *dc);
#endif
