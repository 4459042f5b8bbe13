/* daemon_certs: the node's certificates (daemon-private.h). Reading a PEM file is disk work,
 * so it runs on the worker (docs/style.md 7, issue 13): at a snapshot swap the load job
 * reads the names the new snapshot adds, on SIGHUP a job of its own reads every file again;
 * the loop only swaps the contexts in. Sessions keep no pointer into the sets (node_tls_for
 * at STARTTLS; an upgraded SSL holds its own SSL_CTX reference), so a swap is safe at any
 * moment. SIGHUP also reads tls_ca_file (the trust store, n->tls_ca) and the client context
 * deliveries present (n->tls_client) again; a delivery under way holds its own references
 * (smtpout.h), so the old ones are freed when the last user lets go. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "directory/model.h"
#include "directory/base/util.h"
#include "node/daemon-private.h"
#include "node/common/fault.h"
#include "node/common/log.h"
#include "node/common/tlsctx.h"
#include "node/common/node.h"
#include "node/common/worker.h"
#include "node/delivery/delivery.h"

static struct tlsctx_named *named_find(struct tlsctx_named *set, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(set[i].name, name) == 0)
            return &set[i];
    return NULL;
}

static bool have_name(const struct certs_job *c, const char *name)
{
    for (size_t i = 0; i < c->nhave; i++)
        if (strcmp(c->have[i], name) == 0)
            return true;
    return false;
}

static size_t sig_one(const char *path, char *out, size_t len)
{
    struct stat st;
    if (!path || !*path || len == 0)
        return 0;
    int k = stat(path, &st) != 0 ? snprintf(out, len, "%s missing;", path)
        : snprintf(out, len, "%s %llu:%llu:%lld:%lld.%09ld;", path,
                   (unsigned long long)st.st_dev, (unsigned long long)st.st_ino,
                   (long long)st.st_size, (long long)st.st_mtim.tv_sec, st.st_mtim.tv_nsec);
    return k < 0 ? 0 : (size_t)k < len ? (size_t)k : len - 1;
}

void daemon_certs_sig(const struct rn_bootstrap *b, int which, char *out, size_t len)
{
    out[0] = '\0';
    if (which == DAEMON_SIG_CA) {
        sig_one(b->tls_ca_file, out, len);
    } else {
        size_t k = sig_one(b->tls_cert, out, len);
        sig_one(b->tls_key, out + k, len - k);
    }
}

void daemon_certs_begin(struct daemon *d, struct certs_job *c, bool reread)
{
    struct node *n = &d->n;
    memset(c, 0, sizeof *c);
    c->reread = reread;
    c->node_wanted = reread && n->tls != NULL;
    if (reread) {
        memcpy(c->sig, d->tls_sig, sizeof c->sig);
        return;
    }
    c->have = xcalloc(n->ntls_named ? n->ntls_named : 1, sizeof *c->have);
    for (size_t i = 0; i < n->ntls_named; i++)
        if (n->tls_named[i].ctx)
            c->have[c->nhave++] = xstrdup(n->tls_named[i].name);
}

/* Worker thread: only the bootstrap (fixed after start) and snap (immutable) are read. */
void daemon_certs_read(struct daemon *d, struct certs_job *c, const struct rn_snapshot *snap)
{
    const struct rn_bootstrap *b = &d->n.boot;
    fault_sleep("cert-read");
    if (c->node_wanted)
        c->node = tlsctx_new(b->tls_cert, b->tls_key, c->node_err, sizeof c->node_err);
    for (int w = 0; c->reread && w < 2; w++) {
        char now[DAEMON_SIGLEN];
        daemon_certs_sig(b, w, now, sizeof now);
        if (!(c->changed[w] = strcmp(now, c->sig[w]) != 0))
            continue;                  /* unchanged files: the contexts in use stay */
        memcpy(c->sig[w], now, sizeof now);
        if (w == DAEMON_SIG_CA)
            c->ca = tlsctx_store_new(b->tls_ca_file, c->ca_err, sizeof c->ca_err);
        else
            c->client = tlsctx_client_new(b->tls_cert, b->tls_key, c->client_err,
                                          sizeof c->client_err);
    }
    for (size_t i = 0; snap && i < snap->nconnectors; i++) {
        const char *name = snap->connectors[i].tls_cert_name;
        if (!name || have_name(c, name) || named_find(c->named, c->nnamed, name))
            continue;
        char terr[RN_ERRLEN], qe[RN_ERRLEN + 64];
        if (tlsctx_named_add(&c->named, &c->nnamed, b->tls_cert_dir, name, terr,
                             sizeof terr) < 0)
            log_fact("-", "tls", "certificate-failed", "name=%s error=%s", name,
                     log_quote(terr, qe, sizeof qe));
    }
}

