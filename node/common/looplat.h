/* looplat: how long the event loop went without running its events (issue 13, docs/style.md
 * 7). A timer every LOOPLAT_PERIOD_MS notes how late it fires; anything that blocks the loop
 * (a disk read, a sleep) shows as lateness. Each report period the worst lateness seen is
 * logged ("- node loop-latency max_ms=...") when it exceeds the threshold; the worst since
 * start is logged at exit and returned by looplat_max_ms. Loop thread only. */
#ifndef RN_LOOPLAT_H
#define RN_LOOPLAT_H

struct event_base;
struct looplat;

/* report_s: seconds between reports; threshold_ms: a period's max below this is not logged.
 * NULL on failure (no event). */
struct looplat *looplat_new(struct event_base *base, unsigned report_s, unsigned threshold_ms);
/* Log the worst lateness since start ("- node loop-stats max_ms=... samples=..."), free. */
void looplat_free(struct looplat **l);
/* The worst lateness seen since start, in milliseconds. */
double looplat_max_ms(const struct looplat *l);
#endif
