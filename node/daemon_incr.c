/* daemon_incr: incremental reloads (issue 17; daemon-private.h). The change watcher hands
 * over the entries RFC 4533 sent (ldapsync.h) on its thread; they wait in a queue guarded by
 * incr_mu and wake the loop, which starts a load. A load takes the whole queue: with a store
 * from an earlier load, a persistent watcher and no reason for a full load, it applies the
 * changes to the store (ldapdir_apply_changes: one search for the version instead of the
 * full load's ten) and swaps in the snapshot built from it; anything the store cannot place
 * (a watcher that started over, a rename with entries beneath, the node's own entry) falls
 * back to the full load in the same job, as do SIGHUP, the periodic safety net, a retry
 * and a polling watcher. Changes delivered before a full load started are in what it reads.
 * Those delivered during it do not wait for it (seconds with 100,000 users): a side job
 * applies them to the last load's store, on a connection of its own, and swaps its snapshot
 * in at once. The full load builds a new store; when it is done, the changes the side jobs
 * took are applied to that store too (the entryCSN check skips what the full load already
 * saw) and only that snapshot is swapped in, so the full load never rolls a change back. A
 * full load that fails drops both stores: the next one is full and reads everything.
 *
 * RELAYNODE_INCREMENTAL=off turns the path off (the watcher then asks for no entries). In a
 * fault-injection build (RN_FAULTS), RELAYNODE_VERIFY_INCREMENTAL=1 makes every incremental
 * load also run a full one and compare the two snapshots' dumps (snapdump.h): the tests
 * count mismatches in the log. */
#include <event2/event.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "directory/ldap/ldapdir.h"
#include "directory/snapdelta.h"
#include "directory/snapdump.h"
#include "directory/base/util.h"
#include "node/common/fault.h"
#include "node/common/log.h"
#include "node/daemon-private.h"

#define INCR_QUEUE_MAX 100000     /* changes waiting; past this the next load is full */

/* Watcher thread: queue the batch (ownership taken) and wake the loop. */
void daemon_incr_batch(void *arg, struct snapdelta_change *v, size_t n)
{
    struct daemon *d = arg;
    pthread_mutex_lock(&d->incr_mu);
    if (d->nq + n > INCR_QUEUE_MAX) {
        d->q_overflow = true;         /* a full load reads it all anyway */
        snapdelta_changes_free(&v, n);
    } else {
        d->q = xrealloc(d->q, (d->nq + n) * sizeof *d->q);
        memcpy(d->q + d->nq, v, n * sizeof *v);
        d->nq += n;
        free(v);
    }
    pthread_mutex_unlock(&d->incr_mu);
    event_active(d->ev_incr, EV_READ, 0);
}

static void on_batch(evutil_socket_t fd, short what, void *arg)
{
    struct daemon *d = arg;
    if (d->stopping || d->n.draining)
        return;
    daemon_load_start(d);             /* or, during a load, one after it */
    daemon_side_start(d);             /* during a full load: the changes at once */
}

bool daemon_incr_setup(struct daemon *d)
{
    const char *on = getenv("RELAYNODE_INCREMENTAL");
    d->incr_on = !(on && (strcmp(on, "off") == 0 || strcmp(on, "0") == 0));
#ifdef RN_FAULTS
    const char *v = getenv("RELAYNODE_VERIFY_INCREMENTAL");
    d->incr_verify = v && strcmp(v, "1") == 0;
#endif
    pthread_mutex_init(&d->incr_mu, NULL);
    d->incr_mu_init = true;
    d->ev_incr = event_new(d->n.base, -1, 0, on_batch, d);
    if (!d->ev_incr)
        d->incr_on = false;
    log_fact("-", "config", "incremental", "mode=%s verify=%s", d->incr_on ? "on" : "off",
             d->incr_verify ? "on" : "off");
    return d->incr_on;
}

void daemon_incr_teardown(struct daemon *d)
{
    if (!d->incr_mu_init)
        return;
    d->incr_mu_init = false;
    if (d->ev_incr)
        event_free(d->ev_incr);
    d->ev_incr = NULL;
    snapdelta_changes_free(&d->q, d->nq);
    d->nq = 0;
    snapdelta_changes_free(&d->replay, d->nreplay);
    d->nreplay = 0;
    ldapdir_free(&d->side_dir);
    snapstore_free(&d->store);
    pthread_mutex_destroy(&d->incr_mu);
}

