/* smtp_data: the DATA content state machine. Only <CRLF>.<CRLF> ends the message (RFC 5321
 * §4.1.1.4); any CR not followed by LF, or LF not preceded by CR, is refused outright because
 * other MTAs disagree about such line ends and that disagreement is SMTP smuggling
 * (docs/reliability.md T01). Dot-stuffing is undone per §4.5.2: a leading period is dropped.
 * Limits never stop reading: the message is read to its end and then refused (discard mode),
 * so the reply stays in step with the client. */
#include "node/smtp/smtp_data.h"

#include <string.h>
#include "directory/base/util.h"

enum {
    SD_BOL = 0,  /* at the beginning of a line */
    SD_TEXT,     /* inside a line */
    SD_CR,       /* saw CR inside a line, need LF */
    SD_DOT,      /* saw "." at the beginning of a line */
    SD_DOT_CR,   /* saw ".\r" at the beginning of a line, need LF to end */
};

void smtp_data_init(struct smtp_data *d, size_t max_line, uint64_t max_size,
                    smtp_data_emit_fn *emit, void *arg)
{
    *d = (struct smtp_data){.state = SD_BOL, .max_line = max_line, .max_size = max_size,
                            .emit = emit, .arg = arg};
}

static void smtp_data_out(struct smtp_data *d, const char *buf, size_t len)
{
    if (len == 0)
        return;
    uint64_t before = d->size;
    d->size += len;
    /* emit exactly the bytes under the limit so split feeds agree with whole ones */
    if (d->max_size && d->size > d->max_size && !d->too_big) {
        if (!d->discard && d->emit && before < d->max_size)
            d->emit(d->arg, buf, (size_t)(d->max_size - before));
        d->too_big = 1;
        d->discard = 1;
        return;
    }
    if (!d->discard && d->emit)
        d->emit(d->arg, buf, len);
}

static void smtp_data_count(struct smtp_data *d)
{
    d->line_len++;
    if (d->max_line && d->line_len > d->max_line && !d->line_too_long) {
        d->line_too_long = 1;
        d->discard = 1;
    }
}

enum smtp_data_rc smtp_data_feed(struct smtp_data *d, const char *in, size_t len,
                                 size_t *consumed)
{
    size_t i = 0;
    size_t run = 0; /* start of a pending run of plain text to emit in one piece */
    enum smtp_data_rc rc = SMTP_DATA_MORE;
    while (i < len) {
        char c = in[i];
        switch (d->state) {
        case SD_BOL:
        case SD_TEXT:
            if (d->state == SD_BOL && c == '.') {
                smtp_data_out(d, in + run, i - run);
                smtp_data_count(d);
                d->state = SD_DOT;
                run = ++i;
                continue;
            }
            if (c == '\n') {
                rc = SMTP_DATA_BARE;
                goto out;
            }
            if (c == '\r') {
                smtp_data_out(d, in + run, i - run);
                smtp_data_count(d);
                d->state = SD_CR;
                run = ++i;
                continue;
            }
            if (c != '\n' && c != '\r') {
                /* A run of text: counted at once, unless the line limit falls inside it
                 * (then byte by byte below, so the bytes emitted are the same). */
                size_t k = rn_text_end(in, i, len);
                if (!d->max_line || d->line_too_long || d->line_len + (k - i) <= d->max_line) {
                    d->line_len += k - i;
                    d->state = SD_TEXT;
                    i = k;
                    continue;
                }
            }
            if (d->max_line && d->line_len + 1 > d->max_line && !d->line_too_long) {
                /* flush what precedes the crossing byte, as a split feed would have */
                smtp_data_out(d, in + run, i - run);
                run = i;
            }
            smtp_data_count(d);
            d->state = SD_TEXT;
            i++;
            continue;
        case SD_CR:
            if (c != '\n') {
                rc = SMTP_DATA_BARE;
                goto out;
            }
            smtp_data_count(d);
            smtp_data_out(d, "\r\n", 2);
            d->line_len = 0;
            d->state = SD_BOL;
            run = ++i;
            continue;
        case SD_DOT:
            if (c == '\r') {
                smtp_data_count(d);
                d->state = SD_DOT_CR;
                run = ++i;
                continue;
            }
            if (c == '\n') {
                rc = SMTP_DATA_BARE;
                goto out;
            }
            /* the stuffing dot is dropped; this byte starts the text */
            d->state = SD_TEXT;
            run = i;
            continue;
        case SD_DOT_CR:
            if (c != '\n') {
                rc = SMTP_DATA_BARE;
                goto out;
            }
            i++;
            run = i;
            d->line_len = 0;
            d->state = SD_BOL;
            rc = SMTP_DATA_END;
            goto out;
        }
    }
    if (d->state == SD_TEXT || d->state == SD_BOL)
        smtp_data_out(d, in + run, i - run);
out:
    if (rc == SMTP_DATA_BARE)
        d->state = SD_BOL;
    *consumed = i;
    return rc;
}

int smtp_data_line_check(size_t *line_len, size_t max_line, const char *buf, size_t len)
{
    int over = 0;
    const char *p = buf, *end = buf + len;
    while (p < end) {
        const char *lf = memchr(p, '\n', (size_t)(end - p));
        size_t n = lf ? (size_t)(lf - p) + 1 : (size_t)(end - p);
        *line_len += n;
        if (max_line && *line_len > max_line)
            over = 1;
        if (lf)
            *line_len = 0;
        p += n;
    }
    return over;
}

int smtp_data_bare_check(int *prev_cr, const char *buf, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (*prev_cr && buf[i] != '\n')
            return 1;
        if (!*prev_cr && buf[i] == '\n')
            return 1;
        *prev_cr = buf[i] == '\r';
    }
    return 0;
}
