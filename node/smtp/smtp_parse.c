/* smtp_parse: pure SMTP command-line parsers. The session hands in one line without CRLF and
 * gets back a verb and typed arguments, or which 501 to answer. Grammar per RFC 5321 §4.1.2
 * (Mailbox, Dot-string, Quoted-string, address literals), limits per §4.5.3.1 (local part 64,
 * domain 255, path 256). Control bytes are never accepted (docs/reliability.md T01/T02: no CR, LF or
 * NUL may ride inside an address into a spool envelope or a header); 8-bit bytes only under
 * SMTPUTF8 (RFC 6531 §3.3); source routes are refused rather than ignored. */
#include "node/smtp/smtp_parse.h"

#include <string.h>
#include <strings.h>

static const struct {
    const char *name;
    enum smtp_verb verb;
} smtp_verbs[] = {
    {"HELO", SMTP_VERB_HELO}, {"EHLO", SMTP_VERB_EHLO}, {"MAIL", SMTP_VERB_MAIL},
    {"RCPT", SMTP_VERB_RCPT}, {"DATA", SMTP_VERB_DATA}, {"BDAT", SMTP_VERB_BDAT},
    {"RSET", SMTP_VERB_RSET}, {"NOOP", SMTP_VERB_NOOP}, {"QUIT", SMTP_VERB_QUIT},
    {"VRFY", SMTP_VERB_VRFY}, {"HELP", SMTP_VERB_HELP}, {"STARTTLS", SMTP_VERB_STARTTLS},
    {"AUTH", SMTP_VERB_AUTH},
};

enum smtp_verb smtp_cmd_verb(const char *line, size_t len, const char **args)
{
    size_t i = 0;
    while (i < len && line[i] != ' ')
        i++;
    size_t a = i;
    while (a < len && line[a] == ' ')
        a++;
    if (args)
        *args = line + a;
    for (size_t k = 0; k < sizeof smtp_verbs / sizeof smtp_verbs[0]; k++)
        if (strlen(smtp_verbs[k].name) == i && strncasecmp(line, smtp_verbs[k].name, i) == 0)
            return smtp_verbs[k].verb;
    return SMTP_VERB_UNKNOWN;
}

const char *smtp_verb_name(enum smtp_verb v)
{
    for (size_t k = 0; k < sizeof smtp_verbs / sizeof smtp_verbs[0]; k++)
        if (smtp_verbs[k].verb == v)
            return smtp_verbs[k].name;
    return "UNKNOWN";
}

static int smtp_is_atext(unsigned char c, int utf8)
{
    if (c >= 0x80)
        return utf8;
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return 1;
    return c != 0 && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL;
}

static int smtp_is_ldh(unsigned char c, int utf8)
{
    if (c >= 0x80)
        return utf8;
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-';
}

/* Local part: Dot-string or Quoted-string. Returns length or -1. */
static long smtp_local_scan(const unsigned char *s, size_t len, int utf8)
{
    size_t i = 0;
    if (len > 0 && s[0] == '"') {
        i = 1;
        for (;;) {
            if (i >= len)
                return -1;
            unsigned char c = s[i];
            if (c == '"')
                return (long)(i + 1);
            if (c == '\\') {
                if (i + 1 >= len || s[i + 1] < 32 || s[i + 1] == 127 ||
                    (s[i + 1] >= 0x80 && !utf8))
                    return -1;
                i += 2;
                continue;
            }
            if (c < 32 || c == 127 || (c >= 0x80 && !utf8))
                return -1;
            i++;
        }
    }
    int atom = 0;
    while (i < len && s[i] != '@') {
        if (s[i] == '.') {
            if (!atom)
                return -1;
            atom = 0;
        } else if (smtp_is_atext(s[i], utf8)) {
            atom = 1;
        } else {
            return -1;
        }
        i++;
    }
    return atom ? (long)i : -1;
}

/* Domain or address literal over exactly len bytes. */
static int smtp_domain_check(const unsigned char *s, size_t len, int utf8, int *literal)
{
    *literal = 0;
    if (len == 0 || len > SMTP_DOMAIN_MAX)
        return -1;
    if (s[0] == '[') {
        if (len < 3 || s[len - 1] != ']')
            return -1;
        for (size_t i = 1; i + 1 < len; i++)
            if (s[i] < 33 || s[i] > 126 || s[i] == '[' || s[i] == ']' || s[i] == '\\')
                return -1;
        *literal = 1;
        return 0;
    }
    size_t lab = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '.') {
            if (lab == 0 || s[i - 1] == '-')
                return -1;
            lab = 0;
        } else if (smtp_is_ldh(s[i], utf8)) {
            if (lab == 0 && s[i] == '-')
                return -1;
            if (++lab > 63)
                return -1;
        } else {
            return -1;
        }
    }
    return (lab == 0 || s[len - 1] == '-') ? -1 : 0;
}

