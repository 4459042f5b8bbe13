/* ldapsync: the change watcher (see ldapsync.h, schema/cluster-protocol.md §5).
 *
 * refreshAndPersist is requested with the RFC 4533 Sync Request control on a plain
 * ldap_search_ext and the responses are read one message at a time, rather than through
 * libldap's ldap_sync_init/ldap_sync_poll: in 2.5 those read LDAP_MSG_RECEIVED chains but
 * hand the chain's *first* message to every handler (an intermediate after an entry in one
 * chain then fails to parse and ends the sync), and ldap_sync_init loops through the whole
 * refresh phase with no way to stop it. We do not need their entry bookkeeping anyway: an
 * entry message means "something under base changed", a syncInfo intermediate "something
 * in the database changed" (a user or group: the recipient set), and the
 * version is then read from the suffix's contextCSN exactly as the loader reads it
 * (ldapdir_version_read), reported only when it differs from the last one. The fd is polled
 * together with a stop pipe, so ldapsync_stop is prompt. Every poll_s seconds the watcher
 * also probes the server (a dead peer without a FIN would otherwise look idle forever) and
 * rereads the version (a safety net for a change whose message was lost).
 *
 * With a batch callback (the node's incremental reload, issue 17) the search asks for every
 * attribute and entryCSN, and once the refresh stage is over (the syncInfo refreshDelete or
 * refreshPresent that ends it, RFC 4533 §3.4) each entry is handed over as a change: its
 * Sync State control says add, modify or delete and carries the entryUUID. A newCookie
 * intermediate in the persist stage is a change outside base (a user: OUTSIDE); a syncIdSet
 * there, which names entries without their content, asks for a full reload (RESYNC). */
#include "directory/ldap/ldapsync.h"
#include <errno.h>
#include <fcntl.h>
#include <lber.h>
#include <ldap.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "directory/ldap/ldapdir-private.h"
#include "directory/ldap/ldapdir.h"
#include "directory/snapdelta.h"
#include "directory/base/util.h"

#define BACKOFF_MIN_S 1
#define BACKOFF_MAX_S 30
#define BATCH_MAX 4096            /* changes handed over at once, at most */

struct ldapsync {
    const struct rn_bootstrap *b;
    struct ldapsync_opts o;
    ldapsync_fn fn;
    void *arg;
    pthread_t thread;
    int stop_pipe[2];
    char *last;                    /* last version reported; owned by the thread */
    char *last_mark;               /* poll mode: last change mark; owned by the thread */
    bool down;                     /* DOWN reported and not yet UP again */
    bool persist_stage;            /* the refresh stage of the current search is over */
    struct snapdelta_change *bv;   /* owned: changes not handed over yet */
    size_t bn;
};

enum run_end { END_STOP, END_DOWN, END_FALLBACK };

static bool stopping(struct ldapsync *s, int timeout_ms)
{
    struct pollfd p = {s->stop_pipe[0], POLLIN, 0};
    return poll(&p, 1, timeout_ms) > 0;
}

static void report_version(struct ldapsync *s, struct ldapdir *d)
{
    char *v = ldapdir_version_read(d, s->b->base_dn);
    if (v && (!s->last || strcmp(v, s->last) != 0)) {
        free(s->last);
        s->last = v;
        s->fn(s->arg, LDAPSYNC_VERSION, v, NULL);
        return;
    }
    free(v);
}

static void report_up(struct ldapsync *s, const char *how)
{
    s->down = false;
    s->fn(s->arg, LDAPSYNC_UP, NULL, how);
}

static void report_down(struct ldapsync *s, const char *why)
{
    s->down = true;
    s->fn(s->arg, LDAPSYNC_DOWN, NULL, why);
}

/* A cheap read that must succeed on a live server: the base entry itself. */
static int probe(LDAP *ld, const char *base, long timeout_s)
{
    char *attrs[] = {LDAP_NO_ATTRS, NULL};
    struct timeval tv = {timeout_s, 0};
    LDAPMessage *res = NULL;
    int rc = ldap_search_ext_s(ld, base, LDAP_SCOPE_BASE, "(objectClass=*)", attrs, 0, NULL,
                               NULL, &tv, 1, &res);
    ldap_msgfree(res);
    return rc;
}

