// SNAT port allocation: O(1), never hands out a port that is in a live
// mapping, and laid out so that a reply tuple names the shard that owns the
// flow (DESIGN.md §2: the reply side of a FullNAT flow must resolve to the
// same owner as its client side).
//
// Layout: each SNAT address's port range [lo, hi] is cut into `partitions`
// interleaved classes: port p belongs to partition (p - lo) % partitions. A
// flow in slot s (the gateway's: 256 slots, a worker owning slots s with
// s % workers = its index, and holders per slot in a cluster) takes its
// port from partition s, so `partition_of(reply_dport)` = s: the reply
// is steered to the owner from its bytes alone, with no lookup and no
// broadcast. Interleaving (rather than contiguous blocks) keeps every
// partition's ports spread over the whole range.
//
// Each (address, partition) keeps a FIFO queue of free ports: alloc takes the
// port freed longest ago, free appends; both O(1), no allocation after
// construction. A port is returned only by free(), which the owner calls when
// the mapping's connection ends, so a live mapping's port is never handed out
// twice.
//
// Why FIFO and a shuffled start: a backend keeps a closed connection's 4-tuple
// in TIME_WAIT for 60 s, and a SYN from an unrelated client on that tuple can
// fail its PAWS check (1 s SYN retransmission). Reusing the least recently
// freed port keeps reuse as far apart as the pool allows; a per-process
// shuffle (`shuffle_seed`) keeps a restarted gateway, or a node taking over,
// from walking the ports its predecessor just used in the same order.
// One port per mapping per address (no per-destination port sharing): simple
// and collision-free; per-destination sharing (VPP's NAT44-ED) can come later
// if port exhaustion bites.
//
// Threading: partition s is used only by the worker that owns slot s; each
// worker has its own allocator and takes only its own partitions' ports, so
// no locks are needed.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "packet/packet_meta.h"

namespace tripod {

struct SnatAddress {
  Family family = Family::kIpv4;
  uint8_t addr[16] = {};  // network order; IPv4 in the first 4 bytes
};

struct SnatPoolConfig {
  std::vector<SnatAddress> addresses;
  uint16_t port_lo = 1024;
  uint16_t port_hi = 65535;
  uint32_t partitions = 1;  // shards that own flows
  // 0: ports are handed out in ascending order (tests, pcap cases); else the
  // initial order of each queue is a permutation drawn from this seed.
  uint64_t shuffle_seed = 0;
};

struct SnatLease {
  uint32_t address = 0;  // index into SnatPoolConfig::addresses
  uint16_t port = 0;
  uint16_t spare = 0;  // not the allocator's: the lease holder's (the gateway's commit tag)
};
static_assert(sizeof(SnatLease) == 8);

class SnatPortAllocator {
 public:
  // Throws std::invalid_argument for an empty pool, lo > hi, mixed address
  // families, or more partitions than ports.
  explicit SnatPortAllocator(SnatPoolConfig cfg);

  // Allocates a port of `partition`, trying addresses from `hint` onwards so
  // that flows spread over addresses. False when the partition is exhausted
  // on every address (the caller counts the drop).
  bool alloc(uint32_t partition, uint32_t hint, SnatLease* out);
  // Returns a port. Double frees and foreign ports are ignored and counted.
  void free(const SnatLease& lease);
  // Marks a port in use without taking it from its queue: a flow that
  // another node opened on this node's address (before a restart) and that
  // lives on elsewhere. alloc() steps over it until free() releases it.
  // False if the port is out of range or already in use.
  bool reserve(const SnatLease& lease);
  // Whether the port is allocated or reserved.
  bool in_use(const SnatLease& lease) const;

  uint32_t partition_of(uint16_t port) const {
    return static_cast<uint32_t>(port - cfg_.port_lo) % cfg_.partitions;
  }
  bool in_range(uint16_t port) const { return port >= cfg_.port_lo && port <= cfg_.port_hi; }
  const SnatAddress& address(uint32_t i) const { return cfg_.addresses[i]; }
  uint32_t num_addresses() const { return static_cast<uint32_t>(cfg_.addresses.size()); }
  uint32_t free_ports(uint32_t partition) const;
  uint32_t partitions() const { return cfg_.partitions; }
  uint64_t bad_frees() const { return bad_frees_; }

 private:
  // A ring over `size` slots holding `count` free ports from `head` on.
  struct Queue {
    std::unique_ptr<uint16_t[]> ports;
    uint32_t size = 0;
    uint32_t head = 0;
    uint32_t count = 0;
  };
  Queue& queue(uint32_t address, uint32_t partition) {
    return queues_[size_t{address} * cfg_.partitions + partition];
  }
  const Queue& queue(uint32_t address, uint32_t partition) const {
    return queues_[size_t{address} * cfg_.partitions + partition];
  }

  SnatPoolConfig cfg_;
  std::vector<Queue> queues_;
  std::vector<uint64_t> in_use_;    // bitmap per address over [lo, hi]: catches double frees
  std::vector<uint64_t> reserved_;  // the same: in use, yet still queued (reserve())
  uint32_t range_ = 0;
  uint64_t bad_frees_ = 0;
};

}  // namespace tripod
