/* Unit tests for dnsname: the one rule for accepted domains, address spaces and host names
 * (LDH labels, no underscore, "*." and "*" only where allowed, stored lowercase without the
 * trailing dot, the length limits) and for smart hosts (host, host:port, [address],
 * [address]:port; digits-only ports 1..65535). Named table cases, good and bad. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "directory/dnsname.h"
#include "directory/base/util.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))
#define W DNSNAME_WILDCARD
#define S DNSNAME_STAR

static void domain_names(void **state)
{
    (void)state;
    char l63[64], l64[65], long253[254], long254[255];
    memset(l63, 'a', 63), l63[63] = '\0';
    memset(l64, 'a', 64), l64[64] = '\0';
    /* 63 + 1 + 63 + 1 + 63 + 1 + 61 = 253 characters */
    memset(long253, 'a', 253), long253[253] = '\0';
    long253[63] = long253[127] = long253[191] = '.';
    memcpy(long254, long253, 253), long254[253] = 'a', long254[254] = '\0';
    const struct { const char *name, *in; unsigned allow; const char *out; } cases[] = {
        {"plain", "example.com", 0, "example.com"},
        {"one label", "localhost", 0, "localhost"},
        {"digits and hyphens", "mx-1.0a.example", 0, "mx-1.0a.example"},
        {"lowercased", "EXAMPLE.COM", 0, "example.com"},
        {"trailing dot dropped", "example.com.", 0, "example.com"},
        {"subdomains when allowed", "*.Example.com", W, "*.example.com"},
        {"subdomains not allowed", "*.example.com", 0, NULL},
        {"star when allowed", "*", S, "*"},
        {"star not allowed", "*", W, NULL},
        {"star is not a pattern prefix", "*example.com", W | S, NULL},
        {"empty", "", W | S, NULL},
        {"only a dot", ".", 0, NULL},
        {"leading dot", ".example.com", 0, NULL},
        {"empty label", "a..example", 0, NULL},
        {"two trailing dots", "example.com..", 0, NULL},
        {"underscore", "_dmarc.example.com", 0, NULL},
        {"underscore inside", "bad_domain.example", W, NULL},
        {"label starting with a hyphen", "-a.example", 0, NULL},
        {"label ending with a hyphen", "a-.example", 0, NULL},
        {"last label ending with a hyphen", "example.com-", 0, NULL},
        {"space", "exa mple.com", 0, NULL},
        {"non-ASCII", "caf\xc3\xa9.example", 0, NULL},
        {"63-character label", l63, 0, l63},
        {"64-character label", l64, 0, NULL},
        {"253 characters", long253, 0, long253},
        {"254 characters", long254, 0, NULL},
        {"wildcard over 253 characters", NULL, W, long253},   /* filled below */
    };
    for (size_t i = 0; i < N(cases); i++) {
        char in[300], out[DNSNAME_BUFLEN] = "", err[RN_ERRLEN] = "";
        if (cases[i].in)
            rn_strlcpy(in, cases[i].in, sizeof in);
        else
            snprintf(in, sizeof in, "*.%s", long253);
        int rc = domain_name_check(in, cases[i].allow, out, sizeof out, err, sizeof err);
        char want[300];
        if (cases[i].in)
            rn_strlcpy(want, cases[i].out ? cases[i].out : "", sizeof want);
        else
            snprintf(want, sizeof want, "*.%s", long253);
        if (cases[i].out ? rc != 0 || strcmp(out, want) != 0 : rc != -1)
            fail_msg("%s: rc %d out '%s' err '%s'", cases[i].name, rc, out, err);
        if (!cases[i].out) {
            char msg[400];
            snprintf(msg, sizeof msg, "'%s' is not a domain name", in);
            if (strncmp(err, msg, sizeof err - 1) != 0)
                fail_msg("%s: message '%s'", cases[i].name, err);
        }
    }
    char small[8];
    assert_int_equal(domain_name_check("example.com", 0, small, sizeof small, NULL, 0), -1);
}

static void smart_hosts(void **state)
{
    (void)state;
    const struct { const char *name, *spec, *host; unsigned port; const char *err; } cases[] = {
        {"name", "smart.example.net", "smart.example.net", 25, NULL},
        {"name kept as written", "Smart.Example.NET.", "Smart.Example.NET.", 25, NULL},
        {"name and port", "relay.partner.example.net:2525", "relay.partner.example.net", 2525,
         NULL},
        {"IPv4 and port", "127.0.0.1:2525", "127.0.0.1", 2525, NULL},
        {"IPv6 and port", "[2001:db8::1]:587", "2001:db8::1", 587, NULL},
        {"bracketed IPv4", "[192.0.2.7]", "192.0.2.7", 25, NULL},
        {"port 65535", "h:65535", "h", 65535, NULL},
        {"empty", "", NULL, 0, "'' has no host"},
        {"port alone", ":25", NULL, 0, "':25' has no host"},
        {"empty port", "host:", NULL, 0, "'host:' has a bad port"},
        {"port 0", "host:0", NULL, 0, "'host:0' has a bad port"},
        {"port 70000", "host:70000", NULL, 0, "'host:70000' has a bad port"},
        {"port 2x", "host:2x", NULL, 0, "'host:2x' has a bad port"},
        {"port with a sign", "host:+25", NULL, 0, "'host:+25' has a bad port"},
        {"port with a space", "host: 25", NULL, 0, "'host: 25' has a bad port"},
        {"two ports", "host:25:26", NULL, 0, "'host:25:26' has a bad port"},
        {"bare IPv6", "2001:db8::1", NULL, 0, "'2001:db8::1' has a bad port"},
        {"empty brackets", "[]", NULL, 0, "'[]' is not host[:port]"},
        {"unclosed bracket", "[::1", NULL, 0, "'[::1' is not host[:port]"},
        {"text after the bracket", "[::1]x", NULL, 0, "'[::1]x' is not host[:port]"},
        {"name in brackets", "[relay.example]", NULL, 0, "'[relay.example]' is not host[:port]"},
        {"bad IPv6 port", "[::1]:99999", NULL, 0, "'[::1]:99999' has a bad port"},
        {"underscore", "bad_host.example", NULL, 0, "'bad_host.example' is not host[:port]"},
        {"wildcard", "*.example.net:25", NULL, 0, "'*.example.net:25' is not host[:port]"},
        {"space in the name", "smart host", NULL, 0, "'smart host' is not host[:port]"},
    };
    for (size_t i = 0; i < N(cases); i++) {
        char host[DNSNAME_BUFLEN] = "", err[RN_ERRLEN] = "";
        unsigned port = 0;
        int rc = smarthost_parse(cases[i].spec, host, sizeof host, &port, err, sizeof err);
        if (cases[i].err ? rc != -1 || strcmp(err, cases[i].err) != 0
                         : rc != 0 || strcmp(host, cases[i].host) != 0 || port != cases[i].port)
            fail_msg("%s: rc %d host '%s' port %u err '%s'", cases[i].name, rc, host, port, err);
        if (smarthost_check(cases[i].spec, NULL, 0) != rc)
            fail_msg("%s: smarthost_check disagrees", cases[i].name);
    }
    char tiny[4];
    unsigned port;
    assert_int_equal(smarthost_parse("relay.example:25", tiny, sizeof tiny, &port, NULL, 0), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(domain_names),
                                       cmocka_unit_test(smart_hosts)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
