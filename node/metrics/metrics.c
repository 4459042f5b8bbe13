/* metrics: the registry and the text renderer (metrics.h). Each family owns a fixed array of
 * series allocated at registration, so a series pointer stays valid for the registry's life
 * and no update ever allocates. A series is published by storing the family's count with
 * release order after its label values are written; lookups read the count with acquire
 * order and compare, so readers never lock. Values are relaxed atomics: a scrape may see one
 * counter a moment before another, which the exposition format allows. Histogram buckets
 * are kept per bucket and summed when rendered, so +Inf always equals _count.
 * Format: https://prometheus.io/docs/instrumenting/exposition_formats/ (text 0.0.4). */
#include "node/metrics/metrics.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "directory/base/util.h"

struct metric_series {
    const struct metric_family *f;             /* borrowed: the family it belongs to */
    char *values[METRICS_LABELS_MAX];          /* owned; immutable once published */
    _Atomic uint64_t v;                        /* counter, or gauge as double bits */
    _Atomic uint64_t sum;                      /* histogram: raw units */
    _Atomic uint64_t buckets[METRICS_BUCKETS_MAX + 1];   /* per bucket; last = above all */
};

struct metric_family {
    struct metrics *m;
    enum metric_kind kind;
    char *name, *help;                         /* owned */
    char *labels[METRICS_LABELS_MAX];          /* owned */
    size_t nlabels;
    double bounds[METRICS_BUCKETS_MAX];        /* rendered unit */
    double raw_bounds[METRICS_BUCKETS_MAX];    /* raw unit: bounds / scale */
    size_t nbounds;
    double scale;
    struct metric_series *series;              /* owned, max_series */
    size_t max_series;
    _Atomic size_t nseries;                    /* published */
    struct metric_series overflow;
    _Atomic bool overflowed;
    pthread_mutex_t mu;                        /* serialises adding a series */
    struct metric_family *next;
};

struct metrics {
    struct metric_family *head, *tail;
};

struct metrics *metrics_new(void)
{
    return xcalloc(1, sizeof(struct metrics));
}

static void series_clear(struct metric_series *s)
{
    for (size_t i = 0; i < METRICS_LABELS_MAX; i++) {
        free(s->values[i]);
        s->values[i] = NULL;
    }
}

void metrics_free(struct metrics **mp)
{
    struct metrics *m = *mp;
    if (!m)
        return;
    while (m->head) {
        struct metric_family *f = m->head;
        m->head = f->next;
        metrics_clear(f);
        free(f->series);
        free(f->name);
        free(f->help);
        for (size_t i = 0; i < f->nlabels; i++)
            free(f->labels[i]);
        pthread_mutex_destroy(&f->mu);
        free(f);
    }
    free(m);
    *mp = NULL;
}

