/* Tests for ldapsync against a throwaway slapd (deploy/slapd/fixture.sh, syncprov loaded):
 * refreshAndPersist reports the version at connect and a greater one within a second of an
 * ldapmodify under the relay subtree, and of one to a user outside it (the recipient set);
 * slapd stopped is reported DOWN and the watcher reconnects (backoff) when slapd returns on
 * the same port;
 * the polling fallback (mode POLL) sees a change within its period. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "directory/bootstrap.h"
#include "directory/ldap/ldapsync.h"
#include "directory/base/util.h"
#include "node/cluster/clusterver.h"

struct seen {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int versions, downs, ups;
    char version[1100], detail[600];
    struct timespec version_at;
};

static char dir[64], uri[128], port[16], admin_pw[256], root_dir[512];
static struct rn_bootstrap boot;

static void on_event(void *arg, enum ldapsync_event ev, const char *version, const char *detail)
{
    struct seen *s = arg;
    pthread_mutex_lock(&s->mu);
    if (ev == LDAPSYNC_VERSION) {
        s->versions++;
        rn_strlcpy(s->version, version, sizeof s->version);
        clock_gettime(CLOCK_MONOTONIC, &s->version_at);
    } else {
        ev == LDAPSYNC_DOWN ? s->downs++ : s->ups++;
        rn_strlcpy(s->detail, detail ? detail : "", sizeof s->detail);
    }
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

/* Wait until *counter > before, up to ms. */
static bool wait_for(struct seen *s, int *counter, int before, int ms)
{
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += ms / 1000;
    dl.tv_nsec += (long)(ms % 1000) * 1000000;
    if (dl.tv_nsec >= 1000000000) {
        dl.tv_sec++;
        dl.tv_nsec -= 1000000000;
    }
    pthread_mutex_lock(&s->mu);
    while (*counter <= before && pthread_cond_timedwait(&s->cv, &s->mu, &dl) == 0)
        ;
    bool ok = *counter > before;
    pthread_mutex_unlock(&s->mu);
    return ok;
}

static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int sh(const char *fmt, ...)
{
    char cmd[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    return system(cmd);
}

static void fixture_start(const char *extra)
{
    assert_int_equal(sh("bash %s/deploy/slapd/fixture.sh start %s %s >%s/fixture.out 2>&1",
                        root_dir, dir, extra, dir), 0);
}

static int setup(void **state)
{
    const char *root = getenv("RELAYNODE_ROOT");
    rn_strlcpy(root_dir, root ? root : ".", sizeof root_dir);
    strcpy(dir, "/tmp/test_ldapsyncXXXXXX");
    assert_non_null(mkdtemp(dir));
    fixture_start("");
    char path[256], err[RN_ERRLEN];
    snprintf(path, sizeof path, "%s/relaynode.conf", dir);
    if (bootstrap_load(path, &boot, err, sizeof err) < 0)
        fail_msg("%s", err);
    rn_strlcpy(uri, boot.uri, sizeof uri);
    const char *p = strrchr(uri, ':');
    rn_strlcpy(port, p + 1, sizeof port);
    port[strcspn(port, "/")] = '\0';
    snprintf(admin_pw, sizeof admin_pw, "%s/admin.pw", dir);
    return 0;
}

static int teardown(void **state)
{
    sh("bash %s/deploy/slapd/fixture.sh stop %s >/dev/null 2>&1; rm -rf %s", root_dir, dir, dir);
    bootstrap_clear(&boot);
    return 0;
}

static void modify(const char *dn, const char *text)
{
    assert_int_equal(sh("printf 'dn: %s\\nchangetype: modify\\nreplace: description\\n"
                        "description: %s\\n' | ldapmodify -x -H '%s' -D cn=admin,dc=example,dc=com "
                        "-y %s >/dev/null", dn, text, uri, admin_pw), 0);
}

#define CRM "cn=CRM Application,cn=node1,cn=Default-Site,cn=Sites,ou=Relay,dc=example,dc=com"

static double since(const struct timespec *a, const struct timespec *b)
{
    return (double)(b->tv_sec - a->tv_sec) + (double)(b->tv_nsec - a->tv_nsec) / 1e9;
}

static void test_persist(void **state)
{
    struct seen s = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
    char err[RN_ERRLEN], v0[1100];
    struct ldapsync_opts o = {LDAPSYNC_AUTO, 10, NULL};
    struct ldapsync *w = ldapsync_start(&boot, &o, on_event, &s, err, sizeof err);
    assert_non_null(w);
    assert_true(wait_for(&s, &s.versions, 0, 5000));
    assert_int_equal(s.ups, 1);
    assert_string_equal(s.detail, "persist");
    assert_true(clusterver_valid(s.version));
    rn_strlcpy(v0, s.version, sizeof v0);

    /* A change under the relay subtree: reported within a second, greater than before. */
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    modify(CRM, "changed by test_ldapsync");
    assert_true(wait_for(&s, &s.versions, 1, 1000));
    double dt = since(&t0, &s.version_at);
    print_message("change reported %.1f ms after ldapmodify started\n", dt * 1000);
    assert_true(dt < 1.0);
    assert_int_equal(clusterver_compare(s.version, v0), CV_NEWER);

    /* A change outside the relay subtree (a user) is news too: users and groups are the
     * recipient set's source (ldaprcpt.c). syncprov tells it with a syncInfo message, and
     * the new contextCSN is reported within a second. */
    clock_gettime(CLOCK_MONOTONIC, &t0);
    modify("uid=alice,ou=People,dc=example,dc=com", "a user changed");
    assert_true(wait_for(&s, &s.versions, 2, 1000));
    print_message("user change reported %.1f ms after ldapmodify started\n",
                  since(&t0, &s.version_at) * 1000);
    assert_true(since(&t0, &s.version_at) < 1.0);

    /* slapd stops: DOWN; slapd returns on the same port: UP again, and the version. */
    int downs = s.downs, ups = s.ups, versions = s.versions;
    assert_int_equal(sh("bash %s/deploy/slapd/fixture.sh stop %s", root_dir, dir), 0);
    assert_true(wait_for(&s, &s.downs, downs, 3000));
    print_message("down: %s\n", s.detail);
    char extra[64];
    snprintf(extra, sizeof extra, "--port %s", port);
    fixture_start(extra);
    assert_true(wait_for(&s, &s.ups, ups, 8000));
    assert_string_equal(s.detail, "persist");
    assert_true(wait_for(&s, &s.versions, versions, 2000));   /* rebuilt: a new contextCSN */
    versions = s.versions;
    modify(CRM, "after the restart");
    assert_true(wait_for(&s, &s.versions, versions, 1000));
    ldapsync_stop(&w);
    assert_null(w);
}

static void test_poll(void **state)
{
    struct seen s = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
    char err[RN_ERRLEN], v0[1100];
    struct ldapsync_opts o = {LDAPSYNC_POLL, 1, NULL};
    struct ldapsync *w = ldapsync_start(&boot, &o, on_event, &s, err, sizeof err);
    assert_non_null(w);
    assert_true(wait_for(&s, &s.versions, 0, 5000));
    assert_string_equal(s.detail, "poll");
    rn_strlcpy(v0, s.version, sizeof v0);
    modify(CRM, "polled change");
    assert_true(wait_for(&s, &s.versions, 1, 2500));
    assert_int_equal(clusterver_compare(s.version, v0), CV_NEWER);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    ldapsync_stop(&w);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    assert_true(since(&t0, &t1) < 0.5);                       /* stop is prompt */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_persist, setup, teardown),
        cmocka_unit_test_setup_teardown(test_poll, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
