#!/usr/bin/env bash
# Throughput of relaynode against Postfix, OpenSMTPD and Exim in the same run (issues #5, #17).
# A benchmark, never a test: it prints figures and ratios and asserts nothing on them.
#
#   tests/bench/smtp_bench.sh [BUILD_DIR]      (default build/, the -O2 tree; `make bench`)
#
#   BENCH_N=200            messages per run at every size and concurrency (default: at 2 KB,
#                          2000 at 1 client and 5000 at more; 1000 at 100 KB; 100 at 1 MB);
#                          small values make a quick CI-sized run
#   BENCH_CLIENTS="1 10 50"  concurrency levels (smtp-source -s)
#   BENCH_SIZES="2048 100000 1000000"  message sizes in bytes (smtp-source -l): 2 KB, 100 KB
#                          and 1 MB. Large messages are where delivery waits showed (issue 18:
#                          100 KB delivered at exactly 50/s, a queue tick and Nagle's delay)
#   BENCH_DRAIN_TIMEOUT=180  seconds to wait for a relay's queue to empty after the load
#   BENCH_PEERS="postfix opensmtpd exim"  the peers run against relaynode (Postfix always
#                          runs: its smtp-source and smtp-sink are the load and the sink)
#   BENCH_SLOW_N=200       at most this many messages per run for OpenSMTPD and Exim: with
#                          one message per session they make 4-20 a second here (Exim waits
#                          200 ms after QUIT, OpenSMTPD delivers slowly), so the default
#                          counts would take over an hour; rates are per second either way
#                          and the table prints each run's count
#
# Load and sink: Postfix's smtp-source sends N messages of each size (-l) from
# a@outside.example to alice@example.com; every relay hands them to one smtp-sink on loopback.
# Durability is each one's default, and the same: relaynode commits with fsync (group commit,
# node/spool/committer.h) before its 250; Postfix fsyncs its queue files before its 250 (its
# default, kept); Exim fsyncs its spool files before its 250 (its default, kept). OpenSMTPD's
# default does not fsync at all (tests/bench/peers.sh): it runs with it, and is flagged so.
#   acknowledged/s = messages acknowledged (smtp-source's DATA counter) / smtp-source's wall time
#   delivered/s    = messages that reached the sink / time from the first message sent until
#                    the relay's queue is empty again (relaynode: spool queue/; Postfix:
#                    incoming, active, deferred, hold, maildrop; OpenSMTPD: incoming, queue;
#                    Exim: input/*-H), all measured in this run
# A relay that delivers nothing within the timeout gets "n/a (no delivery)". For each
# size and concurrency the relays run back to back, so each ratio compares the same
# conditions. relaynode is restarted for each run so its committer statistics (logged at
# stop) are per size and concurrency.
#
# Postfix (Debian's package, installed non-interactively if missing; needs root) runs as a
# private instance: config and queue directories under a temp dir, started and stopped with
# `postfix -c DIR`; the system's Postfix instance is never touched. slapd is the throwaway
# fixture (deploy/slapd/fixture.sh). Everything started here is stopped by pid on exit,
# failure or Ctrl-C, and the temp dir removed. OpenSMTPD and Exim are Debian's binaries
# unpacked under BUILD_DIR/bench-peers (their packages conflict with postfix's), each run as
# a private instance in its own mount namespace: see tests/bench/peers.sh.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
B=${1:-build}
case "$B" in /*) ;; *) B="$ROOT/$B" ;; esac
CLIENTS=${BENCH_CLIENTS:-"1 10 50"}
SIZES=${BENCH_SIZES:-"2048 100000 1000000"}
DRAIN_TIMEOUT=${BENCH_DRAIN_TIMEOUT:-180}
SLOW_N=${BENCH_SLOW_N:-200}
POSTFIX=/usr/sbin/postfix
FROM=a@outside.example
RCPT=alice@example.com

PEERS=${BENCH_PEERS:-"postfix opensmtpd exim"}
case " $PEERS " in *" postfix "*) ;; *) PEERS="postfix $PEERS" ;; esac
for p in $PEERS; do
  case "$p" in postfix|opensmtpd|exim) ;; *) echo "smtp_bench: unknown peer '$p' in BENCH_PEERS" >&2; exit 2 ;; esac
done
RELAYS="relaynode $PEERS"
W='' PF='' NODE_PID='' PF_STARTED=''

say() { echo "smtp_bench: $*" >&2; }
die() { say "$*"; exit 1; }
now() { date +%s.%N; }
# Messages per run at concurrency $1 and size $2 (bytes): about 100 MB per run above 2 KB.
n_for() {
  if [ -n "${BENCH_N:-}" ]; then echo "$BENCH_N"
  elif [ "$2" -gt 2048 ]; then
    local n=$((100000000 / $2))
    [ "$n" -gt 1000 ] && n=1000
    [ "$n" -lt 20 ] && n=20
    echo "$n"
  elif [ "$1" -le 1 ]; then echo 2000
  else echo 5000; fi
}
# A size in bytes as people say it: 2048 -> "2 KB", 100000 -> "100 KB", 1000000 -> "1 MB".
size_label() {
  case "$1" in
    2048) echo "2 KB" ;;
    *000000) echo "$(($1 / 1000000)) MB" ;;
    *000) echo "$(($1 / 1000)) KB" ;;
    *) echo "$1 B" ;;
  esac
}

# smtp-source, smtp-sink, the routed fixture, stop_pid and wait_gone (shared with
# syscall_profile.sh).
# shellcheck source=tests/bench/sink.sh
. "$ROOT/tests/bench/sink.sh"

# OpenSMTPD and Exim: install, start and stop (uses say, die, stop_pid above).
# shellcheck source=tests/bench/peers.sh
. "$ROOT/tests/bench/peers.sh"

postfix_master_pid() {
  [ -n "$PF" ] && [ -r "$PF/queue/pid/master.pid" ] && tr -dc 0-9 <"$PF/queue/pid/master.pid"
}

cleanup() {
  trap - EXIT INT TERM
  stop_pid "$SRC_PID" 20
  stop_pid "$NODE_PID" 300               # relaynode drains on TERM, then exits
  opensmtpd_stop
  exim_stop
  stop_pid "$SINK_PID" 20
  if [ -n "$PF_STARTED" ]; then
    local mpid; mpid=$(postfix_master_pid)
    "$POSTFIX" -c "$PF/etc" stop >/dev/null 2>&1
    if [ -n "$mpid" ] && ! wait_gone "$mpid" 100; then
      "$POSTFIX" -c "$PF/etc" abort >/dev/null 2>&1
      wait_gone "$mpid" 50 || kill -KILL "$mpid" 2>/dev/null
    fi
  fi
  bench_fixture_stop
  [ -n "$W" ] && rm -rf "$W"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# -- prerequisites ---------------------------------------------------------------------
[ -x "$B/relaynode" ] || die "no $B/relaynode (run make first)"
if [ "$(id -u)" -ne 0 ]; then
  echo "smtp_bench: skipped (a private Postfix instance needs root)"
  exit 0
fi
postfix_tools_ensure
[ -x "$POSTFIX" ] || die "no $POSTFIX after installing postfix"
PF_VERSION=$(postconf -d -h mail_version 2>/dev/null || echo unknown)

W=$(mktemp -d /tmp/smtp_bench.XXXXXX) || die "mktemp failed"
chmod 755 "$W"                  # Postfix's daemons (user postfix) must reach their directories
read -r sink_port PF_PORT OS_PORT EXIM_PORT < <(/usr/bin/python3 "$ROOT/deploy/slapd/freeport.py" 0 0 0 0)
[ -n "$EXIM_PORT" ] || die "no free ports"
case " $PEERS " in *" opensmtpd "*|*" exim "*) peers_install ;; esac

# -- the sink (tests/bench/sink.sh) ---------------------------------------------------
sink_start "$sink_port"

# -- Postfix, private instance ---------------------------------------------------------
PF=$W/pf
mkdir -p "$PF/etc" "$PF/queue" "$PF/data"
chown postfix "$PF/data"
compat=2
case "$PF_VERSION" in 3.[6-9]*|3.[1-9][0-9]*|[4-9].*) compat=3.6 ;; esac
# Only what a relay for 127.0.0.0/8 needs; everything else (fsync of queue files included)
# keeps Postfix's defaults. No chroot: the queue directory holds no copy of /etc.
cat >"$PF/etc/main.cf" <<EOF
compatibility_level = $compat
queue_directory = $PF/queue
data_directory = $PF/data
maillog_file = $PF/maillog
maillog_file_prefixes = $PF
syslog_name = postfix-bench
myhostname = postfix.bench.invalid
mydestination =
alias_maps =
alias_database =
local_recipient_maps =
biff = no
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
relayhost = [127.0.0.1]:$SINK
smtp_dns_support_level = disabled
smtp_host_lookup = native
default_process_limit = 100
smtpd_client_connection_count_limit = 1000
smtpd_client_connection_rate_limit = 0
EOF
cat >"$PF/etc/master.cf" <<EOF
# service type  private unpriv  chroot  wakeup  maxproc command
127.0.0.1:$PF_PORT inet n -     n       -       -       smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
local     unix  -       n       n       -       -       local
virtual   unix  -       n       n       -       -       virtual
lmtp      unix  -       -       n       -       -       lmtp
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
EOF
"$POSTFIX" -c "$PF/etc" check >"$W/pfcheck.out" 2>&1 \
  || die "postfix -c $PF/etc check failed: $(cat "$W/pfcheck.out")"
PF_STARTED=1
"$POSTFIX" -c "$PF/etc" start >>"$W/pfcheck.out" 2>&1 \
  || die "postfix did not start: $(cat "$W/pfcheck.out"; tail -n 5 "$PF/maillog" 2>/dev/null)"
for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$PF_PORT") 2>/dev/null && break; sleep 0.1; done
case " $PEERS " in *" opensmtpd "*) opensmtpd_start ;; esac
case " $PEERS " in *" exim "*) exim_start ;; esac

# -- slapd and relaynode ---------------------------------------------------------------
bench_fixture_start            # everything to the sink, per-source caps lifted
SPOOLQ="$W/dir/spool/queue"
NODE_LOG="$W/dir/relaynode.log"

# Run as root the node keeps root (its conf sets no `user`).
ALLOW_ROOT=
[ "$(id -u)" -eq 0 ] && ALLOW_ROOT=--allow-root

node_start() {
  NODE_STATS_SEEN=$(grep -c ' commit-stats ' "$NODE_LOG" 2>/dev/null)
  "$B/relaynode" -c "$W/dir/relaynode.conf" --foreground $ALLOW_ROOT >>"$W/node.out" 2>&1 &
  NODE_PID=$!
  for _ in $(seq 1 150); do
    kill -0 "$NODE_PID" 2>/dev/null || die "relaynode exited at startup: $(tail -n 5 "$W/node.out" "$NODE_LOG" 2>/dev/null)"
    (exec 3<>"/dev/tcp/127.0.0.1/$SMTP_PORT") 2>/dev/null && return 0
    sleep 0.1
  done
  die "relaynode is not listening on $SMTP_PORT"
}
# Stop the node; NODE_STATS = its committer statistics "batches messages" if it logged them;
# NODE_LOOP = the worst event-loop latency of the run in ms (its loop-stats line at exit).
node_stop() {
  stop_pid "$NODE_PID" 300
  NODE_PID=''
  NODE_STATS=''
  NODE_LOOP=$(grep ' loop-stats ' "$NODE_LOG" 2>/dev/null | tail -n 1 \
    | sed -n 's/.*max_ms=\([0-9.]*\).*/\1/p')
  [ "$(grep -c ' commit-stats ' "$NODE_LOG" 2>/dev/null)" -gt "${NODE_STATS_SEEN:-0}" ] || return 0
  NODE_STATS=$(grep ' commit-stats ' "$NODE_LOG" | tail -n 1 \
    | sed -n 's/.*batches=\([0-9]*\) messages=\([0-9]*\).*/\1 \2/p')
}

