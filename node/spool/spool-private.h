/* spool-private: the spool's internals shared by its own files (spool.c: messages;
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
    struct spool_quarantined *quar;  /* owned, nquar entries */
    size_t nquar;
};

bool spool_id_valid(const char *id);
/* Owner-only start-up: drop state/ files whose message is gone, and stale temporaries. */
void spool_state_recover(struct spool *s);
#endif
