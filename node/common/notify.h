/* notify: the systemd readiness protocol (sd_notify) without libsystemd. When NOTIFY_SOCKET
 * names an AF_UNIX datagram socket (a path, or "@name" in the abstract namespace), each call
 * sends one datagram there; without it every call does nothing. Never blocks, never fails
 * the caller: a send error is logged once and otherwise ignored. */
#ifndef RN_NOTIFY_H
#define RN_NOTIFY_H

/* Read NOTIFY_SOCKET once (before any call below); later calls use what it named. */
void notify_init(void);
/* Send text (e.g. "READY=1", "STOPPING=1") as one datagram. */
void notify_send(const char *text);
/* Send "STATUS=<fmt...>" (one line, truncated to a bounded buffer). */
void notify_status(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
#endif
