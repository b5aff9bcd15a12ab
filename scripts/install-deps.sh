#!/usr/bin/env bash
# install-deps.sh PKG...: install the Debian packages the build and tests need,
# skipping the ones already installed (so an offline machine that has them
# works), and check the Go toolchain.
set -euo pipefail
missing=()
for p in "$@"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing Debian packages: ${missing[*]}"
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo=sudo
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
command -v go >/dev/null || { echo "Go is required (https://go.dev/dl, 1.26 or later); put it on PATH" >&2; exit 1; }