/* Start the persistent search: the Sync Request control {mode refreshAndPersist, no cookie,
 * reloadHint FALSE} (RFC 4533 §2.2), critical so a server without it says so. */
static int sync_start(LDAP *ld, const char *base, bool entries, int *msgid)
{
    BerElement *ber = ber_alloc_t(LBER_USE_DER);
    if (!ber)
        return LDAP_NO_MEMORY;
    LDAPControl ctrl = {0}, *ctrls[2] = {&ctrl, NULL};
    int rc = LDAP_OTHER;
    if (ber_printf(ber, "{eb}", (ber_int_t)LDAP_SYNC_REFRESH_AND_PERSIST, (ber_int_t)0) >= 0 &&
        ber_flatten2(ber, &ctrl.ldctl_value, 0) == 0) {
        ctrl.ldctl_oid = LDAP_CONTROL_SYNC;
        ctrl.ldctl_iscritical = 1;
        char *none[] = {LDAP_NO_ATTRS, NULL}, *all[] = {"*", "entryCSN", NULL};
        rc = ldap_search_ext(ld, base, LDAP_SCOPE_SUBTREE, "(objectClass=*)",
                             entries ? all : none, 0, ctrls, NULL, NULL, 0, msgid);
    }
    ber_free(ber, 1);
    return rc;
}

static void batch_add(struct ldapsync *s, enum snapdelta_op op, struct snapdelta_change **out)
{
    s->bv = xrealloc(s->bv, (s->bn + 1) * sizeof *s->bv);
    *out = &s->bv[s->bn++];
    memset(*out, 0, sizeof **out);
    (*out)->op = op;
}

static void batch_flush(struct ldapsync *s)
{
    if (s->bn && s->o.batch)
        s->o.batch(s->arg, s->bv, s->bn);
    else
        snapdelta_changes_free(&s->bv, s->bn);
    s->bv = NULL;
    s->bn = 0;
}

static int csn_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The version a sync cookie stands for ("rid=000,csn=A;B" -> "A,B", sorted as the loader
 * joins contextCSN values); NULL when it holds no CSN. Caller frees. */
static char *cookie_version(const struct berval *c)
{
    if (!c->bv_val || !c->bv_len || c->bv_len > 4096)
        return NULL;
    char *text = xstrndup(c->bv_val, c->bv_len), *p = strstr(text, "csn=");
    char *out = NULL;
    if (p && (p == text || p[-1] == ',')) {
        p += 4;
        char *end = strchr(p, ',');       /* a CSN holds no ',' */
        if (end)
            *end = '\0';
        char *v[64];
        size_t n = 0;
        for (char *save = NULL, *t = strtok_r(p, ";", &save); t && n < 64;
             t = strtok_r(NULL, ";", &save))
            v[n++] = t;
        qsort(v, n, sizeof *v, csn_cmp);
        size_t len = 1;
        for (size_t i = 0; i < n; i++)
            len += strlen(v[i]) + 1;
        out = n ? xcalloc(len, 1) : NULL;
        for (size_t i = 0; i < n; i++) {
            if (i)
                strcat(out, ",");
            strcat(out, v[i]);
        }
    }
    free(text);
    return out;
}

/* An entry of the persist stage as a change: the Sync State control {state, entryUUID,
 * cookie} (RFC 4533 §2.3). */
