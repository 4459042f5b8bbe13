/* milter_conv: one message's conversation with one filter (milter_proto.h), as a pure state
 * machine. Steps follow Sendmail's order (negotiate, connect, HELO, MAIL, RCPT each, DATA,
 * headers each, end of headers, body chunks, end of message); a step the filter asked to
 * skip (SMFIP_NO*) is not sent, one it asked not to answer (SMFIP_NR_*) is not waited for.
 * The filter's first non-continue answer is the verdict, at the stage it came; at end of
 * message the header changes and the quarantine request it sends before its verdict are
 * kept. A reply out of turn, an action not negotiated, a malformed string: MILTER_FAILED. */
#include "node/milter/milter_proto.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "directory/base/util.h"

enum step { ST_NEG, ST_CONNECT, ST_HELO, ST_MAIL, ST_RCPT, ST_DATA, ST_HEADER, ST_EOH,
            ST_BODY, ST_EOM, ST_DONE };
static const char *const step_names[] = {"negotiate", "connect", "helo", "mail", "rcpt",
                                         "data", "header", "eoh", "body", "eom", "eom"};

struct milter_conv {
    const struct milter_msg *m;     /* borrowed */
    struct milter_out out;
    struct milter_rd rd;
    uint32_t proto, actions;        /* negotiated */
    enum step step;                 /* the step sent last (or to send next when not waiting) */
    size_t idx;                     /* recipient or header field being sent */
    size_t body_off, hdr_len;       /* body position; header block length (empty line excluded) */
    size_t *fields; size_t nfields; /* owned: header field offsets in m->content */
    bool waiting, done, progress, skip_body;
    bool live;                      /* stages come one by one (milter_conv_rcpt, _content) */
    bool held;                      /* live: everything available was sent and answered */
    bool have_content;              /* live: m->content is set */
    char *pending;                  /* owned: live, the recipient to ask about next */
    enum milter_action rcpt_action; /* live: the answer about the last recipient */
    char rcpt_text[MILTER_TEXT_MAX];
    struct milter_result res;
};

static void conv_finish(struct milter_conv *c, enum milter_action a, const char *text)
{
    if (c->done)
        return;
    c->done = true;
    c->waiting = false;
    c->res.action = a;
    c->res.stage = step_names[c->step];
    if (text)
        rn_strlcpy(c->res.text, text, sizeof c->res.text);
    if (a != MILTER_FAILED)
        milter_out_packet(&c->out, 'Q', NULL, 0);
    if (a != MILTER_ACCEPT)
        milter_result_clear(&c->res);   /* changes only go with an accepted message */
}

void milter_conv_fail(struct milter_conv *c, const char *why)
{
    conv_finish(c, MILTER_FAILED, why);
}

/* The header fields of the content: where the block ends and each field starts. */
static void conv_scan_content(struct milter_conv *c)
{
    const struct milter_msg *m = c->m;
    /* The header block ends at the empty line (or is the whole content). */
    const char *p = m->content;
    size_t n = m->len;
    c->hdr_len = n;
    c->body_off = n;
    if (n >= 2 && p[0] == '\r' && p[1] == '\n') {
        c->hdr_len = 0;
        c->body_off = 2;
    } else {
        for (size_t i = 0; i + 4 <= n; i++)
            if (memcmp(p + i, "\r\n\r\n", 4) == 0) {
                c->hdr_len = i + 2;
                c->body_off = i + 4;
                break;
            }
    }
    size_t max = c->hdr_len / 2 + 1;
    c->fields = xmalloc(max * sizeof *c->fields);
    for (size_t i = 0; i < c->hdr_len; ) {
        if (p[i] != ' ' && p[i] != '\t' && c->nfields < max)
            c->fields[c->nfields++] = i;
        const char *nl = memchr(p + i, '\n', c->hdr_len - i);
        i = nl ? (size_t)(nl - p) + 1 : c->hdr_len;
    }
}

static struct milter_conv *conv_start(const struct milter_msg *m, bool live)
{
    struct milter_conv *c = xcalloc(1, sizeof *c);
    c->m = m;
    c->live = live;
    c->have_content = !live;
    if (!live)
        conv_scan_content(c);
    /* The first step: offer what this MTA can do (version, actions, protocol flags). */
    uint32_t neg[3] = {htonl(MILTER_VERSION), htonl(MILTER_OFFER_ACTIONS),
                       htonl(MILTER_OFFER_PROTO)};
    milter_out_packet(&c->out, 'O', neg, sizeof neg);
    c->step = ST_NEG;
    c->waiting = true;
    return c;
}

