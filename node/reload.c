/* reload: the decision the daemon takes when a snapshot load finishes (reload.h).
 *
 * Four outcomes, checked in this order:
 *   failed     the load returned no snapshot: the last good one keeps serving;
 *   unchanged  the same directory version (the same text, or an equal CSN vector) with the
 *              same content hash: the periodic safety net or a duplicate notice; the
 *              sessions keep sharing the snapshot they have;
 *   older      the loaded version is not accepted over the applied one (clusterver_accept:
 *              older or concurrent, e.g. a lagging replica after a failover): never go
 *              backwards, try again later;
 *   apply      anything else. A version older than the applied one for RELOAD_BACKWARDS_S
 *              is applied too: the directory was restored from a backup or lost a
 *              provider's CSN, it is the truth, and a node must not serve a configuration
 *              the directory no longer holds for ever. The same version text with another
 *              content hash is applied as well: a directory whose contextCSN does not move
 *              (no syncprov) would otherwise never be reloaded.
 * The "older since" clock starts at the first discarded load and is cleared by any load that
 * is applied or found unchanged; a failed load leaves it as it was. */
#include "node/reload.h"
#include <string.h>
#include "node/cluster/clusterver.h"

bool reload_covers(const char *have, const char *want)
{
    enum clusterver_order o = clusterver_compare(have, want);
    return o == CV_EQUAL || o == CV_NEWER;
}

unsigned reload_backoff_next(unsigned backoff)
{
    return backoff * 2 > RELOAD_BACKOFF_MAX_S ? RELOAD_BACKOFF_MAX_S : backoff * 2;
}

unsigned reload_period_ms(unsigned period_s, uint32_t rnd)
{
    unsigned long long ms = (unsigned long long)period_s * 1000;
    return (unsigned)(ms - ms / 4 + rnd % (ms / 2 + 1));
}

/* Both versions present and the same text. */
static bool same_text(const struct reload_input *in)
{
    return in->have_snap && in->applied && in->loaded && strcmp(in->loaded, in->applied) == 0;
}

struct reload_decision reload_decide(const struct reload_input *in)
{
    struct reload_decision r = {RELOAD_FAILED, in->older_since};
    if (!in->load_ok)
        return r;
    if (in->have_snap && in->applied && in->loaded &&
        (same_text(in) || clusterver_compare(in->loaded, in->applied) == CV_EQUAL) &&
        in->loaded_hash == in->applied_hash) {
        r.action = RELOAD_UNCHANGED;
        r.older_since = 0;
        return r;
    }
    if (!clusterver_accept(in->applied, in->loaded)) {
        if (!in->older_since) {
            r.action = RELOAD_OLDER;          /* the first refusal starts the clock */
            r.older_since = in->now ? in->now : 1;
            return r;
        }
        if (in->now - in->older_since < RELOAD_BACKWARDS_S) {
            r.action = RELOAD_OLDER;
            return r;
        }
        r.action = RELOAD_APPLY_RESET;
        r.older_since = 0;
        return r;
    }
    /* Accepted: equal text cannot be refused (clusterver_accept takes equal versions, and an
     * unreadable one only over another unreadable one), so a reset never has the same text. */
    r.action = same_text(in) ? RELOAD_APPLY_SAME_VERSION : RELOAD_APPLY;
    r.older_since = 0;
    return r;
}

const char *reload_action_name(enum reload_action a)
{
    switch (a) {
    case RELOAD_FAILED: return "failed";
    case RELOAD_UNCHANGED: return "unchanged";
    case RELOAD_OLDER: return "older";
    case RELOAD_APPLY: return "apply";
    case RELOAD_APPLY_SAME_VERSION: return "apply-same-version";
    case RELOAD_APPLY_RESET: return "apply-reset";
    }
    return "?";
}
