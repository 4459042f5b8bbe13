/* Unit tests for bootstrap: defaults, overrides, each malformed-file error, and each value
 * type's accepted and refused values with the message (file:line, allowed range). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "directory/bootstrap.h"
#include "directory/base/util.h"

#define BOOT_TEST_LONG 4200

static char *write_tmp(const char *text)
{
    char *path = xstrdup("/tmp/rn-boot-XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    return path;
}

static char *write_tmp_n(const char *text, size_t n)
{
    char *path = xstrdup("/tmp/rn-boot-XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, n), (ssize_t)n);
    close(fd);
    return path;
}

static void defaults_without_file(void **state)
{
    (void)state;
    struct rn_bootstrap b;
    char err[RN_ERRLEN];
    assert_int_equal(bootstrap_load(NULL, &b, err, sizeof err), 0);
    assert_string_equal(b.uri, "ldap://127.0.0.1:389");
    assert_int_equal(b.max_command_line, 512);
    assert_string_equal(b.user_filter, "(|(uid=%s)(mail=%s))");
    assert_true(b.hostname[0] != '\0');
    bootstrap_clear(&b);
}

static void file_overrides_defaults(void **state)
{
    (void)state;
    char *p = write_tmp("# comment\n\nuri = ldap://127.0.0.1:3389\n  node=node7  \n");
    struct rn_bootstrap b;
    char err[RN_ERRLEN];
    assert_int_equal(bootstrap_load(p, &b, err, sizeof err), 0);
    assert_string_equal(b.uri, "ldap://127.0.0.1:3389");
    assert_string_equal(b.node, "node7");
    assert_string_equal(b.log, "stderr");
    assert_int_equal(bootstrap_set(&b, "log", "/tmp/x.log", err, sizeof err), 0);
    assert_string_equal(b.log, "/tmp/x.log");
    assert_int_equal(bootstrap_set(&b, "nosuch", "1", err, sizeof err), -1);
    assert_string_equal(err, "unknown key 'nosuch'");
    bootstrap_clear(&b);
    unlink(p);
    free(p);
}

static void malformed_files(void **state)
{
    (void)state;
    static const struct { const char *name, *text, *want; } cases[] = {
        {"unknown key", "uri = x\nnodes = a\n", ":2: unknown key 'nodes'"},
        {"duplicate", "node = a\nnode = b\n", ":2: duplicate key 'node'"},
        {"no equals", "uri ldap://x\n", ":1: expected 'key = value'"},
        {"control char", "node = a\tb\n", ":1: node: control character in value"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *p = write_tmp(cases[i].text);
        struct rn_bootstrap b;
        char err[RN_ERRLEN] = "";
        assert_int_equal(bootstrap_load(p, &b, err, sizeof err), -1);
        char *want = xasprintf("%s%s", p, cases[i].want);
        if (strcmp(err, want)) fail_msg("%s: got '%s' want '%s'", cases[i].name, err, want);
        free(want);
        unlink(p);
        free(p);
    }
    struct rn_bootstrap b;
    char err[RN_ERRLEN];
    assert_int_equal(bootstrap_load("/nonexistent/relaynode.conf", &b, err, sizeof err), -1);
    assert_string_equal(err, "/nonexistent/relaynode.conf: No such file or directory");
}

/* Regression (tests/fuzz/fuzz_bootstrap): a NUL byte cut the line short for the parser
 * (fgets + strlen) while an editor or grep shows all of it, so "node = a<NUL>b" loaded as
 * node = a, a lone NUL loaded as an empty file, and the rest of a line longer than the limit
 * after a NUL was parsed as a line of its own. Each is now refused with file:line. */
