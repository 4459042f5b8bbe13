/* adadmin: the Active Directory side of `relayctl permission` (adadmin.h). The descriptor is
 * read and written with the SD flags control set to DACL_SECURITY_INFORMATION (MS-ADTS
 * 3.1.1.3.4.1.11): a normal account with READ_CONTROL reads it, and a write replaces the
 * DACL alone, so the owner, group and SACL (which need other privileges) are never sent.
 * A writer that wants to know whether someone else wrote the descriptor meanwhile compares
 * the nTSecurityDescriptor version in replPropertyMetaData (MS-ADTS 3.1.1.1.9: incremented
 * by every originating write of that attribute) before and after; AD and Samba do not
 * implement the RFC 4528 assertion control, which is used only where the root DSE lists it. */
#include <ldap.h>
#include "directory/ldap/adadmin.h"
#include "directory/ldap/ldapdir-private.h"
#include "directory/base/util.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define OID_ASSERTION "1.3.6.1.1.12"
/* The ATTRTYP of nTSecurityDescriptor (1.2.840.113556.1.2.281) in the default prefix table
 * of MS-DRSR 5.16.4: prefix index 2 (1.2.840.113556.1.2), 281 = 0x119. */
#define ATTID_NT_SECURITY_DESCRIPTOR 0x00020119u
#define META_HEADER 16          /* version, reserved, count, reserved */
#define META_ENTRY 48           /* attid, version, time, invocation id, two USNs */

/* BER of SEQUENCE { INTEGER 4 }. */
static unsigned char sd_flags_value[] = {0x30, 0x03, 0x02, 0x01, 0x04};

static void sd_flags_control(LDAPControl *c)
{
    c->ldctl_oid = (char *)ADADMIN_SD_FLAGS_OID;
    c->ldctl_value.bv_val = (char *)sd_flags_value;
    c->ldctl_value.bv_len = sizeof sd_flags_value;
    c->ldctl_iscritical = 1;
}

static enum dir_result search(struct ldapdir *d, const char *base, int scope,
                              const char *filter, char **attrs, LDAPControl **ctrls,
                              LDAPMessage **res, char *err, size_t errlen)
{
    struct timeval tv = d->timeout;
    *res = NULL;
    int rc = ldap_search_ext_s(d->ld, base, scope, filter, attrs, 0, ctrls, NULL, &tv,
                               LDAP_NO_LIMIT, res);
    if (rc == LDAP_SUCCESS)
        return DIR_FOUND;
    ldap_msgfree(*res);
    *res = NULL;
    if (rc == LDAP_NO_SUCH_OBJECT) {
        rn_err(err, errlen, "%s: no such entry", base);
        return DIR_NOTFOUND;
    }
    char *what = xasprintf("search %s", *base ? base : "the root DSE");
    enum dir_result r = ldapdir_error(d, rc, what, err, errlen);
    free(what);
    return r;
}

/* The first entry a search finds, in *m (NULL when nothing matched), and the result holding it
 * in *res, which the caller ldap_msgfree()s. DIR_FOUND, else as search() (*res NULL). */
static enum dir_result search_first(struct ldapdir *d, const char *base, int scope,
                                    const char *filter, char **attrs, LDAPControl **ctrls,
                                    LDAPMessage **res, LDAPMessage **m, char *err,
                                    size_t errlen)
{
    enum dir_result r = search(d, base, scope, filter, attrs, ctrls, res, err, errlen);
    *m = r == DIR_FOUND ? ldap_first_entry(d->ld, *res) : NULL;
    return r;
}

/* The first value of a as a string (caller frees), or NULL. */
static char *first_value(LDAP *ld, LDAPMessage *m, const char *a)
{
    size_t n;
    char **v = ldapdir_values(ld, m, a, &n);
    char *out = n ? xstrdup(v[0]) : NULL;
    ldapdir_values_free(v, n);
    return out;
}

/* ---- the root DSE ---- */

