/* rights: the Exchange extended rights (docs/permission-model.md §2.1), the well-known security
 * principals (§1.2, §7.2) and the permission groups as macros over ACEs (§1.2, §1.4-1.6).
 * Pure tables and lookups. Right values are Exchange's internal Permission bits. */
#ifndef RN_RIGHTS_H
#define RN_RIGHTS_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum {
    R_SUBMIT                 = 0x1,
    R_SUBMIT_FOR_MLS         = 0x2,
    R_ACCEPT_ANY_RECIPIENT   = 0x4,
    R_ACCEPT_AUTH_FLAG       = 0x8,
    R_ACCEPT_ANY_SENDER      = 0x10,
    R_ACCEPT_AUTHDOM_SENDER  = 0x20,
    R_BYPASS_ANTISPAM        = 0x40,
    R_BYPASS_SIZE_LIMIT      = 0x80,
    R_SEND_EXCH50            = 0x100,
    R_ACCEPT_EXCH50          = 0x200,
    R_ACCEPT_ROUTING_HEADERS = 0x400,
    R_ACCEPT_FOREST_HEADERS  = 0x800,
    R_ACCEPT_ORG_HEADERS     = 0x1000,
    R_SEND_ROUTING_HEADERS   = 0x2000,
    R_SEND_FOREST_HEADERS    = 0x4000,
    R_SEND_ORG_HEADERS       = 0x8000,
    R_SEND_AS                = 0x10000,
    R_SEND_XSHADOW           = 0x20000,
    R_ACCEPT_XSHADOW         = 0x40000,
    R_ACCEPT_XPROXYFROM      = 0x80000,
    R_ACCEPT_XSESSIONPARAMS  = 0x100000,
    R_XMC_ADRECIPIENTCACHE   = 0x200000,
    R_XMC_EXTENDEDPROPERTIES = 0x400000,
    R_XMC_FASTINDEX          = 0x800000,
    R_ACCEPT_XATTR           = 0x1000000,
    R_ACCEPT_XSYSPROBE       = 0x2000000,
};
#define R_ALL        0x3FFFFFFu
#define RIGHT_COUNT  26

struct right_info {
    uint32_t bit;
    const char *name;      /* canonical CN, e.g. "ms-Exch-SMTP-Submit" */
    const char *guid;      /* rightsGuid, lowercase */
    const char *internal;  /* Exchange's internal name, e.g. "SMTPSubmit" (protocol log) */
};

/* Look up a right by CN (case-insensitive; the seed article's
 * "ms-Exch-SMTP-Accept-Authoritative-Domain" and the docs' "ms-Exch-Accept-Exch50" and
 * "ms-Exch-SMTP-Send-XMessageContext-*" are aliases) or by rightsGuid. NULL if unknown. */
const struct right_info *right_lookup(const char *name_or_guid);
const struct right_info *right_by_bit(uint32_t bit);     /* exactly one bit set, else NULL */
const struct right_info *right_by_index(unsigned i);     /* 0..RIGHT_COUNT-1, bit order */
/* Write the names of the set bits, separated by sep, in bit order ("None" when empty).
 * internal=true uses the internal names (Exchange's "Set Session Permissions" line). */
size_t rights_format(uint32_t mask, const char *sep, bool internal, char *buf, size_t len);

/* Well-known principals. A session token holds a set of these as a bitmask (1u << id). */
enum wk_principal {
    WK_ANONYMOUS = 0,          /* NT AUTHORITY\ANONYMOUS LOGON, S-1-5-7 */
    WK_AUTHENTICATED_USERS,    /* NT AUTHORITY\Authenticated Users, S-1-5-11 */
    WK_EVERYONE,               /* Everyone, S-1-1-0 */
    WK_EXTERNALLY_SECURED,     /* MS Exchange\Externally Secured Servers, ...-23 */
    WK_HUB_TRANSPORT,          /* MS Exchange\Hub Transport Servers, ...-21 */
    WK_EDGE_TRANSPORT,         /* MS Exchange\Edge Transport Servers, ...-22 */
    WK_PARTNER,                /* MS Exchange\Partner Servers, ...-10 */
    WK_EXCHANGE_SERVERS,       /* <org>\Exchange Servers (per-forest group; no fixed SID) */
    WK_LEGACY_INTEROP,         /* <org>\ExchangeLegacyInterop (per-forest group; no fixed SID) */
    WK_COUNT
};

struct principal_info {
    int id;                    /* enum wk_principal */
    const char *name;          /* canonical name, e.g. "NT AUTHORITY\\ANONYMOUS LOGON" */
    const char *sid;           /* NULL for the per-forest groups */
};

/* By canonical name (case-insensitive; "Anonymous Logon"-style short forms without the
 * authority prefix are accepted too) or by SID. NULL if unknown. */
const struct principal_info *principal_lookup(const char *name_or_sid);
const struct principal_info *principal_by_id(int id);

/* Permission groups (flags, §1.1). GROUP_CUSTOM is derived only, never settable. */
enum {
    GROUP_NONE = 0, GROUP_ANONYMOUS = 1, GROUP_EXCHANGE_USERS = 2, GROUP_EXCHANGE_SERVERS = 4,
    GROUP_LEGACY_SERVERS = 8, GROUP_PARTNERS = 16, GROUP_CUSTOM = 32
};
#define GROUP_SETTABLE 31u

/* One (principal, rights) pair a group grants or denies (§1.2). */
struct group_grant { int principal; uint32_t rights; bool deny; };
/* The pairs group `g` (exactly one bit) expands to; returns how many were written to out
 * (at most max). */
size_t group_grants(unsigned g, struct group_grant *out, size_t max);
/* Parse "AnonymousUsers, ExchangeServers" (comma or space separated, case-insensitive,
 * "None" alone allowed; "Custom" refused). -1 with a message on error. */
int groups_parse(const char *s, unsigned *out, char *err, size_t errlen);
size_t groups_format(unsigned groups, char *buf, size_t len);   /* "None" when 0 */
#endif