static void nul_byte_refused(void **state)
{
    (void)state;
    static char smuggle[BOOT_TEST_LONG];
    size_t sn = (size_t)snprintf(smuggle, sizeof smuggle, "node = a");
    smuggle[sn++] = '\0';
    memset(smuggle + sn, '#', 4100 - sn);
    sn = 4100 + (size_t)snprintf(smuggle + 4100, sizeof smuggle - 4100, "uri = ldap://evil\n");
    static const struct { const char *name, *text; size_t n; const char *want; } cases[] = {
        {"NUL in a value", "node = a\0b\n", 11, ":1: NUL byte in line"},
        {"a lone NUL", "\0", 1, ":1: NUL byte in line"},
        {"NUL on line 2", "# c\nuri\0 = x\n", 14, ":2: NUL byte in line"},
        {"NUL in a comment", "# a\0b\nnode = n\n", 15, ":1: NUL byte in line"},
    };
    for (size_t i = 0; i <= sizeof cases / sizeof cases[0]; i++) {
        bool last = i == sizeof cases / sizeof cases[0];
        char *p = last ? write_tmp_n(smuggle, sn) : write_tmp_n(cases[i].text, cases[i].n);
        struct rn_bootstrap b;
        char err[RN_ERRLEN] = "";
        int rc = bootstrap_load(p, &b, err, sizeof err);
        char *want = xasprintf("%s%s", p, last ? ":1: NUL byte in line" : cases[i].want);
        if (rc != -1 || strcmp(err, want))
            fail_msg("%s: rc %d got '%s' want '%s'", last ? "smuggled line" : cases[i].name,
                     rc, err, want);
        free(want);
        unlink(p);
        free(p);
    }
}

static void every_default(void **state)
{
    (void)state;
    static const struct { const char *key, *want; } t[] = {
        {"uri", "ldap://127.0.0.1:389"}, {"bind_dn", ""}, {"bind_password_file", ""},
        {"base_dn", ""}, {"user_base", ""},
        {"user_filter", "(|(uid=%s)(mail=%s))"}, {"node", "node1"},
        {"spool_dir", "/var/spool/relaynode"}, {"log", "stderr"}, {"user", ""}, {"group", ""},
        {"tls_cert", ""}, {"tls_key", ""}, {"tls_cert_dir", ""}, {"cluster_bind", ""},
        {"protocol_log_dir", ""}, {"dns_server", ""}, {"smarthost_auth_file", ""},
        {"cluster_secret_key_file", ""}, {"gssapi_keytab", ""}, {"gssapi_service", "smtp"},
        {"gssapi_realm", ""},
    };
    struct rn_bootstrap b;
    char err[RN_ERRLEN];
    assert_int_equal(bootstrap_load(NULL, &b, err, sizeof err), 0);
    const char *got[] = {b.uri, b.bind_dn, b.bind_password_file, b.base_dn,
                         b.user_base, b.user_filter, b.node, b.spool_dir, b.log, b.user, b.group,
                         b.tls_cert, b.tls_key, b.tls_cert_dir, b.cluster_bind,
                         b.protocol_log_dir, b.dns_server, b.smarthost_auth_file,
                         b.cluster_secret_key_file, b.gssapi_keytab, b.gssapi_service,
                         b.gssapi_realm};
    assert_int_equal(sizeof got / sizeof got[0], sizeof t / sizeof t[0]);
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
        if (strcmp(got[i], t[i].want) != 0)
            fail_msg("%s: '%s' want '%s'", t[i].key, got[i], t[i].want);
    /* The typed keys: the same defaults as when they were strings. */
    static const struct { const char *key; uint64_t want; } n[] = {
        {"ldap_timeout", 5}, {"max_command_line", 512}, {"max_text_line", 1000},
        {"drain_timeout", 30}, {"queue_lifetime", 172800}, {"retry_min", 60},
        {"retry_max", 3600}, {"delivery_concurrency", 50}, {"mx_port", 25},
        {"spool_reserve", 16777216}, {"max_stale", 0}, {"cluster_heartbeat_ms", 1000},
        {"directory_poll_interval", 10},
    };
    const uint64_t ngot[] = {b.ldap_timeout, b.max_command_line, b.max_text_line,
                             b.drain_timeout, b.queue_lifetime, b.retry_min, b.retry_max,
                             b.delivery_concurrency, b.mx_port, b.spool_reserve, b.max_stale,
                             b.cluster_heartbeat_ms, b.directory_poll_interval};
    assert_int_equal(sizeof ngot / sizeof ngot[0], sizeof n / sizeof n[0]);
    for (size_t i = 0; i < sizeof n / sizeof n[0]; i++)
        if (ngot[i] != n[i].want)
            fail_msg("%s: %llu want %llu", n[i].key, (unsigned long long)ngot[i],
                     (unsigned long long)n[i].want);
    assert_int_equal(b.sasl_mech, BOOT_SASL_SIMPLE);
    assert_false(b.queue_hold);
    assert_int_equal(b.directory_watch, BOOT_WATCH_AUTO);
    char host[256] = "";
    assert_int_equal(gethostname(host, sizeof host - 1), 0);
    assert_string_equal(b.hostname, host);
    bootstrap_clear(&b);
}

