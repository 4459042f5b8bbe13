/* smtp_milter: a received message through the node's content filters (node/milter/) before
 * its commit (README "Content filtering (milter)"). At the end of the content the session
 * waits (busy, S_QUEUEING, reading paused) while the filters are asked on the loop; their
 * verdict becomes the reply to the end of DATA: reject 550 5.7.1 and tempfail 451 4.7.1 (with
 * the filter's text when it gave one), discard 250 without queueing, quarantine 250 once the
 * file is durable in the spool's quarantine/, accept the commit as usual with the filters'
 * header changes written into the spooled message (that rewrite and the quarantine are file
 * I/O: they run on the worker pool, apply_run). A filter that cannot be asked gets
 * milter_default_action (tempfail unless configured otherwise), logged. Sessions holding
 * ms-Exch-Bypass-Anti-Spam never reach a filter. Loop thread only. */
#include "node/smtp/smtp_session-private.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/bufferevent.h>
#include <event2/event.h>

#include "directory/rights.h"
#include "directory/base/util.h"
#include "node/common/log.h"
#include "node/common/worker.h"
#include "node/metrics/relaymetrics.h"
#include "node/milter/milter.h"
#include "node/spool/spool.h"

struct session_milter {
    enum { SM_MAIL, SM_RCPT, SM_EOM } stage;   /* the stage being asked */
    struct smtp_mail mail;          /* the MAIL being asked about (msg.sender points here) */
    char *rcpt;                     /* owned: the RCPT being asked about */
    struct spool_msg *m;            /* owned until committed, quarantined or dropped */
    char *copy; size_t clen;        /* owned: the spooled content */
    bool whole;                     /* copy holds all of it */
    uint64_t size;
    char qid[64];
    struct milter_msg msg;          /* borrows the session's fields and copy */
    struct milter_job *job;         /* owned while the filters are asked */
    char *nh; size_t nlen, body;    /* owned: the changed header block; the body's offset */
    size_t nmods;                   /* the changes nh holds */
    bool quarantine;                /* the filters asked to hold the message */
    char qerr[256];                 /* apply_run: its error */
    int qrc;
};

static bool session_milter_wanted(struct smtp_session *s)
{
    struct milter_cfg *cfg = s->n->milter;
    if (!milter_cfg_active(cfg) || !s->c->milter_enabled)
        return false;
    return (s->rights.effective & R_BYPASS_ANTISPAM) == 0;
}

bool session_milter_active(const struct smtp_session *s)
{
    return s->milt != NULL;
}

void session_milter_free(struct smtp_session *s)
{
    struct session_milter *sm = s->milt;
    if (!sm)
        return;
    milter_job_cancel(&sm->job);
    if (sm->m)
        spool_msg_abort(&sm->m);
    free(sm->copy);
    free(sm->nh);
    free(sm->rcpt);
    free(sm);
    s->milt = NULL;
}

/* Accepted with header changes: the new header block is made here, in memory (the filter's
 * changes live only until milter_done returns); apply_run rewrites the spooled file with it
 * under the same queue id on a worker. false when the changes cannot be applied (the body is
 * past the copy bound: logged, the message goes on unchanged). */
static bool milter_changes(struct smtp_session *s, struct session_milter *sm,
                           const struct milter_result *r)
{
    if (!sm->whole) {
        log_fact(sm->qid, "smtp", "milter-changes-dropped", "session=%s changes=%zu size=%llu",
                 s->id, r->nmods, (unsigned long long)sm->size);
        return false;
    }
    size_t hlen = sm->clen;
    sm->body = sm->clen;
    for (size_t i = 0; i + 4 <= sm->clen; i++)
        if (memcmp(sm->copy + i, "\r\n\r\n", 4) == 0) {
            hlen = i + 2;
            sm->body = i + 2;
            break;
        }
    sm->nh = milter_apply_mods(sm->copy, hlen, r->mods, r->nmods, &sm->nlen);
    sm->nmods = r->nmods;
    return true;
}

/* Worker: the spool I/O a verdict asked for, off the loop: the rewrite with the changed
 * header block, then the move into quarantine/. The session is busy meanwhile, so sm and
 * s->env stay put. */
