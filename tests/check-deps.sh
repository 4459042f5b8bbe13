#!/usr/bin/env bash
# Dependency rules of STYLE.md rule 2: directory/ never includes node/, libldap only in
# directory/ldap*.c (the loader and relayctl's admin writes share its connection), and each
# other external library header is included from exactly one file.
set -u
cd "$(dirname "$0")/.."
rc=0
if grep -rn '#include "node/' directory/ 2>/dev/null; then echo "directory/ includes node/"; rc=1; fi
bad=$(grep -rl '#include <ldap.h>' directory node tools 2>/dev/null | grep -v '^directory/ldap[^/]*\.c$')
if [ -n "$bad" ]; then echo "<ldap.h> outside directory/ldap*.c:"; echo "$bad"; rc=1; fi
for h in '<sasl/sasl.h>' '<zmq.h>' '<ares.h>' '<krb5.h>' '<openssl/' '<event2/bufferevent_ssl.h>'; do
  n=$(grep -rl "#include $h" directory node tools 2>/dev/null | wc -l)
  if [ "$n" -gt 1 ]; then echo "$h included from $n files:"; grep -rl "#include $h" directory node tools; rc=1; fi
done
[ $rc -eq 0 ] && echo "check-deps: ok"
exit $rc
