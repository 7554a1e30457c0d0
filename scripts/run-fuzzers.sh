#!/usr/bin/env bash
# Runs every libFuzzer target of the fuzz build for a bounded time, starting
# from its checked-in corpus (new inputs go to a scratch dir, not the repo).
set -euo pipefail
seconds=${1:-60}
root=$(cd "$(dirname "$0")/.." && pwd)
build="$root/build/fuzz"
status=0
for target in $(find "$build" -type f -perm -u+x -name '*_fuzz'); do
  name=$(basename "$target")
  corpus="$root/fuzz/corpus/${name%_fuzz}"
  scratch=$(mktemp -d)
  echo "== $name for ${seconds}s (seed corpus: $corpus)"
  if ! (cd "$scratch" && "$target" -max_total_time="$seconds" -print_final_stats=1 "$scratch" "$corpus" 2>&1 | tail -12); then
    status=1
  fi
  # libFuzzer leaves crash-* files in its working directory on failure.
  if ls "$scratch"/crash-* "$scratch"/leak-* "$scratch"/timeout-* >/dev/null 2>&1; then
    echo "$name found a failing input:" && ls "$scratch"/crash-* "$scratch"/leak-* "$scratch"/timeout-* 2>/dev/null
    status=1
  fi
  rm -rf "$scratch"
done
exit $status