struct milter_conv *milter_conv_new(const struct milter_msg *m)
{
    return conv_start(m, false);
}

struct milter_conv *milter_conv_new_live(const struct milter_msg *m)
{
    return conv_start(m, true);
}

void milter_conv_free(struct milter_conv **cp)
{
    struct milter_conv *c = *cp;
    if (!c)
        return;
    milter_out_clear(&c->out);
    milter_rd_clear(&c->rd);
    milter_result_clear(&c->res);
    free(c->fields);
    free(c->pending);
    free(c);
    *cp = NULL;
}

struct milter_out *milter_conv_output(struct milter_conv *c) { return &c->out; }
bool milter_conv_waiting(const struct milter_conv *c) { return c->waiting && !c->done; }
bool milter_conv_done(const struct milter_conv *c) { return c->done; }
bool milter_conv_held(const struct milter_conv *c) { return c->held && !c->done; }
struct milter_result *milter_conv_result(struct milter_conv *c) { return &c->res; }

bool milter_conv_progress(struct milter_conv *c)
{
    bool p = c->progress;
    c->progress = false;
    return p;
}

/* Packet data made of NUL-terminated strings. */
struct sbuf { char b[1024]; size_t len; };
static void sb_str(struct sbuf *s, const char *v)
{
    size_t n = strlen(v);
    if (s->len + n + 1 > sizeof s->b)
        n = sizeof s->b - s->len - 1;
    memcpy(s->b + s->len, v, n);
    s->len += n;
    s->b[s->len++] = '\0';
}

static void send_macros(struct milter_conv *c, char stage, const char *k1, const char *v1,
                        const char *k2, const char *v2)
{
    struct sbuf s = {.len = 0};
    s.b[s.len++] = stage;
    if (v1) { sb_str(&s, k1); sb_str(&s, v1); }
    if (v2) { sb_str(&s, k2); sb_str(&s, v2); }
    milter_out_packet(&c->out, 'D', s.b, s.len);
}

static void send_connect(struct milter_conv *c)
{
    const struct milter_msg *m = c->m;
    send_macros(c, 'C', "j", m->myhostname, "{daemon_name}", "relaynode");
    struct sbuf s = {.len = 0};
    char host[80];
    snprintf(host, sizeof host, "[%s]", m->client_ip);
    sb_str(&s, host);
    s.b[s.len++] = m->client_v6 ? '6' : '4';
    uint16_t port = htons(m->client_port);
    memcpy(s.b + s.len, &port, 2);
    s.len += 2;
    sb_str(&s, m->client_ip);
    milter_out_packet(&c->out, 'C', s.b, s.len);
}

static void send_path(struct milter_conv *c, char cmd, const char *addr)
{
    char path[600];
    snprintf(path, sizeof path, "<%s>", addr);
    milter_out_packet(&c->out, cmd, path, strlen(path) + 1);
}

/* One header field as SMFIC_HEADER: name, value without the one space after the colon and
 * without its final CRLF; folded lines keep their line break as "\n" (as Sendmail sends). */
static void send_header(struct milter_conv *c, size_t i)
{
    const char *p = c->m->content + c->fields[i];
    size_t end = i + 1 < c->nfields ? c->fields[i + 1] : c->hdr_len;
    size_t flen = end - c->fields[i];
    char *buf = xmalloc(flen + 2);
    size_t n = 0, k = 0;
    while (k < flen && p[k] != ':' && p[k] != '\r' && p[k] != '\n')
        buf[n++] = p[k++];
    buf[n++] = '\0';
    if (k < flen && p[k] == ':')
        k++;
    if (k < flen && p[k] == ' ')
        k++;
    size_t vend = flen;
    if (vend >= 2 && p[vend - 2] == '\r' && p[vend - 1] == '\n')
        vend -= 2;
    for (; k < vend; k++)
        if (!(p[k] == '\r' && k + 1 < vend && p[k + 1] == '\n'))
            buf[n++] = p[k];
    buf[n++] = '\0';
    milter_out_packet(&c->out, 'L', buf, n);
    free(buf);
}

