/* nodelist: `relayctl node list|new|set|remove|keygen`, the relay nodes in the directory.
 * list shows each node with its site, host name, cluster endpoint and a fingerprint of its
 * CURVE public key (SHA-256 of the Z85 text, first 16 bytes in hex, the way ssh-keygen -l
 * shortens a key for eyes to compare). new, set and remove write relayNode entries
 * (children of a relaySite, cn=<site>,cn=Sites,<relay base>) through the shared admin layer,
 * after checking every value the cluster bus will read (schema/cluster-protocol.md §4): a
 * Z85 CURVE key, a tcp:// endpoint, a DNS host name. keygen makes a CURVE keypair for a node
 * or for relayctl itself: the secret key goes to a new 0600 file, never to stdout, and the
 * public key is printed for the relayNode entry's relayCurvePublicKey. */
#include "tools/relayctl.h"
#include "tools/admin.h"
#include "tools/output.h"
#include "directory/base/util.h"
#include "directory/entry.h"
#include "node/cluster/cluster_key.h"
#include "node/common/tlsctx.h"
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define OPT_SITE 3600
#define OPT_HOSTNAME 3601
#define OPT_ENDPOINT 3602
#define OPT_PUBKEY 3603
#define OPT_DESCRIPTION 3604
#define OPT_CERT 3605

static const char help_text[] =
    "usage: relayctl node list [--json]\n"
    "       relayctl node new NAME --site SITE [--hostname H] [--cluster-endpoint E]\n"
    "                [--public-key Z85] [--certificate PEM] [--description TEXT] [--json]\n"
    "       relayctl node set NAME [--hostname H|\"\"] [--cluster-endpoint E|\"\"]\n"
    "                [--public-key Z85|\"\"] [--certificate PEM|\"\"]\n"
    "                [--description TEXT|\"\"] [--json]\n"
    "       relayctl node remove NAME\n"
    "       relayctl node keygen --secret-file PATH [--json]\n\n"
    "list: the relay nodes (relayNode entries) with their site, host name, cluster endpoint\n"
    "and key fingerprint (SHA256:<first 16 bytes of the SHA-256 of the Z85 public key>).\n\n"
    "new: add relayNode cn=NAME under the site cn=SITE,cn=Sites,<relay base> (the site must\n"
    "exist and NAME must be new anywhere under the relay base: exit 1 otherwise). E is\n"
    "tcp://HOST:PORT, tcp://[IPv6]:PORT or tcp://*:PORT (PORT 1-65535), Z85 a 40-character\n"
    "CURVE public key from keygen, H a DNS name. Without --cluster-endpoint the entry is a\n"
    "publish-only member: that is how relayctl's own key (its bootstrap's\n"
    "cluster_secret_key_file) is registered, e.g.\n"
    "  relayctl node new relayctl --site Default-Site --public-key <its public key>\n\n"
    "PEM is the node's certificate file (its bootstrap tls_cert): its SHA-256 goes to\n"
    "relayCertificateSha256, so that a node presenting it on STARTTLS to an ExchangeServer\n"
    "connector acts as Exchange Servers.\n\n"
    "set: replace the given attributes of node NAME (exit 1 if there is none); \"\" deletes\n"
    "one. remove: delete node NAME, refused (exit 1) while it still has receive\n"
    "connectors. Invalid values exit 2 and nothing is written.\n\n"
    "keygen: a new CURVE keypair for the cluster bus. The Z85 secret key is written to PATH\n"
    "(created with mode 0600; an existing file is never overwritten: exit 1) for the\n"
    "bootstrap key cluster_secret_key_file; the public key is printed, for the node's\n"
    "relayCurvePublicKey. relayctl's own key is a relayNode entry without\n"
    "relayClusterEndpoint. No directory connection is made.\n\n";

/* What new and set were asked to write; NULL = not given, "" = delete (set) / absent (new). */
struct node_opts {
    const char *site, *hostname, *endpoint, *pubkey, *description, *cert;
    char *hostname_norm;          /* hostname lowercased once checked; owned */
    char cert_sha256[65];         /* the SHA-256 of cert (a PEM file) in hex, once read */
};

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

/* tcp://HOST:PORT or tcp://[IPv6]:PORT with PORT 1..65535 and HOST a DNS name, an IPv4
 * address or "*" (every interface): the endpoints a node's XPUB binds and its peers connect to
 * (schema/cluster-protocol.md §4). Pure: no name is resolved. */
