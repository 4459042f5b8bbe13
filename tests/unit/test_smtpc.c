/* smtpc against a scripted fake SMTP server in the same process and event loop (an
 * evconnlistener on 127.0.0.1, port chosen by the kernel): PIPELINING with both RCPTs sent
 * before the MAIL reply and dot-stuffing checked octet for octet, per-recipient codes, no DATA
 * when no recipient is accepted, 421 banner, connection refused, a silent server and the stage
 * timeout, 8-bit to a server without 8BITMIME, 552 to the final dot, local refusals before
 * connecting, HELO fallback and multi-line replies, oversized replies, a large message
 * streamed in chunks, and STARTTLS + AUTH PLAIN with a throwaway certificate. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>

#include "node/smtpc.h"
#include "node/tlsctx.h"

static char certdir[64];

/* The fake server: one connection, answers from the script, records what it gets. */
struct fake {
    struct event_base *base;
    struct evconnlistener *lis;
    struct bufferevent *bev;
    struct tlsctx *tls;         /* non-NULL: STARTTLS offered and done */
    struct sockaddr_in addr;
    const char *banner;         /* NULL = say nothing */
    const char *ehlo, *helo, *mail, *data, *dot, *auth;
    const char *rcpt[4];        /* per RCPT index; NULL = "250 2.1.5 Ok" */
    int hold_mail;              /* answer MAIL only once every RCPT is in (proves pipelining) */
    size_t nrcpt_expected;
    struct evbuffer *held;
    char log[8192];             /* command lines joined by '\n' (message lines excluded) */
    struct evbuffer *body;      /* message lines as received, CRLF kept, stuffing kept */
    int in_data, accepted, closed;
    size_t rcpts_seen;
};

static void fake_log(struct fake *f, const char *line)
{
    size_t n = strlen(f->log);
    snprintf(f->log + n, sizeof f->log - n, "%s%s", n ? "\n" : "", line);
}

static void fake_say(struct fake *f, const char *text)
{
    evbuffer_add_printf(bufferevent_get_output(f->bev), "%s\r\n", text);
}

static void fake_close(struct fake *f)
{
    bufferevent_free(f->bev);
    f->bev = NULL;
    f->closed = 1;
}

static void fake_event(struct bufferevent *bev, short what, void *arg)
{
    struct fake *f = arg;
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
        fake_close(f);
}

static void fake_read(struct bufferevent *bev, void *arg);

static void fake_command(struct fake *f, const char *line)
{
    fake_log(f, line);
    if (!strncasecmp(line, "EHLO", 4)) {
        fake_say(f, f->ehlo ? f->ehlo : "250-fake.test\r\n250-PIPELINING\r\n250 8BITMIME");
    } else if (!strncasecmp(line, "HELO", 4)) {
        fake_say(f, f->helo ? f->helo : "250 fake.test");
    } else if (!strncasecmp(line, "STARTTLS", 8)) {
        fake_say(f, "220 2.0.0 go ahead");
        char err[512];
        assert_int_equal(tlsctx_upgrade(f->tls, f->base, &f->bev, err, sizeof err), 0);
        bufferevent_setcb(f->bev, fake_read, NULL, fake_event, f);
        bufferevent_enable(f->bev, EV_READ | EV_WRITE);
    } else if (!strncasecmp(line, "AUTH", 4)) {
        fake_say(f, f->auth ? f->auth : "235 2.7.0 ok");
    } else if (!strncasecmp(line, "MAIL", 4)) {
        const char *r = f->mail ? f->mail : "250 2.1.0 Ok";
        if (f->hold_mail)
            evbuffer_add_printf(f->held, "%s\r\n", r);
        else
            fake_say(f, r);
    } else if (!strncasecmp(line, "RCPT", 4)) {
        const char *r = f->rcpt[f->rcpts_seen] ? f->rcpt[f->rcpts_seen] : "250 2.1.5 Ok";
        f->rcpts_seen++;
        if (f->hold_mail) {
            evbuffer_add_printf(f->held, "%s\r\n", r);
            if (f->rcpts_seen == f->nrcpt_expected)
                evbuffer_add_buffer(bufferevent_get_output(f->bev), f->held);
        } else {
            fake_say(f, r);
        }
    } else if (!strncasecmp(line, "DATA", 4)) {
        const char *r = f->data ? f->data : "354 go";
        fake_say(f, r);
        f->in_data = !strncmp(r, "354", 3);
    } else if (!strncasecmp(line, "QUIT", 4)) {
        fake_say(f, "221 bye");     /* and wait for the client to close: it must */
    } else {
        fake_say(f, "500 what");
    }
}

