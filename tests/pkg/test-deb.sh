#!/usr/bin/env bash
# tests/pkg/test-deb.sh DEB — installs the Debian package into a throwaway
# root and checks what an operator gets. Run by tests/run-all.sh after
# deploy/build-deb.sh; needs root (mount namespaces, overlayfs, chroot).
#
# The throwaway root is this machine's own / seen through an overlay whose
# writable layer is a tmpfs, in a private mount namespace: dpkg in a chroot
# of it installs the package for real — dependency checks against the
# packages this machine has, maintainer scripts, conffiles, the unit — and
# every write lands in the tmpfs, which vanishes with the namespace. Nothing
# of the host changes, and no container engine or network is needed.
#
# Checks (each prints "ok - ..." or "not ok - ..."; any failure fails):
#   dpkg -i succeeds (so Depends: is satisfiable) and dpkg -s says installed;
#   the files: /usr/bin/meshvisor, the unit, the example config (a conffile),
#   the man page, bash completion, docs; `meshvisor version` prints the
#   package's version; the unit's ExecStart is /usr/bin/meshvisor, it passes
#   `systemd-analyze verify`, and installing did not enable it; man renders
#   the page; bash completion completes `meshvisor vm ` and `meshvisor
#   agent --con`; dpkg --purge removes every file it installed.
set -uo pipefail

DEB="${1:?usage: tests/pkg/test-deb.sh path/to/meshvisor_VERSION_ARCH.deb}"
DEB="$(readlink -f "$DEB")"
[ -f "$DEB" ] || { echo "test-deb: no such file: $DEB" >&2; exit 2; }
[ "$(id -u)" -eq 0 ] || { echo "test-deb: needs root (overlay mount, chroot)" >&2; exit 2; }
VERSION="$(dpkg-deb -f "$DEB" Version)"

if [ "${MV_TEST_DEB_INSIDE:-0}" != 1 ]; then
	# re-run this script in a private mount namespace: every mount below
	# disappears with it, even if the script dies half-way
	exec unshare --mount --propagation private env MV_TEST_DEB_INSIDE=1 bash "$0" "$DEB"
fi

FAILS=0
ok() { echo "ok - $*"; }
fail() { echo "not ok - $*"; FAILS=$((FAILS + 1)); }
check() { # DESCRIPTION CMD... — ok when CMD succeeds
	local what="$1"; shift
	if "$@"; then ok "$what"; else fail "$what"; fi
}

T="$(mktemp -d /tmp/mv-test-deb.XXXXXX)"
mount -t tmpfs -o size=512m mv-test-deb "$T" || { echo "test-deb: cannot mount tmpfs" >&2; exit 1; }
mkdir "$T/upper" "$T/work" "$T/root"
if ! mount -t overlay overlay -o "lowerdir=/,upperdir=$T/upper,workdir=$T/work" "$T/root"; then
	echo "test-deb: cannot mount an overlay of / (kernel without overlayfs?)" >&2
	exit 1
fi
R="$T/root"
mount --rbind /dev "$R/dev"
mount -t proc proc "$R/proc"
mount -t tmpfs tmpfs "$R/tmp"
mount -t tmpfs tmpfs "$R/run"
cp "$DEB" "$R/tmp/"
IN() { chroot "$R" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 "$@"; }

# a machine that had meshvisor installed from the tree has it in /usr/local;
# the package's /usr/bin one must be the one found first anyway
if IN dpkg -s meshvisor >/dev/null 2>&1; then
	echo "test-deb: meshvisor is already installed as a package here; checking a reinstall"
fi

check "dpkg -i $(basename "$DEB") (dependencies satisfied, scripts ran)" \
	IN dpkg -i "/tmp/$(basename "$DEB")"
check "dpkg -s: installed" sh -c "chroot '$R' dpkg -s meshvisor | grep -q '^Status: install ok installed'"

