/* secdesc: a Windows self-relative security descriptor (MS-DTYP 2.4.6), its DACL parsed,
 * turned into model ACEs (ace.h), edited and written back. This is how the AD profile reads a
 * connector's nTSecurityDescriptor (fetched with the SD flags control = DACL, so the owner,
 * group and SACL offsets are 0) and how `relayctl permission add|remove` edits it. Pure: no
 * I/O, no globals.
 *
 * Parsing is strict: every offset and size is checked against the buffer and the ACL size,
 * an ACE count that cannot fit is refused, a SID has at most 15 sub-authorities, an ACL at
 * most SD_MAX_ACES ACEs. Any inconsistency is -1 with an error ("dacl: ace 3: size 2 < 8")
 * and nothing returned. ACE types other than ACCESS_ALLOWED (0x00), ACCESS_DENIED (0x01),
 * ACCESS_ALLOWED_OBJECT (0x05) and ACCESS_DENIED_OBJECT (0x06) are kept with their raw bytes
 * (their mask, and the SID when their layout is one of the four, are decoded when they fit).
 *
 * Model rules (secdesc_aces; docs copy this table):
 *   | ACE                                                   | gives                         |
 *   |-------------------------------------------------------|-------------------------------|
 *   | INHERIT_ONLY (flag 0x08)                              | nothing (not for this object) |
 *   | INHERITED_ACE (flag 0x10)                             | the same as an explicit ACE   |
 *   | object ACE, CONTROL_ACCESS (or GENERIC_ALL),          | that right's bit              |
 *   |   ObjectType in the rights map                        |                               |
 *   | object ACE, ObjectType not in the map                 | nothing                       |
 *   | object ACE without ObjectType, CONTROL_ACCESS (0x100) | every right (R_ALL)           |
 *   |   or GENERIC_ALL (0x10000000)                         |                               |
 *   | plain ACE (0x00/0x01), CONTROL_ACCESS or GENERIC_ALL  | every right (R_ALL)           |
 *   | mask without CONTROL_ACCESS and GENERIC_ALL           | nothing                       |
 *   | InheritedObjectType present and != object_class      | allow: nothing; deny: applied |
 *   | unknown type, allow-like (0x09, 0x0B, audit, ...)     | nothing                       |
 *   | unknown type, deny-like (0x0A, 0x0C callback deny)    | a deny of what its mask and   |
 *   |                                                       | object type cover             |
 * Unknown never widens: what is not understood is dropped from allows and kept in denies.
 * Order: deny wins whatever the order (acl_eval). Windows evaluates a canonical DACL in order,
 * so an explicit allow placed before an inherited deny wins there; Relaynode is stricter (the
 * inherited deny still applies). Principals: a well-known SID (principal_lookup, rights.h) is
 * that principal; a SID in the sids map is its WK_* (the per-forest Exchange groups); any
 * other SID is a SID principal (struct ace.sid). ACEs with the same (deny, principal) merge
 * into one model ACE holding the OR of their bits; the order is that of first appearance. */
#ifndef RN_SECDESC_H
#define RN_SECDESC_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "directory/ace.h"

#define SD_SID_STRMAX 192
#define SD_MAX_ACES 4096           /* more than any real connector holds; refused above */

/* ACE types, flags and masks (MS-DTYP 2.4.4.1, 2.4.3). */
enum {
    SD_ACE_ALLOWED = 0x00, SD_ACE_DENIED = 0x01,
    SD_ACE_ALLOWED_OBJECT = 0x05, SD_ACE_DENIED_OBJECT = 0x06,
};
#define SD_FLAG_CONTAINER_INHERIT 0x02
#define SD_FLAG_INHERIT_ONLY      0x08
#define SD_FLAG_INHERITED         0x10
#define SD_OBJECT_TYPE_PRESENT    0x1
#define SD_INHERITED_TYPE_PRESENT 0x2
#define SD_CONTROL_ACCESS         0x100u
#define SD_GENERIC_ALL            0x10000000u
#define SD_CTRL_DACL_PRESENT      0x0004u
#define SD_CTRL_SELF_RELATIVE     0x8000u

struct sd_guid { unsigned char b[16]; };            /* wire (mixed-endian) order */
struct sd_sid  { uint8_t rev, nsub; uint8_t auth[6]; uint32_t sub[15]; };
struct sd_ace  {
    uint8_t type, flags;
    uint32_t mask;                  /* 0 when the type's layout is unknown and too short */
    uint32_t objflags;              /* object ACEs: SD_OBJECT_TYPE_PRESENT | ..._INHERITED_... */
    struct sd_guid object_type, inherited_type;
    struct sd_sid sid;              /* nsub = 0, rev = 0 when the type carries no known SID */
    unsigned char *raw;             /* the ACE's bytes as read or built; owned */
    size_t rawlen;
};
struct secdesc {
    uint8_t sbz1;                   /* kept as read, so a descriptor round-trips */
    uint16_t control;
    bool dacl_present;              /* false: no DACL, or a NULL one (DACL_PRESENT, offset 0).
                                       Windows grants everyone everything there; secdesc_aces
                                       gives nothing (fail closed) */
    uint8_t acl_rev;                /* 2, or 4 when object ACEs are present */
    struct sd_ace *aces;            /* owned */
    size_t naces;
};

