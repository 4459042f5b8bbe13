/* looplat: a loop-latency probe (looplat.h). A persistent timer of LOOPLAT_PERIOD_MS is due
 * every period; the gap between two runs minus the period is the time the loop spent on
 * something else past its deadline, i.e. how long every other ready event (a client's NOOP)
 * also waited. It measures at most one period short of the true block (a block that began
 * just after a run) and costs 1000 / LOOPLAT_PERIOD_MS wake-ups a second. */
#include "node/common/looplat.h"
#include <event2/event.h>
#include <stdlib.h>
#include <time.h>
#include "directory/base/util.h"
#include "node/common/log.h"

#define LOOPLAT_PERIOD_MS 20

struct looplat {
    struct event *ev;             /* owned */
    struct timespec last;         /* the previous run */
    struct timespec report_at;    /* the next report */
    unsigned report_s, threshold_ms;
    double window_max, all_max;   /* ms late: this report period, since start */
    unsigned long long samples;
};

static double ms_between(const struct timespec *a, const struct timespec *b)
{
    return (double)(b->tv_sec - a->tv_sec) * 1e3 + (double)(b->tv_nsec - a->tv_nsec) / 1e6;
}

static void looplat_tick(evutil_socket_t fd, short what, void *arg)
{
    struct looplat *l = arg;
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    if (l->samples++ == 0) {      /* the first run: what came before the loop is not lateness */
        l->last = now;
        return;
    }
    double late = ms_between(&l->last, &now) - LOOPLAT_PERIOD_MS;
    l->last = now;
    if (late > l->window_max)
        l->window_max = late;
    if (late > l->all_max)
        l->all_max = late;
    if (ms_between(&l->report_at, &now) < 0)
        return;
    if (l->window_max >= l->threshold_ms)
        log_fact("-", "node", "loop-latency", "max_ms=%.1f period_s=%u", l->window_max,
                 l->report_s);
    l->window_max = 0;
    l->report_at = now;
    l->report_at.tv_sec += l->report_s;
}

struct looplat *looplat_new(struct event_base *base, unsigned report_s, unsigned threshold_ms)
{
    struct looplat *l = xcalloc(1, sizeof *l);
    l->report_s = report_s ? report_s : 1;
    l->threshold_ms = threshold_ms;
    clock_gettime(CLOCK_MONOTONIC, &l->last);
    l->report_at = l->last;
    l->report_at.tv_sec += l->report_s;
    l->ev = event_new(base, -1, EV_PERSIST, looplat_tick, l);
    struct timeval tv = {0, LOOPLAT_PERIOD_MS * 1000};
    if (!l->ev || event_add(l->ev, &tv) < 0) {
        if (l->ev)
            event_free(l->ev);
        free(l);
        return NULL;
    }
    return l;
}

double looplat_max_ms(const struct looplat *l)
{
    return l->all_max;
}

void looplat_free(struct looplat **lp)
{
    struct looplat *l = *lp;
    if (!l)
        return;
    log_fact("-", "node", "loop-stats", "max_ms=%.1f samples=%llu", l->all_max, l->samples);
    event_free(l->ev);
    free(l);
    *lp = NULL;
}