enum dir_result adadmin_root_read(struct ldapdir *d, struct adadmin_root *out, char *err,
                                  size_t errlen)
{
    memset(out, 0, sizeof *out);
    char *attrs[] = {"configurationNamingContext", "defaultNamingContext", "supportedControl",
                     NULL};
    LDAPMessage *res, *m;
    enum dir_result r = search_first(d, "", LDAP_SCOPE_BASE, "(objectClass=*)", attrs, NULL,
                                     &res, &m, err, errlen);
    if (r != DIR_FOUND)
        return r;
    if (m) {
        out->config_nc = first_value(d->ld, m, "configurationNamingContext");
        out->default_nc = first_value(d->ld, m, "defaultNamingContext");
        size_t n;
        char **v = ldapdir_values(d->ld, m, "supportedControl", &n);
        for (size_t i = 0; i < n; i++)
            if (strcmp(v[i], OID_ASSERTION) == 0)
                out->assertion = true;
        ldapdir_values_free(v, n);
    }
    ldap_msgfree(res);
    if (!out->config_nc || !out->default_nc) {
        adadmin_root_clear(out);
        rn_err(err, errlen, "%s: the root DSE has no configurationNamingContext or "
               "defaultNamingContext: not an Active Directory server", d->uri);
        return DIR_FAIL;
    }
    /* The NetBIOS name lives on the domain's crossRef (MS-ADTS 6.1.1.2.1.1.1). */
    char esc[LDAPDIR_DNBUF], *filter = NULL, *base = xasprintf("CN=Partitions,%s", out->config_nc);
    if (ldap_filter_escape(out->default_nc, strlen(out->default_nc), esc, sizeof esc) >= 0)
        filter = xasprintf("(&(objectClass=crossRef)(nCName=%s))", esc);
    char *nattrs[] = {"nETBIOSName", NULL};
    char ignored[RN_ERRLEN];
    if (filter && search_first(d, base, LDAP_SCOPE_ONELEVEL, filter, nattrs, NULL, &res, &m,
                               ignored, sizeof ignored) == DIR_FOUND) {
        if (m)
            out->netbios = first_value(d->ld, m, "nETBIOSName");
        ldap_msgfree(res);
    }
    free(filter);
    free(base);
    return DIR_FOUND;
}

void adadmin_root_clear(struct adadmin_root *r)
{
    free(r->config_nc);
    free(r->default_nc);
    free(r->netbios);
    memset(r, 0, sizeof *r);
}

/* ---- objects by name ---- */

/* The DNs of the entries under base matching filter (at most max + 1 are kept). */
static enum dir_result find_dns(struct ldapdir *d, const char *base, const char *filter,
                                char ***dns, size_t *n, char *err, size_t errlen)
{
    char *attrs[] = {LDAP_NO_ATTRS, NULL};
    LDAPMessage *res;
    *dns = NULL;
    *n = 0;
    enum dir_result r = search(d, base, LDAP_SCOPE_SUBTREE, filter, attrs, NULL, &res, err,
                               errlen);
    if (r != DIR_FOUND)
        return r;
    for (LDAPMessage *m = ldap_first_entry(d->ld, res); m; m = ldap_next_entry(d->ld, m)) {
        char *dn = ldap_get_dn(d->ld, m);
        if (!dn)
            continue;
        *dns = xrealloc(*dns, (*n + 1) * sizeof **dns);
        (*dns)[(*n)++] = xstrdup(dn);
        ldap_memfree(dn);
    }
    ldap_msgfree(res);
    return DIR_FOUND;
}

static void dns_free(char **dns, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(dns[i]);
    free(dns);
}

