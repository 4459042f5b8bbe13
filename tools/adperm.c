/* adperm: `relayctl permission` on the AD profile (adperm.h). An ACE is written the way
 * Add-ADPermission -ExtendedRights writes it: one explicit object ACE per (trustee, right),
 * type ACCESS_ALLOWED_OBJECT or ACCESS_DENIED_OBJECT, CONTAINER_INHERIT, mask CONTROL_ACCESS,
 * ObjectType = the right's rightsGuid as the directory's CN=Extended-Rights says (never a
 * built-in table), trustee = the principal's SID.
 *
 * The write is a read-modify-write of the DACL alone (SD flags control = DACL), guarded
 * against a concurrent writer: the descriptor and its replPropertyMetaData version are read,
 * edited, read again just before the write (any difference: exit 3, nothing written), written
 * (with an RFC 4528 assertion on uSNChanged where the server offers one), and read once more:
 * a version that moved by more than our one write means another writer's change landed in
 * between (exit 3 with what to check), and the read-back must show the edit. */
#include "tools/adperm.h"
#include "tools/output.h"
#include "directory/ace.h"
#include "directory/ldap/adadmin.h"
#include "directory/rights.h"
#include "directory/secdesc.h"
#include "directory/base/util.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

struct adctx {
    struct admin *a;
    struct adadmin_root root;
    char *server_dn, *conn_dn, *conn_name;   /* owned */
    struct adadmin_right *rights;            /* CN=Extended-Rights; owned */
    size_t nrights;
};

bool adperm_profile_ad(const struct admin *a)
{
    struct dirconf tmp = a->dc;              /* shares the override arrays; only boot is ours */
    memset(&tmp.boot, 0, sizeof tmp.boot);
    char err[RN_ERRLEN];
    bool ad = dirconf_finish(&tmp, err, sizeof err) == 0 &&
              tmp.boot.directory_profile == BOOT_PROFILE_AD;
    bootstrap_clear(&tmp.boot);
    return ad;
}

/* ---- fault injection (test builds) ---- */

#ifdef RN_FAULTS
/* RELAYNODE_FAULT (make test builds only, -DRN_FAULTS):
 *   adperm-fail-write            the write fails just before it is sent
 *   adperm-pause-<point>=DIR     at <point> (after-read: after the first read and the edit;
 *                                before-write: after the re-check, just before the modify)
 *                                create DIR/paused and wait (up to 60 s) for DIR/resume,
 *                                so a test can write the descriptor meanwhile. */
static int fault_point(const char *point, char *err, size_t errlen)
{
    const char *f = getenv("RELAYNODE_FAULT");
    if (!f)
        return 0;
    if (strcmp(point, "before-write") == 0 && strcmp(f, "adperm-fail-write") == 0)
        return rn_err(err, errlen, "fault injected (RELAYNODE_FAULT=adperm-fail-write): the "
                      "descriptor was not written");
    char want[64];
    snprintf(want, sizeof want, "adperm-pause-%s=", point);
    if (strncmp(f, want, strlen(want)) != 0)
        return 0;
    const char *dir = f + strlen(want);
    char *paused = xasprintf("%s/paused", dir), *resume = xasprintf("%s/resume", dir);
    FILE *fp = fopen(paused, "w");
    if (fp)
        fclose(fp);
    struct stat st;
    for (int i = 0; i < 3000 && stat(resume, &st) != 0; i++) {
        struct timespec ts = {0, 20 * 1000000L};
        nanosleep(&ts, NULL);
    }
    free(paused);
    free(resume);
    return 0;
}
#else
static int fault_point(const char *point, char *err, size_t errlen)
{
    (void)point; (void)err; (void)errlen;
    return 0;
}
#endif

/* ---- lookups ---- */

/* The msExchExchangeServer's cn, as the loader takes it: ad_server, else node. */
static const char *server_name(const struct rn_bootstrap *b)
{
    return b->ad_server && *b->ad_server ? b->ad_server : b->node;
}

