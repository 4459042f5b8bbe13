/* snapdelta-private: the store's insides, shared by snapdelta.c (entries in, classified and
 * parsed) and snapbuild.c (the snapshot out). Nothing else includes it. */
#ifndef RN_SNAPDELTA_PRIVATE_H
#define RN_SNAPDELTA_PRIVATE_H
#include "directory/snapdelta.h"

enum kind { K_NONE, K_CONN_NODE, K_CONN_SITE, K_PARTNER, K_NODECERT, K_DOMAIN, K_SENDCONN };

struct sd_entry {
    char *key;                    /* owned: the uuid, or "dn:" and the normalised DN */
    char *dn, *ndn, *csn;         /* owned; csn may be NULL */
    enum kind kind;
    uint64_t hash;                /* of DN, attributes and values, attribute order ignored;
                                   * 0 for a tombstone (K_NONE) */
    char *error;                  /* owned: "<dn>: <reason>" when refused, else NULL */
    bool ok;                      /* the parsed part below is used */
    struct rn_connector conn;     /* K_CONN_*: owned */
    struct rn_domain dom;         /* K_DOMAIN: owned */
    struct rn_sendconn sc;        /* K_SENDCONN: owned */
    struct rn_node_cert *certs; size_t ncerts;   /* K_NODECERT: owned */
    char **partners; size_t npartners;           /* K_PARTNER: owned */
    struct sd_entry *next;        /* hash chain */
};

struct snapstore {
    char *node_name, *node_dn, *site_dn;         /* owned */
    char *node_ndn, *site_ndn, *user_ndn;        /* owned normalised forms; user_ndn NULL */
    struct sd_entry **buckets; size_t nbuckets;  /* owned: chains by key */
    size_t n;                                    /* entries */
    size_t nbydn;                                /* entries keyed by DN (no entryUUID) */
    struct rcptset *rcpt;                        /* a reference, or NULL */
    uint64_t rcpt_hash;
    size_t rcpt_refused;
    char *rcpt_label;                            /* owned */
    char *version;                               /* owned; NULL none yet */
};

#endif
