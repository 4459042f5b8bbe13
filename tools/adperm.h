/* adperm: `relayctl permission add|remove|get` on the Active Directory profile
 * (directory_profile = ad): Add-ADPermission / Remove-ADPermission / Get-ADPermission on a
 * receive connector's nTSecurityDescriptor, with the command line and output of the relay
 * profile (permission.c). Exit codes: 0 done (also: the ACE was already there / already
 * absent), 1 refused (unknown connector or principal, a right the directory lacks, a write
 * the server refused), 2 usage or connection error, 3 a concurrent writer changed the
 * descriptor (ADPERM_EXIT_RACE; nothing was overwritten, or the message says what to check). */
#ifndef RN_ADPERM_H
#define RN_ADPERM_H
#include <stdbool.h>
#include "tools/admin.h"

#define ADPERM_EXIT_RACE 3

struct adperm_args {
    const char *sub;          /* "add", "remove" or "get" */
    const char *connector;    /* the connector's cn */
    const char *user;         /* the principal (NULL for get without --user) */
    const char *rights;       /* comma-separated right names (add, remove) */
    bool deny;
};

/* Whether the bootstrap relayctl would use (a's --config / $RELAYNODE_CONFIG and overrides)
 * says directory_profile = ad. A bootstrap that does not load is not AD here: the relay path
 * then reports its error. */
bool adperm_profile_ad(const struct admin *a);
/* Run the verb against AD with a's directory options; returns the exit code (messages
 * printed). */
int adperm_run(struct admin *a, const struct adperm_args *p);
#endif
