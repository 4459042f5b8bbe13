/* explain: `relayctl explain` as data. explain.c computes an explanation from the node's own
 * snapshot and policy code (what the node would do with one client, stage by stage);
 * explain_render.c prints it as text or JSON through tools/output. Nothing here decides
 * anything: every verdict is a policy_* answer. */
#ifndef RN_EXPLAIN_H
#define RN_EXPLAIN_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include "directory/bootstrap.h"
#include "directory/ipr.h"
#include "directory/model.h"
#include "directory/policy.h"
#include "directory/rights.h"
#include "directory/base/util.h"
#include "directory/ldap/ldapdir.h"

#define EXPLAIN_MAX_RCPT 64

/* What the admin asked about (argv's strings) and the endpoints parsed from them. */
struct explain_args {
    const char *local, *remote, *user, *from, *header_from;
    const char *client_cert;             /* --client-cert: a PEM file presented on STARTTLS */
    unsigned char cert_sha256[32];       /* its SHA-256, when client_cert */
    const char *to[EXPLAIN_MAX_RCPT]; size_t nto;
    bool tls, json;
    uint64_t size;
    ipr_binding local_ep;                /* --local parsed */
    ipr_addr remote_ip;                  /* --remote parsed */
    bool v4;                             /* an IPv4 (or v4-mapped) client */
};

/* Why a connector serves the client: the binding that matched (wildcard or exact) and its
 * smallest range holding the client, with that range's address count ("1", "256",
 * "~2^40"). "?" when nothing matched (never for the chosen connector). */
struct explain_match {
    const char *name, *dn;               /* into the snapshot */
    char binding[128], range[128], range_size[64];
    bool wildcard;
};

/* One right as the connector's ACEs give it to the token. */
struct explain_right {
    const char *name;                    /* the right's canonical name */
    const char *state;                   /* "allowed", "denied" or "absent" */
    char *ace;                           /* the ACE that granted or denied it; NULL: none */
};

/* One stage of the session, in the order the session meets them. */
struct explain_stage {
    const char *name;                    /* "AUTH", "MAIL FROM", "RCPT TO", "sender (P1)", ... */
    char arg[600];                       /* the user, "<address>" or the address */
    bool reached;                        /* false after a refusal at AUTH or MAIL FROM */
    struct verdict v;                    /* when reached */
    char reply[700];                     /* "code enh text", when reached */
    const char *right;                   /* the right the verdict turned on; NULL: none */
};

/* How far the explanation got. */
enum explain_end {
    EXPLAIN_STAGES,                      /* a connector, a token, every stage */
    EXPLAIN_NO_CONNECTOR,                /* none serves the client: connect_reply */
    EXPLAIN_AUTH_FAILED,                 /* --user not found or the lookup failed: auth_* */
};

struct explanation {
    const struct explain_args *args;
    struct rn_snapshot *s;               /* a reference held until explanation_clear */
    enum explain_end end;
    char connect_reply[700];             /* EXPLAIN_NO_CONNECTOR: the refusal at connect */
    struct explain_match chosen;         /* the connector policy_select chose */
    struct explain_match *cands; size_t ncands;   /* every other that also serves the client */
    const char *auth_reply;              /* EXPLAIN_AUTH_FAILED: 535 or 454 */
    char auth_error[RN_ERRLEN];          /* and why */
    bool auth_tempfail;                  /* a directory error rather than an unknown user */
    char token[4096];                    /* the token, formatted */
    char tls_identity[400];              /* --client-cert: "node NAME", "partner DOMAIN"
                                          * or "anonymous (why)" */
    char **addrs; size_t naddrs;         /* the user's own addresses */
    char groups[256];                    /* the PermissionGroups the ACEs show as */
    struct explain_right rights[RIGHT_COUNT];     /* in bit order */
    struct explain_stage *stages; size_t nstages;
    const char *auth_as;                 /* "Anonymous", "Internal" or "Partner" */
    bool bypass_spam, bypass_size;
    bool refused;                        /* a stage refused or was not reached */
    int status;                          /* the exit code: 0 accepted, 1 refused, 2 error */
};

/* Explain what the node loading s would do with the client in args: the connector
 * policy_select chooses, the token (the connector's initial one, or the --user's from d),
 * the rights and every stage's verdict. Takes its own reference to s. Always fills x (its
 * status says how it ended); explanation_clear() afterwards. */
void explain_build(struct ldapdir *d, const struct rn_bootstrap *b, struct rn_snapshot *s,
                   const struct explain_args *args, struct explanation *x);
void explanation_clear(struct explanation *x);

/* Print x: aligned "label  value" lines, or one JSON object (explain_render.c). */
void explain_print_text(const struct explanation *x, FILE *f);
void explain_print_json(const struct explanation *x, FILE *f);
#endif
