/* spool: the durable message store. A message is written to tmp/, then commit does
 * write -> fsync(file) -> rename into queue/ -> fsync(queue dir), and only then may the
 * caller send 250 (RFC 5321 §6.1; docs/reliability.md G1). Files are a sequence of typed,
 * length-checked records ending in an END record, so a torn file is never taken for a
 * message. spool_open removes tmp/ leftovers. Calls block (fsync): the node runs commit on
 * a worker thread. */
#ifndef RN_SPOOL_H
#define RN_SPOOL_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>
#include "node/spool/spool_envelope.h"

struct spool;
struct spool_msg;
/* struct spool_envelope (what is recorded with a message), struct spool_entry (what is read
 * back) and spool_entry_clear are in spool_envelope.h, shared with the record codec. */

/* Open (creating dir, tmp/, queue/ and quarantine/, mode 0700) and, in the process that gets
 * the spool's lock file, clean leftovers from tmp/ and quarantine undecodable queue files (a
 * second opener, e.g. --list-spool beside a running node, reads only). -1 with err. */
int spool_open(const char *dir, struct spool **out, char *err, size_t errlen);
void spool_free(struct spool **s);
/* The pid of the process that owns the spool in dir (spool_open writes it into dir/lock
 * once it has the lock), or 0 when no live process holds the lock. A process that owns the
 * spool itself gets its own pid. */
pid_t spool_owner_pid(const char *dir);
/* Bytes free for unprivileged writers on the spool's filesystem; -1 with err. */
int spool_free_bytes(struct spool *s, uint64_t *out, char *err, size_t errlen);
/* The owner writes its pid into the lock file again: after a fork (daemonize) the lock is
 * inherited but the pid spool_open wrote is the parent's. No-op when s is not the owner. */
void spool_write_pid(struct spool *s);
/* True when s got the lock (a node must: two writers would clean each other's files). */
bool spool_is_owner(const struct spool *s);
/* Whether syncfs(2) returns a writeback error to its caller on a kernel of this uname
 * release ("6.1.0-18-amd64"): Linux 5.8 and later. An unparsable release is not trusted. */
bool spool_syncfs_trusted(const char *release);
/* How a commit batch of several messages reaches stable storage, decided at spool_open from
 * uname (docs/reliability.md §2): "syncfs" (one syncfs for the batch) or "fsync-per-file"
 * (an fsync of each file: the kernel's syncfs may swallow errors). Both end with one
 * directory fsync. release gets the kernel release seen (for the log). */
const char *spool_sync_mode(const struct spool *s, const char **release);

/* Start a message: a new unique queue id and an open file in tmp/. NULL with err (e.g.
 * ENOSPC, or an envelope field over its limit or holding CR/LF; NULL client_ip, helo,
 * connector, auth_as are stored as ""). The message must end with spool_msg_commit or
 * spool_msg_abort. Blocking: spool_msg_start, then spool_msg_create. */
struct spool_msg *spool_msg_new(struct spool *s, const struct spool_envelope *env, char *err,
                                size_t errlen);
/* The same in two steps, so the event loop never waits for the disk (spool_writer.h):
 * start touches no file (the id is made, the envelope checked and encoded in memory; NULL
 * with err), create (blocking: a worker) opens tmp/<id> and writes the envelope (-1 with
 * err, e.g. ENOSPC or EMFILE). Either way the message ends with commit or abort; aborting
 * a message that was never created does no I/O. */
struct spool_msg *spool_msg_start(struct spool *s, const struct spool_envelope *env, char *err,
                                  size_t errlen);
int spool_msg_create(struct spool_msg *m, char *err, size_t errlen);
const char *spool_msg_id(const struct spool_msg *m);
/* Append message bytes (headers and body, CRLF line ends, dot-unstuffed). -1 with err. */
int spool_msg_write(struct spool_msg *m, const void *data, size_t len, char *err, size_t errlen);
/* Make the message durable (see top). Frees *m and sets it NULL whatever the result; on -1
 * nothing is left in queue/ and the caller must answer 451 4.3.0. */
int spool_msg_commit(struct spool_msg **m, char *err, size_t errlen);
void spool_msg_abort(struct spool_msg **m);       /* unlink the tmp file, free, NULL */
/* Start the message's content over under the same queue id (a content filter changed its
 * header: the file is rewritten, not copied). -1 with err (the message has failed). */
int spool_msg_restart(struct spool_msg *m, const struct spool_envelope *env, char *err,
                      size_t errlen);
/* Make the message durable in quarantine/ instead of queue/ (a content filter asked for it):
 * sealed like a commit, synced, renamed, quarantine/ synced. It is never delivered; an
 * operator reads it there. Frees *m whatever the result; -1 with err (nothing left). Blocking:
 * run on a worker. */
int spool_msg_quarantine(struct spool_msg **m, char *err, size_t errlen);
/* Group commit: make msgs[0..n) durable with shared syncs (one syncfs for all their data,
 * one fsync of queue/ for all renames), so concurrent transactions share the cost while each
 * 250 still follows its own data. Frees every msgs[i] (NULL); rcs[i] is 0 or -1 with the
 * reason in errs + i * errlen. A failed sync fails every message it covered. */
void spool_msg_commit_batch(struct spool_msg **msgs, size_t n, int *rcs, char *errs,
                            size_t errlen);

