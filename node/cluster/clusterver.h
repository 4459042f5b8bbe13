/* clusterver: cluster versions (the directory's contextCSN, one CSN per provider sid) and
 * the convergence rules of schema/cluster-protocol.md §1 and §5, as pure functions. */
#ifndef RN_CLUSTERVER_H
#define RN_CLUSTERVER_H
#include <stdbool.h>

enum clusterver_order {
    CV_EQUAL,        /* same CSN for every sid */
    CV_NEWER,        /* a >= b for every sid of b, and a != b */
    CV_OLDER,        /* b is newer than a */
    CV_CONCURRENT,   /* each is ahead on some sid (providers not yet in sync) */
    CV_INVALID       /* a or b is NULL, empty or not a version (e.g. "load-<time>") */
};

/* Whether s is a version: 1..32 CSNs "time#count#sid#mod" joined by ',', no sid twice. */
bool clusterver_valid(const char *s);
/* Compare a with b per sid (the vector-clock order of §1). */
enum clusterver_order clusterver_compare(const char *a, const char *b);

enum clusterver_action {
    CV_IGNORE,       /* old news, a replay, or not a version: nothing to do */
    CV_RELOAD,       /* newer than applied and the local replica has it (or is unknown) */
    CV_WAIT          /* newer than applied but the local replica is known to lag behind */
};

/* What a node does on learning `announced` (NOTICE, peer HEARTBEAT or its own watcher):
 * applied = the version it serves (NULL: none yet), replica = its own directory server's
 * current version (NULL: unknown). */
enum clusterver_action clusterver_decide(const char *applied, const char *announced,
                                         const char *replica);

/* Whether a freshly loaded snapshot with version `loaded` may replace the one at `applied`:
 * only if it is newer or equal (never backwards), or applied is NULL/invalid. An invalid
 * loaded version is accepted only when applied is invalid too. */
bool clusterver_accept(const char *applied, const char *loaded);

/* How long a node at `applied` has been behind `current`: now (seconds since the epoch) minus
 * the time of the oldest CSN of current that applied does not cover (a lower bound: the
 * missing change may be older than its sid's newest CSN). 0 when applied covers current;
 * -1 when current is not a version. */
long long clusterver_lag_s(const char *applied, const char *current, long long now);

const char *clusterver_order_name(enum clusterver_order o);
const char *clusterver_action_name(enum clusterver_action a);
#endif