static int ad_open(struct adctx *c)
{
    struct admin *a = c->a;
    char err[RN_ERRLEN];
    if (a->opt[2] && !a->opt[3])
        return admin_fail(a, 2, "--bind-dn needs --password-file (passwords are never taken "
                                "on the command line)");
    if (dirconf_finish(&a->dc, err, sizeof err) != 0)
        return admin_fail(a, 2, "%s", err);
    enum dir_result r = dirconf_connect(&a->dc, &a->d, err, sizeof err);
    if (r == DIR_FOUND)
        r = adadmin_root_read(a->d, &c->root, err, sizeof err);
    if (r != DIR_FOUND)
        return admin_fail(a, 2, "%s", err);
    /* The Exchange server this node stands for, in the configuration naming context (where
     * the loader looks for it too). */
    const char *server = server_name(&a->dc.boot);
    r = adadmin_find_cn(a->d, c->root.config_nc, "msExchExchangeServer", server, &c->server_dn,
                        err, sizeof err);
    if (r == DIR_NOTFOUND)
        return admin_fail(a, 2, "server '%s' not found under %s", server, c->root.config_nc);
    return r == DIR_FOUND ? 0 : admin_fail(a, 2, "%s", err);
}

static int find_connector(struct adctx *c, const char *name)
{
    char err[RN_ERRLEN];
    enum dir_result r = adadmin_find_cn(c->a->d, c->server_dn, "msExchSmtpReceiveConnector",
                                        name, &c->conn_dn, err, sizeof err);
    if (r == DIR_NOTFOUND)
        return admin_fail(c->a, 1, "connector '%s' not found on server %s", name,
                          server_name(&c->a->dc.boot));
    if (r != DIR_FOUND)
        return admin_fail(c->a, 2, "%s", err);
    c->conn_name = xstrdup(name);
    r = adadmin_rights_read(c->a->d, c->root.config_nc, &c->rights, &c->nrights, err,
                            sizeof err);
    return r == DIR_FOUND ? 0 : admin_fail(c->a, 2, "%s", err);
}

/* A right named on the command line: a name or rightsGuid relayctl knows (rights.h, the
 * relay profile's names and aliases), whose rightsGuid is then read from the directory. */
static int right_guid(struct adctx *c, const char *name, struct sd_guid *out, const char **cn)
{
    const struct right_info *ri = right_lookup(name);
    if (!ri)
        return admin_fail(c->a, 2, "unknown extended right '%s' (see schema/README.md)", name);
    for (size_t i = 0; i < c->nrights; i++)
        if (rn_strieq(c->rights[i].name, ri->name)) {
            *out = c->rights[i].guid;
            *cn = c->rights[i].name;
            return 0;
        }
    return admin_fail(c->a, 1, "extended right '%s' is not in CN=Extended-Rights,%s (is the "
                      "Exchange schema prepared?)", ri->name, c->root.config_nc);
}

static const char *right_name(const struct adctx *c, const struct sd_guid *g)
{
    for (size_t i = 0; i < c->nrights; i++)
        if (memcmp(c->rights[i].guid.b, g->b, sizeof g->b) == 0)
            return c->rights[i].name;
    return NULL;
}

/* The principal's SID: a well-known name or SID (rights.h), the per-forest Exchange groups
 * by their account name, a SID, a DN, or an account name ("bob", "RN\bob", a UPN). With
 * must_exist a SID that no object holds is refused (Add-ADPermission resolves the user). */
static int principal_sid(struct adctx *c, const char *user, bool must_exist, struct sd_sid *out)
{
    struct admin *a = c->a;
    char err[RN_ERRLEN], norm[1024];
    const struct principal_info *pi = principal_lookup(user);
    enum dir_result r;
    if (pi && pi->sid) {
        if (sd_sid_parse(pi->sid, out) != 0)
            return admin_fail(a, 2, "well-known principal '%s' has a malformed SID", pi->name);
        return 0;
    }
    const char *account = user;
    if (pi) {                                  /* Exchange Servers, ExchangeLegacyInterop */
        const char *bs = strrchr(pi->name, '\\');
        account = bs ? bs + 1 : pi->name;
    } else if (strncasecmp(user, "S-1-", 4) == 0) {
        if (sd_sid_parse(user, out) != 0)
            return admin_fail(a, 1, "--user '%s' is not a valid SID", user);
        if (!must_exist)
            return 0;
        char *sam = NULL;
        r = adadmin_account_of_sid(a->d, c->root.default_nc, out, &sam, err, sizeof err);
        free(sam);
        if (r == DIR_NOTFOUND)
            return admin_fail(a, 1, "--user '%s': no object in %s holds this SID", user,
                              c->root.default_nc);
        return r == DIR_FOUND ? 0 : admin_fail(a, 2, "%s", err);
    } else if (strchr(user, '=') && dn_normalize(user, norm, sizeof norm, err, sizeof err) == 0) {
        r = adadmin_sid_of_dn(a->d, user, out, err, sizeof err);
        if (r == DIR_NOTFOUND)
            return admin_fail(a, 1, "--user '%s': %s", user, err);
        return r == DIR_FOUND ? 0 : admin_fail(a, 2, "%s", err);
    } else if (strchr(user, '\\')) {
        const char *bs = strchr(user, '\\');
        if (c->root.netbios && (strlen(c->root.netbios) != (size_t)(bs - user) ||
                                strncasecmp(user, c->root.netbios, (size_t)(bs - user)) != 0))
            return admin_fail(a, 1, "--user '%s': unknown principal (the domain is %s)", user,
                              c->root.netbios);
        account = bs + 1;
    }
    r = adadmin_sid_of_account(a->d, c->root.default_nc, account, out, NULL, err, sizeof err);
    if (r == DIR_NOTFOUND)
        return admin_fail(a, 1, "--user '%s': unknown principal (no well-known name, SID, DN "
                          "or account of that name)", user);
    return r == DIR_FOUND ? 0 : admin_fail(a, 2, "%s", err);
}

