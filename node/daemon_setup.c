/* daemon_setup: everything the daemon does before its loop runs (daemon-private.h): the
 * bootstrap values and limits, the log, the spool (a node must own it), the node's TLS
 * certificate and the named ones its connectors use, SASL, the pid file, the detach, and
 * after it the event base with its worker pools, listeners, committer, delivery and queue.
 * Any failure stops the start with a reason (fail closed). */
#include <errno.h>
#include <sys/resource.h>
#include <event2/event.h>
#include <event2/thread.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "directory/model.h"
#include "directory/base/util.h"
#include "node/daemon-private.h"
#include "node/listener.h"
#include "node/delivery/delivery.h"
#include "node/common/log.h"
#include "node/delivery/queue.h"
#include "node/milter/milter.h"
#include "node/smtp/conncount.h"
#include "node/smtp/saslauth.h"
#include "node/spool/committer.h"
#include "node/common/tlsctx.h"
#include "node/common/node.h"
#include "node/spool/spool.h"
#include "node/common/worker.h"

int daemon_privileges_check(struct daemon *d, const struct daemon_opts *o, char *err,
                            size_t errlen)
{
    const struct rn_bootstrap *b = &d->n.boot;
    const char *secrets[] = {b->bind_password_file, b->cluster_secret_key_file,
                             b->smarthost_auth_file};
    for (size_t i = 0; i < sizeof secrets / sizeof secrets[0]; i++)
        if (privdrop_secret_check(secrets[i], err, errlen) < 0)
            return -1;
    if (geteuid() != 0)
        return 0;                     /* not root: `user` changes nothing */
    if (!b->user || !*b->user) {
        if (o->allow_root)
            return 0;
        return rn_err(err, errlen, "refusing to run as root; set `user` in %s or pass "
                      "--allow-root", o->conf);
    }
    if (privdrop_resolve(b->user, b->group, &d->run_as, err, errlen) < 0)
        return -1;
    d->drop = true;
    return 0;
}

/* The spool (its lock stays held: a lock survives setuid), a log file and the protocol log
 * directory become the user's, so it can go on writing them; then the drop itself. The
 * secret files and certificates are read again later (reconnects, SIGHUP): they must be
 * readable by the user, i.e. owned by it with mode 600. */
int daemon_privileges_drop(struct daemon *d, char *err, size_t errlen)
{
    const struct rn_bootstrap *b = &d->n.boot;
    if (!d->drop)
        return 0;
    const char *log = b->log;
    bool logfile = log && *log && strcmp(log, "stderr") != 0 && strcmp(log, "syslog") != 0;
    if (privdrop_chown_tree(b->spool_dir, &d->run_as, err, errlen) < 0 ||
        (logfile && privdrop_chown_tree(log, &d->run_as, err, errlen) < 0) ||
        privdrop_chown_tree(b->protocol_log_dir, &d->run_as, err, errlen) < 0)
        return -1;
    if (privdrop_apply(&d->run_as, err, errlen) < 0)
        return -1;
    log_fact("-", "node", "privileges-dropped", "user=%s uid=%ld gid=%ld caps=%s", b->user,
             (long)d->run_as.uid, (long)d->run_as.gid, "CAP_NET_BIND_SERVICE");
    return 0;
}

int daemon_write_pidfile(const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return rn_err(err, errlen, "pidfile %s: %s", path, strerror(errno));
    fprintf(f, "%ld\n", (long)getpid());
    if (fclose(f) != 0)
        return rn_err(err, errlen, "pidfile %s: %s", path, strerror(errno));
    return 0;
}

/* Classic double fork: the first child leaves the session of the shell, the second can never
 * reacquire a controlling terminal. The original process exits 0 once the second child runs. */
