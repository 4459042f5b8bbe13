/* clusterbus: relayctl's side of the cluster bus (schema/cluster-protocol.md), shared by the
 * admin writes (admin_write announces each change) and `relayctl cluster` (status, notify):
 * relayctl's own CURVE key, the directory's version, the relay nodes as bus peers, and the
 * NOTICE. It knows the directory connection and the bootstrap, not the verbs: messages go to
 * err, the caller prints them. */
#ifndef RN_CLUSTERBUS_H
#define RN_CLUSTERBUS_H
#include <stddef.h>
#include "directory/bootstrap.h"
#include "directory/ldap/ldapadmin.h"
#include "directory/ldap/ldapdir.h"
#include "node/cluster/cluster_key.h"

/* relayctl's secret key: the bootstrap's cluster_secret_key_file. -1 with err (also when
 * the bootstrap names none). */
int clusterbus_key_load(const struct rn_bootstrap *b, char secret[CLUSTER_KEY_LEN + 1],
                        char *err, size_t errlen);
/* The directory's version (the contextCSN of the suffix holding the relay base), checked
 * with clusterver_valid. NULL with err. Caller frees. */
char *clusterbus_version_read(struct ldapdir *d, const struct rn_bootstrap *b, char *err,
                              size_t errlen);
/* Every relay node and a cluster_peer view of them (pointing into *nodes): 0, or -1 with
 * err. Caller frees *peers and ldapadmin_nodes_free()s *nodes. */
int clusterbus_peers_read(struct ldapdir *d, const struct rn_bootstrap *b,
                          struct ldapadmin_node **nodes, size_t *n, struct cluster_peer **peers,
                          char *err, size_t errlen);
/* Tell every node with an endpoint that the directory has a new version: read the version
 * through d, load relayctl's key and send one NOTICE (origin "relayctl", sender
 * "relayctl@<host>"), waiting up to linger_ms for it to leave. The node count, or -1 with
 * err; *version_out (may be NULL) gets the version announced (caller frees). */
int clusterbus_notice(struct ldapdir *d, const struct rn_bootstrap *b, unsigned linger_ms,
                      char **version_out, char *err, size_t errlen);
#endif