/* How `get` names a SID: the well-known name, else DOMAIN\sAMAccountName, else the SID. */
static char *sid_display(struct adctx *c, const struct sd_sid *sid)
{
    char s[SD_SID_STRMAX], err[RN_ERRLEN];
    sd_sid_format(sid, s, sizeof s);
    const struct principal_info *pi = principal_lookup(s);
    if (pi)
        return xstrdup(pi->name);
    char *sam = NULL;
    if (adadmin_account_of_sid(c->a->d, c->root.default_nc, sid, &sam, err, sizeof err) ==
        DIR_FOUND) {
        char *out = c->root.netbios ? xasprintf("%s\\%s", c->root.netbios, sam) : xstrdup(sam);
        free(sam);
        return out;
    }
    return xstrdup(s);
}

/* ---- read, edit, write ---- */

static int sd_read(struct adctx *c, struct adadmin_sd *raw, struct secdesc *sd)
{
    char err[RN_ERRLEN];
    enum dir_result r = adadmin_sd_read(c->a->d, c->conn_dn, raw, err, sizeof err);
    if (r != DIR_FOUND)
        return admin_fail(c->a, r == DIR_NOTFOUND ? 1 : 2, "%s", err);
    if (sd && secdesc_parse(raw->bytes, raw->len, sd, err, sizeof err) != 0) {
        adadmin_sd_clear(raw);
        return admin_fail(c->a, 1, "%s: the descriptor does not parse: %s", c->conn_dn, err);
    }
    return 0;
}

/* Apply add/remove of one ACE per right; *changed counts the ACEs added or removed. */
static int sd_edit(struct adctx *c, const struct adperm_args *p, const struct sd_sid *who,
                   const struct sd_guid *guids, const char *const *names, size_t n,
                   struct secdesc *sd, size_t *changed)
{
    bool add = strcmp(p->sub, "add") == 0;
    *changed = 0;
    for (size_t i = 0; i < n; i++) {
        int rc = add ? secdesc_add_object_ace(sd, p->deny, who, &guids[i])
                     : secdesc_remove_object_ace(sd, p->deny, who, &guids[i]);
        if (rc < 0)
            return admin_fail(c->a, 1, "%s: the DACL is full", c->conn_dn);
        if (rc == 0)
            (*changed)++;
        else
            fprintf(stderr, "relayctl %s: %s: %s %s ACE for '%s' is %s\n", c->a->verb,
                    c->conn_name, names[i], p->deny ? "deny" : "allow", p->user,
                    add ? "already present" : "not present");
    }
    return 0;
}

/* Whether sd shows the edit (every added ACE present, every removed one absent). */
static bool sd_shows(const struct adperm_args *p, const struct sd_sid *who,
                     const struct sd_guid *guids, size_t n, const struct secdesc *sd)
{
    struct secdesc tmp;
    bool ok = true, add = strcmp(p->sub, "add") == 0;
    for (size_t i = 0; i < n && ok; i++) {
        secdesc_copy(&tmp, sd);
        ok = (add ? secdesc_add_object_ace(&tmp, p->deny, who, &guids[i])
                  : secdesc_remove_object_ace(&tmp, p->deny, who, &guids[i])) == 1;
        secdesc_clear(&tmp);
    }
    return ok;
}