/* Parse a self-relative descriptor. On success *out owns its ACEs (secdesc_clear). On error
 * -1, err says where and why, and *out is empty. */
int secdesc_parse(const void *buf, size_t len, struct secdesc *out, char *err, size_t errlen);
void secdesc_clear(struct secdesc *sd);             /* frees; sd may be reused */
/* Deep copy; dst owns. */
void secdesc_copy(struct secdesc *dst, const struct secdesc *src);

/* SIDs: "S-1-5-7" form (MS-DTYP 2.4.2.1: authority in decimal below 2^32, else 0x hex).
 * format returns the length (snprintf-style); parse and from_bytes return -1 if not a SID
 * (more than 15 sub-authorities, a number out of range, bytes too short or too long). */
size_t sd_sid_format(const struct sd_sid *s, char *buf, size_t len);
int sd_sid_parse(const char *s, struct sd_sid *out);
int sd_sid_from_bytes(const void *p, size_t len, struct sd_sid *out);  /* objectSid, tokenGroups */
size_t sd_sid_size(const struct sd_sid *s);        /* bytes on the wire: 8 + 4 * nsub */
bool sd_sid_equal(const struct sd_sid *a, const struct sd_sid *b);
/* GUIDs: lowercase "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx" (like rightsGuid); the first three
 * fields are little-endian on the wire. from_bytes needs exactly 16 bytes. */
void sd_guid_format(const struct sd_guid *g, char out[37]);
int sd_guid_parse(const char *s, struct sd_guid *out);
int sd_guid_from_bytes(const void *p, size_t len, struct sd_guid *out);  /* schemaIDGUID */

/* rightsGuid -> R_* bit, built by the loader from the controlAccessRight objects it reads. */
struct sd_rightmap { struct sd_guid guid; uint32_t bit; };
/* Per-forest groups' SIDs -> WK_* (Exchange Servers, ExchangeLegacyInterop). */
struct sd_sidmap   { char sid[SD_SID_STRMAX]; int wk; };

/* The model ACEs of sd's DACL by the rules above; object_class (the object's schemaIDGUID)
 * may be NULL (then every InheritedObjectType differs). *out is malloc'd (NULL when none);
 * caller frees each with ace_clear, then the array. -1 only if a sids map entry is not a SID
 * or its wk is out of range. */
int secdesc_aces(const struct secdesc *sd, const struct sd_rightmap *rights, size_t nrights,
                 const struct sd_sidmap *sids, size_t nsids, const struct sd_guid *object_class,
                 struct ace **out, size_t *nout, char *err, size_t errlen);

/* Writer (relayctl permission add/remove on AD): an explicit object ACE, type 0x05 (allow)
 * or 0x06 (deny), flags CONTAINER_INHERIT as Exchange writes them, mask CONTROL_ACCESS,
 * ObjectType = right. An existing ACE matches when it is explicit, of that type, mask
 * CONTROL_ACCESS, ObjectType = right (and no InheritedObjectType), trustee equal, whatever
 * its inheritance flags. add: 0 added, 1 already present (a matching ACE, not INHERIT_ONLY),
 * -1 if the DACL is full (SD_MAX_ACES) or trustee is not a SID. remove: 0 removed (every
 * matching ACE), 1 none present; inherited ACEs are never removed. Canonical order is kept:
 * an added deny goes after the explicit denies, an added allow after the explicit allows,
 * both before the inherited ACEs. Adding to a descriptor without a DACL creates one; the
 * ACL revision becomes 4 (ACL_REVISION_DS, needed for object ACEs). */
int secdesc_add_object_ace(struct secdesc *sd, bool deny, const struct sd_sid *trustee,
                           const struct sd_guid *right);
int secdesc_remove_object_ace(struct secdesc *sd, bool deny, const struct sd_sid *trustee,
                              const struct sd_guid *right);
/* A DACL-only self-relative descriptor (what one writes with the SD flags control = DACL):
 * header, then the DACL; owner, group and SACL offsets 0. *out malloc'd, caller frees.
 * ACEs are written from their raw bytes, so an unchanged descriptor round-trips byte for
 * byte. -1 if the DACL would exceed 65535 bytes. */
int secdesc_serialize(const struct secdesc *sd, unsigned char **out, size_t *outlen,
                      char *err, size_t errlen);
#endif