/* Prometheus data model: metric names [a-zA-Z_:][a-zA-Z0-9_:]*, label names without ':'. */
static bool name_valid(const char *s, bool colon)
{
    if (!s || !*s)
        return false;
    for (const char *p = s; *p; p++) {
        bool alpha = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || *p == '_' ||
                     (colon && *p == ':');
        if (!alpha && !(p > s && *p >= '0' && *p <= '9'))
            return false;
    }
    return true;
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

/* The checks metrics_register makes on everything but the labels. */
static int family_check(const struct metrics *m, enum metric_kind kind, const char *name,
                        size_t max_series, const double *bounds, size_t nbounds, double scale,
                        char *err, size_t errlen)
{
    if (!name_valid(name, true))
        return rn_err(err, errlen, "metric name '%s' is not [a-zA-Z_:][a-zA-Z0-9_:]*",
                      name ? name : "");
    if (kind == METRIC_COUNTER && !ends_with(name, "_total"))
        return rn_err(err, errlen, "%s: a counter's name ends in _total", name);
    if (kind != METRIC_COUNTER && ends_with(name, "_total"))
        return rn_err(err, errlen, "%s: only counters end in _total", name);
    for (const struct metric_family *f = m->head; f; f = f->next)
        if (!strcmp(f->name, name))
            return rn_err(err, errlen, "%s: registered twice", name);
    if (max_series < 1 || max_series > METRICS_SERIES_MAX)
        return rn_err(err, errlen, "%s: max_series %zu not in 1..%d", name, max_series,
                      METRICS_SERIES_MAX);
    if (kind != METRIC_HISTOGRAM)
        return nbounds ? rn_err(err, errlen, "%s: buckets on a non-histogram", name) : 0;
    if (nbounds < 1 || nbounds > METRICS_BUCKETS_MAX)
        return rn_err(err, errlen, "%s: %zu buckets, not 1..%d", name, nbounds,
                      METRICS_BUCKETS_MAX);
    if (!(scale > 0) || !isfinite(scale))
        return rn_err(err, errlen, "%s: scale must be finite and positive", name);
    for (size_t i = 0; i < nbounds; i++)
        if (!isfinite(bounds[i]) || (i > 0 && !(bounds[i] > bounds[i - 1])))
            return rn_err(err, errlen, "%s: bucket bounds must be finite and increasing", name);
    return 0;
}

struct metric_family *metrics_register(struct metrics *m, enum metric_kind kind,
                                       const char *name, const char *help,
                                       const char *const *labels, size_t max_series,
                                       const double *bounds, size_t nbounds, double scale,
                                       char *err, size_t errlen)
{
    if (family_check(m, kind, name, max_series, bounds, nbounds, scale, err, errlen) < 0)
        return NULL;
    size_t nl = 0;
    for (; labels && labels[nl]; nl++) {
        const char *l = labels[nl];
        if (nl == METRICS_LABELS_MAX || !name_valid(l, false) || !strncmp(l, "__", 2) ||
            (kind == METRIC_HISTOGRAM && !strcmp(l, "le"))) {
            rn_err(err, errlen, "%s: label '%s' refused (at most %d, [a-zA-Z_][a-zA-Z0-9_]*, "
                   "no __ prefix, no le on a histogram)", name, l, METRICS_LABELS_MAX);
            return NULL;
        }
        for (size_t j = 0; j < nl; j++)
            if (!strcmp(labels[j], l)) {
                rn_err(err, errlen, "%s: label '%s' twice", name, l);
                return NULL;
            }
    }
    struct metric_family *f = xcalloc(1, sizeof *f);
    f->m = m;
    f->kind = kind;
    f->name = xstrdup(name);
    f->help = xstrdup(help ? help : "");
    f->nlabels = nl;
    for (size_t i = 0; i < nl; i++)
        f->labels[i] = xstrdup(labels[i]);
    f->nbounds = kind == METRIC_HISTOGRAM ? nbounds : 0;
    f->scale = kind == METRIC_HISTOGRAM ? scale : 1;
    for (size_t i = 0; i < f->nbounds; i++) {
        f->bounds[i] = bounds[i];
        f->raw_bounds[i] = bounds[i] / scale;
    }
    f->max_series = max_series;
    f->series = xcalloc(max_series, sizeof *f->series);
    pthread_mutex_init(&f->mu, NULL);
    if (m->tail)
        m->tail->next = f;
    else
        m->head = f;
    m->tail = f;
    return f;
}

static bool series_match(const struct metric_family *f, const struct metric_series *s,
                         const char *const *values)
{
    for (size_t i = 0; i < f->nlabels; i++)
        if (strncmp(s->values[i], values[i] ? values[i] : "", METRICS_VALUE_MAX - 1) != 0 ||
            (values[i] && strlen(values[i]) >= METRICS_VALUE_MAX &&
             strlen(s->values[i]) != METRICS_VALUE_MAX - 1))
            return false;
    return true;
}

static struct metric_series *series_find(struct metric_family *f, const char *const *values,
                                         size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (series_match(f, &f->series[i], values))
            return &f->series[i];
    return NULL;
}

struct metric_series *metrics_series(struct metric_family *f, const char *const *values)
{
    if (!f)
        return NULL;
    size_t n = atomic_load_explicit(&f->nseries, memory_order_acquire);
    struct metric_series *s = series_find(f, values, n);
    if (s)
        return s;
    pthread_mutex_lock(&f->mu);
    n = atomic_load_explicit(&f->nseries, memory_order_acquire);
    s = series_find(f, values, n);
    if (!s && n == f->max_series) {
        if (!atomic_load_explicit(&f->overflowed, memory_order_relaxed)) {
            for (size_t i = 0; i < f->nlabels; i++)
                f->overflow.values[i] = xstrdup("_overflow");
            f->overflow.f = f;
            atomic_store_explicit(&f->overflowed, true, memory_order_release);
        }
        s = &f->overflow;
    } else if (!s) {
        s = &f->series[n];
        s->f = f;
        for (size_t i = 0; i < f->nlabels; i++)
            s->values[i] = xstrndup(values[i] ? values[i] : "", METRICS_VALUE_MAX - 1);
        atomic_store_explicit(&f->nseries, n + 1, memory_order_release);
    }
    pthread_mutex_unlock(&f->mu);
    return s;
}

void metrics_inc(struct metric_series *s, uint64_t n)
{
    if (s)
        atomic_fetch_add_explicit(&s->v, n, memory_order_relaxed);
}

void metrics_set(struct metric_series *s, double v)
{
    if (!s)
        return;
    uint64_t bits;
    memcpy(&bits, &v, sizeof bits);
    atomic_store_explicit(&s->v, bits, memory_order_relaxed);
}

uint64_t metrics_value(const struct metric_series *s)
{
    return s ? atomic_load_explicit(&s->v, memory_order_relaxed) : 0;
}

void metrics_observe(struct metric_series *s, uint64_t raw)
{
    if (!s || !s->f)
        return;
    const struct metric_family *f = s->f;
    size_t b = 0;
    while (b < f->nbounds && (double)raw > f->raw_bounds[b])
        b++;
    atomic_fetch_add_explicit(&s->buckets[b], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&s->sum, raw, memory_order_relaxed);
}

void metrics_clear(struct metric_family *f)
{
    size_t n = atomic_load_explicit(&f->nseries, memory_order_acquire);
    for (size_t i = 0; i < n; i++) {
        series_clear(&f->series[i]);
        memset(&f->series[i], 0, sizeof f->series[i]);
    }
    atomic_store_explicit(&f->nseries, 0, memory_order_release);
    series_clear(&f->overflow);
    memset(&f->overflow, 0, sizeof f->overflow);
    atomic_store_explicit(&f->overflowed, false, memory_order_release);
}

/* ---- rendering (pure) ---- */

struct out { metrics_out_fn *fn; void *arg; };

static void put(const struct out *o, const char *s)
{
    o->fn(s, strlen(s), o->arg);
}

/* A label value with backslash, double quote and newline escaped; HELP text (quote false)
 * escapes backslash and newline only. */
static void put_escaped(const struct out *o, const char *s, bool quote)
{
    const char *run = s;
    for (const char *p = s; *p; p++) {
        const char *esc = *p == '\\' ? "\\\\" : *p == '\n' ? "\\n"
                          : quote && *p == '"' ? "\\\"" : NULL;
        if (!esc)
            continue;
        if (p > run)
            o->fn(run, (size_t)(p - run), o->arg);
        put(o, esc);
        run = p + 1;
    }
    if (*run)
        put(o, run);
}

/* The shortest %g form that reads back as v (0.005, not 0.0050000000000000001); NaN and
 * infinities as the format spells them. */
static void fmt_double(double v, char *buf, size_t len)
{
    if (isnan(v)) {
        snprintf(buf, len, "NaN");
        return;
    }
    if (isinf(v)) {
        snprintf(buf, len, v > 0 ? "+Inf" : "-Inf");
        return;
    }
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(buf, len, "%.*g", prec, v);
        if (strtod(buf, NULL) == v)
            return;
    }
}

