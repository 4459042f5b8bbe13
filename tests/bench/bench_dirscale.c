/* bench_dirscale: decision time and snapshot memory at directory scale (issue 17: 10,000
 * receive connectors, 1,000 accepted domains, 100,000 users; goal: a decision under 1 us).
 *
 *   bench_dirscale               a snapshot of that size built in memory (as the loader would
 *                                leave it: selection and domain indexes built)
 *   bench_dirscale -c CONF       the snapshot node CONF's bootstrap loads from its directory
 *                                (tests/bench/dirscale_bench.py passes node1's): load time too
 *
 * Prints the snapshot's heap (mallinfo2 in-use bytes before and after it exists), then ns per
 * decision (policy_select + acl_eval + policy_mail + policy_rcpt, clients taken from the
 * connectors' own ranges, RCPTs rotating over an exact accepted domain, a wildcard one, a user
 * of the Authoritative domain and an outside domain), with the accepted-domain index and
 * without it (the scan), and snapshot_find_domain alone both ways. Never asserts a time. */
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "directory/bootstrap.h"
#include "directory/ldap/ldapdir.h"
#include "directory/policy.h"
#include "directory/base/util.h"

#define CONNECTORS 10000
#define DOMAINS 1000
#define USERS 100000
#define RUNS 1000000
#define NCLIENTS 256
#define NRCPTS 64

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e9 + ts.tv_nsec;
}

static size_t heap_in_use(void)
{
    struct mallinfo2 m = mallinfo2();
    return m.uordblks + m.hblkhd;
}

static void die(const char *what, const char *err)
{
    fprintf(stderr, "bench_dirscale: %s: %s\n", what, err);
    exit(2);
}

/* The in-memory directory, shaped as dirscale_bench.py's LDIF: connectors "Scale NNNNN" on
 * 0.0.0.0:25, each for its own /24 of 10.0.0.0/8, anonymous and allowed to relay; the
 * example's Default connector for everyone else; domains sNNNN.example.org (nine in ten) and
 * *.wNNNN.example.net; example.com Authoritative with USERS mail users. */
static struct rn_snapshot *snapshot_build(void)
{
    char err[RN_ERRLEN];
    struct rn_snapshot *s = snapshot_new();
    s->connectors = xcalloc(CONNECTORS + 1, sizeof *s->connectors);
    for (int i = 0; i <= CONNECTORS; i++) {
        struct rn_connector *c = &s->connectors[s->nconnectors++];
        connector_defaults(c);
        char name[64], range[64];
        if (i == CONNECTORS) {
            snprintf(name, sizeof name, "Default node1");
            snprintf(range, sizeof range, "0.0.0.0-255.255.255.255");
        } else {
            snprintf(name, sizeof name, "Scale %05d", i);
            snprintf(range, sizeof range, "10.%d.%d.0/24", i / 256 + 1, i % 256);
        }
        c->name = xstrdup(name);
        c->dn = xasprintf("cn=%s,cn=node1,cn=Default-Site,ou=Relay,dc=example,dc=com", name);
        c->auth = AUTH_TLS;
        c->bindings = xcalloc(1, sizeof *c->bindings);
        c->ranges = xcalloc(1, sizeof *c->ranges);
        if (ipr_binding_parse("0.0.0.0:25", &c->bindings[c->nbindings++], err, sizeof err) ||
            ipr_range_parse(range, &c->ranges[c->nranges++], err, sizeof err))
            die(range, err);
        acl_expand_groups(GROUP_ANONYMOUS, &c->aces, &c->naces);
        c->aces = xrealloc(c->aces, (c->naces + 1) * sizeof *c->aces);
        if (ace_parse("allow; NT AUTHORITY\\ANONYMOUS LOGON; ms-Exch-SMTP-Accept-Any-Recipient",
                      &c->aces[c->naces++], err, sizeof err))
            die("ace", err);
    }
    s->domains = xcalloc(DOMAINS + 1, sizeof *s->domains);
    for (int i = 0; i <= DOMAINS; i++) {
        struct rn_domain *d = &s->domains[s->ndomains++];
        d->domain = i == DOMAINS ? xstrdup("example.com")
                    : i % 10 == 9 ? xasprintf("*.w%04d.example.net", i)
                                  : xasprintf("s%04d.example.org", i);
        d->dn = xasprintf("cn=%s,cn=Accepted Domains,ou=Relay,dc=example,dc=com", d->domain);
        d->type = i == DOMAINS ? DOMAIN_AUTHORITATIVE : (enum rn_domain_type)(i % 3);
        d->address_book_off = i != DOMAINS;
    }
    s->recipients = rcptset_new();
    for (int i = 0; i < USERS; i++) {
        char a[64];
        int n = snprintf(a, sizeof a, "user%d@example.com", i);
        rcptset_add(s->recipients, a, (size_t)n);
    }
    rcptset_freeze(s->recipients);
    policy_index(s);
    snapshot_index_domains(s);
    return s;
}