int smtp_path_parse(const char *str, size_t len, int allow_null, int allow_utf8,
                    struct smtp_path *p, size_t *consumed)
{
    const unsigned char *s = (const unsigned char *)str;
    memset(p, 0, sizeof *p);
    if (len < 2 || s[0] != '<')
        return SMTP_PARSE_BAD_ADDR;
    size_t end = 1;
    int quoted = 0;
    /* find the closing '>' outside a quoted string; refuse control bytes anywhere */
    for (; end < len; end++) {
        unsigned char c = s[end];
        if (c < 32 || c == 127)
            return SMTP_PARSE_BAD_ADDR;
        if (c >= 0x80 && !allow_utf8)
            return SMTP_PARSE_BAD_ADDR;
        if (quoted && c == '\\') {
            end++;
            if (end < len && (s[end] < 32 || s[end] == 127))
                return SMTP_PARSE_BAD_ADDR;
            continue;
        }
        if (c == '"')
            quoted = !quoted;
        else if (c == '>' && !quoted)
            break;
    }
    if (end >= len)
        return SMTP_PARSE_BAD_ADDR;
    if (consumed)
        *consumed = end + 1;
    const unsigned char *in = s + 1;
    size_t inlen = end - 1;
    if (inlen == 0) {
        if (!allow_null)
            return SMTP_PARSE_BAD_ADDR;
        p->null = 1;
        return SMTP_PARSE_OK;
    }
    if (in[0] == '@') /* RFC 5321 §4.1.2 A-d-l: source routes are refused */
        return SMTP_PARSE_BAD_ADDR;
    if (inlen > SMTP_PATH_MAX)
        return SMTP_PARSE_BAD_ADDR;
    long ll = smtp_local_scan(in, inlen, allow_utf8);
    if (ll < 0 || (size_t)ll >= inlen || in[ll] != '@' || ll > SMTP_LOCAL_MAX)
        return SMTP_PARSE_BAD_ADDR;
    const unsigned char *dom = in + ll + 1;
    size_t dlen = inlen - (size_t)ll - 1;
    if (smtp_domain_check(dom, dlen, allow_utf8, &p->literal) < 0)
        return SMTP_PARSE_BAD_ADDR;
    for (size_t i = 0; i < inlen; i++)
        if (in[i] >= 0x80)
            p->utf8 = 1;
    memcpy(p->local, in, (size_t)ll);
    p->local[ll] = '\0';
    memcpy(p->domain, dom, dlen);
    p->domain[dlen] = '\0';
    memcpy(p->addr, in, inlen);
    p->addr[inlen] = '\0';
    return SMTP_PARSE_OK;
}

/* "FROM:" / "TO:" prefix, case-insensitive; RFC 5321 has no space after the colon but real
 * clients send one, so one run of spaces is tolerated. */
static int smtp_prefix(const char **a, size_t *len, const char *kw)
{
    size_t k = strlen(kw);
    if (*len < k || strncasecmp(*a, kw, k) != 0)
        return -1;
    *a += k;
    *len -= k;
    while (*len > 0 && **a == ' ') {
        (*a)++;
        (*len)--;
    }
    return 0;
}

static int smtp_number(const char *s, size_t len, uint64_t *v)
{
    if (len == 0 || len > 19)
        return -1;
    uint64_t n = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        n = n * 10 + (uint64_t)(s[i] - '0');
    }
    *v = n;
    return 0;
}

static int smtp_has_ctl(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 32 || c == 127)
            return 1;
    }
    return 0;
}

