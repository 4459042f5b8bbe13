/* token: the security principals a session acts as (docs/architecture.md §2, docs/permission-model.md §3.3).
 *   anonymous                      = {ANONYMOUS LOGON} alone (no Everyone, no groups)
 *   ExternalAuthoritative connector = {Externally Secured Servers} alone, from connect
 *   node certificate (ExchangeServer) = {node DN, Exchange Servers, Hub Transport Servers,
 *                                     Authenticated Users, Everyone}
 *   partner certificate (Domain Secure) = {Partner Servers}
 *   authenticated user             = {user DN, its groups (transitive), Authenticated Users,
 *                                     Everyone}; its rights replace the anonymous ones.
 *   authenticated AD user          = {user SID, every tokenGroups SID, Authenticated Users,
 *                                     Everyone} (the AD profile: Windows builds the same). */
#ifndef RN_TOKEN_H
#define RN_TOKEN_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct token {
    uint32_t wk;          /* set of 1u << enum wk_principal */
    bool authenticated;   /* true only after a successful AUTH */
    char *user_dn;        /* canonical DN (dn_normalize) of the user; owned; NULL if none */
    char **group_dns;     /* canonical DNs of every group the user is in, transitively; owned */
    size_t ngroups;
    char **sids;          /* canonical SIDs ("S-1-...", sd_sid_format) of an AD user: its own
                             SID first, then its tokenGroups; owned */
    size_t nsids;
    char *name;           /* identity for logs and explain ("anonymous", the login); owned */
};

void token_init_anonymous(struct token *t);
void token_init_externally_secured(struct token *t);
/* A user's token. DNs are normalised here, whatever their length; -1 (and an empty token)
 * if user_dn or any group DN is not a DN: a group left out could carry a deny ACE. */
int token_init_user(struct token *t, const char *name, const char *user_dn,
                    const char *const *group_dns, size_t ngroups);
/* An AD user's token (the AD profile): {user_sid, every group SID (tokenGroups: already
 * transitive), Authenticated Users, Everyone}, authenticated. SIDs are kept canonical; a
 * well-known SID among the groups sets its bit instead. -1 (and an empty token) if any SID
 * is malformed: a group left out could carry a deny ACE. */
int token_init_sids(struct token *t, const char *name, const char *user_sid,
                    const char *const *group_sids, size_t n);
/* Give the token the WK_* bit of every per-forest group (sids map: Exchange Servers,
 * ExchangeLegacyInterop) whose SID it holds, as secdesc_aces maps those SIDs in the ACEs;
 * call it with the same map after token_init_sids. -1 if a map entry is not a SID or its wk
 * is out of range (the token is unchanged). */
struct sd_sidmap;
int token_map_sids(struct token *t, const struct sd_sidmap *map, size_t n);
/* A relay node that proved itself with its certificate on an ExchangeServer connector:
 * {node DN, Exchange Servers, Hub Transport Servers, Authenticated Users, Everyone},
 * authenticated. -1 (and an empty token) if node_dn is not a DN. */
int token_init_exchange_server(struct token *t, const char *node_name, const char *node_dn);
/* A domain-secure partner (Domain Secure): {Partner Servers} alone, authenticated by its
 * certificate; name = the partner domain its certificate matched. */
void token_init_partner(struct token *t, const char *domain);
void token_clear(struct token *t);                 /* frees members; t may be reused */
void token_copy(struct token *dst, const struct token *src);
/* True when the principal of an ACE (well-known id, or the canonical DN or canonical SID in
 * key: a canonical DN is lowercase "type=value", a canonical SID "S-1-...") is in the token. */
bool token_holds(const struct token *t, int wk, const char *key);
/* The same for an ACE's principal (wk, sid or dn_norm). */
struct ace;
bool token_holds_ace(const struct token *t, const struct ace *a);
/* "NT AUTHORITY\Authenticated Users, Everyone, uid=alice,..., cn=staff,..., S-1-5-21-..." */
size_t token_format(const struct token *t, char *buf, size_t len);
#endif
