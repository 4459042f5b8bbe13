/* headers: pure end-of-headers processing on a complete header block (the bytes before the
 * empty line, CRLF line ends): Received: count, the header firewall (docs/permission-model.md §9.1)
 * and header-sender extraction. No I/O. */
#ifndef RN_HEADERS_H
#define RN_HEADERS_H
#include <stddef.h>
#include <time.h>

/* Which header groups the session's rights let through (ms-Exch-Accept-Headers-*). */
struct headers_accept {
    int routing;      /* keep Received:, Resent-* */
    int organization; /* keep X-Relaynode-Organization-*, X-MS-Exchange-Organization-* */
    int forest;       /* keep X-Relaynode-Forest-*, X-MS-Exchange-Forest-* */
};

/* Number of Received: fields in the block (counted before any stripping). */
size_t headers_count_received(const char *hdr, size_t len);

/* Copy hdr to out without the fields the rights do not accept; a field's folded
 * continuation lines go with it. out must hold len bytes; returns bytes written. */
size_t headers_firewall(const char *hdr, size_t len, const struct headers_accept *acc,
                        char *out);

/* The header sender: the address in Sender: if present, else From: (display-name <addr>,
 * bare addr, comments dropped). Returns 0 and fills addr, or -1 if none or unparsable. */
int headers_sender(const char *hdr, size_t len, char *addr, size_t addrlen);

/* What our own trace and auth-stamp fields say (§9.3). Strings are already validated
 * (printable, no CR/LF). mechanism NULL = anonymous session (no AuthMechanism field). */
struct headers_stamp {
    const char *helo, *client_ip, *fqdn, *local_ip;
    const char *with;      /* ESMTP, ESMTPS, ESMTPA or ESMTPSA */
    const char *queueid;
    const char *auth_as;   /* policy_auth_as() */
    const char *mechanism; /* 2 hex digits, e.g. "10" SecureExternalSubmit */
    int antispam_bypass;
};

/* Format "Received: ..." and the X-Relaynode-Organization-Auth* / -AntispamBypass fields,
 * CRLF-terminated, into out. Returns bytes written, or -1 if out is too small. */
int headers_stamp_format(const struct headers_stamp *s, time_t now, char *out, size_t outlen);

#endif