static bool node_endpoint_ok(const char *ep)
{
    char host[256];
    const char *h = ep + 6, *colon;
    if (strncmp(ep, "tcp://", 6) != 0)
        return false;
    if (*h == '[') {
        const char *rb = strchr(h, ']');
        struct in6_addr a6;
        size_t n = rb ? (size_t)(rb - h - 1) : 0;
        if (!rb || rb[1] != ':' || n == 0 || n >= sizeof host)
            return false;
        memcpy(host, h + 1, n);
        host[n] = '\0';
        if (inet_pton(AF_INET6, host, &a6) != 1)
            return false;
        colon = rb + 1;
    } else {
        colon = strrchr(h, ':');
        size_t n = colon ? (size_t)(colon - h) : 0;
        if (n == 0 || n >= sizeof host)
            return false;
        memcpy(host, h, n);
        host[n] = '\0';
        if (strcmp(host, "*") != 0 && (host[0] == '*' || !admin_domain_ok(host)))
            return false;
    }
    const char *p = colon + 1;
    size_t len = strlen(p);
    if (len == 0 || len > 5 || strspn(p, "0123456789") != len)
        return false;
    long port = strtol(p, NULL, 10);
    return port >= 1 && port <= 65535;
}

/* Check every value before anything is read or written; exit 2 on the first bad one. */
static int node_opts_check(const struct admin *a, struct node_opts *o)
{
    if (o->hostname && *o->hostname) {
        o->hostname_norm = xstrdup(o->hostname);
        if (o->hostname_norm[0] == '*' || !admin_domain_ok(o->hostname_norm))
            return admin_fail(a, 2, "--hostname '%s' is not a DNS name (relay1.example.com)",
                              o->hostname);
    }
    if (o->endpoint && *o->endpoint && !node_endpoint_ok(o->endpoint))
        return admin_fail(a, 2, "--cluster-endpoint '%s': tcp://HOST:PORT, tcp://[IPv6]:PORT "
                                "or tcp://*:PORT with PORT 1-65535", o->endpoint);
    if (o->pubkey && *o->pubkey && !cluster_key_valid(o->pubkey))
        return admin_fail(a, 2, "--public-key is not a Z85 CURVE public key (40 characters, "
                                "from relayctl node keygen)");
    if (o->cert && *o->cert) {
        unsigned char md[32];
        char err[RN_ERRLEN];
        if (tlsctx_cert_file_sha256(o->cert, md, err, sizeof err) != 0)
            return admin_fail(a, 2, "--certificate: %s", err);
        cert_sha256_format(md, o->cert_sha256);
    }
    return 0;
}

/* The node named `name` (cn, case-insensitive) anywhere under the relay base: 0 with *dn and
 * *site (may be NULL) filled (caller frees), 1 when there is none (no message), 2 error. */
static int node_lookup(struct admin *a, const char *name, char **dn, char **site)
{
    struct ldapadmin_node *nodes;
    size_t n;
    if (admin_nodes(a, &nodes, &n) != 0)
        return 2;
    int rc = 1;
    for (size_t i = 0; rc == 1 && i < n; i++) {
        if (nodes[i].name && rn_strieq(nodes[i].name, name)) {
            *dn = xstrdup(nodes[i].dn);
            if (site)
                *site = nodes[i].site ? xstrdup(nodes[i].site) : NULL;
            rc = 0;
        }
    }
    ldapadmin_nodes_free(&nodes, n);
    return rc;
}

/* The node as written, for --json after new and set (the same keys as node list). */
static void node_print_json(const struct dir_entry *e, const char *site)
{
    char fp[64];
    fingerprint(dir_entry_first(e, "relayCurvePublicKey"), fp, sizeof fp);
    struct json *j = json_new(stdout);
    json_begin_object(j, NULL);
    json_string(j, "Name", dir_entry_first(e, "cn"));
    json_string(j, "Identity", e->dn);
    json_string(j, "Site", site);
    json_string(j, "HostName", dir_entry_first(e, "relayHostName"));
    json_string(j, "ClusterEndpoint", dir_entry_first(e, "relayClusterEndpoint"));
    json_string(j, "PublicKey", dir_entry_first(e, "relayCurvePublicKey"));
    json_string(j, "KeyFingerprint", *fp ? fp : NULL);
    json_string(j, "CertificateSha256", dir_entry_first(e, "relayCertificateSha256"));
    json_string(j, "Description", dir_entry_first(e, "description"));
    json_end_object(j);
    json_free(&j);
}

static void node_entry_set(struct dir_entry *e, const char *attr, const char *value)
{
    if (value)
        dir_entry_set1(e, attr, *value ? value : NULL);
}

