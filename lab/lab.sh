#!/usr/bin/env bash
# tripod network-namespace lab: clients, an ECMP router, gateway nodes and
# nginx backends on one L2 segment, every piece in its own network namespace.
#
#   lab.sh up     [--name NAME] [--gateways N] [--backends M] [--clients K]
#                 [--mode kernel|haproxy|tripod|none]
#   lab.sh mode   [--name NAME] kernel|haproxy|tripod|none   switch the gateways
#   lab.sh down   [--name NAME]                              idempotent teardown
#   lab.sh status [--name NAME]
#   lab.sh exec   [--name NAME] NS CMD...                    NS: rt, sw, c1, gw1, be1...
#   lab.sh pid    [--name NAME] NS ROLE                      PID of a lab process
#
# Everything the lab creates lives in namespaces named NAME-<role>; the root
# namespace only sees the namespaces being created and deleted. Every process
# the lab starts is recorded (namespace, role, PID) in $LAB_RUN/NAME/pids and
# stopped by that PID. See lab/README.md for the topology and the addresses.
set -euo pipefail

LAB_RUN=${LAB_RUN:-/run/tripod-lab}
LAB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(cd "$LAB_DIR/.." && pwd)
TRIPOD_BIN=${TRIPOD_BIN:-$REPO_DIR/build/release/src/cmd/tripod}
# Size of the file served for throughput runs (/big.bin), in MiB.
LAB_BIG_MIB=${LAB_BIG_MIB:-16}
# Fault injection for the tests: abort `up` right after this stage
# (router, clients, gateways, backends, servers).
LAB_FAIL_AT=${LAB_FAIL_AT:-}

# ---------------------------------------------------------------------------
# Addresses (all the lab's own; see README.md)
# ---------------------------------------------------------------------------
VIP4=10.77.100.1
VIP6=fd77:100::1
VIP4_NET=10.77.100.0/24
VIP6_NET=fd77:100::/64
SEG4_PREFIX=10.77.0       # the L2 segment: 10.77.0.0/24, fd77::/64
SEG6_PREFIX=fd77:         # fd77::<host>
RT_SEG_HOST=1             # router on the segment: 10.77.0.1, fd77::1
HTTP_PORT=80
IPERF_PORT=5201
HASH_SEED=0x77            # jhash seed shared by every node (same choice everywhere)
# File descriptors the servers may use: the hard limit we run under (capped).
NOFILE=$(ulimit -Hn)
if [ "$NOFILE" = unlimited ] || [ "$NOFILE" -gt 65536 ]; then NOFILE=65536; fi

gw_ip4() { echo "$SEG4_PREFIX.$((10 + $1))"; }      # node address    10.77.0.11..
gw_snat4() { echo "$SEG4_PREFIX.$((20 + $1))"; }    # SNAT address    10.77.0.21..
be_ip4() { echo "$SEG4_PREFIX.$((100 + $1))"; }     # backend         10.77.0.101..
gw_ip6() { echo "${SEG6_PREFIX}:$((10 + $1))"; }    # fd77::11..
gw_snat6() { echo "${SEG6_PREFIX}:$((20 + $1))"; }  # fd77::21..
# tripod's own SNAT addresses: the NAT modes must not share one, or the
# backends' TIME_WAIT sockets left by one mode reject the other's SYNs on the
# same 4-tuple (PAWS; see "Why HAProxy does not use the SNAT address").
gw_tsnat4() { echo "$SEG4_PREFIX.$((30 + $1))"; }   # 10.77.0.31..
gw_tsnat6() { echo "${SEG6_PREFIX}:$((30 + $1))"; } # fd77::31..
be_ip6() { echo "${SEG6_PREFIX}:$((100 + $1))"; }   # fd77::101..
cl_ip4() { echo "10.77.$((10 + $1)).2"; }           # client k: 10.77.(10+k).2/24
cl_rt4() { echo "10.77.$((10 + $1)).1"; }
cl_ip6() { echo "fd77:$((10 + $1))::2"; }
cl_rt6() { echo "fd77:$((10 + $1))::1"; }
# Deterministic MACs: 02:77:00:00:<role>:<index>
mac_of() { printf '02:77:00:00:%02x:%02x' "$1" "$2"; }
rt_mac() { mac_of 0 1; }
gw_mac() { mac_of 2 "$1"; }
be_mac() { mac_of 1 "$1"; }
cl_mac() { mac_of 3 "$1"; }

# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------
die() { echo "lab: $*" >&2; exit 1; }
log() { echo "lab[$NAME]: $*" >&2; }

NAME=tpl
NGW=2
NBE=3
NCL=1
MODE=kernel

state() { echo "$LAB_RUN/$NAME"; }
ns() { echo "$NAME-$1"; }
nsx() { local n=$1; shift; ip netns exec "$(ns "$n")" "$@"; }
sysctl_in() { local n=$1; shift; local kv; for kv in "$@"; do nsx "$n" sysctl -qw "$kv" >/dev/null; done; }

check_name() {
  [[ $NAME =~ ^[a-z][a-z0-9]{0,7}$ ]] ||
    die "lab name must be 1-8 of [a-z0-9] starting with a letter (got '$NAME')"
}

load_config() {
  local f
  f="$(state)/config"
  [ -f "$f" ] || die "no lab '$NAME' (no $f); run: lab.sh up --name $NAME"
  # shellcheck disable=SC1090
  . "$f"
}

# Namespaces of a lab: the recorded ones plus any that match the lab's role
# pattern (covers an `up` that died before recording).
lab_namespaces() {
  {
    [ -f "$(state)/netns" ] && cat "$(state)/netns"
    ip netns list 2>/dev/null | awk '{print $1}' | grep -E "^$NAME-(rt|sw|c[0-9]+|gw[0-9]+|be[0-9]+)\$" || true
  } | sort -u
}

add_ns() {
  local n
  n=$(ns "$1")
  echo "$n" >>"$(state)/netns"
  ip netns add "$n"
  nsx "$1" ip link set lo up
  # Fresh namespaces get kernel defaults; set what the lab relies on anyway.
  sysctl_in "$1" net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0 \
    net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0 \
    net.ipv6.conf.all.accept_ra=0 net.ipv6.conf.default.accept_ra=0
}

# veth between two lab namespaces, created directly inside them.
add_veth() {  # ns1 if1 ns2 if2 [mac1]
  ip link add "$2" netns "$(ns "$1")" ${5:+address "$5"} type veth peer name "$4" netns "$(ns "$3")"
  # No TX checksum offload: a veth hands the packet over with the checksum
  # unfinished (CHECKSUM_PARTIAL), which XDP and AF_XDP then see as a wrong
  # checksum. A real NIC receives finished ones; make the veths do the same.
  nsx "$1" ethtool -K "$2" tx off >/dev/null
  nsx "$3" ethtool -K "$4" tx off >/dev/null
  nsx "$1" ip link set "$2" up
  nsx "$3" ip link set "$4" up
}

# Start a long-running process in a namespace and record its PID. The command
# must stay in the foreground (ip netns exec execs it, so $! is its PID).
start_proc() {  # ns role logfile cmd...
  local n=$1 role=$2 logf=$3
  shift 3
  ip netns exec "$(ns "$n")" "$@" </dev/null >>"$logf" 2>&1 &
  local pid=$!
  echo "$(ns "$n") $role $pid" >>"$(state)/pids"
  disown "$pid" 2>/dev/null || true
  echo "$pid"
}

pid_alive() { [ -n "$1" ] && kill -0 "$1" 2>/dev/null; }

# Stop one recorded process: only if it still runs in the recorded namespace
# (so a recycled PID is never hit). TERM, then KILL after 3 s.
stop_pid() {  # nsname pid
  local n=$1 pid=$2 i
  pid_alive "$pid" || return 0
  local in
  in=$(ip netns identify "$pid" 2>/dev/null || true)
  [ "$in" = "$n" ] || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for i in $(seq 30); do pid_alive "$pid" || return 0; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
  for i in $(seq 20); do pid_alive "$pid" || return 0; sleep 0.1; done
  echo "lab: pid $pid in $n did not exit" >&2
}

