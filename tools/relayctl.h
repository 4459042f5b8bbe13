/* relayctl: the admin's command line. relayctl.c dispatches verbs; each verb lives in its own
 * file and has this signature. Exit codes: 0 ok, 1 refused or findings, 2 usage or
 * connection error. */
#ifndef RN_RELAYCTL_H
#define RN_RELAYCTL_H
int relayctl_explain(int argc, char **argv);       /* explain.c */
int relayctl_connector(int argc, char **argv);     /* connector.c */
int relayctl_permission(int argc, char **argv);    /* permission.c */
int relayctl_domain(int argc, char **argv);        /* domain.c */
int relayctl_sendconnector(int argc, char **argv); /* sendconnector.c */
int relayctl_node(int argc, char **argv);          /* nodelist.c */
int relayctl_org(int argc, char **argv);           /* org.c */
int relayctl_audit(int argc, char **argv);         /* audit.c */
int relayctl_queue(int argc, char **argv);         /* queue.c */
int relayctl_cluster(int argc, char **argv);       /* clusterctl.c */
#endif
