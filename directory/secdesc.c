/* secdesc: the self-relative security descriptor codec (secdesc.h). Every read goes through
 * one bounds-checked cursor over the buffer, and every structure is checked against the one
 * that contains it (an ACE against its ACL's size, the ACL against the buffer), so a hostile
 * descriptor can only ever be refused. The parser builds into a local result and hands it
 * over only when the whole descriptor was read: there is never a partial result. SIDs and
 * GUIDs follow MS-DTYP 2.4.2 (SID) and 2.3.4 (GUID, first three fields little-endian). */
#include "directory/secdesc.h"
#include "directory/base/util.h"
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SD_HEADER 20
#define ACL_HEADER 8
#define ACE_HEADER 4

static uint16_t rd16(const unsigned char *p) { return (uint16_t)(p[0] | p[1] << 8); }
static uint32_t rd32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static void wr16(unsigned char *p, uint16_t v)
{
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
}
static void wr32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

/* ---- SIDs ---- */

size_t sd_sid_size(const struct sd_sid *s)
{
    return 8 + 4 * (size_t)s->nsub;
}

bool sd_sid_equal(const struct sd_sid *a, const struct sd_sid *b)
{
    if (a->rev != b->rev || a->nsub != b->nsub || memcmp(a->auth, b->auth, 6) != 0)
        return false;
    for (unsigned i = 0; i < a->nsub && i < 15; i++)
        if (a->sub[i] != b->sub[i])
            return false;
    return true;
}

/* A SID at p with at most len bytes available; *used gets its exact size. */
static int sid_read(const unsigned char *p, size_t len, struct sd_sid *out, size_t *used,
                    char *err, size_t errlen)
{
    if (len < 8)
        return rn_err(err, errlen, "sid: %zu bytes < 8", len);
    if (p[0] != 1)
        return rn_err(err, errlen, "sid: revision %u (expected 1)", p[0]);
    if (p[1] > 15)
        return rn_err(err, errlen, "sid: %u sub-authorities > 15", p[1]);
    size_t need = 8 + 4 * (size_t)p[1];
    if (need > len)
        return rn_err(err, errlen, "sid: %u sub-authorities need %zu bytes, %zu left", p[1],
                      need, len);
    memset(out, 0, sizeof *out);
    out->rev = p[0];
    out->nsub = p[1];
    memcpy(out->auth, p + 2, 6);
    for (unsigned i = 0; i < out->nsub; i++)
        out->sub[i] = rd32(p + 8 + 4 * i);
    *used = need;
    return 0;
}

static void sid_write(unsigned char *p, const struct sd_sid *s)
{
    p[0] = s->rev;
    p[1] = s->nsub;
    memcpy(p + 2, s->auth, 6);
    for (unsigned i = 0; i < s->nsub; i++)
        wr32(p + 8 + 4 * i, s->sub[i]);
}

int sd_sid_from_bytes(const void *p, size_t len, struct sd_sid *out)
{
    size_t used;
    char err[RN_ERRLEN];
    memset(out, 0, sizeof *out);
    if (!p || sid_read(p, len, out, &used, err, sizeof err) < 0 || used != len) {
        memset(out, 0, sizeof *out);
        return -1;
    }
    return 0;
}

size_t sd_sid_format(const struct sd_sid *s, char *buf, size_t len)
{
    uint64_t auth = 0;
    for (int i = 0; i < 6; i++)
        auth = auth << 8 | s->auth[i];
    char tmp[SD_SID_STRMAX];
    /* MS-DTYP 2.4.2.1: the authority in decimal below 2^32, else as 0x + 12 hex digits. */
    int n = auth < (1ull << 32) ? snprintf(tmp, sizeof tmp, "S-%u-%" PRIu64, s->rev, auth)
                                : snprintf(tmp, sizeof tmp, "S-%u-0x%012" PRIX64, s->rev, auth);
    for (unsigned i = 0; i < s->nsub && i < 15 && n > 0; i++)
        n += snprintf(tmp + n, sizeof tmp - (size_t)n, "-%" PRIu32, s->sub[i]);
    if (n < 0)
        n = 0;
    if (len)
        snprintf(buf, len, "%s", tmp);
    return (size_t)n;
}