# Stop recorded processes whose role matches a regex; drop their lines.
stop_roles() {  # role-regex
  local f
  f="$(state)/pids"
  [ -f "$f" ] || return 0
  local n role pid
  while read -r n role pid; do
    [[ $role =~ $1 ]] && stop_pid "$n" "$pid"
  done <"$f"
  awk -v re="$1" '$2 !~ re' "$f" >"$f.new" && mv "$f.new" "$f"
}

wait_tcp() {  # ns ip port [tries] -- wait until something listens
  local n=$1 ip=$2 port=$3 tries=${4:-50} i
  for i in $(seq "$tries"); do
    if nsx "$n" bash -c "exec 3<>/dev/tcp/$ip/$port" 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  return 1
}

fail_at() { if [ "$LAB_FAIL_AT" = "$1" ]; then die "LAB_FAIL_AT=$1: aborting up on purpose"; fi; }

# ---------------------------------------------------------------------------
# topology
# ---------------------------------------------------------------------------
build_topology() {
  local i st
  st=$(state)

  # The L2 segment: a bridge in its own namespace.
  add_ns sw
  sysctl_in sw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
  nsx sw ip link add br0 type bridge stp_state 0 forward_delay 0
  nsx sw ip link set br0 up

  # Router.
  add_ns rt
  sysctl_in rt net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1 \
    net.ipv4.fib_multipath_hash_policy=1 net.ipv6.fib_multipath_hash_policy=1 \
    net.ipv4.conf.all.send_redirects=0 net.ipv4.conf.default.send_redirects=0
  add_veth rt seg sw p-rt "$(rt_mac)"
  nsx sw ip link set p-rt master br0
  nsx rt ip addr add "$SEG4_PREFIX.$RT_SEG_HOST/24" dev seg
  nsx rt ip addr add "${SEG6_PREFIX}:$RT_SEG_HOST/64" dev seg nodad
  fail_at router

  # Clients, each on its own link to the router.
  for i in $(seq "$NCL"); do
    add_ns "c$i"
    sysctl_in "c$i" "net.ipv4.ip_local_port_range=1024 65535" net.ipv4.tcp_tw_reuse=1
    add_veth "c$i" eth0 rt "c$i" "$(cl_mac "$i")"
    nsx "c$i" ip addr add "$(cl_ip4 "$i")/24" dev eth0
    nsx "c$i" ip addr add "$(cl_ip6 "$i")/64" dev eth0 nodad
    nsx "c$i" ip route add default via "$(cl_rt4 "$i")"
    nsx "c$i" ip -6 route add default via "$(cl_rt6 "$i")"
    nsx rt ip addr add "$(cl_rt4 "$i")/24" dev "c$i"
    nsx rt ip addr add "$(cl_rt6 "$i")/64" dev "c$i" nodad
  done
  fail_at clients

  # Gateway nodes: one interface (eth0) on the segment, default route to the router.
  for i in $(seq "$NGW"); do
    add_ns "gw$i"
    sysctl_in "gw$i" net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1 \
      net.ipv4.conf.all.send_redirects=0 net.ipv4.conf.default.send_redirects=0
    add_veth "gw$i" eth0 sw "p-gw$i" "$(gw_mac "$i")"
    nsx sw ip link set "p-gw$i" master br0
    nsx "gw$i" ip addr add "$(gw_ip4 "$i")/24" dev eth0
    nsx "gw$i" ip addr add "$(gw_snat4 "$i")/24" dev eth0
    nsx "gw$i" ip addr add "$(gw_ip6 "$i")/64" dev eth0 nodad
    # preferred_lft 0: never the kernel's own source address (health checks,
    # ND): what reaches a SNAT address is tripod's when tripod runs.
    nsx "gw$i" ip addr add "$(gw_snat6 "$i")/64" dev eth0 nodad preferred_lft 0
    nsx "gw$i" ip addr add "$(gw_tsnat4 "$i")/24" dev eth0
    nsx "gw$i" ip addr add "$(gw_tsnat6 "$i")/64" dev eth0 nodad preferred_lft 0
    nsx "gw$i" ip route add default via "$SEG4_PREFIX.$RT_SEG_HOST"
    nsx "gw$i" ip -6 route add default via "${SEG6_PREFIX}:$RT_SEG_HOST"
  done
  fail_at gateways

  # ECMP on the router: the VIP prefixes via every gateway node.
  local nh4=() nh6=()
  for i in $(seq "$NGW"); do
    nh4+=(nexthop via "$(gw_ip4 "$i")" dev seg weight 1)
    nh6+=(nexthop via "$(gw_ip6 "$i")" dev seg weight 1)
  done
  nsx rt ip route add "$VIP4_NET" "${nh4[@]}"
  nsx rt ip -6 route add "$VIP6_NET" "${nh6[@]}"

  # Backends: VIP on lo (for DSR) with arp_ignore/arp_announce, default route
  # to the router (DSR replies go straight to it; FullNAT replies stay on-link).
  for i in $(seq "$NBE"); do
    add_ns "be$i"
    sysctl_in "be$i" net.ipv4.conf.all.arp_ignore=1 net.ipv4.conf.all.arp_announce=2 \
      net.ipv4.conf.default.arp_ignore=1 net.ipv4.conf.default.arp_announce=2 \
      "net.core.somaxconn=65535" net.ipv4.tcp_max_syn_backlog=65535
    add_veth "be$i" eth0 sw "p-be$i" "$(be_mac "$i")"
    nsx sw ip link set "p-be$i" master br0
    nsx "be$i" ip addr add "$(be_ip4 "$i")/24" dev eth0
    nsx "be$i" ip addr add "$(be_ip6 "$i")/64" dev eth0 nodad
    nsx "be$i" ip addr add "$VIP4/32" dev lo
    nsx "be$i" ip addr add "$VIP6/128" dev lo nodad
    nsx "be$i" ip route add default via "$SEG4_PREFIX.$RT_SEG_HOST"
    nsx "be$i" ip -6 route add default via "${SEG6_PREFIX}:$RT_SEG_HOST"
  done
  fail_at backends

  # Shared content: a big file for throughput, hard-linked into each docroot.
  mkdir -p "$st/www"
  head -c "$((LAB_BIG_MIB * 1024 * 1024))" /dev/zero >"$st/www/big.bin"
  for i in $(seq "$NBE"); do start_backend "$i"; done
  for i in $(seq "$NBE"); do
    wait_tcp "be$i" "$(be_ip4 "$i")" "$HTTP_PORT" || die "nginx on be$i did not start (see $st/be$i/nginx.log)"
    wait_tcp "be$i" "$(be_ip4 "$i")" "$IPERF_PORT" || die "iperf3 on be$i did not start (see $st/be$i/iperf3.log)"
  done
  fail_at servers
}

