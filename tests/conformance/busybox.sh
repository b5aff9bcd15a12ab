#!/usr/bin/env bash
# busybox.sh OUT: upstream busybox, static, default configuration, as the
# real e2e busybox image (and Alpine, the base of agnhost and nginx) ship it.
# Debian's busybox is not a stand-in: it is patched to drop environment
# variables whose names are not shell identifiers ("data-1" from envFrom)
# and prefers its own applets to PATH. The source is the upstream tarball
# as Debian's archive carries it (the only network this needs), checked
# against its pinned SHA-256.
set -euo pipefail
out=$(realpath -m "${1:?usage: busybox.sh OUT}") # absolute: the build below runs in a temp dir
version=1.37.0
sha256=3311dff32e746499f4df0d5df04d7eb396382d7e108bb9250e7b519b837043a4
url=http://deb.debian.org/debian/pool/main/b/busybox/busybox_${version}.orig.tar.bz2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
curl -fsSL "$url" -o "$work/src.tar.bz2"
echo "$sha256  $work/src.tar.bz2" | sha256sum -c --quiet
tar -C "$work" -xjf "$work/src.tar.bz2"
cd "$work/busybox-$version"
make -s defconfig >/dev/null
sed -i 's/^# CONFIG_STATIC is not set/CONFIG_STATIC=y/' .config
make -s -j"$(nproc)" busybox >/dev/null 2>"$work/build.log" || { cat "$work/build.log" >&2; exit 1; }
mkdir -p "$(dirname "$out")"
cp busybox "$out.tmp"
mv "$out.tmp" "$out"
