/* bench_policy: the relay decision per connection, docs/architecture.md §8 target "under 1 microsecond".
 * A snapshot holds the seed article's three connectors (Default, CRM Application with
 * ExternalAuthoritative, Client on 587) and 1,000 filler connectors on the same 0.0.0.0:25
 * (the worst case for selection: every one is a candidate), each with its own /24, half with
 * a second single-address range, and the AnonymousUsers ACEs plus a relay ACE. One decision is
 * policy_select + acl_eval + policy_mail + policy_rcpt for a rotating set of clients, with
 * 100,000 users in the Authoritative domain's recipient set (recipient lookup). Prints
 * ns per decision (mean over >= 1e6), for the index and, for comparison, the plain scan.
 * Benchmarks print; they never assert time. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "directory/policy.h"
#include "directory/base/util.h"

#define FILLERS 1000
#define USERS 100000   /* the recipient set: user0..user99999@example.com, and alice */
#define RUNS 2000000
#define NCLIENTS 64

static void add_connector(struct rn_snapshot *s, const char *name, const char *const *binds,
                          size_t nb, const char *const *ranges, size_t nr, unsigned auth,
                          unsigned groups, const char *extra_ace)
{
    char err[RN_ERRLEN];
    struct rn_connector *c = &s->connectors[s->nconnectors++];
    connector_defaults(c);
    c->name = xstrdup(name);
    c->dn = xasprintf("cn=%s,cn=node1,ou=Relay,dc=example,dc=com", name);
    c->auth = auth;
    c->bindings = xcalloc(nb, sizeof *c->bindings);
    c->ranges = xcalloc(nr, sizeof *c->ranges);
    for (size_t i = 0; i < nb; i++)
        if (ipr_binding_parse(binds[i], &c->bindings[c->nbindings++], err, sizeof err) != 0) {
            fprintf(stderr, "bench: %s: %s\n", binds[i], err);
            exit(2);
        }
    for (size_t i = 0; i < nr; i++)
        if (ipr_range_parse(ranges[i], &c->ranges[c->nranges++], err, sizeof err) != 0) {
            fprintf(stderr, "bench: %s: %s\n", ranges[i], err);
            exit(2);
        }
    acl_expand_groups(groups, &c->aces, &c->naces);
    if (extra_ace) {
        c->aces = xrealloc(c->aces, (c->naces + 1) * sizeof *c->aces);
        if (ace_parse(extra_ace, &c->aces[c->naces++], err, sizeof err) != 0) {
            fprintf(stderr, "bench: %s: %s\n", extra_ace, err);
            exit(2);
        }
    }
}

static struct rn_snapshot *snapshot_build(void)
{
    struct rn_snapshot *s = snapshot_new();
    s->connectors = xcalloc(3 + FILLERS, sizeof *s->connectors);
    const char *any[] = {"0.0.0.0:25", "[::]:25"};
    const char *all[] = {"0.0.0.0-255.255.255.255", "::-ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"};
    add_connector(s, "Default node1", any, 2, all, 2, 29, GROUP_ANONYMOUS | GROUP_EXCHANGE_USERS,
                  NULL);
    const char *crm[] = {"192.168.2.55", "192.168.2.56"};
    add_connector(s, "CRM Application", any, 1, crm, 2, AUTH_TLS | AUTH_EXTERNAL_AUTHORITATIVE,
                  GROUP_EXCHANGE_SERVERS, NULL);
    const char *sub[] = {"0.0.0.0:587", "[::]:587"};
    add_connector(s, "Client node1", sub, 2, all, 2, 29, GROUP_EXCHANGE_USERS, NULL);
    for (int i = 0; i < FILLERS; i++) {
        char name[64], r0[64], r1[64];
        snprintf(name, sizeof name, "App %04d", i);
        snprintf(r0, sizeof r0, "10.%d.%d.0/24", i / 250, i % 250);
        snprintf(r1, sizeof r1, "172.16.%d.%d", i / 250, i % 250);
        const char *ranges[] = {r0, r1};
        add_connector(s, name, any, 1, ranges, (size_t)(1 + i % 2), AUTH_TLS, GROUP_ANONYMOUS,
                      "allow; NT AUTHORITY\\ANONYMOUS LOGON; ms-Exch-SMTP-Accept-Any-Recipient");
    }
    static const char *domains[] = {"example.com", "*.corp.example.com", "partner.example.net"};
    s->domains = xcalloc(3, sizeof *s->domains);
    for (int i = 0; i < 3; i++) {
        s->domains[i].dn = xasprintf("cn=%s,ou=Relay", domains[i]);
        s->domains[i].domain = xstrdup(domains[i]);
        s->domains[i].type = i == 2 ? DOMAIN_EXTERNAL_RELAY : DOMAIN_AUTHORITATIVE;
    }
    s->ndomains = 3;
    /* 100,000 mail users in example.com (Authoritative: every RCPT there is looked up). */
    s->recipients = rcptset_new();
    rcptset_add(s->recipients, "alice@example.com", 17);
    for (int i = 0; i < USERS; i++) {
        char a[64];
        int n = snprintf(a, sizeof a, "user%d@example.com", i);
        rcptset_add(s->recipients, a, (size_t)n);
    }
    rcptset_freeze(s->recipients);
    return s;
}

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e9 + ts.tv_nsec;
}

