/* Unit tests for spool: commit makes the file appear in queue/ only after success, abort and
 * every injected failure (create, write, fsync, close, rename, directory fsync with ENOSPC or
 * EIO) leave queue/ and tmp/ empty, spool_open cleans tmp/ and quarantines torn or foreign
 * files, spool_foreach lists in id order, spool_read_data returns the bytes written, and
 * commits from several threads keep ids unique. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>
#include <sys/utsname.h>
#include "directory/base/util.h"
#include "node/spool/spool.h"

static const char *rcpts[] = {"a@example.org", "b@example.org"};
static const struct spool_envelope env = {"sender@example.com", rcpts, 2, "192.168.2.55",
                                          "crm.example.com", "Relay CRM", NULL, "Anonymous",
                                          false, 1700000000};

struct fx {
    char dir[64];
    struct spool *s;
};

static int setup(void **state)
{
    struct fx *f = xcalloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/test_spool.XXXXXX");
    if (!mkdtemp(f->dir))
        return -1;
    char err[RN_ERRLEN];
    if (spool_open(f->dir, &f->s, err, sizeof err) < 0) {
        fprintf(stderr, "spool_open: %s\n", err);
        return -1;
    }
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    spool_test_fault = NULL;
    spool_free(&f->s);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->dir);
    int rc = system(cmd);
    free(f);
    return rc == 0 ? 0 : -1;
}

/* Number of entries in dir/sub (without . and ..). */
static int count(const struct fx *f, const char *sub)
{
    char p[128];
    snprintf(p, sizeof p, "%s/%s", f->dir, sub);
    DIR *d = opendir(p);
    if (!d)
        return -1;
    int n = 0;
    for (struct dirent *de; (de = readdir(d));)
        n += strcmp(de->d_name, ".") && strcmp(de->d_name, "..");
    closedir(d);
    return n;
}

static bool exists(const struct fx *f, const char *sub, const char *name)
{
    char p[160];
    snprintf(p, sizeof p, "%s/%s/%s", f->dir, sub, name);
    return access(p, F_OK) == 0;
}

