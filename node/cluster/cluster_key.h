/* cluster_key: the CURVE keys of the cluster bus and the description of a cluster member
 * (its name, endpoint and public key, as its relayNode entry gives them), shared by the
 * loop-side bus (cluster.h) and relayctl's clients (cluster_client.h). */
#ifndef RN_CLUSTER_KEY_H
#define RN_CLUSTER_KEY_H
#include <stdbool.h>
#include <stddef.h>

#define CLUSTER_KEY_LEN 40          /* Z85 text of a CURVE key */

struct cluster_peer {
    const char *name;               /* relayNode cn */
    const char *endpoint;           /* relayClusterEndpoint; NULL or "": publish-only member
                                     * (relayctl's key): allowed to send, never subscribed to */
    const char *public_key;         /* relayCurvePublicKey, Z85 */
};

/* A key file holds the Z85 secret key on its first line (cluster_secret_key_file);
 * -1 with err when unreadable or not a key. public_out gets the derived public key. */
int cluster_key_load(const char *path, char secret_out[CLUSTER_KEY_LEN + 1],
                     char public_out[CLUSTER_KEY_LEN + 1], char *err, size_t errlen);
/* A fresh keypair (for `relayctl node keygen`); -1 with err when CURVE is unavailable. */
int cluster_keypair_new(char public_out[CLUSTER_KEY_LEN + 1],
                        char secret_out[CLUSTER_KEY_LEN + 1], char *err, size_t errlen);
/* Whether z85 is a 40-character Z85 text that decodes to a 32-byte key. */
bool cluster_key_valid(const char *z85);
#endif