void daemon_incr_take(struct daemon *d, struct load_job *j)
{
    pthread_mutex_lock(&d->incr_mu);
    j->changes = d->q;
    j->nchanges = d->nq;
    bool overflow = d->q_overflow;
    d->q = NULL;
    d->nq = 0;
    d->q_overflow = false;
    pthread_mutex_unlock(&d->incr_mu);
    /* No job is in flight, so the store is not being touched. */
    j->incremental = d->incr_on && d->store && d->watch_persist && !d->full_wanted && !overflow;
    d->full_wanted = false;
    d->main_full = d->incr_on && !j->incremental;
}

bool daemon_incr_take_side(struct daemon *d, struct load_job *j)
{
    pthread_mutex_lock(&d->incr_mu);
    bool take = d->nq > 0 && !d->q_overflow;
    if (take) {
        j->changes = d->q;
        j->nchanges = d->nq;
        d->q = NULL;
        d->nq = 0;
    }
    pthread_mutex_unlock(&d->incr_mu);
    return take;
}

void daemon_incr_keep(struct daemon *d, struct load_job *j)
{
    if (!j->nchanges)
        return;
    d->replay = xrealloc(d->replay, (d->nreplay + j->nchanges) * sizeof *d->replay);
    memcpy(d->replay + d->nreplay, j->changes, j->nchanges * sizeof *j->changes);
    d->nreplay += j->nchanges;
    free(j->changes);
    j->changes = NULL;
    j->nchanges = 0;
}

static double ms_since(const struct timespec *a)
{
    struct timespec b;
    clock_gettime(CLOCK_MONOTONIC, &b);
    return (double)(b.tv_sec - a->tv_sec) * 1e3 + (double)(b.tv_nsec - a->tv_nsec) / 1e6;
}

/* Verification: a full load next to the incremental one; the same version must give the
 * same dump (another version means the directory moved meanwhile: skipped). */
static void verify(struct daemon *d, struct ldapdir *dir, struct load_job *j)
{
    struct rn_snapshot *full = NULL;
    char err[RN_ERRLEN];
    if (ldapdir_load_store(dir, &d->n.boot, NULL, &full, err, sizeof err) != DIR_FOUND) {
        j->verify = VERIFY_SKIPPED;
        return;
    }
    if (strcmp(full->version, j->snap->version) != 0) {
        j->verify = VERIFY_SKIPPED;
    } else {
        char *a = snapshot_dump(full, false), *b = snapshot_dump(j->snap, false);
        j->verify = strcmp(a, b) == 0 ? VERIFY_OK : VERIFY_MISMATCH;
        if (j->verify == VERIFY_MISMATCH)
            snapshot_dump_diff(a, b, j->verify_diff, sizeof j->verify_diff);
        free(a);
        free(b);
    }
    snapshot_unref(&full);
}

enum dir_result daemon_incr_load(struct daemon *d, struct load_job *j)
{
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    enum dir_result rc = DIR_NOTFOUND;
    if (j->incremental && d->store && j->nchanges == 0 && d->n.snap &&
        snapstore_version(d->store) && strcmp(snapstore_version(d->store),
                                              d->n.snap->version) == 0) {
        /* News of a version the watcher's changes already brought: what runs is it. The
         * loop swaps snapshots only when a load is done, and this is the one in flight. */
        j->snap = snapshot_ref(d->n.snap);
        j->want_nodes = false;
        j->load_ms = ms_since(&t0);
        return DIR_FOUND;
    }
    if (j->incremental && d->store) {
        bool nodes_dirty = false;
        rc = ldapdir_apply_changes(d->dir, &d->n.boot, d->store, j->changes, j->nchanges,
                                   &j->snap, &nodes_dirty, j->err, sizeof j->err);
        if (rc != DIR_FOUND)
            snapstore_free(&d->store);        /* possibly half applied: never used again */
        if (rc == DIR_NOTFOUND)
            rn_strlcpy(j->why_full, j->err, sizeof j->why_full);
        if (rc == DIR_FOUND && !nodes_dirty)
            j->want_nodes = false;            /* the peers are as the last load read them */
        if (rc == DIR_FOUND && d->incr_verify)
            verify(d, d->dir, j);
    }
    if (rc == DIR_NOTFOUND) {                 /* full: asked for, or the fallback */
        /* Into a store of its own: d->store may serve a side job meanwhile (the loop
         * installs this one when the load is done). */
        j->incremental = false;
        rc = ldapdir_load_store(d->dir, &d->n.boot, d->incr_on ? &j->store : NULL, &j->snap,
                                j->err, sizeof j->err);
        if (rc == DIR_FOUND)
            fault_sleep("full-load");         /* tests: a change lands after the read */
    }
    j->load_ms = ms_since(&t0);
    return rc;
}