static void entry_change(struct ldapsync *s, LDAP *ld, LDAPMessage *m)
{
    LDAPControl **ctrls = NULL;
    ber_int_t state = -1;
    struct berval uuid = {0, NULL}, cookie = {0, NULL};
    LDAPControl *c = ldap_get_entry_controls(ld, m, &ctrls) == LDAP_SUCCESS
        ? ldap_control_find(LDAP_CONTROL_SYNC_STATE, ctrls, NULL) : NULL;
    BerElement *ber = c ? ber_init(&c->ldctl_value) : NULL;
    ber_len_t len;
    if (!ber || ber_scanf(ber, "{em", &state, &uuid) == LBER_ERROR)
        state = -1;
    else if (ber_peek_tag(ber, &len) == LBER_OCTETSTRING &&
             ber_scanf(ber, "m", &cookie) == LBER_ERROR)
        cookie.bv_val = NULL;
    struct snapdelta_change *ch;
    if (state < LDAP_SYNC_ADD || state > LDAP_SYNC_DELETE) {
        batch_add(s, SNAPDELTA_RESYNC, &ch);       /* an entry that cannot be placed */
    } else if (state == LDAP_SYNC_DELETE) {
        batch_add(s, SNAPDELTA_DELETE, &ch);
        char *dn = ldap_get_dn(ld, m);
        dir_entry_init(&ch->e, dn ? dn : "");
        ldap_memfree(dn);
    } else {
        batch_add(s, SNAPDELTA_PUT, &ch);
        ch->added = state == LDAP_SYNC_ADD;
        ldapdir_entry_from_msg(ld, m, &ch->e);
        const char *csn = dir_entry_first(&ch->e, "entryCSN");
        ch->csn = csn ? xstrdup(csn) : NULL;
    }
    if (state >= LDAP_SYNC_ADD) {
        snapdelta_uuid_format(uuid.bv_val, uuid.bv_len, true, ch->uuid);
        ch->version = cookie_version(&cookie);
    }
    if (ber)
        ber_free(ber, 1);
    ldap_controls_free(ctrls);
}

/* A syncInfo intermediate (RFC 4533 §2.5): the end of the refresh stage, or news. */
static void info_change(struct ldapsync *s, LDAP *ld, LDAPMessage *m)
{
    char *oid = NULL;
    struct berval *data = NULL, cookie = {0, NULL};
    ber_tag_t tag = LBER_DEFAULT;
    char *version = NULL;
    if (ldap_parse_intermediate(ld, m, &oid, &data, NULL, 0) == LDAP_SUCCESS && oid &&
        strcmp(oid, LDAP_SYNC_INFO) == 0 && data) {
        BerElement *ber = ber_init(data);
        ber_len_t len;
        if (ber) {
            tag = ber_peek_tag(ber, &len);
            if (tag == LDAP_TAG_SYNC_NEW_COOKIE && ber_scanf(ber, "m", &cookie) != LBER_ERROR)
                version = cookie_version(&cookie);
            ber_free(ber, 1);
        }
    }
    ldap_memfree(oid);
    ber_bvfree(data);
    struct snapdelta_change *ch;
    if (tag == LDAP_TAG_SYNC_REFRESH_DELETE || tag == LDAP_TAG_SYNC_REFRESH_PRESENT) {
        s->persist_stage = true;
    } else if (s->persist_stage) {
        batch_add(s, tag == LDAP_TAG_SYNC_NEW_COOKIE ? SNAPDELTA_OUTSIDE : SNAPDELTA_RESYNC,
                  &ch);
        ch->version = version;
        version = NULL;
    }
    free(version);
}

/* Read every message already there for msgid. 1 = an entry arrived (something under base
 * changed), 0 = nothing new, -1 = the connection failed, or the search ended (*result).
 * With a batch callback the persist stage's changes are handed over before returning. */
static int sync_drain(struct ldapsync *s, LDAP *ld, int msgid, int *result)
{
    struct timeval zero = {0, 0};
    int got = 0;
    for (;;) {
        LDAPMessage *m = NULL;
        int t = ldap_result(ld, msgid, LDAP_MSG_ONE, &zero, &m);
        if (t == 0) {
            batch_flush(s);
            return got;
        }
        if (t < 0) {
            ldap_get_option(ld, LDAP_OPT_RESULT_CODE, result);
            batch_flush(s);
            return -1;
        }
        if (t == LDAP_RES_SEARCH_RESULT) {
            int code = LDAP_OTHER;
            ldap_parse_result(ld, m, &code, NULL, NULL, NULL, NULL, 1);
            *result = code;
            batch_flush(s);
            return -1;
        }
        /* In the persist stage every change under base, deletes included, is an entry
         * (RFC 4533 §3.4); intermediates there are syncInfo newCookie messages, which
         * syncprov sends for changes elsewhere in the database. Those are news too: the
         * users and groups outside base are the recipient set's source (ldaprcpt.c), and
         * the caller reports a version only when contextCSN really moved. */
        if (t == LDAP_RES_SEARCH_ENTRY || t == LDAP_RES_SEARCH_REFERENCE ||
            t == LDAP_RES_INTERMEDIATE)
            got = 1;
        if (s->o.batch && t == LDAP_RES_SEARCH_ENTRY && s->persist_stage)
            entry_change(s, ld, m);
        else if (s->o.batch && t == LDAP_RES_INTERMEDIATE)
            info_change(s, ld, m);
        ldap_msgfree(m);
        if (s->bn >= BATCH_MAX)
            batch_flush(s);
    }
}