/* name{l1="v1",l2="v2"[,le="x"]} value */
static void put_sample(const struct out *o, const struct metric_family *f, const char *suffix,
                       const struct metric_series *s, const char *le, const char *value)
{
    put(o, f->name);
    put(o, suffix);
    if (f->nlabels || le) {
        put(o, "{");
        for (size_t i = 0; i < f->nlabels; i++) {
            put(o, i ? "," : "");
            put(o, f->labels[i]);
            put(o, "=\"");
            put_escaped(o, s->values[i] ? s->values[i] : "", true);
            put(o, "\"");
        }
        if (le) {
            put(o, f->nlabels ? ",le=\"" : "le=\"");
            put(o, le);
            put(o, "\"");
        }
        put(o, "}");
    }
    put(o, " ");
    put(o, value);
    put(o, "\n");
}

static void render_series(const struct out *o, const struct metric_family *f,
                          const struct metric_series *s)
{
    char num[64];
    if (f->kind == METRIC_COUNTER) {
        snprintf(num, sizeof num, "%llu",
                 (unsigned long long)atomic_load_explicit(&s->v, memory_order_relaxed));
        put_sample(o, f, "", s, NULL, num);
        return;
    }
    if (f->kind == METRIC_GAUGE) {
        uint64_t bits = atomic_load_explicit(&s->v, memory_order_relaxed);
        double v;
        memcpy(&v, &bits, sizeof v);
        fmt_double(v, num, sizeof num);
        put_sample(o, f, "", s, NULL, num);
        return;
    }
    uint64_t cum = 0;
    char le[64];
    for (size_t b = 0; b <= f->nbounds; b++) {
        cum += atomic_load_explicit(&s->buckets[b], memory_order_relaxed);
        if (b < f->nbounds)
            fmt_double(f->bounds[b], le, sizeof le);
        else
            snprintf(le, sizeof le, "+Inf");
        snprintf(num, sizeof num, "%llu", (unsigned long long)cum);
        put_sample(o, f, "_bucket", s, le, num);
    }
    fmt_double((double)atomic_load_explicit(&s->sum, memory_order_relaxed) * f->scale, num,
               sizeof num);
    put_sample(o, f, "_sum", s, NULL, num);
    snprintf(num, sizeof num, "%llu", (unsigned long long)cum);
    put_sample(o, f, "_count", s, NULL, num);
}

void metrics_render(const struct metrics *m, metrics_out_fn *fn, void *arg)
{
    static const char *const types[] = {[METRIC_COUNTER] = "counter",
                                        [METRIC_GAUGE] = "gauge",
                                        [METRIC_HISTOGRAM] = "histogram"};
    const struct out o = {fn, arg};
    for (const struct metric_family *f = m->head; f; f = f->next) {
        put(&o, "# HELP ");
        put(&o, f->name);
        put(&o, " ");
        put_escaped(&o, f->help, false);
        put(&o, "\n# TYPE ");
        put(&o, f->name);
        put(&o, " ");
        put(&o, types[f->kind]);
        put(&o, "\n");
        size_t n = atomic_load_explicit(&f->nseries, memory_order_acquire);
        for (size_t i = 0; i < n; i++)
            render_series(&o, f, &f->series[i]);
        if (atomic_load_explicit(&f->overflowed, memory_order_acquire))
            render_series(&o, f, &f->overflow);
    }
}
