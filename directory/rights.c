/* rights: the tables behind rights.h. The 26 extended rights with their CN, rightsGuid and
 * Exchange's internal Permission name (docs/permission-model.md §2.1), the well-known principals
 * (§1.2, §7.2) and the permission groups as (principal, rights) pairs (§1.2, Exchange 2013+
 * "full server set" 0x3FC1EFD). Pure lookups; nothing here allocates. */
#include "directory/rights.h"
#include "directory/base/util.h"
#include <string.h>

static const struct right_info rights_table[RIGHT_COUNT] = {
    {R_SUBMIT, "ms-Exch-SMTP-Submit", "a18293f1-0685-4540-aa63-e32df421b3a2", "SMTPSubmit"},
    {R_SUBMIT_FOR_MLS, "ms-Exch-SMTP-Submit-For-MLS", "8fc01282-006d-42b1-81e3-c0b46bed3754",
     "SMTPSubmitForMLS"},
    {R_ACCEPT_ANY_RECIPIENT, "ms-Exch-SMTP-Accept-Any-Recipient",
     "5c82f031-4e4c-4326-88e1-8c4f0cad9de5", "SMTPAcceptAnyRecipient"},
    {R_ACCEPT_AUTH_FLAG, "ms-Exch-SMTP-Accept-Authentication-Flag",
     "1c75aca8-b56b-48b3-a021-858a29fa877b", "SMTPAcceptAuthenticationFlag"},
    {R_ACCEPT_ANY_SENDER, "ms-Exch-SMTP-Accept-Any-Sender", "b857b50b-94a2-4b53-93f6-41cebd2fced0",
     "SMTPAcceptAnySender"},
    {R_ACCEPT_AUTHDOM_SENDER, "ms-Exch-SMTP-Accept-Authoritative-Domain-Sender",
     "c22841f4-96cb-498a-ac02-f9a87c74eb14", "SMTPAcceptAuthoritativeDomainSender"},
    {R_BYPASS_ANTISPAM, "ms-Exch-Bypass-Anti-Spam", "d19299b4-86c2-4c9a-8fa7-acb70c63023a",
     "BypassAntiSpam"},
    {R_BYPASS_SIZE_LIMIT, "ms-Exch-Bypass-Message-Size-Limit",
     "6760cfc5-70f4-4ae8-bc39-9522d86ac69b", "BypassMessageSizeLimit"},
    {R_SEND_EXCH50, "ms-Exch-SMTP-Send-Exch50", "11716db4-9647-4bce-8922-1f99e526cb41",
     "SMTPSendEXCH50"},
    {R_ACCEPT_EXCH50, "ms-Exch-SMTP-Accept-Exch50", "e373fb21-d851-4d15-af23-982f09f2400b",
     "SMTPAcceptEXCH50"},
    {R_ACCEPT_ROUTING_HEADERS, "ms-Exch-Accept-Headers-Routing",
     "04031f4f-7c36-43ea-9b49-4bd0f5f1e6af", "AcceptRoutingHeaders"},
    {R_ACCEPT_FOREST_HEADERS, "ms-Exch-Accept-Headers-Forest",
     "a7a9ea66-e08c-4e23-8fe7-68c40e49c6c0", "AcceptForestHeaders"},
    {R_ACCEPT_ORG_HEADERS, "ms-Exch-Accept-Headers-Organization",
     "c307dccd-6676-4d19-95c8-d1567fab9820", "AcceptOrganizationHeaders"},
    {R_SEND_ROUTING_HEADERS, "ms-Exch-Send-Headers-Routing",
     "eb8c07ad-b5ad-49c3-831e-bc439cca4c2a", "SendRoutingHeaders"},
    {R_SEND_FOREST_HEADERS, "ms-Exch-Send-Headers-Forest", "b3f9f977-552c-4ee6-9781-59280a81417b",
     "SendForestHeaders"},
    {R_SEND_ORG_HEADERS, "ms-Exch-Send-Headers-Organization",
     "2f7d0e23-f951-4ed0-8e71-39b6a22fa298", "SendOrganizationHeaders"},
    {R_SEND_AS, "Send-As", "ab721a54-1e2f-11d0-9819-00aa0040529b", "SendAs"},
    {R_SEND_XSHADOW, "ms-Exch-SMTP-Send-XShadow", "5bc2acab-ad7d-4878-b6cd-3122a47c6a1c",
     "SMTPSendXShadow"},
    {R_ACCEPT_XSHADOW, "ms-Exch-SMTP-Accept-XShadow", "811d004b-e2ed-4024-8953-0f0fb0612e47",
     "SMTPAcceptXShadow"},
    {R_ACCEPT_XPROXYFROM, "ms-Exch-SMTP-Accept-XProxyFrom", "5bee2b72-50d7-49c7-ba66-39a25daa1e92",
     "SMTPAcceptXProxyFrom"},
    {R_ACCEPT_XSESSIONPARAMS, "ms-Exch-SMTP-Accept-XSessionParams",
     "c08e6405-fccb-4c21-9985-2e865bcf15d5", "SMTPAcceptXSessionParams"},
    {R_XMC_ADRECIPIENTCACHE, "ms-Exch-SMTP-Accept-XMessageContext-ADRecipientCache",
     "b938d9df-1f37-41d3-8cdc-f4148f20076d", "SMTPAcceptXMessageContextADRecipientCache"},
    {R_XMC_EXTENDEDPROPERTIES, "ms-Exch-SMTP-Accept-XMessageContext-ExtendedProperties",
     "e1f584b5-11c8-451b-91e8-045c75973912", "SMTPAcceptXMessageContextExtendedProperties"},
    {R_XMC_FASTINDEX, "ms-Exch-SMTP-Accept-XMessageContext-FastIndex",
     "5669b1b6-dca0-429b-8fdb-fc5b07c0f73f", "SMTPAcceptXMessageContextFastIndex"},
    {R_ACCEPT_XATTR, "ms-Exch-SMTP-Accept-XAttr", "c62e96a4-6f25-497b-8d41-70cbd25eaa99",
     "SMTPAcceptXAttr"},
    {R_ACCEPT_XSYSPROBE, "ms-Exch-SMTP-Accept-XSysProbe", "5db60ab1-1ad4-4863-b9be-fbc5b00691a3",
     "SMTPAcceptXSysProbe"},
};