static void fake_read(struct bufferevent *bev, void *arg)
{
    struct fake *f = arg;
    char *line;
    size_t n;
    while (f->bev &&
           (line = evbuffer_readln(bufferevent_get_input(f->bev), &n, EVBUFFER_EOL_CRLF_STRICT))) {
        if (f->in_data) {
            if (!strcmp(line, ".")) {
                f->in_data = 0;
                fake_say(f, f->dot ? f->dot : "250 2.0.0 queued");
            } else {
                evbuffer_add(f->body, line, n);
                evbuffer_add(f->body, "\r\n", 2);
            }
        } else {
            fake_command(f, line);
        }
        free(line);
    }
}

static void fake_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
                        int salen, void *arg)
{
    struct fake *f = arg;
    assert_false(f->accepted);
    f->accepted = 1;
    f->bev = bufferevent_socket_new(f->base, fd, BEV_OPT_CLOSE_ON_FREE);
    bufferevent_setcb(f->bev, fake_read, NULL, fake_event, f);
    bufferevent_enable(f->bev, EV_READ | EV_WRITE);
    if (f->banner)
        fake_say(f, f->banner);
}

/* One test's world: the loop, the fake server, the client's result. */
struct t {
    struct event_base *base;
    struct fake f;
    int done;
    struct timespec t0, t1;
    int status, data_code;
    char reply[512];
    size_t nrcpts;
    struct smtpc_rcpt_result rcpts[4];
};

static void on_done(void *arg, const struct smtpc_result *r)
{
    struct t *t = arg;
    assert_false(t->done);
    t->done = 1;
    clock_gettime(CLOCK_MONOTONIC, &t->t1);
    t->status = r->status;
    t->data_code = r->data_code;
    snprintf(t->reply, sizeof t->reply, "%s", r->reply);
    t->nrcpts = r->nrcpts;
    for (size_t i = 0; i < r->nrcpts && i < 4; i++)
        t->rcpts[i] = r->rcpts[i];
}

static int setup(void **state)
{
    struct t *t = calloc(1, sizeof *t);
    t->base = event_base_new();
    t->f.base = t->base;
    t->f.body = evbuffer_new();
    t->f.held = evbuffer_new();
    t->f.banner = "220 fake.test ESMTP";
    t->f.addr.sin_family = AF_INET;
    t->f.addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    t->f.lis = evconnlistener_new_bind(t->base, fake_accept, &t->f,
                                       LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE, 8,
                                       (struct sockaddr *)&t->f.addr, sizeof t->f.addr);
    assert_non_null(t->f.lis);
    socklen_t sl = sizeof t->f.addr;
    getsockname(evconnlistener_get_fd(t->f.lis), (struct sockaddr *)&t->f.addr, &sl);
    *state = t;
    return 0;
}

static int teardown(void **state)
{
    struct t *t = *state;
    if (t->f.bev)
        bufferevent_free(t->f.bev);
    evconnlistener_free(t->f.lis);
    evbuffer_free(t->f.body);
    evbuffer_free(t->f.held);
    tlsctx_free(&t->f.tls);
    event_base_free(t->base);
    free(t);
    return 0;
}

static void on_guard(evutil_socket_t fd, short what, void *arg)
{
    *(int *)arg = 1;
}

/* Start a delivery and run the loop until done() ran and the server saw the client close
 * (the fake never closes first, so the client has freed itself: a leak fails under ASan). */
