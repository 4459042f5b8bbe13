#!/usr/bin/env bash
# Two sites, two directory servers in OpenLDAP multi-provider replication (RFC 4533 syncrepl
# in both directions, olcMultiProvider), one relay node per site attached to its own server,
# both on the cluster bus (schema/cluster-protocol.md). A change written on either server is
# enforced by both sites' nodes once replicated: each node's watcher sees its own server
# change, and a NOTICE from the other site that arrives before replication waits for it.
#
#   multisite.sh start DIR     site A in DIR/a (node1, the example organisation), site B in
#                              DIR/b (node2 under cn=Site-B); prints DIR/env
#   multisite.sh stop DIR
#
# How: A is the usual fixture (deploy/slapd/fixture.sh). Site B's entries are added to A,
# A is exported with slapcat (entryUUID and entryCSN kept) and B starts from that export, so
# both hold the same entries before they replicate. Then each server gets olcServerID and a
# syncrepl stanza pointing at the other (bound as the other's rootdn), and
# olcMultiProvider TRUE. B uses A's service password (the hash is in the shared data).
# Bus: each node gets a CURVE keypair (relayctl node keygen; RELAYNODE_BUILD or build/ has
# relayctl) in DIR/keys/, and its relayNode entry an endpoint on a free loopback port and the
# public key, written to A before the export so both servers start with them.
# Production: use TLS (ldaps:// or starttls=critical) and a dedicated replicator identity
# instead of the rootdn; see schema/README.md for the service account ACLs.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
FIXTURE="$ROOT/deploy/slapd/fixture.sh"
RELAYCTL=${RELAYNODE_BUILD:-$ROOT/build}/relayctl
SLAPCAT=${SLAPCAT:-$(command -v slapcat || echo /usr/sbin/slapcat)}
SUFFIX="dc=example,dc=com"
ADMIN_DN="cn=admin,$SUFFIX"

die() { echo "multisite.sh: $*" >&2; exit 1; }
free_port() { /usr/bin/python3 "$ROOT/deploy/slapd/freeport.py" 0; }

# The olcSyncrepl + olcServerID change that makes server $1 (its DIR) replicate from $2.
replicate() {
  local dir=$1 id=$2 peer_uri=$3 peer_pw=$4 ldapi
  ldapi=$(. "$dir/env"; echo "$SLAPD_LDAPI")
  ldapmodify -Q -Y EXTERNAL -H "$ldapi" >/dev/null <<LDIF
dn: cn=config
changetype: modify
replace: olcServerID
olcServerID: $id

dn: olcDatabase={1}mdb,cn=config
changetype: modify
replace: olcSyncrepl
olcSyncrepl: rid=00$id provider=$peer_uri bindmethod=simple binddn="$ADMIN_DN"
  credentials="$peer_pw" searchbase="$SUFFIX" type=refreshAndPersist
  retry="1 +" timeout=3 network-timeout=3
-
replace: olcMultiProvider
olcMultiProvider: TRUE
LDIF
}

csn() {   # contextCSN values of server DIR, sorted, comma-joined
  local dir=$1
  ( . "$dir/env"
    ldapsearch -x -LLL -H "$SLAPD_URI" -D "$ADMIN_DN" -y "$ADMIN_PW_FILE" -s base -b "$SUFFIX" contextCSN 2>/dev/null |
      awk '/^contextCSN:/ {print $2}' | sort | paste -sd, )
}