/* Send the steps due, up to the first that waits for a reply (or the end). */
static void conv_advance(struct milter_conv *c)
{
    const struct milter_msg *m = c->m;
    while (!c->done && !c->waiting) {
        uint32_t nr = 0;
        switch (c->step) {
        case ST_NEG:
            c->step = ST_CONNECT;
            if (c->proto & SMFIP_NOCONNECT) continue;
            send_connect(c);
            nr = SMFIP_NR_CONN;
            break;
        case ST_CONNECT:
            c->step = ST_HELO;
            if (c->proto & SMFIP_NOHELO) continue;
            milter_out_packet(&c->out, 'H', m->helo, strlen(m->helo) + 1);
            nr = SMFIP_NR_HELO;
            break;
        case ST_HELO:
            c->step = ST_MAIL;
            if (c->proto & SMFIP_NOMAIL) continue;
            send_macros(c, 'M', "i", m->queue_id, "{auth_authen}", m->auth_user);
            send_path(c, 'M', m->sender);
            nr = SMFIP_NR_MAIL;
            break;
        case ST_MAIL:
        case ST_RCPT:
            if (c->live) {
                if (c->pending && !(c->proto & SMFIP_NORCPT)) {
                    c->step = ST_RCPT;
                    send_path(c, 'R', c->pending);
                    free(c->pending);
                    c->pending = NULL;
                    nr = SMFIP_NR_RCPT;
                    break;
                }
                free(c->pending);
                c->pending = NULL;
                if (!c->have_content) {
                    c->held = true;     /* the caller's next recipient, or the content */
                    return;
                }
                c->idx = m->nrcpts;
            } else {
                c->idx = c->step == ST_MAIL ? 0 : c->idx + 1;
            }
            c->step = ST_RCPT;
            if ((c->proto & SMFIP_NORCPT) || c->idx >= m->nrcpts) {
                c->step = ST_DATA;
                if (c->proto & SMFIP_NODATA) { c->step = ST_DATA; c->idx = SIZE_MAX; continue; }
                milter_out_packet(&c->out, 'T', NULL, 0);
                nr = SMFIP_NR_DATA;
                break;
            }
            send_path(c, 'R', m->rcpts[c->idx]);
            nr = SMFIP_NR_RCPT;
            break;
        case ST_DONE:
            return;
        case ST_DATA:
        case ST_HEADER:
            c->idx = c->step == ST_DATA ? 0 : c->idx + 1;
            c->step = ST_HEADER;
            if ((c->proto & SMFIP_NOHDRS) || c->idx >= c->nfields) {
                c->step = ST_EOH;
                if (c->proto & SMFIP_NOEOH) continue;
                milter_out_packet(&c->out, 'N', NULL, 0);
                nr = SMFIP_NR_EOH;
                break;
            }
            send_header(c, c->idx);
            nr = SMFIP_NR_HDR;
            break;
        case ST_EOH:
        case ST_BODY:
            c->step = ST_BODY;
            if ((c->proto & SMFIP_NOBODY) || c->skip_body || c->body_off >= m->len) {
                c->step = ST_EOM;
                if (c->live)   /* the queue id exists only now (Sendmail sends it here too) */
                    send_macros(c, 'E', "i", m->queue_id, NULL, NULL);
                milter_out_packet(&c->out, 'E', NULL, 0);
                c->waiting = true;
                continue;
            }
            size_t n = m->len - c->body_off;
            if (n > MILTER_CHUNK)
                n = MILTER_CHUNK;
            milter_out_packet(&c->out, 'B', m->content + c->body_off, n);
            c->body_off += n;
            nr = SMFIP_NR_BODY;
            break;
        case ST_EOM:
            return;
        }
        if (!(c->proto & nr))
            c->waiting = true;
    }
}

/* Take one NUL-terminated string from *p (left bytes): -1 if there is no NUL. */
static int take_str(const char **p, size_t *left, const char **s)
{
    const char *z = memchr(*p, '\0', *left);
    if (!z)
        return -1;
    *s = *p;
    *left -= (size_t)(z - *p) + 1;
    *p = z + 1;
    return 0;
}

static int take_u32(const char **p, size_t *left, uint32_t *v)
{
    if (*left < 4)
        return -1;
    uint32_t n;
    memcpy(&n, *p, 4);
    *v = ntohl(n);
    *p += 4;
    *left -= 4;
    return 0;
}

/* A header name: 1..256 printable octets, no ':'. */
static bool name_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 256)
        return false;
    for (size_t i = 0; i < n; i++)
        if (s[i] < 33 || s[i] > 126 || s[i] == ':')
            return false;
    return true;
}

/* A value as it goes into the message: line breaks ("\n" or "\r\n") become CRLF and must be
 * followed by a space or tab (a fold), no other control octets but tab. NULL if bad. */
static char *value_norm(const char *v)
{
    size_t n = strlen(v);
    char *o = xmalloc(2 * n + 1), *q = o;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)v[i];
        if (ch == '\r' && v[i + 1] == '\n')
            continue;
        if (ch == '\n') {
            if (v[i + 1] != ' ' && v[i + 1] != '\t')
                goto bad;
            *q++ = '\r';
            *q++ = '\n';
            continue;
        }
        if ((ch < 32 && ch != '\t') || ch == 127)
            goto bad;
        *q++ = (char)ch;
    }
    *q = '\0';
    return o;