static int print_ldif(struct adctx *c, const unsigned char *bytes, size_t len)
{
    size_t cap = 4 * (len / 3 + 2) + 1;
    char *b64 = xmalloc(cap);
    rn_base64_encode(bytes, len, b64, cap);
    printf("dn: %s\ncontrol: %s true:: %s\nchangetype: modify\nreplace: nTSecurityDescriptor\n"
           "nTSecurityDescriptor:: %s\n-\n\n", c->conn_dn, ADADMIN_SD_FLAGS_OID,
           ADADMIN_SD_FLAGS_B64, b64);
    free(b64);
    return 0;
}

/* The guarded write of the edited descriptor (file comment). */
static int sd_write(struct adctx *c, const struct adperm_args *p, const struct sd_sid *who,
                    const struct sd_guid *guids, size_t n, const struct adadmin_sd *first,
                    const unsigned char *bytes, size_t len)
{
    struct admin *a = c->a;
    char err[RN_ERRLEN];
    struct adadmin_sd again, after;
    if (fault_point("after-read", err, sizeof err) != 0)
        return admin_fail(a, 2, "%s", err);
    int rc = sd_read(c, &again, NULL);
    if (rc)
        return rc;
    bool moved = again.len != first->len || memcmp(again.bytes, first->bytes, first->len) != 0 ||
                 again.has_version != first->has_version || again.version != first->version;
    if (moved) {
        adadmin_sd_clear(&again);
        return admin_fail(a, ADPERM_EXIT_RACE, "%s: the descriptor changed after it was read "
                          "(a concurrent writer); nothing was written: run the command again",
                          c->conn_dn);
    }
    if (fault_point("before-write", err, sizeof err) != 0) {
        adadmin_sd_clear(&again);
        return admin_fail(a, 2, "%s", err);
    }
    enum adadmin_write w = adadmin_sd_write(a->d, c->conn_dn, bytes, len,
                                            c->root.assertion ? again.usn : NULL, err,
                                            sizeof err);
    if (w != ADW_DONE) {
        adadmin_sd_clear(&again);
        return admin_fail(a, w == ADW_CONFLICT ? ADPERM_EXIT_RACE : w == ADW_TEMPFAIL ? 2 : 1,
                          "%s", err);
    }
    struct secdesc sd;
    if (adadmin_sd_read(a->d, c->conn_dn, &after, err, sizeof err) != DIR_FOUND ||
        secdesc_parse(after.bytes, after.len, &sd, err, sizeof err) != 0) {
        adadmin_sd_clear(&after);
        adadmin_sd_clear(&again);
        return admin_fail(a, 2, "%s: written, but the read-back failed (%s): check it with "
                          "`relayctl permission get %s`", c->conn_dn, err, c->conn_name);
    }
    bool shows = sd_shows(p, who, guids, n, &sd);
    /* One originating write moves the version by exactly one (MS-ADTS 3.1.1.1.9). */
    bool other = again.has_version && after.has_version && after.version != again.version + 1;
    secdesc_clear(&sd);
    adadmin_sd_clear(&after);
    adadmin_sd_clear(&again);
    if (other || !shows)
        return admin_fail(a, ADPERM_EXIT_RACE, "%s: another writer changed the descriptor while "
                          "this write ran (%s); check it with `relayctl permission get %s`: one "
                          "of the two changes may be lost", c->conn_dn,
                          shows ? "its version moved by more than this write"
                                : "the read-back does not show this change", c->conn_name);
    return 0;
}

