/* Unit tests for snapdelta (the store behind a snapshot, issue 17): after every batch of
 * random changes (connectors of the node, of its site and of another node, accepted
 * domains, send connectors, relayNode certificates, partner containers, users; adds,
 * modifies, renames, deletes, ACE and binding changes that make connectors conflict, stale
 * copies of a change the store already has), the store that applied the batches builds the
 * same snapshot, dump for dump (snapdump.h), as a store filled from scratch with the entries
 * that exist then, put in a random order. Then the answers that must send the node to a full
 * reload, and what stays shared. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "directory/snapdelta.h"
#include "directory/snapdump.h"
#include "directory/policy.h"
#include "directory/base/util.h"

#define BASE "ou=relay,o=t"
#define SITE "cn=s1,ou=sites," BASE
#define NODE "cn=n1," SITE
#define OTHER "cn=n2," SITE
#define USERS "ou=people,o=t"
#define NSLOTS 64

enum skind { S_CONN, S_DOMAIN, S_SEND, S_PEER, S_PARTNER, S_USER, NKINDS };

struct slot {
    enum skind kind;
    char uuid[SNAPDELTA_UUIDLEN];
    bool present;
    struct dir_entry e, prev;     /* now, and the version before (for stale copies) */
    char csn[64], prev_csn[64];
    unsigned gen;
};

static unsigned long long csn_clock;
static unsigned rnd_state = 12345;

static unsigned rnd(unsigned n)
{
    rnd_state = rnd_state * 1103515245u + 12345u;
    return (rnd_state >> 8) % n;
}

static const char *pick(const char *const *v, size_t n)
{
    return v[rnd((unsigned)n)];
}
#define PICK(a) pick(a, sizeof(a) / sizeof((a)[0]))

static void make_connector(struct dir_entry *e, int i, unsigned gen)
{
    static const char *const parents[] = {NODE, NODE, SITE, OTHER};
    static const char *const bindings[] = {"0.0.0.0:25", "0.0.0.0:587", "10.0.0.1:25",
                                           "[::]:2525", "0.0.0.0:99999"};
    static const char *const ranges[] = {"0.0.0.0-255.255.255.255", "10.0.0.0/8",
                                         "192.168.0.0/16", "10.1.2.3", "not-a-range"};
    static const char *const aces[] = {"allow; NT AUTHORITY\\ANONYMOUS LOGON; ms-Exch-SMTP-Submit",
                                       "allow; NT AUTHORITY\\Authenticated Users; "
                                       "ms-Exch-SMTP-Submit, ms-Exch-SMTP-Accept-Any-Recipient",
                                       "deny; Everyone; ms-Exch-SMTP-Submit",
                                       "allow; cn=g1,ou=people,o=t; ms-Exch-SMTP-Submit",
                                       "allow; nobody; ms-Exch-Frobnicate"};
    char dn[256], cn[32];
    snprintf(cn, sizeof cn, "c%d-%u", i % 7, gen % 3);   /* names repeat: ties by DN */
    snprintf(dn, sizeof dn, "cn=%s-%d,%s", cn, i, PICK(parents));
    dir_entry_init(e, dn);
    dir_entry_add(e, "objectClass", "top");
    dir_entry_add(e, "objectClass", "relayReceiveConnector");
    dir_entry_add(e, "cn", cn);
    dir_entry_add(e, "relayBinding", PICK(bindings));
    dir_entry_add(e, "relayRemoteIPRange", PICK(ranges));
    if (rnd(2))
        dir_entry_add(e, "relayRemoteIPRange", PICK(ranges));
    for (unsigned k = rnd(3); k; k--)
        dir_entry_add(e, "relayAce", PICK(aces));
    if (rnd(3) == 0)
        dir_entry_add(e, "relayEnabled", rnd(2) ? "TRUE" : "FALSE");
    if (rnd(4) == 0)
        dir_entry_add(e, "relayMaxMessageSize", rnd(2) ? "1048576" : "12");
}