static int hexdigit(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = (char)(c | 0x20);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* One decimal number of at most max; *s advanced past it. */
static int parse_num(const char **s, uint64_t max, uint64_t *out)
{
    const char *p = *s;
    uint64_t v = 0;
    if (*p < '0' || *p > '9')
        return -1;
    for (; *p >= '0' && *p <= '9'; p++) {
        v = v * 10 + (uint64_t)(*p - '0');
        if (v > max)
            return -1;
    }
    *s = p;
    *out = v;
    return 0;
}

int sd_sid_parse(const char *s, struct sd_sid *out)
{
    memset(out, 0, sizeof *out);
    if (!s || (s[0] != 'S' && s[0] != 's') || s[1] != '-')
        return -1;
    const char *p = s + 2;
    uint64_t rev, auth, sub;
    if (parse_num(&p, 255, &rev) < 0 || rev != 1 || *p++ != '-')
        goto bad;
    if (p[0] == '0' && (p[1] == 'x' || p[1] == 'X')) {
        p += 2;
        auth = 0;
        int nd = 0;
        for (; nd < 12 && hexdigit(*p) >= 0; p++, nd++)
            auth = auth << 4 | (uint64_t)hexdigit(*p);
        if (nd == 0)
            goto bad;
    } else if (parse_num(&p, (1ull << 48) - 1, &auth) < 0) {
        goto bad;
    }
    out->rev = (uint8_t)rev;
    for (int i = 0; i < 6; i++)
        out->auth[i] = (uint8_t)(auth >> (8 * (5 - i)));
    while (*p == '-') {
        p++;
        if (out->nsub == 15 || parse_num(&p, UINT32_MAX, &sub) < 0)
            goto bad;
        out->sub[out->nsub++] = (uint32_t)sub;
    }
    if (*p)
        goto bad;
    return 0;
bad:
    memset(out, 0, sizeof *out);
    return -1;
}

/* ---- GUIDs ---- */

void sd_guid_format(const struct sd_guid *g, char out[37])
{
    const unsigned char *b = g->b;
    snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
             b[3], b[2], b[1], b[0], b[5], b[4], b[7], b[6], b[8], b[9], b[10], b[11], b[12],
             b[13], b[14], b[15]);
}

int sd_guid_parse(const char *s, struct sd_guid *out)
{
    /* Text byte i -> wire position: the first three fields are little-endian. */
    static const int pos[16] = {3, 2, 1, 0, 5, 4, 7, 6, 8, 9, 10, 11, 12, 13, 14, 15};
    memset(out, 0, sizeof *out);
    if (!s || strlen(s) != 36)
        return -1;
    int k = 0;
    for (int i = 0; i < 36;) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (s[i++] != '-')
                goto bad;
            continue;
        }
        int v = 0;
        for (int j = 0; j < 2; j++, i++) {
            int h = hexdigit(s[i]);
            if (h < 0)
                goto bad;
            v = v << 4 | h;
        }
        out->b[pos[k++]] = (unsigned char)v;
    }
    return 0;
bad:
    memset(out, 0, sizeof *out);
    return -1;
}

int sd_guid_from_bytes(const void *p, size_t len, struct sd_guid *out)
{
    memset(out, 0, sizeof *out);
    if (!p || len != 16)
        return -1;
    memcpy(out->b, p, 16);
    return 0;
}

/* ---- parsing ---- */

void secdesc_clear(struct secdesc *sd)
{
    for (size_t i = 0; i < sd->naces; i++)
        free(sd->aces[i].raw);
    free(sd->aces);
    memset(sd, 0, sizeof *sd);
}

void secdesc_copy(struct secdesc *dst, const struct secdesc *src)
{
    *dst = *src;
    dst->aces = src->naces ? xcalloc(src->naces, sizeof *dst->aces) : NULL;
    for (size_t i = 0; i < src->naces; i++) {
        dst->aces[i] = src->aces[i];
        dst->aces[i].raw = xmalloc(src->aces[i].rawlen ? src->aces[i].rawlen : 1);
        memcpy(dst->aces[i].raw, src->aces[i].raw, src->aces[i].rawlen);
    }
}

/* Layout of an ACE type's body (MS-DTYP 2.4.4): mask + SID, or mask + object flags + GUIDs +
 * SID (the object and callback-object types); other types carry no body we read. */
enum layout { LAYOUT_OPAQUE, LAYOUT_PLAIN, LAYOUT_OBJECT };

static enum layout ace_layout(uint8_t type)
{
    switch (type) {
    case 0x00: case 0x01: case 0x02: case 0x03:   /* allowed, denied, audit, alarm */
    case 0x09: case 0x0A: case 0x0D: case 0x0E:   /* callback allowed, denied, audit, alarm */
    case 0x11: case 0x12: case 0x13:              /* label, resource attribute, scoped policy */
        return LAYOUT_PLAIN;
    case 0x05: case 0x06: case 0x07: case 0x08:   /* object allowed, denied, audit, alarm */
    case 0x0B: case 0x0C: case 0x0F: case 0x10:   /* callback object: allowed, denied, */
                                                  /* audit, alarm */
        return LAYOUT_OBJECT;
    default:
        return LAYOUT_OPAQUE;
    }
}

