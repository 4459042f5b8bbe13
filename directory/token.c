/* token: who a session acts as (token.h). The three shapes follow Exchange's transport
 * (docs/permission-model.md §3.3, §7.2): an anonymous session holds ANONYMOUS LOGON alone (not
 * Everyone, so an ACE for Everyone never opens an anonymous door), an ExternalAuthoritative
 * connector holds Externally Secured Servers alone, and an authenticated user holds its own
 * DN, its groups, Authenticated Users and Everyone. DNs are kept canonical so matching an
 * ACE's dn_norm is a plain string comparison. */
#include "directory/token.h"
#include "directory/ace.h"
#include "directory/rights.h"
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
}

bool token_holds(const struct token *t, int wk, const char *dn_norm)
{
    if (wk >= 0)
        return wk < WK_COUNT && (t->wk >> wk) & 1u;
    if (!dn_norm)
        return false;
    if (t->user_dn && strcmp(t->user_dn, dn_norm) == 0)
        return true;
    for (size_t i = 0; i < t->ngroups; i++)
        if (strcmp(t->group_dns[i], dn_norm) == 0)
            return true;
    return false;
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
    return pos;
}