start_backend() {  # index
  local i=$1 d
  d="$(state)/be$i"
  mkdir -p "$d/www" "$d/tmp"
  printf 'backend %s be%s %s\n' "$NAME" "$i" "$(be_ip4 "$i")" >"$d/www/index.html"
  ln -f "$(state)/www/big.bin" "$d/www/big.bin"
  chmod -R a+rX "$(state)/www" "$d"
  cat >"$d/nginx.conf" <<EOF
# generated by lab.sh for $(ns "be$i")
daemon off;
master_process on;
worker_processes 1;
pid $d/nginx.pid;
error_log $d/nginx.log warn;
worker_rlimit_nofile $NOFILE;
events { worker_connections $((NOFILE / 2)); multi_accept on; }
http {
  access_log off;
  sendfile on;
  tcp_nopush on;
  keepalive_requests 10000000;
  keepalive_timeout 60s;
  client_body_temp_path $d/tmp/body;
  proxy_temp_path $d/tmp/proxy;
  fastcgi_temp_path $d/tmp/fastcgi;
  uwsgi_temp_path $d/tmp/uwsgi;
  scgi_temp_path $d/tmp/scgi;
  default_type application/octet-stream;
  server {
    listen $HTTP_PORT backlog=65535;
    listen [::]:$HTTP_PORT backlog=65535;
    root $d/www;
    add_header X-Backend be$i;
    location = / { default_type text/plain; try_files /index.html =404; }
  }
}
EOF
  start_proc "be$i" nginx "$d/nginx.log" nginx -e "$d/nginx.log" -p "$d" -c "$d/nginx.conf" >/dev/null
  start_proc "be$i" iperf3 "$d/iperf3.log" iperf3 -s -p "$IPERF_PORT" >/dev/null
}

