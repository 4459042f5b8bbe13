/* spool_record: the pure codec of spool files (no I/O, no state but a constant CRC table;
 * docs/style.md rule 10).
 *
 * A file is the header "RNQ1" + version byte 1, then records {type: 1 byte, length: 4 bytes
 * big-endian, payload}. Envelope records come first in ascending type order (RCPT may repeat,
 * AUTH_USER is optional, every other envelope type appears exactly once), then zero or more
 * DATA records (1..SPOOL_REC_DATA_MAX bytes each), then END {total data length: 8 bytes BE,
 * CRC-32 (IEEE, as zlib) of every byte before the END record: 4 bytes BE}, then end of file.
 * Text payloads never contain NUL, CR or LF (docs/reliability.md G7). */
#ifndef RN_SPOOL_RECORD_H
#define RN_SPOOL_RECORD_H
#include <stddef.h>
#include <stdint.h>
#include "node/spool/spool_envelope.h"

#define SPOOL_REC_MAGIC "RNQ1"
#define SPOOL_REC_VERSION 1
#define SPOOL_REC_FILEHDR 5            /* magic + version */
#define SPOOL_REC_HDR 5                /* type + length */
#define SPOOL_REC_END_LEN 12           /* END payload */
#define SPOOL_REC_DATA_MAX 65536       /* largest DATA payload */
#define SPOOL_MAX_ADDR 256             /* RFC 5321 §4.5.3.1.3 path limit */
#define SPOOL_MAX_RCPTS 100000
#define SPOOL_MAX_IP 64
#define SPOOL_MAX_HELO 512
#define SPOOL_MAX_CONNECTOR 256
#define SPOOL_MAX_AUTH_USER 1024
#define SPOOL_MAX_AUTH_AS 64
#define SPOOL_FLAG_ANTISPAM_BYPASS 0x1u

enum spool_rec_type {
    SPOOL_REC_SENDER = 1, SPOOL_REC_RCPT = 2, SPOOL_REC_CLIENT_IP = 3, SPOOL_REC_HELO = 4,
    SPOOL_REC_CONNECTOR = 5, SPOOL_REC_AUTH_USER = 6, SPOOL_REC_AUTH_AS = 7,
    SPOOL_REC_FLAGS = 8, SPOOL_REC_RECEIVED = 9, SPOOL_REC_DATA = 10, SPOOL_REC_END = 11,
};

/* CRC-32 (IEEE 802.3, zlib's crc32): start with 0, feed pieces in order. */
uint32_t spool_rec_crc32(uint32_t crc, const void *p, size_t n);

/* Encoded bytes go to a sink; a sink returning -1 stops the encoder (the sink keeps its own
 * error). */
typedef int (*spool_rec_sink)(void *arg, const void *p, size_t n);

/* Check every envelope field (limits, NULL sender or recipients, CR/LF) before any byte is
 * written. NULL client_ip, helo, connector and auth_as are stored as "". -1 with err. */
int spool_rec_envelope_check(const struct spool_envelope *env, char *err, size_t errlen);
/* Emit the file header and the envelope records. -1 with err if the envelope fails the check
 * (nothing emitted); -1 with err untouched if the sink fails. */
int spool_rec_encode_envelope(const struct spool_envelope *env, spool_rec_sink sink, void *arg,
                              char *err, size_t errlen);
/* Fill a record header; out has SPOOL_REC_HDR bytes. */
void spool_rec_put_header(uint8_t *out, uint8_t type, uint32_t len);
/* Fill a whole END record (header + payload); out has SPOOL_REC_HDR + SPOOL_REC_END_LEN bytes.
 * crc covers every byte written before it. */
void spool_rec_put_end(uint8_t *out, uint64_t total, uint32_t crc);

/* Resumable decoder: feed the file in pieces of any size and get the same result. The
 * envelope is filled into *e (owned by the caller, cleared with spool_entry_clear; cleared
 * by the decoder on error); on_data (may be NULL) sees each DATA payload piece in order. */
struct spool_rec_dec {
    /* private */
    struct spool_entry *e;
    int (*on_data)(void *arg, const void *p, size_t n);
    void *arg;
    int state;
    uint8_t hdr[SPOOL_REC_HDR];
    size_t hdrlen;
    uint8_t type, last_type;
    uint32_t len, got;
    char *text;                      /* text payload being collected; owned */
    uint8_t fixed[SPOOL_REC_END_LEN];
    size_t rcpt_cap;
    uint64_t offset, total;
    uint32_t crc;
};
void spool_rec_dec_init(struct spool_rec_dec *d, struct spool_entry *e,
                        int (*on_data)(void *arg, const void *p, size_t n), void *arg);
/* -1 with err (with the byte offset) on the first malformed byte or if on_data fails; the
 * error is sticky. */
int spool_rec_dec_feed(struct spool_rec_dec *d, const void *p, size_t n, char *err,
                       size_t errlen);
/* End of input: 0 only if a complete file (through END) was fed. Frees decoder state. */
int spool_rec_dec_finish(struct spool_rec_dec *d, char *err, size_t errlen);
#endif
