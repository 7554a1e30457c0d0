#!/usr/bin/env bash
# tripod network-namespace lab: clients, an ECMP router, gateway nodes and
# nginx backends on one L2 segment, every piece in its own network namespace.
#
#   lab.sh up     [--name NAME] [--gateways N] [--backends M] [--clients K]
#                 [--mode kernel|haproxy|tripod|none] [--routing static|bgp]
#   lab.sh mode   [--name NAME] kernel|haproxy|tripod|none   switch the gateways
#   lab.sh down   [--name NAME]                              idempotent teardown
#   lab.sh status [--name NAME]
#   lab.sh exec   [--name NAME] NS CMD...                    NS: rt, sw, c1, gw1, be1...
#   lab.sh pid    [--name NAME] NS ROLE                      PID of a lab process
#   lab.sh kill   [--name NAME] gwI [--keep-link]            a node dies (SIGKILL; bgp routing)
#   lab.sh revive [--name NAME] gwI                          the node comes back
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
# --routing bgp: BFD between the router and each node. BIRD's minimum
# rx/tx interval (ms) and detect multiplier; detection time = their product.
LAB_BFD_INTERVAL_MS=${LAB_BFD_INTERVAL_MS:-10}
LAB_BFD_MULTIPLIER=${LAB_BFD_MULTIPLIER:-5}

# ---------------------------------------------------------------------------
# Addresses (all the lab's own; see README.md)
# ---------------------------------------------------------------------------
VIP4=10.77.100.1
VIP6=fd77:100::1
VIP4_NET=10.77.100.0/24
# Cluster labs only: the web VIP again with replication off, the baseline
# that replication's cost is measured against on the same nodes.
VIP4_LOCAL=10.77.100.2
# ... and with a checkpoint interval of 50 ms (async): flows shorter than
# that never travel.
VIP4_LAZY=10.77.100.3
VIP6_NET=fd77:100::/64
SEG4_PREFIX=10.77.0       # the L2 segment: 10.77.0.0/24, fd77::/64
SEG6_PREFIX=fd77:         # fd77::<host>
RT_SEG_HOST=1             # router on the segment: 10.77.0.1, fd77::1
HTTP_PORT=80
IPERF_PORT=5201
HASH_SEED=0x77            # jhash seed shared by every node (same choice everywhere)
# --routing bgp: the SNAT addresses are routed (announced by the nodes), not
# on the segment: 10.77.200.0/24, fd77:200::/64.
RSNAT4_PREFIX=10.77.200
RSNAT6_PREFIX=fd77:200:
RSNAT4_NET=$RSNAT4_PREFIX.0/24
RSNAT6_NET=${RSNAT6_PREFIX}:/64
RT_AS=65000               # the router's AS
GW_AS=65100               # every gateway node's AS (one cluster, one AS)
# File descriptors the servers may use: the hard limit we run under (capped).
NOFILE=$(ulimit -Hn)
if [ "$NOFILE" = unlimited ] || [ "$NOFILE" -gt 65536 ]; then NOFILE=65536; fi

