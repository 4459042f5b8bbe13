/* dnsname: domain names and smart hosts as the directory holds them. Before this module the
 * loader, relayctl and delivery each had their own copy and the copies disagreed (the loader
 * took '_' and "host:+25", relayctl did not); now there is one rule, stated in dnsname.h.
 * Every buffer is bounded: a name longer than DNSNAME_MAX is refused before it is copied. */
#include "directory/dnsname.h"
#include "directory/ipr.h"
#include "directory/base/util.h"
#include <stdbool.h>
#include <string.h>

/* LDH labels of 1..63 characters without a hyphen at either end; s is lowercase. */
static bool ldh_name(const char *s)
{
    size_t total = strlen(s);
    if (total == 0 || total > DNSNAME_MAX)
        return false;
    for (const char *label = s; label;) {
        const char *dot = strchr(label, '.');
        size_t n = dot ? (size_t)(dot - label) : strlen(label);
        if (n == 0 || n > 63 || label[0] == '-' || label[n - 1] == '-')
            return false;
        for (size_t i = 0; i < n; i++) {
            char c = label[i];
            if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'))
                return false;
        }
        label = dot ? dot + 1 : NULL;
    }
    return true;
}

int domain_name_check(const char *in, unsigned allow, char *out, size_t outlen, char *err,
                      size_t errlen)
{
    char s[DNSNAME_BUFLEN + 1];          /* one more for the trailing dot dropped below */
    size_t len = strlen(in);
    bool ok = len < sizeof s;
    if (ok) {
        memcpy(s, in, len + 1);
        rn_strlower(s);
        if (len > 1 && s[len - 1] == '.')
            s[--len] = '\0';
        const char *name = s;
        if ((allow & DNSNAME_WILDCARD) && strncmp(s, "*.", 2) == 0)
            name = s + 2;
        ok = len < outlen &&
             (((allow & DNSNAME_STAR) && strcmp(s, "*") == 0) || ldh_name(name));
    }
    if (!ok)
        return rn_err(err, errlen, "'%s' is not a domain name", in);
    memcpy(out, s, len + 1);
    return 0;
}

/* The port after "host:" or "[address]:": digits only, 1..65535. */
static bool port_parse(const char *p, unsigned *port)
{
    size_t n = strspn(p, "0123456789");
    if (n == 0 || n > 5 || p[n] != '\0')
        return false;
    unsigned v = 0;
    for (size_t i = 0; i < n; i++)
        v = v * 10 + (unsigned)(p[i] - '0');
    if (v < 1 || v > 65535)
        return false;
    *port = v;
    return true;
}

int smarthost_parse(const char *spec, char *host, size_t hostlen, unsigned *port, char *err,
                    size_t errlen)
{
    const char *start = spec, *end, *rest;
    bool bracketed = spec[0] == '[';
    if (bracketed) {
        start = spec + 1;
        end = strchr(start, ']');
        if (!end || end == start || (end[1] != '\0' && end[1] != ':'))
            return rn_err(err, errlen, "'%s' is not host[:port]", spec);
        rest = end + 1;
    } else {
        end = start + strcspn(start, ":");
        if (end == start)
            return rn_err(err, errlen, "'%s' has no host", spec);
        rest = end;
    }
    size_t n = (size_t)(end - start);
    char h[DNSNAME_BUFLEN], norm[DNSNAME_BUFLEN];
    if (n >= sizeof h || n >= hostlen)
        return rn_err(err, errlen, "'%s' is not host[:port]", spec);
    memcpy(h, start, n);
    h[n] = '\0';
    ipr_addr ip;
    bool v4 = false;
    bool is_ip = ipr_addr_parse(h, &ip, &v4) == 0;
    if (bracketed ? !is_ip : !(is_ip && v4) && domain_name_check(h, 0, norm, sizeof norm,
                                                                 NULL, 0) != 0)
        return rn_err(err, errlen, "'%s' is not host[:port]", spec);
    unsigned p = 25;
    if (*rest == ':' && !port_parse(rest + 1, &p))
        return rn_err(err, errlen, "'%s' has a bad port", spec);
    memcpy(host, h, n + 1);
    *port = p;
    return 0;
}

int smarthost_check(const char *spec, char *err, size_t errlen)
{
    char host[DNSNAME_BUFLEN];
    unsigned port;
    return smarthost_parse(spec, host, sizeof host, &port, err, errlen);
}
