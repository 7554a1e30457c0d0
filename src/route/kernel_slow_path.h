// KernelSlowPath: hands an IP packet (no Ethernet header) to the kernel's
// output path, which routes it, resolves the neighbour (queueing the packet
// meanwhile) and transmits it. This is what a worker does with a packet whose
// next hop has no usable neighbour entry (ResolveStatus::kNoNeighbor): the
// packet is delivered, not dropped, and the kernel's ARP/ND answer reaches the
// data plane as a neighbour event, so the flow's next packets take the fast
// path.
//
// Sockets: AF_INET and AF_INET6 SOCK_RAW with IPPROTO_RAW, which implies
// header-included mode on both (inet_create/inet6_create set hdrincl). IPv4:
// the kernel fills in the total length and header checksum (and the id if
// 0), keeps the source address as given, and refuses packets over the MTU
// (EMSGSIZE, no fragmentation). IPv6: the packet goes out as is, so the
// payload length must be right; the route lookup uses the destination from
// sendto()'s address, which send() takes from the header (link-local
// destinations need the egress ifindex as scope).
//
// One instance per worker: counters have a single writer, and the sockets are
// non-blocking so a full socket buffer is counted, never waited on. Needs
// CAP_NET_RAW; sockets are bound to the network namespace they were opened in.
#pragma once

#include <cstddef>
#include <cstdint>

#include "common/counters.h"

namespace tripod::route {

#define TRIPOD_SLOW_PATH_REASONS(X)     \
  X(kSent, "sent")                      \
  X(kBadPacket, "bad_packet")           \
  X(kNoSocket, "no_socket")             \
  X(kErrUnreachable, "err_unreachable") \
  X(kErrTooBig, "err_too_big")          \
  X(kErrNoBuffer, "err_no_buffer")      \
  X(kErrPermission, "err_permission")   \
  X(kErrInvalid, "err_invalid")         \
  X(kErrOther, "err_other")

TRIPOD_DECLARE_REASONS(SlowPathReason, TRIPOD_SLOW_PATH_REASONS)
using SlowPathCounters = CounterSet<SlowPathReason, static_cast<size_t>(SlowPathReason::kCount)>;

class KernelSlowPath {
 public:
  // Opens both sockets in the caller's network namespace. A family whose
  // socket cannot be opened (no IPv6, no CAP_NET_RAW) counts kNoSocket per
  // packet; ok() tells whether both are open, open_errno() why not.
  KernelSlowPath();
  ~KernelSlowPath();
  KernelSlowPath(const KernelSlowPath&) = delete;
  KernelSlowPath& operator=(const KernelSlowPath&) = delete;

  bool ok() const { return fd4_ >= 0 && fd6_ >= 0; }
  int open_errno() const { return open_errno_; }

  // Sends one IPv4 or IPv6 packet (family from the version nibble). `oif`
  // scopes IPv6 link-local destinations and is otherwise ignored (the kernel
  // routes). Returns true if the kernel took it; every outcome is counted.
  bool send(const uint8_t* ip, size_t len, uint32_t oif = 0);

  const SlowPathCounters& counters() const { return counters_; }

 private:
  int fd4_ = -1;
  int fd6_ = -1;
  int open_errno_ = 0;
  SlowPathCounters counters_;
};

// The counter for a sendto() errno (exposed for tests).
SlowPathReason slow_path_reason(int err);

}  // namespace tripod::route