gw_ip4() { echo "$SEG4_PREFIX.$((10 + $1))"; }      # node address    10.77.0.11..
be_ip4() { echo "$SEG4_PREFIX.$((100 + $1))"; }     # backend         10.77.0.101..
gw_ip6() { echo "${SEG6_PREFIX}:$((10 + $1))"; }    # fd77::11..
# SNAT addresses (kernel mode): on the segment with static routing, routed
# (10.77.200.2I, fd77:200::2I) with --routing bgp.
gw_snat4() { if [ "$ROUTING" = bgp ]; then echo "$RSNAT4_PREFIX.$((20 + $1))"; else echo "$SEG4_PREFIX.$((20 + $1))"; fi; }
gw_snat6() { if [ "$ROUTING" = bgp ]; then echo "${RSNAT6_PREFIX}:$((20 + $1))"; else echo "${SEG6_PREFIX}:$((20 + $1))"; fi; }
# tripod's own SNAT addresses: the NAT modes must not share one, or the
# backends' TIME_WAIT sockets left by one mode reject the other's SYNs on the
# same 4-tuple (PAWS; see "Why HAProxy does not use the SNAT address").
# 10.77.0.3I / fd77::3I, or routed 10.77.200.3I / fd77:200::3I with bgp.
gw_tsnat4() { if [ "$ROUTING" = bgp ]; then echo "$RSNAT4_PREFIX.$((30 + $1))"; else echo "$SEG4_PREFIX.$((30 + $1))"; fi; }
gw_tsnat6() { if [ "$ROUTING" = bgp ]; then echo "${RSNAT6_PREFIX}:$((30 + $1))"; else echo "${SEG6_PREFIX}:$((30 + $1))"; fi; }
# tripod's egress SNAT addresses (TRIPOD_EGRESS): 10.77.0.4I / fd77::4I, or
# routed 10.77.200.4I / fd77:200::4I with bgp.
gw_esnat4() { if [ "$ROUTING" = bgp ]; then echo "$RSNAT4_PREFIX.$((40 + $1))"; else echo "$SEG4_PREFIX.$((40 + $1))"; fi; }
gw_esnat6() { if [ "$ROUTING" = bgp ]; then echo "${RSNAT6_PREFIX}:$((40 + $1))"; else echo "${SEG6_PREFIX}:$((40 + $1))"; fi; }
EGRESS_COMMUNITY="($GW_AS, 77)"  # on the nodes' routes for the inside hosts' outside traffic
be_ip6() { echo "${SEG6_PREFIX}:$((100 + $1))"; }   # fd77::101..
cl_ip4() { echo "10.77.$((10 + $1)).2"; }           # client k: 10.77.(10+k).2/24
CL4_NET1=10.77.11.0/24 CL6_NET1=fd77:11::/64         # client 1's networks
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
ROUTING=static

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
add_veth() {  # ns1 if1 ns2 if2 [mac1 [queues]]
  # queues > 1: both ends get that many RX and TX queues (XDP on a veth
  # wants at least as many RX queues as its peer has TX queues); the
  # sending end picks a queue per flow by its hash, as a NIC's RSS does.
  local q=()
  [ "${6:-1}" -le 1 ] || q=(numtxqueues "$6" numrxqueues "$6")
  ip link add "$2" netns "$(ns "$1")" ${5:+address "$5"} "${q[@]}" type veth peer name "$4" \
    netns "$(ns "$3")" "${q[@]}"
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

# Alive: exists and is not a zombie (the lab's processes are orphans once
# lab.sh exits, and whoever adopts them may take a while to reap them).
pid_alive() {
  [ -n "$1" ] && kill -0 "$1" 2>/dev/null || return 1
  local st
  st=$(awk '$1 == "State:" {print $2}' "/proc/$1/status" 2>/dev/null) || return 1
  [ -n "$st" ] && [ "$st" != Z ]
}

# Stop one recorded process: only if it still runs in the recorded namespace
# (so a recycled PID is never hit). TERM, then KILL after 3 s (or KILL at
# once with a third argument KILL).
stop_pid() {  # nsname pid [KILL]
  local n=$1 pid=$2 i
  pid_alive "$pid" || return 0
  local in
  in=$(ip netns identify "$pid" 2>/dev/null || true)
  [ "$in" = "$n" ] || return 0
  if [ "${3:-}" != KILL ]; then
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 30); do pid_alive "$pid" || return 0; sleep 0.1; done
  fi
  kill -KILL "$pid" 2>/dev/null || true
  for i in $(seq 100); do pid_alive "$pid" || return 0; sleep 0.02; done
  echo "lab: pid $pid in $n did not exit" >&2
}

