/* bootstrap: the small key = value file a node (and relayctl) starts from; everything else
 * comes from the directory. A declarative table {key, type, default, min, max, where, doc}
 * parses every value once, at load, into the typed fields below: numbers are numbers,
 * booleans bool, word lists enums; strings stay strings. Unknown keys, duplicate keys,
 * malformed lines and bad values are errors naming path:line (and, for numbers, the allowed
 * range), so no use site re-parses a value or falls back to a default. Pure (reads the file
 * it is given). */
#ifndef RN_BOOTSTRAP_H
#define RN_BOOTSTRAP_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* sasl_mech: "" is a simple bind (bind_dn + bind_password_file), EXTERNAL (any case) the
 * ldapi:// peer credentials; no other mechanism is supported. */
enum boot_sasl_mech { BOOT_SASL_SIMPLE, BOOT_SASL_EXTERNAL };
/* directory_watch: auto (persist, else poll), persist, poll, off (ldapsync.h). */
enum boot_watch { BOOT_WATCH_AUTO, BOOT_WATCH_PERSIST, BOOT_WATCH_POLL, BOOT_WATCH_OFF };
/* milter_default_action: a filter that cannot be asked means tempfail, accept or reject. */
enum boot_milter_default { BOOT_MILTER_TEMPFAIL, BOOT_MILTER_ACCEPT, BOOT_MILTER_REJECT };
/* directory_profile: the relay schema (schema/, the default) or an Exchange organisation in
 * Active Directory (docs/ad-profile.md). Only the loader and the lookups differ. */
enum boot_profile { BOOT_PROFILE_RELAY, BOOT_PROFILE_AD };

/* An address to listen on: an IPv4 or IPv6 literal and a port (metrics_listen). */
struct boot_endpoint {
    char host[46];             /* "127.0.0.1", "::1"; "" = off */
    unsigned port;             /* 1..65535; 0 = off */
};

struct rn_bootstrap {
    char *uri;                 /* "ldap://127.0.0.1:389" (space-separated list tried in order) */
    char *bind_dn;             /* simple bind identity; empty with sasl_mech = EXTERNAL */
    char *bind_password_file;  /* file holding the bind password (first line) */
    enum boot_sasl_mech sasl_mech;     /* "" (simple bind) or EXTERNAL */
    char *base_dn;             /* the relay subtree, e.g. "ou=Relay,dc=example,dc=com" */
    char *user_base;           /* where users and groups are searched; default: base_dn's parent */
    char *user_filter;         /* "(|(uid=%s)(mail=%s))": %s is the RFC 4515-escaped login */
    char *node;                /* this node's cn under the relay subtree */
    char *hostname;            /* default FQDN for connectors without relayFqdn */
    char *spool_dir;           /* "/var/spool/relaynode" */
    char *log;                 /* "stderr", "syslog" or a file path */
    char *user;                /* started as root: run as this user (privdrop.h); "" = none */
    char *group;               /* with user: this group; "" = the user's primary group */
    char *ldap_ca_file;        /* PEM CAs for ldaps:// and StartTLS; "" = system trust store */
    bool ldap_starttls;        /* StartTLS on every (ldap://) URI before any bind; default no */
    bool allow_cleartext_directory; /* offer BasicAuth over a cleartext directory; default no */
    unsigned ldap_timeout;     /* seconds for each directory operation, 5 (1..3600) */
    char *tls_cert, *tls_key;  /* PEM files for STARTTLS; empty = no STARTTLS */
    char *tls_ca_file;         /* PEM CAs for partner and smart host certificates; "" = system */
    char *tls_cert_dir;        /* named certificates NAME.pem + NAME.key (relayTlsCertificateName);
                                * "" = none */
    char *cluster_bind;        /* endpoint the bus binds; "" = the node's relayClusterEndpoint */
    char *protocol_log_dir;    /* per-connector protocol logs (Verbose connectors); "" = off */
    unsigned max_command_line; /* octets incl. CRLF, 512 (RFC 5321 §4.5.3.1.4; 64..1048576) */
    unsigned max_text_line;    /* octets incl. CRLF, 1000 (RFC 5321 §4.5.3.1.6; 64..1048576) */
    unsigned drain_timeout;    /* seconds SIGTERM waits for sessions to finish, 30 (0..86400) */
    unsigned max_sessions;     /* concurrent SMTP sessions on the node; 0 = derived from
                                * RLIMIT_NOFILE (bootstrap_fit_sessions) */
    unsigned max_sessions_line;    /* the file's line that set max_sessions, 0 = default */
    char *dns_server;          /* resolver "ip[:port],..." for delivery; "" = resolv.conf */
    unsigned queue_lifetime;   /* seconds before a deferred message bounces, 172800 */
    unsigned retry_min, retry_max;     /* retry backoff bounds in seconds, 60 / 3600 */
    unsigned delivery_concurrency;     /* messages in delivery at once, 50 (1..10000) */
    unsigned mx_port;          /* port for deliveries by MX, 25 (1..65535) */
    bool queue_hold;           /* yes: queue everything, deliver nothing; default no */
    char *smarthost_auth_file; /* "host[:port] user password" lines (kept out of the directory) */
    uint64_t spool_reserve;    /* bytes the spool filesystem keeps free, 16777216 */
    unsigned max_stale;        /* seconds a stale snapshot may serve; 0 = no limit */
    char *cluster_secret_key_file; /* Z85 CURVE secret key of this node (or relayctl) for the
                                    * cluster bus; "" = no bus (schema/cluster-protocol.md §4) */
    unsigned cluster_heartbeat_ms;     /* 1000 (50..60000) */
    enum boot_watch directory_watch;   /* auto */
    unsigned directory_poll_interval;  /* seconds, 10 (1..3600) */
    char *gssapi_keytab;       /* keytab for AUTH GSSAPI (Integrated); "" = GSSAPI never offered */
    char *gssapi_service;      /* service part of the principal service/fqdn@REALM, "smtp" */
    char *gssapi_realm;        /* the only realm whose principals may log in; "" = none (refused) */
    struct boot_endpoint metrics_listen; /* Prometheus endpoint: "" = off; "PORT" = 127.0.0.1;
                                          * another address only as written (node/metrics) */
    char *milter;              /* content filters "unix:/path inet:IP:port ..."; "" = none */
    unsigned milter_line;      /* the file's line that set milter, 0 = default */
    unsigned milter_connect_timeout;   /* seconds, 5 (1..300) */
    unsigned milter_command_timeout;   /* seconds per reply awaited, 30 (1..3600) */
    enum boot_milter_default milter_default_action;   /* tempfail */
    enum boot_profile directory_profile;   /* relay */
    unsigned directory_profile_line;   /* the file's line that set it, 0 = default */
    char *ad_server;           /* AD profile: the msExchExchangeServer's cn; "" = node */
    unsigned directory_ad_poll_ms;     /* AD profile: highestCommittedUSN poll, 1000 (50..60000) */
};