void daemon_incr_side(struct daemon *d, struct load_job *j)
{
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    bool nodes_dirty = false;         /* the full load in flight reads the peers anyway */
    j->rc = DIR_FOUND;
    if (!d->side_dir)
        j->rc = ldapdir_open(&d->n.boot, &d->side_dir, j->err, sizeof j->err);
    if (j->rc == DIR_FOUND)
        j->rc = ldapdir_apply_changes(d->side_dir, &d->n.boot, d->store, j->changes,
                                      j->nchanges, &j->snap, &nodes_dirty, j->err,
                                      sizeof j->err);
    if (j->rc != DIR_FOUND) {
        snapstore_free(&d->store);            /* possibly half applied: never used again */
        if (j->rc != DIR_NOTFOUND)
            ldapdir_free(&d->side_dir);
        return;
    }
    if (d->incr_verify)
        verify(d, d->side_dir, j);
    daemon_certs_read(d, &j->certs, j->snap);
    j->load_ms = ms_since(&t0);
}

void daemon_incr_replay(struct daemon *d, struct load_job *j)
{
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    bool nodes_dirty = false;
    struct rn_snapshot *s = NULL;
    j->rc = ldapdir_apply_changes(d->dir, &d->n.boot, j->store, j->changes, j->nchanges, &s,
                                  &nodes_dirty, j->err, sizeof j->err);
    if (j->snap)
        snapshot_unref(&j->snap);
    j->snap = s;
    if (j->rc == DIR_NOTFOUND) {
        /* What the store cannot place (a watcher that started over, ...): read it all again,
         * now that no side job runs, as an incremental load falls back. */
        rn_strlcpy(j->why_full, j->err, sizeof j->why_full);
        snapstore_free(&j->store);
        j->rc = ldapdir_load_store(d->dir, &d->n.boot, &j->store, &j->snap, j->err,
                                   sizeof j->err);
        nodes_dirty = true;
    }
    if (j->rc == DIR_FOUND && nodes_dirty && j->want_nodes) {
        ldapadmin_nodes_free(&j->nodes, j->nnodes);
        j->nnodes = 0;
        j->rc = ldapadmin_list_nodes(d->dir, d->n.boot.base_dn, &j->nodes, &j->nnodes, j->err,
                                     sizeof j->err);
    }
    if (j->rc != DIR_FOUND) {
        snapstore_free(&j->store);
        ldapdir_free(&d->dir);
        if (j->snap)
            snapshot_unref(&j->snap);
    }
    j->load_ms += ms_since(&t0);
}

void daemon_incr_done(struct daemon *d, const struct load_job *j)
{
    static const char *const vnames[] = {"off", "ok", "mismatch", "skipped"};
    char qw[RN_ERRLEN + 64], qd[1400];
    if (j->incremental && j->rc == DIR_FOUND) {
        d->incr_applied++;
        d->verify_mismatches += j->verify == VERIFY_MISMATCH;
        log_fact("-", "config", "incremental-load",
                 "changes=%zu ms=%.3f verify=%s applied_total=%llu mismatches=%llu%s%s%s",
                 j->nchanges, j->load_ms, vnames[j->verify],
                 (unsigned long long)d->incr_applied, (unsigned long long)d->verify_mismatches,
                 j->side ? " beside=full-load" : "",
                 j->verify == VERIFY_MISMATCH ? " diff=" : "",
                 j->verify == VERIFY_MISMATCH ? log_quote(j->verify_diff, qd, sizeof qd) : "");
    } else if (j->rc == DIR_FOUND) {
        log_fact("-", "config", "full-load", "changes=%zu ms=%.3f reason=%s replayed=%s",
                 j->nchanges, j->load_ms, j->why_full[0] ? log_quote(j->why_full, qw, sizeof qw)
                                                         : "requested",
                 j->replay ? "yes" : "no");
    }
}