# Stop recorded processes whose role matches a regex (and, optionally, whose
# namespace is the given one); drop their lines.
stop_roles() {  # role-regex [nsname [KILL]]
  local f
  f="$(state)/pids"
  [ -f "$f" ] || return 0
  local n role pid
  while read -r n role pid; do
    if [[ $role =~ $1 ]] && { [ -z "${2:-}" ] || [ "$n" = "$2" ]; }; then stop_pid "$n" "$pid" "${3:-}"; fi
  done <"$f"
  awk -v re="$1" -v ns="${2:-}" '!($2 ~ re && (ns == "" || $1 == ns))' "$f" >"$f.new" && mv "$f.new" "$f"
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

  # Router. ECMP on the 5-tuple read from the headers, as a hardware router
  # hashes: policy 3 with these fields (src, dst, proto, sports, dports).
  # Not policy 1: it takes the hash an skb already carries, and a packet
  # from the client's namespace carries its socket's random txhash, new for
  # every connection and redrawn on each retransmission timeout, so one
  # tuple's connections (and a retransmitting flow) would change nodes.
  add_ns rt
  sysctl_in rt net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1 \
    net.ipv4.fib_multipath_hash_policy=3 net.ipv4.fib_multipath_hash_fields=0x0037 \
    net.ipv6.fib_multipath_hash_policy=3 net.ipv6.fib_multipath_hash_fields=0x0037 \
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
    add_veth "gw$i" eth0 sw "p-gw$i" "$(gw_mac "$i")" "${TRIPOD_QUEUES:-1}"
    nsx sw ip link set "p-gw$i" master br0
    nsx "gw$i" ip addr add "$(gw_ip4 "$i")/24" dev eth0
    nsx "gw$i" ip addr add "$(gw_ip6 "$i")/64" dev eth0 nodad
    if [ "$ROUTING" = bgp ]; then
      # Routed SNAT addresses: on no interface; the node's BIRD announces
      # them. Replies reaching a node for a SNAT address it does not (or no
      # longer) translate end here rather than loop back to the router.
      nsx "gw$i" ip route add blackhole "$RSNAT4_NET"
      nsx "gw$i" ip -6 route add blackhole "$RSNAT6_NET"
    else
      nsx "gw$i" ip addr add "$(gw_snat4 "$i")/24" dev eth0
      # preferred_lft 0: never the kernel's own source address (health checks,
      # ND): what reaches a SNAT address is tripod's when tripod runs.
      nsx "gw$i" ip addr add "$(gw_snat6 "$i")/64" dev eth0 nodad preferred_lft 0
      nsx "gw$i" ip addr add "$(gw_tsnat4 "$i")/24" dev eth0
      nsx "gw$i" ip addr add "$(gw_tsnat6 "$i")/64" dev eth0 nodad preferred_lft 0
      nsx "gw$i" ip addr add "$(gw_esnat4 "$i")/24" dev eth0
      nsx "gw$i" ip addr add "$(gw_esnat6 "$i")/64" dev eth0 nodad preferred_lft 0
    fi
    nsx "gw$i" ip route add default via "$SEG4_PREFIX.$RT_SEG_HOST"
    nsx "gw$i" ip -6 route add default via "${SEG6_PREFIX}:$RT_SEG_HOST"
  done
  fail_at gateways

  if [ "$ROUTING" = bgp ]; then
    # BGP + BFD: the nodes announce, the router's BIRD installs ECMP routes.
    bgp_configs
    bird_start rt
    for i in $(seq "$NGW"); do bird_start "gw$i"; done
    if [ -n "${TRIPOD_EGRESS:-}" ]; then
      # Egress: client 1's traffic to be1 takes table 77, where the router's
      # BIRD puts the nodes' announcements of be1 (ECMP over the live ones).
      nsx rt ip rule add from "${CL4_NET1}" to "$(be_ip4 1)" lookup 77 pref 1000
      nsx rt ip -6 rule add from "${CL6_NET1}" to "$(be_ip6 1)" lookup 77 pref 1000
    fi
  else
    # ECMP on the router: the VIP prefixes via every gateway node.
    local nh4=() nh6=()
    for i in $(seq "$NGW"); do
      nh4+=(nexthop via "$(gw_ip4 "$i")" dev seg weight 1)
      nh6+=(nexthop via "$(gw_ip6 "$i")" dev seg weight 1)
    done
    nsx rt ip route add "$VIP4_NET" "${nh4[@]}"
    nsx rt ip -6 route add "$VIP6_NET" "${nh6[@]}"
    if [ -n "${TRIPOD_EGRESS:-}" ]; then
      # Egress: client 1's network is "internal"; its traffic to be1 (the
      # "outside" here) goes through gw1, which translates it to its egress
      # address, as a NAT gateway's clients' default route would.
      nsx rt ip rule add from "${CL4_NET1}" to "$(be_ip4 1)" lookup 77 pref 1000
      nsx rt ip route add "$(be_ip4 1)" via "$(gw_ip4 1)" table 77
      nsx rt ip -6 rule add from "${CL6_NET1}" to "$(be_ip6 1)" lookup 77 pref 1000
      nsx rt ip -6 route add "$(be_ip6 1)" via "$(gw_ip6 1)" table 77
    fi
  fi

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
    # bgp: replies to the routed SNAT addresses go through the default route
    # to the router, which sends them back out on the segment to the node
    # (and, for IPv6, a redirect the backend must not follow: a redirected
    # route would outlive the node's withdrawal).
    if [ "$ROUTING" = bgp ]; then
      sysctl_in "be$i" net.ipv4.conf.all.accept_redirects=0 net.ipv4.conf.default.accept_redirects=0 \
        net.ipv6.conf.all.accept_redirects=0 net.ipv6.conf.default.accept_redirects=0
    fi
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
    location = /ip { default_type text/plain; return 200 "\$remote_addr"; }
  }
}
EOF
  start_proc "be$i" nginx "$d/nginx.log" nginx -e "$d/nginx.log" -p "$d" -c "$d/nginx.conf" >/dev/null
  start_proc "be$i" iperf3 "$d/iperf3.log" iperf3 -s -p "$IPERF_PORT" >/dev/null
}

