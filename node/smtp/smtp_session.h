/* smtp_session: the public face of one SMTP server session (RFC 5321). The daemon hands it
 * accepted sockets; the session selects its connector, runs its state machine and frees
 * itself. Everything else about a session is in smtp_session-private.h. */
#ifndef RN_SMTP_SESSION_H
#define RN_SMTP_SESSION_H
#include <sys/socket.h>
#include "node/common/node.h"

/* Start an SMTP session on an accepted socket (daemon -> session). The session selects its
 * connector, checks connection limits and runs until it closes; it frees itself. */
void smtp_session_start(struct node *n, int fd, const struct sockaddr *local,
                        const struct sockaddr *remote);
/* SIGTERM: sessions between transactions get 421 4.3.2 and close now; the others close
 * when their transaction ends. */
void smtp_session_drain(struct node *n);
/* Shutdown, after the worker pool is gone: free every session still open. */
void smtp_session_free_all(struct node *n);
#endif
