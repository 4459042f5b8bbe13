/* msgin: the content of one incoming message, from its first DATA/BDAT byte to a spool file
 * ready to commit (docs/permission-model.md §10 step 10). It collects the header block (bounded),
 * runs the end-of-headers checks in Exchange's order (header size, hop count on the
 * unfiltered Received: fields, header firewall, our Received: and auth stamp, then the P1 and
 * P2 sender checks), and streams the body into the spool. The session feeds unstuffed content
 * and asks for the verdict at the end. Loop thread: the spool file is created and written
 * on the worker pool through a spool_writer (node/spool/spool_writer.h), so the session stops
 * reading while msgin_backlog() is over SPOOL_WRITER_BOUND, and the verdict waits for the
 * last write; the fsync happens at commit on the committer. */
#ifndef RN_MSGIN_H
#define RN_MSGIN_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "directory/policy.h"
#include "node/smtp/headers.h"
#include "node/spool/spool.h"
#include "node/spool/spool_writer.h"

/* The header block is never held beyond this, even with Bypass-Message-Size-Limit (a client
 * cannot grow memory without bound); past it the message gets the header-size refusal. */
#define MSGIN_HEADER_HARD_MAX (1024u * 1024u)

/* What the session knows when content starts. Everything is borrowed and must outlive the
 * msgin; strings in env and stamp are copied by the spool or formatted at end of headers. */
struct msgin_params {
    const struct rn_snapshot *snap;
    const struct rn_connector *c;
    const struct rights_eval *r;
    const struct token *t;
    const char *const *owned; size_t nowned;   /* the user's own addresses (send-as) */
    struct spool *spool;
    struct worker **pool;                      /* the node's worker slot (spool_writer_new) */
    const struct spool_envelope *env;
    struct headers_stamp stamp;                /* queueid is filled in here */
    uint64_t max_size;                         /* content limit, 0 = none */
    /* Runs on the loop when a spool job completed: the backlog shrank, or a msgin_finish
     * that said "wait" may now be done. Never after msgin_free; the owner may free the
     * msgin inside it. */
    void (*progress)(void *arg);
    void *arg;
    size_t copy_max;                           /* keep a copy of what is spooled, up to this
                                                * (for the content filters); 0 = none */
};

struct msgin;

struct msgin *msgin_new(const struct msgin_params *p);    /* caller msgin_free()s */
void msgin_free(struct msgin **m);                        /* aborts an uncommitted spool file */

/* Feed content bytes (CRLF line ends, dot-unstuffed). After a refusal the bytes are counted
 * and dropped; msgin_refused() says so, so the session can switch its parser to discard. */
void msgin_feed(struct msgin *m, const char *buf, size_t len);
bool msgin_refused(const struct msgin *m);

/* Content bytes not yet in the spool file (the session stops reading past
 * SPOOL_WRITER_BOUND and looks again at progress). */
size_t msgin_backlog(const struct msgin *m);

/* End of content: true when the verdict is ready (msgin_result may be called now); false
 * while the last writes run on a worker (call again at progress, until true). */
bool msgin_finish(struct msgin *m);
/* The verdict, after msgin_finish said ready. On success v->ok and *out is the spool message
 * to commit, every byte written (ownership moves to the caller); otherwise *out is NULL and v
 * carries the exact refusal (552 5.3.4 size, 554 5.4.6 hops, 550 5.7.1 send-as, 451 4.3.0
 * spool failure). */
void msgin_result(struct msgin *m, struct verdict *v, struct spool_msg **out);

/* The copy of the spooled content (our stamp, the firewalled header block, the empty line,
 * the body), caller frees; *whole is false when the content outgrew copy_max (the copy then
 * holds its first copy_max octets). NULL when params.copy_max was 0. Call before msgin_free. */
char *msgin_take_copy(struct msgin *m, size_t *len, bool *whole);

/* After a send-as refusal: the address it was about (envelope or header sender). */
const char *msgin_bad_sender(const struct msgin *m);
/* Content bytes seen so far (for logs). */
uint64_t msgin_size(const struct msgin *m);
#endif
