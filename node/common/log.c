/* log: the node's fact lines and per-connector protocol logs (docs/style.md 13).
 *
 * A fact line is "<time> <id> <subsystem> <event> key=value ..." written with one write() (or
 * one syslog() call), so lines from the loop and the worker threads never interleave. Values
 * are quoted by log_quote where the caller builds the tail; log_fact also escapes any control
 * byte that still reaches it, so a CR/LF smuggled in by a client can never forge a log line.
 * Protocol logs keep one append-mode file per connector under protocol_log_dir; connector
 * names come from the directory and are sanitised to [A-Za-z0-9._-] before they become file
 * names, so a name like "../../etc/x" stays inside the directory. */
#include "node/common/log.h"
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>
#include "directory/base/util.h"

#define LOG_LINE_MAX 8192

enum log_target { TARGET_STDERR, TARGET_SYSLOG, TARGET_FILE };

struct protolog_file {
    char *name;                    /* sanitised connector name; owned */
    int fd;
    struct protolog_file *next;
};

static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;
static enum log_target log_target_kind = TARGET_STDERR;
static int log_fd = 2;
static char *log_path;                      /* owned; the file of TARGET_FILE, for log_reopen */
static char *protolog_dir;                  /* owned; NULL = protocol logging off */
static struct protolog_file *protolog_files;

static bool needs_quotes(const char *v)
{
    if (!*v)
        return true;
    for (const unsigned char *p = (const unsigned char *)v; *p; p++)
        if (*p == ' ' || *p == '"' || *p == '=' || *p == '\\' || *p < 0x20 || *p == 0x7f)
            return true;
    return false;
}

/* Append one escaped byte at *pos if it (and `reserve` more bytes) fits; false if not. */
static bool put_escaped(char *buf, size_t len, size_t *pos, unsigned char c, bool quoted,
                        size_t reserve)
{
    char tmp[5];
    size_t n;
    if (c < 0x20 || c == 0x7f)
        n = (size_t)snprintf(tmp, sizeof tmp, "\\x%02X", c);
    else if (quoted && (c == '"' || c == '\\')) {
        tmp[0] = '\\'; tmp[1] = (char)c; n = 2;
    } else {
        tmp[0] = (char)c; n = 1;
    }
    if (*pos + n + reserve + 1 > len)
        return false;
    memcpy(buf + *pos, tmp, n);
    *pos += n;
    return true;
}

const char *log_quote(const char *value, char *buf, unsigned long len)
{
    if (!buf || len == 0)
        return "";
    if (!value)
        value = "";
    bool q = needs_quotes(value);
    size_t pos = 0;
    if (q) {
        if (len < 3) { buf[0] = 0; return buf; }
        buf[pos++] = '"';
    }
    /* A truncated value keeps its closing quote and never ends inside an escape. */
    for (const unsigned char *p = (const unsigned char *)value; *p; p++)
        if (!put_escaped(buf, len, &pos, *p, q, q ? 1 : 0))
            break;
    if (q)
        buf[pos++] = '"';
    buf[pos] = 0;
    return buf;
}