static void values_with_equals_and_crlf(void **state)
{
    (void)state;
    char *p = write_tmp("user_filter = (&(objectClass=person)(uid=%s))\r\n"
                        "base_dn=ou=Relay,dc=example,dc=com\r\n   # indented comment\n\t\n");
    struct rn_bootstrap b;
    char err[RN_ERRLEN] = "";
    assert_int_equal(bootstrap_load(p, &b, err, sizeof err), 0);
    assert_string_equal(b.user_filter, "(&(objectClass=person)(uid=%s))");
    assert_string_equal(b.base_dn, "ou=Relay,dc=example,dc=com");
    bootstrap_clear(&b);
    unlink(p);
    free(p);
}

/* The numeric field named key, whatever its width (test helper). */
static uint64_t num_of(const struct rn_bootstrap *b, const char *key)
{
    static const struct { const char *key; size_t off; bool wide; } f[] = {
#define F(k) {#k, offsetof(struct rn_bootstrap, k), false}
        F(ldap_timeout), F(max_command_line), F(max_text_line), F(drain_timeout),
        F(queue_lifetime), F(retry_min), F(retry_max), F(delivery_concurrency), F(mx_port),
        F(max_stale), F(cluster_heartbeat_ms), F(directory_poll_interval),
#undef F
        {"spool_reserve", offsetof(struct rn_bootstrap, spool_reserve), true},
    };
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++)
        if (strcmp(f[i].key, key) == 0)
            return f[i].wide ? *(const uint64_t *)((const char *)b + f[i].off)
                             : *(const unsigned *)((const char *)b + f[i].off);
    fail_msg("no numeric key %s", key);
    return 0;
}

/* Every number: min and max accepted and stored, one below and one above refused with the
 * range in its unit. */
static void numbers_range_edges(void **state)
{
    (void)state;
    static const struct { const char *key; uint64_t min, max; const char *unit; } t[] = {
        {"ldap_timeout", 1, 3600, " seconds"},
        {"max_command_line", 64, 1048576, ""},
        {"max_text_line", 64, 1048576, ""},
        {"drain_timeout", 0, 86400, " seconds"},
        {"queue_lifetime", 1, 31536000, " seconds"},
        {"retry_min", 1, 86400, " seconds"},
        {"retry_max", 1, 604800, " seconds"},
        {"delivery_concurrency", 1, 10000, ""},
        {"mx_port", 1, 65535, ""},
        {"spool_reserve", 0, UINT64_MAX, " bytes"},
        {"max_stale", 0, 31536000, " seconds"},
        {"cluster_heartbeat_ms", 50, 60000, " ms"},
        {"directory_poll_interval", 1, 3600, " seconds"},
    };
    struct rn_bootstrap b;
    char err[RN_ERRLEN], v[32], *want;
    assert_int_equal(bootstrap_load(NULL, &b, err, sizeof err), 0);
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        uint64_t edge[2] = {t[i].min, t[i].max};
        for (int e = 0; e < 2; e++) {
            snprintf(v, sizeof v, "%llu", (unsigned long long)edge[e]);
            if (bootstrap_set(&b, t[i].key, v, err, sizeof err) != 0)
                fail_msg("%s = %s refused: %s", t[i].key, v, err);
            if (num_of(&b, t[i].key) != edge[e])
                fail_msg("%s = %s stored %llu", t[i].key, v,
                         (unsigned long long)num_of(&b, t[i].key));
        }
        const char *out[2];
        char below[32], above[32];
        snprintf(below, sizeof below, "%llu", (unsigned long long)t[i].min - 1);
        if (t[i].max == UINT64_MAX)
            snprintf(above, sizeof above, "18446744073709551616");
        else
            snprintf(above, sizeof above, "%llu", (unsigned long long)t[i].max + 1);
        out[0] = t[i].min > 0 ? below : NULL;
        out[1] = above;
        for (int e = 0; e < 2; e++) {
            if (!out[e])
                continue;
            uint64_t before = num_of(&b, t[i].key);
            assert_int_equal(bootstrap_set(&b, t[i].key, out[e], err, sizeof err), -1);
            want = xasprintf("%s: \"%s\" is out of range (%llu..%llu%s)", t[i].key, out[e],
                             (unsigned long long)t[i].min, (unsigned long long)t[i].max,
                             t[i].unit);
            if (strcmp(err, want) != 0)
                fail_msg("%s: got '%s' want '%s'", t[i].key, err, want);
            free(want);
            assert_true(num_of(&b, t[i].key) == before);
        }
    }
    bootstrap_clear(&b);
}

