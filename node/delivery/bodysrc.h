/* bodysrc: the body of one queued message for one SMTP transaction, read from the spool in
 * steps of at most 64 KiB on the worker pool (docs/style.md 7), verified as it goes (the
 * record decoder's END length and CRC-32, and dotstuff's CRLF and line-length checks) and
 * handed to the loop dot-stuffed, so the memory a delivery holds is bounded whatever the
 * message's size (docs/architecture.md §5). Loop thread, except the reads. */
#ifndef RN_BODYSRC_H
#define RN_BODYSRC_H
#include <stddef.h>

struct node;
struct evbuffer;
struct bodysrc;

/* rc 1: piece holds the next dot-stuffed bytes; 0: piece holds the last ones and the final
 * ".\r\n", and the whole file was verified; -1: err ("4.3.0 ..." or "4.3.2 ...", always
 * temporary) says why the message cannot be sent (unreadable, torn, checksum mismatch, no
 * longer sendable unchanged, node stopping): the caller must not complete the DATA. The caller moves what it wants out of piece during the
 * callback (evbuffer_add_buffer). */
typedef void bodysrc_fn(void *arg, int rc, struct evbuffer *piece, const char *err);

/* For queue/<id> of n's spool; nothing is read before the first pull. Caller frees. */
struct bodysrc *bodysrc_new(struct node *n, const char *id);
/* A small message the pre-scan already read and verified: p[0..len) is its whole
 * dot-stuffed body with the final ".\r\n" (copied, at most BODYSRC_SMALL_MAX octets); the
 * one pull answers 0 with it, with no second read of the file. Caller frees. */
#define BODYSRC_SMALL_MAX (64u * 1024u)
struct bodysrc *bodysrc_new_bytes(struct node *n, const char *p, size_t len);
/* Read the next piece; fn runs once, on the loop, never inside this call. One pull at a
 * time; none after fn saw 0 or -1. */
void bodysrc_pull(struct bodysrc *b, bodysrc_fn *fn, void *arg);
/* Free now, or when the read in flight ends (fn is then not called). NULL-safe. */
void bodysrc_free(struct bodysrc **b);
#endif
