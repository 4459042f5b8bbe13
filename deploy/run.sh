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

# The documented ports when free, else free ones (distinct; see deploy/slapd/freeport.py).
read -r LDAP_PORT SMTP SUB < <(/usr/bin/python3 "$ROOT/deploy/slapd/freeport.py" 3389 2525 2587)

cleanup() {
  trap - EXIT INT TERM
  # -- node: stop the relaynode started below here, by its pid (node engineer) ---------
  if [ -n "${NODE_PID:-}" ] && kill -0 "$NODE_PID" 2>/dev/null; then
    kill -TERM "$NODE_PID" 2>/dev/null || true      # drain, then exit
    wait "$NODE_PID" 2>/dev/null || true
    echo "run: relaynode stopped"
  fi
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
# The node runs in the background, attached (--foreground: no double fork, so its pid is
# ours to stop); it logs to $RUN/relaynode.log (the conf's log key), and its stdout/stderr
# (sanitizer reports) go to $RUN/relaynode.out.
NODE_PID=
if [ -x "$B/relaynode" ]; then
  "$B/relaynode" -c "$RUN/relaynode.conf" --foreground >>"$RUN/relaynode.out" 2>&1 &
  NODE_PID=$!
  up=
  for _ in $(seq 1 150); do           # the first snapshot load opens the listeners
    if ! kill -0 "$NODE_PID" 2>/dev/null; then
      echo "run: relaynode exited at startup; see $RUN/relaynode.log and $RUN/relaynode.out"
      NODE_PID=; break
    fi
    if (exec 3<>"/dev/tcp/127.0.0.1/$SMTP_PORT") 2>/dev/null; then up=1; break; fi
    sleep 0.1
  done
  if [ -n "$up" ]; then
    cat <<TXT

Node: $BR/relaynode pid $NODE_PID, log $RUN/relaynode.log
  swaks --server 127.0.0.1:$SMTP_PORT --from someone@outside.example --to alice@example.com
  swaks --server 127.0.0.1:$SMTP_PORT --local-interface 127.0.2.55 --from app@example.com --to someone@outside.example
  swaks --server 127.0.0.1:$SMTP_PORT --from app@example.com --to someone@outside.example   (refused: no relay right)
  swaks --server 127.0.0.1:$SUBMISSION_PORT --tls --tls-ca-path $RUN/tls/ca.pem --auth PLAIN --auth-user alice --auth-password alice-Relay-2026 --from alice@example.com --to someone@outside.example
  swaks --server 127.0.0.1:$SUBMISSION_PORT --tls --auth PLAIN --auth-user bob --auth-password bob-Relay-2026 --from alice@example.com --to x@outside.example   (refused: bob may not send as alice)
  kill -HUP $NODE_PID      # reload now (after an ldapmodify); the node also reloads every 60 s
  $BR/relaynode -c run/relaynode.conf --check        # what the node runs with
  $BR/relaynode -c run/relaynode.conf --list-spool   # accepted messages
TXT
  elif [ -n "$NODE_PID" ]; then
    echo "run: relaynode (pid $NODE_PID) is not listening yet; see $RUN/relaynode.log"
  fi
else
  echo "  (no $BR/relaynode yet: it is built once node/main.c and its modules are in the tree)"
fi
# -- end of node section -----------------------------------------------------------------

echo
echo "slapd pid $SLAPD_PID; Ctrl-C to stop."
while [ -d "/proc/$SLAPD_PID" ] && [ "$(awk '/^State:/ {print $2}' "/proc/$SLAPD_PID/status" 2>/dev/null)" != Z ]; do
  sleep 1
done
echo "run: slapd exited on its own (see $RUN/slapd.log)"
exit 1
