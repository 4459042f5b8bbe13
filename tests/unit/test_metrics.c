/* Unit tests for node/metrics: the text exposition renderer (exact output, label and HELP
 * escaping, cumulative histogram buckets up to +Inf with _sum and _count), registration
 * rules, the bounded series count, lock-free updates from several threads, and the scrape
 * endpoint's request classification (metrics_http_classify). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "directory/base/util.h"
#include "node/metrics/metrics.h"
#include "node/metrics/metrics_http.h"
#include "node/metrics/relaymetrics.h"
#include "node/milter/milter.h"

struct text { char *p; size_t n; };

static void collect(const char *p, size_t n, void *arg)
{
    struct text *t = arg;
    t->p = xrealloc(t->p, t->n + n + 1);
    memcpy(t->p + t->n, p, n);
    t->n += n;
    t->p[t->n] = '\0';
}

static char *render(const struct metrics *m)
{
    struct text t = {xstrdup(""), 0};
    metrics_render(m, collect, &t);
    return t.p;
}

static struct metric_family *must(struct metrics *m, enum metric_kind k, const char *name,
                                  const char *help, const char *const *labels, size_t max,
                                  const double *b, size_t nb, double scale)
{
    char err[RN_ERRLEN] = "";
    struct metric_family *f = metrics_register(m, k, name, help, labels, max, b, nb, scale, err,
                                               sizeof err);
    if (!f)
        fail_msg("%s: %s", name, err);
    return f;
}

/* The whole output of a small registry, byte for byte: families in registration order,
 * series in creation order, escaping in label values (\\ \" \n) and HELP (\\ \n). */
static void render_exact(void **state)
{
    (void)state;
    struct metrics *m = metrics_new();
    const char *const l1[] = {"connector", NULL};
    struct metric_family *c = must(m, METRIC_COUNTER, "rn_sessions_total",
                                   "Sessions \\ per\nconnector", l1, 8, NULL, 0, 1);
    const char *a[] = {"Default \"Frontend\"\\x\nEND"}, *b[] = {"CRM"};
    metrics_inc(metrics_series(c, a), 3);
    metrics_inc(metrics_series(c, b), 1);
    metrics_inc(metrics_series(c, a), 2);
    struct metric_family *g = must(m, METRIC_GAUGE, "rn_age_seconds", "Age", NULL, 1, NULL, 0, 1);
    metrics_set(metrics_series(g, NULL), 0.005);
    must(m, METRIC_GAUGE, "rn_empty", "No series yet", l1, 1, NULL, 0, 1);
    char *out = render(m);
    const char *want =
        "# HELP rn_sessions_total Sessions \\\\ per\\nconnector\n"
        "# TYPE rn_sessions_total counter\n"
        "rn_sessions_total{connector=\"Default \\\"Frontend\\\"\\\\x\\nEND\"} 5\n"
        "rn_sessions_total{connector=\"CRM\"} 1\n"
        "# HELP rn_age_seconds Age\n"
        "# TYPE rn_age_seconds gauge\n"
        "rn_age_seconds 0.005\n"
        "# HELP rn_empty No series yet\n"
        "# TYPE rn_empty gauge\n";
    assert_string_equal(out, want);
    free(out);
    metrics_free(&m);
    assert_null(m);
}

/* Buckets are cumulative, +Inf equals _count, _sum is in the rendered unit (scale), and a
 * value on a bound falls in that bound's bucket (le is "less or equal"). */
