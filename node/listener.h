/* listener: the node's listening sockets, following the snapshot (docs/architecture.md §3). One
 * evconnlistener per distinct binding (IP:port) of the enabled connectors; a reconcile opens
 * the new bindings and closes the removed ones, leaving the others and their live sessions
 * untouched. Accepted sockets go to smtp_session_start(). Loop thread only. */
#ifndef RN_LISTENER_H
#define RN_LISTENER_H
#include <stddef.h>

struct node;
struct rn_snapshot;
struct listeners;

struct listeners *listeners_new(struct node *n);      /* empty set; caller frees */
/* Close every listening socket (sessions already accepted are not affected); *l = NULL. */
void listeners_free(struct listeners **l);
/* Make the open set equal to the distinct bindings of snap's enabled connectors. A binding
 * that cannot be opened is logged and skipped (the next reconcile tries it again); returns
 * how many failed. */
size_t listeners_reconcile(struct listeners *l, const struct rn_snapshot *snap);
size_t listeners_count(const struct listeners *l);    /* open listening sockets */
#endif
