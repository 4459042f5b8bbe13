/* Unit tests for log: value quoting and control-byte escaping (a client's CR/LF must never
 * forge a log line), the fact line format in a file target, and protocol log file names
 * sanitised to [A-Za-z0-9._-] inside the configured directory. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdbool.h>
#include <pthread.h>
#include <stdatomic.h>
#include <fcntl.h>
#include <errno.h>
#include <dirent.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "directory/base/util.h"
#include "node/common/log.h"

struct qcase { const char *name, *in, *out; };

static const struct qcase qcases[] = {
    {"plain stays bare",        "alice@example.com",   "alice@example.com"},
    {"empty is quoted",         "",                    "\"\""},
    {"space quotes",            "hello world",         "\"hello world\""},
    {"equals quotes",           "a=b",                 "\"a=b\""},
    {"quote is escaped",        "say \"hi\"",          "\"say \\\"hi\\\"\""},
    {"backslash is escaped",    "C:\\x",               "\"C:\\\\x\""},
    {"CRLF escaped",            "MAIL\r\nRSET",        "\"MAIL\\x0D\\x0ARSET\""},
    {"NUL-free control bytes",  "\x01\x1f\x7f",        "\"\\x01\\x1F\\x7F\""},
    {"tab escaped",             "a\tb",                "\"a\\x09b\""},
    {"utf-8 passes",            "b\xc3\xbcro",         "b\xc3\xbcro"},
};

static void quote_table(void **state)
{
    (void)state;
    char buf[128];
    for (size_t i = 0; i < sizeof qcases / sizeof qcases[0]; i++) {
        log_quote(qcases[i].in, buf, sizeof buf);
        if (strcmp(buf, qcases[i].out) != 0)
            fail_msg("%s: got [%s] want [%s]", qcases[i].name, buf, qcases[i].out);
    }
}

static void quote_null_is_empty(void **state)
{
    (void)state;
    char buf[8];
    assert_string_equal(log_quote(NULL, buf, sizeof buf), "\"\"");
}

/* Truncation keeps the closing quote and never cuts an escape in half. */
static void quote_truncates_safely(void **state)
{
    (void)state;
    char buf[9];
    log_quote("ab cdefghijkl", buf, sizeof buf);
    assert_string_equal(buf, "\"ab cde\"");
    log_quote("a b\r\n", buf, sizeof buf);
    assert_string_equal(buf, "\"a b\"");    /* \x0D would not fit with the quote */
    char tiny[4];
    log_quote("abcdef", tiny, sizeof tiny);
    assert_string_equal(tiny, "abc");
}

static char *read_file(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) return NULL;
    static char buf[1 << 20];   /* reopen_case writes a few hundred KiB */
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = 0;
    fclose(f);
    return buf;
}

/* How many times `what` occurs in text. */
static long count_lines(const char *text, const char *what)
{
    long n = 0;
    for (const char *q = text; (q = strstr(q, what)); q++)
        n++;
    return n;
}

static void fact_line_format(void **state)
{
    (void)state;
    char dir[] = "/tmp/test_log.XXXXXX", path[256], err[256], q[64];
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/node.log", dir);
    assert_int_equal(log_open(path, err, sizeof err), 0);
    log_fact("abc123", "smtp", "connect", "client=%s helo=%s", "127.0.0.1",
             log_quote("evil\r\n- forged line", q, sizeof q));
    log_fact(NULL, "config", "reload", "version=%s", "1");
    /* A tail built without log_quote still cannot break the line. */
    log_fact("-", "smtp", "raw", "text=%s", "x\ny");
    log_close();
    char *s = read_file(path);
    assert_non_null(s);
    regex_t re;
    assert_int_equal(regcomp(&re,
        "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]+Z abc123 smtp connect client=127\\.0\\.0\\.1 "
        "helo=\"evil\\\\x0D\\\\x0A- forged line\"\n"
        "[0-9T:.Z-]+ - config reload version=1\n"
        "[0-9T:.Z-]+ - smtp raw text=x\\\\x0Ay\n$", REG_EXTENDED), 0);
    int m = regexec(&re, s, 0, NULL, 0);
    regfree(&re);
    if (m != 0)
        fail_msg("unexpected log content:\n%s", s);
    unlink(path);
    rmdir(dir);
}

static void open_bad_path_fails(void **state)
{
    (void)state;
    char err[256] = "";
    assert_int_equal(log_open("/nonexistent-dir/x/y.log", err, sizeof err), -1);
    assert_non_null(strstr(err, "/nonexistent-dir/x/y.log"));
}

