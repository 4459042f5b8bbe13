/* token: the security principals a session acts as (docs/architecture.md §2, docs/permission-model.md §3.3).
 *   anonymous                      = {ANONYMOUS LOGON} alone (no Everyone, no groups)
 *   ExternalAuthoritative connector = {Externally Secured Servers} alone, from connect
 *   node certificate (ExchangeServer) = {node DN, Exchange Servers, Hub Transport Servers,
 *                                     Authenticated Users, Everyone}
 *   partner certificate (Domain Secure) = {Partner Servers}
 *   authenticated user             = {user DN, its groups (transitive), Authenticated Users,
 *                                     Everyone}; its rights replace the anonymous ones. */
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
    char *name;           /* identity for logs and explain ("anonymous", the login); owned */
};

void token_init_anonymous(struct token *t);
void token_init_externally_secured(struct token *t);
/* A user's token. DNs are normalised here, whatever their length; -1 (and an empty token)
 * if user_dn or any group DN is not a DN: a group left out could carry a deny ACE. */
int token_init_user(struct token *t, const char *name, const char *user_dn,
                    const char *const *group_dns, size_t ngroups);
/* A relay node that proved itself with its certificate on an ExchangeServer connector:
 * {node DN, Exchange Servers, Hub Transport Servers, Authenticated Users, Everyone},
 * authenticated. -1 (and an empty token) if node_dn is not a DN. */
int token_init_exchange_server(struct token *t, const char *node_name, const char *node_dn);
/* A domain-secure partner (Domain Secure): {Partner Servers} alone, authenticated by its
 * certificate; name = the partner domain its certificate matched. */
void token_init_partner(struct token *t, const char *domain);
void token_clear(struct token *t);                 /* frees members; t may be reused */
void token_copy(struct token *dst, const struct token *src);
/* True when the principal of an ACE (well-known id, or canonical DN) is in the token. */
bool token_holds(const struct token *t, int wk, const char *dn_norm);
/* "NT AUTHORITY\Authenticated Users, Everyone, uid=alice,..., cn=staff,..." */
size_t token_format(const struct token *t, char *buf, size_t len);
#endif
