/* bootstrap: the key = value file a node and relayctl start from, as a declarative table
 * {key, type, default, min, max, where, doc} (docs/style.md rule 15). Each value is parsed once,
 * here, into its typed field of struct rn_bootstrap; the modules that act on it (`where`) read
 * that field and never re-parse. Unknown keys, duplicates, lines without '=' and values that
 * are not of the key's type or outside its range are errors naming path:line, so a typo can
 * never silently fall back to a default. The same table fills the defaults and drives
 * bootstrap_describe (relaynode --help-config). */
#include "directory/bootstrap.h"
#include "directory/base/util.h"
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define BOOT_LINE_MAX 4096
#define BOOT_SHOW_MAX 40     /* octets of a bad value quoted back in an error */

/* How a value is written and which field type it fills. */
enum bootkind {
    BK_STRING,    /* char *, any text without control characters */
    BK_PATH,      /* char *, a file or directory; "" = unset. Opened (and checked) by `where` */
    BK_BOOL,      /* bool, "yes" or "no" */
    BK_UINT,      /* unsigned, decimal digits in min..max */
    BK_SECONDS,   /* unsigned, a duration in whole seconds in min..max */
    BK_MILLIS,    /* unsigned, a duration in milliseconds in min..max */
    BK_BYTES,     /* uint64_t, a size in bytes in min..max */
    BK_ENUM,      /* an enum (unsigned-sized): the index of the value in words */
    BK_LISTEN,    /* struct boot_endpoint: "", PORT (loopback), IPv4:PORT or [IPv6]:PORT */
};

struct bootkey {
    const char *key;            /* also the field name in struct rn_bootstrap */
    enum bootkind kind;
    size_t offset;
    const char *def;            /* as a file would write it; NULL: computed (hostname) */
    uint64_t min, max;          /* numbers: the accepted range, inclusive */
    const char *const *words;   /* BK_ENUM: the accepted words in enum order, NULL-ended */
    bool nocase;                /* BK_ENUM: words match in any ASCII case */
    const char *where;          /* the module(s) acting on the value */
    const char *doc;
};

_Static_assert(sizeof(enum boot_sasl_mech) == sizeof(unsigned), "enum fields are unsigned");
_Static_assert(sizeof(enum boot_watch) == sizeof(unsigned), "enum fields are unsigned");
_Static_assert(sizeof(enum boot_milter_default) == sizeof(unsigned), "enum fields are unsigned");
_Static_assert(sizeof(enum boot_profile) == sizeof(unsigned), "enum fields are unsigned");

static const char *const sasl_words[] = {"", "EXTERNAL", NULL};
static const char *const watch_words[] = {"auto", "persist", "poll", "off", NULL};
static const char *const milter_words[] = {"tempfail", "accept", "reject", NULL};
static const char *const profile_words[] = {"relay", "ad", NULL};

