#!/usr/bin/env bash
# deploy/build-deb.sh [OUTDIR] — builds the Debian package meshvisor_VERSION_ARCH.deb
# from this source tree with the standard tools (dpkg-buildpackage, debhelper;
# the recipe is deploy/debian/, which becomes the copy's debian/) and leaves
# it in OUTDIR (default build-deb/).
#
#     deploy/build-deb.sh && apt install ./build-deb/meshvisor_*.deb
#
# Installs what the build needs first (deploy/install-deps.sh, then debhelper,
# dpkg-dev and fakeroot; apt-get, idempotent). The build runs in a temporary
# copy of the tree — the files git tracks plus the untracked ones it does
# not ignore, as a fresh checkout would have them — so that neither this tree
# nor its parent directory gets build products. Root is not needed for the
# build itself (Rules-Requires-Root: no), only for installing packages.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="${1:-$ROOT/build-deb}"
JOBS="${MV_JOBS:-2}"

bash "$ROOT/deploy/install-deps.sh"
. "$ROOT/deploy/apt-ensure.sh"
apt_ensure build-deb debhelper dpkg-dev fakeroot

VERSION="$(dpkg-parsechangelog -l "$ROOT/deploy/debian/changelog" -S Version)"
WORK="$(mktemp -d /tmp/meshvisor-deb.XXXXXX)"
trap 'rm -rf "$WORK"' EXIT
SRC="$WORK/meshvisor-$VERSION"
mkdir -p "$SRC"
if git -C "$ROOT" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
	(cd "$ROOT" && git ls-files -z --cached --others --exclude-standard |
		while IFS= read -r -d '' f; do [ -e "$f" ] && printf '%s\0' "$f"; done |
		tar --null -T - -cf -) | tar -xf - -C "$SRC"
else
	# an unpacked source tarball: everything but build directories
	tar -C "$ROOT" --exclude='./build*' --exclude='./.cluster' -cf - . | tar -xf - -C "$SRC"
fi

# dpkg-buildpackage wants the recipe at the top of the source tree; the
# project keeps its top level to the layout in README ("Layout")
cp -r "$SRC/deploy/debian" "$SRC/debian"
echo "build-deb: dpkg-buildpackage in $SRC"
(cd "$SRC" && DEB_BUILD_OPTIONS="parallel=$JOBS" dpkg-buildpackage -us -uc -b)

mkdir -p "$OUT"
rm -f "$OUT"/meshvisor_*.deb "$OUT"/meshvisor-dbgsym_*.deb
cp "$WORK"/meshvisor_*.deb "$OUT"/
ls "$WORK"/meshvisor-dbgsym_*.deb >/dev/null 2>&1 && cp "$WORK"/meshvisor-dbgsym_*.deb "$OUT"/
echo "build-deb: built $(ls "$OUT"/meshvisor_*.deb)"
