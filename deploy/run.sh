#!/usr/bin/env bash
# `make run`: a local Relaynode cluster. Starts the example organisation's slapd in ./run/
# and NODES relay nodes (default 3) on the cluster bus (deploy/cluster/cluster.py), on
# documented loopback ports, prints how to reach them and what to try, and stays in the
# foreground until Ctrl-C; every node and slapd are stopped (by pid) on any exit.
#
#   deploy/run.sh [BUILD_DIR]        (BUILD_DIR defaults to build; NODES=1..10 in the env)
#
# Ports: LDAP 3389 (ldap://127.0.0.1:3389/), node1's SMTP 2525 (connectors "Default node1"
# and "CRM Application"), submission 2587 ("Client node1"); node2.. get free ports, printed.
# A busy documented port is replaced by a free one and the replacement is printed.
# Everything lives in ./run/ (rebuilt on each start).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
B=${1:-build}
case "$B" in /*) ;; *) B="$ROOT/$B" ;; esac
RUN=${RUN_DIR:-$ROOT/run}        # RUN_DIR: elsewhere (tests/integration/test_make_run.py)
NODES=${NODES:-3}
case "$NODES" in [1-9]|10) ;; *) echo "run: NODES must be 1..10" >&2; exit 2 ;; esac
[ -x "$B/relaynode" ] && [ -x "$B/relayctl" ] || { echo "run: build first (make)" >&2; exit 2; }

# The documented ports when free, else free ones (distinct; see deploy/slapd/freeport.py).
read -r LDAP_PORT SMTP SUB < <(/usr/bin/python3 "$ROOT/deploy/slapd/freeport.py" 3389 2525 2587)

PIDS=()
cleanup() {
  trap - EXIT INT TERM
  local p
  for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done   # drain, then exit
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  [ ${#PIDS[@]} -gt 0 ] && echo "run: ${#PIDS[@]} relaynode(s) stopped"
  /usr/bin/python3 "$ROOT/deploy/cluster/cluster.py" stop "$RUN" || true
  echo "run: slapd stopped"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

rm -rf "$RUN"
/usr/bin/python3 "$ROOT/deploy/cluster/cluster.py" setup "$RUN" --nodes "$NODES" --build "$B" \
  --port "$LDAP_PORT" --smtp-port "$SMTP" --submission-port "$SUB" >/dev/null
# shellcheck disable=SC1091
. "$RUN/env"
# shellcheck disable=SC1091
. "$RUN/cluster.env"

for p in 3389:"$SLAPD_PORT" 2525:"$SMTP_PORT" 2587:"$SUBMISSION_PORT"; do
  [ "${p%%:*}" = "${p##*:}" ] || echo "run: port ${p%%:*} is busy, using ${p##*:} instead"
done

# Run as root (a container, a test box) the nodes keep root: they set no `user`.
ALLOW_ROOT=
[ "$(id -u)" -eq 0 ] && ALLOW_ROOT=--allow-root
# Each node runs in the background, attached (--foreground: no double fork, so its pid is
# ours to stop); it logs to its conf's log file, and stdout/stderr (sanitizer reports) go to
# relaynode.out beside it.
for k in $(seq 1 "$NODES"); do
  conf_var=NODE${k}_CONF; conf=${!conf_var}
  "$B/relaynode" -c "$conf" --foreground $ALLOW_ROOT >>"$(dirname "$conf")/relaynode.out" 2>&1 &
  PIDS+=($!)
done
for k in $(seq 1 "$NODES"); do
  port_var=NODE${k}_SMTP_PORT; port=${!port_var}; pid=${PIDS[$((k - 1))]}
  up=
  for _ in $(seq 1 150); do           # the first snapshot load opens the listeners
    kill -0 "$pid" 2>/dev/null || { echo "run: node$k exited at startup; see its log" >&2; exit 1; }
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then up=1; break; fi
    sleep 0.1
  done
  [ -n "$up" ] || { echo "run: node$k is not listening on $port; see its log" >&2; exit 1; }
done

BR=${B#"$ROOT"/}      # build dir as typed from the repository root
RR=${RUN#"$ROOT"/}     # the run dir as typed from the repository root
RC="--config $RR/relayctl.conf"
cat <<TXT

Relaynode playground: the example organisation of the seed article, $NODES node(s) on one bus
  directory   $SLAPD_URI   (and $SLAPD_LDAPI)
  admin       -D '$ADMIN_DN' -y $ADMIN_PW_FILE
  service     -D '$SERVICE_DN' -y $SERVICE_PW_FILE
  users       alice, bob, carol (passwords in deploy/example/passwords.txt, test-only)
TXT
for k in $(seq 1 "$NODES"); do
  conf_var=NODE${k}_CONF; port_var=NODE${k}_SMTP_PORT; bus_var=NODE${k}_BUS
  printf '  node%-2s SMTP %-5s  bus %-22s pid %-7s conf %s\n' "$k" "${!port_var}" "${!bus_var}" \
    "${PIDS[$((k - 1))]}" "${!conf_var#"$ROOT"/}"
done
cat <<TXT
  node1 also has submission on $SUBMISSION_PORT (Client node1, STARTTLS + AUTH)

Try (every node enforces a change within milliseconds, no reload needed):
  $BR/relayctl cluster status $RC
  swaks --server 127.0.0.1:$SMTP_PORT --local-interface 127.0.2.55 --from app@example.com --to someone@outside.example
  swaks --server 127.0.0.1:$SMTP_PORT --from app@example.com --to someone@outside.example   (refused: no relay right)
  ldapmodify -x -H $SLAPD_URI -D '$ADMIN_DN' -y $ADMIN_PW_FILE -f deploy/example/option2.ldif
  $BR/relayctl explain $RC --local 127.0.0.1:$SMTP_PORT --remote 192.168.2.55 --from app@example.com --to someone@outside.example
  $BR/relayctl permission get "CRM Application" $RC
  swaks --server 127.0.0.1:$SUBMISSION_PORT --tls --tls-ca-path $RUN/tls/ca.pem --auth PLAIN --auth-user alice --auth-password alice-Relay-2026 --from alice@example.com --to someone@outside.example
  swaks --server 127.0.0.1:$SUBMISSION_PORT --tls --auth PLAIN --auth-user bob --auth-password bob-Relay-2026 --from alice@example.com --to x@outside.example   (refused: bob may not send as alice)
  $BR/relaynode -c $RR/relaynode.conf --check        # what node1 runs with
  $BR/relaynode -c $RR/relaynode.conf --list-spool   # accepted messages
Logs: $RR/relaynode.log (node1), $RR/node2/relaynode.log, ...; grep 'cluster ' for the bus.

Ctrl-C to stop.
TXT
while [ -d "/proc/$SLAPD_PID" ] && [ "$(awk '/^State:/ {print $2}' "/proc/$SLAPD_PID/status" 2>/dev/null)" != Z ]; do
  for p in "${PIDS[@]}"; do
    kill -0 "$p" 2>/dev/null || { echo "run: relaynode pid $p exited; see its log" >&2; exit 1; }
  done
  sleep 1
done
echo "run: slapd exited on its own (see $RUN/slapd.log)"
exit 1
