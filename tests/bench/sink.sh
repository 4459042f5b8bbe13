# The load and the sink both SMTP benchmarks share: Postfix's smtp-source sends, Postfix's
# smtp-sink receives and counts, and relaynode (with the throwaway slapd fixture) relays from
# one to the other. Sourced by tests/bench/smtp_bench.sh and tests/bench/syscall_profile.sh
# (uses their ROOT, W, say and die); not run alone. Everything started here is a child of the
# sourcing script, stopped by pid (stop_pid) in its cleanup.

SINK_BIN=/usr/sbin/smtp-sink
SOURCE_BIN=/usr/sbin/smtp-source
FIXTURE="$ROOT/deploy/slapd/fixture.sh"
SINK='' SINK_PID='' SRC_PID=''

# Wait up to $2 tenths of a second for pid $1 to be gone (a zombie counts as gone).
wait_gone() {
  local pid=$1 i
  for ((i = 0; i < $2; i++)); do
    [ -d "/proc/$pid" ] || return 0
    [ "$(awk '/^State:/ {print $2}' "/proc/$pid/status" 2>/dev/null)" = Z ] && return 0
    sleep 0.1
  done
  return 1
}

# Stop one child of this script by pid: signal $3 (default TERM), then KILL after $2 tenths
# of a second.
stop_pid() {
  local pid=$1
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 0
  kill "-${3:-TERM}" "$pid" 2>/dev/null
  wait_gone "$pid" "$2" || kill -KILL "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null
  return 0
}

# smtp-source and smtp-sink (and postfix itself) come with Debian's postfix: installed
# non-interactively when missing, with no instance configured.
postfix_tools_ensure() {
  [ -x "$SINK_BIN" ] && [ -x "$SOURCE_BIN" ] && [ -x /usr/sbin/postfix ] && return 0
  say "installing Debian's postfix for smtp-source and smtp-sink (the system instance stays unconfigured)"
  echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q postfix >/dev/null \
    || die "cannot install postfix"
  for b in "$SINK_BIN" "$SOURCE_BIN"; do [ -x "$b" ] || die "no $b after installing postfix"; done
}

# The sink on 127.0.0.1:$1: accepts and discards; -c keeps a running "mesg=N" count on its
# stdout ($W/sink.out). Sets SINK and SINK_PID.
sink_start() {
  SINK=$1
  "$SINK_BIN" -c -u postfix "127.0.0.1:$SINK" 1000 >"$W/sink.out" 2>"$W/sink.err" &
  SINK_PID=$!
  for _ in $(seq 1 50); do (exec 3<>"/dev/tcp/127.0.0.1/$SINK") 2>/dev/null && break; sleep 0.1; done
  kill -0 "$SINK_PID" 2>/dev/null || die "smtp-sink did not start: $(cat "$W/sink.err")"
}

# Messages the sink has received so far. It rewrites "sess=.. quit=.. mesg=N\r" as it goes;
# a record cut short by a concurrent write reads as a smaller number, never a larger one.
sink_count() {
  tail -c 256 "$W/sink.out" 2>/dev/null | tr '\r' '\n' | sed -n 's/.*mesg=\([0-9][0-9]*\).*/\1/p' \
    | tail -n 1 | grep . || echo 0
}

# smtp-source to 127.0.0.1:$1: $2 sessions at once (-s), $3 messages (-m) of $4 bytes (-l),
# from $5 to $6; output in $W/source.out and $W/source.err. Sets SRC_RC (its exit status) and
# ACKED (the messages it saw acknowledged: its DATA counter).
source_run() {
  timeout 900 "$SOURCE_BIN" -c -s "$2" -m "$3" -l "$4" -f "$5" -t "$6" "127.0.0.1:$1" \
    >"$W/source.out" 2>"$W/source.err" &
  SRC_PID=$!
  wait "$SRC_PID"; SRC_RC=$?
  SRC_PID=
  ACKED=$(tr '\r' '\n' <"$W/source.out" | grep -E '^[0-9]+$' | tail -n 1)
  ACKED=${ACKED:-0}
}

# The slapd fixture in $W/dir (its env sourced: SLAPD_URI, RELAY_BASE, SMTP_PORT, ...) with
# every message routed to the sink: a "*" send connector with the sink as smart host, and the
# example's "Internet" connector ("*", DNS MX, same cost) disabled so the choice is not a tie.
bench_fixture_start() {
  bash "$FIXTURE" start "$W/dir" >"$W/fixture.out" 2>&1 || die "fixture: $(tail -n 5 "$W/fixture.out")"
  # shellcheck disable=SC1091
  . "$W/dir/env"
  ldapmodify -x -H "$SLAPD_URI" -D "$ADMIN_DN" -y "$ADMIN_PW_FILE" >"$W/ldapmodify.out" 2>&1 <<EOF \
    || die "ldapmodify: $(cat "$W/ldapmodify.out")"
dn: cn=Bench sink,cn=Send Connectors,$RELAY_BASE
changetype: add
objectClass: relaySendConnector
cn: Bench sink
description: the benchmark's smtp-sink takes everything
relayEnabled: TRUE
relayAddressSpace: *
relaySmartHost: 127.0.0.1:$SINK
relayCost: 1

dn: cn=Internet,cn=Send Connectors,$RELAY_BASE
changetype: modify
replace: relayEnabled
relayEnabled: FALSE

# smtp-source opens up to 100 sessions from 127.0.0.1: lift the per-source caps (defaults
# 20 and 2 % of MaxInboundConnection); MaxInboundConnection (5000) still bounds the connector.
dn: cn=Default node1,cn=node1,cn=Default-Site,cn=Sites,$RELAY_BASE
changetype: modify
replace: relayMaxInboundConnectionPerSource
relayMaxInboundConnectionPerSource: unlimited
-
replace: relayMaxInboundConnectionPercentagePerSource
relayMaxInboundConnectionPercentagePerSource: 100
EOF
}

# Stop the fixture started by bench_fixture_start (for cleanup; quiet).
bench_fixture_stop() {
  [ -n "$W" ] && [ -d "$W/dir" ] && bash "$FIXTURE" stop "$W/dir" >/dev/null 2>&1
  return 0
}
