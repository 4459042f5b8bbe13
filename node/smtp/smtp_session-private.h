/* smtp_session-private: the session struct and the session's internal API, shared by the
 * session's own files (smtp_session.c: life cycle, events, timers, replies; smtp_input.c:
 * reading commands and content; smtp_txn.c: the transaction and its commit) and by the
 * verbs above them (smtp_verbs.c, smtp_auth.c, smtp_starttls.c), which include it through
 * their own headers. It includes none of theirs: the session reaches the verbs only through
 * smtp_verbs_dispatch, declared here. Nothing outside node/smtp/ includes it. */
#ifndef RN_SMTP_SESSION_PRIVATE_H
#define RN_SMTP_SESSION_PRIVATE_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "directory/acl.h"
#include "directory/ipr.h"
#include "directory/policy.h"
#include "directory/token.h"
#include "node/smtp/msgin.h"
#include "node/common/node.h"
#include "node/smtp/smtp_session.h"
#include "node/smtp/smtp_parse.h"
#include "node/smtp/smtp_data.h"

struct bufferevent;
struct event;
struct sockin;
struct session_milter;

/* The most of a message kept in memory for the content filters: they see its first 16 MiB,
 * and header changes to a larger message are dropped (logged milter-changes-dropped). */
#define SMTP_MILTER_COPY_MAX (16u * 1024u * 1024u)

/* The states of one SMTP session (docs/style.md 5). */
enum smtp_state {
    S_GREETING,     /* banner sent, no HELO/EHLO yet */
    S_READY,        /* greeted, no transaction */
    S_MAIL,         /* MAIL accepted, no recipient yet */
    S_RCPT,         /* at least one recipient accepted */
    S_DATA,         /* receiving DATA content */
    S_CHUNKING,     /* BDAT chunks received, waiting for the next BDAT */
    S_BDAT,         /* receiving one BDAT chunk's bytes */
    S_QUEUEING,     /* end of content: the spool commit runs on a worker */
    S_AUTH,         /* AUTH exchange: the next line answers a 334 challenge */
    S_CLOSING,      /* last reply written; freed once it is flushed */
    S_COUNT
};

struct metric_series;

#define SMTP_OUT_DIRECT 512             /* replies gathered for one direct send */

struct smtp_session {
    struct node *n;                    /* not owned */
    struct smtp_session *prev, *next;  /* node's list of open sessions */
    char id[24];
    struct bufferevent *bev;           /* owned; closes the socket */
    struct sockin *in;                 /* owned: reads bev's socket while it is plain (no
                                        * FIONREAD a read); NULL under TLS (the filter reads) */
    struct event *ev_idle, *ev_life, *ev_linger;   /* owned timers */
    struct event *ev_authdelay;        /* owned; made by smtp_auth.c at the first failure */
    struct event *ev_tarpit;           /* owned; made at the first tarpitted reply */
    struct evbuffer *tarpit_out;       /* owned: replies held back while tarpitting */
    enum smtp_state state;
    time_t started;
    time_t linger_until;               /* closing: give up on unsent replies after this */

    /* Who and where. */
    ipr_addr local, remote; uint16_t local_port; bool v4;
    char client_ip[64], local_ip[64];
    char *count_connector;             /* owned: the conncount key this session added */
    struct metric_series *m_messages;  /* borrowed: messages accepted on its connector */

    /* Configuration and rights: the snapshot the session runs with (own reference), its
     * connector in it, and the rights of the token on that connector. */
    struct rn_snapshot *snap;
    uint64_t generation;
    const struct rn_connector *c;
    struct token tok;
    struct rights_eval rights;
    char **owned; size_t nowned;       /* owned: the authenticated user's own addresses */
    bool tls;
    bool tls_identify;                 /* STARTTLS asked for a client certificate: decide who
                                        * the client is before its first command under TLS */
    const char *auth_mechanism;        /* AuthMechanism stamp, NULL anonymous (§9.3) */
    struct saslauth *auth;             /* owned: the AUTH exchange in progress */
    char auth_mech[16];
    unsigned auth_failures;

    /* Greeting and transaction. */
    char helo[SMTP_DOMAIN_MAX + 1];
    bool esmtp;
    struct smtp_mail mail;
    char **rcpts; size_t nrcpts, rcap; /* owned */
    struct msgin *msg;                 /* owned while content arrives */
    struct session_milter *milt;       /* owned while the content filters are asked */
    struct spool_envelope env;         /* what msg records; borrows the fields above */
    struct smtp_data data;
    uint64_t chunk_left;               /* S_BDAT: bytes of this chunk still to read */
    bool chunk_last;
    int chunk_prev_cr;                 /* smtp_data_bare_check carry */
    size_t chunk_line_len;             /* smtp_data_line_check carry, across chunks */
    bool chunk_line_too_long;          /* a line over max_text_line: 500 5.5.2 after LAST */
    const char *chunk_error;           /* BDAT refused before its bytes: reply after them */