static void apply_run(void *arg)
{
    struct smtp_session *s = arg;
    struct session_milter *sm = s->milt;
    int rc = 0;
    if (sm->nh) {
        rc = spool_msg_restart(sm->m, &s->env, sm->qerr, sizeof sm->qerr);
        if (rc == 0)
            rc = spool_msg_write(sm->m, sm->nh, sm->nlen, sm->qerr, sizeof sm->qerr);
        if (rc == 0 && sm->body < sm->clen)
            rc = spool_msg_write(sm->m, sm->copy + sm->body, sm->clen - sm->body, sm->qerr,
                                 sizeof sm->qerr);
        else if (rc == 0)
            rc = spool_msg_write(sm->m, "\r\n", 2, sm->qerr, sizeof sm->qerr);
    }
    if (rc == 0 && sm->quarantine)
        rc = spool_msg_quarantine(&sm->m, sm->qerr, sizeof sm->qerr);
    sm->qrc = rc;
}

/* Loop: the rewrite and the quarantine are done (or failed: 451, nothing queued); a message
 * that was neither quarantined nor refused goes to the committer. */
static void apply_done(void *arg)
{
    struct smtp_session *s = arg;
    struct session_milter *sm = s->milt;
    char qe[512];
    s->busy = false;
    if (sm->qrc == 0 && sm->nh && s->n->metrics)
        metrics_inc(s->n->metrics->milter_header_changes, sm->nmods);
    if (sm->qrc == 0 && !sm->quarantine) {
        struct spool_msg *m = sm->m;
        sm->m = NULL;
        uint64_t size = sm->size;
        session_milter_free(s);
        session_commit(s, &m, size);
        return;
    }
    if (sm->qrc == 0) {
        log_fact(sm->qid, "smtp", "quarantined", "session=%s size=%llu", s->id,
                 (unsigned long long)sm->size);
        session_reply(s, "250 2.6.0 <%s@%s> Queued mail for delivery", sm->qid,
                      session_fqdn(s));
    } else {
        log_fact(sm->qid, "smtp", "queue-failed", "session=%s error=%s", s->id,
                 log_quote(sm->qerr, qe, sizeof qe));
        session_reply(s, "451 4.3.0 Error writing the message to the queue, try again later");
    }
    session_milter_free(s);
    session_reset_transaction(s);
    session_resume(s);
}

static void milter_log(struct smtp_session *s, struct session_milter *sm,
                       const struct milter_verdict *v)
{
    char qt[MILTER_TEXT_MAX * 2 + 8], qr[MILTER_TEXT_MAX * 2 + 8], fname[160] = "-";
    if (v->filter >= 0)
        milter_endpoint_name(&s->n->milter->ep[v->filter], fname, sizeof fname);
    log_fact(sm->qid[0] ? sm->qid : s->id, "smtp", "milter",
             "session=%s verdict=%s stage=%s filter=%s default=%s quarantine=%s changes=%zu "
             "text=%s", s->id, milter_action_name(v->r.action), v->r.stage ? v->r.stage : "-",
             fname, v->defaulted ? "yes" : "no", v->r.quarantine ? "yes" : "no", v->r.nmods,
             log_quote(v->r.text[0] ? v->r.text : "-", qt, sizeof qt));
    if (v->r.quarantine)
        log_fact(sm->qid[0] ? sm->qid : s->id, "smtp", "milter-quarantine",
                 "session=%s reason=%s", s->id,
                 log_quote(v->r.reason[0] ? v->r.reason : "-", qr, sizeof qr));
}

/* A refusal at MAIL or RCPT, with the filter's text when it gave one. */
static void milter_refuse(struct smtp_session *s, const struct milter_verdict *v)
{
    const char *text = v->r.text[0] && !v->defaulted ? v->r.text : NULL;
    if (v->r.action == MILTER_REJECT)
        session_reply(s, "550 5.7.1 %s", text ? text : "Rejected by the content filter");
    else
        session_reply(s, "451 4.7.1 %s",
                      text ? text : "Content filter unavailable or deferred, try again later");
}

static void milter_stage_done(struct smtp_session *s, struct session_milter *sm,
                              const struct milter_verdict *v)
{
    bool ok = v->r.action == MILTER_ACCEPT || v->r.action == MILTER_DISCARD;
    if (v->r.action != MILTER_ACCEPT || v->defaulted)
        milter_log(s, sm, v);
    if (sm->stage == SM_MAIL) {
        if (ok) {
            s->mail = sm->mail;
            session_enter(s, S_MAIL);
            session_reply(s, "250 2.1.0 Sender OK");
        } else {
            milter_refuse(s, v);
            session_milter_free(s);
        }
    } else {
        if (ok)
            session_rcpt_accept(s, sm->rcpt);
        else
            milter_refuse(s, v);
        free(sm->rcpt);
        sm->rcpt = NULL;
    }
    session_resume(s);
}

