/* ldapbind: password verification for SMTP AUTH (issue #4) by binding to the directory as
 * the user, so the directory applies its own password policy and no hash ever leaves it.
 * Each check has its own connection: a bind changes the connection's identity, and the
 * service connection must stay the service. Blocking: the node calls it on a worker. */
#include <ldap.h>
#include <string.h>

#include "directory/ldap/ldapdir.h"
#include "directory/ldap/ldapdir-private.h"
#include "directory/base/util.h"

#define PASSWORD_MAX 1024

enum dir_result ldapdir_check_password(const struct rn_bootstrap *b, const char *dn,
                                       const char *password, size_t pwlen, char *err,
                                       size_t errlen)
{
    if (pwlen == 0) {
        rn_err(err, errlen, "%s: empty password refused", dn);
        return DIR_NOTFOUND;
    }
    if (pwlen > PASSWORD_MAX || memchr(password, '\0', pwlen)) {
        rn_err(err, errlen, "%s: password refused (length or NUL)", dn);
        return DIR_NOTFOUND;
    }
    LDAP *ld = NULL;
    if (ldapdir_connect(b, &ld, err, errlen) != DIR_FOUND)
        return DIR_TEMPFAIL;      /* no bind in clear in its place: AUTH answers 454 */
    struct berval cred = {pwlen, (char *)password};
    int rc = ldap_sasl_bind_s(ld, dn, LDAP_SASL_SIMPLE, &cred, NULL, NULL, NULL);
    enum dir_result r;
    switch (rc) {
    case LDAP_SUCCESS:
        r = DIR_FOUND;
        break;
    case LDAP_INVALID_CREDENTIALS: case LDAP_INAPPROPRIATE_AUTH: case LDAP_NO_SUCH_OBJECT:
    case LDAP_UNWILLING_TO_PERFORM: case LDAP_INVALID_DN_SYNTAX: case LDAP_CONSTRAINT_VIOLATION:
        rn_err(err, errlen, "bind as %s: %s", dn, ldap_err2string(rc));
        r = DIR_NOTFOUND;
        break;
    default:
        rn_err(err, errlen, "bind as %s: %s", dn, ldap_err2string(rc));
        r = DIR_TEMPFAIL;
        break;
    }
    ldap_unbind_ext_s(ld, NULL, NULL);
    return r;
}