/* Other spellings admins meet (§2.1 notes): the seed article's right without "-Sender" (which
 * does not exist in Exchange, but the article's readers will type it), the 2013 docs'
 * Exch50 name, and the docs' "Send-XMessageContext" names for the three Accept rights. */
static const struct { const char *alias; uint32_t bit; } right_aliases[] = {
    {"ms-Exch-SMTP-Accept-Authoritative-Domain", R_ACCEPT_AUTHDOM_SENDER},
    {"ms-Exch-Accept-Exch50", R_ACCEPT_EXCH50},
    {"ms-Exch-SMTP-Send-XMessageContext-ADRecipientCache", R_XMC_ADRECIPIENTCACHE},
    {"ms-Exch-SMTP-Send-XMessageContext-ExtendedProperties", R_XMC_EXTENDEDPROPERTIES},
    {"ms-Exch-SMTP-Send-XMessageContext-FastIndex", R_XMC_FASTINDEX},
};

/* A GUID as "8-4-4-4-12" hex, optionally in {braces}: compare against the lowercase table
 * form without copying. */
static bool guid_matches(const char *s, const char *guid)
{
    size_t n = strlen(s);
    if (n == 38 && s[0] == '{' && s[37] == '}') {
        s++;
        n = 36;
    }
    return n == 36 && rn_strnieq(s, guid, 36);
}

