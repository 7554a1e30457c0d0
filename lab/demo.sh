#!/usr/bin/env bash
# The README's demo (make demo): tripod end to end in the namespace lab.
#   1. a client, an ECMP router, 2 tripod gateways (AF_XDP, FullNAT, stateful
#      firewall) and 3 nginx backends; curl through the VIP;
#   2. a backend killed under load: the health checks take it out of the pool
#      and new connections go to the others;
#   3. a pool change (SIGHUP) under keep-alive load: zero broken connections;
#   4. a summary. Everything is torn down at the end, even on failure.
# Needs root (network namespaces). Exit 0 when every step behaved.
set -euo pipefail

LAB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
LAB="$LAB_DIR/lab.sh"
REPO_DIR=$(cd "$LAB_DIR/.." && pwd)
export TRIPOD_BIN=${TRIPOD_BIN:-$REPO_DIR/build/release/src/cmd/tripod}
NAME=${DEMO_NAME:-tpdemo}
RUN=${LAB_RUN:-/run/tripod-lab}
VIP=10.77.100.1
NGW=2
NBE=3

lab() { "$LAB" "$1" --name "$NAME" "${@:2}"; }
cx() { "$LAB" exec --name "$NAME" c1 "$@"; }
status() { "$TRIPOD_BIN" status --socket "$RUN/$NAME/gw$1/status.sock" "${@:2}"; }
say() { printf '\n== %s\n' "$*"; }
problems=0
problem() { echo "!! $*"; problems=$((problems + 1)); }

trap 'lab down >/dev/null 2>&1 || true' EXIT
lab down >/dev/null 2>&1 || true

say "1. lab up: client -> ECMP router -> $NGW tripod gateways (AF_XDP) -> $NBE nginx backends"
lab up --mode tripod --gateways "$NGW" --backends "$NBE"
declare -A seen=()
ok=0
for _ in $(seq 30); do
  if out=$(cx curl -sS -f -m 2 "http://$VIP/" 2>/dev/null); then
    ok=$((ok + 1))
    b=$(awk '{print $3}' <<<"$out")
    seen[$b]=$((${seen[$b]:-0} + 1))
  fi
done
echo "30 requests through VIP $VIP: $ok answered; per backend: $(for b in "${!seen[@]}"; do printf '%s=%s ' "$b" "${seen[$b]}"; done)"
[ "$ok" -eq 30 ] || problem "only $ok/30 requests answered"
[ "${#seen[@]}" -eq "$NBE" ] || problem "not every backend answered"

say "2. be1's nginx killed under load (new connection per request, 6 s)"
cx wrk -t 2 -c 32 -d 6s -H 'Connection: close' "http://$VIP/" >"$RUN/$NAME/wrk-kill.txt" 2>&1 &
wrk_pid=$!
sleep 2
kill -TERM "$(lab pid be1 nginx)"
t0=$(date +%s%N)
down_ms=""
for _ in $(seq 100); do
  if status 1 --json | grep -A4 '"10.77.0.101"' | grep -q '"health": "down"'; then
    down_ms=$((($(date +%s%N) - t0) / 1000000))
    break
  fi
  sleep 0.05
done
wait "$wrk_pid" || true
kill_reqs=$(awk '/requests in/ {print $1}' "$RUN/$NAME/wrk-kill.txt")
kill_errs=$(awk '/Socket errors:/ {gsub(",", ""); s = $4 + $6 + $8 + $10} /Non-2xx/ {s += $5} END {print s + 0}' "$RUN/$NAME/wrk-kill.txt")
echo "health checks saw be1 down after ${down_ms:-?} ms (interval 500 ms, fall 2)"
echo "wrk: $kill_reqs requests, $kill_errs failed (requests that reached be1 before the checks noticed)"
grep -E "Socket errors|Non-2xx" "$RUN/$NAME/wrk-kill.txt" | sed 's/^/  wrk: /' || true
[ -n "$down_ms" ] || problem "the health checks did not take be1 out within 5 s"
be1=0
for _ in $(seq 20); do
  out=$(cx curl -sS -f -m 2 "http://$VIP/" 2>/dev/null || true)
  grep -q ' be1 ' <<<"$out" && be1=$((be1 + 1))
done
echo "after: 20 requests, $be1 answered by be1"
[ "$be1" -eq 0 ] || problem "be1 still gets new connections"

say "3. pool change under keep-alive load: be2 drained by SIGHUP, 8 s of wrk"
cx wrk -t 2 -c 32 -d 8s "http://$VIP/" >"$RUN/$NAME/wrk-pool.txt" 2>&1 &
wrk_pid=$!
sleep 2
for g in $(seq "$NGW"); do
  cfg="$RUN/$NAME/gw$g/tripod.yaml"
  # web's be2 gets weight 0: drained (keeps its connections, gets no new ones).
  awk 'BEGIN {v = ""} /^  - name: / {v = $3} {if (v == "web" && $0 ~ /10\.77\.0\.102"}/) sub(/"}/, "\", weight: 0}"); print}' \
    "$cfg" >"$cfg.new" && mv "$cfg.new" "$cfg"
  kill -HUP "$(lab pid "gw$g" tripod)"
done
wait "$wrk_pid" || true
pool_reqs=$(awk '/requests in/ {print $1}' "$RUN/$NAME/wrk-pool.txt")
pool_errs=$(awk '/Socket errors:/ {gsub(",", ""); s = $4 + $6 + $8 + $10} /Non-2xx/ {s += $5} END {print s + 0}' "$RUN/$NAME/wrk-pool.txt")
echo "wrk: $pool_reqs requests over 32 keep-alive connections, $pool_errs failed"
grep -E "Socket errors|Non-2xx" "$RUN/$NAME/wrk-pool.txt" | sed 's/^/  wrk: /' || true
grep -h "reload" "$RUN/$NAME"/gw*/tripod.log | tail -4 | sed 's/^/  log: /'
[ "$pool_errs" = 0 ] || problem "$pool_errs requests failed across the pool change"

say "4. summary (gateway 1)"
status 1 | sed 's/^/  /'
echo
if [ "$problems" -eq 0 ]; then
  echo "demo: OK: spread over $NBE backends, be1's failure detected in ${down_ms} ms, pool change under load with 0 failed requests"
else
  echo "demo: $problems problem(s), see above"
fi
[ "$problems" -eq 0 ]