static void run(struct t *t, struct smtpc_opts *o, const struct sockaddr_in *to)
{
    static const char *const two[] = {"a@b.test", "c@b.test"};
    if (!o->helo)
        o->helo = "client.test";
    if (!o->sender)
        o->sender = "s@a.test";
    if (!o->rcpts) {
        o->rcpts = two;
        o->nrcpts = 2;
    }
    if (!o->data) {
        o->data = "Subject: t\r\n\r\nhello\r\n";
        o->len = strlen(o->data);
    }
    if (!o->timeout_s)
        o->timeout_s = 5;
    int expired = 0;
    struct event *guard = evtimer_new(t->base, on_guard, &expired);
    struct timeval ten = {10, 0};
    evtimer_add(guard, &ten);
    clock_gettime(CLOCK_MONOTONIC, &t->t0);
    struct smtpc *c = smtpc_start(t->base, (const struct sockaddr *)(to ? to : &t->f.addr),
                                  sizeof *to, o, on_done, t);
    assert_non_null(c);
    assert_false(t->done);  /* never inside smtpc_start */
    while (!expired && !(t->done && (!t->f.accepted || t->f.closed)))
        event_base_loop(t->base, EVLOOP_ONCE);
    event_free(guard);
    assert_false(expired);
}

static double elapsed(const struct t *t)
{
    return (double)(t->t1.tv_sec - t->t0.tv_sec) + (t->t1.tv_nsec - t->t0.tv_nsec) / 1e9;
}

static void pipelined_two_rcpts_dot_stuffed(void **state)
{
    struct t *t = *state;
    t->f.hold_mail = 1;    /* a client that waited for the MAIL reply would time out */
    t->f.nrcpt_expected = 2;
    t->f.ehlo = "250-fake.test\r\n250-PIPELINING\r\n250-SIZE 100000\r\n250 8BITMIME";
    static const char msg[] = "Subject: t\r\n\r\n.x\r\n..y\r\nmid.dle\r\n.\r\nend\r\n.z";
    struct smtpc_opts o = {.data = msg, .len = strlen(msg), .timeout_s = 2};
    run(t, &o, NULL);
    assert_int_equal(t->status, SMTPC_DONE);
    assert_int_equal(t->data_code, 250);
    assert_string_equal(t->reply, "250 2.0.0 queued");
    assert_int_equal(t->nrcpts, 2);
    assert_int_equal(t->rcpts[0].code, 250);
    assert_string_equal(t->rcpts[1].reply, "250 2.1.5 Ok");
    char want[256];
    snprintf(want, sizeof want,
             "EHLO client.test\nMAIL FROM:<s@a.test> SIZE=%zu\nRCPT TO:<a@b.test>\n"
             "RCPT TO:<c@b.test>\nDATA\nQUIT", strlen(msg));
    assert_string_equal(t->f.log, want);
    static const char stuffed[] = "Subject: t\r\n\r\n..x\r\n...y\r\nmid.dle\r\n..\r\nend\r\n..z\r\n";
    assert_int_equal(evbuffer_get_length(t->f.body), strlen(stuffed));
    assert_memory_equal(evbuffer_pullup(t->f.body, -1), stuffed, strlen(stuffed));
}

static void rcpt_550_and_250(void **state)
{
    struct t *t = *state;
    t->f.ehlo = "250 fake.test";    /* no PIPELINING: one RCPT at a time */
    t->f.rcpt[0] = "550 5.1.1 No such user";
    struct smtpc_opts o = {0};
    run(t, &o, NULL);
    assert_int_equal(t->status, SMTPC_DONE);
    assert_int_equal(t->rcpts[0].code, 550);
    assert_string_equal(t->rcpts[0].reply, "550 5.1.1 No such user");
    assert_int_equal(t->rcpts[1].code, 250);
    assert_int_equal(t->data_code, 250);
    assert_string_equal(t->f.log, "EHLO client.test\nMAIL FROM:<s@a.test>\nRCPT TO:<a@b.test>\n"
                                  "RCPT TO:<c@b.test>\nDATA\nQUIT");
    evbuffer_add(t->f.body, "", 1);
    assert_string_equal((char *)evbuffer_pullup(t->f.body, -1), "Subject: t\r\n\r\nhello\r\n");
}