static void test_commit_appears_only_after_success(void **state)
{
    struct fx *f = *state;
    char err[RN_ERRLEN];
    struct spool_msg *m = spool_msg_new(f->s, &env, err, sizeof err);
    assert_non_null(m);
    char id[64];
    rn_strlcpy(id, spool_msg_id(m), sizeof id);
    assert_int_equal(strlen(id), 24);
    assert_true(exists(f, "tmp", id));
    assert_false(exists(f, "queue", id));
    assert_int_equal(spool_msg_write(m, "Subject: hi\r\n\r\nbody\r\n", 21, err, sizeof err), 0);
    assert_int_equal(count(f, "queue"), 0);
    struct stat st;
    char p[160];
    snprintf(p, sizeof p, "%s/tmp/%s", f->dir, id);
    assert_int_equal(stat(p, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(spool_msg_commit(&m, err, sizeof err), 0);
    assert_null(m);
    assert_true(exists(f, "queue", id));
    assert_int_equal(count(f, "tmp"), 0);
    struct spool_entry e;
    assert_int_equal(spool_read(f->s, id, &e, err, sizeof err), 0);
    assert_string_equal(e.id, id);
    assert_string_equal(e.sender, env.sender);
    assert_int_equal(e.nrcpts, 2);
    assert_string_equal(e.rcpts[1], "b@example.org");
    assert_string_equal(e.connector, "Relay CRM");
    assert_null(e.auth_user);
    assert_int_equal(e.size, 21);
    assert_true(e.received == 1700000000);
    spool_entry_clear(&e);
}

static void test_abort_leaves_nothing(void **state)
{
    struct fx *f = *state;
    char err[RN_ERRLEN];
    struct spool_msg *m = spool_msg_new(f->s, &env, err, sizeof err);
    assert_non_null(m);
    assert_int_equal(spool_msg_write(m, "x", 1, err, sizeof err), 0);
    spool_msg_abort(&m);
    assert_null(m);
    assert_int_equal(count(f, "tmp"), 0);
    assert_int_equal(count(f, "queue"), 0);
}

static void test_bad_envelope_creates_nothing(void **state)
{
    struct fx *f = *state;
    char err[RN_ERRLEN] = "";
    struct spool_envelope bad = env;
    bad.helo = "evil\r\nRCPT TO:<x>";
    assert_null(spool_msg_new(f->s, &bad, err, sizeof err));
    assert_non_null(strstr(err, "helo"));
    assert_int_equal(count(f, "tmp"), 0);
}

/* Fault injection: the step `fault_at` fails with `fault_errno` (the n-th call if several). */
static enum spool_fault fault_at;
static int fault_errno, fault_skip;
static int inject(enum spool_fault where)
{
    if (where != fault_at)
        return 0;
    return fault_skip-- > 0 ? 0 : fault_errno;
}

static void test_faults_leave_queue_empty(void **state)
{
    struct fx *f = *state;
    const struct {
        const char *name;
        enum spool_fault at;
        int err, skip;
        bool in_write;               /* fails in spool_msg_write rather than commit */
    } cases[] = {
        {"create ENOSPC", SPOOL_FAULT_CREATE, ENOSPC, 0, false},
        {"write ENOSPC on a large write", SPOOL_FAULT_WRITE, ENOSPC, 0, true},
        {"write EIO on the END record", SPOOL_FAULT_WRITE, EIO, 3, false},
        {"fsync EIO", SPOOL_FAULT_FSYNC, EIO, 0, false},
        {"fsync ENOSPC", SPOOL_FAULT_FSYNC, ENOSPC, 0, false},
        {"close EIO", SPOOL_FAULT_CLOSE, EIO, 0, false},
        {"rename EXDEV", SPOOL_FAULT_RENAME, EXDEV, 0, false},
        {"queue dir fsync EIO", SPOOL_FAULT_DIRSYNC, EIO, 0, false},
    };
    static char big[100000];
    memset(big, 'x', sizeof big);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char err[RN_ERRLEN] = "";
        fault_at = cases[i].at, fault_errno = cases[i].err, fault_skip = cases[i].skip;
        spool_test_fault = inject;
        struct spool_msg *m = spool_msg_new(f->s, &env, err, sizeof err);
        if (cases[i].at == SPOOL_FAULT_CREATE) {
            assert_null(m);
            assert_non_null(strstr(err, strerror(cases[i].err)));
        } else {
            assert_non_null(m);
            int w = spool_msg_write(m, big, sizeof big, err, sizeof err);
            if (cases[i].in_write) {
                assert_int_equal(w, -1);
                assert_non_null(strstr(err, strerror(cases[i].err)));
                assert_int_equal(count(f, "tmp"), 0);       /* unlinked at once */
                assert_int_equal(spool_msg_write(m, "y", 1, err, sizeof err), -1);
            } else {
                assert_int_equal(w, 0);
            }
            err[0] = '\0';
            if (spool_msg_commit(&m, err, sizeof err) != -1)
                fail_msg("%s: commit succeeded", cases[i].name);
            assert_null(m);
            if (!cases[i].in_write && !strstr(err, strerror(cases[i].err)))
                fail_msg("%s: err \"%s\"", cases[i].name, err);
        }
        spool_test_fault = NULL;
        if (count(f, "queue") != 0 || count(f, "tmp") != 0)
            fail_msg("%s: queue %d tmp %d", cases[i].name, count(f, "queue"), count(f, "tmp"));
    }
    /* With the hook cleared the same spool works again. */
    char err[RN_ERRLEN];
    struct spool_msg *m = spool_msg_new(f->s, &env, err, sizeof err);
    assert_non_null(m);
    assert_int_equal(spool_msg_commit(&m, err, sizeof err), 0);
    assert_int_equal(count(f, "queue"), 1);
}

static void write_file(const struct fx *f, const char *sub, const char *name, const void *p,
                       size_t n)
{
    char path[160];
    snprintf(path, sizeof path, "%s/%s/%s", f->dir, sub, name);
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    assert_int_equal(fwrite(p, 1, n, fp), n);
    fclose(fp);
}

static char *read_whole(const struct fx *f, const char *sub, const char *name, size_t *n)
{
    char path[160];
    snprintf(path, sizeof path, "%s/%s/%s", f->dir, sub, name);
    FILE *fp = fopen(path, "rb");
    assert_non_null(fp);
    char *b = xmalloc(1 << 20);
    *n = fread(b, 1, 1 << 20, fp);
    fclose(fp);
    return b;
}

/* Group commit: a batch of 5 where one message already failed a write; then a batch whose
 * shared sync fails (all fail, nothing in queue/); then one whose directory fsync fails. */
static void test_commit_batch(void **state)
{
    struct fx *f = *state;
    char err[RN_ERRLEN];
    enum { N = 5 };
    struct spool_msg *m[N];
    char ids[N][64];
    int rcs[N];
    char errs[N * RN_ERRLEN];
    for (int i = 0; i < N; i++) {
        m[i] = spool_msg_new(f->s, &env, err, sizeof err);
        assert_non_null(m[i]);
        rn_strlcpy(ids[i], spool_msg_id(m[i]), sizeof ids[i]);
        assert_int_equal(spool_msg_write(m[i], "Subject: b\r\n\r\nx\r\n", 17, err,
                                         sizeof err), 0);
    }
    spool_test_fault = inject, fault_at = SPOOL_FAULT_WRITE, fault_errno = EIO, fault_skip = 0;
    char big[9000];
    memset(big, 'y', sizeof big);            /* large write goes straight to the file */
    assert_int_equal(spool_msg_write(m[2], big, sizeof big, err, sizeof err), -1);
    spool_test_fault = NULL;
    spool_msg_commit_batch(m, N, rcs, errs, RN_ERRLEN);
    for (int i = 0; i < N; i++) {
        assert_null(m[i]);
        assert_int_equal(rcs[i], i == 2 ? -1 : 0);
        assert_true(exists(f, "queue", ids[i]) == (i != 2));
    }
    assert_non_null(strstr(errs + 2 * RN_ERRLEN, "earlier write failed"));
    assert_int_equal(count(f, "queue"), N - 1);
    assert_int_equal(count(f, "tmp"), 0);

    const enum spool_fault where[] = {SPOOL_FAULT_FSYNC, SPOOL_FAULT_RENAME,
                                      SPOOL_FAULT_DIRSYNC};
    for (size_t w = 0; w < sizeof where / sizeof where[0]; w++) {
        for (int i = 0; i < 3; i++) {
            m[i] = spool_msg_new(f->s, &env, err, sizeof err);
            assert_non_null(m[i]);
            rn_strlcpy(ids[i], spool_msg_id(m[i]), sizeof ids[i]);
        }
        spool_test_fault = inject, fault_at = where[w], fault_errno = EIO, fault_skip = 0;
        spool_msg_commit_batch(m, 3, rcs, errs, RN_ERRLEN);
        spool_test_fault = NULL;
        for (int i = 0; i < 3; i++) {
            assert_int_equal(rcs[i], -1);     /* the hook fails every call of that step */
            assert_false(exists(f, "queue", ids[i]));
        }
        assert_int_equal(count(f, "tmp"), 0);
    }
    assert_int_equal(count(f, "queue"), N - 1);
}

static int fsync_calls;
static int fail_second_fsync(enum spool_fault where)
{
    return where == SPOOL_FAULT_FSYNC && ++fsync_calls == 2 ? EIO : 0;
}

/* syncfs reports writeback errors only from Linux 5.8 (syncfs(2)); before that a batch is
 * synced file by file, and a failed fsync fails only its own message. */
static void test_sync_mode(void **state)
{
    struct fx *f = *state;
    static const struct { const char *release; bool trusted; } t[] = {
        {"5.8.0", true}, {"5.8.0-63-generic", true}, {"5.10.0-28-amd64", true},
        {"6.1.0-18-amd64", true}, {"10.0.1", true}, {"5.7.19", false},
        {"5.4.0-150-generic", false}, {"4.19.0-26-amd64", false}, {"3.10.0-1160.el7", false},
        {"", false}, {"garbage", false}, {"5", false}, {"5.", false},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
        if (spool_syncfs_trusted(t[i].release) != t[i].trusted)
            fail_msg("release '%s': want %s", t[i].release, t[i].trusted ? "trusted" : "not");

    char dir[128], err[RN_ERRLEN];
    snprintf(dir, sizeof dir, "%s/old-kernel", f->dir);
    setenv("RELAYNODE_FAULT_KERNEL", "5.4.0-150-generic", 1);
    struct spool *s = NULL;
    int rc = spool_open(dir, &s, err, sizeof err);
    unsetenv("RELAYNODE_FAULT_KERNEL");
    assert_int_equal(rc, 0);
    const char *rel;
    assert_string_equal(spool_sync_mode(s, &rel), "fsync-per-file");
    assert_string_equal(rel, "5.4.0-150-generic");
    struct spool_msg *m[3];
    char ids[3][64];
    int rcs[3];
    char errs[3 * RN_ERRLEN];
    for (int i = 0; i < 3; i++) {
        m[i] = spool_msg_new(s, &env, err, sizeof err);
        assert_non_null(m[i]);
        rn_strlcpy(ids[i], spool_msg_id(m[i]), sizeof ids[i]);
    }
    fsync_calls = 0;
    spool_test_fault = fail_second_fsync;
    spool_msg_commit_batch(m, 3, rcs, errs, RN_ERRLEN);
    assert_int_equal(fsync_calls, 3);        /* one fsync per file, no syncfs */
    spool_test_fault = NULL;
    assert_int_equal(rcs[0], 0);
    assert_int_equal(rcs[1], -1);           /* only the file whose fsync failed */
    assert_int_equal(rcs[2], 0);
    assert_non_null(strstr(errs + RN_ERRLEN, "fsync"));
    spool_free(&s);
    /* the fixture's spool was opened on this machine's kernel */
    struct utsname u;
    assert_int_equal(uname(&u), 0);
    assert_string_equal(spool_sync_mode(f->s, &rel), spool_syncfs_trusted(u.release)
                                                      ? "syncfs" : "fsync-per-file");
}

static void test_open_cleans_tmp_and_quarantines(void **state)
{
    struct fx *f = *state;
    char err[RN_ERRLEN];
    /* One good message, one torn copy of it, one corrupted copy, one foreign name, a tmp/
     * leftover. */
    struct spool_msg *m = spool_msg_new(f->s, &env, err, sizeof err);
    assert_non_null(m);
    assert_int_equal(spool_msg_write(m, "hello\r\n", 7, err, sizeof err), 0);
    char good[64];
    rn_strlcpy(good, spool_msg_id(m), sizeof good);
    assert_int_equal(spool_msg_commit(&m, err, sizeof err), 0);
    size_t n;
    char *bytes = read_whole(f, "queue", good, &n);
    write_file(f, "queue", "000000000000000000000001", bytes, n - 3);          /* torn */
    bytes[n - 20] ^= 1;                                                         /* data byte */
    write_file(f, "queue", "000000000000000000000002", bytes, n);
    write_file(f, "queue", "notes.txt", "x", 1);
    write_file(f, "tmp", "0000000000000000000000FF", bytes, 10);
    free(bytes);
    spool_free(&f->s);
    assert_int_equal(spool_open(f->dir, &f->s, err, sizeof err), 0);
    assert_int_equal(count(f, "tmp"), 0);
    assert_int_equal(count(f, "queue"), 1);
    assert_true(exists(f, "queue", good));
    assert_int_equal(count(f, "quarantine"), 3);
    const struct spool_quarantined *q;
    size_t nq = spool_quarantine_list(f->s, &q);
    assert_int_equal(nq, 3);
    int seen = 0;
    for (size_t i = 0; i < nq; i++) {
        if (!strcmp(q[i].name, "000000000000000000000001"))
            seen |= 1, assert_non_null(strstr(q[i].reason, "truncated"));
        else if (!strcmp(q[i].name, "000000000000000000000002"))
            seen |= 2, assert_non_null(strstr(q[i].reason, "checksum"));
        else if (!strcmp(q[i].name, "notes.txt"))
            seen |= 4, assert_non_null(strstr(q[i].reason, "not a queue id"));
        assert_non_null(strstr(q[i].reason, "moved to quarantine/"));
    }
    assert_int_equal(seen, 7);
}

/* Delivery state: absent -> all pending; write/read round trip with diagnostics cleaned;
 * a state for another recipient count is refused (all pending again); remove drops both
 * files; an orphan state file is dropped at the next open. */
static void test_state_round_trip(void **state)
{
    struct fx *f = *state;
    char err[RN_ERRLEN];
    struct spool_msg *m = spool_msg_new(f->s, &env, err, sizeof err);
    assert_non_null(m);
    char id[64];
    rn_strlcpy(id, spool_msg_id(m), sizeof id);
    assert_int_equal(spool_msg_commit(&m, err, sizeof err), 0);
    struct spool_state st;
    assert_int_equal(spool_state_read(f->s, id, 2, &st, err, sizeof err), 1);
    assert_memory_equal(st.status, "PP", 2);
    st.attempts = 3;
    st.next_attempt = 1795000000;
    spool_state_set(&st, 0, SPOOL_RCPT_DONE, "250 2.0.0 Ok: queued as 4F1A");
    spool_state_set(&st, 1, SPOOL_RCPT_PENDING, "451 4.3.0 try\r\nlater\x01");
    assert_int_equal(spool_state_write(f->s, id, &st, err, sizeof err), 0);
    spool_state_clear(&st);
    assert_int_equal(spool_state_read(f->s, id, 2, &st, err, sizeof err), 0);
    assert_int_equal(st.attempts, 3);
    assert_true(st.next_attempt == 1795000000);
    assert_memory_equal(st.status, "DP", 2);
    assert_string_equal(st.diag[0], "250 2.0.0 Ok: queued as 4F1A");
    assert_string_equal(st.diag[1], "451 4.3.0 try  later ");
    spool_state_clear(&st);
    assert_int_equal(spool_state_read(f->s, id, 3, &st, err, sizeof err), -1);
    assert_memory_equal(st.status, "PPP", 3);
    spool_state_clear(&st);
    assert_true(exists(f, "state", id));
    assert_int_equal(spool_remove(f->s, id, true, err, sizeof err), 0);
    assert_false(exists(f, "queue", id));
    assert_false(exists(f, "state", id));
    /* orphan: a state file without its message goes at the next open */
    write_file(f, "state", "0123456789ABCDEF01234567", "RNST 1\n", 7);
    spool_free(&f->s);
    assert_int_equal(spool_open(f->dir, &f->s, err, sizeof err), 0);
    assert_false(exists(f, "state", "0123456789ABCDEF01234567"));
}

static void test_second_opener_does_not_clean(void **state)
{
    struct fx *f = *state;
    char err[RN_ERRLEN];
    struct spool_msg *m = spool_msg_new(f->s, &env, err, sizeof err);
    assert_non_null(m);
    /* A second opener (another process, e.g. --list-spool) must not delete an in-flight
     * message; flock locks are per open file, so a second open in this process stands in. */
    struct spool *s2;
    assert_int_equal(spool_open(f->dir, &s2, err, sizeof err), 0);
    assert_int_equal(count(f, "tmp"), 1);
    assert_int_equal(spool_msg_commit(&m, err, sizeof err), 0);
    spool_free(&s2);
    assert_int_equal(count(f, "queue"), 1);
}

struct listing {
    char ids[8][64];
    int n, stop_at;
};

static int list_fn(const struct spool_entry *e, void *arg)
{
    struct listing *l = arg;
    if (l->n < 8)
        rn_strlcpy(l->ids[l->n], e->id, sizeof l->ids[0]);
    l->n++;
    return l->n == l->stop_at ? 7 : 0;
}

static void test_foreach_in_id_order(void **state)
{
    struct fx *f = *state;
    char err[RN_ERRLEN], ids[5][64];
    for (int i = 0; i < 5; i++) {
        struct spool_msg *m = spool_msg_new(f->s, &env, err, sizeof err);
        assert_non_null(m);
        rn_strlcpy(ids[i], spool_msg_id(m), sizeof ids[i]);
        if (i > 0)
            assert_true(strcmp(ids[i - 1], ids[i]) < 0);    /* ids increase */
        assert_int_equal(spool_msg_commit(&m, err, sizeof err), 0);
    }
    /* Created in a different order on disk does not matter: listing sorts. A torn file with
     * a valid name is never listed. */
    write_file(f, "queue", "000000000000000000000003", "RNQ1\x01", 5);
    struct listing l = {.stop_at = 0};
    assert_int_equal(spool_foreach(f->s, list_fn, &l, err, sizeof err), 0);
    assert_int_equal(l.n, 5);
    for (int i = 0; i < 5; i++)
        assert_string_equal(l.ids[i], ids[i]);
    struct listing l2 = {.stop_at = 2};
    assert_int_equal(spool_foreach(f->s, list_fn, &l2, err, sizeof err), 7);
    assert_int_equal(l2.n, 2);
    struct spool_entry e;
    assert_int_equal(spool_read(f->s, "000000000000000000000003", &e, err, sizeof err), -1);
    assert_int_equal(spool_read(f->s, "../queue/x", &e, err, sizeof err), -1);
    assert_non_null(strstr(err, "not a queue id"));
}

struct sink {
    char *p;
    size_t n;
};

static int sink_fn(void *arg, const void *p, size_t n)
{
    struct sink *s = arg;
    s->p = xrealloc(s->p, s->n + n);
    memcpy(s->p + s->n, p, n);
    s->n += n;
    return 0;
}

static void test_read_data_round_trip(void **state)
{
    struct fx *f = *state;
    char err[RN_ERRLEN];
    /* Mixed write sizes cross the buffer and the direct-write path. */
    size_t total = 300000;
    char *data = xmalloc(total);
    for (size_t i = 0; i < total; i++)
        data[i] = (char)(i * 31 + 7);
    const size_t sizes[] = {1, 0, 5, 8191, 8192, 70000, 3, 100000};
    struct spool_msg *m = spool_msg_new(f->s, &env, err, sizeof err);
    assert_non_null(m);
    size_t off = 0;
    for (size_t i = 0; off < total; i++) {
        size_t k = sizes[i % (sizeof sizes / sizeof sizes[0])];
        if (k > total - off)
            k = total - off;
        assert_int_equal(spool_msg_write(m, data + off, k, err, sizeof err), 0);
        off += k;
    }
    char id[64];
    rn_strlcpy(id, spool_msg_id(m), sizeof id);
    assert_int_equal(spool_msg_commit(&m, err, sizeof err), 0);
    struct sink s = {0};
    if (spool_read_data(f->s, id, sink_fn, &s, err, sizeof err) != 0)
        fail_msg("spool_read_data: %s", err);
    assert_int_equal(s.n, total);
    assert_memory_equal(s.p, data, total);
    struct spool_entry e;
    assert_int_equal(spool_read(f->s, id, &e, err, sizeof err), 0);
    assert_int_equal(e.size, total);
    spool_entry_clear(&e);
    free(s.p);
    free(data);
}

/* A content filter changed the header: the message starts over under the same id, and only
 * the new content is committed (node/smtp/smtp_milter.c). */
static void test_restart_keeps_id(void **state)
{
    struct fx *f = *state;
    char err[RN_ERRLEN];
    struct spool_msg *m = spool_msg_new(f->s, &env, err, sizeof err);
    assert_non_null(m);
    char id[64];
    rn_strlcpy(id, spool_msg_id(m), sizeof id);
    char *junk = xmalloc(100000);
    memset(junk, 'j', 100000);
    assert_int_equal(spool_msg_write(m, junk, 100000, err, sizeof err), 0);
    assert_int_equal(spool_msg_write(m, "tail", 4, err, sizeof err), 0);
    free(junk);
    assert_int_equal(spool_msg_restart(m, &env, err, sizeof err), 0);
    assert_string_equal(spool_msg_id(m), id);
    const char *fresh = "X-Filter: yes\r\nSubject: hi\r\n\r\nbody\r\n";
    assert_int_equal(spool_msg_write(m, fresh, strlen(fresh), err, sizeof err), 0);
    assert_int_equal(spool_msg_commit(&m, err, sizeof err), 0);
    struct sink s = {0};
    if (spool_read_data(f->s, id, sink_fn, &s, err, sizeof err) != 0)
        fail_msg("spool_read_data: %s", err);
    assert_int_equal(s.n, strlen(fresh));
    assert_memory_equal(s.p, fresh, s.n);
    free(s.p);
}

/* Quarantine: durable in quarantine/, never in queue/, nothing left in tmp/; a failed sync
 * leaves nothing anywhere. */
static void test_quarantine(void **state)
{
    struct fx *f = *state;
    char err[RN_ERRLEN];
    struct spool_msg *m = spool_msg_new(f->s, &env, err, sizeof err);
    assert_non_null(m);
    char id[64];
    rn_strlcpy(id, spool_msg_id(m), sizeof id);
    assert_int_equal(spool_msg_write(m, "Subject: q\r\n\r\nx\r\n", 17, err, sizeof err), 0);
    assert_int_equal(spool_msg_quarantine(&m, err, sizeof err), 0);
    assert_null(m);
    assert_true(exists(f, "quarantine", id));
    assert_false(exists(f, "queue", id));
    assert_int_equal(count(f, "tmp"), 0);
    m = spool_msg_new(f->s, &env, err, sizeof err);
    assert_non_null(m);
    rn_strlcpy(id, spool_msg_id(m), sizeof id);
    fault_at = SPOOL_FAULT_FSYNC;
    fault_errno = EIO;
    fault_skip = 0;
    spool_test_fault = inject;
    assert_int_equal(spool_msg_quarantine(&m, err, sizeof err), -1);
    spool_test_fault = NULL;
    assert_null(m);
    assert_false(exists(f, "quarantine", id));
    assert_int_equal(count(f, "tmp"), 0);
    assert_int_equal(count(f, "queue"), 0);
}

/* Commits run on worker threads: ids stay unique and every message lands. */
struct thr {
    struct spool *s;
    int ok;
};

static void *thr_run(void *arg)
{
    struct thr *t = arg;
    char err[RN_ERRLEN];
    for (int i = 0; i < 50; i++) {
        struct spool_msg *m = spool_msg_new(t->s, &env, err, sizeof err);
        if (m && spool_msg_write(m, "x\r\n", 3, err, sizeof err) == 0 &&
            spool_msg_commit(&m, err, sizeof err) == 0)
            t->ok++;
        else if (m)
            spool_msg_abort(&m);
    }
    return NULL;
}

static int count_fn(const struct spool_entry *e, void *arg)
{
    char *prev = arg;
    if (strcmp(prev, e->id) >= 0)
        return 1;                    /* not strictly increasing */
    rn_strlcpy(prev, e->id, 64);
    return 0;
}

static void test_concurrent_commits(void **state)
{
    struct fx *f = *state;
    pthread_t th[4];
    struct thr t[4];
    for (int i = 0; i < 4; i++) {
        t[i] = (struct thr){f->s, 0};
        assert_int_equal(pthread_create(&th[i], NULL, thr_run, &t[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(t[i].ok, 50);
    }
    assert_int_equal(count(f, "queue"), 200);
    assert_int_equal(count(f, "tmp"), 0);
    char prev[64] = "", err[RN_ERRLEN];
    assert_int_equal(spool_foreach(f->s, count_fn, prev, err, sizeof err), 0);
}

/* A real full disk, not a hook: a 256 KiB tmpfs. Fill it: the failing write or commit
 * returns -1 and leaves tmp/ empty and only the committed messages in queue/, and every
 * one of those reads back. A mount that is refused is a failure, not a skip: the tests run
 * as root (a missing part is a failure). */
static void test_real_enospc_on_tmpfs(void **state)
{
    struct fx *f = *state;
    char mnt[sizeof f->dir], err[RN_ERRLEN];
    assert_true((size_t)snprintf(mnt, sizeof mnt, "%s/s", f->dir) < sizeof mnt);
    assert_int_equal(mkdir(mnt, 0700), 0);
    if (mount("tmpfs", mnt, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=256k") < 0) {
        int e = errno;
        rmdir(mnt);
        fail_msg("mount tmpfs on %s: %s (the unit tests run as root)", mnt, strerror(e));
    }
    struct fx small = {.s = NULL};
    rn_strlcpy(small.dir, mnt, sizeof small.dir);
    assert_int_equal(spool_open(mnt, &small.s, err, sizeof err), 0);
    static char block[20000];
    memset(block, 'z', sizeof block);
    int committed = 0, failed = 0;
    for (int i = 0; i < 100 && !failed; i++) {
        struct spool_msg *m = spool_msg_new(small.s, &env, err, sizeof err);
        if (!m) {
            failed = 1;
            break;
        }
        int rc = 0;
        for (int k = 0; k < 3 && rc == 0; k++)
            rc = spool_msg_write(m, block, sizeof block, err, sizeof err);
        if (rc == 0)
            rc = spool_msg_commit(&m, err, sizeof err);
        else
            spool_msg_abort(&m);
        if (rc < 0) {
            failed = 1;
            assert_non_null(strstr(err, strerror(ENOSPC)));
        } else {
            committed++;
        }
    }
    int nq = count(&small, "queue"), nt = count(&small, "tmp");
    struct listing l = {.stop_at = 0};
    int frc = spool_foreach(small.s, list_fn, &l, err, sizeof err);
    spool_free(&small.s);
    assert_int_equal(umount2(mnt, MNT_DETACH), 0);
    rmdir(mnt);
    assert_true(failed);             /* the disk did fill up */
    assert_true(committed > 0);
    assert_int_equal(nq, committed);
    assert_int_equal(nt, 0);
    assert_int_equal(frc, 0);
    assert_int_equal(l.n, committed);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_commit_appears_only_after_success, setup, teardown),
        cmocka_unit_test_setup_teardown(test_abort_leaves_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_envelope_creates_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_faults_leave_queue_empty, setup, teardown),
        cmocka_unit_test_setup_teardown(test_commit_batch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sync_mode, setup, teardown),
        cmocka_unit_test_setup_teardown(test_open_cleans_tmp_and_quarantines, setup, teardown),
        cmocka_unit_test_setup_teardown(test_state_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_second_opener_does_not_clean, setup, teardown),
        cmocka_unit_test_setup_teardown(test_foreach_in_id_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_read_data_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_commits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_restart_keeps_id, setup, teardown),
        cmocka_unit_test_setup_teardown(test_quarantine, setup, teardown),
        cmocka_unit_test_setup_teardown(test_real_enospc_on_tmpfs, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