static void histogram_cumulative(void **state)
{
    (void)state;
    struct metrics *m = metrics_new();
    const double bounds[] = {0.001, 0.01, 0.1};
    const char *const l[] = {"stage", NULL};
    struct metric_family *h = must(m, METRIC_HISTOGRAM, "rn_commit_seconds", "Commit", l, 2,
                                   bounds, 3, 1e-9);
    const char *v[] = {"sync"};
    struct metric_series *s = metrics_series(h, v);
    static const uint64_t ns[] = {500000, 1000000, 1000001, 20000000, 20000000, 3000000000ULL};
    for (size_t i = 0; i < sizeof ns / sizeof ns[0]; i++)
        metrics_observe(s, ns[i]);
    char *out = render(m);
    const char *want =
        "# HELP rn_commit_seconds Commit\n"
        "# TYPE rn_commit_seconds histogram\n"
        "rn_commit_seconds_bucket{stage=\"sync\",le=\"0.001\"} 2\n"
        "rn_commit_seconds_bucket{stage=\"sync\",le=\"0.01\"} 3\n"
        "rn_commit_seconds_bucket{stage=\"sync\",le=\"0.1\"} 5\n"
        "rn_commit_seconds_bucket{stage=\"sync\",le=\"+Inf\"} 6\n"
        "rn_commit_seconds_sum{stage=\"sync\"} 3.042500001\n"
        "rn_commit_seconds_count{stage=\"sync\"} 6\n";
    assert_string_equal(out, want);
    free(out);
    metrics_free(&m);
}

/* Special gauge values as the format spells them, and the shortest exact decimal. */
static void gauge_values(void **state)
{
    (void)state;
    static const struct { double v; const char *text; } t[] = {
        {0, "0"}, {1, "1"}, {-2.5, "-2.5"}, {0.1, "0.1"}, {1e21, "1e+21"},
        {INFINITY, "+Inf"}, {-INFINITY, "-Inf"}, {NAN, "NaN"}, {123456789, "123456789"},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        struct metrics *m = metrics_new();
        struct metric_family *g = must(m, METRIC_GAUGE, "g", "", NULL, 1, NULL, 0, 1);
        metrics_set(metrics_series(g, NULL), t[i].v);
        char *out = render(m), *want = xasprintf("# HELP g \n# TYPE g gauge\ng %s\n", t[i].text);
        if (strcmp(out, want))
            fail_msg("case %zu: '%s' want '%s'", i, out, want);
        free(out);
        free(want);
        metrics_free(&m);
    }
}

/* Registration refuses what would make an invalid exposition or break the conventions. */
static void register_rules(void **state)
{
    (void)state;
    struct metrics *m = metrics_new();
    const double up[] = {1, 2}, down[] = {2, 1};
    const char *const ok[] = {"a", NULL}, *const le[] = {"le", NULL}, *const dunder[] = {"__x", NULL};
    const char *const twice[] = {"a", "a", NULL}, *const many[] = {"a", "b", "c", "d", NULL};
    const char *const badl[] = {"a-b", NULL};
    const struct {
        enum metric_kind k; const char *name; const char *const *labels; size_t max;
        const double *b; size_t nb; const char *err;
    } t[] = {
        {METRIC_COUNTER, "x", ok, 1, NULL, 0, "ends in _total"},
        {METRIC_GAUGE, "x_total", ok, 1, NULL, 0, "only counters"},
        {METRIC_GAUGE, "9x", ok, 1, NULL, 0, "is not"},
        {METRIC_GAUGE, "x y", ok, 1, NULL, 0, "is not"},
        {METRIC_GAUGE, "x", badl, 1, NULL, 0, "refused"},
        {METRIC_GAUGE, "x", dunder, 1, NULL, 0, "refused"},
        {METRIC_GAUGE, "x", twice, 1, NULL, 0, "twice"},
        {METRIC_GAUGE, "x", many, 1, NULL, 0, "refused"},
        {METRIC_HISTOGRAM, "x", le, 1, up, 2, "refused"},
        {METRIC_HISTOGRAM, "x", ok, 1, down, 2, "increasing"},
        {METRIC_HISTOGRAM, "x", ok, 1, up, 0, "buckets"},
        {METRIC_GAUGE, "x", ok, 1, up, 2, "non-histogram"},
        {METRIC_GAUGE, "x", ok, 0, NULL, 0, "max_series"},
        {METRIC_GAUGE, "x", ok, METRICS_SERIES_MAX + 1, NULL, 0, "max_series"},
        {METRIC_GAUGE, "dup", ok, 1, NULL, 0, "registered twice"},
    };
    must(m, METRIC_GAUGE, "dup", "", NULL, 1, NULL, 0, 1);
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        char err[RN_ERRLEN] = "";
        if (metrics_register(m, t[i].k, t[i].name, "", t[i].labels, t[i].max, t[i].b, t[i].nb,
                             1, err, sizeof err))
            fail_msg("case %zu (%s) accepted", i, t[i].name);
        if (!strstr(err, t[i].err))
            fail_msg("case %zu: '%s' lacks '%s'", i, err, t[i].err);
    }
    metrics_free(&m);
}