/* Decode one ACE's body (p, size bytes including its 4-byte header) into a. */
static int ace_decode(const unsigned char *p, size_t size, struct sd_ace *a, char *err,
                      size_t errlen)
{
    a->type = p[0];
    a->flags = p[1];
    enum layout l = ace_layout(a->type);
    if (l == LAYOUT_OPAQUE)
        return 0;
    size_t q = ACE_HEADER;
    if (size < q + 4)
        return rn_err(err, errlen, "type 0x%02x: %zu bytes, no room for the mask", a->type, size);
    a->mask = rd32(p + q);
    q += 4;
    if (l == LAYOUT_OBJECT) {
        if (size < q + 4)
            return rn_err(err, errlen, "object ace: no room for its flags");
        a->objflags = rd32(p + q);
        q += 4;
        if (a->objflags & ~(uint32_t)(SD_OBJECT_TYPE_PRESENT | SD_INHERITED_TYPE_PRESENT))
            return rn_err(err, errlen, "object ace: unknown flags 0x%" PRIx32, a->objflags);
        if (a->objflags & SD_OBJECT_TYPE_PRESENT) {
            if (size < q + 16)
                return rn_err(err, errlen, "object ace: ObjectType runs past the ace");
            memcpy(a->object_type.b, p + q, 16);
            q += 16;
        }
        if (a->objflags & SD_INHERITED_TYPE_PRESENT) {
            if (size < q + 16)
                return rn_err(err, errlen, "object ace: InheritedObjectType runs past the ace");
            memcpy(a->inherited_type.b, p + q, 16);
            q += 16;
        }
    }
    size_t used;
    char serr[RN_ERRLEN];
    if (sid_read(p + q, size - q, &a->sid, &used, serr, sizeof serr) < 0)
        return rn_err(err, errlen, "%s", serr);
    /* Bytes after the SID (callback application data) are kept in raw, not interpreted. */
    return 0;
}

/* The ACL at off (already known to have ACL_HEADER bytes in buf); ACEs into *aces. */
static int acl_read(const unsigned char *buf, size_t len, size_t off, const char *what,
                    struct secdesc *sd, bool keep, char *err, size_t errlen)
{
    const unsigned char *acl = buf + off;
    uint8_t rev = acl[0];
    size_t size = rd16(acl + 2), count = rd16(acl + 4);
    if (rev != 2 && rev != 4)
        return rn_err(err, errlen, "%s: revision %u (expected 2 or 4)", what, rev);
    if (size < ACL_HEADER)
        return rn_err(err, errlen, "%s: size %zu < %d", what, size, ACL_HEADER);
    if (size > len - off)
        return rn_err(err, errlen, "%s: size %zu runs past the descriptor (%zu bytes left)", what,
                      size, len - off);
    if (count > SD_MAX_ACES)
        return rn_err(err, errlen, "%s: %zu aces > %d", what, count, SD_MAX_ACES);
    if (count * 8 > size - ACL_HEADER)
        return rn_err(err, errlen, "%s: %zu aces cannot fit in %zu bytes", what, count, size);
    if (keep) {
        sd->acl_rev = rev;
        sd->aces = count ? xcalloc(count, sizeof *sd->aces) : NULL;
    }
    size_t pos = ACL_HEADER;
    for (size_t i = 0; i < count; i++) {
        if (size - pos < ACE_HEADER)
            return rn_err(err, errlen, "%s: ace %zu: header runs past the acl", what, i);
        size_t asz = rd16(acl + pos + 2);
        if (asz < 8)
            return rn_err(err, errlen, "%s: ace %zu: size %zu < 8", what, i, asz);
        if (asz % 4)
            return rn_err(err, errlen, "%s: ace %zu: size %zu not a multiple of 4", what, i, asz);
        if (asz > size - pos)
            return rn_err(err, errlen, "%s: ace %zu: size %zu runs past the acl", what, i, asz);
        struct sd_ace a;
        memset(&a, 0, sizeof a);
        char aerr[RN_ERRLEN];
        if (ace_decode(acl + pos, asz, &a, aerr, sizeof aerr) < 0)
            return rn_err(err, errlen, "%s: ace %zu: %s", what, i, aerr);
        if (keep) {
            a.raw = xmalloc(asz);
            memcpy(a.raw, acl + pos, asz);
            a.rawlen = asz;
            sd->aces[sd->naces++] = a;
        }
        pos += asz;
    }
    return 0;
}

