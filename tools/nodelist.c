/* nodelist: `relayctl node list`, the relay nodes in the directory with their site, host
 * name, cluster endpoint and a fingerprint of their CURVE public key (SHA-256 of the Z85 text,
 * first 16 bytes in hex, the way ssh-keygen -l shortens a key for eyes to compare). */
#include <openssl/evp.h>
#include "tools/relayctl.h"
#include "tools/admin.h"
#include "tools/output.h"
#include "directory/util.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char help_text[] =
    "usage: relayctl node list [--json]\n\n"
    "List the relay nodes (relayNode entries) with their site, host name, cluster endpoint\n"
    "and key fingerprint (SHA256:<first 16 bytes of the SHA-256 of the Z85 public key>).\n\n";

static void fingerprint(const char *key, char *out, size_t len)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    if (!key || !*key ||
        !EVP_Digest(key, strlen(key), md, &mdlen, EVP_sha256(), NULL) || mdlen < 16) {
        rn_strlcpy(out, "", len);
        return;
    }
    size_t w = (size_t)snprintf(out, len, "SHA256:");
    for (unsigned i = 0; i < 16 && w + 3 <= len; i++)
        w += (size_t)snprintf(out + w, len - w, "%02x", md[i]);
}

int relayctl_node(int argc, char **argv)
{
    static const struct option opts[] = {ADMIN_LONGOPTS, {0, 0, 0, 0}};
    const char *sub = argc >= 2 ? argv[1] : "";
    bool help = !strcmp(sub, "--help") || !strcmp(sub, "-h");
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