#define O(f) offsetof(struct rn_bootstrap, f)
#define STR(k, def, where, doc) {#k, BK_STRING, O(k), def, 0, 0, NULL, false, where, doc}
#define PATH(k, def, where, doc) {#k, BK_PATH, O(k), def, 0, 0, NULL, false, where, doc}
#define NUM(k, kind, def, lo, hi, where, doc) {#k, kind, O(k), def, lo, hi, NULL, false, where, doc}
#define BOOL(k, def, where, doc) {#k, BK_BOOL, O(k), def, 0, 0, NULL, false, where, doc}
#define ENUM(k, w, nc, def, where, doc) {#k, BK_ENUM, O(k), def, 0, 0, w, nc, where, doc}
#define DAY (24 * 3600)
static const struct bootkey keys[] = {
    STR(uri, "ldap://127.0.0.1:389", "ldapdir", "directory URI(s), space-separated, tried in order"),
    STR(bind_dn, "", "ldapdir", "simple-bind identity (empty with sasl_mech = EXTERNAL)"),
    PATH(bind_password_file, "", "ldapdir", "file whose first line is the bind password"),
    ENUM(sasl_mech, sasl_words, true, "", "ldapdir", "\"\" for simple bind, or EXTERNAL (ldapi:// peer credentials)"),
    STR(base_dn, "", "ldapdir", "the relay subtree, e.g. ou=Relay,dc=example,dc=com"),
    STR(user_base, "", "ldapdir", "where users and groups live; empty = parent of base_dn"),
    STR(user_filter, "(|(uid=%s)(mail=%s))", "ldapdir", "login filter; %s = escaped login"),
    STR(node, "node1", "ldapdir", "this node's cn under the relay subtree"),
    STR(hostname, NULL, "smtp, delivery", "default FQDN for connectors without relayFqdn"),
    PATH(spool_dir, "/var/spool/relaynode", "spool", "durable message spool"),
    STR(log, "stderr", "log", "stderr, syslog or a file path"),
    STR(user, "", "daemon", "when started as root: the user the node runs as once its listeners are bound (keeping only CAP_NET_BIND_SERVICE); empty = no change, and a node started as root then refuses to run without --allow-root"),
    STR(group, "", "daemon", "the group to run as with user; empty = the user's primary group"),
    PATH(ldap_ca_file, "", "ldapdir", "PEM CA certificate(s) that sign the directory's certificate (ldaps:// and StartTLS); empty = the system's trust store"),
    BOOL(ldap_starttls, "no", "ldapdir", "yes: StartTLS on every ldap:// URI before any bind (then every URI must be ldap://); the certificate and host name are always verified"),
    BOOL(allow_cleartext_directory, "no", "smtp", "yes: offer AUTH PLAIN/LOGIN even when the directory connection is in clear (not ldaps://, StartTLS or ldapi://); logged as a warning at start"),
    NUM(ldap_timeout, BK_SECONDS, "5", 1, 3600, "ldapdir, ldapsync", "seconds per directory operation"),
    PATH(tls_cert, "", "tlsctx", "PEM certificate for STARTTLS; empty = none"),
    PATH(tls_key, "", "tlsctx", "PEM private key for STARTTLS"),
    PATH(tls_ca_file, "", "tlsctx", "PEM CA certificate(s) that partner certificates (Domain Secure) and RequireTLS smart hosts are verified against; empty = the system's trust store; read again on SIGHUP (a file that no longer loads keeps the CAs in use)"),
    PATH(tls_cert_dir, "", "tlsctx", "directory of named STARTTLS certificates NAME.pem + NAME.key (relayTlsCertificateName)"),
    STR(cluster_bind, "", "cluster", "ZeroMQ endpoint the bus binds; empty = the node's relayClusterEndpoint"),
    PATH(protocol_log_dir, "", "log", "per-connector protocol logs; empty = off"),
    NUM(max_command_line, BK_UINT, "512", 64, 1 << 20, "smtp", "octets incl. CRLF (RFC 5321 4.5.3.1.4)"),
    NUM(max_text_line, BK_UINT, "1000", 64, 1 << 20, "smtp", "octets incl. CRLF (RFC 5321 4.5.3.1.6)"),
    NUM(drain_timeout, BK_SECONDS, "30", 0, DAY, "daemon", "seconds SIGTERM waits for open sessions"),
    NUM(max_sessions, BK_UINT, "0", 0, 1000000, "daemon, smtp", "concurrent SMTP sessions on the node, past which 421 4.3.2; 0 = derived from RLIMIT_NOFILE (2 descriptors a session after a reserve of 64 + delivery_concurrency); a value that does not fit stops the start"),
    STR(dns_server, "", "dnsres", "resolver ip[:port],... for MX lookups; empty = resolv.conf"),
    NUM(queue_lifetime, BK_SECONDS, "172800", 1, 365 * DAY, "queue", "seconds a message is retried before it bounces"),
    NUM(retry_min, BK_SECONDS, "60", 1, DAY, "queue", "first retry delay in seconds (doubles per attempt)"),
    NUM(retry_max, BK_SECONDS, "3600", 1, 7 * DAY, "queue", "longest retry delay in seconds"),
    NUM(delivery_concurrency, BK_UINT, "50", 1, 10000, "queue", "messages delivered at once"),
    NUM(mx_port, BK_UINT, "25", 1, 65535, "delivery", "TCP port for deliveries by MX (tests use a loopback one)"),
    BOOL(queue_hold, "no", "queue", "yes: accept and queue, deliver nothing (maintenance)"),
    PATH(smarthost_auth_file, "", "delivery", "lines 'host[:port] user password' for AUTH to smart hosts"),
    NUM(spool_reserve, BK_BYTES, "16777216", 0, UINT64_MAX, "smtp", "bytes kept free: below it MAIL gets 452 4.3.1"),
    NUM(max_stale, BK_SECONDS, "0", 0, 365 * DAY, "daemon", "seconds the last good config serves while the directory is down; then 421/451 4.3.2; 0 = no limit"),
    PATH(cluster_secret_key_file, "", "cluster", "file with this node's Z85 CURVE secret key (mode 600); empty = no cluster bus"),
    NUM(cluster_heartbeat_ms, BK_MILLIS, "1000", 50, 60000, "cluster", "milliseconds between heartbeats on the bus"),
    ENUM(directory_watch, watch_words, false, "auto", "ldapsync", "change watcher: auto (persist, else poll), persist, poll, off"),
    NUM(directory_poll_interval, BK_SECONDS, "10", 1, 3600, "ldapsync", "seconds between polls of contextCSN (poll mode, probes)"),
    PATH(gssapi_keytab, "", "saslauth", "keytab for AUTH GSSAPI on Integrated connectors; empty = GSSAPI never offered"),
    STR(gssapi_service, "smtp", "saslauth", "service part of the GSSAPI principal service/<connector FQDN>@REALM"),
    STR(gssapi_realm, "", "saslauth", "Kerberos realm whose principals may log in (user@REALM -> user); empty = GSSAPI logins refused"),
    {"metrics_listen", BK_LISTEN, O(metrics_listen), "", 1, 65535, NULL, false, "metrics", "Prometheus endpoint (GET /metrics): PORT listens on 127.0.0.1, IPv4:PORT or [IPv6]:PORT where written (a non-loopback address exposes the counters to that network); empty = off"},
    STR(milter, "", "milter", "content filters (Sendmail milter protocol 6), space-separated unix:/path or inet:IP:port ([IPv6]), asked in order for every message of a session without ms-Exch-Bypass-Anti-Spam on a connector with relayMilterEnabled; empty = none"),
    NUM(milter_connect_timeout, BK_SECONDS, "5", 1, 300, "milter", "seconds to connect to a filter; then milter_default_action"),
    NUM(milter_command_timeout, BK_SECONDS, "30", 1, 3600, "milter", "seconds a filter may take to answer one step (SMFIR_PROGRESS restarts it); then milter_default_action"),
    ENUM(milter_default_action, milter_words, false, "tempfail", "milter", "a filter that is down, slow or broken: tempfail (451 4.7.1), accept (logged) or reject (550 5.7.1)"),
    ENUM(directory_profile, profile_words, false, "relay", "ldapdir, ldapsync", "relay (the relay schema under base_dn) or ad (an Exchange organisation in Active Directory: connectors, accepted domains and send connectors from the configuration naming context, permissions from nTSecurityDescriptor, tokens from tokenGroups; docs/ad-profile.md)"),
    STR(ad_server, "", "ldapdir", "ad profile: the cn of this node's msExchExchangeServer object; empty = node"),
    NUM(directory_ad_poll_ms, BK_MILLIS, "1000", 50, 60000, "ldapsync", "ad profile: milliseconds between polls of the root DSE's highestCommittedUSN (besides the change notification search)"),
};
#define NKEYS (sizeof keys / sizeof keys[0])