for f in /usr/bin/meshvisor /lib/systemd/system/meshvisor.service \
	/etc/meshvisor/meshvisor.example.json /usr/share/man/man1/meshvisor.1.gz \
	/usr/share/bash-completion/completions/meshvisor /usr/share/doc/meshvisor/copyright \
	/usr/share/doc/meshvisor/README.md.gz /usr/share/doc/meshvisor/runbook.md.gz \
	/usr/share/doc/meshvisor/metrics.md.gz \
	/usr/share/doc/meshvisor/examples/grafana-dashboard.json; do
	check "installed: $f" sh -c "chroot '$R' dpkg -L meshvisor | grep -qx '$f' && test -e '$R$f'"
done
check "conffile: /etc/meshvisor/meshvisor.example.json" \
	sh -c "chroot '$R' dpkg-query -W -f='\${Conffiles}' meshvisor | grep -q ' /etc/meshvisor/meshvisor.example.json '"
check "no live config shipped (/etc/meshvisor/meshvisor.json is the operator's)" \
	sh -c "! chroot '$R' dpkg -L meshvisor | grep -qx /etc/meshvisor/meshvisor.json"

got="$(IN /usr/bin/meshvisor version 2>&1)"
check "meshvisor version prints 'meshvisor $VERSION' (got '$got')" test "$got" = "meshvisor $VERSION"
check "the example config parses as JSON" \
	IN python3 -c 'import json,sys; json.load(open("/etc/meshvisor/meshvisor.example.json"))'

unit="$R/lib/systemd/system/meshvisor.service"
check "unit ExecStart is /usr/bin/meshvisor" grep -q '^ExecStart=/usr/bin/meshvisor agent ' "$unit"
check "unit has no unfilled @template@ value" sh -c "! grep -q '@[A-Z_]*@' '$unit'"
verify_out="$(IN systemd-analyze verify /lib/systemd/system/meshvisor.service 2>&1)"
vrc=$?
check "systemd-analyze verify meshvisor.service is clean (rc $vrc, output: ${verify_out:-none})" \
	test "$vrc" -eq 0 -a -z "$verify_out"
en="$(IN systemctl is-enabled meshvisor.service 2>&1)"
check "installing did not enable the unit (is-enabled: $en)" test "$en" = disabled

check "man renders the page" sh -c "chroot '$R' env MANPAGER=cat COLUMNS=80 man meshvisor 2>/dev/null | grep -q 'force-leave'"

comp="$(IN bash -c '
	. /usr/share/bash-completion/bash_completion
	_completion_loader meshvisor
	for line in "meshvisor vm " "meshvisor agent --con" "meshvisor tls cert "; do
		read -r -a COMP_WORDS <<<"$line"
		[ "${line: -1}" = " " ] && COMP_WORDS+=("")
		COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
		COMP_LINE="$line"; COMP_POINT=${#line}
		COMPREPLY=()
		_meshvisor meshvisor "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"
		echo "${line}=> ${COMPREPLY[*]}"
	done' 2>&1)"
echo "$comp" | sed 's/^/    /'
check "bash completion: 'meshvisor vm ' offers create ... set-ha" \
	sh -c "echo '$comp' | grep -q '^meshvisor vm => create start shutdown destroy undefine set-ha$'"
check "bash completion: 'meshvisor agent --con' offers --config" \
	sh -c "echo '$comp' | grep -q '^meshvisor agent --con=> --config$'"
check "bash completion: 'meshvisor tls cert ' offers create show" \
	sh -c "echo '$comp' | grep -q '^meshvisor tls cert => create show$'"

files="$(IN dpkg -L meshvisor | while read -r f; do [ -f "$R$f" ] && echo "$f"; done)"
check "dpkg --purge meshvisor" IN dpkg --purge meshvisor
left=""
for f in $files; do [ -e "$R$f" ] && left="$left $f"; done
check "purge left no installed file behind${left:+ (left:$left)}" test -z "$left"

if [ "$FAILS" -eq 0 ]; then
	echo "test-deb: all checks passed ($(basename "$DEB"))"
	exit 0
fi
echo "test-deb: $FAILS check(s) failed"
exit 1