# ---------------------------------------------------------------------------
# gateway modes
# ---------------------------------------------------------------------------
# Undo whatever mode the gateways were in.
gateway_reset() {
  local i
  stop_roles '^(haproxy|tripod)$'
  for i in $(seq "$NGW"); do
    [ -e "/run/netns/$(ns "gw$i")" ] || continue
    nsx "gw$i" nft delete table inet lab 2>/dev/null || true
    nsx "gw$i" ip addr del "$VIP4/32" dev lo 2>/dev/null || true
    nsx "gw$i" ip addr del "$VIP6/128" dev lo 2>/dev/null || true
    nsx "gw$i" ip link set dev eth0 xdp off 2>/dev/null || true
  done
}

# kernel: nftables DNAT to the backends + SNAT to the node's SNAT address,
# with conntrack keeping each connection on its backend. HTTP connections are
# spread with numgen random; iperf3 (control + data connections must meet the
# same server) by jhash of the client address, identical on every node.
mode_kernel() {
  local i j map4 map6 rules
  map4="" map6=""
  for j in $(seq "$NBE"); do
    map4+="$((j - 1)) : $(be_ip4 "$j"), "
    map6+="$((j - 1)) : $(be_ip6 "$j"), "
  done
  map4=${map4%, } map6=${map6%, }
  for i in $(seq "$NGW"); do
    rules="$(state)/gw$i/nft.conf"
    mkdir -p "$(dirname "$rules")"
    cat >"$rules" <<EOF
# generated by lab.sh: $(ns "gw$i") in kernel mode
table inet lab {
  chain prerouting {
    type nat hook prerouting priority dstnat; policy accept;
    ip daddr $VIP4 tcp dport $HTTP_PORT counter dnat ip to numgen random mod $NBE map { $map4 }
    ip6 daddr $VIP6 tcp dport $HTTP_PORT counter dnat ip6 to numgen random mod $NBE map { $map6 }
    ip daddr $VIP4 tcp dport $IPERF_PORT counter dnat ip to jhash ip saddr mod $NBE seed $HASH_SEED map { $map4 }
    ip6 daddr $VIP6 tcp dport $IPERF_PORT counter dnat ip6 to jhash ip6 saddr mod $NBE seed $HASH_SEED map { $map6 }
  }
  chain postrouting {
    type nat hook postrouting priority srcnat; policy accept;
    ct status dnat ip daddr $SEG4_PREFIX.0/24 snat ip to $(gw_snat4 "$i")
    ct status dnat ip6 daddr ${SEG6_PREFIX}:/64 snat ip6 to $(gw_snat6 "$i")
  }
  chain forward {
    type filter hook forward priority filter; policy accept;
    ct state invalid counter drop
  }
}
EOF
    nsx "gw$i" nft -f "$rules"
  done
}

