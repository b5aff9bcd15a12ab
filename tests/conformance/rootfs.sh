#!/usr/bin/env bash
# rootfs.sh OUT.tar: the Debian (bookworm, minbase) tree the conformance
# stand-in images share, made by mmdebstrap from Debian's archive (the only
# network this needs). It carries what tests run inside the real images:
# bash, OpenBSD nc, curl, wget, dig/nslookup, ip, socat, nginx, procps.
# The images whose real base is Alpine get upstream busybox as /bin/sh on
# top (tests/conformance/mkimages).
set -euo pipefail
out=${1:?usage: rootfs.sh OUT.tar}
pkgs=bash,netcat-openbsd,curl,wget,bind9-dnsutils,iproute2,socat,iperf,util-linux,procps,nginx-light,ca-certificates
mkdir -p "$(dirname "$out")"
mmdebstrap --quiet --variant=minbase --mode=root --format=tar --include="$pkgs" \
	--dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/doc/*' \
	--dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-exclude=/usr/share/info/*' \
	--customize-hook='rm -f "$1/etc/hostname" "$1/etc/resolv.conf"' \
	bookworm "$out.tmp" http://deb.debian.org/debian
mv "$out.tmp" "$out"