static void protolog_files_sanitised(void **state)
{
    (void)state;
    char dir[] = "/tmp/test_protolog.XXXXXX", sub[256], path[512];
    assert_non_null(mkdtemp(dir));
    snprintf(sub, sizeof sub, "%s/proto/logs", dir);       /* created on first use */
    protolog_set_dir(sub);
    protolog_write("Client Frontend", "s1", '<', "220 %s", "relay.example.com");
    protolog_write("Client Frontend", "s1", '>', "EHLO x\r\n");
    protolog_write("../../escape", "s2", '>', "QUIT");
    protolog_write("..", "s3", '>', "QUIT");
    protolog_write("", "s4", '>', "QUIT");

    snprintf(path, sizeof path, "%s/Client_Frontend.log", sub);
    char *s = read_file(path);
    assert_non_null(s);
    regex_t re;
    assert_int_equal(regcomp(&re, "^[0-9T:.Z-]+ s1 < 220 relay\\.example\\.com\n"
                                  "[0-9T:.Z-]+ s1 > EHLO x\\\\x0D\\\\x0A\n$", REG_EXTENDED), 0);
    int m = regexec(&re, s, 0, NULL, 0);
    regfree(&re);
    if (m != 0)
        fail_msg("unexpected protocol log:\n%s", s);

    snprintf(path, sizeof path, "%s/.._.._escape.log", sub);
    assert_non_null(read_file(path));
    snprintf(path, sizeof path, "%s/__.log", sub);
    assert_non_null(read_file(path));
    snprintf(path, sizeof path, "%s/_.log", sub);
    assert_non_null(read_file(path));
    /* Nothing escaped the directory. */
    snprintf(path, sizeof path, "%s/proto/escape.log", dir);
    assert_null(read_file(path));
    log_close();          /* closes protocol log files too */

    int n = 0;
    DIR *d = opendir(sub);
    struct dirent *e;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.' || strlen(e->d_name) > 2) {
            char p[600];
            snprintf(p, sizeof p, "%s/%s", sub, e->d_name);
            unlink(p);
            n++;
        }
    closedir(d);
    assert_int_equal(n, 4);
    rmdir(sub);
    snprintf(path, sizeof path, "%s/proto", dir);
    rmdir(path);
    rmdir(dir);
}

/* logrotate: rename the files, SIGHUP. After log_reopen the fact log and the protocol logs
 * write to new files at their paths; the renamed ones keep what came before. */
/* The same sequence with the log synchronous and with the writer thread: every line made
 * before log_reopen lands in the renamed file (N of them, so a reopen that overtakes queued
 * lines is seen), every later one in the new file. */
static void reopen_case(bool async)
{
    enum { N = 12000 };
    char dir[] = "/tmp/test_logreopen.XXXXXX", path[64], old[80], pl[64], plold[80];
    char err[256];
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/node.log", dir);
    snprintf(old, sizeof old, "%s.1", path);
    snprintf(pl, sizeof pl, "%s/C.log", dir);
    snprintf(plold, sizeof plold, "%s.1", pl);
    assert_int_equal(log_open(path, err, sizeof err), 0);
    if (async)
        assert_int_equal(log_async_start(err, sizeof err), 0);
    protolog_set_dir(dir);
    log_fact("-", "t", "before", "n=1");
    protolog_write("C", "s1", '>', "before");
    /* logrotate renames the files that exist: the writer thread makes C.log a moment later */
    for (int i = 0; i < 5000 && access(pl, F_OK) != 0; i++)
        usleep(1000);
    for (int i = 0; i < N; i++)           /* still queued when the reopen comes */
        log_fact("-", "t", "before", "i=%d", i);
    assert_int_equal(rename(path, old), 0);
    assert_int_equal(rename(pl, plold), 0);
    assert_int_equal(log_reopen(err, sizeof err), 0);
    log_fact("-", "t", "after", "n=2");
    protolog_write("C", "s1", '>', "after");
    if (async)
        log_async_stop();
    log_close();
    const char *paths[4] = {old, path, pl, plold};
    char *got[4];                  /* read_file's buffer is shared: copy each */
    for (int i = 0; i < 4; i++) {
        const char *t = read_file(paths[i]);
        assert_non_null(t);
        got[i] = strdup(t);
    }
    char *a = got[0], *b = got[1], *c = got[2], *d = got[3];
    assert_non_null(strstr(a, " t before n=1\n"));
    assert_int_equal(count_lines(a, " t before i="), N);
    assert_null(strstr(a, "after"));
    assert_non_null(strstr(b, " t after n=2\n"));
    assert_null(strstr(b, "before"));
    assert_non_null(strstr(c, "s1 > after\n"));
    assert_non_null(strstr(d, "s1 > before\n"));
    assert_null(strstr(d, "after"));
    free(a); free(b); free(c); free(d);
    /* stderr and syslog targets: nothing to reopen, never an error. */
    assert_int_equal(log_reopen(err, sizeof err), 0);
    unlink(path); unlink(old); unlink(pl); unlink(plold);
    rmdir(dir);
}