int daemon_daemonize(char *err, size_t errlen)
{
    pid_t p = fork();
    if (p < 0)
        return rn_err(err, errlen, "fork: %s", strerror(errno));
    if (p > 0)
        _exit(0);
    if (setsid() < 0)
        return rn_err(err, errlen, "setsid: %s", strerror(errno));
    p = fork();
    if (p < 0)
        return rn_err(err, errlen, "fork: %s", strerror(errno));
    if (p > 0)
        _exit(0);
    umask(027);
    int fd = open("/dev/null", O_RDWR);
    if (fd >= 0) {
        dup2(fd, 0); dup2(fd, 1); dup2(fd, 2);
        if (fd > 2)
            close(fd);
    }
    return 0;
}

int daemon_node_setup(struct daemon *d, const struct daemon_opts *o, char *err, size_t errlen)
{
    struct node *n = &d->n;
    if (bootstrap_load(o->conf, &n->boot, err, errlen) < 0)
        return -1;
    _Static_assert((int)BOOT_MILTER_ACCEPT == (int)MILTER_DEFAULT_ACCEPT &&
                   (int)BOOT_MILTER_REJECT == (int)MILTER_DEFAULT_REJECT, "same order");
    char merr[RN_ERRLEN];
    n->milter = milter_cfg_new(n->boot.milter, n->boot.milter_connect_timeout,
                               n->boot.milter_command_timeout,
                               (enum milter_default)n->boot.milter_default_action, merr,
                               sizeof merr);
    if (!n->milter)
        return rn_err(err, errlen, "%s:%u: milter: %s", o->conf, n->boot.milter_line, merr);
    if (daemon_privileges_check(d, o, err, errlen) < 0)
        return -1;
    /* Refuse at start a session cap the descriptor limit cannot hold, rather than meet
     * EMFILE under load (docs/operations.md). */
    struct rlimit rl;
    unsigned cap = 0;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
        return rn_err(err, errlen, "getrlimit(RLIMIT_NOFILE): %s", strerror(errno));
    if (bootstrap_fit_sessions(&n->boot, o->conf, rl.rlim_cur == RLIM_INFINITY ? UINT64_MAX
                               : (uint64_t)rl.rlim_cur, &cap, err, errlen) < 0)
        return -1;
    n->max_sessions = cap;
    n->max_command_line = n->boot.max_command_line;
    n->max_text_line = n->boot.max_text_line;
    d->max_stale = n->boot.max_stale;
    n->spool_reserve = n->boot.spool_reserve;
    d->drain_timeout = n->boot.drain_timeout;
    /* Detached, stderr is /dev/null: "stderr" would lose every line, so use syslog. */
    const char *target = n->boot.log;
    if (!o->foreground && (!target || !*target || strcmp(target, "stderr") == 0))
        target = "syslog";
    if (log_open(target, err, errlen) < 0)
        return -1;
    protolog_set_dir(n->boot.protocol_log_dir);
    char serr[RN_ERRLEN];
    /* A node must own its spool. The lock may be held for a moment by relayctl (queue
     * verbs, --list-spool), so wait a little before concluding another node runs there. */
    for (int tries = 0;; tries++) {
        if (spool_open(n->boot.spool_dir, &n->spool, serr, sizeof serr) < 0) {
            rn_err(err, errlen, "spool: %s", serr);
            return -1;
        }
        if (spool_is_owner(n->spool))
            break;
        spool_free(&n->spool);
        if (tries == 50) {
            rn_err(err, errlen, "spool %s is in use by pid %ld (another relaynode?)",
                   n->boot.spool_dir, (long)spool_owner_pid(n->boot.spool_dir));
            return -1;
        }
        usleep(100 * 1000);
    }
    const char *kernel;
    const char *mode = spool_sync_mode(n->spool, &kernel);
    char qk[160];
    log_fact("-", "spool", "sync-mode", "mode=%s kernel=%s", mode,
             log_quote(kernel, qk, sizeof qk));
    bool cert = n->boot.tls_cert && *n->boot.tls_cert, key = n->boot.tls_key && *n->boot.tls_key;
    if (cert != key)
        return rn_err(err, errlen, "tls_cert and tls_key go together (one is empty)");
    if (cert) {
        char terr[RN_ERRLEN];
        n->tls = tlsctx_new(n->boot.tls_cert, n->boot.tls_key, terr, sizeof terr);
        if (!n->tls)
            return rn_err(err, errlen, "tls: %s", terr);
    }
    char cerr[RN_ERRLEN];
    n->tls_ca = tlsctx_store_new(n->boot.tls_ca_file, cerr, sizeof cerr);
    if (!n->tls_ca)
        return rn_err(err, errlen, "tls_ca_file: %s", cerr);
    n->tls_client = tlsctx_client_new(n->boot.tls_cert, n->boot.tls_key, cerr, sizeof cerr);
    if (!n->tls_client)
        return rn_err(err, errlen, "tls: %s", cerr);
    daemon_certs_sig(&n->boot, DAEMON_SIG_CA, d->tls_sig[DAEMON_SIG_CA], DAEMON_SIGLEN);
    daemon_certs_sig(&n->boot, DAEMON_SIG_CLIENT, d->tls_sig[DAEMON_SIG_CLIENT], DAEMON_SIGLEN);
    /* A tls_cert_dir that is not a directory is a typo, stopped here like a bad tls_cert;
     * a missing NAME.pem inside it only costs the connectors naming it (snapshot_swap). */
    const char *cdir = n->boot.tls_cert_dir;
    if (cdir && *cdir) {
        struct stat st;
        if (stat(cdir, &st) != 0)
            return rn_err(err, errlen, "tls_cert_dir %s: %s", cdir, strerror(errno));
        if (!S_ISDIR(st.st_mode))
            return rn_err(err, errlen, "tls_cert_dir %s: not a directory", cdir);
    }
    if (saslauth_init(&n->boot, err, errlen) < 0)
        return -1;
    d->sasl = true;
    const struct spool_quarantined *q;
    size_t nq = spool_quarantine_list(n->spool, &q);
    for (size_t i = 0; i < nq; i++) {
        char qn[512], qr[1024];
        log_fact("-", "spool", "quarantined", "file=%s reason=%s",
                 log_quote(q[i].name, qn, sizeof qn), log_quote(q[i].reason, qr, sizeof qr));
    }
    return 0;
}

