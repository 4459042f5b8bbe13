/* Unit tests for secdesc: real descriptors captured from the Samba AD fixture
 * (tests/data/sd/README.md) turned into model ACEs and evaluated for real tokens, hand-made
 * hostile descriptors (all refused, nothing returned), the writer (add/remove, canonical
 * order, byte-identical round trips), and the SID and GUID codecs. Run from the repository
 * root (tests/run.sh does), where tests/data/sd/ is. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "directory/acl.h"
#include "directory/rights.h"
#include "directory/secdesc.h"
#include "directory/token.h"
#include "directory/base/util.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))
#define DATA "tests/data/sd/"
#define EXSID "S-1-9-1419165041-1139599005-3936102811-1022490595-"
#define CLASS_GUID "44601346-776a-46e7-b4a4-2472e1c66806"   /* msExchSmtpReceiveConnector */

/* ---- fixtures ---- */

static unsigned char *load(const char *name, size_t *len)
{
    char path[256];
    snprintf(path, sizeof path, DATA "%s", name);
    FILE *f = fopen(path, "rb");
    if (!f)
        fail_msg("cannot open %s (run from the repository root)", path);
    unsigned char *b = xmalloc(65536);
    *len = fread(b, 1, 65536, f);
    fclose(f);
    assert_true(*len > 20 && *len < 65536);
    return b;
}

/* The per-provision SID of `key` in tests/data/sd/sids.txt (nth occurrence). */
static const char *sid_of(const char *key, int nth)
{
    static char out[8][SD_SID_STRMAX];
    static int slot;
    FILE *f = fopen(DATA "sids.txt", "r");
    if (!f)
        fail_msg("cannot open " DATA "sids.txt");
    char line[512];
    char *res = NULL;
    while (fgets(line, sizeof line, f)) {
        char *tab = strchr(line, '\t');
        if (!tab)
            continue;
        *tab = '\0';
        tab[strcspn(tab + 1, "\n") + 1] = '\0';
        if (strcmp(line, key) == 0 && nth-- == 0) {
            res = out[slot++ % 8];
            snprintf(res, SD_SID_STRMAX, "%s", tab + 1);
            break;
        }
    }
    fclose(f);
    if (!res)
        fail_msg("no %s in sids.txt", key);
    return res;
}

struct maps {
    struct sd_rightmap rights[RIGHT_COUNT];
    struct sd_sidmap sids[2];
    struct sd_guid cls;
};

/* What the loader builds: rightsGuid -> bit (the fixture's controlAccessRights carry the
 * rightsGuids of directory/rights.c), the two per-forest Exchange groups. */
static void maps_init(struct maps *m)
{
    for (unsigned i = 0; i < RIGHT_COUNT; i++) {
        const struct right_info *r = right_by_index(i);
        assert_int_equal(sd_guid_parse(r->guid, &m->rights[i].guid), 0);
        m->rights[i].bit = r->bit;
    }
    snprintf(m->sids[0].sid, SD_SID_STRMAX, "%s", sid_of("Exchange Servers", 0));
    m->sids[0].wk = WK_EXCHANGE_SERVERS;
    snprintf(m->sids[1].sid, SD_SID_STRMAX, "%s", sid_of("ExchangeLegacyInterop", 0));
    m->sids[1].wk = WK_LEGACY_INTEROP;
    assert_int_equal(sd_guid_parse(CLASS_GUID, &m->cls), 0);
}

static size_t model_of(const void *buf, size_t len, struct ace **aces)
{
    struct secdesc sd;
    struct maps m;
    char err[RN_ERRLEN] = "";
    maps_init(&m);
    if (secdesc_parse(buf, len, &sd, err, sizeof err) != 0)
        fail_msg("parse: %s", err);
    size_t n = 0;
    if (secdesc_aces(&sd, m.rights, N(m.rights), m.sids, N(m.sids), &m.cls, aces, &n, err,
                     sizeof err) != 0)
        fail_msg("aces: %s", err);
    secdesc_clear(&sd);
    return n;
}

static void aces_free(struct ace *a, size_t n)
{
    for (size_t i = 0; i < n; i++)
        ace_clear(&a[i]);
    free(a);
}

/* Rights the model gives (deny or allow) to one principal: wk, or sid when wk < 0. */
static uint32_t rights_of(const struct ace *a, size_t n, bool deny, int wk, const char *sid)
{
    uint32_t r = 0;
    for (size_t i = 0; i < n; i++)
        if (a[i].deny == deny && a[i].wk == wk && (wk >= 0 || !strcmp(a[i].sid, sid)))
            r |= a[i].rights;
    return r;
}

/* ---- captured descriptors ---- */

