#!/usr/bin/env bash
# Lab integration tests (ctest -L lab). One scenario per run:
#   test.sh kernel     nftables DNAT/SNAT gateways: spread, IPv6, bulk, a backend killed
#   test.sh haproxy    HAProxy gateways: the same, and the killed backend is routed around
#   test.sh teardown   `down` after a failed or half-finished `up`, lost records, tripod
#                      mode without the daemon
# Exit 0 pass, 1 fail, 77 skip (not root / no network namespaces).
set -euo pipefail

LAB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
LAB="$LAB_DIR/lab.sh"
LAB_RUN=${LAB_RUN:-/run/tripod-lab}
SCENARIO=${1:-}
VIP4=10.77.100.1
VIP6=fd77:100::1
NBE=3
NGW=2
REQS=30

fails=0
pass() { echo "ok   - $*"; }
fail() { echo "FAIL - $*"; fails=$((fails + 1)); }
check() {  # description command...
  local d=$1
  shift
  if "$@"; then pass "$d"; else fail "$d"; fi
}
skip() { echo "skip: $*"; exit 77; }

[ "$(id -u)" -eq 0 ] || skip "needs root"
probe="tplprobe$$"
ip netns add "$probe" 2>/dev/null || skip "cannot create network namespaces"
ip netns del "$probe"
for tool in ip nft nginx haproxy curl iperf3 wrk ethtool; do
  command -v "$tool" >/dev/null || { echo "FAIL - $tool not installed (scripts/install-deps.sh installs it)"; exit 1; }
done

case "$SCENARIO" in
  kernel) NAME=tlk ;;
  haproxy) NAME=tlh ;;
  teardown) NAME=tld ;;
  *) echo "usage: test.sh kernel|haproxy|teardown" >&2; exit 2 ;;
esac

lab() { "$LAB" "$1" --name "$NAME" "${@:2}"; }
cx() { "$LAB" exec --name "$NAME" c1 "$@"; }
lab_ns() { ip netns list | awk '{print $1}' | grep -E "^$1-" || true; }

# Every PID the lab owns right now: recorded ones and anything in its namespaces.
lab_pids() {
  local n
  [ -f "$LAB_RUN/$NAME/pids" ] && awk '{print $3}' "$LAB_RUN/$NAME/pids"
  for n in $(lab_ns "$NAME"); do ip netns pids "$n" 2>/dev/null || true; done
}

# `down` must leave nothing: no namespace, no process, no state.
assert_gone() {  # pids...
  local left p alive=""
  left=$(lab_ns "$NAME")
  check "no namespace of lab $NAME left${left:+ (left: $left)}" test -z "$left"
  for p in "$@"; do if kill -0 "$p" 2>/dev/null; then alive+=" $p($(cat "/proc/$p/comm" 2>/dev/null))"; fi; done
  check "no process of lab $NAME left${alive:+ (alive:$alive)}" test -z "$alive"
  check "state dir $LAB_RUN/$NAME removed" test ! -e "$LAB_RUN/$NAME"
}

cleanup() {
  local rc=$?
  "$LAB" down --name "$NAME" >/dev/null 2>&1 || true
  if [ "$SCENARIO" = teardown ]; then "$LAB" down --name "${NAME}x" >/dev/null 2>&1 || true; fi
  if [ "$rc" -ne 0 ] && [ "$fails" -eq 0 ]; then echo "FAIL - test aborted (exit $rc)"; fi
  exit "$rc"
}
trap cleanup EXIT

# A previous run killed hard may have left this lab behind.
"$LAB" down --name "$NAME" >/dev/null 2>&1 || true

# curl N times through a URL; sets OKS (answers) and SEEN (sorted backend names).
curl_many() {  # n url
  local out
  OKS=0 SEEN=""
  for _ in $(seq "$1"); do
    if out=$(cx curl -sS -f -m 2 "$2" 2>/dev/null); then
      OKS=$((OKS + 1))
      SEEN+="$(echo "$out" | awk '{print $3}') "
    fi
  done
  SEEN=$(echo "$SEEN" | tr ' ' '\n' | grep -v '^$' | sort | uniq -c | awk '{printf "%s:%s ", $2, $1}')
}