/* An owner or group SID offset: 0, or a SID wholly inside the buffer after the header. */
static int check_sid_at(const unsigned char *buf, size_t len, size_t off, const char *what,
                        char *err, size_t errlen)
{
    if (off == 0)
        return 0;
    if (off < SD_HEADER || off >= len)
        return rn_err(err, errlen, "%s: offset %zu outside %d..%zu", what, off, SD_HEADER, len);
    struct sd_sid s;
    size_t used;
    char serr[RN_ERRLEN];
    if (sid_read(buf + off, len - off, &s, &used, serr, sizeof serr) < 0)
        return rn_err(err, errlen, "%s: %s", what, serr);
    return 0;
}

static int acl_at(const unsigned char *buf, size_t len, size_t off, const char *what,
                  char *err, size_t errlen)
{
    if (off < SD_HEADER || off > len || len - off < ACL_HEADER)
        return rn_err(err, errlen, "%s: offset %zu: no acl header there (descriptor %zu bytes)",
                      what, off, len);
    return 0;
}

int secdesc_parse(const void *vbuf, size_t len, struct secdesc *out, char *err, size_t errlen)
{
    const unsigned char *buf = vbuf;
    struct secdesc sd;
    memset(&sd, 0, sizeof sd);
    memset(out, 0, sizeof *out);
    if (!buf || len < SD_HEADER)
        return rn_err(err, errlen, "descriptor: %zu bytes < %d", buf ? len : 0, SD_HEADER);
    if (buf[0] != 1)
        return rn_err(err, errlen, "descriptor: revision %u (expected 1)", buf[0]);
    sd.sbz1 = buf[1];
    sd.control = rd16(buf + 2);
    if (!(sd.control & SD_CTRL_SELF_RELATIVE))
        return rn_err(err, errlen, "descriptor: not self-relative (control 0x%04x)", sd.control);
    size_t owner = rd32(buf + 4), group = rd32(buf + 8), sacl = rd32(buf + 12),
           dacl = rd32(buf + 16);
    if (check_sid_at(buf, len, owner, "owner", err, errlen) < 0 ||
        check_sid_at(buf, len, group, "group", err, errlen) < 0)
        return -1;
    if (sacl) {
        if (acl_at(buf, len, sacl, "sacl", err, errlen) < 0 ||
            acl_read(buf, len, sacl, "sacl", &sd, false, err, errlen) < 0)
            return -1;
    }
    if (sd.control & SD_CTRL_DACL_PRESENT && dacl) {
        int rc = acl_at(buf, len, dacl, "dacl", err, errlen);
        if (rc == 0)
            rc = acl_read(buf, len, dacl, "dacl", &sd, true, err, errlen);
        if (rc < 0) {
            secdesc_clear(&sd);
            return -1;
        }
        sd.dacl_present = true;
    } else if (dacl) {
        return rn_err(err, errlen, "descriptor: dacl offset %zu without DACL_PRESENT", dacl);
    }
    *out = sd;
    return 0;
}

/* ---- writing ---- */

/* Build the raw bytes of an explicit object ACE as Exchange writes it. */
static void object_ace_build(struct sd_ace *a, bool deny, const struct sd_sid *trustee,
                             const struct sd_guid *right)
{
    memset(a, 0, sizeof *a);
    a->type = deny ? SD_ACE_DENIED_OBJECT : SD_ACE_ALLOWED_OBJECT;
    a->flags = SD_FLAG_CONTAINER_INHERIT;
    a->mask = SD_CONTROL_ACCESS;
    a->objflags = SD_OBJECT_TYPE_PRESENT;
    a->object_type = *right;
    a->sid = *trustee;
    a->rawlen = ACE_HEADER + 4 + 4 + 16 + sd_sid_size(trustee);
    a->raw = xcalloc(1, a->rawlen);
    a->raw[0] = a->type;
    a->raw[1] = a->flags;
    wr16(a->raw + 2, (uint16_t)a->rawlen);
    wr32(a->raw + 4, a->mask);
    wr32(a->raw + 8, a->objflags);
    memcpy(a->raw + 12, right->b, 16);
    sid_write(a->raw + 28, trustee);
}

/* An explicit object ACE granting or denying exactly `right` to `trustee` with
 * CONTROL_ACCESS, whatever its inheritance flags (Exchange writes CONTAINER_INHERIT, ADSI
 * Edit may write none): the ACE add would write, in substance. */
