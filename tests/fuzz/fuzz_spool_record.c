/* libFuzzer target for the spool record decoder (docs/style.md rule 10). Beyond "no crash, no
 * sanitizer report" it checks the contracts: the decoder gives the same verdict, envelope and
 * data whether the input arrives whole or in pieces split by the input's first byte, and an
 * accepted file is canonical: re-encoding its envelope and DATA records (one on_data call per
 * record when fed whole) reproduces the input byte for byte.
 *
 *   clang -std=gnu11 -g -O1 -I. -D_GNU_SOURCE -fsanitize=fuzzer,address,undefined \
 *     -o /tmp/fuzz_spool_record tests/fuzz/fuzz_spool_record.c node/spool/spool_record.c \
 *     node/spool/spool_envelope.c directory/base/util.c -lpthread
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "directory/base/util.h"
#include "node/spool/spool_record.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct out {
    uint8_t *p;
    size_t n, cap;
    size_t calls;
};

static int out_sink(void *arg, const void *p, size_t n)
{
    struct out *o = arg;
    if (o->n + n > o->cap) {
        o->cap = (o->n + n) * 2;
        o->p = xrealloc(o->p, o->cap);
    }
    memcpy(o->p + o->n, p, n);
    o->n += n;
    return 0;
}

/* Data pieces, re-framed as DATA records as they come (whole feed: one piece per record). */
static int out_data(void *arg, const void *p, size_t n)
{
    struct out *o = arg;
    uint8_t h[SPOOL_REC_HDR];
    spool_rec_put_header(h, SPOOL_REC_DATA, (uint32_t)n);
    out_sink(o, h, sizeof h);
    out_sink(o, p, n);
    o->calls++;
    return 0;
}

static int decode(const uint8_t *data, size_t size, size_t step, struct spool_entry *e,
                  struct out *o)
{
    struct spool_rec_dec d;
    char err[RN_ERRLEN];
    memset(e, 0, sizeof *e);
    spool_rec_dec_init(&d, e, out_data, o);
    for (size_t off = 0; off < size;) {
        size_t k = step && size - off > step ? step : size - off;
        if (spool_rec_dec_feed(&d, data + off, k, err, sizeof err) < 0) {
            spool_rec_dec_finish(&d, err, sizeof err);
            return -1;
        }
        off += k;
    }
    return spool_rec_dec_finish(&d, err, sizeof err);
}

static int same_str(const char *a, const char *b)
{
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 1 << 20)
        return 0;
    struct spool_entry a, b;
    struct out da = {0}, db = {0};
    int ra = decode(data, size, 0, &a, &da);
    int rb = decode(data, size, size ? (size_t)data[0] % 17 + 1 : 1, &b, &db);
    if (ra != rb)
        abort();
    if (ra == 0) {
        if (!same_str(a.sender, b.sender) || a.nrcpts != b.nrcpts || a.size != b.size ||
            !same_str(a.helo, b.helo) || !same_str(a.auth_user, b.auth_user) ||
            a.received != b.received || a.antispam_bypass != b.antispam_bypass)
            abort();
        for (size_t i = 0; i < a.nrcpts; i++)
            if (!same_str(a.rcpts[i], b.rcpts[i]))
                abort();
        /* Re-encode: envelope, the same DATA records, END. */
        struct spool_envelope env = {a.sender, (const char *const *)a.rcpts, a.nrcpts,
                                     a.client_ip, a.helo, a.connector, a.auth_user, a.auth_as,
                                     a.antispam_bypass, a.received};
        struct out re = {0};
        char err[RN_ERRLEN];
        if (spool_rec_encode_envelope(&env, out_sink, &re, err, sizeof err) < 0)
            abort();                 /* whatever decodes must be encodable */
        out_sink(&re, da.p, da.n);
        uint8_t end[SPOOL_REC_HDR + SPOOL_REC_END_LEN];
        spool_rec_put_end(end, a.size, spool_rec_crc32(0, re.p, re.n));
        out_sink(&re, end, sizeof end);
        if (re.n != size || memcmp(re.p, data, size) != 0)
            abort();
        free(re.p);
        spool_entry_clear(&a);
        spool_entry_clear(&b);
    }
    free(da.p);
    free(db.p);
    return 0;
}
