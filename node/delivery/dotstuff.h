/* dotstuff: the body of a message as the SMTP client sends it after DATA (RFC 5321 §4.5.2),
 * pure and resumable so a message of any size streams through it in pieces: checks that the
 * message can go out unchanged (CRLF line ends only, lines of at most 998 octets), notes
 * 8-bit bytes, and emits it dot-stuffed, then the final "." line. The same output and verdict
 * whether the message arrives whole or one byte at a time. No I/O, no globals. */
#ifndef RN_DOTSTUFF_H
#define RN_DOTSTUFF_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DOTSTUFF_LINE_MAX 998       /* octets of a text line without its CRLF (RFC 5321 4.5.3.1.6) */

typedef void dotstuff_emit_fn(void *arg, const char *p, size_t n);

struct dotstuff {
    uint64_t size;                  /* message bytes fed */
    size_t line;                    /* octets of the current line so far, CR and LF excluded */
    bool cr;                        /* the last byte fed was a CR */
    bool eight_bit;                 /* a byte >= 0x80 was fed */
    const char *bad;                /* sticky: why the message cannot be sent unchanged */
    dotstuff_emit_fn *emit;         /* NULL: check and count only */
    void *arg;
};

void dotstuff_init(struct dotstuff *d, dotstuff_emit_fn *emit, void *arg);
/* Feed n message bytes (CRLF lines, not stuffed). -1 once d->bad is set ("5.6.0 ..."); what
 * was emitted before must then be discarded. */
int dotstuff_feed(struct dotstuff *d, const char *p, size_t n);
/* End of the message: emits the CRLF an unterminated last line lacks, then ".\r\n"; -1 (and
 * nothing emitted) when d->bad is set or the message ended in a bare CR. */
int dotstuff_end(struct dotstuff *d);
#endif