# ---------------------------------------------------------------------------
# routing: BGP + BFD (--routing bgp)
# ---------------------------------------------------------------------------
# BIRD 2 in the router and in every node, each with its config, control
# socket and log in $(state)/<rt|gwI>/. Two sessions per node (IPv4 over
# IPv4, IPv6 over IPv6), each with BFD. A node announces the VIP prefixes and
# every node's SNAT addresses: its own as they are, the others' with its AS
# prepended twice, so the router sends replies to the owner while it lives
# and spreads them over the survivors when it dies. The router merges equal
# BGP paths into one ECMP kernel route (merge paths).
bfd_block() {  # interface
  cat <<EOF
protocol bfd {
  interface "$1" {
    min rx interval $LAB_BFD_INTERVAL_MS ms;
    min tx interval $LAB_BFD_INTERVAL_MS ms;
    idle tx interval 100 ms;
    multiplier $LAB_BFD_MULTIPLIER;
  };
}
EOF
}

# BGP timers: quick reconnection after a node comes back (the defaults wait
# 5 s before connecting and 60 s after an error).
BGP_TIMERS="hold time 3; keepalive time 1; connect delay time 1; connect retry time 1; error wait time 1, 3;"
BIRD_LOG="{ trace, info, remote, warning, error, auth, fatal, bug }"

