/* clusterbus: what relayctl needs to speak on the cluster bus (clusterbus.h). relayctl's key
 * is its own bootstrap's cluster_secret_key_file, whose public key is a relayNode entry
 * without relayClusterEndpoint (schema/cluster-protocol.md §4); the version it announces or
 * compares against is the one the loader stamps on a snapshot, read through the same
 * connection the verb already holds. */
#include "tools/clusterbus.h"
#include "node/cluster/cluster_client.h"
#include "directory/base/util.h"
#include "node/cluster/cluster_wire.h"
#include "node/cluster/clusterver.h"
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int clusterbus_key_load(const struct rn_bootstrap *b, char secret[CLUSTER_KEY_LEN + 1],
                        char *err, size_t errlen)
{
    const char *path = b->cluster_secret_key_file;
    if (!path || !*path)
        return rn_err(err, errlen, "no cluster_secret_key_file in the bootstrap file: relayctl "
                      "needs its own CURVE key (relayctl node keygen --secret-file PATH, its "
                      "public key in a relayNode entry without relayClusterEndpoint)");
    char public[CLUSTER_KEY_LEN + 1];
    return cluster_key_load(path, secret, public, err, errlen);
}

int clusterbus_peers_read(struct ldapdir *d, const struct rn_bootstrap *b,
                          struct ldapadmin_node **nodes, size_t *n, struct cluster_peer **peers,
                          char *err, size_t errlen)
{
    if (ldapadmin_list_nodes(d, b->base_dn, nodes, n, err, errlen) != DIR_FOUND)
        return -1;
    *peers = xcalloc(*n ? *n : 1, sizeof **peers);
    for (size_t i = 0; i < *n; i++)
        (*peers)[i] = (struct cluster_peer){(*nodes)[i].name, (*nodes)[i].endpoint,
                                            (*nodes)[i].pubkey};
    return 0;
}

char *clusterbus_version_read(struct ldapdir *d, const struct rn_bootstrap *b, char *err,
                              size_t errlen)
{
    char *v = ldapdir_version_read(d, b->base_dn);
    if (!v || !clusterver_valid(v)) {
        rn_err(err, errlen, "cannot read the directory's version (contextCSN of the suffix "
               "holding %s)%s%s", b->base_dn, v ? ": " : "", v ? v : "");
        free(v);
        return NULL;
    }
    return v;
}

int clusterbus_notice(struct ldapdir *d, const struct rn_bootstrap *b, unsigned linger_ms,
                      char **version_out, char *err, size_t errlen)
{
    if (version_out)
        *version_out = NULL;
    char secret[CLUSTER_KEY_LEN + 1];
    if (clusterbus_key_load(b, secret, err, errlen) != 0)
        return -1;
    char *version = clusterbus_version_read(d, b, err, errlen);
    struct ldapadmin_node *nodes = NULL;
    size_t n = 0;
    struct cluster_peer *peers = NULL;
    int rc = -1;
    if (version && clusterbus_peers_read(d, b, &nodes, &n, &peers, err, errlen) == 0) {
        char host[256] = "";
        if (gethostname(host, sizeof host) != 0)
            rn_strlcpy(host, "localhost", sizeof host);
        host[sizeof host - 1] = '\0';
        char sender[CLUSTER_NODE_MAX + 1] = "relayctl@";
        size_t at = strlen(sender);           /* the node field is at most 255 bytes */
        rn_strlcpy(sender + at, host, sizeof sender - at);
        rc = cluster_send_notice(peers, n, secret, sender, version, "relayctl", linger_ms,
                                 err, errlen);
    }
    explicit_bzero(secret, sizeof secret);
    free(peers);
    ldapadmin_nodes_free(&nodes, n);
    if (rc >= 0 && version_out)
        *version_out = version;
    else
        free(version);
    return rc;
}