void daemon_certs_end(struct certs_job *c)
{
    for (size_t i = 0; i < c->nhave; i++)
        free(c->have[i]);
    free(c->have);
    tlsctx_named_free(&c->named, &c->nnamed);
    tlsctx_free(&c->node);
    tlsctx_store_free(c->ca);
    tlsctx_client_free(c->client);
    if (c->snap)
        snapshot_unref(&c->snap);
    memset(c, 0, sizeof *c);
}

void daemon_certs_load(struct node *n, const struct rn_snapshot *snap, struct certs_job *c)
{
    struct tlsctx_named *named = NULL;
    size_t nnamed = 0;
    for (size_t i = 0; i < snap->nconnectors; i++) {
        const char *name = snap->connectors[i].tls_cert_name;
        if (!name || named_find(named, nnamed, name))
            continue;
        struct tlsctx_named *f = c ? named_find(c->named, c->nnamed, name) : NULL;
        struct tlsctx_named *o = named_find(n->tls_named, n->ntls_named, name);
        struct tlsctx *ctx;
        if (f) {                       /* read on the worker (a failure was logged there) */
            ctx = f->ctx;
            f->ctx = NULL;
        } else if (o && o->ctx && !(c && c->reread)) {
            ctx = o->ctx;              /* loaded before: not read again */
            o->ctx = NULL;
        } else {
            /* A name no worker read (a swap raced a SIGHUP job): read here, rarely. */
            char terr[RN_ERRLEN], qe[RN_ERRLEN + 64];
            if (tlsctx_named_add(&named, &nnamed, n->boot.tls_cert_dir, name, terr,
                                 sizeof terr) < 0)
                log_fact("-", "tls", "certificate-failed", "name=%s error=%s", name,
                         log_quote(terr, qe, sizeof qe));
            continue;
        }
        named = xrealloc(named, (nnamed + 1) * sizeof *named);
        named[nnamed++] = (struct tlsctx_named){xstrdup(name), ctx};
    }
    tlsctx_named_free(&n->tls_named, &n->ntls_named);
    n->tls_named = named;
    n->ntls_named = nnamed;
}

struct reread_job {
    struct daemon *d;
    struct certs_job c;
};

static void reread_run(void *arg)
{
    struct reread_job *j = arg;
    daemon_certs_read(j->d, &j->c, j->c.snap);
}

/* Swap *slot for the one read (*fresh, taken) and remember the files' sig, or keep it
 * when that failed (logged; the next SIGHUP tries again). Whether it swapped. */
static bool reread_swap(struct daemon *d, struct certs_job *c, int w, void **slot,
                        void **fresh, void (*drop)(void *), const char *what, const char *why)
{
    char qe[RN_ERRLEN + 64];
    if (!c->changed[w])
        return false;
    if (*fresh) {
        drop(*slot);
        *slot = *fresh;
        *fresh = NULL;
        memcpy(d->tls_sig[w], c->sig[w], sizeof d->tls_sig[w]);
        log_fact("-", "tls", "reloaded", "what=%s", what);
        return true;
    } else {
        log_fact("-", "tls", "reload-failed", "what=%s error=%s keeping=current", what,
                 log_quote(why, qe, sizeof qe));
        return false;
    }
}

/* A node certificate that no longer loads keeps the one in use (logged), never drops
 * STARTTLS; the named ones follow what the files say now. The trust store and the client
 * context likewise keep the ones in use when the files no longer load. */
static void reread_done(void *arg)
{
    struct reread_job *j = arg;
    struct node *n = &j->d->n;
    if (!j->d->stopping) {
        if (j->c.node_wanted && j->c.node) {
            tlsctx_free(&n->tls);
            n->tls = j->c.node;
            j->c.node = NULL;
            log_fact("-", "tls", "certificate-reloaded", "name=%s", "node");
        } else if (j->c.node_wanted) {
            char qe[RN_ERRLEN + 64];
            log_fact("-", "tls", "certificate-failed", "name=node error=%s keeping=current",
                     log_quote(j->c.node_err, qe, sizeof qe));
        }
        bool ca = reread_swap(j->d, &j->c, DAEMON_SIG_CA, &n->tls_ca, &j->c.ca,
                              tlsctx_store_free, "tls_ca_file", j->c.ca_err);
        bool cl = reread_swap(j->d, &j->c, DAEMON_SIG_CLIENT, &n->tls_client, &j->c.client,
                              tlsctx_client_free, "client-certificate", j->c.client_err);
        if (ca || cl)
            delivery_idle_drop(n->delivery);   /* parked connections used the old ones */
        if (n->snap)
            daemon_certs_load(n, n->snap, &j->c);
    }
    daemon_certs_end(&j->c);
    free(j);
}

void daemon_certs_reread(struct daemon *d)
{
    struct reread_job *j = xcalloc(1, sizeof *j);
    j->d = d;
    daemon_certs_begin(d, &j->c, true);
    j->c.snap = d->n.snap ? snapshot_ref(d->n.snap) : NULL;
    worker_submit(d->n.worker, reread_run, reread_done, j);
}