static void all_rcpts_4xx_no_data(void **state)
{
    struct t *t = *state;
    t->f.rcpt[0] = "450 4.2.0 later";
    t->f.rcpt[1] = "451 4.3.0 later too";
    struct smtpc_opts o = {0};
    run(t, &o, NULL);
    assert_int_equal(t->status, SMTPC_DONE);
    assert_int_equal(t->rcpts[0].code, 450);
    assert_int_equal(t->rcpts[1].code, 451);
    assert_string_equal(t->rcpts[1].reply, "451 4.3.0 later too");
    assert_int_equal(t->data_code, 0);
    assert_null(strstr(t->f.log, "DATA"));
    assert_string_equal(t->f.log, "EHLO client.test\nMAIL FROM:<s@a.test>\nRCPT TO:<a@b.test>\n"
                                  "RCPT TO:<c@b.test>\nQUIT");
}

static void banner_421_tempfail(void **state)
{
    struct t *t = *state;
    t->f.banner = "421 4.3.2 busy";
    struct smtpc_opts o = {0};
    run(t, &o, NULL);
    assert_int_equal(t->status, SMTPC_TEMPFAIL);
    assert_string_equal(t->reply, "421 4.3.2 busy");
    assert_string_equal(t->f.log, "");      /* not even QUIT after a 421 */
    assert_int_equal(t->rcpts[0].code, 0);
}

static void banner_554_permfail(void **state)
{
    struct t *t = *state;
    t->f.banner = "554-no\r\n554 5.7.1 go away";
    struct smtpc_opts o = {0};
    run(t, &o, NULL);
    assert_int_equal(t->status, SMTPC_PERMFAIL);
    assert_string_equal(t->reply, "554 5.7.1 go away");
    assert_string_equal(t->f.log, "QUIT");
}

static void connection_refused_tempfail(void **state)
{
    struct t *t = *state;
    /* A port that was just bound and closed: nobody listens there. */
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    socklen_t sl = sizeof a;
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    getsockname(fd, (struct sockaddr *)&a, &sl);
    close(fd);
    struct smtpc_opts o = {0};
    run(t, &o, &a);
    assert_int_equal(t->status, SMTPC_TEMPFAIL);
    assert_non_null(strstr(t->reply, "refused"));
    assert_int_equal(t->rcpts[0].code, 0);
    assert_int_equal(t->rcpts[1].code, 0);
}

static void silent_server_times_out(void **state)
{
    struct t *t = *state;
    t->f.banner = NULL;
    struct smtpc_opts o = {.timeout_s = 1};
    run(t, &o, NULL);
    assert_int_equal(t->status, SMTPC_TEMPFAIL);
    assert_non_null(strstr(t->reply, "timeout"));
    assert_true(elapsed(t) > 0.9 && elapsed(t) < 2.5);
}

static void eightbit_without_8bitmime_refused(void **state)
{
    struct t *t = *state;
    t->f.ehlo = "250-fake.test\r\n250 PIPELINING";
    static const char msg[] = "Subject: caf\xc3\xa9\r\n\r\nbody\r\n";
    struct smtpc_opts o = {.data = msg, .len = strlen(msg)};
    run(t, &o, NULL);
    assert_int_equal(t->status, SMTPC_PERMFAIL);
    assert_non_null(strstr(t->reply, "8BITMIME"));
    assert_string_equal(t->f.log, "EHLO client.test\nQUIT");
    /* The same with the need only declared (7-bit data). */
    teardown(state);
    setup(state);
    t = *state;
    t->f.ehlo = "250 fake.test";
    struct smtpc_opts o2 = {.needs_8bit = 1};
    run(t, &o2, NULL);
    assert_int_equal(t->status, SMTPC_PERMFAIL);
    assert_string_equal(t->f.log, "EHLO client.test\nQUIT");
}

