/* relayctl: dispatch `relayctl <verb> ...` to the verb's implementation; `--version` prints
 * the version, the same as relaynode's (tests/integration/test_install.py compares them). */
#include <stdio.h>
#include <string.h>
#include "tools/relayctl.h"

/* Kept equal to RELAYNODE_VERSION in node/main.c: one release names both binaries. */
#define RELAYCTL_VERSION "0.1.0"

struct verb { const char *name; int (*run)(int argc, char **argv); const char *help; };

static const struct verb verbs[] = {
    {"explain", relayctl_explain, "show the connector, token, rights and replies for a client"},
    {"connector", relayctl_connector, "receive connectors: new, set, get, list, remove"},
    {"permission", relayctl_permission, "connector ACEs: add, remove, get (like *-ADPermission)"},
    {"domain", relayctl_domain, "accepted domains: new, list, remove"},
    {"sendconnector", relayctl_sendconnector, "send connectors: new, set, list, remove"},
    {"org", relayctl_org, "organisation settings: domain-secure list, add, remove"},
    {"node", relayctl_node, "relay nodes: list, new, set, remove, keygen"},
    {"audit", relayctl_audit, "who can relay where; findings exit 1"},
    {"queue", relayctl_queue, "the node's spool: list, show, retry, remove"},
    {"cluster", relayctl_cluster, "the cluster bus: status (each node's version), notify"},
};

static int usage(FILE *f)
{
    fprintf(f, "usage: relayctl <verb> [options]   (relayctl <verb> --help)\n"
               "       relayctl --version\n\nverbs:\n");
    for (size_t i = 0; i < sizeof verbs / sizeof verbs[0]; i++)
        fprintf(f, "  %-13s %s\n", verbs[i].name, verbs[i].help);
    return f == stdout ? 0 : 2;
}

int main(int argc, char **argv)
{
    if (argc < 2) return usage(stderr);
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help"))
        return usage(stdout);
    if (!strcmp(argv[1], "--version")) {
        printf("relayctl %s\n", RELAYCTL_VERSION);
        return 0;
    }
    for (size_t i = 0; i < sizeof verbs / sizeof verbs[0]; i++)
        if (!strcmp(argv[1], verbs[i].name)) return verbs[i].run(argc - 1, argv + 1);
    fprintf(stderr, "relayctl: unknown verb '%s'\n", argv[1]);
    return usage(stderr);
}