const struct right_info *right_lookup(const char *name_or_guid)
{
    if (!name_or_guid)
        return NULL;
    for (unsigned i = 0; i < RIGHT_COUNT; i++)
        if (rn_strieq(name_or_guid, rights_table[i].name) ||
            guid_matches(name_or_guid, rights_table[i].guid))
            return &rights_table[i];
    for (size_t i = 0; i < sizeof right_aliases / sizeof right_aliases[0]; i++)
        if (rn_strieq(name_or_guid, right_aliases[i].alias))
            return right_by_bit(right_aliases[i].bit);
    return NULL;
}

const struct right_info *right_by_bit(uint32_t bit)
{
    if (bit == 0 || (bit & (bit - 1)) != 0 || (bit & ~R_ALL) != 0)
        return NULL;
    return &rights_table[__builtin_ctz(bit)];
}

const struct right_info *right_by_index(unsigned i)
{
    return i < RIGHT_COUNT ? &rights_table[i] : NULL;
}

/* snprintf-style appending: *pos counts what would have been written, so callers return
 * the full length and can detect truncation (result >= len). */
static void append(char *buf, size_t len, size_t *pos, const char *s)
{
    size_t n = strlen(s);
    if (*pos < len) {
        size_t room = len - *pos - 1;
        size_t c = n < room ? n : room;
        memcpy(buf + *pos, s, c);
        buf[*pos + c] = '\0';
    }
    *pos += n;
}

size_t rights_format(uint32_t mask, const char *sep, bool internal, char *buf, size_t len)
{
    size_t pos = 0;
    bool first = true;
    if (len)
        buf[0] = '\0';
    for (unsigned i = 0; i < RIGHT_COUNT; i++) {
        if (!(mask & (1u << i)))
            continue;
        if (!first)
            append(buf, len, &pos, sep);
        append(buf, len, &pos, internal ? rights_table[i].internal : rights_table[i].name);
        first = false;
    }
    if (first)
        append(buf, len, &pos, "None");
    return pos;
}

#define EXSID "S-1-9-1419165041-1139599005-3936102811-1022490595-"

static const struct principal_info principals[WK_COUNT] = {
    {WK_ANONYMOUS, "NT AUTHORITY\\ANONYMOUS LOGON", "S-1-5-7"},
    {WK_AUTHENTICATED_USERS, "NT AUTHORITY\\Authenticated Users", "S-1-5-11"},
    {WK_EVERYONE, "Everyone", "S-1-1-0"},
    {WK_EXTERNALLY_SECURED, "MS Exchange\\Externally Secured Servers", EXSID "23"},
    {WK_HUB_TRANSPORT, "MS Exchange\\Hub Transport Servers", EXSID "21"},
    {WK_EDGE_TRANSPORT, "MS Exchange\\Edge Transport Servers", EXSID "22"},
    {WK_PARTNER, "MS Exchange\\Partner Servers", EXSID "10"},
    {WK_EXCHANGE_SERVERS, "MS Exchange\\Exchange Servers", NULL},
    {WK_LEGACY_INTEROP, "MS Exchange\\ExchangeLegacyInterop", NULL},
};

const struct principal_info *principal_lookup(const char *name_or_sid)
{
    if (!name_or_sid || !*name_or_sid)
        return NULL;
    for (int i = 0; i < WK_COUNT; i++) {
        const struct principal_info *p = &principals[i];
        const char *bs = strchr(p->name, '\\');
        if (rn_strieq(name_or_sid, p->name) || (bs && rn_strieq(name_or_sid, bs + 1)) ||
            (p->sid && rn_strieq(name_or_sid, p->sid)))
            return p;
    }
    return NULL;
}

const struct principal_info *principal_by_id(int id)
{
    return id >= 0 && id < WK_COUNT ? &principals[id] : NULL;
}

#define FULL_SERVER_SET 0x3FC1EFDu   /* E15+: §1.2 "full server set" */
#define EXTSEC_SET      0x6FDu

