/* headers: the pure half of end-of-headers processing. The header firewall reproduces
 * Exchange's (§9.1): without the matching ms-Exch-Accept-Headers-* right, routing and
 * organisation/forest headers a client sends are removed so it cannot forge trace or
 * internal-trust headers. Fields are handled whole (name line plus folded continuation
 * lines, RFC 5322 §2.2.3). */
#include "node/smtp/headers.h"

#include <string.h>
#include <stdio.h>
#include <strings.h>

/* Length of the field starting at p (through the CRLF that ends its last line). */
static size_t headers_field_len(const char *p, size_t len)
{
    size_t i = 0;
    for (;;) {
        const char *nl = memchr(p + i, '\n', len - i);
        if (!nl)
            return len;
        i = (size_t)(nl - p) + 1;
        if (i >= len || (p[i] != ' ' && p[i] != '\t'))
            return i;
    }
}

/* The offset just past the colon when the field at p is `name`, else 0. Blanks may stand
 * between the name and its colon (RFC 5322 §4.5.8 obs-optional) and readers honour them, so
 * "From :" and "Received :" must count for the sender check, the hop count and the firewall. */
static size_t headers_name_is(const char *p, size_t flen, const char *name)
{
    size_t n = strlen(name);
    if (flen <= n || strncasecmp(p, name, n) != 0)
        return 0;
    while (n < flen && (p[n] == ' ' || p[n] == '\t'))
        n++;
    return n < flen && p[n] == ':' ? n + 1 : 0;
}

static int headers_name_prefix(const char *p, size_t flen, const char *prefix)
{
    size_t n = strlen(prefix);
    if (flen <= n || strncasecmp(p, prefix, n) != 0)
        return 0;
    const char *colon = memchr(p, ':', flen);
    return colon && (size_t)(colon - p) > n;
}

size_t headers_count_received(const char *hdr, size_t len)
{
    size_t n = 0;
    for (size_t off = 0; off < len;) {
        size_t f = headers_field_len(hdr + off, len - off);
        if (headers_name_is(hdr + off, f, "Received"))
            n++;
        off += f;
    }
    return n;
}

size_t headers_firewall(const char *hdr, size_t len, const struct headers_accept *acc,
                        char *out)
{
    size_t w = 0;
    for (size_t off = 0; off < len;) {
        const char *p = hdr + off;
        size_t f = headers_field_len(p, len - off);
        int drop = 0;
        if (!acc->routing &&
            (headers_name_is(p, f, "Received") || headers_name_prefix(p, f, "Resent-")))
            drop = 1;
        if (!acc->organization && (headers_name_prefix(p, f, "X-Relaynode-Organization-") ||
                                   headers_name_prefix(p, f, "X-MS-Exchange-Organization-")))
            drop = 1;
        if (!acc->forest && (headers_name_prefix(p, f, "X-Relaynode-Forest-") ||
                             headers_name_prefix(p, f, "X-MS-Exchange-Forest-")))
            drop = 1;
        if (!drop) {
            memcpy(out + w, p, f);
            w += f;
        }
        off += f;
    }
    return w;
}

/* Extract the address from a field body: text inside <...> if present, else the body with
 * comments and whitespace removed. */
static int headers_addr_from(const char *b, size_t n, char *addr, size_t addrlen)
{
    size_t w = 0;
    int depth = 0, quoted = 0, angle = 0, have_angle = 0;
    for (size_t i = 0; i < n; i++)
        if (b[i] == '<')
            have_angle = 1;
    for (size_t i = 0; i < n; i++) {
        char c = b[i];
        if (quoted) {
            if (c == '\\' && i + 1 < n)
                i++;
            else if (c == '"')
                quoted = 0;
            if (!have_angle || angle) {
                if (w + 1 >= addrlen)
                    return -1;
                addr[w++] = c;
            }
            continue;
        }
        if (depth) {
            if (c == '(')
                depth++;
            else if (c == ')')
                depth--;
            continue;
        }
        if (c == '(') {
            depth = 1;
            continue;
        }
        if (c == '"')
            quoted = 1;
        if (have_angle) {
            if (c == '<') {
                angle = 1;
                w = 0;
                continue;
            }
            if (c == '>' && angle)
                break;
            if (!angle)
                continue;
        }
        if (c == ' ' || c == '\t' || c == '\r' || c == '\n')
            continue;
        if (w + 1 >= addrlen)
            return -1;
        addr[w++] = c;
    }
    addr[w] = '\0';
    return (w > 0 && strchr(addr, '@')) ? 0 : -1;
}

int headers_sender(const char *hdr, size_t len, char *addr, size_t addrlen)
{
    const char *from = NULL, *sender = NULL;
    size_t flen = 0, slen = 0;
    for (size_t off = 0; off < len;) {
        size_t f = headers_field_len(hdr + off, len - off), b;
        if (!sender && (b = headers_name_is(hdr + off, f, "Sender"))) {
            sender = hdr + off + b;
            slen = f - b;
        } else if (!from && (b = headers_name_is(hdr + off, f, "From"))) {
            from = hdr + off + b;
            flen = f - b;
        }
        off += f;
    }
    if (sender)
        return headers_addr_from(sender, slen, addr, addrlen);
    if (from)
        return headers_addr_from(from, flen, addr, addrlen);
    return -1;
}

int headers_stamp_format(const struct headers_stamp *s, time_t now, char *out, size_t outlen)
{
    char date[64];
    struct tm tm;
    gmtime_r(&now, &tm);
    /* RFC 5322 §3.3 date-time; English names regardless of locale */
    static const char *const wd[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static const char *const mo[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                     "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    snprintf(date, sizeof date, "%s, %d %s %04d %02d:%02d:%02d +0000", wd[tm.tm_wday],
             tm.tm_mday, mo[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
    int n = snprintf(out, outlen,
                     "Received: from %s ([%s]) by %s ([%s]) with %s id %s; %s\r\n"
                     "X-Relaynode-Organization-AuthAs: %s\r\n"
                     "X-Relaynode-Organization-AuthSource: %s\r\n"
                     "%s%s%s"
                     "X-Relaynode-Organization-AntispamBypass: %s\r\n",
                     s->helo, s->client_ip, s->fqdn, s->local_ip, s->with, s->queueid, date,
                     s->auth_as, s->fqdn,
                     s->mechanism ? "X-Relaynode-Organization-AuthMechanism: " : "",
                     s->mechanism ? s->mechanism : "", s->mechanism ? "\r\n" : "",
                     s->antispam_bypass ? "true" : "false");
    return (n < 0 || (size_t)n >= outlen) ? -1 : n;
}
