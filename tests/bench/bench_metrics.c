/* bench_metrics: what a counter costs on the paths that bump one (node/metrics/metrics.h):
 * metrics_inc on a kept series (the session and committer paths), metrics_series looked up
 * among 256 connectors (a session start), metrics_observe into a 14-bucket histogram (each
 * group commit), and the same increment from 2 threads on one series (contended atomics),
 * then one rendering of the node's whole set (relay_metrics_new) with 256 connectors, as a
 * scrape does. Prints ns per operation and the scrape's size; never asserts time. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "directory/base/util.h"
#include "node/metrics/metrics.h"
#include "node/metrics/relaymetrics.h"

#define RUNS 20000000

static double now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e9 + (double)t.tv_nsec;
}

static void *bump(void *arg)
{
    for (int i = 0; i < RUNS; i++)
        metrics_inc(arg, 1);
    return NULL;
}

static void count_out(const char *p, size_t n, void *arg)
{
    (void)p;
    *(size_t *)arg += n;
}

int main(void)
{
    struct relay_metrics *rm = relay_metrics_new();
    char names[256][32];
    for (int i = 0; i < 256; i++) {
        snprintf(names[i], sizeof names[i], "Connector %03d", i);
        metrics_inc(relay_metrics_connector(rm, rm->sessions, names[i]), 1);
        metrics_inc(relay_metrics_connector(rm, rm->messages, names[i]), 1);
    }
    struct metric_series *s = relay_metrics_connector(rm, rm->messages, names[255]);
    double t0 = now_ns();
    bump(s);
    double inc = (now_ns() - t0) / RUNS;
    t0 = now_ns();
    for (int i = 0; i < RUNS / 100; i++)
        metrics_inc(relay_metrics_connector(rm, rm->sessions, names[i & 255]), 1);
    double lookup = (now_ns() - t0) / (RUNS / 100);
    t0 = now_ns();
    for (int i = 0; i < RUNS; i++)
        metrics_observe(rm->commit_seconds, (uint64_t)(i & 0xffffff) * 64);
    double observe = (now_ns() - t0) / RUNS;
    pthread_t th[2];
    t0 = now_ns();
    for (int i = 0; i < 2; i++)
        pthread_create(&th[i], NULL, bump, s);
    for (int i = 0; i < 2; i++)
        pthread_join(th[i], NULL);
    double contended = (now_ns() - t0) / RUNS;
    size_t bytes = 0;
    t0 = now_ns();
    for (int i = 0; i < 100; i++)
        metrics_render(rm->reg, count_out, &bytes);
    double render = (now_ns() - t0) / 100;
    printf("metrics_inc, kept series:            %6.2f ns\n", inc);
    printf("metrics_series among 256 + inc:      %6.1f ns (once per session)\n", lookup);
    printf("metrics_observe, 14 buckets:         %6.2f ns\n", observe);
    printf("metrics_inc, 2 threads, one series:  %6.2f ns per increment per thread\n",
           contended);
    printf("render the node's set, 256 conns:    %6.1f us, %zu bytes\n", render / 1e3,
           bytes / 100);
    relay_metrics_free(&rm);
    return 0;
}
