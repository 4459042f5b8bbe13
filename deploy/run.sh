#!/usr/bin/env bash
# `make run`: a local Relaynode playground. Starts the example organisation's slapd in ./run/
# (deploy/slapd/fixture.sh) on fixed, documented ports, prints how to reach it and what to
# try, and stays in the foreground until Ctrl-C; slapd is stopped on any exit.
#
#   deploy/run.sh [BUILD_DIR]        (BUILD_DIR defaults to build)
#
# Ports: LDAP 3389 (ldap://127.0.0.1:3389/), SMTP 2525 (connectors "Default node1" and
# "CRM Application"), submission 2587 ("Client node1"). A busy port is replaced by a free
# one and the replacement is printed. Everything lives in ./run/ (rebuilt on each start).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
B=${1:-build}
case "$B" in /*) ;; *) B="$ROOT/$B" ;; esac
RUN="$ROOT/run"
FIXTURE="$ROOT/deploy/slapd/fixture.sh"

# The port itself if nothing listens on it, else one the kernel picks.
port_or_free() {
  /usr/bin/python3 - "$1" <<'PY'
import socket, sys
want = int(sys.argv[1])
s = socket.socket()
try:
    s.bind(("0.0.0.0", want))
except OSError:
    s.close(); s = socket.socket(); s.bind(("0.0.0.0", 0))
print(s.getsockname()[1])
PY
}

LDAP_PORT=$(port_or_free 3389)
SMTP=$(port_or_free 2525)
SUB=$(port_or_free 2587)
[ "$SUB" != "$SMTP" ] || SUB=$(port_or_free 0)

cleanup() {
  trap - EXIT INT TERM
  # -- node: stop the relaynode started below here, by its pid (node engineer) ---------
  "$FIXTURE" stop "$RUN" || true
  echo "run: slapd stopped"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

"$FIXTURE" start "$RUN" --port "$LDAP_PORT" --smtp-port "$SMTP" --submission-port "$SUB"
# shellcheck disable=SC1091
. "$RUN/env"

for p in 3389:"$SLAPD_PORT" 2525:"$SMTP_PORT" 2587:"$SUBMISSION_PORT"; do
  [ "${p%%:*}" = "${p##*:}" ] || echo "run: port ${p%%:*} is busy, using ${p##*:} instead"
done

BR=${B#"$ROOT"/}      # build dir as typed from the repository root
cat <<TXT

Relaynode playground (example organisation of the seed article)
  directory   $SLAPD_URI   (and $SLAPD_LDAPI)
  admin       -D '$ADMIN_DN' -y $ADMIN_PW_FILE
  service     -D '$SERVICE_DN' -y $SERVICE_PW_FILE
  node conf   $RUN/relaynode.conf
  SMTP        $SMTP_PORT (Default node1, CRM Application)   submission $SUBMISSION_PORT (Client node1)
  users       alice, bob, carol (passwords in deploy/example/passwords.txt, test-only)

Environment (also in $RUN/env):
$(sed 's/^/  /' "$RUN/env")

Try:
  $BR/relayctl explain --config run/relaynode.conf --local 127.0.0.1:$SMTP_PORT --remote 192.168.2.60 --from app@example.com --to someone@outside.example
  $BR/relayctl explain --config run/relaynode.conf --local 127.0.0.1:$SMTP_PORT --remote 192.168.2.55 --from app@example.com --to someone@outside.example
  $BR/relayctl explain --config run/relaynode.conf --local 127.0.0.1:$SMTP_PORT --remote 192.168.2.60 --from someone@outside.example --to alice@example.com
  ldapmodify -x -H $SLAPD_URI -D '$ADMIN_DN' -y $ADMIN_PW_FILE -f deploy/example/option2.ldif
  ldapsearch -x -LLL -H $SLAPD_URI -D '$SERVICE_DN' -y $SERVICE_PW_FILE -b '$RELAY_BASE' '(cn=CRM Application)'
TXT

# -- node: start build/relaynode here (node engineer) -----------------------------------
# When $B/relaynode exists, this is where it is started in the background with
#   $B/relaynode -c $RUN/relaynode.conf --foreground
# its pid kept for cleanup() above, and swaks lines printed for ports $SMTP_PORT/$SUBMISSION_PORT.
if [ -x "$B/relaynode" ]; then
  echo "  (start the node yourself for now: $BR/relaynode -c run/relaynode.conf --foreground)"
fi
# -- end of node section -----------------------------------------------------------------

echo
echo "slapd pid $SLAPD_PID; Ctrl-C to stop."
while [ -d "/proc/$SLAPD_PID" ] && [ "$(awk '/^State:/ {print $2}' "/proc/$SLAPD_PID/status" 2>/dev/null)" != Z ]; do
  sleep 1
done
echo "run: slapd exited on its own (see $RUN/slapd.log)"
exit 1
