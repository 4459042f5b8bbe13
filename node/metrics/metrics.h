/* metrics: a small registry of Prometheus metric families (counters, gauges, histograms) and
 * the pure renderer of the text exposition format (version 0.0.4). Families are registered
 * at setup, before any thread updates them; a family holds at most max_series label-value
 * tuples (a further tuple lands in one overflow series whose labels all read "_overflow"),
 * so memory and label cardinality are bounded whatever happens. Updates are C11 atomics
 * (relaxed): any thread may call metrics_inc / metrics_set / metrics_observe without a lock.
 * metrics_series looks a tuple up without a lock and adds a new one under the family's
 * mutex; callers on a hot path look their series up once and keep the pointer (series live
 * as long as the registry). Label values must never come from a client. */
#ifndef RN_METRICS_H
#define RN_METRICS_H
#include <stddef.h>
#include <stdint.h>

#define METRICS_LABELS_MAX    3      /* label names per family */
#define METRICS_BUCKETS_MAX   16     /* histogram bounds per family (+Inf is implicit) */
#define METRICS_VALUE_MAX     256    /* octets of a label value kept (longer ones are cut) */
#define METRICS_SERIES_MAX    1024   /* series per family, whatever max_series asks */

enum metric_kind { METRIC_COUNTER, METRIC_GAUGE, METRIC_HISTOGRAM };

struct metrics;
struct metric_family;
struct metric_series;

/* An empty registry; caller frees with metrics_free. */
struct metrics *metrics_new(void);
void metrics_free(struct metrics **m);

/* Register a family (setup only, one thread). name: [a-zA-Z_:][a-zA-Z0-9_:]*, counters
 * ending in _total; labels: NULL-ended names [a-zA-Z_][a-zA-Z0-9_]* not starting with "__"
 * (none is "le" for a histogram); max_series: 1..METRICS_SERIES_MAX. Histograms: nbounds
 * strictly increasing finite upper bounds in the rendered unit, and scale, the rendered
 * value of one raw unit metrics_observe takes (1e-9: nanoseconds observed, seconds shown).
 * NULL with err on any violation or a duplicate name. Owned by m. */
struct metric_family *metrics_register(struct metrics *m, enum metric_kind kind,
                                       const char *name, const char *help,
                                       const char *const *labels, size_t max_series,
                                       const double *bounds, size_t nbounds, double scale,
                                       char *err, size_t errlen);
/* The series of f for values (as many as f has labels; NULL when it has none), added if
 * new; the overflow series once f is full. Never NULL for a non-NULL f; NULL f gives NULL.
 * Any thread. */
struct metric_series *metrics_series(struct metric_family *f, const char *const *values);

/* Updates, any thread, no lock; each is a no-op on NULL (a part built without metrics). */
void metrics_inc(struct metric_series *s, uint64_t n);        /* counter += n */
void metrics_set(struct metric_series *s, double v);          /* gauge = v */
void metrics_observe(struct metric_series *s, uint64_t raw);  /* histogram: one value */
/* Read a counter (tests, relayctl-free checks). 0 on NULL. */
uint64_t metrics_value(const struct metric_series *s);

/* Drop every series of f (a gauge whose label values change, e.g. an info metric). Only
 * for families that one thread alone updates and renders: earlier series pointers of f
 * become invalid. */
void metrics_clear(struct metric_family *f);

/* Render every family in registration order in the text exposition format: HELP and TYPE,
 * one line per series (label values escaped: backslash, double quote, newline), histograms
 * as cumulative _bucket lines up to le="+Inf", then _sum and _count. A family without a
 * series renders as its HELP and TYPE only. out receives the text in pieces. Pure: reads the
 * registry, writes only through out. */
typedef void metrics_out_fn(const char *p, size_t n, void *arg);
void metrics_render(const struct metrics *m, metrics_out_fn *out, void *arg);
#endif