/* Messages read back from queue/ (for listing, recovery and delivery). */
/* Read the envelope of queue/<id>; -1 if missing, torn or malformed (err says which). */
int spool_read(struct spool *s, const char *id, struct spool_entry *e, char *err, size_t errlen);
/* Whether queue/<id> is still there, without reading it: 1 yes, 0 gone (ENOENT only), -1
 * with err when it cannot be told (EMFILE, EACCES, EIO...: the caller must keep the message). */
int spool_exists(struct spool *s, const char *id, char *err, size_t errlen);
/* Call fn for each committed message in id order; stops and returns fn's non-zero value. */
int spool_foreach(struct spool *s, int (*fn)(const struct spool_entry *e, void *arg), void *arg,
                  char *err, size_t errlen);
/* Stream the message bytes of queue/<id> to fn in order, verifying the whole file; fn sees
 * bytes before the END checksum is checked, so on -1 (missing, torn, malformed, or fn
 * returned -1) the caller must discard what it was given. */
int spool_read_data(struct spool *s, const char *id, int (*fn)(void *arg, const void *p, size_t n),
                    void *arg, char *err, size_t errlen);
/* The same, in steps, so a reader holds one 64 KiB buffer whatever the message's size
 * (delivery streams a message to the next hop: docs/architecture.md §5). Open: NULL with
 * err. Step: read at most 64 KiB of the file and pass its message bytes to fn (may be NULL);
 * 1 = more to read, 0 = the whole file was read and verified (END record, length, CRC-32),
 * -1 with err (missing, torn, malformed, checksum mismatch, or fn returned -1): discard
 * everything fn was given. Blocking: run steps on a worker. The envelope is complete once a
 * step has passed the first data byte or returned 0. */
struct spool_reader;
struct spool_reader *spool_reader_open(struct spool *s, const char *id, char *err,
                                       size_t errlen);
int spool_reader_step(struct spool_reader *r, int (*fn)(void *arg, const void *p, size_t n),
                      void *arg, char *err, size_t errlen);
const struct spool_entry *spool_reader_entry(const struct spool_reader *r);
void spool_reader_free(struct spool_reader **r);

/* Delivery state of a committed message (issue #5): how each recipient stands and when to
 * try again, in state/<id> beside queue/<id>, replaced atomically (tmp, fsync, rename, fsync
 * dir). No state file = never attempted: every recipient pending. */
enum spool_rcpt_status { SPOOL_RCPT_PENDING = 'P', SPOOL_RCPT_DONE = 'D',
                         SPOOL_RCPT_FAILED = 'F' };
#define SPOOL_DIAG_MAX 400          /* a recipient's last reply, printable ASCII */
struct spool_state {
    unsigned attempts;
    time_t next_attempt;            /* 0 = now */
    size_t nrcpts;                  /* as in the envelope, same order */
    char *status;                   /* owned: nrcpts of enum spool_rcpt_status */
    char **diag;                    /* owned: nrcpts entries, each NULL or owned */
};
void spool_state_init(struct spool_state *st, size_t nrcpts);   /* all pending */
void spool_state_clear(struct spool_state *st);
/* Set recipient i's status and diagnostic (copied, control bytes replaced, truncated). */
void spool_state_set(struct spool_state *st, size_t i, enum spool_rcpt_status status,
                     const char *diag);
/* Blocking (fsync): run on a worker. -1 with err. */
int spool_state_write(struct spool *s, const char *id, const struct spool_state *st, char *err,
                      size_t errlen);
/* 0 = read; 1 = no state file (st initialised all pending); -1 = unreadable or not for
 * nrcpts recipients (err says why; st initialised all pending: a duplicate, never a loss). */
int spool_state_read(struct spool *s, const char *id, size_t nrcpts, struct spool_state *st,
                     char *err, size_t errlen);
/* The message is finished (delivered, or bounced with its DSN committed): unlink queue/<id>
 * and, when state says one may exist, its state file, without a directory fsync (a lost
 * unlink means a duplicate, never a loss; a state file left behind is an orphan that the
 * next spool_open drops). Run on a worker. -1 with err if queue/<id> could not be removed. */
int spool_remove(struct spool *s, const char *id, bool state, char *err, size_t errlen);

/* Files spool_open found in queue/ that are not messages (bad name, not a regular file, torn
 * or malformed): moved to quarantine/<name> (or left in queue/, unlisted, if the move failed;
 * reason says so). The caller logs them; the list lives until spool_free. */
struct spool_quarantined { char *name, *reason; };
size_t spool_quarantine_list(const struct spool *s, const struct spool_quarantined **list);

/* Test only: when set, called before each step of the write path; a non-zero return is taken
 * as that step failing with that errno (ENOSPC, EIO...). NULL in production. */
enum spool_fault { SPOOL_FAULT_CREATE, SPOOL_FAULT_WRITE, SPOOL_FAULT_FSYNC, SPOOL_FAULT_CLOSE,
                   SPOOL_FAULT_RENAME, SPOOL_FAULT_DIRSYNC,
                   SPOOL_FAULT_LOOKUP, /* finding queue/<id> to read or check it (EMFILE...) */
                   SPOOL_FAULT_STATE_UNLINK /* spool_remove unlinking state/<id> (an error is
                                             * ignored: an orphan, dropped at the next start) */ };
extern int (*spool_test_fault)(enum spool_fault where);
#endif
