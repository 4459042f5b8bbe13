#!/usr/bin/env bash
# Run every test against one build tree and print `N passed, M failed`.
#   tests/run.sh BUILD_DIR [unit|integration|NAME_SUBSTRING]
# Unit tests are cmocka binaries; integration tests are tests/integration/test_* scripts
# that print TAP lines (`ok N - name` / `not ok N - name`). A script that exits non-zero
# without printing `not ok` counts as one failure, so a crash can never pass silently.
set -uo pipefail
cd "$(dirname "$0")/.."
B=${1:-build/asan}
SEL=${2:-all}
export RELAYNODE_BUILD=$(cd "$B" && pwd)
export RELAYNODE_ROOT=$(pwd)
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
# A full run starts from an empty log directory; a selective one (often run beside others)
# only replaces its own logs.
LOGDIR=$B/test-logs; [ "$SEL" = all ] && rm -rf "$LOGDIR"; mkdir -p "$LOGDIR"
pass=0; fail=0; skipped=0; failed=()

run_unit() {
  local t=$1 name out p f
  name=$(basename "$t"); out=$LOGDIR/$name.log
  # A hung unit test must fail, never stall the suite.
  timeout 300 "$t" >"$out" 2>&1; local rc=$?
  p=$(sed -n 's/^\[  PASSED  \] \([0-9]*\) test.*/\1/p' "$out" | tail -1)
  f=$(sed -n 's/^\[  FAILED  \] \([0-9]*\) test.*/\1/p' "$out" | tail -1)
  p=${p:-0}; f=${f:-0}
  if [ $rc -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi
  pass=$((pass+p)); fail=$((fail+f))
  printf '%-40s %3d passed %3d failed\n' "unit/$name" "$p" "$f"
  [ "$f" -gt 0 ] && { failed+=("unit/$name"); sed -n '/FAILED\|ERROR\|Sanitizer\|runtime error/p' "$out" | head -20; }
}

run_integ() {
  local t=$1 name out p f rc
  name=$(basename "$t"); out=$LOGDIR/$name.log
  case "$t" in
    *.py) timeout 600 /usr/bin/python3 "$t" >"$out" 2>&1; rc=$? ;;
    *)    timeout 600 bash "$t" >"$out" 2>&1; rc=$? ;;
  esac
  # A TAP `# SKIP` is neither a pass nor a failure: it is reported, not counted.
  p=$(grep '^ok ' "$out" | grep -vc '# SKIP'); f=$(grep -c '^not ok ' "$out")
  s=$(grep '^ok \|^1\.\.0' "$out" | grep -c '# SKIP'); skipped=$((skipped+s))
  if [ $rc -ne 0 ] && [ "$f" -eq 0 ]; then f=1; echo "not ok - $name exited $rc" >>"$out"; fi
  pass=$((pass+p)); fail=$((fail+f))
  printf '%-40s %3d passed %3d failed %3d skipped\n' "integration/$name" "$p" "$f" "$s"
  [ "$f" -gt 0 ] && { failed+=("integration/$name"); grep -A3 '^not ok' "$out" | head -40; }
}

if [ "$SEL" = all ] || [ "$SEL" = unit ]; then
  for t in "$B"/tests/test_*; do [ -x "$t" ] && run_unit "$t"; done
fi
if [ "$SEL" != unit ]; then
  for t in tests/integration/test_*; do
    [ -f "$t" ] || continue
    case "$SEL" in all|integration) ;; *) [[ "$t" == *"$SEL"* ]] || continue ;; esac
    run_integ "$t"
  done
fi
[ ${#failed[@]} -gt 0 ] && echo "failing: ${failed[*]} (logs in $LOGDIR)"
echo "$pass passed, $fail failed, $skipped skipped"
[ "$fail" -eq 0 ] && [ "$pass" -gt 0 ]