static void default_ex1_holds_its_three_groups(void **state)
{
    (void)state;
    size_t len, n;
    unsigned char *b = load("default-ex1.bin", &len);
    struct ace *a = NULL;
    n = model_of(b, len, &a);
    /* tests/data/ad/README.md: AnonymousUsers, ExchangeServers, ExchangeLegacyServers. */
    assert_int_equal(rights_of(a, n, false, WK_ANONYMOUS, NULL), 0x431);
    assert_int_equal(rights_of(a, n, false, WK_EXTERNALLY_SECURED, NULL), 0x6FD);
    assert_int_equal(rights_of(a, n, false, WK_HUB_TRANSPORT, NULL), 0x3FC1EFD);
    assert_int_equal(rights_of(a, n, false, WK_EDGE_TRANSPORT, NULL), 0x3FC1EFD);
    assert_int_equal(rights_of(a, n, false, WK_EXCHANGE_SERVERS, NULL), 0x3FC1EFD);
    assert_int_equal(rights_of(a, n, false, WK_LEGACY_INTEROP, NULL), 0x6FD);
    assert_int_equal(rights_of(a, n, true, WK_LEGACY_INTEROP, NULL), 0x1800);
    /* Authenticated Users has only read access (0x20094: no CONTROL_ACCESS): nothing. */
    assert_int_equal(rights_of(a, n, false, WK_AUTHENTICATED_USERS, NULL), 0);
    assert_int_equal(rights_of(a, n, false, WK_PARTNER, NULL), 0);
    /* The class's default full-control ACEs (0xF01FF includes CONTROL_ACCESS): SYSTEM. */
    assert_int_equal(rights_of(a, n, false, -1, "S-1-5-18"), R_ALL);
    /* Each (deny, principal) once. */
    for (size_t i = 0; i < n; i++)
        for (size_t j = i + 1; j < n; j++)
            assert_false(a[i].deny == a[j].deny && a[i].wk == a[j].wk &&
                         (a[i].wk >= 0 || !strcmp(a[i].sid, a[j].sid)));
    /* An anonymous session gets exactly AnonymousUsers' rights, as on the relay profile. */
    struct token t;
    struct rights_eval re;
    token_init_anonymous(&t);
    acl_eval(a, n, &t, &re);
    assert_int_equal(re.effective, 0x431);
    token_clear(&t);
    /* A legacy Exchange server's account: its group is denied the forest/org headers. */
    const char *grp[] = {sid_of("ExchangeLegacyInterop", 0)};
    assert_int_equal(token_init_sids(&t, "legacy", sid_of("bob", 0), grp, 1), 0);
    assert_false(token_holds(&t, WK_LEGACY_INTEROP, NULL));
    struct maps m;
    maps_init(&m);
    assert_int_equal(token_map_sids(&t, m.sids, N(m.sids)), 0);
    assert_true(token_holds(&t, WK_LEGACY_INTEROP, NULL));
    assert_false(token_holds(&t, WK_EXCHANGE_SERVERS, NULL));
    acl_eval(a, n, &t, &re);
    assert_int_equal(re.denied & 0x1800, 0x1800);
    assert_int_equal(re.effective & 0x6FD, 0x6FD & ~0x1800);
    token_clear(&t);
    aces_free(a, n);
    free(b);
}

static void client_and_crm_hold_their_groups(void **state)
{
    (void)state;
    size_t len, n;
    unsigned char *b = load("client-ex1.bin", &len);
    struct ace *a = NULL;
    n = model_of(b, len, &a);
    /* ExchangeUsers */
    assert_int_equal(rights_of(a, n, false, WK_AUTHENTICATED_USERS, NULL), 0x445);
    assert_int_equal(rights_of(a, n, false, WK_ANONYMOUS, NULL), 0);
    assert_int_equal(rights_of(a, n, false, WK_EXCHANGE_SERVERS, NULL), 0);
    aces_free(a, n);
    free(b);

    b = load("crm-application.bin", &len);
    n = model_of(b, len, &a);
    assert_int_equal(rights_of(a, n, false, WK_EXTERNALLY_SECURED, NULL), 0x6FD);  /* Option 1 */
    assert_int_equal(rights_of(a, n, false, WK_ANONYMOUS, NULL), 0);
    assert_int_equal(rights_of(a, n, false, WK_LEGACY_INTEROP, NULL), 0);
    struct token t;
    struct rights_eval re;
    token_init_externally_secured(&t);
    acl_eval(a, n, &t, &re);
    assert_int_equal(re.effective, 0x6FD);
    token_clear(&t);
    aces_free(a, n);
    free(b);
}

/* The capture added (OA;CI;CR;Accept-Any-Recipient;;AN) and (OD;CI;CR;Submit;;Relay Deny
 * Outer) with samba-tool dsacl set; bob is in Relay Deny Inner, nested in Outer. */
static void edited_crm_gives_anonymous_relay_and_denies_bob(void **state)
{
    (void)state;
    size_t len, n;
    unsigned char *b = load("crm-application-edited.bin", &len);
    struct ace *a = NULL;
    n = model_of(b, len, &a);
    assert_int_equal(rights_of(a, n, false, WK_ANONYMOUS, NULL), R_ACCEPT_ANY_RECIPIENT);
    assert_int_equal(rights_of(a, n, true, -1, sid_of("Relay Deny Outer", 0)), R_SUBMIT);
    struct token t;
    struct rights_eval re;
    token_init_anonymous(&t);
    acl_eval(a, n, &t, &re);
    assert_int_equal(re.effective, R_ACCEPT_ANY_RECIPIENT);
    token_clear(&t);
    const char *groups[4];
    size_t ng = 0;
    for (int i = 0; i < 4; i++)
        groups[ng++] = sid_of("bob-tokenGroups", i);
    assert_int_equal(token_init_sids(&t, "bob", sid_of("bob", 0), groups, ng), 0);
    acl_eval(a, n, &t, &re);
    assert_true(re.denied & R_SUBMIT);
    assert_false(re.effective & R_SUBMIT);
    token_clear(&t);
    aces_free(a, n);
    free(b);
}

/* PermissionGroups derived from the AD descriptors are the relay profile's: the class's
 * full-control ACEs (Domain Admins, Enterprise Admins, SYSTEM) do not make them Custom. */
static void captured_derive_their_permission_groups(void **state)
{
    (void)state;
    static const struct { const char *file; unsigned groups; } cases[] = {
        {"default-ex1.bin", GROUP_ANONYMOUS | GROUP_EXCHANGE_SERVERS | GROUP_LEGACY_SERVERS},
        {"client-ex1.bin", GROUP_EXCHANGE_USERS},
        {"crm-application.bin", GROUP_EXCHANGE_SERVERS},
        {"crm-application-edited.bin", GROUP_EXCHANGE_SERVERS | GROUP_CUSTOM},
    };
    for (size_t i = 0; i < N(cases); i++) {
        size_t len;
        unsigned char *b = load(cases[i].file, &len);
        struct ace *a;
        size_t n = model_of(b, len, &a);
        unsigned g = acl_derive_groups(a, n);
        if (g != cases[i].groups)
            fail_msg("%s: groups 0x%x, want 0x%x", cases[i].file, g, cases[i].groups);
        aces_free(a, n);
        free(b);
    }
}

