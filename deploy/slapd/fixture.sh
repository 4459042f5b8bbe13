#!/usr/bin/env bash
# A throwaway slapd holding the Relaynode example organisation, for tests and `make run`.
#
#   fixture.sh start DIR [--port N] [--smtp-port N] [--submission-port N] [--ldif FILE]...
#   fixture.sh stop DIR
#
# start builds DIR/slapd.d (cn=config via slapadd -n0: back_mdb + syncprov, schemas core,
# cosine, inetorgperson and schema/relaynode.ldif, the ACLs of acl.ldif), loads
# deploy/example/example.ldif and every --ldif FILE (placeholders @SMTP_PORT@,
# @SUBMISSION_PORT@, @SUFFIX@ and @SERVICE_PASSWORD_HASH@ substituted; free ports are chosen
# when not given), starts slapd on ldap://127.0.0.1:PORT/ (StartTLS offered),
# ldaps://127.0.0.1:LDAPS_PORT/ and ldapi://DIR/ldapi, waits until it answers, and writes
#   DIR/env            shell-sourceable: SLAPD_URI SLAPD_LDAPS_URI SLAPD_LDAPS_PORT SLAPD_CA
#                      SLAPD_LDAPI SLAPD_PID SLAPD_PORT SMTP_PORT SUBMISSION_PORT BASE_DN
#                      RELAY_BASE ADMIN_DN ADMIN_PW_FILE SERVICE_DN SERVICE_PW_FILE
#   DIR/relaynode.conf the bootstrap file of node1 (directory/bootstrap.h keys); the node
#                      talks to slapd with StartTLS, verifying slapd against DIR/tls/ca.pem
#   DIR/tls/           a throwaway CA (ca.pem) and a certificate for node1.example.com,
#                      localhost and 127.0.0.1 (deploy/pki/mkcerts.sh), used by node1 for
#                      STARTTLS and by slapd for ldaps:// and StartTLS
#   DIR/admin.pw, DIR/service.pw  fresh random passwords (mode 600, no trailing newline)
# A slapd already running for DIR is stopped first and the database rebuilt, so start is
# idempotent; DIR/spool and DIR/protocol are created and kept. stop kills the slapd whose
# pid is in DIR/slapd.pid (only if that process is slapd) and waits until it is gone.
# Fixtures in different directories run side by side. Works as root or as any user.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
SUFFIX="dc=example,dc=com"
ADMIN_DN="cn=admin,$SUFFIX"
SERVICE_DN="cn=relaynode,ou=Services,$SUFFIX"
RELAY_BASE="ou=Relay,$SUFFIX"
SCHEMA_DIR=${SLAPD_SCHEMA_DIR:-/etc/ldap/schema}
SLAPD=${SLAPD:-$(command -v slapd || echo /usr/sbin/slapd)}
SLAPADD=${SLAPADD:-$(command -v slapadd || echo /usr/sbin/slapadd)}
SLAPPASSWD=${SLAPPASSWD:-$(command -v slappasswd || echo /usr/sbin/slappasswd)}

die() { echo "fixture.sh: $*" >&2; exit 1; }
usage() { die "usage: fixture.sh start DIR [--port N] [--smtp-port N] [--submission-port N] [--ldif FILE]... [--data FILE] [--no-syncprov] | stop DIR"; }

# A TCP port nobody listens on, below the ephemeral range (freeport.py says why).
free_port() { /usr/bin/python3 "$HERE/freeport.py" 0; }

# pid of the slapd serving DIR, or nothing when none runs.
running_pid() {
  local dir=$1 pid
  [ -f "$dir/slapd.pid" ] || return 0
  pid=$(tr -dc 0-9 <"$dir/slapd.pid")
  [ -n "$pid" ] || return 0
  # Only a live slapd counts: a stale pid may have been reused by another process.
  if [ -r "/proc/$pid/comm" ] && [ "$(cat "/proc/$pid/comm")" = slapd ]; then echo "$pid"; fi
}

cmd_stop() {
  local dir=$1 pid i
  pid=$(running_pid "$dir")
  if [ -n "$pid" ]; then
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 1 100); do
      [ -d "/proc/$pid" ] || break
      # A zombie whose parent has not reaped it yet is gone for our purposes.
      [ "$(awk '/^State:/ {print $2}' "/proc/$pid/status" 2>/dev/null)" = Z ] && break
      sleep 0.1
    done
    if [ -d "/proc/$pid" ] && [ "$(awk '/^State:/ {print $2}' "/proc/$pid/status" 2>/dev/null)" != Z ]; then
      kill -KILL "$pid" 2>/dev/null || true
      for i in $(seq 1 50); do [ -d "/proc/$pid" ] || break; sleep 0.1; done
    fi
  fi
  rm -f "$dir/slapd.pid" "$dir/slapd.args"
}

random_password() { head -c 24 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c 24; }

