/* dirconf: the directory options shared by relayctl's verbs (dirconf.h). A verb's own parser
 * offers each argument here first, so every verb spells them the same way and an override
 * always beats the file, whatever the order on the command line. */
#include "tools/dirconf.h"
#include "directory/base/util.h"
#include <stdlib.h>
#include <string.h>

const char dirconf_usage[] =
    "  --config FILE          bootstrap file (default: $RELAYNODE_CONFIG)\n"
    "  --uri URI              directory URI, e.g. ldap://127.0.0.1:389/ or ldapi://...\n"
    "  --bind-dn DN           simple-bind identity\n"
    "  --password-file FILE   file whose first line is the bind password\n"
    "  --base DN              the relay subtree, e.g. ou=Relay,dc=example,dc=com\n"
    "  --node NAME            the node whose configuration is loaded\n";

/* Option -> bootstrap key. */
static const struct { const char *opt, *key; } options[] = {
    {"--uri", "uri"}, {"--bind-dn", "bind_dn"}, {"--password-file", "bind_password_file"},
    {"--base", "base_dn"}, {"--node", "node"}, {"--config", NULL},
};

void dirconf_init(struct dirconf *dc)
{
    memset(dc, 0, sizeof *dc);
}

int dirconf_option(struct dirconf *dc, int argc, char **argv, int *i, char *err, size_t errlen)
{
    const char *arg = argv[*i];
    for (size_t k = 0; k < sizeof options / sizeof options[0]; k++) {
        size_t len = strlen(options[k].opt);
        if (strncmp(arg, options[k].opt, len) != 0 || (arg[len] != '\0' && arg[len] != '='))
            continue;
        const char *value;
        if (arg[len] == '=') {
            value = arg + len + 1;
        } else if (*i + 1 < argc) {
            value = argv[++*i];
        } else {
            return rn_err(err, errlen, "%s needs a value", options[k].opt);
        }
        if (!options[k].key) {
            dc->config = (char *)value;
        } else {
            dc->keys = xrealloc(dc->keys, (dc->noverrides + 1) * sizeof *dc->keys);
            dc->values = xrealloc(dc->values, (dc->noverrides + 1) * sizeof *dc->values);
            dc->keys[dc->noverrides] = options[k].key;
            dc->values[dc->noverrides++] = value;
        }
        return 1;
    }
    return 0;
}

int dirconf_finish(struct dirconf *dc, char *err, size_t errlen)
{
    const char *path = dc->config;
    if (!path || !*path)
        path = getenv("RELAYNODE_CONFIG");
    if (path && !*path)
        path = NULL;
    if (bootstrap_load(path, &dc->boot, err, errlen) != 0)
        return -1;
    for (size_t i = 0; i < dc->noverrides; i++)
        if (bootstrap_set(&dc->boot, dc->keys[i], dc->values[i], err, errlen) != 0)
            return -1;
    if (!dc->boot.uri || !*dc->boot.uri)
        return rn_err(err, errlen, "no directory: give --config FILE, --uri or RELAYNODE_CONFIG");
    return 0;
}

enum dir_result dirconf_connect(struct dirconf *dc, struct ldapdir **out, char *err,
                                size_t errlen)
{
    return ldapdir_open(&dc->boot, out, err, errlen);
}

void dirconf_clear(struct dirconf *dc)
{
    bootstrap_clear(&dc->boot);
    free(dc->keys);
    free(dc->values);
    memset(dc, 0, sizeof *dc);
}