static const char *const captured[] = {"default-ex1.bin", "client-ex1.bin",
                                       "crm-application.bin", "crm-application-edited.bin"};

static void captured_round_trip_byte_identical(void **state)
{
    (void)state;
    for (size_t i = 0; i < N(captured); i++) {
        size_t len, olen;
        unsigned char *b = load(captured[i], &len), *o;
        struct secdesc sd;
        char err[RN_ERRLEN];
        assert_int_equal(secdesc_parse(b, len, &sd, err, sizeof err), 0);
        assert_true(sd.dacl_present);
        assert_int_equal(secdesc_serialize(&sd, &o, &olen, err, sizeof err), 0);
        if (olen != len || memcmp(o, b, len) != 0)
            fail_msg("%s: serialize(parse(x)) differs (%zu vs %zu bytes)", captured[i], olen, len);
        secdesc_clear(&sd);
        free(o);
        free(b);
    }
}

/* ---- hostile descriptors ---- */

static void expect_refused(const void *buf, size_t len, const char *want, const char *what)
{
    struct secdesc sd;
    memset(&sd, 0xA5, sizeof sd);
    char err[RN_ERRLEN] = "";
    if (secdesc_parse(buf, len, &sd, err, sizeof err) != -1)
        fail_msg("%s: accepted", what);
    if (sd.aces != NULL || sd.naces != 0 || sd.dacl_present)
        fail_msg("%s: a partial result was returned", what);
    if (want && strcmp(err, want) != 0)
        fail_msg("%s: error '%s', want '%s'", what, err, want);
    if (!*err)
        fail_msg("%s: no error message", what);
}

static void truncated_at_every_length(void **state)
{
    (void)state;
    for (size_t k = 0; k < N(captured); k++) {
        size_t len;
        unsigned char *b = load(captured[k], &len);
        for (size_t l = 0; l < len; l++) {
            /* A fresh allocation of exactly l bytes, so ASan sees any read past it. */
            unsigned char *t = xmalloc(l ? l : 1);
            memcpy(t, b, l);
            char what[64];
            snprintf(what, sizeof what, "%s truncated at %zu", captured[k], l);
            expect_refused(t, l, NULL, what);
            free(t);
        }
        free(b);
    }
}

/* A small builder for hand-made descriptors. */
struct wb { unsigned char b[1024]; size_t n; };
static void put8(struct wb *w, unsigned v) { w->b[w->n++] = (unsigned char)v; }
static void put16(struct wb *w, unsigned v) { put8(w, v & 0xff); put8(w, v >> 8); }
static void put32(struct wb *w, uint32_t v) { put16(w, v & 0xffff); put16(w, v >> 16); }
static void put_sid(struct wb *w, const char *s)
{
    struct sd_sid sid;
    assert_int_equal(sd_sid_parse(s, &sid), 0);
    put8(w, sid.rev);
    put8(w, sid.nsub);
    for (int i = 0; i < 6; i++)
        put8(w, sid.auth[i]);
    for (unsigned i = 0; i < sid.nsub; i++)
        put32(w, sid.sub[i]);
}
static void put_guid(struct wb *w, const char *g)
{
    struct sd_guid guid;
    assert_int_equal(sd_guid_parse(g, &guid), 0);
    memcpy(w->b + w->n, guid.b, 16);
    w->n += 16;
}
/* Header (DACL at 20) and ACL header; fix() fills the ACL size and count. */
static void start(struct wb *w)
{
    memset(w, 0, sizeof *w);
    put8(w, 1), put8(w, 0), put16(w, 0x8004);
    put32(w, 0), put32(w, 0), put32(w, 0), put32(w, 20);
    put8(w, 4), put8(w, 0), put16(w, 0), put16(w, 0), put16(w, 0);
}
static void fix(struct wb *w, unsigned count)
{
    w->b[22] = (unsigned char)((w->n - 20) & 0xff);
    w->b[23] = (unsigned char)((w->n - 20) >> 8);
    w->b[24] = (unsigned char)(count & 0xff);
    w->b[25] = (unsigned char)(count >> 8);
}
/* One object ACE: type, flags, mask, object flags, GUIDs as flagged, SID. */
static void put_object_ace(struct wb *w, unsigned type, unsigned flags, uint32_t mask,
                           uint32_t objflags, const char *g1, const char *g2, const char *sid)
{
    size_t at = w->n;
    put8(w, type), put8(w, flags), put16(w, 0);
    put32(w, mask), put32(w, objflags);
    if (g1)
        put_guid(w, g1);
    if (g2)
        put_guid(w, g2);
    put_sid(w, sid);
    w->b[at + 2] = (unsigned char)((w->n - at) & 0xff);
    w->b[at + 3] = (unsigned char)((w->n - at) >> 8);
}
static void put_plain_ace(struct wb *w, unsigned type, unsigned flags, uint32_t mask,
                          const char *sid)
{
    size_t at = w->n;
    put8(w, type), put8(w, flags), put16(w, 0);
    put32(w, mask);
    put_sid(w, sid);
    w->b[at + 2] = (unsigned char)(w->n - at);
}

#define SUBMIT_G "a18293f1-0685-4540-aa63-e32df421b3a2"
#define AAR_G    "5c82f031-4e4c-4326-88e1-8c4f0cad9de5"   /* ms-Exch-SMTP-Accept-Any-Recipient */
#define AAS_G    "b857b50b-94a2-4b53-93f6-41cebd2fced0"   /* ms-Exch-SMTP-Accept-Any-Sender */

