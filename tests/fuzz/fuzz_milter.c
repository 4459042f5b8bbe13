/* libFuzzer target for the milter client's reply side (node/milter/milter_proto.h): the input
 * is what a filter sends back during one message's conversation, in one go and live (stages
 * given between packets, as the session gives them). Beyond "no crash, no
 * sanitizer report" it checks the contracts: the same verdict, text, header changes and
 * output whether the bytes arrive whole or one at a time (docs/style.md 10); texts are
 * printable ASCII within their bound; a verdict other than accept carries no header change;
 * the changes applied to a header block give CRLF-terminated fields only.
 *
 *   make fuzz   (tests/fuzz/run.sh builds it against the clang-built libraries)
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "directory/base/util.h"
#include "node/milter/milter_proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const rcpts[] = {"a@example.com"};
static const char content[] = "Subject: x\r\nX-A: 1\r\n\r\nbody\r\n";

static void check_text(const char *s, size_t cap)
{
    size_t n = strnlen(s, cap);
    if (n >= cap)
        abort();
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] > 0x7e)
            abort();
}

static struct milter_conv *conv(const struct milter_msg *m)
{
    struct milter_conv *c = milter_conv_new(m);
    return c;
}

/* A live conversation fed packet by packet (each packet whole, or byte by byte when
 * bytewise); between packets, while it is held, it gets the next stage (two recipients, then
 * the content), as the session gives them. Records what happened. */
struct live_trace { int action; bool done; size_t out; int refusals; char text[MILTER_TEXT_MAX]; };

static void live_feed(struct milter_conv *c, struct milter_msg *m, size_t *next,
                      struct live_trace *t)
{
    static const char *const rs[] = {"a@example.com", "b@example.com"};
    while (milter_conv_held(c) && *next <= 2) {
        const char *text;
        if (*next > 0 && milter_conv_rcpt_verdict(c, &text) != MILTER_ACCEPT) {
            t->refusals++;
            check_text(text, MILTER_TEXT_MAX);
        }
        if (*next < 2) {
            milter_conv_rcpt(c, rs[(*next)++]);
        } else {
            (*next)++;
            m->content = content;
            m->len = sizeof content - 1;
            m->queue_id = "Q";
            milter_conv_content(c);
        }
    }
}

static void live_run(const uint8_t *data, size_t size, bool bytewise, struct live_trace *t)
{
    struct milter_msg m = {.client_ip = "192.0.2.1", .helo = "h", .sender = "s@x",
                           .queue_id = NULL, .myhostname = "r"};
    struct milter_conv *c = milter_conv_new_live(&m);
    size_t next = 0;
    memset(t, 0, sizeof *t);
    for (size_t off = 0; off < size && !milter_conv_done(c); ) {
        size_t end = size;
        if (size - off >= 4) {
            uint64_t n = (uint64_t)data[off] << 24 | (uint64_t)data[off + 1] << 16 |
                         (uint64_t)data[off + 2] << 8 | data[off + 3];
            if (n + 4 < size - off)
                end = off + 4 + (size_t)n;
        }
        while (off < end && !milter_conv_done(c))
            off += milter_conv_input(c, (const char *)data + off, bytewise ? 1 : end - off);
        live_feed(c, &m, &next, t);
    }
    t->done = milter_conv_done(c);
    t->out = milter_conv_output(c)->len;
    if (t->done) {
        t->action = milter_conv_result(c)->action;
        rn_strlcpy(t->text, milter_conv_result(c)->text, sizeof t->text);
        check_text(t->text, sizeof t->text);
    }
    milter_conv_free(&c);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct live_trace la, lb;
    live_run(data, size, false, &la);
    live_run(data, size, true, &lb);
    if (la.done != lb.done || la.refusals != lb.refusals || la.out != lb.out ||
        (la.done && (la.action != lb.action || strcmp(la.text, lb.text) != 0)))
        abort();

    struct milter_msg m = {.client_ip = "192.0.2.1", .helo = "h", .sender = "s@x",
                           .rcpts = rcpts, .nrcpts = 1, .queue_id = "Q", .myhostname = "r",
                           .content = content, .len = sizeof content - 1};
    struct milter_conv *a = conv(&m), *b = conv(&m);
    milter_conv_input(a, (const char *)data, size);
    for (size_t i = 0; i < size && !milter_conv_done(b); i++)
        milter_conv_input(b, (const char *)data + i, 1);
    if (milter_conv_done(a) != milter_conv_done(b))
        abort();
    struct milter_out *oa = milter_conv_output(a), *ob = milter_conv_output(b);
    if (oa->len != ob->len || (oa->len && memcmp(oa->p, ob->p, oa->len) != 0))
        abort();
    struct milter_result *ra = milter_conv_result(a), *rb = milter_conv_result(b);
    if (milter_conv_done(a)) {
        if (ra->action != rb->action || strcmp(ra->text, rb->text) != 0 ||
            strcmp(ra->stage, rb->stage) != 0 || ra->nmods != rb->nmods ||
            ra->quarantine != rb->quarantine)
            abort();
        check_text(ra->text, sizeof ra->text);
        check_text(ra->reason, sizeof ra->reason);
        if (ra->action != MILTER_ACCEPT && ra->nmods)
            abort();
        if (ra->nmods > MILTER_MODS_MAX)
            abort();
        for (size_t i = 0; i < ra->nmods; i++)
            if (strcmp(ra->mods[i].name, rb->mods[i].name) != 0 ||
                strcmp(ra->mods[i].value, rb->mods[i].value) != 0)
                abort();
        size_t len;
        char *h = milter_apply_mods(content, 20, ra->mods, ra->nmods, &len);
        if (len < 2 && len != 0)
            abort();
        if (len && memcmp(h + len - 2, "\r\n", 2) != 0)
            abort();
        for (size_t i = 0; i < len; i++)   /* every LF is part of a CRLF */
            if (h[i] == '\n' && (i == 0 || h[i - 1] != '\r'))
                abort();
        free(h);
    }
    milter_conv_free(&a);
    milter_conv_free(&b);
    return 0;
}
