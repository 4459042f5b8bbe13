#!/usr/bin/env bash
# Run every benchmark binary of one build tree and print what each reports.
#   tests/bench/run.sh [BUILD_DIR]      (default build/, the -O2 release tree; `make bench`)
# Benchmarks print figures; they never pass or fail on time. A benchmark that crashes or exits
# non-zero makes this script exit non-zero.
set -uo pipefail
cd "$(dirname "$0")/../.."
B=${1:-build}
shopt -s nullglob
bins=("$B"/tests/bench_*)
if [ ${#bins[@]} -eq 0 ]; then
  echo "no benchmarks under $B/tests (build them with: make bench)" >&2
  exit 1
fi
rc=0
echo "# $(date -u '+%Y-%m-%dT%H:%M:%SZ') $(uname -m) $(nproc) cpu(s), build $B"
for b in "${bins[@]}"; do
  [ -x "$b" ] || continue
  echo "## $(basename "$b")"
  "$b" || { echo "$(basename "$b") exited $?" >&2; rc=1; }
done
# The SMTP throughput benchmark against Postfix, OpenSMTPD and Exim (installs postfix if
# missing, unpacks opensmtpd and exim4-daemon-light under $B/bench-peers; needs root).
# BENCH_N, BENCH_CLIENTS, BENCH_SIZES, BENCH_PEERS and BENCH_DRAIN_TIMEOUT pass through
# (make bench BENCH_N=200 is quick).
if [ -x "$B/relaynode" ]; then
  echo "## smtp_bench (relaynode vs Postfix, OpenSMTPD, Exim)"
  bash tests/bench/smtp_bench.sh "$B" || { echo "smtp_bench exited $?" >&2; rc=1; }
fi
# System calls, context switches and CPU per relayed message at 1 and 50 clients, and what
# an fsync costs on the spool's disk (PROFILE_CLIENTS, PROFILE_N, PROFILE_PERF=1 adds perf).
if [ -x "$B/relaynode" ]; then
  echo "## syscall_profile (per-message cost)"
  bash tests/bench/syscall_profile.sh "$B" || { echo "syscall_profile exited $?" >&2; rc=1; }
fi
# Cluster convergence, 3 and 10 nodes on one slapd, against syncrepl (CLUSTER_CHANGES=100).
if [ -x "$B/relaynode" ] && [ -x "$B/relayctl" ]; then
  echo "## cluster_bench (ldapmodify -> every node enforcing)"
  /usr/bin/python3 tests/bench/cluster_bench.py "$B" --changes "${CLUSTER_CHANGES:-100}" ||
    { echo "cluster_bench exited $?" >&2; rc=1; }
fi
# Recipient lookup with 100,000 users: set memory, load time, RCPT round trips
# (RCPT_USERS overrides; the throwaway slapd goes to /dev/shm when it exists).
if [ -x "$B/relaynode" ]; then
  echo "## recipients_bench (100,000 users)"
  tmp=${TMPDIR:-/tmp}; [ -d /dev/shm ] && [ -w /dev/shm ] && tmp=/dev/shm
  TMPDIR=$tmp /usr/bin/python3 tests/bench/recipients_bench.py "$B" \
    --users "${RCPT_USERS:-100000}" || { echo "recipients_bench exited $?" >&2; rc=1; }
fi
# Directory scale: 10,000 receive connectors, 1,000 accepted domains, 100,000 users in one
# slapd; load time, snapshot memory, decision time, ldapmodify -> enforcement for 1, 10 and
# 20 nodes on that slapd (DIRSCALE_NODES, DIRSCALE_CHANGES, DIRSCALE_TIMEOUT override).
if [ -x "$B/relaynode" ] && [ -x "$B/relayctl" ]; then
  echo "## dirscale_bench (10,000 connectors, 1,000 domains, 100,000 users; 1, 10, 20 nodes)"
  tmp=${TMPDIR:-/tmp}; [ -d /dev/shm ] && [ -w /dev/shm ] && tmp=/dev/shm
  TMPDIR=$tmp /usr/bin/python3 tests/bench/dirscale_bench.py "$B" \
    --nodes "${DIRSCALE_NODES:-1,10,20}" --changes "${DIRSCALE_CHANGES:-20}" \
    --timeout "${DIRSCALE_TIMEOUT:-120}" || { echo "dirscale_bench exited $?" >&2; rc=1; }
fi

# Incremental reloads: one change in a directory of 10,000 receive connectors, applied from
# the watcher's entries vs a full reload (INCR_CONNECTORS, INCR_CHANGES override).
if [ -x "$B/relaynode" ]; then
  echo "## incremental_bench (10,000 receive connectors: incremental vs full reload)"
  tmp=${TMPDIR:-/tmp}; [ -d /dev/shm ] && [ -w /dev/shm ] && tmp=/dev/shm
  TMPDIR=$tmp /usr/bin/python3 tests/bench/incremental_bench.py "$B" \
    --connectors "${INCR_CONNECTORS:-10000}" --changes "${INCR_CHANGES:-100}" ||
    { echo "incremental_bench exited $?" >&2; rc=1; }
fi

# Idle sessions: 10,000 held open (plain, then after STARTTLS), memory per session and the
# latency of fresh sessions meanwhile (SESSIONS_N=10000).
if [ -x "$B/relaynode" ]; then
  echo "## sessions_bench (idle sessions: memory per session, fresh-session latency)"
  /usr/bin/python3 tests/bench/sessions_bench.py "$B" --sessions "${SESSIONS_N:-10000}" ||
    { echo "sessions_bench exited $?" >&2; rc=1; }
fi
exit $rc