bad:
    free(o);
    return NULL;
}

/* Printable ASCII of s (up to a line end) into out. */
static void text_clean(const char *s, char *out, size_t cap)
{
    size_t n = 0;
    for (; *s && *s != '\r' && *s != '\n' && n + 1 < cap; s++)
        out[n++] = (*s >= 32 && *s < 127) ? *s : '?';
    out[n] = '\0';
}

/* SMFIR_REPLYCODE: "4xx"/"5xx" [x.y.z] text, into the action and our text; -1 if malformed. */
static int replycode_parse(const char *d, size_t len, enum milter_action *a, char *text,
                           size_t cap)
{
    const char *s;
    if (take_str(&d, &len, &s) < 0 || strlen(s) < 3 || (s[0] != '4' && s[0] != '5') ||
        s[1] < '0' || s[1] > '9' || s[2] < '0' || s[2] > '9' ||
        (s[3] != '\0' && s[3] != ' ' && s[3] != '-'))
        return -1;
    const char *t = s + 3;
    while (*t == ' ' || *t == '-')
        t++;
    /* Skip an enhanced status code (x.y.z) of the filter's: ours is fixed (5.7.1 / 4.7.1). */
    if ((t[0] == '4' || t[0] == '5') && t[1] == '.') {
        const char *sp = strchr(t, ' ');
        t = sp ? sp + 1 : t + strlen(t);
    }
    text_clean(t, text, cap);
    *a = s[0] == '4' ? MILTER_TEMPFAIL : MILTER_REJECT;
    return 0;
}

static void on_replycode(struct milter_conv *c, const char *d, size_t len)
{
    char text[MILTER_TEXT_MAX];
    enum milter_action a;
    if (replycode_parse(d, len, &a, text, sizeof text) < 0)
        conv_finish(c, MILTER_FAILED, "malformed SMFIR_REPLYCODE");
    else
        conv_finish(c, a, text);
}

/* A modification at end of message. */
static void on_mod(struct milter_conv *c, char cmd, const char *d, size_t len)
{
    uint32_t need = cmd == 'q' ? SMFIF_QUARANTINE : cmd == 'm' ? SMFIF_CHGHDRS : SMFIF_ADDHDRS;
    if (c->step != ST_EOM || !(c->actions & need)) {
        conv_finish(c, MILTER_FAILED, "a modification not negotiated or before end of message");
        return;
    }
    const char *name, *value;
    if (cmd == 'q') {
        if (take_str(&d, &len, &value) < 0) {
            conv_finish(c, MILTER_FAILED, "malformed SMFIR_QUARANTINE");
            return;
        }
        c->res.quarantine = true;
        text_clean(value, c->res.reason, sizeof c->res.reason);
        return;
    }
    uint32_t index = 0;
    if ((cmd != 'h' && take_u32(&d, &len, &index) < 0) || take_str(&d, &len, &name) < 0 ||
        take_str(&d, &len, &value) < 0 || !name_ok(name) || c->res.nmods >= MILTER_MODS_MAX) {
        conv_finish(c, MILTER_FAILED, "malformed or too many header changes");
        return;
    }
    char *v = value_norm(value);
    if (!v) {
        conv_finish(c, MILTER_FAILED, "a header value with control characters or a bad fold");
        return;
    }
    c->res.mods = xrealloc(c->res.mods, (c->res.nmods + 1) * sizeof *c->res.mods);
    c->res.mods[c->res.nmods++] = (struct milter_mod){
        .op = cmd == 'h' ? MILTER_HDR_ADD : cmd == 'i' ? MILTER_HDR_INSERT : MILTER_HDR_CHANGE,
        .index = index, .name = xstrdup(name), .value = v};
}

static void on_negotiate(struct milter_conv *c, const struct milter_packet *p)
{
    const char *d = p->data;
    size_t len = p->len;
    uint32_t version, actions, proto;
    if (p->cmd != 'O' || take_u32(&d, &len, &version) < 0 || take_u32(&d, &len, &actions) < 0 ||
        take_u32(&d, &len, &proto) < 0) {
        conv_finish(c, MILTER_FAILED, "no valid SMFIC_OPTNEG reply");
        return;
    }
    if (version < 2 || version > MILTER_VERSION) {
        conv_finish(c, MILTER_FAILED, "unsupported milter protocol version");
        return;
    }
    /* Steps the MTA did not offer cannot be honoured: refuse. Actions beyond the offer are
     * masked (filters such as rspamd ask for every action they might use); using one later
     * ends the conversation as a failure. */
    if (proto & ~(uint32_t)MILTER_OFFER_PROTO) {
        conv_finish(c, MILTER_FAILED, "the filter asks for protocol steps not offered");
        return;
    }
    c->actions = actions & MILTER_OFFER_ACTIONS;
    c->proto = proto;
    c->waiting = false;
    conv_advance(c);
}