enum dir_result adadmin_find_cn(struct ldapdir *d, const char *base, const char *oc,
                                const char *name, char **dn, char *err, size_t errlen)
{
    char esc[LDAPDIR_DNBUF];
    *dn = NULL;
    if (ldap_filter_escape(name, strlen(name), esc, sizeof esc) < 0) {
        rn_err(err, errlen, "name '%.64s...' is too long", name);
        return DIR_FAIL;
    }
    char *filter = xasprintf("(&(objectClass=%s)(cn=%s))", oc, esc), **dns;
    size_t n;
    enum dir_result r = find_dns(d, base, filter, &dns, &n, err, errlen);
    free(filter);
    if (r != DIR_FOUND)
        return r;
    if (n == 0) {
        rn_err(err, errlen, "no %s named '%s' under %s", oc, name, base);
        r = DIR_NOTFOUND;
    } else if (n > 1) {
        rn_err(err, errlen, "%zu objects of class %s are named '%s' under %s: %s and %s", n, oc,
               name, base, dns[0], dns[1]);
        r = DIR_FAIL;
    } else {
        *dn = xstrdup(dns[0]);
    }
    dns_free(dns, n);
    return r;
}

/* ---- extended rights ---- */

enum dir_result adadmin_rights_read(struct ldapdir *d, const char *config_nc,
                                    struct adadmin_right **out, size_t *n, char *err,
                                    size_t errlen)
{
    *out = NULL;
    *n = 0;
    char *base = xasprintf("CN=Extended-Rights,%s", config_nc);
    char *attrs[] = {"cn", "rightsGuid", NULL};
    LDAPMessage *res;
    enum dir_result r = search(d, base, LDAP_SCOPE_ONELEVEL, "(objectClass=controlAccessRight)",
                               attrs, NULL, &res, err, errlen);
    free(base);
    if (r != DIR_FOUND)
        return r;
    for (LDAPMessage *m = ldap_first_entry(d->ld, res); m; m = ldap_next_entry(d->ld, m)) {
        char *cn = first_value(d->ld, m, "cn"), *g = first_value(d->ld, m, "rightsGuid");
        struct sd_guid guid;
        if (cn && g && sd_guid_parse(g, &guid) == 0) {
            *out = xrealloc(*out, (*n + 1) * sizeof **out);
            (*out)[*n].name = cn;
            (*out)[(*n)++].guid = guid;
            cn = NULL;
        }
        free(cn);
        free(g);
    }
    ldap_msgfree(res);
    return DIR_FOUND;
}

void adadmin_rights_free(struct adadmin_right **r, size_t n)
{
    for (size_t i = 0; *r && i < n; i++)
        free((*r)[i].name);
    free(*r);
    *r = NULL;
}

/* ---- principals ---- */

/* The objectSid value of m into out: 0, or -1 when absent or malformed. */
static int sid_value(LDAP *ld, LDAPMessage *m, struct sd_sid *out)
{
    struct berval **v = ldap_get_values_len(ld, m, "objectSid");
    int rc = v && v[0] ? sd_sid_from_bytes(v[0]->bv_val, v[0]->bv_len, out) : -1;
    ldap_value_free_len(v);
    return rc;
}

enum dir_result adadmin_sid_of_dn(struct ldapdir *d, const char *dn, struct sd_sid *out,
                                  char *err, size_t errlen)
{
    char *attrs[] = {"objectSid", NULL};
    LDAPMessage *res, *m;
    enum dir_result r = search_first(d, dn, LDAP_SCOPE_BASE, "(objectClass=*)", attrs, NULL,
                                     &res, &m, err, errlen);
    if (r != DIR_FOUND)
        return r;
    if (!m || sid_value(d->ld, m, out) != 0) {
        rn_err(err, errlen, "%s has no objectSid: not a security principal", dn);
        r = DIR_NOTFOUND;
    }
    ldap_msgfree(res);
    return r;
}