static struct rn_snapshot *snapshot_load(const char *conf, double *load_ms)
{
    struct rn_bootstrap b;
    struct ldapdir *d = NULL;
    struct rn_snapshot *s = NULL;
    char err[RN_ERRLEN];
    memset(&b, 0, sizeof b);
    if (bootstrap_load(conf, &b, err, sizeof err) < 0)
        die(conf, err);
    double t0 = now_ns();
    enum dir_result r = ldapdir_open(&b, &d, err, sizeof err);
    if (r == DIR_FOUND)
        r = ldapdir_load_snapshot(d, &b, &s, err, sizeof err);
    *load_ms = (now_ns() - t0) / 1e6;
    if (r != DIR_FOUND)
        die("load", err);
    ldapdir_free(&d);
    bootstrap_clear(&b);
    return s;
}

struct client { ipr_addr ip; bool v4; };

static double decide(const struct rn_snapshot *s, const struct client *cl, const ipr_addr *local,
                     uint16_t port, const char *const *rcpts, const struct token *anon,
                     long runs, unsigned long *sink)
{
    struct verdict v;
    struct rights_eval r;
    memset(&r, 0, sizeof r);
    double t0 = now_ns();
    for (long i = 0; i < runs; i++) {
        const struct client *c = &cl[i % NCLIENTS];
        const struct rn_connector *k = policy_select(s, local, port, &c->ip, c->v4, &v);
        if (!k) {
            *sink += (unsigned long)v.code;
            continue;
        }
        acl_eval(k->aces, k->naces, anon, &r);
        policy_mail(k, &r, anon, false, 1000, &v);
        *sink += (unsigned long)v.code;
        policy_rcpt(s, k, &r, rcpts[i % NRCPTS], 0, &v);
        *sink += (unsigned long)v.code + (unsigned long)(k - s->connectors);
    }
    return (now_ns() - t0) / (double)runs;
}

static double find_domains(const struct rn_snapshot *s, const char *const *doms, long runs,
                           unsigned long *sink)
{
    double t0 = now_ns();
    for (long i = 0; i < runs; i++)
        *sink += (unsigned long)(uintptr_t)snapshot_find_domain(s, doms[i % NRCPTS]);
    return (now_ns() - t0) / (double)runs;
}