# Substitute the LDIF placeholders of a template into stdout.
subst() {
  sed -e "s|@SMTP_PORT@|$SMTP_PORT|g" -e "s|@SUBMISSION_PORT@|$SUBMISSION_PORT|g" \
      -e "s|@SUFFIX@|$SUFFIX|g" -e "s|@SERVICE_PASSWORD_HASH@|$SERVICE_PW_HASH|g" "$1"
}

# The olcAccess/olcLimits values (with their continuation lines) of acl.ldif.
acl_lines() {
  awk '/^olc(Access|Limits):/ {keep=1; print; next}
       /^ / && keep {print; next}
       {keep=0}' "$HERE/acl.ldif" | sed "s|@SUFFIX@|$SUFFIX|g"
}

cmd_start() {
  local dir=$1; shift
  local port="" ldifs=() a data="" syncprov=1
  SMTP_PORT=""; SUBMISSION_PORT=""
  while [ $# -gt 0 ]; do
    a=$1; shift
    case "$a" in
      --port) port=${1:?--port needs a value}; shift ;;
      --smtp-port) SMTP_PORT=${1:?--smtp-port needs a value}; shift ;;
      --submission-port) SUBMISSION_PORT=${1:?--submission-port needs a value}; shift ;;
      --ldif) [ -r "${1:-}" ] || die "--ldif: cannot read '${1:-}'"; ldifs+=("$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"); shift ;;
      --data) [ -r "${1:-}" ] || die "--data: cannot read '${1:-}'"; data="$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"; shift ;;
      --no-syncprov) syncprov= ;;
      *) usage ;;
    esac
  done
  mkdir -p "$dir"; dir=$(cd "$dir" && pwd)
  cmd_stop "$dir"
  rm -rf "$dir/slapd.d" "$dir/db"
  mkdir -p "$dir/slapd.d" "$dir/db" "$dir/spool" "$dir/protocol"
  while [ -z "$SMTP_PORT" ] || [ "$SMTP_PORT" = "$port" ]; do SMTP_PORT=$(free_port); done
  while [ -z "$SUBMISSION_PORT" ] || [ "$SUBMISSION_PORT" = "$SMTP_PORT" ] \
        || [ "$SUBMISSION_PORT" = "$port" ]; do SUBMISSION_PORT=$(free_port); done

  (umask 077; random_password | tr -d '\n' >"$dir/admin.pw"; random_password | tr -d '\n' >"$dir/service.pw")
  local admin_hash; admin_hash=$("$SLAPPASSWD" -T "$dir/admin.pw")
  SERVICE_PW_HASH=$("$SLAPPASSWD" -T "$dir/service.pw")

  # A throwaway CA and node certificate (kept across restarts of this DIR): node1's STARTTLS
  # certificate, and slapd's for ldaps:// and StartTLS (its names include localhost and
  # 127.0.0.1, which the node verifies).
  bash "$ROOT/deploy/pki/mkcerts.sh" "$dir/tls" node1.example.com localhost

  # cn=config: the template with the ACL lines spliced in, then the scalar placeholders.
  acl_lines >"$dir/acl.lines"
  awk -v f="$dir/acl.lines" '$0 == "@ACL@" {while ((getline l < f) > 0) print l; next} {print}' \
      "$HERE/config.ldif.in" |
    sed -e "s|@DIR@|$dir|g" -e "s|@SUFFIX@|$SUFFIX|g" -e "s|@ADMIN_DN@|$ADMIN_DN|g" \
        -e "s|@ADMIN_PW_HASH@|$admin_hash|g" -e "s|@SCHEMA_DIR@|$SCHEMA_DIR|g" \
        -e "s|@RELAYNODE_SCHEMA@|$ROOT/schema/relaynode.ldif|g" \
        -e "s|@CONFIG_ADMIN@|gidNumber=$(id -g)+uidNumber=$(id -u),cn=peercred,cn=external,cn=auth|g" \
        >"$dir/config.ldif"
  rm -f "$dir/acl.lines"
  # --no-syncprov: a directory without RFC 4533 (and whose contextCSN, written once by
  # slapadd -w, nobody maintains), for the nodes' polling fallback.
  if [ -z "$syncprov" ]; then
    awk '/^olcModuleLoad: syncprov$/ {next}
         /^dn: olcOverlay=\{0\}syncprov,/ {skip=1}
         skip && /^$/ {skip=0; next}
         !skip {print}' "$dir/config.ldif" >"$dir/config.ldif.new"
    mv "$dir/config.ldif.new" "$dir/config.ldif"
  fi
  "$SLAPADD" -n0 -F "$dir/slapd.d" -l "$dir/config.ldif" >"$dir/slapadd.log" 2>&1 \
    || { cat "$dir/slapadd.log" >&2; die "slapadd -n0 failed"; }

  # Data: the example organisation, then the extra LDIF files, in that order; or, with
  # --data, a slapcat export used verbatim (entryUUID and entryCSN kept, so this server can
  # join another as a replication provider; deploy/multisite/).
  if [ -n "$data" ]; then cp "$data" "$dir/data.ldif"; else
  # node1's certificate is registered on its entry, as `relayctl node set node1
  # --certificate` does, so node1 can prove itself to ExchangeServer connectors.
  local node1_sha256
  node1_sha256=$(openssl x509 -in "$dir/tls/node.pem" -noout -fingerprint -sha256 | sed 's/.*=//')
  { subst "$ROOT/deploy/example/example.ldif" |
      sed "/^dn: cn=node1,cn=Default-Site,cn=Sites,ou=Relay,/a relayCertificateSha256: $node1_sha256"
    for a in ${ldifs[@]+"${ldifs[@]}"}; do echo; subst "$a"; done
  } >"$dir/data.ldif"; fi
  "$SLAPADD" -F "$dir/slapd.d" -b "$SUFFIX" -w -l "$dir/data.ldif" >>"$dir/slapadd.log" 2>&1 \
    || { cat "$dir/slapadd.log" >&2; die "slapadd of the data failed"; }

  local ldapi_path="$dir/ldapi" enc tries=0 fixed_port=$port ldaps_port=""
  enc=$(/usr/bin/python3 -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.argv[1], safe=""))' "$ldapi_path")
  SLAPD_LDAPI="ldapi://$enc/"
  # slapd binds its listeners before it detaches, so a busy port is a non-zero exit: with a
  # port of our choosing, pick another and retry (another fixture may have taken it).
  while :; do
    while [ -z "$port" ] || [ "$port" = "$SMTP_PORT" ] || [ "$port" = "$SUBMISSION_PORT" ]; do
      port=$(free_port)
    done
    ldaps_port=""
    while [ -z "$ldaps_port" ] || [ "$ldaps_port" = "$port" ] || [ "$ldaps_port" = "$SMTP_PORT" ] \
          || [ "$ldaps_port" = "$SUBMISSION_PORT" ]; do ldaps_port=$(free_port); done
    rm -f "$ldapi_path"
    if "$SLAPD" -F "$dir/slapd.d" -h "ldap://127.0.0.1:$port/ ldaps://127.0.0.1:$ldaps_port/ $SLAPD_LDAPI" \
         </dev/null >>"$dir/slapd.log" 2>&1; then
      break
    fi
    tries=$((tries + 1))
    [ -z "$fixed_port" ] && [ $tries -lt 5 ] || die "slapd did not start on port $port (see $dir/slapd.log)"
    port=""
  done

  local i pid=""
  for i in $(seq 1 100); do
    pid=$(running_pid "$dir")
    if [ -n "$pid" ] && ldapsearch -x -LLL -H "$SLAPD_LDAPI" -b "" -s base 1.1 >/dev/null 2>&1; then
      break
    fi
    pid=""; sleep 0.1
  done
  [ -n "$pid" ] || { cmd_stop "$dir"; die "slapd did not answer on $SLAPD_LDAPI (see $dir/slapd.log)"; }

  cat >"$dir/env" <<ENV