    /* Input discipline. */
    char *line;                        /* owned: one command line, line_cap bytes with its NUL */
    size_t line_cap;                   /* max_command_line + 1, grown once for a longer AUTH line */
    bool discarding;                   /* inside an over-long command line */
    size_t discarded;
    bool out_paused;                   /* too much unread output: stop reading commands */
    bool busy;                         /* a worker job holds the session */
    bool disk_paused;                  /* not reading: the spool backlog is over its bound */
    bool content_wait;                 /* S_QUEUEING: the last spool writes still run */
    bool peer_gone;                    /* EOF or error: no more writes */
    bool in_callback;                  /* free at the end of the callback, not inside */
    bool tarpitting;                   /* a 5xx is held back (TarpitInterval): replies queue
                                        * in tarpit_out, no command runs, no free */
    /* Replies made during one callback on a plain socket with nothing else unsent: written
     * with one send() at its end (session_out_flush), not through the bufferevent's output
     * (which costs a write event on and off, two epoll_ctl and a loop turn per reply). */
    uint16_t out_len;
    char out[SMTP_OUT_DIRECT];

    /* Counters. */
    uint64_t protocol_errors, messages;
    char close_reason[64];
};

/* smtp_session.c, smtp_txn.c (transaction) and smtp_input.c (reading), for each other and
 * for the command handlers. */
void session_reply(struct smtp_session *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* A verdict's reply ("code enh text"); closes the session when the verdict says so. */
void session_reply_verdict(struct smtp_session *s, const struct verdict *v, const char *stage);
void session_close(struct smtp_session *s, const char *reason);
/* Send the replies gathered in s->out now (what the socket does not take goes to the
 * bufferevent's output, behind which later replies queue). Before the socket changes hands
 * (STARTTLS) and at the end of every callback (session_settle). */
void session_out_flush(struct smtp_session *s);
void session_enter(struct smtp_session *s, enum smtp_state to);
/* A protocol error: its reply, or 421 4.7.0 and close once MaxProtocolErrors is exceeded. */
void session_protocol_error(struct smtp_session *s, const char *reply);
void session_reset_transaction(struct smtp_session *s);
/* Take the node's current snapshot if it changed since the session last looked: reselect
 * the connector, recompute the rights. false (after 421 and close) when no connector
 * matches any more. */
bool session_refresh(struct smtp_session *s);
void session_set_permissions(struct smtp_session *s, const char *why);
/* The end of a message's content (DATA dot or BDAT LAST): verdict, commit, final reply. */
void session_end_of_content(struct smtp_session *s, bool line_too_long);
/* DATA or the first BDAT: the envelope and stamp for msgin, and a fresh msgin. */
void session_begin_content(struct smtp_session *s);
/* Whether content reading must wait for the spool (its backlog is over SPOOL_WRITER_BOUND):
 * then the session stops reading its client until msgin's progress says otherwise. */
bool session_content_paused(struct smtp_session *s);
void session_data_emit(void *arg, const char *buf, size_t len);   /* smtp_data -> msgin */
/* Hand an accepted message to the committer; 250 (or 451 4.3.0) when it is durable. */
void session_commit(struct smtp_session *s, struct spool_msg **m, uint64_t size);

/* smtp_milter.c: the content filters, stage by stage. At MAIL (its checks passed): when the
 * node has filters, the connector relayMilterEnabled and the token lacks
 * ms-Exch-Bypass-Anti-Spam, ask them; true = the session waits and the reply (250 with
 * s->mail set, or the filter's refusal) comes later; false = no filtering, answer now. */
bool session_milter_mail(struct smtp_session *s, const struct smtp_mail *mail);
/* At RCPT (its checks passed): true = the filters are asked, the reply comes later (the
 * recipient added with session_rcpt_accept, or refused alone); false = none to ask. */
bool session_milter_rcpt(struct smtp_session *s, const char *addr);
/* Whether this transaction goes through the filters (keep a copy of the content). */
bool session_milter_active(const struct smtp_session *s);
/* End of content: ask about *m (taken) with its spooled content copy[0..clen) (taken; whole =
 * all of it); the verdict answers the end of the content and commits, quarantines or drops. */
void session_milter_start(struct smtp_session *s, struct spool_msg **m, char *copy,
                          size_t clen, bool whole, uint64_t size);
/* Drop a filter conversation in progress and its message (session reset or freed). */
void session_milter_free(struct smtp_session *s);
/* smtp_verbs.c: add an accepted recipient and answer 250. */
void session_rcpt_accept(struct smtp_session *s, const char *addr);
const char *session_fqdn(const struct smtp_session *s);

/* (Re)install the session's callbacks, watermarks and events on s->bev (after STARTTLS). */
void session_attach_bev(struct smtp_session *s);
/* Before STARTTLS wraps s->bev: stop reading its socket ourselves (the filter reads it). */
void session_detach_reader(struct smtp_session *s);
/* After a worker job or a delay released the session (busy = false): read and run what is
 * buffered, then free the session if it closed. */
void session_resume(struct smtp_session *s);
/* (Re)start ConnectionInactivityTimeout: called for a complete command line or for content
 * bytes, never for a partial line, so a client trickling bytes is still idle. */
void session_arm_idle(struct smtp_session *s);
/* After AUTH: the larger input allowance of an authenticated client. */
void session_raise_limits(struct smtp_session *s);
/* Reading the client on or off (s->in on a plain socket, the bufferevent under TLS). Off
 * leaves pipelined input in the kernel. */
void session_read_on(struct smtp_session *s);
void session_read_off(struct smtp_session *s);
/* smtp_input.c: run everything the buffered input allows, in order; stops while a worker
 * holds the session, while the client leaves its replies unread, or when it closes. */
void session_process(struct smtp_session *s);

/* The one entry point above the session (smtp_verbs.c): a command line as read, CRLF
 * removed, or in S_AUTH the answer to a 334 challenge. */
void smtp_verbs_dispatch(struct smtp_session *s, const char *line, size_t len);
#endif