struct client { ipr_addr ip; bool v4; };

/* One pass of `runs` decisions; returns ns per decision. `sink` defeats dead-code removal. */
static double run(const struct rn_snapshot *s, const struct client *cl, const ipr_addr *local4,
                  const ipr_addr *local6, const struct token *anon, const struct token *ext,
                  long runs, bool with_acl, unsigned long *sink)
{
    static const char *rcpts[] = {"alice@example.com", "bob@outside.example",
                                  "x@eu.corp.example.com", "nobody@example.com"};
    struct verdict v;
    struct rights_eval r;
    memset(&r, 0, sizeof r);
    double t0 = now_ns();
    for (long i = 0; i < runs; i++) {
        const struct client *c = &cl[i % NCLIENTS];
        const struct rn_connector *k =
            policy_select(s, c->v4 ? local4 : local6, 25, &c->ip, c->v4, &v);
        if (!k)
            continue;
        const struct token *t = k->auth & AUTH_EXTERNAL_AUTHORITATIVE ? ext : anon;
        if (with_acl)
            acl_eval(k->aces, k->naces, t, &r);
        policy_mail(k, &r, t, false, 1000, &v);
        *sink += (unsigned long)v.code;
        policy_rcpt(s, k, &r, rcpts[i & 3], 0, &v);
        *sink += (unsigned long)v.code + (unsigned long)(k - s->connectors);
    }
    return (now_ns() - t0) / (double)runs;
}

int main(void)
{
    struct rn_snapshot *s = snapshot_build();
    double t0 = now_ns();
    policy_index(s);
    double index_ms = (now_ns() - t0) / 1e6;

    struct client cl[NCLIENTS];
    for (int i = 0; i < NCLIENTS; i++) {
        char a[64];
        switch (i % 4) {
        case 0: snprintf(a, sizeof a, "192.168.2.%d", 55 + (i / 4) % 2); break;   /* CRM */
        case 1: snprintf(a, sizeof a, "10.%d.%d.%d", (i * 37 % FILLERS) / 250,
                         (i * 37 % FILLERS) % 250, 1 + i); break;                /* fillers */
        case 2: snprintf(a, sizeof a, "203.0.113.%d", i); break;                  /* Default */
        default: snprintf(a, sizeof a, "2001:db8::%x", i); break;                 /* v6 */
        }
        if (ipr_addr_parse(a, &cl[i].ip, &cl[i].v4) != 0) {
            fprintf(stderr, "bench: bad client %s\n", a);
            return 2;
        }
    }
    ipr_addr local4, local6;
    bool f;
    ipr_addr_parse("192.168.2.10", &local4, &f);
    ipr_addr_parse("2001:db8::25", &local6, &f);
    struct token anon, ext;
    token_init_anonymous(&anon);
    token_init_externally_secured(&ext);

    unsigned long sink = 0;
    run(s, cl, &local4, &local6, &anon, &ext, RUNS / 10, true, &sink);   /* warm up */
    double full = run(s, cl, &local4, &local6, &anon, &ext, RUNS, true, &sink);
    double noacl = run(s, cl, &local4, &local6, &anon, &ext, RUNS, false, &sink);
    s->domains[0].address_book_off = true;     /* the same decisions without the lookup */
    double nolookup = run(s, cl, &local4, &local6, &anon, &ext, RUNS, true, &sink);
    s->domains[0].address_book_off = false;
    void *saved = s->select_index;
    s->select_index = NULL;
    long scan_runs = RUNS / 20;
    double scan = run(s, cl, &local4, &local6, &anon, &ext, scan_runs, true, &sink);
    s->select_index = saved;

    printf("bench_policy: %zu connectors (3 from the article + %d fillers on 0.0.0.0:25), "
           "%d clients (CRM, filler /24s, Default, IPv6)\n", s->nconnectors, FILLERS, NCLIENTS);
    printf("bench_policy: policy_index built in %.2f ms\n", index_ms);
    printf("bench_policy: recipient set %zu addresses, %.1f MiB (RCPT: one known, one "
           "unknown in example.com per 4)\n", rcptset_count(s->recipients),
           (double)rcptset_bytes(s->recipients) / 1048576.0);
    printf("bench_policy: select+acl_eval+mail+rcpt: %.1f ns per decision (mean of %d)\n", full,
           RUNS);
    printf("bench_policy: select+mail+rcpt (no acl_eval): %.1f ns per decision (mean of %d)\n",
           noacl, RUNS);
    printf("bench_policy: same as the first, recipient lookup off: %.1f ns per decision "
           "(mean of %d)\n", nolookup, RUNS);
    printf("bench_policy: same without the index (linear scan): %.1f ns per decision "
           "(mean of %ld)\n", scan, scan_runs);
    printf("bench_policy: checksum %lu\n", sink);
    token_clear(&anon);
    token_clear(&ext);
    snapshot_unref(&s);
    return 0;
}
