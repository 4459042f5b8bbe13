/* spool-private: the spool's internals shared by its own files (spool.c: opening, writing
 * and committing messages; spool_read.c: reading them back, listing, start-up recovery;
 * spool_state.c: delivery state and removal). Nothing else includes it. */
#ifndef RN_SPOOL_PRIVATE_H
#define RN_SPOOL_PRIVATE_H
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include "node/spool/spool.h"

#define SPOOL_ID_LEN 24

struct spool {
    char *dir;                       /* owned */
    int dirfd, tmpfd, queuefd, quarfd, statefd, lockfd;
    pthread_mutex_t mu;              /* guards the id clock */
    unsigned long long last_us;
    unsigned counter;
    bool owner;                      /* this process holds the lock */
    bool syncfs_ok;                  /* the kernel reports writeback errors through syncfs */
    char kernel[65];                 /* uname release syncfs_ok was decided on */
    struct spool_quarantined *quar;  /* owned, nquar entries */
    size_t nquar;
};

bool spool_id_valid(const char *id);
/* The test hook (spool_test_fault) or nothing: -1 with errno set if step `where` must fail. */
int spool_fault(enum spool_fault where);
/* Owner-only start-up (spool_open): empty tmp/, quarantine what in queue/ is not a message,
 * then spool_state_recover. -1 with err when tmp/ or queue/ cannot be read or cleaned. */
int spool_recover(struct spool *s, char *err, size_t errlen);
/* Owner-only start-up: drop state/ files whose message is gone, and stale temporaries. */
void spool_state_recover(struct spool *s);
#endif