static const struct {
    unsigned group;
    struct group_grant grant;
} group_table[] = {
    {GROUP_ANONYMOUS, {WK_ANONYMOUS, 0x431, false}},
    {GROUP_EXCHANGE_USERS, {WK_AUTHENTICATED_USERS, 0x445, false}},
    {GROUP_EXCHANGE_SERVERS, {WK_EDGE_TRANSPORT, FULL_SERVER_SET, false}},
    {GROUP_EXCHANGE_SERVERS, {WK_EXTERNALLY_SECURED, EXTSEC_SET, false}},
    {GROUP_EXCHANGE_SERVERS, {WK_HUB_TRANSPORT, FULL_SERVER_SET, false}},
    {GROUP_EXCHANGE_SERVERS, {WK_EXCHANGE_SERVERS, FULL_SERVER_SET, false}},
    {GROUP_LEGACY_SERVERS, {WK_LEGACY_INTEROP, EXTSEC_SET, false}},
    {GROUP_LEGACY_SERVERS, {WK_LEGACY_INTEROP, R_ACCEPT_FOREST_HEADERS | R_ACCEPT_ORG_HEADERS, true}},
    {GROUP_PARTNERS, {WK_PARTNER, 0x401, false}},
};

size_t group_grants(unsigned g, struct group_grant *out, size_t max)
{
    size_t n = 0;
    for (size_t i = 0; i < sizeof group_table / sizeof group_table[0] && n < max; i++)
        if (group_table[i].group == g)
            out[n++] = group_table[i].grant;
    return n;
}

static const struct { unsigned bit; const char *name; } group_names[] = {
    {GROUP_ANONYMOUS, "AnonymousUsers"},
    {GROUP_EXCHANGE_USERS, "ExchangeUsers"},
    {GROUP_EXCHANGE_SERVERS, "ExchangeServers"},
    {GROUP_LEGACY_SERVERS, "ExchangeLegacyServers"},
    {GROUP_PARTNERS, "Partners"},
    {GROUP_CUSTOM, "Custom"},
};

int groups_parse(const char *s, unsigned *out, char *err, size_t errlen)
{
    unsigned groups = 0;
    size_t count = 0;
    bool none = false;
    const char *p = s;
    for (;;) {
        while (*p == ',' || *p == ' ' || *p == '\t')
            p++;
        if (!*p)
            break;
        size_t n = strcspn(p, ", \t");
        char word[64];
        if (n >= sizeof word)
            return rn_err(err, errlen, "unknown permission group '%.*s'", (int)n, p);
        memcpy(word, p, n);
        word[n] = '\0';
        p += n;
        count++;
        if (rn_strieq(word, "None")) {
            none = true;
            continue;
        }
        unsigned bit = 0;
        for (size_t i = 0; i < sizeof group_names / sizeof group_names[0]; i++)
            if (rn_strieq(word, group_names[i].name))
                bit = group_names[i].bit;
        if (bit == GROUP_CUSTOM)
            return rn_err(err, errlen, "Custom is derived from the ACEs and cannot be set");
        if (!bit)
            return rn_err(err, errlen, "unknown permission group '%s'", word);
        if (groups & bit)
            return rn_err(err, errlen, "permission group '%s' given twice", word);
        groups |= bit;
    }
    if (count == 0)
        return rn_err(err, errlen, "empty permission group list (use None)");
    if (none && count > 1)
        return rn_err(err, errlen, "None cannot be combined with other permission groups");
    *out = groups;
    return 0;
}

size_t groups_format(unsigned groups, char *buf, size_t len)
{
    size_t pos = 0;
    bool first = true;
    if (len)
        buf[0] = '\0';
    for (size_t i = 0; i < sizeof group_names / sizeof group_names[0]; i++) {
        if (!(groups & group_names[i].bit))
            continue;
        if (!first)
            append(buf, len, &pos, ", ");
        append(buf, len, &pos, group_names[i].name);
        first = false;
    }
    if (first)
        append(buf, len, &pos, "None");
    return pos;
}