static void reopen_after_rename(void **state)
{
    (void)state;
    reopen_case(false);
}

static void reopen_after_rename_async(void **state)
{
    (void)state;
    reopen_case(true);
}

static void protolog_off_without_dir(void **state)
{
    (void)state;
    protolog_set_dir(NULL);
    protolog_write("x", "s", '>', "nothing happens");   /* no crash, no file */
    protolog_set_dir("");
    protolog_write("x", "s", '>', "nothing happens");
}

/* issue 13: with the asynchronous writer, log_fact never blocks, even when the log cannot
 * be written at all (a FIFO nobody reads: a stalled disk); the lines that do not fit in the
 * bounded buffer are dropped, counted and reported once the writer gets through, and every
 * line is either written, in order, or counted as dropped. */
#define ASYNC_LINES 50000

struct drain { int fd; char *buf; size_t len, cap; atomic_bool stop; };

/* Read fd (non-blocking FIFO) until EOF once stop is set; an EOF before it (no writer yet)
 * is waited through. */
static void *drain_fifo(void *arg)
{
    struct drain *r = arg;
    for (;;) {
        if (r->cap - r->len < 65536) {
            r->cap = r->cap ? r->cap * 2 : 1 << 20;
            r->buf = xrealloc(r->buf, r->cap);
        }
        ssize_t n = read(r->fd, r->buf + r->len, r->cap - r->len - 1);
        if (n > 0) {
            r->len += (size_t)n;
            continue;
        }
        if ((n == 0 && atomic_load(&r->stop)) || (n < 0 && errno != EAGAIN))
            break;
        usleep(1000);
    }
    r->buf[r->len] = 0;
    return NULL;
}

static void async_never_blocks_and_counts_drops(void **state)
{
    char dir[] = "/tmp/test_log_async.XXXXXX", path[64], err[256];
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/fifo", dir);
    assert_int_equal(mkfifo(path, 0600), 0);
    struct drain r = {.fd = open(path, O_RDONLY | O_NONBLOCK), .stop = true};
    assert_true(r.fd >= 0);
    assert_int_equal(log_open(path, err, sizeof err), 0);
    assert_int_equal(log_async_start(err, sizeof err), 0);
    char pad[201];
    memset(pad, 'x', 200);
    pad[200] = 0;
    alarm(60);                    /* a log_fact that blocks on the full FIFO never returns */
    for (int i = 0; i < ASYNC_LINES; i++)
        log_fact("-", "test", "line", "seq=%d pad=%s", i, pad);
    alarm(0);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, drain_fifo, &r), 0);
    log_close();                  /* the writer drains its buffer, then the FIFO closes: EOF */
    assert_int_equal(pthread_join(th, NULL), 0);
    close(r.fd);
    long got = 0, dropped = 0, last = -1;
    bool ordered = true;
    for (char *l = r.buf; l && *l;) {
        char *nl = strchr(l, '\n');
        if (!nl)
            break;
        *nl = 0;
        const char *p;
        if ((p = strstr(l, " test line seq="))) {
            long seq = strtol(p + 15, NULL, 10);
            ordered = ordered && seq > last;
            last = seq;
            got++;
        } else if ((p = strstr(l, " - log dropped lines="))) {
            dropped += strtol(p + 21, NULL, 10);
        }
        l = nl + 1;
    }
    free(r.buf);
    fprintf(stderr, "written %ld, dropped %ld of %d\n", got, dropped, ASYNC_LINES);
    assert_true(ordered);
    assert_true(dropped > 0);
    assert_int_equal(got + dropped, ASYNC_LINES);
    unlink(path);
    rmdir(dir);
}

/* issue 13: log_reopen never opens on the caller's thread (the event loop) while the writer
 * runs, even with the queue full behind a stalled disk (a FIFO nobody reads): it takes the
 * room kept for it and returns at once, and the writer reopens in order: every line queued
 * before it (or counted as dropped) in the renamed log, nothing of them in the new one. */