SLAPD_URI='ldap://127.0.0.1:$port/'
SLAPD_LDAPS_URI='ldaps://127.0.0.1:$ldaps_port/'
SLAPD_LDAPS_PORT='$ldaps_port'
SLAPD_CA='$dir/tls/ca.pem'
SLAPD_LDAPI='$SLAPD_LDAPI'
SLAPD_PID='$pid'
SLAPD_PORT='$port'
SMTP_PORT='$SMTP_PORT'
SUBMISSION_PORT='$SUBMISSION_PORT'
BASE_DN='$SUFFIX'
RELAY_BASE='$RELAY_BASE'
ADMIN_DN='$ADMIN_DN'
ADMIN_PW_FILE='$dir/admin.pw'
SERVICE_DN='$SERVICE_DN'
SERVICE_PW_FILE='$dir/service.pw'
ENV
  # dns_server: no test or demo may query real DNS. MX lookups go to a loopback port where
  # nothing answers (a temporary failure: messages stay queued); tests that deliver by MX
  # point it at their own DNS stub.
  cat >"$dir/relaynode.conf" <<CONF
uri = ldap://127.0.0.1:$port/
ldap_starttls = yes
ldap_ca_file = $dir/tls/ca.pem
bind_dn = $SERVICE_DN
bind_password_file = $dir/service.pw
base_dn = $RELAY_BASE
node = node1
hostname = node1.example.com
spool_dir = $dir/spool
log = $dir/relaynode.log
protocol_log_dir = $dir/protocol
tls_cert = $dir/tls/node.pem
tls_key = $dir/tls/node.key
dns_server = 127.0.0.1:1
CONF
}

[ $# -ge 2 ] || usage
verb=$1; dir=$2; shift 2
case "$verb" in
  start) cmd_start "$dir" "$@" ;;
  stop) [ $# -eq 0 ] || usage; [ -d "$dir" ] || exit 0; cmd_stop "$(cd "$dir" && pwd)" ;;
  *) usage ;;
esac
