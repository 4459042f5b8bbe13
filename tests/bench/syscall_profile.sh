#!/usr/bin/env bash
# What one relayed message costs relaynode in system calls and context switches (issue #17).
# A benchmark, never a test: it prints figures and asserts nothing on them.
#
#   tests/bench/syscall_profile.sh [BUILD_DIR]   (default build/, the -O2 tree; `make bench`)
#
#   PROFILE_CLIENTS="1 50"   concurrency levels (smtp-source -s)
#   PROFILE_N=               messages per run (default 2000 at 1 client, 5000 at more)
#   PROFILE_SIZE=2048        message size in bytes (smtp-source -l)
#   PROFILE_PERF=0           1: also `perf record -g` each load and print the top symbols
#                            with the kernel/user split (slow; perf must be installed)
#
# One node relays to one smtp-sink under smtp-source (Postfix's tools), fsync on, as in
# tests/bench/smtp_bench.sh. For each concurrency the node is started fresh and loaded
# twice, each time until its queue is empty again (so delivery is in the figures):
#   1. untraced: acknowledged/s, delivered/s, context switches per message (the sum over the
#      node's threads of voluntary/nonvoluntary_ctxt_switches in /proc/<pid>/task/*/status,
#      before and after) and the CPU split (utime/stime of /proc/<pid>/stat, every thread);
#   2. under `strace -f -c -p <pid>`: system calls per message, and the top calls.
# strace slows the node, so its run's throughput is not reported; the counts do not depend
# on speed except where batching does (the committer's batch grows with concurrency).
#
# Before the loads a micro-benchmark times what the disk charges for durability, on the
# spool's own filesystem: 2 KB written to a new file, fsync(file), rename into a directory,
# fsync(directory) (the commit of one message at one client: node/spool/spool.h), median of
# 300. 1 / (that time) bounds the messages a second of one client that waits for each 250.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
B=${1:-build}
case "$B" in /*) ;; *) B="$ROOT/$B" ;; esac
CLIENTS=${PROFILE_CLIENTS:-"1 50"}
SIZE=${PROFILE_SIZE:-2048}
PERF=${PROFILE_PERF:-0}
W='' NODE_PID='' TRACE_PID=''

say() { echo "syscall_profile: $*" >&2; }
die() { say "$*"; exit 1; }
now() { date +%s.%N; }
n_for() { if [ -n "${PROFILE_N:-}" ]; then echo "$PROFILE_N"; elif [ "$1" -le 1 ]; then echo 2000; else echo 5000; fi; }

# smtp-source, smtp-sink and the routed fixture, as smtp_bench.sh has them.
# shellcheck source=tests/bench/sink.sh
. "$ROOT/tests/bench/sink.sh"

cleanup() {
  trap - EXIT INT TERM
  stop_pid "$TRACE_PID" 50 INT
  stop_pid "$SRC_PID" 20
  stop_pid "$NODE_PID" 300
  stop_pid "$SINK_PID" 20
  bench_fixture_stop
  [ -n "$W" ] && rm -rf "$W"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

[ -x "$B/relaynode" ] || die "no $B/relaynode (run make first)"
command -v strace >/dev/null || die "strace is not installed"
if [ "$(id -u)" -ne 0 ]; then
  echo "syscall_profile: skipped (strace -p and Postfix's tools need root)"
  exit 0
fi
postfix_tools_ensure

W=$(mktemp -d /tmp/syscall_profile.XXXXXX) || die "mktemp failed"
chmod 755 "$W"
read -r port < <(/usr/bin/python3 "$ROOT/deploy/slapd/freeport.py" 0)
sink_start "$port"
bench_fixture_start
SPOOL="$W/dir/spool"
mkdir -p "$SPOOL"

# -- what a durable commit costs on this disk ------------------------------------------
FSYNC=$(/usr/bin/python3 - "$SPOOL" <<'PY'
import os, statistics, sys, time
d = os.path.join(sys.argv[1], "fsync-probe")
os.makedirs(os.path.join(d, "q"), exist_ok=True)
qfd = os.open(os.path.join(d, "q"), os.O_RDONLY | os.O_DIRECTORY)
data = b"x" * 2048
f_only, pair = [], []
for i in range(300):
    p = os.path.join(d, "t%d" % i)
    fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.write(fd, data)
    t0 = time.perf_counter_ns(); os.fsync(fd); t1 = time.perf_counter_ns()
    os.close(fd)
    os.rename(p, os.path.join(d, "q", "m%d" % i))
    os.fsync(qfd); t2 = time.perf_counter_ns()
    f_only.append(t1 - t0); pair.append(t2 - t0)
for i in range(300):
    os.unlink(os.path.join(d, "q", "m%d" % i))
os.close(qfd); os.rmdir(os.path.join(d, "q")); os.rmdir(d)
print("%.3f %.3f" % (statistics.median(f_only) / 1e6, statistics.median(pair) / 1e6))
PY
) || die "fsync micro-benchmark failed"
read -r FSYNC_FILE FSYNC_PAIR <<<"$FSYNC"

ALLOW_ROOT=
[ "$(id -u)" -eq 0 ] && ALLOW_ROOT=--allow-root
node_start() {
  "$B/relaynode" -c "$W/dir/relaynode.conf" --foreground $ALLOW_ROOT >>"$W/node.out" 2>&1 &
  NODE_PID=$!
  for _ in $(seq 1 150); do
    kill -0 "$NODE_PID" 2>/dev/null || die "relaynode exited at startup: $(tail -n 5 "$W/node.out")"
    (exec 3<>"/dev/tcp/127.0.0.1/$SMTP_PORT") 2>/dev/null && return 0
    sleep 0.1
  done
  die "relaynode is not listening on $SMTP_PORT"
}
shopt -s nullglob
queue_empty() { local f=("$SPOOL"/queue/*); [ ${#f[@]} -eq 0 ]; }
# Context switches of every live thread of the node: "voluntary nonvoluntary".
ctx_now() {
  awk '/^voluntary_ctxt_switches/ {v += $2} /^nonvoluntary_ctxt_switches/ {n += $2}
       END {print v + 0, n + 0}' /proc/"$NODE_PID"/task/*/status 2>/dev/null
}
# utime and stime of the whole process (every thread, in clock ticks): "user system".
cpu_now() { awk '{print $14, $15}' "/proc/$NODE_PID/stat"; }

