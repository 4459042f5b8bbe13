/* smtpc: an asynchronous SMTP client on the libevent loop that delivers ONE message over one
 * connection (the caller opens one per attempt): banner, EHLO (HELO after a 5xx), STARTTLS
 * when a client SSL_CTX is given and the server offers it, AUTH PLAIN (only over TLS), MAIL
 * with SIZE / BODY=8BITMIME / SMTPUTF8 as offered and needed, RCPTs (in one write with MAIL
 * under PIPELINING), DATA with dot-stuffing streamed in bounded chunks, QUIT.
 * Output is CRLF only and never has a line over 1000 octets: a message with a bare CR or LF
 * or a line over 998 octets is refused before connecting, and one that needs 8BITMIME or
 * SMTPUTF8 from a server that lacks it is refused after EHLO (only QUIT follows), never
 * corrupted. Replies are read with bounds: a line over 2048 octets or a reply over 100 lines
 * is a TEMPFAIL. Never logs (credentials included). Loop thread only. */
#ifndef RN_SMTPC_H
#define RN_SMTPC_H
#include <stddef.h>
#include <sys/socket.h>

struct event_base;
struct smtpc;

struct smtpc_rcpt_result {
    int code;           /* the RCPT reply's code; 0 = never answered */
    char reply[512];    /* its last line as received ("250 2.1.5 Ok"), truncated, control and
                         * non-ASCII bytes replaced by '?' */
};

/* How to read a result: a recipient whose own code is 4xx or 5xx is decided by that code
 * (temporary or permanent) whatever the status; every other recipient (2xx or 0) takes the
 * status: DONE = delivered, TEMPFAIL = try again, PERMFAIL = bounce. */
struct smtpc_result {
    enum { SMTPC_DONE, SMTPC_TEMPFAIL, SMTPC_PERMFAIL } status;
    /* DONE: every RCPT was answered and, if any got 2xx, the final dot got 2xx (when none got
     *   2xx no DATA is sent: data_code stays 0).
     * TEMPFAIL: connection failure, timeout, TLS failure, 421 anywhere, another 4xx to the
     *   banner/EHLO/AUTH/MAIL/DATA/dot, or a malformed or oversized reply.
     * PERMFAIL: a message-level 5xx (banner, HELO, AUTH, MAIL, DATA, the final dot) or a local
     *   refusal (8-bit or SMTPUTF8 needs not offered, SIZE exceeded, bare CR/LF, a line over
     *   998 octets, no recipients, control bytes in an address). */
    char reply[512];    /* the reply or local reason that decided status (same form as above) */
    int data_code;      /* code of the reply to the final dot (0 if not reached) */
    size_t nrcpts;
    struct smtpc_rcpt_result *rcpts;    /* in opts order; owned by the client; valid during
                                         * the callback only */
};

typedef void smtpc_done_fn(void *arg, const struct smtpc_result *r);

struct smtpc_opts {
    const char *helo;               /* our name for EHLO/HELO */
    const char *sender;             /* "" = null sender */
    const char *const *rcpts; size_t nrcpts;   /* the array is copied; the strings are not */
    const char *data; size_t len;   /* the message, CRLF line ends, NOT dot-stuffed */
    int needs_8bit, needs_smtputf8; /* also set by smtpc itself when it sees 8-bit data or
                                     * non-ASCII addresses */
    unsigned timeout_s;             /* per stage (connect, each reply, each data chunk); 0 = 300 */
    void *ssl_ctx;                  /* client SSL_CTX * for STARTTLS (tlsctx_client_new); NULL =
                                     * never; borrowed */
    int tls_required;               /* no TLS (none offered, no ctx, or it fails) -> TEMPFAIL */
    const char *auth_user, *auth_pass;  /* AUTH PLAIN when both non-NULL, only after TLS (no TLS
                                         * -> TEMPFAIL); if the server offers no AUTH, none */
};

/* Connect to addr (an IPv4/IPv6 sockaddr with port) and deliver. Every string and the data
 * are borrowed until done() runs. done() runs exactly once, from the loop (never inside this
 * call); after it returns the handle is invalid: the client sends QUIT if the connection is
 * still sound, waits at most 5 s for the answer, and frees itself. NULL only if the socket
 * cannot be created (then done() is NOT called). */
struct smtpc *smtpc_start(struct event_base *base, const struct sockaddr *addr, socklen_t alen,
                          const struct smtpc_opts *o, smtpc_done_fn *done, void *arg);

/* Abort before done() has run: done() runs now (inside this call) with TEMPFAIL "aborted" and
 * the client is freed. Not to be called from done() or after it. */
void smtpc_abort(struct smtpc *c);
#endif