int smtp_mail_parse(const char *args, size_t len, struct smtp_mail *m)
{
    memset(m, 0, sizeof *m);
    if (smtp_has_ctl(args, len))
        return SMTP_PARSE_BAD_ADDR;
    if (smtp_prefix(&args, &len, "FROM:") < 0)
        return SMTP_PARSE_BAD_ARGS;
    /* SMTPUTF8 decides whether 8-bit is allowed in the path, so scan parameters first. */
    int utf8 = 0;
    size_t used = 0;
    {
        struct smtp_path tmp;
        int rc = smtp_path_parse(args, len, 1, 1, &tmp, &used);
        if (rc != SMTP_PARSE_OK)
            return rc;
    }
    const char *q = args + used;
    size_t qlen = len - used;
    if (qlen > 0 && *q != ' ')
        return SMTP_PARSE_BAD_ARGS;
    while (qlen > 0) {
        while (qlen > 0 && *q == ' ') {
            q++;
            qlen--;
        }
        if (qlen == 0)
            break;
        size_t w = 0;
        while (w < qlen && q[w] != ' ')
            w++;
        const char *eq = memchr(q, '=', w);
        size_t klen = eq ? (size_t)(eq - q) : w;
        const char *val = eq ? eq + 1 : NULL;
        size_t vlen = eq ? w - klen - 1 : 0;
        for (size_t i = 0; i < w; i++)
            if ((unsigned char)q[i] >= 0x80)
                return SMTP_PARSE_BAD_ARGS;
        if (klen == 4 && strncasecmp(q, "SIZE", 4) == 0) {
            if (!val || m->has_size || smtp_number(val, vlen, &m->size) < 0)
                return SMTP_PARSE_BAD_ARGS;
            m->has_size = 1;
        } else if (klen == 4 && strncasecmp(q, "BODY", 4) == 0) {
            if (!val || m->body != SMTP_BODY_NONE)
                return SMTP_PARSE_BAD_ARGS;
            if (vlen == 4 && strncasecmp(val, "7BIT", 4) == 0)
                m->body = SMTP_BODY_7BIT;
            else if (vlen == 8 && strncasecmp(val, "8BITMIME", 8) == 0)
                m->body = SMTP_BODY_8BITMIME;
            else
                return SMTP_PARSE_BAD_ARGS;
        } else if (klen == 8 && strncasecmp(q, "SMTPUTF8", 8) == 0) {
            if (val || utf8)
                return SMTP_PARSE_BAD_ARGS;
            utf8 = 1;
        } else if (klen == 4 && strncasecmp(q, "AUTH", 4) == 0) {
            if (!val || vlen == 0 || vlen > SMTP_PATH_MAX || m->auth[0])
                return SMTP_PARSE_BAD_ARGS;
            memcpy(m->auth, val, vlen);
            m->auth[vlen] = '\0';
        } else {
            return SMTP_PARSE_BAD_ARGS;
        }
        q += w;
        qlen -= w;
    }
    m->smtputf8 = utf8;
    return smtp_path_parse(args, len, 1, utf8, &m->path, NULL);
}

int smtp_rcpt_parse(const char *args, size_t len, int utf8, struct smtp_path *p)
{
    if (smtp_has_ctl(args, len))
        return SMTP_PARSE_BAD_ADDR;
    if (smtp_prefix(&args, &len, "TO:") < 0)
        return SMTP_PARSE_BAD_ARGS;
    size_t used = 0;
    int rc;
    if (len >= 12 && strncasecmp(args, "<postmaster>", 12) == 0) {
        /* RFC 5321 §4.1.1.3 and §4.5.1: "<Postmaster>" without a domain, any case; the
         * session supplies the domain. addr and local keep the spelling, domain is "". */
        memset(p, 0, sizeof *p);
        memcpy(p->local, args + 1, 10);
        memcpy(p->addr, args + 1, 10);
        used = 12;
    } else if ((rc = smtp_path_parse(args, len, 0, utf8, p, &used)) != SMTP_PARSE_OK) {
        return rc;
    }
    while (used < len && args[used] == ' ')
        used++;
    return used == len ? SMTP_PARSE_OK : SMTP_PARSE_BAD_ARGS;
}

int smtp_bdat_parse(const char *args, size_t len, uint64_t *size, int *last)
{
    size_t w = 0;
    while (w < len && args[w] != ' ')
        w++;
    if (smtp_number(args, w, size) < 0)
        return SMTP_PARSE_BAD_ARGS;
    size_t i = w;
    while (i < len && args[i] == ' ')
        i++;
    *last = 0;
    if (i == len)
        return SMTP_PARSE_OK;
    size_t rest = len - i;
    while (rest > 0 && args[i + rest - 1] == ' ')
        rest--;
    if (rest == 4 && strncasecmp(args + i, "LAST", 4) == 0) {
        *last = 1;
        return SMTP_PARSE_OK;
    }
    return SMTP_PARSE_BAD_ARGS;
}

int smtp_helo_parse(const char *args, size_t len, char *out, size_t outlen)
{
    while (len > 0 && args[len - 1] == ' ')
        len--;
    if (len == 0 || len > SMTP_DOMAIN_MAX || len + 1 > outlen)
        return SMTP_PARSE_BAD_ARGS;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)args[i];
        if (c <= 32 || c >= 127)
            return SMTP_PARSE_BAD_ARGS;
    }
    memcpy(out, args, len);
    out[len] = '\0';
    return SMTP_PARSE_OK;
}
