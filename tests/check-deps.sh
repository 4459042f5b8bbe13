#!/usr/bin/env bash
# Include direction (docs/architecture.md, "Layers"). Every folder is a layer; a file may
# include headers of its own layer or of a lower one, never of a higher one. tools/ sits
# beside the daemon but may use only the directory side, node/common, node/spool and
# node/cluster (the bus client), never the SMTP session, delivery or the daemon.
# External libraries are confined: <ldap.h> to directory/ldap/, <zmq.h> to node/cluster/,
# and each other library's header to exactly one file. The pure core (directory/ and
# directory/base/) includes no libldap, ZeroMQ, OpenSSL or libevent.
set -u
cd "$(dirname "$0")/.."
rc=0
fail() { echo "check-deps: $*"; rc=1; }

# folder -> rank (lower ranks may be included by higher ones)
declare -A RANK=(
  [directory/base]=0 [directory]=1 [directory/ldap]=2
  [node/common]=3 [node/metrics]=4 [node/spool]=5 [node/cluster]=6 [node/delivery]=7
  [node/milter]=8 [node/smtp]=9 [node]=10 [tools]=11
)
declare -A TOOLS_OK=([directory/base]=1 [directory]=1 [directory/ldap]=1 [node/common]=1
                     [node/metrics]=1 [node/spool]=1 [node/cluster]=1 [tools]=1)

for f in $(git ls-files 'directory/*.[ch]' 'node/*.[ch]' 'tools/*.[ch]'); do
  from=$(dirname "$f")
  [ -n "${RANK[$from]+x}" ] || { fail "$f: folder $from has no layer in tests/check-deps.sh"; continue; }
  while read -r inc; do
    to=$(dirname "$inc")
    [ -e "$inc" ] || { fail "$f includes $inc, which does not exist"; continue; }
    [ -n "${RANK[$to]+x}" ] || { fail "$f includes $inc from unknown layer $to"; continue; }
    if [ "$from" = tools ]; then
      [ -n "${TOOLS_OK[$to]+x}" ] || fail "$f (tools) includes $inc (session, delivery or daemon code)"
    elif [ "${RANK[$to]}" -gt "${RANK[$from]}" ]; then
      fail "$f ($from) includes $inc from the higher layer $to"
    fi
  done < <(sed -n 's/^#include "\([^"]*\)".*/\1/p' "$f")
done

# External headers.
confined() {  # HEADER-PATTERN ALLOWED-FOLDER
  local bad
  bad=$(grep -rl "#include $1" directory node tools 2>/dev/null | grep -v "^$2/[^/]*$")
  [ -z "$bad" ] || fail "$1 outside $2/: $(echo $bad)"
}
confined '<ldap.h>' directory/ldap
confined '<lber.h>' directory/ldap
confined '<zmq.h>' node/cluster
for h in '<sasl/sasl.h>' '<ares.h>' '<krb5.h>' '<openssl/' '<event2/bufferevent_ssl.h>'; do
  n=$(grep -rl "#include $h" directory node tools 2>/dev/null | wc -l)
  [ "$n" -le 1 ] || fail "$h included from $n files: $(grep -rl "#include $h" directory node tools | tr '\n' ' ')"
done
core=$(ls directory/*.[ch] directory/base/*.[ch])
bad=$(grep -l '#include <\(ldap\|lber\|zmq\|event2/\|openssl/\|sasl/\)' $core 2>/dev/null)
[ -z "$bad" ] || fail "the pure core includes an I/O library: $(echo $bad)"

[ $rc -eq 0 ] && echo "check-deps: ok"
exit $rc
