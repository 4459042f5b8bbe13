/* reload: what the daemon does with a finished snapshot load, as a pure decision (no event
 * loop, no I/O, no clock of its own). The inputs are the two versions and content hashes,
 * whether the load succeeded, the time and the one piece of state the rule keeps (since when
 * loads have been older than what runs); the output is an action with its reason and the
 * new value of that state. daemon.c acts on it (swap, keep, retry, log). */
#ifndef RN_RELOAD_H
#define RN_RELOAD_H
#include <stdbool.h>
#include <stdint.h>

#define RELOAD_BACKWARDS_S  300   /* an older directory for this long is the truth (restore) */
#define RELOAD_BACKOFF_MIN_S  1   /* retry delay after a failed or discarded load ... */
#define RELOAD_BACKOFF_MAX_S 30   /* ... doubled up to this */

enum reload_action {
    RELOAD_FAILED,            /* the load failed: keep the last good snapshot, retry later */
    RELOAD_UNCHANGED,         /* same version and same content: keep the running snapshot */
    RELOAD_OLDER,             /* older than (or concurrent with) what runs: discard, retry */
    RELOAD_APPLY,             /* newer, equal in order with other content, or the first */
    RELOAD_APPLY_SAME_VERSION,/* the same version text but other content (a contextCSN that
                               * does not move): applied, and worth a log line */
    RELOAD_APPLY_RESET,       /* older than what runs, but for RELOAD_BACKWARDS_S already:
                               * the directory was restored; applied as the truth */
};

struct reload_input {
    bool load_ok;             /* the load returned a snapshot */
    bool have_snap;           /* a snapshot runs now */
    const char *applied;      /* its version; NULL when none runs or it has none */
    uint64_t applied_hash;    /* its content hash (meaningful when have_snap) */
    const char *loaded;       /* the loaded snapshot's version; may be NULL */
    uint64_t loaded_hash;
    long long now;            /* seconds on a monotonic clock */
    long long older_since;    /* when the first load older than applied was discarded (the
                               * value of a previous decision); 0: none pending */
};

struct reload_decision {
    enum reload_action action;
    long long older_since;    /* keep for the next decision: set by the first RELOAD_OLDER,
                               * kept by later ones and by RELOAD_FAILED, 0 otherwise */
};

/* Decide what to do with one finished load (see enum reload_action). Never fails. */
struct reload_decision reload_decide(const struct reload_input *in);

/* Whether a snapshot at version `have` holds everything of `want` (equal or newer). */
bool reload_covers(const char *have, const char *want);

/* The retry delay after `backoff` seconds: doubled, at most RELOAD_BACKOFF_MAX_S. */
unsigned reload_backoff_next(unsigned backoff);

/* The delay before the next periodic safety-net load, in milliseconds: period_s spread by up
 * to a quarter either way by rnd (any 32-bit value), so that the nodes of a cluster, started
 * together, do not all read the whole directory from one server at once (issue 17). */
unsigned reload_period_ms(unsigned period_s, uint32_t rnd);

const char *reload_action_name(enum reload_action a);
#endif