static void make_other(struct dir_entry *e, enum skind k, int i, unsigned gen)
{
    static const char *const names[] = {"a.example", "b.example", "*.c.example", "d.example",
                                        "-bad-.example"};
    static const char *const types[] = {"Authoritative", "InternalRelay", "ExternalRelay",
                                        "Sideways"};
    static const char *const spaces[] = {"*", "a.example", "*.c.example", "x.example"};
    char dn[256], v[80];
    switch (k) {
    case S_DOMAIN:
        snprintf(dn, sizeof dn, "cn=d%d-%u,ou=domains," BASE, i, gen);
        dir_entry_init(e, dn);
        dir_entry_add(e, "objectClass", "relayAcceptedDomain");
        dir_entry_add(e, "relayDomainName", PICK(names));
        dir_entry_add(e, "relayDomainType", PICK(types));
        if (rnd(3) == 0)
            dir_entry_add(e, "relayDefaultDomain", rnd(2) ? "TRUE" : "FALSE");
        if (rnd(4) == 0)
            dir_entry_add(e, "relayAddressBookEnabled", "FALSE");
        break;
    case S_SEND:
        snprintf(dn, sizeof dn, "cn=s%d-%u,ou=send," BASE, i, gen);
        dir_entry_init(e, dn);
        dir_entry_add(e, "objectClass", "relaySendConnector");
        snprintf(v, sizeof v, "send%d", i % 3);
        dir_entry_add(e, "cn", v);
        dir_entry_add(e, "relayAddressSpace", PICK(spaces));
        snprintf(v, sizeof v, "mx%u.example:25", rnd(3));
        if (rnd(2))
            dir_entry_add(e, "relaySmartHost", v);
        snprintf(v, sizeof v, "%u", rnd(4));   /* 0 is refused */
        dir_entry_add(e, "relayCost", v);
        break;
    case S_PEER:
        snprintf(dn, sizeof dn, "cn=peer%d,%s", i, rnd(2) ? SITE : "cn=s2,ou=sites," BASE);
        dir_entry_init(e, dn);
        dir_entry_add(e, "objectClass", "relayNode");
        snprintf(v, sizeof v, "peer%d", i);
        dir_entry_add(e, "cn", v);
        for (unsigned n = rnd(3); n; n--) {
            snprintf(v, sizeof v, "%064x", rnd(5));
            dir_entry_add(e, "relayCertificateSha256", rnd(6) ? v : "zz");
        }
        break;
    case S_PARTNER:
        snprintf(dn, sizeof dn, "ou=p%d-%u," BASE, i, gen);
        dir_entry_init(e, dn);
        dir_entry_add(e, "objectClass", "relayContainer");
        for (unsigned n = 1 + rnd(2); n; n--)   /* one at least: the store holds it */
            dir_entry_add(e, "relayDomainSecureDomain", rnd(5) ? PICK(names) : "*.wild");
        break;
    default:
        snprintf(dn, sizeof dn, "uid=u%d,%s", i, USERS);
        dir_entry_init(e, dn);
        dir_entry_add(e, "objectClass", "inetOrgPerson");
        snprintf(v, sizeof v, "u%d-%u@a.example", i, gen);
        dir_entry_add(e, "mail", v);
        break;
    }
}

static void slot_new_version(struct slot *s, int i)
{
    dir_entry_clear(&s->prev);
    s->prev = s->e;
    memcpy(s->prev_csn, s->csn, sizeof s->csn);
    memset(&s->e, 0, sizeof s->e);
    s->gen++;
    if (s->kind == S_CONN)
        make_connector(&s->e, i, s->gen);
    else
        make_other(&s->e, s->kind, i, s->gen);
    snprintf(s->csn, sizeof s->csn, "20260101000000.%06lluZ#000000#000#000000", ++csn_clock);
}