scenario_gateway() {
  local mode=$1 pids
  check "lab up ($mode, $NGW gateways, $NBE backends)" lab up --mode "$mode" --gateways "$NGW" --backends "$NBE"
  [ "$fails" -eq 0 ] || return 0

  curl_many "$REQS" "http://$VIP4/"
  echo "     IPv4 VIP: $OKS/$REQS answered; backends: $SEEN"
  check "all $REQS IPv4 requests through the VIP answered" test "$OKS" -eq "$REQS"
  local b
  for b in $(seq "$NBE"); do
    check "be$b answered through the VIP (spread)" grep -q "be$b:" <<<"$SEEN"
  done

  curl_many 12 "http://[$VIP6]/"
  echo "     IPv6 VIP: $OKS/12 answered; backends: $SEEN"
  check "all 12 IPv6 requests through the VIP answered" test "$OKS" -eq 12

  local size
  size=$(cx curl -sS -f -m 10 -o /dev/null -w '%{size_download}' "http://$VIP4/big.bin" || echo 0)
  check "big file through the VIP complete ($size bytes)" test "$size" -eq $((16 * 1024 * 1024))

  local iperf gbps
  iperf=$(cx timeout 15 iperf3 -c "$VIP4" -t 1 -f g --connect-timeout 3000 2>&1 || true)
  gbps=$(awk '/receiver/ {for (i = 1; i <= NF; i++) if ($i == "Gbits/sec") v = $(i - 1)} END {print v + 0}' <<<"$iperf")
  echo "     iperf3 1 s through the VIP: $gbps Gbit/s"
  check "iperf3 through the VIP carried data" awk -v g="$gbps" 'BEGIN {exit !(g > 0)}'

  if [ "$mode" = kernel ]; then
    local g n
    for g in $(seq "$NGW"); do
      n=$("$LAB" exec --name "$NAME" "gw$g" nft list chain inet lab prerouting |
        awk '/dport 80 counter/ {for (i = 1; i <= NF; i++) if ($i == "packets") s += $(i + 1)} END {print s + 0}')
      check "router ECMP sent new connections to gw$g ($n SYNs)" test "$n" -gt 0
    done
  fi

  # Kill one backend's nginx, by its recorded PID.
  local pid
  pid=$(lab pid be1 nginx)
  check "be1 nginx PID recorded ($pid)" test -n "$pid"
  kill -TERM "$pid"
  for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  check "be1 nginx (PID $pid) stopped" bash -c "! kill -0 $pid 2>/dev/null"
  check "be1 refuses HTTP now" bash -c "! '$LAB' exec --name '$NAME' gw1 curl -s -m 2 -o /dev/null http://10.77.0.101/"

  if [ "$mode" = kernel ]; then
    curl_many "$REQS" "http://$VIP4/"
    echo "     kernel mode with be1 down: $((REQS - OKS))/$REQS requests failed (nftables has no health checks); backends: $SEEN"
    check "with be1 down, nftables still sends some new connections to it (failures seen)" test "$OKS" -lt "$REQS"
    check "the other backends still answer" test "$OKS" -gt 0
  else
    sleep 2  # health checks: inter 500ms, fall 2
    curl_many "$REQS" "http://$VIP4/"
    echo "     haproxy mode with be1 down: $((REQS - OKS))/$REQS requests failed; backends: $SEEN"
    check "with be1 down, HAProxy answers every request" test "$OKS" -eq "$REQS"
  fi
  check "no answer from be1 while it is down" bash -c "! grep -q 'be1:' <<<'$SEEN'"

  pids=$(lab_pids | sort -u | tr '\n' ' ')
  echo "     lab processes before down: $pids"
  check "lab processes found before down" test -n "$pids"
  check "lab down" lab down
  # shellcheck disable=SC2086
  assert_gone $pids
  check "lab down again (idempotent)" lab down
}

scenario_teardown() {
  local pids out
  # 1. up fails half-way and tears itself down
  if LAB_FAIL_AT=gateways lab up >/dev/null 2>&1; then fail "up with LAB_FAIL_AT=gateways fails"; else pass "up with LAB_FAIL_AT=gateways fails"; fi
  assert_gone

  # 2. up fails after the servers started, kept for inspection: down cleans up
  if LAB_KEEP_ON_FAIL=1 LAB_FAIL_AT=servers lab up >/dev/null 2>&1; then fail "kept failed up fails"; else pass "kept failed up fails"; fi
  pids=$(lab_pids | sort -u | tr '\n' ' ')
  check "half-finished lab has namespaces" test -n "$(lab_ns "$NAME")"
  check "half-finished lab has processes ($pids)" test -n "$pids"
  check "down after a half-finished up" lab down
  # shellcheck disable=SC2086
  assert_gone $pids

  # 3. the state dir is lost: down still finds the namespaces and their processes
  check "lab up (haproxy)" lab up --mode haproxy --gateways 1 --backends 2
  pids=$(lab_pids | sort -u | tr '\n' ' ')
  rm -rf "${LAB_RUN:?}/$NAME"
  check "down without any state dir" lab down
  # shellcheck disable=SC2086
  assert_gone $pids

  # 4. tripod mode without the daemon fails clearly and leaves nothing behind
  if out=$(TRIPOD_BIN=/bin/false lab up --mode tripod --gateways 1 --backends 1 2>&1); then
    fail "tripod mode without the daemon fails"
  else
    pass "tripod mode without the daemon fails"
  fi
  check "... with the message 'tripod mode needs the daemon (issue 4)'" grep -q 'tripod mode needs the daemon (issue 4)' <<<"$out"
  assert_gone

  # 5. a second lab with another name is left alone by down
  check "lab up (other lab ${NAME}x)" "$LAB" up --name "${NAME}x" --mode none --gateways 1 --backends 1
  check "lab up ($NAME)" lab up --mode none --gateways 1 --backends 1
  if lab up --mode none >/dev/null 2>&1; then fail "a second up of $NAME fails"; else pass "a second up of $NAME fails"; fi
  check "... and leaves the running lab alone" kill -0 "$(lab pid be1 nginx)"
  check "lab down ($NAME)" lab down
  check "the other lab still has its namespaces" test -n "$(lab_ns "${NAME}x")"
  check "the other lab's nginx still runs" kill -0 "$("$LAB" pid --name "${NAME}x" be1 nginx)"
  check "lab down (${NAME}x)" "$LAB" down --name "${NAME}x"
  check "no namespace of ${NAME}x left" test -z "$(lab_ns "${NAME}x")"
}

case "$SCENARIO" in
  kernel | haproxy) scenario_gateway "$SCENARIO" ;;
  teardown) scenario_teardown ;;
esac

if [ "$fails" -ne 0 ]; then
  echo "$fails check(s) failed"
  exit 1
fi
echo "all checks passed ($SCENARIO)"
