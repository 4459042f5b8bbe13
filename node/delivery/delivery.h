/* delivery: one attempt to deliver one queued message to its recipients (issue #5,
 * docs/architecture.md §5): route every recipient by the snapshot's send connectors, resolve each next
 * hop (smart host or DNS MX), and hand the message to the async SMTP client, one connection
 * per next hop. The answer is one result per recipient. Loop thread. */
#ifndef RN_DELIVERY_H
#define RN_DELIVERY_H
#include <stddef.h>

struct node;
struct delivery;

enum delivery_class { DELIVERY_OK, DELIVERY_TEMP, DELIVERY_PERM };

struct delivery_rcpt_result {
    enum delivery_class cls;
    char reply[512];        /* "250 2.0.0 Ok" as the remote said it, or a local reason */
    char remote[300];       /* next hop that answered ("mx.example.net[192.0.2.1]"), or "" */
};

/* results[i] belongs to rcpts[i]. Called exactly once, on the loop thread. */
typedef void delivery_done_fn(void *arg, const struct delivery_rcpt_result *results, size_t n);

struct delivery *delivery_new(struct node *n, char *err, size_t errlen);   /* NULL with err */
/* In-flight attempts finish first: their done() runs with what they have (temporary
 * failures for the rest). */
void delivery_free(struct delivery **d);
/* Close every parked connection (QUIT): after SIGHUP replaced the trust store or the client
 * certificate, no connection verified or set up with the old ones carries another message. */
void delivery_idle_drop(struct delivery *d);
/* Deliver queue/<id> from sender ("" = null) to rcpts[0..n) (strings are copied). */
void delivery_start(struct delivery *d, const char *id, const char *sender,
                    const char *const *rcpts, size_t n, delivery_done_fn *done, void *arg);
#endif