static void valid_builder_baseline(void **state)
{
    (void)state;
    struct wb w;
    start(&w);
    put_object_ace(&w, 5, 2, 0x100, 1, SUBMIT_G, NULL, "S-1-5-7");
    fix(&w, 1);
    struct secdesc sd;
    char err[RN_ERRLEN];
    assert_int_equal(secdesc_parse(w.b, w.n, &sd, err, sizeof err), 0);
    assert_int_equal(sd.naces, 1);
    assert_int_equal(sd.aces[0].type, 5);
    secdesc_clear(&sd);
}

/* The hostile cases: a descriptor built from one of these bodies, its ACL size and count
 * filled in (fix), then up to two little-endian values written over it and optionally cut
 * to len bytes; every one must be refused with the error given (NULL: any error). */
enum hbody {
    HB_EMPTY,          /* an empty DACL */
    HB_OBJ_SUBMIT,     /* object allow, Submit, ANONYMOUS (36 bytes) */
    HB_OBJ_DENY,       /* the same as a deny */
    HB_OBJ_NOGUID,     /* object allow without a GUID (24 bytes) */
    HB_ALLOW_AU,       /* plain allow, CONTROL_ACCESS, Authenticated Users (20 bytes) */
    HB_DENY_AU,        /* the same as a deny */
    HB_ALLOW_AU_HDR,   /* HB_ALLOW_AU and 8 more bytes: a second ACE header */
    HB_SID16,          /* plain allow whose SID has 16 sub-authorities */
};
struct hostile {
    const char *name;
    enum hbody body;
    unsigned count;                                     /* ACE count given to fix() */
    struct { unsigned at, width; uint32_t v; } poke[2]; /* width 0: none */
    size_t len;                                         /* 0: as built */
    const char *want;
};
#define P1(at, v) {{(at), 1, (v)}}
#define DACL_AT(off) {"dacl offset " #off, HB_EMPTY, 0, {{16, 4, (off)}}, 0, NULL}
#define ACE_SIZE(sz, e) {"ace size " #sz, HB_ALLOW_AU, 1, {{30, 2, (sz)}}, 0, (e)}
static const struct hostile hostile[] = {
    {"revision 2", HB_EMPTY, 0, P1(0, 2), 0, "descriptor: revision 2 (expected 1)"},
    {"absolute", HB_EMPTY, 0, P1(3, 0x00), 0,    /* control without SELF_RELATIVE */
     "descriptor: not self-relative (control 0x0004)"},
    /* dacl offset into the header */
    DACL_AT(1), DACL_AT(2), DACL_AT(3), DACL_AT(4), DACL_AT(5), DACL_AT(6), DACL_AT(7),
    DACL_AT(8), DACL_AT(9), DACL_AT(10), DACL_AT(11), DACL_AT(12), DACL_AT(13),
    DACL_AT(14), DACL_AT(15), DACL_AT(16), DACL_AT(17), DACL_AT(18), DACL_AT(19),
    /* dacl offset at or past the end */
    DACL_AT(28), DACL_AT(29), DACL_AT(1000), DACL_AT(0xFFFFFFFFu), DACL_AT(0x80000000u),
    {"owner past end", HB_EMPTY, 0, P1(4, 200), 0, "owner: offset 200 outside 20..28"},
    {"group in header", HB_EMPTY, 0, P1(8, 5), 0, "group: offset 5 outside 20..28"},
    {"sacl truncated", HB_EMPTY, 0, P1(12, 24), 0, NULL},   /* no room for its header */
    {"no present bit", HB_EMPTY, 0, P1(2, 0x00), 0,
     "descriptor: dacl offset 20 without DACL_PRESENT"},
    {"acl revision 3", HB_EMPTY, 0, P1(20, 3), 0, "dacl: revision 3 (expected 2 or 4)"},
    {"acl size > buffer", HB_EMPTY, 0, P1(22, 200), 0,
     "dacl: size 200 runs past the descriptor (8 bytes left)"},
    {"acl size < 8", HB_EMPTY, 0, P1(22, 4), 0, "dacl: size 4 < 8"},
    /* huge (or just impossible) ACE counts for one ACE */
    {"count 7", HB_OBJ_SUBMIT, 7, {{0, 0, 0}}, 0, NULL},
    {"count 65535", HB_OBJ_SUBMIT, 0xFFFF, {{0, 0, 0}}, 0, NULL},
    {"count SD_MAX_ACES + 1", HB_OBJ_SUBMIT, SD_MAX_ACES + 1, {{0, 0, 0}}, 0, NULL},
    ACE_SIZE(0, "dacl: ace 0: size 0 < 8"), ACE_SIZE(2, "dacl: ace 0: size 2 < 8"),
    ACE_SIZE(7, "dacl: ace 0: size 7 < 8"),
    ACE_SIZE(10, "dacl: ace 0: size 10 not a multiple of 4"),
    ACE_SIZE(48, "dacl: ace 0: size 48 runs past the acl"),
    ACE_SIZE(0xFFFC, "dacl: ace 0: size 65532 runs past the acl"),
    /* second ACE header cut off by the ACL size (count says 2, one fits) */
    {"second ace header", HB_ALLOW_AU_HDR, 2, P1(22, 8 + 20 + 2), 20 + 8 + 20 + 2, NULL},
    /* written by hand: sd_sid_parse refuses it */
    {"16 subs", HB_SID16, 1, {{0, 0, 0}}, 0, "dacl: ace 0: sid: 16 sub-authorities > 15"},
    {"sid past ace", HB_DENY_AU, 1, P1(20 + 8 + 9, 5), 0,   /* sub-authority count */
     "dacl: ace 0: sid: 5 sub-authorities need 28 bytes, 12 left"},
    /* object ACEs whose flags claim GUIDs that do not fit */
    {"objtype does not fit", HB_OBJ_NOGUID, 1, P1(20 + 8 + 8, 1), 0,
     "dacl: ace 0: object ace: ObjectType runs past the ace"},
    {"inherited type does not fit", HB_OBJ_DENY, 1, P1(20 + 8 + 8, 3), 0,
     "dacl: ace 0: object ace: InheritedObjectType runs past the ace"},
    {"unknown objflags", HB_OBJ_SUBMIT, 1, P1(20 + 8 + 8, 4), 0,
     "dacl: ace 0: object ace: unknown flags 0x4"},
    {"sid revision", HB_ALLOW_AU, 1, P1(20 + 8 + 8, 2), 0,   /* a SID revision other than 1 */
     "dacl: ace 0: sid: revision 2 (expected 1)"},
};