static void *field(const struct rn_bootstrap *b, const struct bootkey *k)
{
    return (char *)b + k->offset;
}

static const struct bootkey *key_lookup(const char *key)
{
    for (size_t i = 0; i < NKEYS; i++)
        if (!strcmp(keys[i].key, key)) return &keys[i];
    return NULL;
}

/* " seconds" etc.: the unit a range is given in. */
static const char *kind_unit(enum bootkind kind)
{
    switch (kind) {
    case BK_SECONDS: return " seconds";
    case BK_MILLIS: return " ms";
    case BK_BYTES: return " bytes";
    default: return "";
    }
}

/* An enum's words as "auto, persist, poll or off" ("" shown quoted) into buf. */
static void words_format(const struct bootkey *k, char *buf, size_t len)
{
    size_t n = 0, used = 0;
    while (k->words[n]) n++;
    buf[0] = '\0';
    for (size_t i = 0; i < n && used < len; i++) {
        const char *w = *k->words[i] ? k->words[i] : "\"\"";
        int r = snprintf(buf + used, len - used, "%s%s", i == 0 ? "" : i + 1 == n ? " or " : ", ",
                         w);
        if (r < 0) break;
        used += (size_t)r;
    }
}

/* Decimal digits only (no sign, space or suffix) into *out: 0, or -1 when s is not a
 * number, -2 when it exceeds 64 bits. */