/* The connector in slot s as it is, with other ACEs and maybe another limit, and maybe
 * relayEnabled flipped: what the conflict sweep and the selection index read stays the
 * same (the store then takes the last build's over), or only enabled changes. */
static void connector_touch(struct slot *s, bool flip_enabled)
{
    static const char *const aces[] = {"allow; Everyone; ms-Exch-SMTP-Submit",
                                       "deny; NT AUTHORITY\\ANONYMOUS LOGON; "
                                       "ms-Exch-SMTP-Accept-Any-Recipient"};
    struct dir_entry e;
    dir_entry_copy(&e, &s->e);
    bool on = !dir_entry_first(&e, "relayEnabled") ||
              rn_strieq(dir_entry_first(&e, "relayEnabled"), "TRUE");
    dir_entry_set1(&e, "relayAce", NULL);
    for (unsigned k = rnd(3); k; k--)
        dir_entry_add(&e, "relayAce", PICK(aces));
    dir_entry_set1(&e, "relayMaxRecipientsPerMessage", rnd(2) ? "7" : NULL);
    if (flip_enabled)
        dir_entry_set1(&e, "relayEnabled", on ? "FALSE" : "TRUE");
    dir_entry_clear(&s->prev);
    s->prev = s->e;
    memcpy(s->prev_csn, s->csn, sizeof s->csn);
    s->e = e;
    snprintf(s->csn, sizeof s->csn, "20260101000000.%06lluZ#000000#000#000000", ++csn_clock);
}

static struct snapstore *store_new(void)
{
    return snapstore_new("n1", NODE, SITE, USERS);
}

/* A store filled from scratch with what exists now, in a random order: its snapshot. */
static struct rn_snapshot *fresh_build(struct slot *slots)
{
    struct snapstore *st = store_new();
    int order[NSLOTS];
    for (int i = 0; i < NSLOTS; i++)
        order[i] = i;
    for (int i = NSLOTS - 1; i > 0; i--) {
        int k = (int)rnd((unsigned)i + 1), t = order[i];
        order[i] = order[k];
        order[k] = t;
    }
    char why[RN_ERRLEN];
    for (int i = 0; i < NSLOTS; i++) {
        struct slot *s = &slots[order[i]];
        if (s->present)
            assert_int_equal(snapstore_put(st, &s->e, s->uuid, s->csn, why, sizeof why), 0);
    }
    struct rn_snapshot *snap = snapstore_build(st, "v");
    snapstore_free(&st);
    return snap;
}

/* The selection index (possibly the last build's, taken over) picks what the full build's
 * picks, connector and range, on every local endpoint and client the random connectors
 * distinguish. */
static void same_selection(const struct rn_snapshot *a, const struct rn_snapshot *b, int round)
{
    static const char *const locals[] = {"10.0.0.1", "10.0.0.2", "::1"};
    static const char *const remotes[] = {"10.1.2.3", "10.1.2.4", "10.200.0.1", "192.168.3.4",
                                          "8.8.8.8", "0.0.0.0", "255.255.255.255", "::1"};
    static const uint16_t ports[] = {25, 587, 2525};
    for (size_t l = 0; l < sizeof locals / sizeof *locals; l++)
        for (size_t r = 0; r < sizeof remotes / sizeof *remotes; r++)
            for (size_t p = 0; p < sizeof ports / sizeof *ports; p++) {
                ipr_addr la, ra;
                bool v4l, v4r;
                assert_int_equal(ipr_addr_parse(locals[l], &la, &v4l), 0);
                assert_int_equal(ipr_addr_parse(remotes[r], &ra, &v4r), 0);
                if (v4l != v4r)
                    continue;
                struct verdict va, vb;
                const struct rn_connector *ca = policy_select(a, &la, ports[p], &ra, v4l, &va);
                const struct rn_connector *cb = policy_select(b, &la, ports[p], &ra, v4l, &vb);
                if ((ca == NULL) != (cb == NULL) || (ca && strcmp(ca->dn, cb->dn) != 0) ||
                    strcmp(va.why, vb.why) != 0)
                    fail_msg("round %d: %s:%u from %s: %s / %s", round, locals[l], ports[p],
                             remotes[r], ca ? ca->dn : "none", cb ? cb->dn : "none");
            }
}