static void hostile_build(struct wb *w, const struct hostile *h)
{
    start(w);
    switch (h->body) {
    case HB_EMPTY:
        break;
    case HB_OBJ_SUBMIT:
    case HB_OBJ_DENY:
        put_object_ace(w, h->body == HB_OBJ_DENY ? 6 : 5, 2, 0x100, 1, SUBMIT_G, NULL,
                       "S-1-5-7");
        break;
    case HB_OBJ_NOGUID:
        put_object_ace(w, 5, 2, 0x100, 0, NULL, NULL, "S-1-5-7");
        break;
    case HB_ALLOW_AU:
    case HB_DENY_AU:
    case HB_ALLOW_AU_HDR:
        put_plain_ace(w, h->body == HB_DENY_AU ? 1 : 0, 0, 0x100, "S-1-5-11");
        if (h->body == HB_ALLOW_AU_HDR)
            put32(w, 0), put32(w, 0);
        break;
    case HB_SID16:
        put8(w, 0), put8(w, 0), put16(w, 8 + 8 + 64), put32(w, 0x100);
        put8(w, 1), put8(w, 16);
        for (int i = 0; i < 6; i++)
            put8(w, i == 5 ? 5 : 0);
        for (int i = 0; i < 16; i++)
            put32(w, (uint32_t)i);
        break;
    }
    fix(w, h->count);
    for (size_t i = 0; i < N(h->poke); i++)
        for (unsigned k = 0; k < h->poke[i].width; k++)
            w->b[h->poke[i].at + k] = (unsigned char)(h->poke[i].v >> (8 * k));
    if (h->len)
        w->n = h->len;
}

static void hostile_descriptors_refused(void **state)
{
    (void)state;
    for (size_t i = 0; i < N(hostile); i++) {
        struct wb w;
        hostile_build(&w, &hostile[i]);
        expect_refused(w.b, w.n, hostile[i].want, hostile[i].name);
    }
}

/* Every byte of a real descriptor flipped to every interesting value: parse may accept or
 * refuse, never crash, and an accepted one converts and re-serializes. */
static void mutated_real_descriptor_never_crashes(void **state)
{
    (void)state;
    size_t len;
    unsigned char *b = load("client-ex1.bin", &len);
    static const unsigned char vals[] = {0x00, 0x01, 0x04, 0x0F, 0x10, 0x7F, 0x80, 0xFF};
    struct maps m;
    maps_init(&m);
    for (size_t i = 0; i < len; i++)
        for (size_t v = 0; v < N(vals); v++) {
            unsigned char *t = xmalloc(len);
            memcpy(t, b, len);
            t[i] = vals[v];
            struct secdesc sd;
            char err[RN_ERRLEN];
            if (secdesc_parse(t, len, &sd, err, sizeof err) == 0) {
                struct ace *a;
                size_t n;
                assert_int_equal(secdesc_aces(&sd, m.rights, N(m.rights), m.sids, N(m.sids),
                                              &m.cls, &a, &n, err, sizeof err), 0);
                aces_free(a, n);
                unsigned char *o;
                size_t olen;
                assert_int_equal(secdesc_serialize(&sd, &o, &olen, err, sizeof err), 0);
                free(o);
                secdesc_clear(&sd);
            }
            free(t);
        }
    free(b);
}

/* ---- model rules on hand-made ACEs ---- */

