/* relaynode: command line. Runs the daemon (node/daemon.c), or one of two offline tools:
 *   --check       load the bootstrap and the snapshot synchronously and print what the node
 *                 would run with, every refused entry included (exit 0 clean, 1 entries were
 *                 refused, 2 the directory cannot be loaded);
 *   --list-spool  list the committed messages of the spool directory.
 * Unknown flags print the usage on stderr and exit 2. */
#include <inttypes.h>
#include <stddef.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "directory/acl.h"
#include "directory/bootstrap.h"
#include "directory/ipr.h"
#include "directory/ldap/ldapdir.h"
#include "directory/model.h"
#include "directory/rights.h"
#include "directory/base/util.h"
#include "node/daemon.h"
#include "node/milter/milter_proto.h"
#include "node/common/log.h"
#include "node/spool/spool.h"

#define RELAYNODE_VERSION "0.1.0"

static void usage(FILE *f)
{
    fprintf(f, "usage: relaynode -c FILE [--foreground] [--pidfile PATH] [--check] "
               "[--list-spool] [--help-config] [--version] [--allow-root]\n"
               "  -c FILE         bootstrap file (key = value)\n"
               "  --foreground    stay attached; log to the bootstrap's log target\n"
               "  --pidfile PATH  write the daemon's pid to PATH\n"
               "  --check         load the directory, print the configuration, exit 0/1/2\n"
               "  --list-spool    list committed messages in the spool, exit 0\n"
               "  --help-config   print every bootstrap key with its value and meaning\n"
               "  --version       print the version\n"
               "  --allow-root    run the daemon as root when the bootstrap sets no `user`\n");
}

/* "unlimited" for RN_UNLIMITED, else the number. */
static const char *limit_str(uint64_t v, char *buf, size_t len)
{
    if (v == RN_UNLIMITED)
        return "unlimited";
    snprintf(buf, len, "%" PRIu64, v);
    return buf;
}

/* Print the limits and settings of c that differ from connector_defaults(). */
static void check_print_limits(const struct rn_connector *c)
{
    struct rn_connector def;
    memset(&def, 0, sizeof def);
    connector_defaults(&def);
    static const struct { const char *name; size_t off; } lims[] = {
#define L(f) {#f, offsetof(struct rn_connector, f)}
        L(max_message_size), L(max_header_size), L(max_recipients), L(max_hop_count),
        L(max_local_hop_count), L(connection_timeout), L(inactivity_timeout), L(max_inbound),
        L(max_inbound_per_source), L(max_inbound_pct_per_source), L(max_logon_failures),
        L(max_protocol_errors), L(message_rate_limit), L(tarpit_interval),
#undef L
    };
    int shown = 0;
    char b1[32], b2[32];
    for (size_t i = 0; i < sizeof lims / sizeof lims[0]; i++) {
        uint64_t v = *(const uint64_t *)((const char *)c + lims[i].off);
        uint64_t dv = *(const uint64_t *)((const char *)&def + lims[i].off);
        if (v == dv)
            continue;
        printf("%s%s=%s (default %s)", shown++ ? ", " : "    limits: ", lims[i].name,
               limit_str(v, b1, sizeof b1), limit_str(dv, b2, sizeof b2));
    }
    if (c->require_tls != def.require_tls)
        printf("%srequire_tls=%s", shown++ ? ", " : "    limits: ", c->require_tls ? "yes" : "no");
    if (c->protocol_logging != def.protocol_logging)
        printf("%sprotocol_logging=%s", shown++ ? ", " : "    limits: ",
               c->protocol_logging ? "Verbose" : "None");
    printf("%s\n", shown ? "" : "    limits: defaults");
    connector_clear(&def);
}

