/* milter: the node's content filters (Sendmail milter protocol 6) on the event loop. A job
 * asks every configured filter in turn about one received message, over a non-blocking
 * socket with a connect timeout and a per-reply command timeout, and calls done() once, on
 * the loop, with the combined verdict: the first filter that does not accept decides; header
 * changes of the accepting filters add up; a filter that cannot be asked (down, slow, speaking
 * nonsense) gets milter_default_action, never a silent accept. The protocol itself is the pure
 * milter_proto.h. */
#ifndef RN_MILTER_H
#define RN_MILTER_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "node/milter/milter_proto.h"

struct event_base;

/* milter_default_action: what a filter that cannot be asked means. */
enum milter_default { MILTER_DEFAULT_TEMPFAIL, MILTER_DEFAULT_ACCEPT, MILTER_DEFAULT_REJECT };

struct relay_metrics;
struct milter_series;
struct milter_cfg {
    struct milter_endpoint *ep; size_t nep;   /* owned; nep == 0: no filtering */
    unsigned connect_timeout, command_timeout;    /* seconds */
    enum milter_default dflt;
    struct milter_series *ms;                 /* owned: nep of them; NULL: nothing counted */
};

/* A stage's verdict handed to done(): action (never MILTER_FAILED: the default action has
 * been applied, and defaulted says so, with filter and the reason in text), the stage, the
 * filter's text, and at "eom" quarantine and the header changes (owned by the job: used or
 * copied before done() returns). A discard before the end makes the "eom" verdict discard. */
struct milter_verdict {
    struct milter_result r;
    bool defaulted;
    int filter;                      /* index of the deciding filter, -1 = none (all accepted) */
};

/* The filters of the bootstrap's milter key (milter_endpoints_parse), caller frees with
 * milter_cfg_free. NULL with err naming the bad endpoint. */
struct milter_cfg *milter_cfg_new(const char *spec, unsigned connect_timeout,
                                  unsigned command_timeout, enum milter_default dflt,
                                  char *err, size_t errlen);
void milter_cfg_free(struct milter_cfg **c);
/* Resolve each filter's metric series once (node/metrics/relaymetrics.h: verdicts, default
 * verdicts, latency, errors, labelled with the endpoint's name); from then on a job only adds
 * to atomics. Setup only, before any job; no-op on a NULL c or rm. */
void milter_cfg_metrics(struct milter_cfg *c, struct relay_metrics *rm);
/* Whether messages are filtered at all (at least one endpoint). */
bool milter_cfg_active(const struct milter_cfg *c);

struct milter_job;
typedef void (*milter_done_fn)(void *arg, struct milter_verdict *v);

/* One transaction through the filters, stage by stage, at the session's pace (Sendmail's
 * order): start at MAIL (each filter connected and told connect, HELO and MAIL), then each
 * recipient, then the content (msg->content/len and queue_id set first). Each call ends
 * with done() exactly once, later, on the loop, with that stage's verdict (stage "mail",
 * "rcpt" or "eom"): accept = go on. A recipient's refusal concerns that recipient alone; any
 * other refusal ends the transaction (the caller cancels). After the "eom" done() the job
 * frees itself. msg is borrowed until then or until cancel. */
struct milter_job *milter_job_start(struct event_base *base, struct milter_cfg *cfg,
                                    const struct milter_msg *msg, milter_done_fn done,
                                    void *arg);
void milter_job_rcpt(struct milter_job *j, const char *rcpt);   /* rcpt borrowed until done */
void milter_job_eom(struct milter_job *j);
/* Stop a job (transaction reset, session gone): no more callbacks, *j NULL. Safe inside
 * done(). */
void milter_job_cancel(struct milter_job **j);
/* Human name of endpoint i ("unix:/run/f.sock", "inet:127.0.0.1:11332") into buf. */
const char *milter_endpoint_name(const struct milter_endpoint *e, char *buf, size_t len);
#endif