static void rules_table(void **state)
{
    (void)state;
    struct wb w;
    start(&w);
    const char *u = "S-1-5-21-1-2-3-500";
    put_object_ace(&w, 5, 0x02, 0x100, 1, SUBMIT_G, NULL, "S-1-5-7");          /* Submit */
    put_object_ace(&w, 5, 0x0A, 0x100, 1, AAR_G, NULL, "S-1-5-7");             /* inherit-only */
    put_object_ace(&w, 5, 0x12, 0x100, 1,                                      /* inherited */
                   AAS_G, NULL, "S-1-5-7");
    put_object_ace(&w, 5, 0, 0x100, 1, "00000000-0000-0000-0000-000000000001", NULL, u);
    put_object_ace(&w, 5, 0, 0x20, 1, SUBMIT_G, NULL, "S-1-5-11");             /* no CA */
    put_object_ace(&w, 5, 0, 0x100, 0, NULL, NULL, "S-1-5-11");                /* all rights */
    put_object_ace(&w, 5, 0, 0x100, 3, SUBMIT_G, "00000000-0000-0000-0000-000000000002",
                   "S-1-1-0");                                                /* other class */
    put_object_ace(&w, 6, 0, 0x100, 3, SUBMIT_G, "00000000-0000-0000-0000-000000000002",
                   "S-1-1-0");                                                /* deny kept */
    put_object_ace(&w, 5, 0, 0x100, 3, AAS_G, CLASS_GUID,
                   "S-1-1-0");                                                /* our class */
    put_plain_ace(&w, 0, 0, 0x10000000, u);                                    /* GENERIC_ALL */
    put_plain_ace(&w, 0x0A, 0, 0x100, "S-1-5-11");                            /* callback deny */
    put_object_ace(&w, 0x0B, 0, 0x100, 0, NULL, NULL, "S-1-1-0");            /* callback allow */
    put_plain_ace(&w, 0x02, 0x40, 0x100, "S-1-1-0");                          /* audit */
    put_object_ace(&w, 0x0C, 0, 0x100, 1, SUBMIT_G, NULL,                      /* cb obj deny */
                   "S-1-5-21-9-9-9-1000");
    put8(&w, 0x30), put8(&w, 0), put16(&w, 8), put32(&w, 0xFFFFFFFF);       /* unknown type */
    fix(&w, 15);
    struct secdesc sd;
    char err[RN_ERRLEN];
    assert_int_equal(secdesc_parse(w.b, w.n, &sd, err, sizeof err), 0);
    assert_int_equal(sd.naces, 15);
    struct maps m;
    maps_init(&m);
    struct ace *a;
    size_t n;
    assert_int_equal(secdesc_aces(&sd, m.rights, N(m.rights), m.sids, N(m.sids), &m.cls, &a,
                                  &n, err, sizeof err), 0);
    assert_int_equal(rights_of(a, n, false, WK_ANONYMOUS, NULL),
                     R_SUBMIT | R_ACCEPT_ANY_SENDER);
    assert_int_equal(rights_of(a, n, false, WK_AUTHENTICATED_USERS, NULL), R_ALL);
    assert_int_equal(rights_of(a, n, true, WK_AUTHENTICATED_USERS, NULL), R_ALL);
    assert_int_equal(rights_of(a, n, false, WK_EVERYONE, NULL), R_ACCEPT_ANY_SENDER);
    assert_int_equal(rights_of(a, n, true, WK_EVERYONE, NULL), R_SUBMIT);
    assert_int_equal(rights_of(a, n, false, -1, u), R_ALL);
    assert_int_equal(rights_of(a, n, true, -1, "S-1-5-21-9-9-9-1000"), R_SUBMIT);
    assert_int_equal(n, 7);
    /* Merged, in first-appearance order of an ACE that gives something. */
    assert_int_equal(a[0].wk, WK_ANONYMOUS);
    assert_int_equal(a[1].wk, WK_AUTHENTICATED_USERS);
    assert_true(a[2].deny && a[2].wk == WK_EVERYONE);
    assert_true(!a[3].deny && a[3].wk == WK_EVERYONE);
    assert_string_equal(a[4].sid, u);
    aces_free(a, n);
    /* Without the class, the "our class" allow is dropped too. */
    assert_int_equal(secdesc_aces(&sd, m.rights, N(m.rights), NULL, 0, NULL, &a, &n, err,
                                  sizeof err), 0);
    assert_int_equal(rights_of(a, n, false, WK_EVERYONE, NULL), 0);
    aces_free(a, n);
    /* Every type, known or not, round-trips from its raw bytes, also through a copy. */
    struct secdesc cp;
    secdesc_copy(&cp, &sd);
    unsigned char *o;
    size_t olen;
    assert_int_equal(secdesc_serialize(&cp, &o, &olen, err, sizeof err), 0);
    assert_int_equal(olen, w.n);
    assert_memory_equal(o, w.b, w.n);
    assert_int_equal(cp.aces[14].type, 0x30);
    assert_int_equal(cp.aces[14].rawlen, 8);
    free(o);
    secdesc_clear(&cp);
    /* A bad sids map is an error. */
    struct sd_sidmap bad = {"S-1-x", WK_EXCHANGE_SERVERS};
    assert_int_equal(secdesc_aces(&sd, m.rights, N(m.rights), &bad, 1, NULL, &a, &n, err,
                                  sizeof err), -1);
    assert_null(a);
    secdesc_clear(&sd);
}

/* ---- writer ---- */

static void parse_file(const char *name, struct secdesc *sd, unsigned char **raw, size_t *len)
{
    char err[RN_ERRLEN];
    *raw = load(name, len);
    if (secdesc_parse(*raw, *len, sd, err, sizeof err) != 0)
        fail_msg("%s: %s", name, err);
}

static void assert_canonical(const struct secdesc *sd)
{
    int phase = 0;   /* 0 explicit deny, 1 explicit allow, 2 inherited */
    for (size_t i = 0; i < sd->naces; i++) {
        const struct sd_ace *a = &sd->aces[i];
        int p = a->flags & SD_FLAG_INHERITED ? 2 : (a->type == 1 || a->type == 6) ? 0 : 1;
        if (p < phase)
            fail_msg("ace %zu (type %u flags 0x%x) out of canonical order", i, a->type, a->flags);
        phase = p;
    }
}