static int node_new(struct admin *a, const char *name, struct node_opts *o)
{
    if (!o->site || !*o->site)
        return admin_fail(a, 2, "--site SITE is required");
    int rc = node_opts_check(a, o);
    if (rc || (rc = admin_open_nodeless(a)) != 0)
        return rc;
    char err[RN_ERRLEN], *site_rdn = admin_rdn_escape(o->site);
    char *site_dn = xasprintf("cn=%s,cn=Sites,%s", site_rdn, a->dc.boot.base_dn);
    free(site_rdn);
    struct dir_entries es;
    enum dir_result r = ldapadmin_search(a->d, site_dn, LA_BASE, "(objectClass=relaySite)",
                                         &es, err, sizeof err);
    char *old_dn = NULL;
    if (r == DIR_NOTFOUND || (r == DIR_FOUND && es.n == 0))
        rc = admin_fail(a, 1, "site '%s' not found (no relaySite %s)", o->site, site_dn);
    else if (r != DIR_FOUND)
        rc = admin_fail(a, 2, "%s", err);
    if (r == DIR_FOUND)
        dir_entries_clear(&es);
    int found = rc ? rc : node_lookup(a, name, &old_dn, NULL);   /* 0 found, 1 not */
    if (!rc && found == 0) {
        rc = admin_fail(a, 1, "node '%s' already exists (%s)", name, old_dn);
        free(old_dn);
    } else if (!rc && found == 2) {
        rc = 2;
    } else if (!rc) {
        char *rdn = admin_rdn_escape(name);
        char *dn = xasprintf("cn=%s,%s", rdn, site_dn);
        struct dir_entry e;
        dir_entry_init(&e, dn);
        dir_entry_add(&e, "objectClass", "relayNode");
        dir_entry_add(&e, "cn", name);
        node_entry_set(&e, "relayHostName", o->hostname_norm);
        node_entry_set(&e, "relayClusterEndpoint", o->endpoint);
        node_entry_set(&e, "relayCurvePublicKey", o->pubkey);
        node_entry_set(&e, "relayCertificateSha256", o->cert ? o->cert_sha256 : NULL);
        node_entry_set(&e, "description", o->description);
        rc = admin_add(a, &e, o->endpoint && *o->endpoint ? NULL : " (publish-only member)");
        if (rc == 0 && a->json && !a->ldif)
            node_print_json(&e, o->site);
        dir_entry_clear(&e);
        free(dn);
        free(rdn);
    }
    free(site_dn);
    return rc;
}

static int node_set(struct admin *a, const char *name, struct node_opts *o)
{
    if (!o->hostname && !o->endpoint && !o->pubkey && !o->description && !o->cert)
        return admin_fail(a, 2, "nothing to set: give --hostname, --cluster-endpoint, "
                                "--public-key, --certificate or --description");
    int rc = node_opts_check(a, o);
    if (rc || (rc = admin_open_nodeless(a)) != 0)
        return rc;
    char *dn = NULL, *site = NULL, err[RN_ERRLEN];
    rc = node_lookup(a, name, &dn, &site);
    if (rc == 1)
        return admin_fail(a, 1, "node '%s' not found under %s", name, a->dc.boot.base_dn);
    if (rc)
        return rc;
    struct dir_entry old_e, new_e;
    enum dir_result r = ldapadmin_read(a->d, dn, &old_e, err, sizeof err);
    if (r != DIR_FOUND) {
        free(dn);
        free(site);
        return admin_dir_fail(a, r, err);
    }
    dir_entry_copy(&new_e, &old_e);
    node_entry_set(&new_e, "relayHostName", o->hostname_norm ? o->hostname_norm : o->hostname);
    node_entry_set(&new_e, "relayClusterEndpoint", o->endpoint);
    node_entry_set(&new_e, "relayCurvePublicKey", o->pubkey);
    node_entry_set(&new_e, "relayCertificateSha256", o->cert ? o->cert_sha256 : NULL);
    node_entry_set(&new_e, "description", o->description);
    rc = admin_modify(a, &old_e, &new_e, NULL, "updated");
    if (rc == 0 && a->json && !a->ldif)
        node_print_json(&new_e, site);
    dir_entry_clear(&old_e);
    dir_entry_clear(&new_e);
    free(dn);
    free(site);
    return rc;
}

/* Only a node without children goes: deleting its receive connectors with it would take
 * listeners away on a typo (and LDAP refuses a non-leaf delete anyway). */