int log_open(const char *target, char *err, unsigned long errlen)
{
    if (!target || !*target || strcmp(target, "stderr") == 0) {
        log_close();
        pthread_mutex_lock(&log_mu);
        log_target_kind = TARGET_STDERR;
        log_fd = 2;
        pthread_mutex_unlock(&log_mu);
        return 0;
    }
    if (strcmp(target, "syslog") == 0) {
        log_close();
        pthread_mutex_lock(&log_mu);
        openlog("relaynode", LOG_PID | LOG_NDELAY, LOG_MAIL);
        log_target_kind = TARGET_SYSLOG;
        pthread_mutex_unlock(&log_mu);
        return 0;
    }
    /* O_APPEND: every line lands at the end even with logrotate's copytruncate or several
     * writers; one write() per line is our line buffering. */
    int fd = open(target, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
    if (fd < 0)
        return rn_err(err, errlen, "log %s: %s", target, strerror(errno));
    log_close();
    pthread_mutex_lock(&log_mu);
    log_target_kind = TARGET_FILE;
    log_fd = fd;
    log_path = xstrdup(target);
    pthread_mutex_unlock(&log_mu);
    return 0;
}

static void protolog_close_files(void)
{
    while (protolog_files) {
        struct protolog_file *f = protolog_files;
        protolog_files = f->next;
        close(f->fd);
        free(f->name);
        free(f);
    }
}

void log_close(void)
{
    log_async_stop();             /* what is queued is written to the current target first */
    pthread_mutex_lock(&log_mu);
    if (log_target_kind == TARGET_FILE && log_fd > 2)
        close(log_fd);
    else if (log_target_kind == TARGET_SYSLOG)
        closelog();
    log_target_kind = TARGET_STDERR;
    log_fd = 2;
    free(log_path);
    log_path = NULL;
    protolog_close_files();
    free(protolog_dir);
    protolog_dir = NULL;
    pthread_mutex_unlock(&log_mu);
}

/* logrotate renames the files and then sends SIGHUP: open the fact log's path again (a new
 * file) and swap it in under the lock, so no line is lost between the two; protocol log
 * files are closed and reopen by name at their next line. A path that no longer opens keeps
 * the old descriptor (the lines go to the renamed file rather than nowhere). */
static int logq_put(char kind, const char *safe, const char *line, size_t len);

/* The reopen itself: on the caller's thread when the log is synchronous, on the writer
 * thread (in order with the queued lines) when it is not. */
static int reopen_now(char *err, unsigned long errlen)
{
    int rc = 0;
    pthread_mutex_lock(&log_mu);
    protolog_close_files();
    if (log_target_kind == TARGET_FILE && log_path) {
        int fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
        if (fd < 0) {
            rc = rn_err(err, errlen, "log %s: %s", log_path, strerror(errno));
        } else {
            if (log_fd > 2)
                close(log_fd);
            log_fd = fd;
        }
    }
    pthread_mutex_unlock(&log_mu);
    return rc;
}

/* With the writer thread running, the reopen is queued behind the lines already made (in
 * the room kept for it: logq_put), so every line logged before the SIGHUP lands in the
 * renamed file and every later one in the new file, and the open() never runs on the
 * caller's thread (the event loop); a failure is then logged by the writer (`log
 * reopen-failed`). Without the writer the log is synchronous and so is the reopen. */
int log_reopen(char *err, unsigned long errlen)
{
    if (logq_put('R', NULL, "", 0))
        return 0;
    return reopen_now(err, errlen);
}

static size_t format_time(char *buf, size_t len)
{
    struct timeval tv;
    struct tm tm;
    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    size_t n = strftime(buf, len, "%Y-%m-%dT%H:%M:%S", &tm);
    n += (size_t)snprintf(buf + n, len - n, ".%03ldZ", (long)(tv.tv_usec / 1000));
    return n < len ? n : len - 1;
}

/* Escape control bytes in place-built text (the caller's tail) into out. */
static size_t copy_escaped(char *out, size_t len, size_t pos, const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (!put_escaped(out, len, &pos, *p, false, 1))
            break;
    out[pos] = 0;
    return pos;
}

static void write_all(int fd, const char *s, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, s, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return;                 /* nowhere left to report a logging failure */
        }
        s += w; n -= (size_t)w;
    }
}

/* Write one fact line (it ends with LF): one write(), or one syslog() call. */
static void fact_emit(const char *line, size_t len)
{
    pthread_mutex_lock(&log_mu);
    if (log_target_kind == TARGET_SYSLOG) {
        /* syslog stamps its own time and ends the line itself: skip ours and the LF. */
        const char *body = memchr(line, ' ', len);
        const char *start = body ? body + 1 : line;
        syslog(LOG_INFO, "%.*s", (int)(line + len - 1 - start), start);
    } else {
        write_all(log_fd, line, len);
    }
    pthread_mutex_unlock(&log_mu);
}

/* ---- the asynchronous writer (issue 13: no log write on the event loop) ----
 *
 * Once log_async_start has run, log_fact and protolog_write only copy their line into a
 * bounded buffer (LOGQ_BYTES) under a short lock, and one writer thread writes it out, in the
 * order the lines were made (one FIFO: a session's lines stay in order). A full buffer (a
 * disk that stalls) drops the line rather than block the caller; the drops are counted and the
 * writer reports them in the log ("- log dropped lines=N") as soon as it writes again. The
 * buffers are double: callers fill one while the writer empties the other.
 *
 * Woken by a first line, the writer gathers for up to LOGQ_GATHER_NS (or until the buffer is
 * half full, or a stop) before it takes the buffer, so the lines of a burst (one message
 * makes several) leave in one write() and callers do not wake it once per line (issue #17:
 * a wake-up and a write per line were a fifth of the node's system calls). A line reaches
 * the file at most that much later; log_async_stop writes everything queued. */