static void add_remove_idempotent_and_canonical(void **state)
{
    (void)state;
    struct secdesc sd;
    unsigned char *raw, *o;
    size_t len, olen;
    char err[RN_ERRLEN];
    parse_file("crm-application.bin", &sd, &raw, &len);
    struct sd_sid anon, outer;
    struct sd_guid aar, submit;
    assert_int_equal(sd_sid_parse("S-1-5-7", &anon), 0);
    assert_int_equal(sd_sid_parse(sid_of("Relay Deny Outer", 0), &outer), 0);
    assert_int_equal(sd_guid_parse(AAR_G, &aar), 0);
    assert_int_equal(sd_guid_parse(SUBMIT_G, &submit), 0);
    size_t n0 = sd.naces;
    assert_int_equal(secdesc_add_object_ace(&sd, false, &anon, &aar), 0);
    assert_int_equal(secdesc_add_object_ace(&sd, false, &anon, &aar), 1);
    assert_int_equal(secdesc_add_object_ace(&sd, true, &outer, &submit), 0);
    assert_int_equal(secdesc_add_object_ace(&sd, true, &outer, &submit), 1);
    assert_int_equal(sd.naces, n0 + 2);
    assert_canonical(&sd);
    assert_int_equal(sd.aces[0].type, SD_ACE_DENIED_OBJECT);   /* the first deny: crm had none */

    /* parse(serialize(edited)) gives the model ACEs the edit means. */
    assert_int_equal(secdesc_serialize(&sd, &o, &olen, err, sizeof err), 0);
    struct ace *a;
    size_t n = model_of(o, olen, &a);
    assert_int_equal(rights_of(a, n, false, WK_ANONYMOUS, NULL), R_ACCEPT_ANY_RECIPIENT);
    assert_int_equal(rights_of(a, n, true, -1, sid_of("Relay Deny Outer", 0)), R_SUBMIT);
    assert_int_equal(rights_of(a, n, false, WK_EXTERNALLY_SECURED, NULL), 0x6FD);
    aces_free(a, n);
    /* The same model as Samba's own edit (samba-tool dsacl set) of the same descriptor. */
    size_t elen;
    unsigned char *e = load("crm-application-edited.bin", &elen);
    struct ace *b;
    size_t nb = model_of(e, elen, &b);
    n = model_of(o, olen, &a);
    assert_int_equal(n, nb);
    for (size_t i = 0; i < n; i++) {
        char x[1024], y[1024];
        ace_format(&a[i], x, sizeof x);
        bool found = false;
        for (size_t j = 0; j < nb && !found; j++) {
            ace_format(&b[j], y, sizeof y);
            found = strcmp(x, y) == 0;
        }
        if (!found)
            fail_msg("model ACE '%s' not in Samba's edit", x);
    }
    aces_free(a, n);
    aces_free(b, nb);
    free(e);
    free(o);

    /* Removing both restores the original bytes; removing again finds nothing. */
    assert_int_equal(secdesc_remove_object_ace(&sd, false, &anon, &aar), 0);
    assert_int_equal(secdesc_remove_object_ace(&sd, false, &anon, &aar), 1);
    assert_int_equal(secdesc_remove_object_ace(&sd, true, &outer, &submit), 0);
    assert_int_equal(secdesc_remove_object_ace(&sd, true, &outer, &submit), 1);
    assert_int_equal(secdesc_serialize(&sd, &o, &olen, err, sizeof err), 0);
    assert_int_equal(olen, len);
    assert_memory_equal(o, raw, len);
    free(o);
    secdesc_clear(&sd);
    free(raw);
}

static void remove_leaves_inherited_and_other_aces(void **state)
{
    (void)state;
    struct wb w;
    start(&w);
    put_object_ace(&w, 6, 0x02, 0x100, 1, SUBMIT_G, NULL, "S-1-5-11");   /* explicit deny */
    put_object_ace(&w, 5, 0x02, 0x100, 1, SUBMIT_G, NULL, "S-1-5-7");    /* explicit allow */
    put_object_ace(&w, 5, 0x00, 0x100, 1, SUBMIT_G, NULL, "S-1-5-7");    /* no CI: also ours */
    put_object_ace(&w, 5, 0x02, 0x130, 1, SUBMIT_G, NULL, "S-1-5-7");    /* other mask */
    put_object_ace(&w, 5, 0x12, 0x100, 1, SUBMIT_G, NULL, "S-1-5-7");    /* inherited */
    fix(&w, 5);
    struct secdesc sd;
    char err[RN_ERRLEN];
    assert_int_equal(secdesc_parse(w.b, w.n, &sd, err, sizeof err), 0);
    struct sd_sid anon, auth;
    struct sd_guid submit;
    sd_sid_parse("S-1-5-7", &anon);
    sd_sid_parse("S-1-5-11", &auth);
    sd_guid_parse(SUBMIT_G, &submit);
    assert_int_equal(secdesc_remove_object_ace(&sd, true, &anon, &submit), 1);   /* wrong kind */
    assert_int_equal(secdesc_remove_object_ace(&sd, false, &anon, &submit), 0);
    assert_int_equal(sd.naces, 3);
    assert_int_equal(sd.aces[1].mask, 0x130);
    assert_int_equal(sd.aces[2].flags, 0x12);
    assert_int_equal(secdesc_remove_object_ace(&sd, false, &anon, &submit), 1);
    /* Adding an allow goes before the inherited ACE, after the explicit ones. */
    assert_int_equal(secdesc_add_object_ace(&sd, false, &auth, &submit), 0);
    assert_int_equal(sd.aces[2].type, 5);
    assert_int_equal(sd.aces[2].flags, SD_FLAG_CONTAINER_INHERIT);
    assert_true(sd_sid_equal(&sd.aces[2].sid, &auth));
    assert_int_equal(sd.aces[3].flags, 0x12);
    /* A deny goes after the explicit deny. */
    assert_int_equal(secdesc_add_object_ace(&sd, true, &anon, &submit), 0);
    assert_int_equal(sd.aces[1].type, 6);
    assert_true(sd_sid_equal(&sd.aces[1].sid, &anon));
    assert_canonical(&sd);
    secdesc_clear(&sd);
}

static void add_to_descriptor_without_dacl(void **state)
{
    (void)state;
    unsigned char hdr[20] = {1, 0, 0x00, 0x80};
    struct secdesc sd;
    char err[RN_ERRLEN];
    assert_int_equal(secdesc_parse(hdr, sizeof hdr, &sd, err, sizeof err), 0);
    assert_false(sd.dacl_present);
    struct sd_sid anon;
    struct sd_guid submit;
    sd_sid_parse("S-1-5-7", &anon);
    sd_guid_parse(SUBMIT_G, &submit);
    assert_int_equal(secdesc_add_object_ace(&sd, false, &anon, &submit), 0);
    unsigned char *o;
    size_t olen;
    assert_int_equal(secdesc_serialize(&sd, &o, &olen, err, sizeof err), 0);
    struct ace *a;
    size_t n = model_of(o, olen, &a);
    assert_int_equal(n, 1);
    assert_int_equal(a[0].wk, WK_ANONYMOUS);
    assert_int_equal(a[0].rights, R_SUBMIT);
    assert_int_equal(o[20], 4);   /* ACL_REVISION_DS */
    aces_free(a, n);
    free(o);
    secdesc_clear(&sd);
}