# haproxy: HAProxy in TCP mode on each node, VIP on lo (the router sends VIP
# traffic to the node), connecting to the backends from the node's own address.
# Not from the SNAT address: HAProxy's connections carry its own TCP timestamps,
# and a backend's TIME_WAIT sockets from one mode would then reject (PAWS) the
# SYNs of the other mode on the same 4-tuples when the modes take turns.
mode_haproxy() {
  local i j d servers80 servers5201
  for i in $(seq "$NGW"); do
    d="$(state)/gw$i"
    mkdir -p "$d"
    nsx "gw$i" ip addr add "$VIP4/32" dev lo
    nsx "gw$i" ip addr add "$VIP6/128" dev lo nodad
    servers80="" servers5201=""
    for j in $(seq "$NBE"); do
      servers80+="  server be$j $(be_ip4 "$j"):$HTTP_PORT check inter 500ms fall 2 rise 2"$'\n'
      servers5201+="  server be$j $(be_ip4 "$j"):$IPERF_PORT check inter 1s"$'\n'
    done
    cat >"$d/haproxy.cfg" <<EOF
# generated by lab.sh: $(ns "gw$i") in haproxy mode
global
  maxconn $(((NOFILE - 200) / 2))
  pidfile $d/haproxy.pid
  log stderr format short local0 warning
defaults
  mode tcp
  log global
  timeout connect 2s
  timeout client 60s
  timeout server 60s
  retries 2
  option redispatch
frontend http
  bind $VIP4:$HTTP_PORT
  bind [$VIP6]:$HTTP_PORT
  default_backend http
backend http
  balance roundrobin
  source $(gw_ip4 "$i")
$servers80
frontend iperf
  bind $VIP4:$IPERF_PORT
  bind [$VIP6]:$IPERF_PORT
  default_backend iperf
backend iperf
  balance source
  hash-type consistent
  source $(gw_ip4 "$i")
$servers5201
EOF
    haproxy -c -q -f "$d/haproxy.cfg" || die "generated haproxy config invalid: $d/haproxy.cfg"
    # -db: stay in the foreground so the recorded PID is HAProxy's own.
    start_proc "gw$i" haproxy "$d/haproxy.log" haproxy -db -f "$d/haproxy.cfg" >/dev/null
  done
  for i in $(seq "$NGW"); do
    wait_tcp "gw$i" "$VIP4" "$HTTP_PORT" || die "haproxy on gw$i did not start (see $(state)/gw$i/haproxy.log)"
  done
}

tripod_supported() {
  [ -x "$TRIPOD_BIN" ] || return 1
  "$TRIPOD_BIN" run --help 2>&1 | grep -q -- '--config'
}

# tripod: the daemon on AF_XDP on each node's eth0.
mode_tripod() {
  tripod_supported || die "tripod mode needs the daemon (issue 4): $TRIPOD_BIN does not support 'run --config'"
  local i j d fwd=${TRIPOD_FORWARDING:-fullnat} check_web=${TRIPOD_HEALTH:-http}
  for i in $(seq "$NGW"); do
    d="$(state)/gw$i"
    mkdir -p "$d"
    {
      echo "# generated by lab.sh: $(ns "gw$i") in tripod mode ($fwd)"
      echo "interfaces:"
      echo "  - {name: eth0, queues: [0], bind_mode: copy}"
      echo "max_connections: 65536"
      echo "status_socket: $d/status.sock"
      echo "logging: {level: info}"
      # Shared by every node: after an ECMP change a flow's new node picks the
      # same backend and accepts the first node's SYN cookies.
      echo "secrets: {lb_key: 6c61622d6c622d6b65792d3030303031, synproxy_key: 6c61622d73796e2d6b65792d30303031}"
      echo "snat: {addresses: [$(gw_tsnat4 "$i"), \"$(gw_tsnat6 "$i")\"], port_range: 1024-65535}"
      echo "firewall:"
      echo "  default: deny"
      echo "  rules:"
      # First match wins: denials before the allows.
      for extra in ${TRIPOD_DENY:-}; do echo "    - deny in from $extra"; done
      echo "    - allow in tcp to $VIP4 port $HTTP_PORT,$IPERF_PORT"
      echo "    - allow in tcp to $VIP6 port $HTTP_PORT"
      echo "    - allow icmp"
      echo "    - allow icmpv6"
      echo "vips:"
      local vip port name check
      for spec in "web $VIP4 $HTTP_PORT $check_web" "iperf $VIP4 $IPERF_PORT tcp" "web6 $VIP6 $HTTP_PORT $check_web"; do
        read -r name vip port check <<<"$spec"
        echo "  - name: $name"
        echo "    address: \"$vip\""
        echo "    port: $port"
        echo "    mode: $fwd"
        # iperf3's control and data connections must meet on one backend.
        [ "$name" = iperf ] && echo "    scheduler: source"
        [ "$fwd" = fullnat ] && [ "$name" = web ] && [ -n "${TRIPOD_SYNPROXY:-}" ] && echo "    synproxy: true"
        echo "    health_check: {type: $check, interval: 500ms, timeout: 250ms, rise: 2, fall: 2}"
        echo "    backends:"
        local mac addr
        for j in $(seq "$NBE"); do
          mac="" addr=$(be_ip4 "$j")
          [ "$name" = web6 ] && addr=$(be_ip6 "$j")
          [ "$fwd" = dsr ] && mac=", mac: \"$(be_mac "$j")\""
          echo "      - {address: \"$addr\"$mac}"
        done
      done
    } >"$d/tripod.yaml"
    start_proc "gw$i" tripod "$d/tripod.log" "$TRIPOD_BIN" run --config "$d/tripod.yaml" >/dev/null
  done
  for i in $(seq "$NGW"); do
    local pid ok=0
    pid=$(awk -v n="$(ns "gw$i")" '$1 == n && $2 == "tripod" {print $3}' "$(state)/pids" | tail -1)
    # Up once the status socket answers and every backend passed its checks.
    for _ in $(seq 100); do
      pid_alive "$pid" || die "tripod on gw$i exited (see $(state)/gw$i/tripod.log)"
      if nsx "gw$i" "$TRIPOD_BIN" status --socket "$(state)/gw$i/status.sock" --json 2>/dev/null |
        grep -q '"health": "up"' &&
        ! nsx "gw$i" "$TRIPOD_BIN" status --socket "$(state)/gw$i/status.sock" --json 2>/dev/null |
        grep -q '"health": "down"'; then
        ok=1
        break
      fi
      sleep 0.1
    done
    [ "$ok" = 1 ] || die "tripod on gw$i: backends not up after 10 s (see $(state)/gw$i/tripod.log)"
  done
}

