/* relayctl: the admin's command line. relayctl.c dispatches verbs; each verb lives in its own
 * file and has this signature. Exit codes: 0 ok, 1 refused or findings, 2 usage or
 * connection error. */
#ifndef RN_RELAYCTL_H
#define RN_RELAYCTL_H
#include <stddef.h>
int relayctl_explain(int argc, char **argv);
int relayctl_connector(int argc, char **argv);     /* connector.c */
int relayctl_permission(int argc, char **argv);    /* permission.c */
int relayctl_domain(int argc, char **argv);        /* domain.c */
int relayctl_sendconnector(int argc, char **argv); /* sendconnector.c */
int relayctl_node(int argc, char **argv);          /* nodelist.c */
int relayctl_audit(int argc, char **argv);         /* audit.c */
int relayctl_queue(int argc, char **argv);         /* queue.c */
int relayctl_cluster(int argc, char **argv);       /* clusterctl.c */

struct admin;
/* Tell every node with an endpoint that the directory has a new version: read the version
 * through a's connection, load relayctl's key (the bootstrap's cluster_secret_key_file) and
 * send one NOTICE (origin "relayctl", sender "relayctl@<host>"), waiting up to linger_ms
 * for it to leave (clusterctl.c). The node count, or -1 with err; *version_out (may be NULL)
 * gets the version announced (caller frees). Used by `cluster notify` and after writes. */
int relayctl_cluster_notice(struct admin *a, unsigned linger_ms, char **version_out,
                            char *err, size_t errlen);
#endif
