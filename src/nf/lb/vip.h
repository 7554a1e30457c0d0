// Configuration types of the L4 load balancer: a VIP is (address, protocol,
// port); its pool is a list of backends (DIPs) with weights.
//
// Byte order: addresses are network order (as they sit in the frame), ports
// and weights host order. Backend records are read on every packet of a
// connection (to rewrite or encapsulate), so they are small, fixed-size and
// trivially copyable; a pool version keeps them in one array.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "packet/packet_meta.h"

namespace tripod {

// An IPv4 or IPv6 address. IPv4 uses bytes[0..3]; the rest stays zero so that
// addresses compare (and hash) as plain bytes.
struct IpAddress {
  uint8_t bytes[16] = {};
  Family family = Family::kNone;

  // `p` points at 4 (IPv4) or 16 (IPv6) network-order bytes.
  static IpAddress from_bytes(Family f, const uint8_t* p) {
    IpAddress a;
    a.family = f;
    std::memcpy(a.bytes, p, f == Family::kIpv6 ? 16 : 4);
    return a;
  }
  // Control plane: "192.0.2.1" or "2001:db8::1"; throws std::invalid_argument.
  static IpAddress parse(std::string_view text);
  std::string to_string() const;

  // No family, or the all-zero address: never a valid VIP or DIP.
  bool empty() const;

  friend bool operator==(const IpAddress& x, const IpAddress& y) {
    return std::memcmp(&x, &y, sizeof(IpAddress)) == 0;
  }
};
static_assert(sizeof(IpAddress) == 17);
static_assert(std::has_unique_object_representations_v<IpAddress>);

struct VipKey {
  IpAddress addr;
  uint8_t proto = 0;  // kProtoTcp or kProtoUdp
  uint16_t port = 0;  // host order

  friend bool operator==(const VipKey& x, const VipKey& y) {
    return std::memcmp(&x, &y, sizeof(VipKey)) == 0;
  }
};
static_assert(sizeof(VipKey) == 20);
static_assert(std::has_unique_object_representations_v<VipKey>);

// One DIP of a pool version. Its identity is (addr, port): that is what the
// Maglev permutation is hashed from, so the same backend keeps the same
// preferences in every version and a pool change moves few table entries.
struct Backend {
  IpAddress addr;
  uint8_t reserved = 0;
  uint16_t port = 0;    // host order; 0: keep the client's destination port
  uint32_t weight = 1;  // 0 = drained: keeps its connections, gets no new ones
  // DSR VIPs only: the backend's MAC on the gateway's segment (all zero:
  // not set). Not part of the identity.
  uint8_t mac[6] = {};
  uint8_t reserved2[2] = {};

  bool same_endpoint(const Backend& o) const { return addr == o.addr && port == o.port; }
};
static_assert(sizeof(Backend) == 32);
static_assert(std::is_trivially_copyable_v<Backend>);

// Limits, checked when a pool is built (control plane).
// 4096 backends keeps a table entry in 16 bits (the table is 2 bytes x M,
// M >= 100 x pool size, so under 1 MB per version at the limit); Katran's
// default limit on reals per VIP is of the same order.
inline constexpr size_t kMaxBackends = 4096;
// Weights as IPVS's (0..65535); relative, so only ratios matter.
inline constexpr uint32_t kMaxWeight = 65535;

struct PoolSpec {
  std::vector<Backend> backends;  // a backend's index here is its index in the version
};

}  // namespace tripod
