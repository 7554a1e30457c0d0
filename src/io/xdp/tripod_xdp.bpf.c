// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* tripod's XDP steering program: packets for steered addresses (VIPs, SNAT
 * addresses), and egress packets (from an internal source prefix to a unicast
 * destination outside them), go to the AF_XDP socket of their RX queue;
 * everything else (ARP, ND, the node's own traffic, BGP, control) goes to
 * the kernel.
 *
 * It is loaded through libxdp, which runs it behind the multi-program
 * dispatcher: XDP_PASS continues to the next program on the interface, so
 * other XDP users keep working. */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in6.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>
#include <xdp/xdp_helpers.h>

#include "tripod_xdp_shared.h"

struct {
  __uint(type, BPF_MAP_TYPE_XSKMAP);
  __uint(max_entries, TRIPOD_XDP_DEFAULT_QUEUES);
  __type(key, __u32);
  __type(value, __u32);
} xsks_map SEC(".maps");

struct steer_key {
  __u8 addr[TRIPOD_XDP_KEY_LEN];
};

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, TRIPOD_XDP_DEFAULT_ADDRESSES);
  __type(key, struct steer_key);
  __type(value, __u8);
} tripod_steer SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_LPM_TRIE);
  __uint(max_entries, TRIPOD_XDP_DEFAULT_EGRESS);
  __uint(map_flags, BPF_F_NO_PREALLOC);
  __type(key, struct tripod_xdp_prefix);
  __type(value, __u8);
} tripod_egress SEC(".maps");

/* The node's own addresses: never an egress destination, wherever they are. */
struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, TRIPOD_XDP_DEFAULT_ADDRESSES);
  __type(key, struct steer_key);
  __type(value, __u8);
} tripod_local SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, TRIPOD_XDP_STAT_COUNT);
  __type(key, __u32);
  __type(value, __u64);
} tripod_stats SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, TRIPOD_XDP_CFG_COUNT);
  __type(key, __u32);
  __type(value, __u32);
} tripod_cfg SEC(".maps");

/* Dispatcher run config: run early, and let XDP_PASS fall through to the
 * next program (libxdp's default, spelled out because we rely on it). */
struct {
  __uint(priority, 10);
  __uint(XDP_PASS, 1);
} XDP_RUN_CONFIG(tripod_xdp);

struct vlan_hdr {
  __be16 tci;
  __be16 encap_proto;
};

static __always_inline int count(__u32 slot, int action) {
  __u64* c = bpf_map_lookup_elem(&tripod_stats, &slot);
  if (c) *c += 1; /* per-CPU slot: no atomic needed */
  return action;
}

SEC("xdp")
int tripod_xdp(struct xdp_md* ctx) {
  void* data = (void*)(long)ctx->data;
  void* end = (void*)(long)ctx->data_end;
  struct ethhdr* eth = data;
  if ((void*)(eth + 1) > end) return count(TRIPOD_XDP_STAT_PASSED, XDP_PASS);

  __be16 proto = eth->h_proto;
  void* l3 = eth + 1;
  /* One 802.1Q / 802.1ad tag, as the user-space parser accepts. */
  if (proto == bpf_htons(ETH_P_8021Q) || proto == bpf_htons(ETH_P_8021AD)) {
    struct vlan_hdr* vh = l3;
    if ((void*)(vh + 1) > end) return count(TRIPOD_XDP_STAT_PASSED, XDP_PASS);
    proto = vh->encap_proto;
    l3 = vh + 1;
  }

  struct steer_key key = {};
  /* Egress: the source (and the destination, which must not be internal)
   * as LPM keys. Multicast, broadcast and link-local destinations are
   * never egress. */
  struct tripod_xdp_prefix src = {.prefixlen = 128};
  struct tripod_xdp_prefix dst = {.prefixlen = 128};
  int outside_unicast = 1;
  if (proto == bpf_htons(ETH_P_IP)) {
    struct iphdr* ip = l3;
    if ((void*)(ip + 1) > end) return count(TRIPOD_XDP_STAT_PASSED, XDP_PASS);
    key.addr[10] = 0xff;
    key.addr[11] = 0xff;
    __builtin_memcpy(&key.addr[12], &ip->daddr, 4);
    src.addr[10] = src.addr[11] = 0xff;
    __builtin_memcpy(&src.addr[12], &ip->saddr, 4);
    const __u8* d = (const __u8*)&ip->daddr;
    outside_unicast =
        (d[0] & 0xf0) != 0xe0 && ip->daddr != 0xffffffff && !(d[0] == 169 && d[1] == 254);
  } else if (proto == bpf_htons(ETH_P_IPV6)) {
    struct ipv6hdr* ip6 = l3;
    if ((void*)(ip6 + 1) > end) return count(TRIPOD_XDP_STAT_PASSED, XDP_PASS);
    __builtin_memcpy(key.addr, &ip6->daddr, 16);
    __builtin_memcpy(src.addr, &ip6->saddr, 16);
    outside_unicast = key.addr[0] != 0xff && !(key.addr[0] == 0xfe && (key.addr[1] & 0xc0) == 0x80);
    /* Neighbour discovery (ICMPv6 133-137) stays with the kernel even for a
     * steered address: the kernel owns the addresses' L2 presence, as ARP. */
    if (ip6->nexthdr == 58) {
      __u8* type = (void*)(ip6 + 1);
      if ((void*)(type + 1) > end) return count(TRIPOD_XDP_STAT_PASSED, XDP_PASS);
      if (*type >= 133 && *type <= 137) return count(TRIPOD_XDP_STAT_PASSED, XDP_PASS);
    }
  } else {
    return count(TRIPOD_XDP_STAT_PASSED, XDP_PASS); /* ARP, LLDP, ... */
  }

  if (!bpf_map_lookup_elem(&tripod_steer, &key)) {
    __builtin_memcpy(dst.addr, key.addr, TRIPOD_XDP_KEY_LEN);
    if (!outside_unicast || !bpf_map_lookup_elem(&tripod_egress, &src) ||
        bpf_map_lookup_elem(&tripod_egress, &dst) || bpf_map_lookup_elem(&tripod_local, &key))
      return count(TRIPOD_XDP_STAT_PASSED, XDP_PASS);
    count(TRIPOD_XDP_STAT_EGRESS, 0);
  }

  __u32 queue = ctx->rx_queue_index;
  __u32 cfg_slot = TRIPOD_XDP_CFG_NO_SOCKET_PASS;
  __u32* pass_cfg = bpf_map_lookup_elem(&tripod_cfg, &cfg_slot);
  const int no_socket_action = (pass_cfg && *pass_cfg) ? XDP_PASS : XDP_DROP;
  /* Looking the slot up first (kernel >= 5.3) lets us count the miss; the
   * redirect's fallback action covers a socket closed in between. */
  if (!bpf_map_lookup_elem(&xsks_map, &queue))
    return count(TRIPOD_XDP_STAT_NO_SOCKET, no_socket_action);
  count(TRIPOD_XDP_STAT_REDIRECTED, 0);
  return bpf_redirect_map(&xsks_map, queue, no_socket_action);
}

char _license[] SEC("license") = "Dual BSD/GPL";