bgp_configs() {
  local i j d snat4="" snat6=""
  [[ $LAB_BFD_INTERVAL_MS =~ ^[1-9][0-9]{0,4}$ ]] || die "LAB_BFD_INTERVAL_MS: 1..99999 (ms)"
  [[ $LAB_BFD_MULTIPLIER =~ ^[1-9][0-9]?$ ]] || die "LAB_BFD_MULTIPLIER: 1..99"
  local own4 own6 egress=${TRIPOD_EGRESS:-}
  for j in $(seq "$NGW"); do
    snat4+="$(gw_snat4 "$j") $(gw_tsnat4 "$j") "
    snat6+="$(gw_snat6 "$j") $(gw_tsnat6 "$j") "
    [ -z "$egress" ] || snat4+="$(gw_esnat4 "$j") " snat6+="$(gw_esnat6 "$j") "
  done
  d="$(state)/rt"
  mkdir -p "$d"
  {
    echo "# generated by lab.sh: $(ns rt) (--routing bgp)"
    echo "log \"$d/bird.log\" $BIRD_LOG;"
    echo "debug protocols { states };"
    echo "router id $SEG4_PREFIX.$RT_SEG_HOST;"
    echo "protocol device { scan time 10; }"
    # The inside hosts' routes (egress) go to kernel table 77 only: through
    # their own BIRD tables (pipes), as one BIRD table feeds one kernel table.
    echo "ipv4 table egress4;"
    echo "ipv6 table egress6;"
    echo "protocol kernel kernel4 { ipv4 { import none; export where !($EGRESS_COMMUNITY ~ bgp_community); }; merge paths on; }"
    echo "protocol kernel kernel6 { ipv6 { import none; export where !($EGRESS_COMMUNITY ~ bgp_community); }; merge paths on; }"
    echo "protocol pipe egress4p { table master4; peer table egress4; import none; export where $EGRESS_COMMUNITY ~ bgp_community; }"
    echo "protocol pipe egress6p { table master6; peer table egress6; import none; export where $EGRESS_COMMUNITY ~ bgp_community; }"
    echo "protocol kernel kernel4e { kernel table 77; ipv4 { table egress4; import none; export all; }; merge paths on; }"
    echo "protocol kernel kernel6e { kernel table 77; ipv6 { table egress6; import none; export all; }; merge paths on; }"
    bfd_block seg
    echo "filter from_node4 { if net ~ [ $VIP4_NET, $RSNAT4_NET{32,32} ] then accept;"
    echo "  if net = $(be_ip4 1)/32 && $EGRESS_COMMUNITY ~ bgp_community then accept; reject; }"
    echo "filter from_node6 { if net ~ [ $VIP6_NET, $RSNAT6_NET{128,128} ] then accept;"
    echo "  if net = $(be_ip6 1)/128 && $EGRESS_COMMUNITY ~ bgp_community then accept; reject; }"
    echo "template bgp node { local as $RT_AS; direct; bfd on; $BGP_TIMERS }"
    for i in $(seq "$NGW"); do
      echo "protocol bgp gw${i}v4 from node { neighbor $(gw_ip4 "$i") as $GW_AS; source address $SEG4_PREFIX.$RT_SEG_HOST;"
      echo "  ipv4 { import filter from_node4; export none; }; }"
      echo "protocol bgp gw${i}v6 from node { neighbor $(gw_ip6 "$i") as $GW_AS; source address ${SEG6_PREFIX}:$RT_SEG_HOST;"
      echo "  ipv6 { import filter from_node6; export none; }; }"
    done
  } >"$d/bird.conf"
  for i in $(seq "$NGW"); do
    d="$(state)/gw$i"
    mkdir -p "$d"
    own4="$(gw_snat4 "$i")/32, $(gw_tsnat4 "$i")/32" own6="$(gw_snat6 "$i")/128, $(gw_tsnat6 "$i")/128"
    [ -z "$egress" ] || own4+=", $(gw_esnat4 "$i")/32" own6+=", $(gw_esnat6 "$i")/128"
    {
      echo "# generated by lab.sh: $(ns "gw$i") (--routing bgp)"
      echo "log \"$d/bird.log\" $BIRD_LOG;"
      echo "router id $(gw_ip4 "$i");"
      echo "protocol device { scan time 10; }"
      # Originated only (no kernel protocol: the node's own routes stay static).
      echo "protocol static static4 { ipv4;"
      echo "  route $VIP4_NET blackhole;"
      for j in $snat4; do echo "  route $j/32 blackhole;"; done
      # Egress: this node is a way out for client 1's traffic to be1.
      [ -z "$egress" ] || echo "  route $(be_ip4 1)/32 blackhole;"
      echo "}"
      echo "protocol static static6 { ipv6;"
      echo "  route $VIP6_NET blackhole;"
      for j in $snat6; do echo "  route $j/128 blackhole;"; done
      [ -z "$egress" ] || echo "  route $(be_ip6 1)/128 blackhole;"
      echo "}"
      bfd_block eth0
      echo "filter to_router4 {"
      echo "  if net = $VIP4_NET then accept;"
      echo "  if net ~ [ $own4 ] then accept;"
      echo "  if net = $(be_ip4 1)/32 then { bgp_community.add($EGRESS_COMMUNITY); accept; }"
      echo "  if net ~ [ $RSNAT4_NET{32,32} ] then { bgp_path.prepend($GW_AS); bgp_path.prepend($GW_AS); accept; }"
      echo "  reject;"
      echo "}"
      echo "filter to_router6 {"
      echo "  if net = $VIP6_NET then accept;"
      echo "  if net ~ [ $own6 ] then accept;"
      echo "  if net = $(be_ip6 1)/128 then { bgp_community.add($EGRESS_COMMUNITY); accept; }"
      echo "  if net ~ [ $RSNAT6_NET{128,128} ] then { bgp_path.prepend($GW_AS); bgp_path.prepend($GW_AS); accept; }"
      echo "  reject;"
      echo "}"
      echo "template bgp uplink { local as $GW_AS; direct; bfd on; $BGP_TIMERS }"
      echo "protocol bgp rt4 from uplink { neighbor $SEG4_PREFIX.$RT_SEG_HOST as $RT_AS; source address $(gw_ip4 "$i");"
      echo "  ipv4 { import none; export filter to_router4; }; }"
      echo "protocol bgp rt6 from uplink { neighbor ${SEG6_PREFIX}:$RT_SEG_HOST as $RT_AS; source address $(gw_ip6 "$i");"
      echo "  ipv6 { import none; export filter to_router6; }; }"
    } >"$d/bird.conf"
  done
  for d in rt $(for i in $(seq "$NGW"); do echo "gw$i"; done); do
    bird -p -c "$(state)/$d/bird.conf" || die "generated BIRD config invalid: $(state)/$d/bird.conf"
  done
}

# BIRD in the foreground (-f), so the recorded PID is BIRD's own.
bird_start() {  # rt|gwI
  local d
  d="$(state)/$1"
  start_proc "$1" bird "$d/bird.log" bird -f -c "$d/bird.conf" -s "$d/bird.ctl" >/dev/null
}