cmd_start() {
  local dir=$1
  mkdir -p "$dir"; dir=$(cd "$dir" && pwd)
  cmd_stop "$dir" 2>/dev/null || true
  [ -x "$RELAYCTL" ] || die "no relayctl at $RELAYCTL (build first, or set RELAYNODE_BUILD)"
  rm -rf "$dir/keys"; mkdir -p "$dir/keys"
  local key1 key2 bus1 bus2
  key1=$("$RELAYCTL" node keygen --secret-file "$dir/keys/node1.key") || die "keygen failed"
  key2=$("$RELAYCTL" node keygen --secret-file "$dir/keys/node2.key") || die "keygen failed"
  "$FIXTURE" start "$dir/a" >/dev/null
  . "$dir/a/env"
  local a_uri=$SLAPD_URI a_pw; a_pw=$(cat "$ADMIN_PW_FILE")
  local b_smtp; b_smtp=$(free_port)
  while [ "$b_smtp" = "$SMTP_PORT" ] || [ "$b_smtp" = "$SUBMISSION_PORT" ] || [ "$b_smtp" = "$SLAPD_PORT" ]; do
    b_smtp=$(free_port)
  done
  bus1=$(free_port); bus2=$(free_port)
  while [ "$bus1" = "$bus2" ] || [ "$bus2" = "$b_smtp" ] || [ "$bus1" = "$b_smtp" ]; do
    bus2=$(free_port)
  done
  ldapmodify -x -H "$a_uri" -D "$ADMIN_DN" -y "$ADMIN_PW_FILE" >/dev/null <<LDIF
dn: cn=node1,cn=Default-Site,cn=Sites,ou=Relay,$SUFFIX
changetype: modify
replace: relayClusterEndpoint
relayClusterEndpoint: tcp://127.0.0.1:$bus1
-
replace: relayCurvePublicKey
relayCurvePublicKey: $key1
-
LDIF
  # Site B and its node, with a default connector on its own port (written to A).
  ldapadd -x -H "$a_uri" -D "$ADMIN_DN" -y "$ADMIN_PW_FILE" >/dev/null <<LDIF
dn: cn=Site-B,cn=Sites,ou=Relay,$SUFFIX
objectClass: relaySite
cn: Site-B

dn: cn=node2,cn=Site-B,cn=Sites,ou=Relay,$SUFFIX
objectClass: relayNode
cn: node2
relayHostName: node2.example.com
relayClusterEndpoint: tcp://127.0.0.1:$bus2
relayCurvePublicKey: $key2

dn: cn=Default node2,cn=node2,cn=Site-B,cn=Sites,ou=Relay,$SUFFIX
objectClass: relayReceiveConnector
cn: Default node2
relayEnabled: TRUE
relayBinding: 127.0.0.1:$b_smtp
relayRemoteIPRange: 0.0.0.0-255.255.255.255
relayAuthMechanism: None
relayAce: allow; NT AUTHORITY\\ANONYMOUS LOGON; ms-Exch-SMTP-Submit, ms-Exch-SMTP-Accept-Any-Sender, ms-Exch-SMTP-Accept-Authoritative-Domain-Sender, ms-Exch-Accept-Headers-Routing
LDIF
  "$SLAPCAT" -F "$dir/a/slapd.d" -b "$SUFFIX" -l "$dir/export.ldif" 2>/dev/null \
    || die "slapcat of site A failed"
  local b_ldap; b_ldap=$(free_port)
  "$FIXTURE" start "$dir/b" --data "$dir/export.ldif" --smtp-port "$b_smtp" >/dev/null
  cp "$dir/a/service.pw" "$dir/b/service.pw"
  . "$dir/b/env"
  local b_uri=$SLAPD_URI b_pw; b_pw=$(cat "$ADMIN_PW_FILE")
  sed -e "s|^node = .*|node = node2|" -e "s|^hostname = .*|hostname = node2.example.com|" \
      -i "$dir/b/relaynode.conf"
  echo "cluster_secret_key_file = $dir/keys/node1.key" >>"$dir/a/relaynode.conf"
  echo "cluster_secret_key_file = $dir/keys/node2.key" >>"$dir/b/relaynode.conf"
  replicate "$dir/a" 1 "$b_uri" "$b_pw"
  replicate "$dir/b" 2 "$a_uri" "$a_pw"
  local i
  for i in $(seq 1 100); do
    [ -n "$(csn "$dir/a")" ] && [ "$(csn "$dir/a")" = "$(csn "$dir/b")" ] && break
    sleep 0.1
  done
  [ "$(csn "$dir/a")" = "$(csn "$dir/b")" ] || die "the two servers did not converge"
  cat >"$dir/env" <<ENV
SITE_A_DIR='$dir/a'
SITE_B_DIR='$dir/b'
SITE_A_URI='$a_uri'
SITE_B_URI='$b_uri'
NODE1_CONF='$dir/a/relaynode.conf'
NODE2_CONF='$dir/b/relaynode.conf'
NODE2_SMTP_PORT='$b_smtp'
NODE1_BUS='tcp://127.0.0.1:$bus1'
NODE2_BUS='tcp://127.0.0.1:$bus2'
ENV
  cat "$dir/env"
}

cmd_stop() {
  local dir=$1
  "$FIXTURE" stop "$dir/b" >/dev/null 2>&1 || true
  "$FIXTURE" stop "$dir/a" >/dev/null 2>&1 || true
}

case "${1:-}" in
  start) [ $# -eq 2 ] || die "usage: multisite.sh start DIR"; cmd_start "$2" ;;
  stop)  [ $# -eq 2 ] || die "usage: multisite.sh stop DIR"; cmd_stop "$2" ;;
  csn)   csn "$2" ;;
  *) die "usage: multisite.sh start|stop DIR" ;;
esac