/* Accepted spellings of each type, and what they store. */
static void good_values(void **state)
{
    (void)state;
    struct rn_bootstrap b;
    char err[RN_ERRLEN];
    assert_int_equal(bootstrap_load(NULL, &b, err, sizeof err), 0);
    assert_int_equal(bootstrap_set(&b, "mx_port", "2525", err, sizeof err), 0);
    assert_int_equal(b.mx_port, 2525);
    assert_int_equal(bootstrap_set(&b, "ldap_timeout", "007", err, sizeof err), 0);
    assert_int_equal(b.ldap_timeout, 7);     /* leading zeros, as strtoul took them */
    assert_int_equal(bootstrap_set(&b, "spool_reserve", "1099511627776", err, sizeof err), 0);
    assert_true(b.spool_reserve == 1099511627776ULL);
    assert_int_equal(bootstrap_set(&b, "queue_hold", "yes", err, sizeof err), 0);
    assert_true(b.queue_hold);
    assert_int_equal(bootstrap_set(&b, "queue_hold", "no", err, sizeof err), 0);
    assert_false(b.queue_hold);
    static const struct { const char *word; enum boot_watch want; } w[] = {
        {"persist", BOOT_WATCH_PERSIST}, {"poll", BOOT_WATCH_POLL}, {"off", BOOT_WATCH_OFF},
        {"auto", BOOT_WATCH_AUTO},
    };
    for (size_t i = 0; i < sizeof w / sizeof w[0]; i++) {
        assert_int_equal(bootstrap_set(&b, "directory_watch", w[i].word, err, sizeof err), 0);
        assert_int_equal(b.directory_watch, w[i].want);
    }
    /* SASL mechanism names in any case, as ldapdir compared them before. */
    assert_int_equal(bootstrap_set(&b, "sasl_mech", "EXTERNAL", err, sizeof err), 0);
    assert_int_equal(b.sasl_mech, BOOT_SASL_EXTERNAL);
    assert_int_equal(bootstrap_set(&b, "sasl_mech", "external", err, sizeof err), 0);
    assert_int_equal(b.sasl_mech, BOOT_SASL_EXTERNAL);
    assert_int_equal(bootstrap_set(&b, "sasl_mech", "", err, sizeof err), 0);
    assert_int_equal(b.sasl_mech, BOOT_SASL_SIMPLE);
    /* Paths and strings are kept as written (the module that opens a path checks it). */
    assert_int_equal(bootstrap_set(&b, "spool_dir", "spool", err, sizeof err), 0);
    assert_string_equal(b.spool_dir, "spool");
    assert_int_equal(bootstrap_set(&b, "tls_cert", "", err, sizeof err), 0);
    assert_string_equal(b.tls_cert, "");
    assert_int_equal(bootstrap_set(&b, "log", "syslog", err, sizeof err), 0);
    assert_string_equal(b.log, "syslog");
    bootstrap_clear(&b);
    assert_null(b.uri);
    assert_int_equal(b.mx_port, 0);           /* cleared whole: nothing left to free or read */
    bootstrap_clear(&b);
}