set_mode() {
  case "$1" in
    kernel | haproxy | tripod | none) ;;
    *) die "unknown mode '$1' (kernel|haproxy|tripod|none)" ;;
  esac
  gateway_reset
  case "$1" in
    kernel) mode_kernel ;;
    haproxy) mode_haproxy ;;
    tripod) mode_tripod ;;
    none) ;;
  esac
  sed -i "s/^MODE=.*/MODE=$1/" "$(state)/config"
  MODE=$1
  log "gateways in $1 mode"
}

# ---------------------------------------------------------------------------
# subcommands
# ---------------------------------------------------------------------------
# Checks before anything is built (a failure here must not tear down an
# existing lab of the same name).
up_precheck() {
  [ "$(id -u)" -eq 0 ] || die "needs root (network namespaces)"
  [[ $NGW =~ ^[1-9]$ ]] || die "--gateways: 1..9"
  [[ $NBE =~ ^[1-9][0-9]?$ ]] || die "--backends: 1..99"
  [[ $NCL =~ ^[1-9]$ ]] || die "--clients: 1..9"
  case "$MODE" in kernel | haproxy | tripod | none) ;; *) die "unknown mode '$MODE' (kernel|haproxy|tripod|none)" ;; esac
  if [ -d "$(state)" ] || [ -n "$(lab_namespaces)" ]; then
    die "lab '$NAME' exists; run: lab.sh down --name $NAME"
  fi
}

cmd_up() {
  mkdir -p "$(state)"
  : >"$(state)/pids"
  : >"$(state)/netns"
  cat >"$(state)/config" <<EOF
NGW=$NGW
NBE=$NBE
NCL=$NCL
MODE=none
EOF
  build_topology
  set_mode "$MODE"
  log "up: $NCL client(s), router, $NGW gateway(s), $NBE backend(s); VIP $VIP4 / $VIP6"
}

cmd_down() {
  local n role pid nsn p
  # 1. processes the lab recorded, by PID
  if [ -f "$(state)/pids" ]; then
    while read -r n role pid; do
      [ -n "${pid:-}" ] && stop_pid "$n" "$pid"
    done <"$(state)/pids"
  fi
  # 2. anything else still running inside the lab's namespaces (children, a
  #    half-finished up, a bench run), by PID, then the namespaces themselves
  for nsn in $(lab_namespaces); do
    if [ -e "/run/netns/$nsn" ]; then
      for p in $(ip netns pids "$nsn" 2>/dev/null); do stop_pid "$nsn" "$p"; done
      ip netns del "$nsn" 2>/dev/null || echo "lab: could not delete namespace $nsn" >&2
    fi
  done
  rm -rf "$(state)"
  rmdir "$LAB_RUN" 2>/dev/null || true
  local left
  left=$(lab_namespaces)
  [ -z "$left" ] || die "namespaces left: $left"
  log "down"
}