struct reopen_call { int rc; char err[256]; atomic_bool done; };

static void *call_reopen(void *arg)
{
    struct reopen_call *c = arg;
    c->rc = log_reopen(c->err, sizeof c->err);
    atomic_store(&c->done, true);
    return NULL;
}

static void reopen_queued_when_full(void **state)
{
    (void)state;
    char dir[] = "/tmp/test_log_reopenq.XXXXXX", path[64], old[80], err[256];
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/node.log", dir);
    snprintf(old, sizeof old, "%s.1", path);
    assert_int_equal(mkfifo(path, 0600), 0);
    struct drain r1 = {.fd = open(path, O_RDONLY | O_NONBLOCK)}, r2 = {.fd = -1};
    assert_true(r1.fd >= 0);
    assert_int_equal(log_open(path, err, sizeof err), 0);
    assert_int_equal(log_async_start(err, sizeof err), 0);
    /* Every line 250 octets ("<24-octet time> - test line seq=NNNNNN pad=<197 x>\n"), so
     * with its 6-octet queue header it takes 256 and the lines tile the 1 MiB buffer
     * exactly: the fullest a queue gets, where only kept room can still hold the reopen. */
    char pad[198];
    memset(pad, 'x', 197);
    pad[197] = 0;
    alarm(60);
    for (int i = 0; i < ASYNC_LINES; i++)      /* the writer stalls, the queue fills up */
        log_fact("-", "test", "line", "seq=%06d pad=%s", i, pad);
    assert_int_equal(rename(path, old), 0);    /* logrotate */
    assert_int_equal(mkfifo(path, 0600), 0);
    r2.fd = open(path, O_RDONLY | O_NONBLOCK);
    assert_true(r2.fd >= 0);
    struct reopen_call call = {.rc = -1};
    pthread_t th, t1, t2;
    assert_int_equal(pthread_create(&th, NULL, call_reopen, &call), 0);
    for (int i = 0; i < 3000 && !atomic_load(&call.done); i++)
        usleep(1000);
    bool prompt = atomic_load(&call.done);     /* not waiting on the stalled writer */
    assert_int_equal(pthread_create(&t1, NULL, drain_fifo, &r1), 0);
    assert_int_equal(pthread_create(&t2, NULL, drain_fifo, &r2), 0);
    assert_int_equal(pthread_join(th, NULL), 0);
    log_async_stop();                          /* everything queued, the reopen included */
    log_fact("-", "test", "after", "n=1");     /* synchronous: to the file open now */
    log_close();
    alarm(0);
    atomic_store(&r1.stop, true);
    atomic_store(&r2.stop, true);
    assert_int_equal(pthread_join(t1, NULL), 0);
    assert_int_equal(pthread_join(t2, NULL), 0);
    close(r1.fd);
    close(r2.fd);
    long in_old = count_lines(r1.buf, " test line seq=");
    long in_new = count_lines(r2.buf, " test line seq=");
    long dropped = 0;
    for (int k = 0; k < 2; k++)
        for (const char *p = k ? r2.buf : r1.buf; (p = strstr(p, " - log dropped lines=")); p++)
            dropped += strtol(p + 21, NULL, 10);
    fprintf(stderr, "reopen returned after %s; renamed log %ld lines, new log %ld, dropped %ld\n",
            prompt ? "<3 s" : ">=3 s", in_old, in_new, dropped);
    assert_true(prompt);
    assert_int_equal(call.rc, 0);
    assert_int_equal(in_new, 0);
    assert_true(dropped > 0);
    assert_int_equal(in_old + dropped, ASYNC_LINES);
    assert_null(strstr(r1.buf, " test after n=1"));
    assert_non_null(strstr(r2.buf, " test after n=1\n"));
    free(r1.buf);
    free(r2.buf);
    unlink(path);
    unlink(old);
    rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(quote_table),
        cmocka_unit_test(quote_null_is_empty),
        cmocka_unit_test(quote_truncates_safely),
        cmocka_unit_test(fact_line_format),
        cmocka_unit_test(open_bad_path_fails),
        cmocka_unit_test(protolog_files_sanitised),
        cmocka_unit_test(protolog_off_without_dir),
        cmocka_unit_test(reopen_after_rename),
        cmocka_unit_test(reopen_after_rename_async),
        cmocka_unit_test(async_never_blocks_and_counts_drops),
        cmocka_unit_test(reopen_queued_when_full),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
