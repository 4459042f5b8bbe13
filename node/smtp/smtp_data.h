/* smtp_data: pure, resumable DATA content state machine (RFC 5321 §4.1.4, §4.5.2).
 * Finds <CRLF>.<CRLF>, undoes dot-stuffing, refuses bare CR / bare LF, and notes over-long
 * lines and oversize content without stopping (discard mode). Same result whether input
 * arrives whole or one byte at a time. No I/O, no globals. */
#ifndef RN_SMTP_DATA_H
#define RN_SMTP_DATA_H
#include <stddef.h>
#include <stdint.h>

enum smtp_data_rc {
    SMTP_DATA_MORE = 0, /* all input consumed, end not seen yet */
    SMTP_DATA_END,      /* <CRLF>.<CRLF> seen; *consumed stops right after it */
    SMTP_DATA_BARE,     /* bare CR or LF: answer 550 5.5.2 and close, execute nothing after */
};

/* Receives unstuffed content (CRLF line ends, terminator excluded) while not discarding. */
typedef void smtp_data_emit_fn(void *arg, const char *buf, size_t len);

struct smtp_data {
    int state;            /* private */
    size_t line_len;      /* bytes of the current line as transmitted, CRLF included */
    size_t max_line;      /* text line limit incl. CRLF (0 = none) */
    uint64_t max_size;    /* content limit in bytes (0 = none) */
    uint64_t size;        /* content bytes after unstuffing */
    int line_too_long;    /* answer 500 5.5.2 Line too long at the end */
    int too_big;          /* answer 552 5.3.4 at the end */
    int discard;          /* set by the caller (e.g. a failed header check) or by a limit */
    smtp_data_emit_fn *emit;
    void *arg;
};

/* Start a DATA transfer. emit may be NULL (count only). */
void smtp_data_init(struct smtp_data *d, size_t max_line, uint64_t max_size,
                    smtp_data_emit_fn *emit, void *arg);

/* Feed len bytes; *consumed is how many were used (all of them unless END or BARE). */
enum smtp_data_rc smtp_data_feed(struct smtp_data *d, const char *in, size_t len,
                                 size_t *consumed);

/* Bare CR/LF check for BDAT chunks and command lines: returns 1 if buf has a CR not followed
 * by LF or an LF not preceded by CR. *prev_cr carries a trailing CR across calls. */
int smtp_data_bare_check(int *prev_cr, const char *buf, size_t len);

/* DATA's text line rule for BDAT chunks (RFC 5321 §4.5.3.1.6, counted as smtp_data counts
 * it: every octet of a line, CRLF included): returns 1 if a line of buf, continued across
 * calls through *line_len, goes over max_line (0 = no limit). */
int smtp_data_line_check(size_t *line_len, size_t max_line, const char *buf, size_t len);

#endif