/* Refused values: the message, and the field left as it was. */
static void bad_values(void **state)
{
    (void)state;
    static const struct { const char *key, *value, *want; } t[] = {
        {"ldap_timeout", "1O", "ldap_timeout: \"1O\" is not a number (1..3600 seconds)"},
        {"ldap_timeout", "", "ldap_timeout: \"\" is not a number (1..3600 seconds)"},
        {"ldap_timeout", "5s", "ldap_timeout: \"5s\" is not a number (1..3600 seconds)"},
        {"ldap_timeout", "+5", "ldap_timeout: \"+5\" is not a number (1..3600 seconds)"},
        {"ldap_timeout", "-1", "ldap_timeout: \"-1\" is not a number (1..3600 seconds)"},
        {"ldap_timeout", "0", "ldap_timeout: \"0\" is out of range (1..3600 seconds)"},
        {"mx_port", "0x19", "mx_port: \"0x19\" is not a number (1..65535)"},
        {"mx_port", "2 5", "mx_port: \"2 5\" is not a number (1..65535)"},
        {"mx_port", "99999999999999999999999", "mx_port: \"99999999999999999999999\" is out "
                                               "of range (1..65535)"},
        {"max_text_line", "1e3", "max_text_line: \"1e3\" is not a number (64..1048576)"},
        {"retry_min", "1.5", "retry_min: \"1.5\" is not a number (1..86400 seconds)"},
        {"cluster_heartbeat_ms", "1s", "cluster_heartbeat_ms: \"1s\" is not a number "
                                       "(50..60000 ms)"},
        {"spool_reserve", "16M", "spool_reserve: \"16M\" is not a number "
                                 "(0..18446744073709551615 bytes)"},
        {"queue_hold", "Yes", "queue_hold: \"Yes\" is not yes or no"},
        {"queue_hold", "true", "queue_hold: \"true\" is not yes or no"},
        {"queue_hold", "1", "queue_hold: \"1\" is not yes or no"},
        {"queue_hold", "", "queue_hold: \"\" is not yes or no"},
        {"directory_watch", "polling", "directory_watch: \"polling\" is not auto, persist, "
                                       "poll or off"},
        {"directory_watch", "Poll", "directory_watch: \"Poll\" is not auto, persist, poll or off"},
        {"directory_watch", "", "directory_watch: \"\" is not auto, persist, poll or off"},
        {"sasl_mech", "PLAIN", "sasl_mech: \"PLAIN\" is not \"\" or EXTERNAL"},
        {"node", "a\x7f", "node: control character in value"},
        {"mx_port", "1234567890123456789012345678901234567890123456789",
         "mx_port: \"1234567890123456789012345678901234567890\" is out of range (1..65535)"},
    };
    struct rn_bootstrap b, before;
    char err[RN_ERRLEN];
    assert_int_equal(bootstrap_load(NULL, &b, err, sizeof err), 0);
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        memcpy(&before, &b, sizeof b);
        err[0] = '\0';
        if (bootstrap_set(&b, t[i].key, t[i].value, err, sizeof err) != -1)
            fail_msg("%s = '%s' accepted", t[i].key, t[i].value);
        if (strcmp(err, t[i].want) != 0)
            fail_msg("%s = '%s': got '%s' want '%s'", t[i].key, t[i].value, err, t[i].want);
        if (memcmp(&before, &b, sizeof b) != 0)
            fail_msg("%s = '%s': the struct changed", t[i].key, t[i].value);
    }
    bootstrap_clear(&b);
}