static void eightbit_with_8bitmime_declared(void **state)
{
    struct t *t = *state;
    t->f.ehlo = "250-fake.test\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n250 SIZE";
    static const char *const r[] = {"j\xc3\xb8rn@b.test"};
    static const char msg[] = "Subject: caf\xc3\xa9\r\n\r\nbody\r\n";
    struct smtpc_opts o = {.data = msg, .len = strlen(msg), .rcpts = r, .nrcpts = 1};
    run(t, &o, NULL);
    assert_int_equal(t->status, SMTPC_DONE);
    char want[256];
    snprintf(want, sizeof want, "EHLO client.test\nMAIL FROM:<s@a.test> SIZE=%zu BODY=8BITMIME "
             "SMTPUTF8\nRCPT TO:<j\xc3\xb8rn@b.test>\nDATA\nQUIT", strlen(msg));
    assert_string_equal(t->f.log, want);
}

static void size_limit_refused(void **state)
{
    struct t *t = *state;
    t->f.ehlo = "250-fake.test\r\n250 SIZE 10";
    struct smtpc_opts o = {0};
    run(t, &o, NULL);
    assert_int_equal(t->status, SMTPC_PERMFAIL);
    assert_non_null(strstr(t->reply, "5.3.4"));
    assert_string_equal(t->f.log, "EHLO client.test\nQUIT");
}

static void dot_552_permfail(void **state)
{
    struct t *t = *state;
    t->f.dot = "552 5.3.4 too big";
    struct smtpc_opts o = {0};
    run(t, &o, NULL);
    assert_int_equal(t->status, SMTPC_PERMFAIL);
    assert_int_equal(t->data_code, 552);
    assert_string_equal(t->reply, "552 5.3.4 too big");
    assert_int_equal(t->rcpts[0].code, 250);
}

static void dot_451_tempfail(void **state)
{
    struct t *t = *state;
    t->f.dot = "451 4.3.0 disk";
    struct smtpc_opts o = {0};
    run(t, &o, NULL);
    assert_int_equal(t->status, SMTPC_TEMPFAIL);
    assert_int_equal(t->data_code, 451);
}

static void mail_550_pipelined(void **state)
{
    struct t *t = *state;
    t->f.mail = "550 5.7.1 sender refused";
    t->f.rcpt[0] = t->f.rcpt[1] = "503 5.5.1 need MAIL";
    struct smtpc_opts o = {0};
    run(t, &o, NULL);
    assert_int_equal(t->status, SMTPC_PERMFAIL);
    assert_string_equal(t->reply, "550 5.7.1 sender refused");
    assert_int_equal(t->rcpts[0].code, 0);
    assert_null(strstr(t->f.log, "DATA"));
    assert_non_null(strstr(t->f.log, "\nQUIT"));
}