# Files in a relay's queue (QN, set without forking: this runs every 50 ms while draining).
shopt -s nullglob
queue_count() {
  local f files
  case "$1" in
    relaynode) files=("$SPOOLQ"/*) ;;
    postfix) files=("$PF"/queue/{incoming,active,hold,maildrop}/* "$PF"/queue/deferred/*/*) ;;
    # One directory a message: incoming/<msgid> while received, queue/<bucket>/<msgid> after.
    opensmtpd) files=("$OS"/spool/smtpd/incoming/* "$OS"/spool/smtpd/queue/*/*) ;;
    exim) files=("$EX"/spool/input/*-H) ;;
  esac
  QN=0
  for f in "${files[@]}"; do [ -e "$f" ] && QN=$((QN + 1)); done
}

# One run: relay $1, $2 clients, $3 messages of $4 bytes. Sets ACKED, ACK_S, DLV, DLV_S, NOTE.
run_load() {
  local relay=$1 c=$2 n=$3 size=$4 port=$SMTP_PORT s0 t0 t1 t2 end s limit=$DRAIN_TIMEOUT
  case "$relay" in postfix) port=$PF_PORT ;; opensmtpd) port=$OS_PORT ;; exim) port=$EXIM_PORT ;; esac
  NOTE=
  queue_count "$relay"
  [ "$QN" -eq 0 ] || NOTE=" $QN left in the queue before the run;"
  s0=$(sink_count)
  t0=$(now)
  source_run "$port" "$c" "$n" "$size" "$FROM" "$RCPT"
  t1=$(now)
  [ "$SRC_RC" -eq 0 ] || NOTE="$NOTE smtp-source exit $SRC_RC: $(head -c 160 "$W/source.err" | tr '\n' ' ');"
  ACK_S=$(echo "$ACKED / ($t1 - $t0)" | bc -l)
  # A relay that did not deliver the sanity message gets a short wait, not the full timeout.
  [ -n "${NODELIVERY[$relay]:-}" ] && limit=5
  end=$(( $(date +%s) + limit ))
  while :; do
    queue_count "$relay"
    if [ "$QN" -eq 0 ]; then s=$(sink_count); [ $((s - s0)) -ge "$ACKED" ] && break; fi
    [ "$(date +%s)" -lt "$end" ] || break
    sleep 0.05
  done
  t2=$(now)
  DLV=$(( $(sink_count) - s0 ))
  queue_count "$relay"
  [ "$QN" -eq 0 ] || NOTE="$NOTE $QN still queued after ${limit}s;"
  if [ "$DLV" -le 0 ]; then DLV_S="n/a (no delivery)"
  else DLV_S=$(printf '%.0f' "$(echo "$DLV / ($t2 - $t0)" | bc -l)"); fi
}

# Sanity: one message through each relay reaches the sink (also starts Postfix's daemons).
declare -A NODELIVERY
node_start
saved_timeout=$DRAIN_TIMEOUT; DRAIN_TIMEOUT=30
for relay in $RELAYS; do
  run_load "$relay" 1 1 2048
  [ "$ACKED" -ge 1 ] || die "$relay did not accept a message:$NOTE"
  if [ "$DLV" -lt 1 ]; then
    NODELIVERY[$relay]=1
    say "$relay delivered nothing to the sink within 30 s: its delivered/s will be n/a"
  fi
done
DRAIN_TIMEOUT=$saved_timeout
node_stop

declare -A NN ACKN ACK DN DLVS NOTES STATS LOOP
for sz in $SIZES; do
  for c in $CLIENTS; do
    n=$(n_for "$c" "$sz")
    for relay in $RELAYS; do
      [ "$relay" = relaynode ] && node_start
      rn=$n
      case "$relay" in opensmtpd|exim) [ "$rn" -gt "$SLOW_N" ] && rn=$SLOW_N ;; esac
      run_load "$relay" "$c" "$rn" "$sz"
      k=$relay,$sz,$c
      NN[$k]=$rn ACKN[$k]=$ACKED ACK[$k]=$ACK_S DN[$k]=$DLV DLVS[$k]=$DLV_S NOTES[$k]=$NOTE
      if [ "$relay" = relaynode ]; then
        node_stop; STATS[$sz,$c]=$NODE_STATS; LOOP[$sz,$c]=$NODE_LOOP
      fi
    done
  done
done

# -- report ----------------------------------------------------------------------------
fs=$(findmnt -n -o FSTYPE,OPTIONS -T "$W" 2>/dev/null | awk '{print $1 " (" $2 ")"}')
[ -n "$fs" ] || fs=$(df -T "$W" | awk 'NR==2 {print $2}')
cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
labels=; for sz in $SIZES; do labels="$labels${labels:+, }$(size_label "$sz")"; done
vers="Postfix $PF_VERSION"
case " $PEERS " in *" opensmtpd "*) vers="$vers, OpenSMTPD $OS_VERSION" ;; esac
case " $PEERS " in *" exim "*) vers="$vers, Exim $EXIM_VERSION" ;; esac
echo "# smtp_bench: relaynode vs $vers, messages of $labels, one smtp-sink"
echo "# fsync before 250: relaynode, Postfix and Exim (their defaults)"
case " $PEERS " in *" opensmtpd "*) echo "# OpenSMTPD's default never fsyncs its queue: its 250 is not durable (not like for like)" ;; esac
echo "# $(date -u '+%Y-%m-%dT%H:%M:%SZ'), load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "# machine: $(nproc) cpu(s)${cpu:+ ($cpu)}, kernel $(uname -r), spool fs $fs"
[ -s "$W/pfcheck.out" ] && sed 's/^/# postfix check: /' "$W/pfcheck.out" | grep -v 'starting the Postfix' | head -n 5
printf '%-10s %7s %7s %8s %8s %14s %9s %18s\n' relay size clients sent acked acknowledged/s \
  delivered delivered/s
for sz in $SIZES; do
  for c in $CLIENTS; do
    for relay in $RELAYS; do
      k=$relay,$sz,$c
      printf '%-10s %7s %7s %8s %8s %14.0f %9s %18s\n' "$relay" "$(size_label "$sz")" "$c" \
        "${NN[$k]}" "${ACKN[$k]}" "${ACK[$k]}" "${DN[$k]}" "${DLVS[$k]}"
    done
  done
done
echo "# ratios relaynode/peer (x2.00: relaynode twice the peer's messages a second)"
ratio() {   # $1/$2 as "x1.23", or n/a when either is not a number or the divisor is 0
  case "$1$2" in *n/a*) echo n/a; return ;; esac
  if [ "$(echo "$2 > 0" | bc -l)" = 1 ]; then printf 'x%.2f' "$(echo "$1 / $2" | bc -l)"; else echo n/a; fi
}
printf '%-10s %7s %7s %14s %12s\n' peer size clients acknowledged delivered
for sz in $SIZES; do
  for c in $CLIENTS; do
    for p in $PEERS; do
      printf '%-10s %7s %7s %14s %12s\n' "$p" "$(size_label "$sz")" "$c" \
        "$(ratio "${ACK[relaynode,$sz,$c]}" "${ACK[$p,$sz,$c]}")" \
        "$(ratio "${DLVS[relaynode,$sz,$c]}" "${DLVS[$p,$sz,$c]}")"
    done
  done
done
for sz in $SIZES; do
  for c in $CLIENTS; do
    for relay in $RELAYS; do
      [ -n "${NOTES[$relay,$sz,$c]}" ] &&
        echo "# note: $relay at $(size_label "$sz"), $c clients:${NOTES[$relay,$sz,$c]}"
    done
    if [ -n "${STATS[$sz,$c]}" ]; then
      read -r nb nm <<<"${STATS[$sz,$c]}"
      if [ "${nb:-0}" -gt 0 ]; then
        printf '# relaynode committer, size=%s clients=%s: %s batches for %s messages (%.1f per fsync batch)\n' \
          "$(size_label "$sz")" "$c" "$nb" "$nm" "$(echo "$nm / $nb" | bc -l)"
      fi
    fi
    [ -n "${LOOP[$sz,$c]}" ] &&
      echo "# relaynode event loop, size=$(size_label "$sz") clients=$c: worst latency ${LOOP[$sz,$c]} ms (node/common/looplat.h)"
  done
done
exit 0
