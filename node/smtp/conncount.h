/* conncount: open-session counts per connector and per (connector, source address), and
 * message submissions per source in a sliding minute (docs/permission-model.md §4.2, §5).
 * Single-threaded (event loop only). Keys are copied. */
#ifndef RN_CONNCOUNT_H
#define RN_CONNCOUNT_H
#include <stdint.h>
#include <time.h>

struct conncount;

struct conncount *conncount_new(void);
void conncount_free(struct conncount **cc);

/* Sessions open now on connector, and from source on that connector. */
void conncount_get(const struct conncount *cc, const char *connector, const char *source,
                   uint64_t *total, uint64_t *from_source);

/* A session opened / closed. Every add is paired with exactly one del. */
void conncount_add(struct conncount *cc, const char *connector, const char *source);
void conncount_del(struct conncount *cc, const char *connector, const char *source);

/* Record one message from source at `now` and return how many (this one included) it
 * submitted in the last 60 seconds. */
uint64_t conncount_msg_note(struct conncount *cc, const char *source, time_t now);

#endif
