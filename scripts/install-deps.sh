#!/usr/bin/env bash
# Installs the Debian packages tripod builds and tests with. Idempotent: does
# nothing (and needs no root) when everything is already there.
set -euo pipefail
pkgs=(
  build-essential cmake ninja-build pkg-config git
  clang lld libclang-rt-14-dev clang-format clang-tidy
  libgtest-dev libgmock-dev libbenchmark-dev libabsl-dev
  libpcap-dev libsodium-dev libxxhash-dev libcli11-dev
  libxdp-dev libbpf-dev linux-libc-dev bpftool libmnl-dev
  libyaml-cpp-dev libspdlog-dev nlohmann-json3-dev
  # The lab: namespaces, a router, real clients, servers and peers.
  iproute2 nftables curl wrk hping3 iperf3 nginx haproxy bird2 procps shellcheck ethtool tcpdump
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
# Servers installed here (nginx, haproxy, bird) are only ever started by the
# lab, inside its namespaces: keep the package scripts from starting them.
policy=/usr/sbin/policy-rc.d
own_policy=0
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$policy" >/dev/null
  $SUDO chmod +x "$policy"
  own_policy=1
fi
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" || {
  if [ "$own_policy" = 1 ]; then $SUDO rm -f "$policy"; fi
  exit 1
}
if [ "$own_policy" = 1 ]; then $SUDO rm -f "$policy"; fi
