/* token: who a session acts as (token.h). The three shapes follow Exchange's transport
 * (docs/permission-model.md §3.3, §7.2): an anonymous session holds ANONYMOUS LOGON alone (not
 * Everyone, so an ACE for Everyone never opens an anonymous door), an ExternalAuthoritative
 * connector holds Externally Secured Servers alone, and an authenticated user holds its own
 * DN, its groups, Authenticated Users and Everyone (an AD user: its SID and its tokenGroups
 * SIDs instead of DNs). DNs and SIDs are kept canonical so matching an ACE's dn_norm or sid
 * is a plain string comparison. */
#include "directory/token.h"
#include "directory/ace.h"
#include "directory/rights.h"
#include "directory/secdesc.h"
#include "directory/base/util.h"
#include <stdlib.h>
#include <string.h>

static void token_zero(struct token *t)
{
    memset(t, 0, sizeof *t);
}

void token_init_anonymous(struct token *t)
{
    token_zero(t);
    t->wk = 1u << WK_ANONYMOUS;
    t->name = xstrdup("anonymous");
}

void token_init_externally_secured(struct token *t)
{
    token_zero(t);
    t->wk = 1u << WK_EXTERNALLY_SECURED;
    t->name = xstrdup("externally-secured");
}

/* A normalised DN never needs more than three octets per input octet (\xx escapes). */
static char *dn_norm_dup(const char *dn)
{
    if (!dn)
        return NULL;
    size_t cap = 3 * strlen(dn) + 1;
    char *norm = xmalloc(cap), err[RN_ERRLEN];
    if (dn_normalize(dn, norm, cap, err, sizeof err) < 0) {
        free(norm);
        return NULL;
    }
    return norm;
}

int token_init_user(struct token *t, const char *name, const char *user_dn,
                    const char *const *group_dns, size_t ngroups)
{
    token_zero(t);
    char *norm = dn_norm_dup(user_dn);
    if (!norm)
        return -1;
    t->wk = 1u << WK_AUTHENTICATED_USERS | 1u << WK_EVERYONE;
    t->authenticated = true;
    t->user_dn = norm;
    t->name = xstrdup(name ? name : norm);
    t->group_dns = xcalloc(ngroups ? ngroups : 1, sizeof *t->group_dns);
    for (size_t i = 0; i < ngroups; i++) {
        /* A group left out could be the one a deny ACE names: fail, never skip. */
        char *g = dn_norm_dup(group_dns[i]);
        if (!g) {
            token_clear(t);
            return -1;
        }
        bool dup = false;
        for (size_t j = 0; j < t->ngroups && !dup; j++)
            dup = strcmp(t->group_dns[j], g) == 0;
        if (dup)
            free(g);
        else
            t->group_dns[t->ngroups++] = g;
    }
    return 0;
}

/* Canonical form of one SID string into out; -1 if it is not a SID. */
static int sid_canon(const char *s, char out[SD_SID_STRMAX])
{
    struct sd_sid bin;
    if (sd_sid_parse(s, &bin) < 0)
        return -1;
    sd_sid_format(&bin, out, SD_SID_STRMAX);
    return 0;
}

static void token_add_sid(struct token *t, const char *sid)
{
    const struct principal_info *p = principal_lookup(sid);
    if (p && p->sid) {   /* a well-known SID in tokenGroups: the bit, not a string */
        t->wk |= 1u << p->id;
        return;
    }
    for (size_t j = 0; j < t->nsids; j++)
        if (strcmp(t->sids[j], sid) == 0)
            return;
    t->sids[t->nsids++] = xstrdup(sid);
}

int token_init_sids(struct token *t, const char *name, const char *user_sid,
                    const char *const *group_sids, size_t n)
{
    token_zero(t);
    char canon[SD_SID_STRMAX];
    if (!user_sid || sid_canon(user_sid, canon) < 0)
        return -1;
    t->wk = 1u << WK_AUTHENTICATED_USERS | 1u << WK_EVERYONE;
    t->authenticated = true;
    t->name = xstrdup(name ? name : canon);
    t->sids = xcalloc(n + 1, sizeof *t->sids);
    token_add_sid(t, canon);
    for (size_t i = 0; i < n; i++) {
        /* A group left out could be the one a deny ACE names: fail, never skip. */
        if (!group_sids[i] || sid_canon(group_sids[i], canon) < 0) {
            token_clear(t);
            return -1;
        }
        token_add_sid(t, canon);
    }
    return 0;
}