static enum run_end run_persist(struct ldapsync *s, struct ldapdir *d, char *why, size_t len)
{
    LDAP *ld = ldapdir_handle(d);
    int msgid = -1, fd = -1, result = LDAP_SUCCESS;
    int rc = sync_start(ld, s->b->base_dn, s->o.batch != NULL, &msgid);
    if (rc != LDAP_SUCCESS) {
        rn_err(why, len, "sync search: %s", ldap_err2string(rc));
        return END_DOWN;
    }
    if (ldap_get_option(ld, LDAP_OPT_DESC, &fd) != LDAP_OPT_SUCCESS || fd < 0) {
        rn_err(why, len, "no connection descriptor");
        return END_DOWN;
    }
    report_up(s, "persist");
    s->persist_stage = false;
    if (s->o.batch) {                     /* what happened while no search ran is unknown */
        struct snapdelta_change *ch;
        batch_add(s, SNAPDELTA_RESYNC, &ch);
        batch_flush(s);
    }
    report_version(s, d);
    unsigned poll_ms = (s->o.poll_s ? s->o.poll_s : 10) * 1000;
    struct timespec last_probe;
    clock_gettime(CLOCK_MONOTONIC, &last_probe);
    for (;;) {
        /* Messages may already be queued inside libldap (read while a version was read),
         * where poll() cannot see them: drain before sleeping. */
        int r;
        while ((r = sync_drain(s, ld, msgid, &result)) == 1)
            report_version(s, d);
        if (r < 0)
            break;
        struct pollfd p[2] = {{s->stop_pipe[0], POLLIN, 0}, {fd, POLLIN, 0}};
        int n = poll(p, 2, 1000);
        if (n > 0 && p[0].revents)
            return END_STOP;
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        if ((now.tv_sec - last_probe.tv_sec) * 1000 >= (long)poll_ms) {
            last_probe = now;
            rc = probe(ld, s->b->base_dn, s->b->ldap_timeout);
            if (rc != LDAP_SUCCESS) {
                rn_err(why, len, "probe: %s", ldap_err2string(rc));
                return END_DOWN;
            }
            report_version(s, d);
        }
    }
    if (result == LDAP_UNAVAILABLE_CRITICAL_EXTENSION || result == LDAP_PROTOCOL_ERROR ||
        result == LDAP_UNWILLING_TO_PERFORM) {
        rn_err(why, len, "the server refuses RFC 4533 sync: %s", ldap_err2string(result));
        return s->o.mode == LDAPSYNC_AUTO ? END_FALLBACK : END_DOWN;
    }
    rn_err(why, len, "sync search ended: %s", ldap_err2string(result));
    return END_DOWN;
}

static enum run_end run_poll(struct ldapsync *s, struct ldapdir *d, char *why, size_t len)
{
    LDAP *ld = ldapdir_handle(d);
    report_up(s, "poll");
    unsigned poll_ms = (s->o.poll_s ? s->o.poll_s : 10) * 1000;
    for (;;) {
        int rc = probe(ld, s->b->base_dn, s->b->ldap_timeout);
        if (rc != LDAP_SUCCESS) {
            rn_err(why, len, "poll: %s", ldap_err2string(rc));
            return END_DOWN;
        }
        char *before = s->last ? xstrdup(s->last) : NULL;
        report_version(s, d);
        char *mark = ldapdir_change_mark(d, s->b->base_dn);
        bool version_moved = (before == NULL) != (s->last == NULL) ||
                             (before && s->last && strcmp(before, s->last) != 0);
        if (mark && s->last_mark && strcmp(mark, s->last_mark) != 0 && !version_moved)
            s->fn(s->arg, LDAPSYNC_CHANGED, mark, NULL);
        free(before);
        if (mark) {
            free(s->last_mark);
            s->last_mark = mark;
        }
        if (stopping(s, (int)poll_ms))
            return END_STOP;
    }
}

