/* spool_record: encoder and resumable decoder of the spool file format (see spool_record.h).
 * The decoder is strict on purpose: a file is either exactly what the encoder writes or it is
 * rejected, so a torn, truncated or corrupted queue file is never taken for a message
 * (docs/reliability.md §2, Postfix's mandatory END record). Every length is checked against the
 * field's limit when the record header arrives, before any payload byte is stored. */
#include "node/spool/spool_record.h"
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "directory/base/util.h"

enum { ST_FILEHDR, ST_RECHDR, ST_PAYLOAD, ST_DONE, ST_FAILED };

/* CRC-32 (IEEE 802.3, reflected, as zlib's crc32) eight bytes a step ("slicing by 8"):
 * crc_table[k][i] is the CRC of byte i followed by k zero bytes, so one step folds eight
 * bytes through eight independent lookups. The same values as one byte a step (unit test
 * crc32_slices_match_bytewise), about five times fewer instructions per byte: with messages of
 * a megabyte the byte-wise loop was a third of the node's CPU (README, Per-message cost). */
static uint32_t crc_table[8][256];
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;

static void crc_init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        crc_table[0][i] = c;
    }
    for (uint32_t i = 0; i < 256; i++)
        for (int k = 1; k < 8; k++)
            crc_table[k][i] = (crc_table[k - 1][i] >> 8) ^ crc_table[0][crc_table[k - 1][i] & 0xff];
}

