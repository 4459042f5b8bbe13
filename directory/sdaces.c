/* sdaces: a parsed DACL as the model's ACEs (secdesc_aces, rule table in secdesc.h). The
 * one principle: what is not understood never widens a grant. An allow this code cannot
 * read fully (unknown type, unknown right, an InheritedObjectType for another class) is
 * dropped; a deny it cannot read fully is kept for what it can still say (its SID and the
 * rights its mask and object type cover). Evaluation is acl_eval's, where deny wins whatever
 * the order: stricter than Windows' canonical-order check, never looser. */
#include "directory/secdesc.h"
#include "directory/rights.h"
#include "directory/base/util.h"
#include <stdlib.h>
#include <string.h>

static bool ace_is_deny(uint8_t type)
{
    /* ACCESS_DENIED, ACCESS_DENIED_OBJECT, ACCESS_DENIED_CALLBACK, ..._CALLBACK_OBJECT. The
     * callback condition is not evaluated: the deny applies unconditionally. */
    return type == 0x01 || type == 0x06 || type == 0x0A || type == 0x0C;
}

static bool ace_is_object(uint8_t type)
{
    return type == 0x05 || type == 0x06 || type == 0x0C;
}

/* The R_* bits one ACE covers (before the InheritedObjectType rule). */
static uint32_t ace_bits(const struct sd_ace *a, const struct sd_rightmap *rights, size_t nrights)
{
    if (!(a->mask & (SD_CONTROL_ACCESS | SD_GENERIC_ALL)))
        return 0;
    if (!ace_is_object(a->type) || !(a->objflags & SD_OBJECT_TYPE_PRESENT))
        return R_ALL;   /* control access on every right of the object */
    for (size_t i = 0; i < nrights; i++)
        if (memcmp(rights[i].guid.b, a->object_type.b, 16) == 0)
            return rights[i].bit & R_ALL;
    return 0;          /* a right (or property set) the model does not know */
}

/* Trustees already resolved in this call: a DACL names few distinct SIDs many times (one
 * ACE per right), and formatting a SID costs more than comparing it. */
struct trustee { struct sd_sid sid; int wk; char str[SD_SID_STRMAX]; };
struct trustees { struct trustee *v; size_t n; };

/* The model principal of a SID: well-known, mapped per-forest group, or the SID itself
 * (*str: its canonical string, for SID principals). */
static int sid_principal(struct trustees *c, const struct sd_sid *sid, const struct sd_sid *mapped,
                         const int *wks, size_t nsids, const char **str)
{
    for (size_t i = 0; i < c->n; i++)
        if (sd_sid_equal(&c->v[i].sid, sid)) {
            *str = c->v[i].str;
            return c->v[i].wk;
        }
    c->v = xrealloc(c->v, (c->n + 1) * sizeof *c->v);
    struct trustee *t = &c->v[c->n++];
    t->sid = *sid;
    sd_sid_format(sid, t->str, sizeof t->str);
    const struct principal_info *p = principal_lookup(t->str);
    t->wk = p && p->sid ? p->id : -1;
    for (size_t i = 0; t->wk < 0 && i < nsids; i++)
        if (sd_sid_equal(&mapped[i], sid))
            t->wk = wks[i];
    *str = t->str;
    return t->wk;
}

static void merge(struct ace **out, size_t *n, bool deny, int wk, const char *sid, uint32_t bits)
{
    for (size_t i = 0; i < *n; i++) {
        struct ace *a = &(*out)[i];
        if (a->deny == deny && a->wk == wk && (wk >= 0 || strcmp(a->sid, sid) == 0)) {
            a->rights |= bits;
            return;
        }
    }
    *out = xrealloc(*out, (*n + 1) * sizeof **out);
    struct ace *a = &(*out)[(*n)++];
    memset(a, 0, sizeof *a);
    a->deny = deny;
    a->wk = wk;
    a->sid = wk >= 0 ? NULL : xstrdup(sid);
    a->rights = bits;
}

int secdesc_aces(const struct secdesc *sd, const struct sd_rightmap *rights, size_t nrights,
                 const struct sd_sidmap *sids, size_t nsids, const struct sd_guid *object_class,
                 struct ace **out, size_t *nout, char *err, size_t errlen)
{
    *out = NULL;
    *nout = 0;
    struct sd_sid *mapped = nsids ? xcalloc(nsids, sizeof *mapped) : NULL;
    int *wks = nsids ? xcalloc(nsids, sizeof *wks) : NULL;
    for (size_t i = 0; i < nsids; i++) {
        if (sd_sid_parse(sids[i].sid, &mapped[i]) < 0 || sids[i].wk < 0 ||
            sids[i].wk >= WK_COUNT) {
            rn_err(err, errlen, "sids map: entry %zu ('%.*s', %d) is not a SID and a principal",
                   i, SD_SID_STRMAX - 1, sids[i].sid, sids[i].wk);
            free(mapped);
            free(wks);
            return -1;
        }
        wks[i] = sids[i].wk;
    }
    struct trustees cache = {NULL, 0};
    for (size_t k = 0; sd->dacl_present && k < sd->naces; k++) {
        const struct sd_ace *a = &sd->aces[k];
        bool deny = ace_is_deny(a->type);
        if (!deny && a->type != 0x00 && a->type != 0x05)
            continue;   /* audit, alarm, allowed-callback, label, unknown: never a grant */
        if (a->flags & SD_FLAG_INHERIT_ONLY)
            continue;   /* for the children, not this object */
        if (a->sid.rev == 0)
            continue;   /* defensive: every type above was decoded with its SID */
        uint32_t bits = ace_bits(a, rights, nrights);
        if (!deny && ace_is_object(a->type) && a->objflags & SD_INHERITED_TYPE_PRESENT &&
            (!object_class || memcmp(object_class->b, a->inherited_type.b, 16) != 0))
            bits = 0;   /* an allow meant for another class: dropped; a deny stays */
        if (!bits)
            continue;
        const char *sid;
        int wk = sid_principal(&cache, &a->sid, mapped, wks, nsids, &sid);
        merge(out, nout, deny, wk, sid, bits);
    }
    free(cache.v);
    free(mapped);
    free(wks);
    return 0;
}
