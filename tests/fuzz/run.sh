#!/usr/bin/env bash
# `make fuzz` (and `make test`, with 5 seconds): build every tests/fuzz/fuzz_*.c as a
# libFuzzer binary against the clang-built libraries of BUILD_DIR (build/fuzz, made by the
# Makefile's fuzz rule) and run each for SECONDS (default 30) on its own corpus in
# BUILD_DIR/corpus/NAME (kept between runs; new inputs go there) plus the seeds kept in the
# repository under tests/fuzz/corpus/NAME, if any.
#   tests/fuzz/run.sh BUILD_DIR [SECONDS]
# Exits non-zero when a target fails to build or finds a crash (the reproducer is in
# BUILD_DIR/crash-NAME-*).
set -uo pipefail
cd "$(dirname "$0")/../.."
B=${1:?usage: run.sh BUILD_DIR [SECONDS]}
T=${2:-30}
# The libraries, top layer first (the Makefile passes them).
FUZZ_LIBS=${FUZZ_LIBS:?set by make fuzz}
LIBS="-lldap -llber -levent -levent_openssl -levent_pthreads -lssl -lcrypto -lsasl2 -lkrb5 -lzmq -lcares -lpthread -lm"
rc=0
for src in tests/fuzz/fuzz_*.c; do
  name=$(basename "$src" .c)
  bin="$B/$name"
  # shellcheck disable=SC2086
  if ! clang -std=gnu11 -g -O1 -I. -D_GNU_SOURCE -Wall -Wextra -Werror -Wno-unused-parameter \
       -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
       -o "$bin" "$src" $FUZZ_LIBS $LIBS; then
    echo "$name: build failed"; rc=1; continue
  fi
  mkdir -p "$B/corpus/$name"
  seeds=(); [ -d "tests/fuzz/corpus/$name" ] && seeds=("tests/fuzz/corpus/$name")
  maxlen=4096; [ "$name" = fuzz_auth ] && maxlen=16384   # AUTH lines reach 12288 octets
  [ "$name" = fuzz_secdesc ] && maxlen=8192              # real descriptors reach 4.6 KB
  if "$bin" -max_total_time="$T" -max_len=$maxlen -artifact_prefix="$B/crash-$name-" \
       "$B/corpus/$name" "${seeds[@]}" >"$B/$name.log" 2>&1; then
    runs=$(grep -o 'Done [0-9]* runs' "$B/$name.log" | awk '{print $2}')
    echo "$name: ${T}s clean, ${runs:-?} runs, corpus $(ls "$B/corpus/$name" | wc -l)"
  else
    echo "$name: FAILED (see $B/$name.log)"; tail -20 "$B/$name.log"; rc=1
  fi
done
exit $rc