static int replycode_parse(const char *d, size_t len, enum milter_action *a, char *text,
                           size_t cap);

/* Live mode: a refusal of one recipient ends nothing (Sendmail's semantics): the caller
 * reads it with milter_conv_rcpt_verdict and the conversation goes on without it. */
static bool on_rcpt_refusal(struct milter_conv *c, const struct milter_packet *p)
{
    if (!c->live || c->step != ST_RCPT || (p->cmd != 'r' && p->cmd != 't' && p->cmd != 'y'))
        return false;
    if (p->cmd == 'y') {
        if (replycode_parse(p->data, p->len, &c->rcpt_action, c->rcpt_text,
                            sizeof c->rcpt_text) < 0) {
            conv_finish(c, MILTER_FAILED, "malformed SMFIR_REPLYCODE");
            return true;
        }
    } else {
        c->rcpt_action = p->cmd == 'r' ? MILTER_REJECT : MILTER_TEMPFAIL;
        c->rcpt_text[0] = '\0';
    }
    c->waiting = false;
    conv_advance(c);
    return true;
}

static void on_packet(struct milter_conv *c, const struct milter_packet *p)
{
    if (!c->waiting) {
        conv_finish(c, MILTER_FAILED, "a reply nobody asked for");
        return;
    }
    if (c->step == ST_NEG) {
        on_negotiate(c, p);
        return;
    }
    if (on_rcpt_refusal(c, p))
        return;
    switch (p->cmd) {
    case 'p': c->progress = true; return;
    case 'c':
        if (c->step == ST_EOM) {
            conv_finish(c, MILTER_ACCEPT, NULL);
            return;
        }
        c->waiting = false;
        conv_advance(c);
        return;
    case 's':
        if (c->step != ST_BODY || !(c->proto & SMFIP_SKIP)) {
            conv_finish(c, MILTER_FAILED, "SMFIR_SKIP out of turn");
            return;
        }
        c->skip_body = true;
        c->waiting = false;
        conv_advance(c);
        return;
    case 'a': conv_finish(c, MILTER_ACCEPT, NULL); return;
    case 'r': conv_finish(c, MILTER_REJECT, NULL); return;
    case 't': conv_finish(c, MILTER_TEMPFAIL, NULL); return;
    case 'd': conv_finish(c, MILTER_DISCARD, NULL); return;
    case 'y': on_replycode(c, p->data, p->len); return;
    case 'h': case 'i': case 'm': case 'q': on_mod(c, p->cmd, p->data, p->len); return;
    default: {
        char why[64];
        snprintf(why, sizeof why, "unknown or unsupported reply 0x%02x",
                 (unsigned)(unsigned char)p->cmd);
        conv_finish(c, MILTER_FAILED, why);
    }
    }
}

size_t milter_conv_input(struct milter_conv *c, const char *buf, size_t len)
{
    size_t off = 0;
    while (!c->done && off < len) {
        size_t used = 0;
        struct milter_packet p;
        char err[128];
        int r = milter_rd_feed(&c->rd, buf + off, len - off, &used, &p, err, sizeof err);
        off += used;
        if (r < 0)
            conv_finish(c, MILTER_FAILED, err);
        else if (r == 1)
            on_packet(c, &p);
    }
    return off;
}

void milter_conv_rcpt(struct milter_conv *c, const char *addr)
{
    if (c->done || !c->live)
        return;
    free(c->pending);
    c->pending = xstrdup(addr);
    c->rcpt_action = MILTER_ACCEPT;
    c->rcpt_text[0] = '\0';
    if (c->held) {
        c->held = false;
        conv_advance(c);
    }
}

enum milter_action milter_conv_rcpt_verdict(const struct milter_conv *c, const char **text)
{
    *text = c->rcpt_text;
    return c->rcpt_action;
}

void milter_conv_content(struct milter_conv *c)
{
    if (c->done || !c->live || c->have_content)
        return;
    c->have_content = true;
    conv_scan_content(c);
    if (c->held) {
        c->held = false;
        conv_advance(c);
    }
}
