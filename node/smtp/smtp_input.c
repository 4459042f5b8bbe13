/* smtp_input: how an SMTP session reads (smtp_session-private.h): command lines under
 * max_command_line (AUTH lines under SASLAUTH_LINE_MAX), DATA content through smtp_data,
 * BDAT chunks by length, all in order as pipelined (RFC 2920), stopping while a worker holds
 * the session, the client leaves its replies unread, or more content than SPOOL_WRITER_BOUND
 * waits for the spool's worker (the disk is slow: msgin's progress resumes reading). Only CRLF ends a line; a bare CR or
 * LF closes the session, and nothing of an over-long line is ever run. Every command line
 * goes to smtp_verbs_dispatch. Loop thread only. */
#include "node/smtp/smtp_session-private.h"

#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "directory/base/util.h"
#include "node/common/log.h"
#include "node/smtp/saslauth.h"

#define OUT_HIGH       (64u * 1024u)    /* unread replies before we stop reading commands */
#define DISCARD_MAX    (64u * 1024u)    /* an over-long line longer than this ends the session */

/* One command line from the input, or false when more input is needed (or the session is
 * closing). The line limit counts CRLF (RFC 5321 §4.5.3.1.4); an over-long line is answered
 * once, when its LF arrives, and nothing of it is ever executed (docs/reliability.md T06). */
static bool session_read_command(struct smtp_session *s)
{
    struct evbuffer *in = bufferevent_get_input(s->bev);
    size_t len = evbuffer_get_length(in);
    size_t limit = s->n->max_command_line;
    if (len == 0)
        return false;
    /* AUTH lines (the command with its initial response, and the answers to 334) may be
     * longer than other commands (RFC 4954 §4). */
    if (s->state == S_AUTH)
        limit = SASLAUTH_LINE_MAX;
    else if (len >= 5 && limit < SASLAUTH_LINE_MAX) {
        const char *p5 = (const char *)evbuffer_pullup(in, 5);
        if (p5 && rn_strnieq(p5, "AUTH ", 5))
            limit = SASLAUTH_LINE_MAX;
    }
    if (s->discarding) {
        struct evbuffer_ptr p = evbuffer_search(in, "\n", 1, NULL);
        if (p.pos < 0) {
            s->discarded += len;
            evbuffer_drain(in, len);
            if (s->discarded > DISCARD_MAX) {
                session_reply(s, "500 5.5.2 Line too long");
                session_close(s, "line-too-long");
            }
            return false;
        }
        evbuffer_drain(in, (size_t)p.pos + 1);
        s->discarding = false;
        session_arm_idle(s);
        session_protocol_error(s, "500 5.5.2 Line too long");
        return true;
    }
    size_t peek = len < limit ? len : limit;
    const char *buf = (const char *)evbuffer_pullup(in, (ssize_t)peek);
    const char *lf = memchr(buf, '\n', peek);
    if (!lf) {
        if (len >= limit) {
            s->discarding = true;
            s->discarded = 0;
            return true;
        }
        return false;
    }
    size_t ll = (size_t)(lf - buf);
    /* Only CRLF ends a command, and a CR inside one is never a line end either (SMTP
     * smuggling, docs/reliability.md T02): refuse and close, running nothing of this line. */
    if (ll == 0 || buf[ll - 1] != '\r' || memchr(buf, '\r', ll - 1)) {
        session_reply(s, "550 5.5.2 Error: bare CR or LF received");
        log_fact(s->id, "smtp", "refused", "stage=command reply=\"550 5.5.2\" why=bare-cr-lf");
        session_close(s, "bare-cr-lf");
        return false;
    }
    size_t n = ll - 1;
    if (n + 1 > s->line_cap) {        /* an AUTH line over max_command_line: at most once */
        explicit_bzero(s->line, s->line_cap);
        free(s->line);
        s->line_cap = (size_t)(limit > s->n->max_command_line ? limit
                                                              : s->n->max_command_line) + 1;
        s->line = xmalloc(s->line_cap);
    }
    memcpy(s->line, buf, n);
    s->line[n] = '\0';
    evbuffer_drain(in, ll + 1);
    session_arm_idle(s);   /* a complete line is progress; a partial one is not */
    bool secret = s->state == S_AUTH;   /* an answer to a 334 carries credentials */
    smtp_verbs_dispatch(s, s->line, n);
    if (secret)
        explicit_bzero(s->line, n);
    return true;
}

