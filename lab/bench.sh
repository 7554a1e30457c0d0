#!/usr/bin/env bash
# Side-by-side benchmark on one lab, in one run: for each gateway mode (tripod
# when the daemon supports `run --config`, the kernel's nftables path, HAProxy)
# wrk with a new connection per request, wrk keep-alive and iperf3 bulk through
# the VIP; then the summary `figure` lines.
#
#   bench.sh [--name NAME] [--duration S] [--connections C] [--threads T]
#            [--modes "tripod kernel haproxy"] [--gateways N] [--backends M]
#            [--rounds R]
#
# With --rounds R (default 3) the modes take turns R times (A B A B ...) and
# each figure is the median of the R runs: other load on the machine then hits
# every mode alike.
#
# Uses the lab NAME if it is up (and leaves it up), otherwise builds one and
# tears it down at the end. Every client run is bounded by `timeout`, and the
# whole run by a watchdog (BENCH_TIMEOUT seconds, default from the durations).
set -euo pipefail

LAB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
LAB="$LAB_DIR/lab.sh"
REPO_DIR=$(cd "$LAB_DIR/.." && pwd)
export TRIPOD_BIN=${TRIPOD_BIN:-$REPO_DIR/build/release/src/cmd/tripod}

ARGS=("$@")
NAME=tplb
DUR=5
CONNS=64
THREADS=2
NGW=2
NBE=3
ROUNDS=3
MODES=""
VIP4=10.77.100.1
IPERF_PORT=5201

while [ $# -gt 0 ]; do
  case "$1" in
    --name) NAME=$2; shift 2 ;;
    --duration) DUR=$2; shift 2 ;;
    --connections) CONNS=$2; shift 2 ;;
    --threads) THREADS=$2; shift 2 ;;
    --modes) MODES=$2; shift 2 ;;
    --gateways) NGW=$2; shift 2 ;;
    --backends) NBE=$2; shift 2 ;;
    --rounds) ROUNDS=$2; shift 2 ;;
    -h | --help) awk 'NR > 1 && /^#/ {sub(/^# ?/, ""); print; next} NR > 1 {exit}' "$0"; exit 0 ;;
    *) echo "bench: unknown argument $1" >&2; exit 2 ;;
  esac
done
[[ $DUR =~ ^[1-9][0-9]*$ && $DUR -le 60 ]] || { echo "bench: --duration 1..60" >&2; exit 2; }
[[ $ROUNDS =~ ^[1-9]$ ]] || { echo "bench: --rounds 1..9" >&2; exit 2; }

tripod_supported() {
  [ -x "$TRIPOD_BIN" ] && "$TRIPOD_BIN" run --help 2>&1 | grep -q -- '--config'
}
if [ -z "$MODES" ]; then
  MODES="kernel haproxy"
  if tripod_supported; then MODES="tripod $MODES"; else
    echo "bench: tripod not measured: $TRIPOD_BIN does not support 'run --config' (issue 4)" >&2
  fi
fi
read -r -a MODE_LIST <<<"$MODES"