enum dir_result adadmin_sid_of_account(struct ldapdir *d, const char *base, const char *name,
                                       struct sd_sid *out, char **dn, char *err, size_t errlen)
{
    char esc[LDAPDIR_DNBUF];
    if (dn)
        *dn = NULL;
    if (ldap_filter_escape(name, strlen(name), esc, sizeof esc) < 0) {
        rn_err(err, errlen, "account name '%.64s...' is too long", name);
        return DIR_FAIL;
    }
    char *filter = xasprintf("(&(objectSid=*)(|(sAMAccountName=%s)(userPrincipalName=%s)))",
                             esc, esc);
    char *attrs[] = {"objectSid", NULL};
    LDAPMessage *res;
    enum dir_result r = search(d, base, LDAP_SCOPE_SUBTREE, filter, attrs, NULL, &res, err,
                               errlen);
    free(filter);
    if (r != DIR_FOUND)
        return r;
    int count = ldap_count_entries(d->ld, res);
    LDAPMessage *m = ldap_first_entry(d->ld, res);
    if (count == 0 || !m) {
        rn_err(err, errlen, "no account or group '%s' under %s", name, base);
        r = DIR_NOTFOUND;
    } else if (count > 1) {
        rn_err(err, errlen, "%d objects under %s have the account name '%s'", count, base, name);
        r = DIR_FAIL;
    } else if (sid_value(d->ld, m, out) != 0) {
        rn_err(err, errlen, "account '%s': objectSid is malformed", name);
        r = DIR_FAIL;
    } else if (dn) {
        char *s = ldap_get_dn(d->ld, m);
        *dn = xstrdup(s ? s : "");
        ldap_memfree(s);
    }
    ldap_msgfree(res);
    return r;
}

enum dir_result adadmin_account_of_sid(struct ldapdir *d, const char *base,
                                       const struct sd_sid *sid, char **sam, char *err,
                                       size_t errlen)
{
    /* A binary value in a filter: every octet as \xx (RFC 4515 §3). */
    char esc[3 * (8 + 4 * 15) + 1], *w = esc;
    size_t len = sd_sid_size(sid);
    unsigned char bytes[8 + 4 * 15];
    bytes[0] = sid->rev;
    bytes[1] = sid->nsub;
    memcpy(bytes + 2, sid->auth, 6);
    for (unsigned i = 0; i < sid->nsub && i < 15; i++)
        for (unsigned k = 0; k < 4; k++)
            bytes[8 + 4 * i + k] = (unsigned char)(sid->sub[i] >> (8 * k));
    for (size_t i = 0; i < len && i < sizeof bytes; i++)
        w += sprintf(w, "\\%02x", bytes[i]);   /* esc sized for 68 octets */
    char *filter = xasprintf("(objectSid=%s)", esc);
    char *attrs[] = {"sAMAccountName", NULL};
    LDAPMessage *res, *m;
    *sam = NULL;
    enum dir_result r = search_first(d, base, LDAP_SCOPE_SUBTREE, filter, attrs, NULL, &res,
                                     &m, err, errlen);
    free(filter);
    if (r != DIR_FOUND)
        return r;
    if (m)
        *sam = first_value(d->ld, m, "sAMAccountName");
    ldap_msgfree(res);
    if (!*sam) {
        rn_err(err, errlen, "no account holds that SID under %s", base);
        return DIR_NOTFOUND;
    }
    return DIR_FOUND;
}

/* ---- the descriptor ---- */

static uint32_t le32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* The nTSecurityDescriptor version in a replPropertyMetaDataBlob (MS-DRSR 5.172,
 * version 1): 0 and *version, or -1 when the blob is malformed or lacks the attribute. */
static int meta_version(const unsigned char *p, size_t len, uint32_t *version)
{
    if (len < META_HEADER || le32(p) != 1)
        return -1;
    uint32_t count = le32(p + 8);
    if (count > (len - META_HEADER) / META_ENTRY)
        return -1;
    for (uint32_t i = 0; i < count; i++) {
        const unsigned char *e = p + META_HEADER + (size_t)i * META_ENTRY;
        if (le32(e) == ATTID_NT_SECURITY_DESCRIPTOR) {
            *version = le32(e + 4);
            return 0;
        }
    }
    return -1;
}

