/* cluster_key: the CURVE keys of the cluster bus (cluster_key.h): Z85 validation, a fresh
 * keypair, and the node's secret key file. Blocking file I/O, no event loop: both the
 * daemon and relayctl use it. */
#include "node/cluster/cluster_key.h"
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <zmq.h>
#include "directory/base/util.h"

bool cluster_key_valid(const char *z85)
{
    uint8_t bin[32];
    return z85 && strlen(z85) == CLUSTER_KEY_LEN && zmq_z85_decode(bin, z85) != NULL;
}

int cluster_keypair_new(char public_out[CLUSTER_KEY_LEN + 1],
                        char secret_out[CLUSTER_KEY_LEN + 1], char *err, size_t errlen)
{
    if (zmq_curve_keypair(public_out, secret_out) != 0)
        return rn_err(err, errlen, "zmq_curve_keypair: %s", zmq_strerror(zmq_errno()));
    return 0;
}

int cluster_key_load(const char *path, char secret_out[CLUSTER_KEY_LEN + 1],
                     char public_out[CLUSTER_KEY_LEN + 1], char *err, size_t errlen)
{
    FILE *f = fopen(path, "re");
    if (!f)
        return rn_err(err, errlen, "cluster_secret_key_file %s: %s", path, strerror(errno));
    char line[128] = "";
    bool got = fgets(line, sizeof line, f) != NULL;
    fclose(f);
    line[strcspn(line, "\r\n")] = '\0';
    int rc = 0;
    if (!got || !cluster_key_valid(line))
        rc = rn_err(err, errlen, "cluster_secret_key_file %s: first line is not a Z85 CURVE "
                    "secret key (40 characters)", path);
    else if (zmq_curve_public(public_out, line) != 0)
        rc = rn_err(err, errlen, "cluster_secret_key_file %s: %s", path,
                    zmq_strerror(zmq_errno()));
    else
        memcpy(secret_out, line, CLUSTER_KEY_LEN + 1);
    explicit_bzero(line, sizeof line);
    return rc;
}
