/* ace: one access-control entry as an admin writes it in the directory (attribute relayAce),
 * and DN canonicalisation for matching principals. Pure.
 *
 * Grammar (schema/README.md documents it for admins):
 *     ace       = action ";" SP? principal ";" SP? right *( "," SP? right )
 *     action    = "allow" / "deny"                       ; case-insensitive
 *     principal = well-known name / well-known SID / SID / DN
 *                                                        ; everything between the first and
 *                                                        ; the last ";", trimmed
 * A SID that is not a well-known one ("S-1-5-21-...-1107", an AD account or group, as the AD
 * profile reads them from a security descriptor) is a SID principal, kept canonical.
 *     right     = ms-Exch-* name / rightsGuid            ; see rights.h
 * Canonical form: "allow; NT AUTHORITY\ANONYMOUS LOGON; ms-Exch-SMTP-Submit, ms-Exch-..."
 * (lowercase action, canonical principal name, the canonical SID ("S-1-..." with decimal
 * numbers) or the DN as written, canonical right names in
 * bit order). ace_format(ace_parse(s)) is canonical, and canonical strings round-trip. */
#ifndef RN_ACE_H
#define RN_ACE_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ACE_MAXLEN 4096

struct ace {
    bool deny;
    int wk;          /* enum wk_principal, or -1 when the principal is a DN or a SID */
    char *dn;        /* the DN as written (trimmed); owned; NULL for well-known and SID ones */
    char *dn_norm;   /* canonical DN for matching (dn_normalize); owned; NULL if dn is */
    char *sid;       /* SID principal: canonical "S-1-..." (sd_sid_format); owned; else NULL */
    uint32_t rights; /* non-empty set of R_* bits */
};

/* Parse one value. On success *out owns its strings (ace_clear frees them). On error -1 and
 * err says what is wrong ("unknown right 'x'", "empty principal", ...). */
int ace_parse(const char *s, struct ace *out, char *err, size_t errlen);
size_t ace_format(const struct ace *a, char *buf, size_t len);
void ace_clear(struct ace *a);
void ace_copy(struct ace *dst, const struct ace *src);   /* deep copy; dst owns */

/* Canonical form of an RFC 4514 DN for equality: attribute types and values lowercased,
 * insignificant spaces removed, escapes resolved and re-escaped uniformly. -1 if the string
 * is not a DN (needs at least one type=value). */
int dn_normalize(const char *dn, char *out, size_t outlen, char *err, size_t errlen);
#endif
