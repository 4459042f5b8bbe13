/* connattr: the receive connector's directory attributes as one declarative table
 * {LDAP name, Exchange name, type, default, min, max} (docs/style.md rule 15). The loader feeds
 * raw attribute values through connattr_apply; relayctl validates writes with the same code;
 * schema/README.md documents the same table. Pure. */
#ifndef RN_CONNATTR_H
#define RN_CONNATTR_H
#include <stddef.h>
#include <stdint.h>
#include "directory/model.h"

enum connattr_type {
    CA_BOOL,      /* TRUE / FALSE (LDAP Boolean syntax) */
    CA_LIMIT,     /* decimal in [min,max], or "unlimited" when unlimited_ok */
    CA_STRING,    /* single UTF-8 string, at most max octets */
    CA_BINDINGS,  /* multi: IP:port */
    CA_RANGES,    /* multi: remote IP ranges */
    CA_AUTH,      /* multi: auth mechanism names ("None" alone) */
    CA_LOGLEVEL,  /* None / Verbose */
    CA_ACES,      /* multi: ACE grammar (ace.h) */
};

struct connattr {
    const char *ldap;        /* attribute type in our schema, e.g. "relayMaxMessageSize" */
    const char *exchange;    /* the Exchange property it reproduces, e.g. "MaxMessageSize" */
    enum connattr_type type;
    bool multi;              /* multi-valued */
    uint64_t def;            /* default when absent (RN_UNLIMITED for unlimited) */
    uint64_t min, max;       /* CA_LIMIT bounds; CA_STRING max length */
    bool unlimited_ok;
    size_t offset;           /* field in struct rn_connector */
    const char *doc;         /* one line for schema/README.md and relayctl --help */
};

extern const struct connattr connattr_table[];
extern const size_t connattr_count;

/* The attribute by LDAP name (case-insensitive), or NULL. */
const struct connattr *connattr_lookup(const char *ldap_name);
/* Parse the values of one attribute into c (replacing what was there). -1 with
 * "<attr>: <reason>" in err on a malformed value, a value out of range, or several values
 * for a single-valued attribute. */
int connattr_apply(struct rn_connector *c, const struct connattr *a,
                   const char *const *values, size_t nvalues, char *err, size_t errlen);
#endif