# Load: $1 clients, $2 messages; waits until the sink has them all and queue/ is empty.
# Sets ACKED, T_ACK (s until smtp-source ended), T_ALL (s until drained).
load() {
  local c=$1 n=$2 s0 t0 t1 end
  s0=$(sink_count); t0=$(now)
  source_run "$SMTP_PORT" "$c" "$n" "$SIZE" a@outside.example alice@example.com
  t1=$(now)
  end=$(( $(date +%s) + 180 ))
  while [ "$(date +%s)" -lt "$end" ]; do
    queue_empty && [ $(( $(sink_count) - s0 )) -ge "$ACKED" ] && break
    sleep 0.02
  done
  T_ACK=$(echo "$t1 - $t0" | bc -l); T_ALL=$(echo "$(now) - $t0" | bc -l)
}

declare -A R
for c in $CLIENTS; do
  n=$(n_for "$c")
  node_start
  load 1 20                                   # warm up: connections, the snapshot, caches
  [ "$ACKED" -ge 1 ] || die "relaynode accepted nothing: $(head -c 300 "$W/source.err")"
  read -r v0 nv0 < <(ctx_now); read -r u0 k0 < <(cpu_now)
  load "$c" "$n"
  read -r v1 nv1 < <(ctx_now); read -r u1 k1 < <(cpu_now)
  m=$ACKED
  R[$c,acked]=$m
  R[$c,ack_s]=$(printf '%.0f' "$(echo "$m / $T_ACK" | bc -l)")
  R[$c,all_s]=$(printf '%.0f' "$(echo "$m / $T_ALL" | bc -l)")
  R[$c,vcs]=$(printf '%.1f' "$(echo "($v1 - $v0) / $m" | bc -l)")
  R[$c,nvcs]=$(printf '%.1f' "$(echo "($nv1 - $nv0) / $m" | bc -l)")
  tck=$(getconf CLK_TCK)
  R[$c,cpu_us]=$(printf '%.0f' "$(echo "($u1 - $u0 + $k1 - $k0) * 1000000 / $tck / $m" | bc -l)")
  R[$c,sys_pct]=$(printf '%.0f' "$(echo "($k1 - $k0) * 100 / ($u1 - $u0 + $k1 - $k0 + 0.0001)" | bc -l)")

  strace -f -c -p "$NODE_PID" -o "$W/strace.$c" 2>"$W/strace.err.$c" &
  TRACE_PID=$!
  sleep 1                                     # strace attaches to every thread
  load "$c" "$n"
  stop_pid "$TRACE_PID" 100 INT; TRACE_PID=
  # "% time seconds usecs/call calls [errors] syscall": calls is field 4, the name the last.
  R[$c,sc]=$(awk -v m="$ACKED" '$NF == "total" {printf "%.1f", $4 / m}' "$W/strace.$c")
  R[$c,top]=$(awk -v m="$ACKED" 'NF >= 5 && $NF != "total" && $NF != "syscall" && $1 !~ /^-/ \
      {printf "%s %.2f\n", $NF, $4 / m}' "$W/strace.$c" | sort -k2,2 -rn | head -n 12 \
      | awk '{printf "%s%s=%s", (NR > 1 ? " " : ""), $1, $2}')

  if [ "$PERF" = 1 ] && command -v perf >/dev/null; then
    perf record -g -o "$W/perf.$c" -p "$NODE_PID" >/dev/null 2>"$W/perf.err.$c" &
    TRACE_PID=$!
    sleep 1
    load "$c" "$n"
    stop_pid "$TRACE_PID" 100 INT; TRACE_PID=
    R[$c,perf]=$(perf report -i "$W/perf.$c" --no-children --sort dso,sym --stdio -g none \
      2>/dev/null | grep -E '^ +[0-9.]+%' | head -n 15)
    R[$c,perfk]=$(perf report -i "$W/perf.$c" --no-children --sort dso --stdio -g none \
      2>/dev/null | awk '/\[kernel/ {gsub("%", "", $1); k += $1} END {printf "%.0f", k}')
  fi
  stop_pid "$NODE_PID" 300; NODE_PID=