/* A bad value in a file stops the load with file:line and the range; a good typed file. */
static void file_typed_values(void **state)
{
    (void)state;
    static const struct { const char *text, *want; } cases[] = {
        {"uri = ldap://x\n# c\nldap_timeout = 1O\n",
         ":3: ldap_timeout: \"1O\" is not a number (1..3600 seconds)"},
        {"mx_port = 70000\n", ":1: mx_port: \"70000\" is out of range (1..65535)"},
        {"node = a\n\nqueue_hold = maybe\n", ":3: queue_hold: \"maybe\" is not yes or no"},
        {"directory_watch = pol\n",
         ":1: directory_watch: \"pol\" is not auto, persist, poll or off"},
        {"sasl_mech = GSSAPI\n", ":1: sasl_mech: \"GSSAPI\" is not \"\" or EXTERNAL"},
        {"max_stale = 8\nmax_stal = 9\n", ":2: unknown key 'max_stal'"},
        {"retry_min = \n", ":1: retry_min: \"\" is not a number (1..86400 seconds)"},
        {"node = a\nmetrics_listen = localhost:9425\n", ":2: metrics_listen: \"localhost:9425\" "
         "is not PORT, IPv4:PORT or [IPv6]:PORT (port 1..65535, addresses as literals)"},
        {"metrics_listen = 127.0.0.1:0\n", ":1: metrics_listen: \"127.0.0.1:0\" is not PORT, "
         "IPv4:PORT or [IPv6]:PORT (port 1..65535, addresses as literals)"},
        {"node = a\ndirectory_profile = exchange\n",
         ":2: directory_profile: \"exchange\" is not relay or ad"},
        {"directory_profile = AD\n", ":1: directory_profile: \"AD\" is not relay or ad"},
        {"directory_ad_poll_ms = 10\n",
         ":1: directory_ad_poll_ms: \"10\" is out of range (50..60000 ms)"},
        /* The bus needs relayNode entries an Exchange organisation does not have. */
        {"cluster_secret_key_file = /k\n\ndirectory_profile = ad\n",
         ":3: directory_profile: ad cannot run the cluster bus (cluster_secret_key_file is "
         "set): the Exchange schema has no node endpoints or keys"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *p = write_tmp(cases[i].text);
        struct rn_bootstrap b;
        char err[RN_ERRLEN] = "";
        assert_int_equal(bootstrap_load(p, &b, err, sizeof err), -1);
        char *want = xasprintf("%s%s", p, cases[i].want);
        if (strcmp(err, want))
            fail_msg("case %zu: got '%s' want '%s'", i, err, want);
        assert_null(b.uri);                   /* nothing to free after a failed load */
        free(want);
        unlink(p);
        free(p);
    }
    char *p = write_tmp("mx_port = 2525 \r\nqueue_hold=yes\n directory_watch = off\n"
                        "spool_reserve = 0\nmax_stale = 8\ncluster_heartbeat_ms = 50\n"
                        "sasl_mech = EXTERNAL\nretry_min = 1\nretry_max = 2\n"
                        "queue_lifetime = 8\ndirectory_poll_interval = 1\nldap_timeout = 3\n");
    struct rn_bootstrap b;
    char err[RN_ERRLEN] = "";
    if (bootstrap_load(p, &b, err, sizeof err) != 0)
        fail_msg("%s", err);
    assert_int_equal(b.mx_port, 2525);
    assert_true(b.queue_hold);
    assert_int_equal(b.directory_watch, BOOT_WATCH_OFF);
    assert_true(b.spool_reserve == 0);
    assert_int_equal(b.max_stale, 8);
    assert_int_equal(b.cluster_heartbeat_ms, 50);
    assert_int_equal(b.sasl_mech, BOOT_SASL_EXTERNAL);
    assert_int_equal(b.retry_min, 1);
    assert_int_equal(b.retry_max, 2);
    assert_int_equal(b.queue_lifetime, 8);
    assert_int_equal(b.directory_poll_interval, 1);
    assert_int_equal(b.ldap_timeout, 3);
    bootstrap_clear(&b);
    unlink(p);
    free(p);
}

struct lines { char *v[64]; size_t n; };

static void collect(const char *line, void *arg)
{
    struct lines *l = arg;
    assert_true(l->n < 64);
    l->v[l->n++] = xstrdup(line);
}

static const char *line_of(const struct lines *l, const char *key)
{
    size_t n = strlen(key);
    for (size_t i = 0; i < l->n; i++)
        if (strncmp(l->v[i], key, n) == 0 && l->v[i][n] == ' ')
            return l->v[i];
    fail_msg("no line for %s", key);
    return NULL;
}

/* describe: one line per key, the typed values written back as a file would, with type,
 * range and reader from the table. */
static void describe_typed(void **state)
{
    (void)state;
    struct rn_bootstrap b;
    char err[RN_ERRLEN];
    assert_int_equal(bootstrap_load(NULL, &b, err, sizeof err), 0);
    assert_int_equal(bootstrap_set(&b, "ldap_timeout", "7", err, sizeof err), 0);
    assert_int_equal(bootstrap_set(&b, "queue_hold", "yes", err, sizeof err), 0);
    assert_int_equal(bootstrap_set(&b, "directory_watch", "poll", err, sizeof err), 0);
    assert_int_equal(bootstrap_set(&b, "sasl_mech", "external", err, sizeof err), 0);
    struct lines l = {{0}, 0};
    bootstrap_describe(&b, collect, &l);
    assert_int_equal(l.n, 52);   /* the number of keys in the table */
    static const struct { const char *key, *has; } t[] = {
        {"ldap_timeout", "= 7 "}, {"ldap_timeout", "[seconds 1..3600; ldapdir, ldapsync]"},
        {"queue_hold", "= yes "}, {"queue_hold", "[yes or no; queue]"},
        {"directory_watch", "= poll "}, {"directory_watch", "[auto, persist, poll or off; "},
        {"sasl_mech", "= EXTERNAL "}, {"mx_port", "= 25 "}, {"mx_port", "[number 1..65535; "},
        {"cluster_heartbeat_ms", "[milliseconds 50..60000; cluster]"},
        {"spool_reserve", "= 16777216 "}, {"spool_dir", "= /var/spool/relaynode "},
        {"spool_dir", "[path; "}, {"uri", "# directory URI(s)"},
        {"milter_default_action", "= tempfail "},
        {"milter_default_action", "[tempfail, accept or reject; milter]"},
        {"milter_connect_timeout", "[seconds 1..300; milter]"}, {"milter", "= "},
        {"directory_profile", "= relay "}, {"directory_profile", "[relay or ad; "},
        {"directory_ad_poll_ms", "= 1000 "}, {"ad_server", "= "},
    };
    /* milter_default_action: one of three words, nothing else (fail closed) */
    assert_int_equal(bootstrap_set(&b, "milter_default_action", "maybe", err, sizeof err), -1);
    assert_non_null(strstr(err, "tempfail, accept or reject"));
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
        if (!strstr(line_of(&l, t[i].key), t[i].has))
            fail_msg("%s: '%s' lacks '%s'", t[i].key, line_of(&l, t[i].key), t[i].has);
    for (size_t i = 0; i < l.n; i++)
        free(l.v[i]);
    bootstrap_clear(&b);
}

/* metrics_listen: off by default; a bare port is loopback; any other address only as written
 * (a literal, never a name), and garbage is refused (file_typed_values has the message). */
static void metrics_listen_forms(void **state)
{
    (void)state;
    static const struct { const char *value, *host; unsigned port; } ok[] = {
        {"", "", 0}, {"9425", "127.0.0.1", 9425}, {"127.0.0.2:1", "127.0.0.2", 1},
        {"[::1]:9425", "::1", 9425}, {"0.0.0.0:65535", "0.0.0.0", 65535},
    };
    static const char *const bad[] = {
        "x", ":9425", "127.0.0.1:", "127.0.0.1:65536", "::1:9425", "[::1]", "[127.0.0.1]:1",
        "1.2.3:80", "9425 ", "-1", "127.0.0.1:+80", "[::1]:9425x", "host.example:9425",
    };
    struct rn_bootstrap b;
    char err[RN_ERRLEN];
    assert_int_equal(bootstrap_load(NULL, &b, err, sizeof err), 0);
    assert_int_equal(b.metrics_listen.port, 0);          /* off unless written */
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        if (bootstrap_set(&b, "metrics_listen", ok[i].value, err, sizeof err) != 0)
            fail_msg("'%s' refused: %s", ok[i].value, err);
        assert_string_equal(b.metrics_listen.host, ok[i].host);
        assert_int_equal(b.metrics_listen.port, ok[i].port);
    }
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(bootstrap_set(&b, "metrics_listen", "7", err, sizeof err), 0);
        if (bootstrap_set(&b, "metrics_listen", bad[i], err, sizeof err) == 0)
            fail_msg("'%s' accepted", bad[i]);
        assert_int_equal(b.metrics_listen.port, 7);      /* unchanged on refusal */
    }
    assert_int_equal(bootstrap_set(&b, "metrics_listen", "[::1]:9", err, sizeof err), 0);
    struct lines l = {{0}, 0};
    bootstrap_describe(&b, collect, &l);
    if (!strstr(line_of(&l, "metrics_listen"), "= [::1]:9 "))
        fail_msg("%s", line_of(&l, "metrics_listen"));
    for (size_t i = 0; i < l.n; i++)
        free(l.v[i]);
    bootstrap_clear(&b);
}