birdc_in() {  # rt|gwI birdc-args...
  local n=$1
  shift
  nsx "$n" birdc -s "$(state)/$n/bird.ctl" "$@"
}

# Next hops of the router's kernel route for a prefix (0 when none).
rt_nexthops() {  # prefix
  local fam=-4
  [[ $1 == *:* ]] && fam=-6
  ip -n "$(ns rt)" "$fam" route show exact "$1" 2>/dev/null | grep -o ' via ' | wc -l
}

# Gateways that are up (not killed).
live_gws() {
  local i
  for i in $(seq "$NGW"); do [ -e "$(state)/gw$i/killed" ] || echo "$i"; done
}

# Wait until the router's VIP routes have a next hop per live node.
wait_ecmp() {  # [tries of 0.1 s]
  local want i
  want=$(live_gws | wc -l)
  for i in $(seq "${1:-300}"); do
    if [ "$(rt_nexthops "$VIP4_NET")" -eq "$want" ] && [ "$(rt_nexthops "$VIP6_NET")" -eq "$want" ]; then
      return 0
    fi
    sleep 0.1
  done
  return 1
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
  local i
  # Not on a killed node (`revive` starts it there).
  for i in $(live_gws); do haproxy_start "$i"; done
  for i in $(live_gws); do haproxy_wait "$i"; done
}

haproxy_start() {  # gateway index
  local i=$1 j d servers80 servers5201
  d="$(state)/gw$i"
  mkdir -p "$d"
  nsx "gw$i" ip addr replace "$VIP4/32" dev lo
  nsx "gw$i" ip addr replace "$VIP6/128" dev lo nodad
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
}

haproxy_wait() {  # gateway index
  wait_tcp "gw$1" "$VIP4" "$HTTP_PORT" || die "haproxy on gw$1 did not start (see $(state)/gw$1/haproxy.log)"
}

tripod_supported() {
  [ -x "$TRIPOD_BIN" ] || return 1
  "$TRIPOD_BIN" run --help 2>&1 | grep -q -- '--config'
}

# tripod: the daemon on AF_XDP on each node's eth0.
mode_tripod() {
  tripod_supported || die "tripod mode needs the daemon (issue 4): $TRIPOD_BIN does not support 'run --config'"
  local i
  # Not on a killed node (`revive` starts it there).
  for i in $(live_gws); do tripod_start "$i"; done
  for i in $(live_gws); do tripod_wait "$i"; done
}

