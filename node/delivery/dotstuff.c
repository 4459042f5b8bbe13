/* dotstuff: see dotstuff.h. A message the next hop would read differently from what we
 * received (a bare CR or LF, a line over 998 octets) is refused, never repaired: changing it
 * would break signatures and, for bare line ends, reopen SMTP smuggling (docs/reliability.md
 * T01). */
#include "node/delivery/dotstuff.h"
#include <stdint.h>
#include <string.h>
#include "directory/base/util.h"

void dotstuff_init(struct dotstuff *d, dotstuff_emit_fn *emit, void *arg)
{
    *d = (struct dotstuff){.emit = emit, .arg = arg};
}

static void out(struct dotstuff *d, const char *p, size_t n)
{
    if (n && d->emit)
        d->emit(d->arg, p, n);
}

static int fail(struct dotstuff *d, const char *why)
{
    d->bad = why;
    return -1;
}

int dotstuff_feed(struct dotstuff *d, const char *p, size_t n)
{
    if (d->bad)
        return -1;
    size_t run = 0;                 /* start of the bytes not yet emitted */
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        d->size++;
        if (d->cr) {
            if (c != '\n')
                return fail(d, "5.6.0 message has a bare CR");
            d->cr = false;
            d->line = 0;
            continue;
        }
        if (c == '\n')
            return fail(d, "5.6.0 message has a bare LF");
        if (c == '\r') {
            d->cr = true;
            continue;
        }
        if (d->line == 0 && c == '.') {
            out(d, p + run, i - run);
            out(d, ".", 1);         /* dot-stuffing, RFC 5321 4.5.2 */
            run = i;
        }
        if (++d->line > DOTSTUFF_LINE_MAX)
            return fail(d, "5.6.0 message has a line over 998 octets");
        d->eight_bit |= c >= 0x80;
        /* The rest of the line's text at once, when it stays within the limit (else byte by
         * byte, failing at the same byte). */
        size_t k = rn_text_end(p, i + 1, n);
        if (d->line + (k - i - 1) <= DOTSTUFF_LINE_MAX) {
            uint64_t any = 0;          /* the bytes ORed eight at a time: any top bit set */
            size_t j = i + 1;
            for (uint64_t w; j + 8 <= k; j += 8) {
                memcpy(&w, p + j, 8);
                any |= w;
            }
            for (; j < k; j++)
                any |= (unsigned char)p[j];
            d->eight_bit |= (any & 0x8080808080808080ull) != 0;
            d->line += k - i - 1;
            d->size += k - i - 1;
            i = k - 1;
        }
    }
    out(d, p + run, n - run);
    return 0;
}

int dotstuff_end(struct dotstuff *d)
{
    if (d->bad)
        return -1;
    if (d->cr)
        return fail(d, "5.6.0 message has a bare CR");
    if (d->line > 0)
        out(d, "\r\n", 2);
    out(d, ".\r\n", 3);
    return 0;
}
