/* bootstrap: the key = value file a node and relayctl start from, as a declarative table
 * {key, default, doc} (docs/style.md rule 15). Unknown keys, duplicates and lines without '=' are
 * errors naming path:line, so a typo can never silently fall back to a default. */
#include "directory/bootstrap.h"
#include "directory/base/util.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define BOOT_LINE_MAX 4096

struct bootkey {
    const char *key;
    size_t offset;
    const char *def;       /* NULL: computed (hostname) */
    const char *doc;
};

#define O(f) offsetof(struct rn_bootstrap, f)
static const struct bootkey keys[] = {
    {"uri", O(uri), "ldap://127.0.0.1:389", "directory URI(s), space-separated, tried in order"},
    {"bind_dn", O(bind_dn), "", "simple-bind identity (empty with sasl_mech = EXTERNAL)"},
    {"bind_password_file", O(bind_password_file), "", "file whose first line is the bind password"},
    {"sasl_mech", O(sasl_mech), "", "\"\" for simple bind, or EXTERNAL (ldapi:// peer credentials)"},
    {"base_dn", O(base_dn), "", "the relay subtree, e.g. ou=Relay,dc=example,dc=com"},
    {"user_base", O(user_base), "", "where users and groups live; empty = parent of base_dn"},
    {"user_filter", O(user_filter), "(|(uid=%s)(mail=%s))", "login filter; %s = escaped login"},
    {"node", O(node), "node1", "this node's cn under the relay subtree"},
    {"hostname", O(hostname), NULL, "default FQDN for connectors without relayFqdn"},
    {"spool_dir", O(spool_dir), "/var/spool/relaynode", "durable message spool"},
    {"log", O(log), "stderr", "stderr, syslog or a file path"},
    {"ldap_timeout", O(ldap_timeout), "5", "seconds per directory operation"},
    {"tls_cert", O(tls_cert), "", "PEM certificate for STARTTLS; empty = none"},
    {"tls_key", O(tls_key), "", "PEM private key for STARTTLS"},
    {"tls_cert_dir", O(tls_cert_dir), "", "directory of named STARTTLS certificates NAME.pem + NAME.key (relayTlsCertificateName)"},
    {"cluster_bind", O(cluster_bind), "", "ZeroMQ endpoint the bus binds; empty = the node's relayClusterEndpoint"},
    {"protocol_log_dir", O(protocol_log_dir), "", "per-connector protocol logs; empty = off"},
    {"max_command_line", O(max_command_line), "512", "octets incl. CRLF (RFC 5321 4.5.3.1.4)"},
    {"max_text_line", O(max_text_line), "1000", "octets incl. CRLF (RFC 5321 4.5.3.1.6)"},
    {"drain_timeout", O(drain_timeout), "30", "seconds SIGTERM waits for open sessions"},
    {"dns_server", O(dns_server), "", "resolver ip[:port],... for MX lookups; empty = resolv.conf"},
    {"queue_lifetime", O(queue_lifetime), "172800", "seconds a message is retried before it bounces"},
    {"retry_min", O(retry_min), "60", "first retry delay in seconds (doubles per attempt)"},
    {"retry_max", O(retry_max), "3600", "longest retry delay in seconds"},
    {"delivery_concurrency", O(delivery_concurrency), "50", "messages delivered at once"},
    {"mx_port", O(mx_port), "25", "TCP port for deliveries by MX (tests use a loopback one)"},
    {"queue_hold", O(queue_hold), "no", "yes: accept and queue, deliver nothing (maintenance)"},
    {"smarthost_auth_file", O(smarthost_auth_file), "", "lines 'host[:port] user password' for AUTH to smart hosts"},
    {"spool_reserve", O(spool_reserve), "16777216", "bytes kept free: below it MAIL gets 452 4.3.1"},
    {"max_stale", O(max_stale), "0", "seconds the last good config serves while the directory is down; then 421/451 4.3.2; 0 = no limit"},
    {"cluster_secret_key_file", O(cluster_secret_key_file), "", "file with this node's Z85 CURVE secret key (mode 600); empty = no cluster bus"},
    {"cluster_heartbeat_ms", O(cluster_heartbeat_ms), "1000", "milliseconds between heartbeats on the bus"},
    {"directory_watch", O(directory_watch), "auto", "change watcher: auto (persist, else poll), persist, poll, off"},
    {"directory_poll_interval", O(directory_poll_interval), "10", "seconds between polls of contextCSN (poll mode, probes)"},
    {"gssapi_keytab", O(gssapi_keytab), "", "keytab for AUTH GSSAPI on Integrated connectors; empty = GSSAPI never offered"},
    {"gssapi_service", O(gssapi_service), "smtp", "service part of the GSSAPI principal service/<connector FQDN>@REALM"},
    {"gssapi_realm", O(gssapi_realm), "", "Kerberos realm whose principals may log in (user@REALM -> user); empty = GSSAPI logins refused"},
};
#define NKEYS (sizeof keys / sizeof keys[0])