cmd_status() {
  load_config
  echo "lab $NAME: mode $MODE, $NCL client(s), $NGW gateway(s), $NBE backend(s)"
  echo "VIP $VIP4 $VIP6 (tcp $HTTP_PORT http, $IPERF_PORT iperf3); state $(state)"
  local nsn
  for nsn in $(lab_namespaces); do
    printf '  %-10s %s\n' "$nsn" "$(ip -n "$nsn" -br addr show 2>/dev/null | awk '$1 != "lo" {printf "%s", $1; for (i = 3; i <= NF; i++) if ($i !~ /^fe80/) printf " %s", $i; printf "   "}')"
  done
  echo "processes:"
  local n role pid st
  while read -r n role pid; do
    if pid_alive "$pid"; then st=running; else st=dead; fi
    printf '  %-10s %-8s %-8s %s\n' "$n" "$role" "$pid" "$st"
  done <"$(state)/pids"
}

resolve_ns() {  # short (rt, gw1) or full name
  if [ -e "/run/netns/$1" ]; then echo "$1"; elif [ -e "/run/netns/$(ns "$1")" ]; then ns "$1"; else
    die "no namespace '$1' in lab $NAME"
  fi
}

cmd_exec() {
  [ $# -ge 2 ] || die "usage: lab.sh exec [--name NAME] NS CMD..."
  local n
  n=$(resolve_ns "$1")
  shift
  exec ip netns exec "$n" "$@"
}

cmd_pid() {
  [ $# -eq 2 ] || die "usage: lab.sh pid [--name NAME] NS ROLE"
  local n
  n=$(resolve_ns "$1")
  awk -v n="$n" -v r="$2" '$1 == n && $2 == r {print $3}' "$(state)/pids" | tail -1
}

on_up_exit() {
  local rc=$?
  if [ "$rc" -ne 0 ] && [ "${LAB_KEEP_ON_FAIL:-0}" != 1 ]; then
    log "up failed; tearing down"
    (cmd_down) || true
  fi
  exit "$rc"
}

usage() { awk 'NR > 1 && /^#/ {sub(/^# ?/, ""); print; next} NR > 1 {exit}' "$0"; }

main() {
  [ $# -ge 1 ] || { usage; exit 2; }
  local cmd=$1
  shift
  local args=()
  while [ $# -gt 0 ]; do
    case "$1" in
      --name) NAME=$2; shift 2 ;;
      --gateways) NGW=$2; shift 2 ;;
      --backends) NBE=$2; shift 2 ;;
      --clients) NCL=$2; shift 2 ;;
      --mode) MODE=$2; shift 2 ;;
      --) shift; args+=("$@"); break ;;
      *) args+=("$1"); shift; if [ "$cmd" = exec ]; then args+=("$@"); break; fi ;;
    esac
  done
  check_name
  case "$cmd" in
    up)
      # A failed up leaves a half-built lab: tear it down so nothing lingers
      # (LAB_KEEP_ON_FAIL=1 keeps it, for inspecting and for testing `down`).
      up_precheck
      trap on_up_exit EXIT
      cmd_up
      trap - EXIT
      ;;
    down) cmd_down ;;
    mode)
      [ ${#args[@]} -eq 1 ] || die "usage: lab.sh mode [--name NAME] kernel|haproxy|tripod|none"
      load_config
      set_mode "${args[0]}"
      ;;
    status) cmd_status ;;
    exec) load_config; cmd_exec "${args[@]}" ;;
    pid) cmd_pid "${args[@]}" ;;
    -h | --help | help) usage ;;
    *) usage; exit 2 ;;
  esac
}

main "$@"