enum dir_result adadmin_sd_read(struct ldapdir *d, const char *dn, struct adadmin_sd *out,
                                char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    LDAPControl sdflags, *ctrls[] = {&sdflags, NULL};
    sd_flags_control(&sdflags);
    char *attrs[] = {"nTSecurityDescriptor", "uSNChanged", "replPropertyMetaData", NULL};
    LDAPMessage *res, *m;
    enum dir_result r = search_first(d, dn, LDAP_SCOPE_BASE, "(objectClass=*)", attrs, ctrls,
                                     &res, &m, err, errlen);
    if (r != DIR_FOUND)
        return r;
    struct berval **sd = m ? ldap_get_values_len(d->ld, m, "nTSecurityDescriptor") : NULL;
    if (!sd || !sd[0] || sd[0]->bv_len == 0) {
        rn_err(err, errlen, "%s: no nTSecurityDescriptor readable (the account needs "
               "READ_CONTROL on it)", dn);
        r = DIR_NOTFOUND;
    } else {
        out->len = sd[0]->bv_len;
        out->bytes = xmalloc(out->len);
        memcpy(out->bytes, sd[0]->bv_val, out->len);
        /* Kept only when it is a number that fits: it may go into an assertion filter. */
        char *usn = first_value(d->ld, m, "uSNChanged");
        if (usn && *usn && strlen(usn) < sizeof out->usn &&
            strspn(usn, "0123456789") == strlen(usn))
            memcpy(out->usn, usn, strlen(usn) + 1);
        free(usn);
        struct berval **meta = ldap_get_values_len(d->ld, m, "replPropertyMetaData");
        if (meta && meta[0])
            out->has_version = meta_version((const unsigned char *)meta[0]->bv_val,
                                            meta[0]->bv_len, &out->version) == 0;
        ldap_value_free_len(meta);
    }
    ldap_value_free_len(sd);
    ldap_msgfree(res);
    return r;
}

void adadmin_sd_clear(struct adadmin_sd *sd)
{
    free(sd->bytes);
    memset(sd, 0, sizeof *sd);
}

enum adadmin_write adadmin_sd_write(struct ldapdir *d, const char *dn, const unsigned char *sd,
                                    size_t len, const char *assert_usn, char *err,
                                    size_t errlen)
{
    LDAPControl sdflags, *assertion = NULL, *ctrls[] = {&sdflags, NULL, NULL};
    sd_flags_control(&sdflags);
    if (assert_usn && *assert_usn) {
        char *filter = xasprintf("(uSNChanged=%s)", assert_usn);
        int rc = ldap_create_assertion_control(d->ld, filter, 1, &assertion);
        free(filter);
        if (rc != LDAP_SUCCESS) {
            rn_err(err, errlen, "assertion control: %s", ldap_err2string(rc));
            return ADW_FAIL;
        }
        ctrls[1] = assertion;
    }
    struct berval bv = {len, (char *)sd}, *vals[] = {&bv, NULL};
    LDAPMod mod = {LDAP_MOD_REPLACE | LDAP_MOD_BVALUES, "nTSecurityDescriptor", {NULL}},
           *mods[] = {&mod, NULL};
    mod.mod_bvalues = vals;
    int rc = ldap_modify_ext_s(d->ld, dn, mods, ctrls, NULL);
    if (assertion)
        ldap_control_free(assertion);
    if (rc == LDAP_SUCCESS)
        return ADW_DONE;
    if (rc == LDAP_ASSERTION_FAILED) {
        rn_err(err, errlen, "%s changed since it was read (assertion uSNChanged=%s failed)", dn,
               assert_usn);
        return ADW_CONFLICT;
    }
    char *what = xasprintf("modify %s", dn);
    enum dir_result r = ldapdir_error(d, rc, what, err, errlen);
    free(what);
    return r == DIR_TEMPFAIL ? ADW_TEMPFAIL : ADW_FAIL;
}
