/* queue-private: the queue's state shared by its own files (queue.c: scheduling, attempts,
 * bounces; queue_rescan.c: relayctl queue retry). Nothing else includes it. Loop thread. */
#ifndef RN_QUEUE_PRIVATE_H
#define RN_QUEUE_PRIVATE_H
#include <stdbool.h>
#include <stddef.h>
#include <time.h>
#include <event2/util.h>
#include "node/delivery/queue.h"
#include "node/spool/spool.h"

#define TIME_MAX ((time_t)(((unsigned long long)1 << (sizeof(time_t) * 8 - 1)) - 1))

enum qmsg_where { Q_READY, Q_WAITING, Q_BUSY };

struct qmsg {
    char id[64];
    char *sender;                 /* owned; "" = null sender */
    char **rcpts; size_t nrcpts;  /* owned */
    time_t received;
    struct spool_state st;        /* owned */
    enum qmsg_where where;
    bool removed;                 /* relayctl removed it while we held it */
    bool state_written;           /* state/<id> may exist (written, or found): unlink it at
                                   * removal; most messages go on their first attempt and
                                   * never had one (issue #17: a system call saved) */
    unsigned scan_gen;            /* the last rescan that checked it */
    struct queue *q;
    struct qmsg *prev, *next;     /* in q->ready or q->waiting (Q_BUSY: in neither) */
    struct qmsg *age_prev, *age_next; /* in q->by_age, wherever it is */
};

struct qlist { struct qmsg *head, *tail; size_t n; };

struct queue {
    struct node *n;
    struct delivery *d;           /* not owned */
    struct queue_opts o;
    struct qlist ready, waiting;
    time_t next_due;              /* no waiting message is due before this (a lower bound) */
    size_t busy;                  /* messages in flight (delivery, state write, removal) */
    size_t inflight;              /* of which delivery attempts */
    struct event *ev_tick, *ev_kick;
    bool stopping;
    unsigned scan_gen;            /* +1 per rescan request */
    bool scan_wanted;             /* a rescan has messages left to check */
    bool scanning;                /* one of its batches is on the worker */
    size_t scan_checked, scan_kept;   /* this rescan so far: checked, kept on an error */
    struct qmsg *age_head, *age_tail; /* every message, oldest received first (metrics) */
};

void queue_list_push(struct qlist *l, struct qmsg *m);
void queue_list_del(struct qlist *l, struct qmsg *m);
void queue_msg_free(struct qmsg *m);
/* A message in flight (q->busy) comes back: freed if the queue stops or relayctl removed it,
 * else placed in ready or waiting by its next attempt. */
void queue_msg_release(struct queue *q, struct qmsg *m);
/* The one-second tick: waiting messages now due go to ready, then attempts start. */
void queue_tick(evutil_socket_t fd, short what, void *arg);
#endif
