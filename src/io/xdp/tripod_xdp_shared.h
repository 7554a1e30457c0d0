/* Definitions shared by the XDP program (C, compiled for the BPF target) and
 * the C++ loader (xdp_steering.cc), so map names and stat slots cannot drift.
 * Plain C on purpose: it is included by both compilers. */
#ifndef TRIPOD_IO_XDP_TRIPOD_XDP_SHARED_H_
#define TRIPOD_IO_XDP_TRIPOD_XDP_SHARED_H_

/* Map names as the loader looks them up. "xsks_map" is libxdp's convention
 * for the socket map. BPF object names are capped at 15 characters. */
#define TRIPOD_XDP_PROG_NAME "tripod_xdp"
#define TRIPOD_XDP_XSKS_MAP "xsks_map"
#define TRIPOD_XDP_STEER_MAP "tripod_steer"
#define TRIPOD_XDP_STATS_MAP "tripod_stats"
#define TRIPOD_XDP_CONFIG_MAP "tripod_cfg"
#define TRIPOD_XDP_EGRESS_MAP "tripod_egress"
#define TRIPOD_XDP_LOCAL_MAP "tripod_local"

/* Default sizes; the loader may resize both before the object is loaded. */
#define TRIPOD_XDP_DEFAULT_QUEUES 256
#define TRIPOD_XDP_DEFAULT_ADDRESSES 4096
#define TRIPOD_XDP_DEFAULT_EGRESS 1024

/* Slots of the per-CPU stats array. */
#define TRIPOD_XDP_STAT_REDIRECTED 0 /* steered address, handed to the queue's socket */
#define TRIPOD_XDP_STAT_PASSED 1     /* not steered (ARP, ND, node traffic): kernel */
#define TRIPOD_XDP_STAT_NO_SOCKET 2  /* steered address but no socket on the RX queue */
#define TRIPOD_XDP_STAT_EGRESS 3     /* steered as egress: internal source, outside destination */
#define TRIPOD_XDP_STAT_COUNT 4

/* Slot 0 of the config array: what to do with a steered packet whose RX
 * queue has no socket. 0 = drop (fail closed: VIP traffic must never bypass
 * the firewall into the kernel), 1 = pass to the kernel. */
#define TRIPOD_XDP_CFG_NO_SOCKET_PASS 0
#define TRIPOD_XDP_CFG_COUNT 1

/* Steering key: 16 bytes, IPv6 as is, IPv4 as an IPv4-mapped IPv6 address
 * (::ffff:a.b.c.d), so one hash map serves both families. Network order. */
#define TRIPOD_XDP_KEY_LEN 16

/* Egress prefixes (internal sources): an LPM trie keyed like the steering
 * map, IPv4 prefixes as IPv4-mapped ones (prefix length + 96). */
struct tripod_xdp_prefix {
  unsigned int prefixlen; /* host order, as the LPM trie wants */
  unsigned char addr[TRIPOD_XDP_KEY_LEN];
};

#endif /* TRIPOD_IO_XDP_TRIPOD_XDP_SHARED_H_ */
