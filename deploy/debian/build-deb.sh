#!/usr/bin/env bash
# `make deb`: a Debian package of the binaries already built in BUILD_DIR.
#
#   deploy/debian/build-deb.sh BUILD_DIR [OUT_DIR]      (OUT_DIR defaults to BUILD_DIR)
#
# Stages `make install` with the Debian layout (PREFIX=/usr, SYSCONFDIR=/etc, units in
# /lib/systemd/system) into a temporary tree, strips the binaries, compresses the manual
# pages, adds DEBIAN/ (control from control.in with Depends computed by dpkg-shlibdeps from the
# libraries the binaries link, plus the plugins and tools found only at run time; conffiles;
# md5sums; the maintainer scripts of this directory) and builds
# OUT_DIR/relaynode_<version>_<arch>.deb with dpkg-deb (files owned by root, no fakeroot).
# The version is what `BUILD_DIR/relaynode --version` prints. Needs dpkg-dev.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
B=${1:?usage: build-deb.sh BUILD_DIR [OUT_DIR]}
OUT=${2:-$B}
case "$B" in /*) ;; *) B="$ROOT/$B" ;; esac
case "$OUT" in /*) ;; *) OUT="$ROOT/$OUT" ;; esac
for bin in relaynode relayctl; do
  [ -x "$B/$bin" ] || { echo "build-deb: no $B/$bin: build first (make)" >&2; exit 2; }
done
command -v dpkg-shlibdeps >/dev/null || { echo "build-deb: dpkg-shlibdeps missing (apt-get install dpkg-dev)" >&2; exit 2; }

VERSION=$("$B/relaynode" --version | awk '{print $2}')
case "$VERSION" in [0-9]*) ;; *) echo "build-deb: cannot read the version from $B/relaynode --version" >&2; exit 2 ;; esac
ARCH=$(dpkg --print-architecture)
MAINTAINER=${DEB_MAINTAINER:-Relaynode maintainers <root@localhost>}

STAGE=$(mktemp -d "${TMPDIR:-/tmp}/relaynode-deb.XXXXXX")
trap 'rm -rf "$STAGE"' EXIT
PKG=$STAGE/debian/relaynode          # dpkg-shlibdeps expects the package tree here
make --no-print-directory -s -C "$ROOT" install B="$B" DESTDIR="$PKG" PREFIX=/usr \
  SYSCONFDIR=/etc UNITDIR=/lib/systemd/system >/dev/null

if ldd "$B/relaynode" | grep -q 'libasan\|libubsan'; then
  echo "build-deb: warning: $B holds a sanitizer build; package a release build (make) for production" >&2
fi
strip --strip-unneeded --remove-section=.comment --remove-section=.note "$PKG/usr/sbin/relaynode" \
  "$PKG/usr/sbin/relayctl"
gzip -9n "$PKG"/usr/share/man/man*/*

# Depends: the shared libraries the binaries link (versions from their shlibs/symbols), the
# SASL PLAIN and LOGIN plugins AUTH needs at run time (dlopen), adduser for postinst.
mkdir -p "$STAGE/debian"
printf 'Source: relaynode\n\nPackage: relaynode\nArchitecture: any\n' >"$STAGE/debian/control"
SHLIBS=$(cd "$STAGE" && dpkg-shlibdeps -O -edebian/relaynode/usr/sbin/relaynode \
  -edebian/relaynode/usr/sbin/relayctl 2>/dev/null | sed -n 's/^shlibs:Depends=//p')
[ -n "$SHLIBS" ] || { echo "build-deb: dpkg-shlibdeps found no libraries" >&2; exit 1; }
DEPENDS="$SHLIBS, libsasl2-modules, adduser"
SIZE=$(du -sk --exclude=DEBIAN "$PKG" | cut -f1)

mkdir -p "$PKG/DEBIAN"
sed -e "s|@VERSION@|$VERSION|" -e "s|@ARCH@|$ARCH|" -e "s|@MAINTAINER@|$MAINTAINER|" \
    -e "s|@SIZE@|$SIZE|" -e "s|@DEPENDS@|$DEPENDS|" "$HERE/control.in" >"$PKG/DEBIAN/control"
printf '/etc/relaynode/relaynode.conf\n/etc/logrotate.d/relaynode\n' >"$PKG/DEBIAN/conffiles"
for s in postinst prerm postrm; do install -m 0755 "$HERE/$s" "$PKG/DEBIAN/$s"; done
(cd "$PKG" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | sort -z |
   xargs -0 md5sum) >"$PKG/DEBIAN/md5sums"

mkdir -p "$OUT"
DEB="$OUT/relaynode_${VERSION}_${ARCH}.deb"
dpkg-deb --root-owner-group -Zxz --build "$PKG" "$DEB" >/dev/null
echo "$DEB"
