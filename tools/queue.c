/* queue: `relayctl queue list|show|retry|remove`, the operator's view of a node's spool
 * (issue #5). It goes through node/spool/spool.h, the code the node itself uses, so it works with
 * or without a running node: beside a node it is a second opener (reads, never cleans);
 * with no node it owns the spool while it runs. retry rewrites the delivery state with the
 * next attempt set to now and sends SIGUSR1 to the process holding the spool's lock, which
 * re-reads the state of its waiting messages (queue_rescan). Everything a client chose
 * (envelope, headers) is printed with control bytes and invalid UTF-8 shown as \xNN, so a
 * message cannot write to the operator's terminal. Exit codes: 0 ok; 1 an id was unknown or
 * a message could not be changed (the others were still handled); 2 usage or spool error. */
#include "tools/relayctl.h"
#include "directory/bootstrap.h"
#include "directory/base/util.h"
#include "node/spool/spool.h"
#include "tools/nodeproc.h"
#include "tools/output.h"
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define HEADERS_MAX (64u * 1024u)     /* show reads at most this much of a message */

static const char help_text[] =
    "usage: relayctl queue list [-c CONF | --spool DIR] [--json]\n"
    "       relayctl queue show ID... [-c CONF | --spool DIR] [--json]\n"
    "       relayctl queue retry [ID...] [-c CONF | --spool DIR]\n"
    "       relayctl queue remove ID... [-c CONF | --spool DIR]\n\n"
    "The messages waiting in a node's spool and their delivery state. An ID may be given\n"
    "as the node's 250 reply names it (<ID@host>).\n"
    "  list    one row per message, by id: received (UTC), age, sender, recipients and how\n"
    "          many are pending, done and failed, attempts, next attempt, size, connector\n"
    "  show    the envelope with each recipient's status and last reply, the session facts\n"
    "          (client, HELO, connector, AUTH user, AuthAs, anti-spam bypass) and the\n"
    "          message headers (control bytes and invalid UTF-8 shown as \\xNN)\n"
    "  retry   make the messages due now (no ID: every deferred message), keeping each\n"
    "          recipient's status and the attempt count, then send SIGUSR1 to the node that\n"
    "          holds the spool so it looks again. A retry that races a delivery attempt can\n"
    "          cause a duplicate, never a loss.\n"
    "  remove  delete messages: no delivery, no DSN. A message the node is delivering at\n"
    "          that moment may still be delivered once.\n\n"
    "options:\n"
    "  -c, --config FILE   bootstrap file whose spool_dir is used (default:\n"
    "                      $RELAYNODE_CONFIG, else the built-in /var/spool/relaynode)\n"
    "  --spool DIR         the spool directory itself\n"
    "  --json              print JSON instead of text (list, show)\n";

struct qctx {
    const char *sub;                  /* "list", ... */
    char verb[24];                    /* "queue list", ... for messages */
    const char *config, *spool_opt;
    bool json;
    char *dir;                        /* owned */
    struct spool *sp;                 /* owned */
    time_t now;
};

