#!/usr/bin/env bash
# Installs the Debian packages tripod builds and tests with. Idempotent: does
# nothing (and needs no root) when everything is already there.
set -euo pipefail
pkgs=(
  build-essential cmake ninja-build pkg-config git
  clang lld libclang-rt-14-dev clang-format clang-tidy
  libgtest-dev libgmock-dev libbenchmark-dev libabsl-dev
  libpcap-dev libsodium-dev libxxhash-dev libcli11-dev
  libxdp-dev libbpf-dev
)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "install-deps: installing ${missing[*]}"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