/* DATA content through the smtp_data state machine; false when more input is needed. */
static bool session_read_data(struct smtp_session *s)
{
    struct evbuffer *in = bufferevent_get_input(s->bev);
    while (evbuffer_get_length(in) > 0) {
        struct evbuffer_iovec v;
        if (evbuffer_peek(in, -1, NULL, &v, 1) < 1 || v.iov_len == 0)
            return false;
        size_t used = 0;
        enum smtp_data_rc rc = smtp_data_feed(&s->data, v.iov_base, v.iov_len, &used);
        evbuffer_drain(in, used);
        if (rc == SMTP_DATA_BARE) {
            msgin_free(&s->msg);
            session_reply(s, "550 5.5.2 Error: bare CR or LF received");
            log_fact(s->id, "smtp", "refused", "stage=data reply=\"550 5.5.2\" why=bare-cr-lf");
            session_close(s, "bare-cr-lf");
            return false;
        }
        if (rc == SMTP_DATA_END) {
            session_end_of_content(s, s->data.line_too_long != 0);
            return true;
        }
        if (s->msg && msgin_backlog(s->msg) > SPOOL_WRITER_BOUND)
            return true;                /* session_process pauses until the disk catches up */
    }
    return false;
}

/* One BDAT chunk's bytes (RFC 3030): length-delimited, not unstuffed; bare CR/LF refused
 * and text lines limited like in DATA so a message cannot change meaning, or be refused
 * only later, when relayed on with DATA. */
static bool session_read_chunk(struct smtp_session *s)
{
    struct evbuffer *in = bufferevent_get_input(s->bev);
    while (s->chunk_left > 0 && evbuffer_get_length(in) > 0) {
        struct evbuffer_iovec v;
        if (evbuffer_peek(in, -1, NULL, &v, 1) < 1 || v.iov_len == 0)
            return false;
        size_t take = v.iov_len < s->chunk_left ? v.iov_len : (size_t)s->chunk_left;
        if (s->msg) {
            if (smtp_data_bare_check(&s->chunk_prev_cr, v.iov_base, take)) {
                evbuffer_drain(in, take);
                msgin_free(&s->msg);
                session_reply(s, "550 5.5.2 Error: bare CR or LF received");
                log_fact(s->id, "smtp", "refused", "stage=bdat reply=\"550 5.5.2\" why=bare-cr-lf");
                session_close(s, "bare-cr-lf");
                return false;
            }
            /* DATA's line rule, across chunk boundaries: as in DATA the rest is read
             * but no longer kept, and LAST gets DATA's 500 5.5.2 Line too long. */
            if (smtp_data_line_check(&s->chunk_line_len, s->n->max_text_line, v.iov_base, take))
                s->chunk_line_too_long = true;
            if (!s->chunk_line_too_long)
                msgin_feed(s->msg, v.iov_base, take);
        }
        evbuffer_drain(in, take);
        s->chunk_left -= take;
        if (s->chunk_left > 0 && s->msg && msgin_backlog(s->msg) > SPOOL_WRITER_BOUND)
            return true;                /* session_process pauses until the disk catches up */
    }
    if (s->chunk_left > 0)
        return false;
    if (s->chunk_error) {
        const char *e = s->chunk_error;
        s->chunk_error = NULL;
        bool had_tx = s->msg != NULL;
        if (had_tx) {
            msgin_free(&s->msg);
            session_reset_transaction(s);
        } else {
            session_enter(s, s->nrcpts ? S_RCPT : s->mail.path.addr[0] || s->mail.path.null
                                                      ? S_MAIL : s->helo[0] ? S_READY
                                                                             : S_GREETING);
        }
        session_protocol_error(s, e);
        return true;
    }
    if (!s->chunk_last) {
        session_reply(s, "250 2.0.0 %llu octets received",
                      (unsigned long long)msgin_size(s->msg));
        session_enter(s, S_CHUNKING);
        return true;
    }
    if (s->chunk_prev_cr) {     /* the message ended in a CR without its LF */
        msgin_free(&s->msg);
        session_reply(s, "550 5.5.2 Error: bare CR or LF received");
        session_close(s, "bare-cr-lf");
        return false;
    }
    session_end_of_content(s, s->chunk_line_too_long);
    return true;
}

/* Run everything the buffered input allows, in order; stop while a worker holds the
 * session, while the client leaves its replies unread, or when the session closes. */
void session_process(struct smtp_session *s)
{
    /* Teardown runs the last done() callbacks of the pools (an AUTH step, a commit) after
     * the loop has stopped: buffered pipelined input must not start new work on a pool
     * that is being freed (worker_submit aborts) or on a committer already gone. */
    if (s->n->stopping)
        return;
    while (s->state != S_CLOSING && !s->busy && !s->tarpitting && !s->peer_gone) {
        if (evbuffer_get_length(bufferevent_get_output(s->bev)) > OUT_HIGH) {
            s->out_paused = true;
            session_read_off(s);
            bufferevent_setwatermark(s->bev, EV_WRITE, OUT_HIGH / 2, 0);
            return;
        }
        /* Content waits while too much of it waits for the disk (spool_writer.h). */
        if ((s->state == S_DATA || s->state == S_BDAT) && session_content_paused(s))
            return;
        bool more;
        switch (s->state) {
        case S_DATA: more = session_read_data(s); break;
        case S_BDAT: more = session_read_chunk(s); break;
        default: more = session_read_command(s); break;
        }
        if (!more)
            return;
    }
}
