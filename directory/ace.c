/* ace: the relayAce value grammar (ace.h) and RFC 4514 DN canonicalisation. An ACE value is
 * checked whole before it is split (length, control characters), so every later step works
 * on a bounded, printable string. Principals are classified in a fixed order: well-known name
 * or SID, then any other SID (an AD account or group: the AD profile's principals), then DN.
 * A string that looks like a SID but does not parse as one is refused rather than guessed
 * at. */
#include "directory/ace.h"
#include "directory/rights.h"
#include "directory/secdesc.h"
#include "directory/base/util.h"
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- DN canonicalisation (RFC 4514 §3, with RFC 4518-style case folding for ASCII) ---- */

struct dnbuf { char *p; size_t len, pos; bool overflow; };

static void dn_put(struct dnbuf *b, char c)
{
    if (b->pos + 1 >= b->len) {
        b->overflow = true;
        return;
    }
    b->p[b->pos++] = c;
    b->p[b->pos] = '\0';
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Emit one decoded value byte in the uniform escaping: the RFC 4514 §2.4 specials get a
 * backslash, a leading '#' or space and a trailing space too, and non-printable ASCII goes
 * out as \xx, so two spellings of the same value always produce the same bytes. */
static void dn_put_value_byte(struct dnbuf *b, unsigned char c, bool first, bool last)
{
    static const char hex[] = "0123456789abcdef";
    if (c < 0x20 || c == 0x7f) {
        dn_put(b, '\\');
        dn_put(b, hex[c >> 4]);
        dn_put(b, hex[c & 15]);
    } else if (strchr("\"+,;<>\\=", c) || (first && (c == '#' || c == ' ')) || (last && c == ' ')) {
        dn_put(b, '\\');
        dn_put(b, (char)c);
    } else {
        dn_put(b, (char)tolower(c));
    }
}

/* Parse one attributeTypeAndValue starting at *sp; stops at an unescaped ',' or '+' or end. */
static int dn_parse_ava(const char **sp, struct dnbuf *b, char *err, size_t errlen)
{
    const char *s = *sp;
    while (*s == ' ')
        s++;
    const char *type = s;
    if (isalpha((unsigned char)*s)) {
        while (isalnum((unsigned char)*s) || *s == '-')
            s++;
    } else if (isdigit((unsigned char)*s)) {
        while (isdigit((unsigned char)*s) || *s == '.')
            s++;
    }
    size_t tlen = (size_t)(s - type);
    while (*s == ' ')
        s++;
    if (tlen == 0 || *s != '=') {
        if (tlen == 0 && (*s == ',' || *s == '+' || !*s))
            return rn_err(err, errlen, "empty RDN");
        return rn_err(err, errlen, "expected attribute=value at '%.20s'", type);
    }
    for (size_t i = 0; i < tlen; i++)
        dn_put(b, (char)tolower((unsigned char)type[i]));
    dn_put(b, '=');
    s++;
    while (*s == ' ')
        s++;
    if (*s == '#') {   /* hexstring form: kept as lowercase hex */
        dn_put(b, '#');
        s++;
        size_t n = 0;
        while (hexval(*s) >= 0) {
            dn_put(b, (char)tolower((unsigned char)*s));
            s++;
            n++;
        }
        while (*s == ' ')
            s++;
        if (n == 0 || n % 2 || (*s && *s != ',' && *s != '+'))
            return rn_err(err, errlen, "malformed #hex value");
        *sp = s;
        return 0;
    }
    /* Decode into a scratch buffer first: escaping depends on first/last position and
     * trailing unescaped spaces are insignificant, which is only known at the end.
     * The buffer is as long as the rest of the input (a decoded value is never longer), so
     * a value of any length the directory holds parses: a refused group DN would drop the
     * group's ACEs (directory/ldap/ldapuser.c). */
    unsigned char *val = xmalloc(strlen(s) + 1);
    size_t n = 0, keep = 0;   /* keep: length up to the last significant byte */
    int rc = 0;
    for (;;) {
        unsigned char c = (unsigned char)*s;
        if (c == '\0' || c == ',' || c == '+')
            break;
        if (c == '\\') {
            int h1 = hexval(s[1]), h2 = h1 >= 0 ? hexval(s[2]) : -1;
            if (h1 >= 0 && h2 >= 0) {
                val[n++] = (unsigned char)(h1 << 4 | h2);
                s += 3;
            } else if (s[1] && strchr("\"+,;<>\\=# ", s[1])) {
                val[n++] = (unsigned char)s[1];
                s += 2;
            } else {
                rc = rn_err(err, errlen, "bad escape '\\%.1s'", s[1] ? s + 1 : "");
                break;
            }
            keep = n;
            continue;
        }
        if (c == '"' || c == ';' || c == '<' || c == '>') {
            rc = rn_err(err, errlen, "unescaped '%c' in value", c);
            break;
        }
        val[n++] = c;
        s++;
        if (c != ' ')
            keep = n;
    }
    for (size_t i = 0; rc == 0 && i < keep; i++)
        dn_put_value_byte(b, val[i], i == 0, i + 1 == keep);
    free(val);
    if (rc < 0)
        return rc;
    *sp = s;
    return 0;
}

int dn_normalize(const char *dn, char *out, size_t outlen, char *err, size_t errlen)
{
    struct dnbuf b = {out, outlen, 0, false};
    if (outlen)
        out[0] = '\0';
    if (!dn)
        return rn_err(err, errlen, "empty DN");
    const char *s = dn;
    while (*s == ' ')
        s++;
    if (!*s)
        return rn_err(err, errlen, "empty DN");
    for (;;) {
        if (dn_parse_ava(&s, &b, err, errlen) < 0)
            return -1;
        if (!*s)
            break;
        dn_put(&b, *s);   /* ',' between RDNs, '+' inside a multi-valued RDN: kept in order */
        s++;
    }
    if (b.overflow || outlen == 0)
        return rn_err(err, errlen, "DN too long");
    return 0;
}

/* ---- ACE values ---- */

static const char *trim(char *s)
{
    while (*s == ' ')
        s++;
    size_t n = strlen(s);
    while (n && s[n - 1] == ' ')
        s[--n] = '\0';
    return s;
}

/* "S-1-..." with digits: a SID, which must then be one we know. */
static bool looks_like_sid(const char *s)
{
    return (s[0] == 'S' || s[0] == 's') && s[1] == '-' && isdigit((unsigned char)s[2]);
}

static int parse_rights(char *list, uint32_t *out, char *err, size_t errlen)
{
    uint32_t rights = 0;
    char *p = list;
    for (;;) {
        char *comma = strchr(p, ',');
        if (comma)
            *comma = '\0';
        const char *name = trim(p);
        if (!*name)
            return rn_err(err, errlen, rights || comma ? "empty right in list" : "no rights");
        const struct right_info *r = right_lookup(name);
        if (!r)
            return rn_err(err, errlen, "unknown right '%s'", name);
        if (rights & r->bit)
            return rn_err(err, errlen, "duplicate right '%s'", name);
        rights |= r->bit;
        if (!comma)
            break;
        p = comma + 1;
    }
    *out = rights;
    return 0;
}

int ace_parse(const char *s, struct ace *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    out->wk = -1;
    size_t len = strnlen(s, ACE_MAXLEN + 1);
    if (len > ACE_MAXLEN)
        return rn_err(err, errlen, "value longer than %d bytes", ACE_MAXLEN);
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == 0x7f)
            return rn_err(err, errlen, "control character 0x%02x at offset %zu", c, i);
    }
    char buf[ACE_MAXLEN + 1];
    memcpy(buf, s, len + 1);
    char *semi1 = strchr(buf, ';'), *semi2 = strrchr(buf, ';');
    if (!semi1 || semi1 == semi2)
        return rn_err(err, errlen, "expected 'allow|deny; principal; rights'");
    *semi1 = '\0';
    *semi2 = '\0';
    const char *action = trim(buf), *principal = trim(semi1 + 1);
    if (!*action)
        return rn_err(err, errlen, "empty action");
    bool deny;
    if (rn_strieq(action, "allow"))
        deny = false;
    else if (rn_strieq(action, "deny"))
        deny = true;
    else
        return rn_err(err, errlen, "unknown action '%s' (expected allow or deny)", action);
    if (!*principal)
        return rn_err(err, errlen, "empty principal");
    uint32_t rights = 0;
    if (parse_rights(semi2 + 1, &rights, err, errlen) < 0)
        return -1;

    const struct principal_info *wk = principal_lookup(principal);
    char norm[ACE_MAXLEN + 1], sid[SD_SID_STRMAX] = "";
    if (!wk && looks_like_sid(principal)) {
        struct sd_sid bin;
        if (sd_sid_parse(principal, &bin) < 0)
            return rn_err(err, errlen, "malformed SID '%s'", principal);
        sd_sid_format(&bin, sid, sizeof sid);
        /* "s-1-5-7" or "S-01-5-7" still names a well-known principal. */
        wk = principal_lookup(sid);
    }
    if (!wk && !*sid) {
        char dnerr[RN_ERRLEN];
        if (dn_normalize(principal, norm, sizeof norm, dnerr, sizeof dnerr) < 0)
            return rn_err(err, errlen, "unknown principal '%s' (not a well-known name or SID, "
                          "and not a DN: %s)", principal, dnerr);
    }
    out->deny = deny;
    out->rights = rights;
    if (wk) {
        out->wk = wk->id;
    } else if (*sid) {
        out->sid = xstrdup(sid);
    } else {
        out->dn = xstrdup(principal);
        out->dn_norm = xstrdup(norm);
    }
    return 0;
}

size_t ace_format(const struct ace *a, char *buf, size_t len)
{
    const struct principal_info *p = a->wk >= 0 ? principal_by_id(a->wk) : NULL;
    const char *who = p ? p->name : a->sid ? a->sid : a->dn ? a->dn : "";
    char rights[RIGHT_COUNT * 64];
    rights_format(a->rights, ", ", false, rights, sizeof rights);
    int n = snprintf(buf, len, "%s; %s; %s", a->deny ? "deny" : "allow", who, rights);
    return n < 0 ? 0 : (size_t)n;
}

void ace_clear(struct ace *a)
{
    free(a->dn);
    free(a->dn_norm);
    free(a->sid);
    memset(a, 0, sizeof *a);
    a->wk = -1;
}

void ace_copy(struct ace *dst, const struct ace *src)
{
    *dst = *src;
    dst->dn = src->dn ? xstrdup(src->dn) : NULL;
    dst->dn_norm = src->dn_norm ? xstrdup(src->dn_norm) : NULL;
    dst->sid = src->sid ? xstrdup(src->sid) : NULL;
}
