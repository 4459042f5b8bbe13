/* smtpout: an asynchronous SMTP client on the libevent loop that delivers one message over
 * one connection (issue #5): banner, EHLO (HELO fallback), optional STARTTLS and AUTH PLAIN,
 * MAIL with SIZE/BODY/SMTPUTF8 as offered and needed, RCPTs (pipelined when PIPELINING is
 * offered), DATA with the body streamed from the spool (bodysrc: 64 KiB pieces, dot-stuffed,
 * read while the output holds under 128 KiB, so memory is bounded whatever the size), QUIT.
 * Output is CRLF only; a message the caller found unsendable (o.refuse: a bare CR or LF, a
 * line over 998 octets) or one that needs 8BITMIME/SMTPUTF8 the server lacks is refused
 * before anything is sent (never corrupted); a body that fails its checks while streaming
 * (checksum, torn file) is never completed: the connection closes before the final dot. Replies are parsed with bounds (a line
 * at most 2048 octets, a reply at most 100 lines). The socket has Nagle off (TCP_NODELAY):
 * the last write of a body never waits for the next hop's delayed ACK. Loop thread. */
#ifndef RN_SMTPOUT_H
#define RN_SMTPOUT_H
#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

struct event_base;
struct bodysrc;
struct smtpout;

enum smtpout_status {
    SMTPOUT_DONE,       /* the transaction ran: per-recipient codes and data_code are valid */
    SMTPOUT_TEMPFAIL,   /* connection, timeout, TLS, 4xx before the recipients: try later */
    SMTPOUT_PERMFAIL,   /* a 5xx for the whole message, or a local refusal (see above) */
};

struct smtpout_rcpt_result {
    int code;           /* 0 = never answered */
    char reply[512];    /* the last line of the reply, control bytes replaced */
};

struct smtpout_result {
    enum smtpout_status status;
    char reply[512];    /* the reply or local reason that decided status */
    int data_code;      /* the reply to the final dot, 0 if not reached */
    bool reusable;      /* keep_open and it worked: the client is parked, not freed */
    size_t nrcpts;
    const struct smtpout_rcpt_result *rcpts;    /* valid during the callback only */
};

typedef void smtpout_done_fn(void *arg, const struct smtpout_result *r);

struct smtpout_opts {
    const char *helo;
    const char *sender;                       /* "" = null sender */
    const char *const *rcpts; size_t nrcpts;
    size_t len;                               /* message octets, for SIZE= (RFC 1870) */
    struct bodysrc *body;                     /* the message, streamed after 354; owned by
                                                 the client from start/reuse on */
    const char *refuse;                       /* set: PERMFAIL with this reason, nothing sent
                                                 (the pre-scan found it unsendable) */
    int needs_8bit, needs_smtputf8;
    unsigned timeout_s;                       /* per stage; 0 = 300 */
    void *ssl_ctx;                            /* SSL_CTX * for STARTTLS; NULL = never. The
                                                 connection holds a reference on it and on
                                                 verify_store (tlsctx_*_ref) until freed or
                                                 reused, so the node may replace both */
    int tls_required;                         /* no TLS possible -> TEMPFAIL */
    void *verify_store;                       /* set: after STARTTLS the next hop's certificate
                                                 must verify against it (tlsctx_store_new) and
                                                 name verify_name (or, with verify_subdomains,
                                                 a host within it), else TEMPFAIL 4.7.5 */
    const char *verify_name;
    int verify_subdomains;
    const char *auth_user, *auth_pass;        /* AUTH PLAIN (after TLS) when both set */
    int keep_open;                            /* after a 2xx to the dot, stay connected */
};

/* Connect to addr and deliver. The strings are borrowed until done() runs (the rcpts array
 * itself is copied; o->body is taken, even on NULL); done()
 * runs exactly once, always from the loop (never inside this call), then the client frees
 * itself. */
struct smtpout *smtpout_start(struct event_base *base, const struct sockaddr *addr,
                              socklen_t alen, const struct smtpout_opts *o,
                              smtpout_done_fn *done, void *arg);
/* End now: done() runs (inside this call) with TEMPFAIL "aborted". */
void smtpout_abort(struct smtpout *c);

/* Connection reuse (several messages per connection). A result with reusable set means
 * the client stays connected after done(); its owner then either parks it (lost() runs if
 * the server closes it or idle_s pass; the client frees itself after lost()), sends the
 * next message with smtpout_reuse (same contract as smtpout_start: done() once, from the
 * loop), or ends it with smtpout_quit (no callback). */
typedef void smtpout_idle_fn(void *arg, struct smtpout *c);
void smtpout_park(struct smtpout *c, smtpout_idle_fn *lost, void *arg, unsigned idle_s);
void smtpout_reuse(struct smtpout *c, const struct smtpout_opts *o, smtpout_done_fn *done,
                   void *arg);
void smtpout_quit(struct smtpout *c);
#endif
