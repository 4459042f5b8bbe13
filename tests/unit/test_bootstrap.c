/* Unit tests for bootstrap: defaults, overrides, and each malformed-file error. */
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

static char *write_tmp(const char *text)
{
    char *path = xstrdup("/tmp/rn-boot-XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
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
    assert_string_equal(b.max_command_line, "512");
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

static void every_default(void **state)
{
    (void)state;
    static const struct { const char *key, *want; } t[] = {
        {"uri", "ldap://127.0.0.1:389"}, {"bind_dn", ""}, {"bind_password_file", ""},
        {"sasl_mech", ""}, {"base_dn", ""}, {"user_base", ""},
        {"user_filter", "(|(uid=%s)(mail=%s))"}, {"node", "node1"},
        {"spool_dir", "/var/spool/relaynode"}, {"log", "stderr"}, {"ldap_timeout", "5"},
        {"tls_cert", ""}, {"tls_key", ""}, {"tls_cert_dir", ""}, {"cluster_bind", ""},
        {"protocol_log_dir", ""},
        {"max_command_line", "512"}, {"max_text_line", "1000"}, {"drain_timeout", "30"},
        {"dns_server", ""}, {"queue_lifetime", "172800"}, {"retry_min", "60"},
        {"retry_max", "3600"}, {"delivery_concurrency", "50"}, {"mx_port", "25"},
        {"queue_hold", "no"}, {"smarthost_auth_file", ""},
        {"spool_reserve", "16777216"}, {"max_stale", "0"}, {"cluster_secret_key_file", ""},
        {"cluster_heartbeat_ms", "1000"}, {"directory_watch", "auto"},
        {"directory_poll_interval", "10"}, {"gssapi_keytab", ""}, {"gssapi_service", "smtp"},
        {"gssapi_realm", ""},
    };
    struct rn_bootstrap b;
    char err[RN_ERRLEN];
    assert_int_equal(bootstrap_load(NULL, &b, err, sizeof err), 0);
    const char *got[] = {b.uri, b.bind_dn, b.bind_password_file, b.sasl_mech, b.base_dn,
                         b.user_base, b.user_filter, b.node, b.spool_dir, b.log, b.ldap_timeout,
                         b.tls_cert, b.tls_key, b.tls_cert_dir, b.cluster_bind,
                         b.protocol_log_dir,
                         b.max_command_line, b.max_text_line, b.drain_timeout, b.dns_server,
                         b.queue_lifetime, b.retry_min, b.retry_max, b.delivery_concurrency,
                         b.mx_port, b.queue_hold, b.smarthost_auth_file,
                         b.spool_reserve, b.max_stale, b.cluster_secret_key_file,
                         b.cluster_heartbeat_ms, b.directory_watch, b.directory_poll_interval,
                         b.gssapi_keytab, b.gssapi_service, b.gssapi_realm};
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
        if (strcmp(got[i], t[i].want) != 0)
            fail_msg("%s: '%s' want '%s'", t[i].key, got[i], t[i].want);
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(defaults_without_file),
        cmocka_unit_test(file_overrides_defaults),
        cmocka_unit_test(malformed_files),
        cmocka_unit_test(every_default),
        cmocka_unit_test(values_with_equals_and_crlf),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