static void add_change(struct snapdelta_change **v, size_t *n, enum snapdelta_op op,
                       const struct slot *s, const struct dir_entry *e, const char *csn)
{
    *v = xrealloc(*v, (*n + 1) * sizeof **v);
    struct snapdelta_change *c = &(*v)[(*n)++];
    memset(c, 0, sizeof *c);
    c->op = op;
    memcpy(c->uuid, s->uuid, sizeof c->uuid);
    c->csn = csn ? xstrdup(csn) : NULL;
    c->added = op == SNAPDELTA_PUT && !s->present;
    if (op == SNAPDELTA_PUT)
        dir_entry_copy(&c->e, e);
    else
        dir_entry_init(&c->e, e->dn);
}

/* One random change of slot i, recorded in the batch and applied to the model. */
static void random_change(struct slot *slots, int i, struct snapdelta_change **v, size_t *n,
                          bool *rcpt_expected)
{
    struct slot *s = &slots[i];
    unsigned what = rnd(12);
    if (s->present && s->kind == S_CONN && what >= 10) {
        connector_touch(s, what == 11);   /* ACEs only, or relayEnabled too */
        add_change(v, n, SNAPDELTA_PUT, s, &s->e, s->csn);
    } else if (s->present && what < 2) {
        add_change(v, n, SNAPDELTA_DELETE, s, &s->e, NULL);
        s->present = false;
    } else if (s->present && what == 2 && s->prev.dn) {
        add_change(v, n, SNAPDELTA_PUT, s, &s->prev, s->prev_csn);   /* stale: skipped */
    } else {
        if (!s->present) {            /* a new entry: a new entryUUID, no older self */
            snprintf(s->uuid, sizeof s->uuid, "%016x%016x", (unsigned)i, s->gen + 1);
            dir_entry_clear(&s->e);
        }
        slot_new_version(s, i);       /* an add, a modify, or a rename (the DN moved) */
        add_change(v, n, SNAPDELTA_PUT, s, &s->e, s->csn);
        s->present = true;
    }
    if (s->kind == S_USER)
        *rcpt_expected = true;
}

static void random_batches_match_full_build(void **state)
{
    (void)state;
    struct slot slots[NSLOTS];
    memset(slots, 0, sizeof slots);
    for (int i = 0; i < NSLOTS; i++) {
        slots[i].kind = i < 24 ? S_CONN : (enum skind)(1 + i % (NKINDS - 1));
        snprintf(slots[i].uuid, sizeof slots[i].uuid, "%032x", 0xabc000 + i);
    }
    struct snapstore *st = store_new();
    size_t batches = 0, changes = 0, conflicts_seen = 0, reused = 0, relabelled = 0;
    for (int round = 0; round < 2000; round++) {
        struct snapdelta_change *v = NULL;
        size_t n = 0;
        bool rcpt = false, want_rcpt = false, nodes = false;
        for (unsigned k = 1 + rnd(5); k; k--)
            random_change(slots, (int)rnd(NSLOTS), &v, &n, &want_rcpt);
        char why[RN_ERRLEN] = "";
        if (snapdelta_apply(st, v, n, &rcpt, &nodes, why, sizeof why) != 0)
            fail_msg("round %d: full reload asked: %s", round, why);
        assert_true(!want_rcpt || rcpt);
        batches++;
        changes += n;
        snapdelta_changes_free(&v, n);
        char ver[32];
        snprintf(ver, sizeof ver, "v%d", round);
        struct rn_snapshot *snap = snapstore_build(st, ver), *fsnap = fresh_build(slots);
        reused += snapstore_last_reused(st);
        relabelled += snapstore_last_relabelled(st);
        assert_string_equal(snap->version, ver);   /* a relabel carries the new version */
        assert_true(snapstore_last_relabelled(st) == (snap->same != NULL));
        char *inc = snapshot_dump(snap, false), *full = snapshot_dump(fsnap, false);
        if (strstr(inc, "conflicts with"))
            conflicts_seen++;
        if (strcmp(inc, full) != 0) {
            char diff[600];
            snapshot_dump_diff(full, inc, diff, sizeof diff);
            fail_msg("round %d: incremental and full builds differ: %s", round, diff);
        }
        same_selection(snap, fsnap, round);
        free(inc);
        free(full);
        snapshot_unref(&snap);
        snapshot_unref(&fsnap);
    }
    print_message("%zu batches, %zu changes, %zu with conflicting connectors, %zu builds "
                  "took the last one's sweep and index, %zu relabelled it\n", batches, changes,
                  conflicts_seen, reused, relabelled);
    assert_true(conflicts_seen > 0);   /* the cross-entry refusals were exercised */
    assert_true(reused > 0 && reused < batches);   /* both ways of building were */
    assert_true(relabelled > 0 && relabelled < batches);   /* and batches that changed nothing */
    snapstore_free(&st);
    for (int i = 0; i < NSLOTS; i++) {
        dir_entry_clear(&slots[i].e);
        dir_entry_clear(&slots[i].prev);
    }
}

