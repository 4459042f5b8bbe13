/* smtp_txn: the mail transaction of an SMTP session (smtp_session-private.h): its reset,
 * the start of a message's content (the envelope and Received stamp msgin needs), the end
 * of it (msgin's verdict, then the spool commit), and the commit itself, which runs on the
 * committer's thread: the client gets 250 only after the message is durable (docs/reliability.md
 * G1), 451 4.3.0 if it could not be. Loop thread only. */
#include "node/smtp/smtp_session-private.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/bufferevent.h>
#include <event2/event.h>

#include "directory/rights.h"
#include "directory/base/util.h"
#include "node/spool/committer.h"
#include "node/common/log.h"
#include "node/delivery/queue.h"
#include "node/spool/spool.h"
#include "node/metrics/relaymetrics.h"

static bool has_right(const struct smtp_session *s, uint32_t right)
{
    return (s->rights.effective & right) != 0;
}

void session_reset_transaction(struct smtp_session *s)
{
    for (size_t i = 0; i < s->nrcpts; i++)
        free(s->rcpts[i]);
    s->nrcpts = 0;
    memset(&s->mail, 0, sizeof s->mail);
    session_milter_free(s);
    msgin_free(&s->msg);
    s->chunk_left = 0;
    s->chunk_last = false;
    s->chunk_prev_cr = 0;
    s->chunk_line_len = 0;
    s->chunk_line_too_long = false;
    s->chunk_error = NULL;
    if (s->state != S_CLOSING && s->state != S_GREETING)
        session_enter(s, S_READY);
}

/* The spool commit, on a worker (docs/reliability.md G1: 250 only after fsync). */
struct commit_job {
    struct smtp_session *s;
    char qid[64];
    uint64_t size;
};

static void commit_done(void *arg, int rc, const char *err)
{
    struct commit_job *j = arg;
    struct smtp_session *s = j->s;
    s->busy = false;
    char qs[512], qe[512];
    if (rc == 0) {
        s->messages++;
        metrics_inc(s->m_messages, 1);
        log_fact(j->qid, "smtp", "queued",
                 "session=%s from=<%s> rcpts=%zu size=%llu connector=%s client=%s auth_as=%s",
                 s->id, log_quote(s->mail.path.addr, qs, sizeof qs), s->nrcpts,
                 (unsigned long long)j->size, log_quote(s->c->name, qe, sizeof qe),
                 s->client_ip, policy_auth_as(&s->rights, &s->tok));
        session_reply(s, "250 2.6.0 <%s@%s> Queued mail for delivery", j->qid, session_fqdn(s));
        if (s->n->queue)
            queue_add(s->n->queue, j->qid, s->mail.path.addr, (const char *const *)s->rcpts,
                      s->nrcpts, s->env.received);
    } else {
        log_fact(j->qid, "smtp", "queue-failed", "session=%s error=%s", s->id,
                 log_quote(err, qe, sizeof qe));
        session_reply(s, "451 4.3.0 Error writing the message to the queue, try again later");
    }
    free(j);
    if (s->state == S_QUEUEING)
        session_reset_transaction(s);
    if (s->n->draining && s->state == S_READY) {
        session_reply(s, "421 4.3.2 Service not available");
        session_close(s, "drain");
    }
    session_resume(s);
}

/* The content is complete and every byte is in the spool file (or a step failed): the
 * verdict, then the commit. */
static void session_content_done(struct smtp_session *s)
{
    struct verdict v;
    struct spool_msg *m = NULL;
    msgin_result(s->msg, &v, &m);
    relay_metrics_right(s->n->metrics, v.right, v.ok);
    uint64_t size = msgin_size(s->msg);
    const char *bad = msgin_bad_sender(s->msg);
    if (!v.ok && bad) {
        /* Say exactly what did not match (issue #4): the address and what the session may
         * use. */
        char qb[600], qo[1200], owned[1024] = "";
        size_t used = 0;
        for (size_t i = 0; i < s->nowned && used < sizeof owned; i++) {
            int k = snprintf(owned + used, sizeof owned - used, "%s%s", i ? "," : "",
                             s->owned[i]);
            if (k < 0)
                break;
            used += (size_t)k;
        }
        log_fact(s->id, "smtp", "send-as-refused", "sender=%s login=%s owned=%s",
                 log_quote(bad, qb, sizeof qb), s->tok.authenticated ? s->tok.name : "-",
                 log_quote(owned[0] ? owned : "-", qo, sizeof qo));
    }
    size_t clen = 0;
    bool whole = false;
    char *copy = msgin_take_copy(s->msg, &clen, &whole);
    msgin_free(&s->msg);
    if (!v.ok) {
        free(copy);
        session_reply_verdict(s, &v, "data");
        session_reset_transaction(s);
        return;
    }
    if (copy) {
        session_milter_start(s, &m, copy, clen, whole, size);
        return;
    }
    session_commit(s, &m, size);
}

