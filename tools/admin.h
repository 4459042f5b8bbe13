/* admin: what relayctl's admin verbs (connector, permission, domain, sendconnector, node,
 * audit) share: the directory options and connection, finding the node, its site and their
 * connectors, validating a connector the way the loader does, and finishing a write either
 * through libldap or as LDIF (--ldif). Messages go to stderr prefixed with the verb; the
 * functions return relayctl exit codes (0 ok, 1 refused, 2 usage or connection error). */
#ifndef RN_ADMIN_H
#define RN_ADMIN_H
#include <getopt.h>
#include <stdbool.h>
#include <stddef.h>
#include "directory/bootstrap.h"
#include "directory/change.h"
#include "directory/ldap/ldapadmin.h"
#include "directory/model.h"
#include "tools/dirconf.h"

#define ADMIN_OPT 1000   /* getopt values of the shared options start here */
#define ADMIN_LONGOPTS \
    {"config", required_argument, 0, ADMIN_OPT + 0}, \
    {"uri", required_argument, 0, ADMIN_OPT + 1}, \
    {"bind-dn", required_argument, 0, ADMIN_OPT + 2}, \
    {"password-file", required_argument, 0, ADMIN_OPT + 3}, \
    {"base", required_argument, 0, ADMIN_OPT + 4}, \
    {"node", required_argument, 0, ADMIN_OPT + 5}, \
    {"json", no_argument, 0, ADMIN_OPT + 6}, \
    {"ldif", no_argument, 0, ADMIN_OPT + 7}, \
    {"help", no_argument, 0, 'h'}
/* Help text for the shared options (dirconf's and --json/--ldif), for each verb's --help. */
const char *admin_help_options(void);

struct admin {
    const char *verb;             /* "connector new", for messages */
    char verb_buf[48];            /* verb's storage after admin_init_sub */
    bool json, ldif;
    const char *opt[6];           /* --config --uri --bind-dn --password-file --base --node */
    struct dirconf dc;            /* the shared directory options; dc.boot once opened */
    struct ldapdir *d;            /* the connection; owned */
    char *node_name, *node_dn, *site_dn;   /* resolved by admin_open; owned */
};

void admin_init(struct admin *a, const char *verb);
/* The same for "<verb> <sub>" ("domain new"), kept in a->verb_buf. */
void admin_init_sub(struct admin *a, const char *verb, const char *sub);
/* A verb's help_text and the shared options on stdout (help: returns 0), or help_text alone
 * on stderr (an unknown or missing sub-verb: returns 2). */
int admin_usage(const char *help_text, bool help);
/* Handle one of the shared options (ADMIN_OPT + n); false if opt is not one of them. */
bool admin_option(struct admin *a, int opt, const char *arg);
/* getopt_long over opts (the caller sets optind = 0 first) with the shared options handled:
 * the next option that is not one of them (getopt's '?' included), -1 at the end, or
 * ADMIN_GETOPT_HELP after printing help_text and the shared options for -h / --help. */
#define ADMIN_GETOPT_HELP (-2)
int admin_getopt(struct admin *a, int argc, char **argv, const struct option *opts,
                 const char *help_text);
/* Resolve settings (flags, RELAYNODE_CONFIG, the bootstrap file), connect and bind, find
 * the node and its site. Returns 0, or 2 after printing why. */
int admin_open(struct admin *a);
/* The same without looking for the node (node list, audit of every node). */
int admin_open_nodeless(struct admin *a);
void admin_close(struct admin *a);

/* Print "relayctl <verb>: <message>" on stderr and return code. */
int admin_fail(const struct admin *a, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Map a directory result to an exit code after printing err (NOTFOUND -> 1, others -> 2). */
int admin_dir_fail(const struct admin *a, enum dir_result r, const char *err);
/* Every relay node under the relay base: 0, or 2 after printing why. Caller
 * ldapadmin_nodes_free()s. */
int admin_nodes(struct admin *a, struct ldapadmin_node **nodes, size_t *n);

/* Finish a write: with --ldif print the LDIF on stdout, otherwise apply it. An empty change
 * set prints "no change". Returns 0, 1 when the server refused, 2 when it could not be
 * reached (message printed). */
int admin_write(struct admin *a, const struct changeset *cs, const char *done_msg);
/* admin_write of one change: add e ("created <dn><note>", note may be NULL), delete dn
 * ("removed <dn>"), or turn old into e (changeset_diff with by_value, "<done> <dn>"). */
int admin_add(struct admin *a, const struct dir_entry *e, const char *note);
int admin_delete(struct admin *a, const char *dn);
int admin_modify(struct admin *a, const struct dir_entry *old, const struct dir_entry *e,
                 const char *const *by_value, const char *done);

/* All values of attr joined with ", " ("" when absent). Caller frees. */
char *admin_join_values(const struct dir_entry *e, const char *attr);
/* The entries matching filter one level under "cn=<container>,<relay base>" (the
 * connection is open): 0 with *out filled (caller clears), or 2 after printing why. */
int admin_search_in(struct admin *a, const char *container, const char *filter,
                    struct dir_entries *out);
/* Open the directory and list the entries of objectClass `oc` one level under
 * "cn=<container>,<relay base>". Returns 0 with *out filled (caller clears), or the exit code
 * after printing why. */
int admin_list_container(struct admin *a, const char *container, const char *oc,
                         struct dir_entries *out);

/* The RFC 4514 escaped form of an RDN value ("CRM Application" stays, "a,b" -> "a\,b").
 * Caller frees. */
char *admin_rdn_escape(const char *value);

/* Receive connectors of the node and its site (site ones flagged in *site, parallel to out;
 * caller frees). */
int admin_connectors(struct admin *a, struct dir_entries *out, bool **site);
/* The connector named `name` (cn, case-insensitive) on the node or its site: 0 and *out
 * filled, 1 not found (message printed), 2 error. */
int admin_find_connector(struct admin *a, const char *name, struct dir_entry *out,
                         bool *site_scoped);
/* The same without the "not found" message. */
int admin_lookup_connector(struct admin *a, const char *name, struct dir_entry *out,
                           bool *site_scoped);
/* Validate the connector entry e would become, exactly as the loader will: connector_from_entry
 * (every attribute through connattr, unknown relay attributes refused, validate_connector),
 * then validate_conflict against the other connectors the same node(s) load. 0 ok, 1 refused
 * (message printed), 2 error. */
int admin_check_connector(struct admin *a, const struct dir_entry *e, bool site_scoped);

/* Split a comma-separated flag value into trimmed non-empty items (appended to *v). */
void admin_split(const char *s, char ***v, size_t *n);
void admin_strv_free(char **v, size_t n);
/* Parse "true/false/$true/$false/yes/no/1/0" (case-insensitive) into "TRUE"/"FALSE";
 * NULL when not a boolean. */
const char *admin_bool(const char *s);
/* A domain name by the loader's rule (dnsname.h domain_name_check, "*." allowed); on success
 * d is rewritten in place to its stored form (lowercase, no trailing dot). */
bool admin_domain_ok(char *d);
#endif
