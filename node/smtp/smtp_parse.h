/* smtp_parse: pure parsers for SMTP command lines (RFC 5321 §4.1, RFC 1870, RFC 6152,
 * RFC 6531, RFC 3030). No I/O, no globals; input is one line without its CRLF. */
#ifndef RN_SMTP_CMD_H
#define RN_SMTP_CMD_H
#include <stddef.h>
#include <stdint.h>

enum smtp_verb {
    SMTP_VERB_UNKNOWN = 0, SMTP_VERB_HELO, SMTP_VERB_EHLO, SMTP_VERB_MAIL, SMTP_VERB_RCPT,
    SMTP_VERB_DATA, SMTP_VERB_BDAT, SMTP_VERB_RSET, SMTP_VERB_NOOP, SMTP_VERB_QUIT,
    SMTP_VERB_VRFY, SMTP_VERB_HELP, SMTP_VERB_STARTTLS, SMTP_VERB_AUTH,
};

/* Parse results: OK, or which 501 the caller answers. */
enum smtp_parse_rc {
    SMTP_PARSE_OK = 0,
    SMTP_PARSE_BAD_ARGS = -1, /* 501 5.5.4 Invalid arguments */
    SMTP_PARSE_BAD_ADDR = -2, /* 501 5.1.3 Invalid address */
};

#define SMTP_LOCAL_MAX 64
#define SMTP_DOMAIN_MAX 255
#define SMTP_PATH_MAX 256

struct smtp_path {
    int null;                       /* "<>" (reverse-path only) */
    int literal;                    /* domain is an address literal [..] (never local) */
    int utf8;                       /* contains 8-bit bytes */
    char local[SMTP_LOCAL_MAX + 1]; /* as written, quotes kept */
    char domain[SMTP_DOMAIN_MAX + 1];
    char addr[SMTP_PATH_MAX + 1];   /* local@domain, or "" for null */
};

enum smtp_body { SMTP_BODY_NONE = 0, SMTP_BODY_7BIT, SMTP_BODY_8BITMIME };

struct smtp_mail {
    struct smtp_path path;
    int has_size;
    uint64_t size;
    enum smtp_body body;
    int smtputf8;
    char auth[SMTP_PATH_MAX + 1]; /* AUTH= value as given (xtext not decoded), "" if absent */
};

/* Verb of a command line (case-insensitive); *args points past the verb and its spaces. */
enum smtp_verb smtp_cmd_verb(const char *line, size_t len, const char **args);

/* Verb name for logs. */
const char *smtp_verb_name(enum smtp_verb v);

/* Parse a path "<...>" at s (len bytes); 8-bit only when allow_utf8; source routes refused.
 * allow_null accepts "<>". *consumed = bytes used. */
int smtp_path_parse(const char *s, size_t len, int allow_null, int allow_utf8,
                    struct smtp_path *p, size_t *consumed);

/* Parse MAIL arguments "FROM:<path> [SIZE=n] [BODY=7BIT|8BITMIME] [SMTPUTF8] [AUTH=x]". */
int smtp_mail_parse(const char *args, size_t len, struct smtp_mail *m);

/* Parse RCPT arguments "TO:<path>" (no parameters accepted). utf8 = SMTPUTF8 was given on MAIL.
 * "<postmaster>" (any case) without a domain is accepted: p->domain is then "". */
int smtp_rcpt_parse(const char *args, size_t len, int utf8, struct smtp_path *p);

/* Parse BDAT arguments "n [LAST]". */
int smtp_bdat_parse(const char *args, size_t len, uint64_t *size, int *last);

/* Parse a HELO/EHLO argument: one domain or address literal, printable ASCII, <= 255. */
int smtp_helo_parse(const char *args, size_t len, char *out, size_t outlen);

#endif