static char **field(struct rn_bootstrap *b, const struct bootkey *k)
{
    return (char **)((char *)b + k->offset);
}

static const struct bootkey *key_lookup(const char *key)
{
    for (size_t i = 0; i < NKEYS; i++)
        if (!strcmp(keys[i].key, key)) return &keys[i];
    return NULL;
}

static void set_defaults(struct rn_bootstrap *b)
{
    memset(b, 0, sizeof *b);
    for (size_t i = 0; i < NKEYS; i++) {
        if (keys[i].def) {
            *field(b, &keys[i]) = xstrdup(keys[i].def);
        } else {
            char host[256] = "localhost";
            if (gethostname(host, sizeof host - 1) != 0) rn_strlcpy(host, "localhost", sizeof host);
            host[sizeof host - 1] = '\0';
            *field(b, &keys[i]) = xstrdup(host);
        }
    }
}

int bootstrap_set(struct rn_bootstrap *b, const char *key, const char *value, char *err,
                  size_t errlen)
{
    const struct bootkey *k = key_lookup(key);
    if (!k) return rn_err(err, errlen, "unknown key '%s'", key);
    for (const char *p = value; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            return rn_err(err, errlen, "%s: control character in value", key);
    char **f = field(b, k);
    free(*f);
    *f = xstrdup(value);
    return 0;
}

static char *trim(char *s)
{
    while (*s == ' ' || *s == '\t') s++;
    size_t n = strlen(s);
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r')) s[--n] = '\0';
    return s;
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
    char line[BOOT_LINE_MAX + 2];
    unsigned lineno = 0;
    int rc = 0;
    while (fgets(line, sizeof line, f)) {
        lineno++;
        size_t len = strlen(line);
        if (len && line[len - 1] == '\n') line[--len] = '\0';
        else if (len > BOOT_LINE_MAX) {
            rc = rn_err(err, errlen, "%s:%u: line longer than %d octets", path, lineno,
                        BOOT_LINE_MAX);
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
        char e[RN_ERRLEN];
        if (bootstrap_set(b, key, value, e, sizeof e) < 0) {
            rc = rn_err(err, errlen, "%s:%u: %s", path, lineno, e);
            break;
        }
    }
    fclose(f);
    if (rc < 0) bootstrap_clear(b);
    return rc;
}

void bootstrap_clear(struct rn_bootstrap *b)
{
    for (size_t i = 0; i < NKEYS; i++) {
        char **f = field(b, &keys[i]);
        free(*f);
        *f = NULL;
    }
}

void bootstrap_describe(const struct rn_bootstrap *b, void (*out)(const char *line, void *arg),
                        void *arg)
{
    for (size_t i = 0; i < NKEYS; i++) {
        char *v = *field((struct rn_bootstrap *)b, &keys[i]);
        char *line = xasprintf("%-20s = %-40s # %s", keys[i].key, v ? v : "", keys[i].doc);
        out(line, arg);
        free(line);
    }
}