static void put_one(struct snapstore *st, const char *dn, const char *uuid,
                    const char *const *av, int expect)
{
    struct dir_entry e;
    dir_entry_init(&e, dn);
    for (size_t i = 0; av[i]; i += 2)
        dir_entry_add(&e, av[i], av[i + 1]);
    char why[RN_ERRLEN] = "";
    assert_int_equal(snapstore_put(st, &e, uuid, NULL, why, sizeof why), expect);
    if (expect)
        assert_true(why[0] != '\0');
    dir_entry_clear(&e);
}

/* What only a full reload can answer. */
static void full_reload_answers(void **state)
{
    (void)state;
    struct snapstore *st = store_new();
    const char *node[] = {"objectClass", "relayNode", "cn", "n1", NULL};
    const char *node_renamed[] = {"objectClass", "relayNode", "cn", "n9", NULL};
    const char *twin[] = {"objectClass", "relayNode", "cn", "N1", NULL};
    const char *site_gone[] = {"objectClass", "organizationalUnit", NULL};
    const char *conn[] = {"objectClass", "relayReceiveConnector", "cn", "c",
                          "relayBinding", "0.0.0.0:25", "relayRemoteIPRange", "10.0.0.0/8", NULL};
    const char *ou[] = {"objectClass", "relayContainer", NULL};
    put_one(st, NODE, "01", node, 0);                     /* the node as it is: fine */
    put_one(st, NODE, "01", node_renamed, 1);             /* its cn changed */
    put_one(st, "cn=n1,cn=s2,ou=sites," BASE, "02", twin, 1);   /* a second node n1 */
    put_one(st, SITE, "03", site_gone, 1);                /* the site is no relaySite */
    put_one(st, "cn=c," NODE, "04", conn, 0);
    put_one(st, "ou=x," BASE, "05", ou, 0);
    put_one(st, "cn=d,ou=x," BASE, "06",
            (const char *[]){"objectClass", "relayAcceptedDomain", "relayDomainName",
                             "a.example", "relayDomainType", "Authoritative", NULL}, 0);
    char why[RN_ERRLEN] = "";
    bool r = false, nd = false;
    /* ou=x renamed with a domain beneath: the domain's DN moved without a message. */
    struct snapdelta_change mv = {.op = SNAPDELTA_PUT, .uuid = "05"};
    dir_entry_init(&mv.e, "ou=y," BASE);
    dir_entry_add(&mv.e, "objectClass", "organizationalUnit");
    assert_int_equal(snapdelta_apply(st, &mv, 1, &r, &nd, why, sizeof why), 1);
    mv.added = true;                                      /* a new ou: nothing beneath yet */
    assert_int_equal(snapdelta_apply(st, &mv, 1, &r, &nd, why, sizeof why), 0);
    dir_entry_clear(&mv.e);
    assert_int_equal(snapstore_delete(st, "", NODE, why, sizeof why), 1);
    assert_int_equal(snapstore_delete(st, "", SITE, why, sizeof why), 1);
    assert_int_equal(snapstore_delete(st, "", "", why, sizeof why), 1);   /* cannot place */
    assert_int_equal(snapstore_delete(st, "ffff", "cn=unknown," BASE, why, sizeof why), 0);
    struct snapdelta_change resync = {.op = SNAPDELTA_RESYNC};
    assert_int_equal(snapdelta_apply(st, &resync, 1, &r, &nd, why, sizeof why), 1);
    struct snapdelta_change outside = {.op = SNAPDELTA_OUTSIDE};
    assert_int_equal(snapdelta_apply(st, &outside, 1, &r, &nd, why, sizeof why), 0);
    assert_true(r);
    /* An entry read without entryUUID is deleted by its DN. */
    put_one(st, "cn=c2," NODE, NULL, conn, 0);
    size_t before = snapstore_count(st);
    assert_int_equal(snapstore_delete(st, "0123", "CN=c2," NODE, why, sizeof why), 0);
    assert_int_equal(snapstore_count(st), before - 1);
    snapstore_free(&st);
}

