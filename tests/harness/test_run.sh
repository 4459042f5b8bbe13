#!/usr/bin/env bash
# Proves the harness itself (run from `make test`, no build needed): tests/run.sh's parsers
# get fake outputs (a script that dies mid-plan, results beyond the plan, a missing plan, a
# `1..0 # SKIP` plan, a TAP skip, a cmocka skip, a crash without a FAILED line) and a fake
# build tree; rnnode.Node.stop() gets fake nodes (a non-zero exit on SIGTERM, a sanitizer
# report, a clean exit, a kill -9). Prints TAP; exits non-zero when a count is wrong.
set -uo pipefail
cd "$(dirname "$0")/../.."
T=$(mktemp -d /tmp/rn-harness.XXXXXX); [ -n "${RN_KEEP:-}" ] || trap 'rm -rf "$T"' EXIT
n=0; bad=0
check() {   # check NAME WANT GOT
  n=$((n+1))
  if [ "$2" = "$3" ]; then echo "ok $n - $1"
  else echo "not ok $n - $1"; echo "#   expected: $2"; echo "#   got:      $3"; bad=$((bad+1)); fi
}
counts() { bash tests/run.sh "$1" "$2" "$3" | tail -1; }   # last line: "P F S"

# -- TAP ------------------------------------------------------------------------------------
printf 'ok 1 - a\nok 2 - b\n1..2\n' >"$T/good";                check "TAP: clean run" "2 0 0" "$(counts --parse-tap "$T/good" 0)"
printf '1..3\nok 1 - a\n' >"$T/mid";                          check "TAP: dies mid-plan (1..3, one result, exit 0)" "1 1 0" "$(counts --parse-tap "$T/mid" 0)"
printf 'ok 1 - a\nok 2 - b\n' >"$T/noplan";                   check "TAP: no plan" "2 1 0" "$(counts --parse-tap "$T/noplan" 0)"
printf 'ok 1 - a\n1..1\nnot ok 2 - late\n' >"$T/beyond";      check "TAP: a result beyond the plan" "1 2 0" "$(counts --parse-tap "$T/beyond" 0)"
printf '1..0 # SKIP no relaynode binary\n' >"$T/skipall";     check "TAP: 1..0 # SKIP is a failure" "0 1 0" "$(counts --parse-tap "$T/skipall" 0)"
printf 'ok 1 - a\nok 2 - b # SKIP no ipv6\n1..2\n' >"$T/skip"; check "TAP: # SKIP counted, not passed" "1 0 1" "$(counts --parse-tap "$T/skip" 0)"
printf 'ok 1 - a\n1..1\n' >"$T/crash";                        check "TAP: exit 134 after a clean plan" "1 1 0" "$(counts --parse-tap "$T/crash" 134)"
printf 'ok 1 - a\nnot ok 2 - b\n1..2\n' >"$T/fail";           check "TAP: not ok" "1 1 0" "$(counts --parse-tap "$T/fail" 1)"
: >"$T/empty";                                                check "TAP: empty output" "0 1 0" "$(counts --parse-tap "$T/empty" 0)"
# -- cmocka ---------------------------------------------------------------------------------
cat >"$T/cm_skip" <<'X'
[==========] Running 3 test(s).
[  SKIPPED ] test_b
[==========] 3 test(s) run.
[  PASSED  ] 2 test(s).
[  SKIPPED ] 1 test(s), listed below:
[  SKIPPED ] test_b
X
check "cmocka: a skip is counted" "2 0 1" "$(counts --parse-unit "$T/cm_skip" 0)"
cat >"$T/cm_fail" <<'X'
[  PASSED  ] 1 test(s).
[  FAILED  ] 2 test(s), listed below:
[  FAILED  ] test_a
X
check "cmocka: failures" "1 2 0" "$(counts --parse-unit "$T/cm_fail" 2)"
printf '[ RUN      ] test_a\nAddressSanitizer: heap-use-after-free\n' >"$T/cm_crash"
check "cmocka: a crash without a summary" "0 1 0" "$(counts --parse-unit "$T/cm_crash" 1)"
: >"$T/cm_none";  check "cmocka: exit 0 with no summary" "0 1 0" "$(counts --parse-unit "$T/cm_none" 0)"

