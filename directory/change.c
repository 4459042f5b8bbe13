/* change: entries as values, change sets, and their LDIF (RFC 2849). relayctl builds the
 * entry it wants, diffs it against what the directory holds, and then either hands the change
 * set to ldapadmin_apply or prints changeset_ldif: both paths read the same records, which is
 * what makes `--ldif | ldapmodify` reach exactly the state of a direct write. */
#include "directory/change.h"
#include "directory/base/util.h"
#include <stdlib.h>
#include <string.h>

/* Entries and their attributes are entry.h's; a change set copies them. */
static void attr_copy(struct dir_attr *dst, const struct dir_attr *src)
{
    dir_attr_set(dst, src->name, (const char *const *)src->values, src->nvalues);
}

/* Whether e holds an attribute called name, even one left without values. */
static bool entry_names(const struct dir_entry *e, const char *name)
{
    for (size_t i = 0; i < e->nattrs; i++)
        if (rn_strieq(e->attrs[i].name, name))
            return true;
    return false;
}

/* ---- change sets ---- */

struct changeset *changeset_new(void)
{
    return xcalloc(1, sizeof(struct changeset));
}

static void change_clear(struct change *c)
{
    for (size_t i = 0; i < c->nattrs; i++)
        dir_attr_clear(&c->attrs[i]);
    free(c->attrs);
    for (size_t i = 0; i < c->nmods; i++)
        dir_attr_clear(&c->mods[i].attr);
    free(c->mods);
    free(c->dn);
}

void changeset_free(struct changeset **cs)
{
    if (!cs || !*cs)
        return;
    for (size_t i = 0; i < (*cs)->nchanges; i++)
        change_clear(&(*cs)->changes[i]);
    free((*cs)->changes);
    free(*cs);
    *cs = NULL;
}

static struct change *changeset_append(struct changeset *cs, enum change_kind kind,
                                       const char *dn)
{
    cs->changes = xrealloc(cs->changes, (cs->nchanges + 1) * sizeof *cs->changes);
    struct change *c = &cs->changes[cs->nchanges++];
    memset(c, 0, sizeof *c);
    c->kind = kind;
    c->dn = xstrdup(dn);
    return c;
}

void changeset_add_entry(struct changeset *cs, const struct dir_entry *e)
{
    struct change *c = changeset_append(cs, CHANGE_ADD, e->dn);
    c->attrs = xcalloc(e->nattrs ? e->nattrs : 1, sizeof *c->attrs);
    for (size_t i = 0; i < e->nattrs; i++)
        if (e->attrs[i].nvalues)
            attr_copy(&c->attrs[c->nattrs++], &e->attrs[i]);
}

void changeset_delete_entry(struct changeset *cs, const char *dn)
{
    changeset_append(cs, CHANGE_DELETE, dn);
}

void changeset_modify(struct changeset *cs, const char *dn, enum change_modop op,
                      const char *attr, const char *const *values, size_t n)
{
    struct change *c = cs->nchanges ? &cs->changes[cs->nchanges - 1] : NULL;
    if (!c || c->kind != CHANGE_MODIFY || strcmp(c->dn, dn) != 0)
        c = changeset_append(cs, CHANGE_MODIFY, dn);
    c->mods = xrealloc(c->mods, (c->nmods + 1) * sizeof *c->mods);
    struct change_mod *m = &c->mods[c->nmods++];
    m->op = op;
    dir_attr_set(&m->attr, attr, values, n);
}

static bool same_values(const struct dir_attr *a, const struct dir_attr *b)
{
    size_t na = a ? a->nvalues : 0, nb = b ? b->nvalues : 0;
    if (na != nb)
        return false;
    for (size_t i = 0; i < na; i++)
        if (!dir_attr_has(b, a->values[i]))
            return false;
    return true;
}

static bool named(const char *const *list, const char *name)
{
    for (size_t i = 0; list && list[i]; i++)
        if (rn_strieq(list[i], name))
            return true;
    return false;
}

/* Diff one attribute; the caller walks the union of both entries' names. */
static size_t diff_attr(struct changeset *cs, const char *dn, const char *name,
                        const struct dir_attr *o, const struct dir_attr *n, bool by_value)
{
    if (same_values(o, n))
        return 0;
    if (!by_value || !o || !n) {
        changeset_modify(cs, dn, MOD_REPLACE, name, n ? (const char *const *)n->values : NULL,
                         n ? n->nvalues : 0);
        return 1;
    }
    size_t mods = 0, k = 0;
    const char **gone = xcalloc(o->nvalues, sizeof *gone);
    for (size_t i = 0; i < o->nvalues; i++)
        if (!dir_attr_has(n, o->values[i]))
            gone[k++] = o->values[i];
    if (k) {
        changeset_modify(cs, dn, MOD_DELETE, name, gone, k);
        mods++;
    }
    free(gone);
    const char **fresh = xcalloc(n->nvalues, sizeof *fresh);
    k = 0;
    for (size_t i = 0; i < n->nvalues; i++)
        if (!dir_attr_has(o, n->values[i]))
            fresh[k++] = n->values[i];
    if (k) {
        changeset_modify(cs, dn, MOD_ADD, name, fresh, k);
        mods++;
    }
    free(fresh);
    return mods;
}