/* A family never holds more than max_series tuples: later ones share one overflow series,
 * rendered with "_overflow" labels, and no count is lost. */
static void series_bounded(void **state)
{
    (void)state;
    struct metrics *m = metrics_new();
    const char *const l[] = {"connector", NULL};
    struct metric_family *f = must(m, METRIC_COUNTER, "c_total", "", l, 2, NULL, 0, 1);
    const char *names[] = {"a", "b", "c", "d", "a"};
    for (size_t i = 0; i < 5; i++) {
        const char *v[] = {names[i]};
        metrics_inc(metrics_series(f, v), 1);
    }
    char *out = render(m);
    assert_string_equal(out, "# HELP c_total \n# TYPE c_total counter\n"
                             "c_total{connector=\"a\"} 2\nc_total{connector=\"b\"} 1\n"
                             "c_total{connector=\"_overflow\"} 2\n");
    free(out);
    metrics_inc(NULL, 1);                  /* a part built without metrics: no-op */
    metrics_observe(NULL, 1);
    metrics_set(NULL, 1);
    assert_null(metrics_series(NULL, NULL));
    metrics_free(&m);
}

#define THREADS 4
#define PER_THREAD 200000

struct worker_arg { struct metric_family *c, *h; };

static void *hammer(void *p)
{
    struct worker_arg *a = p;
    for (int i = 0; i < PER_THREAD; i++) {
        char name[16];
        snprintf(name, sizeof name, "k%d", i % 5);
        const char *v[] = {name};
        metrics_inc(metrics_series(a->c, v), 1);
        metrics_observe(metrics_series(a->h, NULL), (uint64_t)(i % 3));
    }
    return NULL;
}

/* Threads adding series and counting at once lose nothing (atomics, no lock on updates). */
static void threads_exact(void **state)
{
    (void)state;
    struct metrics *m = metrics_new();
    const char *const l[] = {"k", NULL};
    const double b[] = {0, 1};
    struct worker_arg a = {must(m, METRIC_COUNTER, "n_total", "", l, 8, NULL, 0, 1),
                           must(m, METRIC_HISTOGRAM, "h", "", NULL, 1, b, 2, 1)};
    pthread_t t[THREADS];
    for (int i = 0; i < THREADS; i++)
        assert_int_equal(pthread_create(&t[i], NULL, hammer, &a), 0);
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    uint64_t total = 0;
    for (int k = 0; k < 5; k++) {
        char name[16];
        snprintf(name, sizeof name, "k%d", k);
        const char *v[] = {name};
        uint64_t n = metrics_value(metrics_series(a.c, v));
        assert_int_equal(n, THREADS * PER_THREAD / 5);
        total += n;
    }
    assert_int_equal(total, THREADS * PER_THREAD);
    char *out = render(m);
    char *want = xasprintf("h_bucket{le=\"+Inf\"} %d\n", THREADS * PER_THREAD);
    assert_non_null(strstr(out, want));
    free(want);
    free(out);
    metrics_free(&m);
}

/* The node's own set: every family registers (relay_metrics_new aborts otherwise), fixed-word
 * series exist from the start, and a client-chosen mechanism lands in "other". */