static uint32_t le32(const uint8_t *b)
{
    return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

uint32_t spool_rec_crc32(uint32_t crc, const void *p, size_t n)
{
    pthread_once(&crc_once, crc_init);    /* commits run on worker threads */
    const uint8_t *b = p;
    crc = ~crc;
    for (; n >= 8; b += 8, n -= 8) {
        uint32_t lo = le32(b) ^ crc, hi = le32(b + 4);
        crc = crc_table[7][lo & 0xff] ^ crc_table[6][(lo >> 8) & 0xff] ^
              crc_table[5][(lo >> 16) & 0xff] ^ crc_table[4][lo >> 24] ^
              crc_table[3][hi & 0xff] ^ crc_table[2][(hi >> 8) & 0xff] ^
              crc_table[1][(hi >> 16) & 0xff] ^ crc_table[0][hi >> 24];
    }
    while (n--)
        crc = crc_table[0][(crc ^ *b++) & 0xff] ^ (crc >> 8);
    return ~crc;
}

static void put_be32(uint8_t *o, uint32_t v)
{
    o[0] = v >> 24; o[1] = v >> 16; o[2] = v >> 8; o[3] = v;
}

static void put_be64(uint8_t *o, uint64_t v)
{
    put_be32(o, (uint32_t)(v >> 32));
    put_be32(o + 4, (uint32_t)v);
}

static uint32_t get_be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint64_t get_be64(const uint8_t *p)
{
    return (uint64_t)get_be32(p) << 32 | get_be32(p + 4);
}

void spool_rec_put_header(uint8_t *out, uint8_t type, uint32_t len)
{
    out[0] = type;
    put_be32(out + 1, len);
}

void spool_rec_put_end(uint8_t *out, uint64_t total, uint32_t crc)
{
    spool_rec_put_header(out, SPOOL_REC_END, SPOOL_REC_END_LEN);
    put_be64(out + SPOOL_REC_HDR, total);
    put_be32(out + SPOOL_REC_HDR + 8, crc);
}

/* Field table: name, limits, whether the type is text. Indexed by type. */
static const struct field {
    const char *name;
    uint32_t min, max;
    bool text;
} fields[] = {
    [SPOOL_REC_SENDER] = {"sender", 0, SPOOL_MAX_ADDR, true},
    [SPOOL_REC_RCPT] = {"recipient", 1, SPOOL_MAX_ADDR, true},
    [SPOOL_REC_CLIENT_IP] = {"client ip", 0, SPOOL_MAX_IP, true},
    [SPOOL_REC_HELO] = {"helo", 0, SPOOL_MAX_HELO, true},
    [SPOOL_REC_CONNECTOR] = {"connector", 0, SPOOL_MAX_CONNECTOR, true},
    [SPOOL_REC_AUTH_USER] = {"auth user", 0, SPOOL_MAX_AUTH_USER, true},
    [SPOOL_REC_AUTH_AS] = {"auth as", 0, SPOOL_MAX_AUTH_AS, true},
    [SPOOL_REC_FLAGS] = {"flags", 4, 4, false},
    [SPOOL_REC_RECEIVED] = {"received", 8, 8, false},
    [SPOOL_REC_DATA] = {"data", 1, SPOOL_REC_DATA_MAX, false},
    [SPOOL_REC_END] = {"end", SPOOL_REC_END_LEN, SPOOL_REC_END_LEN, false},
};

static int check_text(const char *what, size_t idx, const char *s, uint32_t min, uint32_t max,
                      char *err, size_t errlen)
{
    char label[64];
    if (idx)
        snprintf(label, sizeof label, "%s %zu", what, idx);
    else
        rn_strlcpy(label, what, sizeof label);
    if (!s)
        return rn_err(err, errlen, "%s: missing", label);
    size_t n = strnlen(s, (size_t)max + 1);
    if (n > max)
        return rn_err(err, errlen, "%s: longer than %u bytes", label, max);
    if (n < min)
        return rn_err(err, errlen, "%s: empty", label);
    if (strpbrk(s, "\r\n"))
        return rn_err(err, errlen, "%s: contains CR or LF", label);
    return 0;
}

static const char *or_empty(const char *s)
{
    return s ? s : "";
}

int spool_rec_envelope_check(const struct spool_envelope *env, char *err, size_t errlen)
{
    if (check_text("sender", 0, env->sender, 0, SPOOL_MAX_ADDR, err, errlen) < 0)
        return -1;
    if (env->nrcpts == 0 || !env->rcpts)
        return rn_err(err, errlen, "no recipients");
    if (env->nrcpts > SPOOL_MAX_RCPTS)
        return rn_err(err, errlen, "more than %d recipients", SPOOL_MAX_RCPTS);
    for (size_t i = 0; i < env->nrcpts; i++)
        if (check_text("recipient", i + 1, env->rcpts[i], 1, SPOOL_MAX_ADDR, err, errlen) < 0)
            return -1;
    if (check_text("client ip", 0, or_empty(env->client_ip), 0, SPOOL_MAX_IP, err, errlen) < 0 ||
        check_text("helo", 0, or_empty(env->helo), 0, SPOOL_MAX_HELO, err, errlen) < 0 ||
        check_text("connector", 0, or_empty(env->connector), 0, SPOOL_MAX_CONNECTOR, err,
                   errlen) < 0 ||
        (env->auth_user &&
         check_text("auth user", 0, env->auth_user, 0, SPOOL_MAX_AUTH_USER, err, errlen) < 0) ||
        check_text("auth as", 0, or_empty(env->auth_as), 0, SPOOL_MAX_AUTH_AS, err, errlen) < 0)
        return -1;
    return 0;
}

static int emit(spool_rec_sink sink, void *arg, uint8_t type, const void *p, size_t n)
{
    uint8_t h[SPOOL_REC_HDR];
    spool_rec_put_header(h, type, (uint32_t)n);
    if (sink(arg, h, sizeof h) < 0)
        return -1;
    return n ? sink(arg, p, n) : 0;
}

static int emit_text(spool_rec_sink sink, void *arg, uint8_t type, const char *s)
{
    return emit(sink, arg, type, s, strlen(s));
}

int spool_rec_encode_envelope(const struct spool_envelope *env, spool_rec_sink sink, void *arg,
                              char *err, size_t errlen)
{
    if (spool_rec_envelope_check(env, err, errlen) < 0)
        return -1;
    uint8_t fh[SPOOL_REC_FILEHDR] = {'R', 'N', 'Q', '1', SPOOL_REC_VERSION};
    uint8_t flags[4], recv[8];
    put_be32(flags, env->antispam_bypass ? SPOOL_FLAG_ANTISPAM_BYPASS : 0);
    put_be64(recv, (uint64_t)(int64_t)env->received);
    int rc = sink(arg, fh, sizeof fh) < 0 || emit_text(sink, arg, SPOOL_REC_SENDER, env->sender);
    for (size_t i = 0; !rc && i < env->nrcpts; i++)
        rc = emit_text(sink, arg, SPOOL_REC_RCPT, env->rcpts[i]) < 0;
    rc = rc || emit_text(sink, arg, SPOOL_REC_CLIENT_IP, or_empty(env->client_ip)) < 0 ||
         emit_text(sink, arg, SPOOL_REC_HELO, or_empty(env->helo)) < 0 ||
         emit_text(sink, arg, SPOOL_REC_CONNECTOR, or_empty(env->connector)) < 0 ||
         (env->auth_user && emit_text(sink, arg, SPOOL_REC_AUTH_USER, env->auth_user) < 0) ||
         emit_text(sink, arg, SPOOL_REC_AUTH_AS, or_empty(env->auth_as)) < 0 ||
         emit(sink, arg, SPOOL_REC_FLAGS, flags, sizeof flags) < 0 ||
         emit(sink, arg, SPOOL_REC_RECEIVED, recv, sizeof recv) < 0;
    return rc ? -1 : 0;      /* the sink holds its own error */
}

/* ---- decoder ---- */

void spool_rec_dec_init(struct spool_rec_dec *d, struct spool_entry *e,
                        int (*on_data)(void *arg, const void *p, size_t n), void *arg)
{
    memset(d, 0, sizeof *d);
    d->e = e;
    d->on_data = on_data;
    d->arg = arg;
    d->state = ST_FILEHDR;
}

static int dec_fail(struct spool_rec_dec *d, char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int dec_fail(struct spool_rec_dec *d, char *err, size_t errlen, const char *fmt, ...)
{
    char msg[160];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    free(d->text);
    d->text = NULL;
    d->state = ST_FAILED;
    if (d->e) {
        char id[sizeof d->e->id];
        memcpy(id, d->e->id, sizeof id);
        spool_entry_clear(d->e);
        memcpy(d->e->id, id, sizeof id);
    }
    return rn_err(err, errlen, "offset %llu: %s", (unsigned long long)d->offset, msg);
}

#define FAIL(...) dec_fail(d, err, errlen, __VA_ARGS__)

/* Envelope records must all be present before the first DATA or END. */
static int envelope_complete(const struct spool_rec_dec *d)
{
    return d->last_type >= SPOOL_REC_RECEIVED;
}

/* A whole record header is in d->hdr: check type, order and length before any payload. */
static int dec_record_start(struct spool_rec_dec *d, char *err, size_t errlen)
{
    uint8_t t = d->hdr[0];
    uint32_t len = get_be32(d->hdr + 1);
    if (t < SPOOL_REC_SENDER || t > SPOOL_REC_END)
        return FAIL("unknown record type %u", t);
    const struct field *f = &fields[t];
    if (t <= SPOOL_REC_RECEIVED) {
        if (t < d->last_type || (t == d->last_type && t != SPOOL_REC_RCPT))
            return FAIL("%s record out of order or repeated", f->name);
        /* Every type between the last one and this one must be optional (only AUTH_USER). */
        for (unsigned k = d->last_type + 1u; k < t; k++)
            if (k != SPOOL_REC_AUTH_USER && !(k == SPOOL_REC_RCPT && d->e->nrcpts))
                return FAIL("%s record missing before type %u", fields[k].name, t);
        if (t == SPOOL_REC_RCPT && d->e->nrcpts >= SPOOL_MAX_RCPTS)
            return FAIL("more than %d recipients", SPOOL_MAX_RCPTS);
    } else if (!envelope_complete(d)) {
        return FAIL("%s record before the envelope is complete", f->name);
    }
    if (len < f->min || len > f->max)
        return FAIL("%s record length %u out of range", f->name, len);
    d->type = t;
    d->len = len;
    d->got = 0;
    if (f->text)
        d->text = xmalloc((size_t)len + 1);
    if (t != SPOOL_REC_END)
        d->crc = spool_rec_crc32(d->crc, d->hdr, SPOOL_REC_HDR);
    return 0;
}

static char *take_text(struct spool_rec_dec *d)
{
    char *s = d->text;
    s[d->len] = '\0';
    d->text = NULL;
    return s;
}

/* The whole payload has arrived: store it. */
static int dec_record_end(struct spool_rec_dec *d, char *err, size_t errlen)
{
    struct spool_entry *e = d->e;
    const struct field *f = &fields[d->type];
    if (f->text) {
        if (memchr(d->text, '\0', d->len) || memchr(d->text, '\r', d->len) ||
            memchr(d->text, '\n', d->len))
            return FAIL("%s contains NUL, CR or LF", f->name);
    }
    switch (d->type) {
    case SPOOL_REC_SENDER: e->sender = take_text(d); break;
    case SPOOL_REC_RCPT:
        if (e->nrcpts == d->rcpt_cap) {
            d->rcpt_cap = d->rcpt_cap ? d->rcpt_cap * 2 : 4;
            e->rcpts = xrealloc(e->rcpts, d->rcpt_cap * sizeof *e->rcpts);
        }
        e->rcpts[e->nrcpts++] = take_text(d);
        break;
    case SPOOL_REC_CLIENT_IP: e->client_ip = take_text(d); break;
    case SPOOL_REC_HELO: e->helo = take_text(d); break;
    case SPOOL_REC_CONNECTOR: e->connector = take_text(d); break;
    case SPOOL_REC_AUTH_USER: e->auth_user = take_text(d); break;
    case SPOOL_REC_AUTH_AS: e->auth_as = take_text(d); break;
    case SPOOL_REC_FLAGS: {
        uint32_t fl = get_be32(d->fixed);
        if (fl & ~SPOOL_FLAG_ANTISPAM_BYPASS)
            return FAIL("flags: unknown bits 0x%x", fl);
        e->antispam_bypass = fl & SPOOL_FLAG_ANTISPAM_BYPASS;
        break;
    }
    case SPOOL_REC_RECEIVED: e->received = (time_t)(int64_t)get_be64(d->fixed); break;
    case SPOOL_REC_DATA: break;
    case SPOOL_REC_END: {
        uint64_t total = get_be64(d->fixed);
        uint32_t crc = get_be32(d->fixed + 8);
        if (total != d->total)
            return FAIL("END: data length %llu does not match the DATA records", (unsigned long long)total);
        if (crc != d->crc)
            return FAIL("END: checksum mismatch (stored %08x, computed %08x)", crc, d->crc);
        e->size = total;
        d->state = ST_DONE;
        break;
    }
    }
    if (d->type != SPOOL_REC_DATA)
        d->last_type = d->type;
    if (d->state != ST_DONE)
        d->state = ST_RECHDR;
    return 0;
}

int spool_rec_dec_feed(struct spool_rec_dec *d, const void *p, size_t n, char *err,
                       size_t errlen)
{
    const uint8_t *b = p;
    while (n > 0) {
        switch (d->state) {
        case ST_FAILED:
            return rn_err(err, errlen, "decoder already failed");
        case ST_DONE:
            return FAIL("%zu trailing bytes after END", n);
        case ST_FILEHDR: {
            static const uint8_t want[SPOOL_REC_FILEHDR] = {'R', 'N', 'Q', '1',
                                                            SPOOL_REC_VERSION};
            if (*b != want[d->hdrlen])
                return d->hdrlen < 4 ? FAIL("bad magic")
                                     : FAIL("unsupported version %u", *b);
            d->crc = spool_rec_crc32(d->crc, b, 1);
            b++, n--, d->offset++;
            if (++d->hdrlen == SPOOL_REC_FILEHDR) {
                d->hdrlen = 0;
                d->state = ST_RECHDR;
            }
            break;
        }
        case ST_RECHDR: {
            size_t k = SPOOL_REC_HDR - d->hdrlen;
            if (k > n)
                k = n;
            memcpy(d->hdr + d->hdrlen, b, k);
            d->hdrlen += k;
            if (d->hdrlen < SPOOL_REC_HDR) {
                b += k, n -= k, d->offset += k;
                break;
            }
            /* Report errors at the record's first byte. */
            d->offset += k - SPOOL_REC_HDR;
            if (dec_record_start(d, err, errlen) < 0)
                return -1;
            d->offset += SPOOL_REC_HDR;
            b += k, n -= k;
            d->hdrlen = 0;
            d->state = ST_PAYLOAD;
            if (d->len == 0 && dec_record_end(d, err, errlen) < 0)
                return -1;
            break;
        }
        case ST_PAYLOAD: {
            size_t k = d->len - d->got;
            if (k > n)
                k = n;
            if (d->text)
                memcpy(d->text + d->got, b, k);
            else if (d->type != SPOOL_REC_DATA)
                memcpy(d->fixed + d->got, b, k);
            if (d->type != SPOOL_REC_END)
                d->crc = spool_rec_crc32(d->crc, b, k);
            if (d->type == SPOOL_REC_DATA) {
                d->total += k;
                if (d->on_data && d->on_data(d->arg, b, k) < 0)
                    return FAIL("data consumer failed");
            }
            d->got += k;
            b += k, n -= k, d->offset += k;
            if (d->got == d->len && dec_record_end(d, err, errlen) < 0)
                return -1;
            break;
        }
        }
    }
    return d->state == ST_FAILED ? -1 : 0;
}

int spool_rec_dec_finish(struct spool_rec_dec *d, char *err, size_t errlen)
{
    switch (d->state) {
    case ST_DONE:
        return 0;
    case ST_FAILED:
        return rn_err(err, errlen, "decoder already failed");
    case ST_FILEHDR:
        return FAIL("truncated file header (%zu bytes)", d->hdrlen);
    case ST_RECHDR:
        if (d->hdrlen == 0)
            return FAIL("missing END record");
        return FAIL("truncated record header (%zu bytes)", d->hdrlen);
    default:
        return FAIL("truncated %s record (%u payload bytes missing)", fields[d->type].name,
                    d->len - d->got);
    }
}
