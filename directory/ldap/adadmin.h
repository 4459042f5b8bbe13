/* adadmin: relayctl's reads and writes on Active Directory (directory_profile = ad) for
 * `relayctl permission`: the naming contexts, an object by class and cn, the extended rights
 * of CN=Extended-Rights, a principal's objectSid, and a connector's nTSecurityDescriptor read
 * and written with the SD flags control (DACL only, so the owner, group and SACL are neither
 * read nor touched). Blocking calls on the connection ldapdir_open made, meant for tools.
 * Errors are DIR_* results (ldapdir.h) with err filled; nothing is logged. Every value spliced
 * into a filter is escaped (RFC 4515). */
#ifndef RN_ADADMIN_H
#define RN_ADADMIN_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "directory/ldap/ldapdir.h"
#include "directory/secdesc.h"

/* What the root DSE says: the configuration and default naming contexts (owned), the domain's
 * NetBIOS name (its crossRef in CN=Partitions; owned, may be NULL), and whether the server
 * lists the RFC 4528 assertion control (Samba 4 does not). */
struct adadmin_root {
    char *config_nc, *default_nc, *netbios;
    bool assertion;
};
enum dir_result adadmin_root_read(struct ldapdir *d, struct adadmin_root *out, char *err,
                                  size_t errlen);
void adadmin_root_clear(struct adadmin_root *r);

/* The DN of the one object of class oc whose cn is name (case-insensitive, as AD compares),
 * in base's subtree. DIR_NOTFOUND when there is none; DIR_FAIL when more than one matches.
 * Caller frees *dn. */
enum dir_result adadmin_find_cn(struct ldapdir *d, const char *base, const char *oc,
                                const char *name, char **dn, char *err, size_t errlen);

/* A controlAccessRight of CN=Extended-Rights,<config_nc>: its cn and rightsGuid. */
struct adadmin_right { char *name; struct sd_guid guid; };
/* Every controlAccessRight with a well-formed rightsGuid (others are left out: they can
 * name no ACE). Caller adadmin_rights_free()s. */
enum dir_result adadmin_rights_read(struct ldapdir *d, const char *config_nc,
                                    struct adadmin_right **out, size_t *n, char *err,
                                    size_t errlen);
void adadmin_rights_free(struct adadmin_right **r, size_t n);

/* The objectSid of the entry dn. DIR_NOTFOUND when dn does not exist or has no SID. */
enum dir_result adadmin_sid_of_dn(struct ldapdir *d, const char *dn, struct sd_sid *out,
                                  char *err, size_t errlen);
/* The security principal whose sAMAccountName or userPrincipalName is name, under base:
 * its objectSid and DN (caller frees *dn; dn may be NULL). DIR_NOTFOUND when none, DIR_FAIL
 * when ambiguous. */
enum dir_result adadmin_sid_of_account(struct ldapdir *d, const char *base, const char *name,
                                       struct sd_sid *out, char **dn, char *err, size_t errlen);
/* The sAMAccountName of the object whose objectSid is sid, under base (caller frees *sam).
 * DIR_NOTFOUND when no object holds it. */
enum dir_result adadmin_account_of_sid(struct ldapdir *d, const char *base,
                                       const struct sd_sid *sid, char **sam, char *err,
                                       size_t errlen);

/* A descriptor as read: the DACL-only self-relative bytes (owned), the entry's uSNChanged
 * (decimal digits; "" when absent or not a number),
 * and the version of its nTSecurityDescriptor in replPropertyMetaData (the per-attribute
 * counter every originating write to the descriptor increments; has_version false when the
 * server does not return the metadata). */
struct adadmin_sd {
    unsigned char *bytes;
    size_t len;
    char usn[24];
    uint32_t version;
    bool has_version;
};
/* Read dn's nTSecurityDescriptor with the SD flags control (DACL). DIR_NOTFOUND when dn does
 * not exist or no descriptor is readable. Caller adadmin_sd_clear()s. */
enum dir_result adadmin_sd_read(struct ldapdir *d, const char *dn, struct adadmin_sd *out,
                                char *err, size_t errlen);
void adadmin_sd_clear(struct adadmin_sd *sd);

/* Replace dn's DACL with the DACL-only descriptor sd (SD flags control = DACL, critical).
 * assert_usn non-empty adds a critical RFC 4528 assertion (uSNChanged=<assert_usn>), for
 * servers that list the control. */
enum adadmin_write { ADW_DONE, ADW_CONFLICT, ADW_TEMPFAIL, ADW_FAIL };
enum adadmin_write adadmin_sd_write(struct ldapdir *d, const char *dn, const unsigned char *sd,
                                    size_t len, const char *assert_usn, char *err,
                                    size_t errlen);

/* The SD flags control's OID and BER value (SEQUENCE { INTEGER 4 }: DACL_SECURITY_INFORMATION),
 * for LDIF output. */
#define ADADMIN_SD_FLAGS_OID "1.2.840.113556.1.4.801"
#define ADADMIN_SD_FLAGS_B64 "MAMCAQQ="
#endif
