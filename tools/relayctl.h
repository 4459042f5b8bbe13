/* relayctl: the admin's command line. relayctl.c dispatches verbs; each verb lives in its own
 * file and has this signature. Exit codes: 0 ok, 1 refused or findings, 2 usage or
 * connection error. */
#ifndef RN_RELAYCTL_H
#define RN_RELAYCTL_H
int relayctl_explain(int argc, char **argv);
#endif