static void milter_done(void *arg, struct milter_verdict *v)
{
    struct smtp_session *s = arg;
    struct session_milter *sm = s->milt;
    s->busy = false;
    if (s->state == S_CLOSING || s->peer_gone) {
        /* The session ended while the filters were asked (the client's connection failed,
         * shutdown): it never got a 250, so the message is dropped, not committed behind its
         * back. (Timeouts wait for the verdict, as they wait for a commit.) */
        log_fact(sm->qid[0] ? sm->qid : s->id, "smtp", "milter-abandoned", "session=%s",
                 s->id);
        session_milter_free(s);     /* the job goes too, once done() returns */
        session_resume(s);
        return;
    }
    if (sm->stage != SM_EOM) {
        milter_stage_done(s, sm, v);
        return;
    }
    sm->job = NULL;                 /* after "eom" it frees itself */
    milter_log(s, sm, v);
    const struct milter_result *r = &v->r;
    /* A filter's own text, when it gave one, follows our fixed codes. */
    const char *text = r->text[0] && !v->defaulted ? r->text : NULL;
    switch (r->action) {
    case MILTER_REJECT:
        session_reply(s, "550 5.7.1 %s", text ? text : "Message rejected by the content filter");
        break;
    case MILTER_FAILED:     /* never handed over; fail closed all the same */
    case MILTER_TEMPFAIL:
        session_reply(s, "451 4.7.1 %s",
                      text ? text : "Content filter unavailable or deferred, try again later");
        break;
    case MILTER_DISCARD:
        log_fact(sm->qid, "smtp", "discarded", "session=%s from=<%s> rcpts=%zu size=%llu",
                 s->id, s->mail.path.addr, s->nrcpts, (unsigned long long)sm->size);
        session_reply(s, "250 2.6.0 <%s@%s> Queued mail for delivery", sm->qid,
                      session_fqdn(s));
        break;
    case MILTER_ACCEPT: {
        bool rewrite = r->nmods && milter_changes(s, sm, r);
        sm->quarantine = r->quarantine;
        if (rewrite || sm->quarantine) {
            s->busy = true;
            worker_submit(s->n->worker, apply_run, apply_done, s);
            return;
        }
        struct spool_msg *m = sm->m;
        sm->m = NULL;
        uint64_t size = sm->size;
        session_milter_free(s);
        session_commit(s, &m, size);
        return;
    }
    }
    session_milter_free(s);
    session_reset_transaction(s);
    session_resume(s);
}

bool session_milter_mail(struct smtp_session *s, const struct smtp_mail *mail)
{
    session_milter_free(s);
    struct milter_cfg *cfg = s->n->milter;
    if (!session_milter_wanted(s)) {
        if (milter_cfg_active(cfg) && s->n->metrics)   /* no filter is asked: say why */
            metrics_inc(s->n->metrics->milter_bypassed[s->c->milter_enabled
                                                       ? RM_BYPASS_ANTISPAM
                                                       : RM_BYPASS_CONNECTOR], 1);
        return false;
    }
    struct session_milter *sm = xcalloc(1, sizeof *sm);
    s->milt = sm;
    sm->stage = SM_MAIL;
    sm->mail = *mail;
    sm->msg = (struct milter_msg){
        .client_ip = s->client_ip, .client_port = 0, .client_v6 = !s->v4, .helo = s->helo,
        .sender = sm->mail.path.addr, .queue_id = NULL, .myhostname = session_fqdn(s),
        .auth_user = s->tok.authenticated ? s->tok.name : NULL};
    s->busy = true;
    sm->job = milter_job_start(s->n->base, cfg, &sm->msg, milter_done, s);
    return true;
}

bool session_milter_rcpt(struct smtp_session *s, const char *addr)
{
    struct session_milter *sm = s->milt;
    if (!sm || !sm->job)
        return false;
    sm->stage = SM_RCPT;
    free(sm->rcpt);
    sm->rcpt = xstrdup(addr);
    s->busy = true;
    milter_job_rcpt(sm->job, sm->rcpt);
    return true;
}

void session_milter_start(struct smtp_session *s, struct spool_msg **m, char *copy, size_t clen,
                          bool whole, uint64_t size)
{
    struct session_milter *sm = s->milt;
    sm->stage = SM_EOM;
    sm->m = *m;
    *m = NULL;
    sm->copy = copy;
    sm->clen = clen;
    sm->whole = whole;
    sm->size = size;
    rn_strlcpy(sm->qid, spool_msg_id(sm->m), sizeof sm->qid);
    sm->msg.queue_id = sm->qid;
    sm->msg.content = sm->copy;
    sm->msg.len = sm->clen;
    s->busy = true;
    session_enter(s, S_QUEUEING);
    session_read_off(s);   /* pipelined input waits in the kernel */
    milter_job_eom(sm->job);
}
