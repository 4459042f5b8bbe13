/* nodelist: `relayctl node list`, the relay nodes in the directory with their site, host
 * name, cluster endpoint and a fingerprint of their CURVE public key (SHA-256 of the Z85 text,
 * first 16 bytes in hex, the way ssh-keygen -l shortens a key for eyes to compare); and
 * `relayctl node keygen`, a CURVE keypair for a node or for relayctl itself
 * (schema/cluster-protocol.md §4): the secret key goes to a new 0600 file, never to stdout,
 * and the public key is printed for the relayNode entry's relayCurvePublicKey. */
#include "tools/relayctl.h"
#include "tools/admin.h"
#include "tools/output.h"
#include "directory/util.h"
#include "node/cluster.h"
#include "node/tlsctx.h"
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char help_text[] =
    "usage: relayctl node list [--json]\n"
    "       relayctl node keygen --secret-file PATH [--json]\n\n"
    "list: the relay nodes (relayNode entries) with their site, host name, cluster endpoint\n"
    "and key fingerprint (SHA256:<first 16 bytes of the SHA-256 of the Z85 public key>).\n\n"
    "keygen: a new CURVE keypair for the cluster bus. The Z85 secret key is written to PATH\n"
    "(created with mode 0600; an existing file is never overwritten: exit 1) for the\n"
    "bootstrap key cluster_secret_key_file; the public key is printed, for the node's\n"
    "relayCurvePublicKey. relayctl's own key is a relayNode entry without\n"
    "relayClusterEndpoint. No directory connection is made.\n\n";

static void fingerprint(const char *key, char *out, size_t len)
{
    unsigned char md[32];
    if (!key || !*key || tlsctx_sha256(key, strlen(key), md) < 0) {
        rn_strlcpy(out, "", len);
        return;
    }
    size_t w = (size_t)snprintf(out, len, "SHA256:");
    for (unsigned i = 0; i < 16 && w + 3 <= len; i++)
        w += (size_t)snprintf(out + w, len - w, "%02x", md[i]);
}

/* Write the secret key to a file that did not exist (O_EXCL: a key is never replaced by
 * accident, which would cut the node off the bus). 0, 1 when it exists, 2 on other errors. */
static int key_write(const struct admin *a, const char *path, const char *secret)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0 && errno == EEXIST)
        return admin_fail(a, 1, "%s exists: refusing to overwrite a key file", path);
    if (fd < 0)
        return admin_fail(a, 2, "%s: %s", path, strerror(errno));
    char line[CLUSTER_KEY_LEN + 2];
    snprintf(line, sizeof line, "%s\n", secret);
    size_t len = strlen(line);
    bool ok = write(fd, line, len) == (ssize_t)len && fsync(fd) == 0;
    int saved = errno;
    ok = close(fd) == 0 && ok;
    explicit_bzero(line, sizeof line);
    if (!ok) {
        unlink(path);
        return admin_fail(a, 2, "%s: %s", path, strerror(saved));
    }
    return 0;
}

static int node_keygen(int argc, char **argv)
{
    static const struct option opts[] = {
        {"secret-file", required_argument, 0, 's'},
        {"json", no_argument, 0, 'j'},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0}};
    struct admin a;
    admin_init(&a, "node keygen");
    const char *path = NULL;
    optind = 0;
    int c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (c == 'h') {
            fputs(help_text, stdout);
            return admin_close(&a), 0;
        }
        if (c == 's')
            path = optarg;
        else if (c == 'j')
            a.json = true;
        else
            return admin_close(&a), 2;
    }
    if (optind != argc)
        return admin_close(&a), admin_fail(&a, 2, "keygen takes no arguments");
    if (!path || !*path)
        return admin_close(&a), admin_fail(&a, 2, "--secret-file PATH is required");
    char public[CLUSTER_KEY_LEN + 1], secret[CLUSTER_KEY_LEN + 1], err[RN_ERRLEN];
    if (cluster_keypair_new(public, secret, err, sizeof err) != 0)
        return admin_close(&a), admin_fail(&a, 2, "%s", err);
    int rc = key_write(&a, path, secret);
    explicit_bzero(secret, sizeof secret);
    if (rc == 0 && a.json) {
        struct json *j = json_new(stdout);
        json_begin_object(j, NULL);
        json_string(j, "PublicKey", public);
        json_string(j, "SecretFile", path);
        json_end_object(j);
        json_free(&j);
    } else if (rc == 0) {
        printf("%s\n", public);
    }
    admin_close(&a);
    return rc;
}

int relayctl_node(int argc, char **argv)
{
    static const struct option opts[] = {ADMIN_LONGOPTS, {0, 0, 0, 0}};
    const char *sub = argc >= 2 ? argv[1] : "";
    bool help = !strcmp(sub, "--help") || !strcmp(sub, "-h");
    if (!strcmp(sub, "keygen"))
        return node_keygen(argc - 1, argv + 1);
    if (strcmp(sub, "list")) {
        fputs(help_text, help ? stdout : stderr);
        if (help)
            fputs(admin_help_options(), stdout);
        return help ? 0 : 2;
    }
    struct admin a;
    admin_init(&a, "node list");
    optind = 0;
    int c;
    while ((c = getopt_long(argc - 1, argv + 1, "h", opts, NULL)) != -1) {
        if (c == 'h') {
            printf("%s%s", help_text, admin_help_options());
            return admin_close(&a), 0;
        }
        if (!admin_option(&a, c, optarg))
            return admin_close(&a), 2;
    }
    if (optind != argc - 1)
        return admin_close(&a), admin_fail(&a, 2, "list takes no arguments");
    /* Listing nodes must work whichever node the bootstrap names, and with several. */
    int rc = admin_open_nodeless(&a);
    if (rc) {
        admin_close(&a);
        return rc;
    }
    struct ldapadmin_node *nodes;
    size_t n;
    char err[RN_ERRLEN];
    enum dir_result r = ldapadmin_list_nodes(a.d, a.dc.boot.base_dn, &nodes, &n, err,
                                             sizeof err);
    if (r != DIR_FOUND) {
        admin_close(&a);
        return admin_fail(&a, 2, "%s", err);
    }
    static const char *const hdr[] = {"Name", "Site", "HostName", "ClusterEndpoint",
                                      "KeyFingerprint"};
    struct table *t = table_new(5, hdr);
    struct json *j = a.json ? json_new(stdout) : NULL;
    if (j)
        json_begin_array(j, NULL);
    for (size_t i = 0; i < n; i++) {
        char fp[64];
        fingerprint(nodes[i].pubkey, fp, sizeof fp);
        const char *row[5] = {nodes[i].name, nodes[i].site, nodes[i].hostname,
                              nodes[i].endpoint, fp};
        if (j) {
            json_begin_object(j, NULL);
            json_string(j, "Name", row[0]);
            json_string(j, "Identity", nodes[i].dn);
            json_string(j, "Site", row[1]);
            json_string(j, "HostName", row[2]);
            json_string(j, "ClusterEndpoint", row[3]);
            json_string(j, "PublicKey", nodes[i].pubkey);
            json_string(j, "KeyFingerprint", *fp ? fp : NULL);
            json_end_object(j);
        } else {
            table_row(t, row);
        }
    }
    if (j) {
        json_end_array(j);
        json_free(&j);
    } else {
        table_print(t, stdout);
    }
    table_free(&t);
    ldapadmin_nodes_free(&nodes, n);
    admin_close(&a);
    return 0;
}