/* max_sessions against the descriptor limit: 0 derives the most that fit, a configured value
 * that fits is kept, one that does not is refused naming file:line and the most that fit. */
static void max_sessions_fit(void **state)
{
    (void)state;
    struct rn_bootstrap b;
    char err[RN_ERRLEN];
    unsigned cap = 0;
    assert_int_equal(bootstrap_load(NULL, &b, err, sizeof err), 0);
    assert_int_equal(b.max_sessions, 0);
    /* 1024 descriptors - (64 + delivery_concurrency 50) reserved = 910, 2 a session */
    assert_int_equal(bootstrap_fit_sessions(&b, "x.conf", 1024, &cap, err, sizeof err), 0);
    assert_int_equal(cap, 455);
    /* unlimited descriptors: capped at the key's maximum */
    assert_int_equal(bootstrap_fit_sessions(&b, "x.conf", UINT64_MAX, &cap, err, sizeof err), 0);
    assert_int_equal(cap, 1000000);
    /* nothing left after the reserve */
    assert_int_equal(bootstrap_fit_sessions(&b, "x.conf", 115, &cap, err, sizeof err), -1);
    assert_non_null(strstr(err, "RLIMIT_NOFILE 115 leaves no descriptor"));
    assert_int_equal(bootstrap_fit_sessions(&b, "x.conf", 116, &cap, err, sizeof err), 0);
    assert_int_equal(cap, 1);
    bootstrap_clear(&b);

    char *path = write_tmp("# caps\nnode = n1\nmax_sessions = 455\n");
    assert_int_equal(bootstrap_load(path, &b, err, sizeof err), 0);
    assert_int_equal(b.max_sessions, 455);
    assert_int_equal(bootstrap_fit_sessions(&b, path, 1024, &cap, err, sizeof err), 0);
    assert_int_equal(cap, 455);                 /* exactly at the edge */
    assert_int_equal(bootstrap_fit_sessions(&b, path, 1023, &cap, err, sizeof err), -1);
    char want[512];
    snprintf(want, sizeof want, "%s:3: max_sessions: 455 does not fit RLIMIT_NOFILE 1023 "
             "(2 descriptors a session after 114 reserved): at most 454", path);
    assert_string_equal(err, want);
    bootstrap_clear(&b);
    unlink(path);
    free(path);
}

