/* bootstrap: the small key = value file a node (and relayctl) starts from; everything else
 * comes from the directory. A declarative table {key, default, doc}; unknown keys, duplicate
 * keys and malformed lines are errors naming the line. Pure (reads the file it is given). */
#ifndef RN_BOOTSTRAP_H
#define RN_BOOTSTRAP_H
#include <stddef.h>

struct rn_bootstrap {
    char *uri;                 /* "ldap://127.0.0.1:389" (space-separated list tried in order) */
    char *bind_dn;             /* simple bind identity; empty with sasl_mech = EXTERNAL */
    char *bind_password_file;  /* file holding the bind password (first line) */
    char *sasl_mech;           /* "" (simple bind) or "EXTERNAL" (ldapi:// peer credentials) */
    char *base_dn;             /* the relay subtree, e.g. "ou=Relay,dc=example,dc=com" */
    char *user_base;           /* where users and groups are searched; default: base_dn's parent */
    char *user_filter;         /* "(|(uid=%s)(mail=%s))": %s is the RFC 4515-escaped login */
    char *node;                /* this node's cn under the relay subtree */
    char *hostname;            /* default FQDN for connectors without relayFqdn */
    char *spool_dir;           /* "/var/spool/relaynode" */
    char *log;                 /* "stderr", "syslog" or a file path */
    char *ldap_timeout;        /* seconds for each directory operation, "5" */
    char *tls_cert, *tls_key;  /* PEM files for STARTTLS; empty = no STARTTLS */
    char *tls_cert_dir;        /* named certificates NAME.pem + NAME.key (relayTlsCertificateName);
                                * "" = none */
    char *cluster_bind;        /* endpoint the bus binds; "" = the node's relayClusterEndpoint */
    char *protocol_log_dir;    /* per-connector protocol logs (Verbose connectors); "" = off */
    char *max_command_line;    /* octets incl. CRLF, "512" (RFC 5321 §4.5.3.1.4) */
    char *max_text_line;       /* octets incl. CRLF, "1000" (RFC 5321 §4.5.3.1.6) */
    char *drain_timeout;       /* seconds SIGTERM waits for sessions to finish, "30" */
    char *dns_server;          /* resolver "ip[:port],..." for delivery; "" = resolv.conf */
    char *queue_lifetime;      /* seconds before a deferred message bounces, "172800" */
    char *retry_min, *retry_max;   /* retry backoff bounds in seconds, "60" / "3600" */
    char *delivery_concurrency;    /* messages in delivery at once, "50" */
    char *mx_port;             /* port for deliveries by MX, "25" */
    char *queue_hold;          /* "yes": queue everything, deliver nothing; "no" */
    char *smarthost_auth_file; /* "host[:port] user password" lines (kept out of the directory) */
    char *spool_reserve;       /* bytes the spool filesystem keeps free, "16777216" */
    char *max_stale;           /* seconds a stale snapshot may serve; "0" = no limit */
    char *cluster_secret_key_file; /* Z85 CURVE secret key of this node (or relayctl) for the
                                    * cluster bus; "" = no bus (schema/cluster-protocol.md §4) */
    char *cluster_heartbeat_ms;    /* "1000" */
    char *directory_watch;     /* "auto", "persist", "poll" or "off" (ldapsync.h) */
    char *directory_poll_interval; /* seconds, "10" */
    char *gssapi_keytab;       /* keytab for AUTH GSSAPI (Integrated); "" = GSSAPI never offered */
    char *gssapi_service;      /* service part of the principal service/fqdn@REALM, "smtp" */
    char *gssapi_realm;        /* the only realm whose principals may log in; "" = none (refused) */
};

/* Fill defaults, then read `path` (NULL: defaults only). -1 with "path:line: reason". */
int bootstrap_load(const char *path, struct rn_bootstrap *b, char *err, size_t errlen);
/* Set one key (used by command-line overrides); -1 if the key is unknown. */
int bootstrap_set(struct rn_bootstrap *b, const char *key, const char *value, char *err,
                  size_t errlen);
void bootstrap_clear(struct rn_bootstrap *b);
/* Print every key with its current value and documentation (passwords are never stored here). */
void bootstrap_describe(const struct rn_bootstrap *b, void (*out)(const char *line, void *arg),
                        void *arg);
#endif