static int node_remove(struct admin *a, const char *name)
{
    int rc = admin_open_nodeless(a);
    if (rc)
        return rc;
    char *dn = NULL, err[RN_ERRLEN];
    rc = node_lookup(a, name, &dn, NULL);
    if (rc == 1)
        return admin_fail(a, 1, "node '%s' not found under %s", name, a->dc.boot.base_dn);
    if (rc)
        return rc;
    struct dir_entries kids;
    enum dir_result r = ldapadmin_search(a->d, dn, LA_ONE, "(objectClass=*)", &kids, err,
                                         sizeof err);
    if (r != DIR_FOUND) {
        free(dn);
        return admin_dir_fail(a, r, err);
    }
    size_t nconn = 0;
    for (size_t i = 0; i < kids.n; i++) {
        const struct dir_attr *oc = dir_entry_get(&kids.v[i], "objectClass");
        for (size_t k = 0; oc && k < oc->nvalues; k++)
            if (rn_strieq(oc->values[k], "relayReceiveConnector"))
                nconn++, k = oc->nvalues;
    }
    if (kids.n && nconn == kids.n)
        rc = admin_fail(a, 1, "node '%s' still has %zu receive connector%s: remove %s first "
                              "(relayctl connector remove NAME --node %s)", name, nconn,
                        nconn == 1 ? "" : "s", nconn == 1 ? "it" : "them", name);
    else if (kids.n)
        rc = admin_fail(a, 1, "node '%s' still has %zu entries under it (%zu receive "
                              "connectors): remove them first", name, kids.n, nconn);
    else
        rc = admin_delete(a, dn);
    dir_entries_clear(&kids);
    free(dn);
    return rc;
}

static int node_list(struct admin *a)
{
    /* Listing nodes must work whichever node the bootstrap names, and with several. */
    int rc = admin_open_nodeless(a);
    if (rc)
        return rc;
    struct ldapadmin_node *nodes;
    size_t n;
    if (admin_nodes(a, &nodes, &n) != 0)
        return 2;
    static const char *const hdr[] = {"Name", "Site", "HostName", "ClusterEndpoint",
                                      "KeyFingerprint"};
    struct listing l;
    listing_begin(&l, a->json, 5, hdr);
    struct json *j = l.j;
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
            table_row(l.t, row);
        }
    }
    listing_end(&l);
    ldapadmin_nodes_free(&nodes, n);
    return 0;
}

int relayctl_node(int argc, char **argv)
{
    static const struct option opts[] = {
        {"site", required_argument, 0, OPT_SITE},
        {"hostname", required_argument, 0, OPT_HOSTNAME},
        {"cluster-endpoint", required_argument, 0, OPT_ENDPOINT},
        {"public-key", required_argument, 0, OPT_PUBKEY},
        {"description", required_argument, 0, OPT_DESCRIPTION},
        {"certificate", required_argument, 0, OPT_CERT},
        ADMIN_LONGOPTS, {0, 0, 0, 0}};
    const char *sub = argc >= 2 ? argv[1] : "";
    bool help = !strcmp(sub, "--help") || !strcmp(sub, "-h");
    if (!strcmp(sub, "keygen"))
        return node_keygen(argc - 1, argv + 1);
    bool is_list = !strcmp(sub, "list"), is_new = !strcmp(sub, "new");
    bool is_set = !strcmp(sub, "set"), is_remove = !strcmp(sub, "remove");
    if (!is_list && !is_new && !is_set && !is_remove)
        return admin_usage(help_text, help);
    struct admin a;
    admin_init_sub(&a, "node", sub);
    struct node_opts o = {0};
    optind = 0;
    int c, rc;
    argc--, argv++;
    while ((c = admin_getopt(&a, argc, argv, opts, help_text)) != -1) {
        if (c == ADMIN_GETOPT_HELP)
            return admin_close(&a), 0;
        if (c == OPT_SITE && is_new)
            o.site = optarg;
        else if (c == OPT_HOSTNAME && (is_new || is_set))
            o.hostname = optarg;
        else if (c == OPT_ENDPOINT && (is_new || is_set))
            o.endpoint = optarg;
        else if (c == OPT_PUBKEY && (is_new || is_set))
            o.pubkey = optarg;
        else if (c == OPT_DESCRIPTION && (is_new || is_set))
            o.description = optarg;
        else if (c == OPT_CERT && (is_new || is_set))
            o.cert = optarg;
        else
            return admin_close(&a), admin_fail(&a, 2, "unexpected option (see --help)");
    }
    int npos = is_list ? 0 : 1;
    if (argc - optind != npos)
        return admin_close(&a),
               admin_fail(&a, 2, npos ? "give exactly one NAME" : "list takes no arguments");
    if (npos && !*argv[optind])
        return admin_close(&a), admin_fail(&a, 2, "NAME is empty");
    if (is_list)
        rc = node_list(&a);
    else if (is_new)
        rc = node_new(&a, argv[optind], &o);
    else if (is_set)
        rc = node_set(&a, argv[optind], &o);
    else
        rc = node_remove(&a, argv[optind]);
    free(o.hostname_norm);
    admin_close(&a);
    return rc;
}