# -- a whole run over a fake build tree ------------------------------------------------------
mkdir -p "$T/b/tests"
printf '#!/bin/sh\ncat %s\n' "$T/cm_skip" >"$T/b/tests/test_fake_skip"
printf '#!/bin/sh\necho "[ RUN      ] x"; exit 134\n' >"$T/b/tests/test_fake_crash"
chmod +x "$T/b/tests/test_fake_skip" "$T/b/tests/test_fake_crash"
out=$(bash tests/run.sh "$T/b" unit); rc=$?
check "run.sh unit: summary line counts the skip and the crash" "2 passed, 1 failed, 1 skipped" "$(echo "$out" | tail -1)"
check "run.sh unit: exits non-zero" "1" "$([ $rc -ne 0 ] && echo 1 || echo 0)"
mkdir -p "$T/empty_b/tests"
out=$(bash tests/run.sh "$T/empty_b" unit); rc=$?
check "run.sh unit: no unit binary at all is a failure" "0 passed, 1 failed, 0 skipped:1" \
  "$(echo "$out" | tail -1):$([ $rc -ne 0 ] && echo 1 || echo 0)"

# -- rnnode.Node.stop(): exit status and sanitizer scan -------------------------------------
cat >"$T/fakenode" <<'X'
#!/bin/bash
# A fake relaynode: MODE from the environment decides what SIGTERM does.
case "$FAKE_MODE" in
  rc3)  trap 'exit 3' TERM ;;
  asan) trap 'echo "==7==ERROR: AddressSanitizer: heap-use-after-free on address 0x1"; exit 0' TERM ;;
  ubsan) trap 'echo "node/x.c:1:2: runtime error: signed integer overflow"; exit 0' TERM ;;
  file) trap 'echo "==7==ERROR: AddressSanitizer: x" >"$RN_SANITIZER_DIR/asan.$$"; exit 0' TERM ;;
  *)    trap 'exit 0' TERM ;;
esac
echo started
while :; do sleep 0.1; done
X
chmod +x "$T/fakenode"; : >"$T/conf"
fake_node_script() {   # fake_node_script MODE LOG ENDING -> a TAP script on stdout: the fake
  # node started with FAKE_MODE=MODE (its output in LOG), checked to run, then ENDING (Python)
  cat <<X
import sys
sys.path.insert(0, "$PWD/tests/lib")
import rntest, rnnode
t = rntest.Tap()
n = rnnode.Node("$T/conf", binary="$T/fakenode", env={"FAKE_MODE": "$1"},
                log_path="$2", allow_root=False)
n.start()
t.ok(rnnode.eventually(lambda: "started" in n.log(), 10), "the fake node runs")
$3
X
}
node_case() {   # node_case MODE HOW -> the TAP the test script prints, as "P F S"
  local ending
  case "$2" in
    kill9) ending='n.kill9(); sys.exit(t.done())' ;;
    late)  ending='rc = t.done(); n.stop(); sys.exit(rc)' ;;
    *)     ending='n.stop(); sys.exit(t.done())' ;;
  esac
  fake_node_script "$1" "$T/node-$1-$2.out" "$ending" >"$T/t.py"
  /usr/bin/python3 "$T/t.py" >"$T/t.out" 2>&1
  counts --parse-tap "$T/t.out" $?
}
check "Node.stop: exit 0, clean output" "1 0 0" "$(node_case ok stop)"
check "Node.stop: exit 3 on SIGTERM is a not ok" "1 1 0" "$(node_case rc3 stop)"
check "Node.stop: an AddressSanitizer report is a not ok" "1 1 0" "$(node_case asan stop)"
check "Node.stop: a UBSan runtime error is a not ok" "1 1 0" "$(node_case ubsan stop)"
check "Node.kill9: exempt from the exit check" "1 0 0" "$(node_case rc3 kill9)"
check "Node.stop after the plan: not ok beyond the plan" "1 2 0" "$(node_case rc3 late)"

# -- whole integration runs over fake scripts (RN_INTEGRATION_DIR) ---------------------------
mkdir -p "$T/integ"
printf 'echo "1..3"; echo "ok 1 - first"; exit 0\n' >"$T/integ/test_midplan.sh"
printf 'echo "ok 1 - a"; echo "1..1"; echo "==9==ERROR: AddressSanitizer: x" >"$RN_SANITIZER_DIR/asan.999999"\n' \
  >"$T/integ/test_detached.sh"
fake_node_script file "$T/node-file.out" 'n.stop(); sys.exit(t.done())' >"$T/integ/test_nodefile.py"
mkdir -p "$T/b2"
for c in midplan:"1 passed, 1 failed" detached:"1 passed, 1 failed" nodefile:"1 passed, 1 failed"; do
  out=$(RN_INTEGRATION_DIR="$T/integ" bash tests/run.sh "$T/b2" "test_${c%%:*}" 2>&1 | tail -1)
  check "run.sh integration: test_${c%%:*}" "${c#*:}, 0 skipped" "$out"
done
echo "1..$n"
[ "$bad" -eq 0 ]