static void relay_set(void **state)
{
    (void)state;
    struct relay_metrics *rm = relay_metrics_new();
    relay_metrics_reply(rm, "250 2.1.0 Sender OK");
    relay_metrics_reply(rm, "250-first line");     /* continuation: counted at its end */
    relay_metrics_reply(rm, "550 5.7.1 Unable to relay");
    relay_metrics_reply(rm, "9");
    relay_metrics_auth(rm, "PLAIN", RM_AUTH_SUCCESS);
    relay_metrics_auth(rm, "X-EVIL\"}", RM_AUTH_FAILURE);
    relay_metrics_right(rm, 0, true);
    assert_int_equal(metrics_value(rm->replies[0]), 1);
    assert_int_equal(metrics_value(rm->replies[3]), 1);
    assert_int_equal(metrics_value(rm->auth[0][RM_AUTH_SUCCESS]), 1);
    assert_int_equal(metrics_value(rm->auth[RM_MECHS - 1][RM_AUTH_FAILURE]), 1);
    char *out = render(rm->reg);
    assert_null(strstr(out, "X-EVIL"));
    assert_non_null(strstr(out, "relaynode_smtp_auth_total{mechanism=\"other\","
                                "outcome=\"failure\"} 1\n"));
    assert_non_null(strstr(out, "# TYPE relaynode_spool_commit_duration_seconds histogram\n"));
    free(out);
    relay_metrics_free(&rm);
    assert_null(rm);
    relay_metrics_reply(NULL, "250 ok");           /* NULL set: no-op */
}

/* Request heads: only GET /metrics is served; the rest get their status, and a head that
 * does not end within the limit is refused, not buffered further. */