done

fs=$(findmnt -n -o FSTYPE,SOURCE -T "$SPOOL" 2>/dev/null | awk '{print $1 " on " $2}')
echo "# syscall_profile: relaynode relaying $SIZE-byte messages to smtp-sink, fsync on"
echo "# $(date -u '+%Y-%m-%dT%H:%M:%SZ'), $(nproc) cpu(s), kernel $(uname -r), spool fs ${fs:-?}, load average $(cut -d' ' -f1-3 /proc/loadavg)"
printf '# disk: fsync(2 KB file) %s ms, fsync(file) + rename + fsync(dir) %s ms: at most %.0f commits/s one after another\n' \
  "$FSYNC_FILE" "$FSYNC_PAIR" "$(echo "1000 / $FSYNC_PAIR" | bc -l)"
printf '%7s %7s %14s %12s %12s %10s %10s %11s %8s\n' clients msgs acknowledged/s delivered/s \
  syscalls/msg vol-cs/msg invol-cs/msg cpu-us/msg kernel%
for c in $CLIENTS; do
  printf '%7s %7s %14s %12s %12s %10s %10s %11s %7s%%\n' "$c" "${R[$c,acked]}" "${R[$c,ack_s]}" \
    "${R[$c,all_s]}" "${R[$c,sc]}" "${R[$c,vcs]}" "${R[$c,nvcs]}" "${R[$c,cpu_us]}" "${R[$c,sys_pct]}"
done
for c in $CLIENTS; do
  echo "# top system calls per message at $c client(s): ${R[$c,top]}"
done
if [ "$PERF" = 1 ]; then
  for c in $CLIENTS; do
    echo "# perf record -g, $c client(s): ${R[$c,perfk]:-?}% of samples in the kernel; top symbols (self):"
    printf '%s\n' "${R[$c,perf]:-  (no samples)}" | sed 's/^/#   /'
  done
fi
exit 0
