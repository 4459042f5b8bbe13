#!/usr/bin/env bash
# Run every test against one build tree and print `N passed, M failed, K skipped`.
#   tests/run.sh BUILD_DIR [unit|integration|NAME_SUBSTRING]
#   tests/run.sh --parse-unit LOG RC | --parse-tap LOG RC   (the parsers alone: prints
#       `P F S` and the reasons; tests/harness/test_run.sh feeds them fake outputs)
# Unit tests are cmocka binaries; integration tests are tests/integration/test_* scripts
# that print TAP lines (`ok N - name` / `not ok N - name`) and a plan `1..N`.
# Failures: every `not ok`; a script or binary that exits non-zero without one (a crash can
# never pass silently); a TAP stream without a plan, with a `1..0` plan (nothing ran: a
# missing part is a failure, never a skip) or whose result count differs from its plan (it
# died mid-plan, or printed results beyond it). Skips (cmocka `[  SKIPPED ]`, TAP `# SKIP`)
# are neither passes nor failures: they are counted and shown.
# Sanitizer reports of every process an integration test starts (a detached daemon's stderr
# is /dev/null) go to files in LOGDIR/sanitizer-NAME (ASan/UBSan log_path, exported as
# RN_SANITIZER_DIR): rnnode.Node.stop() reports its own node's; any report left there after
# the test is one more failure. RN_INTEGRATION_DIR replaces tests/integration (the harness
# self-test feeds fake scripts through it).
set -uo pipefail
cd "$(dirname "$0")/.."

# parse_unit LOG RC -> "P F S" on stdout, reasons on fd 3
parse_unit() {
  local out=$1 rc=$2 p f s
  p=$(sed -n 's/^\[  PASSED  \] \([0-9]\+\) test.*/\1/p' "$out" | tail -1)
  f=$(sed -n 's/^\[  FAILED  \] \([0-9]\+\) test.*/\1/p' "$out" | tail -1)
  s=$(sed -n 's/^\[  SKIPPED \] \([0-9]\+\) test.*/\1/p' "$out" | tail -1)
  p=${p:-0}; f=${f:-0}; s=${s:-0}
  if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; echo "# run.sh: exited $rc without a FAILED line" >&3; fi
  if [ "$rc" -eq 0 ] && [ $((p + f + s)) -eq 0 ]; then
    f=1; echo "# run.sh: no cmocka summary (no test ran)" >&3
  fi
  echo "$p $f $s"
}

# parse_tap LOG RC -> "P F S" on stdout, reasons on fd 3
parse_tap() {
  local out=$1 rc=$2 p f s n plans plan
  p=$(grep '^ok ' "$out" | grep -vc '# SKIP')
  s=$(grep '^ok ' "$out" | grep -c '# SKIP')
  f=$(grep -c '^not ok ' "$out")
  n=$(grep -c '^\(not \)\?ok ' "$out")
  plans=$(grep -c '^1\.\.[0-9]' "$out")
  plan=$(sed -n 's/^1\.\.\([0-9]*\).*/\1/p' "$out" | head -1)
  if [ "$plans" -eq 0 ]; then
    f=$((f+1)); echo "# run.sh: no plan (1..N): the script died before its end" >&3
  elif [ "$plans" -gt 1 ]; then
    f=$((f+1)); echo "# run.sh: $plans plans" >&3
  elif [ "$plan" -eq 0 ]; then
    f=$((f+1)); echo "# run.sh: plan 1..0: nothing ran ($(grep '^1\.\.0' "$out"))" >&3
  elif [ "$plan" -ne "$n" ]; then
    f=$((f+1)); echo "# run.sh: plan 1..$plan but $n results" >&3
  fi
  if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; echo "# run.sh: exited $rc without a not ok" >&3; fi
  echo "$p $f $s"
}

case "${1:-}" in
  --parse-unit) parse_unit "$2" "$3" 3>&1; exit 0 ;;
  --parse-tap)  parse_tap "$2" "$3" 3>&1; exit 0 ;;
esac