/* The AD profile (adwatch.c): each version it reads, reported when it moved. */
static void ad_version(void *arg, const char *v)
{
    struct ldapsync *s = arg;
    if (!s->last || strcmp(v, s->last) != 0) {
        free(s->last);
        s->last = xstrdup(v);
        s->fn(s->arg, LDAPSYNC_VERSION, v, NULL);
    }
}

static enum run_end run_ad(struct ldapsync *s, struct ldapdir *d, char *why, size_t len)
{
    report_up(s, "ad");
    return adwatch_run(d, s->b, s->stop_pipe[0], ad_version, s, why, len) == 0 ? END_STOP
                                                                               : END_DOWN;
}

static void *watch(void *arg)
{
    struct ldapsync *s = arg;
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, NULL);     /* signals are the loop's */
    unsigned backoff = BACKOFF_MIN_S;
    bool poll_only = s->o.mode == LDAPSYNC_POLL;
    while (!stopping(s, 0)) {
        struct ldapdir *d = NULL;
        char err[RN_ERRLEN] = "";
        enum dir_result r = ldapdir_open(s->b, &d, err, sizeof err);
        enum run_end end = END_DOWN;
        if (r == DIR_FOUND) {
            end = s->b->directory_profile == BOOT_PROFILE_AD ? run_ad(s, d, err, sizeof err)
                  : poll_only ? run_poll(s, d, err, sizeof err) : run_persist(s, d, err, sizeof err);
            if (end != END_DOWN)
                backoff = BACKOFF_MIN_S;
        }
        ldapdir_free(&d);
        if (end == END_STOP)
            break;
        if (end == END_FALLBACK) {
            poll_only = true;
            report_down(s, err);          /* say why we now poll; UP "poll" follows */
            continue;
        }
        if (!s->down || r != DIR_FOUND)
            report_down(s, err);
        if (stopping(s, (int)backoff * 1000))
            break;
        backoff = backoff * 2 > BACKOFF_MAX_S ? BACKOFF_MAX_S : backoff * 2;
    }
    return NULL;
}

struct ldapsync *ldapsync_start(const struct rn_bootstrap *b, const struct ldapsync_opts *o,
                                ldapsync_fn fn, void *arg, char *err, size_t errlen)
{
    if (b->directory_profile != BOOT_PROFILE_AD && (!b->base_dn || !*b->base_dn)) {
        rn_err(err, errlen, "ldapsync: base_dn is not configured");
        return NULL;
    }
    struct ldapsync *s = xcalloc(1, sizeof *s);
    s->b = b;
    s->o = *o;
    s->fn = fn;
    s->arg = arg;
    if (pipe2(s->stop_pipe, O_CLOEXEC) != 0) {
        rn_err(err, errlen, "ldapsync: pipe: %s", strerror(errno));
        free(s);
        return NULL;
    }
    int rc = pthread_create(&s->thread, NULL, watch, s);
    if (rc != 0) {
        rn_err(err, errlen, "ldapsync: thread: %s", strerror(rc));
        close(s->stop_pipe[0]);
        close(s->stop_pipe[1]);
        free(s);
        return NULL;
    }
    return s;
}

void ldapsync_stop(struct ldapsync **sp)
{
    struct ldapsync *s = *sp;
    if (!s)
        return;
    ssize_t w = write(s->stop_pipe[1], "x", 1);
    (void)w;
    pthread_join(s->thread, NULL);
    close(s->stop_pipe[0]);
    close(s->stop_pipe[1]);
    free(s->last);
    free(s->last_mark);
    snapdelta_changes_free(&s->bv, s->bn);
    free(s);
    *sp = NULL;
}