/* The recipient set is shared by reference while it is unchanged, and only given to a
 * snapshot whose domains look recipients up. */
static void recipients_shared(void **state)
{
    (void)state;
    struct snapstore *st = store_new();
    struct rcptset *set = rcptset_new();
    assert_int_equal(rcptset_add(set, "a@a.example", 11), 0);
    rcptset_freeze(set);
    snapstore_set_recipients(st, set, 42, 0, "ou=people");
    struct rn_snapshot *s1 = snapstore_build(st, "1");
    assert_null(s1->recipients);                           /* no domain looks up */
    put_one(st, "cn=d," BASE, "d1",
            (const char *[]){"objectClass", "relayAcceptedDomain", "relayDomainName",
                             "a.example", "relayDomainType", "Authoritative", NULL}, 0);
    struct rn_snapshot *s2 = snapstore_build(st, "2"), *s3 = snapstore_build(st, "3");
    assert_ptr_equal(s2->recipients, set);
    assert_ptr_equal(s3->recipients, set);
    assert_true(s2->content_hash == s3->content_hash && s2->content_hash != s1->content_hash);
    rcptset_free(&set);
    snapstore_free(&st);
    assert_true(rcptset_has(s2->recipients, "A@a.example"));   /* still held by s2, s3 */
    snapshot_unref(&s1);
    snapshot_unref(&s2);
    snapshot_unref(&s3);
}

static void uuid_forms(void **state)
{
    (void)state;
    char u[SNAPDELTA_UUIDLEN];
    const char *text = "6F9619FF-8B86-D011-B42D-00C04FC964FF";
    snapdelta_uuid_format(text, strlen(text), false, u);
    assert_string_equal(u, "6f9619ff8b86d011b42d00c04fc964ff");
    const char raw[16] = "\x6f\x96\x19\xff\x8b\x86\xd0\x11\xb4\x2d\x00\xc0\x4f\xc9\x64\xff";
    char u2[SNAPDELTA_UUIDLEN];
    snapdelta_uuid_format(raw, 16, true, u2);
    assert_string_equal(u, u2);
    snapdelta_uuid_format("xyz", 3, false, u);
    assert_string_equal(u, "");
    snapdelta_uuid_format(raw, 15, true, u);
    assert_string_equal(u, "");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(random_batches_match_full_build),
        cmocka_unit_test(full_reload_answers),
        cmocka_unit_test(recipients_shared),
        cmocka_unit_test(uuid_forms),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
