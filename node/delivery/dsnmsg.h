/* dsnmsg: the text of a delivery status notification (RFC 3464, RFC 3462 multipart/report)
 * for the failed recipients of one message: a human-readable part, the machine-readable
 * message/delivery-status part (per recipient: Final-Recipient, Action, Status, Remote-MTA,
 * Diagnostic-Code), and the original header block as text/rfc822-headers. Lines end in
 * CRLF and never exceed 998 octets; text taken from remote servers is cleaned of control
 * bytes and cut to length. Never for a null sender: the caller checks. Pure. */
#ifndef RN_DSNMSG_H
#define RN_DSNMSG_H
#include <stddef.h>
#include <time.h>

struct dsnmsg_rcpt {
    const char *rcpt;
    const char *diag;     /* "550 5.1.1 <x>: no such user", or a local "4.4.7 ..." reason */
    const char *remote;   /* "mx.example.net[192.0.2.1]", or "" */
};

/* Returns the message (malloc'd, *len set); caller frees. */
char *dsnmsg_build(const char *fqdn, const char *qid, const char *orig_sender, time_t arrival,
                   time_t now, const struct dsnmsg_rcpt *r, size_t n, const char *orig_headers,
                   size_t hlen, size_t *len);
#endif