int daemon_loop_setup(struct daemon *d, char *err, size_t errlen)
{
    struct node *n = &d->n;
    /* Threads start here, after the detach: the log's writer first (issue 13). */
    if (log_async_start(err, errlen) < 0)
        return -1;
    if (evthread_use_pthreads() < 0)
        return rn_err(err, errlen, "evthread_use_pthreads failed");
    n->base = event_base_new();
    if (!n->base)
        return rn_err(err, errlen, "event_base_new failed");
    n->worker = worker_new(n->base, WORKER_THREADS);
    if (!n->worker)
        return rn_err(err, errlen, "worker pool: cannot start %d threads", WORKER_THREADS);
    d->listeners = listeners_new(n);
    n->conns = conncount_new();
    n->authworker = worker_new(n->base, AUTH_THREADS);
    if (!n->authworker)
        return rn_err(err, errlen, "auth worker pool: cannot start %d threads", AUTH_THREADS);
    n->committer = committer_new(n->base);
    if (!n->committer)
        return rn_err(err, errlen, "committer: cannot start its thread");
    if (daemon_events_new(d, err, errlen) < 0)
        return -1;
    signal(SIGPIPE, SIG_IGN);         /* a peer that vanishes mid-write is an EPIPE, not death */
    n->delivery = delivery_new(n, err, errlen);
    if (!n->delivery)
        return -1;
    struct queue_opts qo = {n->boot.queue_lifetime, n->boot.retry_min, n->boot.retry_max,
                            n->boot.delivery_concurrency, n->boot.queue_hold};
    n->queue = queue_new(n, n->delivery, &qo, err, errlen);
    if (!n->queue)
        return -1;
    return 0;
}