# Watchdog: per mode 3 runs of DUR plus slack, plus lab up/down.
BENCH_TIMEOUT=${BENCH_TIMEOUT:-$((ROUNDS * ${#MODE_LIST[@]} * (3 * DUR + 40) + 60))}
if [ -z "${BENCH_UNDER_TIMEOUT:-}" ]; then
  BENCH_UNDER_TIMEOUT=1 exec timeout -k 30 "$BENCH_TIMEOUT" "$0" "${ARGS[@]}"
fi

own_lab=0
cleanup() {
  local rc=$?
  if [ "$own_lab" = 1 ]; then "$LAB" down --name "$NAME" || rc=1; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'echo "bench: stopped (overall timeout ${BENCH_TIMEOUT}s?)" >&2; exit 124' TERM INT

if [ -d "/run/tripod-lab/$NAME" ]; then
  echo "bench: using the running lab '$NAME'" >&2
else
  own_lab=1
  "$LAB" up --name "$NAME" --gateways "$NGW" --backends "$NBE" --mode none
fi

cx() { "$LAB" exec --name "$NAME" c1 "$@"; }

# wrk latency values come as 1.23us / 4.56ms / 1.20s / 1.00m: to ms.
to_ms() {
  awk -v v="$1" 'BEGIN {
    n = v + 0; u = v; sub(/^[0-9.]+/, "", u);
    if (u == "us") n /= 1000; else if (u == "s") n *= 1000; else if (u == "m") n *= 60000;
    printf "%.2f", n }'
}

declare -A R   # R[mode.metric] = the values of every round, space-separated
add() { R[$1]="${R[$1]:-}${R[$1]:+ }$2"; }
run_wrk() {  # mode kind(new_conn|keepalive) extra-args...
  local mode=$1 kind=$2 out
  shift 2
  out=$(cx timeout $((DUR + 15)) wrk -t "$THREADS" -c "$CONNS" -d "${DUR}s" --timeout 2s --latency "$@" "http://$VIP4/" 2>&1) || {
    echo "bench: wrk ($mode $kind) failed:" >&2
    echo "$out" >&2
    return 0
  }
  echo "--- $mode $kind: wrk -t $THREADS -c $CONNS -d ${DUR}s $(printf "%q " "$@")" >&2
  echo "$out" | grep -E 'Requests/sec|Socket errors|Non-2xx|requests in|  (50|99)%' >&2 || true
  add "$mode.rps.$kind" "$(echo "$out" | awk '/^Requests\/sec:/ {printf "%.0f", $2}')"
  add "$mode.p50.$kind" "$(to_ms "$(echo "$out" | awk '$1 == "50%" {print $2}')")"
  add "$mode.p99.$kind" "$(to_ms "$(echo "$out" | awk '$1 == "99%" {print $2}')")"
  add "$mode.err.$kind" "$(echo "$out" | awk '/Socket errors:/ {gsub(",", ""); s = $4 + $6 + $8 + $10} /Non-2xx/ {s += $5} END {print s + 0}')"
}

run_iperf() {  # mode
  local mode=$1 out
  out=$(cx timeout $((DUR + 15)) iperf3 -c "$VIP4" -p "$IPERF_PORT" -t "$DUR" -f g --connect-timeout 3000 2>&1) || {
    echo "bench: iperf3 ($mode) failed:" >&2
    echo "$out" >&2
    return 0
  }
  echo "--- $mode bulk: iperf3 -t $DUR" >&2
  echo "$out" | grep -E 'sender|receiver' >&2 || true
  add "$mode.gbps.bulk" "$(echo "$out" | awk '/receiver/ {for (i = 1; i <= NF; i++) if ($i == "Gbits/sec") v = $(i - 1)} END {print v}')"
}

echo "bench: $(nproc) CPUs, load average at start: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
for round in $(seq "$ROUNDS"); do
for mode in "${MODE_LIST[@]}"; do
  echo "=== round $round/$ROUNDS: mode $mode" >&2
  if ! "$LAB" mode --name "$NAME" "$mode"; then
    echo "bench: mode $mode could not be set up; skipped" >&2
    continue
  fi
  ok=0
  for _ in $(seq 20); do
    if cx curl -sf -m 2 -o /dev/null "http://$VIP4/"; then ok=1; break; fi
    sleep 0.25
  done
  if [ "$ok" != 1 ]; then echo "bench: no answer through the VIP in $mode mode; skipped" >&2; continue; fi
  run_wrk "$mode" new_conn -H 'Connection: close'
  sleep 1
  run_wrk "$mode" keepalive
  sleep 1
  run_iperf "$mode"
  sleep 1
done
done
load_end=$(cut -d' ' -f1-3 /proc/loadavg)
"$LAB" mode --name "$NAME" none >/dev/null 2>&1 || true

label() { case "$1" in kernel) echo nftables ;; *) echo "$1" ;; esac; }
# Median of a round's values (errors: the sum).
val() {
  local v=${R[$1]:-}
  if [ -z "$v" ]; then echo n/a; return; fi
  if [[ $1 == *.err.* ]]; then tr ' ' '\n' <<<"$v" | awk '{s += $1} END {print s}'; return; fi
  local fmt=%.2f
  [[ $1 == *.rps.* ]] && fmt=%.0f
  tr ' ' '\n' <<<"$v" | sort -g | awk -v f="$fmt" '{a[NR] = $1}
    END {printf f "\n", (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'
}

echo
printf '%-9s %12s %12s %9s %9s %8s %10s\n' mode new_conn/s keepalive/s p50_ms p99_ms errors bulk_Gbps
for mode in "${MODE_LIST[@]}"; do
  printf '%-9s %12s %12s %9s %9s %8s %10s\n' "$(label "$mode")" "$(val "$mode.rps.new_conn")" \
    "$(val "$mode.rps.keepalive")" "$(val "$mode.p50.new_conn")" "$(val "$mode.p99.new_conn")" \
    "$(val "$mode.err.new_conn")/$(val "$mode.err.keepalive")" "$(val "$mode.gbps.bulk")"
done
echo "(median of $ROUNDS round(s) of ${DUR}s; p50/p99: wrk --latency, new connection per request;"
echo " errors: socket errors + non-2xx, new_conn/keepalive; $(nproc) CPUs, load average at the end: $load_end)"
if [ "$ROUNDS" -gt 1 ]; then
  for k in "${!R[@]}"; do echo "  rounds $k: ${R[$k]}"; done | sort
fi
echo

# figure lab.<metric> <v> <unit> vs <peer> <v> <unit> ...; the first mode is
# named in the figure when it is not tripod.
figure() {  # figure-name key unit
  local name=$1 key=$2 unit=$3 first=${MODE_LIST[0]} line m
  if [ "$first" = tripod ]; then line="figure $name"; else line="figure $name.$(label "$first")"; fi
  line+=" $(val "$first.$key") $unit"
  for m in "${MODE_LIST[@]:1}"; do line+=" vs $(label "$m") $(val "$m.$key") $unit"; done
  echo "$line"
}
figure lab.rps.new_conn rps.new_conn req/s
figure lab.rps.keepalive rps.keepalive req/s
figure lab.gbps.bulk gbps.bulk Gbit/s
figure lab.p99.new_conn p99.new_conn ms
figure lab.p50.new_conn p50.new_conn ms