static int qfail(const struct qctx *q, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int qfail(const struct qctx *q, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    output_verror(q->verb, fmt, ap);
    va_end(ap);
    return code;
}

/* Call fn for each message named in ids[0..nids), in order. An unknown id is reported and
 * skipped. 1 when an id was unknown or fn returned non-zero for one, else 0. */
static int each_id(struct qctx *q, char **ids, int nids,
                   int (*fn)(struct qctx *q, const struct spool_entry *e, void *arg), void *arg)
{
    int rc = 0;
    for (int i = 0; i < nids; i++) {
        struct spool_entry e;
        char err[RN_ERRLEN];
        if (spool_read(q->sp, ids[i], &e, err, sizeof err) < 0) {
            rc = qfail(q, 1, "no message %s in %s (%s)", ids[i], q->dir, err);
            continue;
        }
        if (fn(q, &e, arg) != 0)
            rc = 1;
        spool_entry_clear(&e);
    }
    return rc;
}

/* ---- formatting ---- */

/* Length of the valid UTF-8 sequence at p (of at most n bytes), 0 if there is none. */
static size_t utf8_len(const unsigned char *p, size_t n)
{
    size_t len;
    unsigned char lo = 0x80, hi = 0xBF;
    if (p[0] >= 0xC2 && p[0] <= 0xDF)
        len = 2;
    else if (p[0] >= 0xE0 && p[0] <= 0xEF)
        len = 3, lo = p[0] == 0xE0 ? 0xA0 : 0x80, hi = p[0] == 0xED ? 0x9F : 0xBF;
    else if (p[0] >= 0xF0 && p[0] <= 0xF4)
        len = 4, lo = p[0] == 0xF0 ? 0x90 : 0x80, hi = p[0] == 0xF4 ? 0x8F : 0xBF;
    else
        return 0;
    if (n < len || p[1] < lo || p[1] > hi)
        return 0;
    for (size_t i = 2; i < len; i++)
        if ((p[i] & 0xC0) != 0x80)
            return 0;
    return len;
}

/* p[0..n) made safe to print: printable ASCII and valid UTF-8 kept, every other byte as
 * \xNN. Caller frees. */
static char *escape_n(const char *p, size_t n)
{
    char *out = xmalloc(n * 4 + 1);
    size_t w = 0;
    const unsigned char *b = (const unsigned char *)p;
    for (size_t i = 0; i < n;) {
        size_t k = b[i] >= 0x80 ? utf8_len(b + i, n - i) : (b[i] >= 0x20 && b[i] < 0x7f);
        if (k) {
            memcpy(out + w, b + i, k);
            w += k, i += k;
        } else {
            w += (size_t)snprintf(out + w, 5, "\\x%02X", b[i]);
            i++;
        }
    }
    out[w] = '\0';
    return out;
}

static char *escape(const char *s)
{
    return escape_n(s ? s : "", s ? strlen(s) : 0);
}

static void fmt_time(time_t t, char *out, size_t len)
{
    struct tm tm;
    if (!gmtime_r(&t, &tm) || !strftime(out, len, "%Y-%m-%dT%H:%M:%SZ", &tm))
        snprintf(out, len, "%lld", (long long)t);
}

/* "45s", "12m", "3h05m", "2d04h": the two leading units. */
static void fmt_age(long long s, char *out, size_t len)
{
    if (s < 0)
        s = 0;
    if (s < 60)
        snprintf(out, len, "%llds", s);
    else if (s < 3600)
        snprintf(out, len, "%lldm", s / 60);
    else if (s < 86400)
        snprintf(out, len, "%lldh%02lldm", s / 3600, s / 60 % 60);
    else
        snprintf(out, len, "%lldd%02lldh", s / 86400, s / 3600 % 24);
}

/* The next attempt: "now" when it is due, else the UTC time. */
static void fmt_next(time_t next, time_t now, char *out, size_t len)
{
    if (next <= now)
        rn_strlcpy(out, "now", len);
    else
        fmt_time(next, out, len);
}

static const char *status_name(char st)
{
    return st == SPOOL_RCPT_DONE ? "done" : st == SPOOL_RCPT_FAILED ? "failed" : "pending";
}

/* The delivery state of e (all pending when there is none); a state the node cannot read
 * either is reported and shown as it treats it: all pending, due now. */
static void read_state(struct qctx *q, const struct spool_entry *e, struct spool_state *st,
                       char *why, size_t whylen)
{
    char err[RN_ERRLEN];
    why[0] = '\0';
    if (spool_state_read(q->sp, e->id, e->nrcpts, st, err, sizeof err) < 0) {
        snprintf(why, whylen, "%s", err);
        qfail(q, 0, "%s: delivery state unreadable (%s): shown as all pending", e->id, err);
    }
}

/* ---- list ---- */

struct list_ctx { struct qctx *q; struct table *t; struct json *j; size_t n; };

static int list_one(const struct spool_entry *e, void *arg)
{
    struct list_ctx *l = arg;
    struct spool_state st;
    char why[RN_ERRLEN];
    read_state(l->q, e, &st, why, sizeof why);
    size_t cnt[3] = {0, 0, 0};        /* pending, done, failed */
    for (size_t i = 0; i < st.nrcpts; i++)
        cnt[st.status[i] == SPOOL_RCPT_DONE ? 1 : st.status[i] == SPOOL_RCPT_FAILED ? 2 : 0]++;
    char recv[32], age[32], next[32];
    fmt_time(e->received, recv, sizeof recv);
    fmt_age((long long)(l->q->now - e->received), age, sizeof age);
    fmt_next(st.next_attempt, l->q->now, next, sizeof next);
    char *sender = escape(e->sender), *conn = escape(e->connector);
    if (l->j) {
        json_begin_object(l->j, NULL);
        json_string(l->j, "Id", e->id);
        json_string(l->j, "Received", recv);
        json_uint(l->j, "AgeSeconds",
                  l->q->now > e->received ? (unsigned long long)(l->q->now - e->received) : 0);
        json_string(l->j, "Sender", sender);
        json_uint(l->j, "Recipients", e->nrcpts);
        json_uint(l->j, "Pending", cnt[0]);
        json_uint(l->j, "Done", cnt[1]);
        json_uint(l->j, "Failed", cnt[2]);
        json_uint(l->j, "Attempts", st.attempts);
        json_string(l->j, "NextAttempt", next);
        json_uint(l->j, "Size", e->size);
        json_string(l->j, "Connector", conn);
        json_end_object(l->j);
    } else {
        char *from = xasprintf("<%s>", sender);
        char n[3][24], rc[24], att[24], size[24];
        for (int k = 0; k < 3; k++)
            snprintf(n[k], sizeof n[k], "%zu", cnt[k]);
        snprintf(rc, sizeof rc, "%zu", e->nrcpts);
        snprintf(att, sizeof att, "%u", st.attempts);
        snprintf(size, sizeof size, "%llu", (unsigned long long)e->size);
        const char *row[] = {e->id, recv, age, from, rc, n[0], n[1], n[2], att, next, size,
                             conn};
        table_row(l->t, row);
        free(from);
    }
    free(sender);
    free(conn);
    spool_state_clear(&st);
    l->n++;
    return 0;
}

static int queue_list(struct qctx *q, int nargs)
{
    if (nargs)
        return qfail(q, 2, "list takes no arguments");
    static const char *const hdr[] = {"Id", "Received", "Age", "Sender", "Rcpts", "Pending",
                                      "Done", "Failed", "Attempts", "Next", "Size",
                                      "Connector"};
    struct list_ctx l = {q, table_new(12, hdr), q->json ? json_new(stdout) : NULL, 0};
    if (l.j)
        json_begin_array(l.j, NULL);
    char err[RN_ERRLEN];
    int rc = spool_foreach(q->sp, list_one, &l, err, sizeof err);
    if (l.j) {
        json_end_array(l.j);
        json_free(&l.j);
    } else if (rc == 0) {
        if (l.n)
            table_print(l.t, stdout);
        printf("%zu message%s\n", l.n, l.n == 1 ? "" : "s");
    }
    table_free(&l.t);
    return rc < 0 ? qfail(q, 2, "%s: %s", q->dir, err) : 0;
}

/* ---- show ---- */

/* The header block of a message: the bytes before the first empty line, at most
 * HEADERS_MAX; the consumer stops the read as soon as it has them. */
struct hdrbuf { char *b; size_t n, scan; bool end, truncated; };

static int hdr_take(void *arg, const void *p, size_t n)
{
    struct hdrbuf *h = arg;
    size_t k = HEADERS_MAX - h->n < n ? HEADERS_MAX - h->n : n;
    memcpy(h->b + h->n, p, k);
    h->n += k;
    for (; h->scan < h->n; h->scan++) {
        size_t i = h->scan;
        if (i > 0 && h->b[i - 1] != '\n')
            continue;
        if (h->b[i] == '\r' && i + 1 == h->n)
            break;                   /* CR at the end of what we have: wait for the LF */
        if (h->b[i] == '\n' || (h->b[i] == '\r' && h->b[i + 1] == '\n')) {
            h->n = i;
            h->end = true;
            return -1;
        }
    }
    if (h->n == HEADERS_MAX) {
        h->truncated = true;
        return -1;
    }
    return 0;
}

/* Call fn for each header line (CRLF or LF removed, escaped). */
static void hdr_lines(const struct hdrbuf *h, void (*fn)(void *arg, const char *line),
                      void *arg)
{
    size_t start = 0;
    while (start < h->n) {
        const char *nl = memchr(h->b + start, '\n', h->n - start);
        size_t end = nl ? (size_t)(nl - h->b) : h->n;
        size_t len = end - start;
        if (nl && len && h->b[end - 1] == '\r')
            len--;
        char *line = escape_n(h->b + start, len);
        fn(arg, line);
        free(line);
        start = end + 1;
    }
}

static void hdr_print(void *arg, const char *line)
{
    (void)arg;
    printf("  %s\n", line);
}

static void hdr_json(void *arg, const char *line)
{
    json_string(arg, NULL, line);
}

/* "Label           value": the labels are at most 15 characters. */
static void text_field(const char *label, const char *value)
{
    text_line(stdout, 15, label, "%s", value);
}

static void show_text(struct qctx *q, const struct spool_entry *e, const struct spool_state *st,
                      const char *state_err, const struct hdrbuf *h)
{
    char buf[128], recv[32], age[32], next[32];
    fmt_time(e->received, recv, sizeof recv);
    fmt_age((long long)(q->now - e->received), age, sizeof age);
    fmt_next(st->next_attempt, q->now, next, sizeof next);
    char *s;
    text_field("Id", e->id);
    snprintf(buf, sizeof buf, "%s (age %s)", recv, age);
    text_field("Received", buf);
    snprintf(buf, sizeof buf, "%llu bytes", (unsigned long long)e->size);
    text_field("Size", buf);
    s = escape(e->sender);
    text_line(stdout, 15, "Sender", "<%s>", s);
    free(s);
    const char *facts[][2] = {{"ClientIp", e->client_ip}, {"Helo", e->helo},
                              {"Connector", e->connector}, {"AuthUser", e->auth_user},
                              {"AuthAs", e->auth_as}};
    for (size_t i = 0; i < sizeof facts / sizeof facts[0]; i++) {
        s = escape(facts[i][1]);
        text_field(facts[i][0], facts[i][1] ? s : "-");
        free(s);
    }
    text_field("AntispamBypass", e->antispam_bypass ? "true" : "false");
    snprintf(buf, sizeof buf, "%u", st->attempts);
    text_field("Attempts", buf);
    text_field("NextAttempt", next);
    if (*state_err)
        text_line(stdout, 15, "State", "unreadable (%s): all shown pending", state_err);
    printf("Recipients (%zu)\n", e->nrcpts);
    for (size_t i = 0; i < e->nrcpts; i++) {
        char *r = escape(e->rcpts[i]);
        printf("  %-8s <%s>%s%s\n", status_name(st->status[i]), r, st->diag[i] ? "  " : "",
               st->diag[i] ? st->diag[i] : "");
        free(r);
    }
    printf("Headers%s\n", h->truncated ? " (first 64 KiB)" : "");
    hdr_lines(h, hdr_print, NULL);
}

static void show_json(struct json *j, const struct spool_entry *e,
                      const struct spool_state *st, const char *state_err,
                      const struct hdrbuf *h, time_t now)
{
    char recv[32], next[32];
    fmt_time(e->received, recv, sizeof recv);
    fmt_next(st->next_attempt, now, next, sizeof next);
    json_begin_object(j, NULL);
    json_string(j, "Id", e->id);
    json_string(j, "Received", recv);
    json_uint(j, "Size", e->size);
    const char *facts[][2] = {{"Sender", e->sender}, {"ClientIp", e->client_ip},
                              {"Helo", e->helo}, {"Connector", e->connector},
                              {"AuthUser", e->auth_user}, {"AuthAs", e->auth_as}};
    for (size_t i = 0; i < sizeof facts / sizeof facts[0]; i++) {
        char *s = escape(facts[i][1]);
        json_string(j, facts[i][0], facts[i][1] ? s : NULL);
        free(s);
    }
    json_bool(j, "AntispamBypass", e->antispam_bypass);
    json_uint(j, "Attempts", st->attempts);
    json_string(j, "NextAttempt", next);
    json_string(j, "StateError", *state_err ? state_err : NULL);
    json_begin_array(j, "Recipients");
    for (size_t i = 0; i < e->nrcpts; i++) {
        char *r = escape(e->rcpts[i]);
        json_begin_object(j, NULL);
        json_string(j, "Address", r);
        json_string(j, "Status", status_name(st->status[i]));
        json_string(j, "LastReply", st->diag[i]);
        json_end_object(j);
        free(r);
    }
    json_end_array(j);
    json_begin_array(j, "Headers");
    hdr_lines(h, hdr_json, j);
    json_end_array(j);
    json_bool(j, "HeadersTruncated", h->truncated);
    json_end_object(j);
}

struct show_ctx { struct json *j; struct hdrbuf h; size_t shown; };

static int show_one(struct qctx *q, const struct spool_entry *e, void *arg)
{
    struct show_ctx *c = arg;
    char err[RN_ERRLEN];
    c->h.n = c->h.scan = 0;
    c->h.end = c->h.truncated = false;
    /* The whole file was verified by spool_read; a read that stops early is ours. */
    if (spool_read_data(q->sp, e->id, hdr_take, &c->h, err, sizeof err) < 0 && !c->h.end &&
        !c->h.truncated)
        return qfail(q, 1, "%s: %s", e->id, err);
    struct spool_state st;
    char why[RN_ERRLEN];
    read_state(q, e, &st, why, sizeof why);
    if (c->j) {
        show_json(c->j, e, &st, why, &c->h, q->now);
    } else {
        if (c->shown)
            putchar('\n');
        show_text(q, e, &st, why, &c->h);
    }
    c->shown++;
    spool_state_clear(&st);
    return 0;
}

static int queue_show(struct qctx *q, char **ids, int nids)
{
    if (nids == 0)
        return qfail(q, 2, "which message? (relayctl queue show ID...)");
    struct show_ctx c = {q->json ? json_new(stdout) : NULL,
                         {xmalloc(HEADERS_MAX), 0, 0, false, false}, 0};
    if (c.j)
        json_begin_array(c.j, NULL);
    int rc = each_id(q, ids, nids, show_one, &c);
    free(c.h.b);
    if (c.j) {
        json_end_array(c.j);
        json_free(&c.j);
    }
    return rc;
}

/* ---- retry ---- */

/* Make e due now: 1 rewritten, 0 already due, -1 refused (each printed). */
static int retry_one(struct qctx *q, const struct spool_entry *e, bool quiet_if_due)
{
    struct spool_state st;
    char err[RN_ERRLEN];
    int r = spool_state_read(q->sp, e->id, e->nrcpts, &st, err, sizeof err);
    int rc = 0;
    if (r == 1 || (r == 0 && st.next_attempt == 0)) {
        if (!quiet_if_due)
            printf("%s: already due\n", e->id);
    } else if (r < 0) {
        /* The node reads it the same way: all pending, due now. Left for it to replace. */
        printf("%s: delivery state unreadable (%s): the node treats it as due now\n", e->id,
               err);
    } else {
        st.next_attempt = 0;
        if (spool_state_write(q->sp, e->id, &st, err, sizeof err) < 0)
            rc = qfail(q, -1, "%s", err);
        else
            rc = 1, printf("retry %s\n", e->id);
    }
    spool_state_clear(&st);
    return rc;
}

static int retry_named(struct qctx *q, const struct spool_entry *e, void *arg)
{
    (void)arg;
    return retry_one(q, e, false) < 0;
}

struct retry_all { struct qctx *q; int rc; size_t n; };   /* n: rewritten */

static int retry_each(const struct spool_entry *e, void *arg)
{
    struct retry_all *r = arg;
    int k = retry_one(r->q, e, true);
    if (k < 0)
        r->rc = 1;
    r->n += k > 0;
    return 0;
}

static int queue_retry(struct qctx *q, char **ids, int nids)
{
    int rc = 0;
    char err[RN_ERRLEN];
    if (nids == 0) {
        struct retry_all r = {q, 0, 0};
        if (spool_foreach(q->sp, retry_each, &r, err, sizeof err) < 0)
            return qfail(q, 2, "%s: %s", q->dir, err);
        if (r.n == 0)
            printf("no deferred messages\n");
        rc = r.rc;
    }
    if (each_id(q, ids, nids, retry_named, NULL) != 0)
        rc = 1;
    /* When nobody held the lock this process took it in spool_open: no node to tell. */
    pid_t pid = spool_owner_pid(q->dir);
    if (pid == getpid())
        pid = 0;
    /* The pid in the lock file is only a hint: signal it only if it is the relaynode that
     * holds this lock (a reused or planted pid would otherwise get SIGUSR1). */
    char lockpath[4096], why[RN_ERRLEN];
    snprintf(lockpath, sizeof lockpath, "%s/lock", q->dir);
    if (pid != 0 && !nodeproc_owns_lock(pid, lockpath, why, sizeof why)) {
        fprintf(stderr, "relayctl: not signalling: %s\n", why);
        rc = rc ? rc : 1;
        pid = 0;
    }
    if (pid == 0) {
        printf("no running node holds %s; the messages are due at its next start\n", q->dir);
    } else if (kill(pid, SIGUSR1) < 0) {
        return qfail(q, 2, "cannot signal the node (pid %ld): %s", (long)pid, strerror(errno));
    } else {
        printf("signalled relaynode pid %ld to look again\n", (long)pid);
    }
    return rc;
}

/* ---- remove ---- */

static int remove_one(struct qctx *q, const struct spool_entry *e, void *arg)
{
    (void)arg;
    char err[RN_ERRLEN];
    if (spool_remove(q->sp, e->id, true, err, sizeof err) < 0)
        return qfail(q, 1, "%s", err);
    printf("removed %s\n", e->id);
    return 0;
}

static int queue_remove(struct qctx *q, char **ids, int nids)
{
    if (nids == 0)
        return qfail(q, 2, "which message? (relayctl queue remove ID...)");
    return each_id(q, ids, nids, remove_one, NULL);
}

/* ---- the verb ---- */

/* The spool directory: --spool, else the bootstrap file's spool_dir. It must exist:
 * spool_open would create a mistyped one. */
static int open_spool(struct qctx *q)
{
    char err[RN_ERRLEN];
    if (q->spool_opt) {
        q->dir = xstrdup(q->spool_opt);
    } else {
        const char *path = q->config && *q->config ? q->config : getenv("RELAYNODE_CONFIG");
        struct rn_bootstrap b;
        memset(&b, 0, sizeof b);
        int r = bootstrap_load(path && *path ? path : NULL, &b, err, sizeof err);
        if (r == 0)
            q->dir = xstrdup(b.spool_dir);
        bootstrap_clear(&b);
        if (r != 0)
            return qfail(q, 2, "%s", err);
    }
    struct stat sb;
    if (stat(q->dir, &sb) < 0 || !S_ISDIR(sb.st_mode))
        return qfail(q, 2, "no spool directory %s", q->dir);
    if (spool_open(q->dir, &q->sp, err, sizeof err) < 0)
        return qfail(q, 2, "%s", err);
    q->now = time(NULL);
    return 0;
}

int relayctl_queue(int argc, char **argv)
{
    enum { OPT_SPOOL = 1000, OPT_JSON };
    static const struct option opts[] = {
        {"config", required_argument, 0, 'c'}, {"spool", required_argument, 0, OPT_SPOOL},
        {"json", no_argument, 0, OPT_JSON}, {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    struct qctx q = {.sub = argc >= 2 ? argv[1] : ""};
    snprintf(q.verb, sizeof q.verb, "queue %s", q.sub);
    bool help = !strcmp(q.sub, "--help") || !strcmp(q.sub, "-h");
    if (strcmp(q.sub, "list") && strcmp(q.sub, "show") && strcmp(q.sub, "retry") &&
        strcmp(q.sub, "remove")) {
        fputs(help_text, help ? stdout : stderr);
        return help ? 0 : 2;
    }
    optind = 0;
    int c;
    while ((c = getopt_long(argc - 1, argv + 1, "c:h", opts, NULL)) != -1) {
        if (c == 'h') {
            fputs(help_text, stdout);
            return 0;
        } else if (c == 'c') {
            q.config = optarg;
        } else if (c == OPT_SPOOL) {
            q.spool_opt = optarg;
        } else if (c == OPT_JSON) {
            q.json = true;
        } else {
            return 2;                /* getopt printed why */
        }
    }
    if (q.config && q.spool_opt)
        return qfail(&q, 2, "give -c CONF or --spool DIR, not both");
    char **args = argv + 1 + optind;
    int nargs = argc - 1 - optind;
    /* The node's 250 reply and its log name a message as <id@fqdn>: take either form. */
    for (int i = 0; i < nargs; i++) {
        char *at = strchr(args[i], '@');
        if (at)
            *at = '\0';
        if (args[i][0] == '<')
            args[i]++;
    }
    int rc = open_spool(&q);
    if (rc == 0) {
        if (!strcmp(q.sub, "list"))
            rc = queue_list(&q, nargs);
        else if (!strcmp(q.sub, "show"))
            rc = queue_show(&q, args, nargs);
        else if (!strcmp(q.sub, "retry"))
            rc = queue_retry(&q, args, nargs);
        else
            rc = queue_remove(&q, args, nargs);
    }
    spool_free(&q.sp);
    free(q.dir);
    return rc;
}
