#!/usr/bin/env bash
# Regenerate schema/relaynode.ldif (cn=config form) from schema/relaynode.schema with
# slaptest, so the two forms never drift. Usage: deploy/slapd/schema2ldif.sh [OUT]
# (OUT defaults to schema/relaynode.ldif; tests/integration/test_slapd.py writes elsewhere
# and checks that the committed file matches.)
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
out=${1:-$root/schema/relaynode.ldif}
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/out"
cat >"$tmp/slapd.conf" <<CONF
include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
include $root/schema/relaynode.schema
CONF
slaptest -f "$tmp/slapd.conf" -F "$tmp/out" >/dev/null 2>&1 \
  || { slaptest -f "$tmp/slapd.conf" -F "$tmp/out"; exit 1; }
src=$(ls "$tmp"/out/cn=config/cn=schema/cn=\{*\}relaynode.ldif)
{
  echo "# Relaynode schema in cn=config form: ldapadd -Y EXTERNAL -H ldapi:/// -f relaynode.ldif"
  echo "# Generated from relaynode.schema by deploy/slapd/schema2ldif.sh; do not edit by hand."
  echo "dn: cn=relaynode,cn=schema,cn=config"
  # Drop the slaptest header, the {N} index and the operational attributes.
  sed -e '/^#/d' -e '/^dn:/d' \
      -e '/^\(structuralObjectClass\|entryUUID\|creatorsName\|createTimestamp\|entryCSN\|modifiersName\|modifyTimestamp\):/d' \
      -e 's/^cn: {[0-9]*}relaynode$/cn: relaynode/' "$src"
} >"$out.new"
mv "$out.new" "$out"