static void check_print_connector(const struct rn_connector *c)
{
    char buf[4096];
    printf("connector %s\n", c->name);
    printf("    dn: %s\n", c->dn);
    printf("    scope: %s\n", c->site_scoped ? "site" : "node");
    printf("    enabled: %s\n", c->enabled ? "true" : "false");
    printf("    bindings:");
    for (size_t i = 0; i < c->nbindings; i++) {
        ipr_binding_format(&c->bindings[i], buf, sizeof buf);
        printf("%s %s", i ? "," : "", buf);
    }
    printf("\n    remote ranges:");
    for (size_t i = 0; i < c->nranges; i++) {
        ipr_range_format(&c->ranges[i], buf, sizeof buf);
        printf("%s %s", i ? "," : "", buf);
    }
    auth_mechs_format(c->auth, buf, sizeof buf);
    printf("\n    auth mechanisms: %s\n", buf);
    groups_format(acl_derive_groups(c->aces, c->naces), buf, sizeof buf);
    printf("    permission groups: %s\n", buf);
    printf("    aces: %zu\n", c->naces);
    if (c->fqdn)
        printf("    fqdn: %s\n", c->fqdn);
    if (c->banner)
        printf("    banner: %s\n", c->banner);
    check_print_limits(c);
}

static const char *domain_type_name(enum rn_domain_type t)
{
    switch (t) {
    case DOMAIN_AUTHORITATIVE: return "Authoritative";
    case DOMAIN_INTERNAL_RELAY: return "InternalRelay";
    default: return "ExternalRelay";
    }
}

static void check_print(const struct rn_bootstrap *b, const struct rn_snapshot *s)
{
    printf("relaynode %s check\n", RELAYNODE_VERSION);
    printf("directory: %s base=%s\n", b->uri, b->base_dn);
    printf("version: %s\n", s->version ? s->version : "-");
    printf("node: %s dn=%s site=%s\n", s->node_name ? s->node_name : b->node,
           s->node_dn ? s->node_dn : "-", s->site_dn ? s->site_dn : "-");
    printf("connectors: %zu\n", s->nconnectors);
    for (size_t i = 0; i < s->nconnectors; i++)
        check_print_connector(&s->connectors[i]);
    printf("accepted domains: %zu\n", s->ndomains);
    for (size_t i = 0; i < s->ndomains; i++)
        printf("    %s %s%s\n", s->domains[i].domain, domain_type_name(s->domains[i].type),
               domain_lookup_on(&s->domains[i]) ? " (recipient lookup)" : "");
    if (s->recipients)
        printf("recipients: %zu addresses, %zu bytes\n", rcptset_count(s->recipients),
               rcptset_bytes(s->recipients));
    printf("send connectors: %zu\n", s->nsendconns);
    for (size_t i = 0; i < s->nsendconns; i++) {
        const struct rn_sendconn *sc = &s->sendconns[i];
        printf("sendconnector %s\n    dn: %s\n    enabled: %s\n    address spaces:", sc->name,
               sc->dn, sc->enabled ? "true" : "false");
        for (size_t j = 0; j < sc->naddress_spaces; j++)
            printf("%s %s", j ? "," : "", sc->address_spaces[j]);
        printf("\n    smart hosts:");
        for (size_t j = 0; j < sc->nsmart_hosts; j++)
            printf("%s %s", j ? "," : "", sc->smart_hosts[j]);
        printf("%s\n    cost: %" PRIu64 "\n    require tls: %s\n",
               sc->nsmart_hosts ? "" : " (DNS MX)", sc->cost, sc->require_tls ? "yes" : "no");
    }
    printf("errors: %zu\n", s->nerrors);
    for (size_t i = 0; i < s->nerrors; i++)
        printf("error: %s\n", s->errors[i]);
}

/* --check: exit 0 clean, 1 when entries were refused, 2 when nothing could be loaded. */
static int run_check(const char *conf)
{
    struct rn_bootstrap b;
    struct ldapdir *d = NULL;
    struct rn_snapshot *s = NULL;
    char err[RN_ERRLEN];
    int rc = 2;
    memset(&b, 0, sizeof b);
    if (bootstrap_load(conf, &b, err, sizeof err) < 0) {
        fprintf(stderr, "relaynode: %s\n", err);
        goto out;
    }
    /* The milter endpoints are checked as the node checks them at start (file:line). */
    struct milter_endpoint *ep = NULL;
    size_t nep = 0;
    char merr[RN_ERRLEN];
    if (milter_endpoints_parse(b.milter, &ep, &nep, merr, sizeof merr) < 0) {
        fprintf(stderr, "relaynode: %s:%u: milter: %s\n", conf, b.milter_line, merr);
        goto out;
    }
    free(ep);
    enum dir_result r = ldapdir_open(&b, &d, err, sizeof err);
    if (r == DIR_FOUND)
        r = ldapdir_load_snapshot(d, &b, &s, err, sizeof err);
    if (r != DIR_FOUND) {
        printf("relaynode %s check\ndirectory: %s base=%s\nerror: cannot load the directory: "
               "%s\n", RELAYNODE_VERSION, b.uri, b.base_dn, err);
        fprintf(stderr, "relaynode: cannot load the directory: %s\n", err);
        goto out;
    }
    check_print(&b, s);
    rc = s->nerrors ? 1 : 0;
out:
    if (s)
        snapshot_unref(&s);
    ldapdir_free(&d);
    bootstrap_clear(&b);
    return rc;
}