#define LOGQ_BYTES (1024 * 1024)
#define LOGQ_GATHER_NS 2000000L       /* 2 ms */
/* A reopen entry (kind, empty name, zero length). Lines leave this much of the buffer free,
 * so a reopen always has room: it is never dropped and never falls back to the caller. */
#define LOGQ_REOPEN_BYTES (1 + 1 + sizeof(uint32_t))

enum logq_kind { LOGQ_FACT = 'F', LOGQ_PROTO = 'P', LOGQ_REOPEN = 'R' };

/* An entry: kind, the connector's safe name (PROTO; NUL-ended, else empty), the line length
 * (4 bytes, host order), the line. */
struct logq {
    pthread_mutex_t mu;
    pthread_cond_t cond;
    pthread_t thread;
    bool running, stopping;       /* under mu */
    char *fill, *spare;           /* owned, LOGQ_BYTES each: callers append to fill */
    size_t used;                  /* bytes in fill; under mu */
    unsigned long long dropped;   /* lines dropped since the last report; under mu */
    bool tail_reopen;             /* the last entry in fill is a reopen; under mu */
};

static struct logq logq = {.mu = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};

static void proto_emit(const char *safe, const char *line, size_t len);

/* 1 when queued or dropped (the async writer runs), 0 when the caller must write itself
 * (no writer). A line is dropped unless LOGQ_REOPEN_BYTES stay free after it; a reopen is
 * never dropped: it takes that room. */
static int logq_put(char kind, const char *safe, const char *line, size_t len)
{
    size_t nlen = safe ? strlen(safe) : 0;
    size_t need = 1 + nlen + 1 + sizeof(uint32_t) + len;
    pthread_mutex_lock(&logq.mu);
    if (!logq.running) {
        pthread_mutex_unlock(&logq.mu);
        return 0;
    }
    size_t room = LOGQ_BYTES - logq.used;
    if (kind == LOGQ_REOPEN && room < need) {
        /* Only a reopen spends the kept room and no line fits after it: the last entry is
         * a reopen still to come, with nothing behind it, and it does this one's work. */
        if (!logq.tail_reopen)
            abort();
        pthread_mutex_unlock(&logq.mu);
        return 1;
    }
    if (kind != LOGQ_REOPEN && room < need + LOGQ_REOPEN_BYTES) {
        logq.dropped++;
        pthread_mutex_unlock(&logq.mu);
        return 1;
    }
    char *p = logq.fill + logq.used;
    uint32_t l = (uint32_t)len;
    *p++ = (char)kind;
    memcpy(p, safe ? safe : "", nlen + 1);
    p += nlen + 1;
    memcpy(p, &l, sizeof l);
    memcpy(p + sizeof l, line, len);
    /* The writer waits for a first line, or gathers until half full: wake it only then. */
    bool wake = logq.used == 0 ||
                (logq.used < LOGQ_BYTES / 2 && logq.used + need >= LOGQ_BYTES / 2);
    logq.used += need;
    logq.tail_reopen = kind == LOGQ_REOPEN;
    pthread_mutex_unlock(&logq.mu);
    if (wake)                     /* after the unlock, so the writer does not block on it */
        pthread_cond_signal(&logq.cond);
    return 1;
}

/* The writer's reopen: a failure becomes a fact line in the file still open. */
static void reopen_logged(void)
{
    char err[RN_ERRLEN], line[RN_ERRLEN + 160], ts[64];
    if (reopen_now(err, sizeof err) == 0)
        return;
    size_t t = format_time(ts, sizeof ts);
    char q[RN_ERRLEN + 64];
    int k = snprintf(line, sizeof line, "%.*s - log reopen-failed error=%s keeping=current\n",
                     (int)t, ts, log_quote(err, q, sizeof q));
    fact_emit(line, (size_t)k < sizeof line ? (size_t)k : sizeof line - 1);
}

/* Writer thread: write buf[0..n) out, consecutive fact lines in one write() when the target
 * is a file (whole lines only, so lines never interleave with another writer's). */
