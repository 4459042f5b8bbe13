/* dsnmsg: RFC 3464 failure reports (see dsnmsg.h). */
#include "node/delivery/dsnmsg.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "directory/base/util.h"

#define HEADERS_MAX (64u * 1024u)
#define TEXT_MAX 400                 /* one diagnostic, after cleaning */

struct buf { char *p; size_t len, cap; };

static void put(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(struct buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if (b->len + (size_t)n + 1 > b->cap) {
        b->cap = (b->len + (size_t)n + 1) * 2;
        b->p = xrealloc(b->p, b->cap);
    }
    va_start(ap, fmt);
    vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

/* Printable ASCII only, bounded: remote text can never start a header line. */
static void clean(const char *in, char *out, size_t outlen)
{
    size_t k = 0;
    for (; in && *in && k + 1 < outlen && k < TEXT_MAX; in++) {
        unsigned char c = (unsigned char)*in;
        out[k++] = c >= 0x20 && c < 0x7f ? (char)c : ' ';
    }
    out[k] = '\0';
}

/* The enhanced status code in a diagnostic ("550 5.1.1 ..." or "4.4.7 ..."), else dflt. */
static void status_of(const char *diag, char *out, size_t outlen, const char *dflt)
{
    const char *p = diag;
    if (isdigit((unsigned char)p[0]) && isdigit((unsigned char)p[1]) &&
        isdigit((unsigned char)p[2]) && p[3] == ' ')
        p += 4;
    int a, b, c, used = 0;
    if (sscanf(p, "%1d.%3d.%3d%n", &a, &b, &c, &used) == 3 && used > 0 && (a == 2 || a == 4 ||
                                                                             a == 5)) {
        snprintf(out, outlen, "%d.%d.%d", a, b, c);
        return;
    }
    rn_strlcpy(out, dflt, outlen);
}

static void rfc5322_date(time_t t, char *out, size_t len)
{
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, len, "%a, %d %b %Y %H:%M:%S +0000", &tm);
}

char *dsnmsg_build(const char *fqdn, const char *qid, const char *orig_sender, time_t arrival,
                   time_t now, const struct dsnmsg_rcpt *r, size_t n, const char *orig_headers,
                   size_t hlen, size_t *len)
{
    struct buf b = {0};
    /* RFC 2046 §5.1.1: a boundary is at most 70 characters; the queue id and the time
     * at its front keep it unique when a long fqdn is cut. */
    char date[64], arr[64], boundary[71], sender[TEXT_MAX + 1];
    rfc5322_date(now, date, sizeof date);
    rfc5322_date(arrival, arr, sizeof arr);
    snprintf(boundary, sizeof boundary, "%s.%ld/%s", qid, (long)now, fqdn);
    clean(orig_sender, sender, sizeof sender);
    put(&b, "From: Mail Delivery System <MAILER-DAEMON@%s>\r\n", fqdn);
    put(&b, "To: <%s>\r\n", sender);
    put(&b, "Subject: Undelivered Mail Returned to Sender\r\n");
    put(&b, "Date: %s\r\n", date);
    put(&b, "Message-ID: <%s.dsn@%s>\r\n", qid, fqdn);
    put(&b, "Auto-Submitted: auto-replied\r\n");
    put(&b, "MIME-Version: 1.0\r\n");
    put(&b, "Content-Type: multipart/report; report-type=delivery-status;\r\n"
            "\tboundary=\"%s\"\r\n\r\n", boundary);
    put(&b, "This is a MIME-encapsulated message.\r\n\r\n");
    /* 1: for people */
    put(&b, "--%s\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n", boundary);
    put(&b, "This is the mail system at host %s.\r\n\r\n", fqdn);
    put(&b, "Your message (queue id %s) could not be delivered to one or more\r\n", qid);
    put(&b, "recipients. It is attached below.\r\n\r\n");
    for (size_t i = 0; i < n; i++) {
        char rc[TEXT_MAX + 1], dg[TEXT_MAX + 1];
        clean(r[i].rcpt, rc, sizeof rc);
        clean(r[i].diag, dg, sizeof dg);
        put(&b, "<%s>: %s\r\n", rc, dg);
    }
    put(&b, "\r\n");
    /* 2: for programs */
    put(&b, "--%s\r\nContent-Type: message/delivery-status\r\n\r\n", boundary);
    put(&b, "Reporting-MTA: dns; %s\r\nX-Relaynode-Queue-ID: %s\r\nArrival-Date: %s\r\n",
        fqdn, qid, arr);
    for (size_t i = 0; i < n; i++) {
        char rc[TEXT_MAX + 1], dg[TEXT_MAX + 1], rm[TEXT_MAX + 1], st[16];
        clean(r[i].rcpt, rc, sizeof rc);
        clean(r[i].diag, dg, sizeof dg);
        clean(r[i].remote, rm, sizeof rm);
        status_of(dg, st, sizeof st, "5.0.0");
        if (st[0] == '2')
            rn_strlcpy(st, "5.0.0", sizeof st);
        put(&b, "\r\nFinal-Recipient: rfc822; %s\r\nAction: failed\r\nStatus: %s\r\n", rc, st);
        if (rm[0]) {
            /* "name[ip]" -> name; a bare "[ip]" -> ip (never an empty field) */
            char host[TEXT_MAX + 1];
            rn_strlcpy(host, rm[0] == '[' ? rm + 1 : rm, sizeof host);
            host[strcspn(host, rm[0] == '[' ? "]" : "[")] = '\0';
            if (host[0])
                put(&b, "Remote-MTA: dns; %s\r\n", host);
        }
        bool smtp = isdigit((unsigned char)dg[0]) && isdigit((unsigned char)dg[1]) &&
                    isdigit((unsigned char)dg[2]) && dg[3] == ' ';
        put(&b, "Diagnostic-Code: %s; %s\r\n", smtp ? "smtp" : "x-local", dg);
        put(&b, "Last-Attempt-Date: %s\r\n", date);
    }
    put(&b, "\r\n");
    /* 3: the original headers, whole lines only, bounded, CRLF-normalised */
    put(&b, "--%s\r\nContent-Type: text/rfc822-headers\r\n\r\n", boundary);
    size_t take = hlen < HEADERS_MAX ? hlen : HEADERS_MAX;
    size_t start = 0;
    for (size_t i = 0; orig_headers && i < take; i++) {
        if (orig_headers[i] != '\n')
            continue;
        size_t end = i;
        if (end > start && orig_headers[end - 1] == '\r')
            end--;
        size_t l = end - start < 998 ? end - start : 998;
        char *line = xstrndup(orig_headers + start, l);
        for (char *c = line; *c; c++)
            if ((unsigned char)*c < 0x20 && *c != '\t')
                *c = ' ';
        put(&b, "%s\r\n", line);
        free(line);
        start = i + 1;
    }
    put(&b, "\r\n--%s--\r\n", boundary);
    *len = b.len;
    return b.p;
}
