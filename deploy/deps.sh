#!/usr/bin/env bash
# Install every Debian package the build, the tests and `make run` need (mandoc, systemd,
# dpkg-dev, logrotate: `mandoc -T lint`, `systemd-analyze verify`, `make deb`, `logrotate -d`;
# rspamd: the milter test's filter; python3-prometheus-client: parsing the metrics endpoint;
# samba-ad-dc, samba-ad-provision, ldb-tools, python3-samba, winbind: the Active Directory
# test fixture, tests/lib/samba_ad.py, a real Samba DC each AD test provisions and starts).
# Idempotent: when all are present nothing is fetched and apt is not called.
set -euo pipefail
PKGS=(
  build-essential clang pkg-config libclang-rt-14-dev
  libldap-dev libevent-dev libssl-dev libsasl2-dev libsasl2-modules libzmq3-dev
  libcmocka-dev libc-ares-dev
  slapd ldap-utils swaks openssl python3 python3-dnspython
  libsasl2-modules-gssapi-mit libkrb5-dev krb5-kdc krb5-admin-server krb5-user python3-gssapi
  mandoc systemd dpkg-dev adduser logrotate
  rspamd python3-prometheus-client
  samba samba-ad-dc samba-ad-provision ldb-tools python3-samba winbind
)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && { echo "deps: all ${#PKGS[@]} packages present"; exit 0; }
echo "deps: installing ${missing[*]}"
SUDO=; [ "$(id -u)" -eq 0 ] || SUDO=sudo
# slapd must not configure or start a system instance: tests start their own.
echo "slapd slapd/no_configuration boolean true" | $SUDO debconf-set-selections
echo "postfix postfix/main_mailer_type select No configuration" | $SUDO debconf-set-selections
export DEBIAN_FRONTEND=noninteractive
# No package may start a system service (slapd, krb5-kdc, kadmind, postfix, samba-ad-dc,
# smbd, nmbd, winbind): tests start their own (samba in a private network namespace). Where no policy-rc.d says so already, one does for the install.
POLICY=/usr/sbin/policy-rc.d
if [ ! -e "$POLICY" ]; then
  printf '#!/bin/sh\n# relaynode deps.sh: no service starts during the install\nexit 101\n' |
    $SUDO tee "$POLICY" >/dev/null
  $SUDO chmod 755 "$POLICY"
  trap '$SUDO rm -f "$POLICY"' EXIT
fi
$SUDO apt-get update -qq || true
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
