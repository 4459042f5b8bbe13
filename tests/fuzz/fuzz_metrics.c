/* libFuzzer target for node/metrics: the scrape endpoint's request classification
 * (metrics_http_classify) and the renderer's escaping. Beyond "no crash, no sanitizer
 * report" it checks the contracts: a request is decided the same whether its bytes arrive
 * whole or one at a time (once a prefix is decided, every longer input gets that decision,
 * so the bounded reader never changes its mind), and a label value or HELP text made of
 * arbitrary bytes never adds a line to the exposition (backslash, quote and newline are
 * escaped), so a value cannot forge a sample.
 *   clang -std=gnu11 -g -O1 -I. -D_GNU_SOURCE -fsanitize=fuzzer,address,undefined \
 *     -o /tmp/fuzz_metrics tests/fuzz/fuzz_metrics.c node/metrics/metrics.c \
 *     node/metrics/metrics_http.c directory/base/util.c -levent -lpthread -lm
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "directory/base/util.h"
#include "node/metrics/metrics.h"
#include "node/metrics/metrics_http.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct count { size_t lines, bytes; };

static void count_out(const char *p, size_t n, void *arg)
{
    struct count *c = arg;
    for (size_t i = 0; i < n; i++)
        c->lines += p[i] == '\n';
    c->bytes += n;
}

static void check_classify(const char *buf, size_t size)
{
    enum metrics_http_req whole = metrics_http_classify(buf, size);
    enum metrics_http_req decided = MHTTP_INCOMPLETE;
    for (size_t i = 0; i <= size; i++) {
        enum metrics_http_req r = metrics_http_classify(buf, i);
        if (decided == MHTTP_INCOMPLETE)
            decided = r;
        else if (r != decided)
            abort();                        /* a decision changed with more bytes */
    }
    if (decided != whole)
        abort();
    if (size >= METRICS_HTTP_HEAD_MAX && whole == MHTTP_INCOMPLETE)
        abort();                            /* the reader would wait past its bound */
}

static void check_render(const char *text)
{
    struct metrics *m = metrics_new();
    const char *const labels[] = {"a", "b", NULL};
    char err[RN_ERRLEN];
    struct metric_family *f = metrics_register(m, METRIC_COUNTER, "x_total", text, labels, 4,
                                               NULL, 0, 1, err, sizeof err);
    if (!f)
        abort();
    const char *v[] = {text, "plain"};
    metrics_inc(metrics_series(f, v), 1);
    const char *w[] = {"", text};
    metrics_inc(metrics_series(f, w), 2);
    struct count c = {0, 0};
    metrics_render(m, count_out, &c);
    if (c.lines != 4)                       /* HELP, TYPE and two samples: nothing forged */
        abort();
    metrics_free(&m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    check_classify((const char *)data, size);
    char *text = xstrndup((const char *)data, size);   /* up to the first NUL */
    check_render(text);
    free(text);
    return 0;
}