static size_t count_lines(const char *text, const char *prefix)
{
    size_t n = 0, pl = strlen(prefix);
    for (const char *p = text; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
        if (strncmp(p, prefix, pl) == 0)
            n++;
    return n;
}

/* The milter's families at their bound: 16 filters (the most the milter key takes), every
 * {filter} series resolved at start with the endpoint as its label, none in "_overflow". */
static void milter_series_bounded(void **state)
{
    (void)state;
    char spec[1024] = "unix:/run/f0.sock", err[RN_ERRLEN] = "";
    for (int i = 1; i < RM_MILTERS; i++)
        snprintf(spec + strlen(spec), sizeof spec - strlen(spec), " inet:127.0.0.1:%d", 1000 + i);
    struct milter_cfg *cfg = milter_cfg_new(spec, 5, 5, MILTER_DEFAULT_TEMPFAIL, err, sizeof err);
    assert_non_null(cfg);
    struct relay_metrics *rm = relay_metrics_new();
    milter_cfg_metrics(NULL, rm);                    /* no-ops */
    milter_cfg_metrics(cfg, NULL);
    milter_cfg_metrics(cfg, rm);
    metrics_inc(rm->milter_bypassed[RM_BYPASS_CONNECTOR], 2);
    char *t = render(rm->reg);
    assert_null(strstr(t, "_overflow"));
    assert_int_equal(count_lines(t, "relaynode_milter_verdicts_total{"), RM_MILTERS * 3 * 5);
    assert_int_equal(count_lines(t, "relaynode_milter_default_verdicts_total{"),
                     RM_MILTERS * 3 * 5);
    assert_int_equal(count_lines(t, "relaynode_milter_errors_total{"), RM_MILTERS * 4);
    assert_int_equal(count_lines(t, "relaynode_milter_latency_seconds_count{"), RM_MILTERS);
    assert_non_null(strstr(t, "relaynode_milter_verdicts_total{filter=\"unix:/run/f0.sock\","
                              "stage=\"eom\",verdict=\"quarantine\"} 0\n"));
    assert_non_null(strstr(t, "relaynode_milter_errors_total{filter=\"inet:127.0.0.1:1015\","
                              "reason=\"protocol\"} 0\n"));
    assert_non_null(strstr(t, "relaynode_milter_bypassed_total{reason=\"connector_off\"} 2\n"));
    assert_non_null(strstr(t, "relaynode_milter_header_changes_total 0\n"));
    free(t);
    relay_metrics_free(&rm);
    milter_cfg_free(&cfg);
}

static void http_classify(void **state)
{
    (void)state;
    static const struct { const char *req; enum metrics_http_req want; } t[] = {
        {"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", MHTTP_METRICS},
        {"GET /metrics HTTP/1.0\r\n\r\n", MHTTP_METRICS},
        {"GET /metrics?name[]=x HTTP/1.1\r\n\r\n", MHTTP_METRICS},
        {"GET /metrics HTTP/1.1\n\n", MHTTP_METRICS},
        {"GET / HTTP/1.1\r\n\r\n", MHTTP_NOT_FOUND},
        {"GET /metricsx HTTP/1.1\r\n\r\n", MHTTP_NOT_FOUND},
        {"GET /metrics/ HTTP/1.1\r\n\r\n", MHTTP_NOT_FOUND},
        {"POST /metrics HTTP/1.1\r\n\r\n", MHTTP_BAD_METHOD},
        {"HEAD /metrics HTTP/1.1\r\n\r\n", MHTTP_BAD_METHOD},
        {"DELETE /x HTTP/1.1\r\n\r\n", MHTTP_BAD_METHOD},
        {"get /metrics HTTP/1.1\r\n\r\n", MHTTP_BAD},
        {"GET /metrics HTTP/2.0\r\n\r\n", MHTTP_BAD},
        {"GET /metrics\r\n\r\n", MHTTP_BAD},
        {"GET  /metrics HTTP/1.1\r\n\r\n", MHTTP_BAD},
        {"GET /met\x01rics HTTP/1.1\r\n\r\n", MHTTP_BAD},
        {"\r\n\r\n", MHTTP_BAD},
        {"GET /metrics HTTP/1.1\r\n", MHTTP_INCOMPLETE},
        {"GET /metr", MHTTP_INCOMPLETE},
        {"", MHTTP_INCOMPLETE},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        enum metrics_http_req r = metrics_http_classify(t[i].req, strlen(t[i].req));
        if (r != t[i].want)
            fail_msg("case %zu '%s': %d want %d", i, t[i].req, r, t[i].want);
    }
    /* at the edge: a head of exactly the limit ending in its blank line is served; one
     * octet more without the end is too large */
    char *buf = xmalloc(METRICS_HTTP_HEAD_MAX + 1);
    const char *start = "GET /metrics HTTP/1.1\r\nX: ";
    memset(buf, 'a', METRICS_HTTP_HEAD_MAX + 1);
    memcpy(buf, start, strlen(start));
    memcpy(buf + METRICS_HTTP_HEAD_MAX - 4, "\r\n\r\n", 4);
    assert_int_equal(metrics_http_classify(buf, METRICS_HTTP_HEAD_MAX), MHTTP_METRICS);
    memset(buf + strlen(start), 'a', METRICS_HTTP_HEAD_MAX + 1 - strlen(start));
    assert_int_equal(metrics_http_classify(buf, METRICS_HTTP_HEAD_MAX - 1), MHTTP_INCOMPLETE);
    assert_int_equal(metrics_http_classify(buf, METRICS_HTTP_HEAD_MAX), MHTTP_TOO_LARGE);
    free(buf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(render_exact),
        cmocka_unit_test(histogram_cumulative),
        cmocka_unit_test(gauge_values),
        cmocka_unit_test(register_rules),
        cmocka_unit_test(series_bounded),
        cmocka_unit_test(threads_exact),
        cmocka_unit_test(relay_set),
        cmocka_unit_test(milter_series_bounded),
        cmocka_unit_test(http_classify),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