static bool is_same_object_ace(const struct sd_ace *a, bool deny, const struct sd_sid *trustee,
                               const struct sd_guid *right)
{
    return a->type == (deny ? SD_ACE_DENIED_OBJECT : SD_ACE_ALLOWED_OBJECT) &&
           !(a->flags & SD_FLAG_INHERITED) && a->mask == SD_CONTROL_ACCESS &&
           a->objflags == SD_OBJECT_TYPE_PRESENT &&
           memcmp(a->object_type.b, right->b, 16) == 0 && sd_sid_equal(&a->sid, trustee);
}

static bool is_deny_type(uint8_t t)
{
    return t == SD_ACE_DENIED || t == SD_ACE_DENIED_OBJECT || t == 0x0A || t == 0x0C;
}

int secdesc_add_object_ace(struct secdesc *sd, bool deny, const struct sd_sid *trustee,
                           const struct sd_guid *right)
{
    for (size_t i = 0; i < sd->naces; i++)
        if (is_same_object_ace(&sd->aces[i], deny, trustee, right) &&
            !(sd->aces[i].flags & SD_FLAG_INHERIT_ONLY))
            return 1;
    if (sd->naces >= SD_MAX_ACES || trustee->nsub > 15)
        return -1;
    /* Canonical order (MS-DTYP 2.4.5, "Order of ACEs in a DACL"): explicit denies, explicit
     * allows, inherited. A deny goes after the last explicit deny, before the first explicit
     * non-deny; an allow after the last explicit ACE, before the first inherited one. */
    size_t at = 0;
    for (size_t i = 0; i < sd->naces; i++) {
        const struct sd_ace *a = &sd->aces[i];
        if (a->flags & SD_FLAG_INHERITED)
            break;
        if (deny && !is_deny_type(a->type))
            break;
        at = i + 1;
    }
    sd->aces = xrealloc(sd->aces, (sd->naces + 1) * sizeof *sd->aces);
    memmove(sd->aces + at + 1, sd->aces + at, (sd->naces - at) * sizeof *sd->aces);
    object_ace_build(&sd->aces[at], deny, trustee, right);
    sd->naces++;
    if (!sd->dacl_present) {
        sd->dacl_present = true;
        sd->control |= SD_CTRL_DACL_PRESENT;
    }
    sd->acl_rev = 4;   /* object ACEs need ACL_REVISION_DS */
    return 0;
}

int secdesc_remove_object_ace(struct secdesc *sd, bool deny, const struct sd_sid *trustee,
                              const struct sd_guid *right)
{
    size_t w = 0;
    bool removed = false;
    for (size_t i = 0; i < sd->naces; i++) {
        if (is_same_object_ace(&sd->aces[i], deny, trustee, right)) {
            free(sd->aces[i].raw);
            removed = true;
            continue;
        }
        sd->aces[w++] = sd->aces[i];
    }
    sd->naces = w;
    return removed ? 0 : 1;
}

int secdesc_serialize(const struct secdesc *sd, unsigned char **out, size_t *outlen,
                      char *err, size_t errlen)
{
    *out = NULL;
    *outlen = 0;
    size_t aclsize = ACL_HEADER;
    for (size_t i = 0; i < sd->naces; i++)
        aclsize += sd->aces[i].rawlen;
    if (sd->dacl_present && (aclsize > 0xFFFF || sd->naces > 0xFFFF))
        return rn_err(err, errlen, "dacl: %zu bytes in %zu aces exceed an ACL's 65535", aclsize,
                      sd->naces);
    size_t total = SD_HEADER + (sd->dacl_present ? aclsize : 0);
    unsigned char *b = xcalloc(1, total);
    b[0] = 1;
    b[1] = sd->sbz1;
    uint16_t control = (uint16_t)(sd->control | SD_CTRL_SELF_RELATIVE);
    if (sd->dacl_present)
        control |= SD_CTRL_DACL_PRESENT;
    else
        control &= (uint16_t)~SD_CTRL_DACL_PRESENT;
    wr16(b + 2, control);
    if (sd->dacl_present) {
        wr32(b + 16, SD_HEADER);
        unsigned char *acl = b + SD_HEADER;
        acl[0] = sd->acl_rev ? sd->acl_rev : 4;
        wr16(acl + 2, (uint16_t)aclsize);
        wr16(acl + 4, (uint16_t)sd->naces);
        size_t pos = ACL_HEADER;
        for (size_t i = 0; i < sd->naces; i++) {
            memcpy(acl + pos, sd->aces[i].raw, sd->aces[i].rawlen);
            pos += sd->aces[i].rawlen;
        }
    }
    *out = b;
    *outlen = total;
    return 0;
}