/* bootstrap_directory_security: is the link to the directory protected, from uri and
 * ldap_starttls alone (BasicAuth depends on it; ldapdir refuses UNKNOWN). */
static void directory_security(void **state)
{
    (void)state;
    static const struct { const char *name, *uri; bool starttls; enum boot_dirsec want; } c[] = {
        {"ldap in clear", "ldap://127.0.0.1:389/", false, BOOT_DIR_CLEARTEXT},
        {"ldap with StartTLS", "ldap://dir.example.com/", true, BOOT_DIR_PROTECTED},
        {"ldaps", "ldaps://dir.example.com/", false, BOOT_DIR_PROTECTED},
        {"ldapi", "ldapi://%2Frun%2Fslapd%2Fldapi/", false, BOOT_DIR_PROTECTED},
        {"scheme in upper case", "LDAPS://dir.example.com/", false, BOOT_DIR_PROTECTED},
        {"list all TLS", "ldaps://a.example.com/ ldaps://b.example.com/", false, BOOT_DIR_PROTECTED},
        {"list with one in clear", "ldaps://a.example.com/ ldap://b.example.com/", false,
         BOOT_DIR_CLEARTEXT},
        {"list all StartTLS", "ldap://a.example.com/ ldap://b.example.com/", true,
         BOOT_DIR_PROTECTED},
        {"StartTLS with ldaps is ambiguous", "ldap://a.example.com/ ldaps://b.example.com/", true,
         BOOT_DIR_UNKNOWN},
        {"StartTLS with ldapi is ambiguous", "ldapi:///", true, BOOT_DIR_UNKNOWN},
        {"unknown scheme", "cldap://a.example.com/", false, BOOT_DIR_UNKNOWN},
        {"no uri", "", false, BOOT_DIR_UNKNOWN},
        {"ldap:// alone (libldap: this host)", "ldap://", false, BOOT_DIR_CLEARTEXT},
    };
    for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
        struct rn_bootstrap b;
        char err[RN_ERRLEN];
        assert_int_equal(bootstrap_load(NULL, &b, err, sizeof err), 0);
        assert_int_equal(bootstrap_set(&b, "uri", c[i].uri, err, sizeof err), 0);
        assert_int_equal(bootstrap_set(&b, "ldap_starttls", c[i].starttls ? "yes" : "no", err,
                                       sizeof err), 0);
        if (bootstrap_directory_security(&b) != c[i].want)
            fail_msg("%s: got %d, want %d", c[i].name, bootstrap_directory_security(&b),
                     c[i].want);
        bootstrap_clear(&b);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(defaults_without_file),
        cmocka_unit_test(file_overrides_defaults),
        cmocka_unit_test(malformed_files),
        cmocka_unit_test(nul_byte_refused),
        cmocka_unit_test(every_default),
        cmocka_unit_test(values_with_equals_and_crlf),
        cmocka_unit_test(numbers_range_edges),
        cmocka_unit_test(good_values),
        cmocka_unit_test(bad_values),
        cmocka_unit_test(file_typed_values),
        cmocka_unit_test(describe_typed),
        cmocka_unit_test(metrics_listen_forms),
        cmocka_unit_test(max_sessions_fit),
        cmocka_unit_test(directory_security),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