/* Refused before connecting: the server never sees a connection. */
static void local_refusals(void **state)
{
    static char longline[1200];
    memset(longline, 'a', 999);
    memcpy(longline + 999, "\r\n", 3);
    static const struct {
        const char *name, *data, *sender, *want;
    } cases[] = {
        {"bare LF", "a\r\nb\nc\r\n", NULL, "bare CR/LF"},
        {"bare CR", "a\rb\r\n", NULL, "bare CR/LF"},
        {"CR at end", "a\r", NULL, "bare CR/LF"},
        {"line of 999", longline, NULL, "over 998"},
        {"CRLF in sender", "a\r\n", "x@y\r\nRSET", "5.1.3"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct t *t = *state;
        struct smtpc_opts o = {.data = cases[i].data, .len = strlen(cases[i].data),
                               .sender = cases[i].sender};
        run(t, &o, NULL);
        if (t->status != SMTPC_PERMFAIL || !strstr(t->reply, cases[i].want) || t->f.accepted)
            fail_msg("case %s: status %d reply %s", cases[i].name, t->status, t->reply);
        teardown(state);
        setup(state);
    }
    /* 998 octets is fine. */
    struct t *t = *state;
    memcpy(longline + 998, "\r\n", 3);
    struct smtpc_opts o = {.data = longline, .len = strlen(longline)};
    run(t, &o, NULL);
    assert_int_equal(t->status, SMTPC_DONE);
}

static void helo_fallback_multiline(void **state)
{
    struct t *t = *state;
    t->f.banner = "220-fake.test\r\n220-more\r\n220 ready";
    t->f.ehlo = "502 5.5.2 EHLO? never heard of it";
    t->f.helo = "250 fake.test";
    t->f.rcpt[0] = "250-2.1.5 first\r\n250 2.1.5 last line";
    static const char *const r[] = {"a@b.test"};
    struct smtpc_opts o = {.rcpts = r, .nrcpts = 1};
    run(t, &o, NULL);
    assert_int_equal(t->status, SMTPC_DONE);
    assert_string_equal(t->rcpts[0].reply, "250 2.1.5 last line");
    assert_string_equal(t->f.log, "EHLO client.test\nHELO client.test\nMAIL FROM:<s@a.test>\n"
                                  "RCPT TO:<a@b.test>\nDATA\nQUIT");
}

static void oversized_replies_tempfail(void **state)
{
    struct t *t = *state;
    static char big[3000];
    memcpy(big, "220 ", 4);
    memset(big + 4, 'x', sizeof big - 5);
    t->f.banner = big;
    struct smtpc_opts o = {0};
    run(t, &o, NULL);
    assert_int_equal(t->status, SMTPC_TEMPFAIL);
    assert_non_null(strstr(t->reply, "2048"));
    teardown(state);
    setup(state);
    t = *state;
    static char many[101 * 6 + 1];
    for (int i = 0; i < 101; i++)
        memcpy(many + 6 * i, i < 100 ? "220-x\n" : "220 x\n", 6);
    many[101 * 6 - 1] = '\0';
    t->f.banner = many;
    run(t, &o, NULL);
    assert_int_equal(t->status, SMTPC_TEMPFAIL);
    assert_non_null(strstr(t->reply, "100 lines"));
}

static void large_message_streamed(void **state)
{
    struct t *t = *state;
    size_t lines = 40000, len = lines * 80;
    char *msg = malloc(len + 1);
    for (size_t i = 0; i < lines; i++) {
        memset(msg + i * 80, i % 7 == 0 ? '.' : 'a' + i % 26, 78);
        memcpy(msg + i * 80 + 78, "\r\n", 2);
    }
    msg[len] = '\0';
    struct smtpc_opts o = {.data = msg, .len = len};
    run(t, &o, NULL);
    assert_int_equal(t->status, SMTPC_DONE);
    size_t stuffed = (lines + 6) / 7;
    assert_int_equal(evbuffer_get_length(t->f.body), len + stuffed);
    const char *b = (const char *)evbuffer_pullup(t->f.body, -1);
    assert_memory_equal(b, "..", 2);
    assert_memory_equal(b + 79, "\r\n", 2);
    free(msg);
}

static void starttls_and_auth(void **state)
{
    struct t *t = *state;
    char cert[128], key[128], err[512] = "";
    snprintf(cert, sizeof cert, "%s/node.pem", certdir);
    snprintf(key, sizeof key, "%s/node.key", certdir);
    t->f.tls = tlsctx_new(cert, key, err, sizeof err);
    assert_non_null(t->f.tls);
    t->f.ehlo = "250-fake.test\r\n250-STARTTLS\r\n250-AUTH PLAIN\r\n250 PIPELINING";
    void *cctx = tlsctx_client_new(err, sizeof err);
    assert_non_null(cctx);
    struct smtpc_opts o = {.ssl_ctx = cctx, .tls_required = 1, .auth_user = "u",
                           .auth_pass = "p"};
    run(t, &o, NULL);
    assert_int_equal(t->status, SMTPC_DONE);
    /* base64("\0u\0p") = AHUAcA== */
    assert_string_equal(t->f.log, "EHLO client.test\nSTARTTLS\nEHLO client.test\n"
                                  "AUTH PLAIN AHUAcA==\nMAIL FROM:<s@a.test>\n"
                                  "RCPT TO:<a@b.test>\nRCPT TO:<c@b.test>\nDATA\nQUIT");
    /* AUTH refused: permanent. */
    teardown(state);
    setup(state);
    t = *state;
    t->f.tls = tlsctx_new(cert, key, err, sizeof err);
    t->f.ehlo = "250-fake.test\r\n250-STARTTLS\r\n250 AUTH PLAIN";
    t->f.auth = "535 5.7.8 bad credentials";
    run(t, &o, NULL);
    assert_int_equal(t->status, SMTPC_PERMFAIL);
    assert_string_equal(t->reply, "535 5.7.8 bad credentials");
    assert_null(strstr(t->f.log, "MAIL"));
    /* TLS required, none offered: temporary, and no credentials sent. */
    teardown(state);
    setup(state);
    t = *state;
    t->f.ehlo = "250-fake.test\r\n250 AUTH PLAIN";
    run(t, &o, NULL);
    assert_int_equal(t->status, SMTPC_TEMPFAIL);
    assert_string_equal(t->f.log, "EHLO client.test\nQUIT");
    tlsctx_client_free(cctx);
}

static void abort_runs_done_now(void **state)
{
    struct t *t = *state;
    t->f.banner = NULL;
    struct smtpc_opts o = {.helo = "c", .sender = "", .data = "x\r\n", .len = 3};
    static const char *const r[] = {"a@b.test"};
    o.rcpts = r;
    o.nrcpts = 1;
    struct smtpc *c = smtpc_start(t->base, (struct sockaddr *)&t->f.addr, sizeof t->f.addr, &o,
                                  on_done, t);
    assert_non_null(c);
    while (!t->f.accepted)
        event_base_loop(t->base, EVLOOP_ONCE);
    smtpc_abort(c);
    assert_true(t->done);
    assert_int_equal(t->status, SMTPC_TEMPFAIL);
    assert_string_equal(t->reply, "aborted");
}

static int group_setup(void **state)
{
    const char *root = getenv("RELAYNODE_ROOT");
    snprintf(certdir, sizeof certdir, "/tmp/test_smtpc.XXXXXX");
    if (!mkdtemp(certdir))
        return -1;
    char cmd[512];
    snprintf(cmd, sizeof cmd, "bash '%s/deploy/pki/mkcerts.sh' '%s' >/dev/null 2>&1",
             root && *root ? root : ".", certdir);
    return system(cmd) == 0 ? 0 : -1;
}

static int group_teardown(void **state)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", certdir);
    return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(pipelined_two_rcpts_dot_stuffed, setup, teardown),
        cmocka_unit_test_setup_teardown(rcpt_550_and_250, setup, teardown),
        cmocka_unit_test_setup_teardown(all_rcpts_4xx_no_data, setup, teardown),
        cmocka_unit_test_setup_teardown(banner_421_tempfail, setup, teardown),
        cmocka_unit_test_setup_teardown(banner_554_permfail, setup, teardown),
        cmocka_unit_test_setup_teardown(connection_refused_tempfail, setup, teardown),
        cmocka_unit_test_setup_teardown(silent_server_times_out, setup, teardown),
        cmocka_unit_test_setup_teardown(eightbit_without_8bitmime_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(eightbit_with_8bitmime_declared, setup, teardown),
        cmocka_unit_test_setup_teardown(size_limit_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(dot_552_permfail, setup, teardown),
        cmocka_unit_test_setup_teardown(dot_451_tempfail, setup, teardown),
        cmocka_unit_test_setup_teardown(mail_550_pipelined, setup, teardown),
        cmocka_unit_test_setup_teardown(local_refusals, setup, teardown),
        cmocka_unit_test_setup_teardown(helo_fallback_multiline, setup, teardown),
        cmocka_unit_test_setup_teardown(oversized_replies_tempfail, setup, teardown),
        cmocka_unit_test_setup_teardown(large_message_streamed, setup, teardown),
        cmocka_unit_test_setup_teardown(starttls_and_auth, setup, teardown),
        cmocka_unit_test_setup_teardown(abort_runs_done_now, setup, teardown),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
