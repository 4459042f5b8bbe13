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
    struct rn_connector_body *conn;   /* K_CONN_* when ok: a reference, shared with the
                                   * snapshots that list it */
    struct rn_domain dom;         /* K_DOMAIN: owned */
    struct rn_sendconn sc;        /* K_SENDCONN: owned */
    struct rn_node_cert *certs; size_t ncerts;   /* K_NODECERT: owned */
    char **partners; size_t npartners;           /* K_PARTNER: owned */
    struct sd_entry *next;        /* hash chain */
};

/* What the last build found about its connectors, so that a build whose connectors are
 * the same as far as the conflict sweep and the selection index can tell (in the same order:
 * names, DNs, enabled, bindings, ranges) takes both over instead of redoing them (snapbuild.c).
 * A change of an ACE, a limit or anything else of a connector, or of any other entry, keeps
 * them; a binding, range, name or enabled change, or a connector added or removed, does not. */
struct sd_last {
    struct rn_connector_body **pre; size_t npre;  /* references: the sorted connectors before
                                                   * the sweep */
    bool *bad;                                    /* owned: the ones the sweep refused */
    char **errors; size_t nerrors;                /* owned: its refusals, in order */
    struct rn_snapshot *snap;                     /* a reference: its selection index */
    bool reused;                                  /* the last build took them over */
    uint64_t gen;                                 /* the store's gen when snap was built */
    bool relabelled;                              /* the last call relabelled snap */
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
    struct sd_entry **conns; size_t nconns, capconns;  /* owned array: the entries holding
                                                 * a connector, in the snapshot's order */
    struct sd_last last;                         /* owned by snapbuild.c */
    uint64_t gen;                                /* moves on with every change of what a
                                                 * build reads: entries, the recipient set */
};

/* Free what s->last holds (snapbuild.c). */
void snapbuild_last_clear(struct sd_last *l);
/* Keep s->conns sorted (snapbuild.c): x (holding a connector) comes in or goes out. */
void snapbuild_conn_add(struct snapstore *s, struct sd_entry *x);
void snapbuild_conn_remove(struct snapstore *s, const struct sd_entry *x);

#endif