static int list_one(const struct spool_entry *e, void *arg)
{
    size_t *count = arg;
    char when[32], q[1024];
    struct tm tm;
    gmtime_r(&e->received, &tm);
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
    printf("%s received=%s sender=<%s> size=%" PRIu64 " client=%s connector=%s rcpts=", e->id,
           when, e->sender ? e->sender : "", e->size, e->client_ip ? e->client_ip : "-",
           log_quote(e->connector ? e->connector : "-", q, sizeof q));
    for (size_t i = 0; i < e->nrcpts; i++)
        printf("%s<%s>", i ? "," : "", e->rcpts[i]);
    printf("\n");
    (*count)++;
    return 0;
}

/* --list-spool: the committed messages, one line each, then a count. */
static int run_list_spool(const char *conf)
{
    struct rn_bootstrap b;
    struct spool *sp = NULL;
    char err[RN_ERRLEN];
    size_t count = 0;
    int rc = 1;
    memset(&b, 0, sizeof b);
    if (bootstrap_load(conf, &b, err, sizeof err) < 0) {
        fprintf(stderr, "relaynode: %s\n", err);
        goto out;
    }
    if (spool_open(b.spool_dir, &sp, err, sizeof err) < 0 ||
        spool_foreach(sp, list_one, &count, err, sizeof err) < 0) {
        fprintf(stderr, "relaynode: spool %s: %s\n", b.spool_dir, err);
        goto out;
    }
    printf("%zu message%s in %s\n", count, count == 1 ? "" : "s", b.spool_dir);
    rc = 0;
out:
    spool_free(&sp);
    bootstrap_clear(&b);
    return rc;
}

static void print_line(const char *line, void *arg)
{
    fprintf(arg, "%s\n", line);
}

/* --help-config: every bootstrap key with its value (the defaults, or FILE's with -c before
 * it) and what it means. */
static int print_config(const char *conf)
{
    struct rn_bootstrap b;
    char err[RN_ERRLEN];
    if (bootstrap_load(conf, &b, err, sizeof err) < 0) {
        fprintf(stderr, "relaynode: %s\n", err);
        return 2;
    }
    bootstrap_describe(&b, print_line, stdout);
    bootstrap_clear(&b);
    return 0;
}

int main(int argc, char **argv)
{
    struct daemon_opts o = {0};
    bool check = false, list = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "-c") == 0 && i + 1 < argc)
            o.conf = argv[++i];
        else if (strcmp(a, "--pidfile") == 0 && i + 1 < argc)
            o.pidfile = argv[++i];
        else if (strcmp(a, "--foreground") == 0)
            o.foreground = true;
        else if (strcmp(a, "--allow-root") == 0)
            o.allow_root = true;
        else if (strcmp(a, "--check") == 0)
            check = true;
        else if (strcmp(a, "--list-spool") == 0)
            list = true;
        else if (strcmp(a, "--version") == 0) {
            printf("relaynode %s\n", RELAYNODE_VERSION);
            return 0;
        } else if (strcmp(a, "--help-config") == 0) {
            return print_config(o.conf);
        } else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            usage(stdout);
            return 0;
        } else {
            fprintf(stderr, "relaynode: unknown or incomplete option '%s'\n", a);
            usage(stderr);
            return 2;
        }
    }
    if (!o.conf || (check && list)) {
        usage(stderr);
        return 2;
    }
    if (check)
        return run_check(o.conf);
    if (list)
        return run_list_spool(o.conf);
    return daemon_run(&o);
}