/* ---- SIDs and GUIDs ---- */

static void sid_codec(void **state)
{
    (void)state;
    static const struct { const char *in, *out; } ok[] = {
        {"S-1-5-7", "S-1-5-7"}, {"s-1-5-11", "S-1-5-11"}, {"S-1-1-0", "S-1-1-0"},
        {"S-1-0x000000000005-18", "S-1-5-18"},
        {"S-1-281474976710655-1", "S-1-0xFFFFFFFFFFFF-1"},
        {EXSID "23", EXSID "23"},
        {"S-1-5-21-4294967295-1-2-3-4-5-6-7-8-9-10-11-12-13",
         "S-1-5-21-4294967295-1-2-3-4-5-6-7-8-9-10-11-12-13"},
        {"S-1-5", "S-1-5"},
    };
    for (size_t i = 0; i < N(ok); i++) {
        struct sd_sid s, t;
        char buf[SD_SID_STRMAX];
        if (sd_sid_parse(ok[i].in, &s) != 0)
            fail_msg("'%s' refused", ok[i].in);
        size_t n = sd_sid_format(&s, buf, sizeof buf);
        assert_string_equal(buf, ok[i].out);
        assert_int_equal(n, strlen(ok[i].out));
        unsigned char bin[8 + 60];
        bin[0] = s.rev, bin[1] = s.nsub;
        memcpy(bin + 2, s.auth, 6);
        for (unsigned k = 0; k < s.nsub; k++)
            for (int j = 0; j < 4; j++)
                bin[8 + 4 * k + j] = (unsigned char)(s.sub[k] >> (8 * j));
        assert_int_equal(sd_sid_from_bytes(bin, sd_sid_size(&s), &t), 0);
        assert_true(sd_sid_equal(&s, &t));
        assert_int_equal(sd_sid_from_bytes(bin, sd_sid_size(&s) + 4, &t), -1);  /* too long */
        assert_int_equal(sd_sid_from_bytes(bin, sd_sid_size(&s) - 1, &t), -1);  /* too short */
    }
    static const char *bad[] = {"", "S", "S-", "S-1", "S-1-", "S-2-5-7", "S-1-5-", "S-1-5--7",
                                "S-1-5-7x", "S-1-5-4294967296", "S-1-281474976710656",
                                "S-1-5-1-2-3-4-5-6-7-8-9-10-11-12-13-14-15-16", "X-1-5-7",
                                " S-1-5-7", "S-1-0x-1", "S-1-5-+7"};
    for (size_t i = 0; i < N(bad); i++) {
        struct sd_sid s;
        if (sd_sid_parse(bad[i], &s) != -1)
            fail_msg("'%s' accepted", bad[i]);
        assert_int_equal(s.nsub, 0);
    }
    struct sd_sid s;
    char small[6];
    sd_sid_parse("S-1-5-21-1-2", &s);
    assert_int_equal(sd_sid_format(&s, small, sizeof small), strlen("S-1-5-21-1-2"));
    assert_string_equal(small, "S-1-5");
    assert_int_equal(sd_sid_from_bytes(NULL, 8, &s), -1);
}

static void guid_codec(void **state)
{
    (void)state;
    /* schemaIDGUID bytes as AD stores them (tests/lib/samba_ad.py guid_str). */
    const unsigned char wire[16] = {0x46, 0x13, 0x60, 0x44, 0x6a, 0x77, 0xe7, 0x46,
                                    0xb4, 0xa4, 0x24, 0x72, 0xe1, 0xc6, 0x68, 0x06};
    struct sd_guid g, h;
    char out[37];
    assert_int_equal(sd_guid_from_bytes(wire, 16, &g), 0);
    sd_guid_format(&g, out);
    assert_string_equal(out, CLASS_GUID);
    assert_int_equal(sd_guid_parse("44601346-776A-46E7-B4A4-2472E1C66806", &h), 0);
    assert_memory_equal(g.b, h.b, 16);
    static const char *bad[] = {"", "44601346-776a-46e7-b4a4-2472e1c6680",
                                "44601346-776a-46e7-b4a4-2472e1c668066",
                                "44601346x776a-46e7-b4a4-2472e1c66806",
                                "4460134g-776a-46e7-b4a4-2472e1c66806"};
    for (size_t i = 0; i < N(bad); i++)
        assert_int_equal(sd_guid_parse(bad[i], &h), -1);
    assert_int_equal(sd_guid_from_bytes(wire, 15, &h), -1);
    assert_int_equal(sd_guid_from_bytes(wire, 17, &h), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(default_ex1_holds_its_three_groups),
        cmocka_unit_test(client_and_crm_hold_their_groups),
        cmocka_unit_test(edited_crm_gives_anonymous_relay_and_denies_bob),
        cmocka_unit_test(captured_derive_their_permission_groups),
        cmocka_unit_test(captured_round_trip_byte_identical),
        cmocka_unit_test(truncated_at_every_length),
        cmocka_unit_test(valid_builder_baseline),
        cmocka_unit_test(hostile_descriptors_refused),
        cmocka_unit_test(mutated_real_descriptor_never_crashes),
        cmocka_unit_test(rules_table),
        cmocka_unit_test(add_remove_idempotent_and_canonical),
        cmocka_unit_test(remove_leaves_inherited_and_other_aces),
        cmocka_unit_test(add_to_descriptor_without_dacl),
        cmocka_unit_test(sid_codec),
        cmocka_unit_test(guid_codec),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
