#!/usr/bin/env bash
# Dependency rules of STYLE.md rule 2: directory/ never includes node/, and each external
# library header is included from exactly one file.
set -u
cd "$(dirname "$0")/.."
rc=0
if grep -rn '#include "node/' directory/ 2>/dev/null; then echo "directory/ includes node/"; rc=1; fi
for h in '<ldap.h>' '<sasl/sasl.h>' '<zmq.h>' '<ares.h>'; do
  n=$(grep -rl "#include $h" directory node tools 2>/dev/null | wc -l)
  if [ "$n" -gt 1 ]; then echo "$h included from $n files:"; grep -rl "#include $h" directory node tools; rc=1; fi
done
[ $rc -eq 0 ] && echo "check-deps: ok"
exit $rc