static void logq_flush(const char *buf, size_t n)
{
    static char out[65536];
    size_t olen = 0;
    for (size_t off = 0; off < n;) {
        char kind = buf[off];
        const char *safe = buf + off + 1;
        size_t nlen = strlen(safe);
        uint32_t len;
        memcpy(&len, safe + nlen + 1, sizeof len);
        const char *line = safe + nlen + 1 + sizeof len;
        off += 1 + nlen + 1 + sizeof len + len;
        if (kind == LOGQ_REOPEN) {
            if (olen)
                fact_emit(out, olen);
            olen = 0;
            reopen_logged();
            continue;
        }
        bool batch = kind == LOGQ_FACT && log_target_kind != TARGET_SYSLOG &&
                     len <= sizeof out;
        if (olen && (!batch || olen + len > sizeof out)) {
            fact_emit(out, olen);
            olen = 0;
        }
        if (batch) {
            memcpy(out + olen, line, len);
            olen += len;
        } else if (kind == LOGQ_FACT) {
            fact_emit(line, len);
        } else {
            proto_emit(safe, line, len);
        }
    }
    if (olen)
        fact_emit(out, olen);
}

static void *logq_thread(void *arg)
{
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, NULL);     /* signals are the loop's */
    pthread_mutex_lock(&logq.mu);
    for (;;) {
        while (!logq.used && !logq.dropped && !logq.stopping)
            pthread_cond_wait(&logq.cond, &logq.mu);
        if (!logq.used && !logq.dropped && logq.stopping)
            break;
        /* Gather (see above), on the monotonic clock (logq_cond_init). */
        struct timespec until;
        clock_gettime(CLOCK_MONOTONIC, &until);
        until.tv_nsec += LOGQ_GATHER_NS;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        while (!logq.stopping && logq.used < LOGQ_BYTES / 2 &&
               pthread_cond_timedwait(&logq.cond, &logq.mu, &until) == 0)
            ;
        char *buf = logq.fill;
        size_t n = logq.used;
        unsigned long long dropped = logq.dropped;
        logq.fill = logq.spare;
        logq.spare = buf;
        logq.used = 0;
        logq.dropped = 0;
        logq.tail_reopen = false;
        pthread_mutex_unlock(&logq.mu);
        logq_flush(buf, n);
        if (dropped) {
            char line[160], ts[64];
            size_t t = format_time(ts, sizeof ts);
            int k = snprintf(line, sizeof line, "%.*s - log dropped lines=%llu reason=%s\n",
                             (int)t, ts, dropped, "buffer-full");
            fact_emit(line, (size_t)k < sizeof line ? (size_t)k : sizeof line - 1);
        }
        pthread_mutex_lock(&logq.mu);
    }
    pthread_mutex_unlock(&logq.mu);
    return NULL;
}

/* The writer's gather deadline is on CLOCK_MONOTONIC, so a step of the wall clock can
 * neither stretch nor skip it. Once, before the first writer thread. */
static pthread_once_t logq_cond_once = PTHREAD_ONCE_INIT;

static void logq_cond_init(void)
{
    pthread_condattr_t a;
    pthread_condattr_init(&a);
    pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
    pthread_cond_destroy(&logq.cond);
    pthread_cond_init(&logq.cond, &a);
    pthread_condattr_destroy(&a);
}

int log_async_start(char *err, unsigned long errlen)
{
    pthread_once(&logq_cond_once, logq_cond_init);
    pthread_mutex_lock(&logq.mu);
    if (logq.running) {
        pthread_mutex_unlock(&logq.mu);
        return 0;
    }
    logq.fill = xmalloc(LOGQ_BYTES);
    logq.spare = xmalloc(LOGQ_BYTES);
    logq.used = 0;
    logq.dropped = 0;
    logq.tail_reopen = false;
    logq.stopping = false;
    int rc = pthread_create(&logq.thread, NULL, logq_thread, NULL);
    if (rc != 0) {
        free(logq.fill);
        free(logq.spare);
        logq.fill = logq.spare = NULL;
        pthread_mutex_unlock(&logq.mu);
        return rn_err(err, errlen, "log writer thread: %s", strerror(rc));
    }
    logq.running = true;
    pthread_mutex_unlock(&logq.mu);
    return 0;
}

void log_async_stop(void)
{
    pthread_mutex_lock(&logq.mu);
    if (!logq.running) {
        pthread_mutex_unlock(&logq.mu);
        return;
    }
    logq.stopping = true;
    pthread_cond_signal(&logq.cond);
    pthread_mutex_unlock(&logq.mu);
    pthread_join(logq.thread, NULL);   /* it writes everything queued first */
    pthread_mutex_lock(&logq.mu);
    logq.running = false;
    free(logq.fill);
    free(logq.spare);
    logq.fill = logq.spare = NULL;
    pthread_mutex_unlock(&logq.mu);
}