int main(int argc, char **argv)
{
    const char *conf = NULL;
    if (argc == 3 && strcmp(argv[1], "-c") == 0)
        conf = argv[2];
    else if (argc != 1) {
        fprintf(stderr, "usage: bench_dirscale [-c relaynode.conf]\n");
        return 2;
    }
    double load_ms = 0;
    size_t h0 = heap_in_use();
    double t0 = now_ns();
    struct rn_snapshot *s = conf ? snapshot_load(conf, &load_ms) : snapshot_build();
    double build_ms = (now_ns() - t0) / 1e6;
    size_t h1 = heap_in_use();
    if (conf)
        printf("bench_dirscale: snapshot loaded from the directory of %s in %.0f ms (open, "
               "bind, every search, indexes)\n", conf, load_ms);
    else
        printf("bench_dirscale: snapshot built in memory in %.0f ms (no directory)\n", build_ms);
    printf("bench_dirscale: %zu connectors, %zu accepted domains, %zu recipient addresses; "
           "snapshot heap %.1f MiB (of which recipient set %.1f MiB), %zu refused entries\n",
           s->nconnectors, s->ndomains, s->recipients ? rcptset_count(s->recipients) : 0,
           (double)(h1 - h0) / 1048576.0,
           s->recipients ? (double)rcptset_bytes(s->recipients) / 1048576.0 : 0.0, s->nerrors);

    /* Clients: the start of every 37th connector's first range (the selection's worst case
     * over 10,000 candidates on one binding), one in eight from nowhere (Default). */
    struct client cl[NCLIENTS];
    uint16_t port = 25;
    for (size_t i = 0; i < s->nconnectors; i++)
        if (s->connectors[i].nbindings) {
            port = s->connectors[i].bindings[0].port;
            break;
        }
    for (int i = 0; i < NCLIENTS; i++) {
        const struct rn_connector *c = &s->connectors[(size_t)i * 37 % s->nconnectors];
        if (i % 8 == 7 || c->nranges == 0) {
            char a[32];
            snprintf(a, sizeof a, "203.0.113.%d", i % 250 + 1);
            if (ipr_addr_parse(a, &cl[i].ip, &cl[i].v4) != 0)
                die("client", a);
        } else {
            cl[i].ip = c->ranges[0].lo;
            cl[i].v4 = c->ranges[0].v4;
        }
    }
    ipr_addr local;
    bool v4;
    ipr_addr_parse("127.0.0.1", &local, &v4);
    /* RCPT domains: accepted exact, under an accepted wildcard, outside, example.com's users. */
    static char rbuf[NRCPTS][96], dbuf[NRCPTS][80];
    const char *rcpts[NRCPTS], *doms[NRCPTS];
    for (int i = 0; i < NRCPTS; i++) {
        int k = i * 97 % DOMAINS;
        switch (i % 4) {
        case 0: snprintf(dbuf[i], sizeof dbuf[i], "s%04d.example.org", k - k % 10); break;
        case 1: snprintf(dbuf[i], sizeof dbuf[i], "mx.eu.w%04d.example.net", k - k % 10 + 9);
            break;
        case 2: snprintf(dbuf[i], sizeof dbuf[i], "outside%d.example", i); break;
        default: snprintf(dbuf[i], sizeof dbuf[i], "example.com"); break;
        }
        snprintf(rbuf[i], sizeof rbuf[i], "user%d@%s", i * 1543, dbuf[i]);
        rcpts[i] = rbuf[i];
        doms[i] = dbuf[i];
    }
    struct token anon;
    token_init_anonymous(&anon);
    unsigned long sink = 0;
    decide(s, cl, &local, port, rcpts, &anon, RUNS / 10, &sink);      /* warm up */
    double indexed = decide(s, cl, &local, port, rcpts, &anon, RUNS, &sink);
    double find_ix = find_domains(s, doms, RUNS, &sink);
    void *saved = s->domain_index;
    s->domain_index = NULL;
    double scanned = decide(s, cl, &local, port, rcpts, &anon, RUNS / 10, &sink);
    double find_scan = find_domains(s, doms, RUNS / 10, &sink);
    s->domain_index = saved;
    printf("bench_dirscale: select+acl_eval+mail+rcpt: %.0f ns per decision with the "
           "domain index, %.0f ns scanning the domains (%d clients over the connectors' "
           "ranges, port %u)\n", indexed, scanned, NCLIENTS, port);
    printf("bench_dirscale: snapshot_find_domain: %.0f ns indexed, %.0f ns scanned (exact, "
           "wildcard, outside, example.com in turn)\n", find_ix, find_scan);
    printf("bench_dirscale: checksum %lu\n", sink);
    token_clear(&anon);
    snapshot_unref(&s);
    return 0;
}