B=${1:-build/asan}
SEL=${2:-all}
export RELAYNODE_BUILD=$(cd "$B" && pwd)
export RELAYNODE_ROOT=$(pwd)
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
# A libldap leak we cannot fix here is suppressed (the file says which and what it costs).
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$(pwd)/tests/lsan.supp:print_suppressions=0}
# A full run starts from an empty log directory; a selective one (often run beside others)
# only replaces its own logs.
LOGDIR=$B/test-logs; [ "$SEL" = all ] && rm -rf "$LOGDIR"; mkdir -p "$LOGDIR"
pass=0; fail=0; skipped=0; failed=()

run_unit() {
  local t=$1 name out p f s rc
  name=$(basename "$t"); out=$LOGDIR/$name.log
  # A hung unit test must fail, never stall the suite.
  timeout 300 "$t" >"$out" 2>&1; rc=$?
  read -r p f s < <(parse_unit "$out" "$rc" 3>>"$out")
  pass=$((pass+p)); fail=$((fail+f)); skipped=$((skipped+s))
  printf '%-40s %3d passed %3d failed %3d skipped\n' "unit/$name" "$p" "$f" "$s"
  [ "$s" -gt 0 ] && grep '^\[  SKIPPED \] [^0-9]' "$out" | head -10
  [ "$f" -gt 0 ] && { failed+=("unit/$name")
    sed -n '/FAILED\|ERROR\|Sanitizer\|runtime error\|without\|no cmocka/p' "$out" | head -20; }
}

run_integ() {
  local t=$1 name out p f s rc san r
  name=$(basename "$t"); out=$LOGDIR/$name.log
  san=$(cd "$LOGDIR" && pwd)/sanitizer-$name; rm -rf "$san"; mkdir -p "$san"
  (export RN_SANITIZER_DIR=$san ASAN_OPTIONS="$ASAN_OPTIONS:log_path=$san/asan" \
          UBSAN_OPTIONS="$UBSAN_OPTIONS:log_path=$san/ubsan"
   case "$t" in
     *.py) exec timeout 600 /usr/bin/python3 "$t" ;;
     *)    exec timeout 600 bash "$t" ;;
   esac) >"$out" 2>&1; rc=$?
  read -r p f s < <(parse_tap "$out" "$rc" 3>>"$out")
  for r in "$san"/asan.* "$san"/ubsan.*; do
    case "$r" in *'*'|*.seen) continue ;; esac
    f=$((f+1))
    { echo "# run.sh: sanitizer report ${r##*/} (a process the test started):"
      head -40 "$r" | sed 's/^/#   /'; } >>"$out"
  done
  pass=$((pass+p)); fail=$((fail+f)); skipped=$((skipped+s))
  printf '%-40s %3d passed %3d failed %3d skipped\n' "integration/$name" "$p" "$f" "$s"
  [ "$s" -gt 0 ] && grep '^ok .*# SKIP' "$out" | head -10
  [ "$f" -gt 0 ] && { failed+=("integration/$name")
    grep -A3 '^not ok\|^# run.sh:' "$out" | head -40; }
}

if [ "$SEL" = all ] || [ "$SEL" = unit ]; then
  nunit=0
  for t in "$B"/tests/test_*; do [ -x "$t" ] && { run_unit "$t"; nunit=$((nunit+1)); }; done
  # No unit binary at all is a missing part: a failure, not an empty pass.
  [ "$nunit" -eq 0 ] && { fail=$((fail+1)); failed+=("unit (no test binary in $B/tests)"); }
fi
if [ "$SEL" != unit ]; then
  for t in "${RN_INTEGRATION_DIR:-tests/integration}"/test_*; do
    [ -f "$t" ] || continue
    case "$SEL" in all|integration) ;; *) [[ "$t" == *"$SEL"* ]] || continue ;; esac
    run_integ "$t"
  done
fi
[ ${#failed[@]} -gt 0 ] && echo "failing: ${failed[*]} (logs in $LOGDIR)"
echo "$pass passed, $fail failed, $skipped skipped"
[ "$fail" -eq 0 ] && [ "$pass" -gt 0 ]