tripod_start() {  # gateway index
  local i=$1 j d fwd=${TRIPOD_FORWARDING:-fullnat} check_web=${TRIPOD_HEALTH:-http}
  d="$(state)/gw$i"
  mkdir -p "$d"
  {
    echo "# generated by lab.sh: $(ns "gw$i") in tripod mode ($fwd)"
    echo "interfaces:"
    echo "  - {name: eth0, queues: [$(seq -s ', ' 0 $((${TRIPOD_QUEUES:-1} - 1)))], bind_mode: copy}"
    echo "max_connections: 65536"
    echo "status_socket: $d/status.sock"
    echo "logging: {level: info}"
    # Shared by every node: after an ECMP change a flow's new node picks the
    # same backend and accepts the first node's SYN cookies.
    echo "secrets: {lb_key: 6c61622d6c622d6b65792d3030303031, synproxy_key: 6c61622d73796e2d6b65792d30303031}"
    echo "snat: {addresses: [$(gw_tsnat4 "$i"), \"$(gw_tsnat6 "$i")\"], port_range: 1024-65535}"
    if [ -n "${TRIPOD_EGRESS:-}" ]; then
      echo "egress: {sources: [$CL4_NET1, \"$CL6_NET1\"], addresses: [$(gw_esnat4 "$i"), \"$(gw_esnat6 "$i")\"], port_range: 1024-65535}"
    fi
    if [ -n "${TRIPOD_CLUSTER:-}" ]; then
      # One cluster of every gateway, over the segment (the control network
      # here): heartbeats, flow records, and packets handed between nodes.
      echo "cluster:"
      echo "  node_id: $i"
      echo "  key: 6c61622d636c75737465722d6b65792d6c61622d636c75737465722d6b657931"
      echo "  heartbeat_interval: ${TRIPOD_HEARTBEAT:-10ms}"
      echo "  dead_after: ${TRIPOD_DEAD_AFTER:-50ms}"
      # async (the default) or sync: output commit (src/cluster/README.md).
      echo "  mode: ${TRIPOD_REPLICATION:-async}"
      # A miss pulls the flow's state (0: hands the packets over instead).
      [ -z "${TRIPOD_PULL_TIMEOUT:-}" ] || echo "  pull_timeout: $TRIPOD_PULL_TIMEOUT"
      echo "  nodes:"
      for j in $(seq "$NGW"); do
        local eg=""
        [ -z "${TRIPOD_EGRESS:-}" ] || eg=", egress: [$(gw_esnat4 "$j"), \"$(gw_esnat6 "$j")\"]"
        echo "    - {id: $j, address: \"$(gw_ip4 "$j"):7946\", snat: [$(gw_tsnat4 "$j"), \"$(gw_tsnat6 "$j")\"]$eg}"
      done
    fi
    echo "firewall:"
    echo "  default: deny"
    echo "  rules:"
    # First match wins: denials before the allows.
    for extra in ${TRIPOD_DENY:-}; do echo "    - deny in from $extra"; done
    echo "    - allow in tcp to $VIP4 port $HTTP_PORT,$IPERF_PORT"
    echo "    - allow in tcp to $VIP6 port $HTTP_PORT"
    if [ -n "${TRIPOD_CLUSTER:-}" ]; then
      echo "    - allow in tcp to $VIP4_LOCAL port $HTTP_PORT"
      echo "    - allow in tcp to $VIP4_LAZY port $HTTP_PORT"
    fi
    if [ -n "${TRIPOD_EGRESS:-}" ]; then  # internal hosts may go out
      echo "    - allow out from $CL4_NET1"
      echo "    - allow out from $CL6_NET1"
    fi
    echo "    - allow icmp"
    echo "    - allow icmpv6"
    echo "vips:"
    local vip port name check specs
    specs=("web $VIP4 $HTTP_PORT $check_web" "iperf $VIP4 $IPERF_PORT tcp" "web6 $VIP6 $HTTP_PORT $check_web")
    [ -z "${TRIPOD_CLUSTER:-}" ] || specs+=("web-local $VIP4_LOCAL $HTTP_PORT $check_web" "web-lazy $VIP4_LAZY $HTTP_PORT $check_web")
    for spec in "${specs[@]}"; do
      read -r name vip port check <<<"$spec"
      echo "  - name: $name"
      echo "    address: \"$vip\""
      echo "    port: $port"
      echo "    mode: $fwd"
      # iperf3's control and data connections must meet on one backend.
      [ "$name" = iperf ] && echo "    scheduler: source"
      [ "$fwd" = fullnat ] && [[ $name =~ ^web(-local|-lazy)?$ ]] && [ -n "${TRIPOD_SYNPROXY:-}" ] && echo "    synproxy: true"
      [ "$name" = web-local ] && echo "    replication: off"
      [ "$name" = web-lazy ] && echo "    replication: async" && echo "    checkpoint_interval: 50ms"
      # iperf3's server fails a test when a connection (a health check)
      # comes while its streams connect: iperf's checks are rarer.
      local every=500ms rise=2
      [ "$name" = iperf ] && every=2s rise=1
      echo "    health_check: {type: $check, interval: $every, timeout: 250ms, rise: $rise, fall: 2}"
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
}

tripod_wait() {  # gateway index
  local i=$1 pid ok=0
  pid=$(awk -v n="$(ns "gw$i")" '$1 == n && $2 == "tripod" {print $3}' "$(state)/pids" | tail -1)
  # Up once the status socket answers, every backend passed its checks and,
  # in a cluster, the node is ready (it holds its copies of the peers' flows).
  local st
  for _ in $(seq 100); do
    pid_alive "$pid" || die "tripod on gw$i exited (see $(state)/gw$i/tripod.log)"
    st=$(nsx "gw$i" "$TRIPOD_BIN" status --socket "$(state)/gw$i/status.sock" --json 2>/dev/null || true)
    if grep -q '"health": "up"' <<<"$st" && ! grep -q -e '"health": "down"' -e '"ready": false' <<<"$st"; then
      ok=1
      break
    fi
    sleep 0.1
  done
  [ "$ok" = 1 ] || die "tripod on gw$i: not ready (backends up, cluster joined) after 10 s (see $(state)/gw$i/tripod.log)"
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
  case "$ROUTING" in static | bgp) ;; *) die "unknown routing '$ROUTING' (static|bgp)" ;; esac
  if [ "$ROUTING" = bgp ] && ! { command -v bird && command -v birdc; } >/dev/null; then
    die "--routing bgp needs BIRD 2 (bird, birdc)"
  fi
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
ROUTING=$ROUTING
MODE=none
EOF
  build_topology
  set_mode "$MODE"
  if [ "$ROUTING" = bgp ]; then
    wait_ecmp 300 || die "router: no ECMP route via all $NGW node(s) after 30 s (see $(state)/rt/bird.log; lab.sh status)"
  fi
  log "up: $NCL client(s), router, $NGW gateway(s), $NBE backend(s); VIP $VIP4 / $VIP6; $ROUTING routing"
}