void log_fact(const char *id, const char *subsystem, const char *event, const char *fmt, ...)
{
    char tail[LOG_LINE_MAX];
    char line[LOG_LINE_MAX + 64];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(tail, sizeof tail, fmt, ap);
    va_end(ap);

    size_t pos = format_time(line, sizeof line);
    int n = snprintf(line + pos, sizeof line - pos, " %s %s %s%s", id && *id ? id : "-",
                     subsystem, event, tail[0] ? " " : "");
    if (n > 0)
        pos += (size_t)n < sizeof line - pos ? (size_t)n : sizeof line - pos - 1;
    pos = copy_escaped(line, sizeof line - 1, pos, tail);
    line[pos++] = '\n';
    if (!logq_put(LOGQ_FACT, NULL, line, pos))
        fact_emit(line, pos);
}

/* Map a connector name onto a safe file name: [A-Za-z0-9._-], never "." or ".." or empty. */
static void protolog_sanitise(const char *name, char *out, size_t len)
{
    size_t i = 0;
    bool all_dots = true;
    for (const char *p = name ? name : ""; *p && i + 1 < len; p++) {
        char c = *p;
        bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                  c == '.' || c == '_' || c == '-';
        out[i++] = ok ? c : '_';
        if (c != '.')
            all_dots = false;
    }
    out[i] = 0;
    if (all_dots)                   /* "", "." and ".." would name no file or a directory */
    {
        if (i == 0) { out[0] = '_'; out[1] = 0; }   /* len >= 2: callers pass a real buffer */
        else memset(out, '_', i);
    }
}

void protolog_set_dir(const char *dir)
{
    pthread_mutex_lock(&log_mu);
    protolog_close_files();
    free(protolog_dir);
    protolog_dir = dir && *dir ? xstrdup(dir) : NULL;
    pthread_mutex_unlock(&log_mu);
}

/* mkdir -p for the protocol log directory (created on first use, so a later fix of the
 * directory's permissions needs no restart). Called with log_mu held. */
static int mkdir_p(const char *path)
{
    char tmp[4096];
    if (rn_strlcpy(tmp, path, sizeof tmp) >= sizeof tmp)
        return -1;
    for (char *p = tmp + 1; *p; p++)
        if (*p == '/') {
            *p = 0;
            if (mkdir(tmp, 0750) < 0 && errno != EEXIST)
                return -1;
            *p = '/';
        }
    if (mkdir(tmp, 0750) < 0 && errno != EEXIST)
        return -1;
    return 0;
}

/* The open file for a connector, opening it if needed; -1 when it cannot be opened. */
static int protolog_fd(const char *safe)
{
    for (struct protolog_file *f = protolog_files; f; f = f->next)
        if (strcmp(f->name, safe) == 0)
            return f->fd;
    if (mkdir_p(protolog_dir) < 0)
        return -1;
    char path[4096 + 300];
    snprintf(path, sizeof path, "%s/%s.log", protolog_dir, safe);
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
    if (fd < 0)
        return -1;
    struct protolog_file *f = xcalloc(1, sizeof *f);
    f->name = xstrdup(safe);
    f->fd = fd;
    f->next = protolog_files;
    protolog_files = f;
    return fd;
}

/* Write one protocol log line (a file per connector, opened on first use). */
static void proto_emit(const char *safe, const char *line, size_t len)
{
    int failed = 0;                 /* errno of a failed open */
    pthread_mutex_lock(&log_mu);
    if (protolog_dir) {
        int fd = protolog_fd(safe);
        if (fd < 0)
            failed = errno ? errno : EIO;
        else
            write_all(fd, line, len);
    }
    pthread_mutex_unlock(&log_mu);
    if (failed) {
        char q[300];
        log_fact("-", "protolog", "open-failed", "connector=%s error=%s",
                 log_quote(safe, q, sizeof q), strerror(failed));
    }
}

void protolog_write(const char *connector, const char *session, char direction,
                    const char *fmt, ...)
{
    char safe[256], text[LOG_LINE_MAX], line[LOG_LINE_MAX + 400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    protolog_sanitise(connector, safe, sizeof safe);

    size_t pos = format_time(line, sizeof line);
    int n = snprintf(line + pos, sizeof line - pos, " %s %c ", session && *session ? session : "-",
                     direction);
    if (n > 0)
        pos += (size_t)n;
    pos = copy_escaped(line, sizeof line - 1, pos, text);
    line[pos++] = '\n';

    if (!logq_put(LOGQ_PROTO, safe, line, pos))
        proto_emit(safe, line, pos);
}
