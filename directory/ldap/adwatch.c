/* adwatch: change detection for the Active Directory profile (docs/ad-profile.md). AD has no
 * RFC 4533 sync and Samba no DirSync we could rely on, but every write moves the DC's update
 * sequence number: the root DSE's highestCommittedUSN is the version ("usn:<N>", the same
 * string adload.c stamps on a snapshot) and is polled every directory_ad_poll_ms. On top of
 * that, the AD change-notification control (LDAP_SERVER_NOTIFICATION_OID,
 * 1.2.840.113556.1.4.528: a persistent search that returns an entry each time one in its
 * scope changes) watches the configuration naming context, so a connector or descriptor
 * change is seen within milliseconds; a server that refuses the control leaves the poll alone.
 * Users and groups (domain NC) are read at AUTH time and only the recipient set depends on
 * them: the poll covers it. Runs on ldapsync's thread (ldapsync.c calls adwatch_run). */
#include <lber.h>
#include <ldap.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "directory/ldap/ldapdir-private.h"
#include "directory/ldap/ldapdir.h"
#include "directory/base/util.h"

#define OID_NOTIFY "1.2.840.113556.1.4.528"

/* The notification search on base (subtree, as AD allows at a naming context's head). */
static int notify_start(LDAP *ld, const char *base, int *msgid)
{
    LDAPControl ctrl = {OID_NOTIFY, {0, NULL}, 1}, *ctrls[] = {&ctrl, NULL};
    char *attrs[] = {"1.1", NULL};
    return ldap_search_ext(ld, base, LDAP_SCOPE_SUBTREE, "(objectClass=*)", attrs, 0, ctrls,
                           NULL, NULL, 0, msgid);
}

/* Messages already there for msgid: 1 = a change, 0 = none, -1 = the search ended. */
static int notify_drain(LDAP *ld, int msgid)
{
    struct timeval zero = {0, 0};
    int got = 0;
    for (;;) {
        LDAPMessage *m = NULL;
        int t = ldap_result(ld, msgid, LDAP_MSG_ONE, &zero, &m);
        if (t == 0)
            return got;
        if (t < 0 || t == LDAP_RES_SEARCH_RESULT) {
            ldap_msgfree(m);
            return -1;
        }
        got = 1;
        ldap_msgfree(m);
    }
}

int adwatch_run(struct ldapdir *d, const struct rn_bootstrap *b, int stop_fd,
                void (*version)(void *arg, const char *v), void *arg, char *why, size_t len)
{
    LDAP *ld = ldapdir_handle(d);
    char *config = addir_rootdse(d, "configurationNamingContext");
    if (!config)
        return rn_err(why, len, "root DSE: no configurationNamingContext");
    int msgid = -1, fd = -1;
    bool notify = notify_start(ld, config, &msgid) == LDAP_SUCCESS &&
                  ldap_get_option(ld, LDAP_OPT_DESC, &fd) == LDAP_OPT_SUCCESS && fd >= 0;
    free(config);
    unsigned poll_ms = b->directory_ad_poll_ms ? b->directory_ad_poll_ms : 1000;
    for (;;) {
        char *v = addir_version_read(d);
        if (!v)
            return rn_err(why, len, "highestCommittedUSN: unreadable");
        version(arg, v);
        free(v);
        struct timespec start;
        clock_gettime(CLOCK_MONOTONIC, &start);
        for (;;) {
            if (notify) {
                int r = notify_drain(ld, msgid);
                if (r < 0)
                    notify = false;      /* refused or ended: the poll goes on alone */
                else if (r > 0)
                    break;
            }
            struct timespec now;
            clock_gettime(CLOCK_MONOTONIC, &now);
            long spent = (now.tv_sec - start.tv_sec) * 1000 +
                         (now.tv_nsec - start.tv_nsec) / 1000000;
            if (spent >= (long)poll_ms)
                break;
            struct pollfd p[2] = {{stop_fd, POLLIN, 0}, {notify ? fd : -1, POLLIN, 0}};
            int n = poll(p, 2, (int)((long)poll_ms - spent));
            if (n > 0 && p[0].revents)
                return 0;
        }
    }
}
