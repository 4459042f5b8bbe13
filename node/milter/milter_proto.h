/* milter_proto: the Sendmail milter protocol, version 6, as pure code (docs/style.md 10): the
 * packet framing both ways, a resumable reply reader that checks every length before it
 * parses, the typed decoding of a filter's replies, and the conversation for one message
 * (negotiation, connect, HELO, MAIL, RCPT, DATA, headers, body, end of message) as a state
 * machine fed with the filter's bytes. No I/O, no globals: milter.c moves the bytes. Anything a
 * filter sends that the protocol or the negotiation does not allow ends the conversation as
 * MILTER_FAILED, which the caller turns into milter_default_action: never a crash, never a
 * silent accept. */
#ifndef RN_MILTER_PROTO_H
#define RN_MILTER_PROTO_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MILTER_VERSION 6
/* The largest reply packet taken (length field, command byte included). A filter's replies
 * are short; 64 KiB + 1 holds a header value or a whole body chunk. Past it: MILTER_FAILED. */
#define MILTER_REPLY_MAX (65536u + 1024u)
#define MILTER_CHUNK 65535u         /* body bytes per SMFIC_BODY packet */
#define MILTER_TEXT_MAX 512         /* reply text kept from SMFIR_REPLYCODE (printable ASCII) */
#define MILTER_MODS_MAX 256         /* header modifications taken from one filter */

/* Protocol flags (SMFIP_*) and actions (SMFIF_*) of the negotiation. */
enum {
    SMFIP_NOCONNECT = 0x1, SMFIP_NOHELO = 0x2, SMFIP_NOMAIL = 0x4, SMFIP_NORCPT = 0x8,
    SMFIP_NOBODY = 0x10, SMFIP_NOHDRS = 0x20, SMFIP_NOEOH = 0x40, SMFIP_NR_HDR = 0x80,
    SMFIP_NOUNKNOWN = 0x100, SMFIP_NODATA = 0x200, SMFIP_SKIP = 0x400,
    SMFIP_NR_CONN = 0x1000, SMFIP_NR_HELO = 0x2000, SMFIP_NR_MAIL = 0x4000,
    SMFIP_NR_RCPT = 0x8000, SMFIP_NR_DATA = 0x10000, SMFIP_NR_UNKN = 0x20000,
    SMFIP_NR_EOH = 0x40000, SMFIP_NR_BODY = 0x80000,
    SMFIF_ADDHDRS = 0x1, SMFIF_CHGHDRS = 0x10, SMFIF_QUARANTINE = 0x20,
};
/* What this MTA offers: every step may be skipped or left unanswered; it can add and change
 * headers and quarantine. Recipients, sender and body are never changed. */
#define MILTER_OFFER_PROTO 0xFF7FFu
#define MILTER_OFFER_ACTIONS (SMFIF_ADDHDRS | SMFIF_CHGHDRS | SMFIF_QUARANTINE)

/* One reply packet, split: cmd and its data (borrowed from the reader until the next feed). */
struct milter_packet { char cmd; const char *data; uint32_t len; };

/* Resumable reader: the same packets whether bytes come whole or one at a time. */
struct milter_rd {
    unsigned char hdr[4]; size_t hlen;
    uint32_t want;                 /* packet length (command included) once hlen == 4 */
    char *buf; uint32_t have;      /* owned: the packet so far */
};
/* Take bytes from buf[0..len): *used says how many. 1 = a packet is complete (*p valid until
 * the next call), 0 = all used, more needed, -1 = a length of 0 or over MILTER_REPLY_MAX (err). */
int milter_rd_feed(struct milter_rd *r, const char *buf, size_t len, size_t *used,
                   struct milter_packet *p, char *err, size_t errlen);
void milter_rd_clear(struct milter_rd *r);

/* A growable output buffer (packets to send). */
struct milter_out { char *p; size_t len, cap; };
void milter_out_packet(struct milter_out *o, char cmd, const void *data, size_t len);
void milter_out_clear(struct milter_out *o);

/* The verdict of one filter for one message. */
enum milter_action {
    MILTER_ACCEPT,      /* accept (or continue to the end): the message goes on */
    MILTER_REJECT,      /* 550 5.7.1 (the filter's text if it gave one) */
    MILTER_TEMPFAIL,    /* 451 4.7.1 (the filter's text if it gave one) */
    MILTER_DISCARD,     /* 250, but not queued */
    MILTER_FAILED,      /* the filter could not be asked: milter_default_action decides */
};
const char *milter_action_name(enum milter_action a);