void session_commit(struct smtp_session *s, struct spool_msg **mp, uint64_t size)
{
    struct spool_msg *m = *mp;
    *mp = NULL;
    struct commit_job *j = xcalloc(1, sizeof *j);
    j->s = s;
    j->size = size;
    rn_strlcpy(j->qid, spool_msg_id(m), sizeof j->qid);
    s->busy = true;
    session_enter(s, S_QUEUEING);
    session_read_off(s);   /* pipelined input waits in the kernel */
    committer_submit(s->n->committer, &m, commit_done, j);
}

void session_end_of_content(struct smtp_session *s, bool line_too_long)
{
    if (line_too_long) {
        msgin_free(&s->msg);
        session_protocol_error(s, "500 5.5.2 Line too long");
        session_reset_transaction(s);
        return;
    }
    s->disk_paused = false;
    if (!msgin_finish(s->msg)) {
        /* The last writes run on a worker: wait (busy) for msgin's progress; pipelined
         * input waits in the kernel. */
        session_enter(s, S_QUEUEING);
        session_read_off(s);
        s->busy = true;
        s->content_wait = true;
        return;
    }
    session_content_done(s);
}

bool session_content_paused(struct smtp_session *s)
{
    if (!s->msg || msgin_backlog(s->msg) <= SPOOL_WRITER_BOUND)
        return false;
    if (!s->disk_paused) {
        s->disk_paused = true;
        session_read_off(s);
    }
    return true;
}

/* msgin's progress (a spool job completed, on the loop): finish the content that waited
 * for its last writes, or read again once the backlog is back under its bound. */
static void session_content_progress(void *arg)
{
    struct smtp_session *s = arg;
    if (s->content_wait) {
        if (!msgin_finish(s->msg))
            return;
        s->content_wait = false;
        s->busy = false;
        if (s->state == S_CLOSING)     /* the client left meanwhile: nobody to answer */
            msgin_free(&s->msg);
        else
            session_content_done(s);
        if (!s->busy)                  /* else the commit's done() resumes */
            session_resume(s);
        return;
    }
    if (s->msg && msgin_refused(s->msg))
        s->data.discard = 1;          /* a spool step failed: drop the rest (451 at the end) */
    if (s->disk_paused && msgin_backlog(s->msg) <= SPOOL_WRITER_BOUND) {
        s->disk_paused = false;
        session_resume(s);
    }
}

void session_begin_content(struct smtp_session *s)
{
    bool auth = s->tok.authenticated;
    const char *auth_as = policy_auth_as(&s->rights, &s->tok);
    if (strcmp(s->mail.auth, "<>") == 0)
        auth_as = "Anonymous";    /* marked anonymous upstream: stays so (§9.3) */
    s->env = (struct spool_envelope){
        .sender = s->mail.path.addr, .rcpts = (const char *const *)s->rcpts,
        .nrcpts = s->nrcpts, .client_ip = s->client_ip, .helo = s->helo,
        .connector = s->c->name, .auth_user = auth ? s->tok.name : NULL, .auth_as = auth_as,
        .antispam_bypass = has_right(s, R_BYPASS_ANTISPAM), .received = time(NULL)};
    struct msgin_params p = {
        .snap = s->snap, .c = s->c, .r = &s->rights, .t = &s->tok,
        .owned = (const char *const *)s->owned, .nowned = s->nowned, .spool = s->n->spool,
        .pool = &s->n->worker, .env = &s->env,
        .stamp = {.helo = s->helo, .client_ip = s->client_ip, .fqdn = session_fqdn(s),
                  .local_ip = s->local_ip,
                  .with = !s->esmtp ? "SMTP" : s->tls ? (auth ? "ESMTPSA" : "ESMTPS")
                                              : (auth ? "ESMTPA" : "ESMTP"),
                  .auth_as = auth_as,
                  .mechanism = strcmp(auth_as, "Anonymous") == 0 ? NULL : s->auth_mechanism,
                  .antispam_bypass = has_right(s, R_BYPASS_ANTISPAM)},
        .max_size = s->c->max_message_size == RN_UNLIMITED ? 0 : s->c->max_message_size,
        .progress = session_content_progress, .arg = s,
        .copy_max = session_milter_active(s) ? SMTP_MILTER_COPY_MAX : 0,
    };
    msgin_free(&s->msg);
    s->msg = msgin_new(&p);
}

void session_data_emit(void *arg, const char *buf, size_t len)
{
    struct smtp_session *s = arg;
    msgin_feed(s->msg, buf, len);
    if (msgin_refused(s->msg))
        s->data.discard = 1;
}