static int ad_write(struct adctx *c, const struct adperm_args *p)
{
    struct admin *a = c->a;
    char **v = NULL;
    size_t n = 0;
    admin_split(p->rights, &v, &n);
    if (n == 0) {
        admin_strv_free(v, n);
        return admin_fail(a, 2, "--extended-rights is empty");
    }
    struct sd_guid *guids = xcalloc(n, sizeof *guids);
    const char **names = xcalloc(n, sizeof *names);
    struct sd_sid who;
    int rc = 0;
    for (size_t i = 0; i < n && !rc; i++)
        if (!right_lookup(v[i]))
            rc = admin_fail(a, 2, "unknown extended right '%s' (see schema/README.md)", v[i]);
    if (!rc)
        rc = ad_open(c);
    if (!rc)
        rc = find_connector(c, p->connector);
    for (size_t i = 0; i < n && !rc; i++)
        rc = right_guid(c, v[i], &guids[i], &names[i]);
    if (!rc)
        rc = principal_sid(c, p->user, strcmp(p->sub, "add") == 0, &who);
    struct adadmin_sd first = {0};
    struct secdesc sd = {0};
    size_t changed = 0;
    unsigned char *bytes = NULL;
    size_t len = 0;
    char err[RN_ERRLEN];
    if (!rc)
        rc = sd_read(c, &first, &sd);
    /* A descriptor without a DACL grants everyone everything on Windows: one ACE added to a
     * DACL made from nothing would take every other access away. Not ours to decide. */
    if (!rc && !sd.dacl_present)
        rc = admin_fail(a, 1, "%s has no DACL (or a NULL one): refusing to create one with "
                        "a single ACE", c->conn_dn);
    if (!rc)
        rc = sd_edit(c, p, &who, guids, names, n, &sd, &changed);
    if (!rc && changed && secdesc_serialize(&sd, &bytes, &len, err, sizeof err) != 0)
        rc = admin_fail(a, 1, "%s: %s", c->conn_dn, err);
    if (!rc && !changed && !a->ldif)
        fprintf(stderr, "relayctl %s: no change\n", a->verb);
    else if (!rc && changed && a->ldif)
        rc = print_ldif(c, bytes, len);
    else if (!rc && changed) {
        rc = sd_write(c, p, &who, guids, n, &first, bytes, len);
        if (!rc && !a->json)
            printf("%s %s\n", strcmp(p->sub, "add") == 0 ? "added to" : "removed from",
                   c->conn_dn);
    }
    free(bytes);
    secdesc_clear(&sd);
    adadmin_sd_clear(&first);
    free(guids);
    free(names);
    admin_strv_free(v, n);
    return rc;
}

/* ---- get ---- */

/* One row (text) or object (JSON) per explicit or inherited object ACE that gives or denies
 * an extended right on this object, in DACL order. */
static int ad_get(struct adctx *c, const struct adperm_args *p)
{
    struct sd_sid want;
    int rc = ad_open(c);
    if (!rc)
        rc = find_connector(c, p->connector);
    if (!rc && p->user)
        rc = principal_sid(c, p->user, false, &want);
    struct adadmin_sd raw = {0};
    struct secdesc sd = {0};
    if (!rc)
        rc = sd_read(c, &raw, &sd);
    if (rc)
        return rc;
    static const char *const hdr[] = {"Identity", "User", "Deny", "Inherited", "ExtendedRights"};
    struct listing l;
    listing_begin(&l, c->a->json, 5, hdr);
    for (size_t i = 0; i < sd.naces; i++) {
        const struct sd_ace *e = &sd.aces[i];
        bool deny = e->type == SD_ACE_DENIED_OBJECT;
        if ((e->type != SD_ACE_ALLOWED_OBJECT && !deny) ||
            !(e->objflags & SD_OBJECT_TYPE_PRESENT) || !(e->mask & SD_CONTROL_ACCESS) ||
            (e->flags & SD_FLAG_INHERIT_ONLY))
            continue;
        const char *right = right_name(c, &e->object_type);
        if (!right || (p->user && !sd_sid_equal(&e->sid, &want)))
            continue;
        char *user = sid_display(c, &e->sid), sid[SD_SID_STRMAX];
        sd_sid_format(&e->sid, sid, sizeof sid);
        bool inherited = e->flags & SD_FLAG_INHERITED;
        if (l.j) {
            json_begin_object(l.j, NULL);
            json_string(l.j, "Identity", c->conn_name);
            json_string(l.j, "User", user);
            json_string(l.j, "Sid", sid);
            json_bool(l.j, "Deny", deny);
            json_bool(l.j, "Inherited", inherited);
            json_list(l.j, "ExtendedRights", right);
            json_end_object(l.j);
        } else {
            const char *row[5] = {c->conn_name, user, deny ? "True" : "False",
                                  inherited ? "True" : "False", right};
            table_row(l.t, row);
        }
        free(user);
    }
    listing_end(&l);
    secdesc_clear(&sd);
    adadmin_sd_clear(&raw);
    return 0;
}

int adperm_run(struct admin *a, const struct adperm_args *p)
{
    struct adctx c;
    memset(&c, 0, sizeof c);
    c.a = a;
    int rc = strcmp(p->sub, "get") == 0 ? ad_get(&c, p) : ad_write(&c, p);
    adadmin_root_clear(&c.root);
    adadmin_rights_free(&c.rights, c.nrights);
    free(c.server_dn);
    free(c.conn_dn);
    free(c.conn_name);
    return rc;
}