/* A header change asked at end of message: add (at the end), insert at index (0 = first), or
 * change the index-th (1-based) field of that name; an empty value with CHANGE deletes it. */
enum milter_hdr_op { MILTER_HDR_ADD, MILTER_HDR_INSERT, MILTER_HDR_CHANGE };
struct milter_mod { enum milter_hdr_op op; uint32_t index; char *name, *value; };   /* owned */

struct milter_result {
    enum milter_action action;
    const char *stage;              /* "connect", "helo", "mail", "rcpt", "data", "header", "eoh",
                                     * "body", "eom", or "negotiate" */
    char text[MILTER_TEXT_MAX];     /* the filter's reply text, or why it failed; "" if none */
    bool quarantine;                /* SMFIR_QUARANTINE at end of message */
    char reason[MILTER_TEXT_MAX];   /* its reason */
    struct milter_mod *mods; size_t nmods;   /* owned */
};
void milter_result_clear(struct milter_result *r);
/* Move src's mods after dst's (dst takes ownership; src keeps none). */
void milter_result_merge_mods(struct milter_result *dst, struct milter_result *src);

/* The message as the filter is told it. Everything is borrowed for the conversation's life. */
struct milter_msg {
    const char *client_ip;          /* "192.0.2.1" or "2001:db8::1" */
    uint16_t client_port;
    bool client_v6;
    const char *helo, *sender;      /* sender without <> ("" = null sender) */
    const char *const *rcpts; size_t nrcpts;
    const char *queue_id, *myhostname;
    const char *auth_user;          /* NULL if not authenticated */
    const char *content; size_t len;   /* header block, empty line, body (CRLF) */
};

struct milter_conv;
struct milter_conv *milter_conv_new(const struct milter_msg *m);   /* caller frees */
void milter_conv_free(struct milter_conv **c);
/* Live mode (the session's own pace): the conversation goes up to MAIL and is then held
 * (milter_conv_held) until the caller gives a recipient (its answer: milter_conv_rcpt_verdict,
 * MILTER_ACCEPT or a refusal of that recipient alone, after which it goes on) or the content
 * (m->content and m->len set first: then DATA, headers, body, end of message as above). The
 * recipients a live conversation sends are only those given here; m->rcpts is not read. */
struct milter_conv *milter_conv_new_live(const struct milter_msg *m);
void milter_conv_rcpt(struct milter_conv *c, const char *addr);
enum milter_action milter_conv_rcpt_verdict(const struct milter_conv *c, const char **text);
void milter_conv_content(struct milter_conv *c);
bool milter_conv_held(const struct milter_conv *c);
/* Bytes to send now (appended as steps become due); the caller takes them with
 * milter_conv_take_output (resets the buffer). */
struct milter_out *milter_conv_output(struct milter_conv *c);
/* The filter's bytes. Returns how many were used; may finish the conversation. */
size_t milter_conv_input(struct milter_conv *c, const char *buf, size_t len);
/* Whether a reply is awaited (the caller's command timeout runs) and whether it is over. */
bool milter_conv_waiting(const struct milter_conv *c);
bool milter_conv_done(const struct milter_conv *c);
/* SMFIR_PROGRESS seen since the last call (the caller restarts its timeout). */
bool milter_conv_progress(struct milter_conv *c);
/* End it as MILTER_FAILED with this reason (timeout, connection lost), unless already done. */
void milter_conv_fail(struct milter_conv *c, const char *why);
/* The verdict once done; the caller may take mods out of it. */
struct milter_result *milter_conv_result(struct milter_conv *c);

/* Apply mods to the header block hdr[0..hlen) (CRLF-terminated fields, no empty line):
 * a new block, caller frees, *outlen its length. Changes to an index that does not exist add
 * the field (as Sendmail does); names and values were checked by the decoder. */
char *milter_apply_mods(const char *hdr, size_t hlen, const struct milter_mod *mods,
                        size_t nmods, size_t *outlen);

/* Endpoints: "unix:/path" or "inet:IP:port" ("inet:[v6]:port"), space-separated. */
struct milter_endpoint { bool unix_sock; char path[108]; char host[64]; uint16_t port; };
/* Parse spec into *out (caller frees), *n entries. -1 with err naming the bad endpoint. */
int milter_endpoints_parse(const char *spec, struct milter_endpoint **out, size_t *n,
                           char *err, size_t errlen);
#endif