size_t changeset_diff(struct changeset *cs, const struct dir_entry *old_e,
                      const struct dir_entry *new_e, const char *const *by_value)
{
    size_t mods = 0;
    for (size_t i = 0; i < old_e->nattrs; i++) {
        const struct dir_attr *o = &old_e->attrs[i];
        mods += diff_attr(cs, new_e->dn, o->name, o->nvalues ? o : NULL,
                          dir_entry_get(new_e, o->name), named(by_value, o->name));
    }
    for (size_t i = 0; i < new_e->nattrs; i++) {
        const struct dir_attr *n = &new_e->attrs[i];
        if (entry_names(old_e, n->name))
            continue;                         /* handled above */
        mods += diff_attr(cs, new_e->dn, n->name, NULL, n->nvalues ? n : NULL,
                          named(by_value, n->name));
    }
    return mods;
}

/* ---- LDIF ---- */

struct buf { char *p; size_t len, cap; };

static void buf_put(struct buf *b, const char *s, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        b->cap = (b->len + n + 1) * 2;
        b->p = xrealloc(b->p, b->cap);
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

bool ldif_value_safe(const char *v, size_t len)
{
    if (len == 0)
        return true;
    unsigned char c0 = (unsigned char)v[0];
    if (c0 == ' ' || c0 == ':' || c0 == '<')
        return false;
    if (v[len - 1] == ' ')
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)v[i];
        if (c == 0 || c == '\n' || c == '\r' || c > 0x7f)
            return false;
    }
    return true;
}

static void base64(struct buf *b, const char *s, size_t n)
{
    static const char tab[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const unsigned char *u = (const unsigned char *)s;
    for (size_t i = 0; i < n; i += 3) {
        unsigned v = (unsigned)u[i] << 16;
        if (i + 1 < n) v |= (unsigned)u[i + 1] << 8;
        if (i + 2 < n) v |= u[i + 2];
        char out[4] = {tab[(v >> 18) & 63], tab[(v >> 12) & 63],
                       i + 1 < n ? tab[(v >> 6) & 63] : '=', i + 2 < n ? tab[v & 63] : '='};
        buf_put(b, out, 4);
    }
}

/* One "name: value" (or "name:: base64") line, folded at 76 columns: RFC 2849 continuation
 * lines start with one space that the reader drops. */
static void put_line(struct buf *out, const char *name, const char *value)
{
    struct buf line = {0};
    size_t vlen = strlen(value);
    buf_put(&line, name, strlen(name));
    if (ldif_value_safe(value, vlen)) {
        buf_put(&line, ":", 1);
        if (vlen) {
            buf_put(&line, " ", 1);
            buf_put(&line, value, vlen);
        }
    } else {
        buf_put(&line, ":: ", 3);
        base64(&line, value, vlen);
    }
    size_t pos = 0, width = 76;
    while (pos < line.len) {
        size_t take = line.len - pos < width ? line.len - pos : width;
        if (pos)
            buf_put(out, " ", 1);
        buf_put(out, line.p + pos, take);
        buf_put(out, "\n", 1);
        pos += take;
        width = 75;                         /* the leading space counts */
    }
    free(line.p);
}

static void put_attr(struct buf *out, const struct dir_attr *a)
{
    for (size_t i = 0; i < a->nvalues; i++)
        put_line(out, a->name, a->values[i]);
}

char *changeset_ldif(const struct changeset *cs)
{
    static const char *const opname[] = {"add", "delete", "replace"};
    struct buf out = {0};
    buf_put(&out, "", 0);
    for (size_t i = 0; i < cs->nchanges; i++) {
        const struct change *c = &cs->changes[i];
        if (i)
            buf_put(&out, "\n", 1);
        put_line(&out, "dn", c->dn);
        switch (c->kind) {
        case CHANGE_ADD:
            put_line(&out, "changetype", "add");
            for (size_t k = 0; k < c->nattrs; k++)
                put_attr(&out, &c->attrs[k]);
            break;
        case CHANGE_DELETE:
            put_line(&out, "changetype", "delete");
            break;
        case CHANGE_MODIFY:
            put_line(&out, "changetype", "modify");
            for (size_t k = 0; k < c->nmods; k++) {
                put_line(&out, opname[c->mods[k].op], c->mods[k].attr.name);
                put_attr(&out, &c->mods[k].attr);
                buf_put(&out, "-\n", 2);
            }
            break;
        }
    }
    return out.p;
}