# Which gateway a kill/revive names: gwI with I in 1..NGW.
gw_arg() {  # gwI
  if ! [[ ${1:-} =~ ^gw([1-9])$ ]] || [ "${BASH_REMATCH[1]}" -gt "$NGW" ]; then die "no gateway '${1:-}' (gw1..gw$NGW)"; fi
}

# A node dies: its BIRD and its data-plane process (tripod or HAProxy; kernel
# mode has none) get SIGKILL, by their recorded PIDs. First its switch port is
# disabled, as when a machine loses power: otherwise the kernel would close
# the dead BIRD's BGP connections (FIN) and the router would withdraw the node
# at once, without BFD. --keep-link kills the processes only (a crash of the
# software on a live machine).
cmd_kill() {  # gwI [--keep-link]
  gw_arg "${1:-}"
  local g=$1 keep=${2:-}
  [ -z "$keep" ] || [ "$keep" = --keep-link ] || die "usage: lab.sh kill [--name NAME] gwI [--keep-link]"
  # The time of death (ns since the epoch), for measuring the withdrawal.
  date +%s%N >"$(state)/$g/killed"
  if [ "$keep" != --keep-link ]; then
    nsx sw bridge link set dev "p-$g" state 0
    : >"$(state)/$g/link-cut"
  fi
  stop_roles '^(bird|tripod|haproxy)$' "$(ns "$g")" KILL
  local what="BIRD"
  case "$MODE" in tripod | haproxy) what+=" and $MODE" ;; esac
  log "$g killed (SIGKILL: $what${keep:+; link kept})"
}

# The node comes back: its switch port enabled, its BIRD and its data plane
# started again (anything of them still running stopped first).
cmd_revive() {  # gwI
  gw_arg "${1:-}"
  local g=$1 i=${1#gw}
  stop_roles '^(bird|tripod|haproxy)$' "$(ns "$g")"
  nsx sw bridge link set dev "p-$g" state 3
  rm -f "$(state)/$g/link-cut"
  # The data plane first, BIRD (the announcement) once it is ready: a
  # tripod cluster node is ready once it holds its copies of the peers'
  # flows (tripod_wait), and traffic that came before would find none.
  case "$MODE" in
    haproxy) haproxy_start "$i"; haproxy_wait "$i" ;;
    tripod)
      # A killed tripod leaves its XDP program on eth0.
      nsx "$g" ip link set dev eth0 xdp off 2>/dev/null || true
      tripod_start "$i"
      tripod_wait "$i"
      ;;
  esac
  [ "$ROUTING" != bgp ] || bird_start "$g"
  rm -f "$(state)/$g/killed"
  log "$g revived ($MODE mode)"
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
  echo "lab $NAME: mode $MODE, routing $ROUTING, $NCL client(s), $NGW gateway(s), $NBE backend(s)"
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
  local i
  for i in $(seq "$NGW"); do
    if [ -e "$(state)/gw$i/killed" ]; then echo "  gw$i: killed$([ -e "$(state)/gw$i/link-cut" ] && echo ', switch port disabled')"; fi
  done
  if [ "$ROUTING" = bgp ]; then
    echo "router: BGP sessions"
    birdc_in rt show protocols 2>&1 | awk '$2 == "BGP" {print "  " $0}' || true
    echo "router: routes from BGP"
    ip -n "$(ns rt)" -4 route show proto bird 2>/dev/null | sed 's/^/  /'
    ip -n "$(ns rt)" -6 route show proto bird 2>/dev/null | sed 's/^/  /'
  fi
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
      --routing) ROUTING=$2; shift 2 ;;
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
    kill) load_config; cmd_kill "${args[@]}" ;;
    revive) load_config; cmd_revive "${args[@]}" ;;
    -h | --help | help) usage ;;
    *) usage; exit 2 ;;
  esac
}

main "$@"