static int parse_u64(const char *s, uint64_t *out)
{
    if (!*s) return -1;
    uint64_t v = 0;
    for (const char *p = s; *p; p++) {
        if (*p < '0' || *p > '9') return -1;
        unsigned d = (unsigned)(*p - '0');
        if (v > (UINT64_MAX - d) / 10) return -2;
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}

/* metrics_listen: "" (off), "PORT" (127.0.0.1), "a.b.c.d:PORT" or "[v6]:PORT"; literals
 * only (no host names: nothing is resolved) and no wildcard is implied. -1 when malformed. */
static int listen_parse(const char *value, struct boot_endpoint *out)
{
    struct boot_endpoint e = {"", 0};
    if (!*value) {
        *out = e;
        return 0;
    }
    const char *port = value, *colon = strrchr(value, ':');
    if (colon) {
        size_t hlen = (size_t)(colon - value);
        const char *h = value;
        bool v6 = hlen >= 2 && value[0] == '[' && value[hlen - 1] == ']';
        if (v6)
            h++, hlen -= 2;
        if (hlen == 0 || hlen >= sizeof e.host)
            return -1;
        memcpy(e.host, h, hlen);
        e.host[hlen] = '\0';
        unsigned char a[16];
        if (inet_pton(v6 ? AF_INET6 : AF_INET, e.host, a) != 1)
            return -1;
        port = colon + 1;
    } else {
        rn_strlcpy(e.host, "127.0.0.1", sizeof e.host);
    }
    uint64_t p = 0;
    if (parse_u64(port, &p) != 0 || p < 1 || p > 65535)
        return -1;
    e.port = (unsigned)p;
    *out = e;
    return 0;
}

/* Parse `value` as k's type and store it in *b; -1 with "key: reason" and *b untouched. */
static int value_store(struct rn_bootstrap *b, const struct bootkey *k, const char *value,
                       char *err, size_t errlen)
{
    for (const char *p = value; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            return rn_err(err, errlen, "%s: control character in value", k->key);
    void *f = field(b, k);
    switch (k->kind) {
    case BK_STRING:
    case BK_PATH: {
        char **s = f;
        free(*s);
        *s = xstrdup(value);
        return 0;
    }
    case BK_BOOL:
        if (strcmp(value, "yes") != 0 && strcmp(value, "no") != 0)
            return rn_err(err, errlen, "%s: \"%.*s\" is not yes or no", k->key, BOOT_SHOW_MAX,
                          value);
        *(bool *)f = strcmp(value, "yes") == 0;
        return 0;
    case BK_ENUM:
        for (unsigned i = 0; k->words[i]; i++)
            if (k->nocase ? rn_strieq(value, k->words[i]) : strcmp(value, k->words[i]) == 0) {
                *(unsigned *)f = i;
                return 0;
            }
        char words[256];
        words_format(k, words, sizeof words);
        return rn_err(err, errlen, "%s: \"%.*s\" is not %s", k->key, BOOT_SHOW_MAX, value, words);
    case BK_LISTEN:
        if (listen_parse(value, f) < 0)
            return rn_err(err, errlen, "%s: \"%.*s\" is not PORT, IPv4:PORT or [IPv6]:PORT "
                          "(port 1..65535, addresses as literals)", k->key, BOOT_SHOW_MAX, value);
        return 0;
    default:
        break;
    }
    uint64_t v = 0;
    int r = parse_u64(value, &v);
    if (r == -1 || r == -2 || v < k->min || v > k->max)
        return rn_err(err, errlen, "%s: \"%.*s\" is %s (%" PRIu64 "..%" PRIu64 "%s)", k->key,
                      BOOT_SHOW_MAX, value, r == -1 ? "not a number" : "out of range", k->min,
                      k->max, kind_unit(k->kind));
    if (k->kind == BK_BYTES)
        *(uint64_t *)f = v;
    else
        *(unsigned *)f = (unsigned)v;    /* every such max fits (numbers_range_edges) */
    return 0;
}

/* Every field to its default, parsed by the same rules as a file's value (test_bootstrap
 * checks each one). The one computed default, hostname, is this host's name, or "localhost"
 * when there is none fit for the file. */
static void set_defaults(struct rn_bootstrap *b)
{
    memset(b, 0, sizeof *b);
    for (size_t i = 0; i < NKEYS; i++) {
        char host[256] = "localhost", e[RN_ERRLEN];
        const char *def = keys[i].def;
        if (!def) {
            if (gethostname(host, sizeof host - 1) != 0) rn_strlcpy(host, "localhost", sizeof host);
            host[sizeof host - 1] = '\0';
            def = host;
        }
        if (value_store(b, &keys[i], def, e, sizeof e) < 0)
            value_store(b, &keys[i], "localhost", e, sizeof e);
    }
}

int bootstrap_set(struct rn_bootstrap *b, const char *key, const char *value, char *err,
                  size_t errlen)
{
    const struct bootkey *k = key_lookup(key);
    if (!k) return rn_err(err, errlen, "unknown key '%s'", key);
    return value_store(b, k, value, err, errlen);
}

static char *trim(char *s)
{
    while (*s == ' ' || *s == '\t') s++;
    size_t n = strlen(s);
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r')) s[--n] = '\0';
    return s;
}

/* One line of f into buf (BOOT_LINE_MAX + 1 bytes) without its '\n'. 1: a line; 0: end of
 * file; -1: longer than BOOT_LINE_MAX; -2: it holds a NUL byte, which would hide the rest of
 * the line from this parser but not from an editor or grep (found by
 * tests/fuzz/fuzz_bootstrap): the file is refused, never cut short. */
static int read_line(FILE *f, char *buf, size_t *len)
{
    size_t n = 0;
    int c;
    bool nul = false;
    while ((c = getc(f)) != EOF && c != '\n') {
        if (n == BOOT_LINE_MAX) return nul ? -2 : -1;
        nul |= c == '\0';
        buf[n++] = (char)c;
    }
    if (c == EOF && n == 0) return 0;
    buf[n] = '\0';
    *len = n;
    return nul ? -2 : 1;
}

int bootstrap_load(const char *path, struct rn_bootstrap *b, char *err, size_t errlen)
{
    set_defaults(b);
    if (!path) return 0;
    FILE *f = fopen(path, "r");
    if (!f) {
        rn_err(err, errlen, "%s: %s", path, strerror(errno));
        bootstrap_clear(b);
        return -1;
    }
    bool seen[NKEYS] = {false};
    char line[BOOT_LINE_MAX + 1];
    unsigned lineno = 0;
    int rc = 0, got;
    size_t len;
    while ((got = read_line(f, line, &len)) != 0) {
        lineno++;
        if (got == -1) {
            rc = rn_err(err, errlen, "%s:%u: line longer than %d octets", path, lineno,
                        BOOT_LINE_MAX);
            break;
        }
        if (got == -2) {
            rc = rn_err(err, errlen, "%s:%u: NUL byte in line", path, lineno);
            break;
        }
        char *s = trim(line);
        if (!*s || *s == '#') continue;
        char *eq = strchr(s, '=');
        if (!eq) {
            rc = rn_err(err, errlen, "%s:%u: expected 'key = value'", path, lineno);
            break;
        }
        *eq = '\0';
        char *key = trim(s), *value = trim(eq + 1);
        const struct bootkey *k = key_lookup(key);
        if (!k) {
            rc = rn_err(err, errlen, "%s:%u: unknown key '%s'", path, lineno, key);
            break;
        }
        if (seen[k - keys]) {
            rc = rn_err(err, errlen, "%s:%u: duplicate key '%s'", path, lineno, key);
            break;
        }
        seen[k - keys] = true;
        if (k->offset == O(max_sessions))
            b->max_sessions_line = lineno;   /* bootstrap_fit_sessions names it */
        if (k->offset == O(milter))
            b->milter_line = lineno;         /* the node's endpoint check names it */
        if (k->offset == O(directory_profile))
            b->directory_profile_line = lineno;
        char e[RN_ERRLEN];
        if (value_store(b, k, value, e, sizeof e) < 0) {
            rc = rn_err(err, errlen, "%s:%u: %s", path, lineno, e);
            break;
        }
    }
    fclose(f);
    /* The cluster bus finds its peers and their keys in relayNode entries (relayClusterEndpoint,
     * relayClusterPublicKey), which an Exchange organisation does not have: refused rather
     * than a bus that would never see a peer (docs/ad-profile.md). */
    if (rc == 0 && b->directory_profile == BOOT_PROFILE_AD && b->cluster_secret_key_file &&
        *b->cluster_secret_key_file)
        rc = rn_err(err, errlen, "%s:%u: directory_profile: ad cannot run the cluster bus "
                    "(cluster_secret_key_file is set): the Exchange schema has no node "
                    "endpoints or keys", path, b->directory_profile_line);
    if (rc < 0) bootstrap_clear(b);
    return rc;
}

int bootstrap_fit_sessions(const struct rn_bootstrap *b, const char *path, uint64_t nofile,
                           unsigned *out, char *err, size_t errlen)
{
    uint64_t reserve = BOOT_FD_RESERVE + (uint64_t)b->delivery_concurrency;
    uint64_t fit = nofile > reserve ? (nofile - reserve) / BOOT_FD_PER_SESSION : 0;
    if (fit > 1000000)
        fit = 1000000;             /* the key's own maximum */
    if (fit < 1)
        return rn_err(err, errlen, "%s: RLIMIT_NOFILE %" PRIu64 " leaves no descriptor for a "
                      "session (%" PRIu64 " reserved for the spool, delivery, LDAP and the bus; "
                      "raise LimitNOFILE or lower delivery_concurrency)", path ? path : "-",
                      nofile, reserve);
    if (b->max_sessions == 0) {
        *out = (unsigned)fit;
        return 0;
    }
    if (b->max_sessions > fit)
        return rn_err(err, errlen, "%s:%u: max_sessions: %u does not fit RLIMIT_NOFILE %" PRIu64
                      " (%d descriptors a session after %" PRIu64 " reserved): at most %" PRIu64,
                      path ? path : "-", b->max_sessions_line, b->max_sessions, nofile,
                      BOOT_FD_PER_SESSION, reserve, fit);
    *out = b->max_sessions;
    return 0;
}

void bootstrap_clear(struct rn_bootstrap *b)
{
    for (size_t i = 0; i < NKEYS; i++)
        if (keys[i].kind == BK_STRING || keys[i].kind == BK_PATH) {
            char **s = field(b, &keys[i]);
            free(*s);
        }
    memset(b, 0, sizeof *b);
}

/* k's current value in b as a file would write it; strings are returned as they are. */
static const char *value_format(const struct rn_bootstrap *b, const struct bootkey *k,
                                char *buf, size_t len)
{
    const void *f = field(b, k);
    switch (k->kind) {
    case BK_STRING:
    case BK_PATH: {
        const char *s = *(char *const *)f;
        return s ? s : "";
    }
    case BK_BOOL: return *(const bool *)f ? "yes" : "no";
    case BK_ENUM: {
        unsigned i = *(const unsigned *)f, n = 0;
        while (k->words[n]) n++;
        return i < n ? k->words[i] : "?";
    }
    case BK_BYTES: snprintf(buf, len, "%" PRIu64, *(const uint64_t *)f); return buf;
    case BK_LISTEN: {
        const struct boot_endpoint *e = f;
        if (!e->port)
            return "";
        bool v6 = strchr(e->host, ':') != NULL;
        snprintf(buf, len, "%s%s%s:%u", v6 ? "[" : "", e->host, v6 ? "]" : "", e->port);
        return buf;
    }
    default: snprintf(buf, len, "%u", *(const unsigned *)f); return buf;
    }
}

/* k's type and range as "seconds 1..3600", "yes or no", "auto, persist, poll or off". */
static void type_format(const struct bootkey *k, char *buf, size_t len)
{
    static const char *const names[] = {
        [BK_STRING] = "text", [BK_PATH] = "path", [BK_UINT] = "number",
        [BK_SECONDS] = "seconds", [BK_MILLIS] = "milliseconds", [BK_BYTES] = "bytes",
    };
    if (k->kind == BK_BOOL)
        snprintf(buf, len, "yes or no");
    else if (k->kind == BK_ENUM)
        words_format(k, buf, len);
    else if (k->kind == BK_LISTEN)
        snprintf(buf, len, "PORT or ADDRESS:PORT");
    else if (k->kind == BK_STRING || k->kind == BK_PATH)
        snprintf(buf, len, "%s", names[k->kind]);
    else
        snprintf(buf, len, "%s %" PRIu64 "..%" PRIu64, names[k->kind], k->min, k->max);
}

void bootstrap_describe(const struct rn_bootstrap *b, void (*out)(const char *line, void *arg),
                        void *arg)
{
    for (size_t i = 0; i < NKEYS; i++) {
        char num[64], type[256];
        type_format(&keys[i], type, sizeof type);
        char *line = xasprintf("%-20s = %-40s # %s [%s; %s]", keys[i].key,
                               value_format(b, &keys[i], num, sizeof num), keys[i].doc, type,
                               keys[i].where);
        out(line, arg);
        free(line);
    }
}

/* The scheme of one URI of the list, compared without case (RFC 4516 §2). */
static bool uri_has_scheme(const char *u, size_t len, const char *scheme)
{
    size_t n = strlen(scheme);
    return len >= n && strncasecmp(u, scheme, n) == 0;
}

enum boot_dirsec bootstrap_directory_security(const struct rn_bootstrap *b)
{
    const char *p = b->uri ? b->uri : "";
    bool any = false, clear = false, secure = false, other = false;
    while (*p) {
        size_t len = strcspn(p, " \t,");
        if (len) {
            any = true;
            if (uri_has_scheme(p, len, "ldap://"))
                clear = true;
            else if (uri_has_scheme(p, len, "ldaps://") || uri_has_scheme(p, len, "ldapi://"))
                secure = true;
            else
                other = true;
        }
        p += len;
        p += strspn(p, " \t,");
    }
    if (!any || other)
        return BOOT_DIR_UNKNOWN;
    if (b->ldap_starttls)
        return secure ? BOOT_DIR_UNKNOWN : BOOT_DIR_PROTECTED;
    return clear ? BOOT_DIR_CLEARTEXT : BOOT_DIR_PROTECTED;
}
