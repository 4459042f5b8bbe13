/* log: greppable fact lines, "<id> <subsystem> <event> key=value ...", to stderr, syslog or a
 * file (bootstrap key log). Values with spaces or quotes are quoted; control bytes escaped.
 * Secrets are never passed here: callers mask them where the line is made (docs/style.md 13). */
#ifndef RN_LOG_H
#define RN_LOG_H
#include <stdarg.h>

int log_open(const char *target, char *err, unsigned long errlen); /* "stderr"|"syslog"|path */
/* Stops the writer thread (log_async_stop) first. */
void log_close(void);
/* From now on lines are queued (bounded, LOGQ_BYTES) and written by a thread of their own,
 * in order; a full queue drops lines, counted and reported ("- log dropped lines=N") when
 * the writer catches up. Start it after any fork. -1 with err. Before it, writes are
 * synchronous (tools, tests, start-up). */
int log_async_start(char *err, unsigned long errlen);
/* Write what is queued, stop the thread; later lines are synchronous again. */
void log_async_stop(void);
/* SIGHUP (logrotate): reopen the fact log file by its path and close the protocol log files
 * (they reopen by name). No-op for stderr/syslog. With the writer thread it is queued behind
 * the lines already made, in room kept for it (never dropped, never done on the caller's
 * thread), and returns 0: the writer logs a failure. Without it, -1 with err: the old file
 * stays in use. */
int log_reopen(char *err, unsigned long errlen);
/* id: session or queue id, "-" for none. fmt is the key=value tail, printf-style. */
void log_fact(const char *id, const char *subsystem, const char *event, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Quote a value for a key=value line into buf (always terminated); returns buf. */
const char *log_quote(const char *value, char *buf, unsigned long len);

/* Per-connector protocol log (connectors with ProtocolLoggingLevel Verbose): one file per
 * connector under dir, lines "<time> <session> <direction> <text>". */
void protolog_set_dir(const char *dir);
void protolog_write(const char *connector, const char *session, char direction,
                    const char *fmt, ...) __attribute__((format(printf, 4, 5)));
#endif
