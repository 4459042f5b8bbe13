/* daemon: one running relaynode (docs/architecture.md §3). Owns the struct node: bootstrap, log, spool,
 * worker pool, the event loop, snapshot loads and reloads (SIGHUP and a periodic safety-net
 * timer; a load runs on a worker, the swap on the loop), the listeners that follow the
 * snapshot, and the SIGTERM/SIGINT drain. Fails closed: no snapshot, no listening socket. */
#ifndef RN_DAEMON_H
#define RN_DAEMON_H
#include <stdbool.h>

struct daemon_opts {
    const char *conf;              /* bootstrap file */
    bool foreground;               /* false: double fork, detach, log "stderr" goes to syslog */
    const char *pidfile;           /* NULL: none */
    bool allow_root;               /* --allow-root: started as root without `user`, stay root */
};

/* Run until SIGTERM/SIGINT and the drain; returns the process exit status (0 after a clean
 * drain, 1 when startup fails; the reason is on stderr or in the log). */
int daemon_run(const struct daemon_opts *o);
#endif