int token_map_sids(struct token *t, const struct sd_sidmap *map, size_t n)
{
    uint32_t add = 0;
    for (size_t i = 0; i < n; i++) {
        char canon[SD_SID_STRMAX];
        if (sid_canon(map[i].sid, canon) < 0 || map[i].wk < 0 || map[i].wk >= WK_COUNT)
            return -1;
        for (size_t j = 0; j < t->nsids; j++)
            if (strcmp(t->sids[j], canon) == 0)
                add |= 1u << map[i].wk;
    }
    t->wk |= add;
    return 0;
}

int token_init_exchange_server(struct token *t, const char *node_name, const char *node_dn)
{
    if (token_init_user(t, node_name, node_dn, NULL, 0) != 0)
        return -1;
    /* What an Exchange hub's computer account carries when it authenticates as a server:
     * membership of Exchange Servers and the Hub Transport Servers SID (the principals the
     * ExchangeServers group's full server ACEs name), on top of what every authenticated
     * principal holds. */
    t->wk |= 1u << WK_EXCHANGE_SERVERS | 1u << WK_HUB_TRANSPORT;
    return 0;
}

void token_init_partner(struct token *t, const char *domain)
{
    token_zero(t);
    t->wk = 1u << WK_PARTNER;
    t->authenticated = true;
    t->name = xstrdup(domain);
}

void token_clear(struct token *t)
{
    for (size_t i = 0; i < t->ngroups; i++)
        free(t->group_dns[i]);
    free(t->group_dns);
    for (size_t i = 0; i < t->nsids; i++)
        free(t->sids[i]);
    free(t->sids);
    free(t->user_dn);
    free(t->name);
    token_zero(t);
}

void token_copy(struct token *dst, const struct token *src)
{
    *dst = *src;
    dst->user_dn = src->user_dn ? xstrdup(src->user_dn) : NULL;
    dst->name = src->name ? xstrdup(src->name) : NULL;
    dst->group_dns = NULL;
    if (src->group_dns) {
        dst->group_dns = xcalloc(src->ngroups ? src->ngroups : 1, sizeof *dst->group_dns);
        for (size_t i = 0; i < src->ngroups; i++)
            dst->group_dns[i] = xstrdup(src->group_dns[i]);
    }
    dst->sids = NULL;
    if (src->sids) {
        dst->sids = xcalloc(src->nsids ? src->nsids : 1, sizeof *dst->sids);
        for (size_t i = 0; i < src->nsids; i++)
            dst->sids[i] = xstrdup(src->sids[i]);
    }
}

bool token_holds(const struct token *t, int wk, const char *key)
{
    if (wk >= 0)
        return wk < WK_COUNT && (t->wk >> wk) & 1u;
    if (!key)
        return false;
    for (size_t i = 0; i < t->nsids; i++)
        if (strcmp(t->sids[i], key) == 0)
            return true;
    if (t->user_dn && strcmp(t->user_dn, key) == 0)
        return true;
    for (size_t i = 0; i < t->ngroups; i++)
        if (strcmp(t->group_dns[i], key) == 0)
            return true;
    return false;
}

bool token_holds_ace(const struct token *t, const struct ace *a)
{
    return token_holds(t, a->wk, a->sid ? a->sid : a->dn_norm);
}

/* snprintf-style: returns the full length, writes what fits. */
static void append(char *buf, size_t len, size_t *pos, bool *first, const char *s)
{
    const char *parts[2] = {*first ? "" : ", ", s};
    *first = false;
    for (int k = 0; k < 2; k++) {
        size_t n = strlen(parts[k]);
        if (*pos < len) {
            size_t room = len - *pos - 1, c = n < room ? n : room;
            memcpy(buf + *pos, parts[k], c);
            buf[*pos + c] = '\0';
        }
        *pos += n;
    }
}

size_t token_format(const struct token *t, char *buf, size_t len)
{
    size_t pos = 0;
    bool first = true;
    if (len)
        buf[0] = '\0';
    for (int i = 0; i < WK_COUNT; i++)
        if ((t->wk >> i) & 1u)
            append(buf, len, &pos, &first, principal_by_id(i)->name);
    if (t->user_dn)
        append(buf, len, &pos, &first, t->user_dn);
    for (size_t i = 0; i < t->ngroups; i++)
        append(buf, len, &pos, &first, t->group_dns[i]);
    for (size_t i = 0; i < t->nsids; i++)
        append(buf, len, &pos, &first, t->sids[i]);
    return pos;
}
