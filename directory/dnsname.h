/* dnsname: the name rules of the directory's routing entries, each written once: accepted
 * domains and send connector address spaces (domain_name_check) and smart hosts
 * (smarthost_parse). The loader, relayctl and delivery all call these, so a value one of them
 * accepts is a value the others accept. Pure.
 *
 * The one rule for names: RFC 1035 / RFC 5321 letter-digit-hyphen labels (1..63 characters,
 * no hyphen at either end of a label, at most 253 characters), compared lowercase, one
 * trailing dot dropped. An underscore is refused: Exchange takes accepted domains as SMTP
 * domains, and our SMTP parser (node/smtp/smtp_parse.c) refuses '_' in an address's domain,
 * so an accepted domain holding one could never match a recipient. */
#ifndef RN_DNSNAME_H
#define RN_DNSNAME_H
#include <stddef.h>

#define DNSNAME_MAX 253          /* characters of a name, without "*." and the trailing dot */
#define DNSNAME_BUFLEN 256       /* room for a checked name: "*." + DNSNAME_MAX + NUL */

enum {
    DNSNAME_WILDCARD = 1,        /* also "*.example.com": its subdomains only */
    DNSNAME_STAR = 2,            /* also a bare "*": every domain (address spaces) */
};

/* Check a domain name and write its stored form (lowercase, no trailing dot) to out, which
 * holds at least DNSNAME_BUFLEN bytes. `allow` adds the DNSNAME_* forms. -1 with
 * "'<in>' is not a domain name" (the caller names the attribute or flag). */
int domain_name_check(const char *in, unsigned allow, char *out, size_t outlen, char *err,
                      size_t errlen);

/* A smart host: "host", "host:port", "[address]" or "[address]:port". host is a DNS name
 * (the rule above, no wildcard) or an IPv4 address; a bracketed address is an IPv6 or IPv4
 * literal; port is 1..65535 in decimal digits (no sign, no space), 25 when absent. Writes
 * the host as given (brackets removed) to host and the port to *port. -1 with
 * "'<spec>' has no host", "'<spec>' has a bad port" or "'<spec>' is not host[:port]". */
int smarthost_parse(const char *spec, char *host, size_t hostlen, unsigned *port, char *err,
                    size_t errlen);
/* smarthost_parse without the results. */
int smarthost_check(const char *spec, char *err, size_t errlen);
#endif