/* How the connection to the directory is protected, from uri and ldap_starttls alone:
 * PROTECTED when every URI is ldaps:// or ldapi://, or ldap_starttls = yes and every URI is
 * ldap://; CLEARTEXT when some URI is ldap:// without StartTLS; UNKNOWN when the list is
 * empty, holds another scheme, or mixes StartTLS with ldaps:// or ldapi:// (ldapdir refuses
 * it). Pure: nothing is connected. */
enum boot_dirsec { BOOT_DIR_PROTECTED, BOOT_DIR_CLEARTEXT, BOOT_DIR_UNKNOWN };
enum boot_dirsec bootstrap_directory_security(const struct rn_bootstrap *b);

/* Fill defaults, then read `path` (NULL: defaults only). -1 with "path:line: reason"
 * (e.g. `relaynode.conf:12: ldap_timeout: "1O" is not a number (1..3600 seconds)`); on
 * failure *b holds nothing to free. */
int bootstrap_load(const char *path, struct rn_bootstrap *b, char *err, size_t errlen);
/* Parse `value` as key's type into *b (used by command-line overrides). -1 with
 * "key: reason" if the key is unknown or the value bad; *b is then unchanged. */
int bootstrap_set(struct rn_bootstrap *b, const char *key, const char *value, char *err,
                  size_t errlen);
/* Descriptors: a session holds its socket and, while content arrives, a spool file; the
 * reserve covers the spool, logs, LDAP, the bus, workers and listeners, plus one socket per
 * delivery_concurrency. */
#define BOOT_FD_PER_SESSION 2
#define BOOT_FD_RESERVE 64
/* The node-wide session cap for a process allowed `nofile` descriptors: max_sessions if it
 * fits, or the most that fit when it is 0. -1 with "path:line: max_sessions: ..." when the
 * configured value does not fit (or nothing fits), so the node refuses to start. */
int bootstrap_fit_sessions(const struct rn_bootstrap *b, const char *path, uint64_t nofile,
                           unsigned *out, char *err, size_t errlen);
/* Free the strings; the typed fields keep their values. Safe on a zeroed struct. */
void bootstrap_clear(struct rn_bootstrap *b);
/* Print every key with its current value, its documentation, type, range and reader, one line
 * each, from the same table (passwords are never stored here). */
void bootstrap_describe(const struct rn_bootstrap *b, void (*out)(const char *line, void *arg),
                        void *arg);
#endif
