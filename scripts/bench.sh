#!/usr/bin/env bash
# make bench: the micro-benchmarks (Google Benchmark, one core), then the
# lab's side-by-side run of tripod, nftables and HAProxy (root only: network
# namespaces), then every `figure` line of both together, last.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
"$root/build/release/bench/tripod_bench" --benchmark_counters_tabular=true | tee "$out/micro.txt"
if [ "$(id -u)" -eq 0 ] && ip netns add tpbenchprobe 2>/dev/null && ip netns del tpbenchprobe; then
  "$root/lab/bench.sh" --rounds "${LAB_ROUNDS:-3}" 2>&1 | tee "$out/lab.txt"
  # The cluster: a node killed under load, with and without replication.
  TRIPOD_BIN="$root/build/release/src/cmd/tripod" "$root/lab/test.sh" tripod_cluster 2>&1 |
    tee "$out/cluster.txt" || echo "bench: the cluster run failed (its figures may be missing)"
else
  echo "bench: lab figures skipped (they need root and network namespaces)"
fi
echo
echo "==== figures"
grep -h '^figure ' "$out"/*.txt
